from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.contrib.geneve import GENEVE, GeneveOptions

from pyvswitch.wire import WireError
from pyvswitch.wire.geneve import (
    GeneveHeader,
    GeneveOption,
    emit_options,
    parse_options,
)

from . import assert_truncations_raise, h


def test_no_options_exact_bytes() -> None:
    hdr = GeneveHeader(0x123456)
    assert hdr.emit() == h("00 00 6558 12345600")
    assert hdr.emit() == bytes(GENEVE(vni=0x123456, proto=0x6558))
    assert GeneveHeader.parse(hdr.emit()) == dataclasses.replace(hdr, critical=False)


def test_critical_option_exact_bytes() -> None:
    opt = GeneveOption(0x0102, 0x80, h("deadbeef"))
    assert opt.emit() == h("0102 80 01 deadbeef")
    hdr = GeneveHeader(0x123456, options=opt.emit())
    # opt len 2 words, C bit (0x40) computed from the option's critical type bit
    assert hdr.emit() == h("02 40 6558 12345600 0102 80 01 deadbeef")
    scapy = GENEVE(
        vni=0x123456,
        proto=0x6558,
        critical=1,
        options=[GeneveOptions(classid=0x0102, type=0x80, data=h("deadbeef"))],
    )
    assert hdr.emit() == bytes(scapy)
    parsed = GeneveHeader.parse(bytes(scapy))
    assert parsed.critical is True and parsed.opt_len == 2 and parsed.header_len == 16
    assert parsed.parsed_options() == (opt,)


def test_oam_and_non_critical() -> None:
    opts = emit_options([GeneveOption(0xFFFF, 0x01), GeneveOption(0x0101, 0x7F, bytes(8))])
    hdr = GeneveHeader(1, protocol=0x0800, options=opts, oam=True)
    out = hdr.emit(b"\x45")
    assert out[:4] == h("04 80 0800") and out[-1:] == b"\x45"
    assert out == bytes(
        GENEVE(
            vni=1,
            proto=0x0800,
            oam=1,
            options=[
                GeneveOptions(classid=0xFFFF, type=1),
                GeneveOptions(classid=0x0101, type=0x7F, data=bytes(8)),
            ],
        )
        / b"\x45"
    )


def test_explicit_critical_flag_kept() -> None:
    # C set by the sender even though no option is critical (or the reverse): verbatim.
    assert GeneveHeader(1, critical=True).emit()[1] == 0x40
    opts = GeneveOption(1, 0x80).emit()
    assert GeneveHeader(1, options=opts, critical=False).emit()[1] == 0x00


def test_option_reserved_bits_round_trip() -> None:
    raw = h("0102 03 e1 01020304")  # reserved bits 111, length 1
    opt = GeneveOption.parse(raw)
    assert opt.reserved == 7 and opt.emit() == raw


def test_malformed() -> None:
    with pytest.raises(WireError, match="version"):
        GeneveHeader.parse(h("40 00 6558 00000100"))
    with pytest.raises(WireError):
        GeneveHeader.parse(h("01 00 6558 00000100"))  # 4 bytes of options missing
    with pytest.raises(WireError):
        parse_options(h("0102 80 02 deadbeef"))  # option claims 8 data bytes
    with pytest.raises(ValueError):
        GeneveHeader(1, options=bytes(3))
    with pytest.raises(ValueError):
        GeneveHeader(1, options=bytes(256))


def test_truncation() -> None:
    hdr = GeneveHeader(5, options=GeneveOption(0x0102, 0x80, h("deadbeef")).emit())
    assert_truncations_raise(GeneveHeader.parse, hdr.emit())
    assert_truncations_raise(GeneveOption.parse, GeneveOption(1, 2, bytes(8)).emit())


geneve_options = st.lists(
    st.builds(
        GeneveOption,
        opt_class=st.integers(0, 0xFFFF),
        type=st.integers(0, 255),
        data=st.integers(0, 5).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    ),
    max_size=4,
)


@given(st.integers(0, (1 << 24) - 1), geneve_options, st.booleans(), st.binary(max_size=20))
def test_round_trip(vni: int, opts: list[GeneveOption], oam: bool, payload: bytes) -> None:
    hdr = GeneveHeader(vni, options=emit_options(opts), oam=oam)
    out = hdr.emit(payload)
    parsed = GeneveHeader.parse(b"?" + out, 1)
    assert parsed.critical == any(o.type & 0x80 for o in opts)
    assert dataclasses.replace(parsed, critical=None) == hdr
    assert parsed.parsed_options() == tuple(opts)
    assert out[parsed.header_len :] == payload


@settings(max_examples=40, deadline=None)
@given(st.integers(0, (1 << 24) - 1), geneve_options, st.booleans())
def test_matches_scapy(vni: int, opts: list[GeneveOption], oam: bool) -> None:
    critical = any(o.critical for o in opts)
    scapy = GENEVE(
        vni=vni,
        proto=0x6558,
        oam=int(oam),
        critical=int(critical),
        options=[GeneveOptions(classid=o.opt_class, type=o.type, data=o.data) for o in opts],
    )
    raw = bytes(scapy)
    assert GeneveHeader(vni, options=emit_options(opts), oam=oam).emit() == raw
    assert GeneveHeader.parse(raw).parsed_options() == tuple(opts)
