"""The small device interface between the datapath core and a backend.

Modelled on the kernel's ``struct net_device`` / ``net_device_ops`` as the seed
traces them for netdev and internal vports::

    .ndo_open             -> NetDevice.open()        (up; queue started)
    .ndo_stop             -> NetDevice.stop()        (down; queue stopped)
    .ndo_start_xmit       -> NetDevice.start_xmit()  (transmit a batch of frames)
    .ndo_set_mac_address  -> NetDevice.set_mac_address()
    .ndo_change_mtu       -> NetDevice.change_mtu()
    .ndo_get_stats64      -> NetDevice.get_stats64()
    dev_set_promiscuity   -> NetDevice.set_promiscuity()
    netdev_rx_handler_register / _unregister

A backend (``pyvswitch.backends.memory``, ``pyvswitch.backends.linux``)
implements :class:`NetDevice` for its devices and :class:`NetNamespace` for
its network namespaces.  The core only ever talks to these protocols; it
imports nothing from a backend.

Frames are ``bytes`` holding a whole Ethernet frame (no FCS).  A device
delivers what it receives to the registered rx handler in batches; a frame
with offload metadata (checksum-partial, GSO) is delivered as an
:class:`~pyvswitch.skbuff.SkBuff` instead of plain bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .skbuff import SkBuff

ARPHRD_ETHER = 1
ARPHRD_NONE = 0xFFFE

#: An rx handler receives a batch of frames (bytes, or SkBuff when the frame
#: carries metadata such as offload state).
RxHandler = Callable[[Sequence["bytes | SkBuff"]], None]


@dataclass(slots=True)
class DeviceStats:
    """``struct rtnl_link_stats64`` (the subset ``ovs-dpctl show -s`` prints).
    ``None`` = the device does not know this counter (printed as ``?``)."""

    rx_packets: int = 0
    tx_packets: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_errors: int | None = 0
    tx_errors: int | None = 0
    rx_dropped: int | None = 0
    tx_dropped: int | None = 0
    rx_over_errors: int | None = 0
    rx_frame_errors: int | None = 0
    tx_aborted_errors: int | None = 0
    tx_carrier_errors: int | None = 0
    collisions: int | None = 0


@runtime_checkable
class NetDevice(Protocol):
    """A network device a netdev or internal vport sits on."""

    @property
    def name(self) -> str: ...

    @property
    def ifindex(self) -> int: ...

    @property
    def mac(self) -> bytes: ...

    @property
    def mtu(self) -> int: ...

    @property
    def is_up(self) -> bool: ...

    @property
    def type(self) -> int:
        """ARPHRD_ETHER or ARPHRD_NONE."""
        ...

    def open(self) -> None: ...

    def stop(self) -> None: ...

    def start_xmit(self, frames: Sequence[bytes | SkBuff]) -> int:
        """Transmit frames; return how many were accepted.  Never raises for a
        frame that cannot be sent: the device counts it (tx_errors/tx_dropped)."""
        ...

    def set_mac_address(self, mac: bytes) -> None: ...

    def change_mtu(self, mtu: int) -> None: ...

    def set_promiscuity(self, inc: int) -> None: ...

    def get_stats64(self) -> DeviceStats: ...

    def rx_handler_register(self, handler: RxHandler) -> None:
        """Register the datapath's receive hook (``netdev_rx_handler_register``).
        Raises DeviceError(EBUSY) if a handler is already registered: a device
        belongs to one datapath only (the ``IFF_OVS_DATAPATH`` rule)."""
        ...

    def rx_handler_unregister(self) -> None: ...


@runtime_checkable
class NetNamespace(Protocol):
    """A network namespace: where devices live and names are looked up."""

    @property
    def name(self) -> str: ...

    def dev_get_by_name(self, name: str) -> NetDevice | None:
        """The device called ``name`` in this namespace, or None."""
        ...

    def create_internal_device(self, name: str, on_xmit: RxHandler) -> NetDevice:
        """Create the device behind an internal vport (``internal_dev_create``:
        ``alloc_netdev`` + ``register_netdevice``).  What the host stack
        transmits on it is handed to ``on_xmit`` (``internal_dev_xmit``); what
        the datapath sends with ``start_xmit`` is delivered up to the host stack
        (``internal_dev_recv`` -> ``netif_rx``).  Raises DeviceError(EEXIST) if
        the name is taken."""
        ...

    def destroy_internal_device(self, dev: NetDevice) -> None: ...
