"""ICMP for IPv4 (RFC 792): type 0, code 1, checksum 2-3, rest 4-7.

The checksum covers the ICMP header and its payload (no pseudo header).
Echo request/reply carry identifier (4-5) and sequence number (6-7).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from . import WireError, need
from .checksum import checksum, csum_fold, csum_partial

__all__ = [
    "TYPE_DEST_UNREACH",
    "TYPE_ECHO_REPLY",
    "TYPE_ECHO_REQUEST",
    "TYPE_TIME_EXCEEDED",
    "IcmpHeader",
    "echo_reply_for",
    "verify_checksum",
]

HEADER_LEN = 8
TYPE = 0
CODE = 1
CHECKSUM = slice(2, 4)
REST = slice(4, 8)
IDENT = slice(4, 6)
SEQ = slice(6, 8)

TYPE_ECHO_REPLY = 0
TYPE_DEST_UNREACH = 3
TYPE_ECHO_REQUEST = 8
TYPE_TIME_EXCEEDED = 11

_ICMP = struct.Struct("!BBHI")


@dataclass(frozen=True, slots=True)
class IcmpHeader:
    """The 8-byte ICMP header; ``rest`` is bytes 4-7 as a 32-bit int."""

    type: int
    code: int = 0
    rest: int = 0
    checksum: int | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.type <= 0xFF and 0 <= self.code <= 0xFF and 0 <= self.rest < 1 << 32):
            raise ValueError(f"icmp type={self.type} code={self.code} rest={self.rest} invalid")
        if self.checksum is not None and not 0 <= self.checksum <= 0xFFFF:
            raise ValueError(f"icmp checksum {self.checksum:#x} out of range")

    @classmethod
    def echo_request(cls, ident: int, seq: int) -> Self:
        return cls(TYPE_ECHO_REQUEST, 0, (ident & 0xFFFF) << 16 | seq & 0xFFFF)

    @classmethod
    def echo_reply(cls, ident: int, seq: int) -> Self:
        return cls(TYPE_ECHO_REPLY, 0, (ident & 0xFFFF) << 16 | seq & 0xFFFF)

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @property
    def ident(self) -> int:
        return self.rest >> 16

    @property
    def seq(self) -> int:
        return self.rest & 0xFFFF

    @property
    def is_echo(self) -> bool:
        return self.type in (TYPE_ECHO_REQUEST, TYPE_ECHO_REPLY)

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, HEADER_LEN, "icmp")
        type_, code, csum, rest = _ICMP.unpack_from(buf, offset)
        return cls(type_, code, rest, csum)

    def emit(self, payload: bytes = b"") -> bytes:
        if self.checksum is not None:
            return _ICMP.pack(self.type, self.code, self.checksum, self.rest) + payload
        csum = checksum(payload, csum_partial(_ICMP.pack(self.type, self.code, 0, self.rest)))
        return _ICMP.pack(self.type, self.code, csum, self.rest) + payload


def verify_checksum(message: bytes) -> bool:
    """True if ``message`` (ICMP header + payload) has a correct checksum."""
    if len(message) < HEADER_LEN:
        raise WireError(f"icmp: truncated, {len(message)} bytes < {HEADER_LEN}")
    return csum_fold(csum_partial(message)) == 0xFFFF


def echo_reply_for(message: bytes) -> bytes:
    """The echo reply (header + same payload) answering echo request ``message``."""
    request = IcmpHeader.parse(message)
    if request.type != TYPE_ECHO_REQUEST:
        raise WireError(f"icmp: type {request.type} is not an echo request")
    return IcmpHeader(TYPE_ECHO_REPLY, 0, request.rest).emit(message[HEADER_LEN:])
