"""Upcalls: packets the datapath sends up to userspace handlers (the kernel's
``ovs_dp_upcall``, ``queue_gso_packets``, ``queue_userspace_packet``).

An :class:`UpcallChannel` stands in for a handler's netlink socket: a bounded
queue identified by a port id.  The datapath never blocks on it: when it is
full the upcall fails with ENOBUFS and the datapath counts it as ``lost``.
Handlers (:class:`Handler`) drain their channels, decide, install flows and
execute packets (``OVS_PACKET_CMD_EXECUTE``); an exception in a handler is
logged and counted, never propagated into the datapath.
"""

from __future__ import annotations

import errno
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from . import flow
from .skbuff import CHECKSUM_PARTIAL, SKB_GSO_UDP, SkBuff
from .uapi import OVS_PACKET_CMD_ACTION, OVS_PACKET_CMD_MISS, Action, Tunnel, Upcall

if TYPE_CHECKING:
    from .datapath import Datapath

log = logging.getLogger(__name__)

DEFAULT_CHANNEL_DEPTH = 4096
#: The packet attribute (4-byte netlink header + frame) must fit nla_len (u16).
MAX_UPCALL_PACKET = 0xFFFF - 4

_portids = itertools.count(1)


class UpcallChannel:
    """A bounded upcall queue with a port id (a handler's netlink socket)."""

    def __init__(self, portid: int | None = None, depth: int = DEFAULT_CHANNEL_DEPTH) -> None:
        if depth < 1:
            raise ValueError("channel depth must be >= 1")
        self.portid = next(_portids) if portid is None else portid
        self.depth = depth
        self.queue: deque[Upcall] = deque()
        self.n_queued = 0
        self.n_dropped = 0
        #: called (with the channel) when the queue goes from empty to non-empty;
        #: event loops use it to wake the handler.
        self.on_ready: Callable[[UpcallChannel], None] | None = None

    def put(self, upcall: Upcall) -> int:
        """Queue an upcall; 0 or -ENOBUFS when full."""
        q = self.queue
        if len(q) >= self.depth:
            self.n_dropped += 1
            return -errno.ENOBUFS
        q.append(upcall)
        self.n_queued += 1
        if len(q) == 1 and self.on_ready is not None:
            self.on_ready(self)
        return 0

    def get(self) -> Upcall | None:
        return self.queue.popleft() if self.queue else None

    def drain(self, budget: int = 1 << 30) -> list[Upcall]:
        out: list[Upcall] = []
        q = self.queue
        while q and len(out) < budget:
            out.append(q.popleft())
        return out

    def __len__(self) -> int:
        return len(self.queue)

    def __repr__(self) -> str:
        return f"<UpcallChannel {self.portid} {len(self.queue)}/{self.depth}>"


class UpcallInfo:
    """``struct dp_upcall_info``."""

    __slots__ = ("actions", "cmd", "egress_tun_info", "mru", "portid", "userdata")

    def __init__(
        self,
        cmd: int,
        portid: int,
        *,
        userdata: bytes | None = None,
        actions: Sequence[Action] | None = None,
        egress_tun_info: Tunnel | None = None,
        mru: int = 0,
    ) -> None:
        self.cmd = cmd
        self.portid = portid
        self.userdata = userdata
        self.actions = tuple(actions) if actions is not None else None
        self.egress_tun_info = egress_tun_info
        self.mru = mru


def queue_userspace_packet(
    dp: Datapath, data: bytes, key: int, info: UpcallInfo, *, cutlen: int = 0, skb_hash: int = 0
) -> int:
    """Build and queue one upcall message; 0 or a negative errno.

    ``cutlen`` bytes are cut from the tail (a preceding ``trunc``) and the
    original length is reported in ``orig_len`` (``OVS_PACKET_ATTR_LEN``)."""
    if info.portid == 0:
        return -errno.ENOTCONN
    channel = dp.upcall_channels.get(info.portid)
    if channel is None:
        return -errno.ECONNREFUSED
    orig_len = 0
    if cutlen:
        orig_len = len(data)
        data = data[: len(data) - cutlen]
    if len(data) > MAX_UPCALL_PACKET:
        return -errno.EFBIG
    up = Upcall(
        cmd=info.cmd,
        dp_name=dp.name,
        portid=info.portid,
        key=key,
        packet=data,
        userdata=info.userdata,
        egress_tun_key=info.egress_tun_info,
        actions=info.actions,
        mru=info.mru,
        orig_len=orig_len,
        hash=skb_hash,
    )
    return channel.put(up)


def queue_gso_packets(
    dp: Datapath, skb: SkBuff, key: int, info: UpcallInfo, *, skb_hash: int = 0
) -> int:
    """Segment a GSO super-packet in software and queue each segment with the
    same key; for UDP fragmentation offload, segments after the first carry
    ``frag=later``.  The first failure stops the rest (one ``lost``)."""
    from .gso import skb_gso_segment

    segments = skb_gso_segment(skb)
    later_key = key
    if skb.gso_type & SKB_GSO_UDP:
        later_key = flow.key_set(key, "ip_frag", flow.OVS_FRAG_TYPE_LATER)
    for i, seg in enumerate(segments):
        err = queue_userspace_packet(
            dp, seg, key if i == 0 else later_key, info, cutlen=skb.cutlen, skb_hash=skb_hash
        )
        if err:
            return err
    return 0


def ovs_dp_upcall(dp: Datapath, skb: SkBuff | bytes, key: int, info: UpcallInfo) -> int:
    """Send a packet to userspace; 0 or a negative errno (the caller counts
    ``lost``).  The upcall carries the packet hash the datapath used (the
    kernel's ``OVS_PACKET_ATTR_HASH``), computed from the key if the packet
    had none."""
    if isinstance(skb, SkBuff):
        skb_hash = skb.hash or flow.key_hash(key)
        if skb.is_gso():
            return queue_gso_packets(dp, skb, key, info, skb_hash=skb_hash)
        data = skb.data
        if skb.ip_summed == CHECKSUM_PARTIAL:  # resolved before handing up
            from .gso import skb_checksum_help

            data = skb_checksum_help(skb)
        return queue_userspace_packet(dp, data, key, info, cutlen=skb.cutlen, skb_hash=skb_hash)
    return queue_userspace_packet(dp, skb, key, info, skb_hash=flow.key_hash(key))


# ---------------------------------------------------------------------------
# Handlers


class Handler:
    """Base class of an upcall handler: owns one or more channels on a
    datapath, drains them and reacts.  Subclasses override
    :meth:`handle_upcall`."""

    def __init__(self, dp: Datapath, n_channels: int = 1, depth: int = DEFAULT_CHANNEL_DEPTH):
        self.dp = dp
        self.channels = [dp.upcall_channel_open(depth=depth) for _ in range(n_channels)]
        self.n_handled = 0
        self.n_errors = 0

    @property
    def portids(self) -> list[int]:
        return [c.portid for c in self.channels]

    def poll(self, budget: int = 256) -> int:
        """Handle up to ``budget`` pending upcalls; returns how many."""
        done = 0
        for ch in self.channels:
            for up in ch.drain(budget - done):
                try:
                    self.handle_upcall(up)
                except Exception:  # a failing handler never takes the datapath down
                    self.n_errors += 1
                    log.exception("upcall handler %s failed", type(self).__name__)
                self.n_handled += 1
                done += 1
            if done >= budget:
                break
        return done

    def pending(self) -> int:
        return sum(len(c) for c in self.channels)

    def handle_upcall(self, upcall: Upcall) -> None:
        """React to one upcall (override)."""

    # -- what a handler does with the datapath --------------------------------

    def install_flow(
        self, key: int, mask: int, actions: Sequence[Action], ufid: bytes | None = None
    ) -> None:
        """Install (or refresh the actions of) a megaflow."""
        self.dp.flow_put(key, mask, actions, ufid=ufid, create=True, modify=True)

    def execute(self, packet: bytes, key: int, actions: Sequence[Action]) -> None:
        """``OVS_PACKET_CMD_EXECUTE``."""
        self.dp.execute(packet, actions, key=key)

    def close(self) -> None:
        for ch in self.channels:
            self.dp.upcall_channel_close(ch)
        self.channels = []


def upcall_cmd_name(cmd: int) -> str:
    return {OVS_PACKET_CMD_MISS: "miss", OVS_PACKET_CMD_ACTION: "action"}.get(cmd, str(cmd))


def handlers_poll(handlers: Iterable[Handler], budget: int = 256) -> int:
    return sum(h.poll(budget) for h in handlers)
