"""Robustness soak: the daemon under full offered load (a script; root).

    python3 benchmarks/soak.py                        # 60 s, one process
    python3 benchmarks/soak.py --workers 2 --seconds 60

The topology of ``benchmarks/forwarding.py``::

    [gen ns] g0 ==veth== s0 [switch ns] s1 ==veth== k0 [sink ns]

The switch is the real daemon (``pyvswitch daemon --backend linux``, MAC
learning on, as deployed; ``--workers N``).  The sink first announces the
destination MAC (a short burst from k0), so the learning handler installs a
megaflow ``s0 -> s1``; then ``benchmarks/pktgen.py`` sends 60-byte UDP frames
from g0 as fast as it can (``--flows`` source ports) for the whole run.

While the load runs:

* every ``--probe-interval`` seconds a control request goes to the daemon's
  socket (``dpctl/show -s``, every fifth one ``dpctl/dump-flows``) from a
  persistent connection; its latency is recorded;
* every second the resident set size (``VmRSS``) of the daemon and of each
  worker process is sampled, and the sink's received packets.

Verdict (also what ``tests/linux/test_soak.py`` asserts on a shorter run):

* **memory flat**: after the warm-up (the first ``--warmup`` seconds) no
  process's RSS grows by more than ``--max-growth`` (5 %) -- last sample
  against the first sample after the warm-up;
* **responsive**: every probe answered, none slower than ``--max-latency``
  (200 ms);
* the daemon (and every worker) is still running and forwarding.

Prints the RSS curve, the latency percentiles and one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from benchmarks.forwarding import GEN_MAC, SINK_MAC, Topo, topology  # noqa: E402

PY_CLI = [sys.executable, "-m", "pyvswitch.cli"]


# --------------------------------------------------------------------------- processes


def rss_kib(pid: int) -> int | None:
    """``VmRSS`` of a process in KiB (None if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                out += [int(x) for x in (task / "children").read_text().split()]
    return sorted(out)


class Daemon:
    """``pyvswitch daemon`` in the switch namespace, our child."""

    def __init__(self, netns: str, workers: int, cpus: str | None) -> None:
        self.dir = tempfile.mkdtemp(prefix="pyvswitch-soak-")
        self.ctl = os.path.join(self.dir, "pyvswitch.ctl")
        self.env = dict(os.environ, PYVSWITCH_RUNDIR=self.dir, PYVSWITCH_LOGDIR=self.dir)
        self.env.pop("PYVSWITCH_UNIXCTL", None)
        cmd = [*PY_CLI, "daemon", "--backend", "linux", "--netns", netns,
               "--workers", str(workers), "--unixctl", self.ctl]  # fmt: skip
        if cpus:
            cmd = ["taskset", "-c", cpus, *cmd]
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.log = open(self.log_path, "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            cwd=str(HERE.parent),
        )

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(Path(self.log_path).read_text().splitlines()[-n:])

    def dpctl(self, *args: str) -> str:
        r = subprocess.run([*PY_CLI, "dpctl", "--unixctl", self.ctl, *args], env=self.env,
                           capture_output=True, text=True, timeout=30)  # fmt: skip
        if r.returncode:
            raise RuntimeError(f"dpctl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def wait_ready(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.dpctl("dump-dps")
                return
            except RuntimeError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        return self.proc.returncode

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def daemon(netns: str, workers: int, cpus: str | None) -> Iterator[Daemon]:
    d = Daemon(netns, workers, cpus)
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()
        d.cleanup()


# --------------------------------------------------------------------------- the run


@dataclass
class Sample:
    t: float
    rss_kib: dict[int, int]
    sink_pps: float


@dataclass
class SoakResult:
    seconds: float
    workers: int
    samples: list[Sample] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    probe_errors: list[str] = field(default_factory=list)
    warmup: float = 10.0
    max_growth: float = 0.05
    max_latency_ms: float = 200.0
    forwarded: int = 0
    alive_at_end: bool = True
    log_tail: str = ""

    def growth(self) -> dict[int, float]:
        """Per process: RSS at the end over RSS right after the warm-up, - 1."""
        after = [s for s in self.samples if s.t >= self.warmup]
        if len(after) < 2:
            return {}
        first, last = after[0].rss_kib, after[-1].rss_kib
        return {pid: last[pid] / first[pid] - 1 for pid in first if pid in last and first[pid]}

    def failures(self) -> list[str]:
        why = []
        for pid, g in self.growth().items():
            if g > self.max_growth:
                limit = f"{self.max_growth:.0%}"
                why.append(f"pid {pid}: RSS grew {g:.1%} after warm-up (limit {limit})")
        slow = [x for x in self.latencies_ms if x > self.max_latency_ms]
        if slow:
            why.append(
                f"{len(slow)} of {len(self.latencies_ms)} control requests slower than "
                f"{self.max_latency_ms:.0f} ms (max {max(slow):.0f} ms)"
            )
        if self.probe_errors:
            why.append(f"{len(self.probe_errors)} control requests failed: {self.probe_errors[:3]}")
        if not self.latencies_ms:
            why.append("no control request answered")
        if not self.alive_at_end:
            why.append("a daemon process died during the run")
        if self.forwarded <= 0:
            why.append("nothing was forwarded")
        return why

    def summary(self) -> dict[str, object]:
        lat = sorted(self.latencies_ms) or [0.0]
        return {
            "seconds": self.seconds,
            "workers": self.workers,
            "probes": len(self.latencies_ms),
            "probe_errors": len(self.probe_errors),
            "latency_ms": {
                "median": round(statistics.median(lat), 2),
                "p99": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
                "max": round(lat[-1], 2),
            },
            "rss_growth_after_warmup": {str(p): round(g, 4) for p, g in self.growth().items()},
            "rss_kib_first_last": {
                str(p): [self.samples[0].rss_kib.get(p), self.samples[-1].rss_kib.get(p)]
                for p in (self.samples[-1].rss_kib if self.samples else {})
            },
            "forwarded": self.forwarded,
            "mean_sink_kpps": round(
                statistics.mean([s.sink_pps for s in self.samples[1:]] or [0.0]) / 1e3, 1
            ),
            "ok": not self.failures(),
            "failures": self.failures(),
        }


class Prober(threading.Thread):
    """Control requests from one persistent connection, latencies recorded."""

    def __init__(self, ctl: str, interval: float, result: SoakResult) -> None:
        super().__init__(name="soak-prober", daemon=True)
        self.ctl = ctl
        self.interval = interval
        self.result = result
        self.stop_event = threading.Event()

    def run(self) -> None:
        from pyvswitch.unixctl import UnixctlClient

        client: UnixctlClient | None = None
        n = 0
        while not self.stop_event.wait(self.interval):
            n += 1
            method, params = ("dpctl/dump-flows", []) if n % 5 == 0 else ("dpctl/show", ["-s"])
            t0 = time.perf_counter()
            try:
                if client is None:
                    client = UnixctlClient(self.ctl, timeout=10.0)
                reply = client.transact(method, params)
                if method == "dpctl/show" and "system@dp0" not in reply:
                    raise RuntimeError(f"unexpected reply {reply[:80]!r}")
            except Exception as e:
                self.result.probe_errors.append(f"{method}: {type(e).__name__}: {e}")
                if client is not None:
                    client.close()
                client = None
                continue
            self.result.latencies_ms.append((time.perf_counter() - t0) * 1000)
        if client is not None:
            client.close()


def announce_sink(t: Topo) -> None:
    """A short burst from the sink with the destination MAC as source, so
    that MAC learning knows where it is."""
    subprocess.run(
        ["ip", "netns", "exec", t.sink, sys.executable, str(HERE / "pktgen.py"), "k0",
         "--src-mac", SINK_MAC, "--dst-mac", GEN_MAC, "--seconds", "0.05", "--batch", "4"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


def run_soak(
    seconds: float = 60.0,
    *,
    workers: int = 1,
    warmup: float = 10.0,
    probe_interval: float = 0.1,
    gen_cpu: int | None = 0,
    switch_cpus: str | None = "1",
    flows: int = 64,
    max_growth: float = 0.05,
    max_latency_ms: float = 200.0,
    report: bool = True,
) -> SoakResult:
    res = SoakResult(seconds, workers, warmup=warmup, max_growth=max_growth)
    res.max_latency_ms = max_latency_ms
    with topology() as t, daemon(t.sw, workers, switch_cpus) as d:
        d.dpctl("add-dp", "dp0", "s0", "s1")
        announce_sink(t)
        gen_cmd = [sys.executable, str(HERE / "pktgen.py"), "g0", "--dst-mac", SINK_MAC,
                   "--src-mac", GEN_MAC, "--seconds", str(seconds + 1),
                   "--flows", str(flows)]  # fmt: skip
        if gen_cpu is not None:
            gen_cmd = ["taskset", "-c", str(gen_cpu), *gen_cmd]
        gen = subprocess.Popen(
            ["ip", "netns", "exec", t.gen, *gen_cmd], stdout=subprocess.PIPE, text=True
        )
        prober = Prober(d.ctl, probe_interval, res)
        pids = d.pids()
        try:
            t0 = time.monotonic()
            rx0 = last_rx = t.sink_rx()
            last_t = t0
            prober.start()
            if report:
                print(f"daemon pids {pids} (first: main); {seconds:.0f} s at full load", flush=True)
                print(f"{'t':>5s} {'sink kpps':>9s}  RSS KiB per process", flush=True)
            while (now := time.monotonic()) - t0 < seconds:
                time.sleep(min(1.0, max(0.0, t0 + seconds - now)))
                now = time.monotonic()
                rx = t.sink_rx()
                rss = {p: r for p in pids if (r := rss_kib(p)) is not None}
                s = Sample(round(now - t0, 1), rss, (rx - last_rx) / max(now - last_t, 1e-6))
                res.samples.append(s)
                last_rx, last_t = rx, now
                if report:
                    cols = " ".join(f"{rss.get(p, 0):>8d}" for p in pids)
                    print(f"{s.t:5.1f} {s.sink_pps / 1e3:9.1f}  {cols}", flush=True)
                if len(rss) != len(pids) or d.proc.poll() is not None:
                    res.alive_at_end = False
                    break
            res.forwarded = t.sink_rx() - rx0
        finally:
            prober.stop_event.set()
            prober.join(15)
            if gen.poll() is None:
                gen.kill()
            gen.wait()
        res.alive_at_end = res.alive_at_end and d.proc.poll() is None
        res.alive_at_end = res.alive_at_end and all(rss_kib(p) is not None for p in pids)
        res.log_tail = d.log_tail()
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="pyvswitch soak under full load (root)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--probe-interval", type=float, default=0.1)
    ap.add_argument("--flows", type=int, default=64, help="UDP flows from the generator")
    ap.add_argument("--gen-cpu", type=int, default=0)
    ap.add_argument("--switch-cpus", default="1", help="taskset list for the daemon ('' = any)")
    ap.add_argument("--max-growth", type=float, default=0.05)
    ap.add_argument("--max-latency", type=float, default=200.0, metavar="MS")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    res = run_soak(
        args.seconds,
        workers=args.workers,
        warmup=args.warmup,
        probe_interval=args.probe_interval,
        gen_cpu=args.gen_cpu,
        switch_cpus=args.switch_cpus or None,
        flows=args.flows,
        max_growth=args.max_growth,
        max_latency_ms=args.max_latency,
    )
    summary = res.summary()
    lat = sorted(res.latencies_ms)
    if lat:
        pct = {p: lat[min(len(lat) - 1, int(len(lat) * p / 100))] for p in (50, 90, 99)}
        print(f"\ncontrol requests: {len(lat)} answered, {len(res.probe_errors)} failed; "
              f"latency ms p50 {pct[50]:.1f}  p90 {pct[90]:.1f}  p99 {pct[99]:.1f}  "
              f"max {lat[-1]:.1f}")  # fmt: skip
    for pid, g in res.growth().items():
        print(f"pid {pid}: RSS growth after warm-up {g:+.2%}")
    print("verdict:", "OK" if summary["ok"] else "FAIL: " + "; ".join(res.failures()))
    print(json.dumps(summary))
    if not summary["ok"]:
        print(res.log_tail, file=sys.stderr)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
