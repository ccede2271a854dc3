"""Constants, ``ctypes`` bindings and small system-call helpers shared by the
Linux backend (nothing here keeps state).

Only what Python 3.11's standard library lacks goes through ``ctypes``:
``setns`` (``os.setns`` arrived in 3.12), ``sendmmsg`` and ``bind`` with a
full ``sockaddr_ll``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket
import struct
import sys

# --- namespaces ----------------------------------------------------------------
CLONE_NEWNET = 0x40000000

# --- AF_PACKET (linux/if_packet.h) ----------------------------------------------
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_DROP_MEMBERSHIP = 2
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_RESERVE = 12
PACKET_VNET_HDR = 15
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
PACKET_MR_PROMISC = 1
PACKET_OUTGOING = 4
TPACKET_V3 = 2

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1 << 0
TP_STATUS_COPY = 1 << 1
TP_STATUS_LOSING = 1 << 2
TP_STATUS_CSUMNOTREADY = 1 << 3
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_BLK_TMO = 1 << 5
TP_STATUS_VLAN_TPID_VALID = 1 << 6
TP_STATUS_CSUM_VALID = 1 << 7
TP_STATUS_GSO_TCP = 1 << 8

ETH_P_ALL = 0x0003
ETH_P_8021Q = 0x8100

#: ``struct tpacket_req3``: block_size, block_nr, frame_size, frame_nr,
#: retire_blk_tov, sizeof_priv, feature_req_word
TPACKET_REQ3 = struct.Struct("=7I")
#: ``struct tpacket_stats_v3``: packets, drops, freeze_q_cnt
TPACKET_STATS_V3 = struct.Struct("=3I")
#: ``struct packet_mreq``: ifindex, type, alen, address[8]
PACKET_MREQ = struct.Struct("=iHH8s")
#: ``struct sockaddr_ll``: family, protocol (network order), ifindex, hatype,
#: pkttype, halen, addr[8]
SOCKADDR_LL = struct.Struct("=H2siHBB8s")

# Offsets in the TPACKET_V3 ring.
#: ``struct tpacket_block_desc``: version, offset_to_priv, then
#: ``tpacket_hdr_v1``: block_status (8), num_pkts (12), offset_to_first_pkt (16)
BLOCK_STATUS_OFF = 8
BLOCK_HDR = struct.Struct("=4xII")  # at offset 8: (num_pkts, offset_to_first_pkt)
#: ``struct tpacket3_hdr``: tp_next_offset, (sec, nsec), tp_snaplen, tp_len,
#: tp_status, tp_mac
TPACKET3_HDR = struct.Struct("=I8xIIIH")
TP3_VLAN_TCI_OFF = 32  # hv1.tp_vlan_tci (u32)
TP3_VLAN_TPID_OFF = 36  # hv1.tp_vlan_tpid (u16)
TP3_PKTTYPE_OFF = 48 + 10  # sockaddr_ll.sll_pkttype after the 48-byte header

# --- virtio_net_hdr (linux/virtio_net.h), little endian on the hosts we run on --
VNET_HDR = struct.Struct("<BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_off
VNET_HDR_LEN = VNET_HDR.size  # 10
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_F_DATA_VALID = 2
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_UDP = 3
VIRTIO_NET_HDR_GSO_TCPV6 = 4
VIRTIO_NET_HDR_GSO_UDP_L4 = 5
VIRTIO_NET_HDR_GSO_ECN = 0x80

# --- TUN/TAP (linux/if_tun.h) ----------------------------------------------------
TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08
TUN_F_USO4 = 0x20
TUN_F_USO6 = 0x40

# --- net_device flags (linux/if.h) ----------------------------------------------
IFF_UP = 0x1
IFF_PROMISC = 0x100
IFF_LOWER_UP = 0x10000
IFNAMSIZ = 16
ARPHRD_ETHER = 1
ARPHRD_NONE = 0xFFFE

# --- libc --------------------------------------------------------------------------
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)

_setns = _libc.setns
_setns.argtypes = [ctypes.c_int, ctypes.c_int]
_setns.restype = ctypes.c_int

_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_sendmmsg.restype = ctypes.c_int

_bind = _libc.bind
_bind.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_bind.restype = ctypes.c_int

MSG_DONTWAIT = 0x40


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    """``setns(2)`` for the calling thread."""
    if _setns(fd, nstype) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


def bind_ll(sock: socket.socket, ifindex: int, protocol: int) -> None:
    """Bind a packet socket to ``ifindex`` (by index, so a rename cannot race)."""
    addr = SOCKADDR_LL.pack(socket.AF_PACKET, protocol.to_bytes(2, "big"), ifindex, 0, 0, 0, b"")
    if _bind(sock.fileno(), addr, len(addr)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bind to ifindex {ifindex}: {os.strerror(e)}")


def sendmmsg(fd: int, msgvec: int, vlen: int, flags: int = MSG_DONTWAIT) -> tuple[int, int]:
    """``sendmmsg(2)``: (messages sent or -1, errno)."""
    n: int = _sendmmsg(fd, msgvec, vlen, flags)
    return n, (ctypes.get_errno() if n < 0 else 0)


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", MsgHdr), ("msg_len", ctypes.c_uint)]


# --- where a bytes object keeps its data ----------------------------------------
#: Offset of ``ob_sval`` in a CPython ``bytes`` object; ``id(b) + BYTES_DATA_OFFSET``
#: is then the address of its (immutable) data: iovecs point straight at it.
BYTES_DATA_OFFSET: int | None = sys.getsizeof(b"") - 1


def _check_bytes_offset() -> None:
    global BYTES_DATA_OFFSET
    probe = b"pyvswitch-iovec-probe"
    if sys.implementation.name != "cpython" or BYTES_DATA_OFFSET is None:
        BYTES_DATA_OFFSET = None
        return
    try:
        ok = ctypes.string_at(id(probe) + BYTES_DATA_OFFSET, len(probe)) == probe
    except (OSError, ValueError):  # pragma: no cover - defensive
        ok = False
    if not ok:  # pragma: no cover - other interpreters
        BYTES_DATA_OFFSET = None


_check_bytes_offset()


def bytes_address(b: bytes) -> int:
    """Address of the data of ``b`` (kept alive by the caller)."""
    if BYTES_DATA_OFFSET is not None:
        return id(b) + BYTES_DATA_OFFSET
    ptr = ctypes.cast(ctypes.c_char_p(b), ctypes.c_void_p).value  # pragma: no cover
    return int(ptr or 0)  # pragma: no cover


def ifreq(name: str, payload: bytes = b"") -> bytearray:
    """A ``struct ifreq`` (40 bytes): the name, then the union."""
    raw = name.encode()
    if not raw or len(raw) >= IFNAMSIZ:
        raise OSError(errno.EINVAL, f"bad interface name {name!r}")
    buf = bytearray(40)
    buf[: len(raw)] = raw
    buf[IFNAMSIZ : IFNAMSIZ + len(payload)] = payload
    return buf


def errno_name(e: int) -> str:
    return errno.errorcode.get(e, str(e))
