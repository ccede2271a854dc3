"""Differential tests: pyvswitch.odp against the real C implementation (OVS 3.1).

* action text: ``ovs-dpctl parse-actions`` (no daemon) vs ``format_actions(parse_actions())``;
* key text: the ``input flow:`` line of ``ovs-dpctl normalize-actions`` (OVS's
  parser + printer, no mask) vs ``parse_key_streams`` + ``format_key_streams``;
* flows: ``dpctl/add-flow`` + ``dpctl/dump-flows [-m]`` on a dummy datapath vs
  ``parse_flow(style="userspace")`` + ``format_flow(style="userspace")``;
* key extraction: the exact key OVS builds for a scapy frame (megaflows
  disabled) vs ``flow.key_extract`` printed with ``format_flow``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, LLC, Dot1AD, Dot1Q, Dot3, Ether

import tests.ovs_oracle as oracle
from pyvswitch import flow as F
from pyvswitch.errors import FlowError, OdpParseError
from pyvswitch.flow_netlink import exact_mask
from pyvswitch.odp import (
    format_actions,
    format_flow,
    format_key_streams,
    parse_actions,
    parse_flow,
    parse_key_streams,
)
from pyvswitch.uapi import Userspace

pytestmark = pytest.mark.ovs

# Every example of notes §6.4 that pyvswitch can represent, and more.
ACTION_CORPUS = """\
1,2,3
drop
userspace(pid=6633,sFlow(vid=9,pcp=7,output=10))
userspace(pid=9765,slow_path(cfm))
userspace(pid=1234567,userdata(0102030405060708090a0b0c0d0e0f),actions)
userspace(pid=6633,flow_sample(probability=123,collector_set_id=1234,obs_domain_id=2345,obs_point_id=3456,output_port=10))
userspace(pid=6633,ipfix(output_port=10))
userspace(pid=6633,userdata(0102),tunnel_out_port=10)
userspace(pid=555666777)
set(eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15))
set(eth(src=00:01:02:03:04:05/ff:ff:ff:00:00:00))
set(ipv4(src=35.8.2.41,dst=172.16.0.20,proto=5,tos=0x80,ttl=128,frag=no))
set(ipv4(ttl=63))
set(ipv4(src=35.8.2.41/255.255.255.0))
set(tcp(src=80,dst=8080))
set(udp(dst=53))
set(tunnel(tun_id=0xabcdef1234567890,src=1.1.1.1,dst=2.2.2.2,ttl=64,flags(df|csum|key)))
set(tunnel(tun_id=0x7f10354,dst=192.168.0.2,tp_dst=4789,flags(df)))
set(tunnel(tun_id=0x1,dst=1.1.1.1,ttl=64,geneve({class=0xffff,type=0x80,len=4,0xa}),flags(df|key)))
set(tunnel(tun_id=0x1,dst=1.1.1.1,ttl=64,vxlan(gbp(id=10,flags=0x1)),flags(key)))
set(skb_mark(0x1234/0xff00))
set(skb_priority(0x5))
set(in_port(2))
set(mpls(label=10,tc=3,ttl=64,bos=1))
push_vlan(vid=10,pcp=3)
push_vlan(tpid=0x88a8,vid=10,pcp=3)
push_vlan(vid=10,pcp=3,cfi=0)
pop_vlan
sample(sample=9.7%,actions(1,2,3,push_vlan(vid=1,pcp=2)))
recirc(1)
recirc(0)
ct
ct(commit)
ct(commit,zone=5)
ct(commit,mark=0xa0a0a0a0/0xfefefefe)
ct(commit,label=0x1234567890abcdef1234567890abcdef/0xf1f2f3f4f5f6f7f8f9)
ct(commit,helper=ftp)
ct(nat)
ct(force_commit,zone=3)
ct(commit,nat(src=10.0.0.240-10.0.0.254:32768-65535,random))
ct(commit,nat(dst=[fe80::20c:29ff:fe88:a18b]:255-4096))
ct_clear
trunc(100)
meter(5)
clone(1,2)
clone(set(ipv4(ttl=63)),1)
check_pkt_len(size=200,gt(4),le(5))
check_pkt_len(size=200,gt(drop),le(5))
check_pkt_len(size=200,gt(set(ipv4(ttl=1)),4),le(5))
add_mpls(label=200,tc=7,ttl=64,bos=1,eth_type=0x8847)
set(ipv4(ttl=10)),push_vlan(vid=10,pcp=3),2
set(ipv4(src=1.2.3.4)),2
2,4,1,100
push_vlan(vid=0,pcp=0)
push_vlan(vid=10,pcp=0)
push_vlan(tpid=0x88a8,vid=10,pcp=3,cfi=0)
userspace(pid=1,slow_path(cfm|bfd))
userspace(pid=1,slow_path(0))
userspace(pid=1,slow_path(lacp|stp|lldp|action|match))
userspace(pid=1,controller(reason=1,dont_send=0,continuation=1,recirc_id=5,rule_cookie=abc,controller_id=3,max_len=128))
userspace(pid=1,flow_sample(probability=123,collector_set_id=1234,obs_domain_id=2345,obs_point_id=3456,output_port=10,ingress))
userspace(pid=1,flow_sample(probability=65535,collector_set_id=0,obs_domain_id=4294967295,obs_point_id=1,output_port=4294967295,egress))
userspace(pid=1,sFlow(vid=0,pcp=0,output=0))
userspace(pid=1,userdata(01 02 03))
userspace(pid=1,userdata())
userspace(pid=1,actions)
userspace(pid=1,tunnel_out_port=5)
userspace(pid=4294967295,userdata(00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0011223344556677889900aabbccddee),actions,tunnel_out_port=0)
sample(sample=0%,actions())
sample(sample=100%,actions(1))
sample(sample=50%,actions(clone(1)))
sample(sample=0.05%,actions(1))
sample(sample=99.96%,actions(1))
sample(sample=12.5%,actions(set(ipv4(tos=0x4/0xfc)),userspace(pid=1,ipfix(output_port=2))))
clone()
check_pkt_len(size=200,gt(),le(drop))
check_pkt_len(size=1500,gt(userspace(pid=1)),le(clone(2,3)))
ct(commit,nat(src,random))
ct(nat(src=10.0.0.1-10.0.0.1))
ct(nat(dst=fe80::1))
ct(nat(dst=[fe80::1]))
ct(nat(dst=fe80::1-fe80::2))
ct(nat(src=10.0.0.1:80))
ct(nat(src=10.0.0.1:80-80,persistent,hash))
ct(nat(dst=10.0.0.1-10.0.0.9,persistent))
ct(zone=0,mark=0/0)
ct(label=1)
ct(commit,mark=5,label=0x5/0xf,helper=ftp,timeout=tm1,nat)
ct(commit,zone=65535,mark=ffffffff/1)
trunc(0x10)
meter(010)
010
0x10
recirc(4294967295)
set(ipv4(ttl=64/0))
set(ipv4(src=1.2.3.4,dst=1.2.3.5,proto=6,tos=0,ttl=64))
set(ipv6(src=::1,dst=::2,label=0,proto=6,tclass=0,hlimit=64,frag=no))
set(ipv6(src=2001:db8::1/ffff:ffff::,label=0x12345/0xff))
set(ipv6(dst=::ffff:1.2.3.4))
set(arp(sip=1.1.1.1))
set(arp(sip=1.1.1.1,tip=2.2.2.2,op=1,sha=00:01:02:03:04:05,tha=ff:ff:ff:ff:ff:ff))
set(nd(target=::1))
set(nd(target=fe80::1,sll=00:01:02:03:04:05,tll=00:00:00:00:00:00))
set(icmp(type=1,code=2))
set(icmpv6(type=135,code=0))
set(sctp(src=1/0xff))
set(ct_state(new))
set(ct_state(+new-est))
set(ct_zone(5))
set(ct_mark(5))
set(ct_label(0x1))
set(recirc_id(5))
set(dp_hash(1))
set(eth_type(0x800))
set(vlan(vid=5))
set(vlan(vid=5,pcp=1,cfi=1))
set(tcp_flags(syn))
set(tcp_flags(+syn-ack))
set(mpls(label=10))
set(mpls(label=10,tc=1,ttl=2,bos=0,label=20,tc=3,ttl=4,bos=1))
set(packet_type(ns=0,id=0))
set(tunnel(tun_id=0x1,dst=1.1.1.1))
set(tunnel(dst=1.1.1.1,flags(key)))
set(tunnel(tun_id=0x1,dst=1.1.1.1,flags(+df)))
set(tunnel(tun_id=0x1,dst=1.1.1.1,geneve({class=0xffff,type=0x80,len=4,0xa}{class=1,len=0}),flags(df|key)))
set(tunnel(tun_id=0x1,ipv6_dst=2001::1,ttl=64,tp_src=1,flags(csum|key)))
set(tunnel(tun_id=0x1,ipv6_src=fe80::1,ipv6_dst=2001::1,tos=0x10,ttl=64,tp_dst=6081,flags(oam|key)))
set(tunnel(dst=1.1.1.1,ttl=64,flags(0)))
set(tunnel(tun_id=0x5/0xff,dst=1.1.1.1/255.255.0.0,ttl=64/0x0))
set(eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15)),set(skb_priority(0x1)),pop_vlan,ct_clear,1
clone(clone(clone(1)))
1 2 3
1,\t2
set(ipv4(ttl=63)) 2
""".splitlines()

# pyvswitch accepts these although OVS 3.1's parser does not (notes §6.5).
LENIENT = {
    "recirc(0x1)": "recirc(0x1)",
    "push_mpls(label=100,tc=3,ttl=64,bos=1,eth_type=0x8847)": None,
    "pop_mpls(eth_type=0x800)": None,
    "hash(l4(5))": None,
    "hash(sym_l4(5))": None,
    "push_eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15)": None,
    "pop_eth": None,
    "clone(drop)": None,
    "sample(sample=50.0%,actions(drop))": None,
    "userspace(pid=1,slow_path(cfm,bfd))": None,  # the form OVS prints
}

# OVS parses these, pyvswitch has no action object for them.
UNSUPPORTED = [
    "tnl_pop(4)",
    "lb_output(1)",
    "pop_nsh()",
    "push_nsh(flags=0,ttl=63,mdtype=1,np=3,spi=0x123456,si=255,c1=0x11223344,c2=0x0,c3=0x0,c4=0x0)",
]

# Neither parses these.
BOTH_REFUSE = [
    "1,drop",
    "bogus",
    "push_vlan(vid=4096,pcp=0)",
    "ct(commit,force_commit)",
    "set(ipv4(frag=no/0xff))",
    "meter(5",
]


@pytest.fixture(scope="module")
def ovs_required() -> None:
    oracle.require_ovs()


def test_action_corpus_matches_ovs(ovs_required: None) -> None:
    expected = oracle.parse_actions(*ACTION_CORPUS)
    mine = [format_actions(parse_actions(s)) for s in ACTION_CORPUS]
    diffs = [(s, e, m) for s, e, m in zip(ACTION_CORPUS, expected, mine, strict=True) if e != m]
    assert diffs == []


def test_lenient_forms_are_refused_by_ovs_but_printed_like_ovs(ovs_required: None) -> None:
    for text, printed in LENIENT.items():
        with pytest.raises(oracle.OvsCommandError):
            oracle.parse_actions(text)
        assert format_actions(parse_actions(text)) == (printed or text)


def test_unsupported_actions(ovs_required: None) -> None:
    assert oracle.parse_actions(*UNSUPPORTED) == UNSUPPORTED
    for text in UNSUPPORTED:
        with pytest.raises(OdpParseError, match="not supported"):
            parse_actions(text)


@pytest.mark.parametrize("text", BOTH_REFUSE)
def test_both_refuse(ovs_required: None, text: str) -> None:
    with pytest.raises(oracle.OvsCommandError):
        oracle.parse_actions(text)
    with pytest.raises(OdpParseError):
        parse_actions(text)


def test_userspace_cookie_bytes_decode_identically(ovs_required: None) -> None:
    """The cookie bytes pyvswitch builds are the bytes OVS builds: fed to OVS as
    raw ``userdata(...)``, OVS prints the same cookie form pyvswitch prints."""
    cookies = [s for s in ACTION_CORPUS if s.startswith("userspace(") and "userdata" not in s]
    assert len(cookies) >= 8
    raw_forms = []
    ours = []
    for text in cookies:
        (a,) = parse_actions(text)
        assert isinstance(a, Userspace) and a.userdata is not None
        raw_forms.append(f"userspace(pid={a.pid},userdata({a.userdata.hex()}))")
        ours.append(format_actions((Userspace(a.pid, a.userdata),)))
    assert oracle.parse_actions(*raw_forms) == ours


# --------------------------------------------------------------------------- keys, no daemon

FULL_KEYS = [
    "in_port(1),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x0800),"
    "ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,tos=0,ttl=64,frag=no),udp(src=1,dst=2)",
    "in_port(1),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x8100),"
    "vlan(vid=10,pcp=0),encap(eth_type(0x0800),ipv4(src=1.1.1.1,dst=2.2.2.2,proto=17,tos=0,"
    "ttl=64,frag=no),udp(src=1,dst=2))",
    "skb_priority(0x5),skb_mark(0x7),in_port(2),eth(src=00:01:02:03:04:05,"
    "dst=10:11:12:13:14:15),eth_type(0x86dd),ipv6(src=2001::1,dst=2001::2,label=0x12345,"
    "proto=6,tclass=0x80,hlimit=64,frag=no),tcp(src=80,dst=8080),tcp_flags(syn|ack)",
    "in_port(3),eth(src=00:01:02:03:04:05,dst=ff:ff:ff:ff:ff:ff),eth_type(0x0806),"
    "arp(sip=10.0.0.1,tip=10.0.0.2,op=1,sha=00:01:02:03:04:05,tha=00:00:00:00:00:00)",
    "recirc_id(0x5),dp_hash(0x9),in_port(1),ct_state(new|trk),ct_zone(0x3),ct_mark(0x1),"
    "ct_label(0x1),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x0800),"
    "ipv4(src=10.0.0.1,dst=10.0.0.2,proto=1,tos=0,ttl=64,frag=no),icmp(type=8,code=0)",
    "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,ttl=64,tp_dst=4789,flags(csum|key)),"
    "in_port(1),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x8847),"
    "mpls(label=100,tc=3,ttl=64,bos=1)",
]


@pytest.mark.parametrize("flow", FULL_KEYS)
def test_key_printing_without_mask_matches_ovs(ovs_required: None, flow: str) -> None:
    ks, _, _ = parse_key_streams(flow)
    assert format_key_streams(ks, None) == oracle.format_key(flow)


# --------------------------------------------------------------------------- dummy datapath


@pytest.fixture(scope="module")
def ovs() -> Iterator[oracle.OvsSandbox]:
    with oracle.ovs_sandbox_or_skip() as sandbox:
        yield sandbox


DP_FLOWS = [
    ("in_port(1),eth(),eth_type(0x0800),ipv4(src=10.0.0.0/255.255.255.0,frag=no)",
     "set(ipv4(ttl=10)),push_vlan(vid=10,pcp=3),2"),
    ("ufid:11111111-2222-3333-4444-555555555555,in_port(2),eth(),eth_type(0x0806),arp()", "1"),
    ("in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x0800),"
     "ipv4(src=10.0.0.1,dst=10.0.0.2,proto=6,frag=no),tcp(dst=80)", "2"),
    ("in_port(1),packet_type(ns=0,id=0),eth(src=00:00:00:00:00:03/ff:ff:ff:00:00:00),"
     "eth_type(0x86dd),ipv6(src=2001::1/ffff::,label=0x12345,proto=17,tclass=0x80,"
     "frag=first),udp(src=5/0xfff0)", "2"),
    ("recirc_id(0x5),dp_hash(0x5/0xf),ct_state(+trk+est-new),ct_zone(5),ct_mark(0x1/0x1),"
     "ct_label(0x1/0x1),in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "drop"),
    ("skb_priority(0x7),skb_mark(0x1234/0xff00),in_port(2),eth(dst=01:00:00:00:00:00/"
     "01:00:00:00:00:00),eth_type(0x0800),ipv4(proto=1,tos=0x4/0xfc,frag=no),icmp(type=8)", "1"),
    ("in_port(1),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x8100),"
     "vlan(vid=99,pcp=7),encap(eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,"
     "tos=0,ttl=64,frag=no),udp(src=1,dst=2))", "pop_vlan,2"),
    ("in_port(1),eth(),eth_type(0x8100),vlan(vid=5/0xff0,pcp=3/0x4),encap(eth_type(0x0800),"
     "ipv4(frag=no))", "2"),
    ("in_port(1),eth(),eth_type(0x8847),mpls(label=100/0xff,tc=0/0,ttl=64/0xff,bos=1/1)", "2"),
    ("in_port(1),eth(),eth_type(0x86dd),ipv6(proto=58,frag=no),icmpv6(type=135,code=0),"
     "nd(target=fe80::1,sll=00:00:00:00:00:01)", "2"),
    ("in_port(1),eth(),eth_type(0x0800),ipv4(proto=6,frag=no),tcp(dst=80),"
     "tcp_flags(+syn-ack)", "2"),
    ("in_port(1),eth(),eth_type(0x0800),ipv4(proto=6,frag=no),tcp(dst=80),tcp_flags(syn|ack)",
     "2"),
    ("in_port(1),eth(),eth_type(0x0800),ipv4(proto=132,frag=no),sctp(src=1,dst=2)", "2"),
    ("tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,ttl=64,flags(-df-csum+key)),in_port(1),"
     "eth(),eth_type(0x0800),ipv4(frag=no)", "2"),
    ("tunnel(dst=1.1.1.1,ttl=64,flags(0)),in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "2"),
    ("tunnel(tun_id=0x5,dst=1.1.1.1,ttl=64,flags(csum)),in_port(1),eth(),eth_type(0x0800),"
     "ipv4(frag=no)", "2"),
    ("tunnel(tun_id=0x5,dst=1.1.1.1,ttl=64,tp_dst=4789,flags(+oam)),in_port(1),eth(),"
     "eth_type(0x0800),ipv4(frag=no)", "2"),
    ("in_port(1),packet_type(ns=1,id=0x800),eth_type(0x0800),ipv4(frag=no)", "2"),
    ("in_port(1),eth_type(0x0800),ipv4(frag=no)", "2"),
    ("in_port(1),eth(),eth_type(0x0800),ipv4(frag=later)", "2"),
    ("in_port(1),eth(),eth_type(0x86dd),ipv6(src=::ffff:1.2.3.4,frag=no)", "2"),
    ("in_port(1),eth(),eth_type(0x0800),ipv4(frag=no),ct_state(new|trk)", "2"),
]  # fmt: skip


def test_dpctl_add_flow_dump_flows_match_ovs(ovs: oracle.OvsSandbox) -> None:
    ovs.add_standalone_dp("odp0", {"o1": 1, "o2": 2})
    names = {1: "o1", 2: "o2"}
    try:
        for flow, actions in DP_FLOWS:
            ovs.dpctl_add_flow("odp0", flow, actions)
            plain = ovs.dpctl_dump_flows("odp0")
            verbose = ovs.dpctl_dump_flows("odp0", "-m")
            ovs.dpctl_del_flows("odp0")
            assert len(plain) == 1 and len(verbose) == 1
            p = parse_flow(flow, style="userspace")
            assert format_flow(p.key, p.mask, style="userspace") == oracle.dump_line_key(plain[0])
            assert format_flow(
                p.key, p.mask, style="userspace", verbose=True, port_names=names
            ) == oracle.dump_line_key(verbose[0])
            assert format_actions(parse_actions(actions)) == oracle.dump_line_actions(plain[0])
    finally:
        ovs.dpctl_del_dp("odp0")


def test_802_2_dump_form_reads_back_in_pyvswitch_only(ovs: oracle.OvsSandbox) -> None:
    """OVS prints an 802.2 flow with ``eth_type(0/0xffff)`` but cannot read
    that back (it becomes the invalid ethertype 0); pyvswitch reads it as the
    802.2 match it stands for."""
    flow = "in_port(1),eth(src=00:00:00:00:00:01),eth_type(0/0xffff)"
    ovs.add_standalone_dp("odp2", {"r1": 1})
    try:
        with pytest.raises(oracle.OvsCommandError):
            ovs.dpctl_add_flow("odp2", flow, "1")
    finally:
        ovs.dpctl_del_dp("odp2")
    p = parse_flow(flow, style="userspace")
    assert format_flow(p.key, p.mask, style="userspace") == "recirc_id(0)," + flow


def test_flows_both_refuse(ovs: oracle.OvsSandbox) -> None:
    ovs.add_standalone_dp("odp1", {"q1": 1})
    try:
        for flow in (
            "in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02)",  # no ethertype mask
            "in_port(1),eth(),eth_type(0x0806)",  # no arp()
        ):
            with pytest.raises(oracle.OvsCommandError):
                ovs.dpctl_add_flow("odp1", flow, "1")
            with pytest.raises(FlowError):
                parse_flow(flow, style="userspace")
    finally:
        ovs.dpctl_del_dp("odp1")


SRC = "00:00:00:00:00:01"
DST = "00:00:00:00:00:02"
ETH = Ether(src=SRC, dst=DST)
FRAMES = [
    ETH / IP(src="10.0.0.1", dst="10.0.0.2", tos=4) / TCP(sport=1234, dport=80, flags="S"),
    ETH / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2),
    ETH / IP(src="10.0.0.1", dst="10.0.0.2", ttl=1) / ICMP(type=3, code=1),
    ETH / ARP(psrc="10.0.0.1", pdst="10.0.0.2", hwsrc=SRC),
    ETH / ARP(op=2, psrc="10.0.0.2", pdst="10.0.0.1", hwsrc=DST, hwdst=SRC),
    ETH / Dot1Q(vlan=99, prio=7) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2),
    ETH / Dot1AD(vlan=10) / Dot1Q(vlan=20) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(),
    ETH / IPv6(src="2001::1", dst="2001::2", fl=0x12345, tc=0x80) / UDP(sport=5, dport=6),
    ETH / IPv6(src="2001::1", dst="2001::2") / ICMPv6EchoRequest(),
    ETH
    / IPv6(src="fe80::1", dst="ff02::1:ff00:2")
    / ICMPv6ND_NS(tgt="fe80::2")
    / ICMPv6NDOptSrcLLAddr(lladdr=SRC),
    Dot3(src=SRC, dst=DST) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / (b"x" * 40),
    ETH / IP(src="10.0.0.1", dst="10.0.0.2", frag=100, proto=17) / (b"x" * 20),
    ETH / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF", proto=6) / (b"x" * 20),
    ETH / MPLS(label=100, ttl=64) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(),
]


def test_extracted_keys_match_ovs(ovs: oracle.OvsSandbox) -> None:
    """``flow.key_extract`` + ``format_flow`` print exactly the key OVS's own
    extractor installs with megaflows disabled."""
    port = ovs.oracle_ports["p1"]
    names = {n: name for name, n in ovs.oracle_ports.items()}
    raw = [bytes(f) for f in FRAMES]
    plain = ovs.extract_keys(raw)
    verbose = ovs.extract_keys(raw, verbose=True)
    for frame, want, want_v in zip(raw, plain, verbose, strict=True):
        key = F.extract(frame, port)
        assert key is not None
        mask = exact_mask(key, style="userspace")
        if F.key_get(key, "nd_target") or F.key_get(key, "tp_src") in (135, 136):
            # OVS 3.1 installs the nd() attribute of ND frames with an all-zero
            # mask when megaflows are disabled (see ovs_oracle.extract_keys).
            for name in ("nd_target", "nd_sll", "nd_tll"):
                mask &= ~F.field_mask(name)
        assert format_flow(key, mask, style="userspace") == want
        assert format_flow(key, mask, style="userspace", verbose=True, port_names=names) == want_v
        # What OVS printed also parses back to the same flow (not for ND: the
        # dump leaves out its nd() attribute, which a key must have).
        if "nd(" in want_v:
            continue
        p = parse_flow(want, style="userspace")
        assert format_flow(p.key, p.mask, style="userspace") == want
