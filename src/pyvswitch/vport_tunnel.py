"""Common code of the tunnel vports (gre, gre64, vxlan, geneve, lisp, stt).

Tunnel options are the ones OVS users configure (``ovs-vsctl ...
options:remote_ip=...`` or ``ovs-dpctl add-if dp0 vx0,type=vxlan,
remote_ip=...``), parsed with the rules of OVS's ``set_tunnel_config`` and
printed back in ``get_tunnel_config`` form.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .errors import VportError
from .vport import TX_DROPPED, Vport, VportOps, VportParms

if TYPE_CHECKING:
    from .skbuff import SkBuff

log = logging.getLogger(__name__)

DEFAULT_TTL = 64


@dataclass
class TunnelConfig:
    """A tunnel port's configuration (OVS's ``struct netdev_tunnel_config``)."""

    remote_ip: int | None = None  # None with remote_ip_flow = "flow"
    remote_ip_flow: bool = False
    local_ip: int | None = None
    local_ip_flow: bool = False
    ipv6: bool = False
    dst_port: int = 0
    in_key: int = 0
    in_key_present: bool = False
    in_key_flow: bool = False
    out_key: int = 0
    out_key_present: bool = False
    out_key_flow: bool = False
    tos: int = 0
    tos_inherit: bool = False
    ttl: int = DEFAULT_TTL
    ttl_inherit: bool = False
    dont_fragment: bool = True
    csum: bool = False
    set_seq: bool = False
    exts: frozenset[str] = frozenset()
    packet_type: str = "legacy_l2"
    egress_pkt_mark: int | None = None


_CSUM_TYPES = ("gre", "geneve", "stt", "vxlan")


def _parse_ip(name: str, key: str, value: str) -> tuple[int, bool]:
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise VportError(f"{name}: bad {key} '{value}'") from None
    if addr.is_multicast:
        raise VportError(f"{name}: multicast {key} not allowed")
    return int(addr), addr.version == 6


def _parse_key(name: str, key: str, value: str) -> tuple[int, bool]:
    if value == "flow":
        return 0, True
    try:
        k = int(value, 0)
    except ValueError:
        raise VportError(f"{name}: bad {key} '{value}' (a number or 'flow')") from None
    if not 0 <= k <= 0xFFFFFFFFFFFFFFFF:
        raise VportError(f"{name}: {key} {value} out of range")
    return k, False


def _parse_bool(name: str, key: str, value: str) -> bool:
    if value == "true":
        return True
    if value == "false":
        return False
    raise VportError(f"{name}: {key} must be 'true' or 'false', not '{value}'")


def parse_tunnel_config(
    name: str,
    type_name: str,
    options: Mapping[str, str],
    *,
    default_dst_port: int = 0,
    default_packet_type: str = "legacy_l2",
    keyed: bool = True,
) -> TunnelConfig:
    """``set_tunnel_config``: validate ``options`` for a tunnel port."""
    cfg = TunnelConfig(dst_port=default_dst_port, packet_type=default_packet_type)
    ipv6_remote: bool | None = None
    ipv6_local: bool | None = None
    for key, value in options.items():
        if key == "remote_ip":
            if value == "flow":
                cfg.remote_ip_flow = True
            else:
                cfg.remote_ip, ipv6_remote = _parse_ip(name, key, value)
        elif key == "local_ip":
            if value == "flow":
                cfg.local_ip_flow = True
            else:
                cfg.local_ip, ipv6_local = _parse_ip(name, key, value)
        elif key == "dst_port" and default_dst_port:
            try:
                port = int(value, 0)
            except ValueError:
                raise VportError(f"{name}: bad dst_port '{value}'") from None
            if not 0 < port < 65536:
                raise VportError(f"{name}: dst_port {value} out of range")
            cfg.dst_port = port
        elif key in ("key", "in_key", "out_key") and keyed:
            k, is_flow = _parse_key(name, key, value)
            if key in ("key", "in_key"):
                cfg.in_key, cfg.in_key_flow, cfg.in_key_present = k, is_flow, not is_flow
            if key in ("key", "out_key"):
                cfg.out_key, cfg.out_key_flow, cfg.out_key_present = k, is_flow, not is_flow
        elif key == "tos":
            if value == "inherit":
                cfg.tos_inherit = True
            else:
                try:
                    tos = int(value, 0)
                except ValueError:
                    raise VportError(f"{name}: invalid TOS {value}") from None
                if tos != (tos & 0xFC):
                    raise VportError(f"{name}: invalid TOS {value} (ECN bits must be zero)")
                cfg.tos = tos
        elif key == "ttl":
            if value == "inherit":
                cfg.ttl_inherit = True
            else:
                try:
                    ttl = int(value, 0)
                except ValueError:
                    raise VportError(f"{name}: invalid TTL {value}") from None
                if not 1 <= ttl <= 255:
                    raise VportError(f"{name}: invalid TTL {value} (1..255)")
                cfg.ttl = ttl
        elif key == "df_default":
            cfg.dont_fragment = _parse_bool(name, key, value)
        elif key == "csum" and any(t in type_name for t in _CSUM_TYPES):
            cfg.csum = _parse_bool(name, key, value)
        elif key == "seq" and "gre" in type_name:
            cfg.set_seq = _parse_bool(name, key, value)
        elif key == "exts" and type_name == "vxlan":
            exts = {e.strip() for e in value.split(",") if e.strip()}
            for e in exts:
                if e not in ("gbp", "gpe"):
                    log.warning("%s: unknown extension '%s'", name, e)
            cfg.exts = frozenset(e for e in exts if e in ("gbp", "gpe"))
        elif key == "packet_type":
            if value not in ("legacy_l2", "legacy_l3", "ptap"):
                raise VportError(f"{name}: unknown packet_type '{value}'")
            cfg.packet_type = value
        elif key == "egress_pkt_mark":
            try:
                cfg.egress_pkt_mark = int(value, 0) & 0xFFFFFFFF
            except ValueError:
                raise VportError(f"{name}: bad egress_pkt_mark '{value}'") from None
        elif key in ("remote_cert", "remote_name", "psk"):
            pass  # for the IPsec daemon, ignored as by ovs-vswitchd
        else:
            log.warning("%s: unknown %s argument '%s'", name, type_name, key)
    if not cfg.remote_ip_flow and cfg.remote_ip is None:
        raise VportError(f"{name}: {type_name} type requires valid 'remote_ip' argument")
    if cfg.local_ip_flow and not cfg.remote_ip_flow:
        raise VportError(f"{name}: {type_name} type requires 'remote_ip=flow' with 'local_ip=flow'")
    if ipv6_remote is not None and ipv6_local is not None and ipv6_remote != ipv6_local:
        raise VportError(f"{name}: {type_name} type requires matching families for IP addresses")
    cfg.ipv6 = bool(ipv6_remote or ipv6_local)
    return cfg


def _fmt_ip(ip: int, ipv6: bool) -> str:
    return str(ipaddress.IPv6Address(ip) if ipv6 else ipaddress.IPv4Address(ip))


def tunnel_config_options(
    cfg: TunnelConfig, *, default_dst_port: int, default_packet_type: str
) -> dict[str, str]:
    """``get_tunnel_config``: the options as ``ovs-dpctl show`` prints them."""
    out: dict[str, str] = {}
    if cfg.remote_ip is not None:
        out["remote_ip"] = _fmt_ip(cfg.remote_ip, cfg.ipv6)
    elif cfg.remote_ip_flow:
        out["remote_ip"] = "flow"
    if cfg.local_ip is not None:
        out["local_ip"] = _fmt_ip(cfg.local_ip, cfg.ipv6)
    elif cfg.local_ip_flow:
        out["local_ip"] = "flow"
    if cfg.in_key_flow and cfg.out_key_flow:
        out["key"] = "flow"
    elif cfg.in_key_present and cfg.out_key_present and cfg.in_key == cfg.out_key:
        out["key"] = str(cfg.in_key)
    else:
        if cfg.in_key_flow:
            out["in_key"] = "flow"
        elif cfg.in_key_present:
            out["in_key"] = str(cfg.in_key)
        if cfg.out_key_flow:
            out["out_key"] = "flow"
        elif cfg.out_key_present:
            out["out_key"] = str(cfg.out_key)
    if cfg.ttl_inherit:
        out["ttl"] = "inherit"
    elif cfg.ttl != DEFAULT_TTL:
        out["ttl"] = str(cfg.ttl)
    if cfg.tos_inherit:
        out["tos"] = "inherit"
    elif cfg.tos:
        out["tos"] = f"{cfg.tos:#x}"
    if cfg.dst_port and cfg.dst_port != default_dst_port:
        out["dst_port"] = str(cfg.dst_port)
    if cfg.csum:
        out["csum"] = "true"
    if cfg.set_seq:
        out["seq"] = "true"
    if cfg.packet_type != default_packet_type:
        out["packet_type"] = cfg.packet_type
    if not cfg.dont_fragment:
        out["df_default"] = "false"
    if cfg.egress_pkt_mark is not None:
        out["egress_pkt_mark"] = str(cfg.egress_pkt_mark)
    return dict(sorted(out.items()))


class TunnelVport(Vport):
    """Base of the tunnel vports.  Subclasses set the class attributes."""

    default_dst_port: ClassVar[int] = 0
    default_packet_type: ClassVar[str] = "legacy_l2"
    keyed: ClassVar[bool] = True

    def __init__(self, ops: VportOps, parms: VportParms) -> None:
        self.config = TunnelConfig()
        super().__init__(ops, parms)

    def set_options(self, options: Mapping[str, str]) -> None:
        self.config = parse_tunnel_config(
            self.name,
            self.type_name,
            options,
            default_dst_port=self.default_dst_port,
            default_packet_type=self.default_packet_type,
            keyed=self.keyed,
        )
        self.options = dict(options)

    def get_options(self) -> dict[str, str]:
        return tunnel_config_options(
            self.config,
            default_dst_port=self.default_dst_port,
            default_packet_type=self.default_packet_type,
        )

    def send(self, frames: Sequence[bytes | SkBuff]) -> None:
        # Encapsulation and the underlay are not implemented yet (issue 7):
        # every frame sent to a tunnel port is a counted drop.
        self.stats.this_cpu()[TX_DROPPED] += len(frames)


def check_dst_port_free(vport: TunnelVport) -> None:
    """Two tunnel ports of the same type cannot share a UDP/TCP port unless
    their receive configuration differs (checked when the underlay binds)."""
    for other in vport.dp.ports.values():
        if (
            other is not vport
            and isinstance(other, TunnelVport)
            and other.type == vport.type
            and other.config.dst_port == vport.config.dst_port
            and other.config.remote_ip == vport.config.remote_ip
            and other.config.remote_ip_flow == vport.config.remote_ip_flow
            and other.config.in_key == vport.config.in_key
            and other.config.in_key_flow == vport.config.in_key_flow
            and other.config.local_ip == vport.config.local_ip
        ):
            raise VportError(
                f"{vport.name}: same tunnel configuration as port {other.name}",
                errno=errno.EEXIST,
            )
