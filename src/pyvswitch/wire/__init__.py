"""Wire formats: one small module per protocol header, smoltcp-style.

Every module has named field offsets (``slice`` objects or ``int`` byte
indices), a frozen dataclass per header with ``parse(buf, offset)`` and
``emit(payload)`` that mirror each other, and raises :class:`WireError` for
truncated or malformed input.  Addresses are ints everywhere (IPv4 32-bit,
IPv6 128-bit, MAC 48-bit).
"""

from __future__ import annotations

__all__ = ["WireError", "need"]


class WireError(ValueError):
    """Raised by every ``parse`` for truncated or malformed input."""


def need(buf: bytes | bytearray | memoryview, offset: int, length: int, what: str) -> None:
    """Raise :class:`WireError` unless ``buf[offset:offset + length]`` is all there."""
    if offset < 0:
        raise WireError(f"{what}: negative offset {offset}")
    have = len(buf) - offset
    if have < length:
        raise WireError(
            f"{what}: truncated, need {length} bytes at offset {offset}, have {max(have, 0)}"
        )
