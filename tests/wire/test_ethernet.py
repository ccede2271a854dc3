from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import LLC, SNAP, Dot1AD, Dot1Q, Ether, Raw

from pyvswitch.wire import WireError
from pyvswitch.wire.ethernet import (
    ETH_TYPE_IPV4,
    ETH_TYPE_QINQ,
    ETH_TYPE_VLAN,
    EthernetHeader,
    LlcSnapHeader,
    VlanTag,
    mac_from_str,
    mac_to_str,
    pop_vlan,
    push_vlan,
    walk_vlan_tags,
)

from . import assert_truncations_raise, h

MAC_A = 0x020000000001
MAC_B = 0x0A0B0C0D0E0F


def test_emit_exact_bytes() -> None:
    hdr = EthernetHeader(dst=0xFFFFFFFFFFFF, src=MAC_A, ethertype=0x0806)
    assert hdr.emit(b"\x01\x02") == h("ffffffffffff 020000000001 0806 0102")


def test_parse_exact_bytes() -> None:
    hdr = EthernetHeader.parse(h("0a0b0c0d0e0f 020000000001 86dd"))
    assert hdr == EthernetHeader(MAC_B, MAC_A, 0x86DD)
    assert not hdr.is_802_3
    assert EthernetHeader.parse(h("0a0b0c0d0e0f 020000000001 0040")).is_802_3


def test_matches_scapy() -> None:
    pkt = Ether(dst="0a:0b:0c:0d:0e:0f", src="02:00:00:00:00:01", type=0x0800) / Raw(b"xyz")
    assert EthernetHeader(MAC_B, MAC_A, 0x0800).emit(b"xyz") == bytes(pkt)
    assert EthernetHeader.parse(bytes(pkt)) == EthernetHeader(MAC_B, MAC_A, 0x0800)


def test_truncation() -> None:
    assert_truncations_raise(EthernetHeader.parse, EthernetHeader(1, 2, 3).emit())


@given(st.integers(0, (1 << 48) - 1), st.integers(0, (1 << 48) - 1), st.integers(0, 0xFFFF))
def test_round_trip(dst: int, src: int, ethertype: int) -> None:
    hdr = EthernetHeader(dst, src, ethertype)
    assert EthernetHeader.parse(b"pad" + hdr.emit(b"data"), 3) == hdr


def test_mac_strings() -> None:
    assert mac_to_str(MAC_B) == "0a:0b:0c:0d:0e:0f"
    assert mac_from_str("0A:0b:0c:0d:0e:0f") == MAC_B
    with pytest.raises(ValueError):
        mac_from_str("0a:0b:0c")


def test_out_of_range_fields_rejected() -> None:
    with pytest.raises(ValueError):
        EthernetHeader(1 << 48, 0, 0)
    with pytest.raises(ValueError):
        EthernetHeader(0, 0, 0x10000)


# --- VLAN tags ------------------------------------------------------------------


def test_vlan_tag_fields() -> None:
    tag = VlanTag.make(100, pcp=5, dei=True)
    assert tag.emit() == h("8100 b064")  # 5<<13 | 0x1000 | 100
    assert (tag.pcp, tag.dei, tag.vid) == (5, True, 100)
    assert VlanTag.parse(h("88a8 0fff")) == VlanTag(ETH_TYPE_QINQ, 0x0FFF)


def test_vlan_tag_rejects_other_tpid_and_truncation() -> None:
    with pytest.raises(WireError):
        VlanTag.parse(h("0800 0001"))
    assert_truncations_raise(VlanTag.parse, h("8100 0001"))


def test_push_vlan_matches_scapy() -> None:
    inner = Raw(b"\x45" + bytes(19))
    untagged = bytes(Ether(dst="0a:0b:0c:0d:0e:0f", src="02:00:00:00:00:01", type=0x0800) / inner)
    tagged = push_vlan(untagged, VlanTag.make(100, pcp=5))
    expected = Ether(dst="0a:0b:0c:0d:0e:0f", src="02:00:00:00:00:01", type=0x8100) / Dot1Q(
        prio=5, vlan=100, type=0x0800
    )
    assert tagged == bytes(expected / inner)
    assert tagged[12:16] == h("8100 a064")
    qinq = push_vlan(tagged, VlanTag.make(7, tpid=ETH_TYPE_QINQ))
    expected_qinq = (
        Ether(dst="0a:0b:0c:0d:0e:0f", src="02:00:00:00:00:01", type=0x88A8)
        / Dot1AD(vlan=7, type=0x8100)
        / Dot1Q(prio=5, vlan=100, type=0x0800)
        / inner
    )
    assert qinq == bytes(expected_qinq)


def test_pop_vlan_inverts_push() -> None:
    frame = EthernetHeader(MAC_B, MAC_A, ETH_TYPE_IPV4).emit(b"payload")
    tag = VlanTag.make(42, pcp=3)
    tag2 = VlanTag.make(9, tpid=ETH_TYPE_QINQ)
    double = push_vlan(push_vlan(frame, tag), tag2)
    outer, single = pop_vlan(double)
    assert outer == tag2
    inner, plain = pop_vlan(single)
    assert inner == tag
    assert plain == frame
    with pytest.raises(WireError):
        pop_vlan(frame)  # 0x0800 is not a TPID
    with pytest.raises(WireError):
        pop_vlan(frame[:15])


def test_push_inner_position() -> None:
    frame = push_vlan(EthernetHeader(MAC_B, MAC_A, ETH_TYPE_IPV4).emit(), VlanTag.make(1))
    both = push_vlan(frame, VlanTag.make(2), offset=16)
    assert both[12:20] == h("8100 0001 8100 0002")
    with pytest.raises(WireError):
        push_vlan(frame, VlanTag.make(3), offset=6)


def test_walk_vlan_tags() -> None:
    frame = h("0a0b0c0d0e0f 020000000001 88a8 0007 8100 a064 86dd 60")
    tags, ethertype, l3 = walk_vlan_tags(frame)
    assert tags == (VlanTag(ETH_TYPE_QINQ, 7), VlanTag(ETH_TYPE_VLAN, 0xA064))
    assert (ethertype, l3) == (0x86DD, 22)
    tags, ethertype, l3 = walk_vlan_tags(frame, max_tags=1)
    assert (len(tags), ethertype, l3) == (1, 0x8100, 18)
    assert walk_vlan_tags(h("0a0b0c0d0e0f 020000000001 0800")) == ((), 0x0800, 14)
    for cut in (14, 17, 21):  # a tag (or the type after it) cut short
        with pytest.raises(WireError):
            walk_vlan_tags(frame[:cut])


# --- LLC/SNAP -------------------------------------------------------------------


def test_llc_snap_vector_and_scapy() -> None:
    hdr = LlcSnapHeader(0x0800)
    assert hdr.emit() == h("aa aa 03 000000 0800")
    assert hdr.is_snap
    assert hdr.emit() == bytes(LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0800))
    assert LlcSnapHeader.parse(h("aa aa 03 00000c 2000")) == LlcSnapHeader(0x2000, 0x00000C)
    assert not LlcSnapHeader.parse(h("aa aa 03 00000c 2000")).is_snap
    assert_truncations_raise(LlcSnapHeader.parse, hdr.emit())
