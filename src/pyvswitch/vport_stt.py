"""The ``stt`` vport: Stateless Transport Tunneling (draft-davie-stt) on TCP
port 7471: a TCP-like outer header, the STT frame header with a 64-bit
context id = tun_id, segmentation of large frames and reassembly.

Transmit (OVS's ``stt.c``): the STT frame is the 18-byte header (16 bytes +
2 bytes padding) + the inner Ethernet frame, offload state carried along
(checksum-partial: flags 0x02 | 0x04 IPv4 | 0x08 TCP, L4 offset, MSS = the
GSO size; checksum-unnecessary: 0x01).  It travels in "TCP" segments of at
most path MTU - IP header - 20 bytes: seq = ``frame length << 16 | offset``,
ack = a packet id shared by the segments of one frame, ACK on every segment
and PSH on the last, window 65535, a real TCP checksum, IPv4 ids counting
up per segment.  Source port from the inner flow hash over 1..65535.

Receive: the TCP checksum is verified per segment, segments are reassembled
by (outer source, destination, packet id) in the listener's bounded table,
the STT header (version 0) is removed, offload state and a VLAN TCI (as an
802.1Q tag) restored; tun_id = context id, flags KEY | CSUM, tp_src/tp_dst =
the TCP ports.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .device import AF_INET6, IPPROTO_TCP
from .flow import ETH_HLEN, ETH_P_8021Q, ETH_P_IP, TUNNEL_CSUM, TUNNEL_KEY
from .skbuff import (
    CHECKSUM_NONE,
    CHECKSUM_PARTIAL,
    CHECKSUM_UNNECESSARY,
    SKB_GSO_TCPV4,
    SKB_GSO_TCPV6,
    SKB_GSO_UDP,
)
from .tunnel import (
    Decap,
    Outer,
    TunnelListener,
    l3_offset,
)
from .uapi import OVS_VPORT_TYPE_STT
from .vport import VportOps
from .vport_tunnel import TunnelVport, TxDrop, TxKey
from .wire import WireError
from .wire.checksum import csum_fold, csum_partial, pseudo_ipv4, pseudo_ipv6
from .wire.ipv4 import IPv4Header
from .wire.ipv6 import IPv6Header
from .wire.stt import (
    FLAG_CSUM_PARTIAL,
    FLAG_CSUM_VERIFIED,
    FLAG_IPV4,
    FLAG_TCP,
    HEADER_LEN,
    MAX_FRAME_LEN,
    VLAN_PRESENT,
    SttHeader,
    stt_tcp_segments,
)

if TYPE_CHECKING:
    from .skbuff import SkBuff

STT_DST_PORT = 7471
TCP_HLEN = 20
_TCP = struct.Struct("!HHIIHHHH")


def stt_offload_fields(data: bytes, skb: SkBuff | None) -> tuple[int, int, int]:
    """(flags, L4 offset, MSS) of the STT header for a frame (``__push_stt_header``)."""
    if skb is None:
        return 0, 0, 0
    if skb.ip_summed == CHECKSUM_PARTIAL:
        flags = FLAG_CSUM_PARTIAL
        if l3_offset(data)[1] == ETH_P_IP:
            flags |= FLAG_IPV4
        if skb.csum_offset == 16:
            flags |= FLAG_TCP
        return flags, skb.csum_start, skb.gso_size
    if skb.ip_summed == CHECKSUM_UNNECESSARY:
        return FLAG_CSUM_VERIFIED, 0, 0
    return 0, 0, 0


class SttVport(TunnelVport):
    default_dst_port = STT_DST_PORT
    ip_proto = IPPROTO_TCP
    sport_min = 1
    sport_max = 0xFFFF

    def tx_payloads(self, data: bytes, protocol: int, skb: SkBuff | None, k: TxKey) -> list[bytes]:
        assert self.listener is not None
        flags, l4_offset, mss = stt_offload_fields(data, skb)
        inners = [data]
        if len(data) + HEADER_LEN > MAX_FRAME_LEN or l4_offset > 0xFF or mss > 0xFFFF:
            # too big for one STT frame (or offsets that do not fit): resolve
            inners = self.finished(data, protocol, skb)
            flags = l4_offset = mss = 0
        ip: IPv4Header | IPv6Header
        if k.family == AF_INET6:
            ip = IPv6Header(k.src, k.dst, IPPROTO_TCP)
            seg_mss = k.mtu - 40 - TCP_HLEN
        else:
            ip = IPv4Header(k.src, k.dst, IPPROTO_TCP)
            seg_mss = k.mtu - 20 - TCP_HLEN
        if seg_mss < 8:
            raise TxDrop(f"stt: path MTU {k.mtu} too small")
        sport = self.src_port(data, protocol, skb)
        out: list[bytes] = []
        for inner in inners:
            frame = SttHeader(k.tun_id, flags, l4_offset, mss).emit(inner)
            if len(frame) > MAX_FRAME_LEN:
                raise TxDrop("stt: frame longer than 65535 bytes")
            out += stt_tcp_segments(
                frame,
                seg_mss,
                src_port=sport,
                dst_port=self.config.dst_port,
                packet_id=self.listener.next_packet_id(),
                ip=ip,
            )
        return out

    @classmethod
    def decap(cls, listener: TunnelListener, outer: Outer) -> Decap | None:
        seg = outer.l4
        if len(seg) < TCP_HLEN:
            raise WireError("stt: truncated tcp header")
        sport, dport, seq, ack, off_flags, _win, _cs, _urg = _TCP.unpack_from(seg)
        if off_flags >> 12 != 5:
            raise WireError("stt: tcp header with options")
        if dport != listener.port:
            raise WireError(f"stt: tcp port {dport} is not {listener.port}")
        if outer.family == AF_INET6:
            pseudo = pseudo_ipv6(outer.src, outer.dst, IPPROTO_TCP, len(seg))
        else:
            pseudo = pseudo_ipv4(outer.src, outer.dst, IPPROTO_TCP, len(seg))
        if csum_fold(csum_partial(seg, pseudo)) != 0xFFFF:
            raise WireError("stt: bad tcp checksum")
        reasm = listener.reassembler
        assert reasm is not None
        dropped = reasm.dropped
        frame = reasm.add(outer.src, outer.dst, ack, seq, seg[TCP_HLEN:])
        if frame is None:
            if reasm.dropped != dropped:
                raise WireError("stt: segment beyond or overlapping its frame")
            return None
        hdr = SttHeader.parse(frame)  # version != 0, truncation
        inner = frame[HEADER_LEN:]
        if len(inner) < ETH_HLEN:
            raise WireError("stt: inner frame shorter than an Ethernet header")
        d = Decap(hdr.context_id, TUNNEL_KEY | TUNNEL_CSUM, inner, sport, dport)
        vlan_shift = 0
        if hdr.vlan_tci:
            tci = hdr.vlan_tci & ~VLAN_PRESENT & 0xFFFF
            d.inner = inner[:12] + struct.pack("!HH", ETH_P_8021Q, tci) + inner[12:]
            vlan_shift = 4
        if hdr.flags & FLAG_CSUM_PARTIAL:
            tcp = bool(hdr.flags & FLAG_TCP)
            d.ip_summed = CHECKSUM_PARTIAL
            d.csum_start = hdr.l4_offset + vlan_shift
            d.csum_offset = 16 if tcp else 6
            if d.csum_start + d.csum_offset + 2 > len(d.inner):
                raise WireError("stt: l4 offset beyond the inner frame")
            if hdr.mss:
                d.gso_size = hdr.mss
                if tcp:
                    d.gso_type = SKB_GSO_TCPV4 if hdr.flags & FLAG_IPV4 else SKB_GSO_TCPV6
                else:
                    d.gso_type = SKB_GSO_UDP
        elif hdr.flags & FLAG_CSUM_VERIFIED:
            d.ip_summed = CHECKSUM_UNNECESSARY
        else:
            d.ip_summed = CHECKSUM_NONE
        return d


class SttVportOps(VportOps):
    type = OVS_VPORT_TYPE_STT
    name = "stt"
    vport_class = SttVport
