from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)

from pyvswitch.wire import WireError
from pyvswitch.wire.icmpv6 import (
    ND_NA_OVERRIDE,
    ND_NA_SOLICITED,
    TYPE_ECHO_REQUEST,
    TYPE_NEIGHBOR_ADVERT,
    TYPE_NEIGHBOR_SOLICIT,
    Icmpv6Header,
    NdMessage,
    echo_reply_for,
    verify_checksum,
)
from pyvswitch.wire.ipv6 import IPv6Header

from . import assert_truncations_raise, h

LOOP = IPv6Header(src=1, dst=2, next_header=58)  # ::1 -> ::2
A = 0xFE80_0000_0000_0000_0000_0000_0000_0001
B = 0x2001_0DB8_0000_0000_0000_0000_0000_0002
IP_AB = IPv6Header(src=A, dst=B, next_header=58, hop_limit=255)
MAC = 0x020000000001


def test_echo_request_hand_computed() -> None:
    # pseudo: 1 + 2 + length 8 + 58; header word 0x8000 -> sum 0x8045 -> ~ 0x7fba
    out = Icmpv6Header.echo_request(0, 0).emit(ip=LOOP)
    assert out == h("80 00 7fba 0000 0000")
    assert out == bytes(IPv6(src="::1", dst="::2") / ICMPv6EchoRequest(id=0, seq=0))[40:]


def test_echo_matches_scapy_and_reply() -> None:
    req = bytes(
        IPv6(src="fe80::1", dst="2001:db8::2") / ICMPv6EchoRequest(id=9, seq=3, data=b"ping")
    )[40:]
    assert Icmpv6Header.echo_request(9, 3).emit(b"ping", ip=IP_AB) == req
    hdr = Icmpv6Header.parse(req)
    assert (hdr.type, hdr.ident, hdr.seq) == (TYPE_ECHO_REQUEST, 9, 3)
    assert verify_checksum(req, IP_AB)
    assert not verify_checksum(req, LOOP)
    back = IPv6Header(src=B, dst=A, next_header=58)
    reply = echo_reply_for(req, back)
    expected = bytes(
        IPv6(src="2001:db8::2", dst="fe80::1") / ICMPv6EchoReply(id=9, seq=3, data=b"ping")
    )
    assert reply == expected[40:]
    with pytest.raises(WireError):
        echo_reply_for(reply, back)


def test_checksum_requires_ip() -> None:
    with pytest.raises(ValueError):
        Icmpv6Header.echo_request(1, 1).emit()
    assert Icmpv6Header(128, 0, 0, checksum=0xABCD).emit() == h("80 00 abcd 00000000")


def test_neighbor_solicitation_layout_and_scapy() -> None:
    ns = NdMessage.solicit(B, sll=MAC)
    out = ns.emit(ip=IP_AB)
    assert out[:2] == h("87 00")
    assert out[4:] == h("00000000 20010db8000000000000000000000002 01 01 020000000001")
    scapy_ns = bytes(
        IPv6(src="fe80::1", dst="2001:db8::2")
        / ICMPv6ND_NS(tgt="2001:db8::2")
        / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
    )[40:]
    assert out == scapy_ns
    parsed = NdMessage.parse(scapy_ns)
    assert parsed == dataclasses.replace(ns, checksum=int.from_bytes(scapy_ns[2:4], "big"))
    assert parsed.header_len == 32


def test_neighbor_advertisement_layout_and_scapy() -> None:
    na = NdMessage.advert(B, tll=MAC)
    out = na.emit(ip=IP_AB)
    assert out[4:8] == h("60000000")  # S | O
    assert out[24:] == h("02 01 020000000001")
    scapy_na = bytes(
        IPv6(src="fe80::1", dst="2001:db8::2")
        / ICMPv6ND_NA(tgt="2001:db8::2", R=0, S=1, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:01")
    )[40:]
    assert out == scapy_na
    parsed = NdMessage.parse(scapy_na)
    assert parsed.type == TYPE_NEIGHBOR_ADVERT and parsed.flags == ND_NA_SOLICITED | ND_NA_OVERRIDE
    assert (parsed.sll, parsed.tll) == (None, MAC)
    assert verify_checksum(scapy_na, IP_AB)


def test_nd_other_options_kept_verbatim() -> None:
    raw = bytes(
        IPv6(src="fe80::1", dst="2001:db8::2")
        / ICMPv6ND_NS(tgt="2001:db8::2")
        / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
        / ICMPv6NDOptMTU(mtu=1500)
    )[40:]
    parsed = NdMessage.parse(raw)
    assert parsed.sll == MAC and parsed.extra_options == h("05 01 0000 000005dc")
    assert parsed.emit() == raw


def test_nd_malformed_options() -> None:
    base = h("87 00 0000 00000000") + bytes(16)
    sll = h("01 01 020000000001")
    with pytest.raises(WireError, match="duplicate"):
        NdMessage.parse(base + sll + sll)
    with pytest.raises(WireError, match="length 0"):
        NdMessage.parse(base + h("01 00 020000000001"))
    with pytest.raises(WireError, match="truncated"):
        NdMessage.parse(base + h("01 02 020000000001 0000"))
    with pytest.raises(WireError, match="NS"):
        NdMessage.parse(h("80") + base[1:])
    # An LL option that is not Ethernet-sized (length 2) is kept as "other".
    long_ll = h("01 02 0200000000010000 0000000000000000")
    assert NdMessage.parse(base + long_ll).extra_options == long_ll


def test_truncation() -> None:
    assert_truncations_raise(Icmpv6Header.parse, h("80 00 7fba 0000 0000"))
    ns = NdMessage.solicit(B).emit(ip=IP_AB)
    assert_truncations_raise(NdMessage.parse, ns)


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from([TYPE_NEIGHBOR_SOLICIT, TYPE_NEIGHBOR_ADVERT]),
    st.integers(0, (1 << 128) - 1),
    st.integers(0, (1 << 32) - 1),
    st.none() | st.integers(0, (1 << 48) - 1),
    st.none() | st.integers(0, (1 << 48) - 1),
)
def test_nd_round_trip(
    type_: int, target: int, flags: int, sll: int | None, tll: int | None
) -> None:
    msg = NdMessage(type_, target, flags, sll, tll)
    out = msg.emit(ip=IP_AB)
    assert verify_checksum(out, IP_AB)
    parsed = NdMessage.parse(out)
    assert dataclasses.replace(parsed, checksum=None) == msg
    # scapy recomputes the checksum of the same message independently
    scapy_pkt = IPv6(bytes(IPv6(src="fe80::1", dst="2001:db8::2", nh=58) / out))
    del scapy_pkt.payload.cksum
    assert IPv6(bytes(scapy_pkt)).payload.cksum == parsed.checksum
