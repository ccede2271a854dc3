"""The ``lisp`` vport: LISP data plane as OVS implemented it, on UDP port 4341.
LISP carries L3 packets only: the Ethernet header is removed on send and a
synthetic one rebuilt on receive; instance id = tun_id.

Transmit (OVS's kernel ``lisp_send``): only IPv4/IPv6 frames (after any VLAN
tags) are accepted, others are dropped (tx_dropped); the L2 header is
stripped (the L3 packet trimmed to its IP length, i.e. without Ethernet
padding) and ``48 00 00 00 ii ii ii 01`` + UDP + IP pushed (N=0, L=1, I=1,
instance id = low 24 bits of tun_id, LSB 0x01).  Source port from the inner
flow hash over the ephemeral range without folding (``get_src_port``); no
outer UDP checksum over IPv4 (``udp_tunnel_xmit_skb(..., nocheck)``).

Receive: the inner packet must start with IP version 4 or 6; a 14-byte
Ethernet header 02:00:00:00:00:00 > 02:00:00:00:00:00 with type 0x0800 /
0x86DD is pushed; tun_id = instance id if the I bit is set, else 0; flags
KEY (+CSUM for a non-zero UDP checksum).  The vport stays an Ethernet port
(the kernel's LISP device is ARPHRD_ETHER).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .device import AF_INET6
from .flow import ETH_P_IP, ETH_P_IPV6, TUNNEL_CSUM, TUNNEL_KEY
from .tunnel import (
    Decap,
    Outer,
    TunnelListener,
    inner_hash,
    l3_offset,
    lisp_src_port,
    parse_udp,
)
from .uapi import OVS_VPORT_TYPE_LISP
from .vport import VportOps
from .vport_tunnel import TunnelVport, TxDrop, TxKey
from .wire import WireError
from .wire.lisp import HEADER_LEN, LispHeader

if TYPE_CHECKING:
    from .skbuff import SkBuff

LISP_DST_PORT = 4341
#: The MAC addresses of the Ethernet header LISP fabricates on receive.
LISP_FAKE_MAC = bytes((0x02, 0, 0, 0, 0, 0))


class LispVport(TunnelVport):
    default_dst_port = LISP_DST_PORT
    default_packet_type = "legacy_l3"

    def src_port(self, data: bytes, protocol: int, skb: SkBuff | None) -> int:
        h = skb.hash if skb is not None and skb.hash else inner_hash(data, protocol)
        return lisp_src_port(h)

    def udp_csum(self, k: TxKey) -> bool:
        return k.family == AF_INET6 and super().udp_csum(k)

    def tunnel_header(self, inner: bytes, protocol: int, k: TxKey) -> bytes:
        if protocol:
            et, l3 = protocol, inner
        else:
            off, et = l3_offset(inner)
            l3 = inner[off:]
        if et == ETH_P_IP and len(l3) >= 20:
            l3 = l3[: max(20, int.from_bytes(l3[2:4], "big"))]
        elif et == ETH_P_IPV6 and len(l3) >= 40:
            l3 = l3[: 40 + int.from_bytes(l3[4:6], "big")]
        else:
            raise TxDrop("lisp: only IPv4 and IPv6 packets can be sent", dropped=True)
        return LispHeader.make(k.tun_id).emit(l3)

    @classmethod
    def decap(cls, listener: TunnelListener, outer: Outer) -> Decap | None:
        sport, dport, csum, payload = parse_udp(outer, listener.port)
        hdr = LispHeader.parse(payload)
        l3 = payload[HEADER_LEN:]
        version = l3[0] >> 4 if l3 else 0
        if version == 4:
            et = ETH_P_IP
        elif version == 6:
            et = ETH_P_IPV6
        else:
            raise WireError("lisp: inner packet is not IPv4 or IPv6")
        inner = LISP_FAKE_MAC + LISP_FAKE_MAC + et.to_bytes(2, "big") + l3
        flags = TUNNEL_KEY | (TUNNEL_CSUM if csum else 0)
        return Decap(hdr.tun_id, flags, inner, sport, dport)


class LispVportOps(VportOps):
    type = OVS_VPORT_TYPE_LISP
    name = "lisp"
    vport_class = LispVport
