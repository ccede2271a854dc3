"""What the tunnel vports share: outer headers, source-port hashing, ECN, and
the listeners that receive from the underlay and demultiplex to vports.

Sans-I/O like the rest of the core: a tunnel vport builds the whole outer IP
packet (IPv4 or IPv6 header, UDP / GRE / STT "TCP" header, tunnel header,
inner frame) as ``bytes`` and hands it to an underlay socket
(:class:`~pyvswitch.device.TunnelSocket`); the underlay hands whole outer IP
packets back to a :class:`TunnelListener`, which validates them the way the
kernel (or OVS's userspace ``netdev_*_pop_header``) does, finds the vport
whose configuration matches (OVS's ``tnl_find``) and lets it deliver the
inner frame to its datapath with the tunnel metadata as key bits.

One listener exists per (namespace, IP protocol, port): every tunnel vport of
one type on one ``dst_port`` shares it (GRE and GRE64 share IP protocol 47),
as all OVS tunnel ports of one type and port share one kernel device and
socket (``vxlan_sys_4789``).  The first vport bound owns the socket; errors
that happen before a packet can be attributed to a vport are counted on the
owner (as the kernel counts them on that device) and, by reason, in
:attr:`TunnelListener.errors`.
"""

from __future__ import annotations

import errno
import logging
import re
import struct
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from . import flow
from .device import (
    AF_INET,
    AF_INET6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TunnelSocket,
    TunnelUnderlay,
)
from .errors import DeviceError, VportError
from .jhash import jhash
from .skbuff import CHECKSUM_NONE
from .wire import WireError
from .wire.checksum import checksum, csum_fold, csum_partial, pseudo_ipv4, pseudo_ipv6
from .wire.stt import SttReassembler

if TYPE_CHECKING:
    from .vport_tunnel import TunnelVport

log = logging.getLogger(__name__)

from .flow import ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6  # noqa: E402

#: ``ip_local_port_range`` default: the range ``udp_flow_src_port`` falls back to.
EPHEMERAL_PORT_MIN: Final = 32768
EPHEMERAL_PORT_MAX: Final = 60999

INET_ECN_MASK: Final = 0x03
INET_ECN_ECT_0: Final = 0x02
INET_ECN_CE: Final = 0x03

# Drop reasons counted in ``Datapath.drops`` (OVS's coverage counter names).
DROP_TUNNEL_PUSH: Final = "datapath_drop_tunnel_push_error"
DROP_TUNNEL_POP: Final = "datapath_drop_tunnel_pop_error"
DROP_INVALID_TNL_PORT: Final = "datapath_drop_invalid_tnl_port"

_M32: Final = 0xFFFFFFFF
#: numbers in error messages, replaced so that drop reasons form a small set
_NUMBERS: Final = re.compile(r"\b(?:0x[0-9a-fA-F]+|\d+)\b")
_IP4: Final = struct.Struct("!BBHHHBBHII")
_IP6: Final = struct.Struct("!IHBB16s16s")
_UDP: Final = struct.Struct("!HHHH")
_TCP: Final = struct.Struct("!HHIIHHHH")


# ---------------------------------------------------------------------------
# Source ports (notes section 7.6)


def udp_flow_src_port(skb_hash: int, port_min: int = 0, port_max: int = 0) -> int:
    """Linux ``udp_flow_src_port``: the outer source port for an inner packet
    whose flow hash is ``skb_hash``.  ``port_min >= port_max`` means the
    ephemeral range (what OVS's kernel VXLAN devices use); Geneve and STT
    pass 1..65535."""
    if port_min >= port_max:
        port_min, port_max = EPHEMERAL_PORT_MIN, EPHEMERAL_PORT_MAX
    h = skb_hash & _M32
    h ^= (h << 16) & _M32
    return ((h * (port_max - port_min)) >> 32) + port_min


def lisp_src_port(
    skb_hash: int, low: int = EPHEMERAL_PORT_MIN, high: int = EPHEMERAL_PORT_MAX
) -> int:
    """The kernel LISP vport's ``get_src_port``: no folding, range inclusive."""
    return (((skb_hash & _M32) * (high - low + 1)) >> 32) + low


def inner_hash(data: bytes, protocol: int = 0) -> int:
    """``skb_get_hash`` of an inner packet: the flow hash the datapath uses
    everywhere (:func:`pyvswitch.flow.key_hash` of its key); for a frame
    too short to key, ``jhash`` of its MAC addresses seeded with the protocol
    (``udp_flow_src_port``'s ``use_eth`` fallback)."""
    try:
        if protocol:
            key = flow.key_extract_l3(data, protocol, 0)
        else:
            key = flow.key_extract(data, 0)
    except (IndexError, ValueError, struct.error):
        key = None
    if key is None:
        return jhash(data[:12], protocol)
    return flow.key_hash(key)


# ---------------------------------------------------------------------------
# Inner packet helpers


def l3_offset(frame: bytes) -> tuple[int, int]:
    """(offset of the L3 header, ethertype) of an Ethernet frame, after any
    802.1Q/802.1ad tags; ethertype 0 if the frame is too short."""
    off = 12
    n = len(frame)
    while off + 2 <= n:
        et = frame[off] << 8 | frame[off + 1]
        if et == ETH_P_8021Q or et == ETH_P_8021AD:
            off += 4
            continue
        return off + 2, et
    return n, 0


def inner_ip_fields(data: bytes, protocol: int = 0) -> tuple[int, int] | None:
    """(TOS / traffic class, TTL / hop limit) of an inner IPv4/IPv6 packet
    (``ip_tunnel_get_dsfield`` and the TTL ``ttl=inherit`` copies), or None."""
    if protocol:
        nh, et = 0, protocol
    else:
        nh, et = l3_offset(data)
    if et == ETH_P_IP and len(data) >= nh + 20 and data[nh] >> 4 == 4:
        return data[nh + 1], data[nh + 8]
    if et == ETH_P_IPV6 and len(data) >= nh + 40 and data[nh] >> 4 == 6:
        return (data[nh] & 0x0F) << 4 | data[nh + 1] >> 4, data[nh + 7]
    return None


def ecn_encapsulate(tos: int, inner_tos: int | None) -> int:
    """``INET_ECN_encapsulate``: the outer ECN bits copy the inner ones
    (CE becomes ECT(0)); a non-IP inner packet gives Not-ECT."""
    tos &= ~INET_ECN_MASK & 0xFF
    if inner_tos is None:
        return tos
    inner = inner_tos & INET_ECN_MASK
    return tos | (INET_ECN_ECT_0 if inner == INET_ECN_CE else inner)


def ecn_decapsulate(outer_tos: int, inner: bytes, protocol: int = 0) -> bytes | None:
    """``INET_ECN_decapsulate`` + ``IP_ECN_set_ce``: a CE mark on the outer
    header is copied into an ECN-capable inner IPv4/IPv6 header; an inner
    Not-ECT packet under an outer CE is dropped (None)."""
    if outer_tos & INET_ECN_MASK != INET_ECN_CE:
        return inner
    if protocol:
        nh, et = 0, protocol
    else:
        if len(inner) < ETH_HLEN:
            return inner
        nh, et = ETH_HLEN, inner[12] << 8 | inner[13]
    if et == ETH_P_IP and len(inner) >= nh + 20:
        tos = inner[nh + 1]
        if tos & INET_ECN_MASK == 0:
            return None
        if tos & INET_ECN_MASK == INET_ECN_CE:
            return inner
        hdr = bytearray(inner[nh : nh + (inner[nh] & 0x0F) * 4])
        hdr[1] = tos | INET_ECN_CE
        hdr[10:12] = b"\x00\x00"
        hdr[10:12] = checksum(hdr).to_bytes(2, "big")
        return inner[:nh] + bytes(hdr) + inner[nh + len(hdr) :]
    if et == ETH_P_IPV6 and len(inner) >= nh + 40:
        tc = (inner[nh] & 0x0F) << 4 | inner[nh + 1] >> 4
        if tc & INET_ECN_MASK == 0:
            return None
        b1 = inner[nh + 1] | INET_ECN_CE << 4
        return inner[: nh + 1] + bytes((b1,)) + inner[nh + 2 :]
    return inner


# ---------------------------------------------------------------------------
# Outer headers (emit)


def ipv4_header(
    src: int, dst: int, proto: int, payload_len: int, *, tos: int, ttl: int, df: bool, ident: int
) -> bytes:
    """A 20-byte outer IPv4 header (no options, as tunnels send) with its checksum."""
    hdr = _IP4.pack(
        0x45, tos, 20 + payload_len, ident & 0xFFFF, 0x4000 if df else 0, ttl, proto, 0, src, dst
    )
    return hdr[:10] + checksum(hdr).to_bytes(2, "big") + hdr[12:]


def ipv6_header(
    src: int, dst: int, next_header: int, payload_len: int, *, tclass: int, hlim: int
) -> bytes:
    """A 40-byte outer IPv6 header (flow label 0)."""
    return _IP6.pack(
        6 << 28 | tclass << 20,
        payload_len,
        next_header,
        hlim,
        src.to_bytes(16, "big"),
        dst.to_bytes(16, "big"),
    )


def outer_ip(
    family: int,
    src: int,
    dst: int,
    proto: int,
    payload: bytes,
    *,
    tos: int,
    ttl: int,
    df: bool,
    ident: int = 0,
) -> bytes:
    """The outer IP packet carrying ``payload`` (DF and the id are IPv4 only)."""
    if family == AF_INET6:
        return ipv6_header(src, dst, proto, len(payload), tclass=tos, hlim=ttl) + payload
    return (
        ipv4_header(src, dst, proto, len(payload), tos=tos, ttl=ttl, df=df, ident=ident) + payload
    )


def _pseudo(family: int, src: int, dst: int, proto: int, length: int) -> int:
    if family == AF_INET6:
        return pseudo_ipv6(src, dst, proto, length)
    return pseudo_ipv4(src, dst, proto, length)


def udp_datagram(
    family: int, src: int, dst: int, sport: int, dport: int, payload: bytes, *, csum: bool
) -> bytes:
    """UDP header + payload; the checksum is computed iff ``csum`` (else 0,
    which Linux also sends over IPv6 for tunnels without TUNNEL_CSUM)."""
    length = 8 + len(payload)
    if not csum:
        return _UDP.pack(sport, dport, length, 0) + payload
    hdr = _UDP.pack(sport, dport, length, 0)
    cs = checksum(payload, csum_partial(hdr, _pseudo(family, src, dst, IPPROTO_UDP, length)))
    return hdr[:6] + (cs or 0xFFFF).to_bytes(2, "big") + payload


# ---------------------------------------------------------------------------
# Outer headers (parse and validate)


@dataclass(slots=True)
class Outer:
    """A received outer IP packet: the addresses, TOS/traffic class and TTL /
    hop limit that become tunnel metadata, and the IP payload."""

    family: int
    src: int
    dst: int
    tos: int
    ttl: int
    proto: int
    l4: bytes


def parse_outer(packet: bytes) -> Outer:
    """Validate an outer IP packet as ``ip_rcv`` / ``ipv6_rcv`` would before a
    tunnel sees it: version, lengths, the IPv4 header checksum.  Fragments
    (never reassembled here) and IPv6 extension headers are refused.  Raises
    :class:`WireError`."""
    if not packet:
        raise WireError("outer ip: empty packet")
    version = packet[0] >> 4
    if version == 4:
        if len(packet) < 20:
            raise WireError("outer ipv4: truncated header")
        _vihl, tos, total, _id, frag, ttl, proto, _cs, src, dst = _IP4.unpack_from(packet)
        hlen = (packet[0] & 0x0F) * 4
        if hlen < 20 or len(packet) < hlen:
            raise WireError(f"outer ipv4: bad header length {hlen}")
        if total < hlen or total > len(packet):
            raise WireError(f"outer ipv4: total length {total} vs {len(packet)} bytes")
        if csum_fold(csum_partial(packet[:hlen])) != 0xFFFF:
            raise WireError("outer ipv4: bad header checksum")
        if frag & 0x3FFF:
            raise WireError("outer ipv4: fragment")
        return Outer(AF_INET, src, dst, tos, ttl, proto, packet[hlen:total])
    if version == 6:
        if len(packet) < 40:
            raise WireError("outer ipv6: truncated header")
        word0, plen, nh, hlim, src6, dst6 = _IP6.unpack_from(packet)
        if 40 + plen > len(packet):
            raise WireError(f"outer ipv6: payload length {plen} vs {len(packet) - 40} bytes")
        if nh not in (IPPROTO_UDP, IPPROTO_TCP, 47):
            raise WireError(f"outer ipv6: next header {nh} not supported")
        return Outer(
            AF_INET6,
            int.from_bytes(src6, "big"),
            int.from_bytes(dst6, "big"),
            word0 >> 20 & 0xFF,
            hlim,
            nh,
            packet[40 : 40 + plen],
        )
    raise WireError(f"outer ip: version {version}")


def parse_udp(outer: Outer, port: int) -> tuple[int, int, bool, bytes]:
    """(source port, destination port, checksum present, payload) of the
    outer UDP datagram for ``port``; the checksum is verified when present
    (a zero checksum is accepted over IPv6 too, as OVS's tunnel sockets do)."""
    seg = outer.l4
    if len(seg) < 8:
        raise WireError("udp: truncated header")
    sport, dport, length, cs = _UDP.unpack_from(seg)
    if dport != port:
        raise WireError(f"udp: port {dport} is not {port}")
    if length < 8 or length > len(seg):
        raise WireError(f"udp: length {length} vs {len(seg)} bytes")
    seg = seg[:length]
    if (
        cs
        and csum_fold(
            csum_partial(seg, _pseudo(outer.family, outer.src, outer.dst, IPPROTO_UDP, length))
        )
        != 0xFFFF
    ):
        raise WireError("udp: bad checksum")
    return sport, dport, bool(cs), seg[8:]


# ---------------------------------------------------------------------------
# Receive: decapsulated metadata


@dataclass(slots=True)
class Decap:
    """What a tunnel header yields on receive: the metadata (kernel
    ``ip_tunnel_key`` fields) and the inner packet."""

    tun_id: int
    flags: int
    inner: bytes
    tp_src: int = 0
    tp_dst: int = 0
    opts: bytes = b""
    #: 0 for an Ethernet inner frame, else the L3 ethertype (``skb->protocol``)
    protocol: int = 0
    #: header word a vport checks after demultiplexing (VXLAN flags, GRE protocol)
    hdr_word: int = 0
    #: GRE with both K and S set (steered to a gre64 vport when one exists)
    gre64: bool = False
    ip_summed: int = CHECKSUM_NONE
    csum_start: int = 0
    csum_offset: int = 0
    gso_size: int = 0
    gso_type: int = 0


Decoder = Callable[["TunnelListener", Outer], Decap | None]


# ---------------------------------------------------------------------------
# Listeners and demultiplexing (ofproto/tunnel.c tnl_find)

IP_SRC_CFG, IP_SRC_ANY, IP_SRC_FLOW = range(3)
_V4MAPPED: Final = 0xFFFF << 32

#: (type name, in_key, remote address, local address) -- addresses as IPv6 ints
#: (IPv4 mapped), 0 where the match does not use them.
_Match = tuple[str, int, int, int]
#: (in_key_flow, ip_dst_flow, ip_src type)
_MatchType = tuple[bool, bool, int]
_MATCH_ORDER: Final[tuple[_MatchType, ...]] = tuple(
    (bool(k), bool(d), s)
    for k in (0, 1)
    for d in (0, 1)
    for s in (IP_SRC_CFG, IP_SRC_ANY, IP_SRC_FLOW)
)


def mapped(addr: int, family: int) -> int:
    """An address as OVS keeps tunnel addresses: IPv6, IPv4 mapped."""
    return addr if family == AF_INET6 else _V4MAPPED | addr


def _vport_match(v: TunnelVport) -> tuple[_MatchType, _Match]:
    cfg = v.config
    fam = AF_INET6 if cfg.ipv6 else AF_INET
    ip_src = (
        IP_SRC_FLOW if cfg.local_ip_flow else IP_SRC_CFG if cfg.local_ip is not None else IP_SRC_ANY
    )
    mtype = (cfg.in_key_flow, cfg.remote_ip_flow, ip_src)
    match = (
        v.type_name,
        0 if cfg.in_key_flow else cfg.in_key,
        0 if cfg.remote_ip is None else mapped(cfg.remote_ip, fam),
        mapped(cfg.local_ip, fam) if cfg.local_ip is not None else 0,
    )
    return mtype, match


class TunnelListener:
    """The underlay sockets of one (namespace, IP protocol, port) and the
    tunnel vports bound to them."""

    def __init__(
        self, net: TunnelUnderlay, proto: int, port: int, group: str, decoder: Decoder
    ) -> None:
        self.net = net
        self.proto = proto
        self.port = port
        #: the vport type family sharing this listener ("gre" for gre and gre64)
        self.group = group
        self.decode = decoder
        self.vports: list[TunnelVport] = []
        self.sockets: dict[int, TunnelSocket] = {}
        self._maps: dict[_MatchType, dict[_Match, TunnelVport]] = {}
        self._types: set[str] = set()
        #: packets received, and dropped before reaching a vport
        self.rx_packets = 0
        self.rx_dropped = 0
        #: drops by reason
        self.errors: dict[str, int] = {}
        #: STT reassembly (the kernel's per-CPU fragment table), bounded
        self.reassembler: SttReassembler | None = SttReassembler() if proto == IPPROTO_TCP else None
        self._packet_id = 0

    def __repr__(self) -> str:
        where = f"{self.group} proto {self.proto} port {self.port}"
        return f"<TunnelListener {where}, {len(self.vports)} vports>"

    # -- sockets ---------------------------------------------------------------

    def open(self) -> None:
        """Bind a socket per address family (metadata-mode tunnel devices
        listen on both); fail only if neither can be opened."""
        errs: list[DeviceError | OSError] = []
        for family in (AF_INET, AF_INET6):
            try:
                self.sockets[family] = self.net.tunnel_socket_open(
                    self.proto, self.port, family, self.receive
                )
            except (DeviceError, OSError) as e:
                errs.append(e)
        if not self.sockets:
            err = errs[0] if errs else None
            code = getattr(err, "errno", None) or errno.EADDRINUSE
            raise VportError(
                f"cannot bind tunnel protocol {self.proto} port {self.port}: {err}", errno=code
            )

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()

    def next_packet_id(self) -> int:
        """STT packet id (the ack number of every segment of one frame)."""
        self._packet_id = (self._packet_id + 1) & _M32
        return self._packet_id

    # -- vports ----------------------------------------------------------------

    @property
    def owner(self) -> TunnelVport | None:
        """The vport whose device the socket belongs to (the first bound)."""
        return self.vports[0] if self.vports else None

    def add(self, vport: TunnelVport) -> None:
        mtype, match = _vport_match(vport)
        other = self._maps.get(mtype, {}).get(match)
        if other is not None and other is not vport:
            raise VportError(
                f"{vport.name}: attempting to add tunnel port with same config as port "
                f"'{other.name}'",
                errno=errno.EEXIST,
            )
        self.vports.append(vport)
        self.reindex()

    def remove(self, vport: TunnelVport) -> None:
        if vport in self.vports:
            self.vports.remove(vport)
        self.reindex()

    def reindex(self) -> None:
        self._maps = {}
        self._types = set()
        for v in self.vports:
            mtype, match = _vport_match(v)
            self._maps.setdefault(mtype, {}).setdefault(match, v)
            self._types.add(v.type_name)

    def has_type(self, type_name: str) -> bool:
        return type_name in self._types

    def lookup(self, type_name: str, tun_id: int, src: int, dst: int) -> TunnelVport | None:
        """``tnl_find``: exact key before ``key=flow``, exact remote before
        ``remote_ip=flow``, configured local address before none before
        ``local_ip=flow``.  ``src``/``dst`` are the packet's outer addresses
        (mapped), i.e. the port's remote and local address."""
        maps = self._maps
        for mtype in _MATCH_ORDER:
            m = maps.get(mtype)
            if m is None:
                continue
            in_key_flow, ip_dst_flow, ip_src = mtype
            v = m.get(
                (
                    type_name,
                    0 if in_key_flow else tun_id,
                    0 if ip_dst_flow else src,
                    dst if ip_src == IP_SRC_CFG else 0,
                )
            )
            if v is not None:
                return v
        return None

    # -- receive ---------------------------------------------------------------

    def count_error(self, reason: str, vport: TunnelVport | None = None) -> None:
        """A received packet dropped as malformed (on ``vport`` if known, else
        on the owner), counted by reason."""
        self.rx_dropped += 1
        self.errors[reason] = self.errors.get(reason, 0) + 1
        v = vport or self.owner
        if v is not None:
            v.count_rx_error(DROP_TUNNEL_POP)

    def receive(self, packets: Sequence[bytes]) -> None:
        """The underlay's receive callback: outer IP packets in, inner frames
        to the matching vports.  Never raises for a malformed packet."""
        for packet in packets:
            self.rx_packets += 1
            try:
                outer = parse_outer(packet)
                if outer.proto != self.proto:
                    raise WireError(f"ip protocol {outer.proto} on a protocol {self.proto} socket")
                d = self.decode(self, outer)
            except (WireError, ValueError, IndexError, struct.error) as e:
                self.count_error(_NUMBERS.sub("N", str(e)) or "malformed")
                log.debug("tunnel %s/%d: dropped malformed packet: %s", self.group, self.port, e)
                continue
            if d is None:
                continue  # consumed (an STT segment waiting for the rest)
            type_name = self.group
            if d.gre64 and self.has_type("gre64"):
                type_name = "gre64"
            src = mapped(outer.src, outer.family)
            dst = mapped(outer.dst, outer.family)
            vport = self.lookup(type_name, d.tun_id, src, dst)
            if vport is None:
                self.rx_dropped += 1
                self.errors["no matching port"] = self.errors.get("no matching port", 0) + 1
                owner = self.owner
                if owner is not None:
                    owner.count_rx_drop(DROP_INVALID_TNL_PORT)
                continue
            vport.tunnel_receive(d, outer)


#: Every listener, by (namespace identity, IP protocol, port).  Weak: the
#: vports bound to a listener keep it alive, and a live listener keeps its
#: namespace alive, so an id in a key is never reused while its entry exists.
_listeners: weakref.WeakValueDictionary[tuple[int, int, int], TunnelListener] = (
    weakref.WeakValueDictionary()
)


def tunnel_listener(net: object, proto: int, port: int) -> TunnelListener | None:
    """The listener bound in ``net`` for ``proto``/``port``, if any."""
    return _listeners.get((id(net), proto, port))


def listener_bind(
    vport: TunnelVport, proto: int, port: int, group: str, decoder: Decoder
) -> TunnelListener | None:
    """Bind ``vport`` to the shared listener of its namespace, protocol and
    port, opening the underlay sockets on first use.  Returns None if the
    namespace has no tunnel underlay (the vport then drops what it sends)."""
    net = vport.net
    if not isinstance(net, TunnelUnderlay):
        log.info("%s: namespace %s has no tunnel underlay", vport.name, vport.net.name)
        return None
    key = (id(net), proto, port)
    lst = _listeners.get(key)
    if lst is None:
        lst = TunnelListener(net, proto, port, group, decoder)
        lst.open()
        _listeners[key] = lst
    elif lst.group != group:
        raise VportError(
            f"{vport.name}: protocol {proto} port {port} is in use by a {lst.group} tunnel",
            errno=errno.EADDRINUSE,
        )
    try:
        lst.add(vport)
    except VportError:
        if not lst.vports:
            _drop(lst)
        raise
    return lst


def listener_unbind(vport: TunnelVport, lst: TunnelListener) -> None:
    lst.remove(vport)
    if not lst.vports:
        _drop(lst)


def _drop(lst: TunnelListener) -> None:
    lst.close()
    key = (id(lst.net), lst.proto, lst.port)
    if _listeners.get(key) is lst:
        del _listeners[key]
