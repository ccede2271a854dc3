"""Upcalls (MISS / ACTION), their destination, GSO before upcall, and EXECUTE.

Receive-path basics (queue bound on misses, hash choice among a vport's ids)
are in test_datapath.py; this file covers the rest of §4 of the notes.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from pyvswitch import flow, percpu
from pyvswitch.errors import ActionError, FlowError
from pyvswitch.flow import field_mask, key_from_fields, key_get
from pyvswitch.skbuff import CHECKSUM_PARTIAL, SKB_GSO_TCPV4, SKB_GSO_UDP, SkBuff
from pyvswitch.uapi import (
    OVS_PACKET_CMD_ACTION,
    OVS_PACKET_CMD_MISS,
    Output,
    PushEth,
    Recirc,
    SetMasked,
    Udp,
    Userspace,
)
from pyvswitch.upcall import MAX_UPCALL_PACKET, UpcallChannel, upcall_cmd_name
from tests.test_actions import MAC1, MAC2, PAYLOAD, Recorder, Rig, md, udp4

M_PORT = field_mask("in_port")


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_miss_upcall_fields(rig: Rig) -> None:
    rig.p1.set_upcall_portids([rig.pid])
    frame = bytes(udp4())
    rig.receive([frame])
    (up,) = rig.rec.seen
    assert up.cmd == OVS_PACKET_CMD_MISS and upcall_cmd_name(up.cmd) == "miss"
    assert up.portid == rig.pid and up.dp_name == "dp0" and up.packet == frame
    assert up.key == flow.extract(frame, 1)
    assert up.userdata is None and up.actions is None and up.egress_tun_key is None
    assert (up.mru, up.orig_len) == (0, 0)
    assert up.hash == flow.key_hash(up.key) != 0  # the hash that chose the handler


def test_action_upcall_goes_to_the_action_pid(rig: Rig) -> None:
    other = Recorder(rig.dp)
    rig.p1.set_upcall_portids(other.portids)  # misses would go there
    p = udp4()
    rig.dp.flow_put(
        key_from_fields(in_port=1, eth_type=0x0800, ip_proto=17),
        M_PORT | field_mask("eth_type") | field_mask("ip_proto"),
        [SetMasked(Udp(dst=99), Udp(dst=0xFFFF)), Userspace(pid=rig.pid, userdata=b"\xaa" * 8)],
    )
    rig.receive([bytes(p)])
    other.poll()
    assert other.seen == []
    (up,) = rig.rec.seen
    assert up.cmd == OVS_PACKET_CMD_ACTION and upcall_cmd_name(up.cmd) == "action"
    exp = p.copy()
    exp[UDP].dport = 99
    assert up.packet == bytes(exp) and up.key == flow.extract(bytes(exp), 1)
    assert up.userdata == b"\xaa" * 8
    s = rig.stats()
    assert (s.n_hit, s.n_missed, s.n_lost) == (1, 0, 0)


def test_action_upcalls_bounded_queue_counts_lost(rig: Rig) -> None:
    small = rig.dp.upcall_channel_open(depth=3)
    rig.dp.flow_put(key_from_fields(in_port=1), M_PORT, [Userspace(pid=small.portid), Output(2)])
    frames = [bytes(udp4(id=i)) for i in range(5)]
    out = rig.receive(frames)
    assert len(out[2]) == 5  # the packets still go on
    assert len(small) == 3 and small.n_dropped == 2
    s = rig.stats()
    assert (s.n_hit, s.n_lost) == (5, 2)


def test_channel_rejects_bad_depth() -> None:
    with pytest.raises(ValueError):
        UpcallChannel(depth=0)


def test_upcall_hash_picks_the_handler(rig: Rig) -> None:
    hs = [Recorder(rig.dp) for _ in range(4)]
    rig.p1.set_upcall_portids([h.portids[0] for h in hs])
    frames = [bytes(udp4(src=f"10.2.{i}.1")) for i in range(40)]
    rig.receive(frames)
    for i, h in enumerate(hs):
        h.poll()
        for up in h.seen:
            assert up.hash % 4 == i


# ---------------------------------------------------------------------------
# per-worker (per-CPU) dispatch


@pytest.fixture
def two_workers() -> Iterator[None]:
    percpu.configure(2)
    try:
        yield
    finally:
        percpu.set_worker(0)
        percpu.configure(1)


def test_per_worker_dispatch(two_workers: None) -> None:
    rig = Rig()  # counters with two rows
    w0, w1 = Recorder(rig.dp), Recorder(rig.dp)
    rig.p1.set_upcall_portids([rig.pid])  # used only in per-vport mode
    rig.dp.set_per_cpu_pids([w0.portids[0], w1.portids[0]])
    frame = bytes(udp4())
    percpu.set_worker(1)
    rig.receive([frame])  # a miss: the worker's pid, not the vport's
    # The userspace action's pid is ignored in per-CPU mode too.
    rig.dp.execute(frame, [Userspace(pid=rig.pid, userdata=b"u")], key=md(1))
    percpu.set_worker(0)
    rig.dp.execute(frame, [Userspace(pid=rig.pid, userdata=b"v")], key=md(1))
    w0.poll()
    w1.poll()
    assert [(u.cmd, u.userdata) for u in w1.seen] == [
        (OVS_PACKET_CMD_MISS, None),
        (OVS_PACKET_CMD_ACTION, b"u"),
    ]
    assert [(u.cmd, u.userdata) for u in w0.seen] == [(OVS_PACKET_CMD_ACTION, b"v")]
    assert rig.rec.seen == []
    s = rig.stats()
    assert (s.n_missed, s.n_lost) == (1, 0)
    # Back to per-vport dispatch.
    rig.dp.set_per_cpu_pids([])
    rig.receive([frame])
    assert [u.cmd for u in rig.rec.seen] == [OVS_PACKET_CMD_MISS]


def test_per_worker_dispatch_more_workers_than_pids(two_workers: None) -> None:
    rig = Rig()
    only = Recorder(rig.dp)
    rig.dp.set_per_cpu_pids([only.portids[0]])
    percpu.set_worker(1)
    rig.receive([bytes(udp4())])
    only.poll()
    assert len(only.seen) == 1  # cpu 1 % 1 pid


# ---------------------------------------------------------------------------
# GSO before upcall


def tso_frame() -> Packet:
    return (
        Ether(src=MAC1, dst=MAC2)
        / IP(src="192.0.2.1", dst="198.51.100.2", id=500)
        / TCP(sport=4000, dport=80, seq=10, flags="PA")
        / (bytes(range(256)) * 10)
    )


def test_gso_tcp_segmented_before_upcall_with_the_same_key(rig: Rig) -> None:
    rig.p1.set_upcall_portids([rig.pid])
    p = tso_frame()
    frame = bytes(p)
    b = bytearray(frame)
    b[50:52] = b"\x12\x34"  # garbage: CHECKSUM_PARTIAL, finished by segmentation
    skb = SkBuff(
        bytes(b),
        gso_size=1000,
        gso_type=SKB_GSO_TCPV4,
        ip_summed=CHECKSUM_PARTIAL,
        csum_start=34,
        csum_offset=16,
    )
    rig.clear()
    rig.p1.receive([skb])
    rig.world.run()
    rig.rec.poll()
    ups = rig.rec.seen
    assert len(ups) == 3
    data = bytes(p[TCP].payload)
    for i, up in enumerate(ups):
        exp = p.copy()
        exp[TCP].remove_payload()
        exp[TCP].seq = 10 + 1000 * i
        exp[TCP].flags = "A" if i < 2 else "PA"
        exp[IP].id = 500 + i
        del exp[IP].len
        assert up.packet == bytes(exp / data[1000 * i : 1000 * (i + 1)])
        assert up.key == flow.extract(frame, 1)
    s = rig.stats()
    assert (s.n_missed, s.n_lost) == (1, 0)


def test_ufo_later_fragments_carry_frag_later(rig: Rig) -> None:
    rig.p1.set_upcall_portids([rig.pid])
    ip = IP(src="192.0.2.1", dst="198.51.100.2", id=77) / UDP(sport=1, dport=2) / (b"z" * 2500)
    frame = bytes(Ether(src=MAC1, dst=MAC2) / ip)
    rig.p1.receive([SkBuff(frame, gso_size=1000, gso_type=SKB_GSO_UDP)])
    rig.world.run()
    rig.rec.poll()
    ups = rig.rec.seen
    assert [u.packet for u in ups] == [
        bytes(Ether(src=MAC1, dst=MAC2) / f) for f in fragment(ip, 1000)
    ]
    first = ups[0].key
    assert key_get(first, "ip_frag") == flow.OVS_FRAG_TYPE_FIRST
    assert (key_get(first, "tp_src"), key_get(first, "tp_dst")) == (1, 2)
    for up in ups[1:]:
        assert key_get(up.key, "ip_frag") == flow.OVS_FRAG_TYPE_LATER
        assert up.key == flow.key_set(first, "ip_frag", flow.OVS_FRAG_TYPE_LATER)


def test_gso_upcall_failure_is_one_lost(rig: Rig) -> None:
    small = Recorder(rig.dp, depth=2)
    rig.p1.set_upcall_portids(small.portids)
    skb = SkBuff(bytes(tso_frame()), gso_size=1000, gso_type=SKB_GSO_TCPV4)
    rig.p1.receive([skb])
    small.poll()
    assert len(small.seen) == 2
    s = rig.stats()
    assert (s.n_missed, s.n_lost) == (1, 1)


def test_checksum_partial_is_finished_before_upcall(rig: Rig) -> None:
    rig.p1.set_upcall_portids([rig.pid])
    p = udp4()
    b = bytearray(bytes(p))
    b[40:42] = b"\x00\x00"
    # pseudo-header sum: addresses, protocol, UDP length
    s = sum(int.from_bytes(b[i : i + 2], "big") for i in range(26, 34, 2)) + 17 + len(b) - 34
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    b[40:42] = s.to_bytes(2, "big")
    rig.p1.receive([SkBuff(bytes(b), ip_summed=CHECKSUM_PARTIAL, csum_start=34, csum_offset=6)])
    rig.rec.poll()
    (up,) = rig.rec.seen
    assert up.packet == bytes(p)


def test_too_big_upcall_is_lost(rig: Rig) -> None:
    frame = bytes(udp4()) + b"\x00" * (MAX_UPCALL_PACKET + 1 - len(bytes(udp4())))
    rig.dp.execute(frame, [Userspace(pid=rig.pid)], key=md(1))
    rig.rec.poll()
    assert rig.rec.seen == [] and rig.stats().n_lost == 1
    ok = frame[:MAX_UPCALL_PACKET]
    rig.dp.execute(ok, [Userspace(pid=rig.pid)], key=md(1))
    rig.rec.poll()
    assert len(rig.rec.seen) == 1


# ---------------------------------------------------------------------------
# EXECUTE


def test_execute_takes_metadata_from_key_and_headers_from_packet(rig: Rig) -> None:
    frame = bytes(udp4())
    bogus = key_from_fields(ipv4_src=0x01020304, tp_dst=7, eth_type=0x86DD)
    key = bogus | md(2, priority=5, skb_mark=6, recirc_id=7, dp_hash=8)
    rig.dp.execute(frame, [Userspace(pid=rig.pid)], key=key)
    rig.rec.poll()
    (up,) = rig.rec.seen
    assert up.key == flow.extract(frame, 2, priority=5, skb_mark=6, recirc_id=7) | key_from_fields(
        dp_hash=8
    )
    s = rig.stats()
    assert (s.n_hit, s.n_missed, s.n_lost) == (0, 0, 0)


def test_execute_installs_nothing_and_counts_no_flow_stats(rig: Rig) -> None:
    f, _ = rig.dp.flow_put(key_from_fields(in_port=1), M_PORT, [Output(2)])
    rig.dp.execute(bytes(udp4()), [Output(3)], key=md(1))
    assert f.get_stats().packets == 0 and rig.stats().n_flows == 1


def test_execute_input_port_is_used_for_a_recirc_miss(rig: Rig) -> None:
    h2 = Recorder(rig.dp)
    rig.p2.set_upcall_portids(h2.portids)
    frame = bytes(udp4())
    rig.dp.execute(frame, [Recirc(9)], key=md(2))
    h2.poll()
    (up,) = h2.seen
    assert up.cmd == OVS_PACKET_CMD_MISS and up.key == flow.extract(frame, 2, recirc_id=9)
    # An unknown in_port runs the actions as if received on the local port.
    local = Recorder(rig.dp)
    rig.dp.ports[0].set_upcall_portids(local.portids)
    rig.dp.execute(frame, [Recirc(9)], key=md(77))
    local.poll()
    assert len(local.seen) == 1 and key_get(local.seen[0].key, "in_port") == 77


def test_execute_errors(rig: Rig) -> None:
    with pytest.raises(FlowError) as ei:
        rig.dp.execute(b"\x00" * 13, [Output(2)])
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(ActionError):
        rig.dp.execute(bytes(udp4()), [PushEth(1, 2)], key=md(1))


def test_execute_l3_packet(rig: Rig) -> None:
    ip = IP(src="192.0.2.1", dst="198.51.100.2") / UDP(sport=1, dport=2) / PAYLOAD
    out = rig.run(
        SkBuff(bytes(ip), protocol=0x0800),
        [
            PushEth(src=int(MAC1.replace(":", ""), 16), dst=int(MAC2.replace(":", ""), 16)),
            Output(2),
        ],
    )
    assert out[2] == [bytes(Ether(src=MAC1, dst=MAC2) / ip)]


def test_handler_execute_and_install(rig: Rig) -> None:
    frame = bytes(udp4())
    rig.rec.install_flow(key_from_fields(in_port=1), M_PORT, [Output(3)])
    rig.clear()
    rig.rec.execute(frame, md(1), [Output(2)])
    out = rig.sent()
    assert out[2] == [frame]
    assert rig.receive([frame])[3] == [frame]
