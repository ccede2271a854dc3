"""Network namespaces: handles, entering one for a moment, ``ip netns`` helpers.

A socket, a netlink socket and a TAP device belong to the namespace of the
thread that creates them and keep it for their lifetime.  So the backend
enters the target namespace (``setns`` on ``/run/netns/NAME``) only while it
creates them, and returns to the original namespace at once: one process can
switch between hosts it does not live in.  ``setns`` changes only the calling
thread, so other threads are not disturbed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator

from ...errors import DeviceError
from .syscalls import setns

NETNS_RUN_DIR = "/run/netns"
_SELF_NET = "/proc/thread-self/ns/net"


def netns_path(name: str) -> str:
    """The file that names a namespace: ``/run/netns/NAME`` (``ip netns``), or
    a path such as ``/proc/PID/ns/net`` when ``name`` starts with ``/``."""
    if name.startswith("/"):
        return name
    if not name or "/" in name or name in (".", ".."):
        raise DeviceError(f"bad network namespace name {name!r}")
    return os.path.join(NETNS_RUN_DIR, name)


class NetnsHandle:
    """An open reference to a network namespace (the current one if ``name``
    is None).  :meth:`entered` runs a block inside it."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        path = _SELF_NET if name is None else netns_path(name)
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise DeviceError(f"network namespace {name!r} does not exist ({path})") from e
        except OSError as e:
            raise DeviceError(f"cannot open network namespace {name!r}: {e}", errno=e.errno) from e
        st = os.fstat(self.fd)
        self.ident = (st.st_dev, st.st_ino)

    def is_current(self) -> bool:
        """Whether the calling thread is in this namespace already."""
        st = os.stat(_SELF_NET)
        return (st.st_dev, st.st_ino) == self.ident

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the block in this namespace, then return to the original one."""
        if self.fd < 0:
            raise DeviceError(f"network namespace {self.name!r} is closed")
        if self.is_current():
            yield
            return
        orig = os.open(_SELF_NET, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(self.fd)
            try:
                yield
            finally:
                # If we cannot get back, this thread would silently work in
                # the wrong namespace from now on: better to fail loudly.
                setns(orig)
        finally:
            os.close(orig)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __repr__(self) -> str:
        return f"<NetnsHandle {self.name or 'current'}>"


def netns_exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


def netns_add(name: str) -> None:
    """``ip netns add NAME`` (iproute2 sets up the shared ``/run/netns`` mount)."""
    _ip("netns", "add", name)


def netns_delete(name: str) -> None:
    """``ip netns delete NAME``; devices in it are destroyed with it (veth
    peers in other namespaces too)."""
    _ip("netns", "delete", name)


def _ip(*args: str) -> None:
    try:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise DeviceError("the ip command (iproute2) is not installed") from e
    except subprocess.CalledProcessError as e:
        raise DeviceError(f"ip {' '.join(args)}: {e.stderr.strip()}") from e
