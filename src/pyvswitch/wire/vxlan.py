"""VXLAN (RFC 7348), UDP port 4789, with the Group Based Policy extension.

Word 1 (0-3): flags; I = 0x08000000 (VNI valid).  Word 2 (4-7): VNI << 8 |
reserved byte.  GBP (draft-smith-vxlan-group-policy): G = 0x80000000 (policy
present), D = 0x00400000 (don't learn), A = 0x00080000 (policy applied),
policy id = low 16 bits of word 1.

OVS GBP metadata (``OVS_VXLAN_EXT_GBP``, notes section 7.2): bits 0-15 policy id,
bit 22 D, bit 19 A - i.e. the same bit positions as in word 1; transmit sets
G whenever the metadata is non-zero.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from . import WireError, need

__all__ = [
    "FLAG_G",
    "FLAG_I",
    "GBP_A",
    "GBP_D",
    "UDP_PORT",
    "VxlanHeader",
]

HEADER_LEN = 8
FLAGS = slice(0, 4)
VNI = slice(4, 7)
RESERVED = 7

UDP_PORT = 4789

FLAG_I = 0x08000000
FLAG_G = 0x80000000
GBP_D = 0x00400000
GBP_A = 0x00080000
GBP_POLICY_ID_MASK = 0x0000FFFF
#: Bits of the OVS gbp metadata value that are carried on the wire.
GBP_METADATA_MASK = GBP_D | GBP_A | GBP_POLICY_ID_MASK
#: Bits of word 1 that Linux treats as consumed when G is set.
GBP_USED_BITS = FLAG_G | 0x00FFFFFF

_VXLAN = struct.Struct("!II")


@dataclass(frozen=True, slots=True)
class VxlanHeader:
    """VXLAN header: ``flags`` is all of word 1 (including the GBP bits and
    policy id), ``vni`` 24 bits, ``reserved`` the low byte of word 2."""

    vni: int
    flags: int = FLAG_I
    reserved: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.vni < 1 << 24:
            raise ValueError(f"vxlan vni {self.vni:#x} does not fit in 24 bits")
        if not 0 <= self.flags < 1 << 32 or not 0 <= self.reserved <= 0xFF:
            raise ValueError(f"vxlan flags {self.flags:#x} / reserved {self.reserved} invalid")

    @classmethod
    def make(cls, tun_id: int, gbp: int = 0) -> Self:
        """The OVS transmit header: VNI = low 24 bits of ``tun_id``; GBP from
        the OVS metadata value ``gbp`` (G set iff it is non-zero)."""
        flags = FLAG_I
        if gbp:
            flags |= FLAG_G | gbp & GBP_METADATA_MASK
        return cls(tun_id & 0xFFFFFF, flags)

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @property
    def has_vni(self) -> bool:
        return bool(self.flags & FLAG_I)

    @property
    def has_gbp(self) -> bool:
        return bool(self.flags & FLAG_G)

    @property
    def policy_id(self) -> int:
        return self.flags & GBP_POLICY_ID_MASK

    @property
    def dont_learn(self) -> bool:
        return bool(self.flags & GBP_D)

    @property
    def policy_applied(self) -> bool:
        return bool(self.flags & GBP_A)

    @property
    def gbp(self) -> int:
        """The OVS gbp metadata value received (0 when G is not set)."""
        return self.flags & GBP_METADATA_MASK if self.flags & FLAG_G else 0

    def validate(self, gbp: bool = False) -> None:
        """Raise :class:`WireError` if a receiver would drop this header: the
        I flag is missing, an unknown flag is set (GBP bits are known only
        with ``gbp=True``), or the reserved byte of word 2 is non-zero."""
        if not self.flags & FLAG_I:
            raise WireError(f"vxlan: I flag missing (flags {self.flags:#010x})")
        allowed = FLAG_I | (GBP_USED_BITS if gbp and self.flags & FLAG_G else 0)
        if self.flags & ~allowed:
            raise WireError(f"vxlan: invalid flags {self.flags:#010x}")
        if self.reserved:
            raise WireError(f"vxlan: reserved byte {self.reserved:#04x} is not 0")

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, HEADER_LEN, "vxlan")
        flags, word2 = _VXLAN.unpack_from(buf, offset)
        return cls(word2 >> 8, flags, word2 & 0xFF)

    def emit(self, payload: bytes = b"") -> bytes:
        return _VXLAN.pack(self.flags, self.vni << 8 | self.reserved) + payload
