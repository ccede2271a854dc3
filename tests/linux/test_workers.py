"""``pyvswitch daemon --workers N``: worker processes on PACKET_FANOUT.

Each test starts a daemon with two workers in the switch namespace of its
own hosts (unique namespace names, removed afterwards) and drives it with
``pyvswitch dpctl`` / ``appctl``; the daemon and its workers are stopped by
pid whatever happens.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Hosts, netns_exec, ping, sh, wait_for

pytestmark = pytest.mark.root

PY = [sys.executable, "-m", "pyvswitch.cli"]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


class WorkersDaemon:
    """``pyvswitch daemon --workers N`` as a child in its own directory."""

    def __init__(self, netns: str, workers: int = 2, *extra: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="pvsw", dir="/tmp")
        self.ctl = os.path.join(self.dir, "pyvswitch.ctl")
        self.env = dict(os.environ, PYVSWITCH_RUNDIR=self.dir, PYVSWITCH_LOGDIR=self.dir)
        self.env.pop("PYVSWITCH_UNIXCTL", None)
        self.err_path = os.path.join(self.dir, "stderr")
        self.err = open(self.err_path, "w+")  # noqa: SIM115
        cmd = [*PY, "daemon", "--backend", "linux", "--netns", netns, "--unixctl", self.ctl,
               "--workers", str(workers), *extra]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err
        )
        self.seen: set[int] = {self.proc.pid}

    def log(self) -> str:
        return Path(self.err_path).read_text()

    def wait_ready(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.log()}")
            if self.dpctl("dump-dps", check=False).returncode == 0:
                self.seen.update(self.worker_pids())
                return
            time.sleep(0.1)
        raise AssertionError(f"daemon not ready: {self.log()}")

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([*PY, *args], env=self.env, capture_output=True, text=True, timeout=60)
        if check and r.returncode:
            raise AssertionError(f"{' '.join(args)}: {r.stderr}{r.stdout}")
        return r

    def dpctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("dpctl", "--unixctl", self.ctl, *args, check=check)

    def appctl(self, *args: str) -> str:
        return self.run("appctl", "-t", self.ctl, *args).stdout

    def workers(self) -> list[dict[str, object]]:
        """``workers/show`` parsed: pid, state, restarts, rx, per-dp ports/flows."""
        out: list[dict[str, object]] = []
        for line in self.appctl("workers/show").splitlines():
            m = re.match(
                r"worker (\d+): pid (\d+), (\w+).*restarts (\d+), ops applied (\d+)/(\d+), "
                r"rx packets (\d+)",
                line,
            )
            if m:
                out.append(
                    {
                        "index": int(m[1]),
                        "pid": int(m[2]),
                        "state": m[3],
                        "restarts": int(m[4]),
                        "applied": int(m[5]),
                        "sent": int(m[6]),
                        "rx": int(m[7]),
                        "dps": {},
                    }
                )
                continue
            m = re.match(r"\s+(\S+): ports (\d+), flows (\d+)", line)
            if m and out:
                dps = out[-1]["dps"]
                assert isinstance(dps, dict)
                dps[m[1]] = (int(m[2]), int(m[3]))
        return out

    def worker_pids(self) -> list[int]:
        pids = [int(str(w["pid"])) for w in self.workers() if w["state"] != "dead"]
        self.seen.update(pids)
        return pids

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid in self.seen:  # never leave a worker behind
            if pid != self.proc.pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def wd(hosts: Hosts) -> Iterator[WorkersDaemon]:
    d = WorkersDaemon(hosts.sw)
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()


@pytest.fixture
def wd_static(hosts: Hosts) -> Iterator[WorkersDaemon]:
    """Two workers without MAC learning: only the flows a test adds."""
    d = WorkersDaemon(hosts.sw, 2, "--no-learning")
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()


def link_stats(ns: str, dev: str) -> dict[str, int]:
    j = json.loads(sh("ip", "-n", ns, "-j", "-s", "link", "show", dev).stdout)[0]["stats64"]
    return {
        "rx_packets": j["rx"]["packets"],
        "rx_bytes": j["rx"]["bytes"],
        "tx_packets": j["tx"]["packets"],
        "tx_bytes": j["tx"]["bytes"],
    }


def port_stats(show: str, port: str) -> dict[str, int]:
    """RX/TX packets and bytes of ``port`` from ``dpctl show -s``."""
    m = re.search(
        rf"port \d+: {re.escape(port)}\b.*?\n\s+RX packets:(\d+).*?\n\s+TX packets:(\d+)"
        r".*?\n.*?\n\s+RX bytes:(\d+)[^\n]*?TX bytes:(\d+)",
        show,
        re.S,
    )
    assert m, show
    return {
        "rx_packets": int(m[1]),
        "tx_packets": int(m[2]),
        "rx_bytes": int(m[3]),
        "tx_bytes": int(m[4]),
    }


# TCP: N connections at once (distinct source ports: the fanout hash spreads
# them over the workers), each sending its own payload, checked by sha256.
_SERVER = textwrap.dedent(
    """
    import hashlib, socket, sys, threading
    n = int(sys.argv[2])
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[1])))
    s.listen(n)
    print("listening", flush=True)
    out = []
    def serve(c):
        h = hashlib.sha256()
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            h.update(b)
        out.append(h.hexdigest())
    ts = []
    for _ in range(n):
        c, _ = s.accept()
        t = threading.Thread(target=serve, args=(c,))
        t.start()
        ts.append(t)
    for t in ts:
        t.join()
    print(" ".join(sorted(out)), flush=True)
    """
)

_CLIENT = textwrap.dedent(
    """
    import socket, sys, threading
    n, size = int(sys.argv[3]), int(sys.argv[4])
    def send(i):
        data = bytes([i]) * size
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
        c.sendall(data)
        c.close()
    ts = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    """
)


def tcp_parallel(hosts: Hosts, n: int = 16, size: int = 1 << 20) -> None:
    server = subprocess.Popen(
        ["ip", "netns", "exec", hosts.h2, sys.executable, "-c", _SERVER, "5003", str(n)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "listening"
        netns_exec(
            hosts.h1, sys.executable, "-c", _CLIENT, hosts.ip2, "5003", str(n), str(size),
            timeout=120,
        )  # fmt: skip
        out, _ = server.communicate(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    want = sorted(hashlib.sha256(bytes([i]) * size).hexdigest() for i in range(n))
    assert out.split() == want


_UDP = textwrap.dedent(
    """
    import socket, sys
    dst, n = sys.argv[1], int(sys.argv[2])
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 20000 + i))
        s.sendto(b"x" * 100, (dst, 9))
        s.close()
    """
)


def udp_flows(hosts: Hosts, n: int) -> None:
    """``n`` UDP datagrams from h1 to h2, each from its own source port."""
    netns_exec(hosts.h1, sys.executable, "-c", _UDP, hosts.ip2, str(n))


def static_neighbors(hosts: Hosts) -> None:
    """No ARP: each host knows the other's MAC."""
    mac = {
        ns: json.loads(sh("ip", "-n", ns, "-j", "link", "show", "eth0").stdout)[0]["address"]
        for ns in (hosts.h1, hosts.h2)
    }
    sh("ip", "-n", hosts.h1, "neigh", "replace", hosts.ip2, "lladdr", mac[hosts.h2], "dev", "eth0")
    sh("ip", "-n", hosts.h2, "neigh", "replace", hosts.ip1, "lladdr", mac[hosts.h1], "dev", "eth0")


# ---------------------------------------------------------------------------


def test_two_workers_forward_ping_and_tcp(hosts: Hosts, wd: WorkersDaemon) -> None:
    wd.dpctl("add-dp", "dp0", "p1", "p2")
    r = ping(hosts.h1, hosts.ip2, count=3)
    assert " 0% packet loss" in r.stdout
    tcp_parallel(hosts)
    ws = wd.workers()
    assert [w["state"] for w in ws] == ["up", "up"]
    # both workers carried traffic, and both have the datapath
    assert all(int(str(w["rx"])) > 20 for w in ws), ws
    assert all(w["dps"] == {"dp0": w["dps"]["dp0"]} for w in ws)  # type: ignore[index]
    flows = wd.dpctl("dump-flows").stdout
    assert "in_port(1)" in flows and "in_port(2)" in flows
    # one line per megaflow, whichever workers hold it
    lines = flows.splitlines()
    assert len(lines) == len({line.split(", packets:")[0] for line in lines})
    assert "|ERR|" not in wd.log()


def test_per_worker_counters_sum_to_the_kernel_counters(
    hosts: Hosts, wd_static: WorkersDaemon
) -> None:
    d = wd_static
    d.dpctl("add-dp", "dp0", "p1", "p2")
    d.dpctl("add-flow", "in_port(1),eth()", "2")
    d.dpctl("add-flow", "in_port(2),eth()", "1")
    static_neighbors(hosts)
    time.sleep(0.3)
    k1, k2 = link_stats(hosts.sw, "p1"), link_stats(hosts.sw, "p2")
    s0 = d.dpctl("show", "-s").stdout
    v1, v2 = port_stats(s0, "p1"), port_stats(s0, "p2")
    udp_flows(hosts, 200)
    tcp_parallel(hosts, n=8, size=256 << 10)
    ping(hosts.h1, hosts.ip2, count=3)
    time.sleep(0.5)  # let the rings hand over their last blocks

    def settled() -> bool:
        a = link_stats(hosts.sw, "p1")["rx_packets"]
        time.sleep(0.2)
        return link_stats(hosts.sw, "p1")["rx_packets"] == a

    wait_for(settled, what="traffic to stop")
    k1b, k2b = link_stats(hosts.sw, "p1"), link_stats(hosts.sw, "p2")
    s1 = d.dpctl("show", "-s").stdout
    v1b, v2b = port_stats(s1, "p1"), port_stats(s1, "p2")
    # what the kernel received on p1 is what the datapath received on port p1
    # (summed over both workers' rows), and it sent all of it out of p2
    rx = k1b["rx_packets"] - k1["rx_packets"]
    assert rx >= 200  # (TCP goes as GSO super-frames: fewer, larger packets)
    assert v1b["rx_packets"] - v1["rx_packets"] == rx
    assert v1b["rx_bytes"] - v1["rx_bytes"] == k1b["rx_bytes"] - k1["rx_bytes"]
    assert v2b["tx_packets"] - v2["tx_packets"] == k2b["tx_packets"] - k2["tx_packets"]
    assert v2b["rx_packets"] - v2["rx_packets"] == k2b["rx_packets"] - k2["rx_packets"]
    assert v1b["tx_packets"] - v1["tx_packets"] == k1b["tx_packets"] - k1["tx_packets"]
    # every received packet was a hit; both workers counted some
    m = re.search(r"lookups: hit:(\d+) missed:(\d+) lost:(\d+)", s1)
    assert m and int(m[2]) == 0 and int(m[1]) == v1b["rx_packets"] + v2b["rx_packets"]
    ws = d.workers()
    assert all(int(str(w["rx"])) > 0 for w in ws), ws
    assert sum(int(str(w["rx"])) for w in ws) == v1b["rx_packets"] + v2b["rx_packets"]
    # flow statistics are summed over the workers too
    flows = d.dpctl("dump-flows").stdout
    m = re.search(r"in_port\(1\),eth\(\), packets:(\d+)", flows)
    assert m and int(m[1]) == v1b["rx_packets"], flows


def test_dpctl_changes_reach_every_worker(hosts: Hosts, wd_static: WorkersDaemon) -> None:
    d = wd_static

    def per_worker() -> list[tuple[int, int] | None]:
        return [w["dps"].get("dp0") for w in d.workers()]  # type: ignore[attr-defined]

    d.dpctl("add-dp", "dp0", "p1")
    assert per_worker() == [(2, 0), (2, 0)]
    d.dpctl("add-if", "dp0", "p2")
    assert per_worker() == [(3, 0), (3, 0)]
    ufid = "ufid:11111111-2222-3333-4444-555555555555"
    d.dpctl("add-flow", f"{ufid},in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "2")
    d.dpctl("add-flow", "in_port(2),eth()", "1")
    assert per_worker() == [(3, 2), (3, 2)]
    # the flows work in whichever worker a packet lands
    static_neighbors(hosts)
    d.dpctl("add-flow", "in_port(1),eth(),eth_type(0x0806),arp()", "2")
    r = ping(hosts.h1, hosts.ip2, count=3)
    assert " 0% packet loss" in r.stdout
    udp_flows(hosts, 64)
    got = d.dpctl("get-flow", ufid).stdout
    assert re.search(r"packets:(\d+)", got) and int(re.findall(r"packets:(\d+)", got)[0]) >= 67
    d.dpctl("mod-flow", f"{ufid},in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "drop")
    assert ping(hosts.h1, hosts.ip2, count=2, check=False).returncode != 0
    d.dpctl("mod-flow", "--clear", f"{ufid},in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "2")
    assert "packets:0," in d.dpctl("get-flow", ufid).stdout
    assert " 0% packet loss" in ping(hosts.h1, hosts.ip2, count=2).stdout
    d.dpctl("del-flow", ufid)
    assert per_worker() == [(3, 2), (3, 2)]
    # an internal port: the TAP exists once; every worker has the port
    d.dpctl("add-if", "dp0", "int0,type=internal")
    assert per_worker() == [(4, 2), (4, 2)]
    sh("ip", "-n", hosts.sw, "link", "show", "int0")
    d.dpctl("del-if", "dp0", "int0")
    assert per_worker() == [(3, 2), (3, 2)]
    assert sh("ip", "-n", hosts.sw, "link", "show", "int0", check=False).returncode != 0
    d.dpctl("cache-set-size", "dp0", "masks-cache", "512")
    d.dpctl("del-flows")
    assert per_worker() == [(3, 0), (3, 0)]
    # a tunnel port cannot be replicated: refused, not half-added
    r = d.dpctl("add-if", "dp0", "vx0,type=vxlan,remote_ip=10.9.9.9", check=False)
    assert r.returncode != 0 and "needs --workers 1" in r.stderr
    assert "vx0" not in d.dpctl("show").stdout
    d.dpctl("del-dp", "dp0")
    assert per_worker() == [None, None]
    assert sh("ip", "-n", hosts.sw, "link", "show", "dp0", check=False).returncode != 0
    assert all(w["applied"] == w["sent"] for w in d.workers())


def test_killed_worker_is_restarted(hosts: Hosts, wd: WorkersDaemon) -> None:
    wd.dpctl("add-dp", "dp0", "p1", "p2")
    assert " 0% packet loss" in ping(hosts.h1, hosts.ip2, count=3).stdout
    rx_before = port_stats(wd.dpctl("show", "-s").stdout, "p1")["rx_packets"]
    victim = wd.worker_pids()[1]
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        ws = wd.workers()
        return ws[1]["pid"] != victim and ws[1]["state"] == "up"

    wait_for(replaced, timeout=15, what="worker 1 restarted")
    ws = wd.workers()
    assert ws[1]["restarts"] == 1 and ws[0]["restarts"] == 0
    assert ws[1]["dps"] == {"dp0": (3, ws[1]["dps"]["dp0"][1])}  # type: ignore[index]
    assert not _alive(victim)
    assert f"worker 1 (pid {victim}) exited (killed by SIGKILL); restarting" in wd.log()
    wd.worker_pids()
    # still switching, counters never went back
    assert " 0% packet loss" in ping(hosts.h1, hosts.ip2, count=3).stdout
    tcp_parallel(hosts, n=8, size=64 << 10)
    assert port_stats(wd.dpctl("show", "-s").stdout, "p1")["rx_packets"] > rx_before


def test_workers_die_with_the_daemon(hosts: Hosts) -> None:
    d = WorkersDaemon(hosts.sw)
    try:
        d.wait_ready()
        d.dpctl("add-dp", "dp0", "p1", "p2")
        pids = d.worker_pids()
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        os.kill(d.proc.pid, signal.SIGKILL)  # no chance to clean up
        d.proc.wait(10)
        wait_for(lambda: not any(_alive(p) for p in pids), timeout=10, what="workers gone")
        # the TAP went with the last descriptor
        wait_for(
            lambda: sh("ip", "-n", hosts.sw, "link", "show", "dp0", check=False).returncode != 0,
            what="dp0 gone",
        )
    finally:
        d.stop()
    d = WorkersDaemon(hosts.sw)
    try:
        d.wait_ready()
        pids = d.worker_pids()
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(15) == 0
        assert not any(_alive(p) for p in pids)
    finally:
        d.stop()


def test_crash_looping_worker_ends_the_daemon(hosts: Hosts) -> None:
    d = WorkersDaemon(hosts.sw)
    try:
        d.wait_ready()
        d.dpctl("add-dp", "dp0", "p1", "p2")
        for _ in range(6):  # RESTART_LIMIT (5) failures in 60 s are tolerated
            if d.proc.poll() is not None:
                break
            victim = d.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)

            def gone(victim: int = victim) -> bool:
                if d.proc.poll() is not None:
                    return True
                try:
                    ws = d.workers()
                except AssertionError:  # it is going away
                    return d.proc.poll() is not None
                return ws[0]["pid"] != victim and ws[0]["state"] == "up"

            wait_for(gone, timeout=20, what="worker 0 replaced")
        assert d.proc.wait(20) == 1
        assert "giving up" in d.log()
        wait_for(lambda: not any(_alive(p) for p in d.seen if p != d.proc.pid), what="no workers")
        assert sh("ip", "-n", hosts.sw, "link", "show", "dp0", check=False).returncode != 0
    finally:
        d.stop()


def test_workers_need_the_linux_backend(tmp_path: Path) -> None:
    env = dict(os.environ, PYVSWITCH_RUNDIR=str(tmp_path), PYVSWITCH_LOGDIR=str(tmp_path))
    r = subprocess.run(
        [*PY, "daemon", "--backend", "memory", "--workers", "2", "--unixctl", str(tmp_path / "c")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1 and "--workers needs the linux backend" in r.stderr


def test_monitor_sees_worker_upcalls(hosts: Hosts, wd: WorkersDaemon) -> None:
    wd.dpctl("add-dp", "dp0", "p1", "p2")
    mon = subprocess.Popen(
        [*PY, "dpctl", "--unixctl", wd.ctl, "monitor", "-n", "1"],
        env=wd.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    t = threading.Thread(target=lambda: lines.extend(mon.stdout or []), daemon=True)
    t.start()
    try:
        time.sleep(1.5)  # the workers learn of the subscription within a second
        ping(hosts.h1, hosts.ip2, count=2)
        mon.wait(15)
    finally:
        if mon.poll() is None:
            mon.kill()
            mon.wait()
    t.join(5)
    assert any("system@dp0: miss upcall:" in line for line in lines), lines


# -- the pieces, without namespaces -----------------------------------------------


def test_shared_arena_counters_are_summed_across_processes() -> None:
    from pyvswitch.percpu import PcpuCounters, SharedArena, configure, set_worker

    arena = SharedArena(3, 1 << 16)
    configure(3, arena.alloc)
    try:
        c = PcpuCounters(("a", "b"))
    finally:
        configure(1)
    pid = os.fork()
    if pid == 0:  # a worker: its own row, at the offset it is told
        try:
            rows = arena.rows_at(c.rows.offset, 2)  # type: ignore[attr-defined]
            rows[1][0] += 5
            rows[1][1] += 7
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    set_worker(2)
    try:
        c.this_cpu()[0] += 1
    finally:
        set_worker(0)
    assert c.read() == {"a": 6, "b": 7}
    # a freed slot is reused only once every worker is past the deletion
    arena.free(c.rows, epoch=3)
    assert arena.alloc(2, 3).offset != c.rows.offset  # type: ignore[attr-defined]
    arena.release(3)
    again = arena.alloc(2, 3)
    assert again.offset == c.rows.offset and again[1][0] == 0  # type: ignore[attr-defined]


def test_channel_carries_messages_and_descriptors() -> None:
    import socket

    from pyvswitch.workers import Channel

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ca, cb = Channel(a), Channel(b)
    r, w = os.pipe()
    try:
        big = ("ops", 1, [("flow_put", "dp0", None, i, (1 << 200) - 1, ()) for i in range(20000)])
        ca.send(("fd", "int0"), [r])
        sender = threading.Thread(target=lambda: ca.send(big, timeout=10.0))
        sender.start()
        got: list[object] = []
        end = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < end:
            cb.wait_readable(0.5)
            got += cb.receive()
        sender.join(10)
        assert got[0] == ("fd", "int0") and got[1] == big
        fd = cb.fds.popleft()
        os.write(w, b"hello")
        assert os.read(fd, 5) == b"hello"
        os.close(fd)
        ca.close()
        cb.wait_readable(1.0)
        assert cb.receive() == [] and cb.closed
    finally:
        os.close(r)
        os.close(w)
        cb.close()
