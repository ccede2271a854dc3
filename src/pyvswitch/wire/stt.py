"""STT (draft-davie-stt-06) as OVS's kernel module builds it, "TCP" port 7471.

STT frame = 16-byte header + 2 bytes padding (together the 18-byte "STT
frame header" of the draft, OVS ``STT_BASE_HLEN``) + inner Ethernet frame:

  0 version (0) | 1 flags | 2 L4 offset | 3 reserved | 4-5 MSS |
  6-7 VLAN TCI (PCP 15-13, V 0x1000, VID 11-0) | 8-15 context id (tun_id) |
  16-17 padding

Flags: 0x01 checksum verified, 0x02 checksum partial, 0x04 inner IPv4,
0x08 inner TCP.  The STT frame travels in "TCP" segments: seq =
``(stt_frame_len << 16) | offset``, ack = packet id (same for every segment
of one frame), ACK|PSH (PSH only on the last segment), window 65535.
"""

from __future__ import annotations

import struct
import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

from . import WireError, need
from .ipv4 import IPv4Header
from .ipv6 import IPv6Header
from .tcp import ACK, PSH, TcpHeader

__all__ = [
    "FLAG_CSUM_PARTIAL",
    "FLAG_CSUM_VERIFIED",
    "FLAG_IPV4",
    "FLAG_TCP",
    "TCP_PORT",
    "SttHeader",
    "SttReassembler",
    "make_seq",
    "split_seq",
    "stt_segment",
    "stt_tcp_header",
    "stt_tcp_segments",
]

#: Bytes before the inner frame: 16 bytes of fields + 2 bytes of padding.
HEADER_LEN = 18
FIELDS_LEN = 16
PAD_LEN = 2
VERSION = 0
FLAGS = 1
L4_OFFSET = 2
RESERVED = 3
MSS = slice(4, 6)
VLAN_TCI = slice(6, 8)
CONTEXT_ID = slice(8, 16)
PADDING = slice(16, 18)

FLAG_CSUM_VERIFIED = 0x01
FLAG_CSUM_PARTIAL = 0x02
FLAG_IPV4 = 0x04
FLAG_TCP = 0x08
VLAN_PRESENT = 0x1000

TCP_PORT = 7471
SEQ_LEN_SHIFT = 16
SEQ_OFFSET_MASK = 0xFFFF
MAX_FRAME_LEN = 0xFFFF

_STT = struct.Struct("!BBBBHHQ2x")


@dataclass(frozen=True, slots=True)
class SttHeader:
    """STT frame header (with its 2 bytes of padding); ``context_id`` is the
    64-bit tun_id, ``vlan_tci`` the inner frame's TCI with V = 0x1000."""

    context_id: int
    flags: int = 0
    l4_offset: int = 0
    mss: int = 0
    vlan_tci: int = 0
    reserved: int = 0

    def __post_init__(self) -> None:
        for name, value, bits in (
            ("context_id", self.context_id, 64),
            ("flags", self.flags, 8),
            ("l4_offset", self.l4_offset, 8),
            ("mss", self.mss, 16),
            ("vlan_tci", self.vlan_tci, 16),
            ("reserved", self.reserved, 8),
        ):
            if not 0 <= value < 1 << bits:
                raise ValueError(f"stt {name} {value:#x} does not fit in {bits} bits")

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @property
    def vlan_present(self) -> bool:
        return bool(self.vlan_tci & VLAN_PRESENT)

    @property
    def csum_partial(self) -> bool:
        return bool(self.flags & FLAG_CSUM_PARTIAL)

    @classmethod
    def parse(cls, buf: bytes, offset: int = 0) -> Self:
        need(buf, offset, HEADER_LEN, "stt")
        version, flags, l4_offset, reserved, mss, tci, context = _STT.unpack_from(buf, offset)
        if version != 0:
            raise WireError(f"stt: version {version} is not 0")
        return cls(context, flags, l4_offset, mss, tci, reserved)

    def emit(self, payload: bytes = b"") -> bytes:
        return (
            _STT.pack(
                0,
                self.flags,
                self.l4_offset,
                self.reserved,
                self.mss,
                self.vlan_tci,
                self.context_id,
            )
            + payload
        )


def make_seq(frame_len: int, offset: int) -> int:
    """The outer TCP sequence number of the segment at ``offset``."""
    if not 0 < frame_len <= MAX_FRAME_LEN or not 0 <= offset < frame_len:
        raise ValueError(f"stt: bad frame length {frame_len} / offset {offset}")
    return frame_len << SEQ_LEN_SHIFT | offset


def split_seq(seq: int) -> tuple[int, int]:
    """``(stt_frame_len, offset)`` encoded in an outer TCP sequence number."""
    return seq >> SEQ_LEN_SHIFT, seq & SEQ_OFFSET_MASK


def stt_segment(frame: bytes, mss: int) -> list[tuple[int, bytes]]:
    """Cut an STT frame (header + padding + inner frame) into ``(seq, payload)``
    pieces of at most ``mss`` bytes, as TSO/GSO would."""
    if mss <= 0:
        raise ValueError(f"stt: mss {mss} must be positive")
    total = len(frame)
    if not 0 < total <= MAX_FRAME_LEN:
        raise ValueError(f"stt: frame length {total} not in 1..65535")
    return [(make_seq(total, off), frame[off : off + mss]) for off in range(0, total, mss)]


def stt_tcp_header(
    src_port: int, dst_port: int, seq: int, packet_id: int, *, last: bool = True
) -> TcpHeader:
    """The outer TCP-like header of one segment (checksum left to emit)."""
    return TcpHeader(
        src_port,
        dst_port,
        seq=seq,
        ack=packet_id,
        flags=ACK | PSH if last else ACK,
        window=0xFFFF,
    )


def stt_tcp_segments(
    frame: bytes,
    mss: int,
    *,
    src_port: int,
    dst_port: int = TCP_PORT,
    packet_id: int,
    ip: IPv4Header | IPv6Header,
) -> list[bytes]:
    """Outer TCP segments (header + piece, checksummed with ``ip``'s pseudo
    header) carrying STT ``frame``; ``mss`` is path MTU - IP - 20."""
    pieces = stt_segment(frame, mss)
    return [
        stt_tcp_header(src_port, dst_port, seq, packet_id, last=i == len(pieces) - 1).emit(
            data, ip=ip
        )
        for i, (seq, data) in enumerate(pieces)
    ]


@dataclass(slots=True)
class _Entry:
    tot_len: int
    timestamp: float
    offsets: list[int] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)
    rcvd: int = 0


_Key = tuple[int, int, int]


class SttReassembler:
    """Bounded reassembly of STT frames from outer TCP segments.

    Keyed by ``(src, dst, packet_id)`` (outer addresses and ack number).  At
    most ``max_entries`` frames in progress (least recently updated evicted
    first), at most ``max_bytes`` buffered (evict down to ``low_bytes``), and
    entries older than ``timeout`` seconds since their first segment expire.
    Segments that are empty, overlap data already held, end beyond the frame
    length, or disagree with the entry's frame length are dropped.
    """

    def __init__(
        self,
        max_entries: int = 256,
        timeout: float = 30.0,
        max_bytes: int = 4 << 20,
        low_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("stt reassembler: limits must be positive")
        self.max_entries = max_entries
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.low_bytes = max_bytes * 3 // 4 if low_bytes is None else low_bytes
        self.clock = clock
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self.mem_used = 0
        self.dropped = 0
        self.evicted = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _free(self, key: _Key) -> None:
        entry = self._entries.pop(key)
        self.mem_used -= entry.rcvd

    def expire(self, now: float | None = None) -> int:
        """Drop entries older than the timeout; returns how many."""
        now = self.clock() if now is None else now
        old = [k for k, e in self._entries.items() if now - e.timestamp >= self.timeout]
        for key in old:
            self._free(key)
        self.expired += len(old)
        return len(old)

    def add(
        self,
        src: int,
        dst: int,
        packet_id: int,
        seq: int,
        payload: bytes,
        now: float | None = None,
    ) -> bytes | None:
        """Feed one segment's payload; returns the whole STT frame once complete."""
        tot_len, offset = split_seq(seq)
        length = len(payload)
        if length == 0 or offset + length > tot_len:
            self.dropped += 1
            return None
        if length == tot_len:
            return bytes(payload)
        now = self.clock() if now is None else now
        key = (src, dst, packet_id)
        entry = self._entries.get(key)
        if entry is not None and now - entry.timestamp >= self.timeout:
            self._free(key)
            self.expired += 1
            entry = None
        if self.mem_used + length > self.max_bytes:
            while self._entries and self.mem_used + length > self.low_bytes:
                self._free(next(iter(self._entries)))
                self.evicted += 1
        if entry is None:
            if len(self._entries) >= self.max_entries:
                self.expire(now)
            while len(self._entries) >= self.max_entries:
                self._free(next(iter(self._entries)))
                self.evicted += 1
            entry = _Entry(tot_len, now)
            self._entries[key] = entry
        elif entry.tot_len != tot_len:
            self.dropped += 1
            return None
        i = bisect_left(entry.offsets, offset)
        if i > 0 and entry.offsets[i - 1] + len(entry.pieces[i - 1]) > offset:
            self.dropped += 1
            return None
        if i < len(entry.offsets) and offset + length > entry.offsets[i]:
            self.dropped += 1
            return None
        entry.offsets.insert(i, offset)
        entry.pieces.insert(i, bytes(payload))
        entry.rcvd += length
        self.mem_used += length
        if entry.rcvd == entry.tot_len:
            self._free(key)
            return b"".join(entry.pieces)
        self._entries.move_to_end(key)
        return None
