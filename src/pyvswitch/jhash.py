"""Bob Jenkins' lookup3 hash as the kernel's ``include/linux/jhash.h`` has it.

Used where the datapath hashes like the kernel: the vport name table
(``jhash(name, len, net)``), the mask cache's recirculation mix
(``jhash_1word(skb_hash, recirc_id)``) and the ``hash`` action.
"""

from __future__ import annotations

from typing import Final

JHASH_INITVAL: Final = 0xDEADBEEF
_M: Final = 0xFFFFFFFF


def _rol32(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - c) & _M
    a ^= _rol32(c, 4)
    c = (c + b) & _M
    b = (b - a) & _M
    b ^= _rol32(a, 6)
    a = (a + c) & _M
    c = (c - b) & _M
    c ^= _rol32(b, 8)
    b = (b + a) & _M
    a = (a - c) & _M
    a ^= _rol32(c, 16)
    c = (c + b) & _M
    b = (b - a) & _M
    b ^= _rol32(a, 19)
    a = (a + c) & _M
    c = (c - b) & _M
    c ^= _rol32(b, 4)
    b = (b + a) & _M
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    c ^= b
    c = (c - _rol32(b, 14)) & _M
    a ^= c
    a = (a - _rol32(c, 11)) & _M
    b ^= a
    b = (b - _rol32(a, 25)) & _M
    c ^= b
    c = (c - _rol32(b, 16)) & _M
    a ^= c
    a = (a - _rol32(c, 4)) & _M
    b ^= a
    b = (b - _rol32(a, 14)) & _M
    c ^= b
    c = (c - _rol32(b, 24)) & _M
    return c


def jhash(data: bytes, initval: int = 0) -> int:
    """``jhash(key, length, initval)`` over bytes (little-endian word reads,
    as on the x86 machines the kernel numbers come from)."""
    length = len(data)
    a = b = c = (JHASH_INITVAL + length + initval) & _M
    i = 0
    while length > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & _M
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & _M
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & _M
        a, b, c = _mix(a, b, c)
        length -= 12
        i += 12
    if length == 0:
        return c
    tail = data[i:] + bytes(12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & _M
    b = (b + int.from_bytes(tail[4:8], "little")) & _M
    c = (c + int.from_bytes(tail[8:12], "little")) & _M
    return _final(a, b, c)


def jhash_3words(a: int, b: int, c: int, initval: int) -> int:
    """``jhash_3words``: the kernel's ``__jhash_nwords`` for 3 words."""
    a = (a + JHASH_INITVAL + (3 << 2) + initval) & _M
    b = (b + JHASH_INITVAL + (3 << 2) + initval) & _M
    c = (c + JHASH_INITVAL + (3 << 2) + initval) & _M
    return _final(a, b, c)


def jhash_2words(a: int, b: int, initval: int) -> int:
    a = (a + JHASH_INITVAL + (2 << 2) + initval) & _M
    b = (b + JHASH_INITVAL + (2 << 2) + initval) & _M
    c = (JHASH_INITVAL + (2 << 2) + initval) & _M
    return _final(a, b, c)


def jhash_1word(a: int, initval: int) -> int:
    """``jhash_1word(a, initval)``."""
    a = (a + JHASH_INITVAL + (1 << 2) + initval) & _M
    b = (JHASH_INITVAL + (1 << 2) + initval) & _M
    c = (JHASH_INITVAL + (1 << 2) + initval) & _M
    return _final(a, b, c)
