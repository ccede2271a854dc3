"""``pyvswitch demo``: the main job on the in-memory backend (no root).

Part 1 -- two hosts on one datapath: h1 pings h2.  The first packets miss, go
up to a MAC-learning handler that installs megaflows and re-injects them
(execute); the rest hit.  Then the datapath and its flows are shown the way
``ovs-dpctl show -s`` and ``ovs-dpctl dump-flows`` print them.

Part 2 -- two datapaths in two namespaces joined by a tunnel (VXLAN by
default): h1 pings h2 across it; the flows show the tunnel metadata the
receiving side matches on.
"""

from __future__ import annotations

import sys
from typing import TextIO

from . import flow
from .backends.memory import MemoryNetns, MemoryWorld, PingResult, tunnel_demo_topology
from .datapath import Openvswitch
from .dpctl import Dpctl
from .learning import LearningSwitch
from .odp import parse_actions, parse_flow
from .uapi import Upcall
from .upcall import upcall_cmd_name


def _ping(out: TextIO, world: MemoryWorld, host: MemoryNetns, dst: str, count: int) -> PingResult:
    """``ping -c COUNT DST`` from ``host``, one echo request per world run,
    printed the way ping prints."""
    print(f"h1$ ping -c {count} {dst}", file=out)
    result = PingResult(dst)
    for seq in range(1, count + 1):
        host.ping(dst, result=result)
        world.run()
        if len(result.rtts) == seq:
            rtt = result.rtts[-1] * 1000
            print(f"  64 bytes from {dst}: icmp_seq={seq} ttl=64 time={rtt:.3f} ms", file=out)
    loss = 100 * (result.sent - result.received) // max(result.sent, 1)
    print(
        f"  {result.sent} packets transmitted, {result.received} received, {loss}% packet loss\n",
        file=out,
    )
    return result


def _mac(v: int) -> str:
    return ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))


class _TracingSwitch(LearningSwitch):
    def __init__(self, *args: object, out: TextIO, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.out = out

    def handle_upcall(self, upcall: Upcall) -> None:
        k = upcall.key
        et = flow.key_get(k, "eth_type")
        what = {0x0806: "arp", 0x0800: "ipv4", 0x86DD: "ipv6"}.get(et, f"0x{et:04x}")
        print(
            f"  upcall {upcall_cmd_name(upcall.cmd)} on port {flow.key_get(k, 'in_port')}: "
            f"{what} {_mac(flow.key_get(k, 'eth_src'))} -> {_mac(flow.key_get(k, 'eth_dst'))}",
            file=self.out,
        )
        super().handle_upcall(upcall)


def run_demo(out: TextIO = sys.stdout, count: int = 3, tunnel: str | None = "vxlan") -> int:
    """Both parts of the demo; 0 if every ping was answered."""
    rc = run_switch_demo(out, count)
    if tunnel:
        print("-" * 78 + "\n", file=out)
        rc |= run_tunnel_demo(out, tunnel, count)
    return rc


def run_switch_demo(out: TextIO = sys.stdout, count: int = 3) -> int:
    """Part 1: two hosts, one datapath, a learning handler; ping and show."""
    world = MemoryWorld()
    sw = world.netns("switch")
    h1 = world.netns("h1")
    h2 = world.netns("h2")
    world.veth(h1, "eth0", sw, "p1")
    world.veth(h2, "eth0", sw, "p2")
    h1.add_address("eth0", "10.0.0.1/24")
    h2.add_address("eth0", "10.0.0.2/24")

    ovs = Openvswitch()
    dpctl = Dpctl(ovs, sw, dp_type="memory")
    dpctl.add_dp("dp0", "p1", "p2")
    dp = ovs.get_dp("dp0")
    handler = _TracingSwitch(dp, out=out)
    world.add_poller(handler.poll)

    print("pyvswitch demo: two hosts on one datapath, in memory\n", file=out)
    print("  h1 10.0.0.1 [eth0]--[p1] dp0 [p2]--[eth0] h2 10.0.0.2", file=out)
    print("  misses go up to a MAC-learning handler that installs megaflows\n", file=out)
    result = _ping(out, world, h1, "10.0.0.2", count)
    print("$ pyvswitch dpctl show -s", file=out)
    print(dpctl.show(stats=True), file=out)
    print("$ pyvswitch dpctl dump-flows", file=out)
    print(dpctl.dump_flows(), file=out)
    return 0 if result.received == result.sent else 1


TUNNEL_KEY = 5001


def run_tunnel_demo(out: TextIO = sys.stdout, kind: str = "vxlan", count: int = 3) -> int:
    """Two datapaths joined by a ``kind`` tunnel (not LISP: it needs L3 flows);
    ping across.  The flows are written in OVS's flow syntax: the sending side
    sets the tunnel key (``set(tunnel(...))``), the receiving side matches it."""
    topo = tunnel_demo_topology(kind, options={"remote_ip": "flow", "key": "flow"}, flows=False)
    dpctl = Dpctl(topo.ovs, topo.sw_a, dp_type="memory")
    print(f"pyvswitch demo: two datapaths joined by a {kind} tunnel, in memory\n", file=out)
    print(
        f"  h1 10.0.0.1 -- [p1] dpA [t0 {kind}] ==192.168.100.1/.2== [t0 {kind}] dpB [p1] -- "
        "h2 10.0.0.2\n",
        file=out,
    )
    sides = (
        (topo.dp_a, topo.underlay_a, topo.underlay_b),
        (topo.dp_b, topo.underlay_b, topo.underlay_a),
    )
    for dp, local, remote in sides:
        t = topo.tun_a.port_no
        flows = (
            (
                "in_port(1),eth()",
                f"set(tunnel(tun_id={TUNNEL_KEY:#x},dst={remote},ttl=64,flags(df|key))),{t}",
            ),
            (
                f"tunnel(tun_id={TUNNEL_KEY:#x},src={remote},dst={local},flags(+key)),"
                f"in_port({t}),eth()",
                "1",
            ),
        )
        for match, actions in flows:
            print(f"$ pyvswitch dpctl add-flow memory@{dp.name} '{match}' '{actions}'", file=out)
            parsed = parse_flow(match)
            dp.flow_put(parsed.key, parsed.mask, parse_actions(actions))
    print(file=out)
    result = _ping(out, topo.world, topo.h1, "10.0.0.2", count)
    print("$ pyvswitch dpctl show", file=out)
    print(dpctl.show(), file=out)
    for name in ("dpA",):
        print(f"$ pyvswitch dpctl dump-flows memory@{name}", file=out)
        print(dpctl.dump_flows(f"memory@{name}"), file=out)
    return 0 if result.received == result.sent else 1
