"""Common code of the tunnel vports (gre, gre64, vxlan, geneve, lisp, stt).

Tunnel options are the ones OVS users configure (``ovs-vsctl ...
options:remote_ip=...`` or ``ovs-dpctl add-if dp0 vx0,type=vxlan,
remote_ip=...``), parsed with the rules of OVS's ``set_tunnel_config`` and
printed back in ``get_tunnel_config`` form.

:class:`TunnelVport` is the send and receive path every tunnel type shares:

* send: resolve the tunnel key (the frame's ``tun_info`` from a preceding
  ``set(tunnel(...))``, else the port's fixed configuration as ofproto's
  ``tnl_port_send`` would fill it), build the outer packet(s) -- the type's
  header from :meth:`TunnelVport.tunnel_header` / :meth:`TunnelVport.tx_payloads`
  inside UDP (source port from the inner flow hash) inside IPv4/IPv6 -- and
  hand them to the underlay socket;
* receive: the shared :class:`~pyvswitch.tunnel.TunnelListener` validates and
  decapsulates (:meth:`TunnelVport.decap`), picks the vport by configuration
  and calls :meth:`TunnelVport.tunnel_receive`, which hands the inner frame
  and the tunnel metadata (as key bits) to ``Datapath.vport_receive_skb``.

See ``docs/tunnels.md``.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from . import flow
from .device import AF_INET, AF_INET6, IPPROTO_GRE, IPPROTO_UDP, TunnelSocket
from .errors import VportError
from .flow import ETH_HLEN, TUNNEL_CSUM, TUNNEL_DONT_FRAGMENT, TUNNEL_KEY, TUNNEL_SEQ
from .gso import skb_resolve
from .skbuff import CHECKSUM_PARTIAL, SkBuff
from .tunnel import (
    DROP_TUNNEL_POP,
    DROP_TUNNEL_PUSH,
    Decap,
    Outer,
    TunnelListener,
    ecn_decapsulate,
    ecn_encapsulate,
    inner_hash,
    inner_ip_fields,
    listener_bind,
    listener_unbind,
    outer_ip,
    udp_datagram,
    udp_flow_src_port,
)
from .uapi import Tunnel
from .vport import (
    RX_DROPPED,
    RX_ERRORS,
    TX_BYTES,
    TX_DROPPED,
    TX_ERRORS,
    TX_PACKETS,
    Vport,
    VportOps,
    VportParms,
)
from .wire import WireError

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


class TxDrop(Exception):
    """Internal: a frame cannot be encapsulated.  ``dropped`` selects the
    counter: tx_dropped (nothing to send it with) or tx_errors (failure)."""

    def __init__(self, reason: str, *, dropped: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.dropped = dropped


@dataclass(slots=True)
class TxKey:
    """A resolved transmit tunnel key: the ``set(tunnel(...))`` metadata (or
    the key ofproto would build from the port's configuration) plus what the
    underlay's routing adds (source address, path MTU)."""

    family: int
    src: int
    dst: int
    tos: int
    ttl: int
    df: bool
    tun_id: int
    flags: int
    tp_dst: int
    mtu: int
    geneve_opts: bytes = b""
    gbp: int = 0


class TunnelVport(Vport):
    """Base of the tunnel vports.  Subclasses set the class attributes and
    implement :meth:`tunnel_header` (UDP tunnels) or :meth:`tx_payloads`, and
    :meth:`decap`."""

    default_dst_port: ClassVar[int] = 0
    default_packet_type: ClassVar[str] = "legacy_l2"
    keyed: ClassVar[bool] = True
    #: the underlay IP protocol (UDP, GRE or TCP for STT)
    ip_proto: ClassVar[int] = IPPROTO_UDP
    #: ``udp_flow_src_port`` range (min >= max: the ephemeral range)
    sport_min: ClassVar[int] = 0
    sport_max: ClassVar[int] = 0

    def __init__(self, ops: VportOps, parms: VportParms) -> None:
        self.config = TunnelConfig()
        self.listener: TunnelListener | None = None
        self._ip_id = 0
        self._gre_seq = 0
        super().__init__(ops, parms)

    # -- options and binding ---------------------------------------------------------

    @property
    def listen_group(self) -> str:
        """Vport types that may share one listener (GRE and GRE64 do)."""
        return self.type_name

    def set_options(self, options: Mapping[str, str]) -> None:
        cfg = parse_tunnel_config(
            self.name,
            self.type_name,
            options,
            default_dst_port=self.default_dst_port,
            default_packet_type=self.default_packet_type,
            keyed=self.keyed,
        )
        old = self.config
        had_listener = self.listener is not None
        self._unbind()
        self.config = cfg
        try:
            self._bind()
        except VportError:
            self.config = old
            if had_listener:
                self._bind()
            raise
        self.options = dict(options)
        self.config_changed()

    def config_changed(self) -> None:
        """Hook: the configuration was replaced."""

    def _bind(self) -> None:
        port = 0 if self.ip_proto == IPPROTO_GRE else self.config.dst_port
        self.listener = listener_bind(
            self, self.ip_proto, port, self.listen_group, type(self).decap
        )

    def _unbind(self) -> None:
        if self.listener is not None:
            listener_unbind(self, self.listener)
            self.listener = None

    def get_options(self) -> dict[str, str]:
        return tunnel_config_options(
            self.config,
            default_dst_port=self.default_dst_port,
            default_packet_type=self.default_packet_type,
        )

    def destroy(self) -> None:
        self._unbind()

    # -- counters ----------------------------------------------------------------------

    def _count_dp_drop(self, reason: str) -> None:
        drops = self.dp.drops
        drops[reason] = drops.get(reason, 0) + 1

    def count_rx_error(self, reason: str) -> None:
        """A received packet dropped as malformed (rx_errors)."""
        self.stats.this_cpu()[RX_ERRORS] += 1
        self._count_dp_drop(reason)

    def count_rx_drop(self, reason: str) -> None:
        """A received packet dropped for lack of a taker (rx_dropped)."""
        self.stats.this_cpu()[RX_DROPPED] += 1
        self._count_dp_drop(reason)

    # -- send ----------------------------------------------------------------------------

    def send(self, frames: Sequence[bytes | SkBuff]) -> None:
        """``ops->send``: encapsulate every frame and hand the outer packets
        to the underlay.  The tunnel key is the frame's ``tun_info`` (from a
        ``set(tunnel(...))``), else the one built from the port's fixed
        configuration; a frame with neither is a counted drop."""
        row = self.stats.this_cpu()
        for fr in frames:
            if type(fr) is bytes:
                data: bytes = fr
                skb: SkBuff | None = None
                tun: Tunnel | None = None
                protocol = 0
            else:
                assert isinstance(fr, SkBuff)
                skb = fr
                data, tun, protocol = fr.data, fr.tun_info, fr.protocol
            try:
                sock, packets = self._encap(data, protocol, skb, tun)
            except TxDrop as e:
                row[TX_DROPPED if e.dropped else TX_ERRORS] += 1
                self._count_dp_drop(DROP_TUNNEL_PUSH)
                log.debug("%s: dropped frame on send: %s", self.name, e.reason)
                continue
            except (WireError, ValueError, IndexError, struct.error) as e:
                row[TX_ERRORS] += 1
                self._count_dp_drop(DROP_TUNNEL_PUSH)
                log.debug("%s: cannot encapsulate: %s", self.name, e)
                continue
            if sock.send(packets) == len(packets):
                row[TX_PACKETS] += 1
                row[TX_BYTES] += len(data)
            else:
                row[TX_ERRORS] += 1

    def _encap(
        self, data: bytes, protocol: int, skb: SkBuff | None, tun: Tunnel | None
    ) -> tuple[TunnelSocket, list[bytes]]:
        if self.listener is None:
            raise TxDrop("no tunnel underlay in this namespace")
        k = self.tx_key(data, protocol, tun)
        sock = self.listener.sockets[k.family]
        payloads = self.tx_payloads(data, protocol, skb, k)
        out = []
        for p in payloads:
            ident = self._ip_id
            self._ip_id = (ident + 1) & 0xFFFF
            out.append(
                outer_ip(
                    k.family,
                    k.src,
                    k.dst,
                    self.ip_proto,
                    p,
                    tos=k.tos,
                    ttl=k.ttl,
                    df=k.df,
                    ident=ident,
                )
            )
        return sock, out

    def tx_key(self, data: bytes, protocol: int, tun: Tunnel | None) -> TxKey:
        """Resolve the transmit key: ``tun`` if given (kernel vports use only
        it), else the port's configuration the way ofproto's
        ``tnl_port_send`` fills the flow's tunnel metadata; then outer ECN
        from the inner packet, source address and MTU from the route."""
        cfg = self.config
        inner = inner_ip_fields(data, protocol)
        if tun is not None:
            if tun.ipv6_dst:
                family, dst, src = AF_INET6, tun.ipv6_dst, tun.ipv6_src
            elif tun.ipv4_dst:
                family, dst, src = AF_INET, tun.ipv4_dst, tun.ipv4_src
            else:
                raise TxDrop("tunnel key without a destination", dropped=True)
            tos, ttl, flags, tun_id = tun.tos, tun.ttl or DEFAULT_TTL, tun.flags, tun.tun_id
            tp_dst, opts, gbp = tun.tp_dst, tun.geneve_opts, tun.gbp or 0
        else:
            if cfg.remote_ip is None:
                raise TxDrop("remote_ip=flow and no tunnel key (set(tunnel(...)))", dropped=True)
            family = AF_INET6 if cfg.ipv6 else AF_INET
            dst, src = cfg.remote_ip, 0
            ttl = inner[1] if cfg.ttl_inherit and inner is not None else cfg.ttl
            tos = inner[0] & 0xFC if cfg.tos_inherit and inner is not None else cfg.tos
            flags = (
                (TUNNEL_DONT_FRAGMENT if cfg.dont_fragment else 0)
                | (TUNNEL_CSUM if cfg.csum else 0)
                | (TUNNEL_KEY if cfg.out_key_present else 0)
                | (TUNNEL_SEQ if cfg.set_seq else 0)
            )
            tun_id = 0 if cfg.out_key_flow else cfg.out_key
            tp_dst, opts, gbp = cfg.dst_port, b"", 0
        tos = ecn_encapsulate(tos, inner[0] if inner is not None else None)
        assert self.listener is not None
        sock = self.listener.sockets.get(family)
        if sock is None:
            raise TxDrop("no underlay socket for the address family")
        route = sock.route(dst)
        if route is None:
            raise TxDrop("no route to the remote tunnel endpoint")
        if not src:
            same_family = cfg.ipv6 == (family == AF_INET6)
            src = cfg.local_ip if cfg.local_ip is not None and same_family else route.src
        return TxKey(
            family,
            src,
            dst,
            tos,
            ttl,
            bool(flags & TUNNEL_DONT_FRAGMENT),
            tun_id,
            flags,
            tp_dst,
            route.mtu,
            opts,
            gbp,
        )

    @staticmethod
    def finished(data: bytes, protocol: int, skb: SkBuff | None) -> list[bytes]:
        """The inner packets with offloads resolved (software GSO, checksum
        completion): a tunnel header carries no offload state (STT aside)."""
        if skb is None or not (skb.gso_size or skb.ip_summed == CHECKSUM_PARTIAL):
            return [data]
        if not protocol:
            return skb_resolve(skb)
        # an L3 packet: resolve it behind a throw-away Ethernet header
        c = skb.clone()
        c.data = bytes(12) + protocol.to_bytes(2, "big") + data
        c.csum_start += ETH_HLEN
        return [p[ETH_HLEN:] for p in skb_resolve(c)]

    def src_port(self, data: bytes, protocol: int, skb: SkBuff | None) -> int:
        """The outer UDP/TCP source port from the inner flow hash."""
        h = skb.hash if skb is not None and skb.hash else inner_hash(data, protocol)
        return udp_flow_src_port(h, self.sport_min, self.sport_max)

    def tx_dst_port(self, k: TxKey) -> int:
        return self.config.dst_port

    def udp_csum(self, k: TxKey) -> bool:
        """Whether the outer UDP checksum is computed (``TUNNEL_CSUM``)."""
        return bool(k.flags & TUNNEL_CSUM)

    def tunnel_header(self, inner: bytes, protocol: int, k: TxKey) -> bytes:
        """UDP tunnels: the tunnel header followed by the inner packet."""
        raise NotImplementedError

    def tx_payloads(self, data: bytes, protocol: int, skb: SkBuff | None, k: TxKey) -> list[bytes]:
        """The IP payloads (one per outer packet) carrying one frame.  The
        default builds UDP datagrams around :meth:`tunnel_header`."""
        sport = self.src_port(data, protocol, skb)
        dport = self.tx_dst_port(k)
        csum = self.udp_csum(k)
        return [
            udp_datagram(
                k.family,
                k.src,
                k.dst,
                sport,
                dport,
                self.tunnel_header(inner, protocol, k),
                csum=csum,
            )
            for inner in self.finished(data, protocol, skb)
        ]

    def fill_metadata_dst(self, skb: SkBuff, key: int = 0) -> Tunnel | None:
        """``ovs_vport_get_egress_tun_info``: the tunnel key an output of
        ``skb`` would use, with the source address, source port and
        destination port filled in (for ``userspace(egress_tun_port)``)."""
        tun = skb.tun_info
        if tun is None or self.listener is None:
            return None
        try:
            k = self.tx_key(skb.data, skb.protocol, tun)
        except TxDrop:
            return None
        if self.ip_proto == IPPROTO_GRE:
            sport = dport = 0
        else:
            sport, dport = self.src_port(skb.data, skb.protocol, skb), self.tx_dst_port(k)
        if k.family == AF_INET6:
            return replace(tun, ipv6_src=k.src, tp_src=sport, tp_dst=dport)
        return replace(tun, ipv4_src=k.src, tp_src=sport, tp_dst=dport)

    # -- receive -------------------------------------------------------------------------

    @classmethod
    def decap(cls, listener: TunnelListener, outer: Outer) -> Decap | None:
        """Validate and strip the tunnel header of a received outer packet
        (before the vport is known).  Raises WireError to drop it; None if
        the packet was consumed without a frame (STT reassembly)."""
        raise NotImplementedError

    def rx_check(self, d: Decap) -> str | None:
        """Checks that depend on the port's configuration; a reason to drop."""
        return None

    def tunnel_receive(self, d: Decap, outer: Outer) -> None:
        """Deliver a decapsulated packet to the datapath with its tunnel
        metadata (``ovs_vport_receive`` with ``tun_info``)."""
        reason = self.rx_check(d)
        inner: bytes | None = d.inner
        if reason is None:
            inner = ecn_decapsulate(outer.tos, d.inner, d.protocol)
            if inner is None:
                reason = "ecn: CE on a not-ECT inner packet"
        if reason is not None or inner is None:
            if self.listener is not None:
                self.listener.count_error(reason or "malformed", self)
            else:
                self.count_rx_error(DROP_TUNNEL_POP)
            return
        v6 = outer.family == AF_INET6
        tun = flow.tunnel_key_bits(
            tun_id=d.tun_id,
            ipv4_src=0 if v6 else outer.src,
            ipv4_dst=0 if v6 else outer.dst,
            ipv6_src=outer.src if v6 else 0,
            ipv6_dst=outer.dst if v6 else 0,
            flags=d.flags,
            tos=outer.tos,
            ttl=outer.ttl,
            tp_src=d.tp_src,
            tp_dst=d.tp_dst,
            opts=d.opts,
            ipv6=v6,
        )
        skb = SkBuff(
            inner,
            protocol=d.protocol,
            ip_summed=d.ip_summed,
            csum_start=d.csum_start,
            csum_offset=d.csum_offset,
            gso_size=d.gso_size,
            gso_type=d.gso_type,
        )
        self.dp.vport_receive_skb(self, skb, tun=tun)
