"""Flow keys and key extraction (the kernel's ``net/openvswitch/flow.c``).

A flow key (``struct sw_flow_key`` in the kernel) is represented as **one Python
int** with a fixed bit layout.  Masking a key is then a single ``&``, hashing and
comparing are done in C, and the int only grows as large as its highest non-zero
field — so the layout puts rarely used fields (tunnel options, conntrack, IPv6,
ND, MPLS) in the most significant bytes and the fields of ordinary IPv4 traffic
in the least significant ones.

The layout is a list of ``(name, width in bytes)``, most significant first; the
value of a field is the big-endian integer of its bytes (MAC and IP addresses
are plain integers, e.g. ``10.0.0.1 == 0x0a000001``).  Field names follow the
kernel's structure (``eth.src`` -> ``eth_src``, ``ip.proto`` -> ``ip_proto``,
``tp.src`` -> ``tp_src``, ``ipv4.addr.src`` -> ``ipv4_src`` which also holds the
ARP sender IP, ...).

:func:`key_extract` implements ``key_extract()``/``ovs_flow_key_extract()`` of
the upstream kernel datapath: truncated or malformed headers yield the key the
kernel would build (zeroed parts), never an exception.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Literal

# --------------------------------------------------------------------------
# Constants (kernel names)

ETH_HLEN: Final = 14
ETH_P_IP: Final = 0x0800
ETH_P_ARP: Final = 0x0806
ETH_P_RARP: Final = 0x8035
ETH_P_IPV6: Final = 0x86DD
ETH_P_8021Q: Final = 0x8100
ETH_P_8021AD: Final = 0x88A8
ETH_P_MPLS_UC: Final = 0x8847
ETH_P_MPLS_MC: Final = 0x8848
ETH_P_TEB: Final = 0x6558
ETH_P_802_2: Final = 0x0004
ETH_P_NSH: Final = 0x894F

IPPROTO_ICMP: Final = 1
IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17
IPPROTO_ICMPV6: Final = 58
IPPROTO_SCTP: Final = 132

NEXTHDR_HOP: Final = 0
NEXTHDR_ROUTING: Final = 43
NEXTHDR_FRAGMENT: Final = 44
NEXTHDR_AUTH: Final = 51
NEXTHDR_NONE: Final = 59
NEXTHDR_DEST: Final = 60

OVS_FRAG_TYPE_NONE: Final = 0
OVS_FRAG_TYPE_FIRST: Final = 1
OVS_FRAG_TYPE_LATER: Final = 2

MAC_PROTO_ETHERNET: Final = 0
MAC_PROTO_NONE: Final = 1

VLAN_CFI_MASK: Final = 0x1000
MPLS_LS_S_MASK: Final = 0x00000100
MPLS_LABEL_DEPTH: Final = 3

#: ``in_port`` of a key with no input port (the kernel's ``DP_MAX_PORTS``).
DP_MAX_PORTS: Final = 0xFFFF

# Kernel TUNNEL_* flag bits, as stored in ``tun_flags``.
TUNNEL_CSUM: Final = 0x01
TUNNEL_ROUTING: Final = 0x02
TUNNEL_KEY: Final = 0x04
TUNNEL_SEQ: Final = 0x08
TUNNEL_STRICT: Final = 0x10
TUNNEL_REC: Final = 0x20
TUNNEL_VERSION: Final = 0x40
TUNNEL_NO_KEY: Final = 0x80
TUNNEL_DONT_FRAGMENT: Final = 0x100
TUNNEL_OAM: Final = 0x200
TUNNEL_CRIT_OPT: Final = 0x400
TUNNEL_GENEVE_OPT: Final = 0x800
TUNNEL_VXLAN_OPT: Final = 0x1000
TUNNEL_NOCACHE: Final = 0x2000

AF_INET: Final = 2
AF_INET6: Final = 10

ND_NEIGHBOR_SOLICIT: Final = 135
ND_NEIGHBOR_ADVERT: Final = 136
ND_OPT_SOURCE_LL_ADDR: Final = 1
ND_OPT_TARGET_LL_ADDR: Final = 2

# --------------------------------------------------------------------------
# Layout

#: Tunnel option bytes kept in the key (the kernel's ``tun_opts[255]``),
#: right-aligned so that short options keep the int small.
TUN_OPTS_MAX: Final = 255

RARE_FIELDS: Final[tuple[tuple[str, int], ...]] = (
    ("tun_opts", TUN_OPTS_MAX),
    ("tun_opts_len", 1),
    ("ct_labels", 16),
    ("ct_mark", 4),
    ("ct_zone", 2),
    ("ct_state", 1),
    ("nd_target", 16),
    ("nd_sll", 6),
    ("nd_tll", 6),
    ("mpls_lse0", 4),
    ("mpls_lse1", 4),
    ("mpls_lse2", 4),
    ("mpls_num_labels_mask", 1),
    ("tun_ipv6_src", 16),
    ("tun_ipv6_dst", 16),
    ("ipv6_src", 16),
    ("ipv6_dst", 16),
    ("ipv6_label", 4),
    ("tun_id", 8),
    ("tun_ipv4_src", 4),
    ("tun_ipv4_dst", 4),
    ("tun_flags", 2),
    ("tun_tos", 1),
    ("tun_ttl", 1),
    ("tun_tp_src", 2),
    ("tun_tp_dst", 2),
    ("tun_proto", 1),
    ("arp_sha", 6),
    ("arp_tha", 6),
)

# The hot part follows the byte order of an untagged IPv4 frame (bytes 0..37)
# so that the key of such a frame is a few int operations on the frame's first
# 38 bytes: fields that have no place in the key (IP version/IHL, length, id,
# raw fragment word, checksum) sit in zero-filled holes ("_pad*"), and the
# VLAN tags, which the kernel keeps out of the frame, sit above the MACs.
HOT_FIELDS: Final[tuple[tuple[str, int], ...]] = (
    ("recirc_id", 4),
    ("dp_hash", 4),
    ("priority", 4),
    ("skb_mark", 4),
    ("in_port", 2),
    ("mac_proto", 1),
    ("vlan_tpid", 2),
    ("vlan_tci", 2),
    ("cvlan_tpid", 2),
    ("cvlan_tci", 2),
    ("eth_dst", 6),  # frame 0..5
    ("eth_src", 6),  # frame 6..11
    ("eth_type", 2),  # frame 12..13
    ("ip_frag", 1),  # frame 14 (version/IHL)
    ("ip_tos", 1),  # frame 15
    ("_pad_len_id", 4),  # frame 16..19
    ("_pad_frag_off", 2),  # frame 20..21
    ("ip_ttl", 1),  # frame 22
    ("ip_proto", 1),  # frame 23
    ("_pad_csum", 2),  # frame 24..25
    ("ipv4_src", 4),  # frame 26..29
    ("ipv4_dst", 4),  # frame 30..33
    ("tp_src", 2),  # frame 34..35
    ("tp_dst", 2),  # frame 36..37
    ("tcp_flags", 2),
)

LAYOUT: Final = RARE_FIELDS + HOT_FIELDS
HOT_BYTES: Final = sum(w for _, w in HOT_FIELDS)
KEY_BYTES: Final = sum(w for _, w in LAYOUT)

#: name -> (shift in bits, width in bits)
FIELDS: Final[dict[str, tuple[int, int]]] = {}
_shift = 0
for _name, _width in reversed(LAYOUT):
    FIELDS[_name] = (_shift, _width * 8)
    _shift += _width * 8
del _shift, _name, _width

FIELD_NAMES: Final = tuple(n for n, _ in LAYOUT if not n.startswith("_"))


def field_mask(name: str) -> int:
    """The key-wide mask covering all bits of field ``name``."""
    shift, width = FIELDS[name]
    return ((1 << width) - 1) << shift


def key_get(key: int, name: str) -> int:
    shift, width = FIELDS[name]
    return (key >> shift) & ((1 << width) - 1)


def key_set(key: int, name: str, value: int) -> int:
    shift, width = FIELDS[name]
    fmask = (1 << width) - 1
    if value < 0 or value > fmask:
        raise ValueError(f"value {value:#x} does not fit key field {name} ({width} bits)")
    return (key & ~(fmask << shift)) | (value << shift)


def key_from_fields(fields: Mapping[str, int] | None = None, **kw: int) -> int:
    """Build a key (or mask) int from named field values; absent fields are 0."""
    key = 0
    items: Iterable[tuple[str, int]] = (fields or {}).items()
    for name, value in [*items, *kw.items()]:
        if name not in FIELDS:
            raise KeyError(f"unknown flow key field {name!r}")
        key = key_set(key, name, value)
    return key


def key_to_fields(key: int, *, nonzero: bool = False) -> dict[str, int]:
    """Decode a key (or mask) int into ``{field: value}`` in layout order."""
    out: dict[str, int] = {}
    for name in FIELD_NAMES:
        shift, width = FIELDS[name]
        value = (key >> shift) & ((1 << width) - 1)
        if value or not nonzero:
            out[name] = value
    return out


# --------------------------------------------------------------------------
# Metadata

_MD = struct.Struct(">IIIIHB")  # recirc_id, dp_hash, priority, skb_mark, in_port, mac_proto
MD_SHIFT: Final = FIELDS["mac_proto"][0]
MD_BYTES: Final = _MD.size


def md_bits(
    in_port: int,
    *,
    recirc_id: int = 0,
    dp_hash: int = 0,
    priority: int = 0,
    skb_mark: int = 0,
    mac_proto: int = MAC_PROTO_ETHERNET,
) -> int:
    """The metadata part of a key as key bits (computed once per vport/recirc)."""
    return (
        int.from_bytes(
            _MD.pack(recirc_id, dp_hash, priority, skb_mark, in_port & 0xFFFF, mac_proto), "big"
        )
        << FIELDS["mac_proto"][0]
    )


_TUN = struct.Struct(">QIIHBBHHB")  # tun_id .. tun_proto (contiguous in the layout)
_TUN_SHIFT = FIELDS["tun_proto"][0]
_TUN6 = struct.Struct(">16s16s")
_TUN6_SHIFT = FIELDS["tun_ipv6_dst"][0]
_TUN_OPTS_LEN_SHIFT = FIELDS["tun_opts_len"][0]
_TUN_OPTS_SHIFT = FIELDS["tun_opts"][0]


def tunnel_key_bits(
    *,
    tun_id: int = 0,
    ipv4_src: int = 0,
    ipv4_dst: int = 0,
    ipv6_src: int = 0,
    ipv6_dst: int = 0,
    flags: int = 0,
    tos: int = 0,
    ttl: int = 0,
    tp_src: int = 0,
    tp_dst: int = 0,
    opts: bytes = b"",
    ipv6: bool = False,
) -> int:
    """The key bits for tunnel metadata handed in by a tunnel vport on receive
    (the ``tun_info`` argument of ``ovs_flow_key_extract``).  OR them into a key."""
    proto = AF_INET6 if ipv6 else AF_INET
    bits = (
        int.from_bytes(
            _TUN.pack(tun_id, ipv4_src, ipv4_dst, flags, tos, ttl, tp_src, tp_dst, proto), "big"
        )
        << _TUN_SHIFT
    )
    if ipv6_src or ipv6_dst:
        bits |= ((ipv6_src << 128) | ipv6_dst) << _TUN6_SHIFT
    if opts:
        if len(opts) > TUN_OPTS_MAX:
            raise ValueError("tunnel options longer than 255 bytes")
        bits |= len(opts) << _TUN_OPTS_LEN_SHIFT
        bits |= int.from_bytes(opts, "big") << _TUN_OPTS_SHIFT
    return bits


def key_tun_opts(key: int) -> bytes:
    """The tunnel option bytes of a key (right-aligned in ``tun_opts``)."""
    n = key_get(key, "tun_opts_len")
    if not n:
        return b""
    return key_get(key, "tun_opts").to_bytes(TUN_OPTS_MAX, "big")[TUN_OPTS_MAX - n :]


# --------------------------------------------------------------------------
# Extraction

# Hot part after the metadata prefix, in layout order:
#   vlan(8) eth(12: dst,src) eth_type(2) frag tos pad4 pad2 ttl proto pad2
#   ipv4(8: src,dst) tp_src tp_dst tcp_flags
_HOT = struct.Struct(">19s8s12sHBB6xBB2x8sHHH")
_ZERO8 = bytes(8)
_ZERO12 = bytes(12)
_U32 = struct.Struct(">I")
_VLANS = struct.Struct(">HHHH")
_IPV4_FIXED = struct.Struct(">BBHHHBBH4s4s")
_ARP = struct.Struct(">HHBBH6s4s6s4s")
_IPV6_FIXED = struct.Struct(">I2xBB16s16s")

# Shifts of rare fields used by the extractor.
_ARP_SHIFT = FIELDS["arp_tha"][0]
_IPV6_SHIFT = FIELDS["ipv6_label"][0]  # ipv6_src|ipv6_dst|ipv6_label contiguous
_MPLS_SHIFT = FIELDS["mpls_num_labels_mask"][0]
_ND_SHIFT = FIELDS["nd_tll"][0]  # nd_target|nd_sll|nd_tll contiguous

_IPV6_EXT = frozenset(
    (NEXTHDR_HOP, NEXTHDR_ROUTING, NEXTHDR_FRAGMENT, NEXTHDR_AUTH, NEXTHDR_NONE, NEXTHDR_DEST)
)


def _frame_window_mask(*keep: tuple[int, int]) -> int:
    """Mask over ``int.from_bytes(frame[0:38])`` keeping the given byte ranges."""
    m = 0
    for lo, hi in keep:
        for i in range(lo, hi):
            m |= 0xFF << ((37 - i) * 8)
    return m


# Fast path for untagged IPv4 with a 20-byte header: the key's low part is the
# frame window with the holes cleared, shifted left over tcp_flags.
_FAST_KEEP_L4: Final = _frame_window_mask((0, 14), (15, 16), (22, 24), (26, 38))
_FAST_KEEP_L3: Final = _frame_window_mask((0, 14), (15, 16), (22, 24), (26, 34))
_FAST_FRAG_FIRST: Final = OVS_FRAG_TYPE_FIRST << FIELDS["ip_frag"][0]
_FAST_FRAG_LATER: Final = OVS_FRAG_TYPE_LATER << FIELDS["ip_frag"][0]
_TP_SRC_SHIFT: Final = FIELDS["tp_src"][0]
_TP_DST_SHIFT: Final = FIELDS["tp_dst"][0]
_MD_INT_SHIFT: Final = FIELDS["mac_proto"][0]


def key_extract(
    data: bytes,
    md: int,
    tun: int = 0,
    gso_udp: bool = False,
    *,
    _keep_l4: int = _FAST_KEEP_L4,
    _keep_l3: int = _FAST_KEEP_L3,
    _first: int = _FAST_FRAG_FIRST,
    _later: int = _FAST_FRAG_LATER,
    _from_bytes: Callable[[bytes, Literal["big"]], int] = int.from_bytes,
) -> int | None:
    """Extract the flow key of the Ethernet frame ``data`` (the kernel's
    ``ovs_flow_key_extract`` + ``key_extract``).

    ``md`` is the metadata as key bits (:func:`md_bits`), ``tun`` the tunnel key bits
    (:func:`tunnel_key_bits`) or 0, ``gso_udp`` marks a UDP-fragmentation-offload
    super-packet (the kernel then reports ``frag=first``).

    Returns the key int, or ``None`` when the kernel would drop the packet
    (a frame shorter than an Ethernet header).
    """
    n = len(data)
    if n >= 42 and data[12] == 8 and data[13] == 0 and data[14] == 0x45 and not gso_udp:
        # Untagged IPv4 without options: the common case, done on the raw window.
        fo = data[20]
        proto = data[23]
        if (fo & 0x1F) or data[21]:
            key = ((_from_bytes(data[0:38], "big") & _keep_l3) << 16) | _later | md
        else:
            frag = _first if fo & 0x20 else 0
            if proto == 17 or (proto == 132 and n >= 46):
                key = ((_from_bytes(data[0:38], "big") & _keep_l4) << 16) | frag | md
            elif proto == 6:
                doff = data[46] >> 2 & 0x3C if n >= 54 else 0
                if doff >= 20 and 34 + doff <= n:
                    key = (
                        ((_from_bytes(data[0:38], "big") & _keep_l4) << 16)
                        | frag
                        | md
                        | (((data[46] << 8) | data[47]) & 0x0FFF)
                    )
                else:
                    key = ((_from_bytes(data[0:38], "big") & _keep_l3) << 16) | frag | md
            elif proto == 1:
                key = (
                    ((_from_bytes(data[0:38], "big") & _keep_l3) << 16)
                    | frag
                    | md
                    | (data[34] << 32)
                    | (data[35] << 16)
                )
            else:
                key = ((_from_bytes(data[0:38], "big") & _keep_l3) << 16) | frag | md
        return key | tun if tun else key
    if n < ETH_HLEN:
        return None
    # ---- L2: VLAN tags (outer + inner) and the ethertype
    pos = 12
    eth_type = (data[12] << 8) | data[13]
    vlans = _ZERO8
    if eth_type == ETH_P_8021Q or eth_type == ETH_P_8021AD:
        if n - pos >= 6:
            vlan_tpid = eth_type
            vlan_tci = ((data[14] << 8) | data[15]) | VLAN_CFI_MASK
            pos = 16
            eth_type = (data[16] << 8) | data[17]
            cvlan_tpid = cvlan_tci = 0
            if (eth_type == ETH_P_8021Q or eth_type == ETH_P_8021AD) and n - pos >= 6:
                cvlan_tpid = eth_type
                cvlan_tci = ((data[18] << 8) | data[19]) | VLAN_CFI_MASK
                pos = 20
                eth_type = (data[20] << 8) | data[21]
            vlans = _VLANS.pack(vlan_tpid, vlan_tci, cvlan_tpid, cvlan_tci)
    # parse_ethertype
    if eth_type < 0x0600:
        p = pos + 2
        if (
            n - p < 8
            or data[p] != 0xAA
            or data[p + 1] != 0xAA
            or data[p + 3]
            or data[p + 4]
            or data[p + 5]
        ):
            eth_type = ETH_P_802_2
            nh = p
        else:
            snap = (data[p + 6] << 8) | data[p + 7]
            eth_type = snap if snap >= 0x0600 else ETH_P_802_2
            nh = p + 8
    else:
        nh = pos + 2
    return _l3l4(data, n, nh, md, tun, eth_type, vlans, data[0:12], gso_udp)


def key_extract_l3(data: bytes, protocol: int, md: int, tun: int = 0) -> int | None:
    """Key of an L3 packet (``mac_proto`` NONE, e.g. from an L3 tunnel or after
    ``pop_eth``); ``protocol`` is ``skb->protocol``.  VLAN protocols are invalid."""
    if protocol in (ETH_P_8021Q, ETH_P_8021AD):
        return None
    return _l3l4(data, len(data), 0, md, tun, protocol, _ZERO8, _ZERO12, False)


def _l4_ports(data: bytes, th: int, proto: int, n: int) -> tuple[int, int, int]:
    """tp.src, tp.dst, tp.flags for TCP/UDP/SCTP at offset ``th`` (zero when the
    header is truncated, as ``tcphdr_ok``/``udphdr_ok``/``sctphdr_ok``)."""
    if proto == IPPROTO_TCP:
        if th + 20 <= n:
            doff = (data[th + 12] >> 4) * 4
            if doff >= 20 and th + doff <= n:
                return (
                    (data[th] << 8) | data[th + 1],
                    (data[th + 2] << 8) | data[th + 3],
                    ((data[th + 12] << 8) | data[th + 13]) & 0x0FFF,
                )
        return 0, 0, 0
    if proto == IPPROTO_UDP:
        if th + 8 <= n:
            return (data[th] << 8) | data[th + 1], (data[th + 2] << 8) | data[th + 3], 0
        return 0, 0, 0
    if proto == IPPROTO_SCTP:
        if th + 12 <= n:
            return (data[th] << 8) | data[th + 1], (data[th + 2] << 8) | data[th + 3], 0
        return 0, 0, 0
    return 0, 0, 0


def _l3l4(
    data: bytes,
    n: int,
    nh: int,
    md: int,
    tun: int,
    eth_type: int,
    vlans: bytes,
    eth: bytes,
    gso_udp: bool,
) -> int:
    """``key_extract_l3l4``: network and transport layers from offset ``nh``."""
    proto = tos = ttl = frag = 0
    addrs = _ZERO8
    tp_src = tp_dst = tp_flags = 0
    rare = 0
    if eth_type == ETH_P_IP:
        if nh + 20 <= n:
            ihl = (data[nh] & 0x0F) * 4
            if ihl >= 20 and nh + ihl <= n:
                (_vi, tos, _tl, _id, frag_off, ttl, proto, _cs, s4, d4) = _IPV4_FIXED.unpack_from(
                    data, nh
                )
                addrs = s4 + d4
                if frag_off & 0x1FFF:
                    frag = OVS_FRAG_TYPE_LATER
                else:
                    frag = OVS_FRAG_TYPE_FIRST if (frag_off & 0x2000 or gso_udp) else 0
                    th = nh + ihl
                    if proto == IPPROTO_ICMP:
                        if th + 8 <= n:
                            tp_src = data[th]
                            tp_dst = data[th + 1]
                    else:
                        tp_src, tp_dst, tp_flags = _l4_ports(data, th, proto, n)
    elif eth_type == ETH_P_ARP or eth_type == ETH_P_RARP:
        if nh + 28 <= n:
            hrd, pro, hln, pln, op, sha, sip, tha, tip = _ARP.unpack_from(data, nh)
            if hrd == 1 and pro == ETH_P_IP and hln == 6 and pln == 4:
                proto = op if op <= 0xFF else 0
                addrs = sip + tip
                rare = int.from_bytes(sha + tha, "big") << _ARP_SHIFT
    elif eth_type == ETH_P_IPV6:
        if nh + 40 <= n:
            word0, _nxt, hlim, s6, d6 = _IPV6_FIXED.unpack_from(data, nh)
            tos = (word0 >> 20) & 0xFF
            ttl = hlim
            label = word0 & 0xFFFFF
            proto = NEXTHDR_NONE
            nexthdr, th, fo, is_frag = _ipv6_find_hdr(data, nh)
            later = False
            if is_frag:
                if fo:
                    # Kernel parse_ipv6hdr(): later fragments report NEXTHDR_FRAGMENT.
                    frag = OVS_FRAG_TYPE_LATER
                    proto = NEXTHDR_FRAGMENT
                    later = True
                else:
                    frag = OVS_FRAG_TYPE_FIRST
            if not later and nexthdr >= 0:
                proto = nexthdr
                if gso_udp:
                    frag = OVS_FRAG_TYPE_FIRST
                if proto == IPPROTO_ICMPV6:
                    if th + 8 <= n:
                        tp_src = data[th]
                        tp_dst = data[th + 1]
                        if tp_dst == 0 and (
                            tp_src == ND_NEIGHBOR_SOLICIT or tp_src == ND_NEIGHBOR_ADVERT
                        ):
                            rare |= _parse_nd(data, th, n)
                else:
                    tp_src, tp_dst, tp_flags = _l4_ports(data, th, proto, n)
            rare |= (
                (int.from_bytes(s6, "big") << 160) | (int.from_bytes(d6, "big") << 32) | label
            ) << _IPV6_SHIFT
    elif eth_type == ETH_P_MPLS_UC or eth_type == ETH_P_MPLS_MC:
        rare = _parse_mpls(data, nh, n)
    key = md | int.from_bytes(
        _HOT.pack(
            b"", vlans, eth, eth_type, frag, tos, ttl, proto, addrs, tp_src, tp_dst, tp_flags
        ),
        "big",
    )
    if rare:
        key |= rare
    if tun:
        key |= tun
    return key


def _ipv6_find_hdr(data: bytes, nh: int) -> tuple[int, int, int, bool]:
    """The kernel's ``ipv6_find_hdr(skb, &offset, -1, &frag_off, &flags)``.

    Returns ``(nexthdr or negative errno, payload offset, frag_off, is_fragment)``.
    """
    n = len(data)
    start = nh + 40
    nexthdr = data[nh + 6]
    frag_off = 0
    is_frag = False
    while True:
        if nexthdr not in _IPV6_EXT or nexthdr == NEXTHDR_NONE:
            return nexthdr, start, frag_off, is_frag
        if start + 2 > n:
            return -74, start, frag_off, is_frag  # -EBADMSG
        if nexthdr == NEXTHDR_ROUTING and start + 4 > n:
            return -74, start, frag_off, is_frag
        hp_nexthdr = data[start]
        if nexthdr == NEXTHDR_FRAGMENT:
            is_frag = True
            if start + 4 > n:
                return -74, start, frag_off, is_frag
            fo = ((data[start + 2] << 8) | data[start + 3]) & ~0x7
            if fo:
                if hp_nexthdr not in _IPV6_EXT or hp_nexthdr == NEXTHDR_NONE:
                    return hp_nexthdr, start, fo, is_frag
                return -2, start, frag_off, is_frag  # -ENOENT
            hdrlen = 8
        elif nexthdr == NEXTHDR_AUTH:
            hdrlen = (data[start + 1] + 2) << 2
        else:
            hdrlen = (data[start + 1] + 1) << 3
        nexthdr = hp_nexthdr
        start += hdrlen


def _parse_mpls(data: bytes, nh: int, n: int) -> int:
    lses = [0, 0, 0]
    count = 1
    while True:
        if nh + count * 4 > n:
            # Truncated stack: the kernel keeps what it read but no label mask.
            return ((lses[0] << 72) | (lses[1] << 40) | (lses[2] << 8)) << _MPLS_SHIFT
        off = nh + (count - 1) * 4
        lse = (data[off] << 24) | (data[off + 1] << 16) | (data[off + 2] << 8) | data[off + 3]
        if count <= MPLS_LABEL_DEPTH:
            lses[count - 1] = lse
        if lse & MPLS_LS_S_MASK:
            break
        count += 1
    if count > MPLS_LABEL_DEPTH:
        count = MPLS_LABEL_DEPTH
    nmask = (1 << count) - 1
    return ((lses[0] << 72) | (lses[1] << 40) | (lses[2] << 8) | nmask) << _MPLS_SHIFT


def _parse_nd(data: bytes, th: int, n: int) -> int:
    """``parse_icmpv6`` for NS/NA: target, sll, tll as key bits (nd block)."""
    icmp_len = n - th
    if icmp_len < 24:
        return 0
    target = int.from_bytes(data[th + 8 : th + 24], "big")
    sll = tll = 0
    icmp_len -= 24
    off = th + 24
    while icmp_len >= 8:
        opt_type = data[off]
        opt_len = data[off + 1] * 8
        if not opt_len or opt_len > icmp_len:
            break
        if opt_type == ND_OPT_SOURCE_LL_ADDR and opt_len == 8:
            if sll:
                return 0
            sll = int.from_bytes(data[off + 2 : off + 8], "big")
        elif opt_type == ND_OPT_TARGET_LL_ADDR and opt_len == 8:
            if tll:
                return 0
            tll = int.from_bytes(data[off + 2 : off + 8], "big")
        icmp_len -= opt_len
        off += opt_len
    return ((target << 96) | (sll << 48) | tll) << _ND_SHIFT


# --------------------------------------------------------------------------
# The raw-window cache
#
# For the commonest frames -- untagged IPv4 with a 20-byte header, not a
# fragment, carrying TCP or UDP -- the key is a function of the first 48
# bytes of the frame minus the bytes that change per packet (IP length, id
# and checksum, TCP sequence and acknowledgment numbers, UDP length, checksum
# and payload), plus the frame length (whether the L4 header is all there)
# and the port's metadata.  The datapath keeps, per input port, a cache from
# that masked window to the key and its flow, and skips key extraction on a
# hit.  The masks keep the Ethernet type, the version/IHL byte, the fragment
# word and the protocol byte, so a hit implies the same packet class as the
# frame the entry was made from; the entry records the minimum frame length.

RAW_WINDOW: Final = 48


def _raw_window_mask(*keep: tuple[int, int]) -> int:
    m = 0
    for lo, hi in keep:
        for i in range(lo, hi):
            m |= 0xFF << ((RAW_WINDOW - 1 - i) * 8)
    return m


#: eth 0-13, version/IHL 14, TOS 15, fragment word 20-21, TTL and protocol
#: 22-23, addresses 26-33, ports 34-37
RAW_MASK_UDP: Final = _raw_window_mask((0, 16), (20, 24), (26, 38))
#: ... plus the TCP data offset and flags (46-47)
RAW_MASK_TCP: Final = _raw_window_mask((0, 16), (20, 24), (26, 38), (46, 48))
#: window mask by the frame's byte 23 (the IPv4 protocol if the frame is IPv4)
RAW_MASKS: Final[tuple[int, ...]] = tuple(
    RAW_MASK_TCP if p == IPPROTO_TCP else RAW_MASK_UDP if p == IPPROTO_UDP else 0
    for p in range(256)
)


def raw_min_len(data: bytes) -> int:
    """If ``data`` may be cached by its raw window, the frame length an entry
    made from it requires (so that the same L4 header is present); else 0."""
    if (
        len(data) < RAW_WINDOW
        or data[12] != 0x08
        or data[13] != 0x00
        or data[14] != 0x45
        or data[20] & 0x3F
        or data[21]
    ):
        return 0
    proto = data[23]
    if proto == IPPROTO_UDP:
        return RAW_WINDOW
    if proto == IPPROTO_TCP:
        doff = (data[46] >> 4) * 4
        if doff < 20 or 34 + doff > len(data):
            return 0
        return max(RAW_WINDOW, 34 + doff)
    return 0


# --------------------------------------------------------------------------
# Hashing


def key_hash(key: int) -> int:
    """The packet hash (``skb_get_hash``) derived from a key: a 32-bit, never-zero
    hash of the L3 addresses, protocol and L4 ports (the flow dissector's inputs),
    falling back to the Ethernet addresses and type for non-IP frames.
    Deterministic across processes (Python hashes of ints and tuples are not
    randomised).  The mask cache indexes with each of the 4 bytes, so every
    field must reach every byte: a bare int hash leaves whole fields out of the
    low byte, and the 1-tuple hash alone still does for ``ipv4_dst``; folding
    its high half into the low half fixes both."""
    l34 = key & _HASH_L34
    if not l34:
        l34 = key & _HASH_L2
    h = hash((l34,))
    return ((h ^ (h >> 32)) & 0xFFFFFFFF) or 1


_HASH_L34: Final = (
    field_mask("ipv4_src")
    | field_mask("ipv4_dst")
    | field_mask("ip_proto")
    | field_mask("tp_src")
    | field_mask("tp_dst")
    | field_mask("ipv6_src")
    | field_mask("ipv6_dst")
)
_HASH_L2: Final = field_mask("eth_src") | field_mask("eth_dst") | field_mask("eth_type")


# --------------------------------------------------------------------------
# Convenience


def extract(
    data: bytes,
    in_port: int = 0,
    *,
    priority: int = 0,
    skb_mark: int = 0,
    recirc_id: int = 0,
    tun: int = 0,
) -> int | None:
    """Key of a frame received on ``in_port`` (for tools and tests)."""
    return key_extract(
        data, md_bits(in_port, recirc_id=recirc_id, priority=priority, skb_mark=skb_mark), tun
    )
