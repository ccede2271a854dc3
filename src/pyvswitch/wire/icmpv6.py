"""ICMPv6 (RFC 4443) and Neighbor Discovery NS/NA (RFC 4861).

type 0, code 1, checksum 2-3 (over the IPv6 pseudo header, next header 58),
rest 4-7.  NS/NA: flags/reserved 4-7 (NA: R 0x80000000, S 0x40000000,
O 0x20000000), target 8-23, options from 24 (type 1 source LL / 2 target
LL, length in 8-byte units, MAC at option+2).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from . import WireError, need
from .checksum import checksum, csum_fold, csum_partial
from .ipv6 import IPv6Header

__all__ = [
    "ND_NA_OVERRIDE",
    "ND_NA_ROUTER",
    "ND_NA_SOLICITED",
    "ND_OPT_SOURCE_LL",
    "ND_OPT_TARGET_LL",
    "PROTO_ICMPV6",
    "TYPE_ECHO_REPLY",
    "TYPE_ECHO_REQUEST",
    "TYPE_NEIGHBOR_ADVERT",
    "TYPE_NEIGHBOR_SOLICIT",
    "Icmpv6Header",
    "NdMessage",
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

ND_HEADER_LEN = 24
ND_FLAGS = slice(4, 8)
ND_TARGET = slice(8, 24)
ND_OPTIONS = 24
ND_OPT_TYPE = 0
ND_OPT_LEN = 1
ND_OPT_LL_ADDR = slice(2, 8)
ND_OPT_LL_LEN = 8

PROTO_ICMPV6 = 58
TYPE_ECHO_REQUEST = 128
TYPE_ECHO_REPLY = 129
TYPE_NEIGHBOR_SOLICIT = 135
TYPE_NEIGHBOR_ADVERT = 136

ND_NA_ROUTER = 0x80000000
ND_NA_SOLICITED = 0x40000000
ND_NA_OVERRIDE = 0x20000000
ND_OPT_SOURCE_LL = 1
ND_OPT_TARGET_LL = 2

_ICMP6 = struct.Struct("!BBHI")
_ND = struct.Struct("!BBHI16s")
_LL_OPT = struct.Struct("!BB6s")


def _finish(header: bytes, rest: bytes, csum: int | None, ip: IPv6Header | None) -> bytes:
    """Insert the checksum (given, or computed over ip's pseudo header) at 2-3."""
    if csum is None:
        if ip is None:
            raise ValueError("icmpv6: computing the checksum needs the IPv6 header (ip=...)")
        pseudo = ip.pseudo(len(header) + len(rest), PROTO_ICMPV6)
        csum = checksum(rest, csum_partial(header, pseudo))
    return header[:2] + csum.to_bytes(2, "big") + header[4:] + rest


@dataclass(frozen=True, slots=True)
class Icmpv6Header:
    """The 8-byte ICMPv6 header; ``rest`` is bytes 4-7 as a 32-bit int."""

    type: int
    code: int = 0
    rest: int = 0
    checksum: int | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.type <= 0xFF and 0 <= self.code <= 0xFF and 0 <= self.rest < 1 << 32):
            raise ValueError(f"icmpv6 type={self.type} code={self.code} rest={self.rest} invalid")
        if self.checksum is not None and not 0 <= self.checksum <= 0xFFFF:
            raise ValueError(f"icmpv6 checksum {self.checksum:#x} out of range")

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

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, HEADER_LEN, "icmpv6")
        type_, code, csum, rest = _ICMP6.unpack_from(buf, offset)
        return cls(type_, code, rest, csum)

    def emit(self, payload: bytes = b"", *, ip: IPv6Header | None = None) -> bytes:
        """Header + payload; a ``None`` checksum is computed (needs ``ip``)."""
        header = _ICMP6.pack(self.type, self.code, 0, self.rest)
        return _finish(header, payload, self.checksum, ip)


@dataclass(frozen=True, slots=True)
class NdMessage:
    """Neighbor Solicitation (135) or Advertisement (136).

    ``sll``/``tll``: MACs from the source/target link-layer address options
    (Ethernet-sized, length 1), ``None`` if absent.  ``extra_options``: every
    other option (and trailing bytes) verbatim, in order.  Emit writes SLL,
    then TLL, then ``extra_options``; ``payload`` is appended after that.
    Parse treats everything from byte 24 to the end of ``buf`` as options,
    so pass a buffer that ends with the ICMPv6 message.
    """

    type: int
    target: int
    flags: int = 0
    sll: int | None = None
    tll: int | None = None
    extra_options: bytes = b""
    code: int = 0
    checksum: int | None = None

    def __post_init__(self) -> None:
        if self.type not in (TYPE_NEIGHBOR_SOLICIT, TYPE_NEIGHBOR_ADVERT):
            raise ValueError(f"nd: type {self.type} is not NS (135) or NA (136)")
        if not 0 <= self.target < 1 << 128 or not 0 <= self.flags < 1 << 32:
            raise ValueError("nd: target or flags out of range")
        for mac in (self.sll, self.tll):
            if mac is not None and not 0 <= mac < 1 << 48:
                raise ValueError(f"nd: link-layer address {mac:#x} out of range")
        if not 0 <= self.code <= 0xFF:
            raise ValueError(f"nd: code {self.code} out of range")
        if self.checksum is not None and not 0 <= self.checksum <= 0xFFFF:
            raise ValueError(f"nd: checksum {self.checksum:#x} out of range")

    @classmethod
    def solicit(cls, target: int, sll: int | None = None) -> Self:
        return cls(TYPE_NEIGHBOR_SOLICIT, target, 0, sll)

    @classmethod
    def advert(
        cls, target: int, tll: int | None = None, flags: int = ND_NA_SOLICITED | ND_NA_OVERRIDE
    ) -> Self:
        return cls(TYPE_NEIGHBOR_ADVERT, target, flags, None, tll)

    @property
    def header_len(self) -> int:
        return (
            ND_HEADER_LEN
            + (ND_OPT_LL_LEN if self.sll is not None else 0)
            + (ND_OPT_LL_LEN if self.tll is not None else 0)
            + len(self.extra_options)
        )

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, ND_HEADER_LEN, "icmpv6 nd")
        type_, code, csum, flags, target = _ND.unpack_from(buf, offset)
        if type_ not in (TYPE_NEIGHBOR_SOLICIT, TYPE_NEIGHBOR_ADVERT):
            raise WireError(f"icmpv6 nd: type {type_} is not NS (135) or NA (136)")
        sll: int | None = None
        tll: int | None = None
        extra = bytearray()
        pos = offset + ND_OPTIONS
        end = len(buf)
        while end - pos >= ND_OPT_LL_LEN:
            opt_type, opt_units = buf[pos], buf[pos + 1]
            opt_len = opt_units * 8
            if opt_len == 0:
                raise WireError(f"icmpv6 nd: option type {opt_type} at {pos} has length 0")
            if opt_len > end - pos:
                raise WireError(f"icmpv6 nd: option type {opt_type} at {pos} is truncated")
            if opt_type in (ND_OPT_SOURCE_LL, ND_OPT_TARGET_LL) and opt_len == ND_OPT_LL_LEN:
                mac = int.from_bytes(buf[pos + 2 : pos + 8], "big")
                if opt_type == ND_OPT_SOURCE_LL:
                    if sll is not None:
                        raise WireError("icmpv6 nd: duplicate source link-layer address option")
                    sll = mac
                else:
                    if tll is not None:
                        raise WireError("icmpv6 nd: duplicate target link-layer address option")
                    tll = mac
            else:
                extra += buf[pos : pos + opt_len]
            pos += opt_len
        extra += buf[pos:end]
        return cls(type_, int.from_bytes(target, "big"), flags, sll, tll, bytes(extra), code, csum)

    def emit(self, payload: bytes = b"", *, ip: IPv6Header | None = None) -> bytes:
        """Message + payload; a ``None`` checksum is computed (needs ``ip``)."""
        header = _ND.pack(self.type, self.code, 0, self.flags, self.target.to_bytes(16, "big"))
        opts = b""
        if self.sll is not None:
            opts += _LL_OPT.pack(ND_OPT_SOURCE_LL, 1, self.sll.to_bytes(6, "big"))
        if self.tll is not None:
            opts += _LL_OPT.pack(ND_OPT_TARGET_LL, 1, self.tll.to_bytes(6, "big"))
        return _finish(header, opts + self.extra_options + payload, self.checksum, ip)


def verify_checksum(message: bytes, ip: IPv6Header) -> bool:
    """True if the ICMPv6 ``message`` (header + body) has a correct checksum."""
    need(message, 0, HEADER_LEN, "icmpv6")
    pseudo = ip.pseudo(len(message), PROTO_ICMPV6)
    return csum_fold(csum_partial(message, pseudo)) == 0xFFFF


def echo_reply_for(message: bytes, ip: IPv6Header) -> bytes:
    """Echo reply answering echo request ``message``; ``ip`` is the *reply's*
    IPv6 header (src/dst already swapped), used for the checksum."""
    request = Icmpv6Header.parse(message)
    if request.type != TYPE_ECHO_REQUEST:
        raise WireError(f"icmpv6: type {request.type} is not an echo request")
    return Icmpv6Header(TYPE_ECHO_REPLY, 0, request.rest).emit(message[HEADER_LEN:], ip=ip)
