"""Geneve (RFC 8926), UDP port 6081.

Byte 0: Ver (top 2 bits, 0) | Opt Len (6 bits, options length in 4-byte
words).  Byte 1: O 0x80 (OAM), C 0x40 (critical options present), rest
reserved.  2-3: protocol type (0x6558 Ethernet).  4-6: VNI, 7: reserved.
Options from 8, each: class 0-1, type 2 (0x80 = critical), byte 3: 3
reserved bits | length (5 bits, data length in 4-byte words), data.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self

from . import WireError, need

__all__ = [
    "FLAG_CRITICAL",
    "FLAG_OAM",
    "OPT_TYPE_CRITICAL",
    "UDP_PORT",
    "GeneveHeader",
    "GeneveOption",
    "emit_options",
    "parse_options",
]

HEADER_LEN = 8  # without options
VER_OPTLEN = 0
FLAGS = 1
PROTOCOL = slice(2, 4)
VNI = slice(4, 7)
RESERVED = 7
OPTIONS = 8

VERSION_SHIFT = 6
OPTLEN_MASK = 0x3F
FLAG_OAM = 0x80
FLAG_CRITICAL = 0x40
MAX_OPTIONS_LEN = OPTLEN_MASK * 4  # 252

OPT_HEADER_LEN = 4
OPT_CLASS = slice(0, 2)
OPT_TYPE = 2
OPT_LEN = 3
OPT_TYPE_CRITICAL = 0x80
OPT_LEN_MASK = 0x1F
OPT_RESERVED_SHIFT = 5
MAX_OPT_DATA_LEN = OPT_LEN_MASK * 4  # 124

UDP_PORT = 6081
PROTO_TEB = 0x6558

_GENEVE = struct.Struct("!BBHI")
_OPT = struct.Struct("!HBB")


@dataclass(frozen=True, slots=True)
class GeneveOption:
    """One option TLV; ``data`` is a multiple of 4 bytes, at most 124."""

    opt_class: int
    type: int
    data: bytes = b""
    reserved: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.opt_class <= 0xFFFF or not 0 <= self.type <= 0xFF:
            raise ValueError(f"geneve option class={self.opt_class} type={self.type} invalid")
        if len(self.data) % 4 or len(self.data) > MAX_OPT_DATA_LEN:
            raise ValueError(f"geneve option data length {len(self.data)} not 4k <= 124")
        if not 0 <= self.reserved < 8:
            raise ValueError(f"geneve option reserved bits {self.reserved} out of range")

    @property
    def critical(self) -> bool:
        return bool(self.type & OPT_TYPE_CRITICAL)

    @property
    def header_len(self) -> int:
        return OPT_HEADER_LEN + len(self.data)

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, OPT_HEADER_LEN, "geneve option")
        opt_class, type_, len_byte = _OPT.unpack_from(buf, offset)
        size = OPT_HEADER_LEN + (len_byte & OPT_LEN_MASK) * 4
        need(buf, offset, size, "geneve option data")
        data = bytes(buf[offset + OPT_HEADER_LEN : offset + size])
        return cls(opt_class, type_, data, len_byte >> OPT_RESERVED_SHIFT)

    def emit(self, payload: bytes = b"") -> bytes:
        len_byte = self.reserved << OPT_RESERVED_SHIFT | len(self.data) // 4
        return _OPT.pack(self.opt_class, self.type, len_byte) + self.data + payload


def parse_options(data: bytes) -> tuple[GeneveOption, ...]:
    """Split raw option bytes into TLVs; :class:`WireError` if one overruns."""
    opts: list[GeneveOption] = []
    pos = 0
    while pos < len(data):
        opt = GeneveOption.parse(data, pos)
        opts.append(opt)
        pos += opt.header_len
    return tuple(opts)


def emit_options(options: Iterable[GeneveOption]) -> bytes:
    return b"".join(opt.emit() for opt in options)


@dataclass(frozen=True, slots=True)
class GeneveHeader:
    """Geneve header.  ``options`` are the raw option bytes (round-tripped
    verbatim).  ``critical`` of ``None`` is computed by emit: set iff any
    option has the critical type bit."""

    vni: int
    protocol: int = PROTO_TEB
    options: bytes = b""
    oam: bool = False
    critical: bool | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.vni < 1 << 24:
            raise ValueError(f"geneve vni {self.vni:#x} does not fit in 24 bits")
        if not 0 <= self.protocol <= 0xFFFF:
            raise ValueError(f"geneve protocol {self.protocol:#x} out of range")
        if len(self.options) % 4 or len(self.options) > MAX_OPTIONS_LEN:
            raise ValueError(f"geneve options length {len(self.options)} not 4k <= 252")

    @property
    def header_len(self) -> int:
        return HEADER_LEN + len(self.options)

    @property
    def opt_len(self) -> int:
        """Options length in 4-byte words."""
        return len(self.options) // 4

    def parsed_options(self) -> tuple[GeneveOption, ...]:
        return parse_options(self.options)

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, HEADER_LEN, "geneve")
        ver_optlen, flags, protocol, word2 = _GENEVE.unpack_from(buf, offset)
        if ver_optlen >> VERSION_SHIFT:
            raise WireError(f"geneve: version {ver_optlen >> VERSION_SHIFT} is not 0")
        hlen = HEADER_LEN + (ver_optlen & OPTLEN_MASK) * 4
        need(buf, offset, hlen, "geneve options")
        return cls(
            word2 >> 8,
            protocol,
            bytes(buf[offset + HEADER_LEN : offset + hlen]),
            bool(flags & FLAG_OAM),
            bool(flags & FLAG_CRITICAL),
        )

    def emit(self, payload: bytes = b"") -> bytes:
        critical = self.critical
        if critical is None:
            critical = any(opt.critical for opt in parse_options(self.options))
        flags = (FLAG_OAM if self.oam else 0) | (FLAG_CRITICAL if critical else 0)
        return (
            _GENEVE.pack(len(self.options) // 4, flags, self.protocol, self.vni << 8)
            + self.options
            + payload
        )
