"""The tunnel underlay of a :class:`~.namespace.LinuxNetns`: real kernel
sockets behind :class:`~pyvswitch.device.TunnelSocket`.

The tunnel vports build whole outer IP packets and receive whole outer IP
packets (``docs/tunnels.md``); this module moves them through the kernel of
the namespace the ``LinuxNetns`` stands for.  The host routes the outer
packets; nothing here picks a device.

**Send** (every type): one raw socket per address family, ``IPPROTO_RAW``,
i.e. ``IP_HDRINCL`` (IPv6: ``IPV6_HDRINCL``, Linux >= 4.5): the packet leaves
as built.  The kernel rewrites nothing of an IPv6 packet; of an IPv4 header it
always recomputes the total length and header checksum (the vports' are
already right) and fills in an IP id of 0 on a packet without DF (with DF it
stays 0).  A packet longer than the route's MTU is refused (``EMSGSIZE``; raw
sockets do not fragment) and counted.

**Receive**, per type:

* UDP tunnels (vxlan, geneve, lisp): kernel UDP sockets bound to the port (so
  the host does not answer ICMP port unreachable, and a port in use gives
  ``EADDRINUSE``), ``UDP_NO_CHECK6_RX`` on IPv6 (zero checksums, as OVS's
  tunnel sockets accept).  The kernel has verified the UDP checksum and
  stripped the headers, so the outer packet is *rebuilt* from the source
  address and port (``msg_name``), the destination address (``IP_PKTINFO``
  / ``IPV6_PKTINFO``) and the TOS / TTL (``IP_RECVTOS`` / ``IP_RECVTTL``,
  ``IPV6_RECVTCLASS`` / ``IPV6_RECVHOPLIMIT``).  Whether the datagram carried
  a UDP checksum (the tunnel key's ``csum`` flag) is not in the ancillary
  data: two sockets share the port with ``SO_REUSEPORT`` and a classic BPF
  ``SO_ATTACH_REUSEPORT_CBPF`` program steers datagrams with a zero checksum
  to the first and the others to the second; the rebuilt datagram gets a
  computed checksum exactly when the original had one.  Not reproduced: the
  IPv4 id, DF and options, the IPv6 flow label (none of them reaches the
  tunnel metadata).
* GRE and GRE64: a raw ``IPPROTO_GRE`` socket.  IPv4 raw sockets deliver the
  packet from its IP header on, byte for byte; IPv6 raw sockets deliver from
  the GRE header on, and the 40-byte header is rebuilt from ancillary data.
* STT: a raw ``IPPROTO_TCP`` socket with a classic BPF filter on the
  destination port (``SO_ATTACH_FILTER``; only those segments are copied to
  the process), plus a TCP socket bound to the port (never listening) that
  reserves it.  The host's TCP still sees the segments and would answer each
  with a RST: an nftables table ``inet pyvswitch_stt_PORT`` with one rule
  dropping RSTs from the STT port on output is installed in the namespace
  while the socket is open (``nft``, Debian ``nftables``; without it the
  tunnel works and a warning says that the host answers with RSTs).

  Where the kernel has a GRE driver (``ip_gre``: fallback devices ``gre0`` /
  ``gretap0`` exist) it answers unmatched GRE packets with ICMP port
  unreachable; then ``inet pyvswitch_gre`` drops those ICMP errors.

A second user of the same protocol and port in the namespace (another
pyvswitch process, a kernel ``vxlan`` device) makes the open fail with
``EADDRINUSE``: an abstract unix socket per (family, protocol, port) --
abstract names are per network namespace -- and the kernel's own port
binding guard it.

**Routes**: ``route(dst)`` connects a UDP socket of the namespace to ``dst``
and reads the source address (``getsockname``) and path MTU (``IP_MTU`` /
``IPV6_MTU``); results are cached for a second (the vports ask per frame).

Sockets are created inside the namespace (``NetnsHandle.entered``) and
registered in the namespace's :class:`~pyvswitch.eventloop.EventLoop`; a
wake-up reads up to ``budget`` datagrams and hands them over as one batch.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from ...device import (
    AF_INET,
    AF_INET6,
    IPPROTO_GRE,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TunnelRoute,
    TunnelRxHandler,
)
from ...errors import DeviceError

if TYPE_CHECKING:
    from .namespace import LinuxNetns

log = logging.getLogger("pyvswitch.backends.linux")

# --- socket options Python 3.11 does not name (linux/in.h, in6.h, udp.h) -----
IP_TOS: Final = 1
IP_TTL: Final = 2
IP_PKTINFO: Final = 8
IP_RECVTTL: Final = 12
IP_RECVTOS: Final = 13
IP_MTU: Final = 14
IPV6_MTU: Final = 24
IPV6_V6ONLY: Final = 26
IPV6_HDRINCL: Final = 36
IPV6_RECVPKTINFO: Final = 49
IPV6_PKTINFO: Final = 50
IPV6_RECVHOPLIMIT: Final = 51
IPV6_HOPLIMIT: Final = 52
IPV6_RECVTCLASS: Final = 66
IPV6_TCLASS: Final = 67
UDP_NO_CHECK6_RX: Final = 102
SO_ATTACH_FILTER: Final = 26
SO_RCVBUFFORCE: Final = 33
SO_SNDBUFFORCE: Final = 32
SO_ATTACH_REUSEPORT_CBPF: Final = 51
MSG_TRUNC: Final = 0x20
MSG_DONTWAIT: Final = 0x40

#: receive buffer for one datagram: the largest IP packet
RX_BUFSIZE: Final = 65535
ANC_BUFSIZE: Final = 256
SOCK_BUF: Final = 4 << 20
#: how long a route lookup is reused
ROUTE_TTL: Final = 1.0
ROUTE_CACHE_MAX: Final = 4096

_IP4: Final = struct.Struct("!BBHHHBBH4s4s")
_IP6: Final = struct.Struct("!IHBB16s16s")
_UDP: Final = struct.Struct("!HHHH")
_INT: Final = struct.Struct("=i")

# --- classic BPF (linux/filter.h) ------------------------------------------------
BPF_LD, BPF_ALU, BPF_JMP, BPF_RET, BPF_MISC = 0x00, 0x04, 0x05, 0x06, 0x07
BPF_H, BPF_B = 0x08, 0x10
BPF_ABS, BPF_IND = 0x20, 0x40
BPF_K, BPF_AND, BPF_LSH, BPF_JEQ, BPF_TAX = 0x00, 0x50, 0x60, 0x10, 0x00
#: loads relative to the network header (``SKF_NET_OFF``)
SKF_NET_OFF: Final = -0x100000
_SOCK_FILTER: Final = struct.Struct("=HBBI")


def bpf(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> bytes:
    """One ``struct sock_filter`` instruction."""
    return _SOCK_FILTER.pack(code, jt, jf, k & 0xFFFFFFFF)


def bpf_attach(sock: socket.socket, prog: Sequence[bytes], option: int = SO_ATTACH_FILTER) -> None:
    """Attach a classic BPF program (``struct sock_fprog``) to ``sock``."""
    code = ctypes.create_string_buffer(b"".join(prog))
    fprog = struct.pack("@HP", len(prog), ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, option, fprog)


def dport_filter(family: int, port: int) -> list[bytes]:
    """Accept only TCP/UDP segments to ``port``.  A raw IPv4 socket's filter
    sees the packet from the IP header on, an IPv6 one from the transport
    header on."""
    accept, drop = bpf(BPF_RET | BPF_K, 0x40000), bpf(BPF_RET | BPF_K, 0)
    if family == AF_INET6:
        return [
            bpf(BPF_LD | BPF_H | BPF_ABS, 2),  # A = destination port
            bpf(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 1),
            accept,
            drop,
        ]
    return [
        bpf(BPF_LD | BPF_B | BPF_ABS, 0),  # A = version/ihl
        bpf(BPF_ALU | BPF_AND | BPF_K, 0x0F),
        bpf(BPF_ALU | BPF_LSH | BPF_K, 2),
        bpf(BPF_MISC | BPF_TAX),  # X = header length
        bpf(BPF_LD | BPF_H | BPF_IND, 2),  # A = destination port
        bpf(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 1),
        accept,
        drop,
    ]


def csum_classifier(family: int) -> list[bytes]:
    """A ``SO_REUSEPORT`` program: socket 0 for a UDP datagram whose checksum
    field is zero, socket 1 otherwise (run with the data at the UDP payload,
    so the header is read relative to the network header)."""
    ret0, ret1 = bpf(BPF_RET | BPF_K, 0), bpf(BPF_RET | BPF_K, 1)
    if family == AF_INET6:
        return [
            bpf(BPF_LD | BPF_B | BPF_ABS, SKF_NET_OFF + 6),  # next header
            bpf(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 3),  # extension headers: 1
            bpf(BPF_LD | BPF_H | BPF_ABS, SKF_NET_OFF + 40 + 6),
            bpf(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
            ret0,
            ret1,
        ]
    return [
        bpf(BPF_LD | BPF_B | BPF_ABS, SKF_NET_OFF),
        bpf(BPF_ALU | BPF_AND | BPF_K, 0x0F),
        bpf(BPF_ALU | BPF_LSH | BPF_K, 2),
        bpf(BPF_MISC | BPF_TAX),
        bpf(BPF_LD | BPF_H | BPF_IND, SKF_NET_OFF + 6),
        bpf(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
        ret0,
        ret1,
    ]


# --- checksums -----------------------------------------------------------------------


def ones_sum(data: bytes) -> int:
    """The ones-complement sum of ``data`` as 16-bit words, modulo 0xffff (a
    big-endian integer is congruent to the sum of its 16-bit digits, since
    0x10000 = 1 mod 0xffff): one C-level pass instead of a word loop."""
    if len(data) & 1:
        data += b"\x00"
    return int.from_bytes(data, "big") % 0xFFFF


def inet_csum(*parts: bytes) -> int:
    """The Internet checksum over the concatenated (even-length but the last)
    ``parts``, as stored in a header (0xffff, never 0, for a zero sum: UDP's rule)."""
    total = 0
    for p in parts:
        total += ones_sum(p)
    return 0xFFFF - total % 0xFFFF or 0xFFFF


def _ip4_header(src: bytes, dst: bytes, proto: int, length: int, tos: int, ttl: int) -> bytes:
    hdr = _IP4.pack(0x45, tos, 20 + length, 0, 0, ttl, proto, 0, src, dst)
    cs = 0xFFFF - ones_sum(hdr) % 0xFFFF
    return hdr[:10] + cs.to_bytes(2, "big") + hdr[12:]


def _ip6_header(src: bytes, dst: bytes, nh: int, length: int, tclass: int, hlim: int) -> bytes:
    return _IP6.pack(6 << 28 | tclass << 20, length, nh, hlim, src, dst)


def rebuild_udp(
    family: int,
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    payload: bytes,
    tos: int,
    ttl: int,
    csum: bool,
) -> bytes:
    """The outer IP/UDP packet of a datagram received on a UDP socket."""
    length = 8 + len(payload)
    cs = 0
    if csum:
        if family == AF_INET6:
            pseudo = src + dst + struct.pack("!II", length, IPPROTO_UDP)
        else:
            pseudo = src + dst + struct.pack("!BBH", 0, IPPROTO_UDP, length)
        cs = inet_csum(pseudo, _UDP.pack(sport, dport, length, 0), payload)
    udp = _UDP.pack(sport, dport, length, cs)
    if family == AF_INET6:
        return _ip6_header(src, dst, IPPROTO_UDP, length, tos, ttl) + udp + payload
    return _ip4_header(src, dst, IPPROTO_UDP, length, tos, ttl) + udp + payload


def _cmsgs(anc: list[tuple[int, int, bytes]]) -> tuple[bytes, int, int]:
    """(destination address, TOS / traffic class, TTL / hop limit) from the
    ancillary data of a received datagram."""
    dst, tos, ttl = b"", 0, 64
    for level, kind, data in anc:
        if level == socket.IPPROTO_IP:
            if kind == IP_PKTINFO:
                dst = data[8:12]
            elif kind == IP_TOS:
                tos = data[0]
            elif kind == IP_TTL:
                ttl = _INT.unpack_from(data)[0]
        elif level == socket.IPPROTO_IPV6:
            if kind == IPV6_PKTINFO:
                dst = data[:16]
            elif kind == IPV6_TCLASS:
                tos = _INT.unpack_from(data)[0] & 0xFF
            elif kind == IPV6_HOPLIMIT:
                ttl = _INT.unpack_from(data)[0]
    return dst, tos, ttl


# --- the host firewall ---------------------------------------------------------------


def nft_available() -> str | None:
    """Why nftables rules cannot be installed, or None."""
    if shutil.which("nft") is None:
        return "the nft command is not installed (Debian nftables)"
    if shutil.which("nsenter") is None:
        return "the nsenter command is not installed (util-linux)"
    return None


def stt_ruleset(table: str, port: int) -> str:
    """Drop the RSTs the host's TCP sends in answer to STT segments."""
    return (
        f"table inet {table} {{\n"
        "  chain output {\n"
        "    type filter hook output priority filter; policy accept;\n"
        f"    tcp sport {port} tcp flags & rst == rst counter drop"
        ' comment "pyvswitch: STT segments are not TCP"\n'
        "  }\n"
        "}\n"
    )


def gre_ruleset(table: str) -> str:
    """Drop the ICMP port unreachable errors a GRE driver sends for GRE
    packets no GRE device took (the quoted header's protocol is 47)."""
    return (
        f"table inet {table} {{\n"
        "  chain output {\n"
        "    type filter hook output priority filter; policy accept;\n"
        "    icmp type destination-unreachable icmp code port-unreachable"
        ' @th,136,8 47 counter drop comment "pyvswitch: GRE is taken"\n'
        "    icmpv6 type destination-unreachable icmpv6 code port-unreachable"
        ' @th,112,8 47 counter drop comment "pyvswitch: GRE is taken"\n'
        "  }\n"
        "}\n"
    )


class Firewall:
    """nftables tables of one namespace, installed with ``nft -f -`` run in
    it (``nsenter --net``) and reference counted."""

    def __init__(self, ns: LinuxNetns) -> None:
        self.ns = ns
        self.tables: dict[str, int] = {}

    def _nft(self, script: str) -> None:
        fd = self.ns.handle.fd
        cmd = ["nsenter", f"--net=/proc/self/fd/{fd}", "nft", "-f", "-"]
        r = subprocess.run(
            cmd, input=script, capture_output=True, text=True, pass_fds=(fd,), timeout=30
        )
        if r.returncode:
            raise OSError(errno.EIO, f"nft: {r.stderr.strip() or r.stdout.strip()}")

    def acquire(self, table: str, ruleset: str) -> bool:
        """Install ``table`` (replacing a stale one a crashed process may have
        left: the caller holds the port, so the table is ours).  False, with
        a warning, if nftables cannot be used."""
        if table in self.tables:
            self.tables[table] += 1
            return True
        why = nft_available()
        if why is not None:
            log.warning("%s: %s: cannot install firewall table %s", self.ns.name, why, table)
            return False
        try:
            self._nft(f"table inet {table}\ndelete table inet {table}\n{ruleset}")
        except (OSError, subprocess.SubprocessError) as e:
            log.warning("%s: cannot install firewall table %s: %s", self.ns.name, table, e)
            return False
        self.tables[table] = 1
        return True

    def release(self, table: str) -> None:
        n = self.tables.get(table, 0)
        if n > 1:
            self.tables[table] = n - 1
            return
        if n == 1:
            del self.tables[table]
            try:
                self._nft(f"table inet {table}\ndelete table inet {table}\n")
            except (OSError, subprocess.SubprocessError) as e:
                log.warning("%s: cannot remove firewall table %s: %s", self.ns.name, table, e)

    def close(self) -> None:
        for table in list(self.tables):
            self.tables[table] = 1
            self.release(table)


# --- sockets -------------------------------------------------------------------------


def _family_name(family: int) -> str:
    return "inet6" if family == AF_INET6 else "inet"


def _addr_str(family: int, addr: int) -> str:
    if family == AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, addr.to_bytes(16, "big"))
    return socket.inet_ntop(socket.AF_INET, addr.to_bytes(4, "big"))


class _RxSock:
    """One receiving kernel socket of a tunnel socket and how its datagrams
    become outer IP packets."""

    __slots__ = ("csum", "kind", "sock")

    def __init__(self, sock: socket.socket, kind: str, csum: bool = False) -> None:
        self.sock = sock
        #: "udp" (rebuild IP + UDP), "raw4" (as received), "raw6" (rebuild IPv6)
        self.kind = kind
        #: udp: the datagrams this socket gets carried a checksum
        self.csum = csum


class LinuxTunnelSocket:
    """A :class:`~pyvswitch.device.TunnelSocket` of a :class:`LinuxUnderlay`."""

    def __init__(
        self,
        underlay: LinuxUnderlay,
        family: int,
        proto: int,
        port: int,
        on_receive: TunnelRxHandler,
        *,
        budget: int = 256,
    ) -> None:
        self.underlay = underlay
        self._family = family
        self._proto = proto
        self._port = port
        self.on_receive = on_receive
        self.budget = budget
        self.rx: list[_RxSock] = []
        #: sockets held only to own the port (STT's TCP socket, the lock)
        self.holders: list[socket.socket] = []
        self.firewall_tables: list[str] = []
        #: whether datagrams are told apart by UDP checksum (SO_REUSEPORT)
        self.csum_aware = False
        self.closed = False
        self.rx_packets = 0
        self.rx_errors = 0
        self.tx_packets = 0
        self.tx_errors = 0
        self.tx_dropped = 0

    # -- TunnelSocket -----------------------------------------------------------------

    @property
    def family(self) -> int:
        return self._family

    @property
    def proto(self) -> int:
        return self._proto

    @property
    def port(self) -> int:
        return self._port

    def send(self, packets: Sequence[bytes]) -> int:
        """Send whole outer IP packets as built (raw socket, header included)."""
        if self.closed:
            self.tx_errors += len(packets)
            return 0
        n = self.underlay.transmit(self._family, packets, self)
        self.tx_packets += n
        return n

    def route(self, dst: int) -> TunnelRoute | None:
        return self.underlay.route(self._family, dst)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        loop = self.underlay.ns.loop
        for rs in self.rx:
            loop.remove_reader(rs.sock.fileno())
            rs.sock.close()
        self.rx.clear()
        for s in self.holders:
            s.close()
        self.holders.clear()
        for table in self.firewall_tables:
            self.underlay.firewall.release(table)
        self.firewall_tables.clear()
        self.underlay._forget(self)

    def __repr__(self) -> str:
        where = f"{self.underlay.ns.name} {_family_name(self._family)} proto {self._proto}"
        return f"<LinuxTunnelSocket {where} port {self._port}>"

    def stats(self) -> dict[str, int]:
        return {
            "rx_packets": self.rx_packets,
            "rx_errors": self.rx_errors,
            "tx_packets": self.tx_packets,
            "tx_errors": self.tx_errors,
            "tx_dropped": self.tx_dropped,
        }

    # -- receive ----------------------------------------------------------------------

    def _reader(self, rs: _RxSock) -> Callable[[], None]:
        def on_readable() -> None:
            try:
                batch = self._read(rs)
            except Exception:  # nothing may raise out of the event loop
                self.rx_errors += 1
                log.exception("%r: receive failed", self)
                return
            if batch:
                self.rx_packets += len(batch)
                try:
                    self.on_receive(batch)
                except Exception:
                    log.exception("%r: tunnel receive handler failed", self)

        return on_readable

    def _read(self, rs: _RxSock) -> list[bytes]:
        out: list[bytes] = []
        recvmsg = rs.sock.recvmsg
        kind = rs.kind
        family = self._family
        for _ in range(self.budget):
            try:
                data, anc, flags, addr = recvmsg(RX_BUFSIZE, ANC_BUFSIZE, MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:  # e.g. a pending ICMP error on the socket
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    break
                log.debug("%r: recvmsg: %s", self, e)
                continue
            if flags & MSG_TRUNC:
                self.rx_errors += 1
                continue
            if kind == "raw4":
                out.append(data)
                continue
            dst, tos, ttl = _cmsgs(anc)
            if family == AF_INET6:
                src = socket.inet_pton(socket.AF_INET6, addr[0].split("%", 1)[0])
            else:
                src = socket.inet_aton(addr[0])
            if not dst:
                self.rx_errors += 1
                continue
            if kind == "udp":
                out.append(
                    rebuild_udp(family, src, dst, addr[1], self._port, data, tos, ttl, rs.csum)
                )
            else:  # raw6: the payload starts at the transport header
                out.append(_ip6_header(src, dst, self._proto, len(data), tos, ttl) + data)
        return out

    def _register(self) -> None:
        loop = self.underlay.ns.loop
        for rs in self.rx:
            loop.add_reader(rs.sock.fileno(), self._reader(rs))


class LinuxUnderlay:
    """The tunnel sockets of one :class:`~.namespace.LinuxNetns`, the raw
    sockets they send through, the route cache and the firewall tables."""

    def __init__(self, ns: LinuxNetns) -> None:
        self.ns = ns
        self.sockets: dict[tuple[int, int, int], LinuxTunnelSocket] = {}
        self.firewall = Firewall(ns)
        self._tx: dict[int, socket.socket] = {}
        self._route_socks: dict[int, socket.socket] = {}
        self._routes: dict[tuple[int, int], tuple[float, TunnelRoute | None]] = {}
        self.clock: Callable[[], float] = time.monotonic

    def __repr__(self) -> str:
        return f"<LinuxUnderlay {self.ns.name}, {len(self.sockets)} sockets>"

    # -- opening ----------------------------------------------------------------------

    def open(
        self, proto: int, port: int, family: int, on_receive: TunnelRxHandler
    ) -> LinuxTunnelSocket:
        """``TunnelUnderlay.tunnel_socket_open``."""
        if family not in (AF_INET, AF_INET6):
            raise DeviceError(f"address family {family} not supported", errno=errno.EAFNOSUPPORT)
        if proto not in (IPPROTO_UDP, IPPROTO_TCP, IPPROTO_GRE):
            raise DeviceError(f"tunnel protocol {proto} not supported", errno=errno.EPROTONOSUPPORT)
        if proto == IPPROTO_GRE:
            port = 0
        elif not 0 < port < 65536:
            raise DeviceError(f"bad tunnel port {port}", errno=errno.EINVAL)
        key = (family, proto, port)
        where = f"{self.ns.name}: {_family_name(family)} protocol {proto} port {port}"
        if key in self.sockets:
            raise DeviceError(f"{where} is in use", errno=errno.EADDRINUSE)
        ts = LinuxTunnelSocket(self, family, proto, port, on_receive)
        try:
            self._transmitter(family)  # fail early if raw sockets are not possible
            with self.ns.handle.entered():
                ts.holders.append(self._lock(family, proto, port))
                if proto == IPPROTO_UDP:
                    self._open_udp(ts)
                elif proto == IPPROTO_GRE:
                    self._open_raw(ts)
                else:
                    ts.holders.append(self._reserve_tcp(family, port))
                    self._open_raw(ts)
        except OSError as e:
            ts.close()
            code = e.errno or errno.EIO
            if code in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
                code = errno.EAFNOSUPPORT
            raise DeviceError(f"{where}: cannot open: {e.strerror or e}", errno=code) from e
        except BaseException:
            ts.close()
            raise
        self.sockets[key] = ts
        if proto == IPPROTO_TCP:
            table = f"pyvswitch_stt_{port}"
            if self.firewall.acquire(table, stt_ruleset(table, port)):
                ts.firewall_tables.append(table)
        elif proto == IPPROTO_GRE and self._kernel_gre():
            table = "pyvswitch_gre"
            if self.firewall.acquire(table, gre_ruleset(table)):
                ts.firewall_tables.append(table)
        ts._register()
        return ts

    def _lock(self, family: int, proto: int, port: int) -> socket.socket:
        """An abstract unix socket named after the binding: abstract names
        belong to the network namespace, so a second user (another process
        too) gets EADDRINUSE, and a dead process releases it."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            s.bind(f"\0pyvswitch/tunnel/{_family_name(family)}/{proto}/{port}")
        except OSError:
            s.close()
            raise
        return s

    @staticmethod
    def _new(family: int, kind: int, proto: int) -> socket.socket:
        return socket.socket(family, kind | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK, proto)

    @staticmethod
    def _rcvbuf(s: socket.socket) -> None:
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, SOCK_BUF)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCK_BUF)

    def _udp_socket(self, family: int, port: int, reuse: bool) -> socket.socket:
        s = self._new(family, socket.SOCK_DGRAM, IPPROTO_UDP)
        try:
            if reuse:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_V6ONLY, 1)
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVTCLASS, 1)
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
                s.setsockopt(IPPROTO_UDP, UDP_NO_CHECK6_RX, 1)
            else:
                s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                s.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
                s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
            self._rcvbuf(s)
            s.bind(("::" if family == AF_INET6 else "0.0.0.0", port))
        except BaseException:
            s.close()
            raise
        return s

    def _open_udp(self, ts: LinuxTunnelSocket) -> None:
        """Two sockets on the port, steered by UDP checksum; if the kernel
        refuses the steering program, one socket (checksums then read as 0)."""
        family, port = ts.family, ts.port
        first = self._udp_socket(family, port, True)
        ts.rx.append(_RxSock(first, "udp", csum=False))
        try:
            bpf_attach(first, csum_classifier(family), SO_ATTACH_REUSEPORT_CBPF)
            ts.rx.append(_RxSock(self._udp_socket(family, port, True), "udp", csum=True))
            ts.csum_aware = True
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise
            log.warning(
                "%s: no SO_REUSEPORT steering (%s): received UDP checksums are not reported",
                self.ns.name,
                e,
            )
            # drop the group so that nobody can join our port
            first.close()
            ts.rx.clear()
            ts.rx.append(_RxSock(self._udp_socket(family, port, False), "udp", csum=False))

    def _open_raw(self, ts: LinuxTunnelSocket) -> None:
        family = ts.family
        s = self._new(family, socket.SOCK_RAW, ts.proto)
        ts.rx.append(_RxSock(s, "raw6" if family == AF_INET6 else "raw4"))
        if family == AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVTCLASS, 1)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
        self._rcvbuf(s)
        if ts.proto == IPPROTO_TCP:
            bpf_attach(s, dport_filter(family, ts.port))
            # segments that arrived before the filter: not ours to judge
            with contextlib.suppress(OSError):
                while s.recv(RX_BUFSIZE, MSG_DONTWAIT):
                    pass

    def _reserve_tcp(self, family: int, port: int) -> socket.socket:
        """A TCP socket bound to the STT port and never listening: nobody else
        can take the port."""
        s = self._new(family, socket.SOCK_STREAM, IPPROTO_TCP)
        try:
            if family == AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_V6ONLY, 1)
            s.bind(("::" if family == AF_INET6 else "0.0.0.0", port))
        except BaseException:
            s.close()
            raise
        return s

    def _kernel_gre(self) -> bool:
        """Whether the namespace has a GRE driver that answers unmatched GRE
        packets (its fallback devices exist)."""
        for name in ("gre0", "gretap0", "ip6gre0", "ip6gretap0"):
            with contextlib.suppress(OSError):
                if self.ns.rtnl.get_link(name) is not None:
                    return True
        return False

    def _forget(self, ts: LinuxTunnelSocket) -> None:
        key = (ts.family, ts.proto, ts.port)
        if self.sockets.get(key) is ts:
            del self.sockets[key]

    # -- transmit ---------------------------------------------------------------------

    def _transmitter(self, family: int) -> socket.socket:
        s = self._tx.get(family)
        if s is not None:
            return s
        with self.ns.handle.entered():
            s = self._new(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
        try:
            if family == AF_INET6:
                try:
                    s.setsockopt(socket.IPPROTO_IPV6, IPV6_HDRINCL, 1)
                except OSError as e:
                    raise OSError(
                        errno.EAFNOSUPPORT,
                        f"IPV6_HDRINCL not supported (Linux >= 4.5 needed): {e.strerror}",
                    ) from e
            else:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
            try:
                s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, SOCK_BUF)
            except OSError:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCK_BUF)
        except BaseException:
            s.close()
            raise
        self._tx[family] = s
        return s

    def transmit(self, family: int, packets: Sequence[bytes], ts: LinuxTunnelSocket) -> int:
        """Send each packet to the destination in its header; count refusals
        on ``ts`` (EMSGSIZE, no route: tx_errors; a full queue: tx_dropped)."""
        try:
            sendto = self._transmitter(family).sendto
        except OSError as e:
            log.warning("%s: no raw socket: %s", self.ns.name, e)
            ts.tx_errors += len(packets)
            return 0
        n = 0
        if family == AF_INET6:
            ntop, fam, a, b, version = socket.inet_ntop, socket.AF_INET6, 24, 40, 6
        else:
            ntop, fam, a, b, version = socket.inet_ntop, socket.AF_INET, 16, 20, 4
        for p in packets:
            if len(p) < b or p[0] >> 4 != version:
                ts.tx_errors += 1
                continue
            try:
                sendto(p, MSG_DONTWAIT, (ntop(fam, p[a:b]), 0))
            except OSError as e:
                if e.errno in (errno.ENOBUFS, errno.EAGAIN):
                    ts.tx_dropped += 1
                else:
                    ts.tx_errors += 1
                    if e.errno in (errno.EMSGSIZE, errno.ENETUNREACH, errno.EHOSTUNREACH):
                        self._routes.clear()
                log.debug("%r: send: %s", ts, e)
                continue
            n += 1
        return n

    # -- routes -----------------------------------------------------------------------

    def route(self, family: int, dst: int) -> TunnelRoute | None:
        """Source address and path MTU towards ``dst`` (cached for ROUTE_TTL)."""
        now = self.clock()
        hit = self._routes.get((family, dst))
        if hit is not None and hit[0] > now:
            return hit[1]
        r = self._lookup(family, dst)
        if len(self._routes) >= ROUTE_CACHE_MAX:
            self._routes.clear()
        self._routes[(family, dst)] = (now + ROUTE_TTL, r)
        return r

    def _lookup(self, family: int, dst: int) -> TunnelRoute | None:
        s = self._route_socks.get(family)
        try:
            if s is None:
                with self.ns.handle.entered():
                    s = self._new(family, socket.SOCK_DGRAM, IPPROTO_UDP)
                self._route_socks[family] = s
            s.connect((_addr_str(family, dst), 9))
            host = s.getsockname()[0]
            if family == AF_INET6:
                src = int.from_bytes(socket.inet_pton(socket.AF_INET6, host.split("%")[0]), "big")
                mtu = s.getsockopt(socket.IPPROTO_IPV6, IPV6_MTU)
            else:
                src = int.from_bytes(socket.inet_aton(host), "big")
                mtu = s.getsockopt(socket.IPPROTO_IP, IP_MTU)
        except OSError as e:
            log.debug("%s: no route to %s: %s", self.ns.name, _addr_str(family, dst), e)
            return None
        return TunnelRoute(src, mtu)

    def invalidate_routes(self) -> None:
        self._routes.clear()

    # -- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        for ts in list(self.sockets.values()):
            try:
                ts.close()
            except Exception:  # pragma: no cover - best effort
                log.exception("%s: closing %r failed", self.ns.name, ts)
        self.sockets.clear()
        self.firewall.close()
        for s in (*self._tx.values(), *self._route_socks.values()):
            s.close()
        self._tx.clear()
        self._route_socks.clear()
        self._routes.clear()
