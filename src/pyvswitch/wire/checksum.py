"""Internet checksum (RFC 1071), incremental update (RFC 1624), pseudo
headers for IPv4/IPv6, and CRC32c (Castagnoli, as used by SCTP).

``csum_partial`` returns an *unfolded* ones-complement sum that can be fed
back as ``acc``; only chain pieces whose earlier parts have even length.
"""

from __future__ import annotations

import struct

__all__ = [
    "checksum",
    "crc32c",
    "csum_fold",
    "csum_partial",
    "csum_replace2",
    "csum_replace4",
    "csum_replace_bytes",
    "pseudo_ipv4",
    "pseudo_ipv6",
]

_U16x8 = struct.Struct("!8H")


def csum_partial(data: bytes | bytearray | memoryview, acc: int = 0) -> int:
    """Ones-complement sum of ``data`` as big-endian 16-bit words, added to
    ``acc`` (unfolded: fold with :func:`csum_fold`).

    An odd trailing byte is treated as the high byte of a word padded with 0.
    The data read as one big-endian integer is sum(word * 65536**k), and
    65536 == 1 (mod 65535), so it is congruent to the sum of its words: one
    C-speed modulo replaces the word loop.  A non-zero sum that is a multiple
    of 65535 is 0xFFFF in ones-complement arithmetic (not 0)."""
    v = int.from_bytes(data, "big")
    if len(data) & 1:
        v <<= 8
    if not v:
        return acc
    return acc + (v % 0xFFFF or 0xFFFF)


def csum_fold(acc: int) -> int:
    """Fold a ones-complement accumulator to 16 bits (not complemented)."""
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return acc


def checksum(data: bytes | bytearray | memoryview, acc: int = 0) -> int:
    """The Internet checksum as stored in a header: ``~fold(sum) & 0xffff``."""
    return ~csum_fold(csum_partial(data, acc)) & 0xFFFF


def csum_replace2(check: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3: stored checksum after a 16-bit word changes old -> new."""
    return ~csum_fold((~check & 0xFFFF) + (~old & 0xFFFF) + (new & 0xFFFF)) & 0xFFFF


def csum_replace4(check: int, old: int, new: int) -> int:
    """Stored checksum after an aligned 32-bit value changes old -> new."""
    acc = (~check & 0xFFFF) + (~old >> 16 & 0xFFFF) + (~old & 0xFFFF)
    acc += (new >> 16 & 0xFFFF) + (new & 0xFFFF)
    return ~csum_fold(acc) & 0xFFFF


def csum_replace_bytes(
    check: int, old: bytes | bytearray | memoryview, new: bytes | bytearray | memoryview
) -> int:
    """Stored checksum after bytes ``old`` are replaced by ``new`` (same length).

    The changed bytes must start at an even offset of the checksummed data.
    """
    if len(old) != len(new):
        raise ValueError(f"csum_replace_bytes: length mismatch {len(old)} != {len(new)}")
    old_sum = csum_fold(csum_partial(old))
    acc = (~check & 0xFFFF) + (~old_sum & 0xFFFF) + csum_partial(new)
    return ~csum_fold(acc) & 0xFFFF


def pseudo_ipv4(src: int, dst: int, proto: int, length: int) -> int:
    """Unfolded sum of the IPv4 pseudo header (RFC 768 / RFC 793)."""
    return (
        (src >> 16)
        + (src & 0xFFFF)
        + (dst >> 16)
        + (dst & 0xFFFF)
        + (proto & 0xFF)
        + (length & 0xFFFF)
    )


def _sum128(addr: int) -> int:
    return sum(_U16x8.unpack(addr.to_bytes(16, "big")))


def pseudo_ipv6(src: int, dst: int, proto: int, length: int) -> int:
    """Unfolded sum of the IPv6 pseudo header (RFC 8200 section 8.1)."""
    return (
        _sum128(src) + _sum128(dst) + (length >> 16 & 0xFFFF) + (length & 0xFFFF) + (proto & 0xFF)
    )


def _make_crc32c_table() -> tuple[int, ...]:
    poly = 0x82F63B78  # reflected Castagnoli polynomial 0x1EDC6F41
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC32c (Castagnoli).  ``crc`` is a previous result, for chaining
    (``crc32c(b, crc32c(a)) == crc32c(a + b)``), like :func:`zlib.crc32`.

    SCTP stores this value little-endian in its checksum field.
    """
    table = _CRC32C_TABLE
    crc ^= 0xFFFFFFFF
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
