"""Software GSO and checksum completion (the kernel's ``skb_gso_segment`` and
``skb_checksum_help`` for the cases the datapath meets).

Frames from a local stack on veth/TAP arrive with offloads: a partial checksum
(``CHECKSUM_PARTIAL``: the L4 checksum field holds only the pseudo-header
sum) and TCP/UDP super-frames (GSO) far larger than the MTU.  Whatever must
leave as finished packets (upcalls, devices without offload, tunnels) goes
through here.
"""

from __future__ import annotations

from .skbuff import (
    CHECKSUM_NONE,
    CHECKSUM_PARTIAL,
    SKB_GSO_TCPV4,
    SKB_GSO_TCPV6,
    SKB_GSO_UDP,
    SKB_GSO_UDP_L4,
    SkBuff,
)
from .wire.checksum import checksum, csum_fold, csum_partial, pseudo_ipv4, pseudo_ipv6

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD


def skb_checksum_help(skb: SkBuff) -> bytes:
    """Finish a partial checksum: sum from ``csum_start`` to the end (the field
    already holds the pseudo-header sum) and store the complement.  Returns
    the finished frame (``skb`` is not changed)."""
    data = skb.data
    if skb.ip_summed != CHECKSUM_PARTIAL:
        return data
    start = skb.csum_start
    off = start + skb.csum_offset
    if start >= len(data) or off + 2 > len(data):
        return data
    # csum_fold(csum) ?: CSUM_MANGLED_0 -- for every protocol, as the kernel
    # does (0 would mean "no checksum" to UDP; 0xFFFF is the same value).
    cs = (~csum_fold(csum_partial(data[start:])) & 0xFFFF) or 0xFFFF
    return data[:off] + cs.to_bytes(2, "big") + data[off + 2 :]


def _l3(data: bytes) -> tuple[int, int]:
    """(network offset, ethertype) of an Ethernet frame, skipping VLAN tags."""
    off = 12
    while off + 4 <= len(data) and data[off : off + 2] in (b"\x81\x00", b"\x88\xa8"):
        off += 4
    return off + 2, int.from_bytes(data[off : off + 2], "big")


def _l4_offset(data: bytes, nh: int, et: int) -> tuple[int, int]:
    if et == ETH_P_IP:
        return nh + (data[nh] & 0x0F) * 4, data[nh + 9]
    # IPv6: skip extension headers
    nexthdr = data[nh + 6]
    off = nh + 40
    while nexthdr in (0, 43, 60, 51) and off + 2 <= len(data):
        nxt = data[off]
        off += (data[off + 1] + 2) * 4 if nexthdr == 51 else (data[off + 1] + 1) * 8
        nexthdr = nxt
    return off, nexthdr


def _set_l3_len(hdr: bytearray, nh: int, et: int, l4_len: int, th: int, ident: int | None) -> None:
    if et == ETH_P_IP:
        total = th - nh + l4_len
        hdr[nh + 2 : nh + 4] = total.to_bytes(2, "big")
        if ident is not None:
            hdr[nh + 4 : nh + 6] = (ident & 0xFFFF).to_bytes(2, "big")
        hdr[nh + 10 : nh + 12] = b"\x00\x00"
        hdr[nh + 10 : nh + 12] = checksum(bytes(hdr[nh:th])).to_bytes(2, "big")
    else:
        hdr[nh + 4 : nh + 6] = (th - nh - 40 + l4_len).to_bytes(2, "big")


def _l4_csum(hdr: bytes, nh: int, et: int, proto: int, segment: bytes) -> int:
    if et == ETH_P_IP:
        src = int.from_bytes(hdr[nh + 12 : nh + 16], "big")
        dst = int.from_bytes(hdr[nh + 16 : nh + 20], "big")
        acc = pseudo_ipv4(src, dst, proto, len(segment))
    else:
        src = int.from_bytes(hdr[nh + 8 : nh + 24], "big")
        dst = int.from_bytes(hdr[nh + 24 : nh + 40], "big")
        acc = pseudo_ipv6(src, dst, proto, len(segment))
    return checksum(segment, acc)


def skb_gso_segment(skb: SkBuff) -> list[bytes]:
    """Cut a GSO super-frame into MTU-sized packets with valid checksums.
    A frame that is not GSO comes back whole (with its checksum finished)."""
    data = skb.data
    mss = skb.gso_size
    if not mss:
        return [skb_checksum_help(skb)]
    nh, et = _l3(data)
    if et not in (ETH_P_IP, ETH_P_IPV6) or len(data) < nh + 20:
        return [skb_checksum_help(skb)]
    th, proto = _l4_offset(data, nh, et)
    if skb.gso_type & (SKB_GSO_TCPV4 | SKB_GSO_TCPV6) and proto == 6:
        return _tcp_segment(data, nh, et, th, mss)
    if skb.gso_type & SKB_GSO_UDP_L4 and proto == 17:
        return _udp_l4_segment(data, nh, et, th, mss)
    if skb.gso_type & SKB_GSO_UDP and proto == 17 and et == ETH_P_IP:
        return _ufo_fragment(data, nh, th, mss)
    return [skb_checksum_help(skb)]


def _tcp_segment(data: bytes, nh: int, et: int, th: int, mss: int) -> list[bytes]:
    doff = (data[th + 12] >> 4) * 4
    hlen = th + doff
    payload = data[hlen:]
    if len(payload) <= mss:
        pieces = [payload]
    else:
        pieces = [payload[i : i + mss] for i in range(0, len(payload), mss)]
    seq0 = int.from_bytes(data[th + 4 : th + 8], "big")
    flags = data[th + 13]
    ident0 = int.from_bytes(data[nh + 4 : nh + 6], "big") if et == ETH_P_IP else 0
    out = []
    for i, piece in enumerate(pieces):
        hdr = bytearray(data[:hlen])
        f = flags
        if i < len(pieces) - 1:
            f &= ~0x09  # FIN and PSH only on the last segment
        if i > 0:
            f &= ~0x80  # CWR only on the first
        hdr[th + 13] = f
        hdr[th + 4 : th + 8] = ((seq0 + i * mss) & 0xFFFFFFFF).to_bytes(4, "big")
        _set_l3_len(hdr, nh, et, doff + len(piece), th, ident0 + i if et == ETH_P_IP else None)
        hdr[th + 16 : th + 18] = b"\x00\x00"
        cs = _l4_csum(bytes(hdr), nh, et, 6, bytes(hdr[th:]) + piece)
        hdr[th + 16 : th + 18] = cs.to_bytes(2, "big")
        out.append(bytes(hdr) + piece)
    return out


def _udp_l4_segment(data: bytes, nh: int, et: int, th: int, mss: int) -> list[bytes]:
    hlen = th + 8
    payload = data[hlen:]
    pieces = [payload[i : i + mss] for i in range(0, len(payload), mss)] or [b""]
    ident0 = int.from_bytes(data[nh + 4 : nh + 6], "big") if et == ETH_P_IP else 0
    out = []
    for i, piece in enumerate(pieces):
        hdr = bytearray(data[:hlen])
        hdr[th + 4 : th + 6] = (8 + len(piece)).to_bytes(2, "big")
        _set_l3_len(hdr, nh, et, 8 + len(piece), th, ident0 + i if et == ETH_P_IP else None)
        hdr[th + 6 : th + 8] = b"\x00\x00"
        cs = _l4_csum(bytes(hdr), nh, et, 17, bytes(hdr[th:]) + piece) or 0xFFFF
        hdr[th + 6 : th + 8] = cs.to_bytes(2, "big")
        out.append(bytes(hdr) + piece)
    return out


def _ufo_fragment(data: bytes, nh: int, th: int, mss: int) -> list[bytes]:
    """UDP fragmentation offload: IP-fragment the datagram (first fragment
    carries the UDP header), fragment payloads a multiple of 8 bytes."""
    # finish the UDP checksum over the whole datagram first
    udp = bytearray(data[th:])
    udp[6:8] = b"\x00\x00"
    src = int.from_bytes(data[nh + 12 : nh + 16], "big")
    dst = int.from_bytes(data[nh + 16 : nh + 20], "big")
    cs = checksum(bytes(udp), pseudo_ipv4(src, dst, 17, len(udp))) or 0xFFFF
    udp[6:8] = cs.to_bytes(2, "big")
    ihl = th - nh
    step = max(8, (mss // 8) * 8)
    out = []
    for off in range(0, len(udp), step):
        piece = bytes(udp[off : off + step])
        hdr = bytearray(data[:th])
        more = off + step < len(udp)
        fo = (off // 8) | (0x2000 if more else 0)
        hdr[nh + 6 : nh + 8] = fo.to_bytes(2, "big")
        hdr[nh + 2 : nh + 4] = (ihl + len(piece)).to_bytes(2, "big")
        hdr[nh + 10 : nh + 12] = b"\x00\x00"
        hdr[nh + 10 : nh + 12] = checksum(bytes(hdr[nh:th])).to_bytes(2, "big")
        out.append(bytes(hdr) + piece)
    return out


def skb_resolve(frame: bytes | SkBuff) -> list[bytes]:
    """Finished packets for a frame: segments of a GSO frame, or the frame with
    its checksum completed."""
    if type(frame) is bytes:
        return [frame]
    assert isinstance(frame, SkBuff)
    if frame.gso_size:
        return skb_gso_segment(frame)
    if frame.ip_summed == CHECKSUM_PARTIAL:
        return [skb_checksum_help(frame)]
    return [frame.data]


__all__ = [
    "CHECKSUM_NONE",
    "skb_checksum_help",
    "skb_gso_segment",
    "skb_resolve",
]
