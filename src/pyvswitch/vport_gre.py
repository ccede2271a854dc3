"""The ``gre`` and ``gre64`` vports: Ethernet over GRE (RFC 2784/2890), IP
protocol 47.  GRE64 (OVS <= 2.4) carries a 64-bit key: the low 32 bits in the
key field and the high 32 bits in the sequence-number field."""

from __future__ import annotations

from .uapi import OVS_VPORT_TYPE_GRE, OVS_VPORT_TYPE_GRE64
from .vport import VportOps
from .vport_tunnel import TunnelVport


class GreVport(TunnelVport):
    pass


class Gre64Vport(TunnelVport):
    pass


class GreVportOps(VportOps):
    type = OVS_VPORT_TYPE_GRE
    name = "gre"
    vport_class = GreVport


class Gre64VportOps(VportOps):
    type = OVS_VPORT_TYPE_GRE64
    name = "gre64"
    vport_class = Gre64Vport
