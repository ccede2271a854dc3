"""Capture files and pyvswitch parse-pcap."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap, wrpcapng

from pyvswitch import flow
from pyvswitch.pcap import PcapError, parse_pcap_lines, read_pcap, write_pcap

FRAMES = [
    bytes(Ether(src="00:01:02:03:04:05", dst="10:11:12:13:14:15") / IP() / UDP(sport=i, dport=9))
    for i in range(1, 4)
]


def test_classic_pcap_written_by_scapy(tmp_path: Path) -> None:
    p = tmp_path / "a.pcap"
    wrpcap(str(p), [Ether(f) for f in FRAMES])
    pkts = list(read_pcap(p))
    assert [x.data for x in pkts] == FRAMES and all(x.linktype == 1 for x in pkts)


def test_pcapng_written_by_scapy(tmp_path: Path) -> None:
    p = tmp_path / "a.pcapng"
    wrpcapng(str(p), [Ether(f) for f in FRAMES])
    assert [x.data for x in read_pcap(p)] == FRAMES


def test_big_endian_nanosecond_pcap(tmp_path: Path) -> None:
    p = tmp_path / "be.pcap"
    hdr = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    rec = struct.pack(">IIII", 5, 500_000_000, len(FRAMES[0]), 100) + FRAMES[0]
    p.write_bytes(hdr + rec)
    (pkt,) = list(read_pcap(p))
    assert pkt.data == FRAMES[0] and pkt.orig_len == 100 and pkt.timestamp == pytest.approx(5.5)


def test_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"hello world, not a capture")
    with pytest.raises(PcapError, match="not a pcap"):
        list(read_pcap(bad))
    p = tmp_path / "trunc.pcap"
    write_pcap(p, FRAMES[:1])
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(PcapError, match="truncated"):
        list(read_pcap(p))


def test_parse_pcap_lines_one_per_packet(tmp_path: Path) -> None:
    p = tmp_path / "k.pcap"
    write_pcap(p, [*FRAMES, b"\x00" * 6])
    lines = list(parse_pcap_lines(p, in_port=4))
    assert len(lines) == 4
    for i, line in enumerate(lines[:3], 1):
        assert "in_port(4)" in line and f"udp(src={i},dst=9)" in line
        assert "eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15)" in line
    assert "too short" in lines[3]
    # what is printed is the key the extractor builds
    from pyvswitch.odp import parse_flow

    parsed = parse_flow(lines[0])
    assert parsed.key == flow.extract(FRAMES[0], 4)
