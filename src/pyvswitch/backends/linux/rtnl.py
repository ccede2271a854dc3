"""A small rtnetlink client: link lookup, link changes and link events.

Only what the backend needs: ``RTM_GETLINK`` (by name or index: ifindex,
type, flags, MTU, MAC, ``IFLA_STATS64``), ``RTM_NEWLINK`` to change flags,
MTU and MAC, and a socket subscribed to ``RTNLGRP_LINK`` for link events.  A
socket answers for the namespace it was created in, so the backend creates
these inside the target namespace.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
from dataclasses import dataclass

NETLINK_ROUTE = 0
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
RTMGRP_LINK = 0x1

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_STATS64 = 23
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_RTATTR = struct.Struct("=HH")
_ERR = struct.Struct("=i")
_STATS64_FIELDS = 24

_seq = itertools.count(1)


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attr(kind: int, value: bytes) -> bytes:
    n = _RTATTR.size + len(value)
    return _RTATTR.pack(n, kind) + value + bytes(_align(n) - n)


def _attrs(data: bytes, off: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + 4 <= end:
        ln, kind = _RTATTR.unpack_from(data, off)
        if ln < 4:
            break
        out[kind & 0x3FFF] = data[off + 4 : off + ln]
        off += _align(ln)
    return out


@dataclass(slots=True)
class LinkInfo:
    """What the kernel says about one link."""

    ifindex: int
    name: str
    type: int
    flags: int
    mtu: int
    mac: bytes
    kind: str = ""
    #: ``struct rtnl_link_stats64`` as a tuple (24 counters), if reported
    stats: tuple[int, ...] | None = None
    #: ``ifi_family``: AF_UNSPEC for links; AF_BRIDGE messages describe bridge ports
    family: int = 0


def parse_link(body: bytes) -> LinkInfo:
    """Decode the body of an ``RTM_NEWLINK``/``RTM_DELLINK`` message."""
    family, type_, index, flags, _change = _IFINFOMSG.unpack_from(body, 0)
    a = _attrs(body, _IFINFOMSG.size, len(body))
    name = a.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode(errors="replace")
    mtu = struct.unpack_from("=I", a[IFLA_MTU])[0] if IFLA_MTU in a else 0
    mac = a.get(IFLA_ADDRESS, b"")
    stats = None
    raw = a.get(IFLA_STATS64)
    if raw is not None:
        n = min(len(raw) // 8, _STATS64_FIELDS)
        stats = struct.unpack_from(f"={n}Q", raw) + (0,) * (_STATS64_FIELDS - n)
    kind = ""
    li = a.get(IFLA_LINKINFO)
    if li is not None:
        k = _attrs(li, 0, len(li)).get(IFLA_INFO_KIND)
        if k:
            kind = k.split(b"\0", 1)[0].decode(errors="replace")
    return LinkInfo(index, name, type_, flags, mtu, bytes(mac), kind, stats, family)


class Rtnl:
    """One ``NETLINK_ROUTE`` socket (in the namespace it was created in).

    ``groups=RTMGRP_LINK`` makes it an event socket: non-blocking, read with
    :meth:`read_events`."""

    def __init__(self, groups: int = 0) -> None:
        self.sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        try:
            self.sock.bind((0, groups))
            if groups:
                self.sock.setblocking(False)
                try:
                    self.sock.setsockopt(socket.SOL_SOCKET, 33, 1 << 20)  # SO_RCVBUFFORCE
                except OSError:
                    self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            else:
                self.sock.settimeout(5.0)
        except BaseException:
            self.sock.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    # -- requests ---------------------------------------------------------------

    def _request(self, msg_type: int, flags: int, payload: bytes) -> list[tuple[int, bytes]]:
        seq = next(_seq)
        msg = _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), msg_type, flags, seq, 0) + payload
        self.sock.send(msg)
        replies: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(1 << 16)
            off = 0
            while off + _NLMSGHDR.size <= len(data):
                ln, t, _f, s, _pid = _NLMSGHDR.unpack_from(data, off)
                if ln < _NLMSGHDR.size:
                    break
                body = data[off + _NLMSGHDR.size : off + ln]
                off += _align(ln)
                if s != seq:
                    continue
                if t == NLMSG_ERROR:
                    err = -_ERR.unpack_from(body)[0]
                    if err:
                        raise OSError(err, os.strerror(err))
                    return replies  # the ACK
                if t == NLMSG_DONE:
                    return replies
                replies.append((t, body))
                if not flags & NLM_F_DUMP and not flags & NLM_F_ACK:
                    return replies

    def get_link(self, name: str | None = None, ifindex: int = 0) -> LinkInfo | None:
        """The link called ``name`` (or with ``ifindex``), None if absent."""
        payload = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, ifindex, 0, 0)
        if name is not None:
            payload += _attr(IFLA_IFNAME, name.encode() + b"\0")
        try:
            replies = self._request(RTM_GETLINK, NLM_F_REQUEST, payload)
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
                return None
            raise
        for t, body in replies:
            if t == RTM_NEWLINK:
                info = parse_link(body)
                if info.family == socket.AF_UNSPEC:
                    return info
        return None

    def dump_links(self) -> list[LinkInfo]:
        payload = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        replies = self._request(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, payload)
        links = [parse_link(b) for t, b in replies if t == RTM_NEWLINK]
        return [i for i in links if i.family == socket.AF_UNSPEC]

    def set_link(
        self,
        ifindex: int,
        *,
        flags: int = 0,
        change: int = 0,
        mtu: int | None = None,
        mac: bytes | None = None,
    ) -> None:
        """``ip link set``: flags under ``change``, MTU, MAC.  Raises OSError."""
        payload = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, ifindex, flags, change)
        if mtu is not None:
            payload += _attr(IFLA_MTU, struct.pack("=I", mtu))
        if mac is not None:
            payload += _attr(IFLA_ADDRESS, bytes(mac))
        self._request(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, payload)

    # -- events -------------------------------------------------------------------

    def read_events(self) -> list[tuple[int, LinkInfo]] | None:
        """Pending link events as (RTM_NEWLINK or RTM_DELLINK, link).  None if
        the kernel dropped events (ENOBUFS): the caller must resynchronise."""
        events: list[tuple[int, LinkInfo]] = []
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return events
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    return None
                raise
            off = 0
            while off + _NLMSGHDR.size <= len(data):
                ln, t, _f, _s, _pid = _NLMSGHDR.unpack_from(data, off)
                if ln < _NLMSGHDR.size:
                    break
                if t in (RTM_NEWLINK, RTM_DELLINK):
                    info = parse_link(data[off + _NLMSGHDR.size : off + ln])
                    if info.family == socket.AF_UNSPEC:  # not AF_BRIDGE port events
                        events.append((t, info))
                off += _align(ln)


#: Order of the fields in ``struct rtnl_link_stats64``.
STATS64_FIELDS = (
    "rx_packets",
    "tx_packets",
    "rx_bytes",
    "tx_bytes",
    "rx_errors",
    "tx_errors",
    "rx_dropped",
    "tx_dropped",
    "multicast",
    "collisions",
    "rx_length_errors",
    "rx_over_errors",
    "rx_crc_errors",
    "rx_frame_errors",
    "rx_fifo_errors",
    "rx_missed_errors",
    "tx_aborted_errors",
    "tx_carrier_errors",
    "tx_fifo_errors",
    "tx_heartbeat_errors",
    "tx_window_errors",
    "rx_compressed",
    "tx_compressed",
    "rx_nohandler",
)
