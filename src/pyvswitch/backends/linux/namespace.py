""":class:`LinuxNetns`: a Linux network namespace as a
:class:`~pyvswitch.device.NetNamespace` for the datapath.

It looks devices up with rtnetlink in its namespace, creates TAP devices for
internal vports there, and keeps every device it handed out current with a
link-event socket (``RTNLGRP_LINK``) registered in the event loop: a link
that is deleted (or moved away) is noticed at once and its device object
goes dead -- the vport stays and counts what it cannot send.
"""

from __future__ import annotations

import logging

from ...device import NetDevice, RxHandler, TunnelRxHandler
from ...errors import DeviceError
from ...eventloop import EventLoop
from .afpacket import PacketDevice, RingConfig
from .link import LinuxDevice
from .netns import NetnsHandle, netns_add, netns_exists
from .rtnl import RTM_DELLINK, RTMGRP_LINK, Rtnl
from .tap import TapDevice
from .underlay import LinuxTunnelSocket, LinuxUnderlay

log = logging.getLogger("pyvswitch.backends.linux")


class LinuxNetns:
    """A network namespace of the running kernel.

    ``name`` is a name from ``ip netns`` (``/run/netns/NAME``), a path such as
    ``/proc/PID/ns/net``, or None for the namespace the process is in.  The
    process itself stays where it is: sockets and TAP devices are created
    inside the namespace and used from outside.  Device fds are registered in
    ``loop`` (a private :class:`EventLoop` if none is given: drive it with
    ``ns.loop.run()`` or ``run_once()``).

    ``create=True`` makes the named namespace (``ip netns add``) if missing.
    """

    def __init__(
        self,
        name: str | None = None,
        loop: EventLoop | None = None,
        *,
        create: bool = False,
        ring: RingConfig | None = None,
    ) -> None:
        if create and name is not None and not name.startswith("/") and not netns_exists(name):
            netns_add(name)
        self.handle = NetnsHandle(name)
        self._name = name if name is not None else "default"
        self.loop = loop if loop is not None else EventLoop()
        self.ring = ring or RingConfig()
        try:
            with self.handle.entered():
                self.rtnl = Rtnl()
                self.monitor = Rtnl(RTMGRP_LINK)
        except OSError as e:
            self.handle.close()
            raise DeviceError(f"{self._name}: cannot open rtnetlink: {e}", errno=e.errno) from e
        self._devices: dict[int, LinuxDevice] = {}
        self._internal: dict[str, TapDevice] = {}
        #: the tunnel underlay (``TunnelUnderlay``), opened on first use
        self.underlay: LinuxUnderlay | None = None
        self.closed = False
        self.loop.add_reader(self.monitor.fileno(), self._on_link_events)

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<LinuxNetns {self._name}>"

    def __enter__(self) -> LinuxNetns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- NetNamespace ------------------------------------------------------------------

    def dev_get_by_name(self, name: str) -> NetDevice | None:
        """The device called ``name`` in this namespace, or None.  The same
        kernel device always gives the same object (so a second datapath
        attaching it gets EBUSY); an internal device gives its TAP."""
        self._check_open()
        tap = self._internal.get(name)
        if tap is not None and not tap.dead:
            return tap
        try:
            info = self.rtnl.get_link(name)
        except OSError as e:
            raise DeviceError(f"{name}: link lookup failed: {e}", errno=e.errno) from e
        if info is None:
            return None
        dev = self._devices.get(info.ifindex)
        if dev is not None and not dev.dead:
            dev._update(info)
            return dev
        dev = PacketDevice(self, info, self.ring)
        self._devices[info.ifindex] = dev
        return dev

    def create_internal_device(self, name: str, on_xmit: RxHandler) -> NetDevice:
        """A TAP device ``name`` (down; bring it up with ``open()`` or ``ip
        link set NAME up``).  DeviceError(EEXIST) if the name is taken."""
        self._check_open()
        if not name or len(name.encode()) > 15:
            raise DeviceError(f"bad device name {name!r}")
        tap = TapDevice(self, name, on_xmit)
        self._internal[name] = tap
        self._devices[tap.ifindex] = tap
        return tap

    def destroy_internal_device(self, dev: NetDevice) -> None:
        if not isinstance(dev, TapDevice):
            return
        if self._internal.get(dev.name) is dev:
            del self._internal[dev.name]
        if self._devices.get(dev.ifindex) is dev:
            del self._devices[dev.ifindex]
        dev.dead = True
        dev.close()

    # -- TunnelUnderlay ------------------------------------------------------------------

    def tunnel_socket_open(
        self, proto: int, port: int, family: int, on_receive: TunnelRxHandler
    ) -> LinuxTunnelSocket:
        """A tunnel underlay socket in this namespace (``underlay.py``)."""
        self._check_open()
        if self.underlay is None:
            self.underlay = LinuxUnderlay(self)
        return self.underlay.open(proto, port, family, on_receive)

    # -- link events --------------------------------------------------------------------

    def _on_link_events(self) -> None:
        try:
            events = self.monitor.read_events()
        except Exception:
            log.exception("%s: reading link events failed", self._name)
            return
        if events is None:
            self.sync_links()
            return
        for msg_type, info in events:
            dev = self._devices.get(info.ifindex)
            if dev is None:
                continue
            try:
                if msg_type == RTM_DELLINK:
                    dev._gone("deleted")
                else:
                    dev._update(info)
            except Exception:
                log.exception("%s: link event for %s failed", self._name, dev.name)

    def sync_links(self) -> None:
        """Read pending link events now; if events were lost, query every
        device we hold."""
        if self.closed:
            return
        try:
            events = self.monitor.read_events()
        except OSError:
            events = None
        if events is not None:
            for msg_type, info in events:
                dev = self._devices.get(info.ifindex)
                if dev is not None:
                    if msg_type == RTM_DELLINK:
                        dev._gone("deleted")
                    else:
                        dev._update(info)
            return
        for dev in list(self._devices.values()):
            try:
                now = self.rtnl.get_link(ifindex=dev.ifindex)
            except OSError:
                continue
            if now is None:
                dev._gone("deleted")
            else:
                dev._update(now)

    def _forget(self, dev: LinuxDevice) -> None:
        if self._devices.get(dev.ifindex) is dev:
            del self._devices[dev.ifindex]
        if isinstance(dev, TapDevice) and self._internal.get(dev.name) is dev:
            del self._internal[dev.name]

    # -- lifetime -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise DeviceError(f"namespace {self._name} is closed")

    def devices(self) -> list[LinuxDevice]:
        """Devices handed out and still alive."""
        return [d for d in self._devices.values() if not d.dead]

    def close(self) -> None:
        """Close every socket and TAP (TAPs disappear) and stop watching."""
        if self.closed:
            return
        self.closed = True
        if self.underlay is not None:
            try:
                self.underlay.close()
            except Exception:  # pragma: no cover - best effort
                log.exception("%s: closing the tunnel underlay failed", self._name)
            self.underlay = None
        for dev in list(self._devices.values()):
            try:
                dev.close()
            except Exception:  # pragma: no cover - best effort
                log.exception("%s: closing %s failed", self._name, dev.name)
        self._devices.clear()
        self._internal.clear()
        self.loop.remove_reader(self.monitor.fileno())
        self.monitor.close()
        self.rtnl.close()
        self.handle.close()
