"""Ethernet II header, 802.1Q/802.1ad tags and LLC/SNAP.

Layout (notes section 2.6): dst 0-5, src 6-11, type/length 12-13 (< 0x0600 is an
802.3 length).  A VLAN tag is the 4 bytes TPID + TCI inserted at offset 12
(before the inner ethertype).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from . import WireError, need

__all__ = [
    "ETH_TYPE_ARP",
    "ETH_TYPE_IPV4",
    "ETH_TYPE_IPV6",
    "ETH_TYPE_MIN",
    "ETH_TYPE_MPLS",
    "ETH_TYPE_MPLS_MCAST",
    "ETH_TYPE_NSH",
    "ETH_TYPE_QINQ",
    "ETH_TYPE_TEB",
    "ETH_TYPE_VLAN",
    "EthernetHeader",
    "LlcSnapHeader",
    "VlanTag",
    "mac_from_str",
    "mac_to_str",
    "pop_vlan",
    "push_vlan",
    "walk_vlan_tags",
]

HEADER_LEN = 14
DST = slice(0, 6)
SRC = slice(6, 12)
ETHERTYPE = slice(12, 14)

TAG_LEN = 4
TAG_TPID = slice(0, 2)
TAG_TCI = slice(2, 4)
#: Offset of the first VLAN tag (and of the ethertype of an untagged frame).
VLAN_OFFSET = 12

TCI_PCP_MASK = 0xE000
TCI_PCP_SHIFT = 13
TCI_CFI = 0x1000  # DEI; OVS keys use it as "tag present"
TCI_VID_MASK = 0x0FFF

ETH_TYPE_MIN = 0x0600
ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_TEB = 0x6558
ETH_TYPE_VLAN = 0x8100
ETH_TYPE_IPV6 = 0x86DD
ETH_TYPE_MPLS = 0x8847
ETH_TYPE_MPLS_MCAST = 0x8848
ETH_TYPE_QINQ = 0x88A8
ETH_TYPE_NSH = 0x894F
VLAN_TPIDS = frozenset({ETH_TYPE_VLAN, ETH_TYPE_QINQ})

LLC_SNAP_LEN = 8
LLC_DSAP = 0
LLC_SSAP = 1
LLC_CONTROL = 2
SNAP_OUI = slice(3, 6)
SNAP_TYPE = slice(6, 8)

_ETH = struct.Struct("!6s6sH")
_TAG = struct.Struct("!HH")
_SNAP = struct.Struct("!BBB3sH")


def mac_to_str(mac: int) -> str:
    """``0x0a0b0c0d0e0f`` -> ``"0a:0b:0c:0d:0e:0f"``."""
    return ":".join(f"{b:02x}" for b in mac.to_bytes(6, "big"))


def mac_from_str(text: str) -> int:
    """``"0a:0b:0c:0d:0e:0f"`` -> ``0x0a0b0c0d0e0f``."""
    parts = text.split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
        raise ValueError(f"bad MAC address {text!r}")
    return int.from_bytes(bytes(int(p, 16) for p in parts), "big")


def _check_mac(name: str, value: int) -> None:
    if not 0 <= value < 1 << 48:
        raise ValueError(f"{name} {value:#x} is not a 48-bit MAC")


@dataclass(frozen=True, slots=True)
class EthernetHeader:
    """The 14-byte Ethernet II / 802.3 header."""

    dst: int
    src: int
    ethertype: int

    def __post_init__(self) -> None:
        _check_mac("dst", self.dst)
        _check_mac("src", self.src)
        if not 0 <= self.ethertype <= 0xFFFF:
            raise ValueError(f"ethertype {self.ethertype:#x} out of range")

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @property
    def is_802_3(self) -> bool:
        """True when the type field is an 802.3 length (< 0x0600)."""
        return self.ethertype < ETH_TYPE_MIN

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, HEADER_LEN, "ethernet")
        dst, src, ethertype = _ETH.unpack_from(buf, offset)
        return cls(int.from_bytes(dst, "big"), int.from_bytes(src, "big"), ethertype)

    def emit(self, payload: bytes = b"") -> bytes:
        return (
            _ETH.pack(self.dst.to_bytes(6, "big"), self.src.to_bytes(6, "big"), self.ethertype)
            + payload
        )


@dataclass(frozen=True, slots=True)
class VlanTag:
    """An 802.1Q / 802.1ad tag: TPID (0-1) and TCI (2-3)."""

    tpid: int
    tci: int

    def __post_init__(self) -> None:
        if not 0 <= self.tpid <= 0xFFFF or not 0 <= self.tci <= 0xFFFF:
            raise ValueError(f"bad VLAN tag tpid={self.tpid:#x} tci={self.tci:#x}")

    @classmethod
    def make(cls, vid: int, pcp: int = 0, dei: bool = False, tpid: int = ETH_TYPE_VLAN) -> Self:
        if not 0 <= vid <= TCI_VID_MASK or not 0 <= pcp <= 7:
            raise ValueError(f"bad VLAN vid={vid} pcp={pcp}")
        return cls(tpid, pcp << TCI_PCP_SHIFT | (TCI_CFI if dei else 0) | vid)

    @property
    def pcp(self) -> int:
        return self.tci >> TCI_PCP_SHIFT

    @property
    def dei(self) -> bool:
        return bool(self.tci & TCI_CFI)

    @property
    def vid(self) -> int:
        return self.tci & TCI_VID_MASK

    @property
    def header_len(self) -> int:
        return TAG_LEN

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        """Parse TPID+TCI at ``offset``; the TPID must be 0x8100 or 0x88a8."""
        need(buf, offset, TAG_LEN, "vlan tag")
        tpid, tci = _TAG.unpack_from(buf, offset)
        if tpid not in VLAN_TPIDS:
            raise WireError(f"vlan tag: TPID {tpid:#06x} is not 0x8100/0x88a8")
        return cls(tpid, tci)

    def emit(self, payload: bytes = b"") -> bytes:
        return _TAG.pack(self.tpid, self.tci) + payload


def walk_vlan_tags(
    buf: bytes, offset: int = 0, max_tags: int = 2
) -> tuple[tuple[VlanTag, ...], int, int]:
    """Read up to ``max_tags`` VLAN tags of the frame starting at ``offset``.

    Returns ``(tags, ethertype, l3_offset)`` where ``ethertype`` is the type
    after the tags (possibly another TPID if there were more than
    ``max_tags``) and ``l3_offset`` is the absolute offset after it.
    """
    need(buf, offset, HEADER_LEN, "ethernet")
    pos = offset + VLAN_OFFSET
    tags: list[VlanTag] = []
    while len(tags) < max_tags:
        (tpid,) = struct.unpack_from("!H", buf, pos)
        if tpid not in VLAN_TPIDS:
            break
        need(buf, pos, TAG_LEN + 2, "vlan tag")
        tags.append(VlanTag.parse(buf, pos))
        pos += TAG_LEN
    (ethertype,) = struct.unpack_from("!H", buf, pos)
    return tuple(tags), ethertype, pos + 2


def push_vlan(frame: bytes, tag: VlanTag, offset: int = VLAN_OFFSET) -> bytes:
    """Insert ``tag`` (TPID+TCI) at ``offset`` (default: the outermost position)."""
    need(frame, offset, 0, "push_vlan")
    if offset < VLAN_OFFSET:
        raise WireError(f"push_vlan: offset {offset} is inside the MAC addresses")
    if len(frame) < VLAN_OFFSET + 2:
        raise WireError(f"push_vlan: frame of {len(frame)} bytes has no ethertype")
    return frame[:offset] + tag.emit() + frame[offset:]


def pop_vlan(frame: bytes, offset: int = VLAN_OFFSET) -> tuple[VlanTag, bytes]:
    """Remove the tag at ``offset``; returns ``(tag, frame_without_tag)``."""
    if offset < VLAN_OFFSET:
        raise WireError(f"pop_vlan: offset {offset} is inside the MAC addresses")
    need(frame, offset, TAG_LEN + 2, "pop_vlan")
    tag = VlanTag.parse(frame, offset)
    return tag, frame[:offset] + frame[offset + TAG_LEN :]


@dataclass(frozen=True, slots=True)
class LlcSnapHeader:
    """802.2 LLC + SNAP (8 bytes), used after an 802.3 length field."""

    ethertype: int
    oui: int = 0
    dsap: int = 0xAA
    ssap: int = 0xAA
    control: int = 0x03

    @property
    def header_len(self) -> int:
        return LLC_SNAP_LEN

    @property
    def is_snap(self) -> bool:
        """True for the form OVS decodes: AA AA 03 00 00 00."""
        return self.dsap == 0xAA and self.ssap == 0xAA and self.control == 0x03 and not self.oui

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, LLC_SNAP_LEN, "llc/snap")
        dsap, ssap, control, oui, ethertype = _SNAP.unpack_from(buf, offset)
        return cls(ethertype, int.from_bytes(oui, "big"), dsap, ssap, control)

    def emit(self, payload: bytes = b"") -> bytes:
        return (
            _SNAP.pack(
                self.dsap, self.ssap, self.control, self.oui.to_bytes(3, "big"), self.ethertype
            )
            + payload
        )
