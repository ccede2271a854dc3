"""Datapaths (the kernel's ``net/openvswitch/datapath.c``).

:class:`Openvswitch` is the loaded module: the global vport name table and the
datapaths.  :class:`Datapath` owns a port table, a flow table, upcall channels,
meters and per-worker counters, and runs the receive path the seed traces::

    vport receive (ovs_vport_receive)
      -> key extraction (key_extract)
      -> megaflow lookup (ovs_flow_tbl_lookup_stats)
           hit  -> flow stats; ovs_execute_actions
           miss -> ovs_dp_upcall to the port id chosen by packet hash
                   (n_missed; n_lost when it cannot be queued)

:meth:`Datapath.process_batch` is the hot path: a batch of frames from one
vport is keyed and looked up (an exact-match cache first), grouped per flow,
and flows whose actions are plain outputs are sent as batches without
building per-packet objects.  Everything else goes through
:meth:`Datapath.ovs_dp_process_packet` one :class:`SkBuff` at a time.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Iterator, Mapping, MutableSequence, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import flow
from .actions import DROP_INVALID_PORT, count_drop, ovs_execute_actions, validate_actions
from .errors import DatapathError, FlowError, VportError
from .flow import RAW_MASKS, RAW_WINDOW, key_extract, key_hash, raw_min_len
from .flow_table import Flow, FlowTable
from .meter import MeterTable
from .percpu import PcpuCounters, smp_processor_id
from .skbuff import SkBuff
from .uapi import (
    DP_MAX_PORTS,
    OVS_DP_F_DISPATCH_UPCALL_PER_CPU,
    OVS_DP_F_UNALIGNED,
    OVS_DP_F_VPORT_PIDS,
    OVS_PACKET_CMD_MISS,
    OVS_VPORT_TYPE_INTERNAL,
    OVSP_LOCAL,
    Action,
    FlowStats,
)
from .upcall import DEFAULT_CHANNEL_DEPTH, UpcallChannel, UpcallInfo, ovs_dp_upcall
from .vport import (
    RX_BYTES,
    RX_ERRORS,
    RX_PACKETS,
    TX_BYTES,
    TX_DROPPED,
    TX_ERRORS,
    TX_PACKETS,
    Vport,
    VportParms,
    VportTable,
    ovs_vport_add,
    ovs_vport_del,
    ovs_vport_lookup,
)

if TYPE_CHECKING:
    from .device import NetDevice, NetNamespace

log = logging.getLogger(__name__)

DP_STATS_FIELDS = ("n_hit", "n_missed", "n_lost", "n_mask_hit", "n_cache_hit")
N_HIT, N_MISSED, N_LOST, N_MASK_HIT, N_CACHE_HIT = range(5)

_TCP_FLAGS_MASK = 0x0FFF  # tcp_flags is the least significant field of a key
_ETH_P_8021Q = b"\x81\x00"
_ETH_P_8021AD = b"\x88\xa8"


@dataclass
class DpStats:
    """What ``ovs-dpctl show`` reports for a datapath."""

    n_hit: int
    n_missed: int
    n_lost: int
    n_flows: int
    n_mask_hit: int
    n_masks: int
    n_cache_hit: int
    masks_cache_size: int
    emc_size: int


class Openvswitch:
    """The loaded ``openvswitch`` module: the vport name table (1024 buckets
    keyed by (namespace, name)) and the datapaths."""

    def __init__(self) -> None:
        self.dev_table = VportTable()
        self.datapaths: dict[tuple[int, str], Datapath] = {}

    def ovs_vport_locate(self, net: NetNamespace, name: str) -> Vport | None:
        return self.dev_table.locate(net, name)

    def dp_new(
        self,
        name: str,
        net: NetNamespace,
        *,
        user_features: int = OVS_DP_F_UNALIGNED | OVS_DP_F_VPORT_PIDS,
        upcall_pid: int = 0,
    ) -> Datapath:
        """``ovs_dp_cmd_new``: create a datapath and its local internal port 0
        named after it."""
        if not name or len(name) > 15:
            raise DatapathError(f"bad datapath name {name!r} (1..15 characters)")
        if (id(net), name) in self.datapaths:
            raise DatapathError(f"datapath {name} already exists", errno=errno.EEXIST)
        dp = Datapath(self, name, net, user_features=user_features)
        try:
            dp.vport_add(
                name, OVS_VPORT_TYPE_INTERNAL, port_no=OVSP_LOCAL, upcall_pids=[upcall_pid]
            )
        except VportError as e:
            raise DatapathError(f"{name}: cannot create local port: {e}", errno=e.errno) from e
        self.datapaths[(id(net), name)] = dp
        return dp

    def dp_del(self, dp: Datapath) -> None:
        """``ovs_dp_cmd_del``: delete all ports (local last) and the datapath."""
        for port_no in sorted(dp.ports, reverse=True):
            if port_no != OVSP_LOCAL:
                dp.vport_del(port_no)
        local = dp.ports.pop(OVSP_LOCAL, None)
        if local is not None:
            ovs_vport_del(self.dev_table, local)
        dp.table.flush()
        self.datapaths.pop((id(dp.net), dp.name), None)
        dp.deleted = True

    def get_dp(self, name: str, net: NetNamespace | None = None) -> Datapath:
        for (nid, n), dp in self.datapaths.items():
            if n == name and (net is None or nid == id(net)):
                return dp
        raise DatapathError(f"no datapath named {name}", errno=errno.ENODEV)

    def __iter__(self) -> Iterator[Datapath]:
        return iter(sorted(self.datapaths.values(), key=lambda d: d.name))


class Datapath:
    """``struct datapath``."""

    def __init__(
        self, ovs: Openvswitch, name: str, net: NetNamespace, *, user_features: int = 0
    ) -> None:
        self.ovs = ovs
        self.name = name
        self.net = net
        self.user_features = user_features
        self.ports: dict[int, Vport] = {}
        self.table = FlowTable()
        self.stats = PcpuCounters(DP_STATS_FIELDS)
        self.meters = MeterTable()
        self.upcall_channels: dict[int, UpcallChannel] = {}
        #: per-CPU upcall dispatch (OVS_DP_F_DISPATCH_UPCALL_PER_CPU)
        self.per_cpu_pids: list[int] = []
        #: packets dropped by the datapath itself, by reason (coverage counters)
        self.drops: dict[str, int] = {}
        self.deleted = False
        self.clock = time.monotonic

    def __repr__(self) -> str:
        return f"<Datapath {self.name} ports={len(self.ports)} flows={self.table.count}>"

    # ------------------------------------------------------------------ ports

    def _free_port_no(self) -> int:
        for port_no in range(1, DP_MAX_PORTS):
            if port_no not in self.ports:
                return port_no
        raise VportError(f"{self.name}: no free port numbers", errno=errno.EFBIG)

    def vport_add(
        self,
        name: str,
        type: int | str = "netdev",
        *,
        port_no: int | None = None,
        options: Mapping[str, str] | None = None,
        upcall_pids: Sequence[int] | None = None,
    ) -> Vport:
        """``ovs_vport_cmd_new``: add a port (lowest free number from 1 unless
        ``port_no`` is given)."""
        ovs_vport_lookup(type)  # unknown type: clear error before anything else
        if not name or len(name) > 15:
            raise VportError(f"bad port name {name!r} (1..15 characters)")
        if port_no is None:
            port_no = self._free_port_no()
        elif port_no >= DP_MAX_PORTS or port_no < 0:
            raise VportError(f"port number {port_no} too large (max 65534)", errno=errno.EFBIG)
        elif port_no in self.ports:
            raise VportError(
                f"port number {port_no} is in use by {self.ports[port_no].name}",
                errno=errno.EBUSY,
            )
        if any(v.name == name for v in self.ports.values()):
            raise VportError(f"{self.name} already has a port named {name}", errno=errno.EEXIST)
        from .vport import resolve_type

        parms = VportParms(
            name=name,
            type=resolve_type(type),
            dp=self,
            port_no=port_no,
            options=dict(options or {}),
            upcall_portids=list(upcall_pids or [0]),
        )
        vport = ovs_vport_add(self.ovs.dev_table, parms)
        self.ports[port_no] = vport
        self.table.emc_flush()
        return vport

    def vport_del(self, port: int | str) -> None:
        """``ovs_vport_cmd_del``; the local port cannot be deleted."""
        vport = self.get_vport(port)
        if vport.port_no == OVSP_LOCAL:
            raise VportError(
                f"{vport.name}: the local port is deleted only with the datapath",
                errno=errno.EINVAL,
            )
        del self.ports[vport.port_no]
        ovs_vport_del(self.ovs.dev_table, vport)
        self.table.emc_flush()

    def vport_set(
        self,
        port: int | str,
        *,
        options: Mapping[str, str] | None = None,
        upcall_pids: Sequence[int] | None = None,
    ) -> Vport:
        """``ovs_vport_cmd_set``."""
        vport = self.get_vport(port)
        if options is not None:
            vport.set_options(options)
        if upcall_pids is not None:
            vport.set_upcall_portids(upcall_pids)
        return vport

    def get_vport(self, port: int | str) -> Vport:
        if isinstance(port, int):
            v = self.ports.get(port)
            if v is None:
                raise VportError(f"{self.name}: no port number {port}", errno=errno.ENODEV)
            return v
        for v in self.ports.values():
            if v.name == port:
                return v
        raise VportError(f"no port named {port}", errno=errno.ENODEV)

    def port_names(self) -> dict[int, str]:
        return {n: v.name for n, v in sorted(self.ports.items())}

    # ---------------------------------------------------------- upcall channels

    def upcall_channel_open(
        self, portid: int | None = None, depth: int = DEFAULT_CHANNEL_DEPTH
    ) -> UpcallChannel:
        ch = UpcallChannel(portid, depth)
        if ch.portid in self.upcall_channels:
            raise DatapathError(f"upcall port id {ch.portid} in use", errno=errno.EADDRINUSE)
        self.upcall_channels[ch.portid] = ch
        return ch

    def upcall_channel_close(self, ch: UpcallChannel) -> None:
        if self.upcall_channels.get(ch.portid) is ch:
            del self.upcall_channels[ch.portid]

    def set_per_cpu_pids(self, pids: Sequence[int]) -> None:
        """``OVS_DP_ATTR_PER_CPU_PIDS``: switch to per-worker upcall dispatch."""
        self.per_cpu_pids = list(pids)
        if pids:
            self.user_features |= OVS_DP_F_DISPATCH_UPCALL_PER_CPU
        else:
            self.user_features &= ~OVS_DP_F_DISPATCH_UPCALL_PER_CPU

    def _miss_portid(self, vport: Vport | None, skb_hash: int) -> int:
        if self.user_features & OVS_DP_F_DISPATCH_UPCALL_PER_CPU:
            pids = self.per_cpu_pids
            return pids[smp_processor_id() % len(pids)] if pids else 0
        if vport is None:
            return 0
        return vport.find_upcall_portid(skb_hash)

    # ------------------------------------------------------------------- flows

    def flow_put(
        self,
        key: int,
        mask: int | None = None,
        actions: Sequence[Action] = (),
        *,
        ufid: bytes | None = None,
        create: bool = True,
        modify: bool = False,
        clear: bool = False,
    ) -> tuple[Flow, FlowStats | None]:
        """Create or modify a flow with the kernel's semantics.

        * ``create=True, modify=False`` (``add-flow``, NEW|CREATE): EEXIST if
          the flow exists.
        * ``create=True, modify=True`` (``mod-flow --may-create``, NEW):
          create, or replace the actions of the same flow.
        * ``create=False, modify=True`` (``mod-flow``, SET): ENOENT if absent.

        Returns the flow and, for a modification, its stats before the change.
        """
        if mask is None:
            mask = (1 << (flow.KEY_BYTES * 8)) - 1
        if ufid is not None and not 1 <= len(ufid) <= 16:
            raise FlowError("a UFID is 1 to 16 bytes")
        validate_actions(actions, key & mask)  # the kernel validates with the masked key
        if not create:
            f = self._find(key, mask, ufid)
            if f is None:
                raise FlowError("flow does not exist", errno=errno.ENOENT)
            old = f.get_stats()
            if actions is not None:
                self.table.replace_actions(f, actions)
            if clear:
                f.clear_stats()
            return f, old
        existing: Flow | None = None
        if ufid is not None:
            existing = self.table.lookup_ufid(ufid)
        if existing is None:
            existing = self.table.lookup(key)
        if existing is None:
            f = Flow(key, mask, actions, ufid)
            self.table.insert(f)
            return f, None
        if not modify:
            raise FlowError("flow already exists", errno=errno.EEXIST)
        # The identifier has to be the same for updates.
        same = (
            existing.ufid == ufid and existing.key == (key & mask) and existing.mask.key == mask
            if existing.ufid is not None
            else existing.ufid is None and existing.unmasked_key == key
        )
        if not same:
            cand = self.table.lookup_exact(key, mask) if existing.ufid is None else None
            if cand is None:
                raise FlowError("a different flow overlaps this one", errno=errno.ENOENT)
            existing = cand
        old = existing.get_stats()
        self.table.replace_actions(existing, actions)
        if clear:
            existing.clear_stats()
        return existing, old

    def _find(self, key: int | None, mask: int | None, ufid: bytes | None) -> Flow | None:
        if ufid is not None:
            return self.table.lookup_ufid(ufid)
        if key is None:
            return None
        if mask is None:
            mask = (1 << (flow.KEY_BYTES * 8)) - 1
        return self.table.lookup_exact(key, mask)

    def flow_get(
        self, key: int | None = None, mask: int | None = None, *, ufid: bytes | None = None
    ) -> Flow:
        f = self._find(key, mask, ufid)
        if f is None:
            raise FlowError("flow does not exist", errno=errno.ENOENT)
        return f

    def flow_del(
        self, key: int | None = None, mask: int | None = None, *, ufid: bytes | None = None
    ) -> FlowStats:
        """Delete one flow (by UFID or exact key); returns its final stats."""
        f = self.flow_get(key, mask, ufid=ufid)
        st = f.get_stats()
        self.table.remove(f)
        return st

    def flow_flush(self) -> None:
        self.table.flush()

    def flow_dump(self) -> list[Flow]:
        return list(self.table)

    # -------------------------------------------------------------- the hot path

    def process_batch(self, vport: Vport, frames: Sequence[bytes | SkBuff]) -> None:
        """``ovs_vport_receive`` + ``ovs_dp_process_packet`` for a batch of
        frames received on ``vport``.

        The exact-match cache maps a key to ``(flow, tcp_flags)`` (the flags
        are part of the key, so they are fixed per entry).  Hits are grouped
        per flow -- a run of packets of the same flow costs one append each --
        and flow stats, hit counters and outputs are done once per flow."""
        vrow = vport.stats.this_cpu()
        vrow[RX_PACKETS] += len(frames)
        vrow[RX_BYTES] += sum(map(len, frames))
        md = vport.md
        table = self.table
        emc_get = table.emc.get
        raw = table.raw_cache(vport.port_no)
        raw_get = raw.get
        raw_masks = RAW_MASKS
        raw_limit = table.emc_size
        from_bytes = int.from_bytes
        extract = key_extract
        groups: dict[Flow, list[bytes]] = {}
        slow_keys: dict[Flow, list[int]] = {}
        flags: dict[Flow, int] = {}
        misses: list[tuple[bytes, int]] = []
        skbs: list[SkBuff] = []
        n_emc = n_lookup = errors = 0
        last_f: Flow | None = None
        last_list: list[bytes] = []
        last_keys: list[int] | None = None
        for data in frames:
            if type(data) is not bytes:
                skbs.append(data)  # type: ignore[arg-type]
                continue
            n = len(data)
            window = 0
            r = None
            if n >= RAW_WINDOW:
                m = raw_masks[data[23]]
                if m:
                    window = from_bytes(data[0:RAW_WINDOW], "big") & m
                    r = raw_get(window)
                    if r is not None and n < r[2]:
                        r = None
            if r is not None:
                e, key, _min_len = r
                n_emc += 1
            else:
                k = extract(data, md)
                if k is None:
                    errors += 1
                    continue
                key = k
                hit = emc_get(key)
                if hit is None:
                    hit = self._megaflow_lookup(key)
                    if hit is None:
                        misses.append((data, key))
                        continue
                    n_lookup += 1
                else:
                    n_emc += 1
                e = hit
                if window and raw_limit:
                    min_len = raw_min_len(data)
                    if min_len:
                        if len(raw) >= raw_limit:
                            raw.clear()  # bounded: a full cache starts over
                        raw[window] = (e, key, min_len)
            f = e[0]
            if e[1]:
                flags[f] = flags.get(f, 0) | e[1]
            if f is not last_f:
                last_f = f
                got = groups.get(f)
                if got is None:
                    got = groups[f] = []
                    if f.outputs is None:
                        slow_keys[f] = []
                last_list = got
                last_keys = slow_keys.get(f)
            last_list.append(data)
            if last_keys is not None:
                last_keys.append(key)
        row = self.stats.this_cpu()
        if errors:
            vrow[RX_ERRORS] += errors
        if n_emc:
            # an exact-match hit counts as one mask probed through the cache
            row[N_HIT] += n_emc
            row[N_MASK_HIT] += n_emc
            row[N_CACHE_HIT] += n_emc
        if n_lookup:
            row[N_HIT] += n_lookup
        if groups:
            now = int(self.clock() * 1000)
            ports = self.ports
            for f, batch in groups.items():
                st = f.stats
                st[0] += len(batch)
                st[1] += sum(map(len, batch))
                st[2] = now
                if flags:
                    st[3] |= flags.get(f, 0)
                outs = f.outputs
                if outs is not None:
                    if outs:
                        last = len(outs) - 1
                        for i, port_no in enumerate(outs):
                            out = ports.get(port_no)
                            if out is not None:
                                out.send(batch if i == last else list(batch))
                            else:
                                count_drop(self, DROP_INVALID_PORT, len(batch))
                    continue
                acts = f.actions
                for d, k in zip(batch, slow_keys[f], strict=True):
                    ovs_execute_actions(self, SkBuff(d), k, acts, vport)
        for data, key in misses:
            self._miss(vport, data, key, row)
        for skb in skbs:
            self.vport_receive_skb(vport, skb, count_rx=False)

    def _megaflow_lookup(self, key: int) -> tuple[Flow, int] | None:
        """Exact-match cache miss: the megaflow lookup with the mask cache,
        counting masks probed and cache hits; a hit is added to the
        exact-match cache as ``(flow, tcp_flags)``."""
        table = self.table
        f, probed, cached = table.lookup_stats(key, key_hash(key))
        row = self.stats.this_cpu()
        row[N_MASK_HIT] += probed
        row[N_CACHE_HIT] += cached
        if f is None:
            return None
        e = (f, key & _TCP_FLAGS_MASK)
        emc = table.emc
        if table.emc_size:
            if len(emc) >= table.emc_size:
                emc.clear()  # bounded: a full cache starts over
            emc[key] = e
        return e

    def _miss(
        self, vport: Vport | None, skb: bytes | SkBuff, key: int, row: MutableSequence[int]
    ) -> None:
        skb_hash = skb.hash if isinstance(skb, SkBuff) and skb.hash else key_hash(key)
        info = UpcallInfo(OVS_PACKET_CMD_MISS, self._miss_portid(vport, skb_hash))
        err = ovs_dp_upcall(self, skb, key, info)
        row[N_MISSED] += 1
        if err:
            row[N_LOST] += 1

    def vport_receive_skb(
        self,
        vport: Vport,
        skb: SkBuff,
        *,
        tun: int = 0,
        count_rx: bool = True,
    ) -> None:
        """``ovs_vport_receive`` for one packet with metadata (offload state,
        tunnel metadata as key bits, mark/priority)."""
        vrow = vport.stats.this_cpu()
        if count_rx:
            vrow[RX_PACKETS] += 1
            vrow[RX_BYTES] += len(skb.data)
        md = vport.md
        if skb.mark or skb.priority:
            md = flow.md_bits(vport.port_no, priority=skb.priority, skb_mark=skb.mark)
        from .skbuff import SKB_GSO_UDP

        if skb.protocol and not vport.l2:
            key = flow.key_extract_l3(skb.data, skb.protocol, md | _MAC_PROTO_NONE, tun)
        else:
            key = key_extract(skb.data, md, tun, bool(skb.gso_type & SKB_GSO_UDP))
        if key is None:
            vrow[RX_ERRORS] += 1
            return
        self.ovs_dp_process_packet(skb, key, vport)

    def ovs_dp_process_packet(
        self, skb: SkBuff, key: int, vport: Vport | None, *, recirc_depth: int = 0
    ) -> None:
        """Look up one packet and execute its flow or upcall it."""
        row = self.stats.this_cpu()
        table = self.table
        e = table.emc.get(key)
        if e is None:
            skb_hash = skb.hash or key_hash(key)
            f, probed, cached = table.lookup_stats(key, skb_hash)
            row[N_MASK_HIT] += probed
            row[N_CACHE_HIT] += cached
            if f is None:
                self._miss(vport, skb, key, row)
                return
            if table.emc_size:
                if len(table.emc) >= table.emc_size:
                    table.emc.clear()
                table.emc[key] = (f, key & _TCP_FLAGS_MASK)
        else:
            f = e[0]
            row[N_MASK_HIT] += 1
            row[N_CACHE_HIT] += 1
        st = f.stats
        st[0] += 1
        st[1] += len(skb.data)
        st[2] = int(self.clock() * 1000)
        st[3] |= key & _TCP_FLAGS_MASK
        row[N_HIT] += 1
        ovs_execute_actions(self, skb, key, f.actions, vport, recirc_depth=recirc_depth)

    # ----------------------------------------------------------------- execute

    def execute(
        self,
        packet: bytes | SkBuff,
        actions: Sequence[Action],
        *,
        key: int | None = None,
        in_port: int | None = None,
    ) -> None:
        """``OVS_PACKET_CMD_EXECUTE``: run ``actions`` once on ``packet``.

        Metadata (in_port, priority, skb_mark, recirc_id, dp_hash, tunnel) is
        taken from ``key``; headers are re-extracted from the packet.  No flow
        is installed and no hit/miss is counted."""
        skb = packet if isinstance(packet, SkBuff) else SkBuff(packet)
        if len(skb.data) < flow.ETH_HLEN and not skb.protocol:
            raise FlowError("packet shorter than an Ethernet header", errno=errno.EINVAL)
        md_key = key or 0
        if in_port is not None:
            md_key = flow.key_set(md_key, "in_port", in_port & 0xFFFF)
        fields = {n: flow.key_get(md_key, n) for n in _MD_FIELDS}
        port_no = fields["in_port"]
        vport = self.ports.get(port_no) or self.ports.get(OVSP_LOCAL)
        skb.priority = fields["priority"]
        skb.mark = fields["skb_mark"]
        md = flow.md_bits(
            port_no,
            recirc_id=fields["recirc_id"],
            dp_hash=fields["dp_hash"],
            priority=fields["priority"],
            skb_mark=fields["skb_mark"],
        )
        tun = md_key & _TUN_BITS
        if skb.protocol:
            k = flow.key_extract_l3(skb.data, skb.protocol, md | _MAC_PROTO_NONE, tun)
        else:
            k = key_extract(skb.data, md, tun)
        if k is None:
            raise FlowError("cannot extract a flow key from the packet", errno=errno.EINVAL)
        validate_actions(actions, k)
        ovs_execute_actions(self, skb, k, tuple(actions), vport)

    # -------------------------------------------------------------------- send

    def vport_xmit(self, vport: Vport, dev: NetDevice, frames: Sequence[bytes | SkBuff]) -> None:
        """``ovs_vport_send`` to a device: MTU check (over-MTU non-GSO frames
        are dropped and counted as tx errors), transmit, count."""
        row = vport.stats.this_cpu()
        limit = dev.mtu + flow.ETH_HLEN
        if frames and max(map(len, frames)) > limit:
            ok: list[bytes | SkBuff] = []
            for fr in frames:
                data = fr.data if isinstance(fr, SkBuff) else fr
                length = len(data) - flow.ETH_HLEN
                tpid = data[12:14]
                if tpid == _ETH_P_8021Q or tpid == _ETH_P_8021AD:
                    length -= 4
                if length > dev.mtu and not (isinstance(fr, SkBuff) and fr.gso_size):
                    row[TX_ERRORS] += 1
                    log.debug("%s: dropped over-mtu packet: %d > %d", vport.name, length, dev.mtu)
                    continue
                ok.append(fr)
            frames = ok
            if not frames:
                return
        sent = dev.start_xmit(frames)
        if sent:
            row[TX_PACKETS] += sent
            row[TX_BYTES] += (
                sum(map(len, frames[:sent])) if sent < len(frames) else sum(map(len, frames))
            )
        if sent < len(frames):
            row[TX_DROPPED] += len(frames) - sent

    # ------------------------------------------------------------------- stats

    def get_stats(self) -> DpStats:
        s = self.stats.read()
        return DpStats(
            n_hit=s["n_hit"],
            n_missed=s["n_missed"],
            n_lost=s["n_lost"],
            n_flows=self.table.count,
            n_mask_hit=s["n_mask_hit"],
            n_masks=len(self.table.masks),
            n_cache_hit=s["n_cache_hit"],
            masks_cache_size=self.table.mask_cache_size,
            emc_size=self.table.emc_size,
        )

    def tick(self, now: float | None = None) -> None:
        """Periodic work (the kernel's delayed works): mask rebalancing."""
        self.table.maybe_rebalance(now)


_MD_FIELDS = ("in_port", "priority", "skb_mark", "recirc_id", "dp_hash")
_MAC_PROTO_NONE = flow.MAC_PROTO_NONE << flow.FIELDS["mac_proto"][0]
_TUN_BITS = 0
for _n in (
    "tun_opts",
    "tun_opts_len",
    "tun_id",
    "tun_ipv4_src",
    "tun_ipv4_dst",
    "tun_ipv6_src",
    "tun_ipv6_dst",
    "tun_flags",
    "tun_tos",
    "tun_ttl",
    "tun_tp_src",
    "tun_tp_dst",
    "tun_proto",
):
    _TUN_BITS |= flow.field_mask(_n)
del _n
