"""LISP data-plane header as OVS builds it (notes section 7.4), UDP port 4341.

Byte 0: N 0x80, L 0x40, E 0x20, V 0x10, I 0x08, 3 flag bits; 1-3: nonce /
map-version; 4-6: instance id (when I is set); 7: locator status bits.
OVS transmits ``48 00 00 00 ii ii ii 01``; on receive tun_id = instance id
if I is set, else 0.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from . import need

__all__ = ["FLAG_I", "FLAG_L", "FLAG_N", "UDP_PORT", "LispHeader"]

HEADER_LEN = 8
FLAGS = 0
NONCE = slice(1, 4)
INSTANCE_ID = slice(4, 7)
LSB = 7

FLAG_N = 0x80
FLAG_L = 0x40
FLAG_E = 0x20
FLAG_V = 0x10
FLAG_I = 0x08
OVS_FLAGS = FLAG_L | FLAG_I  # 0x48
OVS_LSB = 0x01

UDP_PORT = 4341

_LISP = struct.Struct("!II")


@dataclass(frozen=True, slots=True)
class LispHeader:
    """The 8-byte LISP header, split as on the wire: ``flags`` byte, 24-bit
    ``nonce``, 24-bit ``instance_id`` and ``lsb`` byte.  When the I bit is
    clear, ``instance_id`` and ``lsb`` together are the 32 locator status
    bits; use :attr:`tun_id` for OVS's receive mapping."""

    instance_id: int = 0
    flags: int = OVS_FLAGS
    nonce: int = 0
    lsb: int = OVS_LSB

    def __post_init__(self) -> None:
        if not 0 <= self.instance_id < 1 << 24 or not 0 <= self.nonce < 1 << 24:
            raise ValueError(f"lisp iid {self.instance_id:#x} / nonce {self.nonce:#x} invalid")
        if not 0 <= self.flags <= 0xFF or not 0 <= self.lsb <= 0xFF:
            raise ValueError(f"lisp flags {self.flags:#x} / lsb {self.lsb:#x} invalid")

    @classmethod
    def make(cls, tun_id: int) -> Self:
        """OVS's transmit header: iid = low 24 bits of ``tun_id``."""
        return cls(tun_id & 0xFFFFFF)

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @property
    def has_instance_id(self) -> bool:
        return bool(self.flags & FLAG_I)

    @property
    def tun_id(self) -> int:
        """OVS receive mapping: the instance id if I is set, else 0."""
        return self.instance_id if self.flags & FLAG_I else 0

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, HEADER_LEN, "lisp")
        word1, word2 = _LISP.unpack_from(buf, offset)
        return cls(word2 >> 8, word1 >> 24, word1 & 0xFFFFFF, word2 & 0xFF)

    def emit(self, payload: bytes = b"") -> bytes:
        return _LISP.pack(self.flags << 24 | self.nonce, self.instance_id << 8 | self.lsb) + payload
