"""Vports: the type registry, the global name table and the common vport code
(the kernel's ``net/openvswitch/vport.c``).

* Each vport type provides a :class:`VportOps` record, registered in a list
  keyed by its OVS type id (``ovs_vport_ops_register``).  A type that is not
  registered yet is loaded on demand from the Python entry-point group
  ``pyvswitch.vport_types`` -- our ``request_module("vport-type-%d")``: an
  entry point named ``vport-type-<id>`` (or the type's name) pointing at the
  ops class.  Another distribution can therefore add a vport type without
  touching pyvswitch.
* Every vport is also in a 1024-bucket hash table keyed by (network namespace,
  name): :meth:`VportTable.locate` is ``ovs_vport_locate(net, name)``.
* Counters are per worker and summed when read (the seed's per-CPU stats).
"""

from __future__ import annotations

import builtins
import errno
import importlib
import importlib.metadata
from collections.abc import Callable, Iterator, Mapping, MutableSequence, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from . import flow
from .errors import VportError, VportTypeError
from .jhash import jhash
from .percpu import PcpuCounters
from .uapi import VPORT_HASH_BUCKETS, VPORT_TYPE_ALIASES, VPORT_TYPE_NAMES

if TYPE_CHECKING:
    from .datapath import Datapath
    from .device import DeviceStats, NetNamespace
    from .skbuff import SkBuff

ENTRY_POINT_GROUP = "pyvswitch.vport_types"

# Built-in types, loaded on demand like kernel modules built into the tree.
# (Also declared as entry points in pyproject.toml; this table makes a source
# checkout work without installation.)
_BUILTIN_MODULES: dict[int, str] = {
    1: "pyvswitch.vport_netdev:NetdevVportOps",
    2: "pyvswitch.vport_internal_dev:InternalVportOps",
    3: "pyvswitch.vport_gre:GreVportOps",
    4: "pyvswitch.vport_vxlan:VxlanVportOps",
    5: "pyvswitch.vport_geneve:GeneveVportOps",
    104: "pyvswitch.vport_gre:Gre64VportOps",
    105: "pyvswitch.vport_lisp:LispVportOps",
    106: "pyvswitch.vport_stt:SttVportOps",
}

#: Fields of ``struct ovs_vport_stats``, in order.
VPORT_STATS_FIELDS = (
    "rx_packets",
    "tx_packets",
    "rx_bytes",
    "tx_bytes",
    "rx_errors",
    "tx_errors",
    "rx_dropped",
    "tx_dropped",
)
RX_PACKETS, TX_PACKETS, RX_BYTES, TX_BYTES, RX_ERRORS, TX_ERRORS, RX_DROPPED, TX_DROPPED = range(8)


@dataclass
class VportParms:
    """``struct vport_parms``: everything a vport is made from.  A vport's
    attributes come only from these parameters."""

    name: str
    type: int
    dp: Datapath
    port_no: int
    options: dict[str, str] = field(default_factory=dict)
    upcall_portids: list[int] = field(default_factory=lambda: [0])


@dataclass
class VportStats:
    """``struct ovs_vport_stats`` summed over workers."""

    rx_packets: int = 0
    tx_packets: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_errors: int = 0
    tx_errors: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0


class Vport:
    """One datapath port.  Type-specific behaviour lives in subclasses created
    by the type's :class:`VportOps`."""

    #: Whether frames sent to this vport must be Ethernet (ARPHRD_ETHER).
    l2: bool = True

    def __init__(self, ops: VportOps, parms: VportParms) -> None:
        self.ops = ops
        self.dp = parms.dp
        self.port_no = parms.port_no
        self.name = parms.name
        self.options: dict[str, str] = {}
        self.upcall_portids: list[int] = [0]
        self.stats = PcpuCounters(VPORT_STATS_FIELDS)
        #: key metadata bits for packets received on this port (in_port)
        self.md = flow.md_bits(parms.port_no)
        self.set_upcall_portids(parms.upcall_portids)

    # -- identity ---------------------------------------------------------

    @property
    def type(self) -> int:
        return self.ops.type

    @property
    def type_name(self) -> str:
        return self.ops.name

    @property
    def net(self) -> NetNamespace:
        return self.dp.net

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} port {self.port_no} ({self.type_name})>"

    # -- upcall ports (ovs_vport_set_upcall_portids / find_upcall_portid) --

    def set_upcall_portids(self, ids: Sequence[int]) -> None:
        ids = [int(i) for i in ids]
        if not ids:
            raise VportError(f"{self.name}: upcall port id list must not be empty")
        for i in ids:
            if not 0 <= i <= 0xFFFFFFFF:
                raise VportError(f"{self.name}: upcall port id {i} is not a u32")
        self.upcall_portids = ids

    def get_upcall_portids(self) -> list[int]:
        return list(self.upcall_portids)

    def find_upcall_portid(self, skb_hash: int) -> int:
        """``ovs_vport_find_upcall_portid``: one id, or ``hash mod n``."""
        ids = self.upcall_portids
        if len(ids) == 1:
            return ids[0]
        return ids[skb_hash % len(ids)]

    # -- stats ------------------------------------------------------------

    def get_stats(self) -> VportStats:
        """``ovs_vport_get_stats``: per-worker counters summed."""
        return VportStats(**self.stats.read())

    def get_device_stats(self) -> DeviceStats | None:
        """The underlying device's counters, if the vport has a device."""
        return None

    # -- options ------------------------------------------------------------

    def set_options(self, options: Mapping[str, str]) -> None:
        """Validate and apply type options (``ops->set_options``)."""
        if options:
            raise VportError(
                f"{self.name}: {self.type_name} port takes no options "
                f"(got {', '.join(sorted(options))})"
            )
        self.options = {}

    def get_options(self) -> dict[str, str]:
        """Options as ``ovs-dpctl show`` prints them (``get_config``)."""
        return dict(self.options)

    # -- data path --------------------------------------------------------

    def receive(self, frames: Sequence[bytes | SkBuff]) -> None:
        """``ovs_vport_receive`` for a batch: count and hand to the datapath."""
        self.dp.process_batch(self, frames)

    def send(self, frames: Sequence[bytes | SkBuff]) -> None:
        """``ops->send``: type-specific transmit.  Subclasses count tx stats."""
        raise NotImplementedError

    def destroy(self) -> None:
        """Release what the vport holds (``ops->destroy``)."""


class VportOps:
    """``struct vport_ops``: one per vport type."""

    type: ClassVar[int]
    name: ClassVar[str]
    vport_class: ClassVar[builtins.type[Vport]] = Vport

    def create(self, parms: VportParms) -> Vport:
        """Create a vport of this type (``ops->create``)."""
        vport = self.vport_class(self, parms)
        vport.set_options(parms.options)
        return vport

    def destroy(self, vport: Vport) -> None:
        vport.destroy()

    def __repr__(self) -> str:
        return f"<VportOps {self.name} ({self.type})>"


# ---------------------------------------------------------------------------
# Registry (vport_ops_list)

_vport_ops_list: dict[int, VportOps] = {}


def ovs_vport_ops_register(ops: VportOps) -> None:
    """Register a vport type; a second registration of the same type fails."""
    t = getattr(ops, "type", None)
    name = getattr(ops, "name", None)
    if not isinstance(t, int) or t <= 0 or not isinstance(name, str) or not name:
        raise VportTypeError(f"invalid vport ops {ops!r}: needs a positive int type and a name")
    existing = _vport_ops_list.get(t)
    if existing is not None:
        raise VportTypeError(
            f"vport type {t} ({existing.name}) is already registered", errno=errno.EEXIST
        )
    for other in _vport_ops_list.values():
        if other.name == name:
            raise VportTypeError(
                f"vport type name {name!r} is already registered (type {other.type})",
                errno=errno.EEXIST,
            )
    _vport_ops_list[t] = ops


def ovs_vport_ops_unregister(ops: VportOps) -> None:
    if _vport_ops_list.get(ops.type) is ops:
        del _vport_ops_list[ops.type]


def registered_types() -> dict[int, str]:
    """Types registered right now, id -> name."""
    return {t: o.name for t, o in sorted(_vport_ops_list.items())}


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def known_types() -> dict[int, str]:
    """Every type that is registered or can be loaded, id -> name."""
    known = dict(VPORT_TYPE_NAMES)
    known.update(registered_types())
    for ep in _entry_points():
        t = _alias_type(ep.name)
        if t is not None and t not in known:
            known[t] = f"vport-type-{t}"
    return dict(sorted(known.items()))


def _alias_type(alias: str) -> int | None:
    if alias.startswith("vport-type-"):
        try:
            return int(alias[len("vport-type-") :])
        except ValueError:
            return None
    return None


def _load(target: str) -> None:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = getattr(module, attr)
    _register_loaded(obj)


def _register_loaded(obj: Any) -> None:
    ops = obj() if isinstance(obj, type) else obj
    if not isinstance(ops, VportOps):
        raise VportTypeError(f"entry point object {obj!r} is not a VportOps")
    if _vport_ops_list.get(ops.type) is None:
        ovs_vport_ops_register(ops)


def request_module(type_id: int | None = None, name: str | None = None) -> bool:
    """Load the implementation of a vport type (``request_module``).  Returns
    True if something new got registered."""
    before = set(_vport_ops_list)
    wanted_alias = f"vport-type-{type_id}" if type_id is not None else None
    for ep in _entry_points():
        if ep.name == wanted_alias or (name is not None and ep.name == name):
            _register_loaded(ep.load())
            break
    else:
        if type_id is not None and type_id in _BUILTIN_MODULES:
            _load(_BUILTIN_MODULES[type_id])
        elif name is not None:
            # A name we do not know directly: load entry points until one
            # registers it (as modprobe resolving an alias).
            for ep in _entry_points():
                t = _alias_type(ep.name)
                if t is not None and t not in _vport_ops_list:
                    _register_loaded(ep.load())
                    if any(o.name == name for o in _vport_ops_list.values()):
                        break
    return set(_vport_ops_list) != before


def resolve_type(type_: int | str) -> int:
    """Type id from an id or a name (``netdev``/``system``, ``vxlan``, ...)."""
    if isinstance(type_, int):
        return type_
    s = type_.strip()
    if s.isdigit():
        return int(s)
    if s in VPORT_TYPE_ALIASES:
        return VPORT_TYPE_ALIASES[s]
    for t, n in VPORT_TYPE_NAMES.items():
        if n == s:
            return t
    for t, o in _vport_ops_list.items():
        if o.name == s:
            return t
    request_module(name=s)
    for t, o in _vport_ops_list.items():
        if o.name == s:
            return t
    raise _unknown_type(s)


def _unknown_type(what: int | str) -> VportTypeError:
    listing = ", ".join(f"{n} ({t})" for t, n in known_types().items())
    return VportTypeError(f"unknown vport type {what!r}; known types: {listing}")


def ovs_vport_lookup(type_: int | str) -> VportOps:
    """The ops for a type, loading it on demand; clear error if unknown."""
    t = resolve_type(type_)
    ops = _vport_ops_list.get(t)
    if ops is None and request_module(type_id=t):
        ops = _vport_ops_list.get(t)
    if ops is None:
        raise _unknown_type(type_)
    return ops


# ---------------------------------------------------------------------------
# The global name table (dev_table)


class VportTable:
    """``dev_table``: every vport of every datapath, 1024 buckets hashed by
    (network namespace, name)."""

    def __init__(self) -> None:
        self.buckets: list[list[Vport]] = [[] for _ in range(VPORT_HASH_BUCKETS)]

    @staticmethod
    def _net_seed(net: object) -> int:
        return id(net) & 0xFFFFFFFF

    def hash_bucket(self, net: object, name: str) -> list[Vport]:
        return self.buckets[jhash(name.encode(), self._net_seed(net)) & (VPORT_HASH_BUCKETS - 1)]

    def locate(self, net: object, name: str) -> Vport | None:
        """``ovs_vport_locate``."""
        for vport in self.hash_bucket(net, name):
            if vport.name == name and vport.net is net:
                return vport
        return None

    def insert(self, vport: Vport) -> None:
        self.hash_bucket(vport.net, vport.name).append(vport)

    def remove(self, vport: Vport) -> None:
        bucket = self.hash_bucket(vport.net, vport.name)
        if vport in bucket:
            bucket.remove(vport)

    def __iter__(self) -> Iterator[Vport]:
        for bucket in self.buckets:
            yield from bucket

    def __len__(self) -> int:
        return sum(len(b) for b in self.buckets)


def ovs_vport_add(table: VportTable, parms: VportParms) -> Vport:
    """Create a vport of ``parms.type`` and put it in the name table."""
    ops = ovs_vport_lookup(parms.type)
    vport = ops.create(parms)  # device-level errors (ENODEV, EBUSY, EEXIST, EINVAL) first
    if table.locate(parms.dp.net, parms.name) is not None:
        ops.destroy(vport)
        raise VportError(
            f"a port named {parms.name} already exists in namespace {parms.dp.net.name}",
            errno=errno.EEXIST,
        )
    table.insert(vport)
    return vport


def ovs_vport_del(table: VportTable, vport: Vport) -> None:
    table.remove(vport)
    vport.ops.destroy(vport)


def count_rx(row: MutableSequence[int], frames: Sequence[bytes | SkBuff]) -> None:
    row[RX_PACKETS] += len(frames)
    row[RX_BYTES] += sum(map(len, frames))


def count_tx(row: MutableSequence[int], frames: Sequence[bytes | SkBuff]) -> None:
    row[TX_PACKETS] += len(frames)
    row[TX_BYTES] += sum(map(len, frames))


#: A hook a backend can use to observe vport creation (unused by the core).
VportHook = Callable[[Vport], None]
