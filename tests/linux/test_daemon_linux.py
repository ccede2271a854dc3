"""``pyvswitch daemon --backend linux`` switching real hosts, driven with
``pyvswitch dpctl`` (MAC learning installs the flows)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from .conftest import Hosts, ping, sh

pytestmark = pytest.mark.root

PY = [sys.executable, "-m", "pyvswitch.cli"]


class LinuxDaemon:
    """A daemon child process in its own directory, stopped by pid."""

    def __init__(self, netns: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="pvsl", dir="/tmp")
        self.ctl = os.path.join(self.dir, "pyvswitch.ctl")
        self.env = dict(os.environ, PYVSWITCH_RUNDIR=self.dir, PYVSWITCH_LOGDIR=self.dir)
        self.env.pop("PYVSWITCH_UNIXCTL", None)
        self.err = open(os.path.join(self.dir, "stderr"), "w+")  # noqa: SIM115
        cmd = [*PY, "daemon", "--backend", "linux", "--netns", netns, "--unixctl", self.ctl]
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                self.err.seek(0)
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.err.read()}")
            if self.dpctl("dump-dps", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError("daemon not ready")

    def dpctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [*PY, "dpctl", "--unixctl", self.ctl, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check and r.returncode:
            raise AssertionError(f"dpctl {' '.join(args)}: {r.stderr}")
        return r

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def daemon(hosts: Hosts) -> Iterator[LinuxDaemon]:
    d = LinuxDaemon(hosts.sw)
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()


def test_daemon_switches_real_hosts(hosts: Hosts, daemon: LinuxDaemon) -> None:
    daemon.dpctl("add-dp", "dp0", "p1", "p2")
    r = ping(hosts.h1, hosts.ip2, count=3)
    assert " 0% packet loss" in r.stdout
    show = daemon.dpctl("show", "-s").stdout
    assert "system@dp0:" in show
    assert "port 1: p1" in show and "port 2: p2" in show
    flows = daemon.dpctl("dump-flows").stdout
    assert "in_port(1)" in flows and "in_port(2)" in flows
    daemon.dpctl("del-dp", "dp0")
    assert sh("ip", "-n", hosts.sw, "link", "show", "dp0", check=False).returncode != 0
