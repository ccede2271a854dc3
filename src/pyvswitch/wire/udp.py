"""UDP (RFC 768): src 0-1, dst 2-3, length 4-5, checksum 6-7.

The checksum covers an IPv4/IPv6 pseudo header, the UDP header and payload.
A computed checksum of 0 is sent as 0xFFFF; a stored 0 means "no checksum"
(IPv4 only).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from . import WireError, need
from .checksum import checksum, csum_fold, csum_partial, csum_replace_bytes
from .ipv4 import IPv4Header
from .ipv6 import IPv6Header

__all__ = ["PROTO_UDP", "UdpHeader", "update_checksum", "verify_checksum"]

HEADER_LEN = 8
SRC_PORT = slice(0, 2)
DST_PORT = slice(2, 4)
LENGTH = slice(4, 6)
CHECKSUM = slice(6, 8)

PROTO_UDP = 17

_UDP = struct.Struct("!HHHH")


@dataclass(frozen=True, slots=True)
class UdpHeader:
    """UDP header.  ``length``/``checksum`` of ``None`` are computed by emit."""

    src_port: int
    dst_port: int
    length: int | None = None
    checksum: int | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.src_port <= 0xFFFF and 0 <= self.dst_port <= 0xFFFF):
            raise ValueError(f"udp ports {self.src_port}/{self.dst_port} out of range")
        if self.length is not None and not HEADER_LEN <= self.length <= 0xFFFF:
            raise ValueError(f"udp length {self.length} out of range")
        if self.checksum is not None and not 0 <= self.checksum <= 0xFFFF:
            raise ValueError(f"udp checksum {self.checksum:#x} out of range")

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, HEADER_LEN, "udp")
        src, dst, length, csum = _UDP.unpack_from(buf, offset)
        if length < HEADER_LEN:
            raise WireError(f"udp: length field {length} < {HEADER_LEN}")
        return cls(src, dst, length, csum)

    def emit(self, payload: bytes = b"", *, ip: IPv4Header | IPv6Header | None = None) -> bytes:
        """Header + payload.  A ``None`` checksum is computed with ``ip``'s
        pseudo header, or left 0 ("no checksum", IPv4 only) without ``ip``."""
        length = HEADER_LEN + len(payload) if self.length is None else self.length
        if length > 0xFFFF:
            raise ValueError(f"udp length {length} > 65535")
        if self.checksum is not None:
            return _UDP.pack(self.src_port, self.dst_port, length, self.checksum) + payload
        if ip is None:
            return _UDP.pack(self.src_port, self.dst_port, length, 0) + payload
        header = _UDP.pack(self.src_port, self.dst_port, length, 0)
        csum = checksum(payload, csum_partial(header, ip.pseudo(length, PROTO_UDP))) or 0xFFFF
        return header[:6] + csum.to_bytes(2, "big") + payload


def verify_checksum(segment: bytes, ip: IPv4Header | IPv6Header) -> bool:
    """True if the UDP ``segment`` (header + payload) has a valid checksum
    (a zero checksum is valid over IPv4 only)."""
    hdr = UdpHeader.parse(segment)
    length = hdr.length if hdr.length is not None else len(segment)
    need(segment, 0, length, "udp payload")
    if hdr.checksum == 0:
        return isinstance(ip, IPv4Header)
    pseudo = ip.pseudo(length, PROTO_UDP)
    return csum_fold(csum_partial(segment[:length], pseudo)) == 0xFFFF


def update_checksum(check: int, old: bytes, new: bytes) -> int:
    """Incrementally update a stored UDP checksum (even-aligned ``old`` -> ``new``),
    as the datapath's set actions do: 0 stays 0, a result of 0 becomes 0xFFFF."""
    if check == 0:
        return 0
    return csum_replace_bytes(check, old, new) or 0xFFFF
