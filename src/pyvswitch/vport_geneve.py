"""The ``geneve`` vport: Geneve (RFC 8926) on UDP port 6081, with option TLVs.

Transmit: VNI = low 24 bits of tun_id, the options verbatim from the tunnel
key (``geneve_opts``), O bit from ``TUNNEL_OAM``, C bit iff an option is
critical (``validate_geneve_opts`` sets ``TUNNEL_CRIT_OPT``), protocol 0x6558,
outer UDP checksum iff ``TUNNEL_CSUM``, source port from the inner flow hash
over 1..65535.

Receive (``geneve_rx``): version 0 and protocol 0x6558 or drop; tun_id = VNI,
flags KEY | OAM (O) | CRIT_OPT (C) | GENEVE_OPT (when options are present) |
CSUM (non-zero UDP checksum); options copied verbatim.
"""

from __future__ import annotations

from .flow import ETH_HLEN, TUNNEL_CRIT_OPT, TUNNEL_CSUM, TUNNEL_GENEVE_OPT, TUNNEL_KEY, TUNNEL_OAM
from .tunnel import (
    Decap,
    Outer,
    TunnelListener,
    parse_udp,
)
from .uapi import OVS_VPORT_TYPE_GENEVE
from .vport import VportOps
from .vport_tunnel import TunnelVport, TxKey
from .wire import WireError
from .wire.geneve import PROTO_TEB, GeneveHeader

GENEVE_DST_PORT = 6081


class GeneveVport(TunnelVport):
    default_dst_port = GENEVE_DST_PORT
    sport_min = 1
    sport_max = 0xFFFF

    def tunnel_header(self, inner: bytes, protocol: int, k: TxKey) -> bytes:
        return GeneveHeader(
            k.tun_id & 0xFFFFFF,
            PROTO_TEB,
            k.geneve_opts,
            oam=bool(k.flags & TUNNEL_OAM),
            critical=True if k.flags & TUNNEL_CRIT_OPT else None,
        ).emit(inner)

    @classmethod
    def decap(cls, listener: TunnelListener, outer: Outer) -> Decap | None:
        sport, dport, csum, payload = parse_udp(outer, listener.port)
        hdr = GeneveHeader.parse(payload)  # version != 0, options beyond the packet
        if hdr.protocol != PROTO_TEB:
            raise WireError(f"geneve: protocol {hdr.protocol:#06x} is not 0x6558")
        inner = payload[hdr.header_len :]
        if len(inner) < ETH_HLEN:
            raise WireError("geneve: inner frame shorter than an Ethernet header")
        flags = (
            TUNNEL_KEY
            | (TUNNEL_OAM if hdr.oam else 0)
            | (TUNNEL_CRIT_OPT if hdr.critical else 0)
            | (TUNNEL_GENEVE_OPT if hdr.options else 0)
            | (TUNNEL_CSUM if csum else 0)
        )
        return Decap(hdr.vni, flags, inner, sport, dport, opts=hdr.options)


class GeneveVportOps(VportOps):
    type = OVS_VPORT_TYPE_GENEVE
    name = "geneve"
    vport_class = GeneveVport
