"""Datapath action text (pyvswitch.odp): the verified forms of notes §5.1/§6.4,
set vs set_masked, userspace cookies, the print-only actions, UFIDs and stats."""

from __future__ import annotations

import struct

import pytest

from pyvswitch import flow as F
from pyvswitch import uapi as U
from pyvswitch.errors import OdpParseError
from pyvswitch.odp import (
    format_actions,
    format_flow_stats,
    format_tcp_flags_letters,
    format_ufid,
    parse_actions,
    parse_ufid,
)
from pyvswitch.uapi import (
    AddMpls,
    CheckPktLen,
    Clone,
    Ct,
    CtClear,
    DecTtl,
    Drop,
    Ethernet,
    FlowStats,
    Hash,
    Ipv4,
    Ipv6,
    Meter,
    Mpls,
    Output,
    PopEth,
    PopMpls,
    PopVlan,
    PushEth,
    PushMpls,
    PushVlan,
    Recirc,
    Sample,
    Scalar,
    Set,
    SetMasked,
    Tcp,
    Trunc,
    Tunnel,
    Userspace,
)

ZERO_COOKIE = "00" * 48

# Notes §6.4: input -> printed (None = printed unchanged).
NOTES_EXAMPLES: list[tuple[str, str | None]] = [
    ("1,2,3", None),
    ("drop", None),
    ("userspace(pid=6633,sFlow(vid=9,pcp=7,output=10))", None),
    ("userspace(pid=9765,slow_path(cfm))", None),
    ("userspace(pid=1234567,userdata(0102030405060708090a0b0c0d0e0f),actions)", None),
    (
        "userspace(pid=6633,flow_sample(probability=123,collector_set_id=1234,"
        "obs_domain_id=2345,obs_point_id=3456,output_port=10))",
        None,
    ),
    ("userspace(pid=6633,ipfix(output_port=10))", None),
    (
        "userspace(pid=6633,userdata(0102),tunnel_out_port=10)",
        "userspace(pid=6633,userdata(0102000000000000),tunnel_out_port=10)",
    ),
    ("userspace(pid=555666777)", f"userspace(pid=555666777,userdata({ZERO_COOKIE}))"),
    ("set(eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15))", None),
    ("set(eth(src=00:01:02:03:04:05/ff:ff:ff:00:00:00))", None),
    ("set(ipv4(src=35.8.2.41,dst=172.16.0.20,proto=5,tos=0x80,ttl=128,frag=no))", None),
    ("set(ipv4(ttl=63))", None),
    ("set(ipv4(src=35.8.2.41/255.255.255.0))", None),
    ("set(tcp(src=80,dst=8080))", None),
    ("set(udp(dst=53))", None),
    (
        "set(tunnel(tun_id=0xabcdef1234567890,src=1.1.1.1,dst=2.2.2.2,ttl=64,flags(df|csum|key)))",
        None,
    ),
    (
        "set(tunnel(tun_id=0x7f10354,dst=192.168.0.2,tp_dst=4789,flags(df)))",
        "set(tunnel(tun_id=0x7f10354,dst=192.168.0.2,tp_dst=4789,flags(df|key)))",
    ),
    (
        "set(tunnel(tun_id=0x1,dst=1.1.1.1,ttl=64,geneve({class=0xffff,type=0x80,len=4,0xa}),"
        "flags(df|key)))",
        None,
    ),
    ("set(tunnel(tun_id=0x1,dst=1.1.1.1,ttl=64,vxlan(gbp(id=10,flags=0x1)),flags(key)))", None),
    ("set(skb_mark(0x1234/0xff00))", None),
    ("set(skb_priority(0x5))", None),
    ("set(in_port(2))", None),
    ("set(mpls(label=10,tc=3,ttl=64,bos=1))", None),
    ("push_vlan(vid=10,pcp=3)", None),
    ("push_vlan(tpid=0x88a8,vid=10,pcp=3)", None),
    ("push_vlan(vid=10,pcp=3,cfi=0)", None),
    ("pop_vlan", None),
    ("sample(sample=9.7%,actions(1,2,3,push_vlan(vid=1,pcp=2)))", None),
    ("recirc(1)", "recirc(0x1)"),
    ("recirc(0)", None),
    ("ct", None),
    ("ct(commit)", None),
    ("ct(commit,zone=5)", None),
    ("ct(commit,mark=0xa0a0a0a0/0xfefefefe)", None),
    ("ct(commit,label=0x1234567890abcdef1234567890abcdef/0xf1f2f3f4f5f6f7f8f9)", None),
    ("ct(commit,helper=ftp)", None),
    ("ct(nat)", None),
    ("ct(force_commit,zone=3)", None),
    ("ct(commit,nat(src=10.0.0.240-10.0.0.254:32768-65535,random))", None),
    ("ct(commit,nat(dst=[fe80::20c:29ff:fe88:a18b]:255-4096))", None),
    ("ct_clear", None),
    ("trunc(100)", None),
    ("meter(5)", None),
    ("clone(1,2)", None),
    ("clone(set(ipv4(ttl=63)),1)", None),
    ("check_pkt_len(size=200,gt(4),le(5))", None),
    ("check_pkt_len(size=200,gt(drop),le(5))", None),
    ("check_pkt_len(size=200,gt(set(ipv4(ttl=1)),4),le(5))", None),
    ("add_mpls(label=200,tc=7,ttl=64,bos=1,eth_type=0x8847)", None),
    # from the dump lines of §6.2
    ("set(ipv4(ttl=10)),push_vlan(vid=10,pcp=3),2", None),
    ("set(ipv4(src=1.2.3.4)),2", None),
    ("2,4,1,100", None),
]


@pytest.mark.parametrize(("text", "printed"), NOTES_EXAMPLES)
def test_notes_examples(text: str, printed: str | None) -> None:
    assert format_actions(parse_actions(text)) == (printed or text)


# --------------------------------------------------------------------------- objects


def test_parse_gives_uapi_objects() -> None:
    assert parse_actions("1,2") == (Output(1), Output(2))
    assert parse_actions("drop") == (Drop(0),)
    assert parse_actions("") == ()
    assert format_actions(()) == "drop"
    assert parse_actions("recirc(5)") == (Recirc(5),)
    assert parse_actions("recirc(0x1)") == (Recirc(1),)  # lenient: OVS 3.1 refuses this
    assert parse_actions("push_vlan(tpid=0x88a8,vid=10,pcp=3)") == (
        PushVlan(0x88A8, 0x1000 | (3 << 13) | 10),
    )
    assert parse_actions("push_vlan(vid=10,pcp=3,cfi=0)") == (PushVlan(0x8100, (3 << 13) | 10),)
    assert parse_actions("trunc(0x10),meter(010)") == (Trunc(16), Meter(8))
    assert parse_actions("ct_clear,pop_vlan") == (CtClear(), PopVlan())
    assert parse_actions("clone(1,clone(2))") == (Clone((Output(1), Clone((Output(2),)))),)
    assert parse_actions("check_pkt_len(size=1500,gt(drop),le(3))") == (
        CheckPktLen(1500, (), (Output(3),)),
    )
    assert parse_actions("add_mpls(label=200,tc=7,ttl=64,bos=1,eth_type=0x8847)") == (
        AddMpls((200 << 12) | (7 << 9) | 0x100 | 64, 0x8847, 0),
    )


def test_set_versus_set_masked() -> None:
    (a,) = parse_actions("set(eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15))")
    assert a == Set(Ethernet(0x000102030405, 0x101112131415))
    (a,) = parse_actions("set(eth(src=00:01:02:03:04:05/ff:ff:ff:00:00:00))")
    assert a == SetMasked(Ethernet(0x000102030405, 0), Ethernet(0xFFFFFF000000, 0))
    (a,) = parse_actions(
        "set(ipv4(src=35.8.2.41,dst=172.16.0.20,proto=5,tos=0x80,ttl=128,frag=no))"
    )
    assert isinstance(a, Set) and a.key == Ipv4(0x23080229, 0xAC100014, 5, 0x80, 128, 0)
    (a,) = parse_actions("set(ipv4(ttl=63))")
    assert a == SetMasked(Ipv4(ttl=63), Ipv4(ttl=0xFF))
    (a,) = parse_actions("set(tcp(src=80,dst=8080))")
    assert a == Set(Tcp(80, 8080))
    # ipv6's 20-bit label mask never makes a full mask: always masked.
    (a,) = parse_actions("set(ipv6(src=::1,dst=::2,label=0,proto=6,tclass=0,hlimit=64,frag=no))")
    assert isinstance(a, SetMasked) and isinstance(a.mask, Ipv6) and a.mask.label == 0xFFFFF
    (a,) = parse_actions("set(skb_priority(0x5))")
    assert a == Set(Scalar(U.OVS_KEY_ATTR_PRIORITY, 5))
    (a,) = parse_actions("set(skb_mark(0x1234/0xff00))")
    assert a == SetMasked(
        Scalar(U.OVS_KEY_ATTR_SKB_MARK, 0x1234), Scalar(U.OVS_KEY_ATTR_SKB_MARK, 0xFF00)
    )
    (a,) = parse_actions("set(mpls(label=10,tc=3,ttl=64,bos=1))")
    assert a == Set(Mpls(((10 << 12) | (3 << 9) | 0x100 | 64,)))
    # Tunnel: plain SET when key and mask nests differ in size (flags(...)).
    (a,) = parse_actions("set(tunnel(tun_id=0x7f10354,dst=192.168.0.2,tp_dst=4789,flags(df)))")
    assert a == Set(
        Tunnel(
            tun_id=0x7F10354,
            ipv4_dst=0xC0A80002,
            tp_dst=4789,
            flags=F.TUNNEL_KEY | F.TUNNEL_DONT_FRAGMENT,
        )
    )
    (a,) = parse_actions("set(tunnel(tun_id=0x1,dst=1.1.1.1))")
    assert isinstance(a, SetMasked)
    assert format_actions((a,)) == "set(tunnel(tun_id=0x1,dst=1.1.1.1,flags(+key)))"
    (a,) = parse_actions(
        "set(tunnel(tun_id=0x1,dst=1.1.1.1,ttl=64,vxlan(gbp(id=10,flags=0x1)),flags(key)))"
    )
    assert isinstance(a, Set) and isinstance(a.key, Tunnel) and a.key.gbp == 0x1000A


def test_set_of_masked_forms_prints_like_ovs() -> None:
    cases = {
        "set(ipv4(ttl=64/0))": "set(ipv4())",
        "set(ct_state(new))": "set(ct_state(0x1))",
        "set(ct_zone(5))": "set(ct_zone(0x5))",
        "set(recirc_id(5))": "set(recirc_id(0x5))",
        "set(eth_type(0x800))": "set(eth_type(0x0800))",
        "set(vlan(vid=5))": "set(vlan(vid=5))",
        "set(mpls(label=10))": "set(mpls(label=10/0xfffff,tc=0/0,ttl=0/0x0,bos=0/0))",
        "set(tunnel(dst=1.1.1.1,flags(key)))": "set(tunnel(dst=1.1.1.1,flags(0)))",
        "set(tunnel(tun_id=0x1,dst=1.1.1.1,flags(+df)))": (
            "set(tunnel(tun_id=0x1,dst=1.1.1.1,flags(+df+key)))"
        ),
        "set(tunnel(tun_id=0x1,dst=1.1.1.1,geneve({class=0xffff,type=0x80,len=4,0xa}"
        "{class=1,len=0}),flags(df|key)))": "set(tunnel(tun_id=0x1,dst=1.1.1.1,geneve("
        "{class=0xffff,type=0x80,len=4,0xa}{class=0x1,type=0,len=0}),flags(df|key)))",
    }
    for text, printed in cases.items():
        assert format_actions(parse_actions(text)) == printed, text


def test_push_vlan_printing() -> None:
    assert format_actions((PushVlan(0x8100, 0x1000 | 10),)) == "push_vlan(vid=10,pcp=0)"
    assert format_actions((PushVlan(0x88A8, 0x1000),)) == "push_vlan(tpid=0x88a8,vid=0,pcp=0)"
    assert format_actions((PushVlan(0x8100, 7 << 13),)) == "push_vlan(vid=0,pcp=7,cfi=0)"


@pytest.mark.parametrize(
    ("percent", "probability", "printed"),
    [
        ("9.7", 416611828, "9.7"),
        ("100", 0xFFFFFFFF, "100.0"),
        ("0", 0, "0.0"),
        ("50", 2147483648, "50.0"),
        ("33.33", 1431512599, "33.3"),
        ("0.05", 2147484, "0.1"),
    ],
)
def test_sample_probability(percent: str, probability: int, printed: str) -> None:
    (a,) = parse_actions(f"sample(sample={percent}%,actions(1))")
    assert a == Sample(probability, (Output(1),))
    assert format_actions((a,)) == f"sample(sample={printed}%,actions(1))"


def test_sample_percentage_out_of_range() -> None:
    with pytest.raises(OdpParseError, match="between 0 and 100"):
        parse_actions("sample(sample=100.5%,actions(1))")


# --------------------------------------------------------------------------- userspace cookies


def test_userspace_cookie_layout() -> None:
    (a,) = parse_actions("userspace(pid=6633,sFlow(vid=9,pcp=7,output=10))")
    assert isinstance(a, Userspace) and a.pid == 6633
    ud = a.userdata
    assert ud is not None and len(ud) == 48
    assert struct.unpack_from("<HH", ud, 0) == (1, 0xFFFF)  # type, OFPP_NONE
    assert ud[4:24] == bytes(20)  # ofproto uuid + padding
    assert struct.unpack_from(">H", ud, 24) == (0x1000 | (7 << 13) | 9,)
    assert struct.unpack_from("<I", ud, 28) == (10,)
    (b,) = parse_actions("userspace(pid=1,ipfix(output_port=10))")
    assert isinstance(b, Userspace) and b.userdata is not None
    assert struct.unpack_from("<HHI", b.userdata, 0) == (4, 0xFFFF, 0)
    assert struct.unpack_from("<I", b.userdata, 24) == (10,)
    (c,) = parse_actions("userspace(pid=1,slow_path(cfm|lacp))")
    assert isinstance(c, Userspace) and c.userdata is not None
    assert struct.unpack_from("<I", c.userdata, 28) == (0b101,)
    assert format_actions((c,)) == "userspace(pid=1,slow_path(cfm,lacp))"


def test_userspace_userdata_padding_and_options() -> None:
    (a,) = parse_actions("userspace(pid=6633,userdata(0102),tunnel_out_port=10)")
    assert a == Userspace(6633, bytes.fromhex("0102000000000000"), egress_tun_port=10)
    (b,) = parse_actions("userspace(pid=555666777)")
    assert b == Userspace(555666777, bytes(48))
    (c,) = parse_actions("userspace(pid=1,userdata(01 02 03),actions)")
    assert c == Userspace(1, bytes.fromhex("0102030000000000"), actions=True)
    # Printed: a 48-byte cookie of an unknown type is shown as raw userdata.
    raw = bytes([9]) + bytes(47)
    assert format_actions((Userspace(7, raw),)) == f"userspace(pid=7,userdata({raw.hex()}))"
    assert format_actions((Userspace(7),)) == "userspace(pid=7)"


@pytest.mark.parametrize(
    "text",
    [
        "userspace(pid=1,controller(reason=1,dont_send=0,continuation=1,recirc_id=5,"
        "rule_cookie=0xabc,controller_id=3,max_len=128))",
        "userspace(pid=1,flow_sample(probability=123,collector_set_id=1234,obs_domain_id=2345,"
        "obs_point_id=3456,output_port=10,ingress))",
        "userspace(pid=1,flow_sample(probability=1,collector_set_id=2,obs_domain_id=3,"
        "obs_point_id=4,output_port=5,egress),actions,tunnel_out_port=9)",
        "userspace(pid=4294967295,sFlow(vid=0,pcp=0,output=0))",
        "userspace(pid=1,slow_path(0))",
    ],
)
def test_userspace_cookie_round_trips(text: str) -> None:
    assert format_actions(parse_actions(text)) == text


def test_port_names() -> None:
    names = {"p1": 1, "p2": 2, "vx0": 4789}
    acts = parse_actions(
        "p1,2,userspace(pid=5,ipfix(output_port=4789),tunnel_out_port=4789)", names
    )
    assert acts[:2] == (Output(1), Output(2))
    rev = {v: k for k, v in names.items()}
    assert format_actions(acts, rev) == (
        "p1,p2,userspace(pid=5,ipfix(output_port=vx0),tunnel_out_port=vx0)"
    )
    # set(in_port(...)) is printed with numbers, as OVS does.
    assert format_actions(parse_actions("set(in_port(p2))", names), rev) == "set(in_port(2))"


# --------------------------------------------------------------------------- ct


def test_ct_objects() -> None:
    (a,) = parse_actions("ct(commit,zone=5,mark=0xa/0xff,label=0x1,helper=ftp,timeout=t1,nat)")
    assert a == Ct(
        commit=True,
        zone=5,
        mark=(0xA, 0xFF),
        labels=(1, (1 << 128) - 1),
        helper="ftp",
        timeout="t1",
        nat="nat",
    )
    (b,) = parse_actions("ct(nat(src=10.0.0.1-10.0.0.1))")
    assert isinstance(b, Ct) and b.nat == "nat(src=10.0.0.1)"
    (c,) = parse_actions("ct(commit,nat(src,random))")
    assert isinstance(c, Ct) and c.nat == "nat(src)"  # flags need an address range
    assert format_actions((Ct(),)) == "ct"
    assert parse_actions("ct(zone=0,mark=0/0)") == (Ct(),)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ct(commit,force_commit)", "only one of commit and force_commit"),
        ("ct(nat(src=10.0.0.1,dst=10.0.0.2))", "only one of src and dst"),
        ("ct(nat(src=10.0.0.9-10.0.0.1))", "below its minimum"),
        ("ct(nat(src=10.0.0.1:80-70))", "below its minimum"),
        ("ct(nat(src=10.0.0.1,hash,random))", "only one of hash and random"),
        ("ct(helper=)", "1-15 characters"),
        ("ct(bogus)", "unknown ct(...) option"),
    ],
)
def test_ct_errors(text: str, words: str) -> None:
    with pytest.raises(OdpParseError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_actions(text)


# --------------------------------------------------------------------------- print-only actions


def test_actions_ovs_3_1_cannot_parse_print_as_ovs_prints_them() -> None:
    lse = (100 << 12) | (3 << 9) | 0x100 | 64
    assert format_actions((PushMpls(lse, 0x8847),)) == (
        "push_mpls(label=100,tc=3,ttl=64,bos=1,eth_type=0x8847)"
    )
    assert format_actions((PopMpls(0x0800),)) == "pop_mpls(eth_type=0x800)"
    assert format_actions((Hash(U.OVS_HASH_ALG_L4, 0),)) == "hash(l4(0))"
    assert format_actions((Hash(U.OVS_HASH_ALG_SYM_L4, 77),)) == "hash(sym_l4(77))"
    assert format_actions((Hash(9, 1),)) == "hash(Unknown hash algorithm(9))"
    assert format_actions((PushEth(0x000102030405, 0x101112131415),)) == (
        "push_eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15)"
    )
    assert format_actions((PopEth(),)) == "pop_eth"
    assert format_actions((DecTtl((Output(1),)),)) == "dec_ttl(le_1(1))"
    assert format_actions((DecTtl(),)) == "dec_ttl(le_1(drop))"
    assert format_actions((Drop(3),)) == "drop"
    assert format_actions((Output(1), Drop(0))) == "1,drop"
    assert format_actions((AddMpls(lse, 0x8848, 1),)) == (
        "add_mpls(label=100,tc=3,ttl=64,bos=1,eth_type=0x8848)"
    )


@pytest.mark.parametrize(
    "text",
    [
        "push_mpls(label=100,tc=3,ttl=64,bos=1,eth_type=0x8847)",
        "pop_mpls(eth_type=0x800)",
        "hash(l4(0))",
        "hash(sym_l4(12345))",
        "push_eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15)",
        "pop_eth",
        "dec_ttl(le_1(1,2))",
        "dec_ttl(le_1(drop))",
        "clone(drop)",
        "sample(sample=50.0%,actions(drop))",
    ],
)
def test_pyvswitch_also_parses_them(text: str) -> None:
    assert format_actions(parse_actions(text)) == text


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "position", "token", "words"),
    [
        ("1,bogus(3)", 2, "bogus", "unknown action"),
        ("1,tnl_pop(4)", 2, "tnl_pop", "not supported"),
        ("lb_output(1)", 0, "lb_output", "not supported"),
        ("push_nsh(flags=0,ttl=63,mdtype=1,np=3,spi=0x1,si=255)", 0, "push_nsh", "not supported"),
        ("pop_nsh()", 0, "pop_nsh", "not supported"),
        ("1,drop", 2, "drop", "only action"),
        ("push_vlan(vid=4096,pcp=0)", 14, "4096", "12 bits"),
        ("push_vlan(vid=1,pcp=8)", 20, "8", "3 bits"),
        ("set(ipv4(ttl=300))", 13, "300", "out of range"),
        ("set(encap(eth_type(0x800)))", 4, "encap", "not supported"),
        ("set(nsh(flags=0))", 4, "nsh", "not supported"),
        ("1 2x", 3, "x", "between actions"),
        ("clone(1", 7, "<end of input>", "unterminated"),
        ("meter(5", 7, "<end of input>", "expected ')'"),
        ("userspace(pid=1,userdata(012))", 25, "012", "even number"),
        ("recirc(-1)", 7, "-1", "negative"),
        ("trunc(4294967296)", 6, "4294967296", "out of range"),
        ("hash(l5(1))", 5, "l5", "expected l4"),
    ],
)
def test_action_errors(text: str, position: int, token: str, words: str) -> None:
    with pytest.raises(OdpParseError) as e:
        parse_actions(text)
    assert (e.value.position, e.value.token) == (position, token)
    assert words in str(e.value)
    assert f"at position {position} near '{token}'" in str(e.value)


# --------------------------------------------------------------------------- ufid / stats


def test_ufid_uuid_layout() -> None:
    b = parse_ufid("ufid:0123abcd-4567-89ab-cdef-0123456789ab")
    # Four host-order (little-endian) 32-bit words, as OVS stores its u128.
    assert b == struct.pack("<4I", 0x0123ABCD, 0x456789AB, 0xCDEF0123, 0x456789AB)
    assert format_ufid(b) == "0123abcd-4567-89ab-cdef-0123456789ab"
    assert parse_ufid("07553786-0B25-4D01-821A-6696B31AE940") == parse_ufid(
        "07553786-0b25-4d01-821a-6696b31ae940"
    )
    assert format_ufid(bytes(range(16))) == "03020100-0706-0504-0b0a-09080f0e0d0c"
    with pytest.raises(OdpParseError):
        parse_ufid("07553786-0b25-4d01-821a-6696b31ae94")


def test_flow_stats() -> None:
    assert format_flow_stats(FlowStats(2, 172, 10.0, 0x012), 11.514) == (
        "packets:2, bytes:172, used:1.514s, flags:S."
    )
    assert format_flow_stats(FlowStats(), 5.0) == "packets:0, bytes:0, used:never"
    assert format_flow_stats(
        FlowStats(1, 60, 3.0, 0x001 | 0x008 | 0x004 | 0x020 | 0x040 | 0x080), 3.0
    ) == ("packets:1, bytes:60, used:0.000s, flags:FPRUEC")


def test_tcp_flag_letters_order() -> None:
    assert format_tcp_flags_letters(0) == "none"
    assert format_tcp_flags_letters(0xFFF) == "SFPRU.ECN[200][400][800]"
    assert format_tcp_flags_letters(0x010 | 0x100) == ".N"
