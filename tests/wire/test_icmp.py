from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import ICMP, IP, Raw

from pyvswitch.wire import WireError
from pyvswitch.wire.icmp import (
    TYPE_ECHO_REPLY,
    TYPE_ECHO_REQUEST,
    IcmpHeader,
    echo_reply_for,
    verify_checksum,
)

from . import assert_truncations_raise, h

# 0800 + 1234 + 0001 + 6162 + 6364 = 0xdefb -> checksum 0x2104
REQUEST_BYTES = h("08 00 2104 1234 0001 61626364")
# type 0: sum drops by 0x0800 -> 0xd6fb -> checksum 0x2904
REPLY_BYTES = h("00 00 2904 1234 0001 61626364")


def test_echo_request_exact_bytes() -> None:
    assert IcmpHeader.echo_request(0x1234, 1).emit(b"abcd") == REQUEST_BYTES


def test_matches_scapy() -> None:
    assert bytes(ICMP(type=8, id=0x1234, seq=1) / Raw(b"abcd")) == REQUEST_BYTES
    assert bytes(ICMP(type=0, id=0x1234, seq=1) / Raw(b"abcd")) == REPLY_BYTES
    other = bytes(ICMP(type=3, code=3, unused=0) / Raw(bytes(28)))
    hdr = IcmpHeader.parse(other)
    assert (hdr.type, hdr.code, hdr.checksum) == (3, 3, ICMP(other).chksum)
    assert dataclasses.replace(hdr, checksum=None).emit(other[8:]) == other


def test_parse_fields() -> None:
    hdr = IcmpHeader.parse(REQUEST_BYTES)
    assert hdr == IcmpHeader(TYPE_ECHO_REQUEST, 0, 0x12340001, 0x2104)
    assert (hdr.ident, hdr.seq, hdr.is_echo) == (0x1234, 1, True)
    assert verify_checksum(REQUEST_BYTES)
    assert not verify_checksum(REQUEST_BYTES[:-1] + b"e")


def test_echo_reply_for() -> None:
    assert echo_reply_for(REQUEST_BYTES) == REPLY_BYTES
    with pytest.raises(WireError):
        echo_reply_for(REPLY_BYTES)


def test_echo_reply_for_scapy_ping() -> None:
    ping = IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(id=77, seq=5) / Raw(b"x" * 57)
    reply = echo_reply_for(bytes(ping[ICMP]))
    parsed = ICMP(reply)
    assert (parsed.type, parsed.id, parsed.seq, bytes(parsed.payload)) == (0, 77, 5, b"x" * 57)
    del parsed.chksum
    assert ICMP(bytes(parsed)).chksum == IcmpHeader.parse(reply).checksum


def test_truncation() -> None:
    assert_truncations_raise(IcmpHeader.parse, REQUEST_BYTES, upto=8)
    with pytest.raises(WireError):
        verify_checksum(REQUEST_BYTES[:7])


@given(
    st.integers(0, 255), st.integers(0, 255), st.integers(0, (1 << 32) - 1), st.binary(max_size=33)
)
def test_round_trip(type_: int, code: int, rest: int, payload: bytes) -> None:
    hdr = IcmpHeader(type_, code, rest)
    out = hdr.emit(payload)
    assert verify_checksum(out)
    parsed = IcmpHeader.parse(out)
    assert dataclasses.replace(parsed, checksum=None) == hdr
    assert parsed.emit(payload) == out


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from([TYPE_ECHO_REQUEST, TYPE_ECHO_REPLY]),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.binary(max_size=33),
)
def test_echo_checksum_vs_scapy(type_: int, ident: int, seq: int, payload: bytes) -> None:
    ours = IcmpHeader(type_, 0, ident << 16 | seq).emit(payload)
    assert ours == bytes(ICMP(type=type_, id=ident, seq=seq) / Raw(payload))
