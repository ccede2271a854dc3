"""Flow key/mask ints <-> ODP key attributes (pyvswitch.flow_netlink), checked
against the kernel's __ovs_nla_put_key / ovs_nla_get_match rules (notes §2.2, §2.5)."""

from __future__ import annotations

import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, LLC, Dot1AD, Dot1Q, Dot3, Ether

from pyvswitch import flow as F
from pyvswitch import uapi as U
from pyvswitch.errors import FlowError
from pyvswitch.flow_netlink import (
    Attr,
    Encap,
    all_ones,
    attr_id,
    exact_mask,
    key_attrs,
    key_streams,
    match_from_attrs,
    pair_attrs,
    put_key,
    split_attrs,
)
from pyvswitch.uapi import (
    Arp,
    Ethernet,
    Icmpv6,
    Ipv4,
    Ipv6,
    Mpls,
    Nd,
    Scalar,
    Tcp,
    Tunnel,
    Udp,
)

K = U
SRC = "00:00:00:00:00:01"
DST = "00:00:00:00:00:02"
ETH = Ether(src=SRC, dst=DST)


def key_of(pkt: object, in_port: int = 3, **kw: int) -> int:
    k = F.extract(bytes(pkt), in_port, **kw)  # type: ignore[call-overload]
    assert k is not None
    return k


def ids(stream: tuple[object, ...]) -> list[int]:
    return [attr_id(a) for a in stream]  # type: ignore[arg-type]


TCP_KEY = key_of(ETH / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80, flags="S"))


# --------------------------------------------------------------------------- emission order


def test_kernel_emit_order_tcp() -> None:
    ks = put_key(TCP_KEY, TCP_KEY)
    assert ids(ks) == [
        K.OVS_KEY_ATTR_RECIRC_ID,
        K.OVS_KEY_ATTR_DP_HASH,
        K.OVS_KEY_ATTR_PRIORITY,
        K.OVS_KEY_ATTR_IN_PORT,
        K.OVS_KEY_ATTR_SKB_MARK,
        K.OVS_KEY_ATTR_CT_STATE,
        K.OVS_KEY_ATTR_CT_ZONE,
        K.OVS_KEY_ATTR_CT_MARK,
        K.OVS_KEY_ATTR_CT_LABELS,
        K.OVS_KEY_ATTR_ETHERNET,
        K.OVS_KEY_ATTR_ETHERTYPE,
        K.OVS_KEY_ATTR_IPV4,
        K.OVS_KEY_ATTR_TCP,
        K.OVS_KEY_ATTR_TCP_FLAGS,
    ]
    assert ks[3] == Scalar(K.OVS_KEY_ATTR_IN_PORT, 3)
    assert ks[9] == Ethernet(src=0x000000000001, dst=0x000000000002)
    assert ks[11] == Ipv4(src=0x0A000001, dst=0x0A000002, proto=6, tos=0, ttl=64, frag=0)
    assert ks[12] == Tcp(src=1234, dst=80)
    assert ks[13] == Scalar(K.OVS_KEY_ATTR_TCP_FLAGS, 0x002)


def test_userspace_emit_order_has_packet_type_and_optional_tcp_flags() -> None:
    ks = put_key(TCP_KEY, TCP_KEY, style="userspace", mask=None)
    assert ids(ks) == [
        K.OVS_KEY_ATTR_PRIORITY,
        K.OVS_KEY_ATTR_SKB_MARK,
        K.OVS_KEY_ATTR_CT_STATE,
        K.OVS_KEY_ATTR_CT_ZONE,
        K.OVS_KEY_ATTR_CT_MARK,
        K.OVS_KEY_ATTR_CT_LABELS,
        K.OVS_KEY_ATTR_RECIRC_ID,
        K.OVS_KEY_ATTR_DP_HASH,
        K.OVS_KEY_ATTR_IN_PORT,
        K.OVS_KEY_ATTR_PACKET_TYPE,
        K.OVS_KEY_ATTR_ETHERNET,
        K.OVS_KEY_ATTR_ETHERTYPE,
        K.OVS_KEY_ATTR_IPV4,
        K.OVS_KEY_ATTR_TCP,
        K.OVS_KEY_ATTR_TCP_FLAGS,  # the SYN flag is set
    ]
    no_flags = F.key_set(TCP_KEY, "tcp_flags", 0)
    assert K.OVS_KEY_ATTR_TCP_FLAGS not in ids(put_key(no_flags, no_flags, style="userspace"))
    # ... unless the mask matches TCP flags.
    mask = F.field_mask("tcp_flags")
    ks, ms = key_streams(no_flags, mask, style="userspace")
    assert ids(ks)[-1] == K.OVS_KEY_ATTR_TCP_FLAGS
    assert ms is not None and ids(ms)[-1] == K.OVS_KEY_ATTR_TCP_FLAGS


def test_vlan_nests_into_encap() -> None:
    k = key_of(ETH / Dot1Q(vlan=99, prio=7) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP())
    ks = put_key(k, k)
    assert ids(ks)[-4:] == [
        K.OVS_KEY_ATTR_ETHERNET,
        K.OVS_KEY_ATTR_ETHERTYPE,
        K.OVS_KEY_ATTR_VLAN,
        K.OVS_KEY_ATTR_ENCAP,
    ]
    assert ks[-3] == Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x8100)
    assert ks[-2] == Scalar(K.OVS_KEY_ATTR_VLAN, 0x1000 | (7 << 13) | 99)
    encap = ks[-1]
    assert isinstance(encap, Encap)
    assert ids(encap.attrs) == [K.OVS_KEY_ATTR_ETHERTYPE, K.OVS_KEY_ATTR_IPV4, K.OVS_KEY_ATTR_UDP]
    # The mask puts 0xffff in the TPID ethertype position.
    ms = put_key(k, exact_mask(k), is_mask=True)
    assert ms[-3] == Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF)


def test_qinq_nests_twice() -> None:
    k = key_of(ETH / Dot1AD(vlan=10) / Dot1Q(vlan=20) / IP() / ICMP())
    ks = put_key(k, k)
    outer = ks[-1]
    assert isinstance(outer, Encap)
    assert ks[-3] == Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x88A8)
    assert outer.attrs[0] == Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x8100)
    assert outer.attrs[1] == Scalar(K.OVS_KEY_ATTR_VLAN, 0x1000 | 20)
    inner = outer.attrs[2]
    assert isinstance(inner, Encap)
    assert ids(inner.attrs) == [K.OVS_KEY_ATTR_ETHERTYPE, K.OVS_KEY_ATTR_IPV4, K.OVS_KEY_ATTR_ICMP]


def test_truncated_vlan_tag_gives_empty_encap() -> None:
    # TPID seen but no room for the tag: TCI 0, eth_type = the TPID.
    k = key_of(bytes(ETH)[:12] + b"\x81\x00\x00")
    assert F.key_get(k, "vlan_tci") == 0
    ks = put_key(k, k)
    assert ks[-1] == Encap(())
    assert ks[-2] == Scalar(K.OVS_KEY_ATTR_VLAN, 0)


@pytest.mark.parametrize(
    ("pkt", "has_nd"),
    [
        (ICMPv6ND_NS(tgt="fe80::2"), True),
        (ICMPv6ND_NA(tgt="fe80::2"), True),
        (ICMPv6ND_NS(tgt="fe80::2", code=1), False),
        (ICMPv6EchoRequest(), False),
    ],
)
def test_nd_only_for_ns_na_with_code_zero(pkt: object, has_nd: bool) -> None:
    k = key_of(ETH / IPv6(src="fe80::1", dst="fe80::2") / pkt)  # type: ignore[operator]
    ks = put_key(k, k)
    assert (K.OVS_KEY_ATTR_ND in ids(ks)) is has_nd
    assert ids(ks)[ids(ks).index(K.OVS_KEY_ATTR_ICMPV6)] == K.OVS_KEY_ATTR_ICMPV6
    if has_nd:
        nd = ks[-1]
        assert isinstance(nd, Nd) and nd.target == 0xFE80 << 112 | 2


def test_802_2_frame_has_no_ethertype_in_key_but_in_mask() -> None:
    k = key_of(Dot3(src=SRC, dst=DST) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / (b"x" * 40))
    assert F.key_get(k, "eth_type") == F.ETH_P_802_2
    ks, ms = key_streams(k, exact_mask(k))
    assert ids(ks)[-1] == K.OVS_KEY_ATTR_ETHERNET
    assert ms is not None and ms[-1] == Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF)
    # A wildcarded ethertype leaves it out of the mask too.
    _, ms2 = key_streams(k, exact_mask(k) & ~F.field_mask("eth_type"))
    assert ms2 is not None and K.OVS_KEY_ATTR_ETHERTYPE not in ids(ms2)


def test_in_port_none_is_omitted_unless_exactly_masked() -> None:
    k = F.key_set(TCP_KEY, "in_port", F.DP_MAX_PORTS)
    ks, ms = key_streams(k, 0)
    assert K.OVS_KEY_ATTR_IN_PORT not in ids(ks)
    assert ms is not None and K.OVS_KEY_ATTR_IN_PORT not in ids(ms)
    _, ms = key_streams(k, F.field_mask("in_port"))
    assert ms is not None and Scalar(K.OVS_KEY_ATTR_IN_PORT, 0xFFFFFFFF) in ms
    # A real port's mask carries 0xffff in the upper half (kernel).
    _, ms = key_streams(TCP_KEY, F.key_from_fields(in_port=0x00FF))
    assert ms is not None and Scalar(K.OVS_KEY_ATTR_IN_PORT, 0xFFFF00FF) in ms


def test_mpls_uses_num_labels_mask() -> None:
    k = key_of(ETH / MPLS(label=5, s=0, ttl=9) / MPLS(label=6, ttl=10) / IP())
    assert F.key_get(k, "mpls_num_labels_mask") == 0b11
    ks = put_key(k, k)
    assert ks[-1] == Mpls(((5 << 12) | 9, (6 << 12) | 0x100 | 10))
    # The mask stream counts the mask's labels.
    m = exact_mask(k)
    assert F.key_get(m, "mpls_num_labels_mask") == 0b11
    one = F.key_set(m, "mpls_num_labels_mask", 0b1)
    ms = put_key(k, one, is_mask=True)
    assert ms[-1] == Mpls((0xFFFFFFFF,))


def test_l3_packet_has_no_ethernet() -> None:
    md = F.md_bits(5, mac_proto=F.MAC_PROTO_NONE)
    k = F.key_extract_l3(
        bytes(IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=1, dport=2)), 0x0800, md
    )
    assert k is not None
    ks = put_key(k, k)
    assert K.OVS_KEY_ATTR_ETHERNET not in ids(ks)
    assert ids(ks)[-3:] == [K.OVS_KEY_ATTR_ETHERTYPE, K.OVS_KEY_ATTR_IPV4, K.OVS_KEY_ATTR_UDP]
    us = put_key(k, k, style="userspace")
    assert Scalar(K.OVS_KEY_ATTR_PACKET_TYPE, (1 << 16) | 0x0800) in us


def test_arp_op_kernel_vs_userspace() -> None:
    k = key_of(ETH / ARP(op=1, psrc="10.0.0.1", pdst="10.0.0.2"))
    m = exact_mask(k)
    ms_k = put_key(k, m, is_mask=True)
    ms_u = put_key(k, m, is_mask=True, style="userspace")
    assert next(a for a in ms_k if isinstance(a, Arp)).op == 0x00FF  # kernel keeps 8 bits
    assert next(a for a in ms_u if isinstance(a, Arp)).op == 0xFFFF  # get_arp_key()


def tunnel_key(**kw: int) -> int:
    tun = F.tunnel_key_bits(
        tun_id=0x7B,
        ipv4_src=0x01010101,
        ipv4_dst=0x02020202,
        ttl=64,
        flags=F.TUNNEL_KEY | F.TUNNEL_CSUM,
        **kw,  # type: ignore[arg-type]
    )
    return TCP_KEY | tun


def test_tunnel_emission() -> None:
    k = tunnel_key()
    ks = put_key(k, k)
    assert ids(ks)[:4] == [
        K.OVS_KEY_ATTR_RECIRC_ID,
        K.OVS_KEY_ATTR_DP_HASH,
        K.OVS_KEY_ATTR_PRIORITY,
        K.OVS_KEY_ATTR_TUNNEL,
    ]
    assert ks[3] == Tunnel(
        tun_id=0x7B,
        ipv4_src=0x01010101,
        ipv4_dst=0x02020202,
        ttl=64,
        flags=F.TUNNEL_KEY | F.TUNNEL_CSUM,
    )
    # ID only with TUNNEL_KEY.
    nokey = F.key_set(k, "tun_flags", F.TUNNEL_CSUM)
    t = put_key(nokey, nokey)[3]
    assert isinstance(t, Tunnel) and t.tun_id == 0 and not t.flags & F.TUNNEL_KEY
    # A key without tunnel has no TUNNEL attribute, its mask always has one.
    assert K.OVS_KEY_ATTR_TUNNEL not in ids(put_key(TCP_KEY, TCP_KEY))
    assert K.OVS_KEY_ATTR_TUNNEL in ids(put_key(TCP_KEY, 0, is_mask=True))


def test_tunnel_options_geneve_and_vxlan() -> None:
    opts = bytes.fromhex("0102800100000a0b")
    k = TCP_KEY | F.tunnel_key_bits(
        ipv4_dst=1, ttl=1, flags=F.TUNNEL_GENEVE_OPT | F.TUNNEL_OAM, opts=opts
    )
    t = put_key(k, k)[3]
    assert isinstance(t, Tunnel)
    assert t.geneve_opts == opts and t.gbp is None
    assert t.flags == F.TUNNEL_GENEVE_OPT | F.TUNNEL_OAM
    k2 = TCP_KEY | F.tunnel_key_bits(
        ipv4_dst=1, ttl=1, flags=F.TUNNEL_VXLAN_OPT, opts=(0x40000A).to_bytes(4, "big")
    )
    t2 = put_key(k2, k2)[3]
    assert isinstance(t2, Tunnel) and t2.gbp == 0x40000A and t2.geneve_opts == b""
    key, mask = match_from_attrs(put_key(k2, k2))
    assert key == k2
    assert F.key_get(mask, "tun_opts_len") == 0xFF


def test_ipv6_tunnel() -> None:
    k = TCP_KEY | F.tunnel_key_bits(ipv6_dst=1 << 100, ipv6_src=5, ttl=9, ipv6=True)
    t = put_key(k, k)[3]
    assert isinstance(t, Tunnel) and t.ipv6_dst == 1 << 100 and t.ipv4_dst == 0
    assert match_from_attrs(put_key(k, k))[0] == k


# --------------------------------------------------------------------------- parsing


FRAMES = [
    ETH / IP(src="10.0.0.1", dst="10.0.0.2", tos=4) / TCP(sport=1234, dport=80, flags="SA"),
    ETH / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2),
    ETH / IP(src="10.0.0.1", dst="10.0.0.2", frag=100, proto=17) / (b"x" * 20),
    ETH / ARP(psrc="10.0.0.1", pdst="10.0.0.2", hwsrc=SRC),
    ETH / Dot1Q(vlan=99, prio=7) / IP() / UDP(),
    ETH / Dot1AD(vlan=10) / Dot1Q(vlan=20) / IP() / ICMP(),
    ETH / IPv6(src="2001::1", dst="2001::2", fl=0x12345, tc=0x80) / UDP(sport=5, dport=6),
    ETH / IPv6(src="fe80::1", dst="ff02::1") / ICMPv6ND_NS(tgt="fe80::2"),
    Dot3(src=SRC, dst=DST) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / (b"x" * 40),
    ETH / MPLS(label=100, ttl=64) / IP() / UDP(),
]


@pytest.mark.parametrize("style", ["kernel", "userspace"])
@pytest.mark.parametrize("pkt", FRAMES, ids=lambda p: p.summary())
def test_streams_round_trip_exact(pkt: object, style: str) -> None:
    k = key_of(pkt)
    m = exact_mask(k)
    ks, ms = key_streams(k, m, style=style)  # type: ignore[arg-type]
    assert match_from_attrs(ks, ms, style=style) == (k, m)  # type: ignore[arg-type]


def test_absent_mask_means_exact_on_what_the_key_specifies() -> None:
    ks = put_key(TCP_KEY, TCP_KEY)
    key, mask = match_from_attrs(ks)
    assert key == TCP_KEY
    for name, ones in [
        ("eth_src", (1 << 48) - 1),
        ("eth_type", 0xFFFF),
        ("ipv4_src", 0xFFFFFFFF),
        ("ip_frag", 0xFF),
        ("tp_dst", 0xFFFF),
        ("in_port", 0xFFFF),
        ("mac_proto", 0xFF),
        ("vlan_tci", 0xFFFF),  # "always match on tci": exactly untagged
        ("ct_state", 0xFF),
    ]:
        assert F.key_get(mask, name) == ones, name
    # Fields the key does not specify stay wildcarded.
    assert F.key_get(mask, "nd_target") == 0
    assert F.key_get(mask, "tun_proto") == 0


def test_exact_tunnel_mask_memsets_tun_key_but_keeps_flag_set() -> None:
    k = tunnel_key(tos=0, tp_src=0)
    _, mask = match_from_attrs(put_key(k, k))
    for name in ("tun_id", "tun_ipv4_src", "tun_tos", "tun_tp_src", "tun_ttl"):
        assert F.key_get(mask, name) == (1 << F.FIELDS[name][1]) - 1, name
    assert F.key_get(mask, "tun_flags") == F.TUNNEL_KEY | F.TUNNEL_CSUM
    assert F.key_get(mask, "tun_proto") == 0xFF


def test_mask_attributes_absent_are_wildcarded_and_in_port_forced_exact() -> None:
    ks = (
        Scalar(K.OVS_KEY_ATTR_IN_PORT, 7),
        Ethernet(1, 2),
        Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x0800),
        Ipv4(src=5, proto=6, frag=0),
        Tcp(src=1, dst=2),
        Scalar(K.OVS_KEY_ATTR_TCP_FLAGS, 0),
    )
    ms = (
        Scalar(K.OVS_KEY_ATTR_IN_PORT, 0xFF),
        Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x0F00),
        Ipv4(src=0xFFFF0000, proto=0xFF, frag=0xFF),
        Tcp(dst=0xFFF0),
    )
    key, mask = match_from_attrs(ks, ms)
    assert F.key_get(mask, "in_port") == 0xFFFF  # always exact
    assert F.key_get(mask, "eth_type") == 0xFFFF  # always exact
    assert F.key_get(mask, "eth_src") == 0
    assert F.key_get(mask, "ipv4_src") == 0xFFFF0000
    assert F.key_get(mask, "tp_dst") == 0xFFF0 and F.key_get(mask, "tp_src") == 0
    assert F.key_get(mask, "tun_proto") == 0  # no tunnel() in the mask
    assert F.key_get(key, "ipv4_src") == 5


ETH_IP = (Ethernet(1, 2), Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x0800))


@pytest.mark.parametrize(
    ("key", "mask", "message"),
    [
        # L3 mask needs an exact eth_type.
        ((*ETH_IP, Ipv4(src=1)), (Ipv4(src=0xFFFFFFFF),), "L3 fields need an exact eth_type"),
        # L4 mask needs an exact ip proto ...
        (
            (*ETH_IP, Ipv4(proto=6), Tcp(dst=80), Scalar(K.OVS_KEY_ATTR_TCP_FLAGS, 0)),
            (Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF), Ipv4(src=1), Tcp(dst=0xFFFF)),
            "L4 fields need an exact IP proto",
        ),
        # ... and frag != later.
        (
            (*ETH_IP, Ipv4(proto=17, frag=2), Udp(dst=80)),
            (Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF), Ipv4(proto=0xFF, frag=0xFF), Udp(dst=1)),
            "unexpected mask for udp",
        ),
        # ND needs an exact ICMPv6 type.
        (
            (
                Ethernet(),
                Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x86DD),
                Ipv6(proto=58),
                Icmpv6(type=135),
                Nd(target=1),
            ),
            (
                Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF),
                Ipv6(proto=0xFF),
                Icmpv6(code=0xFF),
                Nd(target=1),
            ),
            "nd() needs an exact ICMPv6 type",
        ),
        # Expected attributes.
        (ETH_IP, None, "missing key attribute(s): ipv4"),
        ((*ETH_IP, Ipv4(proto=6)), None, "missing key attribute(s): tcp, tcp_flags"),
        (
            (Ethernet(), Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x0806)),
            None,
            "missing key attribute(s): arp",
        ),
        # VLAN rules.
        (
            (
                Ethernet(),
                Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x8100),
                Scalar(K.OVS_KEY_ATTR_VLAN, 0x0005),
                Encap(),
            ),
            None,
            "does not have the CFI bit",
        ),
        (
            (
                Ethernet(),
                Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x8100),
                Scalar(K.OVS_KEY_ATTR_VLAN, 0),
                Encap((Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x0800),)),
            ),
            None,
            "truncated VLAN header",
        ),
        (
            (Ethernet(), Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x8100)),
            None,
            "a VLAN key needs vlan() and encap()",
        ),
        # Tunnel keys need a destination.
        ((Tunnel(ttl=64), Ethernet()), None, "tunnel dst address not specified"),
        ((Tunnel(ipv4_src=1, ttl=64), Ethernet()), None, "IPv4 tunnel dst address is zero"),
        ((Tunnel(ipv4_dst=1, ipv6_dst=1), Ethernet()), None, "mixed IPv4 and IPv6"),
        (
            (Tunnel(ipv4_dst=1, geneve_opts=b"\x00\x01\x02"), Ethernet()),
            None,
            "not a multiple of 4",
        ),
        # recirc_id exact.
        (
            (Scalar(K.OVS_KEY_ATTR_RECIRC_ID, 1), Ethernet()),
            (Scalar(K.OVS_KEY_ATTR_RECIRC_ID, 0xFF),),
            "recirc_id must be matched exactly",
        ),
        # Metadata ranges.
        ((Scalar(K.OVS_KEY_ATTR_IN_PORT, 0xFFFF), Ethernet()), None, "exceeds max allowable"),
        (
            (Ethernet(), Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x0004)),
            None,
            "is less than min 0x600",
        ),
        ((Scalar(K.OVS_KEY_ATTR_SKB_MARK, 1),), None, "Ethernet header or an EtherType"),
        ((Ethernet(), Ethernet()), None, "duplicate key (eth)"),
        ((Scalar(K.OVS_KEY_ATTR_NSH, 0), Ethernet()), None, "nsh is not supported"),
        ((Scalar(K.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4, 0),), None, "ct_tuple4 is not supported"),
        # Unexpected mask for an attribute the key lacks.
        ((Ethernet(),), (Scalar(K.OVS_KEY_ATTR_SKB_MARK, 1),), "unexpected mask for skb_mark"),
        # MPLS depth.
        (
            (Ethernet(), Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x8847), Mpls((1, 2, 3, 4))),
            None,
            "1 to 3 labels",
        ),
    ],
)
def test_match_validate_errors(
    key: tuple[object, ...], mask: tuple[object, ...] | None, message: str
) -> None:
    with pytest.raises(FlowError) as e:
        match_from_attrs(key, mask)  # type: ignore[arg-type]
    assert message in str(e.value)


def test_valid_variants_of_the_error_cases_pass() -> None:
    # Same as the L4 case, with an exact proto: accepted.
    key, mask = match_from_attrs(
        (*ETH_IP, Ipv4(proto=6), Tcp(dst=80), Scalar(K.OVS_KEY_ATTR_TCP_FLAGS, 0)),
        (Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF), Ipv4(proto=0xFF), Tcp(dst=0xFFFF)),
    )
    assert F.key_get(key, "tp_dst") == 80 and F.key_get(mask, "tp_dst") == 0xFFFF
    # Zero mask attributes count as absent (parse_flow_mask_nlattrs' nz).
    match_from_attrs((*ETH_IP, Ipv4(src=1)), (Ipv4(),))
    # A truncated tag with an empty encap is a valid key; the mask cannot
    # mention vlan() (an empty mask encap() counts as absent, as in the kernel).
    trunc = (
        Ethernet(),
        Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x8100),
        Scalar(K.OVS_KEY_ATTR_VLAN, 0),
        Encap(),
    )
    key, mask = match_from_attrs(trunc, (Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF),))
    assert F.key_get(key, "vlan_tpid") == 0x8100 and F.key_get(mask, "vlan_tci") == 0xFFFF
    with pytest.raises(FlowError, match="VLAN attribute unexpected"):
        match_from_attrs(trunc)


def test_vlan_mask_rules() -> None:
    key = (
        Ethernet(),
        Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x8100),
        Scalar(K.OVS_KEY_ATTR_VLAN, 0x1005),
        Encap((Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x0800), Ipv4())),
    )
    ok_mask = (
        Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF),
        Scalar(K.OVS_KEY_ATTR_VLAN, 0x1FFF),
        Encap((Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF),)),
    )
    k, m = match_from_attrs(key, ok_mask)
    assert F.key_get(m, "vlan_tci") == 0x1FFF and F.key_get(m, "vlan_tpid") == 0xFFFF
    assert F.key_get(k, "eth_type") == 0x0800 and F.key_get(m, "eth_type") == 0xFFFF
    with pytest.raises(FlowError, match="exact match on the VLAN TPID"):
        match_from_attrs(key, (Scalar(K.OVS_KEY_ATTR_VLAN, 0x1FFF), ok_mask[2]))
    with pytest.raises(FlowError, match="CFI bit"):
        match_from_attrs(key, (ok_mask[0], Scalar(K.OVS_KEY_ATTR_VLAN, 0x0FFF), ok_mask[2]))


def test_packet_type_maps_to_mac_proto() -> None:
    l3 = (
        Scalar(K.OVS_KEY_ATTR_PACKET_TYPE, (1 << 16) | 0x0800),
        Ipv4(src=1),
    )
    key, mask = match_from_attrs(l3)
    assert F.key_get(key, "mac_proto") == F.MAC_PROTO_NONE
    assert F.key_get(key, "eth_type") == 0x0800 and F.key_get(mask, "eth_type") == 0xFFFF
    eth = (
        Scalar(K.OVS_KEY_ATTR_PACKET_TYPE, 0),
        Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0x0800),
        Ipv4(src=1),
    )
    key, mask = match_from_attrs(
        eth, (Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF),), style="userspace"
    )
    assert F.key_get(key, "mac_proto") == F.MAC_PROTO_ETHERNET
    # userspace: packet_type absent from the mask = wildcarded; recirc_id exact.
    assert F.key_get(mask, "mac_proto") == 0
    assert F.key_get(mask, "recirc_id") == 0xFFFFFFFF
    # kernel: mac_proto always exact, recirc_id as given (absent = wildcard).
    key, mask = match_from_attrs(eth, (Scalar(K.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF),))
    assert F.key_get(mask, "mac_proto") == 0xFF
    assert F.key_get(mask, "recirc_id") == 0


def test_userspace_does_not_require_tcp_flags() -> None:
    key = (*ETH_IP, Ipv4(proto=6), Tcp(dst=80))
    with pytest.raises(FlowError, match="tcp_flags"):
        match_from_attrs(key)
    k, _ = match_from_attrs(key, style="userspace")
    assert F.key_get(k, "tp_dst") == 80


def test_key_attrs_pairs_and_split_inverts() -> None:
    k = key_of(ETH / Dot1Q(vlan=5) / IP(src="1.2.3.4") / UDP(dport=53))
    m = exact_mask(k) & ~F.field_mask("ipv4_dst")
    attrs = key_attrs(k, m)
    by_id = {a.id: a for a in attrs}
    eth = by_id[K.OVS_KEY_ATTR_ETHERNET]
    assert eth.masked and eth.mask == Ethernet((1 << 48) - 1, (1 << 48) - 1)
    enc = by_id[K.OVS_KEY_ATTR_ENCAP]
    ipv4 = next(a for a in enc.encap if a.id == K.OVS_KEY_ATTR_IPV4)
    assert isinstance(ipv4.key, Ipv4) and ipv4.key.src == 0x01020304
    assert isinstance(ipv4.mask, Ipv4) and ipv4.mask.dst == 0 and ipv4.mask.src == 0xFFFFFFFF
    # The tunnel attribute is present only in the mask.
    tun = by_id[K.OVS_KEY_ATTR_TUNNEL]
    assert tun.key is None and isinstance(tun.mask, Tunnel)
    ks, ms = split_attrs(attrs)
    assert (ks, ms) == key_streams(k, m)
    assert split_attrs(pair_attrs(ks, None)) == (ks, None)
    # Re-reading what the datapath reports gives back the flow, except that
    # the mask's tunnel() now makes "no tunnel" exact (as in the kernel).
    k2, m2 = match_from_attrs(ks, ms)
    assert k2 == k
    assert m2 == m | F.field_mask("tun_proto")


def test_all_ones_and_attr_helpers() -> None:
    assert all_ones(Scalar(K.OVS_KEY_ATTR_CT_STATE, 3)) == Scalar(K.OVS_KEY_ATTR_CT_STATE, 0xFF)
    assert all_ones(Scalar(K.OVS_KEY_ATTR_VLAN, 3)) == Scalar(K.OVS_KEY_ATTR_VLAN, 0xFFFF)
    assert all_ones(Mpls((1, 2))) == Mpls((0xFFFFFFFF, 0xFFFFFFFF))
    assert isinstance(Attr(1, None, None), Attr)
