"""The pyvswitch command line: demo, --help, bad arguments."""

from __future__ import annotations

import io
import subprocess
import sys

from pyvswitch.demo import run_demo


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyvswitch.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_demo_pings_and_shows_datapath() -> None:
    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    assert "3 packets transmitted, 3 received, 0% packet loss" in text
    assert "memory@dp0:\n  lookups: hit:5 missed:3 lost:0\n  flows: 2\n" in text
    assert "  port 0: dp0 (internal)\n" in text
    assert "  port 1: p1\n    RX packets:4 errors:0 dropped:0 overruns:? frame:?\n" in text
    assert "upcall miss on port 1: arp" in text


def test_demo_command() -> None:
    p = run("demo", "--count", "2")
    assert p.returncode == 0, p.stderr
    assert "2 packets transmitted, 2 received" in p.stdout


def test_bad_argument_one_line_nonzero() -> None:
    p = run("demo", "--count", "zero")
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "invalid int value" in p.stderr
    p = run("frobnicate")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    p = run("demo", "--count", "0")
    assert p.returncode == 2 and "--count must be at least 1" in p.stderr


def test_help() -> None:
    p = run("--help")
    assert p.returncode == 0 and "demo" in p.stdout
