"""IPv6 header (RFC 8200), 40 bytes, and extension headers.

Word 0 = version(4) | traffic class(8) | flow label(20); payload length
4-5, next header 6, hop limit 7, src 8-23, dst 24-39.

Extension headers: next header 0, length 1 (``(len+1)*8`` bytes; AH
``(len+2)*4``).  Fragment header (8): next header 0, reserved 1,
offset/flags 2-3 (offset = bits 15-3, M = bit 0), identification 4-7.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Self

from . import WireError, need
from .checksum import pseudo_ipv6

__all__ = [
    "EXT_HEADER_TYPES",
    "NEXTHDR_AH",
    "NEXTHDR_DEST",
    "NEXTHDR_FRAGMENT",
    "NEXTHDR_HOP",
    "NEXTHDR_ICMPV6",
    "NEXTHDR_NONE",
    "NEXTHDR_ROUTING",
    "ExtHeader",
    "FragmentHeader",
    "IPv6ExtWalk",
    "IPv6Header",
    "ip6_from_str",
    "ip6_to_str",
    "walk_ext_headers",
]

HEADER_LEN = 40
VER_TC_FLOW = slice(0, 4)
PAYLOAD_LEN = slice(4, 6)
NEXT_HEADER = 6
HOP_LIMIT = 7
SRC = slice(8, 24)
DST = slice(24, 40)

# Extension headers (offsets within the extension header).
EXT_NEXT_HEADER = 0
EXT_LEN = 1
EXT_MIN_LEN = 8
FRAG_HEADER_LEN = 8
FRAG_OFFLG = slice(2, 4)
FRAG_IDENT = slice(4, 8)
FRAG_OFFSET_MASK = 0xFFF8
FRAG_MORE = 0x0001

NEXTHDR_HOP = 0
NEXTHDR_TCP = 6
NEXTHDR_UDP = 17
NEXTHDR_ROUTING = 43
NEXTHDR_FRAGMENT = 44
NEXTHDR_ESP = 50
NEXTHDR_AH = 51
NEXTHDR_ICMPV6 = 58
NEXTHDR_NONE = 59
NEXTHDR_DEST = 60
NEXTHDR_SCTP = 132
#: Headers walked by :func:`walk_ext_headers` (as OVS's parse_ipv6_ext_hdrs).
EXT_HEADER_TYPES = frozenset(
    {NEXTHDR_HOP, NEXTHDR_ROUTING, NEXTHDR_FRAGMENT, NEXTHDR_AH, NEXTHDR_DEST}
)

_IPV6 = struct.Struct("!IHBB16s16s")
_EXT = struct.Struct("!BB")
_FRAG = struct.Struct("!BBHI")


def ip6_to_str(addr: int) -> str:
    return str(ipaddress.IPv6Address(addr))


def ip6_from_str(text: str) -> int:
    return int(ipaddress.IPv6Address(text))


@dataclass(frozen=True, slots=True)
class IPv6Header:
    """IPv6 fixed header.  ``payload_len`` of ``None`` is computed by emit."""

    src: int
    dst: int
    next_header: int
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0
    payload_len: int | None = None

    def __post_init__(self) -> None:
        for name, value, bits in (
            ("src", self.src, 128),
            ("dst", self.dst, 128),
            ("next_header", self.next_header, 8),
            ("hop_limit", self.hop_limit, 8),
            ("traffic_class", self.traffic_class, 8),
            ("flow_label", self.flow_label, 20),
        ):
            if not 0 <= value < 1 << bits:
                raise ValueError(f"ipv6 {name} {value:#x} does not fit in {bits} bits")
        if self.payload_len is not None and not 0 <= self.payload_len <= 0xFFFF:
            raise ValueError(f"ipv6 payload_len {self.payload_len} out of range")

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    def pseudo(self, length: int, proto: int | None = None) -> int:
        """Unfolded pseudo-header sum for an upper-layer packet of ``length`` bytes."""
        return pseudo_ipv6(self.src, self.dst, self.next_header if proto is None else proto, length)

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, HEADER_LEN, "ipv6")
        word0, plen, nh, hl, src, dst = _IPV6.unpack_from(buf, offset)
        if word0 >> 28 != 6:
            raise WireError(f"ipv6: version {word0 >> 28} is not 6")
        return cls(
            int.from_bytes(src, "big"),
            int.from_bytes(dst, "big"),
            nh,
            hl,
            word0 >> 20 & 0xFF,
            word0 & 0xFFFFF,
            plen,
        )

    def emit(self, payload: bytes = b"") -> bytes:
        plen = len(payload) if self.payload_len is None else self.payload_len
        if plen > 0xFFFF:
            raise ValueError(f"ipv6 payload length {plen} > 65535 (jumbograms unsupported)")
        return (
            _IPV6.pack(
                6 << 28 | self.traffic_class << 20 | self.flow_label,
                plen,
                self.next_header,
                self.hop_limit,
                self.src.to_bytes(16, "big"),
                self.dst.to_bytes(16, "big"),
            )
            + payload
        )


@dataclass(frozen=True, slots=True)
class ExtHeader:
    """A generic extension header (hop-by-hop, routing, destination options, AH).

    ``data`` is everything after the next-header and length bytes; its size
    must make the header a multiple of 8 bytes (of 4 bytes for AH).
    """

    header_type: int
    next_header: int
    data: bytes = b"\x00" * 6

    def __post_init__(self) -> None:
        unit = 4 if self.header_type == NEXTHDR_AH else 8
        size = 2 + len(self.data)
        if size % unit or size < EXT_MIN_LEN:
            raise ValueError(
                f"ipv6 ext header {self.header_type}: size {size} not a multiple of {unit} >= 8"
            )
        max_size = (0xFF + 2) * 4 if unit == 4 else (0xFF + 1) * 8
        if size > max_size:
            raise ValueError(f"ipv6 ext header {self.header_type}: size {size} too large")

    @property
    def header_len(self) -> int:
        return 2 + len(self.data)

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0, header_type: int = NEXTHDR_HOP) -> Self:
        need(buf, offset, 2, f"ipv6 ext header {header_type}")
        nh, hlen = _EXT.unpack_from(buf, offset)
        size = (hlen + 2) * 4 if header_type == NEXTHDR_AH else (hlen + 1) * 8
        need(buf, offset, size, f"ipv6 ext header {header_type}")
        return cls(header_type, nh, bytes(buf[offset + 2 : offset + size]))

    def emit(self, payload: bytes = b"") -> bytes:
        size = self.header_len
        hlen = size // 4 - 2 if self.header_type == NEXTHDR_AH else size // 8 - 1
        return _EXT.pack(self.next_header, hlen) + self.data + payload


@dataclass(frozen=True, slots=True)
class FragmentHeader:
    """IPv6 fragment header; ``offset`` in 8-byte units, ``more`` is the M flag."""

    next_header: int
    offset: int = 0
    more: bool = False
    ident: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.offset < 1 << 13 or not 0 <= self.ident < 1 << 32:
            raise ValueError(f"ipv6 fragment offset={self.offset} ident={self.ident} invalid")
        if not 0 <= self.next_header <= 0xFF:
            raise ValueError(f"ipv6 fragment next_header {self.next_header} out of range")

    @property
    def header_len(self) -> int:
        return FRAG_HEADER_LEN

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, FRAG_HEADER_LEN, "ipv6 fragment header")
        nh, _reserved, offlg, ident = _FRAG.unpack_from(buf, offset)
        return cls(nh, offlg >> 3, bool(offlg & FRAG_MORE), ident)

    def emit(self, payload: bytes = b"") -> bytes:
        offlg = self.offset << 3 | (FRAG_MORE if self.more else 0)
        return _FRAG.pack(self.next_header, 0, offlg, self.ident) + payload


@dataclass(frozen=True, slots=True)
class IPv6ExtWalk:
    """Result of :func:`walk_ext_headers`.

    ``next_header``/``offset``: the upper-layer protocol and its absolute
    offset.  ``headers``: ``(type, offset, length)`` of each extension header
    walked.  ``fragment``: the fragment header, if one was seen.  For a later
    fragment (offset != 0) the walk stops right after the fragment header;
    OVS then reports nw_proto 44 (``IPPROTO_FRAGMENT``) and frag "later".
    """

    next_header: int
    offset: int
    headers: tuple[tuple[int, int, int], ...] = ()
    fragment: FragmentHeader | None = None

    @property
    def is_fragment(self) -> bool:
        return self.fragment is not None and (self.fragment.offset != 0 or self.fragment.more)

    @property
    def later_fragment(self) -> bool:
        return self.fragment is not None and self.fragment.offset != 0


def walk_ext_headers(buf: bytes, offset: int, next_header: int) -> IPv6ExtWalk:
    """Skip hop-by-hop/routing/dest-opts/fragment/AH headers starting at
    ``offset`` (the byte after the fixed IPv6 header) whose type is
    ``next_header``.  Raises :class:`WireError` if a header is truncated."""
    headers: list[tuple[int, int, int]] = []
    fragment: FragmentHeader | None = None
    while next_header in EXT_HEADER_TYPES:
        if next_header == NEXTHDR_FRAGMENT:
            frag = FragmentHeader.parse(buf, offset)
            headers.append((next_header, offset, FRAG_HEADER_LEN))
            offset += FRAG_HEADER_LEN
            next_header = frag.next_header
            fragment = frag
            if frag.offset != 0:
                break
        else:
            ext = ExtHeader.parse(buf, offset, next_header)
            headers.append((next_header, offset, ext.header_len))
            offset += ext.header_len
            next_header = ext.next_header
    return IPv6ExtWalk(next_header, offset, tuple(headers), fragment)
