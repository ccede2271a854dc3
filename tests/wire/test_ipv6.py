from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import (
    UDP,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Raw,
)

from pyvswitch.wire import WireError
from pyvswitch.wire.ipv6 import (
    NEXTHDR_AH,
    NEXTHDR_DEST,
    NEXTHDR_FRAGMENT,
    NEXTHDR_HOP,
    NEXTHDR_ROUTING,
    ExtHeader,
    FragmentHeader,
    IPv6Header,
    ip6_from_str,
    ip6_to_str,
    walk_ext_headers,
)

from . import assert_truncations_raise, h

SRC = 0x20010DB8_00000000_00000000_00000001
DST = 0x20010DB8_00000000_00000000_00000002
HDR = IPv6Header(SRC, DST, next_header=58, hop_limit=255, traffic_class=0xB8, flow_label=0x12345)
HDR_BYTES = h(
    "6b812345 0004 3a ff 20010db8000000000000000000000001 20010db8000000000000000000000002"
)


def test_emit_exact_bytes() -> None:
    assert HDR.emit(b"abcd") == HDR_BYTES + b"abcd"


def test_parse_exact_bytes() -> None:
    assert IPv6Header.parse(HDR_BYTES) == dataclasses.replace(HDR, payload_len=4)


def test_matches_scapy() -> None:
    pkt = IPv6(tc=0xB8, fl=0x12345, nh=58, hlim=255, src="2001:db8::1", dst="2001:db8::2")
    raw = bytes(pkt / Raw(b"abcd"))
    assert raw == HDR.emit(b"abcd")
    assert IPv6Header.parse(raw).payload_len == 4


def test_version_and_truncation() -> None:
    with pytest.raises(WireError, match="version"):
        IPv6Header.parse(b"\x40" + HDR_BYTES[1:])
    assert_truncations_raise(IPv6Header.parse, HDR_BYTES)


def test_addr_strings() -> None:
    assert ip6_from_str("2001:db8::1") == SRC
    assert ip6_to_str(DST) == "2001:db8::2"


@given(
    st.integers(0, (1 << 128) - 1),
    st.integers(0, (1 << 128) - 1),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, (1 << 20) - 1),
    st.binary(max_size=30),
)
def test_round_trip(src: int, dst: int, nh: int, hl: int, tc: int, fl: int, payload: bytes) -> None:
    hdr = IPv6Header(src, dst, nh, hl, tc, fl)
    parsed = IPv6Header.parse(b"zz" + hdr.emit(payload), 2)
    assert parsed == dataclasses.replace(hdr, payload_len=len(payload))


# --- extension headers -----------------------------------------------------------


def test_fragment_header_vector() -> None:
    frag = FragmentHeader(next_header=59, offset=3, more=True, ident=7)
    assert frag.emit() == h("3b 00 0019 00000007")  # 3 << 3 | M
    assert frag.emit() == bytes(IPv6ExtHdrFragment(nh=59, offset=3, m=1, id=7))
    assert FragmentHeader.parse(h("11 00 fff8 deadbeef")) == FragmentHeader(
        17, 0x1FFF, False, 0xDEADBEEF
    )
    assert_truncations_raise(FragmentHeader.parse, frag.emit())


def test_generic_ext_header_vector() -> None:
    hop = ExtHeader(NEXTHDR_HOP, next_header=17, data=h("0104 00000000"))  # PadN
    assert hop.emit() == h("11 00 0104 00000000")
    assert hop.emit() == bytes(IPv6ExtHdrHopByHop(nh=17))
    dest = ExtHeader(NEXTHDR_DEST, 6, bytes(14))
    assert dest.emit()[:2] == h("06 01") and dest.header_len == 16
    assert ExtHeader.parse(dest.emit(), 0, NEXTHDR_DEST) == dest
    assert_truncations_raise(lambda b, o=0: ExtHeader.parse(b, o, NEXTHDR_DEST), dest.emit())


def test_ah_length_in_4_byte_units() -> None:
    # AH: next header, payload len = (24 / 4) - 2 = 4, reserved, SPI, seq, 12-byte ICV.
    data = h("0000 00000100 00000002") + bytes(range(12))
    ah = ExtHeader(NEXTHDR_AH, 17, data)
    assert ah.emit() == h("11 04 0000 00000100 00000002 000102030405060708090a0b")
    assert ExtHeader.parse(ah.emit(), 0, NEXTHDR_AH) == ah
    with pytest.raises(ValueError):
        ExtHeader(NEXTHDR_AH, 17, bytes(4))  # 6 bytes, not a multiple of 4
    with pytest.raises(ValueError):
        ExtHeader(NEXTHDR_HOP, 17, bytes(10))  # 12 bytes, not a multiple of 8


def test_walk_chain_built_by_scapy() -> None:
    pkt = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=["2001:db8::3"])
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrFragment(offset=0, m=1, id=99)
        / UDP(sport=1, dport=2)
    )
    raw = bytes(pkt)
    hdr = IPv6Header.parse(raw)
    assert hdr.next_header == NEXTHDR_HOP
    walk = walk_ext_headers(raw, 40, hdr.next_header)
    # hop 8, routing 8 + 16, dest 8, fragment 8
    assert [(t, o, n) for t, o, n in walk.headers] == [
        (NEXTHDR_HOP, 40, 8),
        (NEXTHDR_ROUTING, 48, 24),
        (NEXTHDR_DEST, 72, 8),
        (NEXTHDR_FRAGMENT, 80, 8),
    ]
    assert (walk.next_header, walk.offset) == (17, 88)
    assert walk.fragment == FragmentHeader(17, 0, True, 99)
    assert walk.is_fragment and not walk.later_fragment
    assert raw[walk.offset : walk.offset + 4] == h("0001 0002")


def test_walk_stops_after_later_fragment() -> None:
    raw = bytes(
        IPv6(src="::1", dst="::2") / IPv6ExtHdrFragment(offset=10, m=0, id=1, nh=60) / Raw(bytes(8))
    )
    walk = walk_ext_headers(raw, 40, NEXTHDR_FRAGMENT)
    assert walk.later_fragment and walk.offset == 48 and walk.next_header == 60


def test_walk_no_ext_headers_and_truncation() -> None:
    assert walk_ext_headers(b"", 0, 6).offset == 0
    raw = bytes(IPv6ExtHdrHopByHop(nh=43) / IPv6ExtHdrRouting(nh=6, addresses=["::1"]))
    assert walk_ext_headers(raw, 0, NEXTHDR_HOP).next_header == 6
    for n in range(len(raw)):
        with pytest.raises(WireError):
            walk_ext_headers(raw[:n], 0, NEXTHDR_HOP)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(["hop", "dst", "rt"]), max_size=4), st.integers(0, 3))
def test_walk_random_chains_vs_scapy(kinds: list[str], n_addrs: int) -> None:
    layers = {
        "hop": lambda: IPv6ExtHdrHopByHop(),
        "dst": lambda: IPv6ExtHdrDestOpt(),
        "rt": lambda: IPv6ExtHdrRouting(addresses=[f"2001:db8::{i}" for i in range(n_addrs)]),
    }
    pkt = IPv6(src="::1", dst="::2")
    for kind in kinds:
        pkt = pkt / layers[kind]()
    raw = bytes(pkt / UDP(sport=7, dport=9))
    walk = walk_ext_headers(raw, 40, raw[6])
    assert walk.next_header == 17
    assert walk.offset == len(raw) - 8
    assert len(walk.headers) == len(kinds)
