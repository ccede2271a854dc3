"""SCTP common header (RFC 9260), 12 bytes.

src 0-1, dst 2-3, verification tag 4-7, checksum 8-11.  The checksum is
CRC32c over the whole packet with the field zeroed, stored little-endian
(i.e. the four wire bytes are ``crc32c(...).to_bytes(4, "little")``).
``SctpHeader.checksum`` holds the CRC32c value itself.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from . import need
from .checksum import crc32c

__all__ = [
    "PROTO_SCTP",
    "SctpHeader",
    "compute_checksum",
    "update_checksum",
    "verify_checksum",
]

HEADER_LEN = 12
SRC_PORT = slice(0, 2)
DST_PORT = slice(2, 4)
VTAG = slice(4, 8)
CHECKSUM = slice(8, 12)

PROTO_SCTP = 132

_SCTP = struct.Struct("!HHI")
_ZERO4 = b"\x00\x00\x00\x00"


@dataclass(frozen=True, slots=True)
class SctpHeader:
    """SCTP common header.  ``checksum`` of ``None`` is computed by emit."""

    src_port: int
    dst_port: int
    vtag: int = 0
    checksum: int | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.src_port <= 0xFFFF and 0 <= self.dst_port <= 0xFFFF):
            raise ValueError(f"sctp ports {self.src_port}/{self.dst_port} out of range")
        if not 0 <= self.vtag < 1 << 32:
            raise ValueError(f"sctp vtag {self.vtag:#x} out of range")
        if self.checksum is not None and not 0 <= self.checksum < 1 << 32:
            raise ValueError(f"sctp checksum {self.checksum:#x} out of range")

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, HEADER_LEN, "sctp")
        src, dst, vtag = _SCTP.unpack_from(buf, offset)
        csum = int.from_bytes(buf[offset + 8 : offset + 12], "little")
        return cls(src, dst, vtag, csum)

    def emit(self, payload: bytes = b"") -> bytes:
        head = _SCTP.pack(self.src_port, self.dst_port, self.vtag)
        csum = self.checksum
        if csum is None:
            csum = crc32c(payload, crc32c(_ZERO4, crc32c(head)))
        return head + csum.to_bytes(4, "little") + payload


def compute_checksum(packet: bytes) -> int:
    """The correct CRC32c of SCTP ``packet`` (header + chunks), ignoring its field."""
    need(packet, 0, HEADER_LEN, "sctp")
    return crc32c(packet[HEADER_LEN:], crc32c(_ZERO4, crc32c(packet[:8])))


def verify_checksum(packet: bytes) -> bool:
    return SctpHeader.parse(packet).checksum == compute_checksum(packet)


def update_checksum(old_packet: bytes, new_packet: bytes) -> int:
    """The checksum for ``new_packet`` after a set action changed ``old_packet``,
    preserving any pre-existing error (``old_field ^ correct_old ^ correct_new``)."""
    old_field = SctpHeader.parse(old_packet).checksum
    assert old_field is not None
    return old_field ^ compute_checksum(old_packet) ^ compute_checksum(new_packet)
