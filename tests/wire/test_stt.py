"""STT: scapy has no STT layer; the frame header is checked against byte vectors
from the OVS layout (struct stthdr + STT_ETH_PAD), the outer header against scapy TCP."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import IP, TCP, Raw

from pyvswitch.wire import WireError
from pyvswitch.wire.ipv4 import IPv4Header
from pyvswitch.wire.stt import (
    FLAG_CSUM_PARTIAL,
    FLAG_IPV4,
    FLAG_TCP,
    HEADER_LEN,
    TCP_PORT,
    SttHeader,
    SttReassembler,
    make_seq,
    split_seq,
    stt_segment,
    stt_tcp_header,
    stt_tcp_segments,
)
from pyvswitch.wire.tcp import ACK, PSH, verify_checksum

from . import assert_truncations_raise, h

HDR = SttHeader(
    context_id=0x0102030405060708,
    flags=FLAG_CSUM_PARTIAL | FLAG_IPV4 | FLAG_TCP,
    l4_offset=34,
    mss=1448,
    vlan_tci=0x1000 | 100,
)
HDR_BYTES = h("00 0e 22 00 05a8 1064 0102030405060708 0000")


def test_exact_bytes() -> None:
    assert HEADER_LEN == 18  # 16 bytes of fields + 2 bytes of padding
    assert HDR.emit(b"\xff") == HDR_BYTES + b"\xff"
    assert SttHeader.parse(HDR_BYTES) == HDR
    assert HDR.vlan_present and HDR.csum_partial


def test_version_and_truncation() -> None:
    with pytest.raises(WireError, match="version"):
        SttHeader.parse(b"\x01" + HDR_BYTES[1:])
    assert_truncations_raise(SttHeader.parse, HDR_BYTES)


@given(
    st.integers(0, (1 << 64) - 1),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 255),
)
def test_round_trip(ctx: int, flags: int, l4: int, mss: int, tci: int, res: int) -> None:
    hdr = SttHeader(ctx, flags, l4, mss, tci, res)
    out = hdr.emit(b"inner")
    assert len(out) == 18 + 5 and out[16:18] == b"\x00\x00"
    assert SttHeader.parse(b"..." + out, 3) == hdr


# --- segmentation ------------------------------------------------------------------


def _frame(inner_len: int) -> bytes:
    return SttHeader(0xABC).emit(bytes(i & 0xFF for i in range(inner_len)))


def test_seq_encoding() -> None:
    assert make_seq(3000, 1400) == 0x0BB80578
    assert split_seq(0x0BB80578) == (3000, 1400)
    with pytest.raises(ValueError):
        make_seq(0x10000, 0)
    with pytest.raises(ValueError):
        make_seq(100, 100)


def test_segment_pieces() -> None:
    frame = _frame(3000 - 18)
    pieces = stt_segment(frame, 1400)
    assert [seq for seq, _ in pieces] == [0x0BB80000, 0x0BB80578, 0x0BB80AF0]
    assert [len(p) for _, p in pieces] == [1400, 1400, 200]
    assert b"".join(p for _, p in pieces) == frame
    assert stt_segment(_frame(10), 1400) == [(28 << 16, _frame(10))]
    with pytest.raises(ValueError):
        stt_segment(bytes(0x10000), 1400)
    with pytest.raises(ValueError):
        stt_segment(frame, 0)


def test_outer_tcp_segments_match_scapy() -> None:
    ip = IPv4Header(src=0xC0A80101, dst=0xC0A80102, proto=6)
    frame = _frame(2000)
    segs = stt_tcp_segments(frame, 1460, src_port=0xC123, packet_id=0xABCDEF01, ip=ip)
    assert len(segs) == 2
    for i, (seg, (seq, piece)) in enumerate(zip(segs, stt_segment(frame, 1460), strict=True)):
        last = i == 1
        expected = (
            IP(src="192.168.1.1", dst="192.168.1.2")
            / TCP(
                sport=0xC123,
                dport=7471,
                seq=seq,
                ack=0xABCDEF01,
                flags="PA" if last else "A",
                window=65535,
            )
            / Raw(piece)
        )
        assert seg == bytes(expected)[20:]
        assert verify_checksum(seg, ip)
    assert segs[0][13] == ACK and segs[1][13] == ACK | PSH


def test_stt_tcp_header_fields() -> None:
    hdr = stt_tcp_header(1, TCP_PORT, make_seq(100, 0), 7)
    assert (hdr.ack, hdr.window, hdr.flags, hdr.header_len) == (7, 0xFFFF, ACK | PSH, 20)


# --- reassembly ----------------------------------------------------------------------

SRC, DST = 0x0A000001, 0x0A000002


def test_reassemble_in_order_and_reverse() -> None:
    frame = _frame(4000)
    pieces = stt_segment(frame, 1000)
    r = SttReassembler()
    results = [r.add(SRC, DST, 1, seq, p) for seq, p in pieces]
    assert results[:-1] == [None] * (len(pieces) - 1) and results[-1] == frame
    assert len(r) == 0 and r.mem_used == 0
    results = [r.add(SRC, DST, 2, seq, p) for seq, p in reversed(pieces)]
    assert results[-1] == frame and results.count(None) == len(pieces) - 1


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3000), st.integers(50, 900), st.randoms(use_true_random=False))
def test_reassemble_any_order(inner: int, mss: int, rnd: object) -> None:
    frame = _frame(inner)
    pieces = stt_segment(frame, mss)
    rnd.shuffle(pieces)  # type: ignore[attr-defined]
    r = SttReassembler()
    out = [r.add(SRC, DST, 9, seq, p) for seq, p in pieces]
    assert out[-1] == frame and all(o is None for o in out[:-1])


def test_single_segment_bypasses_state() -> None:
    frame = _frame(100)
    r = SttReassembler(max_entries=1)
    assert r.add(SRC, DST, 1, make_seq(len(frame), 0), frame) == frame
    assert len(r) == 0


def test_drops_overlaps_and_out_of_range() -> None:
    frame = _frame(3000)
    tot = len(frame)
    r = SttReassembler()
    assert r.add(SRC, DST, 5, make_seq(tot, 0), frame[:1400]) is None
    # overlaps the first piece
    assert r.add(SRC, DST, 5, make_seq(tot, 1000), frame[1000:2400]) is None
    # duplicate of the first piece
    assert r.add(SRC, DST, 5, make_seq(tot, 0), frame[:1400]) is None
    # ends beyond the frame
    assert r.add(SRC, DST, 5, make_seq(tot, 2800), frame[2800:] + b"xx") is None
    # empty
    assert r.add(SRC, DST, 5, make_seq(tot, 10), b"") is None
    # different total length for the same packet id
    assert r.add(SRC, DST, 5, make_seq(tot + 4, 1400), frame[1400:2800]) is None
    assert r.dropped == 5
    # piece that would overlap the *next* one
    assert r.add(SRC, DST, 5, make_seq(tot, 2800), frame[2800:]) is None
    assert r.add(SRC, DST, 5, make_seq(tot, 1300), frame[1300:2900]) is None
    assert r.dropped == 6
    assert r.add(SRC, DST, 5, make_seq(tot, 1400), frame[1400:2800]) == frame


def test_keyed_by_src_dst_packet_id() -> None:
    a, b = _frame(500), _frame(600)
    pa, pb = stt_segment(a, 300), stt_segment(b, 300)
    r = SttReassembler()
    assert r.add(SRC, DST, 1, *pa[0]) is None
    assert r.add(DST, SRC, 1, *pb[0]) is None  # same id, other direction
    assert r.add(SRC, DST, 2, *pb[0]) is None  # same addresses, other id
    assert len(r) == 3
    assert r.add(SRC, DST, 1, *pa[1]) == a
    assert r.add(DST, SRC, 1, *pb[1]) is None
    assert r.add(DST, SRC, 1, *pb[2]) == b


def test_max_entries_evicts_least_recent() -> None:
    r = SttReassembler(max_entries=2)
    frames = [_frame(500 + i) for i in range(3)]
    pieces = [stt_segment(f, 300) for f in frames]
    for i in range(3):
        assert r.add(SRC, DST, i, *pieces[i][0]) is None
    assert len(r) == 2 and r.evicted == 1
    # frame 0 was evicted: its second piece starts a fresh, incomplete entry
    assert r.add(SRC, DST, 0, *pieces[0][1]) is None
    assert r.add(SRC, DST, 2, *pieces[2][1]) == frames[2]


def test_expiry_with_fake_clock() -> None:
    now = [0.0]
    r = SttReassembler(timeout=30.0, clock=lambda: now[0])
    frame = _frame(500)
    first, second = stt_segment(frame, 300)
    assert r.add(SRC, DST, 1, *first) is None
    now[0] = 29.0
    other = stt_segment(_frame(700), 300)
    assert r.add(SRC, DST, 2, *other[0]) is None
    now[0] = 31.0
    assert r.add(SRC, DST, 1, *second) is None  # first piece too old
    assert r.expired == 1
    assert r.expire() == 0  # id 2 is 2 s old, the new id-1 entry 0 s
    now[0] = 60.0
    assert r.expire() == 1 and len(r) == 1  # id 2 (31 s), not the id-1 entry (29 s)
    now[0] = 61.0
    assert r.expire() == 1 and len(r) == 0 and r.mem_used == 0


def test_memory_bound() -> None:
    r = SttReassembler(max_bytes=2500, low_bytes=1000)
    f1, f2 = _frame(3000), _frame(3000)
    assert r.add(SRC, DST, 1, make_seq(len(f1), 0), f1[:1500]) is None
    assert r.mem_used == 1500
    assert r.add(SRC, DST, 2, make_seq(len(f2), 0), f2[:1500]) is None
    assert r.evicted == 1 and len(r) == 1 and r.mem_used == 1500


def test_parse_reassembled_frame() -> None:
    inner = bytes(range(200)) * 5
    frame = dataclasses.replace(HDR, mss=0).emit(inner)
    r = SttReassembler()
    out = None
    for seq, piece in stt_segment(frame, 256):
        out = r.add(SRC, DST, 77, seq, piece)
    assert out is not None
    assert SttHeader.parse(out) == dataclasses.replace(HDR, mss=0)
    assert out[HEADER_LEN:] == inner
