"""Tunnel vports: byte-exact encapsulation, decapsulation, validation, demux.

Expected outer packets come from scapy (IPv4, IPv6, UDP, TCP, GRE, VXLAN with
GBP, Geneve) or from byte vectors written out by hand from the formats in the
notes (LISP header, STT frame header, GRE64 key/sequence split).  The vports
send through a capturing underlay that records the outer packets and routes
everything via a fixed source address.
"""

from __future__ import annotations

import errno
import ipaddress
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import ICMP, IP, TCP, UDP, Dot1Q, Ether, IPv6, Raw
from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.layers.l2 import ARP, GRE
from scapy.layers.vxlan import VXLAN

from pyvswitch import flow
from pyvswitch.backends.memory import MemoryNetns, MemoryWorld
from pyvswitch.datapath import Datapath, Openvswitch
from pyvswitch.device import AF_INET, AF_INET6, TunnelRoute, TunnelRxHandler
from pyvswitch.errors import VportError
from pyvswitch.flow import (
    TUNNEL_CRIT_OPT,
    TUNNEL_CSUM,
    TUNNEL_DONT_FRAGMENT,
    TUNNEL_GENEVE_OPT,
    TUNNEL_KEY,
    TUNNEL_OAM,
    TUNNEL_VXLAN_OPT,
)
from pyvswitch.skbuff import (
    CHECKSUM_PARTIAL,
    CHECKSUM_UNNECESSARY,
    SKB_GSO_TCPV4,
    SkBuff,
)
from pyvswitch.tunnel import (
    DROP_INVALID_TNL_PORT,
    DROP_TUNNEL_POP,
    DROP_TUNNEL_PUSH,
    ecn_decapsulate,
    lisp_src_port,
    udp_flow_src_port,
)
from pyvswitch.uapi import Output, Set, Tunnel
from pyvswitch.vport_tunnel import TunnelVport

L4 = int(ipaddress.IPv4Address("192.0.2.1"))
R4 = int(ipaddress.IPv4Address("192.0.2.2"))
L6 = int(ipaddress.IPv6Address("2001:db8::1"))
R6 = int(ipaddress.IPv6Address("2001:db8::2"))
S4, D4 = "192.0.2.1", "192.0.2.2"
S6, D6 = "2001:db8::1", "2001:db8::2"

#: An inner frame; its outer source ports below are derived by hand from
#: skb.hash = HASH with the kernel formulas.
INNER = bytes(
    Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    / IP(src="10.0.0.1", dst="10.0.0.2", ttl=61)
    / ICMP(id=1, seq=1)
    / Raw(b"ping" * 8)
)
HASH = 0x12345678
# h ^= h << 16 -> 0x444c5678; ((h * (60999 - 32768)) >> 32) + 32768
SPORT_EPHEMERAL = 40299
# ((0x444c5678 * (65535 - 1)) >> 32) + 1   (Geneve, STT)
SPORT_FULL = 17484
# LISP: ((0x12345678 * (60999 - 32768 + 1)) >> 32) + 32768, no folding
SPORT_LISP = 34775


# ---------------------------------------------------------------------------
# A capturing underlay


class CaptureSocket:
    def __init__(
        self, ns: CaptureNetns, family: int, proto: int, port: int, rx: TunnelRxHandler
    ) -> None:
        self.ns = ns
        self.family = family
        self.proto = proto
        self.port = port
        self.rx = rx
        self.sent: list[bytes] = []
        self.closed = False

    def send(self, packets: Sequence[bytes]) -> int:
        self.sent.extend(packets)
        return len(packets)

    def route(self, dst: int) -> TunnelRoute | None:
        if self.ns.no_route:
            return None
        return TunnelRoute(L6 if self.family == AF_INET6 else L4, self.ns.mtu)

    def close(self) -> None:
        self.closed = True


class CaptureNetns(MemoryNetns):
    """A memory namespace whose tunnel underlay records what is sent."""

    def __init__(self, world: MemoryWorld, name: str, mtu: int = 1500) -> None:
        super().__init__(world, name)
        world.namespaces[name] = self
        self.mtu = mtu
        self.no_route = False
        self.socks: dict[tuple[int, int, int], CaptureSocket] = {}

    def tunnel_socket_open(  # type: ignore[override]
        self, proto: int, port: int, family: int, on_receive: TunnelRxHandler
    ) -> CaptureSocket:
        sock = CaptureSocket(self, family, proto, port, on_receive)
        self.socks[(family, proto, port)] = sock
        return sock

    def sent(self, family: int = AF_INET) -> list[bytes]:
        out: list[bytes] = []
        for (fam, _p, _port), s in self.socks.items():
            if fam == family:
                out += s.sent
        return out


class Rig:
    def __init__(self, mtu: int = 1500) -> None:
        self.world = MemoryWorld()
        self.ns = CaptureNetns(self.world, "cap", mtu)
        self.dp: Datapath = Openvswitch().dp_new("dp0", self.ns)
        self.received: list[tuple[TunnelVport, SkBuff, int]] = []

        def capture(vport: Any, skb: SkBuff, *, tun: int = 0, count_rx: bool = True) -> None:
            self.received.append((vport, skb, tun))

        self.dp.vport_receive_skb = capture  # type: ignore[method-assign]

    def port(self, kind: str, name: str = "t0", **options: str) -> TunnelVport:
        opts = {"remote_ip": D4, **options}
        v = self.dp.vport_add(name, kind, options=opts)
        assert isinstance(v, TunnelVport)
        return v

    def send_tun(self, v: TunnelVport, tun: Tunnel, frame: bytes = INNER, **skb: Any) -> None:
        self.dp.execute(SkBuff(frame, hash=HASH, **skb), [Set(tun), Output(v.port_no)])


def tun4(**kw: Any) -> Tunnel:
    base: dict[str, Any] = dict(
        ipv4_src=L4, ipv4_dst=R4, tos=0x28, ttl=33, flags=TUNNEL_KEY | TUNNEL_DONT_FRAGMENT
    )
    base.update(kw)
    return Tunnel(**base)


def tun6(**kw: Any) -> Tunnel:
    base: dict[str, Any] = dict(ipv6_src=L6, ipv6_dst=R6, tos=0x28, ttl=33, flags=TUNNEL_KEY)
    base.update(kw)
    return Tunnel(**base)


def ip4(proto: int, ident: int = 0, df: bool = True, tos: int = 0x28, ttl: int = 33) -> Any:
    return IP(src=S4, dst=D4, tos=tos, ttl=ttl, id=ident, flags="DF" if df else 0, proto=proto)


def ip6(nh: int) -> Any:
    return IPv6(src=S6, dst=D6, tc=0x28, hlim=33, nh=nh, fl=0)


# ---------------------------------------------------------------------------
# Source ports


def test_src_port_formulas() -> None:
    assert udp_flow_src_port(HASH) == SPORT_EPHEMERAL
    assert udp_flow_src_port(HASH, 1, 0xFFFF) == SPORT_FULL
    assert lisp_src_port(HASH) == SPORT_LISP
    assert udp_flow_src_port(0) == 32768 and udp_flow_src_port(0xFFFFFFFF, 1, 0xFFFF) <= 0xFFFF
    ports = {udp_flow_src_port(random.getrandbits(32)) for _ in range(2000)}
    assert min(ports) >= 32768 and max(ports) < 60999 and len(ports) > 1500


def test_src_port_follows_the_inner_flow() -> None:
    r = Rig()
    v = r.port("vxlan")
    frames = [
        bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=s, dport=53))
        for s in (1000, 1000, 2000)
    ]
    v.send(frames)
    sports = [bytes(p)[20:22] for p in r.ns.sent()]
    assert sports[0] == sports[1]
    assert all(32768 <= int.from_bytes(p, "big") <= 60999 for p in sports)


# ---------------------------------------------------------------------------
# VXLAN


@pytest.mark.parametrize("csum", [False, True])
def test_vxlan_ipv4_matches_scapy(csum: bool) -> None:
    r = Rig()
    v = r.port("vxlan")
    flags = TUNNEL_KEY | TUNNEL_DONT_FRAGMENT | (TUNNEL_CSUM if csum else 0)
    r.send_tun(v, tun4(tun_id=0x123456, flags=flags, tp_dst=4789))
    udp = (
        UDP(sport=SPORT_EPHEMERAL, dport=4789)
        if csum
        else UDP(sport=SPORT_EPHEMERAL, dport=4789, chksum=0)
    )
    want = ip4(17) / udp / VXLAN(flags=0x08, vni=0x123456) / Raw(INNER)
    assert r.ns.sent() == [bytes(want)]
    assert v.get_stats().tx_packets == 1 and v.get_stats().tx_bytes == len(INNER)


@pytest.mark.parametrize("csum", [False, True])
def test_vxlan_ipv6_matches_scapy(csum: bool) -> None:
    r = Rig()
    v = r.port("vxlan", remote_ip=D6)
    r.send_tun(v, tun6(tun_id=0xABCDEF, flags=TUNNEL_KEY | (TUNNEL_CSUM if csum else 0)))
    udp = (
        UDP(sport=SPORT_EPHEMERAL, dport=4789)
        if csum
        else UDP(sport=SPORT_EPHEMERAL, dport=4789, chksum=0)
    )
    want = ip6(17) / udp / VXLAN(flags=0x08, vni=0xABCDEF) / Raw(INNER)
    assert r.ns.sent(AF_INET6) == [bytes(want)]


def test_vxlan_gbp_matches_scapy() -> None:
    r = Rig()
    v = r.port("vxlan", exts="gbp")
    # gbp metadata: D (bit 22) | A (bit 19) | policy id 0x1234
    r.send_tun(v, tun4(tun_id=7, gbp=0x00481234))
    want = (
        ip4(17)
        / UDP(sport=SPORT_EPHEMERAL, dport=4789, chksum=0)
        / VXLAN(flags=0x88, gpflags=0x48, gpid=0x1234, vni=7)
        / Raw(INNER)
    )
    assert r.ns.sent() == [bytes(want)]
    # without exts=gbp the metadata is not sent
    r2 = Rig()
    v2 = r2.port("vxlan")
    r2.send_tun(v2, tun4(tun_id=7, gbp=0x00481234))
    assert bytes(r2.ns.sent()[0])[28:36] == bytes.fromhex("0800000000000700")


def test_vxlan_uses_the_key_tp_dst_and_vni_low_24_bits() -> None:
    r = Rig()
    v = r.port("vxlan", dst_port="4790")
    r.send_tun(v, tun4(tun_id=0x77123456, tp_dst=9999))
    r.send_tun(v, tun4(tun_id=1))
    a, b = r.ns.sent()
    assert a[22:24] == (9999).to_bytes(2, "big") and a[32:35] == bytes.fromhex("123456")
    assert b[22:24] == (4790).to_bytes(2, "big")
    assert (a[4:6], b[4:6]) == (b"\x00\x00", b"\x00\x01")  # IPv4 id counts up


# ---------------------------------------------------------------------------
# GRE / GRE64


@pytest.mark.parametrize(
    ("flags", "gre"),
    [
        (TUNNEL_DONT_FRAGMENT, dict()),
        (TUNNEL_KEY | TUNNEL_DONT_FRAGMENT, dict(key_present=1, key=0x55667788)),
        (TUNNEL_CSUM | TUNNEL_DONT_FRAGMENT, dict(chksum_present=1)),
        (
            TUNNEL_KEY | TUNNEL_CSUM | TUNNEL_DONT_FRAGMENT,
            dict(chksum_present=1, key_present=1, key=0x55667788),
        ),
    ],
)
def test_gre_matches_scapy(flags: int, gre: dict[str, int]) -> None:
    r = Rig()
    v = r.port("gre")
    r.send_tun(v, tun4(tun_id=0x1122334455667788, flags=flags))
    want = ip4(47) / GRE(proto=0x6558, **gre) / Raw(INNER)
    assert r.ns.sent() == [bytes(want)]


def test_gre_from_port_config_with_seq() -> None:
    r = Rig()
    v = r.port("gre", key="789", seq="true", ttl="12", tos="0x20")
    v.send([INNER, INNER])
    want = [
        ip4(47, ident=i, tos=0x20, ttl=12)
        / GRE(proto=0x6558, key_present=1, key=789, seqnum_present=1, sequence_number=i)
        / Raw(INNER)
        for i in range(2)
    ]
    assert r.ns.sent() == [bytes(w) for w in want]


def test_gre64_vector() -> None:
    r = Rig()
    v = r.port("gre64")
    r.send_tun(v, tun4(tun_id=0x1122334455667788, flags=TUNNEL_KEY))
    # K+S always; key = low 32 bits, sequence = high 32 bits (OVS <= 2.4)
    gre = bytes.fromhex("3000 6558 55667788 11223344")
    want = ip4(47, df=False) / Raw(gre + INNER)
    assert r.ns.sent() == [bytes(want)]
    want2 = GRE(
        proto=0x6558, key_present=1, key=0x55667788, seqnum_present=1, sequence_number=0x11223344
    )
    assert bytes(want2) == gre
    r.send_tun(v, tun4(tun_id=5, flags=TUNNEL_CSUM))
    sent = r.ns.sent()[1]
    assert sent[20:24] == bytes.fromhex("b0006558")
    assert bytes(GRE(sent[20:])) == sent[20:]  # scapy agrees on the checksum
    assert GRE(sent[20:]).key == 5 and GRE(sent[20:]).sequence_number == 0


def test_gre_over_ipv6() -> None:
    r = Rig()
    v = r.port("gre", remote_ip=D6)
    r.send_tun(v, tun6(tun_id=9))
    want = ip6(47) / GRE(proto=0x6558, key_present=1, key=9) / Raw(INNER)
    assert r.ns.sent(AF_INET6) == [bytes(want)]


# ---------------------------------------------------------------------------
# Geneve

OPTS = bytes(GeneveOptions(classid=0x0102, type=0x80, data=b"abcd")) + bytes(
    GeneveOptions(classid=0xFFFF, type=0x05, data=b"12345678")
)


def test_geneve_options_match_scapy() -> None:
    r = Rig()
    v = r.port("geneve")
    r.send_tun(v, tun4(tun_id=0x123456, geneve_opts=OPTS, flags=TUNNEL_KEY | TUNNEL_OAM))
    want = (
        ip4(17, df=False)
        / UDP(sport=SPORT_FULL, dport=6081, chksum=0)
        / GENEVE(
            vni=0x123456,
            proto=0x6558,
            oam=1,
            critical=1,  # an option has the critical type bit
            options=[
                GeneveOptions(classid=0x0102, type=0x80, data=b"abcd"),
                GeneveOptions(classid=0xFFFF, type=0x05, data=b"12345678"),
            ],
        )
        / Raw(INNER)
    )
    assert r.ns.sent() == [bytes(want)]


def test_geneve_ipv6_with_checksum_matches_scapy() -> None:
    r = Rig()
    v = r.port("geneve", remote_ip=D6)
    r.send_tun(v, tun6(tun_id=1, flags=TUNNEL_KEY | TUNNEL_CSUM))
    want = ip6(17) / UDP(sport=SPORT_FULL, dport=6081) / GENEVE(vni=1, proto=0x6558) / Raw(INNER)
    assert r.ns.sent(AF_INET6) == [bytes(want)]


def test_geneve_bad_options_are_tx_errors() -> None:
    r = Rig()
    v = r.port("geneve")
    r.send_tun(v, tun4(geneve_opts=bytes.fromhex("0102800300")))  # not a multiple of 4
    r.send_tun(v, tun4(geneve_opts=bytes.fromhex("01028003")))  # TLV overruns
    assert r.ns.sent() == [] and v.get_stats().tx_errors == 2
    assert r.dp.drops[DROP_TUNNEL_PUSH] == 2


# ---------------------------------------------------------------------------
# LISP


def test_lisp_vector() -> None:
    r = Rig()
    v = r.port("lisp")
    r.send_tun(v, tun4(tun_id=0x12ABCDEF))
    # 48 00 00 00 | iid (low 24 bits of tun_id) | LSB 01; no UDP checksum
    lisp = bytes.fromhex("48000000 abcdef 01")
    want = ip4(17) / UDP(sport=SPORT_LISP, dport=4341, chksum=0) / Raw(lisp + INNER[14:])
    assert r.ns.sent() == [bytes(want)]


def test_lisp_strips_vlan_and_padding_and_drops_non_ip() -> None:
    r = Rig()
    v = r.port("lisp", key="5")
    ip_pkt = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / ICMP())
    tagged = bytes(Ether() / Dot1Q(vlan=5) / Raw(ip_pkt)) + b"\x00" * 10
    tagged = tagged[:12] + b"\x81\x00" + tagged[14:16] + b"\x08\x00" + tagged[18:]
    arp = bytes(Ether() / ARP())
    v6 = bytes(Ether() / IPv6(src="fd00::1", dst="fd00::2") / UDP() / Raw(b"x"))
    v.send([tagged, arp, v6])
    sent = r.ns.sent()
    assert [p[28:36] for p in sent] == [bytes.fromhex("4800000000000501")] * 2
    assert sent[0][36:] == ip_pkt and sent[1][36:] == v6[14:]
    st = v.get_stats()
    assert st.tx_packets == 2 and st.tx_dropped == 1


# ---------------------------------------------------------------------------
# STT

CTX = 0x0102030405060708


def stt_hdr(flags: int = 0, l4: int = 0, mss: int = 0, vlan: int = 0, ctx: int = CTX) -> bytes:
    """The 18-byte STT frame header written out field by field."""
    return (
        bytes((0, flags, l4, 0))
        + mss.to_bytes(2, "big")
        + vlan.to_bytes(2, "big")
        + ctx.to_bytes(8, "big")
        + b"\x00\x00"
    )


def test_stt_single_segment_vector() -> None:
    r = Rig()
    v = r.port("stt")
    r.send_tun(v, tun4(tun_id=CTX))
    frame = stt_hdr() + INNER
    assert frame[:18] == bytes.fromhex("00000000 0000 0000 0102030405060708 0000")
    want = (
        ip4(6)
        / TCP(sport=SPORT_FULL, dport=7471, seq=len(frame) << 16, ack=1, flags="PA", window=65535)
        / Raw(frame)
    )
    assert r.ns.sent() == [bytes(want)]


@pytest.mark.parametrize("family", [AF_INET, AF_INET6])
def test_stt_segments_to_the_path_mtu(family: int) -> None:
    r = Rig(mtu=200)
    v = r.port("stt", remote_ip=D6 if family == AF_INET6 else D4)
    big = INNER + bytes(range(256)) + bytes(150)
    r.send_tun(v, tun6(tun_id=CTX) if family == AF_INET6 else tun4(tun_id=CTX))
    r.send_tun(v, tun6(tun_id=CTX) if family == AF_INET6 else tun4(tun_id=CTX), frame=big)
    sent = r.ns.sent(family)
    frame = stt_hdr() + big
    mss = 200 - (40 if family == AF_INET6 else 20) - 20
    pieces = [frame[o : o + mss] for o in range(0, len(frame), mss)]
    assert len(pieces) == 4 and len(sent) == 1 + len(pieces)
    for i, piece in enumerate(pieces):
        tcp = TCP(
            sport=SPORT_FULL,
            dport=7471,
            seq=len(frame) << 16 | i * mss,
            ack=2,  # the second STT frame of this namespace
            flags="PA" if i == len(pieces) - 1 else "A",
            window=65535,
        )
        outer = ip6(6) if family == AF_INET6 else ip4(6, ident=1 + i)
        assert sent[1 + i] == bytes(outer / tcp / Raw(piece))
        assert len(sent[1 + i]) <= 200


def test_stt_carries_offload_state() -> None:
    r = Rig()
    v = r.port("stt")
    inner = bytes(
        Ether()
        / IP(src="10.0.0.1", dst="10.0.0.2")
        / TCP(sport=1, dport=2, chksum=0)
        / Raw(bytes(3000))
    )
    r.send_tun(
        v,
        tun4(tun_id=CTX),
        frame=inner,
        ip_summed=CHECKSUM_PARTIAL,
        csum_start=34,
        csum_offset=16,
        gso_size=1448,
        gso_type=SKB_GSO_TCPV4,
    )
    r.send_tun(v, tun4(tun_id=CTX), ip_summed=CHECKSUM_UNNECESSARY)
    sent = r.ns.sent()
    assert sent[0][40:58] == bytes.fromhex("000e2200 05a8 0000 0102030405060708 0000")
    assert sent[-1][40:58] == stt_hdr(flags=0x01)
    # decapsulated on another port: the offload state comes back
    r2 = Rig()
    v2 = r2.port("stt", key="flow", remote_ip="flow")
    assert v2.listener is not None
    v2.listener.receive(sent)
    (_, skb, tun), (_, skb2, _) = r2.received
    assert skb.data == inner and skb.ip_summed == CHECKSUM_PARTIAL
    assert (skb.csum_start, skb.csum_offset, skb.gso_size, skb.gso_type) == (
        34,
        16,
        1448,
        SKB_GSO_TCPV4,
    )
    assert skb2.ip_summed == CHECKSUM_UNNECESSARY and skb2.data == INNER
    assert flow.key_get(tun, "tun_id") == CTX


# ---------------------------------------------------------------------------
# Tunnel keys from the port configuration


def test_config_key_inherit_ecn_and_df() -> None:
    r = Rig()
    v = r.port("vxlan", key="42", tos="inherit", ttl="inherit", df_default="false")
    inner = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2", tos=0xB9, ttl=7) / ICMP())
    v.send([inner])
    p = IP(r.ns.sent()[0])
    # DSCP and ECN(ECT(1)) copied; TTL copied; no DF
    assert (p.tos, p.ttl, int(p.flags), p.src, p.dst) == (0xB9, 7, 0, S4, D4)
    assert p[VXLAN].vni == 42
    r2 = Rig()
    v2 = r2.port("vxlan", tos="0x20")
    ce = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2", tos=0x03) / ICMP())
    v2.send([ce, bytes(Ether() / ARP())])
    a, b = (IP(x) for x in r2.ns.sent())
    assert a.tos == 0x22  # CE becomes ECT(0) outside
    assert b.tos == 0x20 and b.ttl == 64 and int(b.flags) == 2  # df_default=true
    assert a[VXLAN].vni == 0


def test_local_ip_from_config() -> None:
    r = Rig()
    v = r.port("gre", local_ip="198.51.100.7")
    v.send([INNER])
    assert IP(r.ns.sent()[0]).src == "198.51.100.7"


def test_no_usable_tunnel_key_is_a_counted_drop() -> None:
    r = Rig()
    v = r.port("vxlan", remote_ip="flow", key="flow")
    v.send([INNER, INNER])
    st = v.get_stats()
    assert r.ns.sent() == [] and st.tx_dropped == 2 and st.tx_packets == 0
    assert r.dp.drops[DROP_TUNNEL_PUSH] == 2
    # with a set(tunnel(...)) it goes
    r.send_tun(v, tun4(tun_id=3))
    assert len(r.ns.sent()) == 1


def test_no_route_is_a_tx_error() -> None:
    r = Rig()
    v = r.port("geneve")
    r.ns.no_route = True
    v.send([INNER])
    assert v.get_stats().tx_errors == 1 and r.ns.sent() == []


def test_fill_metadata_dst() -> None:
    r = Rig()
    v = r.port("vxlan")
    got = v.fill_metadata_dst(SkBuff(INNER, hash=HASH, tun_info=tun4(ipv4_src=0, tun_id=1)))
    assert got is not None
    assert (got.ipv4_src, got.tp_src, got.tp_dst) == (L4, SPORT_EPHEMERAL, 4789)


# ---------------------------------------------------------------------------
# Decapsulation of scapy-built packets


def recv(r: Rig, v: TunnelVport, pkt: Any) -> tuple[SkBuff, int] | None:
    n = len(r.received)
    assert v.listener is not None
    v.listener.receive([bytes(pkt)])
    if len(r.received) == n:
        return None
    _, skb, tun = r.received[-1]
    return skb, tun


def tun_fields(tun: int) -> dict[str, int]:
    names = ("tun_id", "tun_ipv4_src", "tun_ipv4_dst", "tun_flags", "tun_tos", "tun_ttl")
    names += ("tun_tp_src", "tun_tp_dst")
    return {n[4:]: flow.key_get(tun, n) for n in names}


def test_decap_vxlan_from_scapy() -> None:
    r = Rig()
    v = r.port("vxlan", key="flow", remote_ip="flow")
    pkt = (
        IP(src=D4, dst=S4, tos=0x29, ttl=9)
        / UDP(sport=5555, dport=4789)
        / VXLAN(vni=77)
        / Raw(INNER)
    )
    skb, tun = recv(r, v, pkt) or pytest.fail("not delivered")
    assert skb.data == INNER
    assert tun_fields(tun) == dict(
        id=77, ipv4_src=R4, ipv4_dst=L4, flags=TUNNEL_KEY | TUNNEL_CSUM, tos=0x29, ttl=9,
        tp_src=5555, tp_dst=4789,
    )  # fmt: skip
    pkt0 = IP(src=D4, dst=S4) / UDP(sport=5555, dport=4789, chksum=0) / VXLAN(vni=77) / Raw(INNER)
    _, tun0 = recv(r, v, pkt0) or pytest.fail("not delivered")
    assert flow.key_get(tun0, "tun_flags") == TUNNEL_KEY


def test_decap_vxlan_gbp() -> None:
    r = Rig()
    v = r.port("vxlan", key="flow", remote_ip="flow", exts="gbp")
    pkt = (
        IP(src=D4, dst=S4)
        / UDP(sport=1, dport=4789)
        / VXLAN(flags=0x88, gpflags=0x08, gpid=0xBEEF, vni=5)
        / Raw(INNER)
    )
    _, tun = recv(r, v, pkt) or pytest.fail("not delivered")
    assert flow.key_get(tun, "tun_flags") & TUNNEL_VXLAN_OPT
    assert flow.key_tun_opts(tun) == (0x0008BEEF).to_bytes(4, "big")
    # the same packet on a port without exts=gbp: invalid flags
    r2 = Rig()
    v2 = r2.port("vxlan", key="flow", remote_ip="flow")
    assert recv(r2, v2, pkt) is None
    assert v2.get_stats().rx_errors == 1 and r2.dp.drops[DROP_TUNNEL_POP] == 1


def test_decap_geneve_from_scapy() -> None:
    r = Rig()
    v = r.port("geneve", key="flow", remote_ip=D6)
    pkt = (
        IPv6(src=D6, dst=S6, tc=0x10, hlim=3)
        / UDP(sport=4000, dport=6081)
        / GENEVE(vni=0xABCDEF, proto=0x6558, oam=1, critical=1, options=[
            GeneveOptions(classid=0x0102, type=0x80, data=b"abcd")
        ])
        / Raw(INNER)
    )  # fmt: skip
    skb, tun = recv(r, v, pkt) or pytest.fail("not delivered")
    assert skb.data == INNER
    flags = TUNNEL_KEY | TUNNEL_OAM | TUNNEL_CRIT_OPT | TUNNEL_GENEVE_OPT | TUNNEL_CSUM
    assert flow.key_get(tun, "tun_flags") == flags
    assert flow.key_get(tun, "tun_ipv6_src") == R6 and flow.key_get(tun, "tun_ipv6_dst") == L6
    assert flow.key_get(tun, "tun_proto") == flow.AF_INET6
    assert flow.key_get(tun, "tun_tos") == 0x10 and flow.key_get(tun, "tun_ttl") == 3
    assert flow.key_tun_opts(tun) == bytes(GeneveOptions(classid=0x0102, type=0x80, data=b"abcd"))


def test_decap_lisp_rebuilds_ethernet() -> None:
    r = Rig()
    v = r.port("lisp", key="flow", remote_ip="flow")
    inner_ip = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / ICMP())
    pkt = (
        IP(src=D4, dst=S4)
        / UDP(sport=1, dport=4341, chksum=0)
        / Raw(bytes.fromhex("48000000 000123 01") + inner_ip)
    )
    skb, tun = recv(r, v, pkt) or pytest.fail("not delivered")
    assert skb.data == bytes.fromhex("020000000000 020000000000 0800") + inner_ip
    assert flow.key_get(tun, "tun_id") == 0x123 and flow.key_get(tun, "tun_flags") == TUNNEL_KEY
    # no I bit: tun_id 0
    pkt2 = (
        IP(src=D4, dst=S4)
        / UDP(sport=1, dport=4341, chksum=0)
        / Raw(bytes.fromhex("40000000 000123 01") + inner_ip)
    )
    _, tun2 = recv(r, v, pkt2) or pytest.fail("not delivered")
    assert flow.key_get(tun2, "tun_id") == 0


def test_decap_gre_and_gre64_steering() -> None:
    r = Rig()
    g = r.port("gre", "g0", key="flow", remote_ip="flow")
    pkt = IP(src=D4, dst=S4) / GRE(key_present=1, key=0x1234, chksum_present=1, proto=0x6558)
    skb, tun = recv(r, g, pkt / Raw(INNER)) or pytest.fail("not delivered")
    assert skb.data == INNER
    assert tun_fields(tun)["id"] == 0x1234
    assert tun_fields(tun)["flags"] == TUNNEL_KEY | TUNNEL_CSUM
    ks = (
        IP(src=D4, dst=S4)
        / GRE(key_present=1, key=2, seqnum_present=1, sequence_number=1, proto=0x6558)
        / Raw(INNER)
    )
    # no gre64 port: K+S goes to the gre port, tun_id = key
    assert r.received and recv(r, g, ks) is not None
    assert r.received[-1][0] is g and flow.key_get(r.received[-1][2], "tun_id") == 2
    g64 = r.port("gre64", "g64", key="flow", remote_ip="flow")
    assert g64.listener is g.listener
    recv(r, g, ks)
    assert r.received[-1][0] is g64
    assert flow.key_get(r.received[-1][2], "tun_id") == 1 << 32 | 2
    recv(r, g, IP(src=D4, dst=S4) / GRE(key_present=1, key=3, proto=0x6558) / Raw(INNER))
    assert r.received[-1][0] is g


def test_decap_gre_l3_payload_needs_an_l3_port() -> None:
    r = Rig()
    l2 = r.port("gre", "l2", key="1", remote_ip="flow")
    l3 = r.port("gre", "l3", key="2", remote_ip="flow", packet_type="legacy_l3")
    assert l2.l2 and not l3.l2
    ip_pkt = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / ICMP())
    for key, port in ((1, l2), (2, l3)):
        recv(r, port, IP(src=D4, dst=S4) / GRE(key_present=1, key=key, proto=0x0800) / Raw(ip_pkt))
    assert len(r.received) == 1 and r.received[0][0] is l3
    assert r.received[0][1].protocol == 0x0800 and r.received[0][1].data == ip_pkt
    assert l2.get_stats().rx_errors == 1


def test_decap_stt_from_scapy_out_of_order() -> None:
    r = Rig()
    v = r.port("stt", key=str(CTX), remote_ip=D4)
    frame = stt_hdr(vlan=0x1000 | 7) + INNER + bytes(500)
    segs = [
        bytes(
            IP(src=D4, dst=S4, id=i)
            / TCP(
                sport=999,
                dport=7471,
                seq=len(frame) << 16 | off,
                ack=0xABCD,
                flags="A",
                window=65535,
            )
            / Raw(frame[off : off + 200])
        )
        for i, off in enumerate(range(0, len(frame), 200))
    ]
    assert v.listener is not None
    v.listener.receive(segs[::-1])
    assert len(r.received) == 1
    skb = r.received[0][1]
    # the VLAN TCI comes back as an 802.1Q tag (V bit cleared)
    assert skb.data == INNER[:12] + bytes.fromhex("81000007") + INNER[12:] + bytes(500)
    assert tun_fields(r.received[0][2])["flags"] == TUNNEL_KEY | TUNNEL_CSUM
    assert tun_fields(r.received[0][2])["tp_src"] == 999
    assert v.listener.reassembler is not None and len(v.listener.reassembler) == 0


# ---------------------------------------------------------------------------
# Round trips through the vports' own encapsulation


ROUND_TRIPS = [
    ("vxlan", dict(csum="true")),
    ("vxlan", dict(exts="gbp")),
    ("gre", dict(csum="true", seq="true")),
    ("gre64", dict()),
    ("geneve", dict(csum="true")),
    ("lisp", dict()),
    ("stt", dict()),
]


@pytest.mark.parametrize(("kind", "opts"), ROUND_TRIPS)
@pytest.mark.parametrize("v6", [False, True])
def test_round_trip(kind: str, opts: dict[str, str], v6: bool) -> None:
    tx, rx = Rig(mtu=300), Rig()
    a = tx.port(kind, remote_ip=D6 if v6 else D4, key="0x1234", **opts)
    b = rx.port(kind, remote_ip="flow", key="flow", **opts)
    tun = (tun6 if v6 else tun4)(
        tun_id=0x1234, flags=TUNNEL_KEY | TUNNEL_CSUM, gbp=0x1234 if "gbp" in opts else None
    )
    frames = [INNER, INNER + bytes(600)]
    for f in frames:
        tx.send_tun(a, tun, frame=f)
    sent = tx.ns.sent(AF_INET6 if v6 else AF_INET)
    assert b.listener is not None
    b.listener.receive(sent)
    assert len(rx.received) == 2
    for f, (_, skb, bits) in zip(frames, rx.received, strict=True):
        if kind == "lisp":  # L3 only: the trailing bytes beyond the IP packet are not sent
            assert skb.data == bytes.fromhex("020000000000020000000000") + INNER[12:]
        else:
            assert skb.data == f
        assert flow.key_get(bits, "tun_id") == 0x1234
        assert flow.key_get(bits, "tun_ttl") == 33 and flow.key_get(bits, "tun_tos") == 0x28
        assert flow.key_get(bits, "tun_flags") & TUNNEL_KEY
        if "gbp" in opts:
            assert flow.key_tun_opts(bits) == (0x1234).to_bytes(4, "big")


# ---------------------------------------------------------------------------
# Malformed packets: counted, dropped, never raised


def good_packets() -> dict[str, bytes]:
    return {
        "vxlan": bytes(IP(src=D4, dst=S4) / UDP(sport=1, dport=4789) / VXLAN(vni=1) / Raw(INNER)),
        "geneve": bytes(
            IP(src=D4, dst=S4) / UDP(sport=1, dport=6081) / GENEVE(vni=1, proto=0x6558) / Raw(INNER)
        ),
        "gre": bytes(IP(src=D4, dst=S4) / GRE(chksum_present=1, proto=0x6558) / Raw(INNER)),
        "lisp": bytes(
            IP(src=D4, dst=S4) / UDP(sport=1, dport=4341) / Raw(bytes.fromhex("4800000000000101"))
            / Raw(INNER[14:])
        ),
        "stt": bytes(
            IP(src=D4, dst=S4)
            / TCP(sport=1, dport=7471, seq=(len(INNER) + 18) << 16, ack=1, flags="PA")
            / Raw(stt_hdr(ctx=0) + INNER)
        ),
    }  # fmt: skip


def flip(pkt: bytes, off: int, value: int) -> bytes:
    return pkt[:off] + bytes((value,)) + pkt[off + 1 :]


def refix(pkt: bytes) -> bytes:
    """Recompute the IPv4, UDP and TCP checksums after an edit (scapy)."""
    p = IP(pkt)
    del p.chksum
    del p.len
    if UDP in p:
        del p[UDP].chksum
        del p[UDP].len
    if TCP in p:
        del p[TCP].chksum
    return bytes(p)


MALFORMED: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("vxlan", lambda p: flip(p, 10, p[10] ^ 0xFF), "outer ipv4: bad header checksum"),
    ("vxlan", lambda p: flip(p, 0, 0x55), "outer ip: version N"),
    ("vxlan", lambda p: p[:2] + (len(p) + 4).to_bytes(2, "big") + p[4:], "outer ipv4: total"),
    ("vxlan", lambda p: refix(p[:6] + b"\x20\x00" + p[8:]), "outer ipv4: fragment"),
    ("vxlan", lambda p: flip(p, len(p) - 1, p[-1] ^ 1), "udp: bad checksum"),
    ("vxlan", lambda p: refix(p[:22] + b"\x12\xb6" + p[24:]), "udp: port N is not N"),
    ("vxlan", lambda p: refix(flip(p, 28, 0x00)), "vxlan: I flag missing"),
    ("vxlan", lambda p: refix(flip(p, 29, 0x01)), "vxlan: invalid flags"),
    ("vxlan", lambda p: refix(flip(p, 35, 0x01)), "vxlan: reserved byte"),
    ("vxlan", lambda p: refix(p[:36] + p[36:40]), "vxlan: inner frame shorter"),
    ("geneve", lambda p: refix(flip(p, 28, 0x40)), "geneve: version N"),
    ("geneve", lambda p: refix(flip(p, 30, 0x08)), "geneve: protocol N is not N"),
    ("geneve", lambda p: refix(flip(p, 28, 0x3F)), "geneve options: truncated"),
    ("gre", lambda p: flip(p, len(p) - 1, p[-1] ^ 1), "gre: bad checksum"),
    ("gre", lambda p: flip(p, 20, p[20] | 0x40), "gre: routing present"),
    ("gre", lambda p: flip(p, 21, p[21] | 0x01), "gre: version N"),
    ("gre", lambda p: flip(p, 21, p[21] | 0x08), "gre: reserved flag bits"),
    (
        "gre",
        lambda p: bytes(IP(src=D4, dst=S4) / GRE(proto=0x5FF) / Raw(INNER)),
        "gre: protocol N is not",
    ),
    ("lisp", lambda p: refix(flip(p, 36, 0x50)), "lisp: inner packet is not IPv4 or IPv6"),
    ("stt", lambda p: flip(p, len(p) - 1, p[-1] ^ 1), "stt: bad tcp checksum"),
    ("stt", lambda p: refix(flip(p, 40, 1)), "stt: version N"),
    ("stt", lambda p: refix(p[:24] + (1 << 16).to_bytes(4, "big") + p[28:]), "stt: segment"),
    ("stt", lambda p: refix(flip(p, 32, 0x60)), "stt: tcp header with options"),
    ("stt", lambda p: refix(p[:22] + b"\x00\x50" + p[24:]), "stt: tcp port N is not N"),
]


@pytest.mark.parametrize(("kind", "mangle", "reason"), MALFORMED)
def test_malformed_is_counted_and_dropped(
    kind: str, mangle: Callable[[bytes], bytes], reason: str
) -> None:
    r = Rig()
    v = r.port(kind, key="flow", remote_ip="flow")
    assert v.listener is not None
    good = good_packets()[kind]
    v.listener.receive([good])
    assert len(r.received) == 1, "the unmangled packet is accepted"
    bad = mangle(good)
    assert bad != good
    v.listener.receive([bad])
    assert len(r.received) == 1
    assert v.listener.rx_dropped == 1 and v.get_stats().rx_errors == 1
    assert r.dp.drops[DROP_TUNNEL_POP] == 1
    assert [k for k in v.listener.errors if k.startswith(reason)], v.listener.errors


@pytest.mark.parametrize("kind", ["vxlan", "geneve", "gre", "lisp", "stt"])
def test_every_truncation_is_dropped(kind: str) -> None:
    r = Rig()
    v = r.port(kind, key="flow", remote_ip="flow")
    assert v.listener is not None
    good = good_packets()[kind]
    v.listener.receive([good[:n] for n in range(len(good))])
    assert r.received == []
    assert v.listener.rx_dropped == len(good)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from(["vxlan", "geneve", "gre", "lisp", "stt"]))
def test_random_bytes_never_raise(data: bytes, kind: str) -> None:
    r = _fuzz_rigs.get(kind)
    if r is None:
        r = _fuzz_rigs[kind] = Rig()
        r.port(kind, key="flow", remote_ip="flow")
    v = r.dp.get_vport("t0")
    assert isinstance(v, TunnelVport) and v.listener is not None
    good = good_packets()[kind]
    v.listener.receive([data, good[:20] + data, good[: len(good) // 2] + data])


_fuzz_rigs: dict[str, Rig] = {}


# ---------------------------------------------------------------------------
# Demultiplexing by configuration (tnl_find)


def test_demux_by_configuration() -> None:
    r = Rig()
    exact = r.port("vxlan", "exact", key="5", remote_ip="10.1.1.1")
    any_key = r.port("vxlan", "anykey", key="flow", remote_ip="10.1.1.1")
    any_ip = r.port("vxlan", "anyip", key="5", remote_ip="flow")
    local = r.port("vxlan", "local", key="6", remote_ip="10.1.1.1", local_ip=S4)
    nolocal = r.port("vxlan", "nolocal", key="6", remote_ip="10.1.1.1")
    nokey = r.port("vxlan", "nokey", remote_ip="10.1.1.2")
    assert len({v.listener for v in (exact, any_key, any_ip, local, nolocal, nokey)}) == 1

    def who(src: str, vni: int, dst: str = S4) -> str | None:
        n = len(r.received)
        assert exact.listener is not None
        exact.listener.receive(
            [bytes(IP(src=src, dst=dst) / UDP(sport=1, dport=4789) / VXLAN(vni=vni) / Raw(INNER))]
        )
        return r.received[-1][0].name if len(r.received) > n else None

    assert who("10.1.1.1", 5) == "exact"  # exact key and remote first
    assert who("10.1.1.1", 9) == "anykey"  # key=flow before remote_ip=flow
    assert who("10.9.9.9", 5) == "anyip"
    assert who("10.1.1.1", 6) == "local"  # configured local_ip before none
    assert who("10.1.1.1", 6, dst="192.0.2.99") == "nolocal"
    assert who("10.1.1.2", 0) == "nokey"  # a port without key matches VNI 0 only
    assert who("10.1.1.2", 1) is None
    assert who("10.9.9.9", 9) is None
    assert exact.get_stats().rx_dropped == 2  # counted on the socket owner
    assert r.dp.drops[DROP_INVALID_TNL_PORT] == 2
    assert exact.listener is not None and exact.listener.errors["no matching port"] == 2


def test_demux_ipv6_sources_do_not_match_ipv4_ports() -> None:
    r = Rig()
    v4 = r.port("geneve", "v4", remote_ip=D4)
    v6 = r.port("geneve", "v6", remote_ip=D6)
    assert v4.listener is v6.listener
    for src, dst in ((D4, S4), (D6, S6)):
        ip = IP(src=src, dst=dst) if ":" not in src else IPv6(src=src, dst=dst)
        v4.listener.receive(  # type: ignore[union-attr]
            [bytes(ip / UDP(sport=1, dport=6081) / GENEVE(vni=0, proto=0x6558) / Raw(INNER))]
        )
    assert [x[0].name for x in r.received] == ["v4", "v6"]


def test_binding_conflicts() -> None:
    r = Rig()
    r.port("vxlan", "a", key="5")
    with pytest.raises(VportError, match="same config") as e:
        r.port("vxlan", "b", key="5")
    assert e.value.errno == errno.EEXIST
    r.port("vxlan", "c", key="6")  # another key: fine
    r.port("vxlan", "d", key="5", dst_port="4790")  # another port: fine
    with pytest.raises(VportError) as e2:
        r.port("geneve", "e", dst_port="4789")
    assert e2.value.errno == errno.EADDRINUSE
    assert len(r.dp.ports) == 4  # dp0, a, c, d


def test_set_options_rebinds_and_delete_closes() -> None:
    r = Rig()
    v = r.port("vxlan")
    assert (AF_INET, 17, 4789) in r.ns.socks
    r.dp.vport_set("t0", options={"remote_ip": D4, "dst_port": "5000"})
    assert r.ns.socks[(AF_INET, 17, 4789)].closed
    assert v.listener is not None and v.listener.port == 5000
    assert v.get_options() == {"dst_port": "5000", "remote_ip": D4}
    r.port("vxlan", "t1", dst_port="5000", key="1")
    with pytest.raises(VportError):
        r.dp.vport_set("t1", options={"remote_ip": D4, "dst_port": "5000"})  # same as t0
    assert r.dp.get_vport("t1").get_options()["key"] == "1"  # unchanged
    r.dp.vport_del("t0")
    r.dp.vport_del("t1")
    assert r.ns.socks[(AF_INET, 17, 5000)].closed


# ---------------------------------------------------------------------------
# ECN


def test_ecn_decapsulate() -> None:
    ect0 = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2", tos=0x02) / ICMP())
    notect = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2", tos=0x00) / ICMP())
    out = ecn_decapsulate(0x03, ect0)
    assert out is not None and IP(out[14:]).tos == 0x03
    assert IP(out[14:]).chksum == IP(bytes(IP(out[14:]))).chksum  # still valid
    del_ck = IP(out[14:])
    del del_ck.chksum
    assert bytes(del_ck) == out[14:]
    assert ecn_decapsulate(0x03, notect) is None
    assert ecn_decapsulate(0x02, notect) == notect
    v6 = bytes(Ether() / IPv6(src="fd00::1", dst="fd00::2", tc=0x01) / UDP())
    out6 = ecn_decapsulate(0x03, v6)
    assert out6 is not None and IPv6(out6[14:]).tc == 0x03


def test_ce_on_not_ect_inner_is_dropped_on_receive() -> None:
    r = Rig()
    v = r.port("vxlan", key="flow", remote_ip="flow")
    pkt = IP(src=D4, dst=S4, tos=0x03) / UDP(sport=1, dport=4789) / VXLAN(vni=1) / Raw(INNER)
    assert recv(r, v, pkt) is None and v.get_stats().rx_errors == 1
