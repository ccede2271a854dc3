from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import IP, UDP, Raw
from scapy.layers.inet import in4_chksum
from scapy.layers.inet6 import IPv6, in6_chksum

from pyvswitch.wire.checksum import (
    checksum,
    crc32c,
    csum_fold,
    csum_partial,
    csum_replace2,
    csum_replace4,
    csum_replace_bytes,
    pseudo_ipv4,
    pseudo_ipv6,
)

from . import h


def _norm(c: int) -> int:
    """0x0000 and 0xFFFF are the same ones-complement number (+0 / -0)."""
    return 0 if c == 0xFFFF else c


# --- CRC32c known answers (iSCSI / RFC 3720 B.4 and the "check" value) ---------


@pytest.mark.parametrize(
    ("data", "crc"),
    [
        (b"123456789", 0xE3069283),
        (b"", 0x00000000),
        (bytes(32), 0x8A9136AA),
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
    ],
)
def test_crc32c_known_answers(data: bytes, crc: int) -> None:
    assert crc32c(data) == crc


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_crc32c_chains(a: bytes, b: bytes) -> None:
    assert crc32c(b, crc32c(a)) == crc32c(a + b)


# --- Internet checksum ---------------------------------------------------------


def test_rfc1071_example() -> None:
    # RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to 0x2ddf0, folds to 0xddf2.
    data = h("0001 f203 f4f5 f6f7")
    assert csum_fold(csum_partial(data)) == 0xDDF2
    assert csum_fold(0x2DDF0) == 0xDDF2
    assert checksum(data) == 0x220D


def test_ones_complement_zero_forms() -> None:
    # A non-zero sum that is a multiple of 0xFFFF is 0xFFFF ("-0"), checksum 0;
    # all-zero data sums to 0, checksum 0xFFFF.
    assert csum_fold(csum_partial(h("ffff"))) == 0xFFFF and checksum(h("ffff")) == 0
    assert csum_fold(csum_partial(h("8000 7fff"))) == 0xFFFF
    assert csum_partial(bytes(6)) == 0 and checksum(bytes(6)) == 0xFFFF
    assert csum_fold(csum_partial(h("01"))) == 0x0100  # odd byte is the high byte


def test_ipv4_header_checksum_known_answer() -> None:
    header = h("4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7")
    assert checksum(header) == 0xB861


def test_odd_length_pads_with_zero() -> None:
    assert csum_partial(b"\x01") == 0x0100
    assert csum_partial(h("0102 03")) == 0x0102 + 0x0300
    assert checksum(h("0102 03")) == ~(0x0102 + 0x0300) & 0xFFFF


def test_fold_multiple_carries() -> None:
    assert csum_fold(0) == 0
    assert csum_fold(0xFFFF) == 0xFFFF
    assert csum_fold(0x1FFFE) == 0xFFFF
    assert csum_fold(0xFFFFFFFF) == 0xFFFF
    assert csum_fold(0x12345678) == 0x1234 + 0x5678


def test_accumulator_is_added() -> None:
    assert csum_partial(h("0001"), 0x10) == 0x11


def test_pseudo_ipv4_hand_computed() -> None:
    # 0a00 + 0001 + 0a00 + 0002 + 0011 + 0008
    assert pseudo_ipv4(0x0A000001, 0x0A000002, 17, 8) == 0x141C


def test_pseudo_ipv6_hand_computed() -> None:
    # ::1 and ::2 contribute 1 and 2; 32-bit length split in two words.
    assert pseudo_ipv6(1, 2, 58, 8) == 1 + 2 + 8 + 58
    assert pseudo_ipv6(1 << 127, 0, 17, 0x12345) == 0x8000 + 0x1 + 0x2345 + 17


def test_pseudo_headers_match_scapy() -> None:
    udp4 = bytes(UDP(sport=1, dport=2, chksum=0) / Raw(b"hello"))
    expected4 = in4_chksum(17, IP(src="10.1.2.3", dst="192.0.2.77"), udp4)
    assert checksum(udp4, pseudo_ipv4(0x0A010203, 0xC000024D, 17, len(udp4))) == expected4
    udp6 = bytes(UDP(sport=1, dport=2, chksum=0) / Raw(b"hello!"))
    ip6 = IPv6(src="2001:db8::1", dst="fe80::abcd:1")
    expected6 = in6_chksum(17, ip6 / UDP(), udp6)
    src = 0x20010DB8000000000000000000000001
    dst = 0xFE80_0000_0000_0000_0000_0000_ABCD_0001
    assert checksum(udp6, pseudo_ipv6(src, dst, 17, len(udp6))) == expected6


# --- Incremental updates (RFC 1624) --------------------------------------------


def test_csum_replace2_ttl_decrement_matches_recompute() -> None:
    header = bytearray(h("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7"))
    # TTL 64 -> 63: word 8-9 changes 0x4011 -> 0x3f11.
    new = csum_replace2(0xB861, 0x4011, 0x3F11)
    header[8] = 63
    header[10:12] = b"\x00\x00"
    assert new == checksum(bytes(header)) == 0xB961


@given(
    st.binary(min_size=8, max_size=64).filter(lambda b: len(b) % 2 == 0),
    st.data(),
)
def test_csum_replace_bytes_matches_recompute(data: bytes, draw: st.DataObject) -> None:
    words = len(data) // 2
    start = draw.draw(st.integers(0, words - 1)) * 2
    size = draw.draw(st.integers(1, (len(data) - start) // 2)) * 2
    new_part = draw.draw(st.binary(min_size=size, max_size=size))
    new_data = data[:start] + new_part + data[start + size :]
    updated = csum_replace_bytes(checksum(data), data[start : start + size], new_part)
    assert _norm(updated) == _norm(checksum(new_data))


@given(st.binary(min_size=8, max_size=40).filter(lambda b: len(b) % 4 == 0), st.data())
def test_csum_replace4_and_2_match_recompute(data: bytes, draw: st.DataObject) -> None:
    pos = draw.draw(st.integers(0, len(data) // 4 - 1)) * 4
    new = draw.draw(st.integers(0, 0xFFFFFFFF))
    old = int.from_bytes(data[pos : pos + 4], "big")
    new_data = data[:pos] + new.to_bytes(4, "big") + data[pos + 4 :]
    assert _norm(csum_replace4(checksum(data), old, new)) == _norm(checksum(new_data))
    hi_old, hi_new = old >> 16, new >> 16
    half = data[:pos] + hi_new.to_bytes(2, "big") + data[pos + 2 :]
    assert _norm(csum_replace2(checksum(data), hi_old, hi_new)) == _norm(checksum(half))


def test_csum_replace_bytes_length_mismatch() -> None:
    with pytest.raises(ValueError):
        csum_replace_bytes(0, b"\x00\x00", b"\x00")


def test_replace_matches_scapy_after_address_rewrite() -> None:
    pkt = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000, dport=2000) / Raw(b"payload!")
    raw = bytes(pkt)
    old_ip, old_udp = int.from_bytes(raw[10:12], "big"), int.from_bytes(raw[26:28], "big")
    new_src = bytes([172, 16, 5, 9])
    rebuilt = bytes(
        IP(src="172.16.5.9", dst="10.0.0.2") / UDP(sport=1000, dport=2000) / Raw(b"payload!")
    )
    assert csum_replace_bytes(old_ip, raw[12:16], new_src) == int.from_bytes(rebuilt[10:12], "big")
    assert csum_replace_bytes(old_udp, raw[12:16], new_src) == int.from_bytes(rebuilt[26:28], "big")
