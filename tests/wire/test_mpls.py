from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.contrib.mpls import MPLS

from pyvswitch.wire import WireError
from pyvswitch.wire.mpls import MplsLse, emit_stack, pack_lse, parse_stack, unpack_lse

from . import assert_truncations_raise, h


def test_exact_bytes() -> None:
    # 100 << 12 | 5 << 9 | 1 << 8 | 64 = 0x00064b40
    lse = MplsLse(label=100, tc=5, bos=True, ttl=64)
    assert lse.emit() == h("00064b40")
    assert lse.value == 0x00064B40
    assert MplsLse.parse(h("00064b40")) == lse
    assert MplsLse.parse(h("fffff0ff")) == MplsLse((1 << 20) - 1, 0, False, 255)


def test_pack_unpack() -> None:
    assert pack_lse(1, 7, False, 1) == 0x00001E01
    assert unpack_lse(0x00001E01) == (1, 7, False, 1)
    with pytest.raises(ValueError):
        pack_lse(1 << 20)
    with pytest.raises(ValueError):
        MplsLse(1, tc=8)


def test_matches_scapy() -> None:
    raw = bytes(MPLS(label=16, cos=3, s=0, ttl=10) / MPLS(label=17, cos=0, s=1, ttl=9))
    stack = parse_stack(raw)
    assert stack == (MplsLse(16, 3, False, 10), MplsLse(17, 0, True, 9))
    assert emit_stack(stack) == raw


def test_stack_needs_bottom() -> None:
    raw = MplsLse(1).emit() + MplsLse(2).emit()
    with pytest.raises(WireError):
        parse_stack(raw)
    with pytest.raises(WireError, match="bottom"):
        parse_stack(MplsLse(1).emit() * 3, max_depth=2)


def test_truncation() -> None:
    assert_truncations_raise(MplsLse.parse, h("00064b40"))
    assert_truncations_raise(parse_stack, MplsLse(1).emit() + MplsLse(2, bos=True).emit())


@given(st.integers(0, (1 << 20) - 1), st.integers(0, 7), st.booleans(), st.integers(0, 255))
def test_round_trip_and_scapy(label: int, tc: int, bos: bool, ttl: int) -> None:
    lse = MplsLse(label, tc, bos, ttl)
    assert MplsLse.parse(b"\x00" + lse.emit(), 1) == lse
    assert MplsLse.from_value(lse.value) == lse
    assert lse.emit() == bytes(MPLS(label=label, cos=tc, s=int(bos), ttl=ttl))
