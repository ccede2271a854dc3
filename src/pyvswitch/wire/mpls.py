"""MPLS label stack entries (RFC 3032), 4 bytes each.

label = bits 31-12, TC = bits 11-9, BoS = bit 8, TTL = bits 7-0.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from . import WireError, need

__all__ = ["MplsLse", "emit_stack", "pack_lse", "parse_stack", "unpack_lse"]

HEADER_LEN = 4
LABEL_MASK = 0xFFFFF000
LABEL_SHIFT = 12
TC_MASK = 0x00000E00
TC_SHIFT = 9
BOS_MASK = 0x00000100
BOS_SHIFT = 8
TTL_MASK = 0x000000FF

_LSE = struct.Struct("!I")


def pack_lse(label: int, tc: int = 0, bos: bool = False, ttl: int = 0) -> int:
    """Pack the fields into a 32-bit label stack entry."""
    if not (0 <= label < 1 << 20 and 0 <= tc < 8 and 0 <= ttl <= 0xFF):
        raise ValueError(f"mpls label={label} tc={tc} ttl={ttl} out of range")
    return label << LABEL_SHIFT | tc << TC_SHIFT | int(bos) << BOS_SHIFT | ttl


def unpack_lse(lse: int) -> tuple[int, int, bool, int]:
    """``(label, tc, bos, ttl)`` of a 32-bit label stack entry."""
    return (
        (lse & LABEL_MASK) >> LABEL_SHIFT,
        (lse & TC_MASK) >> TC_SHIFT,
        bool(lse & BOS_MASK),
        lse & TTL_MASK,
    )


@dataclass(frozen=True, slots=True)
class MplsLse:
    """One label stack entry."""

    label: int
    tc: int = 0
    bos: bool = False
    ttl: int = 64

    def __post_init__(self) -> None:
        pack_lse(self.label, self.tc, self.bos, self.ttl)

    @property
    def value(self) -> int:
        return pack_lse(self.label, self.tc, self.bos, self.ttl)

    @classmethod
    def from_value(cls, lse: int) -> Self:
        if not 0 <= lse < 1 << 32:
            raise ValueError(f"mpls lse {lse:#x} out of range")
        return cls(*unpack_lse(lse))

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, HEADER_LEN, "mpls")
        return cls.from_value(_LSE.unpack_from(buf, offset)[0])

    def emit(self, payload: bytes = b"") -> bytes:
        return _LSE.pack(self.value) + payload


def parse_stack(buf: bytes, offset: int = 0, max_depth: int = 64) -> tuple[MplsLse, ...]:
    """Entries from ``offset`` up to and including the bottom of stack."""
    stack: list[MplsLse] = []
    while True:
        lse = MplsLse.parse(buf, offset + HEADER_LEN * len(stack))
        stack.append(lse)
        if lse.bos:
            return tuple(stack)
        if len(stack) >= max_depth:
            raise WireError(f"mpls: no bottom of stack within {max_depth} entries")


def emit_stack(stack: tuple[MplsLse, ...] | list[MplsLse], payload: bytes = b"") -> bytes:
    return b"".join(lse.emit() for lse in stack) + payload
