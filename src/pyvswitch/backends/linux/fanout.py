"""Namespaces for ``pyvswitch daemon --workers N``: several processes share
each device through ``PACKET_FANOUT`` (see :mod:`pyvswitch.workers`).

* :class:`ControlNetns` -- the control process's namespace: netdev devices
  transmit but never receive, TAPs are created here and read by a worker;
* :class:`WorkerNetns` -- a worker's namespace: every receive ring joins the
  device's ``PACKET_FANOUT`` group, internal devices use the TAP descriptors
  the control process passes over (:class:`SharedTapDevice`).
"""

from __future__ import annotations

import dataclasses
import errno
import os

from ...device import NetDevice, RxHandler
from ...errors import DeviceError
from ...eventloop import EventLoop
from .afpacket import Fanout, RingConfig
from .link import LinuxDevice
from .namespace import LinuxNetns
from .rtnl import LinkInfo
from .syscalls import VNET_HDR_LEN
from .tap import TapDevice


class ControlNetns(LinuxNetns):
    """The namespace as the control process of a multi-process switch sees
    it: netdev devices never receive (``RingConfig(rx=False)``; they still
    transmit for ``dpctl execute``, hold the promiscuous membership and read
    counters); a TAP is created here -- so it lives exactly as long as its
    vport in this process -- but is not read here: worker 0 reads it through
    the descriptor :meth:`internal_device_fd` hands out."""

    def __init__(
        self,
        name: str | None = None,
        loop: EventLoop | None = None,
        *,
        ring: RingConfig | None = None,
    ) -> None:
        super().__init__(name, loop, ring=dataclasses.replace(ring or RingConfig(), rx=False))

    def create_internal_device(self, name: str, on_xmit: RxHandler) -> NetDevice:
        dev = super().create_internal_device(name, on_xmit)
        if isinstance(dev, TapDevice):
            self.loop.remove_reader(dev.fd)
        return dev

    def internal_device_fd(self, dev: NetDevice) -> int:
        """The TAP descriptor behind an internal device (-1 if none)."""
        return dev.fd if isinstance(dev, TapDevice) else -1


#: largest frame a TAP hands over: 64 KiB GSO + Ethernet + VLAN + vnet header
_TAP_READ_SIZE = 65536 + 14 + 8 + VNET_HDR_LEN + 64


class SharedTapDevice(TapDevice):
    """A TAP created by another process, used through a descriptor it passed
    (``SCM_RIGHTS``): written to by every worker (datapath -> host), read by
    one (``read=True``: host -> datapath).  Link state (up, MTU, MAC,
    promiscuity) belongs to the creating process; this side only caches it
    from link events.  Closing the descriptor does not remove the TAP."""

    def __init__(
        self,
        ns: LinuxNetns,
        info: LinkInfo,
        fd: int,
        on_xmit: RxHandler,
        *,
        read: bool,
        budget: int = 256,
    ) -> None:
        LinuxDevice.__init__(self, ns, info)
        self.fd = fd
        self.on_xmit = on_xmit
        self.budget = budget
        self._buf = bytearray(_TAP_READ_SIZE)
        self._view = memoryview(self._buf)
        self._promisc_set = False
        if read:
            ns.loop.add_reader(fd, self._on_readable)

    def set_promiscuity(self, inc: int) -> None:
        LinuxDevice.set_promiscuity(self, inc)  # IFF_PROMISC is the creator's


class WorkerNetns(LinuxNetns):
    """A worker process's view of the namespace: receive rings join the
    devices' fanout groups (``fanout``), the promiscuous membership is left
    to the control process, and internal devices are the TAPs the control
    process created (:meth:`adopt_internal_fd` before the vport is added);
    ``read_taps`` says whether this worker reads them."""

    def __init__(
        self,
        name: str | None,
        loop: EventLoop,
        *,
        fanout: Fanout,
        read_taps: bool,
        ring: RingConfig | None = None,
    ) -> None:
        ring = dataclasses.replace(ring or RingConfig(), fanout=fanout, promisc=False, rx=True)
        super().__init__(name, loop, ring=ring)
        self.read_taps = read_taps
        self._tap_fds: dict[str, int] = {}

    def adopt_internal_fd(self, name: str, fd: int) -> None:
        """The next internal device called ``name`` uses ``fd`` (this
        process's copy of the creator's TAP descriptor)."""
        old = self._tap_fds.pop(name, -1)
        if old >= 0:
            os.close(old)
        self._tap_fds[name] = fd

    def discard_internal_fds(self) -> int:
        """Close descriptors no internal device took (a vport that could not
        be added here must not keep its TAP alive); returns how many."""
        n = len(self._tap_fds)
        for fd in self._tap_fds.values():
            os.close(fd)
        self._tap_fds.clear()
        return n

    def create_internal_device(self, name: str, on_xmit: RxHandler) -> NetDevice:
        self._check_open()
        fd = self._tap_fds.pop(name, -1)
        if fd < 0:
            raise DeviceError(f"{name}: no TAP descriptor from the control process", errno.ENODEV)
        try:
            info = self.rtnl.get_link(name)
        except OSError as e:
            os.close(fd)
            raise DeviceError(f"{name}: link lookup failed: {e}", errno=e.errno) from e
        if info is None:
            os.close(fd)
            raise DeviceError(f"{name}: no such TAP device in {self.name}", errno.ENODEV)
        tap = SharedTapDevice(self, info, fd, on_xmit, read=self.read_taps)
        self._internal[name] = tap
        self._devices[tap.ifindex] = tap
        return tap

    def close(self) -> None:
        self.discard_internal_fds()
        super().close()
