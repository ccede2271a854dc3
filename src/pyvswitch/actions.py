"""Action execution (the kernel's ``net/openvswitch/actions.c``).

:func:`ovs_execute_actions` runs an action list on one packet (:class:`SkBuff`)
and its flow key (an int, see :mod:`pyvswitch.flow`), with the kernel's rules:

* ``output`` sends a clone unless it is the last action; ``trunc`` applies to
  the next output/userspace only; output to a missing port is a counted drop.
* ``set``/``set_masked`` rewrite headers with the checksum updates the kernel
  (eth, ipv4, ipv6, tcp, udp, sctp, mpls, priority, mark) and OVS's userspace
  (icmp, icmpv6, arp, nd) do, and keep the key in step.
* Actions that change the packet's shape (push/pop of MPLS or Ethernet, a
  second VLAN tag) mark the key invalid; ``recirc`` and ``userspace``
  re-extract it first.
* ``sample``, ``clone``, ``check_pkt_len`` and ``dec_ttl`` run nested lists on
  a clone; nesting deeper than the key-copy pool defers ``sample``/``clone``/
  ``recirc`` to a FIFO run after the top-level list; the recursion limit drops
  the packet.
* Any action error drops the packet and ends the list.
"""

from __future__ import annotations

import errno
import logging
import random
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from . import flow
from .errors import ActionError, NotSupportedError
from .flow import (
    ETH_HLEN,
    ETH_P_8021AD,
    ETH_P_8021Q,
    ETH_P_IP,
    ETH_P_IPV6,
    ETH_P_MPLS_MC,
    ETH_P_MPLS_UC,
    FIELDS,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    MAC_PROTO_ETHERNET,
    MAC_PROTO_NONE,
    key_get,
    key_set,
)
from .jhash import jhash_1word
from .skbuff import CHECKSUM_PARTIAL, SkBuff
from .uapi import (
    OVS_DEFERRED_ACTION_THRESHOLD,
    OVS_HASH_ALG_L4,
    OVS_HASH_ALG_SYM_L4,
    OVS_KEY_ATTR_CT_LABELS,
    OVS_KEY_ATTR_CT_MARK,
    OVS_KEY_ATTR_CT_STATE,
    OVS_KEY_ATTR_CT_ZONE,
    OVS_KEY_ATTR_DP_HASH,
    OVS_KEY_ATTR_ETHERTYPE,
    OVS_KEY_ATTR_IN_PORT,
    OVS_KEY_ATTR_PRIORITY,
    OVS_KEY_ATTR_RECIRC_ID,
    OVS_KEY_ATTR_SKB_MARK,
    OVS_KEY_ATTR_TCP_FLAGS,
    OVS_KEY_ATTR_VLAN,
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
from .wire.checksum import (
    crc32c,
    csum_replace2,
    csum_replace4,
    csum_replace_bytes,
)

if TYPE_CHECKING:
    from .datapath import Datapath
    from .vport import Vport

log = logging.getLogger(__name__)

DEFERRED_ACTION_FIFO_SIZE: Final = 10
#: Recirculation passes allowed per packet (dpif-netdev's MAX_RECIRC_DEPTH);
#: stops recirculation loops that the kernel leaves to userspace to avoid.
MAX_RECIRC_DEPTH: Final = 6
CSUM_MANGLED_0: Final = 0xFFFF

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


# ---------------------------------------------------------------------------
# Execution state


class _Exec:
    """Per-worker execution state: the recursion level and the deferred FIFO
    (the kernel's per-CPU ``exec_actions_level`` and ``action_fifos``)."""

    __slots__ = ("fifo", "level")

    def __init__(self) -> None:
        self.level = 0
        self.fifo: deque[tuple[SkBuff, int, bool, tuple[Action, ...] | None, Vport | None]] = (
            deque()
        )


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
    try:
        if ex.level > OVS_RECURSION_LIMIT:
            log.warning(
                "ovs: recursion limit reached on datapath %s, probable configuration error",
                dp.name,
            )
            count_drop(dp, DROP_RECURSION)
            return -errno.ENETDOWN
        pkt = _Pkt(skb, key, vport)
        pkt.recirc_depth = recirc_depth
        err = _do_execute_actions(dp, pkt, tuple(actions))
        if ex.level == 1:
            _process_deferred_actions(dp)
        return err
    finally:
        ex.level -= 1


def _process_deferred_actions(dp: Datapath) -> None:
    fifo = _exec.fifo
    while fifo:
        skb, key, valid, actions, vport = fifo.popleft()
        if actions is not None:
            pkt = _Pkt(skb, key, vport, valid)
            _do_execute_actions(dp, pkt, actions)
        else:
            _recirc_process(dp, skb, key, vport, skb.recirc_depth)


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
    with ``recirc_id`` when ``actions`` is None) on a clone."""
    p = pkt if last else pkt.clone()
    level = _exec.level
    if not clone_flow_key or level <= OVS_DEFERRED_ACTION_THRESHOLD:
        if actions is not None:
            if clone_flow_key:
                _exec.level += 1
            try:
                return _do_execute_actions(dp, p, actions)
            finally:
                if clone_flow_key:
                    _exec.level -= 1
        key = key_set(p.key, "recirc_id", recirc_id)
        _recirc_process(dp, p.skb, key, p.vport, p.recirc_depth)
        return 0
    # Out of key copies: defer.
    fifo = _exec.fifo
    if len(fifo) >= DEFERRED_ACTION_FIFO_SIZE - 1:
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
    key = p.key if actions is not None else key_set(p.key, "recirc_id", recirc_id)
    if actions is None:
        p.skb.recirc_depth = p.recirc_depth
    fifo.append((p.skb, key, p.valid, actions, p.vport))
    return 0


# ---------------------------------------------------------------------------
# The action loop


def _do_execute_actions(dp: Datapath, pkt: _Pkt, actions: tuple[Action, ...]) -> int:
    n = len(actions)
    for i, a in enumerate(actions):
        last = i == n - 1
        t = type(a)
        try:
            if t is Output:
                assert isinstance(a, Output)
                if last:
                    do_output(dp, pkt, a.port)
                    return 0
                do_output(dp, pkt.clone(), a.port)
                pkt.skb.cutlen = 0
            elif t is SetMasked or t is Set:
                _execute_set(dp, pkt, a)  # type: ignore[arg-type]
            elif t is PushVlan:
                assert isinstance(a, PushVlan)
                _push_vlan(pkt, a.tpid, a.tci)
            elif t is PopVlan:
                _pop_vlan(pkt)
            elif t is Userspace:
                assert isinstance(a, Userspace)
                _output_userspace(dp, pkt, a, actions)
                pkt.skb.cutlen = 0
                if last:
                    return 0
            elif t is Recirc:
                assert isinstance(a, Recirc)
                _ensure_key(pkt)
                err = _clone_execute(dp, pkt, a.recirc_id, None, last, True)
                if last:
                    return err
            elif t is Sample:
                assert isinstance(a, Sample)
                p = a.probability
                if p != 0xFFFFFFFF and (p == 0 or random.getrandbits(32) > p):
                    if last:
                        return 0
                    continue
                err = _clone_execute(dp, pkt, 0, a.actions, last, may_change_flow(a.actions))
                if last:
                    return err
            elif t is Clone:
                assert isinstance(a, Clone)
                err = _clone_execute(dp, pkt, 0, a.actions, last, may_change_flow(a.actions))
                if last:
                    return err
            elif t is CheckPktLen:
                assert isinstance(a, CheckPktLen)
                length = len(pkt.skb.data)
                if pkt.skb.mru:
                    length = pkt.skb.mru + _mac_len(pkt)
                if length <= a.pkt_len or (pkt.skb.gso_size and pkt.skb.gso_size <= a.pkt_len):
                    nested = a.actions_if_less_equal
                else:
                    nested = a.actions_if_greater
                err = _clone_execute(dp, pkt, 0, nested, last, may_change_flow(nested))
                if last:
                    return err
            elif t is Hash:
                assert isinstance(a, Hash)
                _execute_hash(pkt, a)
            elif t is Trunc:
                assert isinstance(a, Trunc)
                if len(pkt.skb.data) > a.max_len:
                    pkt.skb.cutlen = len(pkt.skb.data) - a.max_len
            elif t is PushMpls:
                assert isinstance(a, PushMpls)
                _push_mpls(pkt, a.lse, a.ethertype, _mac_len(pkt))
            elif t is AddMpls:
                assert isinstance(a, AddMpls)
                _push_mpls(pkt, a.lse, a.ethertype, _mac_len(pkt) if a.tun_flags & 1 else 0)
            elif t is PopMpls:
                assert isinstance(a, PopMpls)
                _pop_mpls(pkt, a.ethertype)
            elif t is PushEth:
                assert isinstance(a, PushEth)
                _push_eth(pkt, a.src, a.dst)
            elif t is PopEth:
                _pop_eth(pkt)
            elif t is Meter:
                assert isinstance(a, Meter)
                if dp.meters.execute(a.meter_id, len(pkt.skb.data)):
                    count_drop(dp, DROP_METER)
                    return 0
            elif t is DecTtl:
                assert isinstance(a, DecTtl)
                if not _dec_ttl(pkt):
                    if a.actions:
                        return _clone_execute(dp, pkt, 0, a.actions, True, False)
                    count_drop(dp, DROP_TTL)
                    return 0
            elif t is Drop:
                count_drop(dp, DROP_EXPLICIT)
                return 0
            elif t is CtClear:
                # No conntrack state exists in pyvswitch; clear the ct key fields.
                for name in ("ct_state", "ct_zone", "ct_mark", "ct_labels"):
                    pkt.key = key_set(pkt.key, name, 0)
            elif t is Ct:
                raise NotSupportedError("ct (connection tracking) is not supported yet")
            else:
                raise NotSupportedError(f"action {a!r} is not supported")
        except _ActionFailed as e:
            count_drop(dp, e.reason)
            return e.err
    return 0


# ---------------------------------------------------------------------------
# Output / userspace


def do_output(dp: Datapath, pkt: _Pkt, port_no: int) -> None:
    vport = dp.ports.get(port_no)
    if vport is None:
        count_drop(dp, DROP_INVALID_PORT)
        return
    skb = pkt.skb
    if skb.cutlen:
        mac_len = _mac_len(pkt)
        new_len = len(skb.data) - skb.cutlen
        skb.data = skb.data[: max(new_len, mac_len)]
        skb.cutlen = 0
    mac_proto = pkt.mac_proto
    if mac_proto != MAC_PROTO_ETHERNET and vport.l2:
        count_drop(dp, DROP_MAC_PROTO)
        vport.stats.this_cpu()[7] += 1  # tx_dropped
        return
    if (
        skb.tun_info is None
        and not skb.gso_size
        and skb.ip_summed != CHECKSUM_PARTIAL
        and mac_proto == MAC_PROTO_ETHERNET
    ):
        vport.send([skb.data])
    else:
        if mac_proto != MAC_PROTO_ETHERNET:
            skb.protocol = key_get(pkt.key, "eth_type") if not skb.protocol else skb.protocol
        vport.send([skb])


def _output_userspace(dp: Datapath, pkt: _Pkt, a: Userspace, actions: tuple[Action, ...]) -> None:
    from .datapath import N_LOST
    from .uapi import OVS_DP_F_DISPATCH_UPCALL_PER_CPU

    if dp.user_features & OVS_DP_F_DISPATCH_UPCALL_PER_CPU:
        portid = dp._miss_portid(None, 0)
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
    keep = pkt.key & _KEEP_ON_UPDATE
    md = pkt.key & _MD_MASK
    mac_proto = pkt.mac_proto
    rest = keep & ~_MD_MASK
    if mac_proto == MAC_PROTO_NONE:
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
    """Length of the L2 header (Ethernet + in-band VLAN tags), 0 for L3."""
    if pkt.mac_proto != MAC_PROTO_ETHERNET:
        return 0
    d = pkt.skb.data
    off = 12
    n = len(d)
    while (
        off + 6 <= n
        and off < 20
        and ((d[off] << 8) | d[off + 1])
        in (
            ETH_P_8021Q,
            ETH_P_8021AD,
        )
    ):
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
    """(transport offset, L4 protocol) or (-1, 0) when there is none."""
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


_FULL: dict[type, KeyAttr] = {
    Ethernet: Ethernet(0xFFFFFFFFFFFF, 0xFFFFFFFFFFFF),
    Ipv4: Ipv4(0xFFFFFFFF, 0xFFFFFFFF, 0xFF, 0xFF, 0xFF, 0xFF),
    Ipv6: Ipv6((1 << 128) - 1, (1 << 128) - 1, 0xFFFFF, 0xFF, 0xFF, 0xFF, 0xFF),
    Tcp: Tcp(0xFFFF, 0xFFFF),
    Udp: Udp(0xFFFF, 0xFFFF),
    Sctp: Sctp(0xFFFF, 0xFFFF),
    Icmp: Icmp(0xFF, 0xFF),
    Icmpv6: Icmpv6(0xFF, 0xFF),
    Arp: Arp(0xFFFFFFFF, 0xFFFFFFFF, 0xFFFF, 0xFFFFFFFFFFFF, 0xFFFFFFFFFFFF),
    Nd: Nd((1 << 128) - 1, 0xFFFFFFFFFFFF, 0xFFFFFFFFFFFF),
}


def full_mask(attr: KeyAttr) -> KeyAttr:
    """The all-ones mask of a key attribute (what a plain SET means)."""
    if isinstance(attr, Scalar):
        return Scalar(attr.attr, (1 << 128) - 1)
    if isinstance(attr, Mpls):
        return Mpls(tuple(0xFFFFFFFF for _ in attr.lses))
    m = _FULL.get(type(attr))
    if m is None:
        raise ActionError(f"{type(attr).__name__} cannot be set")
    return m


def _m(old: int, value: int, mask: int) -> int:
    """OVS_MASKED(old, value, mask)."""
    return value | (old & ~mask)


def _execute_set(dp: Datapath, pkt: _Pkt, a: Set | SetMasked) -> None:
    attr = a.key
    if isinstance(attr, Tunnel):
        if isinstance(a, SetMasked):
            raise _ActionFailed(-errno.EINVAL)
        pkt.skb.tun_info = attr
        return
    mask = a.mask if isinstance(a, SetMasked) else full_mask(attr)
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
        return
    if isinstance(attr, Ethernet):
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
    elif isinstance(attr, Icmp | Icmpv6):
        assert isinstance(mask, Icmp | Icmpv6)
        _set_icmp(pkt, attr.type, attr.code, mask.type, mask.code, isinstance(attr, Icmpv6))
    elif isinstance(attr, Arp):
        assert isinstance(mask, Arp)
        _set_arp(pkt, attr, mask)
    elif isinstance(attr, Nd):
        assert isinstance(mask, Nd)
        _set_nd(pkt, attr, mask)
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


def _l4_csum_offset(proto: int) -> int:
    return {IPPROTO_TCP: 16, IPPROTO_UDP: 6, IPPROTO_ICMPV6: 2}.get(proto, -1)


def _set_ipv4(pkt: _Pkt, v: Ipv4, m: Ipv4) -> None:
    nh, et = _network(pkt)
    d = bytearray(pkt.skb.data)
    if et != ETH_P_IP or len(d) < nh + 20:
        raise _ActionFailed(-errno.EINVAL)
    partial = pkt.skb.ip_summed == CHECKSUM_PARTIAL
    th, proto = _transport(pkt, nh, et)
    check = (d[nh + 10] << 8) | d[nh + 11]
    for field, off in (("ipv4_src", 12), ("ipv4_dst", 16)):
        fmask = m.src if off == 12 else m.dst
        if not fmask:
            continue
        old = int.from_bytes(d[nh + off : nh + off + 4], "big")
        new = _m(old, v.src if off == 12 else v.dst, fmask) & 0xFFFFFFFF
        if new == old:
            continue
        # update_ip_l4_checksum (not for later fragments)
        if th >= 0:
            _l4_pseudo_update(
                d, th, proto, len(d) - th, old.to_bytes(4, "big"), new.to_bytes(4, "big"), partial
            )
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
        check = csum_replace2(check, old_ttl << 8 | d[nh + 9], ttl << 8 | d[nh + 9])
        d[nh + 8] = ttl
        pkt.key = key_set(pkt.key, "ip_ttl", ttl)
    d[nh + 10] = check >> 8
    d[nh + 11] = check & 0xFF
    pkt.skb.data = bytes(d)


def _l4_pseudo_update(
    d: bytearray, th: int, proto: int, tlen: int, old: bytes, new: bytes, partial: bool
) -> None:
    """Fix the TCP/UDP/ICMPv6 checksum for an address (pseudo-header) change."""
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
        if tlen < 8:
            return
        off = th + 2
    else:
        return
    cs = (d[off] << 8) | d[off + 1]
    if partial:
        # The field holds the folded, uncomplemented pseudo-header sum.
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
        new = _m(old, val, fmask) & ((1 << 128) - 1)
        if new == old:
            continue
        recalc = True
        if off == 24 and _has_routing_header(bytes(d), nh):
            recalc = False
        if recalc and th >= 0:
            _l4_pseudo_update(
                d, th, proto, len(d) - th, old.to_bytes(16, "big"), new.to_bytes(16, "big"), partial
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
    """Whether a routing header with segments left precedes the payload (the
    kernel then leaves the L4 checksum alone on a destination change:
    ``ipv6_find_hdr(..., NEXTHDR_ROUTING, IP6_FH_F_SKIP_RH)``)."""
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
        if not fmask:
            continue
        old = (d[th + off] << 8) | d[th + off + 1]
        new = _m(old, val, fmask) & 0xFFFF
        if new == old:
            continue
        if not partial:
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


def _set_icmp(pkt: _Pkt, typ: int, code: int, mtyp: int, mcode: int, v6: bool) -> None:
    d, th = _l4_header(pkt, IPPROTO_ICMPV6 if v6 else IPPROTO_ICMP, 8 if not v6 else 4)
    old = (d[th] << 8) | d[th + 1]
    nt = _m(d[th], typ, mtyp) & 0xFF
    nc = _m(d[th + 1], code, mcode) & 0xFF
    new = (nt << 8) | nc
    if new != old:
        cs = csum_replace2((d[th + 2] << 8) | d[th + 3], old, new)
        d[th] = nt
        d[th + 1] = nc
        d[th + 2] = cs >> 8
        d[th + 3] = cs & 0xFF
        pkt.key = key_set(key_set(pkt.key, "tp_src", nt), "tp_dst", nc)
        pkt.skb.data = bytes(d)


def _set_arp(pkt: _Pkt, v: Arp, m: Arp) -> None:
    nh, et = _network(pkt)
    if et not in (0x0806, 0x8035) or len(pkt.skb.data) < nh + 28:
        raise _ActionFailed(-errno.EINVAL)
    d = bytearray(pkt.skb.data)
    op = _m((d[nh + 6] << 8) | d[nh + 7], v.op, m.op) & 0xFFFF
    sha = _m(int.from_bytes(d[nh + 8 : nh + 14], "big"), v.sha, m.sha) & 0xFFFFFFFFFFFF
    sip = _m(int.from_bytes(d[nh + 14 : nh + 18], "big"), v.sip, m.sip) & 0xFFFFFFFF
    tha = _m(int.from_bytes(d[nh + 18 : nh + 24], "big"), v.tha, m.tha) & 0xFFFFFFFFFFFF
    tip = _m(int.from_bytes(d[nh + 24 : nh + 28], "big"), v.tip, m.tip) & 0xFFFFFFFF
    d[nh + 6 : nh + 28] = (
        op.to_bytes(2, "big")
        + sha.to_bytes(6, "big")
        + sip.to_bytes(4, "big")
        + tha.to_bytes(6, "big")
        + tip.to_bytes(4, "big")
    )
    k = pkt.key
    k = key_set(k, "ip_proto", op if op <= 0xFF else 0)
    k = key_set(k, "ipv4_src", sip)
    k = key_set(k, "ipv4_dst", tip)
    k = key_set(k, "arp_sha", sha)
    pkt.key = key_set(k, "arp_tha", tha)
    pkt.skb.data = bytes(d)


def _set_nd(pkt: _Pkt, v: Nd, m: Nd) -> None:
    d, th = _l4_header(pkt, IPPROTO_ICMPV6, 24)
    if d[th] not in (135, 136) or d[th + 1] != 0:
        raise _ActionFailed(-errno.EINVAL)
    cs = (d[th + 2] << 8) | d[th + 3]
    old_t = bytes(d[th + 8 : th + 24])
    new_t = (_m(int.from_bytes(old_t, "big"), v.target, m.target) & ((1 << 128) - 1)).to_bytes(
        16, "big"
    )
    if new_t != old_t:
        cs = csum_replace_bytes(cs, old_t, new_t)
        d[th + 8 : th + 24] = new_t
        pkt.key = key_set(pkt.key, "nd_target", int.from_bytes(new_t, "big"))
    off = th + 24
    while off + 8 <= len(d) and d[off + 1] != 0:
        otype, olen = d[off], d[off + 1]
        if otype in (1, 2) and olen == 1:
            field = "nd_sll" if otype == 1 else "nd_tll"
            val, fm = (v.sll, m.sll) if otype == 1 else (v.tll, m.tll)
            old_mac = bytes(d[off + 2 : off + 8])
            new_mac = (_m(int.from_bytes(old_mac, "big"), val, fm) & 0xFFFFFFFFFFFF).to_bytes(
                6, "big"
            )
            if new_mac != old_mac:
                cs = csum_replace_bytes(cs, old_mac, new_mac)
                d[off + 2 : off + 8] = new_mac
                pkt.key = key_set(pkt.key, field, int.from_bytes(new_mac, "big"))
            break  # a packet can only contain one SLL or TLL option
        off += olen * 8
    d[th + 2] = cs >> 8
    d[th + 3] = cs & 0xFF
    pkt.skb.data = bytes(d)


def _set_mpls(pkt: _Pkt, lse: int, mask: int) -> None:
    nh, et = _network(pkt)
    d = pkt.skb.data
    if et not in (ETH_P_MPLS_UC, ETH_P_MPLS_MC) or len(d) < nh + 4:
        raise _ActionFailed(-errno.EINVAL)
    new = _m(int.from_bytes(d[nh : nh + 4], "big"), lse, mask) & 0xFFFFFFFF
    pkt.skb.data = d[:nh] + new.to_bytes(4, "big") + d[nh + 4 :]
    pkt.key = key_set(pkt.key, "mpls_lse0", new)


# ---------------------------------------------------------------------------
# VLAN / MPLS / Ethernet push and pop


def _push_vlan(pkt: _Pkt, tpid: int, tci: int) -> None:
    if pkt.mac_proto != MAC_PROTO_ETHERNET:
        raise _ActionFailed(-errno.EINVAL)
    d = pkt.skb.data
    if key_get(pkt.key, "vlan_tci"):
        pkt.valid = False  # the existing tag becomes the inner one
    else:
        pkt.key = key_set(key_set(pkt.key, "vlan_tpid", tpid), "vlan_tci", tci | 0x1000)
    tag = ((tpid << 16) | (tci & ~0x1000 & 0xFFFF)).to_bytes(4, "big")
    pkt.skb.data = d[:12] + tag + d[12:]


def _pop_vlan(pkt: _Pkt) -> None:
    d = pkt.skb.data
    if pkt.mac_proto != MAC_PROTO_ETHERNET or len(d) < 18:
        return
    if ((d[12] << 8) | d[13]) not in (ETH_P_8021Q, ETH_P_8021AD):
        pkt.key = key_set(key_set(pkt.key, "vlan_tpid", 0), "vlan_tci", 0)
        return
    d = d[:12] + d[16:]
    pkt.skb.data = d
    if len(d) >= 18 and ((d[12] << 8) | d[13]) in (ETH_P_8021Q, ETH_P_8021AD):
        pkt.valid = False  # the next tag becomes the outer one
    else:
        pkt.key = key_set(key_set(pkt.key, "vlan_tpid", 0), "vlan_tci", 0)


def _push_mpls(pkt: _Pkt, lse: int, ethertype: int, mac_len: int) -> None:
    if ethertype not in (ETH_P_MPLS_UC, ETH_P_MPLS_MC):
        raise _ActionFailed(-errno.EINVAL)
    d = pkt.skb.data
    lse_b = (lse & 0xFFFFFFFF).to_bytes(4, "big")
    if mac_len >= ETH_HLEN:
        d = d[: mac_len - 2] + ethertype.to_bytes(2, "big") + lse_b + d[mac_len:]
    else:
        d = d[:mac_len] + lse_b + d[mac_len:]
    pkt.skb.data = d
    if not mac_len:
        pkt.key = key_set(pkt.key, "mac_proto", MAC_PROTO_NONE)
        pkt.skb.protocol = ethertype
    pkt.valid = False


def _pop_mpls(pkt: _Pkt, ethertype: int) -> None:
    nh, et = _network(pkt)
    if et not in (ETH_P_MPLS_UC, ETH_P_MPLS_MC):
        return
    d = pkt.skb.data
    if len(d) < nh + 4:
        raise _ActionFailed(-errno.EINVAL)
    if pkt.mac_proto == MAC_PROTO_ETHERNET and nh >= ETH_HLEN:
        d = d[: nh - 2] + (ethertype & 0xFFFF).to_bytes(2, "big") + d[nh + 4 :]
    else:
        d = d[:nh] + d[nh + 4 :]
        pkt.skb.protocol = ethertype
    pkt.skb.data = d
    if ethertype == 0x6558:  # ETH_P_TEB: the payload is an Ethernet frame
        pkt.key = key_set(pkt.key, "mac_proto", MAC_PROTO_ETHERNET)
        pkt.skb.data = d[nh:] if pkt.mac_proto == MAC_PROTO_NONE else d
    pkt.valid = False


def _push_eth(pkt: _Pkt, src: int, dst: int) -> None:
    if pkt.mac_proto != MAC_PROTO_NONE:
        raise _ActionFailed(-errno.EINVAL)
    proto = pkt.skb.protocol or key_get(pkt.key, "eth_type")
    pkt.skb.data = (
        dst.to_bytes(6, "big") + src.to_bytes(6, "big") + proto.to_bytes(2, "big") + pkt.skb.data
    )
    pkt.skb.protocol = 0
    pkt.key = key_set(pkt.key, "mac_proto", MAC_PROTO_ETHERNET)
    pkt.valid = False


def _pop_eth(pkt: _Pkt) -> None:
    d = pkt.skb.data
    if pkt.mac_proto != MAC_PROTO_ETHERNET or len(d) < ETH_HLEN:
        raise _ActionFailed(-errno.EINVAL)
    et = (d[12] << 8) | d[13]
    if et in (ETH_P_8021Q, ETH_P_8021AD):
        raise _ActionFailed(-errno.EPROTONOSUPPORT)
    pkt.skb.data = d[ETH_HLEN:]
    pkt.skb.protocol = et
    pkt.key = key_set(pkt.key, "mac_proto", MAC_PROTO_NONE)
    pkt.valid = False


def _dec_ttl(pkt: _Pkt) -> bool:
    """``execute_dec_ttl``; False when the TTL would expire."""
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
    if a.alg == OVS_HASH_ALG_L4:
        h = pkt.skb.hash or flow.key_hash(pkt.key)
    elif a.alg == OVS_HASH_ALG_SYM_L4:
        h = key_hash_symmetric(pkt.key)
    else:
        raise _ActionFailed(-errno.EINVAL)
    h = jhash_1word(h, a.basis & 0xFFFFFFFF) or 1
    pkt.key = key_set(pkt.key, "dp_hash", h)


def key_hash_symmetric(key: int) -> int:
    """``__skb_get_hash_symmetric``: the same for both directions of a flow."""
    src, dst = key_get(key, "ipv4_src"), key_get(key, "ipv4_dst")
    s6, d6 = key_get(key, "ipv6_src"), key_get(key, "ipv6_dst")
    sp, dp_ = key_get(key, "tp_src"), key_get(key, "tp_dst")
    a = (min(src, dst), max(src, dst), min(s6, d6), max(s6, d6))
    h = hash((a, key_get(key, "ip_proto"), min(sp, dp_), max(sp, dp_))) & 0xFFFFFFFF
    return h or 1


# ---------------------------------------------------------------------------
# Validation (ovs_nla_copy_actions)


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


_UNSETTABLE: Final = (
    OVS_KEY_ATTR_IN_PORT,
    OVS_KEY_ATTR_RECIRC_ID,
    OVS_KEY_ATTR_DP_HASH,
    OVS_KEY_ATTR_ETHERTYPE,
    OVS_KEY_ATTR_VLAN,
    OVS_KEY_ATTR_TCP_FLAGS,
    OVS_KEY_ATTR_CT_STATE,
    OVS_KEY_ATTR_CT_ZONE,
    OVS_KEY_ATTR_CT_MARK,
    OVS_KEY_ATTR_CT_LABELS,
)


def validate_actions(actions: Sequence[Action], key: int, depth: int = 0) -> None:
    """Reject action lists the kernel would refuse at flow install (EINVAL
    with a message), and conntrack (not supported yet)."""
    if depth > 16:
        raise ActionError("actions nested too deeply")
    for a in actions:
        if isinstance(a, Ct):
            raise NotSupportedError("ct (connection tracking) is not supported yet")
        if isinstance(a, Output) and not 0 <= a.port < 0xFFFFFFFF:
            raise ActionError(f"bad output port {a.port}")
        if isinstance(a, PushVlan):
            if a.tpid not in (ETH_P_8021Q, ETH_P_8021AD):
                raise ActionError(f"push_vlan: bad tpid {a.tpid:#x}")
            if not a.tci & 0x1000:
                raise ActionError("push_vlan: the TCI needs the CFI (tag present) bit")
        if isinstance(a, PushMpls | AddMpls) and a.ethertype not in (ETH_P_MPLS_UC, ETH_P_MPLS_MC):
            raise ActionError(f"push_mpls: bad ethertype {a.ethertype:#x}")
        if isinstance(a, Hash) and a.alg not in (OVS_HASH_ALG_L4, OVS_HASH_ALG_SYM_L4):
            raise ActionError(f"hash: unknown algorithm {a.alg}")
        if isinstance(a, Set | SetMasked):
            attr = a.key
            if isinstance(attr, Scalar) and attr.attr in _UNSETTABLE:
                raise ActionError("set: this key attribute cannot be set")
            if isinstance(a, SetMasked):
                if isinstance(attr, Tunnel):
                    raise ActionError("set: a tunnel cannot be set with a mask")
                m = a.mask
                if isinstance(m, Ipv4 | Ipv6) and (m.proto or m.frag):
                    raise ActionError("set: ip proto and frag cannot be changed")
                if isinstance(m, Ipv6) and m.label & ~0xFFFFF:
                    raise ActionError("set: ipv6 label is 20 bits")
            else:
                if isinstance(attr, Ipv4) and (
                    attr.proto != key_get(key, "ip_proto") or attr.frag != key_get(key, "ip_frag")
                ):
                    raise ActionError("set(ipv4): proto and frag must equal the flow's")
                if isinstance(attr, Ipv6) and (
                    attr.proto != key_get(key, "ip_proto") or attr.frag != key_get(key, "ip_frag")
                ):
                    raise ActionError("set(ipv6): proto and frag must equal the flow's")
                if isinstance(attr, Tunnel) and not (attr.ipv4_dst or attr.ipv6_dst):
                    raise ActionError("set(tunnel): tunnel dst address is zero")
        nested: tuple[Sequence[Action], ...] = ()
        if isinstance(a, Sample | Clone | DecTtl):
            nested = (a.actions,)
        elif isinstance(a, CheckPktLen):
            nested = (a.actions_if_greater, a.actions_if_less_equal)
        for lst in nested:
            validate_actions(lst, key, depth + 1)
