from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import IP, TCP, IPv6, Raw

from pyvswitch.wire import WireError
from pyvswitch.wire.ipv4 import IPv4Header
from pyvswitch.wire.ipv6 import IPv6Header
from pyvswitch.wire.tcp import (
    ACK,
    CWR,
    ECE,
    FIN,
    NS,
    PSH,
    RST,
    SYN,
    URG,
    TcpHeader,
    verify_checksum,
)

from . import assert_truncations_raise, h

IP4 = IPv4Header(src=0x0A000001, dst=0x0A000002, proto=6)
IP6 = IPv6Header(src=1, dst=0x2001_0DB8 << 96 | 5, next_header=6)
SCAPY_FLAGS = {
    FIN: "F",
    SYN: "S",
    RST: "R",
    PSH: "P",
    ACK: "A",
    URG: "U",
    ECE: "E",
    CWR: "C",
    NS: "N",
}


def test_syn_hand_computed() -> None:
    # pseudo 0a00+0001+0a00+0002+0006+0014 = 0x141d; header 04d2+0050+5002+2000 = 0x7524
    # total 0x8941 -> ~ 0x76be
    out = TcpHeader(1234, 80, flags=SYN, window=0x2000).emit(ip=IP4)
    assert out == h("04d2 0050 00000000 00000000 5002 2000 76be 0000")


def test_options_layout() -> None:
    opts = h("020405b4 01 030307")  # MSS 1460, NOP, WScale 7
    hdr = TcpHeader(
        0x1234, 443, seq=1, ack=2, flags=SYN | ACK, window=0xFFFF, options=opts, checksum=0xCAFE
    )
    out = hdr.emit(b"hi")
    assert out == h("1234 01bb 00000001 00000002 7012 ffff cafe 0000 020405b4 01030307") + b"hi"
    assert TcpHeader.parse(out) == hdr
    assert hdr.data_offset == 7 and hdr.header_len == 28


def test_flags_reserved_bits_round_trip() -> None:
    hdr = TcpHeader(1, 2, flags=0xE00 | NS | CWR | FIN, checksum=0)
    out = hdr.emit()
    assert out[12:14] == h("5f81")
    assert TcpHeader.parse(out).flags == 0xF81


def test_scapy_options_and_checksum() -> None:
    pkt = (
        IP(src="10.0.0.1", dst="10.0.0.2")
        / TCP(
            sport=40000,
            dport=22,
            seq=0xDEADBEEF,
            ack=7,
            flags="SA",
            window=512,
            options=[("MSS", 1460), ("NOP", None), ("WScale", 7)],
        )
        / Raw(b"payload")
    )
    raw = bytes(pkt)
    hdr = TcpHeader.parse(raw, 20)
    assert hdr.options == h("020405b4 01030307")
    assert (hdr.seq, hdr.ack, hdr.flags, hdr.window) == (0xDEADBEEF, 7, SYN | ACK, 512)
    assert dataclasses.replace(hdr, checksum=None).emit(b"payload", ip=IP4) == raw[20:]
    assert verify_checksum(raw[20:], IP4)
    assert not verify_checksum(raw[20:-1] + b"?", IP4)


def test_checksum_needs_ip() -> None:
    with pytest.raises(ValueError):
        TcpHeader(1, 2).emit()


def test_malformed_and_truncated() -> None:
    with pytest.raises(WireError, match="data offset"):
        TcpHeader.parse(h("0001 0002 00000000 00000000 4000 0000 0000 0000"))
    long_hdr = TcpHeader(1, 2, options=bytes(8), checksum=0).emit()
    assert_truncations_raise(TcpHeader.parse, long_hdr)
    with pytest.raises(ValueError):
        TcpHeader(1, 2, options=b"\x01")


def _scapy_tcp_checksum(raw: bytes, v6: bool) -> int:
    pkt = IPv6(raw) if v6 else IP(raw)
    del pkt[TCP].chksum
    return int((IPv6 if v6 else IP)(bytes(pkt))[TCP].chksum)


tcp_headers = st.builds(
    TcpHeader,
    src_port=st.integers(0, 0xFFFF),
    dst_port=st.integers(0, 0xFFFF),
    seq=st.integers(0, (1 << 32) - 1),
    ack=st.integers(0, (1 << 32) - 1),
    flags=st.integers(0, 0x1FF),
    window=st.integers(0, 0xFFFF),
    urgent=st.integers(0, 0xFFFF),
    options=st.integers(0, 10).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
)


@given(tcp_headers, st.binary(max_size=30))
def test_round_trip(hdr: TcpHeader, payload: bytes) -> None:
    out = hdr.emit(payload, ip=IP6)
    assert verify_checksum(out, IP6)
    parsed = TcpHeader.parse(b"." + out, 1)
    assert dataclasses.replace(parsed, checksum=None) == hdr
    assert parsed.emit(payload) == out


@settings(max_examples=40, deadline=None)
@given(tcp_headers.filter(lambda t: not t.options), st.binary(max_size=30), st.booleans())
def test_matches_scapy(hdr: TcpHeader, payload: bytes, v6: bool) -> None:
    flags = "".join(name for bit, name in SCAPY_FLAGS.items() if hdr.flags & bit)
    tcp = TCP(
        sport=hdr.src_port,
        dport=hdr.dst_port,
        seq=hdr.seq,
        ack=hdr.ack,
        flags=flags,
        window=hdr.window,
        urgptr=hdr.urgent,
    )
    if v6:
        raw = bytes(IPv6(src="::1", dst="2001:db8::5") / tcp / Raw(payload))
        ours = hdr.emit(payload, ip=IP6)
        assert ours == raw[40:]
    else:
        raw = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / tcp / Raw(payload))
        ours = hdr.emit(payload, ip=IP4)
        assert ours == raw[20:]
    assert TcpHeader.parse(ours).checksum == _scapy_tcp_checksum(raw, v6)
