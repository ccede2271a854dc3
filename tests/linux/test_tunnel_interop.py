"""Interoperability of pyvswitch's tunnels with real implementations, on the
Linux underlay (root; every namespace unique and removed afterwards):

* pyvswitch VXLAN <-> a Linux kernel ``vxlan`` device, over IPv4 and IPv6;
* pyvswitch VXLAN, Geneve and GRE <-> Open vSwitch's userspace datapath
  (``ovs-vswitchd`` with ``datapath_type=netdev`` bridges, native tunnels),
  the daemon in its own namespace and temp directory;
* LISP, STT and GRE64 (which no other implementation here speaks) between
  two pyvswitch datapaths, every packet on the underlay captured and
  dissected by tshark: nothing malformed, the fields as expected.

Topology of the ping tests::

    h1 10.0.0.1 -- p1 [pyvswitch, swA] t0 == ul0 UL_A  <->  UL_B ul0 == [peer] -- h2 10.0.0.2
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyvswitch.backends.linux import LinuxNetns
from pyvswitch.datapath import Datapath
from pyvswitch.vport_tunnel import TunnelVport

from ..ovs_oracle import OvsSandbox, _binary, _pdeathsig_preexec, ovs_available
from .conftest import LoopThread, Netns, ping, sh, wait_for
from .test_tunnels_linux import (
    HOST_MTU,
    Capture,
    TunnelPair,
    add_addr,
    assert_not_malformed,
    attach_host,
    capdir,
    mac_of,
    pair_factory,
    pyvswitch_side,
    require_tool,
    tshark,
    tshark_fields,
    underlay_namespaces,
)

pytestmark = pytest.mark.root

# fixtures shared with test_tunnels_linux (imported: pytest finds them here)
__all__ = ["capdir", "pair_factory"]

VNI = 42


@pytest.fixture
def pyvswitch_sides(loop_thread: LoopThread) -> Iterator[list[LinuxNetns]]:
    """Closes every LinuxNetns a test made (its sockets, firewall tables)."""
    made: list[LinuxNetns] = []
    try:
        yield made
    finally:
        for ns in made:
            loop_thread.call(ns.close)


def ping_ok(ns: str, ip: str, count: int = 3) -> None:
    """Ping until the first reply (ARP and learning across the tunnel), then
    ``count`` replies in a row."""
    wait_for(
        lambda: ping(ns, ip, count=1, check=False).returncode == 0, 20, f"a first reply from {ip}"
    )
    ping(ns, ip, count=count)


def bring_up_pyvswitch(
    lt: LoopThread, sides: list[LinuxNetns], sw: str, kind: str, remote: str
) -> tuple[Datapath, TunnelVport]:
    ns, dp, tun = pyvswitch_side(lt, sw, kind, remote, {"key": str(VNI)})
    sides.append(ns)
    return dp, tun


# ---------------------------------------------------------------------------
# Linux kernel vxlan device


@pytest.mark.parametrize(
    ("ipv6", "csum"),
    [(False, False), (False, True), (True, True), (True, False)],
    ids=["ipv4", "ipv4-csum", "ipv6-csum", "ipv6-zero-csum"],
)
def test_vxlan_with_linux_kernel_device(
    netns: Netns,
    loop_thread: LoopThread,
    pyvswitch_sides: list[LinuxNetns],
    ipv6: bool,
    csum: bool,
) -> None:
    """Over IPv6 a Linux vxlan device drops zero-checksum datagrams unless
    created with ``udp6zerocsumrx`` (as OVS creates its kernel devices);
    pyvswitch, like the kernel datapath, sends a UDP checksum only with
    ``csum=true``.  Both combinations that agree work."""
    sw_a, sw_k, ul_a, ul_b = underlay_namespaces(netns, ipv6)
    h1 = attach_host(netns, sw_a, "10.0.0.1", "h1")
    # the kernel side: a vxlan device (dstport 4789: the kernel's default is 8472)
    extra = ["udpcsum"] if csum and not ipv6 else []
    if ipv6 and not csum:
        extra = ["udp6zerocsumrx"]
    sh("ip", "-n", sw_k, "link", "add", "vx0", "type", "vxlan", "id", str(VNI),
       "remote", ul_a, "local", ul_b, "dstport", "4789", "dev", "ul0", *extra)  # fmt: skip
    add_addr(sw_k, "vx0", "10.0.0.2", 24)
    options = {"key": str(VNI), **({"csum": "true"} if csum else {})}
    ns, dp, tun = pyvswitch_side(loop_thread, sw_a, "vxlan", ul_b, options)
    pyvswitch_sides.append(ns)
    ping_ok(h1, "10.0.0.2")
    ping(sw_k, "10.0.0.1", count=2)
    # the largest ping the host MTU allows
    sh("ip", "netns", "exec", h1, "ping", "-c", "2", "-s", str(HOST_MTU - 28), "-M", "do",
       "-W", "2", "10.0.0.2", timeout=30)  # fmt: skip
    st = loop_thread.call(tun.get_stats)
    assert st.rx_packets >= 5 and st.tx_packets >= 5
    assert st.rx_errors == st.tx_errors == 0 and not dp.drops
    assert tun.listener is not None
    assert not tun.listener.errors


# ---------------------------------------------------------------------------
# Open vSwitch userspace datapath


class OvsInNetns(OvsSandbox):
    """An OVS sandbox (temp directory, own ovsdb-server) whose ovs-vswitchd
    runs inside network namespace ``netns`` on real devices: no dummy
    netdevs, routes from the namespace's kernel table."""

    def __init__(self, netns: str) -> None:
        super().__init__()
        self.netns = netns

    def _spawn(self, name: str, args: list[str]) -> None:
        argv = [_binary(name), *args]
        if name == "ovs-vswitchd":
            drop = ("--enable-dummy", "--disable-system-route")
            argv = ["ip", "netns", "exec", self.netns, *(a for a in argv if a not in drop)]
        with open(self.directory / f"{name}.stderr", "wb") as log:
            proc = subprocess.Popen(
                argv,
                env=self.env,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_pdeathsig_preexec(),
                start_new_session=True,
            )
        self._procs[name] = proc


@contextlib.contextmanager
def ovs_in_netns(netns: str) -> Iterator[OvsInNetns]:
    why = ovs_available()
    if why is not None:
        pytest.skip(f"Open vSwitch unavailable: {why}")
    sandbox = OvsInNetns(netns)
    try:
        sandbox.start()
        yield sandbox
    finally:
        sandbox.close()


OVS_TYPES = {"vxlan": "vxlan", "geneve": "geneve", "gre": "gre"}


@pytest.mark.parametrize("kind", sorted(OVS_TYPES))
def test_tunnel_with_ovs_userspace(
    netns: Netns, loop_thread: LoopThread, pyvswitch_sides: list[LinuxNetns], kind: str
) -> None:
    sw_a, sw_o, ul_a, ul_b = underlay_namespaces(netns, False)
    h1 = attach_host(netns, sw_a, "10.0.0.1", "h1")
    h2 = netns.add("h2")
    netns.veth(h2, "eth0", sw_o, "hp")
    sh("ip", "-n", h2, "link", "set", "eth0", "mtu", "1400")
    add_addr(h2, "eth0", "10.0.0.2", 24)
    # OVS takes ul0 over: the address moves to its bridge's internal port
    sh("ip", "-n", sw_o, "addr", "flush", "dev", "ul0")
    ul0_mac = mac_of(sw_o, "ul0")
    with ovs_in_netns(sw_o) as ovs:
        ovs.vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
                  f"other_config:hwaddr={ul0_mac}", "--", "add-port", "br-phy", "ul0")  # fmt: skip
        ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev",
                  "--", "add-port", "br-int", "hp",
                  "--", "add-port", "br-int", "t0", "--", "set", "interface", "t0",
                  f"type={OVS_TYPES[kind]}", f"options:remote_ip={ul_a}",
                  f"options:key={VNI}")  # fmt: skip
        add_addr(sw_o, "br-phy", ul_b, 24)
        ovs.appctl("tnl/neigh/set", "br-phy", ul_a, mac_of(sw_a, "ul0"))
        with contextlib.suppress(Exception):  # usually learnt from the kernel already
            ovs.appctl("ovs/route/add", f"{ul_a}/32", "br-phy")
        dp, tun = bring_up_pyvswitch(loop_thread, pyvswitch_sides, sw_a, kind, ul_b)
        try:
            ping_ok(h1, "10.0.0.2")
            ping(h2, "10.0.0.1", count=2)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{ovs.log_tail()}") from e
        st = loop_thread.call(tun.get_stats)
        assert st.rx_packets >= 5 and st.tx_packets >= 5
        assert st.rx_errors == st.tx_errors == 0 and not dp.drops
        # OVS decapsulated what pyvswitch sent: the tunnel port's flows saw it
        flows = ovs.appctl("dpctl/dump-flows", "netdev@ovs-netdev")
        assert "tnl_pop" in flows or "tunnel(" in flows, flows


# ---------------------------------------------------------------------------
# LISP, STT, GRE64 on the wire, dissected by tshark


def captured_pair(
    pair_factory: Callable[..., TunnelPair],
    capdir: str,
    kind: str,
    options: dict[str, str],
    underlay_mtu: int = 1500,
) -> tuple[TunnelPair, Path]:
    require_tool("tcpdump", "tcpdump")
    require_tool("tshark", "tshark")
    t = pair_factory(kind, options=options)
    for ns in (t.sw_a, t.sw_b):
        sh("ip", "-n", ns, "link", "set", "ul0", "mtu", str(underlay_mtu))
    with Capture(t.sw_b, "ul0", capdir) as cap:
        ping(t.h1, "10.0.0.2", count=3)
        sh("ip", "netns", "exec", t.h1, "ping", "-c", "2", "-i", "0.2", "-W", "2",
           "-s", "1372", "10.0.0.2", timeout=30)  # fmt: skip
    return t, cap.stop()


def test_lisp_on_the_wire(pair_factory: Callable[..., TunnelPair], capdir: str) -> None:
    _t, pcap = captured_pair(pair_factory, capdir, "lisp", {"key": "0x123456"})
    n = assert_not_malformed(pcap)
    rows = tshark_fields(
        pcap,
        "lisp-data",
        "udp.dstport",
        "lisp-data.flags.nonce",
        "lisp-data.flags.lsb",
        "lisp-data.flags.iid",
        "lisp-data.iid",
        "lisp-data.lsb8",
        "ip.proto",
        "icmp.type",
    )
    assert len(rows) >= 10 and n >= 10
    for dport, nonce, lsb, iid_flag, iid, lsb8, protos, icmp in rows:
        assert dport == "4341"
        assert (nonce, lsb, iid_flag) == ("False", "True", "True") or (
            nonce,
            lsb,
            iid_flag,
        ) == ("0", "1", "1")
        assert int(iid, 0) == 0x123456 and int(lsb8, 0) == 1
        # outer UDP, inner IPv4/ICMP right behind the LISP header (no Ethernet)
        assert protos.split(",") == ["17", "1"]
        assert icmp in ("0", "8")


def test_stt_on_the_wire(pair_factory: Callable[..., TunnelPair], capdir: str) -> None:
    # a 1400-byte underlay: the largest pings need two segments
    _t, pcap = captured_pair(
        pair_factory, capdir, "stt", {"key": "0x1122334455667788"}, underlay_mtu=1400
    )
    # STT is a heuristic dissector on IP: try it before TCP
    # (its own checksum check, stt.check_checksum, flags every segment of
    # Wireshark 4.0 as bad -- also ones tshark's TCP dissector and scapy
    # verify as good -- so the checksums are checked as TCP below)
    extra = ["-o", "ip.try_heuristic_first:TRUE"]
    bad = tshark(pcap, *extra, "-Y", "_ws.malformed || _ws.expert.severity >= warning")
    assert not bad, "\n".join(bad)
    lines = tshark(
        pcap,
        *extra,
        "-Y",
        "stt",
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "stt.dport",
        "-e",
        "stt.pkt_len",
        "-e",
        "stt.seg_off",
        "-e",
        "stt.version",
        "-e",
        "stt.context_id",
        "-e",
        "stt.reassembled_in",
        "-e",
        "icmp.type",
    )
    rows = [ln.split("|") for ln in lines]
    assert len(rows) >= 12, lines  # 5 small frames each way + segmented big ones
    segmented = 0
    for dport, pkt_len, seg_off, version, ctx, _reasm, _icmp in rows:
        assert dport == "7471"
        if int(seg_off):
            segmented += 1
        if version:
            assert version == "0" and int(ctx, 0) == 0x1122334455667788
        assert int(pkt_len) > 0
    assert segmented >= 4  # the 1372-byte pings did not fit one segment
    # every inner ping was reassembled and dissected
    icmp = tshark(pcap, *extra, "-Y", "stt && icmp", "-T", "fields", "-e", "icmp.type")
    assert sorted(set(icmp)) == ["0", "8"] and len(icmp) == 10
    # every segment's TCP checksum is right, and they are TCP-like: ACK, PSH
    # on the last segment of a frame, window 65535, no options
    segs = tshark_fields(
        pcap,
        "tcp",
        "tcp.checksum.status",
        "tcp.flags.ack",
        "tcp.window_size_value",
        "tcp.hdr_len",
        "tcp.dstport",
        extra=("-o", "tcp.check_checksum:TRUE"),
    )
    assert len(segs) == len(rows)
    for status, ack, win, hlen, dport in segs:
        assert (status, win, hlen, dport) == ("1", "65535", "20", "7471")
        assert ack in ("1", "True")


def test_gre64_on_the_wire(pair_factory: Callable[..., TunnelPair], capdir: str) -> None:
    key = 0xAABBCCDD_11223344
    _t, pcap = captured_pair(pair_factory, capdir, "gre64", {"key": str(key), "csum": "true"})
    assert_not_malformed(pcap)
    rows = tshark_fields(
        pcap,
        "gre",
        "gre.flags.checksum",
        "gre.flags.key",
        "gre.flags.sequence_number",
        "gre.proto",
        "gre.key",
        "gre.sequence_number",
        "gre.checksum.status",
        "icmp.type",
    )
    assert len(rows) >= 10
    for c, k, s, proto, k32, seq, status, _icmp in rows:
        assert {c, k, s} <= {"True", "1"}
        assert int(proto, 0) == 0x6558
        assert int(k32, 0) == key & 0xFFFFFFFF and int(seq, 0) == key >> 32
        assert status == "1"  # checksum good
