from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import IP, SCTP, SCTPChunkData, SCTPChunkInit

from pyvswitch.wire.checksum import crc32c
from pyvswitch.wire.sctp import (
    SctpHeader,
    compute_checksum,
    update_checksum,
    verify_checksum,
)

from . import assert_truncations_raise, h

# crc32c(00010002 00000003 00000000) = 0x19b32809, stored little-endian.
VECTOR = h("0001 0002 00000003 0928b319")


def test_exact_bytes() -> None:
    assert crc32c(h("0001 0002 00000003 00000000")) == 0x19B32809
    assert SctpHeader(1, 2, 3).emit() == VECTOR
    assert SctpHeader.parse(VECTOR) == SctpHeader(1, 2, 3, 0x19B32809)
    assert bytes(SCTP(sport=1, dport=2, tag=3)) == VECTOR


def test_with_chunks_matches_scapy() -> None:
    raw = bytes(SCTP(sport=5000, dport=38412, tag=0) / SCTPChunkInit(init_tag=0x11223344))
    hdr = SctpHeader.parse(raw)
    chunks = raw[12:]
    assert dataclasses.replace(hdr, checksum=None).emit(chunks) == raw
    assert verify_checksum(raw)
    assert compute_checksum(raw) == hdr.checksum
    assert not verify_checksum(raw[:-1] + b"\x01")


def test_update_checksum_preserves_error() -> None:
    old = bytes(SCTP(sport=100, dport=200, tag=9) / SCTPChunkData(data=b"abc"))
    new_ports = SctpHeader(101, 200, 9).emit(old[12:])
    # correct in -> correct out
    assert update_checksum(old, new_ports) == SctpHeader.parse(new_ports).checksum
    # a wrong checksum stays wrong by the same XOR difference
    bad = old[:8] + bytes(b ^ 0x5A for b in old[8:12]) + old[12:]
    fixed = update_checksum(bad, new_ports)
    good = SctpHeader.parse(new_ports).checksum
    assert good is not None
    assert fixed ^ good == 0x5A5A5A5A


def test_truncation() -> None:
    assert_truncations_raise(SctpHeader.parse, VECTOR)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, (1 << 32) - 1),
    st.binary(max_size=40),
)
def test_matches_scapy(sport: int, dport: int, tag: int, data: bytes) -> None:
    raw = bytes(
        IP(src="1.1.1.1", dst="2.2.2.2")
        / SCTP(sport=sport, dport=dport, tag=tag)
        / SCTPChunkData(data=data)
    )[20:]
    ours = SctpHeader(sport, dport, tag).emit(raw[12:])
    assert ours == raw
    parsed = SctpHeader.parse(ours)
    assert dataclasses.replace(parsed, checksum=None) == SctpHeader(sport, dport, tag)
    assert parsed.checksum == int.from_bytes(raw[8:12], "little")
