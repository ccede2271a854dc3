"""A pyvswitch datapath on a :class:`LinuxNetns`, driven by a loop thread."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyvswitch.backends.linux import LinuxNetns, RingConfig
from pyvswitch.datapath import Datapath, Openvswitch
from pyvswitch.flow import field_mask, key_from_fields
from pyvswitch.uapi import Output
from pyvswitch.vport import Vport

from .conftest import LoopThread


@dataclass
class Switch:
    lt: LoopThread
    ns: LinuxNetns
    ovs: Openvswitch
    dp: Datapath

    @classmethod
    def create(cls, lt: LoopThread, netns: str, ring: RingConfig | None = None) -> Switch:
        def make() -> Switch:
            ns = LinuxNetns(netns, lt.loop, ring=ring)
            ovs = Openvswitch()
            return cls(lt, ns, ovs, ovs.dp_new("dp0", ns))

        return lt.call(make)

    def add(self, name: str, type: str = "netdev") -> Vport:
        return self.lt.call(lambda: self.dp.vport_add(name, type))

    def delete(self, name: str) -> None:
        self.lt.call(lambda: self.dp.vport_del(name))

    def forward(self, in_port: int, out_ports: Sequence[int]) -> None:
        """A megaflow matching only in_port: output to ``out_ports``."""
        key = key_from_fields(in_port=in_port)
        acts = [Output(p) for p in out_ports]
        self.lt.call(lambda: self.dp.flow_put(key, field_mask("in_port"), acts, modify=True))

    def flood(self, ports: Sequence[int]) -> None:
        """Every port to every other port (a hub)."""
        for p in ports:
            self.forward(p, [q for q in ports if q != p])

    def close(self) -> None:
        def shut() -> None:
            if not self.dp.deleted:
                self.ovs.dp_del(self.dp)
            self.ns.close()

        self.lt.call(shut)
