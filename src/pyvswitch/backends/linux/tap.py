"""``internal`` devices: a TAP device named as the vport.

The kernel's internal device is a netdev whose transmit function is the
datapath's receive (``internal_dev_xmit``) and whose receive is the
datapath's transmit (``internal_dev_recv`` -> ``netif_rx``).  A TAP device is
exactly that seen from userspace: what the host stack sends on it is read
from the TAP file descriptor (-> ``on_xmit``, the vport's receive) and what
the datapath writes to the descriptor is received by the host stack.

``IFF_VNET_HDR`` with ``TUNSETOFFLOAD`` (checksum, TSO4/6, ECN, USO when the
kernel has it) lets the host hand over checksum-partial and GSO packets
without finishing them; they travel as SkBuffs with that state and are
written back the same way.  The device is not persistent: closing the
descriptor (or the process dying) removes it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...errors import DeviceError
from ...skbuff import SkBuff
from .link import LinuxDevice
from .offload import ZERO_VNET_HDR, frame_from_vnet, software_frames, vnet_hdr_for
from .syscalls import (
    IFF_NO_PI,
    IFF_PROMISC,
    IFF_TAP,
    IFF_UP,
    IFF_VNET_HDR,
    TUN_F_CSUM,
    TUN_F_TSO4,
    TUN_F_TSO6,
    TUN_F_TSO_ECN,
    TUN_F_USO4,
    TUN_F_USO6,
    TUNSETIFF,
    TUNSETOFFLOAD,
    TUNSETVNETHDRSZ,
    VNET_HDR,
    VNET_HDR_LEN,
    ifreq,
)

if TYPE_CHECKING:
    from ...device import RxHandler
    from .namespace import LinuxNetns

log = logging.getLogger("pyvswitch.backends.linux")

#: largest frame a TAP hands over: 64 KiB GSO + Ethernet + VLAN + vnet header
_READ_SIZE = 65536 + 14 + 8 + VNET_HDR_LEN + 64


class TapDevice(LinuxDevice):
    """The device behind an internal vport."""

    ovs_internal = True
    kind = "internal"

    def __init__(self, ns: LinuxNetns, name: str, on_xmit: RxHandler, *, budget: int = 256) -> None:
        if ns.rtnl.get_link(name) is not None:
            raise DeviceError(f"{name}: device exists in {ns.name}", errno=errno.EEXIST)
        try:
            with ns.handle.entered():
                fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise DeviceError(f"{name}: cannot open /dev/net/tun: {e}", errno=e.errno) from e
        try:
            flags = struct.pack("=H", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
            fcntl.ioctl(fd, TUNSETIFF, ifreq(name, flags))
            fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("=i", VNET_HDR_LEN))
            base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN
            try:
                fcntl.ioctl(fd, TUNSETOFFLOAD, base | TUN_F_USO4 | TUN_F_USO6)
            except OSError:
                fcntl.ioctl(fd, TUNSETOFFLOAD, base)  # kernels before 6.2: no USO
            info = ns.rtnl.get_link(name)
            if info is None:
                raise OSError(errno.ENODEV, "TAP device vanished")
        except OSError as e:
            os.close(fd)
            err = e.errno or errno.EINVAL
            raise DeviceError(f"{name}: cannot create TAP device: {e}", errno=err) from e
        super().__init__(ns, info)
        self.fd = fd
        self.on_xmit = on_xmit
        self.budget = budget
        self._buf = bytearray(_READ_SIZE)
        self._view = memoryview(self._buf)
        self._promisc_set = False
        ns.loop.add_reader(fd, self._on_readable)

    # -- host -> datapath -------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            self.rx_poll()
        except Exception:  # nothing in the receive path may raise out of the loop
            self.rx_errors += 1
            log.exception("%s/%s: TAP receive failed", self.ns.name, self._name)

    def rx_poll(self) -> int:
        """Read what the host sent (up to ``budget`` frames) and hand it to
        the datapath as one batch."""
        fd = self.fd
        if fd < 0:
            return 0
        buf = self._buf
        view = self._view
        readv = os.readv
        frames: list[bytes | SkBuff] = []
        append = frames.append
        for _ in range(self.budget):
            try:
                n = readv(fd, (buf,))
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                self.rx_errors += 1
                log.warning("%s/%s: TAP read: %s", self.ns.name, self._name, e)
                break
            if n <= VNET_HDR_LEN:
                continue
            if not buf[0] and not buf[1]:  # no offload state
                append(view[VNET_HDR_LEN:n].tobytes())
            else:
                flags, gso_type, _hl, gso_size, cstart, coff = VNET_HDR.unpack_from(buf)
                append(
                    frame_from_vnet(
                        view[VNET_HDR_LEN:n].tobytes(), flags, gso_type, gso_size, cstart, coff
                    )
                )
        if frames:
            if not self._flags & IFF_UP:
                self.ns.sync_links()  # it sends, so it is up: the event is late
            try:
                self.on_xmit(frames)
            except Exception:
                self.rx_errors += 1
                log.exception("%s/%s: internal port receive failed", self.ns.name, self._name)
        return len(frames)

    # -- datapath -> host -------------------------------------------------------------

    def start_xmit(self, frames: Sequence[bytes | SkBuff]) -> int:
        fd = self.fd
        if fd < 0 or self.dead:
            self.tx_dropped += len(frames)
            return 0
        writev = os.writev
        zero = ZERO_VNET_HDR
        sent = 0
        for fr in frames:
            try:
                if type(fr) is bytes:
                    writev(fd, (zero, fr))
                else:
                    assert isinstance(fr, SkBuff)
                    hdr = vnet_hdr_for(fr)
                    if hdr is not None:
                        writev(fd, (hdr, fr.data))
                    else:
                        for seg in software_frames(fr):
                            writev(fd, (zero, seg))
                sent += 1
            except OSError as e:
                if e.errno in (errno.EIO, errno.EAGAIN, errno.ENOBUFS):
                    self.tx_dropped += 1  # down, or the backlog is full
                elif e.errno == errno.EBADFD:
                    self.tx_dropped += len(frames) - sent
                    break
                else:
                    self.tx_errors += 1
        return sent

    def set_promiscuity(self, inc: int) -> None:
        """``dev_set_promiscuity``: IFF_PROMISC while the count is positive."""
        super().set_promiscuity(inc)
        want = self.promiscuity > 0
        if want != self._promisc_set and not self.dead and self.fd >= 0:
            self._set_link(flags=IFF_PROMISC if want else 0, change=IFF_PROMISC)
            self._promisc_set = want

    # -- lifetime ---------------------------------------------------------------------

    def _release(self) -> None:
        if self.fd >= 0:
            self.ns.loop.remove_reader(self.fd)
            os.close(self.fd)  # the TAP is not persistent: this deletes it
            self.fd = -1
