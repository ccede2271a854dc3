"""Action execution with exact byte expectations.

Every expected frame is built independently with scapy (which computes the
IPv4/TCP/UDP/ICMPv6 checksums and the SCTP CRC32c itself); pyvswitch runs the
actions through ``Datapath.execute`` (or installed flows) on the in-memory
backend and we compare what the output ports transmit.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrRouting
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.layers.sctp import SCTP, SCTPChunkData
from scapy.packet import Packet, Raw

from pyvswitch import flow
from pyvswitch.actions import (
    DROP_DEFERRED,
    DROP_EXPLICIT,
    DROP_INVALID_PORT,
    DROP_MAC_PROTO,
    DROP_METER,
    DROP_RECIRC,
    DROP_RECURSION,
    DROP_TTL,
    ovs_execute_actions,
    validate_actions,
)
from pyvswitch.datapath import DpStats
from pyvswitch.errors import ActionError, NotSupportedError
from pyvswitch.flow import FIELDS, field_mask, key_from_fields, key_get
from pyvswitch.skbuff import CHECKSUM_PARTIAL, SKB_GSO_TCPV4, SkBuff
from pyvswitch.uapi import (
    OVS_HASH_ALG_L4,
    OVS_HASH_ALG_SYM_L4,
    OVS_KEY_ATTR_CT_MARK,
    OVS_KEY_ATTR_IN_PORT,
    OVS_KEY_ATTR_PRIORITY,
    OVS_KEY_ATTR_SKB_MARK,
    OVS_PACKET_CMD_ACTION,
    Action,
    AddMpls,
    Arp,
    CheckPktLen,
    Clone,
    Ct,
    CtClear,
    DecTtl,
    Drop,
    Ethernet,
    Hash,
    Icmp,
    Icmpv6,
    Ipv4,
    Ipv6,
    Meter,
    Mpls,
    Nd,
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
    Sctp,
    Set,
    SetMasked,
    Tcp,
    Trunc,
    Tunnel,
    Udp,
    Upcall,
    Userspace,
)
from pyvswitch.upcall import Handler
from tests.conftest import Topo

MAC1 = "02:00:00:00:00:01"
MAC2 = "02:00:00:00:00:02"
SRC4 = "192.0.2.1"
DST4 = "198.51.100.2"
SRC6 = "2001:db8::1"
DST6 = "2001:db8::2"
PAYLOAD = b"0123456789abcdefghij"


def ip4(a: str) -> int:
    return int.from_bytes(bytes(int(x) for x in a.split(".")), "big")


def ip6(a: str) -> int:
    import ipaddress

    return int(ipaddress.IPv6Address(a))


def mac(a: str) -> int:
    return int(a.replace(":", ""), 16)


# ---------------------------------------------------------------------------
# Packet builders (scapy, checksums left for scapy to compute)


def eth() -> Ether:
    return Ether(src=MAC1, dst=MAC2)


def v4(l4: Packet | None = None, **ip: object) -> Packet:
    kw: dict[str, object] = {"src": SRC4, "dst": DST4, "id": 0x1234, "ttl": 64}
    kw.update(ip)
    p = eth() / IP(**kw)
    return p / l4 if l4 is not None else p


def v6(l4: Packet | None = None, **ip6_: object) -> Packet:
    kw: dict[str, object] = {"src": SRC6, "dst": DST6, "hlim": 64}
    kw.update(ip6_)
    p = eth() / IPv6(**kw)
    return p / l4 if l4 is not None else p


def tcp4(**ip: object) -> Packet:
    return v4(TCP(sport=1234, dport=80, seq=1, flags="PA") / PAYLOAD, **ip)


def udp4(**ip: object) -> Packet:
    return v4(UDP(sport=5000, dport=53) / PAYLOAD, **ip)


def vlan_udp4(vid: int = 10, prio: int = 3) -> Packet:
    return (
        eth()
        / Dot1Q(vlan=vid, prio=prio)
        / IP(src=SRC4, dst=DST4, id=0x1234, ttl=64)
        / UDP(sport=5000, dport=53)
        / PAYLOAD
    )


def qinq_tcp4() -> Packet:
    return (
        eth()
        / Dot1AD(vlan=100, prio=1)
        / Dot1Q(vlan=200, prio=2)
        / IP(src=SRC4, dst=DST4, id=0x1234, ttl=64)
        / TCP(sport=1234, dport=80, seq=1)
        / PAYLOAD
    )


def changed(p: Packet, fn: Callable[[Packet], None]) -> bytes:
    """The bytes of a copy of ``p`` after ``fn`` changed it (scapy recomputes
    every checksum that was not set explicitly)."""
    q = p.copy()
    fn(q)
    return bytes(q)


def setattrs(layer: type[Packet], **values: object) -> Callable[[Packet], None]:
    def fn(q: Packet) -> None:
        for k, v in values.items():
            setattr(q[layer], k, v)

    return fn


# ---------------------------------------------------------------------------
# The rig: three hosts on one datapath, a recording handler


class Recorder(Handler):
    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.seen: list[Upcall] = []

    def handle_upcall(self, upcall: Upcall) -> None:
        self.seen.append(upcall)


class Rig(Topo):
    """h1 -- p1 [dp0] p2 -- h2, p3 -- h3; ``run`` executes actions on a frame
    received on p1 and returns what each port transmitted."""

    def __init__(self) -> None:
        super().__init__()
        self.h3 = self.world.netns("h3")
        self.world.veth(self.h3, "eth0", self.sw, "p3")
        self.p3 = self.dp.vport_add("p3")
        self.hosts = {1: self.h1, 2: self.h2, 3: self.h3}
        self.rec = Recorder(self.dp)
        self.pid = self.rec.portids[0]

    def clear(self) -> None:
        for h in self.hosts.values():
            h.stack.received.clear()
        self.rec.poll()
        self.rec.seen.clear()

    def sent(self) -> dict[int, list[bytes]]:
        self.world.run()
        return {n: [f for _dev, f in h.stack.received] for n, h in self.hosts.items()}

    def run(
        self, frame: bytes | SkBuff, actions: Sequence[Action], key: int | None = None
    ) -> dict[int, list[bytes]]:
        self.clear()
        self.dp.execute(frame, actions, key=key if key is not None else md(1))
        out = self.sent()
        self.rec.poll()
        return out

    def receive(self, frames: Sequence[bytes]) -> dict[int, list[bytes]]:
        """Frames arriving on p1 (the receive path, flows installed)."""
        self.clear()
        self.h1.transmit("eth0", frames)
        out = self.sent()
        self.rec.poll()
        return out

    def out2(self, frame: bytes | SkBuff, actions: Sequence[Action]) -> bytes:
        """Run ``actions + [output(2)]``; the one frame p2 transmitted."""
        out = self.run(frame, [*actions, Output(2)])
        assert len(out[2]) == 1, out
        return out[2][0]

    def stats(self) -> DpStats:
        return self.dp.get_stats()


def md(in_port: int, **fields: int) -> int:
    return key_from_fields(in_port=in_port, **fields)


@pytest.fixture
def rig() -> Rig:
    return Rig()


# ---------------------------------------------------------------------------
# output, clone semantics, trunc


def test_output_clones_unless_last(rig: Rig) -> None:
    p = udp4()
    out = rig.run(bytes(p), [Output(2), SetMasked(Ipv4(ttl=9), Ipv4(ttl=0xFF)), Output(3)])
    assert out[2] == [bytes(p)]  # sent before the set: unchanged
    assert out[3] == [changed(p, setattrs(IP, ttl=9))]
    assert out[1] == []


def test_output_to_missing_port_is_counted_and_list_continues(rig: Rig) -> None:
    p = udp4()
    out = rig.run(bytes(p), [Output(42), Output(2)])
    assert out[2] == [bytes(p)]
    assert rig.dp.drops[DROP_INVALID_PORT] == 1


def test_empty_action_list_drops(rig: Rig) -> None:
    out = rig.run(bytes(udp4()), [])
    assert out == {1: [], 2: [], 3: []}


def test_trunc_applies_to_next_output_only(rig: Rig) -> None:
    frame = bytes(udp4())
    out = rig.run(frame, [Trunc(30), Output(2), Output(3)])
    assert out[2] == [frame[:30]]
    assert out[3] == [frame]


def test_trunc_longer_than_packet_does_nothing(rig: Rig) -> None:
    frame = bytes(udp4())
    assert rig.out2(frame, [Trunc(1000)]) == frame


def test_trunc_vlan_frame_keeps_outer_tag_outside_the_length(rig: Rig) -> None:
    # The kernel keeps the outer tag in skb->vlan_tci: trunc(30) leaves 30
    # bytes of data plus the 4-byte tag on the wire (OVS userspace: 30).
    frame = bytes(vlan_udp4())
    assert rig.out2(frame, [Trunc(30)]) == frame[:34]


def test_trunc_never_below_the_ethernet_header(rig: Rig) -> None:
    frame = bytes(udp4())
    with pytest.raises(ActionError):
        validate_actions([Trunc(13), Output(2)], flow.extract(frame, 1))
    # Unvalidated (a direct call): the cut still stops at the L2 header.
    rig.clear()
    ovs_execute_actions(
        rig.dp, SkBuff(frame), flow.extract(frame, 1), [Trunc(4), Output(2)], rig.p1
    )
    assert rig.sent()[2] == [frame[:14]]
    vframe = bytes(vlan_udp4())
    rig.clear()
    ovs_execute_actions(
        rig.dp, SkBuff(vframe), flow.extract(vframe, 1), [Trunc(4), Output(2)], rig.p1
    )
    assert rig.sent()[2] == [vframe[:18]]


def test_trunc_then_userspace_reports_original_length(rig: Rig) -> None:
    frame = bytes(udp4())
    out = rig.run(frame, [Trunc(20), Userspace(pid=rig.pid), Output(2)])
    (up,) = rig.rec.seen
    assert up.packet == frame[:20] and up.orig_len == len(frame)
    assert out[2] == [frame]  # cutlen was reset by the userspace action


# ---------------------------------------------------------------------------
# set / set_masked: Ethernet


def test_set_eth(rig: Rig) -> None:
    p = udp4()
    got = rig.out2(bytes(p), [Set(Ethernet(src=mac("0a:0b:0c:0d:0e:0f"), dst=mac(MAC1)))])
    assert got == changed(p, setattrs(Ether, src="0a:0b:0c:0d:0e:0f", dst=MAC1))


def test_set_masked_eth(rig: Rig) -> None:
    p = udp4()
    act = SetMasked(Ethernet(dst=0x0000000000AA), Ethernet(dst=0x0000000000FF))
    assert rig.out2(bytes(p), [act]) == changed(p, setattrs(Ether, dst="02:00:00:00:00:aa"))


# ---------------------------------------------------------------------------
# IPv4


@pytest.mark.parametrize("builder", [tcp4, udp4], ids=["tcp", "udp"])
def test_set_ipv4_addresses_update_ip_and_l4_checksums(
    rig: Rig, builder: Callable[[], Packet]
) -> None:
    p = builder()
    act = SetMasked(Ipv4(src=ip4("203.0.113.9"), dst=ip4("10.1.2.3")), Ipv4(0xFFFFFFFF, 0xFFFFFFFF))
    got = rig.out2(bytes(p), [act])
    assert got == changed(p, setattrs(IP, src="203.0.113.9", dst="10.1.2.3"))


def test_set_ipv4_masked_address(rig: Rig) -> None:
    p = tcp4()
    act = SetMasked(Ipv4(dst=ip4("10.9.0.0")), Ipv4(dst=ip4("255.255.0.0")))
    assert rig.out2(bytes(p), [act]) == changed(p, setattrs(IP, dst="10.9.100.2"))


def test_set_ipv4_udp_zero_checksum_stays_zero(rig: Rig) -> None:
    p = v4(UDP(sport=5000, dport=53, chksum=0) / PAYLOAD)
    got = rig.out2(bytes(p), [SetMasked(Ipv4(src=ip4("203.0.113.9")), Ipv4(src=0xFFFFFFFF))])
    exp = changed(p, setattrs(IP, src="203.0.113.9"))
    assert got == exp and exp[40:42] == b"\x00\x00"


def test_set_ipv4_udp_checksum_becoming_zero_is_sent_as_ffff(rig: Rig) -> None:
    new_src = "203.0.113.9"

    def build(word: int, src: str) -> Packet:
        return v4(UDP(sport=5000, dport=53) / (word.to_bytes(2, "big") + PAYLOAD), src=src)

    # Choose the first payload word so that the checksum after the change is
    # (ones-complement) zero: scapy then writes 0xFFFF, as RFC 768 demands.
    c = bytes(build(0, new_src))[40:42]
    word = int.from_bytes(c, "big")
    p = build(word, SRC4)
    exp = bytes(build(word, new_src))
    assert exp[40:42] == b"\xff\xff"
    got = rig.out2(bytes(p), [SetMasked(Ipv4(src=ip4(new_src)), Ipv4(src=0xFFFFFFFF))])
    assert got == exp


def test_set_ipv4_icmp_has_no_pseudo_header(rig: Rig) -> None:
    p = v4(ICMP(type=8, id=7, seq=1) / PAYLOAD)
    got = rig.out2(bytes(p), [SetMasked(Ipv4(src=ip4("203.0.113.9")), Ipv4(src=0xFFFFFFFF))])
    assert got == changed(p, setattrs(IP, src="203.0.113.9"))


def test_set_ipv4_tos_ttl(rig: Rig) -> None:
    p = tcp4(tos=0x10)
    # DSCP/ECN under the mask only: ECN bits 0b11 set, DSCP left alone.
    got = rig.out2(bytes(p), [SetMasked(Ipv4(tos=0x03, ttl=9), Ipv4(tos=0x03, ttl=0xFF))])
    assert got == changed(p, setattrs(IP, tos=0x13, ttl=9))


def test_set_ipv4_unmasked_requires_proto_and_frag(rig: Rig) -> None:
    p = udp4(tos=4)
    full = Set(Ipv4(src=ip4("1.2.3.4"), dst=ip4("5.6.7.8"), proto=17, tos=0xB8, ttl=3, frag=0))
    got = rig.out2(bytes(p), [full])
    assert got == changed(p, setattrs(IP, src="1.2.3.4", dst="5.6.7.8", tos=0xB8, ttl=3))
    with pytest.raises(ActionError, match="proto and frag"):
        rig.dp.execute(bytes(p), [Set(Ipv4(src=1, dst=2, proto=6, ttl=3)), Output(2)], key=md(1))


def test_set_ipv4_later_fragment_leaves_l4_alone(rig: Rig) -> None:
    # A later fragment's payload is not a UDP header; only the IP header changes.
    p = v4(Raw(bytes(UDP(sport=1, dport=2) / PAYLOAD)), proto=17, frag=100)
    key = flow.extract(bytes(p), 1)
    assert key_get(key, "ip_frag") == flow.OVS_FRAG_TYPE_LATER
    got = rig.out2(bytes(p), [SetMasked(Ipv4(src=ip4("203.0.113.9")), Ipv4(src=0xFFFFFFFF))])
    assert got == changed(p, setattrs(IP, src="203.0.113.9"))


def test_set_ipv4_with_options_finds_transport_header(rig: Rig) -> None:
    p = (
        eth()
        / IP(src=SRC4, dst=DST4, id=1, options=b"\x94\x04\x00\x00")
        / UDP(sport=7, dport=8)
        / PAYLOAD
    )
    acts = [
        SetMasked(Ipv4(dst=ip4("10.7.7.7")), Ipv4(dst=0xFFFFFFFF)),
        SetMasked(Udp(dst=999), Udp(dst=0xFFFF)),
    ]
    exp = changed(p, lambda q: (setattrs(IP, dst="10.7.7.7")(q), setattrs(UDP, dport=999)(q)))
    assert rig.out2(bytes(p), acts) == exp


def test_set_ipv4_on_vlan_frame(rig: Rig) -> None:
    p = vlan_udp4()
    got = rig.out2(bytes(p), [SetMasked(Ipv4(ttl=1), Ipv4(ttl=0xFF))])
    assert got == changed(p, setattrs(IP, ttl=1))


# ---------------------------------------------------------------------------
# IPv6


@pytest.mark.parametrize(
    "l4",
    [
        TCP(sport=1, dport=2, seq=5) / PAYLOAD,
        UDP(sport=1, dport=2) / PAYLOAD,
        ICMPv6EchoRequest(id=3, seq=4, data=PAYLOAD),
    ],
    ids=["tcp", "udp", "icmpv6"],
)
def test_set_ipv6_addresses_update_l4_checksum(rig: Rig, l4: Packet) -> None:
    p = v6(l4)
    ones = (1 << 128) - 1
    act = SetMasked(Ipv6(src=ip6("2001:db8:aa::7"), dst=ip6("fd00::9")), Ipv6(src=ones, dst=ones))
    assert rig.out2(bytes(p), [act]) == changed(
        p, setattrs(IPv6, src="2001:db8:aa::7", dst="fd00::9")
    )


def test_set_ipv6_tclass_label_hlimit(rig: Rig) -> None:
    p = v6(UDP(sport=1, dport=2) / PAYLOAD, tc=0x21, fl=0xABCDE)
    act = SetMasked(
        Ipv6(tclass=0xB8, label=0x00005, hlimit=7),
        Ipv6(tclass=0xFC, label=0x0000F, hlimit=0xFF),
    )
    assert rig.out2(bytes(p), [act]) == changed(p, setattrs(IPv6, tc=0xB9, fl=0xABCD5, hlim=7))


def test_set_ipv6_dst_behind_routing_header_keeps_l4_checksum(rig: Rig) -> None:
    p = v6(
        IPv6ExtHdrRouting(addresses=["2001:db8::77"], segleft=1) / UDP(sport=1, dport=2) / PAYLOAD
    )
    orig = bytes(p)
    udp_csum = IPv6(orig[14:])[UDP].chksum
    ones = (1 << 128) - 1
    got = rig.out2(orig, [SetMasked(Ipv6(dst=ip6("2001:db8::99")), Ipv6(dst=ones))])

    def fn(q: Packet) -> None:
        q[IPv6].dst = "2001:db8::99"
        q[UDP].chksum = udp_csum  # covers the final destination: unchanged

    assert got == changed(p, fn)


def test_set_ipv6_label_validation(rig: Rig) -> None:
    key = flow.extract(bytes(v6(UDP() / PAYLOAD)), 1)
    with pytest.raises(ActionError, match="20 bits"):
        validate_actions([SetMasked(Ipv6(label=1), Ipv6(label=0x1FFFFF))], key)
    with pytest.raises(ActionError, match="proto and frag"):
        validate_actions([SetMasked(Ipv6(proto=6), Ipv6(proto=0xFF))], key)


# ---------------------------------------------------------------------------
# TCP / UDP / SCTP


def test_set_tcp_ports(rig: Rig) -> None:
    p = tcp4()
    got = rig.out2(bytes(p), [Set(Tcp(src=4321, dst=8080))])
    assert got == changed(p, setattrs(TCP, sport=4321, dport=8080))


def test_set_masked_tcp_port_ipv6(rig: Rig) -> None:
    p = v6(TCP(sport=0x1234, dport=80) / PAYLOAD)
    got = rig.out2(bytes(p), [SetMasked(Tcp(src=0x00AB), Tcp(src=0x00FF))])
    assert got == changed(p, setattrs(TCP, sport=0x12AB))


def test_set_udp_ports(rig: Rig) -> None:
    p = udp4()
    got = rig.out2(bytes(p), [SetMasked(Udp(dst=5353), Udp(dst=0xFFFF))])
    assert got == changed(p, setattrs(UDP, dport=5353))


def test_set_udp_ports_zero_checksum_stays_zero(rig: Rig) -> None:
    p = v4(UDP(sport=5000, dport=53, chksum=0) / PAYLOAD)
    got = rig.out2(bytes(p), [Set(Udp(src=1, dst=2))])
    assert got == changed(p, setattrs(UDP, sport=1, dport=2))


def sctp4() -> Packet:
    return v4(SCTP(sport=2905, dport=2906, tag=0x11223344) / SCTPChunkData(tsn=1, data=PAYLOAD))


def test_set_sctp_ports_recompute_crc32c(rig: Rig) -> None:
    p = sctp4()
    got = rig.out2(bytes(p), [Set(Sctp(src=7, dst=8))])
    assert got == changed(p, setattrs(SCTP, sport=7, dport=8))


def test_set_sctp_carries_a_bad_checksum_through(rig: Rig) -> None:
    p = sctp4()
    err = bytes.fromhex("deadbeef")
    th = 14 + 20

    def corrupt(b: bytes) -> bytes:
        bad = bytes(x ^ y for x, y in zip(b[th + 8 : th + 12], err, strict=True))
        return b[: th + 8] + bad + b[th + 12 :]

    got = rig.out2(corrupt(bytes(p)), [SetMasked(Sctp(dst=9), Sctp(dst=0xFFFF))])
    assert got == corrupt(changed(p, setattrs(SCTP, dport=9)))


def test_set_l4_requires_matching_protocol() -> None:
    key = flow.extract(bytes(udp4()), 1)
    for act in (Set(Tcp(src=1)), Set(Sctp(src=1))):
        with pytest.raises(ActionError, match="is not"):
            validate_actions([act], key)
    validate_actions([Set(Udp(src=1))], key)


# ---------------------------------------------------------------------------
# CHECKSUM_PARTIAL packets (offloaded checksum, finished on transmit)


def pseudo_sum(p: Packet, proto: int) -> int:
    """The folded, uncomplemented IPv4 pseudo-header sum a stack leaves in the
    L4 checksum field under CHECKSUM_PARTIAL."""
    b = bytes(p)
    words = [int.from_bytes(b[i : i + 2], "big") for i in range(26, 34, 2)]
    s = sum(words) + proto + (len(b) - 34)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def partial_skb(p: Packet, proto: int, csum_offset: int) -> SkBuff:
    b = bytearray(bytes(p))
    off = 34 + csum_offset
    b[off : off + 2] = pseudo_sum(p, proto).to_bytes(2, "big")
    return SkBuff(bytes(b), ip_summed=CHECKSUM_PARTIAL, csum_start=34, csum_offset=csum_offset)


def test_checksum_partial_tcp_address_and_port_change(rig: Rig) -> None:
    p = tcp4()
    acts = [
        SetMasked(Ipv4(src=ip4("203.0.113.9")), Ipv4(src=0xFFFFFFFF)),
        Set(Tcp(src=1, dst=2)),
    ]
    got = rig.out2(partial_skb(p, 6, 16), acts)
    assert got == changed(
        p, lambda q: (setattrs(IP, src="203.0.113.9")(q), setattrs(TCP, sport=1, dport=2)(q))
    )


def test_checksum_partial_udp_and_push_vlan_moves_csum_start(rig: Rig) -> None:
    p = udp4()
    acts = [
        SetMasked(Ipv4(dst=ip4("10.20.30.40")), Ipv4(dst=0xFFFFFFFF)),
        PushVlan(0x8100, 0x1000 | 42),
    ]
    got = rig.out2(partial_skb(p, 17, 6), acts)
    exp = (
        eth()
        / Dot1Q(vlan=42)
        / IP(src=SRC4, dst="10.20.30.40", id=0x1234, ttl=64)
        / UDP(sport=5000, dport=53)
        / PAYLOAD
    )
    assert got == bytes(exp)


# ---------------------------------------------------------------------------
# priority / skb_mark and the key after sets


def test_set_priority_mark_and_key_seen_by_userspace(rig: Rig) -> None:
    p = tcp4()
    acts = [
        Set(Scalar(OVS_KEY_ATTR_PRIORITY, 7)),
        SetMasked(Scalar(OVS_KEY_ATTR_SKB_MARK, 0x50), Scalar(OVS_KEY_ATTR_SKB_MARK, 0xF0)),
        SetMasked(Ipv4(ttl=5), Ipv4(ttl=0xFF)),
        Set(Tcp(src=1, dst=2)),
        Userspace(pid=rig.pid, userdata=b"\x01\x02\x03\x04"),
    ]
    rig.run(bytes(p), acts, key=md(1, skb_mark=0x0F))
    (up,) = rig.rec.seen
    exp = changed(p, lambda q: (setattrs(IP, ttl=5)(q), setattrs(TCP, sport=1, dport=2)(q)))
    assert up.cmd == OVS_PACKET_CMD_ACTION and up.packet == exp
    assert up.userdata == b"\x01\x02\x03\x04" and up.actions is None
    assert up.key == flow.extract(exp, 1, priority=7, skb_mark=0x5F)


def test_unsettable_attributes_rejected() -> None:
    key = flow.extract(bytes(udp4()), 1)
    for attr in (Scalar(OVS_KEY_ATTR_IN_PORT, 2), Scalar(OVS_KEY_ATTR_CT_MARK, 1)):
        with pytest.raises(ActionError):
            validate_actions([Set(attr)], key)


def test_icmp_arp_nd_sets_need_the_matching_protocol(rig: Rig) -> None:
    # The kernel cannot set these; pyvswitch sets them as OVS's userspace
    # datapath does (exact bytes checked in test_actions_vs_ovs.py), and
    # validates them like set(tcp): the flow must be of that protocol.
    udp = bytes(udp4())
    for act in (
        Set(Icmp(type=0, code=0)),
        Set(Icmpv6(type=129, code=0)),
        SetMasked(Arp(sip=1), Arp(sip=0xFFFFFFFF)),
        SetMasked(Nd(target=1), Nd(target=(1 << 128) - 1)),
    ):
        with pytest.raises(ActionError, match="is not"):
            rig.dp.execute(udp, [act, Output(2)], key=md(1))
    icmp = bytes(v4(ICMP(type=8) / PAYLOAD))
    rig.dp.execute(icmp, [Set(Icmp(type=0, code=0)), Output(2)], key=md(1))
    (out,) = rig.sent()[2]
    want = Ether(icmp)
    want[ICMP].type = 0
    del want[ICMP].chksum
    assert out == bytes(want)


def test_set_masked_value_outside_mask_and_tunnel_rejected() -> None:
    key = flow.extract(bytes(udp4()), 1)
    with pytest.raises(ActionError, match="outside its mask"):
        validate_actions([SetMasked(Ipv4(src=ip4("1.2.3.4")), Ipv4(src=ip4("255.255.0.0")))], key)
    with pytest.raises(ActionError, match="tunnel"):
        validate_actions([SetMasked(Tunnel(ipv4_dst=1, ttl=64), Tunnel(ipv4_dst=0xFFFFFFFF))], key)
    with pytest.raises(ActionError, match="dst address"):
        validate_actions([Set(Tunnel(tun_id=5, ttl=64))], key)
    validate_actions([Set(Tunnel(tun_id=5, ipv4_dst=1, ttl=64))], key)


def test_set_tunnel_attaches_metadata_to_packet(rig: Rig) -> None:
    frame = bytes(udp4())
    tun = Tunnel(tun_id=5, ipv4_dst=ip4("10.0.0.9"), ttl=64)
    seen: list[SkBuff | bytes] = []
    rig.p2.send = lambda frames: seen.extend(frames)  # type: ignore[method-assign]
    rig.dp.execute(frame, [Set(tun), Output(2)], key=md(1))
    (skb,) = seen
    assert isinstance(skb, SkBuff) and skb.tun_info == tun and skb.data == frame


# ---------------------------------------------------------------------------
# VLAN


def test_push_vlan_8021q_clears_cfi_on_the_wire(rig: Rig) -> None:
    p = udp4()
    got = rig.out2(bytes(p), [PushVlan(0x8100, 0x1000 | (5 << 13) | 100)])
    assert got == bytes(eth() / Dot1Q(prio=5, vlan=100) / p[IP])


def test_push_vlan_8021ad(rig: Rig) -> None:
    p = udp4()
    got = rig.out2(bytes(p), [PushVlan(0x88A8, 0x1000 | 7)])
    assert got == bytes(eth() / Dot1AD(vlan=7) / p[IP])


def test_push_vlan_on_tagged_frame_makes_qinq_and_invalidates_key(rig: Rig) -> None:
    p = vlan_udp4(vid=10, prio=3)
    acts = [PushVlan(0x88A8, 0x1000 | 300), Userspace(pid=rig.pid), Output(2)]
    out = rig.run(bytes(p), acts)
    exp = bytes(eth() / Dot1AD(vlan=300) / Dot1Q(vlan=10, prio=3) / p[IP])
    assert out[2] == [exp]
    (up,) = rig.rec.seen
    # The key was re-extracted: the new tag is outer, the old one inner.
    assert key_get(up.key, "vlan_tpid") == 0x88A8 and key_get(up.key, "vlan_tci") == 0x1000 | 300
    assert key_get(up.key, "cvlan_tpid") == 0x8100
    assert key_get(up.key, "cvlan_tci") == 0x1000 | (3 << 13) | 10
    assert up.key == flow.extract(exp, 1)


def test_pop_vlan_single_and_qinq(rig: Rig) -> None:
    p = vlan_udp4()
    assert rig.out2(bytes(p), [PopVlan()]) == bytes(eth() / p[IP])
    q = qinq_tcp4()
    out = rig.run(bytes(q), [PopVlan(), Userspace(pid=rig.pid), Output(2)])
    exp = bytes(eth() / Dot1Q(vlan=200, prio=2) / q[IP])
    assert out[2] == [exp]
    (up,) = rig.rec.seen
    assert key_get(up.key, "vlan_tci") == 0x1000 | (2 << 13) | 200
    assert key_get(up.key, "cvlan_tci") == 0 and up.key == flow.extract(exp, 1)
    # pop both
    assert rig.out2(bytes(q), [PopVlan(), PopVlan()]) == bytes(eth() / q[IP])


def test_pop_vlan_untagged_is_a_noop(rig: Rig) -> None:
    p = udp4()
    assert rig.out2(bytes(p), [PopVlan()]) == bytes(p)


def test_push_vlan_validation() -> None:
    key = flow.extract(bytes(udp4()), 1)
    with pytest.raises(ActionError, match="CFI"):
        validate_actions([PushVlan(0x8100, 100)], key)
    with pytest.raises(ActionError, match="tpid"):
        validate_actions([PushVlan(0x9100, 0x1000 | 100)], key)


# ---------------------------------------------------------------------------
# MPLS


def lse(label: int, tc: int = 0, bos: int = 1, ttl: int = 64) -> int:
    return (label << 12) | (tc << 9) | (bos << 8) | ttl


def test_push_mpls(rig: Rig) -> None:
    p = udp4()
    got = rig.out2(bytes(p), [PushMpls(lse(100, tc=5, ttl=33), 0x8847)])
    exp = Ether(src=MAC1, dst=MAC2, type=0x8847) / MPLS(label=100, cos=5, s=1, ttl=33) / p[IP]
    assert got == bytes(exp)


def test_push_mpls_twice_and_pop(rig: Rig) -> None:
    p = udp4()
    acts = [PushMpls(lse(16), 0x8847), PushMpls(lse(17, bos=0), 0x8847)]
    two = (
        Ether(src=MAC1, dst=MAC2, type=0x8847)
        / MPLS(label=17, s=0, ttl=64)
        / MPLS(label=16, s=1, ttl=64)
        / p[IP]
    )
    assert rig.out2(bytes(p), acts) == bytes(two)
    one = Ether(src=MAC1, dst=MAC2, type=0x8847) / MPLS(label=16, s=1, ttl=64) / p[IP]
    assert rig.out2(bytes(two), [PopMpls(0x8847)]) == bytes(one)
    assert rig.out2(bytes(two), [PopMpls(0x8847), PopMpls(0x0800)]) == bytes(p)


def test_set_mpls(rig: Rig) -> None:
    p = (
        Ether(src=MAC1, dst=MAC2)
        / MPLS(label=100, cos=1, s=1, ttl=9)
        / IP(src=SRC4, dst=DST4)
        / UDP()
    )
    act = SetMasked(Mpls((lse(200, tc=0, bos=0, ttl=0),)), Mpls((0xFFFFF000,)))
    assert rig.out2(bytes(p), [act]) == changed(p, setattrs(MPLS, label=200))


def test_mpls_key_after_push_is_reextracted(rig: Rig) -> None:
    p = udp4()
    rig.run(bytes(p), [PushMpls(lse(100), 0x8847), Userspace(pid=rig.pid)])
    (up,) = rig.rec.seen
    assert key_get(up.key, "eth_type") == 0x8847 and key_get(up.key, "mpls_lse0") == lse(100)


def test_add_mpls_l3_tunnel_flag_is_push_mpls(rig: Rig) -> None:
    p = udp4()
    got = rig.out2(bytes(p), [AddMpls(lse(5), 0x8847, tun_flags=1)])
    assert got == bytes(Ether(src=MAC1, dst=MAC2, type=0x8847) / MPLS(label=5, s=1, ttl=64) / p[IP])


def test_add_mpls_l2_then_push_eth(rig: Rig) -> None:
    # Without the L3 flag the whole frame becomes the MPLS payload (no
    # Ethernet header): an L2 port cannot send it until push_eth adds one.
    p = udp4()
    out = rig.run(bytes(p), [AddMpls(lse(5), 0x8847), Output(2)])
    assert out[2] == [] and rig.dp.drops[DROP_MAC_PROTO] == 1
    acts = [
        AddMpls(lse(5), 0x8847),
        PushEth(src=mac("0a:00:00:00:00:01"), dst=mac("0a:00:00:00:00:02")),
    ]
    got = rig.out2(bytes(p), acts)
    exp = (
        Ether(src="0a:00:00:00:00:01", dst="0a:00:00:00:00:02", type=0x8847)
        / MPLS(label=5, s=1, ttl=64)
        / p
    )
    assert got == bytes(exp)


def test_mpls_validation() -> None:
    vkey = flow.extract(bytes(vlan_udp4()), 1)
    with pytest.raises(ActionError, match="VLAN"):
        validate_actions([PushMpls(lse(1), 0x8847)], vkey)
    validate_actions([PopVlan(), PushMpls(lse(1), 0x8847)], vkey)
    key = flow.extract(bytes(udp4()), 1)
    with pytest.raises(ActionError, match="not MPLS"):
        validate_actions([PopMpls(0x0800)], key)
    with pytest.raises(ActionError, match="ethertype"):
        validate_actions([PushMpls(lse(1), 0x0800)], key)
    # after the last label is popped, no L3 set actions
    with pytest.raises(ActionError, match="not IPv4"):
        validate_actions(
            [PushMpls(lse(1), 0x8847), PopMpls(0x0800), Set(Ipv4(ttl=1, proto=17))], key
        )
    arp_key = flow.extract(bytes(eth() / ARP()), 1)
    validate_actions([PushMpls(lse(1), 0x8847)], arp_key)
    ipx_key = flow.extract(bytes(Ether(src=MAC1, dst=MAC2, type=0x8137) / Raw(b"x" * 30)), 1)
    with pytest.raises(ActionError, match="eth_type"):
        validate_actions([PushMpls(lse(1), 0x8847)], ipx_key)


# ---------------------------------------------------------------------------
# push_eth / pop_eth


def test_pop_eth_push_eth(rig: Rig) -> None:
    p = udp4()
    out = rig.run(bytes(p), [PopEth(), Output(2)])
    assert out[2] == [] and rig.dp.drops[DROP_MAC_PROTO] == 1
    acts = [PopEth(), PushEth(src=mac("0a:0a:0a:0a:0a:0a"), dst=mac("0b:0b:0b:0b:0b:0b"))]
    got = rig.out2(bytes(p), acts)
    assert got == bytes(Ether(src="0a:0a:0a:0a:0a:0a", dst="0b:0b:0b:0b:0b:0b") / p[IP])


def test_push_pop_eth_validation() -> None:
    key = flow.extract(bytes(udp4()), 1)
    with pytest.raises(ActionError, match="already has"):
        validate_actions([PushEth(1, 2)], key)
    with pytest.raises(ActionError, match="no Ethernet"):
        validate_actions([PopEth(), PopEth()], key)
    with pytest.raises(ActionError, match="no Ethernet"):
        validate_actions([PopEth(), Set(Ethernet(1, 2))], key)
    with pytest.raises(ActionError, match="VLAN"):
        validate_actions([PopEth()], flow.extract(bytes(vlan_udp4()), 1))


# ---------------------------------------------------------------------------
# dec_ttl


def test_dec_ttl_ipv4_ipv6_and_non_ip(rig: Rig) -> None:
    p = tcp4()
    assert rig.out2(bytes(p), [DecTtl()]) == changed(p, setattrs(IP, ttl=63))
    q = v6(UDP(sport=1, dport=2) / PAYLOAD)
    assert rig.out2(bytes(q), [DecTtl()]) == changed(q, setattrs(IPv6, hlim=63))
    a = eth() / ARP(op=1, psrc=SRC4, pdst=DST4)
    assert rig.out2(bytes(a), [DecTtl()]) == bytes(a)


def test_dec_ttl_expiry_runs_nested_and_stops(rig: Rig) -> None:
    p = udp4(ttl=1)
    out = rig.run(bytes(p), [DecTtl((Userspace(pid=rig.pid), Output(3))), Output(2)])
    assert out[3] == [bytes(p)] and out[2] == []
    assert len(rig.rec.seen) == 1
    out = rig.run(bytes(p), [DecTtl(), Output(2)])
    assert out[2] == [] and rig.dp.drops[DROP_TTL] == 1
    q = v6(UDP() / PAYLOAD, hlim=0)
    assert rig.run(bytes(q), [DecTtl(), Output(2)])[2] == []


# ---------------------------------------------------------------------------
# check_pkt_len


def test_check_pkt_len_both_branches(rig: Rig) -> None:
    frame = bytes(udp4())  # 62 bytes
    n = len(frame)
    cpl = CheckPktLen(n, actions_if_greater=(Output(3),), actions_if_less_equal=(Output(2),))
    assert rig.run(frame, [cpl]) == {1: [], 2: [frame], 3: []}
    cpl = CheckPktLen(n - 1, actions_if_greater=(Output(3),), actions_if_less_equal=(Output(2),))
    assert rig.run(frame, [cpl]) == {1: [], 2: [], 3: [frame]}


def test_check_pkt_len_not_last_runs_on_a_clone(rig: Rig) -> None:
    p = udp4()
    cpl = CheckPktLen(
        10,
        actions_if_greater=(SetMasked(Ipv4(ttl=1), Ipv4(ttl=0xFF)), Output(3)),
        actions_if_less_equal=(),
    )
    out = rig.run(bytes(p), [cpl, Output(2)])
    assert out[3] == [changed(p, setattrs(IP, ttl=1))]
    assert out[2] == [bytes(p)]


def test_check_pkt_len_vlan_length_excludes_outer_tag(rig: Rig) -> None:
    frame = bytes(vlan_udp4())
    cpl = CheckPktLen(
        len(frame) - 4, actions_if_greater=(Output(3),), actions_if_less_equal=(Output(2),)
    )
    assert rig.run(frame, [cpl])[2] == [frame]


def test_check_pkt_len_gso_checks_the_segment_size(rig: Rig) -> None:
    p = v4(TCP(sport=1, dport=2, seq=0, flags="A") / (b"x" * 3000))
    frame = bytes(p)
    skb = SkBuff(frame, gso_size=1000, gso_type=SKB_GSO_TCPV4)
    seg = 14 + 20 + 20 + 1000
    cpl = CheckPktLen(seg, actions_if_greater=(Output(3),), actions_if_less_equal=(Output(2),))
    key = flow.extract(frame, 1)
    rig.clear()
    ovs_execute_actions(rig.dp, skb, key, [cpl], rig.p1)
    out = rig.sent()
    assert len(out[2]) == 3 and out[3] == []  # segmented on delivery to h2
    rig.clear()
    cpl = CheckPktLen(seg - 1, actions_if_greater=(Output(3),), actions_if_less_equal=(Output(2),))
    ovs_execute_actions(
        rig.dp, SkBuff(frame, gso_size=1000, gso_type=SKB_GSO_TCPV4), key, [cpl], rig.p1
    )
    out = rig.sent()
    assert out[2] == [] and len(out[3]) == 3


# ---------------------------------------------------------------------------
# sample / clone


def test_sample_probability_zero_and_always(rig: Rig) -> None:
    frame = bytes(udp4())
    assert rig.run(frame, [Sample(0, (Output(3),)), Output(2)]) == {1: [], 2: [frame], 3: []}
    assert rig.run(frame, [Sample(0xFFFFFFFF, (Output(3),)), Output(2)]) == {
        1: [],
        2: [frame],
        3: [frame],
    }
    assert rig.run(frame, [Output(2), Sample(0, (Output(3),))]) == {1: [], 2: [frame], 3: []}


def test_sample_statistical(rig: Rig) -> None:
    frame = bytes(udp4())
    random.seed(12345)
    n = 2000
    rig.clear()
    for _ in range(n):
        rig.dp.execute(frame, [Sample(0x40000000, (Output(3),))], key=md(1))  # 25%
    got = len(rig.sent()[3])
    assert 0.20 * n < got < 0.30 * n


def test_sample_and_clone_isolate_changes(rig: Rig) -> None:
    p = udp4()
    inner = (SetMasked(Ipv4(ttl=7), Ipv4(ttl=0xFF)), PushVlan(0x8100, 0x1000 | 9), Output(3))
    for act in (Clone(inner), Sample(0xFFFFFFFF, inner)):
        out = rig.run(bytes(p), [act, Userspace(pid=rig.pid), Output(2)])
        assert out[3] == [
            bytes(eth() / Dot1Q(vlan=9, type=0x0800) / changed(p, setattrs(IP, ttl=7))[14:])
        ]
        assert out[2] == [bytes(p)]
        (up,) = rig.rec.seen
        assert up.key == flow.extract(bytes(p), 1)  # the key did not leak either


def test_clone_as_last_action(rig: Rig) -> None:
    p = udp4()
    out = rig.run(bytes(p), [Output(2), Clone((SetMasked(Ipv4(ttl=7), Ipv4(ttl=0xFF)), Output(3)))])
    assert out[2] == [bytes(p)] and out[3] == [changed(p, setattrs(IP, ttl=7))]


# ---------------------------------------------------------------------------
# recirc / hash (through installed flows: re-lookup with recirc_id)

M_PORT_RECIRC = field_mask("in_port") | field_mask("recirc_id") | field_mask("eth_type")


def test_recirc_relooks_up_with_recirc_id(rig: Rig) -> None:
    p = udp4()
    k0 = key_from_fields(in_port=1, eth_type=0x0800)
    rig.dp.flow_put(k0, M_PORT_RECIRC, [SetMasked(Ipv4(ttl=9), Ipv4(ttl=0xFF)), Recirc(7)])
    rig.dp.flow_put(
        key_from_fields(in_port=1, eth_type=0x0800, recirc_id=7), M_PORT_RECIRC, [Output(2)]
    )
    out = rig.receive([bytes(p)])
    assert out[2] == [changed(p, setattrs(IP, ttl=9))]
    s = rig.stats()
    assert (s.n_hit, s.n_missed) == (2, 0)


def test_recirc_without_flow_is_a_miss_carrying_recirc_id(rig: Rig) -> None:
    rig.p1.set_upcall_portids([rig.pid])
    k0 = key_from_fields(in_port=1, eth_type=0x0800)
    rig.dp.flow_put(k0, M_PORT_RECIRC, [Recirc(0x42)])
    frame = bytes(udp4())
    rig.receive([frame])
    (up,) = rig.rec.seen
    assert up.key == flow.extract(frame, 1, recirc_id=0x42) and up.packet == frame
    assert (rig.stats().n_hit, rig.stats().n_missed) == (1, 1)


def test_recirc_loop_is_stopped(rig: Rig) -> None:
    rig.dp.flow_put(key_from_fields(in_port=1, eth_type=0x0800), M_PORT_RECIRC, [Recirc(1)])
    rig.dp.flow_put(
        key_from_fields(in_port=1, eth_type=0x0800, recirc_id=1),
        M_PORT_RECIRC,
        [Recirc(1), Output(2)],
    )
    out = rig.receive([bytes(udp4())])
    # The first pass plus 6 recirculations; the 7th recirc is dropped.
    assert rig.stats().n_hit == 7
    assert rig.dp.drops[DROP_RECIRC] == 1
    assert len(out[2]) == 6  # every recirculated pass output once after recirculating


def test_hash_sets_dp_hash_matched_after_recirc(rig: Rig) -> None:
    dp_hash_bit0 = 1 << FIELDS["dp_hash"][0]
    m = field_mask("recirc_id") | dp_hash_bit0
    rig.dp.flow_put(
        key_from_fields(in_port=1),
        field_mask("in_port") | field_mask("recirc_id"),
        [Hash(OVS_HASH_ALG_L4, 7), Recirc(1)],
    )
    rig.dp.flow_put(key_from_fields(recirc_id=1, dp_hash=0), m, [Output(2)])
    rig.dp.flow_put(key_from_fields(recirc_id=1, dp_hash=1), m, [Output(3)])
    frames = [bytes(v4(UDP(sport=1000 + i, dport=53) / PAYLOAD)) for i in range(40)]
    out = rig.receive(frames)
    assert len(out[2]) + len(out[3]) == 40 and out[2] and out[3]
    again = rig.receive(frames)
    assert again == out  # the same flow always lands in the same bucket


def test_hash_values(rig: Rig) -> None:
    a = bytes(v4(TCP(sport=1111, dport=80) / PAYLOAD))
    b = bytes(eth() / IP(src=DST4, dst=SRC4, id=0x1234) / TCP(sport=80, dport=1111) / PAYLOAD)

    def dp_hash(frame: bytes, alg: int, basis: int) -> int:
        rig.run(frame, [Hash(alg, basis), Userspace(pid=rig.pid)])
        (up,) = rig.rec.seen
        return key_get(up.key, "dp_hash")

    h1 = dp_hash(a, OVS_HASH_ALG_L4, 1)
    assert h1 != 0 and h1 == dp_hash(a, OVS_HASH_ALG_L4, 1)
    assert h1 != dp_hash(a, OVS_HASH_ALG_L4, 2)
    assert dp_hash(a, OVS_HASH_ALG_SYM_L4, 5) == dp_hash(b, OVS_HASH_ALG_SYM_L4, 5)
    with pytest.raises(ActionError, match="hash"):
        validate_actions([Hash(9, 0)], flow.extract(a, 1))


# ---------------------------------------------------------------------------
# meter


def test_meter_drops_with_injectable_clock(rig: Rig) -> None:
    now = [100.0]
    rig.dp.meters.clock = lambda: now[0]
    rig.dp.meters.add(1, [(8, 8)])  # 8 kbit/s = 1000 B/s, burst 8 kbit = 1000 B
    frame = bytes(v4(UDP(sport=1, dport=2) / (b"x" * 58)))  # 100 bytes
    assert len(frame) == 100
    rig.clear()
    for _ in range(12):
        rig.dp.execute(frame, [Meter(1), Output(2)], key=md(1))
    assert len(rig.sent()[2]) == 10
    assert rig.dp.drops[DROP_METER] == 2
    now[0] += 0.1  # 100 ms refill 800 bits: one more 800-bit packet
    rig.clear()
    for _ in range(2):
        rig.dp.execute(frame, [Meter(1), Output(2)], key=md(1))
    assert len(rig.sent()[2]) == 1
    m = rig.dp.meters.get(1)
    assert (m.n_packets, m.n_bytes) == (14, 1400)
    assert (m.bands[0].n_packets, m.bands[0].n_bytes) == (3, 300)


def test_missing_meter_does_not_drop(rig: Rig) -> None:
    frame = bytes(udp4())
    assert rig.out2(frame, [Meter(99)]) == frame


# ---------------------------------------------------------------------------
# userspace / drop / ct


def test_userspace_action_with_actions_flag(rig: Rig) -> None:
    frame = bytes(udp4())
    acts: list[Action] = [Userspace(pid=rig.pid, userdata=b"cookie", actions=True), Output(2)]
    out = rig.run(frame, acts)
    (up,) = rig.rec.seen
    assert up.cmd == OVS_PACKET_CMD_ACTION and up.userdata == b"cookie"
    assert up.actions == tuple(acts) and up.packet == frame and up.portid == rig.pid
    assert out[2] == [frame]
    assert rig.stats().n_lost == 0


def test_userspace_action_to_closed_channel_is_lost(rig: Rig) -> None:
    frame = bytes(udp4())
    out = rig.run(frame, [Userspace(pid=0xDEAD), Output(2)])
    assert out[2] == [frame] and rig.stats().n_lost == 1


def test_drop_action(rig: Rig) -> None:
    frame = bytes(udp4())
    assert rig.run(frame, [Output(3), Drop()]) == {1: [], 2: [], 3: [frame]}
    assert rig.dp.drops[DROP_EXPLICIT] == 1
    with pytest.raises(ActionError, match="last"):
        rig.dp.execute(frame, [Drop(), Output(2)], key=md(1))


def test_ct_is_not_supported(rig: Rig) -> None:
    frame = bytes(udp4())
    with pytest.raises(NotSupportedError):
        rig.dp.execute(frame, [Ct(commit=True), Output(2)], key=md(1))
    with pytest.raises(NotSupportedError):
        rig.dp.flow_put(key_from_fields(in_port=1), field_mask("in_port"), [Clone((Ct(),))])
    key = flow.extract(frame, 1)
    rig.clear()
    with pytest.raises(NotSupportedError):
        ovs_execute_actions(rig.dp, SkBuff(frame), key, [Output(2), Ct()], rig.p1)
    assert rig.sent()[2] == [frame]  # what ran before the ct action
    # nothing is left behind: the next packet executes normally
    assert rig.out2(frame, []) == frame


def test_ct_clear_zeroes_ct_fields(rig: Rig) -> None:
    frame = bytes(udp4())
    key = flow.extract(frame, 1) | key_from_fields(ct_state=0x21, ct_zone=5, ct_mark=9)
    ovs_execute_actions(rig.dp, SkBuff(frame), key, [CtClear(), Userspace(pid=rig.pid)], rig.p1)
    rig.rec.poll()
    (up,) = rig.rec.seen
    assert up.key == flow.extract(frame, 1)


def test_output_port_validation() -> None:
    key = flow.extract(bytes(udp4()), 1)
    with pytest.raises(ActionError, match="port"):
        validate_actions([Output(0xFFFF)], key)
    validate_actions([Output(0xFFFE)], key)


def test_validation_nesting_depth() -> None:
    key = flow.extract(bytes(udp4()), 1)
    acts: tuple[Action, ...] = (Output(2),)
    for _ in range(17):
        acts = (Clone(acts),)
    with pytest.raises(ActionError, match="nested"):
        validate_actions(acts, key)
    validate_actions(acts[0].actions, key)  # type: ignore[union-attr]


def test_validation_checks_nested_lists() -> None:
    key = flow.extract(bytes(udp4()), 1)
    for wrap in (
        lambda a: Clone(a),
        lambda a: Sample(5, a),
        lambda a: DecTtl(a),
        lambda a: CheckPktLen(100, (), a),
        lambda a: CheckPktLen(100, a, ()),
    ):
        with pytest.raises(ActionError, match="CFI"):
            validate_actions([wrap((PushVlan(0x8100, 5),))], key)


# ---------------------------------------------------------------------------
# recursion limit and deferred actions


def test_recursion_limit(rig: Rig) -> None:
    frame = bytes(udp4())
    ch = rig.dp.upcall_channel_open()
    calls = []

    def reenter(c: object) -> None:
        # A handler that executes synchronously from inside the upcall: each
        # execute runs one level deeper.
        ch.get()
        calls.append(1)
        rig.dp.execute(frame, [Userspace(pid=ch.portid)], key=md(1))

    ch.on_ready = reenter
    rig.dp.execute(frame, [Userspace(pid=ch.portid)], key=md(1))
    assert len(calls) == 5  # levels 1..5 upcall; level 6 is refused
    assert rig.dp.drops[DROP_RECURSION] == 1


def test_deferred_actions_and_fifo_limit(rig: Rig) -> None:
    p = udp4()

    def ttl(n: int) -> SetMasked:
        return SetMasked(Ipv4(ttl=n), Ipv4(ttl=0xFF))

    # Three nested key-changing clones take execution to level 4, where no
    # key copy is left: each further clone is deferred until the top-level
    # list finishes; the FIFO holds 9, the 10th is dropped.
    level4: tuple[Action, ...] = (*(Clone((ttl(i), Output(2))) for i in range(1, 11)), Output(3))
    acts = [Clone((ttl(100), Clone((ttl(101), Clone((ttl(102), *level4)))))), Output(1)]
    rig.clear()
    rig.dp.execute(bytes(p), acts, key=md(1))
    out = rig.sent()
    assert out[3] == [changed(p, setattrs(IP, ttl=102))]
    assert out[1] == [bytes(p)]
    assert out[2] == [changed(p, setattrs(IP, ttl=i)) for i in range(1, 10)]
    assert rig.dp.drops[DROP_DEFERRED] == 1
    # The FIFO is empty again for the next packet.
    rig.clear()
    rig.dp.execute(bytes(p), acts, key=md(1))
    assert len(rig.sent()[2]) == 9 and rig.dp.drops[DROP_DEFERRED] == 2


def test_deferred_recirc(rig: Rig) -> None:
    p = udp4()
    rig.dp.flow_put(
        key_from_fields(in_port=1, recirc_id=3),
        field_mask("in_port") | field_mask("recirc_id"),
        [Output(2)],
    )
    inner: tuple[Action, ...] = (Recirc(3), Output(3))
    nest = (SetMasked(Ipv4(ttl=1), Ipv4(ttl=0xFF)),)
    acts = [Clone((*nest, Clone((*nest, Clone((*nest, *inner))))))]
    rig.clear()
    rig.dp.execute(bytes(p), acts, key=md(1))
    out = rig.sent()
    assert out[2] == [changed(p, setattrs(IP, ttl=1))] and len(out[3]) == 1
    assert rig.stats().n_hit == 1


def test_deferred_fifo_slots_are_reused_only_after_a_full_drain(rig: Rig) -> None:
    """The kernel's FIFO ``head`` only grows until the FIFO is drained: actions
    deferred while deferred actions run share the same 9 slots."""
    p = udp4()

    def ttl(n: int) -> SetMasked:
        return SetMasked(Ipv4(ttl=n), Ipv4(ttl=0xFF))

    def deep(*inner: Action) -> Clone:
        """Three key-changing clones: ``inner`` runs at level +3."""
        return Clone((ttl(1), Clone((ttl(2), Clone((ttl(3), *inner))))))

    def second_gen(i: int) -> tuple[Action, ...]:
        # Run deferred at level 1, this reaches level 4 and defers two more.
        return (deep(Clone((ttl(10 * i + 1), Output(2))), Clone((ttl(10 * i + 2), Output(2)))),)

    acts = [deep(*(Clone(second_gen(i)) for i in range(1, 6)))]
    rig.clear()
    rig.dp.execute(bytes(p), acts, key=md(1))
    out = rig.sent()
    # 5 slots for the first generation, 4 left for the second: X1 and X2 fit.
    assert out[2] == [changed(p, setattrs(IP, ttl=t)) for t in (11, 12, 21, 22)]
    assert rig.dp.drops[DROP_DEFERRED] == 6
