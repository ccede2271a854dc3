"""The ``netdev`` vport: an existing network device attached to a datapath
(the kernel's ``vport-netdev.c``).

``netdev_create`` finds the device by name in the datapath's namespace, links
it to the datapath (a device can be in one datapath only), registers the
receive hook ``netdev_frame_hook`` and makes the device promiscuous.
``netdev_send`` hands frames to the device (``dev_queue_xmit``).
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .device import ARPHRD_ETHER, DeviceStats, NetDevice
from .errors import DeviceError, VportError
from .uapi import OVS_VPORT_TYPE_NETDEV
from .vport import Vport, VportOps, VportParms

if TYPE_CHECKING:
    from .skbuff import SkBuff


class NetdevVport(Vport):
    def __init__(self, ops: VportOps, parms: VportParms) -> None:
        super().__init__(ops, parms)
        net = parms.dp.net
        dev = net.dev_get_by_name(parms.name)
        if dev is None:
            raise VportError(
                f"{parms.name}: no such network device in namespace {net.name}",
                errno=errno.ENODEV,
            )
        if dev.type != ARPHRD_ETHER:
            raise VportError(f"{parms.name}: not an Ethernet device", errno=errno.EINVAL)
        if getattr(dev, "ovs_internal", False):
            raise VportError(
                f"{parms.name}: is the internal device of a datapath port; "
                "attach it as type internal instead",
                errno=errno.EINVAL,
            )
        try:
            dev.rx_handler_register(self.netdev_frame_hook)
        except DeviceError as e:
            raise VportError(
                f"{parms.name}: device already belongs to a datapath", errno=errno.EBUSY
            ) from e
        dev.set_promiscuity(1)
        self.dev: NetDevice = dev

    def netdev_frame_hook(self, frames: Sequence[bytes | SkBuff]) -> None:
        """The rx handler: frames received on the device enter the datapath."""
        self.dp.process_batch(self, frames)

    def send(self, frames: Sequence[bytes | SkBuff]) -> None:
        """``netdev_send``: transmit on the device."""
        self.dp.vport_xmit(self, self.dev, frames)

    def get_device_stats(self) -> DeviceStats:
        return self.dev.get_stats64()

    def destroy(self) -> None:
        try:
            self.dev.rx_handler_unregister()
            self.dev.set_promiscuity(-1)
        except DeviceError:
            pass  # the device may already be gone


class NetdevVportOps(VportOps):
    type = OVS_VPORT_TYPE_NETDEV
    name = "netdev"
    vport_class = NetdevVport
