"""The raw-window cache: a frame's masked 48-byte window + length decides its
key for untagged IPv4 TCP/UDP, so the datapath may skip extraction."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from pyvswitch import flow
from pyvswitch.flow import RAW_MASKS, RAW_WINDOW, field_mask, key_from_fields, raw_min_len
from pyvswitch.uapi import OVS_PACKET_CMD_MISS, Output
from tests.conftest import Recorder, Topo


def window(data: bytes) -> int:
    return int.from_bytes(data[:RAW_WINDOW], "big") & RAW_MASKS[data[23]]


TEMPLATES = [
    bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / (b"u" * 30)),
    bytes(
        Ether()
        / IP(src="10.0.0.1", dst="10.0.0.2")
        / TCP(sport=3, dport=4, flags="PA")
        / (b"t" * 20)
    ),
    bytes(Ether() / IP() / TCP(options=[("MSS", 1460), ("NOP", None), ("NOP", None)])),
    bytes(Ether() / IP(flags="DF", ttl=3, tos=0x10) / UDP() / (b"x" * 40)),
]


@settings(max_examples=2000, deadline=None)
@given(
    st.sampled_from(TEMPLATES),
    st.lists(st.tuples(st.integers(0, 79), st.integers(0, 255)), max_size=4),
    st.integers(-40, 20),
)
def test_same_window_and_length_means_same_key(
    a: bytes, flips: list[tuple[int, int]], dlen: int
) -> None:
    min_len = raw_min_len(a)
    assert min_len  # every template is cacheable
    b = bytearray(a)
    for pos, val in flips:
        if pos < len(b):
            b[pos] = val
    if dlen < 0:
        del b[dlen:]
    else:
        b += bytes(dlen)
    bb = bytes(b)
    if len(bb) < RAW_WINDOW or not RAW_MASKS[bb[23]]:
        return  # the datapath would not consult the cache
    if window(bb) == window(a) and len(bb) >= min_len:
        assert flow.extract(bb, 1) == flow.extract(a, 1)


def test_not_cacheable() -> None:
    udp = TEMPLATES[0]
    frag = bytearray(udp)
    frag[20] |= 0x20  # MF
    assert raw_min_len(bytes(frag)) == 0
    opts = bytes(Ether() / IP(options=b"\x01\x01\x01\x00") / UDP() / (b"x" * 20))
    assert raw_min_len(opts) == 0
    assert raw_min_len(udp[:47]) == 0
    icmp = bytearray(udp)
    icmp[23] = 1
    assert raw_min_len(bytes(icmp)) == 0
    tcp = TEMPLATES[2]
    assert raw_min_len(tcp) == 14 + 20 + 28  # the TCP options must be there too


def test_datapath_uses_and_flushes_the_raw_cache(topo: Topo) -> None:
    dp = topo.dp
    frame = TEMPLATES[0]
    dp.flow_put(key_from_fields(in_port=1), field_mask("in_port"), [Output(2)])
    topo.h1.transmit("eth0", [frame] * 5)
    topo.world.run()
    raw = dp.table.raw_cache(1)
    assert len(raw) == 1 and topo.p2.get_stats().tx_packets == 5
    s = dp.get_stats()
    assert (s.n_hit, s.n_missed) == (5, 0)
    # a table change empties it; a new flow decides the next packets
    h = Recorder(dp)
    topo.p1.set_upcall_portids(h.portids)
    dp.flow_flush()
    assert raw == {}
    topo.h1.transmit("eth0", [frame])
    topo.world.run()
    h.poll()
    assert [u.cmd for u in h.seen] == [OVS_PACKET_CMD_MISS]
    assert h.seen[0].key == flow.extract(frame, 1)


def test_raw_hit_keeps_tcp_flags_and_truncation_semantics(topo: Topo) -> None:
    dp = topo.dp
    full = TEMPLATES[2]  # TCP with 8 bytes of options, SYN, ports 20 -> 80
    mask = (
        field_mask("in_port")
        | field_mask("eth_type")
        | field_mask("ip_proto")
        | field_mask("tp_src")
        | field_mask("tp_dst")
    )
    f, _ = dp.flow_put(
        key_from_fields(in_port=1, eth_type=0x0800, ip_proto=6, tp_src=20, tp_dst=80),
        mask,
        [Output(2)],
    )
    h = Recorder(dp)
    topo.p1.set_upcall_portids(h.portids)
    topo.h1.transmit("eth0", [full, full])
    topo.world.run()
    assert f.get_stats().packets == 2 and len(dp.table.raw_cache(1)) == 1
    assert f.get_stats().tcp_flags == 0x002  # SYN, from the slow and the raw path
    # The same window with the TCP options cut off: the key has no ports, so
    # it must miss this flow (a wrong raw-cache hit would match it).
    short = full[: len(full) - 4]
    topo.h1.transmit("eth0", [short])
    topo.world.run()
    h.poll()
    assert f.get_stats().packets == 2
    assert len(h.seen) == 1 and h.seen[0].key == flow.extract(short, 1)
    assert flow.key_get(h.seen[0].key, "tp_dst") == 0
