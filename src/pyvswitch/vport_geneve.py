"""The ``geneve`` vport: Geneve (RFC 8926) on UDP port 6081, with option TLVs."""

from __future__ import annotations

from .uapi import OVS_VPORT_TYPE_GENEVE
from .vport import VportOps
from .vport_tunnel import TunnelVport

GENEVE_DST_PORT = 6081


class GeneveVport(TunnelVport):
    default_dst_port = GENEVE_DST_PORT


class GeneveVportOps(VportOps):
    type = OVS_VPORT_TYPE_GENEVE
    name = "geneve"
    vport_class = GeneveVport
