"""LISP: scapy ships no LISP layer, so these use byte vectors from notes section 7.4."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import IP, UDP, Raw

from pyvswitch.wire.lisp import FLAG_I, FLAG_L, LispHeader

from . import assert_truncations_raise, h


def test_ovs_transmit_form() -> None:
    # notes: on the wire `48 00 00 00 ii ii ii 01`
    hdr = LispHeader.make(0x123456)
    assert hdr.emit(b"\x45") == h("48 000000 123456 01 45")
    assert hdr.flags == FLAG_L | FLAG_I == 0x48


def test_make_uses_low_24_bits() -> None:
    assert LispHeader.make(0xFF_ABCDEF).emit() == h("48 000000 abcdef 01")


def test_parse_reports_instance_id() -> None:
    hdr = LispHeader.parse(h("48 000000 abcdef 01"))
    assert hdr.has_instance_id and hdr.tun_id == 0xABCDEF and hdr.lsb == 1
    assert hdr == LispHeader.make(0xABCDEF)


def test_parse_without_i_bit_maps_to_zero() -> None:
    # N bit + nonce, no I bit: the last word is all locator status bits.
    hdr = LispHeader.parse(h("80 a1b2c3 00000003"))
    assert not hdr.has_instance_id and hdr.tun_id == 0
    assert (hdr.nonce, hdr.instance_id, hdr.lsb) == (0xA1B2C3, 0, 3)
    assert hdr.emit() == h("80 a1b2c3 00000003")


def test_inside_udp_built_by_scapy() -> None:
    raw = bytes(
        IP(src="1.1.1.1", dst="2.2.2.2")
        / UDP(sport=5000, dport=4341)
        / Raw(h("48 000000 000315 01"))
        / Raw(b"\x45" + bytes(19))
    )
    assert LispHeader.parse(raw, 28).tun_id == 0x315


def test_truncation_and_ranges() -> None:
    assert_truncations_raise(LispHeader.parse, h("48 000000 123456 01"))
    with pytest.raises(ValueError):
        LispHeader(1 << 24)


@given(
    st.integers(0, (1 << 24) - 1),
    st.integers(0, 255),
    st.integers(0, (1 << 24) - 1),
    st.integers(0, 255),
)
def test_round_trip(iid: int, flags: int, nonce: int, lsb: int) -> None:
    hdr = LispHeader(iid, flags, nonce, lsb)
    assert LispHeader.parse(b"\x00\x00" + hdr.emit(), 2) == hdr
