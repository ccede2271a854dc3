"""The ``lisp`` vport: LISP data plane as OVS implemented it, on UDP port 4341.
LISP carries L3 packets only: the Ethernet header is removed on send and a
synthetic one rebuilt on receive; instance id = tun_id."""

from __future__ import annotations

from .uapi import OVS_VPORT_TYPE_LISP
from .vport import VportOps
from .vport_tunnel import TunnelVport

LISP_DST_PORT = 4341


class LispVport(TunnelVport):
    default_dst_port = LISP_DST_PORT
    default_packet_type = "legacy_l3"


class LispVportOps(VportOps):
    type = OVS_VPORT_TYPE_LISP
    name = "lisp"
    vport_class = LispVport
