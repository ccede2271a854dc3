"""Action execution (the kernel's ``net/openvswitch/actions.c``) and action
validation (``__ovs_nla_copy_actions`` in ``flow_netlink.c``).

:func:`ovs_execute_actions` runs an action list on one packet (:class:`SkBuff`)
and its flow key (an int, see :mod:`pyvswitch.flow`), with the kernel's rules:

* ``output`` sends a clone unless it is the last action; ``trunc`` applies to
  the next output/userspace only and never cuts into the Ethernet header;
  output to a missing port is a counted drop.
* ``set``/``set_masked`` rewrite headers with the kernel's checksum updates
  (eth, ipv4, ipv6, tcp, udp, sctp, mpls, priority, mark) and keep the key in
  step.  ICMP, ICMPv6, ARP and ND fields, which the kernel cannot set, are set
  as OVS's userspace datapath does (``odp_set_icmp``, ``set_arp``,
  ``odp_set_nd``), checksums included.  Conntrack fields are not settable.
* Actions that change the packet's shape (push/pop of MPLS or Ethernet, a
  second VLAN tag) mark the key invalid; ``recirc``, ``hash`` and ``userspace``
  re-extract it first.
* ``sample``, ``clone``, ``check_pkt_len`` and ``dec_ttl`` run nested lists on
  a clone; nesting deeper than the key-copy pool defers ``sample``/``clone``/
  ``recirc`` to a FIFO run after the top-level list; the recursion limit drops
  the packet.
* Any action error drops the packet and ends the list.

Lengths follow the kernel, where the outer VLAN tag of a frame lives outside
the packet data (``skb->vlan_tci``) while pyvswitch keeps it in the frame:
``trunc``, ``check_pkt_len`` and meters measure a tagged frame without its
outer tag, so ``trunc(100)`` on an 802.1Q frame transmits 104 bytes, as a
kernel datapath does (OVS's userspace datapath would transmit 100).
"""

from __future__ import annotations

import errno
import logging
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import fields as dc_fields
from typing import TYPE_CHECKING, Final

from . import flow
from .errors import ActionError, NotSupportedError
from .flow import (
    ETH_HLEN,
    ETH_P_8021AD,
    ETH_P_8021Q,
    ETH_P_ARP,
    ETH_P_IP,
    ETH_P_IPV6,
    ETH_P_MPLS_MC,
    ETH_P_MPLS_UC,
    ETH_P_RARP,
    ETH_P_TEB,
    FIELDS,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    MAC_PROTO_ETHERNET,
    MAC_PROTO_NONE,
    VLAN_CFI_MASK,
    key_get,
    key_set,
)
from .jhash import jhash_1word
from .percpu import smp_processor_id
from .skbuff import CHECKSUM_PARTIAL, SKB_GSO_TCPV4, SKB_GSO_TCPV6, SKB_GSO_UDP_L4, SkBuff
from .uapi import (
    DEFERRED_ACTION_FIFO_SIZE,
    DP_MAX_PORTS,
    OVS_COPY_ACTIONS_MAX_DEPTH,
    OVS_DEFERRED_ACTION_THRESHOLD,
    OVS_DP_F_DISPATCH_UPCALL_PER_CPU,
    OVS_HASH_ALG_L4,
    OVS_HASH_ALG_SYM_L4,
    OVS_KEY_ATTR_PRIORITY,
    OVS_KEY_ATTR_SKB_MARK,
    OVS_PACKET_CMD_ACTION,
    OVS_RECURSION_LIMIT,
    Action,
    AddMpls,
    Arp,
    CheckPktLen,
    Clone,
    Ct,
    CtClear,
    DecTtl,
    Drop,
    Ethernet,
    Hash,
    Icmp,
    Icmpv6,
    Ipv4,
    Ipv6,
    KeyAttr,
    Meter,
    Mpls,
    Nd,
    Output,
    PopEth,
    PopMpls,
    PopVlan,
    PushEth,
    PushMpls,
    PushVlan,
    Recirc,
    Sample,
    Scalar,
    Sctp,
    Set,
    SetMasked,
    Tcp,
    Trunc,
    Tunnel,
    Udp,
    Userspace,
)
from .upcall import UpcallInfo, ovs_dp_upcall
from .vport import TX_DROPPED
from .wire.checksum import crc32c, csum_replace2, csum_replace4, csum_replace_bytes

if TYPE_CHECKING:
    from .datapath import Datapath
    from .vport import Vport

log = logging.getLogger(__name__)

#: Recirculation passes allowed per packet (dpif-netdev's MAX_RECIRC_DEPTH);
#: stops recirculation loops that the kernel leaves to userspace to avoid.
MAX_RECIRC_DEPTH: Final = 6
CSUM_MANGLED_0: Final = 0xFFFF
VLAN_HLEN: Final = 4
MPLS_HLEN: Final = 4

# Drop reasons, counted per datapath (names as OVS's coverage counters).
DROP_INVALID_PORT: Final = "datapath_drop_invalid_port"
DROP_METER: Final = "datapath_drop_meter"
DROP_RECURSION: Final = "datapath_drop_recursion_limit"
DROP_DEFERRED: Final = "datapath_drop_deferred_limit"
DROP_RECIRC: Final = "datapath_drop_recirc_error"
DROP_ACTION_ERROR: Final = "datapath_drop_action_error"
DROP_EXPLICIT: Final = "drop_action_of_pipeline"
DROP_TTL: Final = "datapath_drop_ip_ttl"
DROP_USERSPACE: Final = "datapath_drop_userspace_action_error"
DROP_MAC_PROTO: Final = "datapath_drop_mac_proto"
DROP_TUNNEL: Final = "datapath_drop_invalid_tnl_port"

_MAC_PROTO_SHIFT: Final = FIELDS["mac_proto"][0]
_MD_MASK: Final = (
    flow.field_mask("recirc_id")
    | flow.field_mask("dp_hash")
    | flow.field_mask("priority")
    | flow.field_mask("skb_mark")
    | flow.field_mask("in_port")
)
_KEEP_ON_UPDATE: Final = _MD_MASK | sum(
    flow.field_mask(n) for n in flow.FIELD_NAMES if n.startswith(("tun_", "ct_"))
)
_VLAN_TPIDS: Final = (ETH_P_8021Q, ETH_P_8021AD)
_MPLS_TYPES: Final = (ETH_P_MPLS_UC, ETH_P_MPLS_MC)


# ---------------------------------------------------------------------------
# Execution state


class _Exec:
    """Per-worker execution state: the recursion level and the deferred FIFO
    (the kernel's per-CPU ``exec_actions_level`` and ``action_fifos``).
    ``head`` counts the slots taken since the FIFO was last emptied, as the
    kernel's ``fifo->head`` does: slots are reused only after a full drain."""

    __slots__ = ("fifo", "head", "level")

    def __init__(self) -> None:
        self.level = 0
        self.head = 0
        self.fifo: deque[tuple[_Pkt, tuple[Action, ...] | None]] = deque()

    def reset_fifo(self) -> None:
        self.fifo.clear()
        self.head = 0


_exec = _Exec()


class _Pkt:
    """The mutable state of one packet through an action list."""

    __slots__ = ("key", "recirc_depth", "skb", "valid", "vport")

    def __init__(self, skb: SkBuff, key: int, vport: Vport | None, valid: bool = True) -> None:
        self.skb = skb
        self.key = key
        self.valid = valid
        self.vport = vport
        self.recirc_depth = 0

    def clone(self) -> _Pkt:
        p = _Pkt(self.skb.clone(), self.key, self.vport, self.valid)
        p.recirc_depth = self.recirc_depth
        return p

    @property
    def mac_proto(self) -> int:
        return (self.key >> _MAC_PROTO_SHIFT) & 0x7F


class _ActionFailed(Exception):
    """Internal: an action failed; the packet is dropped (``err`` is -errno)."""

    def __init__(self, err: int, reason: str = DROP_ACTION_ERROR) -> None:
        super().__init__(err, reason)
        self.err = err
        self.reason = reason


def count_drop(dp: Datapath, reason: str, n: int = 1) -> None:
    dp.drops[reason] = dp.drops.get(reason, 0) + n


# ---------------------------------------------------------------------------
# Entry points


def ovs_execute_actions(
    dp: Datapath,
    skb: SkBuff,
    key: int,
    actions: Sequence[Action],
    vport: Vport | None,
    *,
    recirc_depth: int = 0,
) -> int:
    """Run ``actions`` on ``skb``; returns 0 or a negative errno."""
    ex = _exec
    ex.level += 1
    level = ex.level
    try:
        if level > OVS_RECURSION_LIMIT:
            log.warning(
                "ovs: recursion limit reached on datapath %s, probable configuration error",
                dp.name,
            )
            count_drop(dp, DROP_RECURSION)
            return -errno.ENETDOWN
        pkt = _Pkt(skb, key, vport)
        pkt.recirc_depth = recirc_depth
        err = _do_execute_actions(dp, pkt, tuple(actions))
        if level == 1:
            _process_deferred_actions(dp)
        return err
    except BaseException:
        if level == 1:
            ex.reset_fifo()  # nothing deferred survives an aborted top-level run
        raise
    finally:
        ex.level -= 1


def _process_deferred_actions(dp: Datapath) -> None:
    ex = _exec
    fifo = ex.fifo
    if not fifo:
        return
    try:
        while fifo:
            pkt, actions = fifo.popleft()
            if actions is not None:
                _do_execute_actions(dp, pkt, actions)
            else:
                _recirc_process(dp, pkt.skb, pkt.key, pkt.vport, pkt.recirc_depth)
    finally:
        ex.reset_fifo()


def _recirc_process(dp: Datapath, skb: SkBuff, key: int, vport: Vport | None, depth: int) -> None:
    if depth >= MAX_RECIRC_DEPTH:
        log.warning("%s: packet dropped, max recirculation depth exceeded", dp.name)
        count_drop(dp, DROP_RECIRC)
        return
    dp.ovs_dp_process_packet(skb, key, vport, recirc_depth=depth + 1)


def _clone_execute(
    dp: Datapath,
    pkt: _Pkt,
    recirc_id: int,
    actions: tuple[Action, ...] | None,
    last: bool,
    clone_flow_key: bool,
) -> int:
    """The kernel's ``clone_execute``: run nested ``actions`` (or recirculate
    with ``recirc_id`` when ``actions`` is None) on a clone -- or on the packet
    itself when this is the last action."""
    p = pkt if last else pkt.clone()
    ex = _exec
    if not clone_flow_key or ex.level <= OVS_DEFERRED_ACTION_THRESHOLD:
        if actions is not None:
            if not clone_flow_key:
                return _do_execute_actions(dp, p, actions)
            ex.level += 1
            try:
                return _do_execute_actions(dp, p, actions)
            finally:
                ex.level -= 1
        _recirc_process(dp, p.skb, key_set(p.key, "recirc_id", recirc_id), p.vport, p.recirc_depth)
        return 0
    # Out of key copies: defer.
    if ex.head >= DEFERRED_ACTION_FIFO_SIZE - 1:
        count_drop(dp, DROP_DEFERRED)
        if actions is not None:
            log.warning("%s: deferred action limit reached, drop sample action", dp.name)
        else:
            log.warning(
                "%s: deferred action limit reached, drop recirc action (recirc_id=%#x)",
                dp.name,
                recirc_id,
            )
        return 0
    ex.head += 1
    if actions is None:
        p.key = key_set(p.key, "recirc_id", recirc_id)
    ex.fifo.append((p, actions))
    return 0


# ---------------------------------------------------------------------------
# The action loop


def _do_execute_actions(dp: Datapath, pkt: _Pkt, actions: tuple[Action, ...]) -> int:
    n = len(actions)
    for i, a in enumerate(actions):
        last = i == n - 1
        try:
            if isinstance(a, Output):
                if last:
                    do_output(dp, pkt, a.port)
                    return 0
                do_output(dp, pkt.clone(), a.port)
                pkt.skb.cutlen = 0
            elif isinstance(a, SetMasked | Set):
                _execute_set(pkt, a)
            elif isinstance(a, PushVlan):
                _push_vlan(pkt, a.tpid, a.tci)
            elif isinstance(a, PopVlan):
                _pop_vlan(pkt)
            elif isinstance(a, Userspace):
                _output_userspace(dp, pkt, a, actions)
                pkt.skb.cutlen = 0
                if last:
                    return 0
            elif isinstance(a, Recirc):
                _ensure_key(pkt)
                err = _clone_execute(dp, pkt, a.recirc_id, None, last, True)
                if last:
                    return err
            elif isinstance(a, Sample):
                p = a.probability
                if p != 0xFFFFFFFF and (p == 0 or random.getrandbits(32) > p):
                    if last:
                        return 0
                    continue
                err = _clone_execute(dp, pkt, 0, a.actions, last, may_change_flow(a.actions))
                if last:
                    return err
            elif isinstance(a, Clone):
                err = _clone_execute(dp, pkt, 0, a.actions, last, may_change_flow(a.actions))
                if last:
                    return err
            elif isinstance(a, CheckPktLen):
                nested = (
                    a.actions_if_less_equal
                    if _check_pkt_len_le(pkt, a.pkt_len)
                    else a.actions_if_greater
                )
                err = _clone_execute(dp, pkt, 0, nested, last, may_change_flow(nested))
                if last:
                    return err
            elif isinstance(a, Hash):
                _execute_hash(pkt, a)
            elif isinstance(a, Trunc):
                length = _skb_len(pkt)
                if length > a.max_len:
                    pkt.skb.cutlen = length - a.max_len
            elif isinstance(a, PushMpls):
                _push_mpls(pkt, a.lse, a.ethertype, _mac_len(pkt))
            elif isinstance(a, AddMpls):
                _push_mpls(pkt, a.lse, a.ethertype, _mac_len(pkt) if a.tun_flags & 1 else 0)
            elif isinstance(a, PopMpls):
                _pop_mpls(pkt, a.ethertype)
            elif isinstance(a, PushEth):
                _push_eth(pkt, a.src, a.dst)
            elif isinstance(a, PopEth):
                _pop_eth(pkt)
            elif isinstance(a, Meter):
                if dp.meters.execute(a.meter_id, _skb_len(pkt)):
                    count_drop(dp, DROP_METER)
                    return 0
            elif isinstance(a, DecTtl):
                if not _dec_ttl(pkt):
                    if a.actions:
                        return _clone_execute(dp, pkt, 0, a.actions, True, False)
                    count_drop(dp, DROP_TTL)
                    return 0
            elif isinstance(a, Drop):
                count_drop(dp, DROP_EXPLICIT)
                return 0
            elif isinstance(a, CtClear):
                # No conntrack state exists in pyvswitch; clear the ct key fields.
                for name in ("ct_state", "ct_zone", "ct_mark", "ct_labels"):
                    pkt.key = key_set(pkt.key, name, 0)
            elif isinstance(a, Ct):
                raise NotSupportedError("ct (connection tracking) is not supported yet")
            else:
                raise NotSupportedError(f"action {a!r} is not supported")
        except _ActionFailed as e:
            count_drop(dp, e.reason)
            return e.err
    return 0


# ---------------------------------------------------------------------------
# Lengths as the kernel sees them


def _hw_vlan(pkt: _Pkt) -> int:
    """4 when the frame carries an outer VLAN tag (the kernel keeps it in
    ``skb->vlan_tci``, outside ``skb->len``), else 0."""
    if pkt.mac_proto != MAC_PROTO_ETHERNET:
        return 0
    d = pkt.skb.data
    if len(d) >= ETH_HLEN + VLAN_HLEN and ((d[12] << 8) | d[13]) in _VLAN_TPIDS:
        return VLAN_HLEN
    return 0


def _skb_len(pkt: _Pkt) -> int:
    """The kernel's ``skb->len``: the frame without an outer VLAN tag."""
    return len(pkt.skb.data) - _hw_vlan(pkt)


def _check_pkt_len_le(pkt: _Pkt, max_len: int) -> bool:
    """``execute_check_pkt_len``: whether the LESS_EQUAL branch applies."""
    skb = pkt.skb
    hw = _hw_vlan(pkt)
    length = skb.mru + _mac_len(pkt) - hw if skb.mru else len(skb.data) - hw
    if length <= max_len:
        return True
    if skb.gso_size:
        # skb_gso_validate_mac_len: one segment (headers + gso_size) fits.
        nh, et = _network(pkt)
        th, _proto = _transport(pkt, nh, et)
        d = skb.data
        if th < 0:
            seglen = nh + skb.gso_size
        elif skb.gso_type & (SKB_GSO_TCPV4 | SKB_GSO_TCPV6) and th + 13 <= len(d):
            seglen = th + (d[th + 12] >> 4) * 4 + skb.gso_size
        elif skb.gso_type & SKB_GSO_UDP_L4:
            seglen = th + 8 + skb.gso_size
        else:  # UFO: gso_size already counts the UDP header
            seglen = th + skb.gso_size
        return seglen - hw <= max_len
    return False


def _splice(pkt: _Pkt, off: int, remove: int, insert: bytes = b"") -> None:
    """Replace ``remove`` bytes at ``off`` by ``insert``; a partial checksum's
    start moves with the data behind the change (the kernel's ``csum_start``
    is relative to the buffer head, which push/pull do not move)."""
    skb = pkt.skb
    d = skb.data
    skb.data = d[:off] + insert + d[off + remove :]
    if skb.ip_summed == CHECKSUM_PARTIAL and skb.csum_start >= off + remove:
        skb.csum_start += len(insert) - remove


# ---------------------------------------------------------------------------
# Output / userspace


def do_output(dp: Datapath, pkt: _Pkt, port_no: int) -> None:
    vport = dp.ports.get(port_no)
    if vport is None:
        count_drop(dp, DROP_INVALID_PORT)
        return
    skb = pkt.skb
    mac_proto = pkt.mac_proto
    if skb.cutlen:
        # Never below the Ethernet header (ovs_mac_header_len); an outer VLAN
        # tag is not part of skb->len and stays.
        hw = _hw_vlan(pkt)
        min_len = ETH_HLEN if mac_proto == MAC_PROTO_ETHERNET else 0
        new_len = max(len(skb.data) - hw - skb.cutlen, min_len) + hw
        skb.data = skb.data[:new_len]
        skb.cutlen = 0
    if mac_proto != MAC_PROTO_ETHERNET and vport.l2:
        count_drop(dp, DROP_MAC_PROTO)
        vport.stats.this_cpu()[TX_DROPPED] += 1
        return
    if (
        skb.tun_info is None
        and not skb.gso_size
        and skb.ip_summed != CHECKSUM_PARTIAL
        and mac_proto == MAC_PROTO_ETHERNET
    ):
        vport.send([skb.data])
    else:
        if mac_proto != MAC_PROTO_ETHERNET and not skb.protocol:
            skb.protocol = key_get(pkt.key, "eth_type")
        vport.send([skb])


def _output_userspace(dp: Datapath, pkt: _Pkt, a: Userspace, actions: tuple[Action, ...]) -> None:
    """``output_userspace``: an ACTION upcall with the current key."""
    from .datapath import N_LOST

    if dp.user_features & OVS_DP_F_DISPATCH_UPCALL_PER_CPU:
        pids = dp.per_cpu_pids
        portid = pids[smp_processor_id() % len(pids)] if pids else 0
    else:
        portid = a.pid
    egress = None
    if a.egress_tun_port is not None:
        out = dp.ports.get(a.egress_tun_port)
        fill = getattr(out, "fill_metadata_dst", None)
        if out is not None and fill is not None and pkt.skb.tun_info is not None:
            egress = fill(pkt.skb, pkt.key)
    _ensure_key(pkt)
    info = UpcallInfo(
        OVS_PACKET_CMD_ACTION,
        portid,
        userdata=a.userdata,
        actions=actions if a.actions else None,
        egress_tun_info=egress,
        mru=pkt.skb.mru,
    )
    err = ovs_dp_upcall(dp, pkt.skb, pkt.key, info)
    if err:
        dp.stats.this_cpu()[N_LOST] += 1
        count_drop(dp, DROP_USERSPACE)


# ---------------------------------------------------------------------------
# Key maintenance


def _ensure_key(pkt: _Pkt) -> None:
    """``ovs_flow_key_update``: re-extract an invalid key, keeping metadata."""
    if pkt.valid:
        return
    md = pkt.key & _MD_MASK
    rest = pkt.key & _KEEP_ON_UPDATE & ~_MD_MASK
    if pkt.mac_proto == MAC_PROTO_NONE:
        k = flow.key_extract_l3(
            pkt.skb.data, pkt.skb.protocol, md | (MAC_PROTO_NONE << _MAC_PROTO_SHIFT), rest
        )
    else:
        k = flow.key_extract(pkt.skb.data, md, rest)
    if k is None:
        raise _ActionFailed(-errno.EINVAL)
    pkt.key = k
    pkt.valid = True


def _mac_len(pkt: _Pkt) -> int:
    """Length of the L2 header (Ethernet + up to two in-band VLAN tags, as
    key extraction parses them), 0 for L3 packets."""
    if pkt.mac_proto != MAC_PROTO_ETHERNET:
        return 0
    d = pkt.skb.data
    off = 12
    n = len(d)
    while off + 6 <= n and off < 20 and ((d[off] << 8) | d[off + 1]) in _VLAN_TPIDS:
        off += 4
    return off + 2


def _network(pkt: _Pkt) -> tuple[int, int]:
    """(network header offset, ethertype) of the packet as it is now."""
    if pkt.mac_proto != MAC_PROTO_ETHERNET:
        return 0, pkt.skb.protocol or key_get(pkt.key, "eth_type")
    ml = _mac_len(pkt)
    d = pkt.skb.data
    et = (d[ml - 2] << 8) | d[ml - 1] if len(d) >= ml else 0
    if et < 0x0600 and len(d) >= ml + 8 and d[ml] == 0xAA and d[ml + 1] == 0xAA:
        et = (d[ml + 6] << 8) | d[ml + 7]
        return ml + 8, et
    return ml, et


def _transport(pkt: _Pkt, nh: int, ethertype: int) -> tuple[int, int]:
    """(transport offset, L4 protocol); offset -1 when there is no transport
    header to touch (short header, later fragment, not IP)."""
    d = pkt.skb.data
    if ethertype == ETH_P_IP:
        if len(d) < nh + 20:
            return -1, 0
        ihl = (d[nh] & 0x0F) * 4
        if ihl < 20 or len(d) < nh + ihl:
            return -1, 0
        if ((d[nh + 6] << 8) | d[nh + 7]) & 0x1FFF:
            return -1, d[nh + 9]
        return nh + ihl, d[nh + 9]
    if ethertype == ETH_P_IPV6:
        if len(d) < nh + 40:
            return -1, 0
        nexthdr, th, fo, _is_frag = flow._ipv6_find_hdr(d, nh)
        if nexthdr < 0 or fo:
            return -1, 0
        return th, nexthdr
    return -1, 0


# ---------------------------------------------------------------------------
# set / set_masked


_ONES128: Final = (1 << 128) - 1
_FULL: Final[dict[type, KeyAttr]] = {
    Ethernet: Ethernet(0xFFFFFFFFFFFF, 0xFFFFFFFFFFFF),
    Ipv4: Ipv4(0xFFFFFFFF, 0xFFFFFFFF, 0xFF, 0xFF, 0xFF, 0xFF),
    # A plain set(ipv6) writes only the 20 label bits (validate_set).
    Ipv6: Ipv6(_ONES128, _ONES128, 0xFFFFF, 0xFF, 0xFF, 0xFF, 0xFF),
    Tcp: Tcp(0xFFFF, 0xFFFF),
    Udp: Udp(0xFFFF, 0xFFFF),
    Sctp: Sctp(0xFFFF, 0xFFFF),
    Icmp: Icmp(0xFF, 0xFF),
    Icmpv6: Icmpv6(0xFF, 0xFF),
    Arp: Arp(0xFFFFFFFF, 0xFFFFFFFF, 0xFFFF, 0xFFFFFFFFFFFF, 0xFFFFFFFFFFFF),
    Nd: Nd(_ONES128, 0xFFFFFFFFFFFF, 0xFFFFFFFFFFFF),
}


def full_mask(attr: KeyAttr) -> KeyAttr:
    """The all-ones mask of a key attribute (what a plain SET means)."""
    if isinstance(attr, Scalar):
        return Scalar(attr.attr, 0xFFFFFFFF)
    if isinstance(attr, Mpls):
        return Mpls(tuple(0xFFFFFFFF for _ in attr.lses))
    m = _FULL.get(type(attr))
    if m is None:
        raise ActionError(f"{type(attr).__name__.lower()} cannot be set")
    return m


def _m(old: int, value: int, mask: int) -> int:
    """OVS_MASKED(old, value, mask)."""
    return value | (old & ~mask)


def _execute_set(pkt: _Pkt, a: Set | SetMasked) -> None:
    attr = a.key
    if isinstance(attr, Tunnel):
        if isinstance(a, SetMasked):
            raise _ActionFailed(-errno.EINVAL)
        pkt.skb.tun_info = attr
        return
    if isinstance(attr, Icmp | Icmpv6 | Arp | Nd):
        # Not settable in the kernel; done as OVS's userspace datapath does.
        m = a.mask if isinstance(a, SetMasked) else full_mask(attr)
        if type(m) is not type(attr):
            raise _ActionFailed(-errno.EINVAL)
        if isinstance(attr, Icmp | Icmpv6):
            assert isinstance(m, Icmp | Icmpv6)
            _set_icmp(pkt, attr.type, attr.code, m.type, m.code, isinstance(attr, Icmpv6))
        elif isinstance(attr, Arp):
            assert isinstance(m, Arp)
            _set_arp(pkt, attr, m)
        else:
            assert isinstance(m, Nd)
            _set_nd(pkt, attr, m)
        return
    try:
        mask = a.mask if isinstance(a, SetMasked) else full_mask(attr)
    except ActionError:
        raise _ActionFailed(-errno.EINVAL) from None
    if type(mask) is not type(attr):
        raise _ActionFailed(-errno.EINVAL)
    if isinstance(attr, Scalar):
        assert isinstance(mask, Scalar)
        if attr.attr == OVS_KEY_ATTR_PRIORITY:
            pkt.skb.priority = _m(pkt.skb.priority, attr.value, mask.value) & 0xFFFFFFFF
            pkt.key = key_set(pkt.key, "priority", pkt.skb.priority)
        elif attr.attr == OVS_KEY_ATTR_SKB_MARK:
            pkt.skb.mark = _m(pkt.skb.mark, attr.value, mask.value) & 0xFFFFFFFF
            pkt.key = key_set(pkt.key, "skb_mark", pkt.skb.mark)
        else:
            raise _ActionFailed(-errno.EINVAL)
    elif isinstance(attr, Ethernet):
        assert isinstance(mask, Ethernet)
        _set_eth(pkt, attr, mask)
    elif isinstance(attr, Ipv4):
        assert isinstance(mask, Ipv4)
        _set_ipv4(pkt, attr, mask)
    elif isinstance(attr, Ipv6):
        assert isinstance(mask, Ipv6)
        _set_ipv6(pkt, attr, mask)
    elif isinstance(attr, Tcp):
        assert isinstance(mask, Tcp)
        _set_tcp(pkt, attr.src, attr.dst, mask.src, mask.dst)
    elif isinstance(attr, Udp):
        assert isinstance(mask, Udp)
        _set_udp(pkt, attr.src, attr.dst, mask.src, mask.dst)
    elif isinstance(attr, Sctp):
        assert isinstance(mask, Sctp)
        _set_sctp(pkt, attr.src, attr.dst, mask.src, mask.dst)
    elif isinstance(attr, Mpls):
        assert isinstance(mask, Mpls)
        _set_mpls(pkt, attr.lses[0], mask.lses[0])
    else:
        raise _ActionFailed(-errno.EINVAL)


def _set_eth(pkt: _Pkt, v: Ethernet, m: Ethernet) -> None:
    if pkt.mac_proto != MAC_PROTO_ETHERNET or len(pkt.skb.data) < ETH_HLEN:
        raise _ActionFailed(-errno.EINVAL)
    d = pkt.skb.data
    dst = _m(int.from_bytes(d[0:6], "big"), v.dst, m.dst) & 0xFFFFFFFFFFFF
    src = _m(int.from_bytes(d[6:12], "big"), v.src, m.src) & 0xFFFFFFFFFFFF
    pkt.skb.data = dst.to_bytes(6, "big") + src.to_bytes(6, "big") + d[12:]
    pkt.key = key_set(key_set(pkt.key, "eth_dst", dst), "eth_src", src)


def _set_ipv4(pkt: _Pkt, v: Ipv4, m: Ipv4) -> None:
    nh, et = _network(pkt)
    d = bytearray(pkt.skb.data)
    if et != ETH_P_IP or len(d) < nh + 20:
        raise _ActionFailed(-errno.EINVAL)
    partial = pkt.skb.ip_summed == CHECKSUM_PARTIAL
    th, proto = _transport(pkt, nh, et)
    check = (d[nh + 10] << 8) | d[nh + 11]
    for field, off, val, fmask in (("ipv4_src", 12, v.src, m.src), ("ipv4_dst", 16, v.dst, m.dst)):
        if not fmask:
            continue
        old = int.from_bytes(d[nh + off : nh + off + 4], "big")
        new = _m(old, val, fmask) & 0xFFFFFFFF
        if new == old:
            continue
        # set_ip_addr -> update_ip_l4_checksum (not for later fragments)
        if th >= 0 and proto in (IPPROTO_TCP, IPPROTO_UDP):
            _l4_pseudo_update(d, th, proto, old.to_bytes(4, "big"), new.to_bytes(4, "big"), partial)
        check = csum_replace4(check, old, new)
        d[nh + off : nh + off + 4] = new.to_bytes(4, "big")
        pkt.key = key_set(pkt.key, field, new)
        pkt.skb.hash = 0
    if m.tos:
        old_word = (d[nh] << 8) | d[nh + 1]
        tos = ((d[nh + 1] & ~m.tos) | (v.tos & m.tos)) & 0xFF
        d[nh + 1] = tos
        check = csum_replace2(check, old_word, (d[nh] << 8) | tos)
        pkt.key = key_set(pkt.key, "ip_tos", tos)
    if m.ttl:
        old_ttl = d[nh + 8]
        ttl = _m(old_ttl, v.ttl, m.ttl) & 0xFF
        check = csum_replace2(check, old_ttl << 8, ttl << 8)
        d[nh + 8] = ttl
        pkt.key = key_set(pkt.key, "ip_ttl", ttl)
    d[nh + 10] = check >> 8
    d[nh + 11] = check & 0xFF
    pkt.skb.data = bytes(d)


def _l4_pseudo_update(
    d: bytearray, th: int, proto: int, old: bytes, new: bytes, partial: bool
) -> None:
    """``update_ip_l4_checksum``/``update_ipv6_checksum``: fix the TCP, UDP or
    ICMPv6 checksum for an address (pseudo-header) change.  A UDP checksum of
    0 means "none" and stays 0; an updated one that becomes 0 is sent as
    0xFFFF.  With CHECKSUM_PARTIAL the field holds the uncomplemented
    pseudo-header sum (``inet_proto_csum_replace*`` with ``pseudohdr``)."""
    tlen = len(d) - th
    if proto == IPPROTO_TCP:
        if tlen < 20:
            return
        off = th + 16
    elif proto == IPPROTO_UDP:
        if tlen < 8:
            return
        off = th + 6
        if not (d[off] or d[off + 1]) and not partial:
            return  # no UDP checksum
    elif proto == IPPROTO_ICMPV6:
        if tlen < 4:
            return
        off = th + 2
    else:
        return
    cs = (d[off] << 8) | d[off + 1]
    if partial:
        cs = (~csum_replace_bytes(~cs & 0xFFFF, old, new)) & 0xFFFF
    else:
        cs = csum_replace_bytes(cs, old, new)
    if proto == IPPROTO_UDP and cs == 0:
        cs = CSUM_MANGLED_0
    d[off] = cs >> 8
    d[off + 1] = cs & 0xFF


def _set_ipv6(pkt: _Pkt, v: Ipv6, m: Ipv6) -> None:
    nh, et = _network(pkt)
    d = bytearray(pkt.skb.data)
    if et != ETH_P_IPV6 or len(d) < nh + 40:
        raise _ActionFailed(-errno.EINVAL)
    partial = pkt.skb.ip_summed == CHECKSUM_PARTIAL
    th, proto = _transport(pkt, nh, et)
    for field, off, val, fmask in (
        ("ipv6_src", 8, v.src, m.src),
        ("ipv6_dst", 24, v.dst, m.dst),
    ):
        if not fmask:
            continue
        old = int.from_bytes(d[nh + off : nh + off + 16], "big")
        new = _m(old, val, fmask) & _ONES128
        if new == old:
            continue
        # A destination change behind a routing header with segments left
        # does not touch the L4 checksum (it covers the final destination).
        recalc = not (off == 24 and _has_routing_header(bytes(d), nh))
        if recalc and th >= 0:
            _l4_pseudo_update(
                d, th, proto, old.to_bytes(16, "big"), new.to_bytes(16, "big"), partial
            )
        d[nh + off : nh + off + 16] = new.to_bytes(16, "big")
        pkt.key = key_set(pkt.key, field, new)
        pkt.skb.hash = 0
    word0 = int.from_bytes(d[nh : nh + 4], "big")
    if m.tclass:
        tc = (word0 >> 20) & 0xFF
        tc = ((tc & ~m.tclass) | (v.tclass & m.tclass)) & 0xFF
        word0 = (word0 & ~(0xFF << 20)) | (tc << 20)
        pkt.key = key_set(pkt.key, "ip_tos", tc)
    if m.label:
        lbl = _m(word0 & 0xFFFFF, v.label, m.label) & 0xFFFFF
        word0 = (word0 & ~0xFFFFF) | lbl
        pkt.key = key_set(pkt.key, "ipv6_label", lbl)
    d[nh : nh + 4] = word0.to_bytes(4, "big")
    if m.hlimit:
        hl = _m(d[nh + 7], v.hlimit, m.hlimit) & 0xFF
        d[nh + 7] = hl
        pkt.key = key_set(pkt.key, "ip_ttl", hl)
    pkt.skb.data = bytes(d)


def _has_routing_header(d: bytes, nh: int) -> bool:
    """Whether a routing header with segments left precedes the payload
    (``ipv6_find_hdr(..., NEXTHDR_ROUTING, IP6_FH_F_SKIP_RH)``)."""
    nexthdr = d[nh + 6]
    off = nh + 40
    while nexthdr in (0, 43, 44, 51, 60):
        if off + 4 > len(d):
            return False
        if nexthdr == 43 and d[off + 3]:
            return True
        nxt = d[off]
        if nexthdr == 44:
            off += 8
        elif nexthdr == 51:
            off += (d[off + 1] + 2) << 2
        else:
            off += (d[off + 1] + 1) << 3
        nexthdr = nxt
    return False


def _l4_header(pkt: _Pkt, want_proto: int, need: int) -> tuple[bytearray, int]:
    nh, et = _network(pkt)
    th, proto = _transport(pkt, nh, et)
    if th < 0 or proto != want_proto or len(pkt.skb.data) < th + need:
        raise _ActionFailed(-errno.EINVAL)
    return bytearray(pkt.skb.data), th


def _set_tcp(pkt: _Pkt, src: int, dst: int, msrc: int, mdst: int) -> None:
    d, th = _l4_header(pkt, IPPROTO_TCP, 20)
    partial = pkt.skb.ip_summed == CHECKSUM_PARTIAL
    cs = (d[th + 16] << 8) | d[th + 17]
    for field, off, val, fmask in (("tp_src", 0, src, msrc), ("tp_dst", 2, dst, mdst)):
        old = (d[th + off] << 8) | d[th + off + 1]
        new = _m(old, val, fmask) & 0xFFFF
        if new == old:
            continue
        if not partial:  # ports are not in the pseudo header
            cs = csum_replace2(cs, old, new)
        d[th + off] = new >> 8
        d[th + off + 1] = new & 0xFF
        pkt.key = key_set(pkt.key, field, new)
    d[th + 16] = cs >> 8
    d[th + 17] = cs & 0xFF
    pkt.skb.data = bytes(d)
    pkt.skb.hash = 0


def _set_udp(pkt: _Pkt, src: int, dst: int, msrc: int, mdst: int) -> None:
    d, th = _l4_header(pkt, IPPROTO_UDP, 8)
    partial = pkt.skb.ip_summed == CHECKSUM_PARTIAL
    old_src = (d[th] << 8) | d[th + 1]
    old_dst = (d[th + 2] << 8) | d[th + 3]
    new_src = _m(old_src, src, msrc) & 0xFFFF
    new_dst = _m(old_dst, dst, mdst) & 0xFFFF
    cs = (d[th + 6] << 8) | d[th + 7]
    if cs and not partial:
        if new_src != old_src:
            cs = csum_replace2(cs, old_src, new_src)
        if new_dst != old_dst:
            cs = csum_replace2(cs, old_dst, new_dst)
        if cs == 0:
            cs = CSUM_MANGLED_0
        d[th + 6] = cs >> 8
        d[th + 7] = cs & 0xFF
    d[th : th + 4] = ((new_src << 16) | new_dst).to_bytes(4, "big")
    pkt.key = key_set(key_set(pkt.key, "tp_src", new_src), "tp_dst", new_dst)
    pkt.skb.data = bytes(d)
    pkt.skb.hash = 0


def _sctp_crc(d: bytes | bytearray, th: int) -> bytes:
    body = bytes(d[th : th + 8]) + b"\x00\x00\x00\x00" + bytes(d[th + 12 :])
    return crc32c(body).to_bytes(4, "little")


def _set_sctp(pkt: _Pkt, src: int, dst: int, msrc: int, mdst: int) -> None:
    d, th = _l4_header(pkt, IPPROTO_SCTP, 12)
    old_csum = bytes(d[th + 8 : th + 12])
    old_correct = _sctp_crc(d, th)
    new_src = _m((d[th] << 8) | d[th + 1], src, msrc) & 0xFFFF
    new_dst = _m((d[th + 2] << 8) | d[th + 3], dst, mdst) & 0xFFFF
    d[th : th + 4] = ((new_src << 16) | new_dst).to_bytes(4, "big")
    new_correct = _sctp_crc(d, th)
    # Carry any checksum error through.
    d[th + 8 : th + 12] = bytes(
        x ^ y ^ z for x, y, z in zip(old_csum, old_correct, new_correct, strict=True)
    )
    pkt.key = key_set(key_set(pkt.key, "tp_src", new_src), "tp_dst", new_dst)
    pkt.skb.data = bytes(d)
    pkt.skb.hash = 0


# -- what the kernel cannot set: OVS userspace's odp-execute semantics ------


def _set_icmp(pkt: _Pkt, typ: int, code: int, mtyp: int, mcode: int, v6: bool) -> None:
    """``odp_set_icmp`` + ``packet_set_icmp``: type and code, with the ICMP
    checksum updated for the changed 16-bit word."""
    nh, et = _network(pkt)
    th, proto = _transport(pkt, nh, et)
    want = IPPROTO_ICMPV6 if v6 else IPPROTO_ICMP
    d = pkt.skb.data
    if th < 0 or proto != want or len(d) < th + 8:
        return  # no ICMP header: userspace leaves the packet alone
    old = (d[th] << 8) | d[th + 1]
    nt = _m(d[th], typ, mtyp) & 0xFF
    nc = _m(d[th + 1], code, mcode) & 0xFF
    new = (nt << 8) | nc
    if new != old:
        cs = csum_replace2((d[th + 2] << 8) | d[th + 3], old, new)
        pkt.skb.data = d[:th] + bytes((nt, nc, cs >> 8, cs & 0xFF)) + d[th + 4 :]
        pkt.key = key_set(key_set(pkt.key, "tp_src", nt), "tp_dst", nc)


def _set_arp(pkt: _Pkt, v: Arp, m: Arp) -> None:
    """``set_arp``: op, sha, spa, tha, tpa under the mask (no checksum)."""
    nh, et = _network(pkt)
    d = pkt.skb.data
    if et not in (ETH_P_ARP, ETH_P_RARP) or len(d) < nh + 28:
        return
    op = _m((d[nh + 6] << 8) | d[nh + 7], v.op, m.op) & 0xFFFF
    sha = _m(int.from_bytes(d[nh + 8 : nh + 14], "big"), v.sha, m.sha) & 0xFFFFFFFFFFFF
    sip = _m(int.from_bytes(d[nh + 14 : nh + 18], "big"), v.sip, m.sip) & 0xFFFFFFFF
    tha = _m(int.from_bytes(d[nh + 18 : nh + 24], "big"), v.tha, m.tha) & 0xFFFFFFFFFFFF
    tip = _m(int.from_bytes(d[nh + 24 : nh + 28], "big"), v.tip, m.tip) & 0xFFFFFFFF
    pkt.skb.data = (
        d[: nh + 6]
        + op.to_bytes(2, "big")
        + sha.to_bytes(6, "big")
        + sip.to_bytes(4, "big")
        + tha.to_bytes(6, "big")
        + tip.to_bytes(4, "big")
        + d[nh + 28 :]
    )
    k = key_set(pkt.key, "ip_proto", op if op <= 0xFF else 0)
    k = key_set(key_set(k, "ipv4_src", sip), "ipv4_dst", tip)
    pkt.key = key_set(key_set(k, "arp_sha", sha), "arp_tha", tha)


def _set_nd(pkt: _Pkt, v: Nd, m: Nd) -> None:
    """``odp_set_nd`` + ``packet_set_nd``: the target address and the first
    source/target link-layer address option, ICMPv6 checksum updated."""
    nh, et = _network(pkt)
    th, proto = _transport(pkt, nh, et)
    d = bytearray(pkt.skb.data)
    if th < 0 or proto != IPPROTO_ICMPV6 or len(d) < th + 24:
        return
    cs = (d[th + 2] << 8) | d[th + 3]
    old_t = bytes(d[th + 8 : th + 24])
    new_t = (_m(int.from_bytes(old_t, "big"), v.target, m.target) & _ONES128).to_bytes(16, "big")
    k = pkt.key
    if new_t != old_t:
        cs = csum_replace_bytes(cs, old_t, new_t)
        d[th + 8 : th + 24] = new_t
        k = key_set(k, "nd_target", int.from_bytes(new_t, "big"))
    off = th + 24
    while off + 8 <= len(d) and d[off + 1] != 0:
        otype, olen = d[off], d[off + 1]
        if otype in (1, 2) and olen == 1:
            old_mac = bytes(d[off + 2 : off + 8])
            val, fm = (v.sll, m.sll) if otype == 1 else (v.tll, m.tll)
            new_mac = (_m(int.from_bytes(old_mac, "big"), val, fm) & 0xFFFFFFFFFFFF).to_bytes(
                6, "big"
            )
            if new_mac != old_mac:
                cs = csum_replace_bytes(cs, old_mac, new_mac)
                d[off + 2 : off + 8] = new_mac
                k = key_set(k, "nd_sll" if otype == 1 else "nd_tll", int.from_bytes(new_mac, "big"))
            break  # a packet can only contain one SLL or TLL option
        off += olen * 8
    d[th + 2] = cs >> 8
    d[th + 3] = cs & 0xFF
    pkt.skb.data = bytes(d)
    pkt.key = k


def _set_mpls(pkt: _Pkt, lse: int, mask: int) -> None:
    nh, et = _network(pkt)
    d = pkt.skb.data
    if et not in _MPLS_TYPES or len(d) < nh + MPLS_HLEN:
        raise _ActionFailed(-errno.EINVAL)
    new = _m(int.from_bytes(d[nh : nh + 4], "big"), lse, mask) & 0xFFFFFFFF
    pkt.skb.data = d[:nh] + new.to_bytes(4, "big") + d[nh + 4 :]
    pkt.key = key_set(pkt.key, "mpls_lse0", new)


# ---------------------------------------------------------------------------
# VLAN / MPLS / Ethernet push and pop


def _push_vlan(pkt: _Pkt, tpid: int, tci: int) -> None:
    if pkt.mac_proto != MAC_PROTO_ETHERNET or len(pkt.skb.data) < ETH_HLEN:
        raise _ActionFailed(-errno.EINVAL)
    if _hw_vlan(pkt):
        pkt.valid = False  # the existing tag becomes the inner one
    else:
        pkt.key = key_set(key_set(pkt.key, "vlan_tpid", tpid), "vlan_tci", tci | VLAN_CFI_MASK)
    # On the wire the CFI/DEI bit is clear (it only means "present" in keys).
    tag = ((tpid << 16) | (tci & ~VLAN_CFI_MASK & 0xFFFF)).to_bytes(4, "big")
    _splice(pkt, 12, 0, tag)


def _pop_vlan(pkt: _Pkt) -> None:
    if pkt.mac_proto != MAC_PROTO_ETHERNET:
        return
    if _hw_vlan(pkt):
        _splice(pkt, 12, VLAN_HLEN)
    if _hw_vlan(pkt):
        pkt.valid = False  # the next tag becomes the outer one
    else:
        pkt.key = key_set(key_set(pkt.key, "vlan_tpid", 0), "vlan_tci", 0)


def _push_mpls(pkt: _Pkt, lse: int, ethertype: int, mac_len: int) -> None:
    """``skb_mpls_push``: the LSE goes at ``mac_len`` (after any in-band VLAN
    tags) and the Ethertype in front of it becomes ``ethertype``; with
    ``mac_len`` 0 the whole packet becomes the MPLS payload (L3)."""
    if ethertype not in _MPLS_TYPES:
        raise _ActionFailed(-errno.EINVAL)
    lse_b = (lse & 0xFFFFFFFF).to_bytes(4, "big")
    if mac_len >= ETH_HLEN:
        _splice(pkt, mac_len - 2, 2, ethertype.to_bytes(2, "big") + lse_b)
    else:
        _splice(pkt, mac_len, 0, lse_b)
    if not mac_len:
        pkt.key = key_set(pkt.key, "mac_proto", MAC_PROTO_NONE)
        pkt.skb.protocol = ethertype
    pkt.valid = False


def _pop_mpls(pkt: _Pkt, ethertype: int) -> None:
    """``skb_mpls_pop``: remove the top LSE and write ``ethertype`` into the
    Ethertype in front of it (Ethernet) or into ``skb->protocol`` (L3)."""
    nh, et = _network(pkt)
    pkt.valid = False
    if et not in _MPLS_TYPES:
        return
    if len(pkt.skb.data) < nh + MPLS_HLEN:
        raise _ActionFailed(-errno.EINVAL)
    if pkt.mac_proto == MAC_PROTO_ETHERNET and nh >= ETH_HLEN:
        _splice(pkt, nh - 2, 2 + MPLS_HLEN, (ethertype & 0xFFFF).to_bytes(2, "big"))
    else:
        _splice(pkt, nh, MPLS_HLEN)
        pkt.skb.protocol = ethertype
    if ethertype == ETH_P_TEB:  # the payload is an Ethernet frame
        pkt.key = key_set(pkt.key, "mac_proto", MAC_PROTO_ETHERNET)
        pkt.skb.protocol = 0


def _push_eth(pkt: _Pkt, src: int, dst: int) -> None:
    if pkt.mac_proto != MAC_PROTO_NONE:
        raise _ActionFailed(-errno.EINVAL)
    proto = pkt.skb.protocol or key_get(pkt.key, "eth_type")
    _splice(pkt, 0, 0, dst.to_bytes(6, "big") + src.to_bytes(6, "big") + proto.to_bytes(2, "big"))
    pkt.skb.protocol = 0
    pkt.key = key_set(pkt.key, "mac_proto", MAC_PROTO_ETHERNET)
    pkt.valid = False


def _pop_eth(pkt: _Pkt) -> None:
    d = pkt.skb.data
    if pkt.mac_proto != MAC_PROTO_ETHERNET or len(d) < ETH_HLEN:
        raise _ActionFailed(-errno.EINVAL)
    if _hw_vlan(pkt):
        raise _ActionFailed(-errno.EPROTO)
    et = (d[12] << 8) | d[13]
    _splice(pkt, 0, ETH_HLEN)
    pkt.skb.protocol = et
    pkt.key = key_set(pkt.key, "mac_proto", MAC_PROTO_NONE)
    pkt.valid = False


def _dec_ttl(pkt: _Pkt) -> bool:
    """``execute_dec_ttl``; False when the TTL would expire (``<= 1``).
    Non-IP packets are left alone."""
    nh, et = _network(pkt)
    d = pkt.skb.data
    if et == ETH_P_IPV6:
        if len(d) < nh + 40:
            raise _ActionFailed(-errno.EINVAL)
        if d[nh + 7] <= 1:
            return False
        hl = d[nh + 7] - 1
        pkt.skb.data = d[: nh + 7] + bytes((hl,)) + d[nh + 8 :]
        pkt.key = key_set(pkt.key, "ip_ttl", hl)
    elif et == ETH_P_IP:
        if len(d) < nh + 20:
            raise _ActionFailed(-errno.EINVAL)
        ttl = d[nh + 8]
        if ttl <= 1:
            return False
        cs = csum_replace2((d[nh + 10] << 8) | d[nh + 11], ttl << 8, (ttl - 1) << 8)
        pkt.skb.data = d[: nh + 8] + bytes((ttl - 1, d[nh + 9], cs >> 8, cs & 0xFF)) + d[nh + 12 :]
        pkt.key = key_set(pkt.key, "ip_ttl", ttl - 1)
    return True


def _execute_hash(pkt: _Pkt, a: Hash) -> None:
    """``execute_hash``: ``dp_hash = jhash_1word(packet hash, basis) or 1``."""
    if a.alg == OVS_HASH_ALG_L4:
        h = pkt.skb.hash
        if not h:  # skb_get_hash computes and caches it
            _ensure_key(pkt)
            h = pkt.skb.hash = flow.key_hash(pkt.key)
    elif a.alg == OVS_HASH_ALG_SYM_L4:
        _ensure_key(pkt)
        h = key_hash_symmetric(pkt.key)
    else:
        raise _ActionFailed(-errno.EINVAL)
    pkt.key = key_set(pkt.key, "dp_hash", jhash_1word(h, a.basis & 0xFFFFFFFF) or 1)


def key_hash_symmetric(key: int) -> int:
    """``__skb_get_hash_symmetric``: the same for both directions of a flow."""
    src, dst = key_get(key, "ipv4_src"), key_get(key, "ipv4_dst")
    s6, d6 = key_get(key, "ipv6_src"), key_get(key, "ipv6_dst")
    sp, dp_ = key_get(key, "tp_src"), key_get(key, "tp_dst")
    a = (min(src, dst), max(src, dst), min(s6, d6), max(s6, d6))
    h = hash((a, key_get(key, "ip_proto"), min(sp, dp_), max(sp, dp_))) & 0xFFFFFFFF
    return h or 1


# ---------------------------------------------------------------------------
# Validation (__ovs_nla_copy_actions)


_KEY_CHANGERS: Final = (
    Set,
    SetMasked,
    PushVlan,
    PopVlan,
    Hash,
    PushMpls,
    PopMpls,
    AddMpls,
    Ct,
    CtClear,
    PushEth,
    PopEth,
    Sample,
    Meter,
    CheckPktLen,
    DecTtl,
    Clone,
)


def may_change_flow(actions: Sequence[Action]) -> bool:
    """``actions_may_change_flow``: whether nested actions need a key copy."""
    return any(isinstance(a, _KEY_CHANGERS) for a in actions)


class _VState:
    """What validation tracks along a list: ``eth_type``, the outer VLAN TCI,
    ``mac_proto`` and the MPLS label count, as changed by earlier actions."""

    __slots__ = ("eth_type", "mac_proto", "mpls_labels", "vlan_tci")

    def __init__(self, eth_type: int, vlan_tci: int, mac_proto: int, mpls_labels: int) -> None:
        self.eth_type = eth_type
        self.vlan_tci = vlan_tci
        self.mac_proto = mac_proto
        self.mpls_labels = mpls_labels

    def copy(self) -> _VState:
        return _VState(self.eth_type, self.vlan_tci, self.mac_proto, self.mpls_labels)


def validate_actions(actions: Sequence[Action], key: int, depth: int = 0) -> None:
    """Reject action lists the kernel refuses at flow install or execute
    (``ovs_nla_copy_actions``: EINVAL with a message), and conntrack (not
    supported yet: :class:`NotSupportedError`).

    ``key`` is the flow's key; the kernel validates against the masked key,
    so a field the action depends on (``ip_proto`` for ``set(tcp)``) must be
    matched exactly for the list to pass."""
    eth_type = key_get(key, "eth_type")
    labels = bin(key_get(key, "mpls_num_labels_mask")).count("1") if eth_type in _MPLS_TYPES else 0
    st = _VState(eth_type, key_get(key, "vlan_tci"), key_get(key, "mac_proto"), labels)
    _validate(actions, key, depth, st)


def _validate(actions: Sequence[Action], key: int, depth: int, st: _VState) -> None:
    if depth > OVS_COPY_ACTIONS_MAX_DEPTH:
        raise ActionError("actions nested too deeply", errno=errno.EOVERFLOW)
    n = len(actions)
    for i, a in enumerate(actions):
        if isinstance(a, Ct):
            raise NotSupportedError("ct (connection tracking) is not supported yet")
        elif isinstance(a, Output):
            if not 0 <= a.port < DP_MAX_PORTS:
                raise ActionError(f"output: bad port number {a.port}")
        elif isinstance(a, Trunc):
            if a.max_len < ETH_HLEN:
                raise ActionError(f"trunc: max_len {a.max_len} is shorter than an Ethernet header")
        elif isinstance(a, Hash):
            if a.alg not in (OVS_HASH_ALG_L4, OVS_HASH_ALG_SYM_L4):
                raise ActionError(f"hash: unknown algorithm {a.alg}")
        elif isinstance(a, PopVlan):
            if st.mac_proto != MAC_PROTO_ETHERNET:
                raise ActionError("pop_vlan: the packet has no Ethernet header")
            st.vlan_tci = 0
        elif isinstance(a, PushVlan):
            if st.mac_proto != MAC_PROTO_ETHERNET:
                raise ActionError("push_vlan: the packet has no Ethernet header")
            if a.tpid not in _VLAN_TPIDS:
                raise ActionError(f"push_vlan: bad tpid {a.tpid:#x}")
            if not a.tci & VLAN_CFI_MASK:
                raise ActionError("push_vlan: the TCI needs the CFI (tag present) bit")
            st.vlan_tci = a.tci
        elif isinstance(a, PushMpls):
            if a.ethertype not in _MPLS_TYPES:
                raise ActionError(f"push_mpls: bad ethertype {a.ethertype:#x}")
            _check_mpls_push(st, "push_mpls")
            st.eth_type = a.ethertype
            st.mpls_labels += 1
        elif isinstance(a, AddMpls):
            if a.ethertype not in _MPLS_TYPES:
                raise ActionError(f"add_mpls: bad ethertype {a.ethertype:#x}")
            if a.tun_flags & 1:
                _check_mpls_push(st, "add_mpls")
                st.mpls_labels += 1
            elif st.mac_proto == MAC_PROTO_ETHERNET:
                st.mpls_labels = 1
                st.mac_proto = MAC_PROTO_NONE
            else:
                st.mpls_labels += 1
            st.eth_type = a.ethertype
        elif isinstance(a, PopMpls):
            if st.vlan_tci & VLAN_CFI_MASK or st.eth_type not in _MPLS_TYPES:
                raise ActionError("pop_mpls: the packet is not MPLS (or has a VLAN tag)")
            if a.ethertype == ETH_P_TEB and st.mac_proto != MAC_PROTO_NONE:
                raise ActionError("pop_mpls: eth_type 0x6558 needs an L3 (no Ethernet) packet")
            st.mpls_labels -= 1
            if a.ethertype not in _MPLS_TYPES or st.mpls_labels <= 0:
                st.eth_type = 0  # no L2.5+ set actions after the last label is popped
            else:
                st.eth_type = a.ethertype
        elif isinstance(a, PushEth):
            if st.mac_proto != MAC_PROTO_NONE:
                raise ActionError("push_eth: the packet already has an Ethernet header")
            st.mac_proto = MAC_PROTO_ETHERNET
        elif isinstance(a, PopEth):
            if st.mac_proto != MAC_PROTO_ETHERNET:
                raise ActionError("pop_eth: the packet has no Ethernet header")
            if st.vlan_tci & VLAN_CFI_MASK:
                raise ActionError("pop_eth: pop the VLAN tag first")
            st.mac_proto = MAC_PROTO_NONE
        elif isinstance(a, Set | SetMasked):
            _validate_set(a, key, st)
        elif isinstance(a, Drop):
            if i != n - 1:
                raise ActionError("drop must be the last action")
        elif isinstance(a, Sample | Clone | DecTtl):
            _validate(a.actions, key, depth + 1, st.copy())
        elif isinstance(a, CheckPktLen):
            _validate(a.actions_if_greater, key, depth + 1, st.copy())
            _validate(a.actions_if_less_equal, key, depth + 1, st.copy())


def _check_mpls_push(st: _VState, what: str) -> None:
    if st.vlan_tci & VLAN_CFI_MASK:
        raise ActionError(f"{what}: not allowed on a VLAN-tagged packet (pop_vlan first)")
    if st.eth_type not in (ETH_P_IP, ETH_P_IPV6, ETH_P_ARP, ETH_P_RARP, *_MPLS_TYPES):
        raise ActionError(f"{what}: not allowed on eth_type {st.eth_type:#06x}")


def _int_fields(attr: KeyAttr) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for f in dc_fields(attr):
        v = getattr(attr, f.name)
        if isinstance(v, int) and not isinstance(v, bool) and f.name != "attr":
            out.append((f.name, v))
        elif isinstance(v, tuple):
            out.extend((f"{f.name}[{j}]", x) for j, x in enumerate(v))
    return out


def _validate_set(a: Set | SetMasked, key: int, st: _VState) -> None:
    """``validate_set``."""
    attr = a.key
    masked = isinstance(a, SetMasked)
    name = type(attr).__name__.lower()
    what = "set_masked" if masked else "set"
    if isinstance(a, SetMasked):
        if type(a.mask) is not type(attr):
            raise ActionError(f"{what}({name}): the mask is a different attribute")
        if isinstance(attr, Scalar) and isinstance(a.mask, Scalar) and attr.attr != a.mask.attr:
            raise ActionError(f"{what}: the mask is a different attribute")
        mask_fields = dict(_int_fields(a.mask))
        for fname, value in _int_fields(attr):
            if value & ~mask_fields.get(fname, 0):
                raise ActionError(f"{what}({name}): {fname} has bits outside its mask")
    if isinstance(attr, Scalar):
        if attr.attr not in (OVS_KEY_ATTR_PRIORITY, OVS_KEY_ATTR_SKB_MARK):
            raise ActionError(f"{what}: key attribute {attr.attr} cannot be set")
    elif isinstance(attr, Ethernet):
        if st.mac_proto != MAC_PROTO_ETHERNET:
            raise ActionError(f"{what}(eth): the packet has no Ethernet header")
    elif isinstance(attr, Tunnel):
        if masked:
            raise ActionError("set_masked: a tunnel cannot be set with a mask")
        if not (attr.ipv4_dst or attr.ipv6_dst):
            raise ActionError("set(tunnel): tunnel dst address is zero")
    elif isinstance(attr, Ipv4):
        if st.eth_type != ETH_P_IP:
            raise ActionError(f"{what}(ipv4): the packet is not IPv4")
        if isinstance(a, SetMasked):
            assert isinstance(a.mask, Ipv4)
            if a.mask.proto or a.mask.frag:
                raise ActionError(f"{what}(ipv4): proto and frag cannot be changed")
        elif attr.proto != key_get(key, "ip_proto") or attr.frag != key_get(key, "ip_frag"):
            raise ActionError("set(ipv4): proto and frag must equal the flow's")
    elif isinstance(attr, Ipv6):
        if st.eth_type != ETH_P_IPV6:
            raise ActionError(f"{what}(ipv6): the packet is not IPv6")
        if isinstance(a, SetMasked):
            assert isinstance(a.mask, Ipv6)
            if a.mask.proto or a.mask.frag:
                raise ActionError(f"{what}(ipv6): proto and frag cannot be changed")
            if a.mask.label & ~0xFFFFF:
                raise ActionError(f"{what}(ipv6): the flow label is 20 bits")
        elif attr.proto != key_get(key, "ip_proto") or attr.frag != key_get(key, "ip_frag"):
            raise ActionError("set(ipv6): proto and frag must equal the flow's")
        if attr.label & ~0xFFFFF:
            raise ActionError(f"{what}(ipv6): the flow label is 20 bits")
    elif isinstance(attr, Tcp | Udp | Sctp):
        proto = {Tcp: IPPROTO_TCP, Udp: IPPROTO_UDP, Sctp: IPPROTO_SCTP}[type(attr)]
        if st.eth_type not in (ETH_P_IP, ETH_P_IPV6) or key_get(key, "ip_proto") != proto:
            raise ActionError(f"{what}({name}): the flow is not {name.upper()}")
    elif isinstance(attr, Mpls):
        if st.eth_type not in _MPLS_TYPES:
            raise ActionError(f"{what}(mpls): the packet is not MPLS")
    elif isinstance(attr, Icmp | Icmpv6):
        # Settable as in OVS's userspace datapath (the kernel refuses them).
        et, proto = (
            (ETH_P_IPV6, IPPROTO_ICMPV6) if isinstance(attr, Icmpv6) else (ETH_P_IP, IPPROTO_ICMP)
        )
        if st.eth_type != et or key_get(key, "ip_proto") != proto:
            raise ActionError(f"{what}({name}): the flow is not {name.upper()}")
    elif isinstance(attr, Arp):
        if st.eth_type not in (ETH_P_ARP, ETH_P_RARP):
            raise ActionError(f"{what}(arp): the packet is not ARP")
    elif isinstance(attr, Nd):
        if st.eth_type != ETH_P_IPV6 or key_get(key, "ip_proto") != IPPROTO_ICMPV6:
            raise ActionError(f"{what}(nd): the flow is not ICMPv6")
    else:
        raise ActionError(f"{what}({name}): this key attribute cannot be set")
