"""Shared fixtures."""

from __future__ import annotations

import pytest

from pyvswitch.backends.memory import MemoryNetns, MemoryWorld
from pyvswitch.datapath import Datapath, Openvswitch
from pyvswitch.uapi import Upcall
from pyvswitch.upcall import Handler


class Recorder(Handler):
    """An upcall handler that keeps what it receives."""

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.seen: list[Upcall] = []

    def handle_upcall(self, upcall: Upcall) -> None:
        self.seen.append(upcall)


class Topo:
    """Two hosts on one datapath in memory: h1 (10.0.0.1) -- p1 [dp0] p2 -- h2 (10.0.0.2)."""

    def __init__(self) -> None:
        self.world = MemoryWorld()
        self.sw: MemoryNetns = self.world.netns("switch")
        self.h1: MemoryNetns = self.world.netns("h1")
        self.h2: MemoryNetns = self.world.netns("h2")
        self.world.veth(self.h1, "eth0", self.sw, "p1")
        self.world.veth(self.h2, "eth0", self.sw, "p2")
        self.h1.add_address("eth0", "10.0.0.1/24")
        self.h2.add_address("eth0", "10.0.0.2/24")
        self.ovs = Openvswitch()
        self.dp: Datapath = self.ovs.dp_new("dp0", self.sw)
        self.p1 = self.dp.vport_add("p1")
        self.p2 = self.dp.vport_add("p2")


@pytest.fixture
def topo() -> Topo:
    return Topo()
