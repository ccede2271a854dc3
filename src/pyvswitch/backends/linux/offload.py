"""Offload state between the kernel and :class:`~pyvswitch.skbuff.SkBuff`.

The kernel describes a checksum-partial or GSO packet to userspace with a
``struct virtio_net_hdr`` in front of the frame (``PACKET_VNET_HDR`` on packet
sockets, ``IFF_VNET_HDR`` on TAP) and takes one back the same way on
transmit; then it finishes the checksum or segments the packet itself (in
hardware, or in software at the last moment) only if the packet has to leave
as wire packets.  These helpers translate between that header and an
``SkBuff``; frames without offload state stay plain ``bytes``.
"""

from __future__ import annotations

from ...gso import skb_gso_segment, skb_resolve
from ...skbuff import (
    CHECKSUM_PARTIAL,
    SKB_GSO_TCP_ECN,
    SKB_GSO_TCPV4,
    SKB_GSO_TCPV6,
    SKB_GSO_UDP,
    SKB_GSO_UDP_L4,
    SkBuff,
)
from .syscalls import (
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VIRTIO_NET_HDR_GSO_UDP,
    VIRTIO_NET_HDR_GSO_UDP_L4,
    VNET_HDR,
    VNET_HDR_LEN,
)

ZERO_VNET_HDR = bytes(VNET_HDR_LEN)

_FROM_VIRTIO = {
    VIRTIO_NET_HDR_GSO_TCPV4: SKB_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6: SKB_GSO_TCPV6,
    VIRTIO_NET_HDR_GSO_UDP: SKB_GSO_UDP,
    VIRTIO_NET_HDR_GSO_UDP_L4: SKB_GSO_UDP_L4,
}

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD


def frame_from_vnet(
    data: bytes, flags: int, gso_type: int, gso_size: int, csum_start: int, csum_offset: int
) -> bytes | SkBuff:
    """The frame as the datapath gets it: ``bytes`` when the header carries no
    offload state, else an SkBuff with ``ip_summed``/``csum_*``/``gso_*``.
    (``DATA_VALID`` -- the checksum was verified -- is dropped: a plain frame
    needs nothing finished.)"""
    if not flags & VIRTIO_NET_HDR_F_NEEDS_CSUM and not gso_type:
        return data
    skb = SkBuff(data)
    if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
        skb.ip_summed = CHECKSUM_PARTIAL
        skb.csum_start = csum_start
        skb.csum_offset = csum_offset
    base = gso_type & ~VIRTIO_NET_HDR_GSO_ECN
    if base:
        t = _FROM_VIRTIO.get(base, 0)
        if t and gso_size:
            skb.gso_size = gso_size
            skb.gso_type = t | (SKB_GSO_TCP_ECN if gso_type & VIRTIO_NET_HDR_GSO_ECN else 0)
    return skb


def parse_vnet(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, ...]:
    """(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)."""
    return VNET_HDR.unpack_from(data, offset)


def vnet_hdr_for(skb: SkBuff) -> bytes | None:
    """The ``virtio_net_hdr`` that hands ``skb`` to the kernel with its offload
    state, or None when the header cannot express it (the caller then
    finishes the packets in software with :func:`software_frames`)."""
    partial = skb.ip_summed == CHECKSUM_PARTIAL
    if not skb.gso_size:
        if not partial:
            return ZERO_VNET_HDR
        return VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, skb.csum_start, skb.csum_offset)
    if not partial:
        return None  # GSO with a finished checksum field: segment in software
    t = skb.gso_type
    data = skb.data
    start = skb.csum_start
    if t & SKB_GSO_TCPV4:
        vt = VIRTIO_NET_HDR_GSO_TCPV4
    elif t & SKB_GSO_TCPV6:
        vt = VIRTIO_NET_HDR_GSO_TCPV6
    elif t & SKB_GSO_UDP_L4:
        vt = VIRTIO_NET_HDR_GSO_UDP_L4
    else:
        return None  # UFO and anything unknown: software
    if vt == VIRTIO_NET_HDR_GSO_UDP_L4:
        hdr_len = start + 8
    else:
        if start + 13 > len(data):
            return None
        hdr_len = start + (data[start + 12] >> 4) * 4
        if t & SKB_GSO_TCP_ECN:
            vt |= VIRTIO_NET_HDR_GSO_ECN
    return VNET_HDR.pack(
        VIRTIO_NET_HDR_F_NEEDS_CSUM, vt, hdr_len, skb.gso_size, start, skb.csum_offset
    )


def software_frames(frame: bytes | SkBuff) -> list[bytes]:
    """Finished wire packets for a frame (software GSO / checksum)."""
    if type(frame) is bytes:
        return [frame]
    assert isinstance(frame, SkBuff)
    if frame.gso_size:
        return skb_gso_segment(frame)
    return skb_resolve(frame)


def skb_from_headers(data: bytes, mtu: int) -> bytes | SkBuff:
    """Offload state recovered from the headers alone (for a packet socket
    without ``PACKET_VNET_HDR``: the kernel only says ``TP_STATUS_CSUMNOTREADY``).
    The L4 checksum is partial; a frame longer than the MTU is a GSO
    super-frame cut at the MSS the MTU allows."""
    off = 12
    while off + 4 <= len(data) and data[off : off + 2] in (b"\x81\x00", b"\x88\xa8"):
        off += 4
    if off + 2 > len(data):
        return data
    et = int.from_bytes(data[off : off + 2], "big")
    nh = off + 2
    if et == ETH_P_IP and len(data) >= nh + 20:
        th = nh + (data[nh] & 0x0F) * 4
        proto = data[nh + 9]
    elif et == ETH_P_IPV6 and len(data) >= nh + 40:
        th = nh + 40
        proto = data[nh + 6]  # extension headers are not followed here
    else:
        return data
    if proto == 6 and len(data) >= th + 20:
        skb = SkBuff(data, ip_summed=CHECKSUM_PARTIAL, csum_start=th, csum_offset=16)
        if len(data) - nh > mtu:
            skb.gso_size = mtu - (th - nh) - (data[th + 12] >> 4) * 4
            skb.gso_type = SKB_GSO_TCPV4 if et == ETH_P_IP else SKB_GSO_TCPV6
        return skb
    if proto == 17 and len(data) >= th + 8:
        skb = SkBuff(data, ip_summed=CHECKSUM_PARTIAL, csum_start=th, csum_offset=6)
        if len(data) - nh > mtu:
            skb.gso_size = mtu - (th - nh) - 8
            skb.gso_type = SKB_GSO_UDP_L4
        return skb
    return data
