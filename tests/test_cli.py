"""The pyvswitch command line: demo, --help, bad arguments."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from pyvswitch.demo import run_demo, run_tunnel_demo


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
    # part 2: two datapaths joined by a VXLAN tunnel
    assert text.count("3 packets transmitted, 3 received, 0% packet loss") == 2
    assert "port 2: t0 (vxlan: key=flow, remote_ip=flow)" in text
    assert (
        "tunnel(tun_id=0x1389,src=192.168.100.2,dst=192.168.100.1,flags(+key)),in_port(2),eth(),"
        " packets:4, bytes:336" in text
    )


@pytest.mark.parametrize("kind", ["gre", "gre64", "vxlan", "geneve", "stt"])
def test_tunnel_demo_every_l2_tunnel(kind: str) -> None:
    out = io.StringIO()
    assert run_tunnel_demo(out, kind) == 0, out.getvalue()


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
