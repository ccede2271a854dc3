"""Key extraction (key_extract) with the kernel datapath's semantics."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, LLC, SNAP, Dot1AD, Dot1Q, Dot3, Ether
from scapy.layers.sctp import SCTP

from pyvswitch import flow
from pyvswitch.flow import key_get, key_to_fields

MAC1 = "00:01:02:03:04:05"
MAC2 = "10:11:12:13:14:15"


def ip4(s: str) -> int:
    return int(ipaddress.IPv4Address(s))


def ip6(s: str) -> int:
    return int(ipaddress.IPv6Address(s))


def mac(s: str) -> int:
    return int(s.replace(":", ""), 16)


def fields(pkt: object, in_port: int = 1, **md: int) -> dict[str, int]:
    k = flow.extract(bytes(pkt), in_port, **md)  # type: ignore[call-overload]
    assert k is not None
    return key_to_fields(k, nonzero=True)


def eth() -> Ether:
    return Ether(src=MAC1, dst=MAC2)


BASE = {"in_port": 1, "eth_src": mac(MAC1), "eth_dst": mac(MAC2)}


def test_udp_ipv4() -> None:
    f = fields(
        eth() / IP(src="10.0.0.1", dst="10.0.0.2", tos=0x2E, ttl=63) / UDP(sport=1234, dport=53)
    )
    assert f == {
        **BASE,
        "eth_type": 0x0800,
        "ip_proto": 17,
        "ip_tos": 0x2E,
        "ip_ttl": 63,
        "ipv4_src": ip4("10.0.0.1"),
        "ipv4_dst": ip4("10.0.0.2"),
        "tp_src": 1234,
        "tp_dst": 53,
    }


def test_tcp_flags_and_options() -> None:
    p = (
        eth()
        / IP(src="1.1.1.1", dst="2.2.2.2")
        / TCP(sport=80, dport=8080, flags="SA", options=[("MSS", 1460)])
    )
    f = fields(p)
    assert f["tp_src"] == 80 and f["tp_dst"] == 8080
    assert f["tcp_flags"] == 0x012
    # NS and the reserved bits are part of the 12-bit flags
    raw = bytearray(bytes(eth() / IP() / TCP(flags="A")))
    raw[14 + 20 + 12] |= 0x0F  # reserved(3) + NS
    assert fields(raw)["tcp_flags"] == 0xF10


def test_ipv4_options_take_general_path() -> None:
    p = (
        eth()
        / IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x01\x01\x01\x00")
        / UDP(sport=7, dport=9)
    )
    f = fields(p)
    assert f["tp_src"] == 7 and f["tp_dst"] == 9 and f["ipv4_src"] == ip4("10.0.0.1")


def test_icmp_type_code() -> None:
    f = fields(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=3, code=4))
    assert (f["ip_proto"], f["tp_src"], f["tp_dst"]) == (1, 3, 4)


def test_sctp_ports() -> None:
    f = fields(eth() / IP() / SCTP(sport=5000, dport=6000))
    assert (f["ip_proto"], f["tp_src"], f["tp_dst"]) == (132, 5000, 6000)


def test_fragments() -> None:
    first = fields(eth() / IP(flags="MF", frag=0) / UDP(sport=1, dport=2))
    assert first["ip_frag"] == flow.OVS_FRAG_TYPE_FIRST and first["tp_src"] == 1
    later = fields(eth() / IP(frag=100, proto=17) / (b"x" * 30))
    assert later["ip_frag"] == flow.OVS_FRAG_TYPE_LATER
    assert "tp_src" not in later and "tp_dst" not in later


def test_truncated_l4_zeroes_ports() -> None:
    full = bytes(eth() / IP(proto=6) / TCP(sport=1, dport=2))
    f = fields(full[: 14 + 20 + 19])  # one byte short of a TCP header
    assert f["ip_proto"] == 6 and "tp_src" not in f and "tcp_flags" not in f
    udp = bytes(eth() / IP() / UDP(sport=1, dport=2))
    assert "tp_dst" not in fields(udp[: 14 + 20 + 7])
    # a TCP data offset pointing past the end -> no ports
    bad = bytearray(full)
    bad[14 + 20 + 12] = 0xF0
    assert "tp_src" not in fields(bytes(bad))


def test_bad_ipv4_header_keeps_eth() -> None:
    raw = bytearray(bytes(eth() / IP(src="10.0.0.1") / UDP()))
    raw[14] = 0x44  # IHL 4 < 5
    f = fields(bytes(raw))
    assert f == {**BASE, "eth_type": 0x0800}


def test_vlan_and_qinq() -> None:
    f = fields(eth() / Dot1Q(vlan=99, prio=7) / IP() / UDP(sport=1, dport=2))
    assert f["vlan_tpid"] == 0x8100 and f["vlan_tci"] == 0x1000 | 7 << 13 | 99
    assert f["eth_type"] == 0x0800 and f["tp_dst"] == 2
    q = fields(eth() / Dot1AD(vlan=10) / Dot1Q(vlan=20) / IP() / ICMP())
    assert q["vlan_tpid"] == 0x88A8 and q["vlan_tci"] & 0xFFF == 10
    assert q["cvlan_tpid"] == 0x8100 and q["cvlan_tci"] == 0x1000 | 20
    assert q["eth_type"] == 0x0800 and q["tp_src"] == 8
    # a third tag's TPID becomes eth_type
    t = fields(eth() / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP())
    assert t["eth_type"] == 0x8100 and "ipv4_src" not in t


def test_truncated_vlan_tag_not_parsed() -> None:
    raw = bytes(eth())[:12] + b"\x81\x00\x00\x05"  # tag without room for the next type
    f = fields(raw)
    assert f["eth_type"] == 0x8100 and "vlan_tci" not in f


def test_llc_snap() -> None:
    f = fields(Dot3(src=MAC1, dst=MAC2) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / (b"\x00" * 40))
    assert f["eth_type"] == flow.ETH_P_802_2
    snap = Dot3(src=MAC1, dst=MAC2) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0800)
    s = fields(snap / IP(src="10.0.0.9") / UDP(sport=3, dport=4))
    assert s["eth_type"] == 0x0800 and s["ipv4_src"] == ip4("10.0.0.9") and s["tp_src"] == 3
    # the kernel ignores the control byte
    odd = Dot3(src=MAC1, dst=MAC2) / LLC(dsap=0xAA, ssap=0xAA, ctrl=0x13) / SNAP(OUI=0, code=0x86DD)
    assert fields(odd / (b"\x00" * 40))["eth_type"] == 0x86DD
    # a short 802.3 frame
    assert fields(bytes(Dot3(src=MAC1, dst=MAC2))[:14] + b"\xaa")["eth_type"] == flow.ETH_P_802_2


def test_arp_and_rarp() -> None:
    f = fields(eth() / ARP(op=2, hwsrc=MAC1, psrc="10.0.0.1", hwdst=MAC2, pdst="10.0.0.2"))
    assert f["eth_type"] == 0x0806 and f["ip_proto"] == 2
    assert f["ipv4_src"] == ip4("10.0.0.1") and f["ipv4_dst"] == ip4("10.0.0.2")
    assert f["arp_sha"] == mac(MAC1) and f["arp_tha"] == mac(MAC2)
    big_op = fields(eth() / ARP(op=0x1234, psrc="1.2.3.4"))
    assert "ip_proto" not in big_op and big_op["ipv4_src"] == ip4("1.2.3.4")
    rarp = Ether(src=MAC1, dst=MAC2, type=0x8035) / ARP(op=3, hwsrc=MAC1)
    assert fields(rarp)["ip_proto"] == 3
    # wrong hardware type: no ARP fields
    assert fields(eth() / ARP(hwtype=6, op=1, psrc="1.1.1.1")) == {**BASE, "eth_type": 0x0806}


def test_mpls_stack() -> None:
    def lse(label: int, bos: int, ttl: int = 64) -> bytes:
        return ((label << 12) | (bos << 8) | ttl).to_bytes(4, "big")

    base = bytes(Ether(src=MAC1, dst=MAC2, type=0x8847))
    f = fields(base + lse(100, 0) + lse(200, 1) + b"\x45" + bytes(30))
    assert f["mpls_lse0"] == (100 << 12) | 64 and f["mpls_lse1"] == (200 << 12) | 0x100 | 64
    assert f["mpls_num_labels_mask"] == 0b11
    deep = fields(base + lse(1, 0) + lse(2, 0) + lse(3, 0) + lse(4, 1))
    assert deep["mpls_num_labels_mask"] == 0b111 and deep["mpls_lse2"] >> 12 == 3
    # truncated stack: what was read, no label mask
    t = fields(base + lse(5, 0) + lse(6, 0)[:2])
    assert t["mpls_lse0"] >> 12 == 5 and "mpls_num_labels_mask" not in t


def test_ipv6_basic_and_label() -> None:
    p = (
        eth()
        / IPv6(src="2001::1", dst="2001::2", tc=0x80, fl=0x12345, hlim=9)
        / UDP(sport=1, dport=2)
    )
    f = fields(p)
    assert f["eth_type"] == 0x86DD and f["ipv6_src"] == ip6("2001::1")
    assert f["ipv6_dst"] == ip6("2001::2") and f["ipv6_label"] == 0x12345
    assert (f["ip_tos"], f["ip_ttl"], f["ip_proto"]) == (0x80, 9, 17)
    assert (f["tp_src"], f["tp_dst"]) == (1, 2)


def test_ipv6_extension_headers() -> None:
    p = (
        eth()
        / IPv6()
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrRouting()
        / TCP(sport=22, dport=23)
    )
    f = fields(p)
    assert f["ip_proto"] == 6 and f["tp_src"] == 22


def test_ipv6_fragments_kernel_semantics() -> None:
    first = fields(
        eth() / IPv6() / IPv6ExtHdrFragment(offset=0, m=1, nh=17) / UDP(sport=5, dport=6)
    )
    assert first["ip_frag"] == flow.OVS_FRAG_TYPE_FIRST and first["tp_src"] == 5
    # atomic fragment: the kernel says FIRST (userspace says not a fragment)
    atomic = fields(
        eth() / IPv6() / IPv6ExtHdrFragment(offset=0, m=0, nh=17) / UDP(sport=5, dport=6)
    )
    assert atomic["ip_frag"] == flow.OVS_FRAG_TYPE_FIRST
    # later fragment: the kernel's parse_ipv6hdr reports NEXTHDR_FRAGMENT (44)
    later = fields(eth() / IPv6() / IPv6ExtHdrFragment(offset=10, nh=17) / (b"x" * 16))
    assert later["ip_frag"] == flow.OVS_FRAG_TYPE_LATER and later["ip_proto"] == 44
    assert "tp_src" not in later


def test_ipv6_truncated() -> None:
    raw = bytes(eth() / IPv6(src="2001::1") / UDP())
    assert fields(raw[: 14 + 39]) == {**BASE, "eth_type": 0x86DD}
    # extension header walk fails: addresses kept, proto stays 59 (NONE)
    hop = bytes(eth() / IPv6(src="2001::1", nh=0) / IPv6ExtHdrHopByHop())
    f = fields(hop[: 14 + 41])
    assert f["ip_proto"] == 59 and f["ipv6_src"] == ip6("2001::1")


def test_icmpv6_nd() -> None:
    ns = eth() / IPv6() / ICMPv6ND_NS(tgt="fe80::1") / ICMPv6NDOptSrcLLAddr(lladdr=MAC1)
    f = fields(ns)
    assert (f["ip_proto"], f["tp_src"], f.get("tp_dst", 0)) == (58, 135, 0)
    assert f["nd_target"] == ip6("fe80::1") and f["nd_sll"] == mac(MAC1) and "nd_tll" not in f
    na = eth() / IPv6() / ICMPv6ND_NA(tgt="fe80::2") / ICMPv6NDOptDstLLAddr(lladdr=MAC2)
    g = fields(na)
    assert g["tp_src"] == 136 and g["nd_tll"] == mac(MAC2) and g["nd_target"] == ip6("fe80::2")
    # two SLL options: ND part invalid, all zero
    dup = ns / ICMPv6NDOptSrcLLAddr(lladdr=MAC2)
    h = fields(dup)
    assert "nd_target" not in h and "nd_sll" not in h and h["tp_src"] == 135
    echo = fields(eth() / IPv6() / ICMPv6EchoRequest())
    assert echo["tp_src"] == 128 and "nd_target" not in echo


def test_metadata_and_tunnel_bits() -> None:
    raw = bytes(eth() / IP() / UDP())
    k = flow.extract(raw, 7, priority=3, skb_mark=0x55, recirc_id=9)
    assert k is not None
    f = key_to_fields(k, nonzero=True)
    assert (f["in_port"], f["priority"], f["skb_mark"], f["recirc_id"]) == (7, 3, 0x55, 9)
    tun = flow.tunnel_key_bits(
        tun_id=0x7F10354,
        ipv4_src=ip4("10.10.10.10"),
        ipv4_dst=ip4("20.20.20.20"),
        ttl=64,
        tp_src=1234,
        tp_dst=4789,
        flags=flow.TUNNEL_KEY | flow.TUNNEL_CSUM,
        opts=b"\x01\x02\x80\x01\x00\x00\x00\x0a",
    )
    kt = flow.extract(raw, 3, tun=tun)
    assert kt is not None
    assert key_get(kt, "tun_id") == 0x7F10354 and key_get(kt, "tun_tp_dst") == 4789
    assert key_get(kt, "tun_proto") == flow.AF_INET and key_get(kt, "tun_ttl") == 64
    assert flow.key_tun_opts(kt) == b"\x01\x02\x80\x01\x00\x00\x00\x0a"
    assert key_get(kt, "ipv4_dst") == key_get(k, "ipv4_dst")


def test_too_short_is_dropped() -> None:
    assert flow.extract(b"\x00" * 13) is None
    assert flow.extract(b"\x00" * 14) is not None


def _general(raw: bytes, in_port: int = 1) -> int:
    """The key via the general (non fast-path) code."""
    md = flow.md_bits(in_port)
    return flow._l3l4(raw, len(raw), 14, md, 0, (raw[12] << 8) | raw[13], bytes(8), raw[:12], False)


@pytest.mark.parametrize(
    "pkt",
    [
        eth() / IP(src="10.1.2.3", dst="10.3.2.1", ttl=5, tos=3) / UDP(sport=9, dport=10) / b"hi",
        eth() / IP() / TCP(sport=1, dport=2, flags="FPU"),
        eth() / IP() / TCP(sport=1, dport=2, dataofs=6, options=[("NOP", None)] * 4),
        eth() / IP(flags="MF") / ICMP(type=8),
        eth() / IP(frag=3, proto=6) / (b"y" * 30),
        eth() / IP(proto=47) / (b"z" * 20),
        eth() / IP() / SCTP(sport=3, dport=4),
        eth() / IP(proto=132) / b"\x00\x01",
    ],
)
def test_fast_path_equals_general_path(pkt: object) -> None:
    raw = bytes(pkt)  # type: ignore[call-overload]
    assert flow.extract(raw, 1) == _general(raw)


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=200))
def test_fuzz_random_bytes_never_raise(data: bytes) -> None:
    k = flow.extract(data, 1)
    assert (k is None) == (len(data) < 14)


_CORPUS = [
    bytes(eth() / IP() / TCP()),
    bytes(eth() / Dot1Q(vlan=5) / IPv6() / IPv6ExtHdrFragment() / UDP()),
    bytes(eth() / IPv6() / ICMPv6ND_NS(tgt="::1") / ICMPv6NDOptSrcLLAddr(lladdr=MAC1)),
    bytes(eth() / ARP()),
    bytes(Ether(type=0x8847) / (b"\x00\x01\x01\x40" * 2)),
    bytes(Dot3() / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(code=0x0800) / IP() / UDP()),
]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(_CORPUS),
    st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255)), max_size=6),
    st.integers(0, 200),
)
def test_fuzz_mutated_frames_never_raise(
    base: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    b = bytearray(base)
    for pos, val in flips:
        if pos < len(b):
            b[pos] = val
    data = bytes(b[: max(14, len(b) - cut)])
    k = flow.extract(data, 1)
    assert k is not None and k >= 0
    assert key_get(k, "in_port") == 1
