"""The ``stt`` vport: Stateless Transport Tunneling (draft-davie-stt) on TCP
port 7471: a TCP-like outer header, the STT frame header with a 64-bit
context id = tun_id, segmentation of large frames and reassembly."""

from __future__ import annotations

from .uapi import OVS_VPORT_TYPE_STT
from .vport import VportOps
from .vport_tunnel import TunnelVport

STT_DST_PORT = 7471


class SttVport(TunnelVport):
    default_dst_port = STT_DST_PORT


class SttVportOps(VportOps):
    type = OVS_VPORT_TYPE_STT
    name = "stt"
    vport_class = SttVport
