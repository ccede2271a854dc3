"""GRE (RFC 2784 + RFC 2890 key/sequence), IP protocol 47, and OVS's GRE64.

Flags word 0-1: C 0x8000, R 0x4000 (must be 0), K 0x2000, S 0x1000,
reserved0 bits 0x0FF8, version 0x0007 (must be 0); protocol type 2-3.
Optional words follow in the order checksum(+reserved1), key, sequence;
header length 4/8/12/16.  The checksum is the Internet checksum over the GRE
header and payload with the field zero.

GRE64 (OVS <= 2.4, notes section 7.1): K and S always set, key = low 32 bits of the
64-bit tun_id, sequence = high 32 bits.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from . import WireError, need
from .checksum import checksum, csum_fold, csum_partial

__all__ = [
    "FLAG_C",
    "FLAG_K",
    "FLAG_R",
    "FLAG_S",
    "PROTO_GRE",
    "PROTO_TEB",
    "GreHeader",
    "gre64_header",
    "gre64_tun_id",
    "verify_checksum",
]

HEADER_LEN = 4  # minimum, without optional words
MAX_HEADER_LEN = 16
FLAGS = slice(0, 2)
PROTOCOL = slice(2, 4)
OPTIONAL = 4  # first optional word (checksum if C, else key if K, else seq)
CHECKSUM = slice(4, 6)  # only when C is set
RESERVED1 = slice(6, 8)  # only when C is set

FLAG_C = 0x8000
FLAG_R = 0x4000
FLAG_K = 0x2000
FLAG_S = 0x1000
RESERVED0_MASK = 0x0FF8
RESERVED0_SHIFT = 3
VERSION_MASK = 0x0007

PROTO_GRE = 47
PROTO_TEB = 0x6558

_BASE = struct.Struct("!HH")
_WORD = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class GreHeader:
    """GRE header.  C is present iff ``csum``; K iff ``key`` is not None; S iff
    ``seq`` is not None.  With ``csum`` and ``checksum=None``, emit computes
    the checksum over header + payload.  ``reserved0`` (bits 4-12) round-trips
    but should be 0 (OVS userspace drops packets with it set)."""

    protocol: int
    key: int | None = None
    seq: int | None = None
    csum: bool = False
    checksum: int | None = None
    reserved0: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.protocol <= 0xFFFF:
            raise ValueError(f"gre protocol {self.protocol:#x} out of range")
        for name, value in (("key", self.key), ("seq", self.seq)):
            if value is not None and not 0 <= value < 1 << 32:
                raise ValueError(f"gre {name} {value:#x} does not fit in 32 bits")
        if self.checksum is not None:
            if not self.csum:
                raise ValueError("gre: checksum value given without csum=True")
            if not 0 <= self.checksum <= 0xFFFF:
                raise ValueError(f"gre checksum {self.checksum:#x} out of range")
        if not 0 <= self.reserved0 < 1 << 9:
            raise ValueError(f"gre reserved0 {self.reserved0:#x} does not fit in 9 bits")

    @property
    def flags(self) -> int:
        """The 16-bit flags/version word."""
        return (
            (FLAG_C if self.csum else 0)
            | (FLAG_K if self.key is not None else 0)
            | (FLAG_S if self.seq is not None else 0)
            | self.reserved0 << RESERVED0_SHIFT
        )

    @property
    def header_len(self) -> int:
        return (
            HEADER_LEN
            + (4 if self.csum else 0)
            + (4 if self.key is not None else 0)
            + (4 if self.seq is not None else 0)
        )

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, HEADER_LEN, "gre")
        flags, protocol = _BASE.unpack_from(buf, offset)
        if flags & FLAG_R:
            raise WireError("gre: routing present (R bit) is not supported")
        if flags & VERSION_MASK:
            raise WireError(f"gre: version {flags & VERSION_MASK} is not 0")
        hlen = HEADER_LEN + 4 * sum(bool(flags & f) for f in (FLAG_C, FLAG_K, FLAG_S))
        need(buf, offset, hlen, "gre")
        pos = offset + HEADER_LEN
        csum_value: int | None = None
        key: int | None = None
        seq: int | None = None
        if flags & FLAG_C:
            csum_value = _BASE.unpack_from(buf, pos)[0]
            pos += 4
        if flags & FLAG_K:
            key = _WORD.unpack_from(buf, pos)[0]
            pos += 4
        if flags & FLAG_S:
            seq = _WORD.unpack_from(buf, pos)[0]
        reserved0 = (flags & RESERVED0_MASK) >> RESERVED0_SHIFT
        return cls(protocol, key, seq, bool(flags & FLAG_C), csum_value, reserved0)

    def emit(self, payload: bytes = b"") -> bytes:
        parts = [_BASE.pack(self.flags, self.protocol)]
        if self.csum:
            parts.append(_BASE.pack(self.checksum or 0, 0))
        if self.key is not None:
            parts.append(_WORD.pack(self.key))
        if self.seq is not None:
            parts.append(_WORD.pack(self.seq))
        header = b"".join(parts)
        if self.csum and self.checksum is None:
            csum = checksum(payload, csum_partial(header))
            header = header[:4] + csum.to_bytes(2, "big") + header[6:]
        return header + payload


def verify_checksum(packet: bytes) -> bool:
    """True if GRE ``packet`` (header + payload) has no checksum or a correct one."""
    hdr = GreHeader.parse(packet)
    if not hdr.csum:
        return True
    return csum_fold(csum_partial(packet)) == 0xFFFF


def gre64_header(tun_id: int, protocol: int = PROTO_TEB, csum: bool = False) -> GreHeader:
    """OVS GRE64 transmit header: K+S, key = low 32 bits, seq = high 32 bits."""
    if not 0 <= tun_id < 1 << 64:
        raise ValueError(f"gre64 tun_id {tun_id:#x} does not fit in 64 bits")
    return GreHeader(protocol, key=tun_id & 0xFFFFFFFF, seq=tun_id >> 32, csum=csum)


def gre64_tun_id(header: GreHeader) -> int | None:
    """The 64-bit tun_id a GRE64 port receives, or None unless both K and S are set."""
    if header.key is None or header.seq is None:
        return None
    return header.seq << 32 | header.key
