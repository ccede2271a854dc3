"""Tunnels across the in-memory underlay: two datapaths in two namespaces,
joined by a tunnel over a veth pair, hosts pinging across."""

from __future__ import annotations

import errno
import ipaddress
import random

import pytest
from scapy.all import IP, TCP, Ether, IPv6, Raw

from pyvswitch import flow
from pyvswitch.backends.memory import (
    MemoryTunnelSocket,
    MemoryWorld,
    TunnelTopology,
    tunnel_demo_topology,
)
from pyvswitch.datapath import Openvswitch
from pyvswitch.device import (
    AF_INET,
    AF_INET6,
    IPPROTO_GRE,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TunnelSocket,
    TunnelUnderlay,
)
from pyvswitch.errors import DeviceError
from pyvswitch.learning import LearningSwitch
from pyvswitch.vport_tunnel import TunnelVport

KINDS = ["vxlan", "gre", "gre64", "geneve", "lisp", "stt"]


def ping(t: TunnelTopology, count: int = 3, size: int = 56) -> int:
    res = t.h1.ping("10.0.0.2", count=count, size=size)
    t.world.run()
    return res.received


def tun(t: TunnelTopology, side: str = "a") -> TunnelVport:
    v = t.tun_a if side == "a" else t.tun_b
    assert isinstance(v, TunnelVport)
    return v


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
def test_ping_across_tunnel(kind: str, ipv6: bool) -> None:
    t = tunnel_demo_topology(kind, ipv6=ipv6)
    assert ping(t) == 3
    a, b = tun(t, "a"), tun(t, "b")
    sa, sb = a.get_stats(), b.get_stats()
    assert sa.tx_packets == sb.rx_packets >= 3 and sb.tx_packets == sa.rx_packets >= 3
    assert sa.tx_errors == sa.tx_dropped == sa.rx_errors == sa.rx_dropped == 0
    assert not t.dp_a.drops and not t.dp_b.drops
    # what crossed the underlay is the tunnel protocol, over the right family
    frames = [f for dev, f in t.sw_b.stack.received if dev == "ul0"]
    ethertype = 0x86DD if ipv6 else 0x0800
    proto = {"gre": 47, "gre64": 47, "stt": 6}.get(kind, 17)
    outer = [f for f in frames if int.from_bytes(f[12:14], "big") == ethertype]
    assert outer and all((f[20] if ipv6 else f[23]) == proto for f in outer if f[20] != 58)


def test_tunnel_metadata_reaches_the_flow_key() -> None:
    t = tunnel_demo_topology("geneve", options={"key": "4242", "csum": "true"})
    t.dp_b.flow_flush()  # packets from the tunnel now miss and go up
    ch = t.dp_b.upcall_channel_open()
    tun(t, "b").set_upcall_portids([ch.portid])
    t.h1.ping("10.0.0.2")
    t.world.run()
    up = ch.get()
    assert up is not None
    k = up.key
    assert flow.key_get(k, "in_port") == tun(t, "b").port_no
    assert flow.key_get(k, "tun_id") == 4242
    assert flow.key_get(k, "tun_ipv4_src") == int(ipaddress.IPv4Address(t.underlay_a))
    assert flow.key_get(k, "tun_ipv4_dst") == int(ipaddress.IPv4Address(t.underlay_b))
    assert flow.key_get(k, "tun_ttl") == 64
    assert flow.key_get(k, "tun_flags") == flow.TUNNEL_KEY | flow.TUNNEL_CSUM
    assert flow.key_get(k, "tun_tp_dst") == 6081
    assert 1 <= flow.key_get(k, "tun_tp_src") <= 65535


def test_learning_switch_over_vxlan() -> None:
    t = tunnel_demo_topology("vxlan", flows=False)
    for dp in (t.dp_a, t.dp_b):
        t.world.add_poller(LearningSwitch(dp).poll)
    assert ping(t, count=5) == 5
    assert t.dp_a.table.count >= 2 and t.dp_b.table.count >= 2


def test_stt_segments_across_a_small_mtu_underlay() -> None:
    t = tunnel_demo_topology("stt", underlay_mtu=576)
    assert ping(t, count=2, size=1400) == 2
    segs = [
        f
        for dev, f in t.sw_b.stack.received
        if dev == "ul0" and f[12:14] == b"\x08\x00" and f[23] == IPPROTO_TCP
    ]
    # each 1442-byte inner frame + 18-byte header in (576 - 40)-byte pieces: 3 segments
    big = [f for f in segs if int.from_bytes(f[14 + 24 : 14 + 26], "big") > 1400]
    assert len(big) >= 6
    assert max(len(f) - 14 for f in segs) <= 576
    b = tun(t, "b")
    assert b.listener is not None and b.listener.reassembler is not None
    assert len(b.listener.reassembler) == 0


def test_stt_out_of_order_segments_over_the_underlay() -> None:
    t = tunnel_demo_topology("stt", underlay_mtu=300)
    assert ping(t, count=1) == 1  # resolves ARP both ways
    b = tun(t, "b")
    before = b.get_stats().rx_packets
    # build three frames' worth of segments on A, then deliver them shuffled
    a = tun(t, "a")
    assert a.listener is not None
    sock = a.listener.sockets[AF_INET]
    sent: list[bytes] = []
    orig = sock.send
    sock.send = lambda pkts: sent.extend(pkts) or len(pkts)  # type: ignore[method-assign]
    frame = bytes(
        Ether(src="02:00:00:00:00:aa", dst="ff:ff:ff:ff:ff:ff")
        / IP(src="10.0.0.9", dst="10.0.0.2")
        / Raw(bytes(700))
    )
    a.send([frame, frame, frame])
    sock.send = orig  # type: ignore[method-assign]
    assert len(sent) == 9  # 734 + 18 = 752-byte STT frames in 260-byte pieces
    in_order = list(sent)
    random.Random(7).shuffle(sent)
    assert sent != in_order
    assert sock.send(sent) == 9
    t.world.run()
    assert b.get_stats().rx_packets == before + 3
    assert b.listener is not None and b.listener.reassembler is not None
    assert len(b.listener.reassembler) == 0


def test_stt_reassembly_table_is_bounded() -> None:
    t = tunnel_demo_topology("stt")
    b = tun(t, "b")
    assert b.listener is not None and b.listener.reassembler is not None
    reasm = b.listener.reassembler
    a_sock = tun(t, "a").listener.sockets[AF_INET]  # type: ignore[union-attr]
    first_segments = [
        bytes(
            IP(src=t.underlay_a, dst=t.underlay_b)
            / TCP(sport=1, dport=7471, seq=1000 << 16, ack=pid, flags="A", window=65535)
            / Raw(bytes(100))
        )
        for pid in range(1, 401)
    ]
    assert a_sock.send(first_segments) == 400
    t.world.run()
    assert len(reasm) == reasm.max_entries == 256
    assert reasm.evicted == 400 - 256
    assert b.get_stats().rx_packets == 0


def test_memory_underlay_socket_rules() -> None:
    world = MemoryWorld()
    ns = world.netns("n")
    assert isinstance(ns, TunnelUnderlay)
    s = ns.tunnel_socket_open(IPPROTO_UDP, 4789, AF_INET, lambda pkts: None)
    assert isinstance(s, TunnelSocket) and isinstance(s, MemoryTunnelSocket)
    with pytest.raises(DeviceError) as e:
        ns.tunnel_socket_open(IPPROTO_UDP, 4789, AF_INET, lambda pkts: None)
    assert e.value.errno == errno.EADDRINUSE
    ns.tunnel_socket_open(IPPROTO_UDP, 4789, AF_INET6, lambda pkts: None)  # other family
    g = ns.tunnel_socket_open(IPPROTO_GRE, 1234, AF_INET, lambda pkts: None)
    assert g.port == 0
    with pytest.raises(DeviceError) as e:
        ns.tunnel_socket_open(IPPROTO_UDP, 1, 99, lambda pkts: None)
    assert e.value.errno == errno.EAFNOSUPPORT
    # nothing routed yet: counted, not raised
    assert s.send([bytes(IP(dst="10.0.0.1") / Raw(b"x"))]) == 0 and s.tx_errors == 1
    assert s.route(int(ipaddress.IPv4Address("10.0.0.1"))) is None
    s.close()
    ns.tunnel_socket_open(IPPROTO_UDP, 4789, AF_INET, lambda pkts: None)  # free again


def test_over_mtu_outer_packets_are_tx_errors() -> None:
    t = tunnel_demo_topology("vxlan", underlay_mtu=1400)
    assert ping(t, count=1, size=1300) == 1  # 1328 + 50 fits
    assert ping(t, count=1, size=1380) == 0  # 1408 + 50 does not (raw sockets do not fragment)
    st = tun(t, "a").get_stats()
    assert st.tx_errors == 1
    sock = tun(t, "a").listener.sockets[AF_INET]  # type: ignore[union-attr]
    assert isinstance(sock, MemoryTunnelSocket) and sock.tx_errors == 1


def test_ipv6_underlay_resolves_neighbours() -> None:
    t = tunnel_demo_topology("vxlan", ipv6=True)
    assert ping(t, count=1) == 1
    a6 = int(ipaddress.IPv6Address(t.underlay_a))
    b6 = int(ipaddress.IPv6Address(t.underlay_b))
    assert t.sw_a.stack.neigh6[b6] == int.from_bytes(t.sw_b.devices["ul0"].mac, "big")
    assert t.sw_b.stack.neigh6[a6] == int.from_bytes(t.sw_a.devices["ul0"].mac, "big")
    sock = tun(t, "a").listener.sockets[AF_INET6]  # type: ignore[union-attr]
    route = sock.route(b6)
    assert route is not None and route.src == a6 and route.mtu == 1500


def test_ports_on_two_datapaths_share_the_namespace_socket() -> None:
    world = MemoryWorld()
    ns = world.netns("n")
    ovs = Openvswitch()
    d1, d2 = ovs.dp_new("d1", ns), ovs.dp_new("d2", ns)
    v1 = d1.vport_add("v1", "vxlan", options={"remote_ip": "10.0.0.1"})
    v2 = d2.vport_add("v2", "vxlan", options={"remote_ip": "10.0.0.2"})
    assert isinstance(v1, TunnelVport) and isinstance(v2, TunnelVport)
    assert v1.listener is v2.listener
    assert set(ns.stack.tunnel_sockets) == {(AF_INET, 17, 4789), (AF_INET6, 17, 4789)}
    ovs.dp_del(d1)
    assert v2.listener is not None and v2.listener.vports == [v2]
    ovs.dp_del(d2)
    assert ns.stack.tunnel_sockets == {}


def test_namespace_without_underlay_counts_drops() -> None:
    class Plain:
        """A namespace with devices but no tunnel underlay."""

        def __init__(self, inner: object) -> None:
            self._inner = inner
            self.name = "plain"

        def __getattr__(self, name: str) -> object:
            if name == "tunnel_socket_open":
                raise AttributeError(name)
            return getattr(self._inner, name)

    world = MemoryWorld()
    net = Plain(world.netns("n"))
    dp = Openvswitch().dp_new("dp0", net)  # type: ignore[arg-type]
    v = dp.vport_add("t", "gre", options={"remote_ip": "10.0.0.1"})
    assert isinstance(v, TunnelVport) and v.listener is None
    v.send([bytes(Ether() / IPv6() / Raw(b"x"))])
    assert v.get_stats().tx_errors == 1


def test_demo_topology_pieces() -> None:
    t = tunnel_demo_topology()
    assert t.tun_a.type_name == "vxlan" and t.tun_a.get_options() == {"remote_ip": t.underlay_b}
    assert t.dp_a.net is t.sw_a and t.dp_b.net is t.sw_b
    assert [v.name for v in t.dp_a.ports.values()] == ["dpA", "p1", "t0"]
    assert ping(t) == 3
    assert t.dp_a.get_stats().n_hit > 0
