"""TCP (RFC 9293), 20-60 bytes.

src 0-1, dst 2-3, seq 4-7, ack 8-11, data offset (bits 15-12 of 12-13) +
reserved (11-9) + NS (8) + CWR ECE URG ACK PSH RST SYN FIN (7-0), window
14-15, checksum 16-17, urgent 18-19, options 20-.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from . import WireError, need
from .checksum import checksum, csum_fold, csum_partial
from .ipv4 import IPv4Header
from .ipv6 import IPv6Header

__all__ = [
    "ACK",
    "CWR",
    "ECE",
    "FIN",
    "NS",
    "PROTO_TCP",
    "PSH",
    "RST",
    "SYN",
    "URG",
    "TcpHeader",
    "verify_checksum",
]

HEADER_LEN = 20  # minimum, without options
MAX_HEADER_LEN = 60
SRC_PORT = slice(0, 2)
DST_PORT = slice(2, 4)
SEQ = slice(4, 8)
ACK_NUM = slice(8, 12)
OFF_FLAGS = slice(12, 14)
WINDOW = slice(14, 16)
CHECKSUM = slice(16, 18)
URGENT = slice(18, 20)
OPTIONS = 20

FIN = 0x001
SYN = 0x002
RST = 0x004
PSH = 0x008
ACK = 0x010
URG = 0x020
ECE = 0x040
CWR = 0x080
NS = 0x100
FLAGS_MASK = 0xFFF  # includes the 3 reserved bits, so parse/emit are exact

PROTO_TCP = 6

_TCP = struct.Struct("!HHIIHHHH")


@dataclass(frozen=True, slots=True)
class TcpHeader:
    """TCP header.  ``flags`` holds the low 12 bits of bytes 12-13 (reserved,
    NS and the 8 classic flags); ``options`` are raw bytes, a multiple of 4.
    ``checksum`` of ``None`` is computed by emit (which then needs ``ip``)."""

    src_port: int
    dst_port: int
    seq: int = 0
    ack: int = 0
    flags: int = 0
    window: int = 0
    urgent: int = 0
    options: bytes = b""
    checksum: int | None = None

    def __post_init__(self) -> None:
        for name, value, bits in (
            ("src_port", self.src_port, 16),
            ("dst_port", self.dst_port, 16),
            ("seq", self.seq, 32),
            ("ack", self.ack, 32),
            ("flags", self.flags, 12),
            ("window", self.window, 16),
            ("urgent", self.urgent, 16),
        ):
            if not 0 <= value < 1 << bits:
                raise ValueError(f"tcp {name} {value:#x} does not fit in {bits} bits")
        if len(self.options) % 4 or len(self.options) > MAX_HEADER_LEN - HEADER_LEN:
            raise ValueError(f"tcp options length {len(self.options)} not a multiple of 4 <= 40")
        if self.checksum is not None and not 0 <= self.checksum <= 0xFFFF:
            raise ValueError(f"tcp checksum {self.checksum:#x} out of range")

    @property
    def header_len(self) -> int:
        return HEADER_LEN + len(self.options)

    @property
    def data_offset(self) -> int:
        """Header length in 32-bit words."""
        return self.header_len // 4

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, HEADER_LEN, "tcp")
        src, dst, seq, ack, off_flags, window, csum, urgent = _TCP.unpack_from(buf, offset)
        hlen = (off_flags >> 12) * 4
        if hlen < HEADER_LEN:
            raise WireError(f"tcp: data offset {hlen // 4} < 5")
        need(buf, offset, hlen, "tcp options")
        options = bytes(buf[offset + HEADER_LEN : offset + hlen])
        return cls(src, dst, seq, ack, off_flags & FLAGS_MASK, window, urgent, options, csum)

    def _pack(self, csum: int) -> bytes:
        off_flags = self.header_len // 4 << 12 | self.flags
        return (
            _TCP.pack(
                self.src_port,
                self.dst_port,
                self.seq,
                self.ack,
                off_flags,
                self.window,
                csum,
                self.urgent,
            )
            + self.options
        )

    def emit(self, payload: bytes = b"", *, ip: IPv4Header | IPv6Header | None = None) -> bytes:
        if self.checksum is not None:
            return self._pack(self.checksum) + payload
        if ip is None:
            raise ValueError("tcp: computing the checksum needs the IP header (ip=...)")
        header = self._pack(0)
        length = len(header) + len(payload)
        csum = checksum(payload, csum_partial(header, ip.pseudo(length, PROTO_TCP)))
        return header[:16] + csum.to_bytes(2, "big") + header[18:] + payload


def verify_checksum(segment: bytes, ip: IPv4Header | IPv6Header) -> bool:
    """True if the TCP ``segment`` (header + payload) has a valid checksum."""
    need(segment, 0, HEADER_LEN, "tcp")
    return csum_fold(csum_partial(segment, ip.pseudo(len(segment), PROTO_TCP))) == 0xFFFF
