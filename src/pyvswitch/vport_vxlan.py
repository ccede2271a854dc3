"""The ``vxlan`` vport: VXLAN (RFC 7348) on UDP port 4789, with the
group-based-policy extension (``exts=gbp``).

Transmit: VNI = low 24 bits of tun_id; with ``exts=gbp`` and a non-zero
``gbp`` in the tunnel key, the G bit, D/A bits and policy id (notes section 7.2).
Outer UDP destination port = the key's ``tp_dst`` if set, else ``dst_port``;
source port from the inner flow hash over the ephemeral range (the kernel
VXLAN device OVS creates leaves ``port_min/max`` at 0).

Receive (the kernel's ``vxlan_rcv`` in collect-metadata mode): the I flag must
be set, the reserved byte of word 2 zero, and no flag bits left once the
port's extensions have consumed theirs; tun_id = VNI, flags KEY (+CSUM when
the outer UDP checksum is non-zero), GBP as a 4-byte option with
``TUNNEL_VXLAN_OPT``.  VXLAN-GPE (``exts=gpe``) is accepted as an option but
not implemented: such ports send and accept plain VXLAN.
"""

from __future__ import annotations

from .flow import ETH_HLEN, TUNNEL_CSUM, TUNNEL_KEY, TUNNEL_VXLAN_OPT
from .tunnel import (
    Decap,
    Outer,
    TunnelListener,
    parse_udp,
)
from .uapi import OVS_VPORT_TYPE_VXLAN
from .vport import VportOps
from .vport_tunnel import TunnelVport, TxKey
from .wire import WireError
from .wire.vxlan import FLAG_G, FLAG_I, GBP_METADATA_MASK, GBP_USED_BITS, HEADER_LEN, VxlanHeader

VXLAN_DST_PORT = 4789


class VxlanVport(TunnelVport):
    default_dst_port = VXLAN_DST_PORT

    def tx_dst_port(self, k: TxKey) -> int:
        return k.tp_dst or self.config.dst_port

    def tunnel_header(self, inner: bytes, protocol: int, k: TxKey) -> bytes:
        gbp = k.gbp if "gbp" in self.config.exts else 0
        return VxlanHeader.make(k.tun_id, gbp).emit(inner)

    @classmethod
    def decap(cls, listener: TunnelListener, outer: Outer) -> Decap | None:
        sport, dport, csum, payload = parse_udp(outer, listener.port)
        hdr = VxlanHeader.parse(payload)
        if not hdr.flags & FLAG_I:
            raise WireError("vxlan: I flag missing")
        if hdr.reserved:
            raise WireError("vxlan: reserved byte of word 2 is not zero")
        inner = payload[HEADER_LEN:]
        if len(inner) < ETH_HLEN:
            raise WireError("vxlan: inner frame shorter than an Ethernet header")
        flags = TUNNEL_KEY | (TUNNEL_CSUM if csum else 0)
        return Decap(hdr.vni, flags, inner, sport, dport, hdr_word=hdr.flags)

    def rx_check(self, d: Decap) -> str | None:
        word = d.hdr_word
        gbp = "gbp" in self.config.exts
        if word & ~(FLAG_I | (GBP_USED_BITS if gbp else 0)):
            return "vxlan: invalid flags"
        if gbp and word & FLAG_G:
            d.opts = (word & GBP_METADATA_MASK).to_bytes(4, "big")
            d.flags |= TUNNEL_VXLAN_OPT
        return None


class VxlanVportOps(VportOps):
    type = OVS_VPORT_TYPE_VXLAN
    name = "vxlan"
    vport_class = VxlanVport
