"""Fixtures for the Linux backend's end-to-end tests (root only).

Every test builds its own hosts: network namespaces and veth pairs with
unique names (a per-session prefix plus a random suffix), removed in the
fixture's teardown even when the test fails; the session also sweeps any
namespace with its prefix at the end.  The switch runs in the test process:
an :class:`EventLoop` in a background thread (:class:`LoopThread`), and all
control operations (adding ports, flows) are run inside that thread with
:meth:`LoopThread.call` -- the datapath is single-threaded, like the daemon.
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from pyvswitch.eventloop import EventLoop

T = TypeVar("T")

#: All namespaces of this session start with this (and only those are swept).
SESSION_PREFIX = f"pvt{secrets.token_hex(2)}"


def _why_no_netns() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, TAP)"
    if shutil.which("ip") is None:
        return "needs the ip command (Debian iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun (TUN/TAP support)"
    probe = f"{SESSION_PREFIX}probe"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode:
        return f"cannot create network namespaces: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


_REASON: str | None = None
_CHECKED = False


def require_netns() -> None:
    global _REASON, _CHECKED
    if not _CHECKED:
        _REASON = _why_no_netns()
        _CHECKED = True
    if _REASON:
        pytest.skip(_REASON)


def sh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode:
        raise AssertionError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr or r.stdout}")
    return r


def netns_exec(ns: str, *args: str, check: bool = True, timeout: float = 60) -> str:
    return sh("ip", "netns", "exec", ns, *args, check=check, timeout=timeout).stdout


@pytest.fixture(scope="session", autouse=True)
def _sweep_namespaces() -> Iterator[None]:
    yield
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(SESSION_PREFIX):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)


class Netns:
    """Creates uniquely named namespaces and veth pairs; :meth:`cleanup`
    deletes every namespace it made (their devices go with them)."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.created: list[str] = []

    def add(self, role: str) -> str:
        name = f"{SESSION_PREFIX}-{role}-{self.tag}"
        sh("ip", "netns", "add", name)
        self.created.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        # no IPv6 autoconfiguration chatter through the switch
        netns_exec(name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        netns_exec(name, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        return name

    def veth(self, ns_a: str, name_a: str, ns_b: str, name_b: str, *, up: bool = True) -> None:
        peer = ("peer", name_b, "netns", ns_b)
        sh("ip", "link", "add", name_a, "netns", ns_a, "type", "veth", *peer)
        if up:
            sh("ip", "-n", ns_a, "link", "set", name_a, "up")
            sh("ip", "-n", ns_b, "link", "set", name_b, "up")

    def addr(self, ns: str, dev: str, cidr: str) -> None:
        sh("ip", "-n", ns, "addr", "add", cidr, "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")

    def cleanup(self) -> None:
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        self.created.clear()


@pytest.fixture
def netns() -> Iterator[Netns]:
    require_netns()
    n = Netns()
    try:
        yield n
    finally:
        n.cleanup()


class LoopThread:
    """An :class:`EventLoop` running in a background thread; :meth:`call`
    runs a function inside it and returns its result (or raises its error)."""

    def __init__(self, loop: EventLoop | None = None) -> None:
        self.loop = loop or EventLoop()
        self._calls: queue.Queue[tuple[Callable[[], Any], queue.Queue[tuple[bool, Any]]]]
        self._calls = queue.Queue()
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        self.loop.add_reader(self._rfd, self._run_calls)
        self.thread = threading.Thread(target=self._main, name="pyvswitch-loop", daemon=True)
        self.error: BaseException | None = None

    def _main(self) -> None:
        try:
            self.loop.run(poll_interval=0.05)
        except BaseException as e:  # pragma: no cover - reported by stop()
            self.error = e

    def _run_calls(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._rfd, 4096)
        while True:
            try:
                fn, reply = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                reply.put((True, fn()))
            except BaseException as e:
                reply.put((False, e))

    def start(self) -> LoopThread:
        self.thread.start()
        return self

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        if not self.thread.is_alive():
            return fn()
        reply: queue.Queue[tuple[bool, Any]] = queue.Queue()
        self._calls.put((fn, reply))
        os.write(self._wfd, b"x")
        ok, value = reply.get(timeout=timeout)
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.thread.is_alive():
            self.call(self.loop.stop)
            self.thread.join(10)
        self.loop.remove_reader(self._rfd)
        os.close(self._rfd)
        os.close(self._wfd)
        if self.error is not None:
            raise self.error


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread().start()
    try:
        yield lt
    finally:
        lt.stop()


@dataclass
class Hosts:
    """h1 (10.77.0.1) -- p1 [switch namespace] p2 -- h2 (10.77.0.2)."""

    netns: Netns
    sw: str
    h1: str
    h2: str
    ip1: str = "10.77.0.1"
    ip2: str = "10.77.0.2"
    extra: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def hosts(netns: Netns) -> Hosts:
    sw, h1, h2 = netns.add("sw"), netns.add("h1"), netns.add("h2")
    netns.veth(h1, "eth0", sw, "p1")
    netns.veth(h2, "eth0", sw, "p2")
    netns.addr(h1, "eth0", "10.77.0.1/24")
    netns.addr(h2, "eth0", "10.77.0.2/24")
    return Hosts(netns, sw, h1, h2)


def wait_for(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def ping(
    ns: str, ip: str, count: int = 3, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Real ping; -W 2 so that a broken switch fails fast."""
    return sh(
        "ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", "0.2", "-W", "2", ip,
        check=check, timeout=30,
    )  # fmt: skip
