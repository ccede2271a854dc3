"""Forwarding benchmark on real veths (a script, not a test; root).

    python3 benchmarks/forwarding.py                      # all switches, 5 runs
    python3 benchmarks/forwarding.py --runs 3 --seconds 5 --switch pyvswitch ovs

64-byte UDP frames go from a generator in one namespace to a counting sink in
another, through a switch in a third::

    [gen ns] g0 ==veth== s0 [switch ns] s1 ==veth== k0 [sink ns]

Switches (each gets a fresh topology per run, runs interleaved):

* ``pyvswitch`` -- this project: ``LinuxNetns`` + a datapath with one flow per
  direction (``in_port(1) -> 2``, ``in_port(2) -> 1``), in its own process;
* ``ovs``       -- Open vSwitch's userspace datapath: a private ``ovsdb-server``
  and ``ovs-vswitchd`` in the switch namespace (it creates a tap named
  ``ovs-netdev``: one instance per namespace) with a bridge
  ``datapath_type=netdev``, the veths as ``system`` (AF_PACKET) ports and flows
  ``in_port=1,actions=2`` / ``in_port=2,actions=1``;
* ``bridge``    -- the Linux bridge; RPS on s0 gives it the switch core;
* ``pyvswitch-wN`` (``--workers N``) -- the real daemon, ``pyvswitch daemon
  --no-learning --workers N`` (N processes receiving through
  ``PACKET_FANOUT_HASH``), flows added with ``pyvswitch dpctl``; with
  ``--workers 1`` it is the one-process daemon.  Fanout spreads *flows*, so
  give the generator several (``--flows 64``).  ``--switch-cpus 0,1`` lets
  the workers use both cores (the generator's too).

The generator (``benchmarks/pktgen.py``: sendmmsg of prebuilt frames) is
pinned to ``--gen-cpu`` and the switch to ``--switch-cpu`` (taskset) the same
way for every switch.  The sink's veth counts what arrives (its rx_packets;
the frames are addressed to another MAC, so the sink drops them at once).
The result is the median received pps per switch, and pyvswitch/OVS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SINK_MAC = "02:00:00:00:00:02"  # not the sink's own MAC: it drops the frames at once
GEN_MAC = "02:00:00:00:00:01"
SWITCHES = ("pyvswitch", "ovs", "bridge")
PY_CLI = [sys.executable, "-m", "pyvswitch.cli"]


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _cpu_times() -> tuple[int, int]:
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + f[4]
    return sum(f) - idle, sum(f)


def cpu_busy(interval: float = 1.0) -> float:
    """Fraction of all CPUs busy over ``interval`` seconds (other work)."""
    b0, t0 = _cpu_times()
    time.sleep(interval)
    b1, t1 = _cpu_times()
    return (b1 - b0) / max(t1 - t0, 1)


def wait_quiet(limit: float, max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) until other work uses less than ``limit``
    of the machine; returns the last busy fraction seen."""
    end = time.monotonic() + max_wait
    busy = cpu_busy()
    while busy > limit and time.monotonic() < end:
        busy = cpu_busy()
    return busy


# --------------------------------------------------------------------------- topology


@dataclass
class Topo:
    tag: str = field(default_factory=lambda: secrets.token_hex(3))

    @property
    def gen(self) -> str:
        return f"fwd-gen-{self.tag}"

    @property
    def sw(self) -> str:
        return f"fwd-sw-{self.tag}"

    @property
    def sink(self) -> str:
        return f"fwd-sink-{self.tag}"

    def create(self) -> None:
        for ns in (self.gen, self.sw, self.sink):
            sh("ip", "netns", "add", ns)
            # no IPv6 chatter (router solicitations, DAD) through the switch
            for key in ("all", "default"):
                sysctl = f"net.ipv6.conf.{key}.disable_ipv6=1"
                sh("ip", "netns", "exec", ns, "sysctl", "-qw", sysctl)
        for ns, dev, peer in ((self.gen, "g0", "s0"), (self.sink, "k0", "s1")):
            veth = ("type", "veth", "peer", peer, "netns", self.sw)
            sh("ip", "link", "add", dev, "netns", ns, *veth)
        for ns, dev in ((self.gen, "g0"), (self.sw, "s0"), (self.sw, "s1"), (self.sink, "k0")):
            sh("ip", "-n", ns, "link", "set", dev, "up")

    def destroy(self) -> None:
        for ns in (self.gen, self.sw, self.sink):
            sh("ip", "netns", "delete", ns, check=False)

    def sink_rx(self) -> int:
        out = sh("ip", "-n", self.sink, "-j", "-s", "link", "show", "k0").stdout
        return int(json.loads(out)[0]["stats64"]["rx"]["packets"])


@contextlib.contextmanager
def topology() -> Iterator[Topo]:
    t = Topo()
    try:
        t.create()
        yield t
    finally:
        t.destroy()


# --------------------------------------------------------------------------- switches


def _wait_line(proc: subprocess.Popen[str], want: str, timeout: float = 20.0) -> None:
    assert proc.stdout is not None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"switch exited early (rc={proc.poll()})")
        if want in line:
            return
    raise RuntimeError("switch did not get ready")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def run_pyvswitch(t: Topo, cpu: int, extra: list[str]) -> Iterator[subprocess.Popen[str]]:
    cmd = ["taskset", "-c", str(cpu), sys.executable, str(HERE / "forwarding.py")]
    proc = subprocess.Popen(
        [*cmd, "--serve", t.sw, *extra], stdout=subprocess.PIPE, text=True, cwd=str(HERE.parent)
    )
    try:
        _wait_line(proc, "ready")
        yield proc
    finally:
        _stop(proc)


def serve(ns_name: str, stats_file: str | None, ring_opts: dict[str, int]) -> int:
    """The pyvswitch switch process (``--serve``): runs until SIGTERM."""
    from pyvswitch.backends.linux import LinuxNetns, RingConfig
    from pyvswitch.datapath import Openvswitch
    from pyvswitch.eventloop import EventLoop
    from pyvswitch.flow import field_mask, key_from_fields
    from pyvswitch.uapi import Output

    loop = EventLoop()
    ns = LinuxNetns(ns_name, loop, ring=RingConfig(**ring_opts))  # type: ignore[arg-type]
    dp = Openvswitch().dp_new("dp0", ns)
    p1 = dp.vport_add("s0")
    p2 = dp.vport_add("s1")
    m = field_mask("in_port")
    dp.flow_put(key_from_fields(in_port=p1.port_no), m, [Output(p2.port_no)])
    dp.flow_put(key_from_fields(in_port=p2.port_no), m, [Output(p1.port_no)])
    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    print("ready", flush=True)
    loop.run(poll_interval=0.5)
    if stats_file:
        dev = ns.dev_get_by_name("s0")
        info = {
            "rx_batches": getattr(dev, "rx_batches", 0),
            "rx_frames": getattr(dev, "rx_frames", 0),
            "s0": vars(p1.get_stats()),
            "s1": vars(p2.get_stats()),
            "s0_dev": repr(p1.get_device_stats()),
            "s1_dev": repr(p2.get_device_stats()),
        }
        Path(stats_file).write_text(json.dumps(info, indent=1))
    ns.close()
    return 0


class Ovs:
    """A private Open vSwitch (ovsdb-server + ovs-vswitchd) in one namespace;
    both daemons are our children, stopped by pid."""

    def __init__(self, netns: str, cpu: int) -> None:
        self.netns = netns
        self.cpu = cpu
        self.dir = tempfile.mkdtemp(prefix="pyvswitch-ovs-")
        self.env = dict(os.environ)
        for var in ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"):
            self.env[var] = self.dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def _run(self, *args: str) -> str:
        r = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def vsctl(self, *args: str) -> str:
        return self._run("ovs-vsctl", f"--db=unix:{self.dir}/db.sock", "--timeout=20", *args)

    def start(self) -> None:
        d = self.dir
        schema = "/usr/share/openvswitch/vswitch.ovsschema"
        self._run("ovsdb-tool", "create", f"{d}/conf.db", schema)
        ns = ["ip", "netns", "exec", self.netns]
        self.procs.append(
            subprocess.Popen(
                [*ns, "ovsdb-server", f"{d}/conf.db", f"--remote=punix:{d}/db.sock",
                 f"--unixctl={d}/ovsdb-server.ctl", f"--log-file={d}/ovsdb-server.log",
                 "--no-chdir"],
                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        _wait_path(f"{d}/db.sock")
        self.vsctl("--no-wait", "init")
        self.procs.append(
            subprocess.Popen(
                [*ns, "taskset", "-c", str(self.cpu), "ovs-vswitchd", f"unix:{d}/db.sock",
                 f"--unixctl={d}/ovs-vswitchd.ctl", f"--log-file={d}/ovs-vswitchd.log",
                 "--no-chdir"],
                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        _wait_path(f"{d}/ovs-vswitchd.ctl")
        self.vsctl(
            "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
            "--", "add-port", "br0", "s0", "--", "set", "interface", "s0", "ofport_request=1",
            "--", "add-port", "br0", "s1", "--", "set", "interface", "s1", "ofport_request=2",
        )  # fmt: skip
        mgmt = f"unix:{d}/br0.mgmt"
        _wait_path(f"{d}/br0.mgmt")
        self._run("ovs-ofctl", "del-flows", mgmt)
        self._run("ovs-ofctl", "add-flow", mgmt, "in_port=1,actions=output:2")
        self._run("ovs-ofctl", "add-flow", mgmt, "in_port=2,actions=output:1")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


def _wait_path(path: str, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.05)


@contextlib.contextmanager
def run_ovs(t: Topo, cpu: int, extra: list[str]) -> Iterator[None]:
    ovs = Ovs(t.sw, cpu)
    try:
        ovs.start()
        yield
    finally:
        ovs.stop()


@contextlib.contextmanager
def run_bridge(t: Topo, cpu: int, extra: list[str]) -> Iterator[None]:
    ns = ["ip", "-n", t.sw]
    sh(*ns, "link", "add", "br0", "type", "bridge")
    sh(*ns, "link", "set", "s0", "master", "br0")
    sh(*ns, "link", "set", "s1", "master", "br0")
    sh(*ns, "link", "set", "br0", "up")
    # the bridge works in softirq: RPS moves s0's receive processing to the switch core
    mask = format(1 << cpu, "x")
    rps = f"echo {mask} > /sys/class/net/s0/queues/rx-0/rps_cpus"
    sh("ip", "netns", "exec", t.sw, "sh", "-c", rps)
    yield None


class DaemonSwitch:
    """``pyvswitch daemon --workers N`` in the switch namespace, driven with
    ``pyvswitch dpctl``; our child, stopped by pid."""

    def __init__(self, t: Topo, cpus: str, workers: int) -> None:
        self.dir = tempfile.mkdtemp(prefix="pyvswitch-fwd-")
        self.ctl = os.path.join(self.dir, "pyvswitch.ctl")
        self.env = dict(os.environ, PYVSWITCH_RUNDIR=self.dir, PYVSWITCH_LOGDIR=self.dir)
        cmd = ["taskset", "-c", cpus, *PY_CLI, "daemon", "--backend", "linux", "--netns", t.sw,
               "--no-learning", "--workers", str(workers), "--unixctl", self.ctl]  # fmt: skip
        self.log = open(os.path.join(self.dir, "log"), "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=self.log, cwd=str(HERE.parent)
        )

    def dpctl(self, *args: str) -> str:
        r = subprocess.run([*PY_CLI, "dpctl", "--unixctl", self.ctl, *args], env=self.env,
                           capture_output=True, text=True, timeout=30)  # fmt: skip
        if r.returncode:
            raise RuntimeError(f"dpctl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def appctl(self, *args: str) -> str:
        r = subprocess.run([*PY_CLI, "appctl", "-t", self.ctl, *args], env=self.env,
                           capture_output=True, text=True, timeout=30)  # fmt: skip
        return r.stdout

    def start(self) -> None:
        end = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"daemon exited: {self.log.read()[-2000:]}")
            try:
                self.dpctl("dump-dps")
                break
            except RuntimeError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)
        self.dpctl("add-dp", "dp0", "s0", "s1")
        self.dpctl("add-flow", "in_port(1),eth()", "2")
        self.dpctl("add-flow", "in_port(2),eth()", "1")

    def stop(self) -> None:
        _stop(self.proc)  # type: ignore[arg-type]
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


#: what the last daemon run said about its workers (``workers/show``)
LAST_WORKERS: list[str] = []


@contextlib.contextmanager
def run_daemon_switch(t: Topo, cpus: str, workers: int) -> Iterator[DaemonSwitch]:
    d = DaemonSwitch(t, cpus, workers)
    try:
        d.start()
        yield d
        LAST_WORKERS[:] = [
            line for line in d.appctl("workers/show").splitlines() if line.startswith("worker ")
        ]
    finally:
        d.stop()


RUNNERS: dict[str, Callable[[Topo, int, list[str]], contextlib.AbstractContextManager[object]]] = {
    "pyvswitch": run_pyvswitch,
    "ovs": run_ovs,
    "bridge": run_bridge,
}


# --------------------------------------------------------------------------- measurement


def measure(
    t: Topo, gen_cpu: int, seconds: float, warmup: float, flows: int = 1
) -> tuple[float, float]:
    """(received pps at the sink, generator pps)."""
    gen = subprocess.Popen(
        ["ip", "netns", "exec", t.gen, "taskset", "-c", str(gen_cpu), sys.executable,
         str(HERE / "pktgen.py"), "g0", "--dst-mac", SINK_MAC, "--src-mac", GEN_MAC,
         "--seconds", str(seconds + warmup + 0.5), "--flows", str(flows)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(warmup)
        c0, t0 = t.sink_rx(), time.monotonic()
        time.sleep(seconds)
        c1, t1 = t.sink_rx(), time.monotonic()
        out, _ = gen.communicate(timeout=seconds + 30)
    finally:
        if gen.poll() is None:
            gen.kill()
            gen.wait()
    g = json.loads(out.strip().splitlines()[-1])
    return (c1 - c0) / (t1 - t0), float(g["pps"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="forwarding benchmark (root)")
    ap.add_argument("--switch", nargs="*", choices=SWITCHES, default=list(SWITCHES))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.5)
    ap.add_argument(
        "--quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each run wait up to SECONDS for the machine to be idle (<5%% busy)",
    )
    ap.add_argument("--gen-cpu", type=int, default=0)
    ap.add_argument("--switch-cpu", type=int, default=1)
    ap.add_argument(
        "--workers",
        type=int,
        nargs="*",
        default=[],
        metavar="N",
        help="also run 'pyvswitch daemon --workers N' for each N (switch pyvswitch-wN)",
    )
    ap.add_argument(
        "--switch-cpus",
        metavar="LIST",
        help="taskset CPU list for the pyvswitch-wN daemons (default: --switch-cpu)",
    )
    ap.add_argument(
        "--flows", type=int, default=1, help="distinct UDP flows from the generator (default 1)"
    )
    ap.add_argument(
        "--ring",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="pyvswitch RingConfig field, e.g. --ring block_size=262144 --ring vnet_hdr=0",
    )
    ap.add_argument("--serve", metavar="NETNS", help=argparse.SUPPRESS)
    ap.add_argument("--stats-file", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    ring_opts = {k: int(v) for k, v in (o.split("=", 1) for o in args.ring)}
    if args.serve:
        return serve(args.serve, args.stats_file, ring_opts)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    if "ovs" in args.switch and not shutil.which("ovs-vswitchd", path="/usr/sbin:/usr/bin:/sbin"):
        print("ovs-vswitchd not found: skipping ovs (apt-get install openvswitch-switch)")
        args.switch.remove("ovs")

    cpus = args.switch_cpus or str(args.switch_cpu)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {load()}")
    print(f"generator on cpu {args.gen_cpu} ({args.flows} flows), switch on cpu "
          f"{args.switch_cpu}, pyvswitch-wN on cpus {cpus}; "
          f"{args.runs} runs x {args.seconds}s, interleaved")  # fmt: skip
    switches = list(args.switch) + [f"pyvswitch-w{n}" for n in args.workers]
    results: dict[str, list[float]] = {s: [] for s in switches}
    offered: dict[str, list[float]] = {s: [] for s in switches}
    for run in range(args.runs):
        for name in switches:
            busy = wait_quiet(0.05, args.quiet) if args.quiet else cpu_busy(0.5)
            extra = [f"--ring={o}" for o in args.ring] if name == "pyvswitch" else []
            LAST_WORKERS.clear()
            with topology() as t:
                runner: contextlib.AbstractContextManager[object]
                if name.startswith("pyvswitch-w"):
                    runner = run_daemon_switch(t, cpus, int(name[len("pyvswitch-w") :]))
                else:
                    runner = RUNNERS[name](t, args.switch_cpu, extra)
                with runner:
                    rx, gen = measure(t, args.gen_cpu, args.seconds, args.warmup, args.flows)
            results[name].append(rx)
            offered[name].append(gen)
            print(f"  run {run + 1} {name:13s} {rx / 1e3:8.1f} kpps  "
                  f"(generator {gen / 1e3:.0f} kpps, busy before {busy:.0%}, load {load()})",
                  flush=True)  # fmt: skip
            for line in LAST_WORKERS:
                print(f"      {line}")
    print()
    print(f"{'switch':13s} {'median kpps':>12s} {'min':>8s} {'max':>8s} {'offered':>8s}")
    med: dict[str, float] = {}
    for name, xs in results.items():
        med[name] = statistics.median(xs)
        print(f"{name:13s} {med[name] / 1e3:12.1f} {min(xs) / 1e3:8.1f} {max(xs) / 1e3:8.1f} "
              f"{statistics.median(offered[name]) / 1e3:8.1f}")  # fmt: skip
    if med.get("ovs"):
        for name in med:
            if name.startswith("pyvswitch"):
                print(f"{name} / OVS userspace = {med[name] / med['ovs']:.2f}")
    print(f"load after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
