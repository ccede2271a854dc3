"""Reading capture files, and ``pyvswitch parse-pcap`` (our counterpart of
``ovs-ofctl parse-pcap``): the flow key the datapath extracts from every
packet of a capture, one line each, in OVS's datapath flow syntax.

Reads classic pcap (either byte order, microsecond or nanosecond timestamps)
and pcapng (enhanced and simple packet blocks), link type Ethernet.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import flow
from .errors import PyvswitchError

LINKTYPE_ETHERNET = 1

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = 0x0A0D0D0A


class PcapError(PyvswitchError):
    """A capture file that cannot be read."""


@dataclass(frozen=True, slots=True)
class Packet:
    timestamp: float
    data: bytes
    orig_len: int
    linktype: int


def read_pcap(path: str | Path) -> Iterator[Packet]:
    """The packets of a pcap or pcapng file."""
    data = Path(path).read_bytes()
    if len(data) < 4:
        raise PcapError(f"{path}: not a capture file (too short)")
    if data[:4] in _PCAP_MAGICS:
        yield from _read_classic(str(path), data)
    elif int.from_bytes(data[:4], "little") == _PCAPNG_SHB:
        yield from _read_pcapng(str(path), data)
    else:
        raise PcapError(f"{path}: not a pcap or pcapng file (magic {data[:4].hex()})")


def _read_classic(path: str, data: bytes) -> Iterator[Packet]:
    endian, tick = _PCAP_MAGICS[data[:4]]
    if len(data) < 24:
        raise PcapError(f"{path}: truncated pcap header")
    (linktype,) = struct.unpack_from(endian + "I", data, 20)
    rec = struct.Struct(endian + "IIII")
    off = 24
    while off < len(data):
        if off + 16 > len(data):
            raise PcapError(f"{path}: truncated packet record at offset {off}")
        sec, frac, incl, orig = rec.unpack_from(data, off)
        off += 16
        if off + incl > len(data):
            raise PcapError(f"{path}: truncated packet data at offset {off}")
        yield Packet(sec + frac * tick, data[off : off + incl], orig, linktype & 0xFFFF)
        off += incl


def _read_pcapng(path: str, data: bytes) -> Iterator[Packet]:
    off = 0
    endian = "<"
    linktypes: list[int] = []
    tsres: list[float] = []
    while off + 12 <= len(data):
        btype = int.from_bytes(data[off : off + 4], "little" if endian == "<" else "big")
        if btype == _PCAPNG_SHB:
            bom = data[off + 8 : off + 12]
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            linktypes, tsres = [], []
        (blen,) = struct.unpack_from(endian + "I", data, off + 4)
        if blen < 12 or off + blen > len(data):
            raise PcapError(f"{path}: bad pcapng block length at offset {off}")
        body = data[off + 8 : off + blen - 4]
        if btype == 1:  # interface description
            (lt,) = struct.unpack_from(endian + "H", body, 0)
            linktypes.append(lt)
            tsres.append(_if_tsresol(body[8:], endian))
        elif btype == 6:  # enhanced packet block
            iface, ts_hi, ts_lo, cap, orig = struct.unpack_from(endian + "IIIII", body, 0)
            lt = linktypes[iface] if iface < len(linktypes) else LINKTYPE_ETHERNET
            res = tsres[iface] if iface < len(tsres) else 1e-6
            ts = ((ts_hi << 32) | ts_lo) * res
            yield Packet(ts, body[20 : 20 + cap], orig, lt)
        elif btype == 3:  # simple packet block
            (orig,) = struct.unpack_from(endian + "I", body, 0)
            lt = linktypes[0] if linktypes else LINKTYPE_ETHERNET
            yield Packet(0.0, body[4 : 4 + orig], orig, lt)
        off += blen


def _if_tsresol(options: bytes, endian: str) -> float:
    off = 0
    while off + 4 <= len(options):
        code, length = struct.unpack_from(endian + "HH", options, off)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = options[off + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0**-v
        off += 4 + ((length + 3) & ~3)
    return 1e-6


def write_pcap(path: str | Path, frames: list[bytes], linktype: int = LINKTYPE_ETHERNET) -> None:
    """Write frames as a classic little-endian pcap file."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for i, f in enumerate(frames):
        out.append(struct.pack("<IIII", i, 0, len(f), len(f)) + f)
    Path(path).write_bytes(b"".join(out))


def parse_pcap_lines(path: str | Path, in_port: int = 0) -> Iterator[str]:
    """One line per packet: the flow key ``key_extract`` builds for it,
    formatted as OVS prints a datapath flow key."""
    from .odp import format_flow

    for pkt in read_pcap(path):
        if pkt.linktype != LINKTYPE_ETHERNET:
            yield f"(link type {pkt.linktype} not supported)"
            continue
        key = flow.extract(pkt.data, in_port)
        if key is None:
            yield f"(packet too short for an Ethernet header: {len(pkt.data)} bytes)"
            continue
        # a key alone prints verbosely, as OVS's odp_flow_key_format does
        yield format_flow(key, None, verbose=True)
