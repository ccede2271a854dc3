"""The ``gre`` and ``gre64`` vports: Ethernet over GRE (RFC 2784/2890), IP
protocol 47.  GRE64 (OVS <= 2.4) carries a 64-bit key: the low 32 bits in the
key field and the high 32 bits in the sequence-number field.

Transmit (``gre_fb_xmit``): protocol 0x6558 (TEB) for Ethernet frames, the
packet's ethertype for L3 packets (ports with ``packet_type=legacy_l3`` or
``ptap``); C bit + checksum iff ``TUNNEL_CSUM``; K bit with the low 32 bits
of tun_id iff ``TUNNEL_KEY``; S bit with a per-port counter from 0 iff the
port has ``seq=true``.  GRE64 always sets K and S (C with ``TUNNEL_CSUM``).

Receive: R, version != 0 or any reserved flag bit set -> drop (OVS's
``parse_gre_header``); a bad checksum -> drop; the protocol must be an
ethertype (>= 0x0600), and anything but TEB needs an L3-capable port.
Packets with both K and S go to a gre64 vport when one is bound
(``tun_id = seq << 32 | key``), otherwise to the gre vports
(``tun_id = key``).  Flags: KEY iff K, CSUM iff C (``__ipgre_rcv`` keeps
only those two).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .device import IPPROTO_GRE
from .flow import ETH_HLEN, ETH_P_TEB, TUNNEL_CSUM, TUNNEL_KEY, TUNNEL_SEQ
from .tunnel import (
    Decap,
    Outer,
    TunnelListener,
)
from .uapi import OVS_VPORT_TYPE_GRE, OVS_VPORT_TYPE_GRE64
from .vport import VportOps
from .vport_tunnel import TunnelVport, TxKey
from .wire import WireError
from .wire.checksum import csum_fold, csum_partial
from .wire.gre import GreHeader, gre64_header

if TYPE_CHECKING:
    from .skbuff import SkBuff


class GreVport(TunnelVport):
    ip_proto = IPPROTO_GRE

    @property
    def listen_group(self) -> str:
        return "gre"

    def config_changed(self) -> None:
        # An L3-capable port (legacy_l3 / ptap) accepts packets without an
        # Ethernet header: the kernel's ARPHRD_NONE GRE device.
        self.l2 = self.config.packet_type == "legacy_l2"

    def gre_header(self, k: TxKey, protocol: int) -> GreHeader:
        seq: int | None = None
        if k.flags & TUNNEL_SEQ:
            seq = self._gre_seq
            self._gre_seq = (seq + 1) & 0xFFFFFFFF
        return GreHeader(
            protocol or ETH_P_TEB,
            key=k.tun_id & 0xFFFFFFFF if k.flags & TUNNEL_KEY else None,
            seq=seq,
            csum=bool(k.flags & TUNNEL_CSUM),
        )

    def tx_payloads(self, data: bytes, protocol: int, skb: SkBuff | None, k: TxKey) -> list[bytes]:
        return [
            self.gre_header(k, protocol).emit(inner) for inner in self.finished(data, protocol, skb)
        ]

    @classmethod
    def decap(cls, listener: TunnelListener, outer: Outer) -> Decap | None:
        seg = outer.l4
        hdr = GreHeader.parse(seg)  # R bit, version != 0, truncation
        if hdr.reserved0:
            raise WireError("gre: reserved flag bits set")
        if hdr.csum and csum_fold(csum_partial(seg)) != 0xFFFF:
            raise WireError("gre: bad checksum")
        inner = seg[hdr.header_len :]
        if hdr.protocol == ETH_P_TEB:
            protocol = 0
            if len(inner) < ETH_HLEN:
                raise WireError("gre: inner frame shorter than an Ethernet header")
        elif hdr.protocol >= 0x0600:
            protocol = hdr.protocol
            if not inner:
                raise WireError("gre: empty L3 payload")
        else:
            raise WireError(f"gre: protocol {hdr.protocol:#06x} is not an ethertype")
        gre64 = hdr.key is not None and hdr.seq is not None
        if gre64 and listener.has_type("gre64"):
            tun_id = (hdr.seq or 0) << 32 | (hdr.key or 0)
        else:
            tun_id = hdr.key or 0
        flags = (TUNNEL_KEY if hdr.key is not None else 0) | (TUNNEL_CSUM if hdr.csum else 0)
        return Decap(tun_id, flags, inner, protocol=protocol, hdr_word=hdr.protocol, gre64=gre64)

    def rx_check(self, d: Decap) -> str | None:
        if d.protocol and self.l2:
            return "gre: L3 payload on an Ethernet-only port"
        return None


class Gre64Vport(GreVport):
    def gre_header(self, k: TxKey, protocol: int) -> GreHeader:
        return gre64_header(k.tun_id, protocol or ETH_P_TEB, csum=bool(k.flags & TUNNEL_CSUM))


class GreVportOps(VportOps):
    type = OVS_VPORT_TYPE_GRE
    name = "gre"
    vport_class = GreVport


class Gre64VportOps(VportOps):
    type = OVS_VPORT_TYPE_GRE64
    name = "gre64"
    vport_class = Gre64Vport
