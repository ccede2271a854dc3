from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import IP, UDP, IPv6, Raw

from pyvswitch.wire import WireError
from pyvswitch.wire.ipv4 import IPv4Header
from pyvswitch.wire.ipv6 import IPv6Header
from pyvswitch.wire.udp import UdpHeader, update_checksum, verify_checksum

from . import assert_truncations_raise, h

IP4 = IPv4Header(src=0x0A000001, dst=0x0A000002, proto=17)
IP6 = IPv6Header(
    src=0x2001_0DB8_0000_0000_0000_0000_0000_0001,
    dst=0xFE80_0000_0000_0000_0000_0000_0000_00AA,
    next_header=17,
)


def _scapy_udp_checksum(raw_ip: bytes, v6: bool = False) -> int:
    """Let scapy recompute the UDP checksum of a packet it parses."""
    pkt = IPv6(raw_ip) if v6 else IP(raw_ip)
    del pkt[UDP].chksum
    return int(IPv6(bytes(pkt))[UDP].chksum if v6 else IP(bytes(pkt))[UDP].chksum)


def test_hand_computed_ipv4() -> None:
    # pseudo 0x141c + header 04d2+0050+0008 = 0x1946 -> ~ 0xe6b9
    assert UdpHeader(1234, 80).emit(ip=IP4) == h("04d2 0050 0008 e6b9")


def test_zero_checksum_sent_as_ffff() -> None:
    # Everything but the payload word sums to 0x194a; payload 0xe6b5 makes 0xffff,
    # whose complement is 0 -> must go out as 0xffff.
    out = UdpHeader(1234, 80).emit(h("e6b5"), ip=IP4)
    assert out == h("04d2 0050 000a ffff e6b5")
    scapy_raw = bytes(
        IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1234, dport=80) / Raw(h("e6b5"))
    )
    assert scapy_raw[20:] == out
    assert verify_checksum(out, IP4)


def test_no_ip_means_no_checksum() -> None:
    assert UdpHeader(1, 2).emit(b"abc") == h("0001 0002 000b 0000 616263")
    assert verify_checksum(h("0001 0002 000b 0000 616263"), IP4)
    assert not verify_checksum(h("0001 0002 000b 0000 616263"), IP6)  # mandatory in v6


def test_parse_and_length_checks() -> None:
    assert UdpHeader.parse(h("04d2 0050 0008 e6b9")) == UdpHeader(1234, 80, 8, 0xE6B9)
    with pytest.raises(WireError, match="length"):
        UdpHeader.parse(h("04d2 0050 0007 0000"))
    assert_truncations_raise(UdpHeader.parse, h("04d2 0050 0008 e6b9"))
    with pytest.raises(WireError):
        verify_checksum(h("0001 0002 0010 1234 00"), IP4)  # length beyond data


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=41))
def test_matches_scapy_ipv4_and_ipv6(sport: int, dport: int, payload: bytes) -> None:
    ours4 = UdpHeader(sport, dport).emit(payload, ip=IP4)
    raw4 = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=sport, dport=dport) / Raw(payload))
    assert ours4 == raw4[20:]
    assert UdpHeader.parse(ours4).checksum == _scapy_udp_checksum(raw4)
    ours6 = UdpHeader(sport, dport).emit(payload, ip=IP6)
    raw6 = bytes(
        IPv6(src="2001:db8::1", dst="fe80::aa") / UDP(sport=sport, dport=dport) / Raw(payload)
    )
    assert ours6 == raw6[40:]
    assert UdpHeader.parse(ours6).checksum == _scapy_udp_checksum(raw6, v6=True)
    assert verify_checksum(ours4, IP4) and verify_checksum(ours6, IP6)
    assert not verify_checksum(ours6, dataclasses.replace(IP6, dst=IP6.dst ^ 1))


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=20))
def test_round_trip(sport: int, dport: int, payload: bytes) -> None:
    hdr = UdpHeader(sport, dport)
    out = hdr.emit(payload, ip=IP6)
    parsed = UdpHeader.parse(b"---" + out, 3)
    assert parsed.length == 8 + len(payload)
    assert parsed.checksum != 0
    assert dataclasses.replace(parsed, length=None, checksum=None) == hdr
    assert parsed.emit(payload) == out


def test_update_checksum_after_nat_matches_scapy() -> None:
    before = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5, dport=6) / Raw(b"data!"))
    after = bytes(IP(src="10.9.8.7", dst="10.0.0.2") / UDP(sport=5, dport=6) / Raw(b"data!"))
    old = int.from_bytes(before[26:28], "big")
    assert update_checksum(old, before[12:16], after[12:16]) == int.from_bytes(after[26:28], "big")
    # a port rewrite (even-aligned in the UDP header)
    after_port = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=999, dport=6) / Raw(b"data!"))
    assert update_checksum(old, before[20:22], after_port[20:22]) == int.from_bytes(
        after_port[26:28], "big"
    )
    assert update_checksum(0, before[12:16], after[12:16]) == 0


def test_update_checksum_zero_result_becomes_ffff() -> None:
    # Stored 0x0001 means the data sums to 0xfffe; raising one word by 1 makes it
    # 0xffff, whose checksum is 0 -> UDP must send 0xffff instead.
    assert update_checksum(0x0001, h("0000"), h("0001")) == 0xFFFF
    assert update_checksum(0x0001, h("0000"), h("0002")) == 0xFFFF - 1
