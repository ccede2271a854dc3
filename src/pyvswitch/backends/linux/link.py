"""What every Linux device of the backend shares: identity and state cached
from rtnetlink (kept current by link events), link changes (up/down, MTU,
MAC) and counters (the kernel's ``IFLA_STATS64`` plus what the backend
itself dropped or failed to send).

The cached attributes make :attr:`mtu` and :attr:`is_up` free to read: the
datapath reads them for every batch it sends.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...device import ARPHRD_ETHER, ARPHRD_NONE, DeviceStats, RxHandler
from ...errors import DeviceError
from .rtnl import LinkInfo
from .syscalls import IFF_UP

if TYPE_CHECKING:
    from ...skbuff import SkBuff
    from .namespace import LinuxNetns

log = logging.getLogger("pyvswitch.backends.linux")


class LinuxDevice:
    """Base of :class:`~.afpacket.PacketDevice` and :class:`~.tap.TapDevice`."""

    #: an internal device of a datapath (refused as a netdev vport)
    ovs_internal = False
    kind = "link"

    def __init__(self, ns: LinuxNetns, info: LinkInfo) -> None:
        self.ns = ns
        self._name = info.name
        self._ifindex = info.ifindex
        self._mac = info.mac
        self._mtu = info.mtu
        self._flags = info.flags
        self._type = ARPHRD_ETHER if info.type == 1 else ARPHRD_NONE
        self._kernel_stats: tuple[int, ...] | None = info.stats
        self.rx_handler: RxHandler | None = None
        self.promiscuity = 0
        #: the kernel device is gone (deleted, or moved to another namespace)
        self.dead = False
        # What the backend itself counted (added to the kernel's counters).
        self.rx_dropped = 0  # ring overflow, frames the handler could not take
        self.rx_errors = 0  # truncated frames, failures handing frames up
        self.tx_dropped = 0  # device down or gone, queue full
        self.tx_errors = 0  # frames the kernel refused

    # -- NetDevice identity ---------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def ifindex(self) -> int:
        return self._ifindex

    @property
    def mac(self) -> bytes:
        return self._mac

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def is_up(self) -> bool:
        return bool(self._flags & IFF_UP) and not self.dead

    @property
    def type(self) -> int:
        return self._type

    @property
    def flags(self) -> int:
        """``IFF_*`` flags as last seen."""
        return self._flags

    def __repr__(self) -> str:
        state = "dead" if self.dead else ("up" if self.is_up else "down")
        where = f"{self.ns.name}/{self._name}"
        return f"<{type(self).__name__} {where} ifindex {self._ifindex} {state}>"

    # -- link changes -------------------------------------------------------------

    def _check_alive(self) -> None:
        if self.dead:
            raise DeviceError(f"{self._name}: device is gone", errno=errno.ENODEV)

    def _set_link(
        self, *, flags: int = 0, change: int = 0, mtu: int | None = None, mac: bytes | None = None
    ) -> None:
        self._check_alive()
        try:
            self.ns.rtnl.set_link(self._ifindex, flags=flags, change=change, mtu=mtu, mac=mac)
        except OSError as e:
            err = e.errno or errno.EINVAL
            if err == errno.ENODEV:
                self._gone("deleted")
            raise DeviceError(f"{self._name}: {e.strerror or e}", errno=err) from e

    def open(self) -> None:
        """``ip link set NAME up``."""
        self._set_link(flags=IFF_UP, change=IFF_UP)
        self._flags |= IFF_UP

    def stop(self) -> None:
        """``ip link set NAME down``."""
        self._set_link(flags=0, change=IFF_UP)
        self._flags &= ~IFF_UP

    def set_mac_address(self, mac: bytes) -> None:
        if len(mac) != 6 or mac[0] & 1 or mac == bytes(6):
            raise DeviceError(f"{self._name}: bad unicast MAC address", errno=errno.EADDRNOTAVAIL)
        self._set_link(mac=bytes(mac))
        self._mac = bytes(mac)

    def change_mtu(self, mtu: int) -> None:
        if not 68 <= mtu <= 65535:
            raise DeviceError(f"{self._name}: MTU {mtu} out of range 68..65535", errno=errno.EINVAL)
        self._set_link(mtu=mtu)
        self._mtu = mtu

    def start_xmit(self, frames: Sequence[bytes | SkBuff]) -> int:
        raise NotImplementedError

    # -- rx handler ---------------------------------------------------------------------

    def rx_handler_register(self, handler: RxHandler) -> None:
        if self.rx_handler is not None:
            raise DeviceError(f"{self._name}: already attached to a datapath", errno=errno.EBUSY)
        self._check_alive()
        self.rx_handler = handler

    def rx_handler_unregister(self) -> None:
        self.rx_handler = None

    def set_promiscuity(self, inc: int) -> None:
        self.promiscuity = max(0, self.promiscuity + inc)

    # -- counters -------------------------------------------------------------------

    def _own_counters(self) -> None:
        """Fold counters the kernel keeps per socket into ours (subclasses)."""

    def get_stats64(self) -> DeviceStats:
        """The kernel's counters for the device (last known ones once it is
        gone) plus what the backend dropped or failed to send itself."""
        if not self.dead:
            try:
                info = self.ns.rtnl.get_link(ifindex=self._ifindex)
            except OSError:
                info = None
            if info is not None:
                self._update(info)
        self._own_counters()
        s = self._kernel_stats or (0,) * 24
        return DeviceStats(
            rx_packets=s[0],
            tx_packets=s[1],
            rx_bytes=s[2],
            tx_bytes=s[3],
            rx_errors=s[4] + self.rx_errors,
            tx_errors=s[5] + self.tx_errors,
            rx_dropped=s[6] + self.rx_dropped,
            tx_dropped=s[7] + self.tx_dropped,
            rx_over_errors=s[11],
            rx_frame_errors=s[13],
            tx_aborted_errors=s[16],
            tx_carrier_errors=s[17],
            collisions=s[9],
        )

    # -- events from the namespace --------------------------------------------------

    def _update(self, info: LinkInfo) -> None:
        """New link state (RTM_NEWLINK or a query)."""
        self._name = info.name or self._name
        if info.mtu:
            self._mtu = info.mtu
        if info.mac:
            self._mac = info.mac
        self._flags = info.flags
        if info.stats is not None:
            self._kernel_stats = info.stats

    def _gone(self, why: str) -> None:
        """The kernel device disappeared: release everything, keep counters.
        The vport on it stays; sending counts tx_dropped."""
        if self.dead:
            return
        self.dead = True
        log.warning("%s/%s: device %s; its port stops working", self.ns.name, self._name, why)
        self._release()
        self.ns._forget(self)

    def _release(self) -> None:
        """Close sockets/fds (subclasses)."""

    def close(self) -> None:
        """Release everything (the namespace is closing)."""
        self._release()
