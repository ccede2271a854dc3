"""Differential test: datapath actions in pyvswitch vs. Open vSwitch 3.1.

Each case runs an ODP action list on a frame twice: in real OVS (its
userspace datapath, ``OvsSandbox.execute``: the frame's exact flow is
installed with ``dpctl/add-flow`` and the frame received on p1) and in
pyvswitch (``Datapath.execute`` on the memory backend, frame from port 1).
What ports 1-3 transmit must be byte-identical.

The action objects for pyvswitch come from the same text through
``pyvswitch.odp.parse_actions``; ``{p1}``..``{p3}``/``{out}`` are output
placeholders (``{out}`` = p2; without any, ``,{out}`` is appended).

OVS 3.1's text parser cannot parse ``push_mpls``, ``pop_mpls``, ``hash``,
``push_eth``, ``pop_eth`` or ``dec_ttl`` (and 3.1 has no dec_ttl at all):
those are covered by exact-byte tests in test_actions.py only.

Where OVS's userspace datapath and the kernel legitimately differ, pyvswitch
follows the kernel and ``test_kernel_differs_from_userspace`` pins both
behaviours down:

* ``set(arp(...))``, ``set(icmp(...))``, ``set(icmpv6(...))``, ``set(nd(...))``:
  userspace rewrites the packet, the kernel refuses the action list (EINVAL).
* The outer VLAN tag: the kernel keeps it out of ``skb->len``, so ``trunc``
  keeps 4 more bytes and ``check_pkt_len`` measures 4 bytes less than
  userspace on a tagged frame.
* An IPv4 address change on a later fragment: userspace "fixes" the bytes
  where a UDP/TCP checksum would be (corrupting the fragment's payload); the
  kernel leaves non-first fragments' payload alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.layers.sctp import SCTP, SCTPChunkData
from scapy.packet import Raw

from pyvswitch.odp import parse_actions
from pyvswitch.uapi import Action, Output
from tests.ovs_oracle import OvsSandbox, ovs_sandbox_or_skip
from tests.test_actions import MAC1, MAC2, Rig, md

pytestmark = pytest.mark.ovs

E = {"src": MAC1, "dst": MAC2}
A4 = {"src": "192.0.2.1", "dst": "198.51.100.2", "id": 0x1234, "ttl": 64}
A6 = {"src": "2001:db8::1", "dst": "2001:db8::2", "hlim": 64}
DATA = b"0123456789abcdefghijklmnopqrstuv"


def _sctp_bad() -> bytes:
    b = bytearray(
        bytes(
            Ether(**E)
            / IP(**A4)
            / SCTP(sport=2905, dport=2906, tag=1)
            / SCTPChunkData(tsn=1, data=DATA)
        )
    )
    b[42:46] = bytes(x ^ 0x5A for x in b[42:46])  # a wrong CRC32c
    return bytes(b)


CORPUS: dict[str, bytes] = {
    "ipv4_tcp": bytes(Ether(**E) / IP(**A4) / TCP(sport=1234, dport=80, seq=7, flags="PA") / DATA),
    "ipv4_udp": bytes(Ether(**E) / IP(**A4) / UDP(sport=5000, dport=53) / DATA),
    "ipv4_udp_nocsum": bytes(Ether(**E) / IP(**A4) / UDP(sport=5000, dport=53, chksum=0) / DATA),
    "ipv4_icmp": bytes(Ether(**E) / IP(**A4) / ICMP(type=8, id=3, seq=4) / DATA),
    "ipv4_sctp": bytes(
        Ether(**E)
        / IP(**A4)
        / SCTP(sport=2905, dport=2906, tag=1)
        / SCTPChunkData(tsn=1, data=DATA)
    ),
    "ipv4_sctp_badcsum": _sctp_bad(),
    "ipv4_opts_udp": bytes(
        Ether(**E) / IP(options=b"\x94\x04\x00\x00", **A4) / UDP(sport=7, dport=8) / DATA
    ),
    "ipv6_tcp": bytes(Ether(**E) / IPv6(**A6) / TCP(sport=1234, dport=443, seq=9) / DATA),
    "ipv6_udp": bytes(
        Ether(**E) / IPv6(tc=0x28, fl=0x12345, **A6) / UDP(sport=5000, dport=53) / DATA
    ),
    "ipv6_icmpv6": bytes(Ether(**E) / IPv6(**A6) / ICMPv6EchoRequest(id=1, seq=2, data=DATA)),
    "ipv6_sctp": bytes(
        Ether(**E) / IPv6(**A6) / SCTP(sport=5, dport=6, tag=2) / SCTPChunkData(tsn=1, data=DATA)
    ),
    "vlan_ipv4_udp": bytes(
        Ether(**E) / Dot1Q(vlan=10, prio=3) / IP(**A4) / UDP(sport=5000, dport=53) / DATA
    ),
    "vlan_ipv6_tcp": bytes(Ether(**E) / Dot1Q(vlan=20) / IPv6(**A6) / TCP(sport=1, dport=2) / DATA),
    "qinq_ipv4_tcp": bytes(
        Ether(**E)
        / Dot1AD(vlan=100, prio=1)
        / Dot1Q(vlan=200, prio=2)
        / IP(**A4)
        / TCP(sport=1, dport=2)
        / DATA
    ),
    "arp": bytes(
        Ether(src=MAC1, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, hwsrc=MAC1, psrc="192.0.2.1", pdst="192.0.2.99")
    ),
    "mpls_ipv4": bytes(Ether(**E) / MPLS(label=100, cos=1, s=1, ttl=9) / IP(**A4) / UDP() / DATA),
    "mpls2_ipv4": bytes(
        Ether(**E)
        / MPLS(label=16, s=0, ttl=5)
        / MPLS(label=17, s=1, ttl=6)
        / IP(**A4)
        / UDP()
        / DATA
    ),
}

ETH = [
    "set(eth(src=0a:0b:0c:0d:0e:0f,dst=02:00:00:00:00:09))",
    "set(eth(dst=00:00:00:00:00:aa/00:00:00:00:00:ff))",
    "push_vlan(vid=100,pcp=5)",
    "push_vlan(tpid=0x88a8,vid=7,pcp=0)",
    "push_vlan(vid=100,pcp=5),push_vlan(tpid=0x88a8,vid=7,pcp=1)",
    "pop_vlan",
    "{p3},set(eth(src=0a:0b:0c:0d:0e:0f)),{p2}",
    "clone(push_vlan(vid=9,pcp=0),{p3}),{p2}",
    "sample(sample=100.0%,actions(set(eth(dst=0a:00:00:00:00:01)),{p3})),{p2}",
    "sample(sample=0.0%,actions({p3})),{p2}",
    "trunc(20),{p3},{p2}",
    "trunc(1000)",
]
IPV4 = [
    "set(ipv4(src=203.0.113.9))",
    "set(ipv4(dst=10.9.0.0/255.255.0.0))",
    "set(ipv4(src=203.0.113.9,dst=10.1.2.3))",
    "set(ipv4(tos=0xb8))",
    "set(ipv4(tos=0x3/0x3))",
    "set(ipv4(ttl=9))",
    "set(ipv4(tos=0x20,ttl=1))",
    "set(ipv4(src=203.0.113.9)),clone(set(ipv4(ttl=3)),{p3}),{p2}",
]
IPV6 = [
    "set(ipv6(src=2001:db8:aa::7))",
    "set(ipv6(dst=fd00::9))",
    "set(ipv6(src=2001:db8::1:0:0/ffff:ffff:ffff:ffff:ffff:ffff::))",
    "set(ipv6(tclass=0xb8))",
    "set(ipv6(tclass=0x1/0x3))",
    "set(ipv6(label=0x54321))",
    "set(ipv6(label=0x5/0xf))",
    "set(ipv6(hlimit=3))",
]
L4 = {
    "tcp": ["set(tcp(src=4321,dst=8080))", "set(tcp(src=0xab/0xff))", "set(tcp(dst=1))"],
    "udp": ["set(udp(src=4321,dst=8080))", "set(udp(dst=0x100/0xff00))"],
    "sctp": ["set(sctp(src=7,dst=8))", "set(sctp(dst=9))"],
}
MPLS_ACTS = [
    "set(mpls(label=200,tc=2,ttl=7,bos=1))",
    "set(mpls(label=300,tc=0,ttl=64,bos=0))",
    "push_vlan(vid=5,pcp=0)",
]


def _cases() -> Iterator[tuple[str, str]]:
    for name in CORPUS:
        l4 = next((p for p in ("tcp", "udp", "sctp") if p in name), None)
        if name.startswith(("arp", "mpls")):
            yield from ((name, a) for a in ETH if not a.startswith("trunc(20)"))
        else:
            tagged = name.startswith(("vlan", "qinq"))  # trunc: see the differences below
            yield from ((name, a) for a in ETH if not (a.startswith("trunc(20)") and tagged))
        if "ipv4" in name and not name.startswith("mpls"):
            yield from ((name, a) for a in IPV4)
            yield (
                name,
                f"set(ipv4(src=1.2.3.4,dst=5.6.7.8,proto={_proto(name)},tos=4,ttl=3,frag=no))",
            )
        if "ipv6" in name:
            yield from ((name, a) for a in IPV6)
        if l4 is not None and not name.startswith("mpls"):
            yield from ((name, a) for a in L4[l4])
            if "ipv4" in name:
                yield (name, f"set(ipv4(dst=10.7.7.7)),{L4[l4][0]}")
        if name.startswith("mpls"):
            yield from ((name, a) for a in MPLS_ACTS)
        if not name.startswith(("qinq", "vlan")):
            n = len(CORPUS[name])
            yield (name, f"check_pkt_len(size={n},gt({{p3}}),le({{p2}}))")
            yield (name, f"check_pkt_len(size={n - 1},gt({{p3}}),le({{p2}}))")


def _proto(name: str) -> int:
    return {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1}[
        next(p for p in ("tcp", "udp", "sctp", "icmp") if p in name)
    ]


CASES = list(_cases())
PLACEHOLDER = re.compile(r"\{(p1|p2|p3|out)\}")


@pytest.fixture(scope="module")
def ovs() -> Iterator[OvsSandbox]:
    with ovs_sandbox_or_skip() as sandbox:
        yield sandbox


def ours(text: str) -> list[Action]:
    """The action text as pyvswitch objects, with OVS's placeholder rule."""
    has_out = bool(PLACEHOLDER.search(text))
    resolved = PLACEHOLDER.sub(lambda m: {"p1": "1", "p2": "2", "p3": "3", "out": "2"}[m[1]], text)
    acts = list(parse_actions(resolved))
    return acts if has_out else [*acts, Output(2)]


def run_both(
    ovs: OvsSandbox, frame: bytes, text: str
) -> tuple[dict[int, list[bytes]], dict[int, list[bytes]]]:
    theirs = ovs.execute(frame, text)
    rig = Rig()
    mine = rig.run(frame, ours(text), key=md(1))
    return {int(p[1:]): v for p, v in theirs.items()}, mine


def test_corpus_is_large() -> None:
    assert len(CASES) > 200


@pytest.mark.parametrize(("name", "text"), CASES, ids=[f"{n}:{t}" for n, t in CASES])
def test_same_bytes_as_ovs(ovs: OvsSandbox, name: str, text: str) -> None:
    frame = CORPUS[name]
    theirs, mine = run_both(ovs, frame, text)
    assert mine == theirs
    assert any(mine.values()) or "0.0%" in text  # something was transmitted


# ---------------------------------------------------------------------------
# Where the kernel (and pyvswitch) differ from OVS's userspace datapath


_USERSPACE_SETS = [
    ("arp", "set(arp(sip=192.0.2.77))"),
    ("arp", "set(arp(op=2))"),
    (
        "arp",
        "set(arp(sip=192.0.2.77,tip=192.0.2.78,op=2,sha=02:00:00:00:00:aa,tha=02:00:00:00:00:bb))",
    ),
    ("arp", "set(arp(tha=02:00:00:00:00:00/ff:ff:ff:00:00:00))"),
    ("arp", "set(arp(tip=10.0.0.0/255.0.0.0))"),
    ("ipv4_icmp", "set(icmp(type=0,code=0))"),
    ("ipv4_icmp", "set(icmp(type=8,code=0))"),  # no change
    ("ipv6_icmpv6", "set(icmpv6(type=129,code=0))"),
    ("nd", "set(nd(target=2001:db8::77))"),
    ("nd", "set(nd(target=2001:db8::77,sll=02:00:00:00:00:cc,tll=00:00:00:00:00:00))"),
    ("nd", "set(nd(sll=02:00:00:00:00:cc))"),
    ("nd", "set(nd(target=2002::/ffff::))"),
    ("nd_na", "set(nd(tll=02:00:00:00:00:dd))"),
]


@pytest.mark.parametrize(("name", "text"), _USERSPACE_SETS, ids=[t for _n, t in _USERSPACE_SETS])
def test_arp_icmp_nd_sets_as_ovs_userspace(ovs: OvsSandbox, name: str, text: str) -> None:
    """The kernel cannot set ARP, ICMP, ICMPv6 or ND fields; pyvswitch sets them
    as OVS's userspace datapath does (the issue asks for them): same bytes."""
    frames = {
        **CORPUS,
        "nd": bytes(
            Ether(**E)
            / IPv6(**A6)
            / ICMPv6ND_NS(tgt="2001:db8::99")
            / ICMPv6NDOptSrcLLAddr(lladdr=MAC1)
        ),
        "nd_na": bytes(
            Ether(**E)
            / IPv6(**A6)
            / ICMPv6ND_NA(tgt="2001:db8::99")
            / ICMPv6NDOptDstLLAddr(lladdr=MAC1)
        ),
    }
    frame = frames[name]
    theirs, mine = run_both(ovs, frame, text)
    assert mine == theirs
    assert any(mine.values())


# OVS 3.1's ovs-vswitchd dies executing a *masked* ICMP/ICMPv6 set (a
# partial set(icmp(...))), so these are checked against packets scapy builds.
_MASKED_ICMP = [("ipv4_icmp", "set(icmp(type=0))"), ("ipv4_icmp", "set(icmp(code=3))")]


def test_masked_icmp_sets_exact_bytes() -> None:
    for name, text in _MASKED_ICMP:
        frame = CORPUS[name]
        pkt = Ether(frame)
        icmp = pkt[ICMP]
        if "type" in text:
            icmp.type = 0
        else:
            icmp.code = 3
        del icmp.chksum
        want = bytes(pkt)
        mine = Rig().run(frame, ours(text), key=md(1))
        assert mine[2] == [want] and not mine[1] and not mine[3], text
    frame = CORPUS["ipv6_icmpv6"]
    pkt = Ether(frame)
    pkt[IPv6].payload.code = 7
    del pkt[IPv6].payload.cksum
    mine = Rig().run(frame, ours("set(icmpv6(code=7))"), key=md(1))
    assert mine[2] == [bytes(pkt)]


def test_kernel_differs_from_userspace(ovs: OvsSandbox) -> None:
    vlan = CORPUS["vlan_ipv4_udp"]
    # trunc: userspace counts the tag, the kernel does not.
    theirs, mine = run_both(ovs, vlan, "trunc(30),{p2}")
    assert theirs[2] == [vlan[:30]] and mine[2] == [vlan[:34]]
    # check_pkt_len: a 4-byte window where the two take different branches.
    size = len(vlan) - 2
    theirs, mine = run_both(ovs, vlan, f"check_pkt_len(size={size},gt({{p3}}),le({{p2}}))")
    assert theirs[3] == [vlan] and theirs[2] == []
    assert mine[2] == [vlan] and mine[3] == []
    # Away from that window they agree.
    for size in (len(vlan) - 5, len(vlan)):
        theirs, mine = run_both(ovs, vlan, f"check_pkt_len(size={size},gt({{p3}}),le({{p2}}))")
        assert mine == theirs
    # A later IPv4 fragment: only the kernel leaves the payload alone.
    frag = bytes(
        Ether(**E) / IP(proto=17, frag=100, **A4) / Raw(bytes.fromhex("13880035001c1234") + DATA)
    )
    theirs, mine = run_both(ovs, frag, "set(ipv4(src=203.0.113.9))")
    assert theirs[2][0][:34] == mine[2][0][:34]  # same IP header
    assert mine[2][0][34:] == frag[34:] != theirs[2][0][34:]
