"""The ``vxlan`` vport: VXLAN (RFC 7348) on UDP port 4789, with the
group-based-policy extension (``exts=gbp``)."""

from __future__ import annotations

from .uapi import OVS_VPORT_TYPE_VXLAN
from .vport import VportOps
from .vport_tunnel import TunnelVport

VXLAN_DST_PORT = 4789


class VxlanVport(TunnelVport):
    default_dst_port = VXLAN_DST_PORT


class VxlanVportOps(VportOps):
    type = OVS_VPORT_TYPE_VXLAN
    name = "vxlan"
    vport_class = VxlanVport
