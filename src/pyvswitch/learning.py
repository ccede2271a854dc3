"""A MAC-learning upcall handler: what ovs-vswitchd's NORMAL action does for a
plain L2 bridge, reduced to the datapath's view.

On a MISS upcall it learns ``eth_src -> in_port``, picks the output (the
learned port of ``eth_dst``, else every other port = flood), installs a
megaflow matching ``in_port``, the Ethernet addresses and the VLAN TCI (as
NORMAL's megaflows do), and executes the packet with the same actions.
When the MAC table changes, the flows it installed are deleted so they are
re-learned (the revalidator's job in OVS).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import flow
from .flow_table import Flow
from .uapi import OVS_PACKET_CMD_MISS, OVSP_LOCAL, Action, Output, Upcall
from .upcall import DEFAULT_CHANNEL_DEPTH, Handler

if TYPE_CHECKING:
    from .datapath import Datapath

_MASK = (
    flow.field_mask("recirc_id")
    | flow.field_mask("in_port")
    | flow.field_mask("eth_src")
    | flow.field_mask("eth_dst")
    | flow.field_mask("vlan_tci")
    | flow.field_mask("vlan_tpid")
    | flow.field_mask("mac_proto")
)
#: MAC table entries expire after this many seconds (ovs-vswitchd's default)
MAC_AGING = 300.0


class LearningSwitch(Handler):
    """MAC learning + flooding for every port of a datapath."""

    def __init__(
        self,
        dp: Datapath,
        *,
        n_channels: int = 1,
        depth: int = DEFAULT_CHANNEL_DEPTH,
        flood_local: bool = True,
        attach: bool = True,
    ) -> None:
        super().__init__(dp, n_channels, depth)
        self.mac_table: dict[tuple[int, int], tuple[int, float]] = {}
        self.flood_local = flood_local
        #: flows this handler installed -> when (monotonic ms), for expiry
        self.installed: dict[Flow, int] = {}
        self.n_flows_installed = 0
        if attach:
            self.attach_all()

    def attach_all(self) -> None:
        """Point every port's upcalls at this handler's channels."""
        for vport in self.dp.ports.values():
            vport.set_upcall_portids(self.portids)

    def handle_upcall(self, upcall: Upcall) -> None:
        if upcall.cmd != OVS_PACKET_CMD_MISS:
            return
        key = upcall.key
        in_port = flow.key_get(key, "in_port")
        src = flow.key_get(key, "eth_src")
        dst = flow.key_get(key, "eth_dst")
        vlan = flow.key_get(key, "vlan_tci") & 0x0FFF
        now = time.monotonic()
        if not src >> 40 & 1:  # learn unicast sources only
            old = self.mac_table.get((vlan, src))
            if old is None or old[0] != in_port:
                if old is not None:
                    self._revalidate()
                self.mac_table[(vlan, src)] = (in_port, now)
                if old is None:
                    self._revalidate_flood()
            else:
                self.mac_table[(vlan, src)] = (in_port, now)
        entry = self.mac_table.get((vlan, dst))
        if entry is not None and now - entry[1] > MAC_AGING:
            del self.mac_table[(vlan, dst)]
            entry = None
        actions: Sequence[Action]
        if entry is not None:
            out = entry[0]
            actions = [] if out == in_port else [Output(out)]
        else:
            actions = [
                Output(p)
                for p in sorted(self.dp.ports)
                if p != in_port and (self.flood_local or p != OVSP_LOCAL)
            ]
        f, _old = self.dp.flow_put(key, _MASK, actions, create=True, modify=True)
        if f not in self.installed:
            self.installed[f] = int(time.monotonic() * 1000)
            self.n_flows_installed += 1
        self.execute(upcall.packet, key, actions)

    def _revalidate(self) -> None:
        """A MAC moved: drop every flow we installed."""
        for f in list(self.installed):
            if not f.dead:
                self.dp.table.remove(f)
        self.installed.clear()

    def _revalidate_flood(self) -> None:
        """A new MAC appeared: flows that flooded towards it are now too broad."""
        for f in list(self.installed):
            if f.dead:
                self.installed.pop(f, None)
            elif f.outputs is not None and len(f.outputs) > 1:
                self.dp.table.remove(f)
                self.installed.pop(f, None)

    def expire(self, max_idle: float, now: float | None = None) -> int:
        """Delete installed flows idle for ``max_idle`` seconds (the
        revalidator's max-idle): not hit since then, counting a flow that was
        never hit as last used when it was installed.  Returns how many."""
        now_ms = int((time.monotonic() if now is None else now) * 1000)
        n = 0
        for f, installed_ms in list(self.installed.items()):
            if f.dead:
                self.installed.pop(f, None)
                continue
            last = max(f.stats[2], installed_ms)
            if now_ms - last > max_idle * 1000:
                self.dp.table.remove(f)
                self.installed.pop(f, None)
                n += 1
        return n
