"""The Linux backend: real devices in real network namespaces.

* :class:`LinuxNetns` -- a network namespace (named, by path, or the current
  one) as the datapath's :class:`~pyvswitch.device.NetNamespace`;
* :class:`PacketDevice` -- a netdev vport's device: an existing interface
  driven with a TPACKET_V3 receive ring and ``sendmmsg`` transmit;
* :class:`TapDevice` -- an internal vport's device: a TAP named as the port.

Example (root)::

    from pyvswitch.backends.linux import LinuxNetns
    from pyvswitch.datapath import Openvswitch
    from pyvswitch.eventloop import EventLoop

    loop = EventLoop()
    sw = LinuxNetns("switch", loop)           # /run/netns/switch
    dp = Openvswitch().dp_new("dp0", sw)      # a TAP "dp0" in that namespace
    dp.vport_add("veth-a")                    # existing interfaces
    dp.vport_add("veth-b")
    loop.run()

For ``pyvswitch daemon --workers N`` see :mod:`.fanout` (several processes
sharing the devices through ``PACKET_FANOUT``).

See ``docs/linux-backend.md``.
"""

from __future__ import annotations

from .afpacket import Fanout, PacketDevice, RingConfig
from .fanout import ControlNetns, SharedTapDevice, WorkerNetns
from .link import LinuxDevice
from .namespace import LinuxNetns
from .netns import NetnsHandle, netns_add, netns_delete, netns_exists
from .tap import TapDevice

__all__ = [
    "ControlNetns",
    "Fanout",
    "LinuxDevice",
    "LinuxNetns",
    "NetnsHandle",
    "PacketDevice",
    "RingConfig",
    "SharedTapDevice",
    "TapDevice",
    "WorkerNetns",
    "netns_add",
    "netns_delete",
    "netns_exists",
]
