"""The ``internal`` vport: a network device created by the datapath
(the kernel's ``vport-internal_dev.c``).

Port 0 of every datapath is one, named after the datapath.  What the host
stack transmits on the device enters the datapath (``internal_dev_xmit`` ->
``ovs_vport_receive``); what the datapath sends to the port is delivered up to
the host stack (``internal_dev_recv`` -> ``netif_rx``), or dropped if the
device is down.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .device import DeviceStats, NetDevice
from .uapi import OVS_VPORT_TYPE_INTERNAL
from .vport import RX_DROPPED, TX_DROPPED, Vport, VportOps, VportParms

if TYPE_CHECKING:
    from .skbuff import SkBuff


class InternalVport(Vport):
    def __init__(self, ops: VportOps, parms: VportParms) -> None:
        super().__init__(ops, parms)
        # internal_dev_create: alloc_netdev + register_netdevice,
        # dev_set_promiscuity(dev, 1), netif_start_queue.
        self.dev: NetDevice = parms.dp.net.create_internal_device(
            parms.name, self.internal_dev_xmit
        )
        self.dev.set_promiscuity(1)

    def internal_dev_xmit(self, frames: Sequence[bytes | SkBuff]) -> None:
        """The host transmitted on the internal device: a vport receive."""
        if not self.dev.is_up:
            self.stats.this_cpu()[RX_DROPPED] += len(frames)
            return
        self.dp.process_batch(self, frames)

    def send(self, frames: Sequence[bytes | SkBuff]) -> None:
        """``internal_dev_recv``: up to the host stack (``netif_rx``)."""
        if not self.dev.is_up:
            self.stats.this_cpu()[TX_DROPPED] += len(frames)
            return
        self.dp.vport_xmit(self, self.dev, frames)

    def get_device_stats(self) -> DeviceStats:
        return self.dev.get_stats64()

    def destroy(self) -> None:
        self.dp.net.destroy_internal_device(self.dev)


class InternalVportOps(VportOps):
    type = OVS_VPORT_TYPE_INTERNAL
    name = "internal"
    vport_class = InternalVport
