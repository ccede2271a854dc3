"""IPv4 header (RFC 791), 20-60 bytes.

ver/IHL 0, ToS 1 (DSCP 7-2, ECN 1-0), total length 2-3, id 4-5, flags/frag
6-7 (0x8000 reserved, 0x4000 DF, 0x2000 MF, 0x1FFF offset in 8-byte units),
TTL 8, proto 9, checksum 10-11, src 12-15, dst 16-19, options 20-.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from . import WireError, need
from .checksum import checksum, csum_fold, csum_partial, pseudo_ipv4

__all__ = [
    "FLAG_DF",
    "FLAG_MF",
    "FLAG_RESERVED",
    "IPv4Header",
    "ip_from_str",
    "ip_to_str",
    "verify_checksum",
]

HEADER_LEN = 20  # minimum, without options
MAX_HEADER_LEN = 60
VER_IHL = 0
TOS = 1
TOTAL_LEN = slice(2, 4)
IDENT = slice(4, 6)
FRAG = slice(6, 8)
TTL = 8
PROTO = 9
CHECKSUM = slice(10, 12)
SRC = slice(12, 16)
DST = slice(16, 20)
OPTIONS = 20

# Values of the 3-bit ``flags`` field of IPv4Header.
FLAG_RESERVED = 0b100
FLAG_DF = 0b010
FLAG_MF = 0b001
# Masks of the raw 16-bit flags/fragment-offset word (bytes 6-7).
FRAG_RESERVED = 0x8000
FRAG_DF = 0x4000
FRAG_MF = 0x2000
FRAG_OFFSET_MASK = 0x1FFF

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_GRE = 47
PROTO_SCTP = 132

_IPV4 = struct.Struct("!BBHHHBBHII")


def ip_to_str(addr: int) -> str:
    return ".".join(str(b) for b in addr.to_bytes(4, "big"))


def ip_from_str(text: str) -> int:
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) <= 255 for p in parts):
        raise ValueError(f"bad IPv4 address {text!r}")
    return int.from_bytes(bytes(int(p) for p in parts), "big")


@dataclass(frozen=True, slots=True)
class IPv4Header:
    """IPv4 header.  ``total_len``/``checksum`` of ``None`` are computed by emit.

    ``flags`` is the 3-bit field (FLAG_RESERVED|FLAG_DF|FLAG_MF),
    ``frag_offset`` is in 8-byte units, ``options`` are the raw option bytes
    (a multiple of 4, at most 40).
    """

    src: int
    dst: int
    proto: int
    ttl: int = 64
    tos: int = 0
    ident: int = 0
    flags: int = 0
    frag_offset: int = 0
    options: bytes = b""
    total_len: int | None = None
    checksum: int | None = None

    def __post_init__(self) -> None:
        for name, value, bits in (
            ("src", self.src, 32),
            ("dst", self.dst, 32),
            ("proto", self.proto, 8),
            ("ttl", self.ttl, 8),
            ("tos", self.tos, 8),
            ("ident", self.ident, 16),
            ("flags", self.flags, 3),
            ("frag_offset", self.frag_offset, 13),
        ):
            if not 0 <= value < 1 << bits:
                raise ValueError(f"ipv4 {name} {value:#x} does not fit in {bits} bits")
        if len(self.options) % 4 or len(self.options) > MAX_HEADER_LEN - HEADER_LEN:
            raise ValueError(f"ipv4 options length {len(self.options)} not a multiple of 4 <= 40")
        if self.total_len is not None and not self.header_len <= self.total_len <= 0xFFFF:
            raise ValueError(f"ipv4 total_len {self.total_len} out of range")
        if self.checksum is not None and not 0 <= self.checksum <= 0xFFFF:
            raise ValueError(f"ipv4 checksum {self.checksum:#x} out of range")

    @property
    def header_len(self) -> int:
        return HEADER_LEN + len(self.options)

    @property
    def ihl(self) -> int:
        return self.header_len // 4

    @property
    def df(self) -> bool:
        return bool(self.flags & FLAG_DF)

    @property
    def mf(self) -> bool:
        return bool(self.flags & FLAG_MF)

    @property
    def is_fragment(self) -> bool:
        return self.mf or self.frag_offset != 0

    @property
    def dscp(self) -> int:
        return self.tos >> 2

    @property
    def ecn(self) -> int:
        return self.tos & 3

    @property
    def payload_len(self) -> int | None:
        return None if self.total_len is None else self.total_len - self.header_len

    def pseudo(self, length: int, proto: int | None = None) -> int:
        """Unfolded pseudo-header sum for an L4 segment of ``length`` bytes."""
        return pseudo_ipv4(self.src, self.dst, self.proto if proto is None else proto, length)

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, HEADER_LEN, "ipv4")
        vihl, tos, total_len, ident, frag, ttl, proto, csum, src, dst = _IPV4.unpack_from(
            buf, offset
        )
        if vihl >> 4 != 4:
            raise WireError(f"ipv4: version {vihl >> 4} is not 4")
        hlen = (vihl & 0xF) * 4
        if hlen < HEADER_LEN:
            raise WireError(f"ipv4: IHL {hlen // 4} < 5")
        need(buf, offset, hlen, "ipv4 options")
        if total_len < hlen:
            raise WireError(f"ipv4: total length {total_len} < header length {hlen}")
        return cls(
            src,
            dst,
            proto,
            ttl,
            tos,
            ident,
            frag >> 13,
            frag & FRAG_OFFSET_MASK,
            bytes(buf[offset + HEADER_LEN : offset + hlen]),
            total_len,
            csum,
        )

    def emit(self, payload: bytes = b"") -> bytes:
        hlen = self.header_len
        total_len = hlen + len(payload) if self.total_len is None else self.total_len
        if total_len > 0xFFFF:
            raise ValueError(f"ipv4 total length {total_len} > 65535")
        fields = [
            0x40 | hlen // 4,
            self.tos,
            total_len,
            self.ident,
            self.flags << 13 | self.frag_offset,
            self.ttl,
            self.proto,
            0,
            self.src,
            self.dst,
        ]
        if self.checksum is not None:
            fields[7] = self.checksum
            return _IPV4.pack(*fields) + self.options + payload
        header = _IPV4.pack(*fields) + self.options
        csum = checksum(header)
        return header[:10] + csum.to_bytes(2, "big") + header[12:] + payload


def verify_checksum(buf: bytes, offset: int = 0) -> bool:
    """True if the IPv4 header at ``offset`` has a correct header checksum."""
    need(buf, offset, HEADER_LEN, "ipv4")
    hlen = (buf[offset] & 0xF) * 4
    need(buf, offset, max(hlen, HEADER_LEN), "ipv4 options")
    return csum_fold(csum_partial(buf[offset : offset + hlen])) == 0xFFFF
