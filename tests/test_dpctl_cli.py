"""``pyvswitch dpctl`` (and ``appctl``): every command through the CLI against
a real daemon subprocess, compared with OVS's exact output formats; the
in-memory mode and scripts; failures as one stderr line; ``--help``;
``parse-actions``/``normalize-actions`` against ``ovs-dpctl`` itself."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from pyvswitch.cli import _DPCTL_CLI, main
from pyvswitch.dpctl import COMMANDS

from .test_daemon import ARP_REQUEST, PY, DaemonProc

FLOW_A = "in_port(1),eth(),eth_type(0x0800),ipv4(src=10.0.0.0/255.255.255.0,frag=no)"
FLOW_B = "in_port(2),eth(),eth_type(0x0806),arp()"
#: how dumps print FLOW_B: an attribute whose mask is all zero is left out
FLOW_B_DUMP = "in_port(2),eth(),eth_type(0x0806)"
UFID = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def daemon() -> Iterator[DaemonProc]:
    d = DaemonProc()
    try:
        yield d
    finally:
        d.cleanup()


def cli(*args: str, stdin: str = "") -> tuple[int, str, str]:
    """Run ``pyvswitch ARGS`` in this process; (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(list(args))
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 1
    finally:
        sys.stdin = old_stdin
    return rc, out.getvalue(), err.getvalue()


def dpctl(d: DaemonProc, *args: str, stdin: str = "") -> tuple[int, str, str]:
    return cli("dpctl", "--unixctl", d.ctl, *args, stdin=stdin)


def ok(d: DaemonProc, *args: str, stdin: str = "") -> str:
    rc, out, err = dpctl(d, *args, stdin=stdin)
    assert (rc, err) == (0, ""), args
    return out


def fails(d: DaemonProc | None, *args: str, rc: int = 1) -> str:
    """The command fails with exit status ``rc`` and exactly one stderr line."""
    got, out, err = dpctl(d, *args) if d is not None else cli(*args)
    assert got == rc, (args, out, err)
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err.rstrip("\n")


SHOW_HEADER = (
    "memory@dp0:\n"
    "  lookups: hit:0 missed:0 lost:0\n"
    "  flows: 0\n"
    "  masks: hit:0 total:0 hit/pkt:0.00\n"
    "  cache: hit:0 hit-rate:0.00%\n"
    "  caches:\n"
    "    masks-cache: size:256\n"
    "    emc: size:8192\n"
)
NO_STATS = (
    "    RX packets:0 errors:0 dropped:0 overruns:? frame:?\n"
    "    TX packets:0 errors:0 dropped:0 aborted:? carrier:?\n"
    "    collisions:?\n"
    "    RX bytes:0  TX bytes:0\n"
)

# --------------------------------------------------------------------------- datapaths, ports


def test_datapath_and_port_commands(daemon: DaemonProc) -> None:
    assert ok(daemon, "dump-dps") == ""
    assert ok(daemon, "add-dp", "dp0", "p1", "p2,port_no=7") == ""
    assert ok(daemon, "dump-dps") == "memory@dp0\n"
    assert (
        ok(daemon, "add-if", "dp0", "vi0,type=internal", "vx0,type=vxlan,remote_ip=1.2.3.4") == ""
    )
    assert ok(daemon, "show") == SHOW_HEADER + (
        "  port 0: dp0 (internal)\n"
        "  port 1: p1\n"
        "  port 2: vi0 (internal)\n"
        "  port 3: vx0 (vxlan: remote_ip=1.2.3.4)\n"
        "  port 7: p2\n"
    )
    assert ok(daemon, "set-if", "dp0", "vx0,remote_ip=5.6.7.8,key=flow") == ""
    assert "  port 3: vx0 (vxlan: key=flow, remote_ip=5.6.7.8)\n" in ok(daemon, "show", "dp0")
    assert fails(daemon, "set-if", "dp0", "p1,type=internal") == (
        "pyvswitch: p1: can't change type from system to internal"
    )
    assert ok(daemon, "del-if", "dp0", "vi0", "3") == ""
    assert ok(daemon, "show", "-s", "memory@dp0") == SHOW_HEADER + (
        "  port 0: dp0 (internal)\n"
        + NO_STATS
        + "  port 1: p1\n"
        + NO_STATS
        + "  port 7: p2\n"
        + NO_STATS
    )
    assert fails(daemon, "del-if", "dp0", "nope") == "pyvswitch: no port named nope"
    assert fails(daemon, "add-dp", "dp0") == "pyvswitch: add_dp (File exists)"
    assert fails(daemon, "show", "dp9") == "pyvswitch: opening datapath dp9 failed (No such device)"
    assert ok(daemon, "del-dp", "dp0") == ""
    assert ok(daemon, "dump-dps") == ""
    assert fails(daemon, "del-dp", "dp0") == "pyvswitch: opening datapath (No such device)"


def test_show_counts_traffic(daemon: DaemonProc) -> None:
    ok(daemon, "add-dp", "dp0", "h1", "h2")
    assert cli("appctl", "-t", daemon.ctl, "netdev-memory/ip4addr", "h1", "10.0.0.1/24")[0] == 0
    assert cli("appctl", "-t", daemon.ctl, "netdev-memory/ip4addr", "h2", "10.0.0.2/24")[0] == 0
    rc, out, _ = cli("appctl", "-t", daemon.ctl, "netdev-memory/ping", "h1", "10.0.0.2", "3")
    assert (rc, out) == (0, "3 packets transmitted, 3 received, 0% packet loss\n")
    show = ok(daemon, "show", "-s")
    assert show.startswith(
        "memory@dp0:\n"
        "  lookups: hit:5 missed:3 lost:0\n"
        "  flows: 2\n"
        "  masks: hit:7 total:1 hit/pkt:0.88\n"
        "  cache: hit:3 hit-rate:37.50%\n"
    )
    assert (
        "  port 1: h1\n"
        "    RX packets:4 errors:0 dropped:0 overruns:? frame:?\n"
        "    TX packets:4 errors:0 dropped:0 aborted:? carrier:?\n"
        "    collisions:?\n"
        "    RX bytes:336  TX bytes:336\n"
    ) in show


def test_cache_sizes(daemon: DaemonProc) -> None:
    ok(daemon, "add-dp", "dp0")
    assert (
        ok(daemon, "cache-get-size") == "memory@dp0:\n  masks-cache: size:256\n  emc: size:8192\n"
    )
    assert ok(daemon, "cache-set-size", "dp0", "masks-cache", "512") == (
        "Setting cache size successful, new size 512.\n"
    )
    assert "masks-cache: size:512" in ok(daemon, "cache-get-size", "dp0")
    assert fails(daemon, "cache-set-size", "dp0", "nosuch", "1") == (
        "pyvswitch: Cache name 'nosuch' not found on datapath"
    )


# --------------------------------------------------------------------------- flows


def test_flow_commands(daemon: DaemonProc) -> None:
    ok(daemon, "add-dp", "dp0", "p1", "p2")
    acts = "set(ipv4(ttl=10)),push_vlan(vid=10,pcp=3),2"
    assert ok(daemon, "add-flow", FLOW_A, acts) == ""
    assert ok(daemon, "dump-flows") == (
        f"{FLOW_A}, packets:0, bytes:0, used:never, actions:{acts}\n"
    )
    assert fails(daemon, "add-flow", "dp0", FLOW_A, "2") == (
        "pyvswitch: updating flow table (File exists)"
    )
    # mod-flow: -s prints the statistics from before the change
    assert ok(daemon, "mod-flow", "-s", FLOW_A, "1,2") == "packets:0, bytes:0, used:never\n"
    assert ok(daemon, "dump-flows", "dp0").endswith(", actions:1,2\n")
    assert fails(daemon, "mod-flow", FLOW_B, "1") == (
        "pyvswitch: updating flow table (No such file or directory)"
    )
    assert ok(daemon, "mod-flow", "--may-create", "--clear", FLOW_B, "1") == ""
    assert len(ok(daemon, "dump-flows").splitlines()) == 2
    assert ok(daemon, "del-flow", "-s", FLOW_B) == "packets:0, bytes:0, used:never\n"
    err = fails(daemon, "del-flow", FLOW_B)
    assert err == (
        "pyvswitch: deleting flow (No such file or directory); Perhaps you need to specify a UFID?"
    )
    assert ok(daemon, "del-flows") == ""
    assert ok(daemon, "dump-flows") == ""


def test_ufid_get_flow_and_verbose_dump(daemon: DaemonProc) -> None:
    ok(daemon, "add-dp", "dp0", "p1", "p2")
    assert ok(daemon, "add-flow", f"ufid:{UFID},{FLOW_B}", "p1") == ""  # a port name
    line = f"{FLOW_B_DUMP}, packets:0, bytes:0, used:never, actions:1\n"
    assert ok(daemon, "get-flow", f"ufid:{UFID}") == line
    assert ok(daemon, "dump-flows") == line
    assert ok(daemon, "dump-flows", "--names") == line.replace("in_port(2)", "in_port(p2)").replace(
        "actions:1", "actions:p1"
    )
    verbose = ok(daemon, "dump-flows", "-m")
    assert verbose.startswith(f"ufid:{UFID}, recirc_id(0/0),dp_hash(0/0),skb_priority(0/0),")
    assert "in_port(p2)" in verbose and verbose.endswith(", dp:ovs, actions:p1\n")
    assert "in_port(2)" in ok(daemon, "dump-flows", "-m", "--no-names")
    assert ok(daemon, "get-flow", "-m", f"ufid:{UFID}") == verbose
    assert ok(daemon, "del-flow", f"ufid:{UFID}") == ""
    assert fails(daemon, "get-flow", f"ufid:{UFID}") == (
        "pyvswitch: getting flow (No such file or directory)"
    )
    err = fails(daemon, "get-flow", "ufid:1234")
    assert err.startswith("pyvswitch: parsing flow ufid (invalid UFID")


def test_dump_flows_filter_type_pmd(daemon: DaemonProc) -> None:
    ok(daemon, "add-dp", "dp0", "p1", "p2")
    tcp = "in_port(1),eth(),eth_type(0x0800),ipv4(proto=6,frag=no),tcp(dst=80)"
    udp = "in_port(1),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(dst=53)"
    # like the kernel, a TCP key needs tcp_flags (here wildcarded, so not printed)
    assert fails(daemon, "add-flow", tcp, "2").endswith("(Invalid argument)")
    ok(daemon, "add-flow", tcp + ",tcp_flags(0/0)", "2")
    ok(daemon, "add-flow", udp, "2")
    ok(daemon, "add-flow", FLOW_B, "1")

    def keys(*args: str) -> list[str]:
        return [ln.split(", packets:")[0] for ln in ok(daemon, "dump-flows", *args).splitlines()]

    assert keys("filter=tcp,tp_dst=80") == [tcp]
    assert keys("filter=udp") == [udp]
    assert keys("filter=ip") == [tcp, udp]
    assert keys("filter=arp") == [FLOW_B_DUMP]
    assert keys("filter=in_port=p2") == [FLOW_B_DUMP]
    assert keys("filter=tcp,tp_dst=81") == []
    assert keys("dp0", "type=ovs") == [tcp, udp, FLOW_B_DUMP]
    assert keys("type=offloaded") == []
    assert keys("pmd=-1") == []  # a kernel datapath's flows belong to no PMD thread
    assert fails(daemon, "dump-flows", "filter=tcp,foo=1") == (
        "pyvswitch: Failed to parse filter (tcp,foo=1: unknown field foo)"
    )
    assert fails(daemon, "dump-flows", "filter=tp_dst=80") == (
        "pyvswitch: Failed to parse filter (tp_dst=80: prerequisites not met for setting tp_dst)"
    )
    assert fails(daemon, "dump-flows", "type=bogus") == "pyvswitch: Failed to parse type (bogus)"


def test_flow_files(daemon: DaemonProc, tmp_path: str) -> None:
    ok(daemon, "add-dp", "dp0", "p1", "p2")
    path = os.path.join(str(tmp_path), "flows.txt")
    with open(path, "w") as fh:
        fh.write(f"# two flows\n{FLOW_A} 2\nadd ufid:{UFID},{FLOW_B} 1  # trailing comment\n\n")
    assert ok(daemon, "add-flows", path) == ""
    assert len(ok(daemon, "dump-flows").splitlines()) == 2
    with open(path, "w") as fh:
        fh.write(f"{FLOW_A} 1\nmodify ufid:{UFID},{FLOW_B} 2\n")
    assert ok(daemon, "mod-flows", "dp0", path) == ""
    assert sorted(ln.rsplit(":", 1)[1] for ln in ok(daemon, "dump-flows").splitlines()) == [
        "1",
        "2",
    ]
    assert ok(daemon, "del-flows", "-", stdin=f"{FLOW_A}\ndelete ufid:{UFID}\n") == ""
    assert ok(daemon, "dump-flows") == ""
    # a bad line does not stop the others, but the command fails, naming it
    with open(path, "w") as fh:
        fh.write(f"{FLOW_A} 2\n{FLOW_A} 2\nadd\n{FLOW_B} 1\n")
    err = fails(daemon, "add-flows", path)
    assert err == (
        f"pyvswitch: {path}:2: updating flow table (File exists) (and 1 more failed lines)"
    )
    assert len(ok(daemon, "dump-flows").splitlines()) == 2
    assert fails(daemon, "add-flows", "/nonexistent/flows") == (
        'pyvswitch: Opening file "/nonexistent/flows" failed (No such file or directory)'
    )


def test_bad_flow_text_names_position_and_token(daemon: DaemonProc) -> None:
    ok(daemon, "add-dp", "dp0", "p1", "p2")
    assert fails(daemon, "add-flow", "in_port(1),eth(),bogus(1)", "2") == (
        "pyvswitch: parsing flow key (unknown key attribute 'bogus' at position 17 near 'bogus') "
        "(Invalid argument)"
    )
    err = fails(daemon, "add-flow", FLOW_A, "2,frob(3)")
    assert err.startswith("pyvswitch: parsing actions (") and "position 2" in err
    assert "'frob'" in err and err.endswith("(Invalid argument)")
    # accepted by the parser, refused by the datapath (ovs_nla_get_match)
    err = fails(daemon, "add-flow", "recirc_id(1),in_port(1),eth(),eth_type(0x0800)", "2")
    assert err.startswith("pyvswitch: updating flow table (") and "(Invalid argument)" in err


def test_execute(daemon: DaemonProc) -> None:
    ok(daemon, "add-dp", "dp0", "p1", "p2")
    assert ok(daemon, "execute", "in_port=p1", ARP_REQUEST, "2") == ""
    show = ok(daemon, "show", "-s")
    assert "  port 2: p2\n    RX packets:0 errors:0 dropped:0 overruns:? frame:?\n" in show
    assert "    TX packets:1 errors:0 dropped:0 aborted:? carrier:?\n" in show
    assert "  lookups: hit:0 missed:0 lost:0\n" in show  # execute is not a lookup
    assert fails(daemon, "execute", "dp0", "abc", "2") == (
        "pyvswitch: parsing packet (not an even number of hex digits) (Invalid argument)"
    )


def test_optional_dp_rules(daemon: DaemonProc) -> None:
    assert fails(daemon, "dump-flows") == "pyvswitch: no datapaths exist"
    ok(daemon, "add-dp", "dp0")
    ok(daemon, "add-dp", "dp1")
    assert fails(daemon, "dump-flows") == "pyvswitch: multiple datapaths, specify one"
    assert ok(daemon, "dump-flows", "dp1") == ""
    # all arguments given but the first is no datapath (opt_dpif_open)
    assert fails(daemon, "add-flow", "dp9", FLOW_A, "2") == (
        "pyvswitch: datapath not found (Invalid argument)"
    )


def test_list_commands_and_coverage(daemon: DaemonProc) -> None:
    lines = ok(daemon, "list-commands").splitlines()
    assert lines[0] == "The available commands are:"
    assert "  add-flow                [dp] flow actions" in lines  # OVS's usage strings
    assert len(lines) == 1 + len(COMMANDS)
    ok(daemon, "add-dp", "dp0", "p1", "p2")
    assert ok(daemon, "coverage") == "memory@dp0:\n"
    ok(daemon, "add-flow", "in_port(1),eth(),eth_type(0x0806),arp()", "drop")
    daemon.call("netdev-memory/receive", "p1", ARP_REQUEST)
    assert ok(daemon, "coverage", "dp0") == (
        "memory@dp0:\n  drop_action_of_pipeline                  1\n"
    )


def test_socket_from_environment(daemon: DaemonProc, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYVSWITCH_UNIXCTL", daemon.ctl)
    ok(daemon, "add-dp", "dp0")
    assert cli("dpctl", "dump-dps") == (0, "memory@dp0\n", "")
    assert cli("appctl", "dpctl/dump-dps") == (0, "memory@dp0\n", "")


def test_del_flow_of_a_key_the_datapath_refuses(daemon: DaemonProc) -> None:
    ok(daemon, "add-dp", "dp0", "p1")
    err = fails(daemon, "del-flow", "in_port(1),eth(),eth_type(0x0806)")
    assert err == ("pyvswitch: deleting flow (missing key attribute(s): arp) (Invalid argument)")


def test_read_only(daemon: DaemonProc) -> None:
    assert fails(daemon, "--read-only", "add-dp", "dp0") == (
        "pyvswitch: 'add-dp' command does not work in read only mode"
    )
    assert ok(daemon, "--read-only", "dump-dps") == ""


def test_monitor_cli(daemon: DaemonProc) -> None:
    ok(daemon, "add-dp", "dp0", "h1", "h2")
    mon = subprocess.Popen(
        [*PY, "dpctl", "--unixctl", daemon.ctl, "monitor", "-n", "2", "dp0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=daemon.env,
    )
    try:
        deadline = time.monotonic() + 30
        n = 0
        while mon.poll() is None and time.monotonic() < deadline:
            # a new source MAC each time: always a miss, never a learned flow
            n += 1
            frame = ARP_REQUEST[:12] + f"0a00000001{n:02x}" + ARP_REQUEST[24:]
            daemon.call("netdev-memory/receive", "h1", frame)
            time.sleep(0.1)
        out, err = mon.communicate(timeout=10)
    finally:
        if mon.poll() is None:
            mon.kill()
            mon.wait()
    assert (mon.returncode, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert re.fullmatch(
            r"memory@dp0: miss upcall: recirc_id\(0\),.*,in_port\(1\),.*"
            r"eth_type\(0x0806\),arp\(sip=10\.0\.0\.1,tip=10\.0\.0\.9,op=1,.*\), packet_len:42",
            line,
        ), line


def test_appctl_command(daemon: DaemonProc) -> None:
    rc, out, err = cli("appctl", "-t", daemon.ctl, "dpctl/add-dp", "dp0")
    assert (rc, out, err) == (0, "", "")
    rc, out, err = cli("appctl", "-t", daemon.ctl, "dpctl/show", "-s")
    assert rc == 0 and out.startswith("memory@dp0:\n")
    rc, out, err = cli("appctl", "-t", daemon.ctl, "dpctl/add-dp", "dp0")
    assert (rc, out, err) == (2, "", "pyvswitch: add_dp (File exists)\n")
    rc, out, err = cli("appctl", "-t", daemon.ctl, "nope")
    assert rc == 2 and err.startswith('pyvswitch: "nope" is not a valid command')


# --------------------------------------------------------------------------- no daemon


def test_no_daemon_is_one_line() -> None:
    d = tempfile.mkdtemp(prefix="pvs", dir="/tmp")
    try:
        path = os.path.join(d, "none.ctl")
        err = fails(None, "dpctl", "--unixctl", path, "show")
        assert err == (
            f'pyvswitch: cannot connect to "{path}" (No such file or directory); '
            "is 'pyvswitch daemon' running? (or use --in-memory)"
        )
    finally:
        shutil.rmtree(d)


def test_in_memory_single_command_and_script(tmp_path: str) -> None:
    rc, out, err = cli("dpctl", "--in-memory", "parse-actions", "1,2", "recirc(5)")
    assert (rc, out, err) == (0, "1,2\nrecirc(0x5)\n", "")
    script = os.path.join(str(tmp_path), "s.txt")
    with open(script, "w") as fh:
        fh.write(
            "# a switch, two hosts, a ping\n"
            "add-dp dp0 h1 h2\n"
            "netdev-memory/ip4addr h1 10.0.0.1/24\n"
            "netdev-memory/ip4addr h2 10.0.0.2/24\n"
            "netdev-memory/ping h1 10.0.0.2 3\n"
            "show\n"
            "dump-flows --names\n"
        )
    rc, out, err = cli("dpctl", "--in-memory", "--script", script)
    assert (rc, err) == (0, "")
    assert out.startswith(
        "OK\nOK\n3 packets transmitted, 3 received, 0% packet loss\n"
        "memory@dp0:\n  lookups: hit:5 missed:3 lost:0\n  flows: 2\n"
    )
    assert "recirc_id(0),in_port(h1),eth(src=" in out and ", actions:h2\n" in out
    with open(script, "a") as fh:
        fh.write("add-dp dp0\nshow\n")
    rc, out2, err = cli("dpctl", "--in-memory", "--script", script)
    assert rc == 1 and len(out2.splitlines()) == len(out.splitlines())  # stopped at line 8
    assert err == f"pyvswitch: {script}:8: add_dp (File exists)\n"
    rc, out, err = cli(
        "dpctl", "--in-memory", "--script", "-", stdin="dump-dps\nadd-dp x\ndump-dps\n"
    )
    assert (rc, out, err) == (0, "memory@x\n", "")


# --------------------------------------------------------------------------- parse-pcap


def test_parse_pcap(tmp_path: str) -> None:
    pcap = pytest.importorskip("pyvswitch.pcap", reason="pyvswitch.pcap not installed")
    path = os.path.join(str(tmp_path), "arp.pcap")
    pcap.write_pcap(path, [bytes.fromhex(ARP_REQUEST)])
    rc, out, err = cli("parse-pcap", path, "--in-port", "3")
    assert (rc, err) == (0, "")
    assert out == (
        "recirc_id(0),dp_hash(0),skb_priority(0),in_port(3),skb_mark(0),ct_state(0),ct_zone(0),"
        "ct_mark(0),ct_label(0),eth(src=0a:00:00:00:00:01,dst=ff:ff:ff:ff:ff:ff),"
        "eth_type(0x0806),arp(sip=10.0.0.1,tip=10.0.0.9,op=1,sha=0a:00:00:00:00:01,"
        "tha=00:00:00:00:00:00)\n"
    )
    missing = os.path.join(str(tmp_path), "missing.pcap")
    assert fails(None, "parse-pcap", missing) == (
        f"pyvswitch: {missing}: No such file or directory"
    )
    with open(path, "wb") as fh:
        fh.write(b"not a capture")
    assert fails(None, "parse-pcap", path).startswith(f"pyvswitch: {path}: not a pcap")


# --------------------------------------------------------------------------- usage


def test_every_command_has_help() -> None:
    names = [c.name for c in COMMANDS]
    assert sorted(_DPCTL_CLI) == sorted(names)
    for name in [*names, "monitor"]:
        rc, out, err = cli("dpctl", name, "--help")
        assert rc == 0 and err == ""
        assert out.startswith(f"usage: pyvswitch dpctl {name} [-h]"), out
    for sub in ("dpctl", "daemon", "appctl", "demo"):
        rc, out, _ = cli(sub, "--help")
        assert rc == 0 and out.startswith(f"usage: pyvswitch {sub}")
    rc, out, _ = cli("dpctl", "--help")
    assert all(n in out for n in names)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add-flow", "x"], "'add-flow' command requires at least 2 arguments"),
        (["del-dp", "a", "b"], "'del-dp' command takes at most 1 arguments"),
        (["show", "--frob"], "unrecognized arguments: --frob"),
        (["add-dp", "-m", "x"], "unrecognized arguments: -m"),
        ([], "a COMMAND or --script is required"),
        (["monitor", "-n", "0"], "--count must be at least 1"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    err = fails(None, "dpctl", "--unixctl", "/nonexistent.ctl", *args, rc=2)
    assert message in err


def test_usage_error_in_a_real_process() -> None:
    p = subprocess.run(
        [*PY, "dpctl", "--in-memory", "add-flow", "x"], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == (
        "pyvswitch dpctl add-flow: error: 'add-flow' command requires at least 2 arguments\n"
    )
    p = subprocess.run(
        [*PY, "dpctl", "--in-memory", "--script", "-"],
        input="add-dp dp0 p1\nadd-flow 'in_port(1),eth(),zz(' 2\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1 and p.stdout == "" and len(p.stderr.splitlines()) == 1
    assert p.stderr.startswith("pyvswitch: -:2: parsing flow key (") and "at position" in p.stderr


# --------------------------------------------------------------------------- vs ovs-dpctl


ACTION_CASES = [
    "1,2,3",
    "drop",
    "push_vlan(vid=5,pcp=0),1,pop_vlan,2",
    "set(ipv4(src=35.8.2.41/255.255.255.0))",
    "userspace(pid=6633,sFlow(vid=9,pcp=7,output=10))",
    "sample(sample=9.7%,actions(1,2,3,push_vlan(vid=1,pcp=2)))",
    "recirc(5)",
    "ct(commit,zone=5)",
]

NORMALIZE_FLOW = (
    "in_port(1),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x8100),"
    "vlan(vid=10,pcp=0),encap(eth_type(0x0800),ipv4(src=1.1.1.1,dst=2.2.2.2,proto=17,tos=0,"
    "ttl=64,frag=no),udp(src=1,dst=2))"
)
NORMALIZE_CASES = [
    "pop_vlan,2,push_vlan(vid=11,pcp=0),3,1",
    "3,2,1",
    "push_vlan(vid=7,pcp=1),4,2,pop_vlan,pop_vlan,1,5",
]


def _ovs() -> object:
    from tests import ovs_oracle

    reason = ovs_oracle.ovs_available()
    if reason is not None:
        pytest.skip(reason)
    return ovs_oracle


def test_parse_actions_matches_ovs_dpctl() -> None:
    oracle = _ovs()
    rc, out, err = cli("dpctl", "--in-memory", "parse-actions", *ACTION_CASES)
    assert (rc, err) == (0, "")
    assert out.splitlines() == oracle.parse_actions(*ACTION_CASES)  # type: ignore[attr-defined]


@pytest.mark.parametrize("actions", NORMALIZE_CASES)
def test_normalize_actions_matches_ovs_dpctl(actions: str) -> None:
    oracle = _ovs()
    rc, out, err = cli("dpctl", "--in-memory", "normalize-actions", NORMALIZE_FLOW, actions)
    assert (rc, err) == (0, "")
    first, *groups = out.splitlines()
    assert first == "input flow: " + oracle.format_key(NORMALIZE_FLOW)  # type: ignore[attr-defined]
    assert groups == oracle.normalize_actions(NORMALIZE_FLOW, actions)  # type: ignore[attr-defined]


def test_normalize_actions_names_and_verbose() -> None:
    rc, out, err = cli(
        "dpctl", "--in-memory", "normalize-actions", "-m", NORMALIZE_FLOW, "pop_vlan,p2", "p2=2"
    )
    assert (rc, err) == (0, "")
    assert out.splitlines()[1:] == ["input actions: pop_vlan,2", "no vlan: no mpls: 2"]
    err = fails(None, "dpctl", "--in-memory", "normalize-actions", NORMALIZE_FLOW, "1", "bad")
    assert err == "pyvswitch: bad: expected NAME=NUMBER"
