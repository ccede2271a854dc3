"""A fast packet generator for the forwarding benchmark (a script).

    python3 benchmarks/pktgen.py IFNAME --dst-mac 02:00:00:00:00:02 --seconds 5

Sends 64-byte Ethernet/IPv4/UDP frames (60 bytes without the FCS) out of
``IFNAME`` as fast as it can: an AF_PACKET socket with ``PACKET_QDISC_BYPASS``
and one ``sendmmsg`` (ctypes) of ``--batch`` messages per call, all pointing
at a few prebuilt frames -- no per-packet Python work at all.  Prints one
JSON line: ``{"sent": N, "seconds": S, "pps": N/S, "errors": E}``.

Run it inside the generator's namespace (``ip netns exec``) and pinned to a
core (``taskset``); ``benchmarks/forwarding.py`` does both.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import socket
import sys
import time

from pyvswitch.backends.linux.syscalls import (
    PACKET_QDISC_BYPASS,
    SOL_PACKET,
    IoVec,
    MMsgHdr,
    bind_ll,
    sendmmsg,
)

FRAME_LEN = 60


def udp_frame(src_mac: bytes, dst_mac: bytes, sport: int, dport: int = 9) -> bytes:
    """60-byte UDP frame 10.99.0.1 -> 10.99.0.2 with valid checksums."""
    from pyvswitch.wire.ipv4 import IPv4Header
    from pyvswitch.wire.udp import UdpHeader

    src, dst = 0x0A630001, 0x0A630002
    ip = IPv4Header(src, dst, 17, ident=1, ttl=64)
    udp = UdpHeader(sport, dport).emit(bytes(FRAME_LEN - 14 - 20 - 8), ip=ip)
    return dst_mac + src_mac + b"\x08\x00" + ip.emit(udp)


def parse_mac(s: str) -> bytes:
    b = bytes(int(x, 16) for x in s.split(":"))
    if len(b) != 6:
        raise argparse.ArgumentTypeError(f"bad MAC {s!r}")
    return b


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ifname")
    ap.add_argument("--dst-mac", type=parse_mac, default=parse_mac("02:00:00:00:00:02"))
    ap.add_argument("--src-mac", type=parse_mac, default=parse_mac("02:00:00:00:00:01"))
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--flows", type=int, default=1, help="distinct UDP source ports")
    args = ap.parse_args(argv)

    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
    s.setsockopt(socket.SOL_SOCKET, 32, 8 << 20)  # SO_SNDBUFFORCE
    bind_ll(s, socket.if_nametoindex(args.ifname), 0)

    frames = [udp_frame(args.src_mac, args.dst_mac, 1024 + i) for i in range(args.flows)]
    bufs = [ctypes.create_string_buffer(f, len(f)) for f in frames]
    n = max(1, min(args.batch, 1024))
    iovs = (IoVec * n)()
    msgs = (MMsgHdr * n)()
    for i in range(n):
        b = bufs[i % len(bufs)]
        iovs[i].iov_base = ctypes.addressof(b)
        iovs[i].iov_len = FRAME_LEN
        msgs[i].msg_hdr.msg_iov = ctypes.addressof(iovs[i])
        msgs[i].msg_hdr.msg_iovlen = 1
    addr = ctypes.addressof(msgs)
    fd = s.fileno()

    sent = errors = 0
    t0 = time.perf_counter()
    end = t0 + args.seconds
    now = t0
    while now < end:
        for _ in range(32):
            r, _err = sendmmsg(fd, addr, n, 0)
            if r > 0:
                sent += r
            else:
                errors += 1
        now = time.perf_counter()
    dt = now - t0
    json.dump({"sent": sent, "seconds": dt, "pps": sent / dt, "errors": errors}, sys.stdout)
    sys.stdout.write("\n")
    s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
