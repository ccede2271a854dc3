"""ARP for Ethernet/IPv4 (RFC 826), 28 bytes.

hrd 0-1 (=1), pro 2-3 (=0x0800), hln 4 (=6), pln 5 (=4), op 6-7, sha 8-13,
spa 14-17, tha 18-23, tpa 24-27.  Other hardware/protocol combinations are
rejected by :meth:`ArpPacket.parse` (the datapath then leaves the ARP key
fields zero, as OVS does).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from . import WireError, need

__all__ = ["OP_REPLY", "OP_REQUEST", "ArpPacket"]

HEADER_LEN = 28
HTYPE = slice(0, 2)
PTYPE = slice(2, 4)
HLEN = 4
PLEN = 5
OPER = slice(6, 8)
SHA = slice(8, 14)
SPA = slice(14, 18)
THA = slice(18, 24)
TPA = slice(24, 28)

HTYPE_ETHERNET = 1
PTYPE_IPV4 = 0x0800
OP_REQUEST = 1
OP_REPLY = 2

_ARP = struct.Struct("!HHBBH6sI6sI")


@dataclass(frozen=True, slots=True)
class ArpPacket:
    """An Ethernet/IPv4 ARP packet; MACs are 48-bit ints, IPs 32-bit ints."""

    op: int
    sha: int
    spa: int
    tha: int
    tpa: int

    def __post_init__(self) -> None:
        if not 0 <= self.op <= 0xFFFF:
            raise ValueError(f"ARP op {self.op} out of range")
        for name, value, bits in (
            ("sha", self.sha, 48),
            ("tha", self.tha, 48),
            ("spa", self.spa, 32),
            ("tpa", self.tpa, 32),
        ):
            if not 0 <= value < 1 << bits:
                raise ValueError(f"ARP {name} {value:#x} out of range")

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, HEADER_LEN, "arp")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(buf, offset)
        if (htype, ptype, hlen, plen) != (HTYPE_ETHERNET, PTYPE_IPV4, 6, 4):
            raise WireError(
                f"arp: not Ethernet/IPv4 (hrd={htype} pro={ptype:#06x} hln={hlen} pln={plen})"
            )
        return cls(op, int.from_bytes(sha, "big"), spa, int.from_bytes(tha, "big"), tpa)

    def emit(self, payload: bytes = b"") -> bytes:
        return (
            _ARP.pack(
                HTYPE_ETHERNET,
                PTYPE_IPV4,
                6,
                4,
                self.op,
                self.sha.to_bytes(6, "big"),
                self.spa,
                self.tha.to_bytes(6, "big"),
                self.tpa,
            )
            + payload
        )

    def reply(self, mac: int) -> ArpPacket:
        """The reply a host owning ``self.tpa`` with MAC ``mac`` sends to this request."""
        return ArpPacket(OP_REPLY, mac, self.tpa, self.sha, self.spa)
