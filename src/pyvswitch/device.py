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


# ---------------------------------------------------------------------------
# The tunnel underlay (what tunnel vports transmit and receive through)
#
# A tunnel vport builds whole outer IP packets itself (byte-exact: outer IP
# header, UDP/GRE/"TCP" header, tunnel header, inner frame) and hands them to
# an underlay socket; the underlay hands back whole outer IP packets that
# arrive for the socket's protocol and port.  On Linux this maps onto a raw
# IP socket with IP_HDRINCL / IPV6_HDRINCL for sending, and for receiving a
# UDP socket bound to the port (VXLAN, Geneve, LISP), a raw protocol-47
# socket (GRE) or a raw TCP socket filtered by destination port (STT).

AF_INET = 2
AF_INET6 = 10
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_GRE = 47

#: Receives a batch of outer IP packets (each from its IPv4/IPv6 header on).
TunnelRxHandler = Callable[[Sequence[bytes]], None]


@dataclass(frozen=True, slots=True)
class TunnelRoute:
    """What the underlay's routing says about a destination: the source
    address the stack would use and the path MTU (the output device's MTU)."""

    src: int
    mtu: int


@runtime_checkable
class TunnelSocket(Protocol):
    """One bound underlay socket of one address family."""

    @property
    def family(self) -> int:
        """AF_INET or AF_INET6."""
        ...

    @property
    def proto(self) -> int:
        """IPPROTO_UDP, IPPROTO_GRE or IPPROTO_TCP."""
        ...

    @property
    def port(self) -> int:
        """The bound UDP/TCP destination port (0 for GRE)."""
        ...

    def send(self, packets: Sequence[bytes]) -> int:
        """Transmit whole outer IP packets of this socket's family exactly as
        given (the header is not rewritten: IP_HDRINCL).  Returns how many were
        accepted.  Never raises for a packet that cannot be sent (no route,
        longer than the path MTU): the socket counts it."""
        ...

    def route(self, dst: int) -> TunnelRoute | None:
        """Source address and path MTU towards ``dst``, or None if unroutable."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class TunnelUnderlay(Protocol):
    """Implemented by a network namespace that can carry tunnel traffic."""

    def tunnel_socket_open(
        self, proto: int, port: int, family: int, on_receive: TunnelRxHandler
    ) -> TunnelSocket:
        """Bind an underlay socket.  Every packet of IP protocol ``proto``
        addressed to a local address of this namespace (for UDP and TCP: with
        destination port ``port``) is handed to ``on_receive`` as the whole IP
        packet, header included; a backend that receives through a UDP socket
        rebuilds the outer headers from the datagram's addresses, ports,
        TOS/TTL (ancillary data).  Raises DeviceError (EADDRINUSE if the
        protocol/port is taken, EAFNOSUPPORT if the family is unavailable)."""
        ...
