"""Flow keys and masks <-> ODP key attributes (the kernel's
``net/openvswitch/flow_netlink.c``).

On the netlink wire a flow is described by two nested attribute streams,
``OVS_FLOW_ATTR_KEY`` and ``OVS_FLOW_ATTR_MASK``.  Here a stream is a tuple of
:data:`NlKeyAttr` objects: the key attribute dataclasses of :mod:`pyvswitch.uapi`
(``Ethernet``, ``Ipv4``, ..., ``Tunnel``, ``Scalar`` for the single-value
attributes) plus :class:`Encap` for ``OVS_KEY_ATTR_ENCAP``, whose ``attrs`` are
the attributes of the packet inside a VLAN tag.  A mask stream uses the same
classes, holding mask values.

* :func:`put_key` is ``__ovs_nla_put_key``: one stream for a key (or, with
  ``is_mask=True``, for a mask) whose *structure* is decided by ``swkey``.
  ``style="userspace"`` follows ``odp_flow_key_from_flow`` instead (userspace
  datapath order, with ``packet_type``).
* :func:`key_attrs` pairs the key and mask streams attribute by attribute
  (the way ``odp_flow_format`` looks masks up) into :class:`Attr` triples.
* :func:`match_from_attrs` is ``ovs_nla_get_match``: key + optional mask
  streams to ``(key, mask)`` ints of the :mod:`pyvswitch.flow` layout, with the
  kernel's validation (``match_validate`` and friends); problems raise
  :class:`~pyvswitch.errors.FlowError`.

Presence of tunnel sub-attributes is carried by the ``Tunnel`` values, as the
kernel emits them: ``ID`` iff ``flags & TUNNEL_KEY``; addresses, ``tos`` and
ports iff non-zero; ``DONT_FRAGMENT``/``CSUM``/``OAM`` iff their flag bit is
set; Geneve options iff ``geneve_opts`` is not empty; VXLAN options iff
``gbp is not None``; ``ttl`` is always present.

VXLAN group-based-policy metadata is kept in the key's ``tun_opts`` as the
4-byte big-endian ``gbp`` word (``tun_opts_len`` 4, flag ``TUNNEL_VXLAN_OPT``);
Geneve options as their raw TLV bytes (flag ``TUNNEL_GENEVE_OPT``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from . import flow as F
from . import uapi as U
from .errors import FlowError
from .uapi import (
    Arp,
    Ethernet,
    Icmp,
    Icmpv6,
    Ipv4,
    Ipv6,
    KeyAttr,
    Mpls,
    Nd,
    Scalar,
    Sctp,
    Tcp,
    Tunnel,
    Udp,
)

Style: TypeAlias = Literal["kernel", "userspace"]


@dataclass(frozen=True, slots=True)
class Encap:
    """``OVS_KEY_ATTR_ENCAP``: the attributes of the packet inside a VLAN tag."""

    attrs: tuple[NlKeyAttr, ...] = ()


NlKeyAttr: TypeAlias = KeyAttr | Encap
KeyStream: TypeAlias = tuple[NlKeyAttr, ...]


@dataclass(frozen=True, slots=True)
class Attr:
    """One key attribute paired with its mask.

    ``key`` is ``None`` for an attribute present only in the mask (the
    ``ETHERTYPE`` of an 802.2 frame, ``IN_PORT`` of a port-less key, ...);
    ``mask`` is ``None`` when there is no mask at all (exact match) *or* the
    mask stream lacks the attribute (wildcarded) -- see :attr:`masked`.
    For ``ENCAP``, ``key``/``mask`` are the :class:`Encap` objects and
    ``encap`` holds the paired contents.
    """

    id: int
    key: NlKeyAttr | None
    mask: NlKeyAttr | None
    masked: bool = False
    encap: tuple[Attr, ...] = ()


# ---------------------------------------------------------------------------
# Attribute ids, sizes and helpers

_TYPE_IDS: Final[dict[type, int]] = {
    Ethernet: U.OVS_KEY_ATTR_ETHERNET,
    Ipv4: U.OVS_KEY_ATTR_IPV4,
    Ipv6: U.OVS_KEY_ATTR_IPV6,
    Tcp: U.OVS_KEY_ATTR_TCP,
    Udp: U.OVS_KEY_ATTR_UDP,
    Sctp: U.OVS_KEY_ATTR_SCTP,
    Icmp: U.OVS_KEY_ATTR_ICMP,
    Icmpv6: U.OVS_KEY_ATTR_ICMPV6,
    Arp: U.OVS_KEY_ATTR_ARP,
    Nd: U.OVS_KEY_ATTR_ND,
    Mpls: U.OVS_KEY_ATTR_MPLS,
    Tunnel: U.OVS_KEY_ATTR_TUNNEL,
    Encap: U.OVS_KEY_ATTR_ENCAP,
}

#: Width in bits of the single-value (``Scalar``) attributes.
SCALAR_BITS: Final[dict[int, int]] = {
    U.OVS_KEY_ATTR_PRIORITY: 32,
    U.OVS_KEY_ATTR_IN_PORT: 32,
    U.OVS_KEY_ATTR_SKB_MARK: 32,
    U.OVS_KEY_ATTR_DP_HASH: 32,
    U.OVS_KEY_ATTR_RECIRC_ID: 32,
    U.OVS_KEY_ATTR_CT_STATE: 32,
    U.OVS_KEY_ATTR_CT_MARK: 32,
    U.OVS_KEY_ATTR_PACKET_TYPE: 32,
    U.OVS_KEY_ATTR_VLAN: 16,
    U.OVS_KEY_ATTR_ETHERTYPE: 16,
    U.OVS_KEY_ATTR_CT_ZONE: 16,
    U.OVS_KEY_ATTR_TCP_FLAGS: 16,
    U.OVS_KEY_ATTR_CT_LABELS: 128,
}

#: Attribute names as OVS prints them (``ovs_key_attr_to_string``).
ATTR_NAMES: Final[dict[int, str]] = {
    U.OVS_KEY_ATTR_ENCAP: "encap",
    U.OVS_KEY_ATTR_PRIORITY: "skb_priority",
    U.OVS_KEY_ATTR_IN_PORT: "in_port",
    U.OVS_KEY_ATTR_ETHERNET: "eth",
    U.OVS_KEY_ATTR_VLAN: "vlan",
    U.OVS_KEY_ATTR_ETHERTYPE: "eth_type",
    U.OVS_KEY_ATTR_IPV4: "ipv4",
    U.OVS_KEY_ATTR_IPV6: "ipv6",
    U.OVS_KEY_ATTR_TCP: "tcp",
    U.OVS_KEY_ATTR_UDP: "udp",
    U.OVS_KEY_ATTR_ICMP: "icmp",
    U.OVS_KEY_ATTR_ICMPV6: "icmpv6",
    U.OVS_KEY_ATTR_ARP: "arp",
    U.OVS_KEY_ATTR_ND: "nd",
    U.OVS_KEY_ATTR_SKB_MARK: "skb_mark",
    U.OVS_KEY_ATTR_TUNNEL: "tunnel",
    U.OVS_KEY_ATTR_SCTP: "sctp",
    U.OVS_KEY_ATTR_TCP_FLAGS: "tcp_flags",
    U.OVS_KEY_ATTR_DP_HASH: "dp_hash",
    U.OVS_KEY_ATTR_RECIRC_ID: "recirc_id",
    U.OVS_KEY_ATTR_MPLS: "mpls",
    U.OVS_KEY_ATTR_CT_STATE: "ct_state",
    U.OVS_KEY_ATTR_CT_ZONE: "ct_zone",
    U.OVS_KEY_ATTR_CT_MARK: "ct_mark",
    U.OVS_KEY_ATTR_CT_LABELS: "ct_label",
    U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4: "ct_tuple4",
    U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6: "ct_tuple6",
    U.OVS_KEY_ATTR_NSH: "nsh",
    U.OVS_KEY_ATTR_PACKET_TYPE: "packet_type",
    U.OVS_KEY_ATTR_ND_EXTENSIONS: "nd_ext",
}

#: Key attributes the flow layout cannot hold.
UNSUPPORTED_ATTRS: Final = frozenset(
    {
        U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4,
        U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6,
        U.OVS_KEY_ATTR_NSH,
        U.OVS_KEY_ATTR_ND_EXTENSIONS,
    }
)

# Tunnel flag bits that correspond to tunnel sub-attributes.
TUN_ATTR_FLAGS: Final = (
    F.TUNNEL_KEY
    | F.TUNNEL_DONT_FRAGMENT
    | F.TUNNEL_CSUM
    | F.TUNNEL_OAM
    | F.TUNNEL_GENEVE_OPT
    | F.TUNNEL_VXLAN_OPT
)
_TUN_OPT_FLAGS: Final = F.TUNNEL_GENEVE_OPT | F.TUNNEL_VXLAN_OPT

OVS_CS_SUPPORTED_MASK: Final = 0xFF
IPV6_LABEL_MASK: Final = 0xFFFFF
ND_TYPES: Final = (F.ND_NEIGHBOR_SOLICIT, F.ND_NEIGHBOR_ADVERT)


def attr_id(a: NlKeyAttr) -> int:
    """The ``OVS_KEY_ATTR_*`` id of an attribute object."""
    t = type(a)
    if t is Scalar:
        return a.attr  # type: ignore[union-attr]
    return _TYPE_IDS[t]


def attr_name(attr: int) -> str:
    """``ovs_key_attr_to_string``: ``key<N>`` for an unknown id."""
    return ATTR_NAMES.get(attr, f"key{attr}")


def eth_type_vlan(t: int) -> bool:
    return t == F.ETH_P_8021Q or t == F.ETH_P_8021AD


def eth_p_mpls(t: int) -> bool:
    return t == F.ETH_P_MPLS_UC or t == F.ETH_P_MPLS_MC


def _ones(bits: int) -> int:
    return (1 << bits) - 1


# Field accessors (precomputed shift, mask).
_FS: Final[dict[str, tuple[int, int]]] = {
    name: (shift, _ones(width)) for name, (shift, width) in F.FIELDS.items()
}


def _g(k: int, name: str) -> int:
    s, m = _FS[name]
    return (k >> s) & m


def _popcount(v: int) -> int:
    return bin(v).count("1")


def _tun_opts(k: int, n: int) -> bytes:
    """The last ``n`` bytes of ``tun_opts`` of ``k`` (``TUN_METADATA_OPTS``)."""
    if n <= 0:
        return b""
    return _g(k, "tun_opts").to_bytes(F.TUN_OPTS_MAX, "big")[F.TUN_OPTS_MAX - n :]


def _gbp_of(opts: bytes) -> int:
    return int.from_bytes(opts[-4:], "big") if opts else 0


# ---------------------------------------------------------------------------
# Emission (__ovs_nla_put_key / odp_flow_key_from_flow)


def _fold(levels: list[list[NlKeyAttr]]) -> KeyStream:
    while len(levels) > 1:
        inner = levels.pop()
        levels[-1].append(Encap(tuple(inner)))
    return tuple(levels[0])


def _tunnel_kernel(sw: int, out: int) -> Tunnel:
    """``__ip_tun_to_nlattr`` (structure from ``sw``, values from ``out``)."""
    flags = _g(out, "tun_flags")
    proto = _g(sw, "tun_proto")
    v4s = v4d = v6s = v6d = 0
    if proto == F.AF_INET:
        v4s = _g(out, "tun_ipv4_src")
        v4d = _g(out, "tun_ipv4_dst")
    elif proto == F.AF_INET6:
        v6s = _g(out, "tun_ipv6_src")
        v6d = _g(out, "tun_ipv6_dst")
    aflags = flags & (F.TUNNEL_KEY | F.TUNNEL_DONT_FRAGMENT | F.TUNNEL_CSUM | F.TUNNEL_OAM)
    geneve = b""
    gbp: int | None = None
    n = _g(sw, "tun_opts_len")
    if n:
        if flags & F.TUNNEL_GENEVE_OPT:
            geneve = _tun_opts(out, n)
            aflags |= F.TUNNEL_GENEVE_OPT
        elif flags & F.TUNNEL_VXLAN_OPT:
            gbp = _gbp_of(_tun_opts(out, n))
            aflags |= F.TUNNEL_VXLAN_OPT
    return Tunnel(
        tun_id=_g(out, "tun_id") if flags & F.TUNNEL_KEY else 0,
        ipv4_src=v4s,
        ipv4_dst=v4d,
        ipv6_src=v6s,
        ipv6_dst=v6d,
        tos=_g(out, "tun_tos"),
        ttl=_g(out, "tun_ttl"),
        tp_src=_g(out, "tun_tp_src"),
        tp_dst=_g(out, "tun_tp_dst"),
        flags=aflags,
        geneve_opts=geneve,
        gbp=gbp,
    )


def _tunnel_userspace(sw: int, out: int) -> Tunnel:
    """``tun_key_to_attr`` (userspace)."""
    flags = _g(out, "tun_flags")
    tun_id = _g(out, "tun_id")
    aflags = flags & (F.TUNNEL_DONT_FRAGMENT | F.TUNNEL_CSUM | F.TUNNEL_OAM)
    if tun_id or flags & F.TUNNEL_KEY:
        aflags |= F.TUNNEL_KEY
    geneve = b""
    gbp: int | None = None
    n = _g(sw, "tun_opts_len")
    swflags = _g(sw, "tun_flags")
    if n and swflags & F.TUNNEL_VXLAN_OPT:
        v = _gbp_of(_tun_opts(out, n))
        if v:
            gbp = v
            aflags |= F.TUNNEL_VXLAN_OPT
    if n and swflags & F.TUNNEL_GENEVE_OPT:
        geneve = _tun_opts(out, n)
        aflags |= F.TUNNEL_GENEVE_OPT
    return Tunnel(
        tun_id=tun_id if aflags & F.TUNNEL_KEY else 0,
        ipv4_src=_g(out, "tun_ipv4_src"),
        ipv4_dst=_g(out, "tun_ipv4_dst"),
        ipv6_src=_g(out, "tun_ipv6_src"),
        ipv6_dst=_g(out, "tun_ipv6_dst"),
        tos=_g(out, "tun_tos"),
        ttl=_g(out, "tun_ttl"),
        tp_src=_g(out, "tun_tp_src"),
        tp_dst=_g(out, "tun_tp_dst"),
        flags=aflags,
        geneve_opts=geneve,
        gbp=gbp,
    )


def _put_l3(cur: list[NlKeyAttr], sw: int, out: int, eth_type: int, style: Style) -> None:
    if eth_type == F.ETH_P_IP:
        cur.append(
            Ipv4(
                src=_g(out, "ipv4_src"),
                dst=_g(out, "ipv4_dst"),
                proto=_g(out, "ip_proto"),
                tos=_g(out, "ip_tos"),
                ttl=_g(out, "ip_ttl"),
                frag=_g(out, "ip_frag"),
            )
        )
    elif eth_type == F.ETH_P_IPV6:
        cur.append(
            Ipv6(
                src=_g(out, "ipv6_src"),
                dst=_g(out, "ipv6_dst"),
                label=_g(out, "ipv6_label"),
                proto=_g(out, "ip_proto"),
                tclass=_g(out, "ip_tos"),
                hlimit=_g(out, "ip_ttl"),
                frag=_g(out, "ip_frag"),
            )
        )
    elif eth_type == F.ETH_P_ARP or eth_type == F.ETH_P_RARP:
        cur.append(
            Arp(
                sip=_g(out, "ipv4_src"),
                tip=_g(out, "ipv4_dst"),
                op=_arp_op(_g(out, "ip_proto"), style),
                sha=_g(out, "arp_sha"),
                tha=_g(out, "arp_tha"),
            )
        )


def _arp_op(proto: int, style: Style) -> int:
    # The kernel keeps the low 8 bits of the opcode (an exact mask prints as
    # op=N/0xff); userspace's get_arp_key() widens 0xff to 0xffff.
    if style == "userspace" and proto == 0xFF:
        return 0xFFFF
    return proto


def _mpls_lses(out: int, n: int) -> tuple[int, ...]:
    return tuple(_g(out, f"mpls_lse{i}") for i in range(min(n, F.MPLS_LABEL_DEPTH)))


def _put_l4(
    cur: list[NlKeyAttr], sw: int, out: int, eth_type: int, is_mask: bool, style: Style
) -> None:
    if not (eth_type == F.ETH_P_IP or eth_type == F.ETH_P_IPV6):
        return
    if _g(sw, "ip_frag") == F.OVS_FRAG_TYPE_LATER:
        return
    proto = _g(sw, "ip_proto")
    if proto == F.IPPROTO_TCP:
        cur.append(Tcp(src=_g(out, "tp_src"), dst=_g(out, "tp_dst")))
        cur.append(Scalar(U.OVS_KEY_ATTR_TCP_FLAGS, _g(out, "tcp_flags")))
    elif proto == F.IPPROTO_UDP:
        cur.append(Udp(src=_g(out, "tp_src"), dst=_g(out, "tp_dst")))
    elif proto == F.IPPROTO_SCTP:
        cur.append(Sctp(src=_g(out, "tp_src"), dst=_g(out, "tp_dst")))
    elif eth_type == F.ETH_P_IP and proto == F.IPPROTO_ICMP:
        cur.append(Icmp(type=_g(out, "tp_src") & 0xFF, code=_g(out, "tp_dst") & 0xFF))
    elif eth_type == F.ETH_P_IPV6 and proto == F.IPPROTO_ICMPV6:
        cur.append(Icmpv6(type=_g(out, "tp_src") & 0xFF, code=_g(out, "tp_dst") & 0xFF))
        if _g(sw, "tp_src") in ND_TYPES and _g(sw, "tp_dst") == 0:
            if style == "userspace" and is_mask:
                # Userspace puts ND in a mask only when type and code are exact.
                if (_g(out, "tp_src") & 0xFF) != 0xFF or (_g(out, "tp_dst") & 0xFF) != 0xFF:
                    return
            cur.append(
                Nd(
                    target=_g(out, "nd_target"),
                    sll=_g(out, "nd_sll"),
                    tll=_g(out, "nd_tll"),
                )
            )


def _put_key_kernel(sw: int, out: int, is_mask: bool) -> KeyStream:
    levels: list[list[NlKeyAttr]] = [[]]
    cur = levels[0]
    cur.append(Scalar(U.OVS_KEY_ATTR_RECIRC_ID, _g(out, "recirc_id")))
    cur.append(Scalar(U.OVS_KEY_ATTR_DP_HASH, _g(out, "dp_hash")))
    cur.append(Scalar(U.OVS_KEY_ATTR_PRIORITY, _g(out, "priority")))
    if _g(sw, "tun_proto") or is_mask:
        cur.append(_tunnel_kernel(sw, out))
    if _g(sw, "in_port") == F.DP_MAX_PORTS:
        if is_mask and _g(out, "in_port") == 0xFFFF:
            cur.append(Scalar(U.OVS_KEY_ATTR_IN_PORT, 0xFFFFFFFF))
    else:
        upper = 0xFFFF0000 if is_mask else 0
        cur.append(Scalar(U.OVS_KEY_ATTR_IN_PORT, upper | _g(out, "in_port")))
    cur.append(Scalar(U.OVS_KEY_ATTR_SKB_MARK, _g(out, "skb_mark")))
    cur.append(Scalar(U.OVS_KEY_ATTR_CT_STATE, _g(out, "ct_state")))
    cur.append(Scalar(U.OVS_KEY_ATTR_CT_ZONE, _g(out, "ct_zone")))
    cur.append(Scalar(U.OVS_KEY_ATTR_CT_MARK, _g(out, "ct_mark")))
    cur.append(Scalar(U.OVS_KEY_ATTR_CT_LABELS, _g(out, "ct_labels")))

    eth_type = _g(sw, "eth_type")
    if (_g(sw, "mac_proto") & 0x7F) == F.MAC_PROTO_ETHERNET:
        cur.append(Ethernet(src=_g(out, "eth_src"), dst=_g(out, "eth_dst")))
        if _g(sw, "vlan_tci") or eth_type_vlan(eth_type):
            cur.append(
                Scalar(U.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF if is_mask else _g(out, "vlan_tpid"))
            )
            cur.append(Scalar(U.OVS_KEY_ATTR_VLAN, _g(out, "vlan_tci")))
            cur = []
            levels.append(cur)
            if not _g(sw, "vlan_tci"):
                return _fold(levels)
            if _g(sw, "cvlan_tci") or eth_type_vlan(eth_type):
                cur.append(
                    Scalar(U.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF if is_mask else _g(out, "cvlan_tpid"))
                )
                cur.append(Scalar(U.OVS_KEY_ATTR_VLAN, _g(out, "cvlan_tci")))
                cur = []
                levels.append(cur)
                if not _g(sw, "cvlan_tci"):
                    return _fold(levels)
        if eth_type == F.ETH_P_802_2:
            if is_mask and _g(out, "eth_type"):
                cur.append(Scalar(U.OVS_KEY_ATTR_ETHERTYPE, _g(out, "eth_type")))
            return _fold(levels)
    cur.append(Scalar(U.OVS_KEY_ATTR_ETHERTYPE, _g(out, "eth_type")))
    if eth_type_vlan(eth_type):
        return _fold(levels)
    _put_l3(cur, sw, out, eth_type, "kernel")
    if eth_p_mpls(eth_type):
        cur.append(Mpls(lses=_mpls_lses(out, _popcount(_g(out, "mpls_num_labels_mask")))))
    _put_l4(cur, sw, out, eth_type, is_mask, "kernel")
    return _fold(levels)


def _put_key_userspace(sw: int, out: int, is_mask: bool, mask: int | None) -> KeyStream:
    levels: list[list[NlKeyAttr]] = [[]]
    cur = levels[0]
    cur.append(Scalar(U.OVS_KEY_ATTR_PRIORITY, _g(out, "priority")))
    tun_set = (
        _g(sw, "tun_ipv4_dst")
        or _g(sw, "tun_ipv4_src")
        or _g(sw, "tun_ipv6_dst")
        or _g(sw, "tun_ipv6_src")
    )
    if tun_set or is_mask:
        cur.append(_tunnel_userspace(sw, out))
    cur.append(Scalar(U.OVS_KEY_ATTR_SKB_MARK, _g(out, "skb_mark")))
    cur.append(Scalar(U.OVS_KEY_ATTR_CT_STATE, _g(out, "ct_state")))
    cur.append(Scalar(U.OVS_KEY_ATTR_CT_ZONE, _g(out, "ct_zone")))
    cur.append(Scalar(U.OVS_KEY_ATTR_CT_MARK, _g(out, "ct_mark")))
    cur.append(Scalar(U.OVS_KEY_ATTR_CT_LABELS, _g(out, "ct_labels")))
    cur.append(Scalar(U.OVS_KEY_ATTR_RECIRC_ID, _g(out, "recirc_id")))
    cur.append(Scalar(U.OVS_KEY_ATTR_DP_HASH, _g(out, "dp_hash")))
    if is_mask:
        cur.append(Scalar(U.OVS_KEY_ATTR_IN_PORT, 0xFFFF0000 | _g(out, "in_port")))
    elif _g(sw, "in_port") != F.DP_MAX_PORTS:
        cur.append(Scalar(U.OVS_KEY_ATTR_IN_PORT, _g(out, "in_port")))
    eth_type = _g(sw, "eth_type")
    is_eth = (_g(sw, "mac_proto") & 0x7F) == F.MAC_PROTO_ETHERNET
    if is_mask:
        pt = 0xFFFFFFFF if _g(out, "mac_proto") else 0
    else:
        pt = 0 if is_eth else (1 << 16) | _g(out, "eth_type")
    cur.append(Scalar(U.OVS_KEY_ATTR_PACKET_TYPE, pt))
    if is_eth:
        cur.append(Ethernet(src=_g(out, "eth_src"), dst=_g(out, "eth_dst")))
        tags = (("vlan_tpid", "vlan_tci"), ("cvlan_tpid", "cvlan_tci"))
        for tpid_f, tci_f in tags:
            tpid = _g(sw, tpid_f)
            sw_tci = _g(sw, tci_f)
            if sw_tci == 0:
                if eth_type_vlan(eth_type):
                    tpid = eth_type
                else:
                    break
            cur.append(Scalar(U.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF if is_mask else tpid))
            cur.append(Scalar(U.OVS_KEY_ATTR_VLAN, _g(out, tci_f)))
            cur = []
            levels.append(cur)
            if sw_tci == 0:
                return _fold(levels)
    if eth_type < 0x0600:
        if is_mask:
            cur.append(Scalar(U.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF))
        return _fold(levels)
    cur.append(Scalar(U.OVS_KEY_ATTR_ETHERTYPE, _g(out, "eth_type")))
    if eth_type_vlan(eth_type):
        return _fold(levels)
    _put_l3(cur, sw, out, eth_type, "userspace")
    if eth_p_mpls(eth_type):
        cur.append(Mpls(lses=_mpls_lses(out, _popcount(_g(sw, "mpls_num_labels_mask")))))
    if (
        (eth_type == F.ETH_P_IP or eth_type == F.ETH_P_IPV6)
        and _g(sw, "ip_frag") != F.OVS_FRAG_TYPE_LATER
        and _g(sw, "ip_proto") == F.IPPROTO_TCP
    ):
        cur.append(Tcp(src=_g(out, "tp_src"), dst=_g(out, "tp_dst")))
        flags = _g(out, "tcp_flags")
        if flags or (mask is not None and _g(mask, "tcp_flags")):
            cur.append(Scalar(U.OVS_KEY_ATTR_TCP_FLAGS, flags))
    else:
        _put_l4(cur, sw, out, eth_type, is_mask, "userspace")
    return _fold(levels)


def put_key(
    swkey: int,
    output: int,
    *,
    is_mask: bool = False,
    style: Style = "kernel",
    mask: int | None = None,
) -> KeyStream:
    """One attribute stream: the datapath's ``__ovs_nla_put_key(swkey, output,
    is_mask)`` (``style="kernel"``) or userspace ``odp_flow_key_from_flow``
    (``style="userspace"``, which needs the flow's ``mask`` to decide about
    ``tcp_flags``).  ``swkey`` decides which attributes appear, ``output``
    supplies their values (the key itself, or the mask)."""
    if style == "kernel":
        return _put_key_kernel(swkey, output, is_mask)
    if style == "userspace":
        return _put_key_userspace(swkey, output, is_mask, mask)
    raise ValueError(f"unknown style {style!r}")


def _structure(sw: int) -> tuple[int, ...]:
    """Everything of ``sw`` that decides the *structure* of an attribute
    stream (not its values), for caching mask streams: flows that share a mask
    and a shape share the mask stream."""
    icmp6 = _g(sw, "ip_proto") == F.IPPROTO_ICMPV6
    return (
        _g(sw, "tun_proto"),
        _g(sw, "tun_opts_len"),
        _g(sw, "tun_flags") & _TUN_OPT_FLAGS,
        bool(
            _g(sw, "tun_ipv4_dst")
            or _g(sw, "tun_ipv4_src")
            or _g(sw, "tun_ipv6_dst")
            or _g(sw, "tun_ipv6_src")
        ),
        _g(sw, "in_port") == F.DP_MAX_PORTS,
        _g(sw, "mac_proto") & 0x7F,
        _g(sw, "vlan_tci") != 0,
        _g(sw, "cvlan_tci") != 0,
        _g(sw, "eth_type"),
        _g(sw, "ip_frag") == F.OVS_FRAG_TYPE_LATER,
        _g(sw, "ip_proto"),
        _g(sw, "tp_src") if icmp6 else 0,
        _g(sw, "tp_dst") == 0 if icmp6 else 0,
        _popcount(_g(sw, "mpls_num_labels_mask")),
    )


_MASK_STREAMS: dict[tuple[str, tuple[int, ...], int], KeyStream] = {}
_MASK_STREAMS_MAX: Final = 4096


def key_streams(
    key: int, mask: int | None = None, *, style: Style = "kernel"
) -> tuple[KeyStream, KeyStream | None]:
    """The ``(OVS_FLOW_ATTR_KEY, OVS_FLOW_ATTR_MASK)`` streams of a flow whose
    structure is decided by the (unmasked) ``key``.  ``mask=None`` gives no
    mask stream (exact match)."""
    ks = put_key(key, key, style=style, mask=mask)
    if mask is None:
        return ks, None
    ck = (style, _structure(key), mask)
    ms = _MASK_STREAMS.get(ck)
    if ms is None:
        ms = put_key(key, mask, is_mask=True, style=style, mask=mask)
        if len(_MASK_STREAMS) >= _MASK_STREAMS_MAX:
            _MASK_STREAMS.clear()
        _MASK_STREAMS[ck] = ms
    return ks, ms


def find_attr(stream: Sequence[NlKeyAttr], attr: int) -> NlKeyAttr | None:
    """``nl_attr_find__``: the first attribute of type ``attr``."""
    for a in stream:
        if attr_id(a) == attr:
            return a
    return None


def pair_attrs(key: Sequence[NlKeyAttr], mask: Sequence[NlKeyAttr] | None) -> list[Attr]:
    """Pair each key attribute with the mask attribute of the same type (as
    ``odp_flow_format`` does); attributes present only in the mask follow."""
    masked = mask is not None
    out: list[Attr] = []
    seen: set[int] = set()
    for a in key:
        t = attr_id(a)
        seen.add(t)
        ma = find_attr(mask, t) if mask is not None else None
        inner: tuple[Attr, ...] = ()
        if isinstance(a, Encap):
            inner_mask = ma.attrs if isinstance(ma, Encap) else (() if masked else None)
            inner = tuple(pair_attrs(a.attrs, inner_mask))
        out.append(Attr(t, a, ma, masked, inner))
    if mask is not None:
        # Mask-only attributes go where the mask stream has them.
        prev: int | None = None
        for ma in mask:
            t = attr_id(ma)
            if t not in seen:
                seen.add(t)
                pos = 0
                if prev is not None:
                    pos = next(i for i, x in enumerate(out) if x.id == prev) + 1
                out.insert(pos, Attr(t, None, ma, True))
            prev = t
    return out


def key_attrs(key: int, mask: int | None = None, *, style: Style = "kernel") -> list[Attr]:
    """The attributes the datapath would report for a flow: key values paired
    with mask values, in the kernel's emit order (``style="kernel"``) or the
    userspace datapath's (``style="userspace"``, with ``packet_type``)."""
    ks, ms = key_streams(key, mask, style=style)
    return pair_attrs(ks, ms)


def split_attrs(attrs: Sequence[Attr]) -> tuple[KeyStream, KeyStream | None]:
    """The inverse of :func:`pair_attrs`: ``(key stream, mask stream)``."""
    masked = any(a.masked for a in attrs)
    ks: list[NlKeyAttr] = []
    ms: list[NlKeyAttr] = []
    for a in attrs:
        if a.id == U.OVS_KEY_ATTR_ENCAP:
            ik, im = split_attrs(a.encap)
            if a.key is not None:
                ks.append(Encap(ik))
            if a.mask is not None or (masked and a.key is not None):
                ms.append(Encap(im or ()))
            continue
        if a.key is not None:
            ks.append(a.key)
        if a.mask is not None:
            ms.append(a.mask)
    return tuple(ks), (tuple(ms) if masked else None)


# ---------------------------------------------------------------------------
# Exact masks (mask_set_nlattr)


def all_ones(a: NlKeyAttr) -> NlKeyAttr:
    """The exact-match mask of one key attribute (the kernel's
    ``mask_set_nlattr(newmask, 0xff)``; ct_state limited to supported bits)."""
    if isinstance(a, Scalar):
        if a.attr == U.OVS_KEY_ATTR_CT_STATE:
            return Scalar(a.attr, OVS_CS_SUPPORTED_MASK)
        return Scalar(a.attr, _ones(SCALAR_BITS.get(a.attr, 32)))
    if isinstance(a, Ethernet):
        return Ethernet(_ones(48), _ones(48))
    if isinstance(a, Ipv4):
        return Ipv4(_ones(32), _ones(32), 0xFF, 0xFF, 0xFF, 0xFF)
    if isinstance(a, Ipv6):
        return Ipv6(_ones(128), _ones(128), _ones(32), 0xFF, 0xFF, 0xFF, 0xFF)
    if isinstance(a, Tcp):
        return Tcp(0xFFFF, 0xFFFF)
    if isinstance(a, Udp):
        return Udp(0xFFFF, 0xFFFF)
    if isinstance(a, Sctp):
        return Sctp(0xFFFF, 0xFFFF)
    if isinstance(a, Icmp):
        return Icmp(0xFF, 0xFF)
    if isinstance(a, Icmpv6):
        return Icmpv6(0xFF, 0xFF)
    if isinstance(a, Arp):
        return Arp(_ones(32), _ones(32), 0xFFFF, _ones(48), _ones(48))
    if isinstance(a, Nd):
        return Nd(_ones(128), _ones(48), _ones(48))
    if isinstance(a, Mpls):
        return Mpls(tuple(0xFFFFFFFF for _ in a.lses))
    if isinstance(a, Tunnel):
        return Tunnel(
            tun_id=_ones(64) if a.flags & F.TUNNEL_KEY else 0,
            ipv4_src=_ones(32) if a.ipv4_src else 0,
            ipv4_dst=_ones(32) if a.ipv4_dst else 0,
            ipv6_src=_ones(128) if a.ipv6_src else 0,
            ipv6_dst=_ones(128) if a.ipv6_dst else 0,
            tos=0xFF if a.tos else 0,
            ttl=0xFF,
            tp_src=0xFFFF if a.tp_src else 0,
            tp_dst=0xFFFF if a.tp_dst else 0,
            flags=a.flags & TUN_ATTR_FLAGS,
            geneve_opts=b"\xff" * len(a.geneve_opts),
            gbp=None if a.gbp is None else 0xFFFFFFFF,
        )
    return Encap(tuple(all_ones(x) for x in a.attrs))


def zero_mask(a: NlKeyAttr) -> NlKeyAttr:
    """An all-wildcard mask for ``a`` (``generate_all_wildcard_mask``): zero
    values, but with the same sub-attributes present (so tunnel flag attributes
    stay present)."""
    if isinstance(a, Scalar):
        return Scalar(a.attr, 0)
    if isinstance(a, Mpls):
        return Mpls(tuple(0 for _ in a.lses))
    if isinstance(a, Tunnel):
        return Tunnel(
            flags=a.flags & TUN_ATTR_FLAGS,
            geneve_opts=bytes(len(a.geneve_opts)),
            gbp=None if a.gbp is None else 0,
        )
    if isinstance(a, Encap):
        return Encap(tuple(zero_mask(x) for x in a.attrs))
    return type(a)()


# ---------------------------------------------------------------------------
# Parsing (ovs_nla_get_match)


class _Match:
    """``struct sw_flow_match``: a key and a mask being filled in."""

    __slots__ = ("key", "mask")

    def __init__(self) -> None:
        self.key = 0
        self.mask = 0

    def put(self, name: str, value: int, is_mask: bool) -> None:
        s, m = _FS[name]
        value &= m  # C assignment into a narrower field truncates
        if is_mask:
            self.mask = (self.mask & ~(m << s)) | (value << s)
        else:
            self.key = (self.key & ~(m << s)) | (value << s)

    def kget(self, name: str) -> int:
        return _g(self.key, name)

    def mget(self, name: str) -> int:
        return _g(self.mask, name)


def _is_zero(a: NlKeyAttr) -> bool:
    """``is_all_zero`` over an attribute's payload, for the mask parser
    (nested attributes are non-zero as soon as they hold anything)."""
    if isinstance(a, Scalar):
        return a.value == 0
    if isinstance(a, Mpls):
        return not any(a.lses)
    if isinstance(a, Encap):
        return not a.attrs
    if isinstance(a, Tunnel):
        # A tunnel nest always holds sub-attributes (at least TTL), so it is
        # never all-zero: a mask with tunnel() matches tun_proto exactly.
        return False
    return not any(getattr(a, f) for f in a.__slots__)


def _check_attr(a: object) -> NlKeyAttr:
    if isinstance(a, Encap | Scalar) or type(a) in _TYPE_IDS:
        return a  # type: ignore[return-value]
    raise FlowError(f"not a key attribute: {a!r}")


def _parse_nlattrs(
    stream: Sequence[NlKeyAttr],
    arr: dict[int, NlKeyAttr],
    present: set[int],
    nz: bool,
) -> None:
    """``__parse_flow_nlattrs``: index a stream by attribute type."""
    for raw in stream:
        a = _check_attr(raw)
        t = attr_id(a)
        if t in UNSUPPORTED_ATTRS:
            raise FlowError(f"key attribute {attr_name(t)} is not supported by pyvswitch")
        if t not in ATTR_NAMES or t in (U.OVS_KEY_ATTR_ND_EXTENSIONS,):
            raise FlowError(f"key type {t} is out of range")
        if isinstance(a, Scalar) and t not in SCALAR_BITS:
            raise FlowError(f"key {attr_name(t)} has unexpected length")
        if t in present:
            raise FlowError(f"duplicate key ({attr_name(t)})")
        if not nz or not _is_zero(a):
            present.add(t)
            arr[t] = a


def _scalar(arr: dict[int, NlKeyAttr], t: int) -> int:
    a = arr.get(t)
    if isinstance(a, Scalar):
        return a.value
    return 0


def _parse_vlan(
    m: _Match, attrs: set[int], arr: dict[int, NlKeyAttr], is_mask: bool, inner: bool
) -> bool:
    """``__parse_vlan_from_nlattrs``; returns True when a tag was consumed."""
    what = "C-VLAN" if inner else "VLAN"
    tpid_f, tci_f = ("cvlan_tpid", "cvlan_tci") if inner else ("vlan_tpid", "vlan_tci")
    if not is_mask:
        if not (
            U.OVS_KEY_ATTR_ETHERNET in attrs
            and U.OVS_KEY_ATTR_ETHERTYPE in attrs
            and eth_type_vlan(_scalar(arr, U.OVS_KEY_ATTR_ETHERTYPE))
        ):
            return False
        if not (U.OVS_KEY_ATTR_VLAN in attrs and U.OVS_KEY_ATTR_ENCAP in attrs):
            raise FlowError(f"invalid {what} frame: a VLAN key needs vlan() and encap()")
        tci = _scalar(arr, U.OVS_KEY_ATTR_VLAN)
        if not tci & F.VLAN_CFI_MASK:
            if tci:
                raise FlowError(f"{what} TCI {tci:#06x} does not have the CFI bit (0x1000) set")
            enc = arr[U.OVS_KEY_ATTR_ENCAP]
            if isinstance(enc, Encap) and enc.attrs:
                raise FlowError(f"truncated {what} header (TCI 0) has a non-empty encap()")
    else:
        if U.OVS_KEY_ATTR_ENCAP not in attrs:
            return False
        if not m.kget(tci_f) & F.VLAN_CFI_MASK:
            raise FlowError(f"encap() mask attribute is set for a non-{what} frame")
        tci = _scalar(arr, U.OVS_KEY_ATTR_VLAN)
        tpid = _scalar(arr, U.OVS_KEY_ATTR_ETHERTYPE)
        if tpid != 0xFFFF:
            raise FlowError(f"must have an exact match on the {what} TPID (mask={tpid:#x})")
        if not tci & F.VLAN_CFI_MASK:
            raise FlowError(f"{what} TCI mask does not match the CFI bit (0x1000) exactly")
    m.put(tpid_f, _scalar(arr, U.OVS_KEY_ATTR_ETHERTYPE), is_mask)
    m.put(tci_f, _scalar(arr, U.OVS_KEY_ATTR_VLAN), is_mask)
    enc = arr.pop(U.OVS_KEY_ATTR_ENCAP)
    for t in (U.OVS_KEY_ATTR_ENCAP, U.OVS_KEY_ATTR_VLAN, U.OVS_KEY_ATTR_ETHERTYPE):
        attrs.discard(t)
        if t != U.OVS_KEY_ATTR_ENCAP:
            arr.pop(t, None)
    assert isinstance(enc, Encap)
    _parse_nlattrs(enc.attrs, arr, attrs, nz=is_mask)
    return True


def _parse_vlans(m: _Match, attrs: set[int], arr: dict[int, NlKeyAttr], is_mask: bool) -> None:
    """``parse_vlan_from_nlattrs``."""
    _parse_vlan(m, attrs, arr, is_mask, inner=False)
    if m.kget("vlan_tci") & F.VLAN_CFI_MASK:
        _parse_vlan(m, attrs, arr, is_mask, inner=True)


def _parse_eth_type(m: _Match, attrs: set[int], arr: dict[int, NlKeyAttr], is_mask: bool) -> None:
    eth_type = _scalar(arr, U.OVS_KEY_ATTR_ETHERTYPE)
    if is_mask:
        eth_type = 0xFFFF  # always exact match EtherType
    elif eth_type < 0x0600:
        raise FlowError(f"EtherType {eth_type:#x} is less than min 0x600")
    m.put("eth_type", eth_type, is_mask)
    attrs.discard(U.OVS_KEY_ATTR_ETHERTYPE)


def _ip_tun_from_attr(m: _Match, t: Tunnel, is_mask: bool, style: Style = "kernel") -> None:
    """``ip_tun_from_nlattr``."""
    flags = 0
    put = m.put
    if t.flags & F.TUNNEL_KEY:
        put("tun_id", t.tun_id, is_mask)
        flags |= F.TUNNEL_KEY
    ipv4 = bool(t.ipv4_src or t.ipv4_dst)
    ipv6 = bool(t.ipv6_src or t.ipv6_dst)
    if t.ipv4_src:
        put("tun_ipv4_src", t.ipv4_src, is_mask)
    if t.ipv4_dst:
        put("tun_ipv4_dst", t.ipv4_dst, is_mask)
    if t.ipv6_src:
        put("tun_ipv6_src", t.ipv6_src, is_mask)
    if t.ipv6_dst:
        put("tun_ipv6_dst", t.ipv6_dst, is_mask)
    if t.tos:
        put("tun_tos", t.tos, is_mask)
    put("tun_ttl", t.ttl, is_mask)
    if t.tp_src:
        put("tun_tp_src", t.tp_src, is_mask)
    if t.tp_dst:
        put("tun_tp_dst", t.tp_dst, is_mask)
    flags |= t.flags & (F.TUNNEL_DONT_FRAGMENT | F.TUNNEL_CSUM | F.TUNNEL_OAM)
    if t.geneve_opts and t.gbp is not None:
        raise FlowError("multiple tunnel metadata blocks provided (geneve and vxlan)")
    opts = b""
    if t.geneve_opts:
        opts = t.geneve_opts
        if len(opts) > F.TUN_OPTS_MAX:
            raise FlowError(f"Geneve option length err (len {len(opts)}, max {F.TUN_OPTS_MAX})")
        if len(opts) % 4:
            raise FlowError(f"Geneve opt len {len(opts)} is not a multiple of 4")
        flags |= F.TUNNEL_GENEVE_OPT
    elif t.gbp is not None:
        opts = (t.gbp & 0xFFFFFFFF).to_bytes(4, "big")
        flags |= F.TUNNEL_VXLAN_OPT
    if opts:
        if is_mask:
            if m.kget("tun_opts_len") != len(opts):
                raise FlowError(
                    f"tunnel option len {m.kget('tun_opts_len')} != mask len {len(opts)}"
                )
            put("tun_opts_len", 0xFF, True)
        else:
            put("tun_opts_len", len(opts), False)
        s = _FS["tun_opts"][0]
        cur = m.mask if is_mask else m.key
        window = _ones(len(opts) * 8) << s
        cur = (cur & ~window) | (int.from_bytes(opts, "big") << s)
        if is_mask:
            m.mask = cur
        else:
            m.key = cur
    put("tun_flags", flags, is_mask)
    if is_mask:
        put("tun_proto", 0xFF, True)
    else:
        put("tun_proto", F.AF_INET6 if ipv6 else F.AF_INET, False)
    if ipv4 and ipv6 and not (is_mask and style == "userspace"):
        raise FlowError("mixed IPv4 and IPv6 tunnel attributes")
    if not is_mask:
        if not ipv4 and not ipv6:
            raise FlowError("IP tunnel dst address not specified")
        if ipv4 and not t.ipv4_dst:
            raise FlowError("IPv4 tunnel dst address is zero")
        if ipv6 and not t.ipv6_dst:
            raise FlowError("IPv6 tunnel dst address is zero")


def _key_from_attrs(
    m: _Match, attrs: set[int], arr: dict[int, NlKeyAttr], is_mask: bool, style: Style
) -> None:
    """``metadata_from_nlattrs`` + ``ovs_key_from_nlattrs``."""
    attrs = set(attrs)
    put = m.put
    K = U

    def take(t: int) -> NlKeyAttr | None:
        if t in attrs:
            attrs.discard(t)
            return arr[t]
        return None

    if (a := take(K.OVS_KEY_ATTR_DP_HASH)) is not None:
        put("dp_hash", _sv(a), is_mask)
    if (a := take(K.OVS_KEY_ATTR_RECIRC_ID)) is not None:
        v = _sv(a)
        if is_mask and v not in (0, 0xFFFFFFFF):
            raise FlowError(f"recirc_id must be matched exactly (mask {v:#x})")
        put("recirc_id", v, is_mask)
    elif is_mask and style == "userspace":
        put("recirc_id", 0xFFFFFFFF, True)  # userspace: exact when not given
    if (a := take(K.OVS_KEY_ATTR_PRIORITY)) is not None:
        put("priority", _sv(a), is_mask)
    if (a := take(K.OVS_KEY_ATTR_IN_PORT)) is not None:
        port = _sv(a)
        if is_mask:
            port = 0xFFFFFFFF  # always exact match in_port
        elif port >= F.DP_MAX_PORTS:
            raise FlowError(f"port {port} exceeds max allowable {F.DP_MAX_PORTS}")
        put("in_port", port, is_mask)
    elif not is_mask:
        put("in_port", F.DP_MAX_PORTS, False)
    if (a := take(K.OVS_KEY_ATTR_SKB_MARK)) is not None:
        put("skb_mark", _sv(a), is_mask)
    if (a := take(K.OVS_KEY_ATTR_TUNNEL)) is not None:
        if not isinstance(a, Tunnel):
            raise FlowError("tunnel attribute must be a Tunnel")
        _ip_tun_from_attr(m, a, is_mask, style)
    if (a := take(K.OVS_KEY_ATTR_CT_STATE)) is not None:
        v = _sv(a)
        if v & ~OVS_CS_SUPPORTED_MASK and not is_mask:
            raise FlowError(f"ct_state flags {v:08x} unsupported")
        put("ct_state", v, is_mask)
    if (a := take(K.OVS_KEY_ATTR_CT_ZONE)) is not None:
        put("ct_zone", _sv(a), is_mask)
    if (a := take(K.OVS_KEY_ATTR_CT_MARK)) is not None:
        put("ct_mark", _sv(a), is_mask)
    if (a := take(K.OVS_KEY_ATTR_CT_LABELS)) is not None:
        put("ct_labels", _sv(a), is_mask)

    # Packet type: the kernel infers it (no ETHERNET + ETHERTYPE = L3 packet);
    # the userspace packet_type attribute states it.
    pt_eth: bool | None = None
    if (a := take(K.OVS_KEY_ATTR_PACKET_TYPE)) is not None:
        v = _sv(a)
        if is_mask:
            put("mac_proto", 0xFF if v >> 16 else 0, True)
            if (
                m.kget("mac_proto") == F.MAC_PROTO_NONE
                and v & 0xFFFF
                and K.OVS_KEY_ATTR_ETHERTYPE not in attrs
            ):
                put("eth_type", v & 0xFFFF, True)
        else:
            ns, nstype = v >> 16, v & 0xFFFF
            if ns == 0 and nstype == 0:
                pt_eth = True
            elif ns == 1:
                if nstype < 0x0600:
                    raise FlowError(f"packet_type ethertype {nstype:#x} is less than min 0x600")
                if K.OVS_KEY_ATTR_ETHERNET in attrs:
                    raise FlowError("packet_type(ns=1,...) is an L3 packet type but eth() is given")
                pt_eth = False
                if K.OVS_KEY_ATTR_ETHERTYPE not in attrs:
                    put("eth_type", nstype, False)
            else:
                raise FlowError(f"packet_type(ns={ns},id={nstype:#x}) is not supported")
    elif is_mask:
        # Always exact match mac_proto (kernel); userspace wildcards the
        # packet type when the mask does not mention it.
        put("mac_proto", 0 if style == "userspace" else 0xFF, True)
    if not is_mask:
        if pt_eth is None:
            pt_eth_inferred = not (
                K.OVS_KEY_ATTR_ETHERNET not in attrs and K.OVS_KEY_ATTR_ETHERTYPE in attrs
            )
            mac_proto = F.MAC_PROTO_ETHERNET if pt_eth_inferred else F.MAC_PROTO_NONE
        else:
            mac_proto = F.MAC_PROTO_ETHERNET if pt_eth else F.MAC_PROTO_NONE
        put("mac_proto", mac_proto, False)
        if mac_proto == F.MAC_PROTO_NONE and K.OVS_KEY_ATTR_ETHERTYPE in attrs:
            _parse_eth_type(m, attrs, arr, False)
    elif K.OVS_KEY_ATTR_ETHERNET not in attrs and K.OVS_KEY_ATTR_ETHERTYPE in attrs:
        _parse_eth_type(m, attrs, arr, True)

    if (a := take(K.OVS_KEY_ATTR_ETHERNET)) is not None or pt_eth:
        if isinstance(a, Ethernet):
            put("eth_src", a.src, is_mask)
            put("eth_dst", a.dst, is_mask)
        elif a is not None:
            raise FlowError("eth attribute must be an Ethernet")
        if K.OVS_KEY_ATTR_VLAN in attrs:
            raise FlowError("VLAN attribute unexpected (vlan() needs eth_type(0x8100) and encap())")
        if K.OVS_KEY_ATTR_ETHERTYPE in attrs:
            _parse_eth_type(m, attrs, arr, is_mask)
        elif not is_mask:
            put("eth_type", F.ETH_P_802_2, False)
    elif not m.kget("eth_type"):
        raise FlowError("either an Ethernet header or an EtherType is required")
    if (
        is_mask
        and style == "userspace"
        and m.kget("mac_proto") == F.MAC_PROTO_ETHERNET
        and m.kget("eth_type") == F.ETH_P_802_2
        and not m.mget("eth_type")
    ):
        # See odp_flow_key_from_flow__(): no ETHERTYPE in the key means
        # "802.2 frame" only together with an exact ETHERTYPE mask.
        raise FlowError("mask expected for non-Ethernet II frame (add eth_type(0/0xffff))")

    if (a := take(K.OVS_KEY_ATTR_IPV4)) is not None:
        assert isinstance(a, Ipv4)
        if not is_mask and a.frag > F.OVS_FRAG_TYPE_LATER:
            raise FlowError(f"IPv4 frag type {a.frag} is out of range max 2")
        put("ip_proto", a.proto, is_mask)
        put("ip_tos", a.tos, is_mask)
        put("ip_ttl", a.ttl, is_mask)
        put("ip_frag", a.frag, is_mask)
        put("ipv4_src", a.src, is_mask)
        put("ipv4_dst", a.dst, is_mask)
    if (a := take(K.OVS_KEY_ATTR_IPV6)) is not None:
        assert isinstance(a, Ipv6)
        if not is_mask and a.frag > F.OVS_FRAG_TYPE_LATER:
            raise FlowError(f"IPv6 frag type {a.frag} is out of range max 2")
        if not is_mask and a.label & 0xFFF00000:
            raise FlowError(f"IPv6 flow label {a.label:#x} is out of range (max=0xfffff)")
        put("ipv6_label", a.label, is_mask)
        put("ip_proto", a.proto, is_mask)
        put("ip_tos", a.tclass, is_mask)
        put("ip_ttl", a.hlimit, is_mask)
        put("ip_frag", a.frag, is_mask)
        put("ipv6_src", a.src, is_mask)
        put("ipv6_dst", a.dst, is_mask)
    if (a := take(K.OVS_KEY_ATTR_ARP)) is not None:
        assert isinstance(a, Arp)
        if not is_mask and a.op & 0xFF00 and style == "kernel":
            # (userspace keeps the low 8 bits, and prints 0xff as 0xffff)
            raise FlowError(f"unknown ARP opcode (opcode={a.op})")
        put("ipv4_src", a.sip, is_mask)
        put("ipv4_dst", a.tip, is_mask)
        put("ip_proto", a.op, is_mask)
        put("arp_sha", a.sha, is_mask)
        put("arp_tha", a.tha, is_mask)
    if (a := take(K.OVS_KEY_ATTR_MPLS)) is not None:
        assert isinstance(a, Mpls)
        n = len(a.lses)
        if n == 0 or n > F.MPLS_LABEL_DEPTH:
            raise FlowError(f"MPLS key must hold 1 to {F.MPLS_LABEL_DEPTH} labels, not {n}")
        for i, lse in enumerate(a.lses):
            put(f"mpls_lse{i}", lse, is_mask)
        put("mpls_num_labels_mask", _ones(n), is_mask)
    if (a := take(K.OVS_KEY_ATTR_TCP)) is not None:
        assert isinstance(a, Tcp)
        put("tp_src", a.src, is_mask)
        put("tp_dst", a.dst, is_mask)
    if (a := take(K.OVS_KEY_ATTR_TCP_FLAGS)) is not None:
        put("tcp_flags", _sv(a), is_mask)
    if (a := take(K.OVS_KEY_ATTR_UDP)) is not None:
        assert isinstance(a, Udp)
        put("tp_src", a.src, is_mask)
        put("tp_dst", a.dst, is_mask)
    if (a := take(K.OVS_KEY_ATTR_SCTP)) is not None:
        assert isinstance(a, Sctp)
        put("tp_src", a.src, is_mask)
        put("tp_dst", a.dst, is_mask)
    if (a := take(K.OVS_KEY_ATTR_ICMP)) is not None:
        assert isinstance(a, Icmp)
        put("tp_src", a.type, is_mask)
        put("tp_dst", a.code, is_mask)
    if (a := take(K.OVS_KEY_ATTR_ICMPV6)) is not None:
        assert isinstance(a, Icmpv6)
        put("tp_src", a.type, is_mask)
        put("tp_dst", a.code, is_mask)
    if (a := take(K.OVS_KEY_ATTR_ND)) is not None:
        assert isinstance(a, Nd)
        put("nd_target", a.target, is_mask)
        put("nd_sll", a.sll, is_mask)
        put("nd_tll", a.tll, is_mask)
    if attrs:
        names = ", ".join(sorted(attr_name(t) for t in attrs))
        raise FlowError(f"unexpected key attributes: {names}")


def _sv(a: NlKeyAttr) -> int:
    if not isinstance(a, Scalar):
        raise FlowError(f"{type(a).__name__} where a single value was expected")
    return a.value


_L3_L4: Final = frozenset(
    {
        U.OVS_KEY_ATTR_IPV4,
        U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4,
        U.OVS_KEY_ATTR_IPV6,
        U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6,
        U.OVS_KEY_ATTR_TCP,
        U.OVS_KEY_ATTR_TCP_FLAGS,
        U.OVS_KEY_ATTR_UDP,
        U.OVS_KEY_ATTR_SCTP,
        U.OVS_KEY_ATTR_ICMP,
        U.OVS_KEY_ATTR_ICMPV6,
        U.OVS_KEY_ATTR_ARP,
        U.OVS_KEY_ATTR_ND,
        U.OVS_KEY_ATTR_MPLS,
        U.OVS_KEY_ATTR_NSH,
    }
)


def _match_validate(m: _Match, key_attrs: set[int], mask_attrs: set[int], style: Style) -> None:
    """The kernel's ``match_validate`` (+ ND only for NS/NA with code 0;
    userspace does not insist on ``tcp_flags``)."""
    K = U
    expected: set[int] = set()
    allowed = (set(key_attrs) - _L3_L4) | {
        K.OVS_KEY_ATTR_TUNNEL,
        K.OVS_KEY_ATTR_IN_PORT,
        K.OVS_KEY_ATTR_ETHERTYPE,
    }
    et = m.kget("eth_type")
    et_exact = m.mget("eth_type") == 0xFFFF
    proto = m.kget("ip_proto")
    proto_exact = m.mget("ip_proto") == 0xFF
    if et == F.ETH_P_ARP or et == F.ETH_P_RARP:
        expected.add(K.OVS_KEY_ATTR_ARP)
        if et_exact:
            allowed.add(K.OVS_KEY_ATTR_ARP)
    if eth_p_mpls(et):
        expected.add(K.OVS_KEY_ATTR_MPLS)
        if et_exact:
            allowed.add(K.OVS_KEY_ATTR_MPLS)
    if et == F.ETH_P_IP or et == F.ETH_P_IPV6:
        l3 = K.OVS_KEY_ATTR_IPV4 if et == F.ETH_P_IP else K.OVS_KEY_ATTR_IPV6
        expected.add(l3)
        if et_exact:
            allowed.add(l3)
        if m.kget("ip_frag") != F.OVS_FRAG_TYPE_LATER:
            l4: tuple[int, ...] = ()
            if proto == F.IPPROTO_UDP:
                l4 = (K.OVS_KEY_ATTR_UDP,)
            elif proto == F.IPPROTO_SCTP:
                l4 = (K.OVS_KEY_ATTR_SCTP,)
            elif proto == F.IPPROTO_TCP:
                l4 = (K.OVS_KEY_ATTR_TCP, K.OVS_KEY_ATTR_TCP_FLAGS)
                if style == "userspace" and proto_exact:
                    allowed.add(K.OVS_KEY_ATTR_TCP_FLAGS)
                if style == "userspace":
                    l4 = (K.OVS_KEY_ATTR_TCP,)
            elif proto == F.IPPROTO_ICMP and et == F.ETH_P_IP:
                l4 = (K.OVS_KEY_ATTR_ICMP,)
            elif proto == F.IPPROTO_ICMPV6 and et == F.ETH_P_IPV6:
                l4 = (K.OVS_KEY_ATTR_ICMPV6,)
                if m.kget("tp_src") in ND_TYPES and m.kget("tp_dst") == 0:
                    expected.add(K.OVS_KEY_ATTR_ND)
                    if (m.mget("tp_src") & 0xFF) == 0xFF:
                        allowed.add(K.OVS_KEY_ATTR_ND)
            expected.update(l4)
            if proto_exact:
                allowed.update(l4)
    missing = expected - key_attrs
    if missing:
        names = ", ".join(sorted(attr_name(t) for t in missing))
        raise FlowError(f"missing key attribute(s): {names}")
    unexpected = mask_attrs - allowed
    if unexpected:
        names = ", ".join(sorted(attr_name(t) for t in unexpected))
        why = ""
        if unexpected & {K.OVS_KEY_ATTR_IPV4, K.OVS_KEY_ATTR_IPV6, K.OVS_KEY_ATTR_ARP}:
            why = " (L3 fields need an exact eth_type)"
        elif unexpected & {
            K.OVS_KEY_ATTR_TCP,
            K.OVS_KEY_ATTR_UDP,
            K.OVS_KEY_ATTR_SCTP,
            K.OVS_KEY_ATTR_ICMP,
            K.OVS_KEY_ATTR_ICMPV6,
            K.OVS_KEY_ATTR_TCP_FLAGS,
        }:
            why = " (L4 fields need an exact IP proto and frag != later)"
        elif K.OVS_KEY_ATTR_ND in unexpected:
            why = " (nd() needs an exact ICMPv6 type)"
        raise FlowError(f"unexpected mask for {names}{why}")


def match_from_attrs(
    key: Sequence[NlKeyAttr],
    mask: Sequence[NlKeyAttr] | None = None,
    *,
    style: Style = "kernel",
) -> tuple[int, int]:
    """``ovs_nla_get_match``: build ``(key, mask)`` ints from the key and mask
    attribute streams.  ``mask=None`` means an exact match on everything the
    key specifies.

    ``style="userspace"`` applies dpif-netdev's defaults for attributes missing
    from a given mask: ``recirc_id`` exact and ``packet_type`` wildcarded (the
    kernel leaves ``recirc_id`` wildcarded and always matches the packet type).
    Raises :class:`FlowError` for keys/masks the datapath would refuse.
    """
    user_style = style
    m = _Match()
    arr: dict[int, NlKeyAttr] = {}
    key_attrs: set[int] = set()
    _parse_nlattrs(key, arr, key_attrs, nz=False)
    _parse_vlans(m, key_attrs, arr, is_mask=False)
    _key_from_attrs(m, key_attrs, arr, is_mask=False, style=style)

    if mask is None:
        mask = tuple(all_ones(a) for a in key)
        if m.kget("tun_proto"):
            for name in (
                "tun_id",
                "tun_ipv4_src",
                "tun_ipv4_dst",
                "tun_ipv6_src",
                "tun_ipv6_dst",
                "tun_tos",
                "tun_ttl",
                "tun_tp_src",
                "tun_tp_dst",
            ):
                m.put(name, -1, True)
        style = "kernel"
    marr: dict[int, NlKeyAttr] = {}
    mask_attrs: set[int] = set()
    _parse_nlattrs(mask, marr, mask_attrs, nz=True)
    m.put("vlan_tci", 0xFFFF, True)  # always match on tci
    m.put("cvlan_tci", 0xFFFF, True)
    _parse_vlans(m, mask_attrs, marr, is_mask=True)
    _key_from_attrs(m, mask_attrs, marr, is_mask=True, style=style)
    _match_validate(m, key_attrs, mask_attrs, user_style)
    return m.key, m.mask


def exact_mask(key: int, *, style: Style = "kernel") -> int:
    """The mask of an exact-match flow for ``key``: every field of every
    attribute the datapath reports for the key, exact -- what userspace
    installs with megaflows disabled (also "no tunnel", an 802.2 frame's
    ethertype and a port-less ``in_port`` are matched exactly)."""
    ones = (1 << (8 * F.KEY_BYTES)) - 1
    flags = (_g(key, "tun_flags") & _TUN_OPT_FLAGS) | (
        F.TUNNEL_KEY | F.TUNNEL_DONT_FRAGMENT | F.TUNNEL_CSUM | F.TUNNEL_OAM
    )
    ones = F.key_set(ones, "tun_flags", flags)
    ones = F.key_set(ones, "mpls_num_labels_mask", _g(key, "mpls_num_labels_mask"))
    ks = put_key(key, key, style=style, mask=ones)
    ms = put_key(key, ones, is_mask=True, style=style, mask=ones)
    try:
        return match_from_attrs(ks, ms, style=style)[1]
    except FlowError:
        # A truncated VLAN tag (TCI 0) cannot be expressed as a mask (the
        # kernel refuses its empty encap()); match everything the key holds.
        names = (
            "recirc_id dp_hash priority skb_mark in_port mac_proto tun_proto ct_state ct_zone"
            " ct_mark ct_labels eth_src eth_dst vlan_tpid vlan_tci cvlan_tpid cvlan_tci eth_type"
        )
        m = 0
        for name in names.split():
            m |= F.field_mask(name)
        return m
