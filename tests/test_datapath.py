"""The receive path end to end on the in-memory backend."""

from __future__ import annotations

import errno

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from pyvswitch import flow
from pyvswitch.flow import field_mask, key_from_fields, key_get
from pyvswitch.learning import LearningSwitch
from pyvswitch.uapi import OVS_PACKET_CMD_MISS, Output, Upcall
from pyvswitch.upcall import Handler
from tests.conftest import Recorder, Topo

M_PORT = field_mask("in_port")


def forward_both_ways(t: Topo) -> None:
    t.dp.flow_put(key_from_fields(in_port=1), M_PORT, [Output(2)])
    t.dp.flow_put(key_from_fields(in_port=2), M_PORT, [Output(1)])


def test_ping_through_flows(topo: Topo) -> None:
    forward_both_ways(topo)
    r = topo.h1.ping("10.0.0.2", count=3)
    topo.world.run()
    assert (r.sent, r.received) == (3, 3)
    s = topo.dp.get_stats()
    # ARP request+reply, 3 echo requests + 3 replies, all hits
    assert (s.n_hit, s.n_missed, s.n_lost) == (8, 0, 0)
    assert s.n_flows == 2 and s.n_masks == 1
    st1 = topo.p1.get_stats()
    assert st1.rx_packets == 4 and st1.tx_packets == 4
    assert st1.rx_bytes == st1.tx_bytes == 42 + 3 * 98
    flows = {key_get(f.key, "in_port"): f.get_stats() for f in topo.dp.flow_dump()}
    assert flows[1].packets == 4 and flows[1].bytes == 42 + 3 * 98 and flows[1].used > 0


def test_miss_without_handler_is_lost(topo: Topo) -> None:
    r = topo.h1.ping("10.0.0.2")
    topo.world.run()
    assert r.received == 0
    s = topo.dp.get_stats()
    # upcall pid 0: ENOTCONN, counted in both missed and lost
    assert (s.n_hit, s.n_missed, s.n_lost) == (0, 1, 1)


def test_upcall_carries_key_and_packet(topo: Topo) -> None:
    h = Recorder(topo.dp)
    topo.p1.set_upcall_portids(h.portids)
    frame = bytes(Ether(src="02:00:00:00:00:aa", dst="02:00:00:00:00:bb") / IP() / UDP(dport=99))
    topo.h1.transmit("eth0", [frame])
    topo.world.run()
    h.poll()
    assert len(h.seen) == 1
    up = h.seen[0]
    assert up.cmd == OVS_PACKET_CMD_MISS and up.packet == frame and up.dp_name == "dp0"
    assert up.key == flow.extract(frame, 1)
    assert key_get(up.key, "tp_dst") == 99


def test_upcall_queue_bounded_counts_lost(topo: Topo) -> None:
    h = Recorder(topo.dp, depth=4)
    topo.p1.set_upcall_portids(h.portids)
    frames = [bytes(Ether() / IP(dst=f"10.9.0.{i}") / UDP()) for i in range(10)]
    topo.h1.transmit("eth0", frames)
    topo.world.run()
    s = topo.dp.get_stats()
    assert s.n_missed == 10 and s.n_lost == 6
    assert h.pending() == 4 and h.channels[0].n_dropped == 6


def test_handler_chosen_by_hash_among_ids(topo: Topo) -> None:
    hs = [Recorder(topo.dp) for _ in range(3)]
    topo.p1.set_upcall_portids([h.portids[0] for h in hs])
    frames = [bytes(Ether() / IP(src=f"10.1.{i}.1") / TCP(sport=i)) for i in range(60)]
    topo.h1.transmit("eth0", frames)
    topo.world.run()
    for h in hs:
        h.poll()
    got = [len(h.seen) for h in hs]
    assert sum(got) == 60 and all(n > 5 for n in got)
    for i, h in enumerate(hs):
        for up in h.seen:
            assert flow.key_hash(up.key) % 3 == i


def test_failing_handler_does_not_take_datapath_down(topo: Topo) -> None:
    class Boom(Handler):
        def handle_upcall(self, upcall: Upcall) -> None:
            raise RuntimeError("handler bug")

    h = Boom(topo.dp)
    topo.p1.set_upcall_portids(h.portids)
    topo.world.add_poller(h.poll)
    topo.h1.transmit("eth0", [bytes(Ether() / IP() / UDP())] * 3)
    topo.world.run()
    assert h.n_errors == 3
    forward_both_ways(topo)
    r = topo.h1.ping("10.0.0.2")
    topo.world.run()
    assert r.received == 1


def test_learning_switch_forwards_and_installs_megaflows(topo: Topo) -> None:
    h = LearningSwitch(topo.dp)
    topo.world.add_poller(h.poll)
    r = topo.h1.ping("10.0.0.2")
    topo.world.run()
    r2 = topo.h1.ping("10.0.0.2", count=5)
    topo.world.run()
    assert r.received == 1 and r2.received == 5
    s = topo.dp.get_stats()
    # misses: ARP request (flooded), ARP reply, first echo request; the first
    # echo reply already hits the flow installed for the ARP reply.
    assert s.n_missed == 3 and s.n_hit == 11 and s.n_lost == 0
    assert s.n_flows == 2


def test_malformed_frames_counted_not_raised(topo: Topo) -> None:
    forward_both_ways(topo)
    topo.h1.transmit("eth0", [b"", b"\x01" * 5, b"\x02" * 13])
    topo.world.run()
    st = topo.p1.get_stats()
    assert st.rx_packets == 3 and st.rx_errors == 3
    assert topo.p2.get_stats().tx_packets == 0
    # the datapath keeps working
    r = topo.h1.ping("10.0.0.2")
    topo.world.run()
    assert r.received == 1


def test_internal_port_reachable_by_ping(topo: Topo) -> None:
    topo.sw.add_address("dp0", "10.0.0.254/24")  # the local port, like an IP on br0
    h = LearningSwitch(topo.dp)
    topo.world.add_poller(h.poll)
    r = topo.h1.ping("10.0.0.254", count=2)
    topo.world.run()
    assert r.received == 2
    local = topo.dp.ports[0].get_stats()
    assert local.rx_packets >= 3 and local.tx_packets >= 3


def test_internal_device_down_drops(topo: Topo) -> None:
    topo.sw.add_address("dp0", "10.0.0.254/24")
    topo.sw.set_up("dp0", False)
    topo.dp.flow_put(key_from_fields(in_port=1), M_PORT, [Output(0)])
    topo.h1.transmit("eth0", [bytes(Ether() / IP() / UDP())])
    topo.world.run()
    assert topo.dp.ports[0].get_stats().tx_dropped == 1


def test_over_mtu_dropped_as_tx_error(topo: Topo) -> None:
    forward_both_ways(topo)
    topo.sw.devices["p2"].change_mtu(1000)
    big = bytes(Ether() / IP() / UDP() / (b"x" * 1200))
    ok = bytes(Ether() / IP() / UDP() / (b"x" * 900))
    topo.h1.transmit("eth0", [big, ok])
    topo.world.run()
    st = topo.p2.get_stats()
    assert st.tx_errors == 1 and st.tx_packets == 1


def test_output_to_missing_port_is_counted_drop(topo: Topo) -> None:
    from pyvswitch.uapi import Userspace

    topo.dp.flow_put(key_from_fields(in_port=1), M_PORT, [Output(42), Userspace(pid=0)])
    topo.h1.transmit("eth0", [bytes(Ether() / IP() / UDP())])
    topo.world.run()
    assert topo.dp.drops["datapath_drop_invalid_port"] == 1


def test_execute_packet(topo: Topo) -> None:
    frame = bytes(Ether(dst="02:00:00:00:00:99") / IP() / UDP())
    key = flow.key_set(0, "in_port", 1)
    topo.dp.execute(frame, [Output(2)], key=key)
    topo.world.run()
    assert topo.p2.get_stats().tx_packets == 1
    assert topo.h2.stack.received[-1] == ("eth0", frame)
    assert topo.dp.get_stats().n_hit == 0  # execute counts no hit/miss


def test_execute_rejects_short_packet(topo: Topo) -> None:
    import pytest

    from pyvswitch.errors import FlowError

    with pytest.raises(FlowError) as ei:
        topo.dp.execute(b"\x00" * 10, [Output(1)])
    assert ei.value.errno == errno.EINVAL


def test_learning_expire_counts_from_install_for_unhit_flows(topo: Topo) -> None:
    import time

    h = LearningSwitch(topo.dp)
    topo.world.add_poller(h.poll)
    topo.h1.transmit("eth0", [bytes(Ether(src="02:00:00:00:00:aa") / IP() / UDP())])
    topo.world.run()
    assert len(h.installed) == 1
    (f,) = h.installed
    assert f.get_stats().packets == 0  # installed by the miss, never hit
    now = time.monotonic()
    assert h.expire(max_idle=5, now=now) == 0  # just installed: not idle
    assert h.expire(max_idle=5, now=now + 6) == 1  # idle 6 s since install
    assert f.dead and topo.dp.table.count == 0
