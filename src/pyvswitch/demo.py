"""``pyvswitch demo``: the main job on the in-memory backend (no root).

Two hosts on one datapath: h1 pings h2.  The first packets miss, go up to a
MAC-learning handler that installs megaflows and re-injects them (execute);
the rest hit.  Then the datapath and its flows are shown the way
``ovs-dpctl show -s`` and ``ovs-dpctl dump-flows`` print them.
"""

from __future__ import annotations

import sys
from typing import TextIO

from . import flow
from .backends.memory import MemoryWorld
from .datapath import Openvswitch
from .dpctl import Dpctl
from .learning import LearningSwitch
from .uapi import Upcall
from .upcall import upcall_cmd_name


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


def run_demo(out: TextIO = sys.stdout, count: int = 3) -> int:
    """Build the topology, ping, print.  Returns 0 if every ping was answered."""
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
    print(f"h1$ ping -c {count} 10.0.0.2", file=out)
    result = None
    for seq in range(1, count + 1):
        result = h1.ping("10.0.0.2", result=result)
        world.run()
        if len(result.rtts) == seq:
            rtt = result.rtts[-1] * 1000
            print(f"  64 bytes from 10.0.0.2: icmp_seq={seq} ttl=64 time={rtt:.3f} ms", file=out)
    assert result is not None
    loss = 100 * (result.sent - result.received) // max(result.sent, 1)
    print(
        f"  {result.sent} packets transmitted, {result.received} received, {loss}% packet loss\n",
        file=out,
    )
    print("$ pyvswitch dpctl show -s", file=out)
    print(dpctl.show(stats=True), file=out)
    dump = getattr(dpctl, "dump_flows", None)
    if dump is not None:
        print("$ pyvswitch dpctl dump-flows", file=out)
        print(dump(), file=out)
    return 0 if result.received == result.sent else 1
