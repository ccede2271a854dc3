"""``pyvswitch daemon`` as a real subprocess (memory backend, private temp
dir): the real ``ovs-appctl`` against it, clean shutdown on SIGTERM/SIGINT/
``exit``, ``--detach`` + ``--pidfile``, socket mode, startup failures, the
upcall monitor, and OVS's own unixctl error texts compared with a real
``ovs-vswitchd``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from pyvswitch.unixctl import UnixctlClient, UnixctlConnectError, UnixctlServerError

OVS_APPCTL = "/usr/bin/ovs-appctl"
PY = [sys.executable, "-m", "pyvswitch.cli"]


def _env(rundir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYVSWITCH_RUNDIR=rundir, PYVSWITCH_LOGDIR=rundir, PYTHONUNBUFFERED="1")
    env.pop("PYVSWITCH_UNIXCTL", None)
    return env


class DaemonProc:
    """A ``pyvswitch daemon --backend memory`` child process in its own
    directory; :meth:`stop` (always called by the fixtures) ends it by pid."""

    def __init__(self, *extra: str, rundir: str | None = None) -> None:
        self.dir = rundir or tempfile.mkdtemp(prefix="pvs", dir="/tmp")
        self.ctl = os.path.join(self.dir, "pyvswitch.ctl")
        self.env = _env(self.dir)
        self.stderr_path = os.path.join(self.dir, "stderr")
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                [*PY, "daemon", "--backend", "memory", "--unixctl", self.ctl, *extra],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.stderr()}")
            try:
                with UnixctlClient(self.ctl, timeout=5) as c:
                    c.transact("version")
                return
            except UnixctlConnectError:
                time.sleep(0.05)
        raise AssertionError(f"daemon not ready after {timeout}s: {self.stderr()}")

    def stderr(self) -> str:
        with open(self.stderr_path) as fh:
            return fh.read()

    def call(self, method: str, *args: str) -> str:
        with UnixctlClient(self.ctl, timeout=30) as c:
            return c.transact(method, args)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


@pytest.fixture
def daemon() -> Iterator[DaemonProc]:
    d = DaemonProc("--pidfile")
    try:
        yield d
    finally:
        d.cleanup()


def appctl(
    d: DaemonProc, *args: str, target: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The real Debian ``ovs-appctl``."""
    if not os.path.exists(OVS_APPCTL):
        pytest.skip(f"{OVS_APPCTL} not installed (Debian package openvswitch-common)")
    env = dict(d.env, OVS_RUNDIR=d.dir)
    return subprocess.run(
        [OVS_APPCTL, "-t", target or d.ctl, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


# --------------------------------------------------------------------------- ovs-appctl


def test_ovs_appctl_dpctl_show_and_dump_dps(daemon: DaemonProc) -> None:
    p = appctl(daemon, "dpctl/add-dp", "dp0", "p1", "p2,port_no=5")
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    p = appctl(daemon, "dpctl/dump-dps")
    assert (p.returncode, p.stdout) == (0, "memory@dp0\n")
    p = appctl(daemon, "dpctl/show")
    assert p.returncode == 0
    assert p.stdout == (
        "memory@dp0:\n"
        "  lookups: hit:0 missed:0 lost:0\n"
        "  flows: 0\n"
        "  masks: hit:0 total:0 hit/pkt:0.00\n"
        "  cache: hit:0 hit-rate:0.00%\n"
        "  caches:\n"
        "    masks-cache: size:256\n"
        "    emc: size:8192\n"
        "  port 0: dp0 (internal)\n"
        "  port 1: p1\n"
        "  port 5: p2\n"
    )
    p = appctl(daemon, "dpctl/show", "-s", "memory@dp0")
    assert "  port 5: p2\n    RX packets:0 errors:0 dropped:0 overruns:? frame:?\n" in p.stdout
    assert "    RX bytes:0  TX bytes:0\n" in p.stdout


def test_ovs_appctl_traffic_shows_in_stats_and_flows(daemon: DaemonProc) -> None:
    assert appctl(daemon, "dpctl/add-dp", "dp0", "h1", "h2").returncode == 0
    assert appctl(daemon, "netdev-memory/ip4addr", "h1", "10.0.0.1/24").stdout == "OK\n"
    assert appctl(daemon, "netdev-memory/ip4addr", "h2", "10.0.0.2/24").stdout == "OK\n"
    p = appctl(daemon, "netdev-memory/ping", "h1", "10.0.0.2", "3")
    assert p.stdout == "3 packets transmitted, 3 received, 0% packet loss\n"
    show = appctl(daemon, "dpctl/show").stdout
    # ARP request (flooded) + ARP reply + first echo miss; the rest hit the learned flows
    assert "  lookups: hit:5 missed:3 lost:0\n  flows: 2\n" in show
    flows = appctl(daemon, "dpctl/dump-flows").stdout.splitlines()
    assert len(flows) == 2
    assert all(f.startswith("recirc_id(0),in_port(") and ", actions:" in f for f in flows)
    assert sorted(f.rsplit("actions:", 1)[1] for f in flows) == ["1", "2"]


def test_ovs_appctl_list_commands_version_exit(daemon: DaemonProc) -> None:
    p = appctl(daemon, "list-commands")
    lines = p.stdout.splitlines()
    assert lines[0] == "The available commands are:"
    assert "  dpctl/show              [-s] [dp...]" in lines
    assert "  dpctl/add-flow          [dp] flow actions" in lines
    assert "  dpctl/dump-flows        [-m] [--names] [dp] [filter=..] [type=..] [pmd=..]" in lines
    assert "  exit                    [--cleanup]" in lines
    assert lines[1:] == sorted(lines[1:])
    p = appctl(daemon, "version")
    assert p.stdout.startswith("pyvswitch (pyvswitch) ") and p.returncode == 0
    assert appctl(daemon, "dpctl/add-dp", "dp0", "p1").returncode == 0
    p = appctl(daemon, "exit")
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert daemon.proc.wait(10) == 0
    assert not os.path.exists(daemon.ctl)
    assert not os.path.exists(os.path.join(daemon.dir, "pyvswitch.pid"))
    assert "memory@dp0: deleted" in daemon.stderr()


def test_ovs_appctl_errors(daemon: DaemonProc) -> None:
    assert appctl(daemon, "dpctl/add-dp", "dp0").returncode == 0
    p = appctl(daemon, "dpctl/add-dp", "dp0")
    assert p.returncode == 2
    assert p.stderr == (
        f"pyvswitch: add_dp (File exists)\novs-appctl: {daemon.ctl}: server returned an error\n"
    )
    # options count against the limit, as in OVS
    p = appctl(daemon, "dpctl/mod-flow", "--clear", "-s", "in_port(1)", "2")
    assert p.stderr.startswith('"dpctl/mod-flow" command takes at most 3 arguments\n')
    p = appctl(daemon, "dpctl/frobnicate")
    assert p.stderr.startswith('"dpctl/frobnicate" is not a valid command')
    p = appctl(daemon, "dpctl/show", "-x")
    assert p.stderr.startswith("Unrecognized option -x\n")  # no program name, as in OVS


def test_ovs_appctl_add_flow_generates_ufid_and_del_flow_hint(daemon: DaemonProc) -> None:
    assert appctl(daemon, "dpctl/add-dp", "dp0", "p1", "p2").returncode == 0
    flow = "in_port(1),eth(),eth_type(0x0800),ipv4(src=10.0.0.0/255.255.255.0,frag=no)"
    assert appctl(daemon, "dpctl/add-flow", flow, "2").returncode == 0
    line = appctl(daemon, "dpctl/dump-flows", "-m").stdout
    assert line.startswith("ufid:") and line.endswith(", dp:ovs, actions:p2\n")
    ufid = line.split(",", 1)[0]
    assert appctl(daemon, "dpctl/get-flow", ufid).stdout == (
        f"{flow}, packets:0, bytes:0, used:never, actions:2\n"
    )
    p = appctl(daemon, "dpctl/del-flow", flow)  # the same UFID is generated again
    assert (p.returncode, p.stdout) == (0, "")
    p = appctl(daemon, "dpctl/del-flow", flow)
    assert p.returncode == 2
    assert p.stderr.startswith(
        "pyvswitch: deleting flow (No such file or directory)\n"
        "Perhaps you need to specify a UFID?\n"
    )


def test_ovs_appctl_flow_file_is_read_by_the_daemon(daemon: DaemonProc) -> None:
    assert appctl(daemon, "dpctl/add-dp", "dp0", "p1", "p2").returncode == 0
    path = os.path.join(daemon.dir, "flows")
    with open(path, "w") as fh:
        fh.write("in_port(1),eth(),eth_type(0x0800),ipv4(frag=no) 2\n")
        fh.write("in_port(2),eth(),eth_type(0x0806),arp() 1\n")
    p = appctl(daemon, "dpctl/add-flows", path)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    dump = appctl(daemon, "dpctl/dump-flows", "-m").stdout.splitlines()
    assert len(dump) == 2 and all(line.startswith("ufid:") for line in dump)
    with open(path, "w") as fh:  # deleting: flows without actions
        fh.write("in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)\n")
        fh.write("delete in_port(2),eth(),eth_type(0x0806),arp()\n")
    p = appctl(daemon, "dpctl/del-flows", path)  # the same UFIDs are generated again
    assert (p.returncode, appctl(daemon, "dpctl/dump-flows").stdout) == (0, "")
    p = appctl(daemon, "dpctl/add-flows", "-")
    assert p.returncode == 2 and p.stderr.startswith('pyvswitch: Opening file "-" failed')


def test_ovs_appctl_finds_us_by_name(daemon: DaemonProc) -> None:
    # with the default pidfile, "ovs-appctl -t pyvswitch" works as for ovs-vswitchd
    pid = int(read(os.path.join(daemon.dir, "pyvswitch.pid")))
    assert pid == daemon.proc.pid
    link = os.path.join(daemon.dir, f"pyvswitch.{pid}.ctl")
    assert os.path.islink(link)
    p = appctl(daemon, "version", target="pyvswitch")
    assert p.returncode == 0 and p.stdout.startswith("pyvswitch (pyvswitch)")
    daemon.stop()
    assert not os.path.lexists(link)


# --------------------------------------------------------------------------- shutdown


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_cleanup(sig: signal.Signals) -> None:
    d = DaemonProc("--pidfile", "--log-file")
    try:
        d.call("dpctl/add-dp", "dp0", "p1")
        pidfile = os.path.join(d.dir, "pyvswitch.pid")
        assert os.path.exists(pidfile) and os.path.exists(d.ctl)
        d.proc.send_signal(sig)
        assert d.proc.wait(10) == 0
        assert not os.path.exists(d.ctl)
        assert not os.path.exists(pidfile)
        log = read(os.path.join(d.dir, "pyvswitch.log"))
        assert f"|daemon|INFO|pyvswitch: received {sig.name}, exiting" in log
        assert "|daemon|INFO|memory@dp0: deleted" in log
    finally:
        d.cleanup()


def test_socket_mode_0600(daemon: DaemonProc) -> None:
    st = os.stat(daemon.ctl)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600


def test_detach_and_pidfile() -> None:
    rundir = tempfile.mkdtemp(prefix="pvs", dir="/tmp")
    pidfile = os.path.join(rundir, "d.pid")
    ctl = os.path.join(rundir, "d.ctl")
    pid = None
    try:
        detach = [*PY, "daemon", "--backend", "memory", "--detach", f"--pidfile={pidfile}"]
        p = subprocess.run(
            [*detach, "--unixctl", ctl, "--log-file"],
            env=_env(rundir),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
        # ready when the parent returned: pidfile written, socket answering
        pid = int(read(pidfile))
        os.kill(pid, 0)
        with UnixctlClient(ctl, timeout=10) as c:
            assert c.transact("version").startswith("pyvswitch")
            c.transact("dpctl/add-dp", ["dp0"])
        # a second daemon with the same pidfile refuses to start
        p2 = subprocess.run(
            [*detach, "--unixctl", os.path.join(rundir, "other.ctl")],
            env=_env(rundir),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert p2.returncode == 1
        assert p2.stderr == f"pyvswitch: {pidfile}: already running as pid {pid}, aborting\n"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while os.path.exists(pidfile) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(pidfile) and not os.path.exists(ctl)
        log = read(os.path.join(rundir, "pyvswitch.log"))
        assert "received SIGTERM" in log
        pid = None
    finally:
        if pid is None and os.path.exists(pidfile):
            with contextlib.suppress(ValueError, OSError):
                pid = int(read(pidfile))
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(rundir, ignore_errors=True)


def test_detach_reports_startup_failure() -> None:
    rundir = tempfile.mkdtemp(prefix="pvs", dir="/tmp")
    try:
        blocker = os.path.join(rundir, "busy.ctl")
        with open(blocker, "w") as fh:
            fh.write("a regular file where the socket should go")
        p = subprocess.run(
            [*PY, "daemon", "--backend", "memory", "--detach", "--unixctl", blocker],
            env=_env(rundir),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert p.returncode == 1
        assert p.stderr == f"pyvswitch: {blocker} exists and is not a socket\n"
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


def test_second_daemon_on_same_socket_fails(daemon: DaemonProc) -> None:
    p = subprocess.run(
        [*PY, "daemon", "--backend", "memory", "--unixctl", daemon.ctl],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 1
    assert p.stderr == f"pyvswitch: {daemon.ctl}: another daemon is already listening here\n"
    assert daemon.call("version")  # the first one is untouched


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "nosuch"], "invalid choice: 'nosuch'"),
        (["--max-idle", "soon"], "invalid int value: 'soon'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_daemon_arguments(args: list[str], message: str) -> None:
    p = subprocess.run([*PY, "daemon", *args], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    assert len(p.stderr.splitlines()) == 1 and message in p.stderr


def test_max_idle_negative_is_one_line() -> None:
    p = subprocess.run(
        [*PY, "daemon", "--backend", "memory", "--max-idle", "-1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (p.returncode, p.stderr) == (1, "pyvswitch: --max-idle must be >= 0\n")


def test_no_learning_leaves_misses_lost() -> None:
    d = DaemonProc("--no-learning")
    try:
        d.call("dpctl/add-dp", "dp0", "h1", "h2")
        d.call("netdev-memory/ip4addr", "h1", "10.0.0.1/24")
        out = d.call("netdev-memory/ping", "h1", "10.0.0.2", "2")
        assert out == "2 packets transmitted, 0 received, 100% packet loss\n"
        # one ARP request (the echoes wait for its answer): missed, and lost
        assert "  lookups: hit:0 missed:1 lost:1\n  flows: 0\n" in d.call("dpctl/show")
    finally:
        d.cleanup()


def test_handler_flows_expire_after_max_idle() -> None:
    d = DaemonProc("--max-idle", "300")
    try:
        d.call("dpctl/add-dp", "dp0", "h1", "h2")
        d.call("netdev-memory/ip4addr", "h1", "10.0.0.1/24")
        d.call("netdev-memory/ip4addr", "h2", "10.0.0.2/24")
        d.call("netdev-memory/ping", "h1", "10.0.0.2")
        assert "  flows: 2\n" in d.call("dpctl/show")
        deadline = time.monotonic() + 10
        while "  flows: 0\n" not in d.call("dpctl/show") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "  flows: 0\n" in d.call("dpctl/show")
    finally:
        d.cleanup()


def test_coverage_show(daemon: DaemonProc) -> None:
    daemon.call("dpctl/add-dp", "dp0", "h1", "h2")
    daemon.call("netdev-memory/ip4addr", "h1", "10.0.0.1/24")
    daemon.call("netdev-memory/ip4addr", "h2", "10.0.0.2/24")
    daemon.call("netdev-memory/ping", "h1", "10.0.0.2")
    # an explicit drop action counts a drop reason
    daemon.call("dpctl/add-flow", "in_port(1),eth(),eth_type(0x0806),arp()", "drop")
    daemon.call("netdev-memory/receive", "h1", ARP_REQUEST)
    text = daemon.call("coverage/show")
    lines = text.splitlines()
    assert lines[0].startswith("Event coverage, avg rate over last: 5 seconds, last minute,")
    assert lines[-1].endswith(" events never hit")
    by_name = {ln.split()[0]: ln for ln in lines[1:-1]}
    assert by_name["handler_upcall"].endswith("total: 3")
    assert by_name["drop_action_of_pipeline"].endswith("total: 1")
    assert "/sec" in by_name["unixctl_received"]


# 0a:00:00:00:00:01 (10.0.0.1) asks who has 10.0.0.9: broadcast, a miss until a flow matches
ARP_REQUEST = "ffffffffffff0a0000000001080600010800060400010a00000000010a0000010000000000000a000009"


def test_monitor_subscription_streams_upcalls(daemon: DaemonProc) -> None:
    daemon.call("dpctl/add-dp", "dp0", "h1", "h2")
    with UnixctlClient(daemon.ctl, timeout=10) as mon:
        reply = mon.transact("dpctl/monitor", ["dp0"])
        assert "JSON-RPC notification" in reply
        daemon.call("netdev-memory/receive", "h1", ARP_REQUEST)
        method, params = next(mon.notifications())
        assert method == "dpctl/monitor"
        assert params == [
            "memory@dp0: miss upcall: recirc_id(0),dp_hash(0),skb_priority(0),in_port(1),"
            "skb_mark(0),ct_state(0),ct_zone(0),ct_mark(0),ct_label(0),"
            "eth(src=0a:00:00:00:00:01,dst=ff:ff:ff:ff:ff:ff),eth_type(0x0806),"
            "arp(sip=10.0.0.1,tip=10.0.0.9,op=1,sha=0a:00:00:00:00:01,tha=00:00:00:00:00:00)"
            ", packet_len:42"
        ]
    with pytest.raises(UnixctlServerError, match="opening datapath"):
        daemon.call("dpctl/monitor", "nosuchdp")


def test_commands_survive_bad_input(daemon: DaemonProc) -> None:
    # a protocol error drops only that connection
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(daemon.ctl)
    s.sendall(b"this is not json")
    assert s.recv(10) == b""
    s.close()
    assert daemon.call("dpctl/dump-dps") == ""


# --------------------------------------------------------------------------- OVS's texts


@pytest.fixture(scope="module")
def ovs_sandbox() -> Iterator[object]:
    from tests.ovs_oracle import ovs_sandbox_or_skip

    with ovs_sandbox_or_skip() as sandbox:
        yield sandbox


def test_unixctl_errors_match_ovs_vswitchd(ovs_sandbox: object, daemon: DaemonProc) -> None:
    """The same requests to a real ovs-vswitchd and to our daemon give the
    same error texts (program name aside)."""
    from tests.ovs_oracle import OvsCommandError, OvsSandbox

    assert isinstance(ovs_sandbox, OvsSandbox)
    requests = [
        ("no-such-command",),
        ("dpctl/mod-flow", "--clear", "-s", "in_port(1)", "2"),
        ("dpctl/get-flow", "-m", "dp", "ufid:x"),
        ("dpctl/add-dp",),
        ("dpctl/show", "-x"),
        ("dpctl/show", "--frobnicate"),
        ("version", "extra"),
        ("list-commands", "extra"),
    ]
    for req in requests:
        with pytest.raises(OvsCommandError) as ei:
            ovs_sandbox.appctl(*req)
        theirs = ei.value.stderr.replace("ovs-vswitchd: ", "pyvswitch: ")
        with pytest.raises(UnixctlServerError) as mine:
            daemon.call(*req)
        assert mine.value.text == theirs, req
    # a datapath that exists already
    ovs_sandbox.appctl("dpctl/add-dp", "dummy@texts0")
    try:
        with pytest.raises(OvsCommandError) as ei:
            ovs_sandbox.appctl("dpctl/add-dp", "dummy@texts0")
    finally:
        ovs_sandbox.appctl("dpctl/del-dp", "dummy@texts0")
    daemon.call("dpctl/add-dp", "texts0")
    with pytest.raises(UnixctlServerError) as mine:
        daemon.call("dpctl/add-dp", "texts0")
    assert mine.value.text == ei.value.stderr.replace("ovs-vswitchd: ", "pyvswitch: ")
