"""Tests proving the OVS oracle harness (tests/ovs_oracle.py) works against real OVS 3.1."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6ND_NA, IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

import tests.ovs_oracle as oracle
from tests.ovs_oracle import (
    BRIDGE_DPIF,
    OvsCommandError,
    OvsError,
    OvsSandbox,
    dump_line_actions,
    dump_line_key,
    format_key,
    key_attrs,
    normalize_actions,
    ovs_available,
    ovs_sandbox,
    ovs_sandbox_or_skip,
    parse_actions,
    parse_frames,
    parse_pcap_keys,
    read_pcap,
    require_ovs,
    write_pcap,
)

pytestmark = pytest.mark.ovs

SRC_MAC = "00:00:00:00:00:01"
DST_MAC = "00:00:00:00:00:02"
REPO = Path(__file__).resolve().parent.parent
PR_SET_CHILD_SUBREAPER = 36


def udp_frame(sport: int = 1234, dport: int = 53, dst: str = "10.0.0.2", ttl: int = 64) -> bytes:
    pkt = (
        Ether(src=SRC_MAC, dst=DST_MAC)
        / IP(src="10.0.0.1", dst=dst, ttl=ttl)
        / UDP(sport=sport, dport=dport)
        / b"payload"
    )
    return bytes(pkt)


def ipv4_header_ok(header: bytes) -> bool:
    """True if the one's-complement sum over the IPv4 header (checksum included) is 0xffff."""
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def process_gone(pid: int) -> bool:
    """The pid no longer runs an OVS daemon (absent, zombie, or reused by something else)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return True
    state = stat.rsplit(")", 1)[1].split()[0]
    return state in ("Z", "X") or b"ovs" not in cmdline


def wait_gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(process_gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return all(process_gone(p) for p in pids)


@pytest.fixture(scope="module")
def ovs() -> Iterator[OvsSandbox]:
    with ovs_sandbox_or_skip() as sandbox:
        yield sandbox


@pytest.fixture
def needs_ovs() -> None:
    require_ovs()


# --------------------------------------------------------------------------- pure Python parts


def test_ovs_available_reports_missing_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(oracle, "_EXTRA_PATH", ())
    ovs_available.cache_clear()
    try:
        reason = ovs_available()
    finally:
        ovs_available.cache_clear()
    assert reason is not None
    assert "ovs-vswitchd" in reason


def test_pcap_roundtrip_and_byte_orders(tmp_path: Path) -> None:
    frames = [udp_frame(), bytes(Ether(src=SRC_MAC, dst=DST_MAC) / ARP()), b"\xff" * 60]
    path = tmp_path / "le.pcap"
    write_pcap(path, frames)
    data = path.read_bytes()
    assert data[:4] == bytes.fromhex("d4c3b2a1")  # classic, little-endian, microseconds
    assert struct.unpack_from("<I", data, 20)[0] == 1  # linktype Ethernet
    assert read_pcap(path) == frames
    # Reading from an offset returns only the records after it.
    first_end = 24 + 16 + len(frames[0])
    assert read_pcap(path, offset=first_end) == frames[1:]
    # Big-endian file with nanosecond magic, and a truncated trailing record.
    big = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    for frame in frames:
        big += struct.pack(">IIII", 1, 2, len(frame), len(frame)) + frame
    big += struct.pack(">IIII", 1, 2, 100, 100) + b"\x00" * 10
    (tmp_path / "be.pcap").write_bytes(big)
    assert read_pcap(tmp_path / "be.pcap") == frames
    (tmp_path / "bad.pcap").write_bytes(b"\x00" * 24)
    with pytest.raises(ValueError, match="not a classic pcap"):
        read_pcap(tmp_path / "bad.pcap")


def test_dump_line_helpers() -> None:
    line = (
        "ufid:07553786-0b25-4d01-821a-6696b31ae940, recirc_id(0),in_port(3),eth(),"
        "eth_type(0x0800),ipv4(src=10.0.0.0/255.255.255.0,frag=no), packets:1, bytes:106, "
        "used:1.510s, dp:ovs, actions:set(ipv4(ttl=10)),push_vlan(vid=10,pcp=3),2, "
        "dp-extra-info:miniflow_bits(4,3)"
    )
    key = dump_line_key(line)
    assert key == (
        "recirc_id(0),in_port(3),eth(),eth_type(0x0800),ipv4(src=10.0.0.0/255.255.255.0,frag=no)"
    )
    assert dump_line_actions(line) == "set(ipv4(ttl=10)),push_vlan(vid=10,pcp=3),2"
    assert key_attrs(key) == [
        "recirc_id(0)",
        "in_port(3)",
        "eth()",
        "eth_type(0x0800)",
        "ipv4(src=10.0.0.0/255.255.255.0,frag=no)",
    ]
    with pytest.raises(ValueError):
        dump_line_key("flow-dump from the main thread:")


# --------------------------------------------------------------------------- daemon-less oracles


def test_parse_actions(needs_ovs: None) -> None:
    assert parse_actions("recirc(5)") == ["recirc(0x5)"]
    assert parse_actions("push_vlan(vid=5,pcp=0),1,pop_vlan,2", "recirc(0)", "") == [
        "push_vlan(vid=5,pcp=0),1,pop_vlan,2",
        "recirc(0)",
        "drop",
    ]
    assert parse_actions("set(ipv4(ttl=63))", "trunc(100)") == ["set(ipv4(ttl=63))", "trunc(100)"]
    with pytest.raises(OvsCommandError, match="odp_actions_from_string") as info:
        parse_actions("recirc(0x1)")  # the printer's own output does not parse (notes §6.5)
    assert info.value.returncode != 0


def test_normalize_actions_splits_groups(needs_ovs: None) -> None:
    flow = (
        f"in_port(1),eth(src={SRC_MAC},dst={DST_MAC}),eth_type(0x8100),vlan(vid=10,pcp=0),"
        "encap(eth_type(0x0800),ipv4(src=1.1.1.1,dst=2.2.2.2,proto=17,tos=0,ttl=64,frag=no),"
        "udp(src=1,dst=2))"
    )
    assert normalize_actions(flow, "pop_vlan,2,push_vlan(vid=11,pcp=0),3,1") == [
        "no vlan: no mpls: 2",
        "vlan(vid=11,pcp=0): no mpls: 1,3",
    ]
    assert normalize_actions(flow, "p9", {"p9": 9}) == ["vlan(vid=10,pcp=0): no mpls: 9"]


def test_format_key_normalises_like_ovs(needs_ovs: None) -> None:
    key = (
        f"in_port(010),eth(src={SRC_MAC},dst={DST_MAC}),eth_type(0x0800),"
        "ipv4(src=1.1.1.1,dst=2.2.2.2,proto=6,tos=0,ttl=64,frag=no),tcp(src=1,dst=0x50)"
    )
    assert format_key(key) == (
        f"in_port(8),eth(src={SRC_MAC},dst={DST_MAC}),eth_type(0x0800),"
        "ipv4(src=1.1.1.1,dst=2.2.2.2,proto=6,tos=0,ttl=64,frag=no),tcp(src=1,dst=80)"
    )


def test_parse_pcap_keys(needs_ovs: None, tmp_path: Path) -> None:
    frames = [
        udp_frame(sport=1234, dport=80),
        bytes(Ether(src=SRC_MAC, dst=DST_MAC) / ARP(psrc="10.0.0.1", pdst="10.0.0.2")),
        bytes(Ether(src=SRC_MAC, dst=DST_MAC) / IP() / TCP(sport=7, dport=8, flags="S")),
    ]
    path = tmp_path / "f.pcap"
    write_pcap(path, frames)
    lines = parse_pcap_keys(path)
    assert len(lines) == 3
    assert lines[0].startswith("udp,") and "tp_src=1234,tp_dst=80" in lines[0]
    assert lines[1].startswith("arp,") and "arp_spa=10.0.0.1,arp_tpa=10.0.0.2" in lines[1]
    assert lines[2].startswith("tcp,") and lines[2].endswith("tcp_flags=syn")
    assert parse_frames(frames) == lines


# --------------------------------------------------------------------------- sandbox basics


def test_sandbox_is_private(ovs: OvsSandbox) -> None:
    d = ovs.directory
    assert d.is_dir() and len(str(ovs.ctl_path())) < 100
    for var in ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"):
        assert ovs.env[var] == str(d)
    for name in ("ovs-vswitchd.ctl", "ovsdb-server.ctl", "db.sock", "conf.db"):
        assert (d / name).exists(), name
    for name, pid in ovs.pids.items():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"OVS_RUNDIR={d}".encode() in environ, name
        assert Path(f"/proc/{pid}/cwd").resolve() == d.resolve()
    assert "ovs-vswitchd (Open vSwitch) 3." in ovs.appctl("version")
    assert (
        ovs.vsctl("get", "Open_vSwitch", ".", "next_cfg").strip()
        == ovs.vsctl("get", "Open_vSwitch", ".", "cur_cfg").strip()
    )


def test_appctl_matches_ovs_appctl_and_raises(ovs: OvsSandbox) -> None:
    assert ovs.appctl("dpctl/dump-dps") == ovs.appctl_cli("dpctl/dump-dps")
    assert ovs.appctl("version", target="ovsdb-server").startswith("ovsdb-server")
    with pytest.raises(OvsCommandError, match="dummy@nonexistent") as info:
        ovs.appctl("dpctl/show", "dummy@nonexistent")
    assert "failed" in info.value.stderr
    with pytest.raises(OvsCommandError, match="no bridge named nobr"):
        ovs.vsctl("add-port", "nobr", "x")
    with pytest.raises(OvsCommandError):
        ovs.ofctl("dump-flows", "nobr")


def test_standalone_datapath(ovs: OvsSandbox) -> None:
    dp = ovs.add_standalone_dp("sdp0", {"sa1": 1, "sa2": 7})
    try:
        assert dp == "dummy@sdp0"
        show = ovs.dpctl_show("sdp0")
        assert "port 1: sa1 (dummy)" in show and "port 7: sa2 (dummy)" in show
        assert "RX packets:0" in ovs.dpctl_show(dp, stats=True)
        ovs.dpctl_add_flow(
            dp,
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=10.0.0.0/255.255.255.0,frag=no)",
            "set(ipv4(ttl=10)),push_vlan(vid=10,pcp=3),7",
        )
        assert ovs.dpctl_dump_flows(dp) == [
            "recirc_id(0),in_port(1),eth(),eth_type(0x0800),"
            "ipv4(src=10.0.0.0/255.255.255.0,frag=no), packets:0, bytes:0, used:never, "
            "actions:set(ipv4(ttl=10)),push_vlan(vid=10,pcp=3),7"
        ]
        (verbose,) = ovs.dpctl_dump_flows(dp, "-m")
        assert verbose.startswith("ufid:") and "in_port(sa1)" in verbose
        with pytest.raises(ValueError, match="already belongs"):
            ovs.add_standalone_dp("sdp1", {"sa1": 1})
    finally:
        ovs.dpctl_del_dp(dp)
    assert "dummy@sdp0" not in ovs.appctl("dpctl/dump-dps")


# --------------------------------------------------------------------------- extract_key


def test_extract_key_udp(ovs: OvsSandbox) -> None:
    key = ovs.extract_key(udp_frame(sport=4321, dport=53))
    p1 = ovs.oracle_ports["p1"]
    assert p1 == 1  # dpif-netdev numbers dummy ports after the digits in their names
    assert key == (
        "skb_priority(0),skb_mark(0),ct_state(-new-est-rel-rpl-inv-trk-snat-dnat),ct_zone(0),"
        f"ct_mark(0),ct_label(0),recirc_id(0),dp_hash(0),in_port({p1}),packet_type(ns=0,id=0),"
        f"eth(src={SRC_MAC},dst={DST_MAC}),eth_type(0x0800),"
        "ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,tos=0,ttl=64,frag=no),udp(src=4321,dst=53)"
    )
    assert ", packets:" not in key


def test_extract_key_qinq_and_in_port(ovs: OvsSandbox) -> None:
    frame = bytes(
        Ether(src=SRC_MAC, dst=DST_MAC)
        / Dot1AD(vlan=10, prio=2)
        / Dot1Q(vlan=20)
        / IP(src="10.0.0.1", dst="10.0.0.2")
        / ICMP()
    )
    key = ovs.extract_key(frame, in_port_name="p3")
    assert key.count("encap(") == 2
    assert f"in_port({ovs.oracle_ports['p3']})" in key
    assert (
        "eth_type(0x88a8),vlan(vid=10,pcp=2),encap(eth_type(0x8100),vlan(vid=20,pcp=0),"
        "encap(eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=1,tos=0,ttl=64,frag=no),"
        "icmp(type=8,code=0)))"
    ) in key
    with pytest.raises(ValueError, match="shorter than an Ethernet header"):
        ovs.extract_key(b"\x00" * 13)
    with pytest.raises(ValueError, match="unknown oracle port"):
        ovs.extract_key(frame, in_port_name="p9")


def test_extract_keys_many_frames_in_order(ovs: OvsSandbox) -> None:
    frames: list[bytes] = []
    expected: list[str] = []
    for i in range(120):
        kind = i % 4
        if kind == 0:
            frames.append(udp_frame(sport=1000 + i, dport=i, dst=f"10.0.{i % 5}.9"))
            expected.append(f"ipv4(src=10.0.0.1,dst=10.0.{i % 5}.9,proto=17,")
            expected[-1] += f"tos=0,ttl=64,frag=no),udp(src={1000 + i},dst={i})"
        elif kind == 1:  # the same frame again and again: must still map 1:1
            frames.append(udp_frame(sport=7, dport=7))
            expected.append("udp(src=7,dst=7)")
        elif kind == 2:
            pkt = Ether(src=SRC_MAC, dst=DST_MAC) / Dot1Q(vlan=i) / IPv6(hlim=i) / TCP(dport=i)
            frames.append(bytes(pkt))
            expected.append(f"vlan(vid={i},pcp=0),encap(eth_type(0x86dd),ipv6(")
            expected[-1] += f"src=::1,dst=::1,label=0,proto=6,tclass=0,hlimit={i},frag=no)"
        else:
            pkt = Ether(src=SRC_MAC, dst=DST_MAC) / ARP(op=2, psrc=f"10.1.1.{i}")
            frames.append(bytes(pkt))
            expected.append(f"arp(sip=10.1.1.{i},tip=0.0.0.0,op=2,")
    warnings_before = len(ovs.log_warnings())
    start = time.monotonic()
    keys = ovs.extract_keys(frames)
    elapsed = time.monotonic() - start
    assert len(keys) == len(frames)
    for i, (key, fragment) in enumerate(zip(keys, expected, strict=True)):
        assert fragment in key, (i, key)
    assert len({keys[i] for i in range(1, 120, 4)}) == 1
    assert elapsed < 30, f"{len(frames)} frames took {elapsed:.1f}s"
    # Nothing is left in the datapath afterwards, and OVS logged no complaint.
    assert ovs.dpctl_dump_flows(BRIDGE_DPIF) == []
    assert ovs.log_warnings()[warnings_before:] == []


def test_extract_key_agrees_with_parse_pcap(ovs: OvsSandbox) -> None:
    frame = bytes(
        Ether(src=SRC_MAC, dst=DST_MAC)
        / IP(src="192.0.2.1", dst="198.51.100.2", tos=0x10, ttl=33)
        / TCP(sport=1111, dport=2222, flags="SA")
    )
    (of_line,) = parse_frames([frame])
    key = ovs.extract_key(frame)
    assert "nw_tos=16" in of_line
    assert "ipv4(src=192.0.2.1,dst=198.51.100.2,proto=6,tos=0x10,ttl=33,frag=no)" in key
    assert "ttl=33" in key and "nw_ttl=33" in of_line
    assert "tcp(src=1111,dst=2222)" in key and "tp_src=1111,tp_dst=2222" in of_line
    assert "tcp_flags(syn|ack)" in key and "tcp_flags=syn|ack" in of_line


def test_extract_key_verbose_shows_wildcarded_nd(ovs: OvsSandbox) -> None:
    """OVS 3.1 quirk: with megaflows disabled, nd() of an ND frame is installed with a zero
    mask (mask export wants tp_src == 0x00ff, the exact-match helper sets 0xffff), so only
    the verbose form shows it."""
    frame = bytes(
        Ether(src=SRC_MAC, dst="33:33:00:00:00:01")
        / IPv6(src="fe80::1", dst="ff02::1", hlim=255)
        / ICMPv6ND_NA(tgt="fe80::99")
    )
    key = ovs.extract_key(frame)
    assert key.endswith("icmpv6(type=136,code=0)")
    verbose = ovs.extract_key(frame, verbose=True)
    assert "in_port(p1)" in verbose
    assert "icmpv6(type=136,code=0),nd(target=fe80::99/::," in verbose
    # execute() installs the verbose key, so ND frames can be executed too.
    assert ovs.execute_capture(frame, "") == [frame]


# --------------------------------------------------------------------------- execute_capture


def test_execute_capture_set_ipv4_ttl(ovs: OvsSandbox) -> None:
    frame = udp_frame(ttl=64)
    (out,) = ovs.execute_capture(frame, "set(ipv4(ttl=10))")
    assert len(out) == len(frame)
    assert out[14 + 8] == 10  # TTL byte
    assert ipv4_header_ok(out[14:34])
    assert out[14 + 10 : 14 + 12] != frame[14 + 10 : 14 + 12]  # checksum was updated
    assert out[:22] == frame[:22] and out[34:] == frame[34:]


def test_execute_capture_push_vlan(ovs: OvsSandbox) -> None:
    frame = udp_frame()
    (out,) = ovs.execute_capture(frame, "push_vlan(vid=10,pcp=3)")
    assert out[:12] == frame[:12]
    assert out[12:14] == b"\x81\x00"
    assert struct.unpack("!H", out[14:16])[0] == (3 << 13) | 10
    assert out[16:] == frame[12:]


def test_execute_multiple_ports_and_drop(ovs: OvsSandbox) -> None:
    frame = udp_frame(sport=99)
    out = ovs.execute(frame, "push_vlan(vid=5,pcp=0),{p2},pop_vlan,{p3},set(udp(dst=77)),{p3}")
    assert out["p1"] == []
    (tagged,) = out["p2"]
    assert tagged[12:16] == b"\x81\x00\x00\x05"
    plain, rewritten = out["p3"]
    assert plain == frame
    assert struct.unpack("!H", rewritten[36:38])[0] == 77
    assert ovs.execute_capture(frame, "drop") == []
    assert ovs.execute_capture(frame, "", out_port_name="p3") == [frame]
    assert ovs.dpctl_dump_flows(BRIDGE_DPIF) == []


def test_execute_jumbo_frame(ovs: OvsSandbox) -> None:
    frame = bytes(Ether(src=SRC_MAC, dst=DST_MAC) / IP() / UDP() / (b"j" * 8000))
    (out,) = ovs.execute_capture(frame, "push_vlan(vid=1,pcp=0)")  # > default MTU 1500
    assert len(out) == len(frame) + 4


def test_execute_reports_bad_actions(ovs: OvsSandbox) -> None:
    with pytest.raises(OvsCommandError):
        ovs.execute_capture(udp_frame(), "no_such_action(1)")
    # The sandbox stays usable and clean.
    assert ovs.dpctl_dump_flows(BRIDGE_DPIF) == []
    assert len(ovs.execute_capture(udp_frame(), "set(ipv4(ttl=1))")) == 1


# --------------------------------------------------------------------------- lifecycle


def test_sandbox_cleans_up_processes_and_directory(needs_ovs: None) -> None:
    system_dirs = [
        "/var/run/openvswitch",
        "/run/openvswitch",
        "/var/log/openvswitch",
        "/var/lib/openvswitch",
        "/etc/openvswitch",
    ]
    before = {p: sorted(os.listdir(p)) if os.path.isdir(p) else None for p in system_dirs}
    with ovs_sandbox() as sandbox:
        pids = list(sandbox.pids.values())
        directory = sandbox.directory
        assert len(pids) == 2 and sandbox.running
        assert not any(process_gone(p) for p in pids)
        sandbox.extract_key(udp_frame())  # also bring up the oracle bridge
    assert all(process_gone(p) for p in pids)
    assert not directory.exists()
    assert not sandbox.running
    after = {p: sorted(os.listdir(p)) if os.path.isdir(p) else None for p in system_dirs}
    assert after == before  # no system-wide state


def test_sandbox_cleans_up_when_the_test_fails(needs_ovs: None) -> None:
    box = OvsSandbox()
    with pytest.raises(RuntimeError, match="boom"), box:
        pids = list(box.pids.values())
        raise RuntimeError("boom")
    assert pids and all(process_gone(p) for p in pids)
    assert not box.directory.exists()


def test_failed_startup_kills_strays(needs_ovs: None, monkeypatch: pytest.MonkeyPatch) -> None:
    real_binary = oracle._binary

    def fake_binary(name: str) -> str:
        return "/bin/false" if name == "ovs-vswitchd" else real_binary(name)

    monkeypatch.setattr(oracle, "_binary", fake_binary)
    box = OvsSandbox()
    with pytest.raises(OvsError, match="ovs-vswitchd exited with status 1"):
        box.start()
    assert set(box.pids) == {"ovsdb-server", "ovs-vswitchd"}
    assert all(process_gone(p) for p in box.pids.values())
    assert not box.directory.exists()


def test_two_sandboxes_at_once(needs_ovs: None) -> None:
    with ovs_sandbox() as a, ovs_sandbox() as b:
        assert a.directory != b.directory
        assert not set(a.pids.values()) & set(b.pids.values())
        a.vsctl("add-br", "only-in-a", "--", "set", "bridge", "only-in-a", "datapath-type=dummy")
        assert "only-in-a" in a.vsctl("list-br") and "only-in-a" not in b.vsctl("list-br")
        ka = a.extract_key(udp_frame(sport=1))
        kb = b.extract_key(udp_frame(sport=2))
        assert "udp(src=1,dst=53)" in ka and "udp(src=2,dst=53)" in kb
        pids = [*a.pids.values(), *b.pids.values()]
    assert all(process_gone(p) for p in pids)


@contextlib.contextmanager
def child_subreaper() -> Iterator[bool]:
    """Make this process adopt orphaned descendants (so the test can reap them itself
    instead of leaving zombies for the container's init).  Yields False if unsupported."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        yield False
        return
    enabled = prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield enabled
    finally:
        if enabled:
            prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def reap_adopted(pids: list[int], timeout: float = 10.0) -> dict[int, int]:
    """Wait for adopted orphans; returns pid -> wait status (SIGKILLs leftovers)."""
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    pending = list(pids)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not adopted by us; just watch it
                if process_gone(pid):
                    pending.remove(pid)
                continue
            if done:
                statuses[pid] = status
                pending.remove(pid)
        time.sleep(0.02)
    for pid in pending:  # still alive: the harness failed; do not leak them
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return statuses


def test_daemons_die_with_their_parent(needs_ovs: None) -> None:
    """If the test process is SIGKILLed (no cleanup possible), the daemons die too."""
    script = textwrap.dedent(
        """
        import time
        from tests.ovs_oracle import OvsSandbox
        box = OvsSandbox()
        box.start()
        print(box.directory, *box.pids.values(), flush=True)
        time.sleep(120)
        """
    )
    directory = None
    with child_subreaper() as adopting:
        child = subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            assert child.stdout is not None
            fields = child.stdout.readline().split()
            assert len(fields) == 3, fields
            directory = Path(fields[0])
            pids = [int(f) for f in fields[1:]]
            assert not any(process_gone(p) for p in pids)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            statuses = reap_adopted(pids)
            assert all(process_gone(p) for p in pids), "daemons outlived their parent"
            if adopting:
                assert sorted(statuses) == sorted(pids)
                for status in statuses.values():
                    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            if directory is not None and directory.name.startswith("ovs-oracle-"):
                shutil.rmtree(directory, ignore_errors=True)
