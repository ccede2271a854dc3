from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import IP, IPOption_EOL, IPOption_NOP, IPOption_RR, Raw

from pyvswitch.wire import WireError
from pyvswitch.wire.checksum import csum_replace2
from pyvswitch.wire.ipv4 import (
    FLAG_DF,
    FLAG_MF,
    FLAG_RESERVED,
    IPv4Header,
    ip_from_str,
    ip_to_str,
    verify_checksum,
)

from . import assert_truncations_raise, h

# The classic example header (checksum 0xb861), 192.168.0.1 -> 192.168.0.199, UDP.
KNOWN = h("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7")
KNOWN_HDR = IPv4Header(
    src=0xC0A80001, dst=0xC0A800C7, proto=17, ttl=64, flags=FLAG_DF, total_len=0x73
)


def test_emit_known_header_computes_checksum() -> None:
    assert KNOWN_HDR.emit() == KNOWN


def test_emit_computes_total_length() -> None:
    hdr = IPv4Header(src=0x0A000001, dst=0x0A000002, proto=1, ttl=1, ident=0x1234)
    out = hdr.emit(bytes(8))
    # 28 bytes total; checksum by hand: 4500+001c+1234+0000+0101+0a00+0001+0a00+0002
    # = 0x6c54 -> ~ = 0x93ab
    assert out == h("4500 001c 1234 0000 0101 93ab 0a000001 0a000002") + bytes(8)
    assert out == bytes(
        IP(src="10.0.0.1", dst="10.0.0.2", proto=1, ttl=1, id=0x1234) / Raw(bytes(8))
    )


def test_parse_known_header() -> None:
    hdr = IPv4Header.parse(KNOWN)
    assert hdr == dataclasses.replace(KNOWN_HDR, checksum=0xB861)
    assert hdr.df and not hdr.mf and not hdr.is_fragment
    assert (hdr.header_len, hdr.ihl, hdr.payload_len) == (20, 5, 0x73 - 20)
    assert verify_checksum(KNOWN)
    assert not verify_checksum(KNOWN[:10] + h("b862") + KNOWN[12:])


def test_fragment_fields_layout() -> None:
    hdr = IPv4Header(
        src=1, dst=2, proto=6, flags=FLAG_MF | FLAG_RESERVED, frag_offset=185, tos=0xB9, checksum=0
    )
    out = hdr.emit()
    assert out[6:8] == h("a0b9")  # 0x8000 | 0x2000 | 185
    assert out[1] == 0xB9
    parsed = IPv4Header.parse(out)
    assert parsed.mf and parsed.is_fragment and parsed.frag_offset == 185
    assert (parsed.dscp, parsed.ecn) == (0xB9 >> 2, 1)


def test_options_layout_and_scapy() -> None:
    opts = [IPOption_NOP(), IPOption_RR(routers=["1.2.3.4"]), IPOption_EOL()]
    pkt = IP(src="10.0.0.1", dst="10.0.0.2", ttl=9, id=77, proto=17, options=opts) / Raw(b"abc")
    raw = bytes(pkt)
    hdr = IPv4Header.parse(raw)
    assert hdr.options == raw[20 : hdr.header_len]
    assert hdr.header_len == 32 and raw[0] == 0x48
    assert dataclasses.replace(hdr, total_len=None, checksum=None).emit(b"abc") == raw


def test_ip_strings() -> None:
    assert ip_from_str("10.0.0.1") == 0x0A000001
    assert ip_to_str(0xC0A800C7) == "192.168.0.199"
    with pytest.raises(ValueError):
        ip_from_str("10.0.0.256")


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (h("6500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7"), "version"),
        (h("4400 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7"), "IHL"),
        (h("4500 0013 0000 4000 4011 b861 c0a8 0001 c0a8 00c7"), "total length"),
        (h("4600 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7"), "truncated"),
    ],
)
def test_malformed(bad: bytes, why: str) -> None:
    with pytest.raises(WireError, match=why):
        IPv4Header.parse(bad)


def test_truncation() -> None:
    assert_truncations_raise(IPv4Header.parse, KNOWN)
    with_opts = IPv4Header(1, 2, 3, options=b"\x01\x01\x01\x00").emit()
    assert_truncations_raise(IPv4Header.parse, with_opts)


def test_bad_values_rejected_on_construction() -> None:
    with pytest.raises(ValueError):
        IPv4Header(1, 2, 3, options=b"\x01")
    with pytest.raises(ValueError):
        IPv4Header(1, 2, 3, frag_offset=1 << 13)
    with pytest.raises(ValueError):
        IPv4Header(1, 2, 3, total_len=19)
    with pytest.raises(ValueError):
        IPv4Header(1, 2, 3).emit(bytes(65536))


def test_ttl_decrement_incremental_checksum_matches_scapy() -> None:
    hdr = IPv4Header.parse(KNOWN)
    assert hdr.checksum is not None
    new_check = csum_replace2(hdr.checksum, hdr.ttl << 8 | hdr.proto, 63 << 8 | hdr.proto)
    pkt = IP(KNOWN)
    pkt.ttl = 63
    del pkt.chksum
    scapy_ck = IP(bytes(pkt)).chksum
    assert new_check == scapy_ck == 0xB961


ip_headers = st.builds(
    IPv4Header,
    src=st.integers(0, (1 << 32) - 1),
    dst=st.integers(0, (1 << 32) - 1),
    proto=st.integers(0, 255),
    ttl=st.integers(0, 255),
    tos=st.integers(0, 255),
    ident=st.integers(0, 0xFFFF),
    flags=st.integers(0, 7),
    frag_offset=st.integers(0, 0x1FFF),
    options=st.integers(0, 10).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
)


@given(ip_headers, st.binary(max_size=40))
def test_round_trip(hdr: IPv4Header, payload: bytes) -> None:
    out = hdr.emit(payload)
    assert verify_checksum(out)
    parsed = IPv4Header.parse(b"\x00" + out, 1)
    assert parsed.total_len == hdr.header_len + len(payload)
    assert dataclasses.replace(parsed, total_len=None, checksum=None) == hdr
    assert IPv4Header.parse(parsed.emit(payload)) == parsed


@settings(max_examples=40, deadline=None)
@given(ip_headers.filter(lambda x: not x.options), st.binary(max_size=20))
def test_matches_scapy(hdr: IPv4Header, payload: bytes) -> None:
    pkt = IP(
        src=ip_to_str(hdr.src),
        dst=ip_to_str(hdr.dst),
        proto=hdr.proto,
        ttl=hdr.ttl,
        tos=hdr.tos,
        id=hdr.ident,
        flags=hdr.flags,
        frag=hdr.frag_offset,
    ) / Raw(payload)
    raw = bytes(pkt)
    assert hdr.emit(payload) == raw
    assert IPv4Header.parse(raw).checksum == IP(raw).chksum
