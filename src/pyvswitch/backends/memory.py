"""The in-memory backend: a whole topology in one process, no root needed.

* :class:`MemoryWorld` owns namespaces and a scheduler: frames a device
  transmits are queued and delivered in batches by :meth:`MemoryWorld.run`
  until nothing is left to deliver (and registered pollers, e.g. upcall
  handlers, have nothing left to do).
* :class:`MemoryNetns` implements :class:`~pyvswitch.device.NetNamespace`:
  devices by name, internal devices for internal vports, and a small host IP
  stack (:class:`HostStack`) that owns the namespace's addresses, answers ARP
  and ICMP echo, and can ping and send/receive UDP.
* :class:`MemoryDevice` implements :class:`~pyvswitch.device.NetDevice`;
  :meth:`MemoryWorld.veth` makes a connected pair.
* :class:`MemoryNetns` also implements the tunnel underlay
  (:class:`~pyvswitch.device.TunnelUnderlay`): :class:`MemoryTunnelSocket`
  sends whole outer IPv4/IPv6 packets through the host stack (routing by
  connected subnet, ARP / neighbour discovery) and receives the UDP, GRE and
  STT packets addressed to the namespace.  :func:`tunnel_demo_topology`
  joins two datapaths by a tunnel.

Example::

    world = MemoryWorld()
    sw, h1 = world.netns("switch"), world.netns("h1")
    world.veth(h1, "eth0", sw, "p1")
    h1.add_address("eth0", "10.0.0.1/24")
"""

from __future__ import annotations

import errno
import ipaddress
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..device import (
    AF_INET,
    AF_INET6,
    ARPHRD_ETHER,
    IPPROTO_GRE,
    DeviceStats,
    NetDevice,
    RxHandler,
    TunnelRoute,
    TunnelRxHandler,
)
from ..errors import DeviceError
from ..gso import skb_resolve
from ..skbuff import SkBuff
from ..wire import WireError
from ..wire.arp import OP_REPLY, OP_REQUEST, ArpPacket
from ..wire.ethernet import EthernetHeader
from ..wire.icmp import TYPE_ECHO_REPLY, TYPE_ECHO_REQUEST, IcmpHeader, echo_reply_for
from ..wire.icmpv6 import (
    PROTO_ICMPV6,
    TYPE_NEIGHBOR_ADVERT,
    TYPE_NEIGHBOR_SOLICIT,
    NdMessage,
)
from ..wire.ipv4 import IPv4Header
from ..wire.ipv6 import IPv6Header
from ..wire.udp import UdpHeader

if TYPE_CHECKING:
    from ..datapath import Datapath, Openvswitch
    from ..vport import Vport

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST = 0xFFFFFFFFFFFF

_mac_counter = itertools.count(1)


def _new_mac() -> bytes:
    # Locally administered unicast: 02:00:00:xx:xx:xx
    return bytes((0x02, 0, 0)) + next(_mac_counter).to_bytes(3, "big")


Frame = bytes | SkBuff


class MemoryDevice:
    """A network device in a memory namespace (a veth end or an internal device)."""

    def __init__(self, netns: MemoryNetns, name: str, *, kind: str = "veth") -> None:
        self.netns = netns
        self._name = name
        self._ifindex = netns._next_ifindex()
        self._mac = _new_mac()
        self._mtu = 1500
        self._up = False
        self.kind = kind
        self.promiscuity = 0
        self.peer: MemoryDevice | None = None
        self.rx_handler: RxHandler | None = None
        #: for internal devices: where host transmissions go (internal_dev_xmit)
        self.on_xmit: RxHandler | None = None
        self.ovs_internal = kind == "internal"
        self.stats = DeviceStats()
        self.deleted = False

    # -- NetDevice ---------------------------------------------------------

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
        return self._up and not self.deleted

    @property
    def type(self) -> int:
        return ARPHRD_ETHER

    def open(self) -> None:
        self._up = True

    def stop(self) -> None:
        self._up = False

    def set_mac_address(self, mac: bytes) -> None:
        if len(mac) != 6 or mac[0] & 1:
            raise DeviceError(f"{self.name}: bad unicast MAC address", errno=errno.EADDRNOTAVAIL)
        self._mac = bytes(mac)

    def change_mtu(self, mtu: int) -> None:
        if not 68 <= mtu <= 65535:
            raise DeviceError(f"{self.name}: MTU {mtu} out of range 68..65535", errno=errno.EINVAL)
        self._mtu = mtu

    def set_promiscuity(self, inc: int) -> None:
        self.promiscuity = max(0, self.promiscuity + inc)

    def get_stats64(self) -> DeviceStats:
        s = self.stats
        return DeviceStats(**{k: getattr(s, k) for k in s.__dataclass_fields__})

    def rx_handler_register(self, handler: RxHandler) -> None:
        if self.rx_handler is not None:
            raise DeviceError(f"{self.name}: already attached to a datapath", errno=errno.EBUSY)
        self.rx_handler = handler

    def rx_handler_unregister(self) -> None:
        self.rx_handler = None

    def start_xmit(self, frames: Sequence[Frame]) -> int:
        """Transmit from the datapath side.  A veth delivers to its peer; an
        internal device delivers up to the namespace's host stack."""
        if not self.is_up:
            self.stats.tx_dropped = (self.stats.tx_dropped or 0) + len(frames)
            return 0
        self.stats.tx_packets += len(frames)
        self.stats.tx_bytes += sum(map(len, frames))
        if self.kind == "internal":
            self.netns.world._schedule(self, list(frames), up=True)
        elif self.peer is not None:
            self.netns.world._schedule(self.peer, list(frames), up=False)
        return len(frames)

    # -- host side ---------------------------------------------------------

    def host_xmit(self, frames: Sequence[Frame]) -> None:
        """The host stack transmits on this device."""
        if not self.is_up:
            self.stats.tx_dropped = (self.stats.tx_dropped or 0) + len(frames)
            return
        if self.kind == "internal":
            # internal_dev_xmit: the host's transmit is the vport's receive
            self.stats.rx_packets += len(frames)
            self.stats.rx_bytes += sum(map(len, frames))
            if self.on_xmit is not None:
                self.netns.world._schedule_call(self.on_xmit, list(frames))
            return
        self.stats.tx_packets += len(frames)
        self.stats.tx_bytes += sum(map(len, frames))
        if self.peer is not None:
            self.netns.world._schedule(self.peer, list(frames), up=False)

    def _deliver_up(self, frames: Sequence[Frame]) -> None:
        self._deliver(frames, True)

    def _deliver_wire(self, frames: Sequence[Frame]) -> None:
        self._deliver(frames, False)

    def _deliver(self, frames: Sequence[Frame], up: bool) -> None:
        """A batch arrives at this device (from the wire, or from the datapath
        for internal devices when ``up``)."""
        if self.deleted:
            return
        if not self._up:
            self.stats.rx_dropped = (self.stats.rx_dropped or 0) + len(frames)
            return
        if not up:
            self.stats.rx_packets += len(frames)
            self.stats.rx_bytes += sum(map(len, frames))
            if self.rx_handler is not None:
                self.rx_handler(frames)
                return
        for f in frames:
            for data in skb_resolve(f):
                self.netns.stack.receive(self, data)

    def __repr__(self) -> str:
        return f"<MemoryDevice {self.netns.name}/{self.name} {self.kind}>"


@dataclass
class PingResult:
    dst: str
    ident: int = -1
    sent: int = 0
    received: int = 0
    rtts: list[float] = field(default_factory=list)


class HostStack:
    """A minimal IPv4 host: ARP, ICMP echo and UDP on the namespace's devices."""

    def __init__(self, netns: MemoryNetns) -> None:
        self.netns = netns
        #: device name -> (address, network)
        self.addresses: dict[str, ipaddress.IPv4Interface] = {}
        self.arp_table: dict[int, int] = {}
        self._pending: dict[int, list[tuple[MemoryDevice, bytes]]] = {}
        self.udp_received: deque[tuple[str, int, int, bytes]] = deque(maxlen=100000)
        self.udp_handlers: dict[int, Callable[[str, int, bytes], None]] = {}
        self.received: deque[tuple[str, bytes]] = deque(maxlen=10000)
        self.n_rx_errors = 0
        self._echo_sent: dict[tuple[int, int], float] = {}
        self.pings: dict[int, PingResult] = {}
        self._ident = itertools.count(0x1000)
        self._ip_id = itertools.count(1)
        #: IPv6 addresses per device (used by the tunnel underlay)
        self.addresses6: dict[str, list[ipaddress.IPv6Interface]] = {}
        self.neigh6: dict[int, int] = {}
        self._pending6: dict[int, list[tuple[MemoryDevice, bytes]]] = {}
        #: bound tunnel underlay sockets by (family, IP protocol, port)
        self.tunnel_sockets: dict[tuple[int, int, int], MemoryTunnelSocket] = {}

    # -- configuration ------------------------------------------------------

    def add_address(self, dev: str, cidr: str) -> None:
        if self.netns.dev_get_by_name(dev) is None:
            raise DeviceError(f"no device {dev} in {self.netns.name}")
        if ":" in cidr:
            iface6 = ipaddress.IPv6Interface(cidr)
            if iface6 not in self.addresses6.setdefault(dev, []):
                self.addresses6[dev].append(iface6)
            return
        self.addresses[dev] = ipaddress.IPv4Interface(cidr)

    def _route(self, dst: int) -> tuple[MemoryDevice, int] | None:
        for name, iface in self.addresses.items():
            if ipaddress.IPv4Address(dst) in iface.network:
                dev = self.netns.devices.get(name)
                if dev is not None:
                    return dev, int(iface.ip)
        return None

    def _my_ip(self, dev: MemoryDevice) -> int | None:
        iface = self.addresses.get(dev.name)
        return int(iface.ip) if iface is not None else None

    # -- receive ------------------------------------------------------------

    def receive(self, dev: MemoryDevice, frame: bytes) -> None:
        self.received.append((dev.name, frame))
        try:
            eth = EthernetHeader.parse(frame)
            mac = int.from_bytes(dev.mac, "big")
            if eth.dst != mac and eth.dst != BROADCAST and not eth.dst >> 40 & 1:
                return  # not for us
            if eth.ethertype == ETH_P_ARP:
                self._rx_arp(dev, ArpPacket.parse(frame, 14))
            elif eth.ethertype == ETH_P_IP:
                self._rx_ip(dev, frame[14:])
            elif eth.ethertype == ETH_P_IPV6:
                self._rx_ip6(dev, frame[14:])
        except (WireError, ValueError):
            self.n_rx_errors += 1

    def _rx_arp(self, dev: MemoryDevice, arp: ArpPacket) -> None:
        my_ip = self._my_ip(dev)
        if my_ip is None:
            return
        if arp.spa:
            self.arp_table[arp.spa] = arp.sha
            self._flush_pending(arp.spa)
        if arp.op == OP_REQUEST and arp.tpa == my_ip:
            mac = int.from_bytes(dev.mac, "big")
            reply = ArpPacket(OP_REPLY, mac, my_ip, arp.sha, arp.spa)
            dev.host_xmit([EthernetHeader(arp.sha, mac, ETH_P_ARP).emit(reply.emit())])

    def _rx_ip(self, dev: MemoryDevice, packet: bytes) -> None:
        ip = IPv4Header.parse(packet)
        my_ip = self._my_ip(dev)
        if ip.dst != my_ip:
            return
        if self.tunnel_sockets and not ip.frag_offset:
            sock = self._tunnel_socket(AF_INET, ip.proto, packet, ip.header_len)
            if sock is not None:
                sock.deliver(packet[: ip.total_len])
                return
        payload = packet[ip.header_len : ip.total_len]
        if ip.proto == 1:
            icmp = IcmpHeader.parse(payload)
            if icmp.type == TYPE_ECHO_REQUEST:
                self.send_ip(ip.src, 1, echo_reply_for(payload))
            elif icmp.type == TYPE_ECHO_REPLY:
                sent = self._echo_sent.pop((icmp.ident, icmp.seq), None)
                res = self.pings.get(icmp.ident)
                if sent is not None and res is not None:
                    res.received += 1
                    res.rtts.append(time.monotonic() - sent)
        elif ip.proto == 17:
            udp = UdpHeader.parse(payload)
            data = payload[8 : udp.length]
            src = str(ipaddress.IPv4Address(ip.src))
            handler = self.udp_handlers.get(udp.dst_port)
            if handler is not None:
                handler(src, udp.src_port, data)
            else:
                self.udp_received.append((src, udp.src_port, udp.dst_port, data))

    # -- transmit -----------------------------------------------------------

    def send_ip(self, dst: int, proto: int, payload: bytes, *, ttl: int = 64) -> bool:
        route = self._route(dst)
        if route is None:
            return False
        dev, src = route
        ip = IPv4Header(src, dst, proto, ttl=ttl, ident=next(self._ip_id) & 0xFFFF, flags=2)
        packet = ip.emit(payload)
        mac = self.arp_table.get(dst)
        if mac is None:
            waiting = self._pending.setdefault(dst, [])
            waiting.append((dev, packet))
            if len(waiting) == 1:  # one ARP request per unresolved address
                self._send_arp_request(dev, src, dst)
            return True
        dev.host_xmit([EthernetHeader(mac, int.from_bytes(dev.mac, "big"), ETH_P_IP).emit(packet)])
        return True

    def _send_arp_request(self, dev: MemoryDevice, src: int, dst: int) -> None:
        mac = int.from_bytes(dev.mac, "big")
        req = ArpPacket(OP_REQUEST, mac, src, 0, dst)
        dev.host_xmit([EthernetHeader(BROADCAST, mac, ETH_P_ARP).emit(req.emit())])

    def _flush_pending(self, ip: int) -> None:
        waiting = self._pending.pop(ip, [])
        mac = self.arp_table[ip]
        for dev, packet in waiting:
            eth = EthernetHeader(mac, int.from_bytes(dev.mac, "big"), ETH_P_IP)
            dev.host_xmit([eth.emit(packet)])

    def ping(
        self, dst: str, count: int = 1, size: int = 56, *, result: PingResult | None = None
    ) -> PingResult:
        """Send ``count`` echo requests to ``dst``; run the world to get replies.
        Pass the ``result`` of an earlier call to continue its sequence."""
        res = result if result is not None else PingResult(dst)
        if res.ident < 0:
            res.ident = next(self._ident) & 0xFFFF
        ident = res.ident
        self.pings[ident] = res
        d = int(ipaddress.IPv4Address(dst))
        first = res.sent + 1
        for seq in range(first, first + count):
            msg = IcmpHeader.echo_request(ident, seq).emit(bytes(size))
            self._echo_sent[(ident, seq)] = time.monotonic()
            if self.send_ip(d, 1, msg):
                res.sent += 1
        return res

    def send_udp(self, dst: str, sport: int, dport: int, payload: bytes) -> bool:
        d = int(ipaddress.IPv4Address(dst))
        route = self._route(d)
        if route is None:
            return False
        ip = IPv4Header(route[1], d, 17)
        return self.send_ip(d, 17, UdpHeader(sport, dport).emit(payload, ip=ip))

    # -- IPv6 (neighbour discovery) and the tunnel underlay ---------------------

    def _route6(self, dst: int) -> tuple[MemoryDevice, int] | None:
        for name, ifaces in self.addresses6.items():
            for iface in ifaces:
                if ipaddress.IPv6Address(dst) in iface.network:
                    dev = self.netns.devices.get(name)
                    if dev is not None:
                        return dev, int(iface.ip)
        return None

    def tunnel_route(self, family: int, dst: int) -> TunnelRoute | None:
        """Source address and MTU of the connected route towards ``dst``."""
        route = self._route6(dst) if family == AF_INET6 else self._route(dst)
        if route is None:
            return None
        return TunnelRoute(route[1], route[0].mtu)

    def _tunnel_socket(
        self, family: int, proto: int, packet: bytes, l4: int
    ) -> MemoryTunnelSocket | None:
        if proto == IPPROTO_GRE:
            return self.tunnel_sockets.get((family, proto, 0))
        if len(packet) < l4 + 4:
            return None
        port = int.from_bytes(packet[l4 + 2 : l4 + 4], "big")
        return self.tunnel_sockets.get((family, proto, port))

    def _rx_ip6(self, dev: MemoryDevice, packet: bytes) -> None:
        ip = IPv6Header.parse(packet)
        end = 40 + (ip.payload_len or 0)
        if end > len(packet):
            self.n_rx_errors += 1
            return
        packet = packet[:end]
        mine = [int(i.ip) for i in self.addresses6.get(dev.name, ())]
        if ip.next_header == PROTO_ICMPV6 and end >= 41:
            if packet[40] in (TYPE_NEIGHBOR_SOLICIT, TYPE_NEIGHBOR_ADVERT):
                self._rx_nd(dev, ip, NdMessage.parse(packet, 40), mine)
            return
        if ip.dst not in mine:
            return
        sock = self._tunnel_socket(AF_INET6, ip.next_header, packet, 40)
        if sock is not None:
            sock.deliver(packet)

    def _rx_nd(self, dev: MemoryDevice, ip: IPv6Header, nd: NdMessage, mine: list[int]) -> None:
        mac = int.from_bytes(dev.mac, "big")
        if nd.type == TYPE_NEIGHBOR_SOLICIT:
            if nd.sll is not None and ip.src:
                self.neigh6[ip.src] = nd.sll
                self._flush_pending6(ip.src)
            if nd.target in mine and ip.src and nd.sll is not None:
                reply_ip = IPv6Header(nd.target, ip.src, PROTO_ICMPV6, hop_limit=255)
                msg = NdMessage.advert(nd.target, mac).emit(ip=reply_ip)
                frame = EthernetHeader(nd.sll, mac, ETH_P_IPV6).emit(reply_ip.emit(msg))
                dev.host_xmit([frame])
        elif nd.tll is not None:
            self.neigh6[nd.target] = nd.tll
            self._flush_pending6(nd.target)

    def _flush_pending6(self, ip: int) -> None:
        waiting = self._pending6.pop(ip, [])
        mac = self.neigh6[ip]
        for dev, packet in waiting:
            eth = EthernetHeader(mac, int.from_bytes(dev.mac, "big"), ETH_P_IPV6)
            dev.host_xmit([eth.emit(packet)])

    def _send_ns(self, dev: MemoryDevice, src: int, target: int) -> None:
        mac = int.from_bytes(dev.mac, "big")
        dst = 0xFF0200000000000000000001FF000000 | target & 0xFFFFFF
        ip = IPv6Header(src, dst, PROTO_ICMPV6, hop_limit=255)
        msg = NdMessage.solicit(target, mac).emit(ip=ip)
        dst_mac = 0x3333_0000_0000 | dst & 0xFFFFFFFF
        dev.host_xmit([EthernetHeader(dst_mac, mac, ETH_P_IPV6).emit(ip.emit(msg))])

    def output_raw(self, family: int, packet: bytes) -> bool:
        """Send a complete IP packet as given (a raw socket with IP_HDRINCL):
        route by its destination, resolve the next hop, transmit.  False if
        there is no route or the packet is longer than the device MTU
        (EMSGSIZE: raw sockets do not fragment)."""
        if family == AF_INET6:
            if len(packet) < 40 or packet[0] >> 4 != 6:
                return False
            dst = int.from_bytes(packet[24:40], "big")
            route = self._route6(dst)
            table, pending, ethertype = self.neigh6, self._pending6, ETH_P_IPV6
        else:
            if len(packet) < 20 or packet[0] >> 4 != 4:
                return False
            dst = int.from_bytes(packet[16:20], "big")
            route = self._route(dst)
            table, pending, ethertype = self.arp_table, self._pending, ETH_P_IP
        if route is None:
            return False
        dev, src = route
        if len(packet) > dev.mtu:
            return False
        mac = table.get(dst)
        if mac is None:
            waiting = pending.setdefault(dst, [])
            waiting.append((dev, packet))
            if len(waiting) == 1:
                if family == AF_INET6:
                    self._send_ns(dev, src, dst)
                else:
                    self._send_arp_request(dev, src, dst)
            return True
        dev.host_xmit([EthernetHeader(mac, int.from_bytes(dev.mac, "big"), ethertype).emit(packet)])
        return True


class MemoryTunnelSocket:
    """A tunnel underlay socket in a memory namespace
    (:class:`~pyvswitch.device.TunnelSocket`)."""

    def __init__(
        self, stack: HostStack, family: int, proto: int, port: int, on_receive: TunnelRxHandler
    ) -> None:
        self.stack = stack
        self._family = family
        self._proto = proto
        self._port = port
        self.on_receive = on_receive
        self.rx_packets = 0
        self.tx_packets = 0
        self.tx_errors = 0
        self.closed = False

    @property
    def family(self) -> int:
        return self._family

    @property
    def proto(self) -> int:
        return self._proto

    @property
    def port(self) -> int:
        return self._port

    def send(self, packets: Sequence[bytes]) -> int:
        if self.closed:
            self.tx_errors += len(packets)
            return 0
        n = 0
        for p in packets:
            if self.stack.output_raw(self._family, p):
                n += 1
            else:
                self.tx_errors += 1
        self.tx_packets += n
        return n

    def route(self, dst: int) -> TunnelRoute | None:
        return self.stack.tunnel_route(self._family, dst)

    def deliver(self, packet: bytes) -> None:
        self.rx_packets += 1
        self.on_receive([packet])

    def close(self) -> None:
        key = (self._family, self._proto, self._port)
        if self.stack.tunnel_sockets.get(key) is self:
            del self.stack.tunnel_sockets[key]
        self.closed = True

    def __repr__(self) -> str:
        fam = "inet6" if self._family == AF_INET6 else "inet"
        where = f"{self.stack.netns.name} {fam} proto {self._proto} port {self._port}"
        return f"<MemoryTunnelSocket {where}>"


class MemoryNetns:
    """An in-memory network namespace."""

    def __init__(self, world: MemoryWorld, name: str) -> None:
        self.world = world
        self._name = name
        self.devices: dict[str, MemoryDevice] = {}
        self._ifindexes = itertools.count(2)  # 1 is lo
        self.stack = HostStack(self)

    @property
    def name(self) -> str:
        return self._name

    def _next_ifindex(self) -> int:
        return next(self._ifindexes)

    def __repr__(self) -> str:
        return f"<MemoryNetns {self.name}>"

    # -- NetNamespace ---------------------------------------------------------

    def dev_get_by_name(self, name: str) -> NetDevice | None:
        return self.devices.get(name)

    def create_internal_device(self, name: str, on_xmit: RxHandler) -> NetDevice:
        if name in self.devices:
            raise DeviceError(f"{name}: device exists in {self.name}", errno=errno.EEXIST)
        dev = MemoryDevice(self, name, kind="internal")
        dev.on_xmit = on_xmit
        self.devices[name] = dev
        return dev

    def destroy_internal_device(self, dev: NetDevice) -> None:
        d = self.devices.pop(dev.name, None)
        if d is not None:
            d.deleted = True
            self.stack.addresses.pop(d.name, None)
            self.stack.addresses6.pop(d.name, None)

    # -- TunnelUnderlay -----------------------------------------------------------

    def tunnel_socket_open(
        self, proto: int, port: int, family: int, on_receive: TunnelRxHandler
    ) -> MemoryTunnelSocket:
        if family not in (AF_INET, AF_INET6):
            raise DeviceError(f"address family {family} not supported", errno=errno.EAFNOSUPPORT)
        if proto == IPPROTO_GRE:
            port = 0
        key = (family, proto, port)
        if key in self.stack.tunnel_sockets or (proto == 17 and port in self.stack.udp_handlers):
            raise DeviceError(
                f"{self.name}: protocol {proto} port {port} is in use", errno=errno.EADDRINUSE
            )
        sock = MemoryTunnelSocket(self.stack, family, proto, port, on_receive)
        self.stack.tunnel_sockets[key] = sock
        return sock

    # -- topology helpers ---------------------------------------------------------

    def add_device(self, name: str) -> MemoryDevice:
        if name in self.devices:
            raise DeviceError(f"{name}: device exists in {self.name}", errno=errno.EEXIST)
        dev = MemoryDevice(self, name)
        self.devices[name] = dev
        return dev

    def del_device(self, name: str) -> None:
        dev = self.devices.pop(name, None)
        if dev is None:
            raise DeviceError(f"no device {name} in {self.name}", errno=errno.ENODEV)
        dev.deleted = True
        self.stack.addresses.pop(name, None)
        self.stack.addresses6.pop(name, None)
        if dev.peer is not None and dev.peer.peer is dev:
            peer = dev.peer
            peer.peer = None
            peer.deleted = True
            peer.netns.devices.pop(peer.name, None)

    def set_up(self, name: str, up: bool = True) -> None:
        dev = self.devices[name]
        if up:
            dev.open()
        else:
            dev.stop()

    def add_address(self, dev: str, cidr: str) -> None:
        """Give ``dev`` an IPv4 (or IPv6) address (``ip addr add``) and bring it up."""
        self.stack.add_address(dev, cidr)
        self.devices[dev].open()

    def ping(
        self, dst: str, count: int = 1, size: int = 56, *, result: PingResult | None = None
    ) -> PingResult:
        return self.stack.ping(dst, count, size, result=result)

    def send_udp(self, dst: str, sport: int, dport: int, payload: bytes) -> bool:
        return self.stack.send_udp(dst, sport, dport, payload)

    def transmit(self, dev: str, frames: Sequence[bytes]) -> None:
        """Send raw frames out of ``dev`` (a packet generator)."""
        self.devices[dev].host_xmit(frames)


class MemoryWorld:
    """Namespaces plus the scheduler that moves frames between devices."""

    def __init__(self) -> None:
        self.namespaces: dict[str, MemoryNetns] = {}
        self._queue: deque[tuple[Callable[[Sequence[Frame]], None], list[Frame]]] = deque()
        self.pollers: list[Callable[[], int]] = []
        self.delivered = 0

    def netns(self, name: str) -> MemoryNetns:
        ns = self.namespaces.get(name)
        if ns is None:
            ns = self.namespaces[name] = MemoryNetns(self, name)
        return ns

    def veth(
        self, ns_a: MemoryNetns, name_a: str, ns_b: MemoryNetns, name_b: str, *, up: bool = True
    ) -> tuple[MemoryDevice, MemoryDevice]:
        """A connected pair of devices (``ip link add A type veth peer name B``)."""
        a = ns_a.add_device(name_a)
        b = ns_b.add_device(name_b)
        a.peer, b.peer = b, a
        if up:
            a.open()
            b.open()
        return a, b

    def _schedule(self, dev: MemoryDevice, frames: list[Frame], *, up: bool) -> None:
        self._queue.append((dev._deliver_up if up else dev._deliver_wire, frames))

    def _schedule_call(self, fn: RxHandler, frames: list[Frame]) -> None:
        self._queue.append((fn, frames))

    def add_poller(self, fn: Callable[[], int]) -> None:
        """``fn`` is called when deliveries run dry; it returns how much work it
        did (e.g. ``Handler.poll``)."""
        self.pollers.append(fn)

    def run(self, max_batches: int = 1_000_000) -> int:
        """Deliver until idle; returns the number of batches delivered."""
        n = 0
        q = self._queue
        while True:
            while q and n < max_batches:
                fn, frames = q.popleft()
                fn(frames)
                n += 1
            worked = sum(p() for p in self.pollers)
            if not q and not worked:
                break
            if n >= max_batches:
                raise RuntimeError(f"topology did not go idle after {max_batches} batches")
        self.delivered += n
        return n


# ---------------------------------------------------------------------------
# A tunnel between two datapaths


@dataclass
class TunnelTopology:
    """What :func:`tunnel_demo_topology` builds::

    h1 10.0.0.1 [eth0]--[p1] dpA [t0] ==ul0 underlay ul0== [t0] dpB [p1]--[eth0] h2 10.0.0.2
    """

    world: MemoryWorld
    h1: MemoryNetns
    h2: MemoryNetns
    sw_a: MemoryNetns
    sw_b: MemoryNetns
    ovs: Openvswitch
    dp_a: Datapath
    dp_b: Datapath
    tun_a: Vport
    tun_b: Vport
    underlay_a: str
    underlay_b: str


def tunnel_demo_topology(
    kind: str = "vxlan",
    *,
    ipv6: bool = False,
    options: dict[str, str] | None = None,
    underlay_mtu: int = 1500,
    flows: bool = True,
) -> TunnelTopology:
    """Two hosts on two datapaths in two namespaces, joined by a ``kind``
    tunnel (gre, gre64, vxlan, geneve, lisp, stt) over a veth underlay
    (IPv4 192.168.100.1/.2, or fd00:100::1/::2 with ``ipv6``).  ``options``
    are extra tunnel port options (``key``, ``csum``, ...).  With ``flows``,
    each datapath gets two megaflows: host port -> tunnel and back; for LISP
    (an L3 tunnel) the hosts get static ARP entries and the decapsulating
    side rewrites the fabricated Ethernet addresses to the host's."""
    from ..datapath import Openvswitch
    from ..flow import field_mask, key_from_fields
    from ..uapi import Action, Ethernet, Output, Set

    world = MemoryWorld()
    h1, sw_a, sw_b, h2 = (world.netns(n) for n in ("h1", "swA", "swB", "h2"))
    world.veth(h1, "eth0", sw_a, "p1")
    world.veth(h2, "eth0", sw_b, "p1")
    world.veth(sw_a, "ul0", sw_b, "ul0")
    if ipv6:
        ul_a, ul_b, plen = "fd00:100::1", "fd00:100::2", 64
    else:
        ul_a, ul_b, plen = "192.168.100.1", "192.168.100.2", 24
    sw_a.add_address("ul0", f"{ul_a}/{plen}")
    sw_b.add_address("ul0", f"{ul_b}/{plen}")
    for sw in (sw_a, sw_b):
        sw.devices["ul0"].change_mtu(underlay_mtu)
    h1.add_address("eth0", "10.0.0.1/24")
    h2.add_address("eth0", "10.0.0.2/24")

    ovs = Openvswitch()
    dp_a = ovs.dp_new("dpA", sw_a)
    dp_b = ovs.dp_new("dpB", sw_b)
    dp_a.vport_add("p1")
    dp_b.vport_add("p1")
    tun_a = dp_a.vport_add("t0", kind, options={"remote_ip": ul_b, **(options or {})})
    tun_b = dp_b.vport_add("t0", kind, options={"remote_ip": ul_a, **(options or {})})
    topo = TunnelTopology(world, h1, h2, sw_a, sw_b, ovs, dp_a, dp_b, tun_a, tun_b, ul_a, ul_b)
    if flows:
        in_port = field_mask("in_port")
        for dp, tun, host in ((dp_a, tun_a, h1), (dp_b, tun_b, h2)):
            dp.flow_put(key_from_fields(in_port=1), in_port, [Output(tun.port_no)])
            decap: list[Action] = [Output(1)]
            if kind == "lisp":
                host_mac = int.from_bytes(host.devices["eth0"].mac, "big")
                decap = [Set(Ethernet(src=0x020000000001, dst=host_mac)), Output(1)]
            dp.flow_put(key_from_fields(in_port=tun.port_no), in_port, decap)
        if kind == "lisp":
            h1.stack.arp_table[int(ipaddress.IPv4Address("10.0.0.2"))] = 0x020000000002
            h2.stack.arp_table[int(ipaddress.IPv4Address("10.0.0.1"))] = 0x020000000001
    return topo
