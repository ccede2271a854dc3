"""Tests of pyvswitch.wire; shared helpers live here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pyvswitch.wire import WireError


def assert_truncations_raise(
    parse: Callable[..., Any], data: bytes, upto: int | None = None
) -> None:
    """Every prefix of ``data`` shorter than ``upto`` (default: all of it)
    must make ``parse`` raise WireError, also when parsed at an offset."""
    end = len(data) if upto is None else upto
    for n in range(end):
        with pytest.raises(WireError):
            parse(data[:n])
        with pytest.raises(WireError):
            parse(b"\xee" * 3 + data[:n], 3)


def h(text: str) -> bytes:
    """Hex literal with optional whitespace: ``h("0800 45")``."""
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))
