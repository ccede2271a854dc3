from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.vxlan import VXLAN

from pyvswitch.wire import WireError
from pyvswitch.wire.vxlan import FLAG_G, FLAG_I, GBP_A, GBP_D, VxlanHeader

from . import assert_truncations_raise, h


def test_plain_exact_bytes() -> None:
    hdr = VxlanHeader.make(0x123456)
    assert hdr.emit(b"\xaa") == h("08000000 12345600 aa")
    assert VxlanHeader.parse(h("08000000 12345600")) == hdr == VxlanHeader(0x123456, FLAG_I)
    assert hdr.emit() == bytes(VXLAN(flags=0x08, vni=0x123456))


def test_make_masks_tun_id_to_24_bits() -> None:
    assert VxlanHeader.make(0xAB_00FF_FFFF).vni == 0xFFFFFF


def test_gbp_exact_bytes() -> None:
    # G | I | D | policy 0x1234 = 0x88401234
    hdr = VxlanHeader.make(0xABCDEF, gbp=GBP_D | 0x1234)
    assert hdr.flags == FLAG_G | FLAG_I | GBP_D | 0x1234 == 0x88401234
    assert hdr.emit() == h("88401234 abcdef00")
    scapy = bytes(VXLAN(flags="G+Instance", gpflags="D", gpid=0x1234, vni=0xABCDEF))
    assert hdr.emit() == scapy
    parsed = VxlanHeader.parse(scapy)
    assert parsed.has_gbp and parsed.dont_learn and not parsed.policy_applied
    assert parsed.policy_id == 0x1234
    assert parsed.gbp == 0x00401234  # OVS metadata: bit 22 D, low 16 bits id


def test_gbp_policy_applied_and_ovs_text_flags() -> None:
    hdr = VxlanHeader.make(1, gbp=GBP_A | 0x10)
    assert hdr.emit() == h("88080010 00000100")
    assert hdr.emit() == bytes(VXLAN(flags="G+Instance", gpflags="A", gpid=0x10, vni=1))
    assert (hdr.gbp >> 16) & 0xFF == 0x08  # text flags F: A = 0x08, D = 0x40
    assert (VxlanHeader.make(1, gbp=GBP_D).gbp >> 16) & 0xFF == 0x40


def test_gbp_g_bit_whenever_metadata_nonzero() -> None:
    # bits outside D/A/id are not carried, but a non-zero value still sets G
    hdr = VxlanHeader.make(5, gbp=0x00100000)
    assert hdr.flags == FLAG_G | FLAG_I and hdr.gbp == 0
    assert VxlanHeader.make(5, gbp=0).flags == FLAG_I


def test_gbp_ignored_without_g() -> None:
    hdr = VxlanHeader.parse(h("08401234 00000100"))
    assert hdr.gbp == 0 and not hdr.has_gbp


def test_validate() -> None:
    VxlanHeader.make(7).validate()
    VxlanHeader.make(7, gbp=GBP_D | 3).validate(gbp=True)
    with pytest.raises(WireError, match="invalid"):
        VxlanHeader.make(7, gbp=GBP_D | 3).validate()  # GBP not enabled on the port
    with pytest.raises(WireError, match="I flag"):
        VxlanHeader.parse(h("00000000 00000700")).validate()
    with pytest.raises(WireError, match="reserved"):
        VxlanHeader.parse(h("08000000 00000701")).validate()
    with pytest.raises(WireError, match="invalid"):
        VxlanHeader.parse(h("0c000000 00000700")).validate(gbp=True)  # GPE P bit


def test_truncation() -> None:
    assert_truncations_raise(VxlanHeader.parse, h("08000000 12345600"))


@given(st.integers(0, (1 << 24) - 1), st.integers(0, (1 << 32) - 1), st.integers(0, 255))
def test_round_trip(vni: int, flags: int, reserved: int) -> None:
    hdr = VxlanHeader(vni, flags, reserved)
    assert VxlanHeader.parse(b"u" + hdr.emit(b"inner"), 1) == hdr


@settings(max_examples=40, deadline=None)
@given(st.integers(0, (1 << 24) - 1), st.integers(0, 0xFFFF), st.booleans(), st.booleans())
def test_gbp_metadata_round_trip(vni: int, policy: int, d: bool, a: bool) -> None:
    md = policy | (GBP_D if d else 0) | (GBP_A if a else 0)
    hdr = VxlanHeader.parse(VxlanHeader.make(vni, gbp=md).emit())
    assert hdr.gbp == md and hdr.vni == vni
    if md:
        gpflags = (0x40 if d else 0) | (0x08 if a else 0)
        assert hdr.emit() == bytes(VXLAN(flags="G+Instance", gpflags=gpflags, gpid=policy, vni=vni))
