"""The packet object of the slow path (the kernel's ``struct sk_buff`` + ``OVS_CB``).

The hot path moves plain ``bytes`` frames in batches and never builds one of
these.  An :class:`SkBuff` is created only when a packet needs state beyond
its bytes: metadata changed by actions (mark, priority, tunnel info), offload
state from the device (checksum-partial, GSO), or execution of actions that
are not a plain output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .uapi import Tunnel

# ip_summed
CHECKSUM_NONE = 0
CHECKSUM_UNNECESSARY = 1
CHECKSUM_COMPLETE = 2
CHECKSUM_PARTIAL = 3

# gso_type bits (subset of SKB_GSO_*)
SKB_GSO_TCPV4 = 1 << 0
SKB_GSO_DODGY = 1 << 1
SKB_GSO_TCP_ECN = 1 << 2
SKB_GSO_TCPV6 = 1 << 4
SKB_GSO_UDP = 1 << 16  # UFO (the kernel's old SKB_GSO_UDP)
SKB_GSO_UDP_L4 = 1 << 17


class SkBuff:
    """A packet with metadata.  ``data`` always holds the whole frame from the
    Ethernet header (or the L3 header when ``mac_proto`` is NONE)."""

    __slots__ = (
        "csum_offset",
        "csum_start",
        "cutlen",
        "data",
        "gso_size",
        "gso_type",
        "hash",
        "ip_summed",
        "mark",
        "mru",
        "priority",
        "protocol",
        "recirc_depth",
        "tun_info",
    )

    def __init__(
        self,
        data: bytes,
        *,
        mark: int = 0,
        priority: int = 0,
        tun_info: Tunnel | None = None,
        protocol: int = 0,
        ip_summed: int = CHECKSUM_NONE,
        csum_start: int = 0,
        csum_offset: int = 0,
        gso_size: int = 0,
        gso_type: int = 0,
        hash: int = 0,
    ) -> None:
        self.data = data
        self.mark = mark
        self.priority = priority
        self.tun_info = tun_info
        #: skb->protocol for L3 packets (mac_proto NONE); 0 for Ethernet frames
        self.protocol = protocol
        self.ip_summed = ip_summed
        self.csum_start = csum_start
        self.csum_offset = csum_offset
        self.gso_size = gso_size
        self.gso_type = gso_type
        self.hash = hash
        self.cutlen = 0
        self.mru = 0
        self.recirc_depth = 0

    def __len__(self) -> int:
        return len(self.data)

    def is_gso(self) -> bool:
        return self.gso_size > 0

    def clone(self) -> SkBuff:
        """``skb_clone``: same bytes (immutable), copied metadata."""
        c = SkBuff.__new__(SkBuff)
        c.data = self.data
        c.mark = self.mark
        c.priority = self.priority
        c.tun_info = self.tun_info
        c.protocol = self.protocol
        c.ip_summed = self.ip_summed
        c.csum_start = self.csum_start
        c.csum_offset = self.csum_offset
        c.gso_size = self.gso_size
        c.gso_type = self.gso_type
        c.hash = self.hash
        c.cutlen = self.cutlen
        c.mru = self.mru
        c.recirc_depth = self.recirc_depth
        return c

    def __repr__(self) -> str:
        extra = []
        if self.mark:
            extra.append(f"mark={self.mark:#x}")
        if self.priority:
            extra.append(f"priority={self.priority:#x}")
        if self.tun_info is not None:
            extra.append("tun_info")
        if self.gso_size:
            extra.append(f"gso_size={self.gso_size}")
        if self.ip_summed == CHECKSUM_PARTIAL:
            extra.append(f"csum_partial@{self.csum_start}+{self.csum_offset}")
        return f"SkBuff(len={len(self.data)}{', ' if extra else ''}{', '.join(extra)})"
