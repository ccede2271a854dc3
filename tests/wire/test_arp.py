from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import ARP

from pyvswitch.wire import WireError
from pyvswitch.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket

from . import assert_truncations_raise, h

REQUEST = ArpPacket(OP_REQUEST, sha=0x020000000001, spa=0x0A000001, tha=0, tpa=0x0A000002)
REQUEST_BYTES = h("0001 0800 06 04 0001 020000000001 0a000001 000000000000 0a000002")


def test_emit_exact_bytes() -> None:
    assert REQUEST.emit() == REQUEST_BYTES


def test_parse_exact_bytes() -> None:
    assert ArpPacket.parse(REQUEST_BYTES) == REQUEST


def test_matches_scapy() -> None:
    pkt = ARP(
        op=1, hwsrc="02:00:00:00:00:01", psrc="10.0.0.1", hwdst="00:00:00:00:00:00", pdst="10.0.0.2"
    )
    assert bytes(pkt) == REQUEST_BYTES
    reply = ARP(
        op=2, hwsrc="0a:0b:0c:0d:0e:0f", psrc="10.0.0.2", hwdst="02:00:00:00:00:01", pdst="10.0.0.1"
    )
    assert ArpPacket.parse(bytes(reply)) == REQUEST.reply(0x0A0B0C0D0E0F)


def test_reply_swaps() -> None:
    rep = REQUEST.reply(0x0A0B0C0D0E0F)
    assert rep == ArpPacket(OP_REPLY, 0x0A0B0C0D0E0F, 0x0A000002, 0x020000000001, 0x0A000001)


@pytest.mark.parametrize(
    "bad",
    [
        h("0006 0800 06 04 0001") + bytes(20),  # hardware type IEEE 802
        h("0001 86dd 06 04 0001") + bytes(20),  # protocol IPv6
        h("0001 0800 08 04 0001") + bytes(20),  # hln 8
        h("0001 0800 06 10 0001") + bytes(20),  # pln 16
    ],
)
def test_non_ethernet_ipv4_rejected(bad: bytes) -> None:
    with pytest.raises(WireError):
        ArpPacket.parse(bad)


def test_truncation() -> None:
    assert_truncations_raise(ArpPacket.parse, REQUEST_BYTES)


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, (1 << 48) - 1),
    st.integers(0, (1 << 32) - 1),
    st.integers(0, (1 << 48) - 1),
    st.integers(0, (1 << 32) - 1),
)
def test_round_trip(op: int, sha: int, spa: int, tha: int, tpa: int) -> None:
    pkt = ArpPacket(op, sha, spa, tha, tpa)
    assert ArpPacket.parse(b"x" + pkt.emit(b"trailer"), 1) == pkt
