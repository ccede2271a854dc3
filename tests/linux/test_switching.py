"""End to end: real hosts (namespaces + veth) switched by a pyvswitch datapath
on the Linux backend -- ping, TCP and UDP with the veths' offloads left on."""

from __future__ import annotations

import errno
import hashlib
import json
import random
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvswitch.backends.linux import PacketDevice, RingConfig
from pyvswitch.errors import VportError

from .conftest import Hosts, LoopThread, netns_exec, ping, sh, wait_for
from .switch import Switch

pytestmark = pytest.mark.root


@pytest.fixture
def switch(hosts: Hosts, loop_thread: LoopThread) -> Iterator[Switch]:
    sw = Switch.create(loop_thread, hosts.sw)
    try:
        p1 = sw.add("p1")
        p2 = sw.add("p2")
        sw.forward(p1.port_no, [p2.port_no])
        sw.forward(p2.port_no, [p1.port_no])
        yield sw
    finally:
        sw.close()


def offloads_on(ns: str, dev: str) -> None:
    """The host's veth keeps checksum offload and TSO on (the defaults)."""
    if shutil.which("ethtool") is None:
        return
    out = netns_exec(ns, "ethtool", "-k", dev)
    assert "tx-checksumming: on" in out
    assert "tcp-segmentation-offload: on" in out


_SERVER = textwrap.dedent(
    """
    import hashlib, socket, sys
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[1])))
    s.listen(1)
    print("listening", flush=True)
    c, _ = s.accept()
    h = hashlib.sha256()
    n = 0
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
    print(n, h.hexdigest(), flush=True)
    """
)

_CLIENT = textwrap.dedent(
    """
    import socket, sys
    data = open(sys.argv[3], "rb").read()
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
    c.sendall(data)
    c.close()
    """
)


def tcp_transfer(src_ns: str, dst_ns: str, dst_ip: str, size: int, tmp: Path) -> None:
    """Send ``size`` random bytes over TCP; the receiver's sha256 must match."""
    payload = random.Random(size).randbytes(size)
    f = tmp / "payload.bin"
    f.write_bytes(payload)
    server = subprocess.Popen(
        ["ip", "netns", "exec", dst_ns, sys.executable, "-c", _SERVER, "5001"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "listening"
        netns_exec(src_ns, sys.executable, "-c", _CLIENT, dst_ip, "5001", str(f), timeout=120)
        out, _ = server.communicate(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    n, digest = out.split()
    assert int(n) == size
    assert digest == hashlib.sha256(payload).hexdigest()


def test_ping(hosts: Hosts, switch: Switch) -> None:
    offloads_on(hosts.h1, "eth0")
    r = ping(hosts.h1, hosts.ip2, count=5)
    assert " 0% packet loss" in r.stdout
    p1 = switch.dp.get_vport("p1")
    st = p1.get_stats()
    assert st.rx_packets >= 5 and st.tx_packets >= 5
    # the switch never receives its own transmissions (PACKET_OUTGOING):
    # what port 1 received equals what the kernel says arrived on p1
    dev = p1.get_device_stats()
    assert dev is not None
    assert st.rx_packets == dev.rx_packets
    assert st.tx_packets == dev.tx_packets


def test_tcp_transfer_with_offloads(hosts: Hosts, switch: Switch, tmp_path: Path) -> None:
    """TSO super-frames and partial checksums from the host stacks cross the
    switch with their offload state (virtio-net header) and arrive intact."""
    offloads_on(hosts.h1, "eth0")
    offloads_on(hosts.h2, "eth0")
    tcp_transfer(hosts.h1, hosts.h2, hosts.ip2, 32 << 20, tmp_path)
    p1 = switch.dp.get_vport("p1")
    st = p1.get_stats()
    # far fewer frames than 1500-byte packets: GSO super-frames went through whole
    assert st.rx_bytes / max(st.rx_packets, 1) > 3000


def test_tcp_transfer_software_offloads(
    hosts: Hosts, loop_thread: LoopThread, tmp_path: Path
) -> None:
    """Without virtio-net headers the backend finishes checksums and segments
    GSO frames itself (gso.py): the receiver still gets valid packets."""
    sw = Switch.create(loop_thread, hosts.sw, RingConfig(vnet_hdr=False))
    try:
        p1, p2 = sw.add("p1"), sw.add("p2")
        sw.forward(p1.port_no, [p2.port_no])
        sw.forward(p2.port_no, [p1.port_no])
        offloads_on(hosts.h1, "eth0")
        tcp_transfer(hosts.h1, hosts.h2, hosts.ip2, 4 << 20, tmp_path)
        ping(hosts.h2, hosts.ip1)
    finally:
        sw.close()


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3 (Debian iperf3)")
def test_iperf3(hosts: Hosts, switch: Switch) -> None:
    server = subprocess.Popen(
        ["ip", "netns", "exec", hosts.h2, "iperf3", "-s", "-1", "-p", "5202"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: "5202" in netns_exec(hosts.h2, "ss", "-ltn"), what="iperf3 server listening"
        )
        out = netns_exec(
            hosts.h1, "iperf3", "-c", hosts.ip2, "-p", "5202", "-t", "2", "-J", timeout=60
        )
        server.wait(30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    res = json.loads(out)
    bps = res["end"]["sum_received"]["bits_per_second"]
    assert bps > 50e6, f"only {bps / 1e6:.0f} Mbit/s"


_UDP_RECV = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 5003))
    s.settimeout(3)
    print("ready", flush=True)
    got = set()
    try:
        while len(got) < int(sys.argv[1]):
            d, _ = s.recvfrom(65535)
            got.add(d)
    except socket.timeout:
        pass
    print(len(got), flush=True)
    """
)

_UDP_SEND = textwrap.dedent(
    """
    import socket, sys, time
    dst, n, size, gso = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if gso:
        s.setsockopt(socket.SOL_UDP, 103, gso)  # UDP_SEGMENT: one GSO super-frame per send
    for i in range(n):
        if gso:
            msg = b"".join(b"%06d" % (i * 1000 + j) + bytes(gso - 6) for j in range(size // gso))
        else:
            msg = b"%06d" % i + bytes(size)
        s.sendto(msg, (dst, 5003))
        time.sleep(0.001)
    """
)


def udp_csum_errors(ns: str) -> int:
    """UDP InCsumErrors of the namespace (/proc/net/snmp)."""
    lines = [ln.split() for ln in netns_exec(ns, "cat", "/proc/net/snmp").splitlines()]
    udp = [ln for ln in lines if ln and ln[0] == "Udp:"]
    return int(dict(zip(udp[0], udp[1], strict=True))["InCsumErrors"])


def udp_transfer(hosts: Hosts, n: int, size: int, gso: int = 0) -> int:
    """Send ``n`` UDP messages h1 -> h2; returns distinct datagrams received."""
    expect = n * (size // gso) if gso else n
    recv = subprocess.Popen(
        ["ip", "netns", "exec", hosts.h2, sys.executable, "-c", _UDP_RECV, str(expect)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert recv.stdout is not None
        assert recv.stdout.readline().strip() == "ready"
        ping(hosts.h1, hosts.ip2, count=1)  # ARP first
        args = [hosts.ip2, str(n), str(size), str(gso)]
        netns_exec(hosts.h1, sys.executable, "-c", _UDP_SEND, *args)
        out, _ = recv.communicate(timeout=30)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    return int(out.strip())


@pytest.mark.parametrize("size", [100, 1400, 4000])
def test_udp_partial_checksums(hosts: Hosts, switch: Switch, size: int) -> None:
    """UDP from a local stack is checksum-partial on veth (4000 bytes: IP
    fragments); the datagrams arrive and pass the receiver's checks."""
    assert udp_transfer(hosts, 50, size) == 50
    assert udp_csum_errors(hosts.h2) == 0


def test_udp_gso(hosts: Hosts, switch: Switch) -> None:
    """UDP_SEGMENT super-frames (SKB_GSO_UDP_L4) keep their segment size in
    the virtio-net header and are cut into the sender's datagrams.  (Without
    the header the segment size is unknowable: see docs/linux-backend.md.)"""
    assert udp_transfer(hosts, 20, 8000, gso=1000) == 160
    assert udp_csum_errors(hosts.h2) == 0


_CAPTURE = textwrap.dedent(
    """
    import socket, struct, sys
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind(("eth0", 3))
    s.setsockopt(263, 8, 1)  # PACKET_AUXDATA
    s.settimeout(5)
    print("ready", flush=True)
    while True:
        data, anc, _f, _a = s.recvmsg(2048, 256)
        if data[6:12] != bytes.fromhex("02000000aa01"):
            continue
        for level, kind, aux in anc:
            if level == 263 and kind == 8:
                status, _l, _s, _m, _n, tci, tpid = struct.unpack("=IIIHHHH", aux[:20])
                print(status & 0x10 and tci, tpid, data[12:14].hex(), flush=True)
                sys.exit(0)
    """
)

_INJECT = textwrap.dedent(
    """
    import socket
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind(("eth0", 0))
    frame = (bytes.fromhex("02000000aa02" "02000000aa01" "8100" "0064" "0800")
             + bytes.fromhex("4500001c0001000040110000" "0a4e0001" "0a4e0002")
             + bytes(8) + bytes(18))
    for _ in range(3):
        s.send(frame)
    """
)


def test_vlan_tags_survive(hosts: Hosts, switch: Switch) -> None:
    """The kernel takes VLAN tags off received frames (into packet metadata);
    the ring walk puts them back, so a tagged frame leaves the switch tagged
    (the receiver's kernel reports VLAN 100 again)."""
    cap = subprocess.Popen(
        ["ip", "netns", "exec", hosts.h2, sys.executable, "-c", _CAPTURE],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert cap.stdout is not None
        assert cap.stdout.readline().strip() == "ready"
        netns_exec(hosts.h1, sys.executable, "-c", _INJECT)
        out, _ = cap.communicate(timeout=10)
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    tci, tpid, inner_type = out.split()
    assert (int(tci), int(tpid), inner_type) == (100, 0x8100, "0800")


def _promiscuity(ns: str, dev: str) -> int:
    out = sh("ip", "-n", ns, "-d", "-j", "link", "show", dev).stdout
    return int(json.loads(out)[0]["promiscuity"])


def test_promiscuous_while_attached(hosts: Hosts, loop_thread: LoopThread) -> None:
    sw = Switch.create(loop_thread, hosts.sw)
    try:
        assert _promiscuity(hosts.sw, "p1") == 0
        sw.add("p1")
        assert _promiscuity(hosts.sw, "p1") == 1
        sw.delete("p1")
        assert _promiscuity(hosts.sw, "p1") == 0
        sw.add("p1")  # attach again after detach
        assert _promiscuity(hosts.sw, "p1") == 1
    finally:
        sw.close()
    assert _promiscuity(hosts.sw, "p1") == 0


def test_device_belongs_to_one_datapath(hosts: Hosts, loop_thread: LoopThread) -> None:
    sw = Switch.create(loop_thread, hosts.sw)
    try:
        sw.add("p1")
        dp2 = loop_thread.call(lambda: sw.ovs.dp_new("dp1", sw.ns))
        with pytest.raises(VportError) as e:
            loop_thread.call(lambda: dp2.vport_add("p1"))
        assert e.value.errno == errno.EBUSY
        with pytest.raises(VportError) as e:
            loop_thread.call(lambda: dp2.vport_add("nosuchdev0"))
        assert e.value.errno == errno.ENODEV
        with pytest.raises(VportError) as e:  # the other datapath's internal device
            loop_thread.call(lambda: dp2.vport_add("dp0"))
        assert e.value.errno == errno.EINVAL
    finally:
        sw.close()


def test_device_identity_and_link_changes(hosts: Hosts, loop_thread: LoopThread) -> None:
    sw = Switch.create(loop_thread, hosts.sw)
    try:
        dev = loop_thread.call(lambda: sw.ns.dev_get_by_name("p1"))
        assert isinstance(dev, PacketDevice)
        assert loop_thread.call(lambda: sw.ns.dev_get_by_name("p1")) is dev
        assert loop_thread.call(lambda: sw.ns.dev_get_by_name("nosuchdev0")) is None
        info = json.loads(sh("ip", "-n", hosts.sw, "-j", "link", "show", "p1").stdout)[0]
        assert dev.ifindex == info["ifindex"]
        assert dev.mac.hex(":") == info["address"]
        assert dev.mtu == 1500 and dev.is_up
        loop_thread.call(lambda: dev.change_mtu(1400))
        loop_thread.call(lambda: dev.set_mac_address(bytes.fromhex("020000aabbcc")))
        info = json.loads(sh("ip", "-n", hosts.sw, "-j", "link", "show", "p1").stdout)[0]
        assert info["mtu"] == 1400 and info["address"] == "02:00:00:aa:bb:cc"
        # a change made outside reaches the cached state through link events
        sh("ip", "-n", hosts.sw, "link", "set", "p1", "mtu", "1300")
        wait_for(lambda: dev.mtu == 1300, what="MTU event")
        loop_thread.call(dev.stop)
        assert not dev.is_up
        loop_thread.call(dev.open)
        assert dev.is_up
    finally:
        sw.close()
