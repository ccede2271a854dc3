from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import GRE, Raw

from pyvswitch.wire import WireError
from pyvswitch.wire.gre import (
    FLAG_C,
    FLAG_K,
    FLAG_S,
    PROTO_TEB,
    GreHeader,
    gre64_header,
    gre64_tun_id,
    verify_checksum,
)

from . import assert_truncations_raise, h


def test_notes_template_key_and_seq() -> None:
    # notes section 7.1: gre((flags=0x3000,proto=0x6558),key=0x315,seq=0x0)
    hdr = GreHeader(PROTO_TEB, key=0x315, seq=0)
    assert hdr.flags == FLAG_K | FLAG_S == 0x3000
    assert hdr.emit() == h("3000 6558 00000315 00000000")
    assert hdr.header_len == 12


def test_minimal_and_key_only() -> None:
    assert GreHeader(0x0800).emit(b"\x45") == h("0000 0800 45")
    assert GreHeader(0x86DD, key=0xFFFFFFFF).emit() == h("2000 86dd ffffffff")


def test_checksum_hand_computed() -> None:
    # 8000 + 6558 + 0001 = 0xe559 -> ~ 0x1aa6
    out = GreHeader(PROTO_TEB, csum=True).emit(h("0001"))
    assert out == h("8000 6558 1aa6 0000 0001")
    assert out == bytes(GRE(chksum_present=1, proto=0x6558) / Raw(h("0001")))
    assert verify_checksum(out)
    assert not verify_checksum(out[:-1] + b"\x02")
    assert verify_checksum(GreHeader(1).emit(b"anything"))


def test_all_options_order() -> None:
    hdr = GreHeader(PROTO_TEB, key=0xAABBCCDD, seq=0x01020304, csum=True, checksum=0x1234)
    assert hdr.emit() == h("b000 6558 1234 0000 aabbccdd 01020304")
    assert GreHeader.parse(hdr.emit()) == hdr


def test_matches_scapy_with_checksum_key_seq() -> None:
    payload = bytes(range(33))
    pkt = GRE(
        chksum_present=1,
        key_present=1,
        seqnum_present=1,
        proto=0x6558,
        key=0x315,
        sequence_number=7,
    ) / Raw(payload)
    raw = bytes(pkt)
    ours = GreHeader(PROTO_TEB, key=0x315, seq=7, csum=True).emit(payload)
    assert ours == raw
    parsed = GreHeader.parse(raw)
    assert parsed.checksum == int.from_bytes(raw[4:6], "big") and parsed.csum
    assert (parsed.key, parsed.seq) == (0x315, 7)


def test_rejects_routing_and_version() -> None:
    with pytest.raises(WireError, match="routing"):
        GreHeader.parse(h("4000 6558 00000000"))
    with pytest.raises(WireError, match="version"):
        GreHeader.parse(h("2001 880b 00000000"))  # PPTP enhanced GRE


def test_reserved0_round_trips() -> None:
    hdr = GreHeader.parse(h("2008 6558 00000001"))
    assert hdr.reserved0 == 1 and hdr.key == 1
    assert hdr.emit() == h("2008 6558 00000001")


def test_checksum_without_csum_rejected() -> None:
    with pytest.raises(ValueError):
        GreHeader(PROTO_TEB, checksum=5)


def test_truncation() -> None:
    full = GreHeader(PROTO_TEB, key=1, seq=2, csum=True).emit()
    assert_truncations_raise(GreHeader.parse, full)
    assert_truncations_raise(GreHeader.parse, GreHeader(PROTO_TEB, key=1).emit())


# --- GRE64 ---------------------------------------------------------------------


def test_gre64_layout() -> None:
    hdr = gre64_header(0x1122334455667788)
    assert hdr.emit() == h("3000 6558 55667788 11223344")
    assert gre64_tun_id(GreHeader.parse(hdr.emit())) == 0x1122334455667788
    with_csum = gre64_header(0x1122334455667788, csum=True, protocol=0x0800)
    out = with_csum.emit()
    assert out[:2] == h("b000") and out[2:4] == h("0800") and len(out) == 16
    assert out[8:] == h("55667788 11223344")
    assert gre64_tun_id(GreHeader(PROTO_TEB, key=5)) is None
    with pytest.raises(ValueError):
        gre64_header(1 << 64)


@given(st.integers(0, (1 << 64) - 1))
def test_gre64_round_trip(tun_id: int) -> None:
    hdr = GreHeader.parse(gre64_header(tun_id).emit())
    assert hdr.flags & (FLAG_K | FLAG_S) == FLAG_K | FLAG_S and not hdr.flags & FLAG_C
    assert gre64_tun_id(hdr) == tun_id


gre_headers = st.builds(
    GreHeader,
    protocol=st.integers(0, 0xFFFF),
    key=st.none() | st.integers(0, (1 << 32) - 1),
    seq=st.none() | st.integers(0, (1 << 32) - 1),
    csum=st.booleans(),
)


@given(gre_headers, st.binary(max_size=31))
def test_round_trip(hdr: GreHeader, payload: bytes) -> None:
    out = hdr.emit(payload)
    assert verify_checksum(out)
    parsed = GreHeader.parse(b"ab" + out, 2)
    assert dataclasses.replace(parsed, checksum=None) == hdr
    assert len(out) == parsed.header_len + len(payload)
    assert parsed.emit(payload) == out


@settings(max_examples=40, deadline=None)
@given(gre_headers, st.binary(max_size=31))
def test_matches_scapy(hdr: GreHeader, payload: bytes) -> None:
    kwargs: dict[str, int] = {"proto": hdr.protocol, "chksum_present": int(hdr.csum)}
    if hdr.key is not None:
        kwargs |= {"key_present": 1, "key": hdr.key}
    if hdr.seq is not None:
        kwargs |= {"seqnum_present": 1, "sequence_number": hdr.seq}
    assert hdr.emit(payload) == bytes(GRE(**kwargs) / Raw(payload))
