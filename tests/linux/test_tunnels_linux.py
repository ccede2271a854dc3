"""Tunnels on the Linux underlay (``backends/linux/underlay.py``): two
pyvswitch datapaths in two namespaces joined by a tunnel over a veth pair,
real hosts pinging across; and the underlay sockets on their own (byte-exact
sending, rebuilt received headers, checksum reporting, port conflicts, the
STT firewall table, cleanup).

Topology (every name unique per test, everything removed afterwards)::

    h1 10.0.0.1 -- p1 [dpA swA] t0 ==ul0 UL_A <-> UL_B ul0== t0 [dpB swB] p1 -- h2 10.0.0.2
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pyvswitch.backends.linux import LinuxNetns
from pyvswitch.backends.linux.underlay import (
    LinuxTunnelSocket,
    inet_csum,
    nft_available,
    rebuild_udp,
)
from pyvswitch.datapath import Datapath, Openvswitch
from pyvswitch.device import AF_INET, AF_INET6, IPPROTO_GRE, IPPROTO_TCP, IPPROTO_UDP
from pyvswitch.errors import DeviceError
from pyvswitch.flow import field_mask, key_from_fields
from pyvswitch.tunnel import parse_outer, parse_udp, tunnel_listener, udp_datagram
from pyvswitch.uapi import Action, Ethernet, Output, Set
from pyvswitch.vport_tunnel import TunnelVport
from pyvswitch.wire.checksum import checksum, pseudo_ipv4

from .conftest import LoopThread, Netns, netns_exec, ping, sh, wait_for

pytestmark = pytest.mark.root

KINDS = ["vxlan", "geneve", "gre", "gre64", "lisp", "stt"]
HOST_MTU = 1400  # room for every encapsulation on a 1500-byte underlay

UL4 = ("192.168.100.1", "192.168.100.2", 24)
UL6 = ("fd00:100::1", "fd00:100::2", 64)


def enable_ipv6(ns: str, dev: str) -> None:
    netns_exec(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0")
    netns_exec(ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=0")


def add_addr(ns: str, dev: str, addr: str, plen: int) -> None:
    extra = ["nodad"] if ":" in addr else []
    sh("ip", "-n", ns, "addr", "add", f"{addr}/{plen}", "dev", dev, *extra)
    sh("ip", "-n", ns, "link", "set", dev, "up")


def mac_of(ns: str, dev: str) -> str:
    out = netns_exec(ns, "cat", f"/sys/class/net/{dev}/address")
    return out.strip()


# ---------------------------------------------------------------------------
# Capturing the underlay


class Capture:
    """``tcpdump -w`` on one interface of a namespace, stopped with :meth:`stop`
    (always, also when a test fails: use it as a context manager)."""

    def __init__(self, ns: str, dev: str, directory: str) -> None:
        self.path = Path(directory) / f"{ns}-{dev}.pcap"
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "tcpdump", "-i", dev, "--immediate-mode", "-U", "-n",
             "-s", "0", "-w", str(self.path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        # tcpdump says "listening on ..." once the socket is bound
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline().decode(errors="replace")
        if "listening" not in line:
            self.stop()
            raise AssertionError(f"tcpdump did not start: {line}")

    def stop(self) -> Path:
        if self.proc.poll() is None:
            time.sleep(0.2)  # the last packets
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.path

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def require_tool(name: str, package: str) -> None:
    if shutil.which(name) is None:
        pytest.skip(f"needs {name} (Debian {package})")


def tshark(pcap: Path, *args: str) -> list[str]:
    """``tshark -r PCAP ARGS`` output lines."""
    r = sh("tshark", "-r", str(pcap), "-n", *args)
    return [ln for ln in r.stdout.splitlines() if ln.strip()]


def tshark_fields(
    pcap: Path, display_filter: str, *fields: str, extra: tuple[str, ...] = ()
) -> list[list[str]]:
    args = [*extra, "-Y", display_filter, "-T", "fields", "-E", "separator=|"]
    for f in fields:
        args += ["-e", f]
    return [ln.split("|") for ln in tshark(pcap, *args)]


def assert_not_malformed(pcap: Path, *extra: str) -> int:
    """No malformed packet and no dissector warning (IP, UDP checksums
    checked); returns the packet count."""
    extra = ("-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", *extra)
    bad = tshark(pcap, *extra, "-Y", "_ws.malformed || _ws.expert.severity >= warning")
    assert not bad, "tshark finds malformed packets:\n" + "\n".join(bad)
    return len(tshark(pcap, *extra))


# ---------------------------------------------------------------------------
# Two pyvswitch datapaths joined by a tunnel


@dataclass
class TunnelPair:
    netns: Netns
    lt: LoopThread
    kind: str
    ipv6: bool
    h1: str
    h2: str
    sw_a: str
    sw_b: str
    ul_a: str
    ul_b: str
    ns_a: LinuxNetns | None = None
    ns_b: LinuxNetns | None = None
    dp_a: Datapath | None = None
    dp_b: Datapath | None = None
    tun_a: TunnelVport | None = None
    tun_b: TunnelVport | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        def shut() -> None:
            for ns in (self.ns_a, self.ns_b):
                if ns is not None:
                    ns.close()

        self.lt.call(shut)


def underlay_namespaces(netns: Netns, ipv6: bool) -> tuple[str, str, str, str]:
    """swA and swB joined by ul0 with underlay addresses: (swA, swB, addrA, addrB)."""
    sw_a, sw_b = netns.add("swa"), netns.add("swb")
    netns.veth(sw_a, "ul0", sw_b, "ul0")
    a, b, plen = UL6 if ipv6 else UL4
    for ns, addr in ((sw_a, a), (sw_b, b)):
        if ipv6:
            enable_ipv6(ns, "ul0")
        add_addr(ns, "ul0", addr, plen)
    return sw_a, sw_b, a, b


def attach_host(netns: Netns, sw: str, host_ip: str, role: str) -> str:
    """A host namespace whose eth0 is port p1's peer in ``sw``."""
    h = netns.add(role)
    netns.veth(h, "eth0", sw, "p1")
    sh("ip", "-n", h, "link", "set", "eth0", "mtu", str(HOST_MTU))
    add_addr(h, "eth0", host_ip, 24)
    return h


def pyvswitch_side(
    lt: LoopThread,
    sw: str,
    kind: str,
    remote: str,
    options: dict[str, str],
    host_mac: str | None = None,
) -> tuple[LinuxNetns, Datapath, TunnelVport]:
    """A datapath in ``sw`` with p1 and tunnel port t0 and two megaflows:
    p1 -> t0 and t0 -> p1 (LISP: rewriting the fabricated MACs to the host's)."""

    def make() -> tuple[LinuxNetns, Datapath, TunnelVport]:
        ns = LinuxNetns(sw, lt.loop)
        try:
            dp = Openvswitch().dp_new("dp0", ns)
            p1 = dp.vport_add("p1")
            tun = dp.vport_add("t0", kind, options={"remote_ip": remote, **options})
            assert isinstance(tun, TunnelVport)
            in_port = field_mask("in_port")
            dp.flow_put(key_from_fields(in_port=p1.port_no), in_port, [Output(tun.port_no)])
            decap: list[Action] = [Output(p1.port_no)]
            if kind == "lisp":
                assert host_mac is not None
                mac = int(host_mac.replace(":", ""), 16)
                decap = [Set(Ethernet(src=0x020000000001, dst=mac)), Output(p1.port_no)]
            dp.flow_put(key_from_fields(in_port=tun.port_no), in_port, decap)
        except BaseException:
            ns.close()
            raise
        return ns, dp, tun

    return lt.call(make)


def tunnel_pair(
    netns: Netns,
    lt: LoopThread,
    kind: str,
    *,
    ipv6: bool = False,
    options: dict[str, str] | None = None,
) -> TunnelPair:
    sw_a, sw_b, ul_a, ul_b = underlay_namespaces(netns, ipv6)
    h1 = attach_host(netns, sw_a, "10.0.0.1", "h1")
    h2 = attach_host(netns, sw_b, "10.0.0.2", "h2")
    t = TunnelPair(netns, lt, kind, ipv6, h1, h2, sw_a, sw_b, ul_a, ul_b)
    if kind == "lisp":  # an L3 tunnel: the hosts' neighbours are the fabricated MACs
        sh("ip", "-n", h1, "neigh", "add", "10.0.0.2", "lladdr", "02:00:00:00:00:02", "dev", "eth0")
        sh("ip", "-n", h2, "neigh", "add", "10.0.0.1", "lladdr", "02:00:00:00:00:01", "dev", "eth0")
    try:
        t.ns_a, t.dp_a, t.tun_a = pyvswitch_side(
            lt, sw_a, kind, ul_b, options or {}, mac_of(h1, "eth0")
        )
        t.ns_b, t.dp_b, t.tun_b = pyvswitch_side(
            lt, sw_b, kind, ul_a, options or {}, mac_of(h2, "eth0")
        )
    except BaseException:
        t.close()
        raise
    return t


@pytest.fixture
def pair_factory(netns: Netns, loop_thread: LoopThread) -> Iterator[Callable[..., TunnelPair]]:
    made: list[TunnelPair] = []

    def factory(kind: str, **kw: object) -> TunnelPair:
        t = tunnel_pair(netns, loop_thread, kind, **kw)  # type: ignore[arg-type]
        made.append(t)
        return t

    try:
        yield factory
    finally:
        for t in made:
            t.close()


@pytest.fixture
def capdir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="pyvswitch-cap-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def sockets_of(t: TunnelPair, side: str = "a") -> list[LinuxTunnelSocket]:
    v = t.tun_a if side == "a" else t.tun_b
    assert v is not None and v.listener is not None
    out = []
    for s in v.listener.sockets.values():
        assert isinstance(s, LinuxTunnelSocket)
        out.append(s)
    return out


# ---------------------------------------------------------------------------
# Ping across every tunnel type, both underlay families


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("kind", KINDS)
def test_ping_across_linux_tunnel(
    pair_factory: Callable[..., TunnelPair], capdir: str, kind: str, ipv6: bool
) -> None:
    require_tool("tcpdump", "tcpdump")
    t = pair_factory(kind, ipv6=ipv6)
    with Capture(t.sw_b, "ul0", capdir) as cap:
        ping(t.h1, "10.0.0.2", count=3)
        # a large packet: STT segments it, the others carry it whole
        sh("ip", "netns", "exec", t.h1, "ping", "-c", "2", "-i", "0.2", "-W", "2",
           "-s", "1372", "10.0.0.2", timeout=30)  # fmt: skip
    pcap = cap.stop()
    assert t.tun_a is not None and t.tun_b is not None
    sa, sb = t.lt.call(t.tun_a.get_stats), t.lt.call(t.tun_b.get_stats)
    assert sa.tx_packets >= 5 and sb.rx_packets >= 5 and sb.tx_packets >= 5
    assert sa.tx_errors == sa.rx_errors == sb.tx_errors == sb.rx_errors == 0
    assert not t.dp_a.drops and not t.dp_b.drops  # type: ignore[union-attr]
    # the host stacks stayed quiet: no ICMP errors, no TCP RSTs on the underlay
    noise = tshark(pcap, "-Y", "icmp.type == 3 || icmpv6.type == 1 || tcp.flags.reset == 1")
    assert not noise, "host answered tunnel packets:\n" + "\n".join(noise)
    proto = {"vxlan": "udp", "geneve": "udp", "lisp": "udp", "gre": "gre", "gre64": "gre",
             "stt": "tcp"}[kind]  # fmt: skip
    ip = "ipv6" if ipv6 else "ip"
    assert len(tshark(pcap, "-Y", f"{ip} && {proto}")) >= 10


# ---------------------------------------------------------------------------
# The underlay sockets on their own


@dataclass
class Wire:
    """swA and swB joined by ul0 (IPv4 and IPv6), one LinuxNetns on swA."""

    sw_a: str
    sw_b: str
    ns: LinuxNetns
    lt: LoopThread
    received: list[bytes]
    event: threading.Event

    def open(self, proto: int, port: int, family: int = AF_INET) -> LinuxTunnelSocket:
        def rx(batch: object) -> None:
            assert isinstance(batch, list)
            self.received.extend(batch)
            self.event.set()

        return self.lt.call(lambda: self.ns.tunnel_socket_open(proto, port, family, rx))

    def wait(self, n: int, timeout: float = 5.0) -> list[bytes]:
        wait_for(lambda: len(self.received) >= n, timeout, f"{n} received packets")
        return list(self.received)


@pytest.fixture
def wire(netns: Netns, loop_thread: LoopThread) -> Iterator[Wire]:
    sw_a, sw_b = netns.add("swa"), netns.add("swb")
    netns.veth(sw_a, "ul0", sw_b, "ul0")
    for name, n in ((sw_a, 1), (sw_b, 2)):
        enable_ipv6(name, "ul0")
        add_addr(name, "ul0", f"192.168.100.{n}", 24)
        add_addr(name, "ul0", f"fd00:100::{n}", 64)
    ns = loop_thread.call(lambda: LinuxNetns(sw_a, loop_thread.loop))
    w = Wire(sw_a, sw_b, ns, loop_thread, [], threading.Event())
    try:
        yield w
    finally:
        loop_thread.call(ns.close)


A4 = socket.inet_aton("192.168.100.1")
B4 = socket.inet_aton("192.168.100.2")
A6 = socket.inet_pton(socket.AF_INET6, "fd00:100::1")
B6 = socket.inet_pton(socket.AF_INET6, "fd00:100::2")


def py_in(ns: str, code: str, *args: str) -> str:
    """Run a Python snippet inside a namespace."""
    return netns_exec(ns, "python3", "-c", code, *args)


_SEND_RAW = """
import socket, sys
fam = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_RAW)
if fam == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, 36, 1)
pkt = bytes.fromhex(sys.argv[2])
dst = socket.inet_ntop(fam, pkt[24:40] if fam == socket.AF_INET6 else pkt[16:20])
s.sendto(pkt, (dst, 0))
"""

_SEND_UDP = """
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6 if fam == socket.AF_INET6 else socket.IPPROTO_IP,
             67 if fam == socket.AF_INET6 else 1, int(sys.argv[3]))
s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", 40000))
s.sendto(bytes.fromhex(sys.argv[4]), (sys.argv[1], int(sys.argv[2])))
"""


def ip4(src: bytes, dst: bytes, proto: int, payload: bytes, *, tos: int = 0, ttl: int = 64,
        ident: int = 0x1234, df: bool = True) -> bytes:  # fmt: skip
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), ident,
                      0x4000 if df else 0, ttl, proto, 0, src, dst)  # fmt: skip
    return hdr[:10] + checksum(hdr).to_bytes(2, "big") + hdr[12:] + payload


def ip6(
    src: bytes, dst: bytes, nh: int, payload: bytes, *, tclass: int = 0, hlim: int = 64
) -> bytes:
    return (
        struct.pack("!IHBB16s16s", 6 << 28 | tclass << 20, len(payload), nh, hlim, src, dst)
        + payload
    )


def udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes, csum: bool) -> bytes:
    fam = AF_INET6 if len(src) == 16 else AF_INET
    sa, da = int.from_bytes(src, "big"), int.from_bytes(dst, "big")
    return udp_datagram(fam, sa, da, sport, dport, payload, csum=csum)


VXLAN_PAYLOAD = bytes.fromhex("0800000000002a00") + bytes(range(60))


@pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("csum", [False, True], ids=["nocsum", "csum"])
def test_udp_receive_rebuilds_outer_header(wire: Wire, family: int, csum: bool) -> None:
    """A datagram sent as raw bytes from the peer comes back as the same IP
    packet -- addresses, ports, TOS, TTL, checksum or not -- except the IPv4
    id and DF, which a UDP socket does not report."""
    wire.open(IPPROTO_UDP, 4789, family)
    if family == AF_INET6:
        sent = ip6(B6, A6, 17, udp(B6, A6, 5555, 4789, VXLAN_PAYLOAD, csum), tclass=0xB9, hlim=7)
    else:
        sent = ip4(B4, A4, 17, udp(B4, A4, 5555, 4789, VXLAN_PAYLOAD, csum), tos=0xB9, ttl=7)
    py_in(wire.sw_b, _SEND_RAW, "6" if family == AF_INET6 else "4", sent.hex())
    (got,) = wire.wait(1)
    if family == AF_INET:
        # id and DF are not reported: zero in the rebuilt header
        expect = ip4(B4, A4, 17, sent[20:], tos=0xB9, ttl=7, ident=0, df=False)
    else:
        expect = sent
    assert got == expect
    outer = parse_outer(got)
    assert (outer.tos, outer.ttl) == (0xB9, 7)
    _sport, _dport, has_csum, _payload = parse_udp(outer, 4789)
    assert has_csum is csum


def test_udp_checksum_reported_for_kernel_sockets(wire: Wire) -> None:
    """A normal UDP socket's datagram (checksum computed by the kernel, or
    left partial on the veth) is reported with a valid checksum."""
    s = wire.open(IPPROTO_UDP, 4789, AF_INET)
    assert s.csum_aware
    wire.open(IPPROTO_UDP, 4789, AF_INET6)
    py_in(wire.sw_b, _SEND_UDP, "192.168.100.1", "4789", str(0x28), VXLAN_PAYLOAD.hex())
    py_in(wire.sw_b, _SEND_UDP, "fd00:100::1", "4789", str(0x28), VXLAN_PAYLOAD.hex())
    got = wire.wait(2)
    for pkt in got:
        outer = parse_outer(pkt)
        sport, dport, has_csum, payload = parse_udp(outer, 4789)
        assert (sport, dport, has_csum, payload) == (40000, 4789, True, VXLAN_PAYLOAD)
        assert outer.tos == 0x28 and outer.ttl == 64
    assert {parse_outer(p).family for p in got} == {AF_INET, AF_INET6}


def test_rebuild_udp_checksum_matches_reference() -> None:
    for n in (0, 1, 7, 60, 1401):
        payload = os.urandom(n)
        for src, dst in ((A4, B4), (A6, B6)):
            fam = AF_INET6 if len(src) == 16 else AF_INET
            pkt = rebuild_udp(fam, src, dst, 1234, 4789, payload, 0, 64, True)
            hl = 40 if fam == AF_INET6 else 20
            assert pkt[hl:] == udp(src, dst, 1234, 4789, payload, True)
            if fam == AF_INET:
                assert checksum(pkt[:20]) == 0
    assert inet_csum(b"\x00\x00") == 0xFFFF


@pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4", "ipv6"])
def test_gre_receive_and_send_byte_exact(wire: Wire, family: int) -> None:
    """GRE: what the peer sends arrives byte for byte (IPv6: the rebuilt
    header equals the sent one), and what the socket sends arrives at the
    peer's raw socket byte for byte."""
    s = wire.open(IPPROTO_GRE, 0, family)
    gre = bytes.fromhex("20006558000000 2a".replace(" ", "")) + bytes(range(64))
    if family == AF_INET6:
        sent = ip6(B6, A6, 47, gre, tclass=0x10, hlim=9)
    else:
        sent = ip4(B4, A4, 47, gre, tos=0x10, ttl=9, ident=0xBEEF)
    py_in(wire.sw_b, _SEND_RAW, "6" if family == AF_INET6 else "4", sent.hex())
    (got,) = wire.wait(1)
    assert got == sent
    # and the other way: the exact bytes on the wire at the peer
    out = (
        ip6(A6, B6, 47, gre, tclass=0x20, hlim=3)
        if family == AF_INET6
        else ip4(A4, B4, 47, gre, tos=0x20, ttl=3, ident=0x4242)
    )
    code = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(int(sys.argv[1], 16)))
s.settimeout(10)
s.bind(("ul0", 0))
print("ready", flush=True)
while True:
    data = s.recv(65535)
    if data[9 if data[0] >> 4 == 4 else 6] == 47:
        print(data.hex(), flush=True)
        break
"""
    etype = "86dd" if family == AF_INET6 else "0800"
    proc = subprocess.Popen(["ip", "netns", "exec", wire.sw_b, "python3", "-c", code, etype],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        assert wire.lt.call(lambda: s.send([out])) == 1
        line = proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()
    assert bytes.fromhex(line) == out
    assert s.stats()["tx_packets"] == 1


def test_route_source_and_mtu(wire: Wire) -> None:
    s4 = wire.open(IPPROTO_UDP, 4789, AF_INET)
    s6 = wire.open(IPPROTO_UDP, 4789, AF_INET6)
    sh("ip", "-n", wire.sw_a, "link", "set", "ul0", "mtu", "1400")
    wire.ns.underlay.invalidate_routes()  # type: ignore[union-attr]
    r4 = wire.lt.call(lambda: s4.route(int.from_bytes(B4, "big")))
    r6 = wire.lt.call(lambda: s6.route(int.from_bytes(B6, "big")))
    assert r4 is not None and r4.src == int.from_bytes(A4, "big") and r4.mtu == 1400
    assert r6 is not None and r6.src == int.from_bytes(A6, "big") and r6.mtu == 1400
    assert (
        wire.lt.call(lambda: s4.route(int.from_bytes(socket.inet_aton("10.99.0.1"), "big"))) is None
    )
    # longer than the MTU: refused and counted, nothing raised
    big = ip4(A4, B4, 17, bytes(1400))
    assert wire.lt.call(lambda: s4.send([big])) == 0
    assert s4.stats()["tx_errors"] == 1


def test_port_conflicts(wire: Wire) -> None:
    wire.open(IPPROTO_UDP, 4789)
    with pytest.raises(DeviceError) as e:
        wire.open(IPPROTO_UDP, 4789)
    assert e.value.errno == errno.EADDRINUSE
    gre = wire.open(IPPROTO_GRE, 0)
    with pytest.raises(DeviceError) as e:
        wire.open(IPPROTO_GRE, 0)
    assert e.value.errno == errno.EADDRINUSE
    wire.lt.call(gre.close)
    wire.open(IPPROTO_GRE, 0)  # free again
    # another process (here: a plain socket) on the port
    code = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 6081))
print("bound", flush=True)
sys.stdin.read()
"""
    proc = subprocess.Popen(["ip", "netns", "exec", wire.sw_a, "python3", "-c", code],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "bound"
        with pytest.raises(DeviceError) as e:
            wire.open(IPPROTO_UDP, 6081)
        assert e.value.errno == errno.EADDRINUSE
    finally:
        proc.kill()
        proc.wait()


def nft_tables(ns: str) -> list[str]:
    out = netns_exec(ns, "nft", "list", "tables")
    return [ln.split()[-1] for ln in out.splitlines() if ln.startswith("table")]


def test_stt_firewall_table_lifetime(wire: Wire) -> None:
    why = nft_available()
    if why:
        pytest.skip(why)
    s4 = wire.open(IPPROTO_TCP, 7471, AF_INET)
    s6 = wire.open(IPPROTO_TCP, 7471, AF_INET6)
    assert nft_tables(wire.sw_a) == ["pyvswitch_stt_7471"]
    rules = netns_exec(wire.sw_a, "nft", "list", "table", "inet", "pyvswitch_stt_7471")
    assert "tcp sport 7471" in rules and "drop" in rules
    # the port is reserved
    with pytest.raises(DeviceError) as e:
        wire.open(IPPROTO_TCP, 7471, AF_INET)
    assert e.value.errno == errno.EADDRINUSE
    wire.lt.call(s4.close)
    assert nft_tables(wire.sw_a) == ["pyvswitch_stt_7471"]  # still used by IPv6
    wire.lt.call(s6.close)
    assert nft_tables(wire.sw_a) == []
    wire.open(IPPROTO_TCP, 7471, AF_INET)
    assert nft_tables(wire.sw_a) == ["pyvswitch_stt_7471"]
    wire.lt.call(wire.ns.close)  # the namespace's close removes it too
    assert nft_tables(wire.sw_a) == []


def test_stt_raw_socket_takes_only_its_port(wire: Wire) -> None:
    """The raw TCP socket's filter passes only segments to the STT port; the
    host sends no RST for them."""
    require_tool("tcpdump", "tcpdump")
    why = nft_available()
    if why:
        pytest.skip(why)
    wire.open(IPPROTO_TCP, 7471, AF_INET)
    seg = struct.pack("!HHIIHHHH", 999, 7471, 60 << 16, 1, 0x5018, 65535, 0, 0) + bytes(40)
    other = struct.pack("!HHIIHHHH", 999, 7472, 60 << 16, 1, 0x5018, 65535, 0, 0) + bytes(40)

    def fix(tcp: bytes) -> bytes:
        cs = checksum(
            tcp, pseudo_ipv4(int.from_bytes(B4, "big"), int.from_bytes(A4, "big"), 6, len(tcp))
        )
        return tcp[:16] + cs.to_bytes(2, "big") + tcp[18:]

    with tempfile.TemporaryDirectory() as d, Capture(wire.sw_a, "ul0", d) as cap:
        for tcp in (fix(other), fix(seg)):
            py_in(wire.sw_b, _SEND_RAW, "4", ip4(B4, A4, 6, tcp).hex())
        got = wire.wait(1)
        time.sleep(0.3)
        pcap = cap.stop()
        rsts = tshark(pcap, "-Y", "tcp.flags.reset == 1")
    assert len(got) == 1 and got[0][22:24] == (7471).to_bytes(2, "big")
    # the segment to 7472 got the host's RST (no one listens there); 7471 none
    assert len(rsts) == 1 and "7472" in rsts[0]


def test_close_releases_everything(wire: Wire) -> None:
    for proto, port in ((IPPROTO_UDP, 4789), (IPPROTO_GRE, 0), (IPPROTO_TCP, 7471)):
        for fam in (AF_INET, AF_INET6):
            wire.open(proto, port, fam)
    wire.lt.call(wire.ns.close)
    # everything can be bound again by someone else
    ns2 = wire.lt.call(lambda: LinuxNetns(wire.sw_a, wire.lt.loop))
    try:
        for proto, port in ((IPPROTO_UDP, 4789), (IPPROTO_GRE, 0), (IPPROTO_TCP, 7471)):
            for fam in (AF_INET, AF_INET6):

                def reopen(p: int = proto, q: int = port, f: int = fam) -> LinuxTunnelSocket:
                    return ns2.tunnel_socket_open(p, q, f, lambda b: None)

                wire.lt.call(reopen)
    finally:
        wire.lt.call(ns2.close)
    if not nft_available():
        assert nft_tables(wire.sw_a) == []


def test_listener_uses_linux_underlay(pair_factory: Callable[..., TunnelPair]) -> None:
    """The datapath's tunnel listener sits on Linux sockets, one per family."""
    t = pair_factory("vxlan")
    socks = sockets_of(t)
    assert {s.family for s in socks} == {AF_INET, AF_INET6}
    assert all(s.proto == IPPROTO_UDP and s.port == 4789 for s in socks)
    assert tunnel_listener(t.ns_a, IPPROTO_UDP, 4789) is not None
