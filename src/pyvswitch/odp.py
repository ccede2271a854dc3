"""OVS's datapath flow text syntax (``lib/odp-util.c``): the flow keys, masks
and actions that ``ovs-dpctl``/``ovs-appctl dpctl/*`` read and print.

* :func:`parse_flow` / :func:`format_flow`: key + mask text <-> ``(key, mask)``
  ints of the :mod:`pyvswitch.flow` layout.  The text is converted to ODP key
  attribute streams and then through :func:`pyvswitch.flow_netlink.match_from_attrs`
  (the kernel's ``ovs_nla_get_match``), so whatever the datapath would refuse
  is refused here too (:class:`~pyvswitch.errors.FlowError`).  Printing goes
  the other way: ints -> attribute streams (``__ovs_nla_put_key``) -> text,
  following ``odp_flow_format`` rule by rule.
* :func:`parse_actions` / :func:`format_actions`: action text <-> tuples of
  :mod:`pyvswitch.uapi` action objects (``format_odp_actions``).
* :func:`format_ufid` / :func:`parse_ufid`, :func:`format_flow_stats`,
  :func:`format_dump_line`: the rest of a ``dump-flows`` line.

Syntax errors raise :class:`~pyvswitch.errors.OdpParseError` naming the
position and the offending token.  The parser accepts everything OVS 3.1's
parser accepts for what pyvswitch can represent, and a little more (e.g.
``recirc(0x1)``, ``push_mpls(...)``, ``hash(l4(N))``, ``drop`` inside nested
action lists); the printer prints exactly what OVS prints.
"""

from __future__ import annotations

import math
import socket
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from . import flow as F
from . import uapi as U
from .errors import OdpParseError
from .flow_netlink import (
    SCALAR_BITS,
    Encap,
    KeyStream,
    NlKeyAttr,
    Style,
    attr_id,
    attr_name,
    key_streams,
    match_from_attrs,
    zero_mask,
)
from .uapi import (
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
    FlowStats,
    Hash,
    Icmp,
    Icmpv6,
    Ipv4,
    Ipv6,
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

__all__ = [
    "ParsedFlow",
    "format_actions",
    "format_dump_line",
    "format_flow",
    "format_flow_stats",
    "format_key_attr",
    "format_key_streams",
    "format_tcp_flags_letters",
    "format_ufid",
    "parse_actions",
    "parse_flow",
    "parse_key_streams",
    "parse_ufid",
]

UINT32_MAX: Final = 0xFFFFFFFF
DELIMITERS: Final = ", \t\r\n"
_DELIMITERS_END: Final = ", \t\r\n)"

# ---------------------------------------------------------------------------
# Small formatting helpers (C printf semantics)


def _cx(v: int) -> str:
    """C ``%#x``: ``0`` for zero, ``0x..`` otherwise."""
    return f"{v:#x}" if v else "0"


def _mac(v: int) -> str:
    b = v.to_bytes(6, "big")
    return f"{b[0]:02x}:{b[1]:02x}:{b[2]:02x}:{b[3]:02x}:{b[4]:02x}:{b[5]:02x}"


def _ip4(v: int) -> str:
    return f"{v >> 24}.{(v >> 16) & 0xFF}.{(v >> 8) & 0xFF}.{v & 0xFF}"


def _ip6(v: int) -> str:
    """``inet_ntop(AF_INET6, ...)`` of the C library (same as OVS prints)."""
    return socket.inet_ntop(socket.AF_INET6, v.to_bytes(16, "big"))


def _hex(data: bytes) -> str:
    """``ds_put_hex``: minimal ``0x..`` form, ``0`` for all zeros."""
    v = int.from_bytes(data, "big")
    return f"{v:#x}" if v else "0"


_ONES48: Final = (1 << 48) - 1
_ONES128: Final = (1 << 128) - 1

# Flag names (bit -> name), iterated low bit first.
TCP_FLAG_NAMES: Final[dict[int, str]] = {
    0x001: "fin",
    0x002: "syn",
    0x004: "rst",
    0x008: "psh",
    0x010: "ack",
    0x020: "urg",
    0x040: "ece",
    0x080: "cwr",
    0x100: "ns",
    0x200: "[200]",
    0x400: "[400]",
    0x800: "[800]",
}
CT_STATE_NAMES: Final[dict[int, str]] = {
    U.OVS_CS_F_NEW: "new",
    U.OVS_CS_F_ESTABLISHED: "est",
    U.OVS_CS_F_RELATED: "rel",
    U.OVS_CS_F_REPLY_DIR: "rpl",
    U.OVS_CS_F_INVALID: "inv",
    U.OVS_CS_F_TRACKED: "trk",
    U.OVS_CS_F_SRC_NAT: "snat",
    U.OVS_CS_F_DST_NAT: "dnat",
}
#: Userspace FLOW_TNL_F_* names (what the text calls tunnel flags).
TUN_FLAG_NAMES: Final[dict[int, str]] = {
    U.FLOW_TNL_F_OAM: "oam",
    U.FLOW_TNL_F_DONT_FRAGMENT: "df",
    U.FLOW_TNL_F_CSUM: "csum",
    U.FLOW_TNL_F_KEY: "key",
}
_FLOW_TNL_F_MASK: Final = 0xF
SLOW_PATH_NAMES: Final[dict[int, str]] = {
    1 << 0: "cfm",
    1 << 1: "bfd",
    1 << 2: "lacp",
    1 << 3: "stp",
    1 << 4: "lldp",
    1 << 5: "action",
    1 << 6: "match",
}


def _format_flags(flags: int, names: Mapping[int, str], delim: str = "|") -> str:
    """``format_flags``."""
    if not flags:
        return "0"
    out: list[str] = []
    bad = 0
    while flags:
        bit = flags & -flags
        name = names.get(bit)
        if name is not None:
            out.append(name)
        else:
            bad |= bit
        flags &= ~bit
    if bad:
        out.append(f"0x{bad:x}")
    return delim.join(out)


def _format_flags_masked(flags: int, mask: int, max_mask: int, names: Mapping[int, str]) -> str:
    """``format_flags_masked``."""
    if mask == max_mask:
        return _format_flags(flags, names)
    if not mask:
        return "0/0"
    out: list[str] = []
    while mask:
        bit = mask & -mask
        out.append(("+" if flags & bit else "-") + names.get(bit, "[Unknown]"))
        mask &= ~bit
    return "".join(out)


def format_tcp_flags_letters(flags: int) -> str:
    """``packet_format_tcp_flags`` (the ``flags:`` of dump-flows stats)."""
    if not flags:
        return "none"
    s = ""
    for bit, ch in (
        (0x002, "S"),
        (0x001, "F"),
        (0x008, "P"),
        (0x004, "R"),
        (0x020, "U"),
        (0x010, "."),
        (0x040, "E"),
        (0x080, "C"),
        (0x100, "N"),
        (0x200, "[200]"),
        (0x400, "[400]"),
        (0x800, "[800]"),
    ):
        if flags & bit:
            s += ch
    return s


# Field printers (format_u8u & co).  ``mask`` None = no mask (exact).  Each
# returns "name=value[/mask]," or "" and the caller chomps the last comma.


def _f_u(name: str, key: int, mask: int | None, full: int, verbose: bool) -> str:
    if mask == 0 and not verbose:
        return ""
    s = f"{name}={key}"
    if mask is not None and mask != full:
        s += "/" + _cx(mask)
    return s + ","


def _f_x(name: str, key: int, mask: int | None, full: int, verbose: bool) -> str:
    if mask == 0 and not verbose:
        return ""
    s = f"{name}={_cx(key)}"
    if mask is not None and mask != full:
        s += "/" + _cx(mask)
    return s + ","


def _f_be64(name: str, key: int, mask: int | None, verbose: bool) -> str:
    # Unlike the other field printers, format_be64() treats "no mask" as an
    # empty mask when deciding whether to print (tun_id of a key printed
    # without mask and without -m is left out), but as full for the "/mask".
    m = 0 if mask is None else mask
    if not (verbose or m):
        return ""
    s = f"{name}=0x{key:x}"
    if mask is not None and mask != (1 << 64) - 1:
        s += "/" + _cx(mask)
    return s + ","


def _f_ip4(name: str, key: int, mask: int | None, verbose: bool) -> str:
    if mask == 0 and not verbose:
        return ""
    s = f"{name}={_ip4(key)}"
    if mask is not None and mask != UINT32_MAX:
        s += "/" + _ip4(mask)
    return s + ","


def _f_ip6(name: str, key: int, mask: int | None, verbose: bool) -> str:
    if mask == 0 and not verbose:
        return ""
    s = f"{name}={_ip6(key)}"
    if mask is not None and mask != _ONES128:
        s += "/" + _ip6(mask)
    return s + ","


def _f_label(name: str, key: int, mask: int | None, verbose: bool) -> str:
    if mask == 0 and not verbose:
        return ""
    s = f"{name}={_cx(key)}"
    if mask is not None and (mask & 0xFFFFF) != 0xFFFFF:
        s += "/" + _cx(mask)
    return s + ","


def _f_eth(name: str, key: int, mask: int | None, verbose: bool) -> str:
    if mask == 0 and not verbose:
        return ""
    if mask is None or mask == _ONES48:
        return f"{name}={_mac(key)},"
    return f"{name}={_mac(key)}/{_mac(mask)},"


def _f_frag(name: str, key: int, mask: int | None) -> str:
    if mask == 0:
        return ""
    if mask is not None and mask != 0xFF:
        return f"error: partial mask not supported for frag ({_cx(mask)}),"
    s = {0: "no", 1: "first", 2: "later"}.get(key, "<error>")
    return f"{name}={s},"


def _chomp(s: str) -> str:
    return s[:-1] if s.endswith(",") else s


def _vlan_tci(tci: int, mask: int, verbose: bool) -> str:
    """``format_vlan_tci``."""
    s = ""
    if verbose or tci & 0xFFF or mask & 0xFFF:
        s += f"vid={tci & 0xFFF}"
        if mask & 0xFFF != 0xFFF:
            s += f"/0x{mask & 0xFFF:x}"
        s += ","
    if verbose or (tci >> 13) & 7 or (mask >> 13) & 7:
        s += f"pcp={(tci >> 13) & 7}"
        if (mask >> 13) & 7 != 7:
            s += f"/0x{(mask >> 13) & 7:x}"
        s += ","
    if not tci & 0x1000:
        s += "cfi=0,"
    return _chomp(s)


def _mpls_lse(lse: int) -> str:
    return f"label={lse >> 12},tc={(lse >> 9) & 7},ttl={lse & 0xFF},bos={(lse >> 8) & 1}"


def _mpls(lses: Sequence[int], masks: Sequence[int] | None) -> str:
    out: list[str] = []
    for i, k in enumerate(lses):
        if masks is None:
            out.append(_mpls_lse(k))
        else:
            m = masks[i]
            out.append(
                f"label={k >> 12}/0x{m >> 12:x},tc={(k >> 9) & 7}/{(m >> 9) & 7:x},"
                f"ttl={k & 0xFF}/0x{m & 0xFF:x},bos={(k >> 8) & 1}/{(m >> 8) & 1:x}"
            )
    return ",".join(out)


# ---------------------------------------------------------------------------
# Key attribute printer (format_odp_key_attr__)


def _mask_constant(ma: NlKeyAttr, ones: bool) -> bool:
    """``odp_mask_is_constant__`` (all-zero or all-one mask)."""
    if type(ma) is Scalar:
        if ma.attr == U.OVS_KEY_ATTR_TCP_FLAGS:
            return (ma.value & 0xFFF) == (0xFFF if ones else 0)
        return ma.value == (_SCALAR_ONES.get(ma.attr, UINT32_MAX) if ones else 0)
    if isinstance(ma, Encap):
        return False
    if isinstance(ma, Tunnel):
        return False
    if isinstance(ma, Mpls):
        want = 0xFFFFFFFF if ones else 0
        return all(x == want for x in ma.lses)
    if isinstance(ma, Ipv6):
        if ones:
            return (
                ma.label & 0xFFFFF == 0xFFFFF
                and ma.proto == ma.tclass == ma.hlimit == ma.frag == 0xFF
                and ma.src == ma.dst == _ONES128
            )
        return not (
            ma.label & 0xFFFFF or ma.proto or ma.tclass or ma.hlimit or ma.frag or ma.src or ma.dst
        )
    widths = _FIELD_WIDTHS[type(ma)]
    for name, bits in widths:
        v = getattr(ma, name)
        if v != (((1 << bits) - 1) if ones else 0):
            return False
    return True


_SCALAR_ONES: Final = {a: (1 << b) - 1 for a, b in SCALAR_BITS.items()}

_FIELD_WIDTHS: Final[dict[type, tuple[tuple[str, int], ...]]] = {
    Ethernet: (("src", 48), ("dst", 48)),
    Ipv4: (("src", 32), ("dst", 32), ("proto", 8), ("tos", 8), ("ttl", 8), ("frag", 8)),
    Tcp: (("src", 16), ("dst", 16)),
    Udp: (("src", 16), ("dst", 16)),
    Sctp: (("src", 16), ("dst", 16)),
    Icmp: (("type", 8), ("code", 8)),
    Icmpv6: (("type", 8), ("code", 8)),
    Arp: (("sip", 32), ("tip", 32), ("op", 16), ("sha", 48), ("tha", 48)),
    Nd: (("target", 128), ("sll", 48), ("tll", 48)),
}


def _tun_uflags(kflags: int) -> int:
    """Kernel TUNNEL_* bits -> userspace FLOW_TNL_F_* bits."""
    u = 0
    if kflags & F.TUNNEL_OAM:
        u |= U.FLOW_TNL_F_OAM
    if kflags & F.TUNNEL_DONT_FRAGMENT:
        u |= U.FLOW_TNL_F_DONT_FRAGMENT
    if kflags & F.TUNNEL_CSUM:
        u |= U.FLOW_TNL_F_CSUM
    if kflags & F.TUNNEL_KEY:
        u |= U.FLOW_TNL_F_KEY
    return u


def _geneve_opts(opts: bytes, mask: bytes | None, verbose: bool) -> str:
    """``format_geneve_opts``."""
    out = ""
    i = 0
    remaining = len(opts)
    while remaining > 0:
        if remaining < 4:
            return out + f"opt len {remaining} less than minimum 4"
        data_len = (opts[i + 3] & 0x1F) * 4
        dlm: int | None = None
        if mask is not None:
            ml = mask[i + 3] & 0x1F
            dlm = 0xFF if ml == 0x1F else ml
        ln = 4 + data_len
        if ln > remaining:
            return out + f"opt len {ln} greater than remaining {remaining}"
        cls = (opts[i] << 8) | opts[i + 1]
        s = "{"
        s += _f_x(
            "class", cls, None if mask is None else (mask[i] << 8) | mask[i + 1], 0xFFFF, verbose
        )
        s += _f_x("type", opts[i + 2], None if mask is None else mask[i + 2], 0xFF, verbose)
        s += _f_u("len", data_len, dlm, 0xFF, verbose)
        data = opts[i + 4 : i + ln]
        mdata = mask[i + 4 : i + ln] if mask is not None else None
        if data_len and (verbose or mdata is None or any(mdata)):
            s += _hex(data)
            if mdata is not None and mdata != b"\xff" * data_len:
                s += "/" + _hex(mdata)
        else:
            s = _chomp(s)
        out += s + "}"
        i += ln
        remaining -= ln
    return out


def _fmt_tunnel(t: Tunnel, mt: Tunnel | None, verbose: bool, set_ctx: bool) -> str:
    """``format_odp_tun_attr``.  ``set_ctx``: a tunnel of a set action, whose
    ``ttl`` is present only when non-zero (keys always carry it)."""
    s = ""
    flags = 0
    mflags = 0
    m = mt
    if t.flags & F.TUNNEL_KEY:
        s += _f_be64("tun_id", t.tun_id, None if m is None else m.tun_id, verbose)
        flags |= F.TUNNEL_KEY
        if m is not None:
            mflags |= F.TUNNEL_KEY
    if t.ipv4_src:
        s += _f_ip4("src", t.ipv4_src, None if m is None else m.ipv4_src, verbose)
    if t.ipv4_dst:
        s += _f_ip4("dst", t.ipv4_dst, None if m is None else m.ipv4_dst, verbose)
    if t.ipv6_src:
        s += _f_ip6("ipv6_src", t.ipv6_src, None if m is None else m.ipv6_src, verbose)
    if t.ipv6_dst:
        s += _f_ip6("ipv6_dst", t.ipv6_dst, None if m is None else m.ipv6_dst, verbose)
    if t.tos:
        s += _f_x("tos", t.tos, None if m is None else m.tos, 0xFF, verbose)
    if not set_ctx or t.ttl:
        s += _f_u("ttl", t.ttl, None if m is None else m.ttl, 0xFF, verbose)
    flags |= t.flags & (F.TUNNEL_DONT_FRAGMENT | F.TUNNEL_CSUM | F.TUNNEL_OAM)
    if t.tp_src:
        s += _f_u("tp_src", t.tp_src, None if m is None else m.tp_src, 0xFFFF, verbose)
    if t.tp_dst:
        s += _f_u("tp_dst", t.tp_dst, None if m is None else m.tp_dst, 0xFFFF, verbose)
    if t.gbp is not None:
        gm: int | None = None
        if m is not None:
            gm = m.gbp or 0
        g = "gbp("
        g += _f_u("id", t.gbp & 0xFFFF, None if gm is None else gm & 0xFFFF, 0xFFFF, verbose)
        g += _f_x(
            "flags", (t.gbp >> 16) & 0xFF, None if gm is None else (gm >> 16) & 0xFF, 0xFF, verbose
        )
        s += "vxlan(" + _chomp(g) + ")),"
    if t.geneve_opts:
        s += "geneve("
        mopts: bytes | None = None
        if m is not None:
            mopts = m.geneve_opts or bytes(len(t.geneve_opts))
        if mopts is not None and len(mopts) != len(t.geneve_opts):
            s += f"value len {len(t.geneve_opts)} different from mask len {len(mopts)}"
        else:
            s += _geneve_opts(t.geneve_opts, mopts, verbose)
        s += "),"
    if m is not None:
        mflags |= m.flags & (F.TUNNEL_DONT_FRAGMENT | F.TUNNEL_CSUM | F.TUNNEL_OAM)
    uf = _tun_uflags(flags)
    if m is None:
        s += "flags(" + _format_flags(uf, TUN_FLAG_NAMES) + "),"
    else:
        um = _tun_uflags(mflags) & _FLOW_TNL_F_MASK
        if verbose or um:
            s += "flags(" + _format_flags_masked(uf, um, _FLOW_TNL_F_MASK, TUN_FLAG_NAMES) + "),"
    return _chomp(s)


def format_key_attr(
    a: NlKeyAttr,
    ma: NlKeyAttr | None = None,
    *,
    verbose: bool = False,
    port_names: Mapping[int, str] | None = None,
    set_ctx: bool = False,
) -> str:
    """``format_odp_key_attr__``: one attribute, ``name(...)``.  ``ma`` is its
    mask (``None``: no mask, i.e. exact)."""
    is_exact = True if ma is None else _mask_constant(ma, True)
    return _format_key_attr(a, ma, is_exact, verbose, port_names, set_ctx)


def _format_key_attr(
    a: NlKeyAttr,
    ma: NlKeyAttr | None,
    is_exact: bool,
    verbose: bool,
    port_names: Mapping[int, str] | None,
    set_ctx: bool,
) -> str:
    t = attr_id(a)
    name = attr_name(t)
    if isinstance(a, Encap):
        inner = ""
        if isinstance(ma, Encap) and ma.attrs and a.attrs:
            inner = format_key_streams(a.attrs, ma.attrs, verbose=verbose)
        elif a.attrs:
            inner = format_key_streams(a.attrs, None, verbose=verbose)
        return f"{name}({inner})"
    if isinstance(a, Tunnel):
        mt = ma if isinstance(ma, Tunnel) else None
        return f"{name}({_fmt_tunnel(a, mt, verbose, set_ctx)})"
    if isinstance(a, Scalar):
        v = a.value
        mv = ma.value if isinstance(ma, Scalar) else None
        me = mv is None or mv == 0  # mask_empty()
        body = ""
        if t in (
            U.OVS_KEY_ATTR_PRIORITY,
            U.OVS_KEY_ATTR_SKB_MARK,
            U.OVS_KEY_ATTR_DP_HASH,
            U.OVS_KEY_ATTR_RECIRC_ID,
        ):
            body = _cx(v) + ("" if is_exact else "/" + _cx(mv or 0))
        elif t == U.OVS_KEY_ATTR_CT_MARK or t == U.OVS_KEY_ATTR_CT_ZONE:
            if verbose or not me:
                body = _cx(v) + ("" if is_exact else "/" + _cx(mv or 0))
        elif t == U.OVS_KEY_ATTR_CT_STATE:
            if verbose:
                body = _cx(v) + ("" if is_exact else "/" + _cx(0 if me else mv or 0))
            elif not is_exact:
                body = _format_flags_masked(v, 0 if me else mv or 0, UINT32_MAX, CT_STATE_NAMES)
            else:
                body = _format_flags(v, CT_STATE_NAMES)
        elif t == U.OVS_KEY_ATTR_CT_LABELS:
            if verbose or (mv is not None and mv):
                body = _hex(v.to_bytes(16, "big"))
                if mv is not None and mv != _ONES128:
                    body += "/" + _hex(mv.to_bytes(16, "big"))
        elif t == U.OVS_KEY_ATTR_IN_PORT:
            if is_exact:
                body = port_names.get(v, str(v)) if port_names else str(v)
            else:
                body = f"{v}/{_cx(mv or 0)}"
        elif t == U.OVS_KEY_ATTR_PACKET_TYPE:
            pm = UINT32_MAX if mv is None else mv
            body = _f_u("ns", v >> 16, pm >> 16, 0xFFFF, verbose)
            body += _f_x("id", v & 0xFFFF, pm & 0xFFFF, 0xFFFF, verbose)
            body = _chomp(body)
        elif t == U.OVS_KEY_ATTR_VLAN:
            body = _vlan_tci(v, 0xFFFF if mv is None else mv, verbose)
        elif t == U.OVS_KEY_ATTR_ETHERTYPE:
            body = f"0x{v:04x}" + ("" if is_exact else f"/0x{mv or 0:04x}")
        elif t == U.OVS_KEY_ATTR_TCP_FLAGS:
            if not is_exact:
                body = _format_flags_masked(v, (mv or 0) & 0xFFF, 0xFFF, TCP_FLAG_NAMES)
            else:
                body = _format_flags(v, TCP_FLAG_NAMES)
        else:
            body = _hex(v.to_bytes((SCALAR_BITS.get(t, 32) + 7) // 8, "big"))
        return f"{name}({body})"
    if isinstance(a, Mpls):
        if not a.lses:
            return f"{name}((bad key length 0)"
        masks: Sequence[int] | None = None
        if not is_exact and isinstance(ma, Mpls):
            if len(ma.lses) != len(a.lses):
                return f"{name}((key length {4 * len(a.lses)} != mask length {4 * len(ma.lses)})"
            masks = ma.lses
        return f"{name}({_mpls(a.lses, masks)})"

    def m(field: str) -> int | None:
        return None if ma is None else int(getattr(ma, field))

    vb = verbose
    if isinstance(a, Ethernet):
        body = _f_eth("src", a.src, m("src"), vb) + _f_eth("dst", a.dst, m("dst"), vb)
    elif isinstance(a, Ipv4):
        body = (
            _f_ip4("src", a.src, m("src"), vb)
            + _f_ip4("dst", a.dst, m("dst"), vb)
            + _f_u("proto", a.proto, m("proto"), 0xFF, vb)
            + _f_x("tos", a.tos, m("tos"), 0xFF, vb)
            + _f_u("ttl", a.ttl, m("ttl"), 0xFF, vb)
            + _f_frag("frag", a.frag, m("frag"))
        )
    elif isinstance(a, Ipv6):
        body = (
            _f_ip6("src", a.src, m("src"), vb)
            + _f_ip6("dst", a.dst, m("dst"), vb)
            + _f_label("label", a.label, m("label"), vb)
            + _f_u("proto", a.proto, m("proto"), 0xFF, vb)
            + _f_x("tclass", a.tclass, m("tclass"), 0xFF, vb)
            + _f_u("hlimit", a.hlimit, m("hlimit"), 0xFF, vb)
            + _f_frag("frag", a.frag, m("frag"))
        )
    elif isinstance(a, Tcp | Udp | Sctp):
        body = _f_u("src", a.src, m("src"), 0xFFFF, vb) + _f_u("dst", a.dst, m("dst"), 0xFFFF, vb)
    elif isinstance(a, Icmp | Icmpv6):
        body = _f_u("type", a.type, m("type"), 0xFF, vb) + _f_u("code", a.code, m("code"), 0xFF, vb)
    elif isinstance(a, Arp):
        body = (
            _f_ip4("sip", a.sip, m("sip"), vb)
            + _f_ip4("tip", a.tip, m("tip"), vb)
            + _f_u("op", a.op, m("op"), 0xFFFF, vb)
            + _f_eth("sha", a.sha, m("sha"), vb)
            + _f_eth("tha", a.tha, m("tha"), vb)
        )
    elif isinstance(a, Nd):
        body = (
            _f_ip6("target", a.target, m("target"), vb)
            + _f_eth("sll", a.sll, m("sll"), vb)
            + _f_eth("tll", a.tll, m("tll"), vb)
        )
    else:  # pragma: no cover - every NlKeyAttr type is handled above
        raise TypeError(f"cannot format {a!r}")
    return f"{name}({_chomp(body)})"


_MaskInfo = dict[int, tuple[NlKeyAttr, bool, bool]]
_MASK_INFO: dict[int, tuple[Sequence[NlKeyAttr], _MaskInfo]] = {}


def _mask_info(mask: Sequence[NlKeyAttr]) -> _MaskInfo:
    """attr id -> (first mask attr of that type, is wildcard, is exact); cached
    per mask stream object (mask streams of flows sharing a mask are shared)."""
    hit = _MASK_INFO.get(id(mask))
    if hit is not None and hit[0] is mask:
        return hit[1]
    info: _MaskInfo = {}
    for x in mask:
        t = attr_id(x)
        if t not in info:
            info[t] = (x, _mask_constant(x, False), _mask_constant(x, True))
    if len(_MASK_INFO) >= 4096:
        _MASK_INFO.clear()
    _MASK_INFO[id(mask)] = (mask, info)
    return info


def format_key_streams(
    key: Sequence[NlKeyAttr],
    mask: Sequence[NlKeyAttr] | None,
    *,
    verbose: bool = False,
    port_names: Mapping[int, str] | None = None,
) -> str:
    """``odp_flow_format``: a key attribute stream and its mask stream."""
    if not key:
        return "<empty>"
    has_mask = bool(mask)
    minfo: _MaskInfo = _mask_info(mask) if mask else {}
    parts: list[str] = []
    has_ethtype_key = False
    has_packet_type_key = False
    for a in key:
        t = attr_id(a)
        mi = minfo.get(t)
        ma = mi[0] if mi is not None else None
        if t == U.OVS_KEY_ATTR_ETHERTYPE:
            has_ethtype_key = True
        elif t == U.OVS_KEY_ATTR_PACKET_TYPE:
            has_packet_type_key = True
        nested = t == U.OVS_KEY_ATTR_ENCAP or t == U.OVS_KEY_ATTR_TUNNEL
        is_wildcard = False
        if has_mask:
            is_wildcard = mi[1] if mi is not None else True
        if verbose or not is_wildcard or nested:
            if is_wildcard and ma is None:
                ma = zero_mask(a)
            is_exact = True if ma is None else (mi[2] if mi is not None else False)
            parts.append(_format_key_attr(a, ma, is_exact, verbose, port_names, False))
        elif t == U.OVS_KEY_ATTR_ETHERNET and not has_packet_type_key:
            parts.append("eth()")
        elif t == U.OVS_KEY_ATTR_PACKET_TYPE and is_wildcard:
            has_packet_type_key = False
    out = ",".join(parts)
    if not has_ethtype_key and mask is not None:
        me = minfo.get(U.OVS_KEY_ATTR_ETHERTYPE)
        if me is not None and isinstance(me[0], Scalar):
            out += f",eth_type(0/0x{me[0].value:04x})"
    return out


def format_flow(
    key: int,
    mask: int | None,
    *,
    verbose: bool = False,
    style: Style = "kernel",
    port_names: Mapping[int, str] | None = None,
) -> str:
    """The text ``dump-flows`` shows for a flow (``odp_flow_format`` of the
    attributes the datapath reports).  ``mask=None`` prints the key alone, as
    an exact match.  ``verbose`` is ``-m``; ``style`` chooses the kernel's or
    the userspace datapath's attribute order (and ``packet_type``)."""
    ks, ms = key_streams(key, mask, style=style)
    return format_key_streams(ks, ms, verbose=verbose, port_names=port_names)


# ---------------------------------------------------------------------------
# Text scanner


class _Scanner:
    __slots__ = ("pos", "text")

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos

    def error(
        self, message: str, pos: int | None = None, token: str | None = None
    ) -> OdpParseError:
        return OdpParseError(message, self.text, self.pos if pos is None else pos, token)

    def peek(self, n: int = 0) -> str:
        i = self.pos + n
        return self.text[i] if i < len(self.text) else ""

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def startswith(self, lit: str) -> bool:
        return self.text.startswith(lit, self.pos)

    def accept(self, lit: str) -> bool:
        if self.text.startswith(lit, self.pos):
            self.pos += len(lit)
            return True
        return False

    def expect(self, lit: str) -> None:
        if not self.accept(lit):
            raise self.error(f"expected '{lit}'")

    def skip_delims(self) -> None:
        t = self.text
        n = len(t)
        i = self.pos
        while i < n and t[i] in DELIMITERS:
            i += 1
        self.pos = i

    def ident(self) -> str:
        t = self.text
        i = self.pos
        while i < len(t) and (t[i].isalnum() or t[i] == "_"):
            i += 1
        return t[self.pos : i]

    def integer(self, bits: int, base: int = 0, what: str = "integer") -> int:
        """C ``%i`` (``base=0``: decimal, ``0x`` hex, leading-0 octal), ``%u``
        (10), ``%x`` (16).  Values must fit ``bits`` (OVS would truncate)."""
        t = self.text
        start = i = self.pos
        neg = False
        if i < len(t) and t[i] in "+-":
            neg = t[i] == "-"
            i += 1
        if (base in (0, 16)) and t.startswith(("0x", "0X"), i):
            base = 16
            i += 2
        elif base == 0:
            base = 8 if i < len(t) and t[i] == "0" else 10
        j = i
        while j < len(t):
            c = t[j]
            d = int(c, 16) if c in "0123456789abcdefABCDEF" else 99
            if d >= base:
                break
            j += 1
        if j == i:
            raise self.error(f"expected {what}", start)
        if neg:
            raise self.error(f"negative {what} not allowed", start)
        value = int(t[i:j], base)
        if value >> bits:
            raise self.error(f"{what} {t[start:j]} out of range (max {(1 << bits) - 1:#x})", start)
        self.pos = j
        return value

    def mac(self) -> int:
        start = self.pos
        t = self.text
        v = 0
        i = self.pos
        for k in range(6):
            j = i
            while j < len(t) and j - i < 2 and t[j] in "0123456789abcdefABCDEF":
                j += 1
            if j == i or (k < 5 and (j >= len(t) or t[j] != ":")):
                raise self.error("invalid Ethernet address", start)
            v = (v << 8) | int(t[i:j], 16)
            i = j + 1 if k < 5 else j
        if i < len(t) and t[i] in "0123456789abcdefABCDEF:":
            raise self.error("invalid Ethernet address", start)
        self.pos = i
        return v

    def ipv4(self) -> int:
        start = self.pos
        t = self.text
        v = 0
        i = self.pos
        for k in range(4):
            j = i
            while j < len(t) and t[j].isdigit() and j - i < 3:
                j += 1
            if j == i or (k < 3 and (j >= len(t) or t[j] != ".")):
                raise self.error("invalid IPv4 address", start)
            octet = int(t[i:j])
            if octet > 255:
                raise self.error("invalid IPv4 address", start)
            v = (v << 8) | octet
            i = j + 1 if k < 3 else j
        if i < len(t) and (t[i].isdigit() or t[i] == "."):
            raise self.error("invalid IPv4 address", start)
        self.pos = i
        return v

    def ipv6(self) -> int:
        start = self.pos
        t = self.text
        j = start
        while j < len(t) and j - start < 46 and t[j] in "0123456789abcdefABCDEF:.":
            j += 1
        try:
            raw = socket.inet_pton(socket.AF_INET6, t[start:j])
        except (OSError, ValueError):
            raise self.error("invalid IPv6 address", start) from None
        self.pos = j
        return int.from_bytes(raw, "big")

    def int_string(self, width: int, what: str = "value") -> bytes:
        """``parse_int_string``: ``0x`` hex of any length (right-aligned), or a
        C integer, into ``width`` bytes."""
        start = self.pos
        t = self.text
        if t.startswith(("0x", "0X"), start):
            i = start + 2
            digits = ""
            while i < len(t):
                if t[i] in " \t\r\n":
                    i += 1
                    continue
                if t[i] in "0123456789abcdefABCDEF":
                    digits += t[i]
                    i += 1
                    continue
                break
            digits = digits.lstrip("0")
            if (len(digits) + 1) // 2 > width:
                raise self.error(f"{what} too long for {width} bytes", start)
            self.pos = i
            return int(digits or "0", 16).to_bytes(width, "big")
        v = self.integer(64, 0, what)
        if v >> (8 * width):
            raise self.error(f"{what} too long for {width} bytes", start)
        return v.to_bytes(width, "big")


def _masked(sc: _Scanner, scan: Callable[[], int], full: int) -> tuple[int, int]:
    """``value[/mask]``; no mask = exact."""
    v = scan()
    if sc.accept("/"):
        return v, scan()
    return v, full


# ---------------------------------------------------------------------------
# Key attribute parser (parse_odp_key_mask_attr)


@dataclass(frozen=True, slots=True)
class _KeyMask:
    key: NlKeyAttr
    mask: NlKeyAttr
    #: For ``set(...)``: would OVS keep a plain SET (mask is all ones / the
    #: tunnel nests differ in size)?
    full: bool


_UNSUPPORTED_KEY_NAMES: Final = {
    "ct_tuple4": "ct_tuple4 (conntrack original tuple)",
    "ct_tuple6": "ct_tuple6 (conntrack original tuple)",
    "nsh": "nsh",
    "nd_ext": "nd_ext (userspace ND extensions)",
}


def _fields(sc: _Scanner, handlers: Mapping[str, Callable[[], None]], what: str) -> None:
    """``SCAN_BEGIN ... SCAN_FINISH``: ``name=value`` fields up to ``)``."""
    if sc.accept(")"):
        return
    while True:
        start = sc.pos
        fname = sc.ident()
        sc.pos += len(fname)
        h = handlers.get(fname) if sc.accept("=") else None
        if h is None:
            raise sc.error(f"unknown field in {what}(...)", start)
        h()
        if sc.accept(","):
            if sc.accept(")"):
                return
            continue
        if sc.accept(")"):
            return
        raise sc.error(f"expected ',' or ')' in {what}(...)")


def _parse_flags(
    sc: _Scanner,
    names: Mapping[int, str],
    allowed: int,
    what: str,
    masked_ok: bool = True,
    delims: str = "|",
) -> tuple[int, int]:
    """``parse_flags`` with end character ``)``: ``V/M``, ``+a-b`` or ``a|b|N``."""
    start = sc.pos
    by_name = {v: k for k, v in names.items()}
    if masked_ok:
        try:
            v = sc.integer(32)
            if sc.accept("/"):
                m = sc.integer(32)
                if v & ~allowed or m & ~allowed:
                    raise sc.error(f"unknown {what} flag(s)", start)
                return v, m
        except OdpParseError as e:
            if e.position != start:
                raise
        sc.pos = start
        if sc.peek() in ("+", "-") and sc.peek():
            flags = mask = 0
            while sc.peek() != ")":
                c = sc.peek()
                if not c:
                    raise sc.error("expected ')'")
                if c not in ("+", "-") or not c:
                    raise sc.error(f"{what} flag must be preceded by '+' (set) or '-' (not set)")
                sc.pos += 1
                nstart = sc.pos
                bit = 0
                for name, b in sorted(by_name.items(), key=lambda kv: -len(kv[0])):
                    if sc.startswith(name) and sc.peek(len(name)) in ("+", "-", ")", ""):
                        bit = b
                        sc.pos += len(name)
                        break
                if not bit or not bit & allowed:
                    raise sc.error(f"unknown {what} flag", nstart)
                if mask & bit:
                    raise sc.error(f"each {what} flag can be specified only once", nstart)
                if c == "+":
                    flags |= bit
                mask |= bit
            return flags, mask
    result = 0
    while sc.peek() != ")":
        if not sc.peek():
            raise sc.error(f"unterminated {what} flags")
        nstart = sc.pos
        if sc.peek().isdigit():
            n = sc.integer(64)
            if n & ~allowed:
                raise sc.error(f"unknown {what} flag(s)", nstart)
            result |= n
        else:
            bit = 0
            for name, b in sorted(by_name.items(), key=lambda kv: -len(kv[0])):
                if sc.startswith(name) and sc.peek(len(name)) in (*delims, ")"):
                    bit = b
                    sc.pos += len(name)
                    break
            if not bit or not bit & allowed:
                raise sc.error(f"unknown {what} flag", nstart)
            result |= bit
        if sc.peek() in delims and sc.peek():
            sc.pos += 1
    return result, UINT32_MAX


def _nla(payload: int) -> int:
    """Aligned size of a netlink attribute with ``payload`` bytes."""
    return (4 + payload + 3) & ~3


def _parse_tunnel(sc: _Scanner) -> _KeyMask:
    """``tunnel(...)`` (after the ``(``)."""
    k: dict[str, int] = {}
    m: dict[str, int] = {}
    kflags = mflags = 0
    ksize = msize = 0
    geneve_k = b""
    geneve_m = b""
    have_geneve = False
    gbp_k: int | None = None
    gbp_m: int | None = None

    def scalar(name: str, scan: Callable[[], int], full: int, size: int) -> Callable[[], None]:
        def h() -> None:
            nonlocal ksize, msize
            v, mv = _masked(sc, scan, full)
            k[name] = v
            m[name] = mv
            ksize += _nla(size)
            msize += _nla(size)

        return h

    def tun_id() -> None:
        nonlocal kflags, mflags
        scalar("tun_id", lambda: sc.integer(64), (1 << 64) - 1, 8)()
        kflags |= F.TUNNEL_KEY
        mflags |= F.TUNNEL_KEY

    def flags() -> None:
        nonlocal kflags, mflags, ksize, msize
        f, fm = _parse_flags(sc, TUN_FLAG_NAMES, _FLOW_TNL_F_MASK, "tunnel")
        sc.expect(")")
        for ubit, kbit in (
            (U.FLOW_TNL_F_DONT_FRAGMENT, F.TUNNEL_DONT_FRAGMENT),
            (U.FLOW_TNL_F_CSUM, F.TUNNEL_CSUM),
            (U.FLOW_TNL_F_OAM, F.TUNNEL_OAM),
        ):
            if f & ubit:
                kflags |= kbit
                ksize += 4
            if fm & ubit:
                mflags |= kbit
                msize += 4

    def vxlan() -> None:
        nonlocal gbp_k, gbp_m, ksize, msize
        start = sc.pos
        if not sc.accept("gbp("):
            raise sc.error("expected gbp( in vxlan(...)", start)
        gid = gmid = gfl = gmfl = 0
        if sc.accept("id="):
            gid, gmid = _masked(sc, lambda: sc.integer(16), 0xFFFF)
        sc.accept(",")
        if sc.accept("flags="):
            gfl, gmfl = _masked(sc, lambda: sc.integer(8), 0xFF)
        if not sc.accept("))"):
            raise sc.error("expected '))' to close vxlan(gbp(...")
        key = (gfl << 16) | gid
        mask = (gmfl << 16) | gmid
        if key:
            gbp_k = key
            ksize += _nla(_nla(4))
        if mask:
            gbp_m = mask
            msize += _nla(_nla(4))

    def geneve() -> None:
        nonlocal geneve_k, geneve_m, have_geneve, ksize, msize
        kb = bytearray()
        mb = bytearray()
        remain = 252
        while sc.peek() == "{" and remain >= 4:
            sc.pos += 1
            remain -= 4
            cls = cls_m = typ = typ_m = 0
            ln_m = 0x1F
            data_len = 0
            if sc.accept("class="):
                cls, cls_m = _masked(sc, lambda: sc.integer(16), 0xFFFF)
            sc.accept(",")
            if sc.accept("type="):
                typ, typ_m = _masked(sc, lambda: sc.integer(8), 0xFF)
            sc.accept(",")
            if sc.accept("len="):
                lstart = sc.pos
                ln, lm = _masked(sc, lambda: sc.integer(8), 0xFF)
                if ln > 124 or ln % 4 or ln > remain:
                    raise sc.error("Geneve option len must be a multiple of 4, at most 124", lstart)
                data_len = ln
                ln_m = lm & 0x1F
            data = bytes(data_len)
            dmask = b"\xff" * data_len
            if sc.accept(","):
                data = sc.int_string(data_len, "Geneve option data")
            if sc.accept("/"):
                dmask = sc.int_string(data_len, "Geneve option mask")
            if not sc.accept("}"):
                raise sc.error("expected '}' in geneve(...)")
            kb += struct.pack(">HBB", cls, typ, data_len // 4) + data
            mb += struct.pack(">HBB", cls_m, typ_m, ln_m) + dmask
            remain -= data_len
        if not sc.accept(")"):
            raise sc.error("expected '{' or ')' in geneve(...)")
        have_geneve = True
        geneve_k = bytes(kb)
        geneve_m = bytes(mb)
        ksize += _nla(len(kb))
        msize += _nla(len(mb))

    def unsupported(what: str) -> Callable[[], None]:
        def h() -> None:
            raise sc.error(f"tunnel {what} options are not supported by pyvswitch", sc.pos)

        return h

    handlers: dict[str, Callable[[], None]] = {
        "tun_id": tun_id,
        "src": scalar("ipv4_src", sc.ipv4, UINT32_MAX, 4),
        "dst": scalar("ipv4_dst", sc.ipv4, UINT32_MAX, 4),
        "ipv6_src": scalar("ipv6_src", sc.ipv6, _ONES128, 16),
        "ipv6_dst": scalar("ipv6_dst", sc.ipv6, _ONES128, 16),
        "tos": scalar("tos", lambda: sc.integer(8), 0xFF, 1),
        "ttl": scalar("ttl", lambda: sc.integer(8), 0xFF, 1),
        "tp_src": scalar("tp_src", lambda: sc.integer(16), 0xFFFF, 2),
        "tp_dst": scalar("tp_dst", lambda: sc.integer(16), 0xFFFF, 2),
    }
    paren: dict[str, Callable[[], None]] = {
        "flags": flags,
        "vxlan": vxlan,
        "geneve": geneve,
        "erspan": unsupported("erspan"),
        "gtpu": unsupported("gtpu"),
    }
    # SCAN_BEGIN_NESTED: fields are "name=value" or "name(...)".
    if not sc.accept(")"):
        while True:
            start = sc.pos
            fname = sc.ident()
            sc.pos += len(fname)
            if sc.accept("="):
                h = handlers.get(fname)
            elif sc.accept("("):
                h = paren.get(fname)
            else:
                h = None
            if h is None:
                raise sc.error("unknown field in tunnel(...)", start)
            h()
            if sc.accept(","):
                if sc.accept(")"):
                    break
                continue
            if sc.accept(")"):
                break
            raise sc.error("expected ',' or ')' in tunnel(...)")
    if have_geneve:
        kflags |= F.TUNNEL_GENEVE_OPT
        mflags |= F.TUNNEL_GENEVE_OPT
    if gbp_k is not None:
        kflags |= F.TUNNEL_VXLAN_OPT
    if gbp_m is not None:
        mflags |= F.TUNNEL_VXLAN_OPT
    key = Tunnel(
        tun_id=k.get("tun_id", 0),
        ipv4_src=k.get("ipv4_src", 0),
        ipv4_dst=k.get("ipv4_dst", 0),
        ipv6_src=k.get("ipv6_src", 0),
        ipv6_dst=k.get("ipv6_dst", 0),
        tos=k.get("tos", 0),
        ttl=k.get("ttl", 0),
        tp_src=k.get("tp_src", 0),
        tp_dst=k.get("tp_dst", 0),
        flags=kflags,
        geneve_opts=geneve_k,
        gbp=gbp_k,
    )
    mask = Tunnel(
        tun_id=m.get("tun_id", 0),
        ipv4_src=m.get("ipv4_src", 0),
        ipv4_dst=m.get("ipv4_dst", 0),
        ipv6_src=m.get("ipv6_src", 0),
        ipv6_dst=m.get("ipv6_dst", 0),
        tos=m.get("tos", 0),
        ttl=m.get("ttl", 0),
        tp_src=m.get("tp_src", 0),
        tp_dst=m.get("tp_dst", 0),
        flags=mflags,
        geneve_opts=geneve_m if have_geneve else b"",
        gbp=gbp_m if gbp_m is not None else (0 if gbp_k is not None else None),
    )
    return _KeyMask(key, mask, ksize != msize)


def _struct(
    sc: _Scanner,
    what: str,
    spec: Mapping[str, tuple[Callable[[], int], int]],
    no_mask: frozenset[str] = frozenset(),
) -> tuple[dict[str, int], dict[str, int]]:
    """Scan ``name=value[/mask]`` fields; unwritten fields are 0 / mask 0."""
    k: dict[str, int] = {}
    m: dict[str, int] = {}

    def make(field: str, scan: Callable[[], int], full: int) -> Callable[[], None]:
        def h() -> None:
            if field in no_mask:
                k[field] = scan()
                m[field] = full
            else:
                k[field], m[field] = _masked(sc, scan, full)

        return h

    _fields(sc, {f: make(f, s, full) for f, (s, full) in spec.items()}, what)
    return k, m


def _frag(sc: _Scanner) -> int:
    start = sc.pos
    word = ""
    while sc.peek() and "a" <= sc.peek() <= "z" and len(word) < 7:
        word += sc.peek()
        sc.pos += 1
    v = {"no": 0, "first": 1, "later": 2}.get(word)
    if v is None:
        raise sc.error("frag must be no, first or later", start)
    return v


def _parse_key_attr(sc: _Scanner, port_names: Mapping[str, int] | None, depth: int = 0) -> _KeyMask:
    """One key attribute with its mask (``parse_odp_key_mask_attr``)."""
    if depth >= 32:
        raise sc.error("attributes nested too deeply")
    start = sc.pos
    name = sc.ident()
    if not name or sc.peek(len(name)) != "(":
        raise sc.error("expected a key attribute name followed by '('", start)
    sc.pos += len(name) + 1
    K = U

    def u32() -> int:
        return sc.integer(32)

    def u16() -> int:
        return sc.integer(16)

    def u8() -> int:
        return sc.integer(8)

    def single(attr: int, scan: Callable[[], int], bits: int) -> _KeyMask:
        full = (1 << bits) - 1
        v, mv = _masked(sc, scan, full)
        sc.expect(")")
        return _KeyMask(Scalar(attr, v), Scalar(attr, mv), mv == full)

    if name in ("skb_priority", "skb_mark", "dp_hash", "ct_mark"):
        attr = {
            "skb_priority": K.OVS_KEY_ATTR_PRIORITY,
            "skb_mark": K.OVS_KEY_ATTR_SKB_MARK,
            "dp_hash": K.OVS_KEY_ATTR_DP_HASH,
            "ct_mark": K.OVS_KEY_ATTR_CT_MARK,
        }[name]
        return single(attr, u32, 32)
    if name == "recirc_id":
        # OVS takes no mask here; accepting one lets -m dumps (recirc_id(0/0))
        # parse back.  A partial mask is refused later (recirc_id must be exact).
        return single(K.OVS_KEY_ATTR_RECIRC_ID, u32, 32)
    if name == "ct_zone":
        return single(K.OVS_KEY_ATTR_CT_ZONE, u16, 16)
    if name == "ct_label":
        v, mv = _masked(sc, lambda: int.from_bytes(sc.int_string(16, "ct_label"), "big"), _ONES128)
        sc.expect(")")
        return _KeyMask(
            Scalar(K.OVS_KEY_ATTR_CT_LABELS, v),
            Scalar(K.OVS_KEY_ATTR_CT_LABELS, mv),
            mv == _ONES128,
        )
    if name == "ct_state":
        f, fm = _parse_flags(sc, CT_STATE_NAMES, 0xFF, "ct_state")
        sc.expect(")")
        return _KeyMask(
            Scalar(K.OVS_KEY_ATTR_CT_STATE, f),
            Scalar(K.OVS_KEY_ATTR_CT_STATE, fm),
            fm == UINT32_MAX,
        )
    if name == "tcp_flags":
        f, fm = _parse_flags(sc, TCP_FLAG_NAMES, 0xFFF, "tcp")
        sc.expect(")")
        fm &= 0xFFFF
        return _KeyMask(
            Scalar(K.OVS_KEY_ATTR_TCP_FLAGS, f), Scalar(K.OVS_KEY_ATTR_TCP_FLAGS, fm), fm == 0xFFFF
        )
    if name == "eth_type":
        return single(K.OVS_KEY_ATTR_ETHERTYPE, u16, 16)
    if name == "in_port":
        pstart = sc.pos
        if sc.peek().isdigit() or sc.peek() in "+-":
            v, mv = _masked(sc, u32, UINT32_MAX)
        else:
            end = sc.text.find(")", pstart)
            pname = sc.text[pstart : end if end >= 0 else len(sc.text)]
            if port_names is None or pname not in port_names:
                raise sc.error(f"unknown port name '{pname}'", pstart, pname or None)
            v, mv = port_names[pname], UINT32_MAX
            sc.pos = pstart + len(pname)
        sc.expect(")")
        return _KeyMask(
            Scalar(K.OVS_KEY_ATTR_IN_PORT, v), Scalar(K.OVS_KEY_ATTR_IN_PORT, mv), mv == UINT32_MAX
        )
    if name == "tunnel":
        return _parse_tunnel(sc)
    if name == "eth":
        k, m = _struct(sc, "eth", {"src": (sc.mac, _ONES48), "dst": (sc.mac, _ONES48)})
        key = Ethernet(k.get("src", 0), k.get("dst", 0))
        mask = Ethernet(m.get("src", 0), m.get("dst", 0))
        return _KeyMask(key, mask, mask == Ethernet(_ONES48, _ONES48))
    if name == "vlan":
        tci = [0x1000, 0x1000]  # CFI starts set in key and mask

        def bf(bits: int, shift: int) -> Callable[[], None]:
            def h() -> None:
                vstart = sc.pos
                v = sc.integer(16)
                if v >> bits:
                    raise sc.error(f"value does not fit {bits} bits", vstart)
                field = ((1 << bits) - 1) << shift
                tci[0] = (tci[0] & ~field) | (v << shift)
                if sc.accept("/"):
                    mstart = sc.pos
                    mv = sc.integer(16)
                    if mv >> bits:
                        raise sc.error(f"mask does not fit {bits} bits", mstart)
                    tci[1] = (tci[1] & ~field) | (mv << shift)
                else:
                    tci[1] |= field

            return h

        _fields(sc, {"vid": bf(12, 0), "pcp": bf(3, 13), "cfi": bf(1, 12)}, "vlan")
        return _KeyMask(
            Scalar(K.OVS_KEY_ATTR_VLAN, tci[0]),
            Scalar(K.OVS_KEY_ATTR_VLAN, tci[1]),
            tci[1] == 0xFFFF,
        )
    if name == "mpls":
        lk = [0, 0, 0]
        lm = [0, 0, 0]
        idx = 0
        seen: set[str] = set()

        def lse(fname: str, bits: int, shift: int) -> Callable[[], None]:
            def h() -> None:
                nonlocal idx, seen
                if fname in seen:
                    seen = set()
                    idx += 1
                    if idx == 3:
                        at = sc.pos - len(fname) - 1
                        raise sc.error("at most 3 MPLS label stack entries", at, fname)
                seen.add(fname)
                vstart = sc.pos
                v = sc.integer(32)
                if v >> bits:
                    raise sc.error(f"value does not fit {bits} bits", vstart)
                field = ((1 << bits) - 1) << shift
                lk[idx] = (lk[idx] & ~field) | (v << shift)
                if sc.accept("/"):
                    mstart = sc.pos
                    mv = sc.integer(32)
                    if mv >> bits:
                        raise sc.error(f"mask does not fit {bits} bits", mstart)
                    lm[idx] = (lm[idx] & ~field) | (mv << shift)
                else:
                    lm[idx] |= field

            return h

        _fields(
            sc,
            {
                "label": lse("label", 20, 12),
                "tc": lse("tc", 3, 9),
                "ttl": lse("ttl", 8, 0),
                "bos": lse("bos", 1, 8),
            },
            "mpls",
        )
        n = idx + 1
        return _KeyMask(
            Mpls(tuple(lk[:n])), Mpls(tuple(lm[:n])), all(x == 0xFFFFFFFF for x in lm[:n])
        )
    if name == "ipv4":
        k, m = _struct(
            sc,
            "ipv4",
            {
                "src": (sc.ipv4, UINT32_MAX),
                "dst": (sc.ipv4, UINT32_MAX),
                "proto": (u8, 0xFF),
                "tos": (u8, 0xFF),
                "ttl": (u8, 0xFF),
                "frag": (lambda: _frag(sc), 0xFF),
            },
            frozenset({"frag"}),
        )
        key4 = Ipv4(**k)
        mask4 = Ipv4(**m)
        return _KeyMask(key4, mask4, _mask_constant(mask4, True))
    if name == "ipv6":

        def label() -> int:
            lstart = sc.pos
            v = sc.integer(32)
            if v & ~0xFFFFF:
                raise sc.error("IPv6 flow label must fit 20 bits", lstart)
            return v

        k, m = _struct(
            sc,
            "ipv6",
            {
                "src": (sc.ipv6, _ONES128),
                "dst": (sc.ipv6, _ONES128),
                "label": (label, 0xFFFFF),
                "proto": (u8, 0xFF),
                "tclass": (u8, 0xFF),
                "hlimit": (u8, 0xFF),
                "frag": (lambda: _frag(sc), 0xFF),
            },
            frozenset({"frag"}),
        )
        # The label mask is 20 bits wide, so an ipv6 set is always masked.
        return _KeyMask(Ipv6(**k), Ipv6(**m), False)
    if name in ("tcp", "udp", "sctp"):
        k, m = _struct(sc, name, {"src": (u16, 0xFFFF), "dst": (u16, 0xFFFF)})
        kt: Tcp | Udp | Sctp
        mt: Tcp | Udp | Sctp
        if name == "tcp":
            kt, mt = Tcp(**k), Tcp(**m)
        elif name == "udp":
            kt, mt = Udp(**k), Udp(**m)
        else:
            kt, mt = Sctp(**k), Sctp(**m)
        return _KeyMask(kt, mt, _mask_constant(mt, True))
    if name in ("icmp", "icmpv6"):
        k, m = _struct(sc, name, {"type": (u8, 0xFF), "code": (u8, 0xFF)})
        ki: Icmp | Icmpv6
        mi: Icmp | Icmpv6
        if name == "icmp":
            ki, mi = Icmp(**k), Icmp(**m)
        else:
            ki, mi = Icmpv6(**k), Icmpv6(**m)
        return _KeyMask(ki, mi, _mask_constant(mi, True))
    if name == "arp":
        k, m = _struct(
            sc,
            "arp",
            {
                "sip": (sc.ipv4, UINT32_MAX),
                "tip": (sc.ipv4, UINT32_MAX),
                "op": (u16, 0xFFFF),
                "sha": (sc.mac, _ONES48),
                "tha": (sc.mac, _ONES48),
            },
        )
        # struct ovs_key_arp has padding, so an arp set is always masked.
        return _KeyMask(Arp(**k), Arp(**m), False)
    if name == "nd":
        k, m = _struct(
            sc,
            "nd",
            {"target": (sc.ipv6, _ONES128), "sll": (sc.mac, _ONES48), "tll": (sc.mac, _ONES48)},
        )
        mn = Nd(**m)
        return _KeyMask(Nd(**k), mn, _mask_constant(mn, True))
    if name == "packet_type":
        k, m = _struct(sc, "packet_type", {"ns": (u16, 0xFFFF), "id": (u16, 0xFFFF)})
        v = (k.get("ns", 0) << 16) | k.get("id", 0)
        mv = (m.get("ns", 0) << 16) | m.get("id", 0)
        return _KeyMask(
            Scalar(K.OVS_KEY_ATTR_PACKET_TYPE, v),
            Scalar(K.OVS_KEY_ATTR_PACKET_TYPE, mv),
            mv == UINT32_MAX,
        )
    if name == "encap":
        ks: list[NlKeyAttr] = []
        ms: list[NlKeyAttr] = []
        while True:
            sc.skip_delims()
            if sc.at_end():
                raise sc.error("unterminated encap(...)")
            if sc.accept(")"):
                break
            km = _parse_key_attr(sc, port_names, depth + 1)
            _append(ks, ms, km)
        return _KeyMask(Encap(tuple(ks)), Encap(tuple(ms)), False)
    if name in _UNSUPPORTED_KEY_NAMES:
        raise sc.error(
            f"key attribute {_UNSUPPORTED_KEY_NAMES[name]} is not supported by pyvswitch",
            start,
            name,
        )
    raise sc.error(f"unknown key attribute '{name}'", start, name)


# ---------------------------------------------------------------------------
# UFID


def format_ufid(b: bytes) -> str:
    """``odp_format_ufid`` without the ``ufid:`` prefix: the 16 bytes as the
    UUID OVS prints (four host-order -- little-endian -- 32-bit words)."""
    b = bytes(b[:16]).ljust(16, b"\0")
    p0, p1, p2, p3 = struct.unpack("<4I", b)
    return f"{p0:08x}-{p1 >> 16:04x}-{p1 & 0xFFFF:04x}-{p2 >> 16:04x}-{p2 & 0xFFFF:04x}{p3:08x}"


def _scan_uuid(sc: _Scanner) -> bytes:
    start = sc.pos
    t = sc.text[start : start + 36]
    hexd = "0123456789abcdefABCDEF"
    ok = len(t) == 36 and all(
        (c == "-") if i in (8, 13, 18, 23) else (c in hexd) for i, c in enumerate(t)
    )
    if not ok:
        raise sc.error("invalid UFID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", start)
    sc.pos += 36
    p0 = int(t[0:8], 16)
    p1 = (int(t[9:13], 16) << 16) | int(t[14:18], 16)
    p2 = (int(t[19:23], 16) << 16) | int(t[24:28], 16)
    p3 = int(t[28:36], 16)
    return struct.pack("<4I", p0, p1, p2, p3)


def parse_ufid(s: str) -> bytes:
    """Parse ``[ufid:]xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`` to 16 bytes."""
    sc = _Scanner(s.strip())
    sc.accept("ufid:")
    b = _scan_uuid(sc)
    if not sc.at_end():
        raise sc.error("trailing characters after UFID")
    return b


# ---------------------------------------------------------------------------
# Flows


@dataclass(frozen=True, slots=True)
class ParsedFlow:
    """A parsed flow: key and mask ints (:mod:`pyvswitch.flow` layout) and the
    optional UFID from a ``ufid:`` prefix."""

    key: int
    mask: int
    ufid: bytes | None = None


def parse_key_streams(
    text: str, port_names: Mapping[str, int] | None = None
) -> tuple[KeyStream, KeyStream, bytes | None]:
    """Flow text to ``(key stream, mask stream, ufid)`` (``odp_flow_from_string``)."""
    sc = _Scanner(text)
    ks: list[NlKeyAttr] = []
    ms: list[NlKeyAttr] = []
    ufid: bytes | None = None
    while True:
        sc.skip_delims()
        if sc.at_end():
            break
        if sc.startswith("ufid:"):
            if ufid is not None:
                raise sc.error("more than one ufid:")
            sc.pos += 5
            ufid = _scan_uuid(sc)
            continue
        km = _parse_key_attr(sc, port_names)
        _append(ks, ms, km)
    return tuple(ks), tuple(ms), ufid


def _append(ks: list[NlKeyAttr], ms: list[NlKeyAttr], km: _KeyMask) -> None:
    # ``eth_type(0/0xffff)`` is how an 802.2 frame prints (key without an
    # ETHERTYPE, mask with one); read it back that way instead of as the
    # invalid ethertype 0.
    if not (
        isinstance(km.key, Scalar) and km.key.attr == U.OVS_KEY_ATTR_ETHERTYPE and not km.key.value
    ):
        ks.append(km.key)
    ms.append(km.mask)


def parse_flow(
    text: str,
    port_names: Mapping[str, int] | None = None,
    *,
    style: Style = "kernel",
) -> ParsedFlow:
    """Parse ``[ufid:UUID ]key_attr,key_attr,...`` (the flow syntax of
    ``ovs-dpctl add-flow``) into key and mask ints.

    Fields written without ``/mask`` are exact, unwritten ones wildcarded,
    unwritten attributes absent.  The result then goes through the datapath's
    checks (:func:`~pyvswitch.flow_netlink.match_from_attrs`); ``style`` picks
    the kernel's or dpif-netdev's defaults for attributes the text leaves out.
    Raises :class:`OdpParseError` (syntax) or :class:`FlowError` (semantics).
    """
    ks, ms, ufid = parse_key_streams(text, port_names)
    if not ks:
        raise OdpParseError("empty flow key", text, len(text), "<end of input>")
    key, mask = match_from_attrs(ks, ms, style=style)
    return ParsedFlow(key, mask, ufid)


# ---------------------------------------------------------------------------
# Actions: printing (format_odp_actions)

_COOKIE_LEN: Final = 48
_OFPP_NONE: Final = 0xFFFF
USER_ACTION_COOKIE_SFLOW: Final = 1
USER_ACTION_COOKIE_SLOW_PATH: Final = 2
USER_ACTION_COOKIE_FLOW_SAMPLE: Final = 3
USER_ACTION_COOKIE_IPFIX: Final = 4
USER_ACTION_COOKIE_CONTROLLER: Final = 5


def _cookie_header(ctype: int) -> bytearray:
    """``struct user_action_cookie`` (host order, x86 layout, 48 bytes):
    type u16, ofp_in_port u16 (OFPP_NONE), uuid[16] zero, pad, union at 24."""
    b = bytearray(_COOKIE_LEN)
    struct.pack_into("<HH", b, 0, ctype, _OFPP_NONE)
    return b


def _port(port: int, names: Mapping[int, str] | None) -> str:
    if names:
        n = names.get(port)
        if n is not None:
            return n
    return str(port)


def _fmt_userspace(a: Userspace, names: Mapping[int, str] | None) -> str:
    s = f"userspace(pid={a.pid}"
    ud = a.userdata
    if ud is not None:
        unspec = True
        if len(ud) == _COOKIE_LEN:
            ctype = struct.unpack_from("<H", ud, 0)[0]
            unspec = False
            if ctype == USER_ACTION_COOKIE_SFLOW:
                tci = struct.unpack_from(">H", ud, 24)[0]
                output = struct.unpack_from("<I", ud, 28)[0]
                s += f",sFlow(vid={tci & 0xFFF},pcp={(tci >> 13) & 7},output={output})"
            elif ctype == USER_ACTION_COOKIE_SLOW_PATH:
                reason = struct.unpack_from("<I", ud, 28)[0]
                s += ",slow_path(" + _format_flags(reason, SLOW_PATH_NAMES, ",") + ")"
            elif ctype == USER_ACTION_COOKIE_FLOW_SAMPLE:
                prob = struct.unpack_from("<H", ud, 24)[0]
                cset, dom, point, out, direction = struct.unpack_from("<IIIIi", ud, 28)
                s += (
                    f",flow_sample(probability={prob},collector_set_id={cset},"
                    f"obs_domain_id={dom},obs_point_id={point},output_port={_port(out, names)}"
                )
                if direction == 1:
                    s += ",ingress"
                elif direction == 2:
                    s += ",egress"
                s += ")"
            elif ctype == USER_ACTION_COOKIE_IPFIX:
                out = struct.unpack_from("<I", ud, 24)[0]
                s += f",ipfix(output_port={_port(out, names)})"
            elif ctype == USER_ACTION_COOKIE_CONTROLLER:
                dont_send, cont, reason, recirc = struct.unpack_from("<BBHI", ud, 24)
                rule_cookie = struct.unpack_from(">Q", ud, 32)[0]
                cid, max_len = struct.unpack_from("<HH", ud, 40)
                s += (
                    f",controller(reason={reason},dont_send={int(bool(dont_send))}"
                    f",continuation={int(bool(cont))},recirc_id={recirc}"
                    f",rule_cookie={_cx(rule_cookie)},controller_id={cid},max_len={max_len})"
                )
            else:
                unspec = True
        if unspec:
            s += ",userdata(" + ud.hex() + ")"
    if a.actions:
        s += ",actions"
    if a.egress_tun_port is not None:
        s += ",tunnel_out_port=" + _port(a.egress_tun_port, names)
    return s + ")"


def _fmt_ct(a: Ct) -> str:
    parts: list[str] = []
    if a.commit:
        parts.append("commit")
    if a.force_commit:
        parts.append("force_commit")
    if a.zone:
        parts.append(f"zone={a.zone}")
    if a.mark is not None:
        parts.append(f"mark={_cx(a.mark[0])}/{_cx(a.mark[1])}")
    if a.labels is not None:
        v, m = a.labels
        lab = "label=" + _hex(v.to_bytes(16, "big"))
        if m != _ONES128:
            lab += "/" + _hex(m.to_bytes(16, "big"))
        parts.append(lab)
    if a.helper is not None:
        parts.append(f"helper={a.helper}")
    if a.timeout is not None:
        parts.append(f"timeout={a.timeout}")
    if a.nat is not None:
        parts.append(a.nat)
    return "ct(" + ",".join(parts) + ")" if parts else "ct"


def _fmt_action(a: Action, names: Mapping[int, str] | None) -> str:
    if isinstance(a, Output):
        return _port(a.port, names)
    if isinstance(a, Userspace):
        return _fmt_userspace(a, names)
    if isinstance(a, Set):
        return "set(" + format_key_attr(a.key, None, verbose=True, set_ctx=True) + ")"
    if isinstance(a, SetMasked):
        return "set(" + format_key_attr(a.key, a.mask, verbose=False, set_ctx=True) + ")"
    if isinstance(a, PushVlan):
        s = "push_vlan("
        if a.tpid != F.ETH_P_8021Q:
            s += f"tpid=0x{a.tpid:04x},"
        return s + _vlan_tci(a.tci, 0xFFFF, False) + ")"
    if isinstance(a, PopVlan):
        return "pop_vlan"
    if isinstance(a, Sample):
        pct = (100.0 * a.probability) / UINT32_MAX
        return f"sample(sample={pct:.1f}%,actions({format_actions(a.actions, names)}))"
    if isinstance(a, Recirc):
        return f"recirc({_cx(a.recirc_id)})"
    if isinstance(a, Hash):
        if a.alg == U.OVS_HASH_ALG_L4:
            return f"hash(l4({a.basis}))"
        if a.alg == U.OVS_HASH_ALG_SYM_L4:
            return f"hash(sym_l4({a.basis}))"
        return f"hash(Unknown hash algorithm({a.alg}))"
    if isinstance(a, PushMpls):
        return f"push_mpls({_mpls_lse(a.lse)},eth_type=0x{a.ethertype:x})"
    if isinstance(a, PopMpls):
        return f"pop_mpls(eth_type=0x{a.ethertype:x})"
    if isinstance(a, AddMpls):
        return f"add_mpls({_mpls_lse(a.lse)},eth_type=0x{a.ethertype:x})"
    if isinstance(a, Ct):
        return _fmt_ct(a)
    if isinstance(a, CtClear):
        return "ct_clear"
    if isinstance(a, Trunc):
        return f"trunc({a.max_len})"
    if isinstance(a, PushEth):
        return f"push_eth(src={_mac(a.src)},dst={_mac(a.dst)})"
    if isinstance(a, PopEth):
        return "pop_eth"
    if isinstance(a, Meter):
        return f"meter({a.meter_id})"
    if isinstance(a, Clone):
        return f"clone({format_actions(a.actions, names)})"
    if isinstance(a, CheckPktLen):
        return (
            f"check_pkt_len(size={a.pkt_len},gt({format_actions(a.actions_if_greater, names)}),"
            f"le({format_actions(a.actions_if_less_equal, names)}))"
        )
    if isinstance(a, DecTtl):
        return f"dec_ttl(le_1({format_actions(a.actions, names)}))"
    if isinstance(a, Drop):
        return "drop"
    raise TypeError(f"not an action: {a!r}")  # pragma: no cover


def format_actions(actions: Sequence[Action], port_names: Mapping[int, str] | None = None) -> str:
    """``format_odp_actions``: comma-separated; an empty list is ``drop``."""
    if not actions:
        return "drop"
    return ",".join(_fmt_action(a, port_names) for a in actions)


# ---------------------------------------------------------------------------
# Actions: parsing (odp_actions_from_string)

_UNSUPPORTED_ACTIONS: Final = {
    "tnl_push": "tnl_push (userspace tunnel push)",
    "tnl_pop": "tnl_pop (userspace tunnel pop)",
    "lb_output": "lb_output (userspace balance-tcp bond output)",
    "push_nsh": "push_nsh",
    "pop_nsh": "pop_nsh",
    "psample": "psample",
}


def _scan_ipv6_nat(sc: _Scanner) -> int:
    if sc.accept("["):
        v = sc.ipv6()
        sc.expect("]")
        return v
    return sc.ipv6()


def _parse_nat(sc: _Scanner) -> str:
    """``scan_ct_nat`` (after ``nat``) -> the normalised text OVS prints."""
    if not sc.accept("("):
        return "nat"
    snat = dnat = persistent = phash = prandom = False
    addr_len = 0
    amin = amax = 0
    pmin = pmax = 0
    while True:
        sc.skip_delims()
        if sc.accept(")"):
            break
        start = sc.pos
        word = sc.ident()
        sc.pos += len(word)
        if word in ("src", "dst"):
            if word == "src":
                snat = True
            else:
                dnat = True
            if sc.accept("="):
                c = sc.peek()
                save = sc.pos
                is4 = False
                if c.isdigit():
                    try:
                        amin = sc.ipv4()
                        is4 = True
                    except OdpParseError:
                        sc.pos = save
                if is4:
                    addr_len = 4
                    if sc.accept("-"):
                        amax = sc.ipv4()
                else:
                    addr_len = 16
                    amin = _scan_ipv6_nat(sc)
                    if sc.accept("-"):
                        amax = _scan_ipv6_nat(sc)
                if sc.accept(":"):
                    pmin = sc.integer(16, 10, "port")
                    if sc.accept("-"):
                        pmax = sc.integer(16, 10, "port")
        elif word == "persistent":
            persistent = True
        elif word == "hash":
            phash = True
        elif word == "random":
            prandom = True
        else:
            raise sc.error("unknown nat(...) option", start)
    if snat and dnat:
        raise sc.error("nat(...) takes only one of src and dst")
    if (addr_len and amax and amax < amin) or (pmax and pmax < pmin):
        raise sc.error("nat(...) range maximum is below its minimum")
    if phash and prandom:
        raise sc.error("nat(...) takes only one of hash and random")
    # nl_msg_put_ct_nat + format_odp_ct_nat
    if not (snat or dnat):
        return "nat"
    s = "nat(" + ("src" if snat else "dst")
    if addr_len:
        s += "="
        if addr_len == 4:
            s += _ip4(amin)
            if amax > amin:
                s += "-" + _ip4(amax)
        else:
            br = bool(pmin)
            s += f"[{_ip6(amin)}]" if br else _ip6(amin)
            if amax > amin:
                s += "-" + (f"[{_ip6(amax)}]" if br else _ip6(amax))
        if pmin:
            s += f":{pmin}"
            if pmax > pmin:
                s += f"-{pmax}"
        s += ","
        if persistent:
            s += "persistent,"
        if phash:
            s += "hash,"
        if prandom:
            s += "random,"
    return _chomp(s) + ")"


def _parse_ct(sc: _Scanner) -> Ct:
    """``parse_conntrack_action`` (after ``ct``)."""
    commit = force = False
    zone = 0
    mark = (0, 0)
    labels = (0, 0)
    helper: str | None = None
    timeout: str | None = None
    nat: str | None = None
    if sc.accept("("):
        while True:
            sc.skip_delims()
            if sc.accept(")"):
                break
            start = sc.pos
            if sc.accept("commit"):
                commit = True
            elif sc.accept("force_commit"):
                force = True
            elif sc.accept("zone="):
                zone = sc.integer(16, 10, "zone")
            elif sc.accept("mark="):
                mv = sc.integer(32, 16, "mark")
                mm = sc.integer(32, 16, "mark mask") if sc.accept("/") else UINT32_MAX
                mark = (mv, mm)
            elif sc.accept("label="):
                lv = int.from_bytes(sc.int_string(16, "label"), "big")
                lm = (
                    int.from_bytes(sc.int_string(16, "label mask"), "big")
                    if sc.accept("/")
                    else _ONES128
                )
                labels = (lv, lm)
            elif sc.accept("helper=") or sc.accept("timeout="):
                is_helper = sc.text[start] == "h"
                vstart = sc.pos
                while sc.peek() and sc.peek() not in _DELIMITERS_END:
                    sc.pos += 1
                val = sc.text[vstart : sc.pos]
                limit = 15 if is_helper else 31
                if not val or len(val) > limit:
                    raise sc.error(
                        f"ct {'helper' if is_helper else 'timeout'} must be 1-{limit} characters",
                        vstart,
                    )
                if is_helper:
                    helper = val
                else:
                    timeout = val
            elif sc.accept("nat"):
                nat = _parse_nat(sc)
            else:
                raise sc.error("unknown ct(...) option", start)
            if sc.peek() and sc.peek() not in _DELIMITERS_END:
                raise sc.error("expected ',' or ')' in ct(...)")
    if commit and force:
        raise sc.error("ct(...) takes only one of commit and force_commit")
    return Ct(
        commit=commit,
        force_commit=force,
        zone=zone,
        mark=mark if mark[1] else None,
        labels=labels if labels[1] else None,
        helper=helper,
        timeout=timeout,
        nat=nat,
    )


def _parse_userspace(sc: _Scanner) -> Userspace:
    """``parse_odp_userspace_action`` (after ``userspace(``)."""
    sc.expect("pid=")
    pid = sc.integer(32, 0, "pid")
    userdata: bytes = bytes(_COOKIE_LEN)
    if sc.accept(",sFlow("):
        sc.expect("vid=")
        vid = sc.integer(32, 0, "vid")
        sc.expect(",pcp=")
        pcp = sc.integer(32, 0, "pcp")
        sc.expect(",output=")
        output = sc.integer(32, 0, "output")
        sc.expect(")")
        tci = (vid | (pcp << 13)) & 0xFFFF
        if tci:
            tci |= 0x1000
        b = _cookie_header(USER_ACTION_COOKIE_SFLOW)
        struct.pack_into(">H", b, 24, tci)
        struct.pack_into("<I", b, 28, output)
        userdata = bytes(b)
    elif sc.accept(",slow_path("):
        reason, _ = _parse_flags(sc, SLOW_PATH_NAMES, 0x7F, "slow_path", False, "|,")
        sc.expect(")")
        b = _cookie_header(USER_ACTION_COOKIE_SLOW_PATH)
        struct.pack_into("<I", b, 28, reason)
        userdata = bytes(b)
    elif sc.accept(",flow_sample("):
        vals = []
        for i, fld in enumerate(
            ("probability", "collector_set_id", "obs_domain_id", "obs_point_id", "output_port")
        ):
            sc.expect(("," if i else "") + fld + "=")
            vals.append(sc.integer(16 if i == 0 else 32, 0, fld))
        direction = 0
        if sc.accept(",ingress"):
            direction = 1
        elif sc.accept(",egress"):
            direction = 2
        sc.expect(")")
        b = _cookie_header(USER_ACTION_COOKIE_FLOW_SAMPLE)
        struct.pack_into("<H", b, 24, vals[0])
        struct.pack_into("<IIIIi", b, 28, *vals[1:], direction)
        userdata = bytes(b)
    elif sc.accept(",ipfix("):
        sc.expect("output_port=")
        out = sc.integer(32, 0, "output_port")
        sc.expect(")")
        b = _cookie_header(USER_ACTION_COOKIE_IPFIX)
        struct.pack_into("<I", b, 24, out)
        userdata = bytes(b)
    elif sc.accept(",controller("):
        sc.expect("reason=")
        reason = sc.integer(16, 10, "reason")
        sc.expect(",dont_send=")
        dont_send = sc.integer(8, 10, "dont_send")
        sc.expect(",continuation=")
        cont = sc.integer(8, 10, "continuation")
        sc.expect(",recirc_id=")
        recirc = sc.integer(32, 10, "recirc_id")
        sc.expect(",rule_cookie=")
        rule_cookie = sc.integer(64, 16, "rule_cookie")
        sc.expect(",controller_id=")
        cid = sc.integer(16, 10, "controller_id")
        sc.expect(",max_len=")
        max_len = sc.integer(16, 10, "max_len")
        sc.expect(")")
        b = _cookie_header(USER_ACTION_COOKIE_CONTROLLER)
        struct.pack_into("<BBHI", b, 24, int(bool(dont_send)), int(bool(cont)), reason, recirc)
        struct.pack_into(">Q", b, 32, rule_cookie)
        struct.pack_into("<HH", b, 40, cid, max_len)
        userdata = bytes(b)
    elif sc.accept(",userdata("):
        hstart = sc.pos
        digits = ""
        while sc.peek() and (sc.peek() in "0123456789abcdefABCDEF" or sc.peek() in " \t\r\n"):
            if sc.peek() not in " \t\r\n":
                digits += sc.peek()
            sc.pos += 1
        if len(digits) % 2:
            raise sc.error("userdata needs an even number of hex digits", hstart)
        sc.expect(")")
        userdata = bytes.fromhex(digits).ljust(8, b"\0")
    include_actions = sc.accept(",actions")
    tun_port: int | None = None
    if sc.accept(",tunnel_out_port="):
        tun_port = sc.integer(32, 0, "tunnel_out_port")
    sc.expect(")")
    return Userspace(pid=pid, userdata=userdata, egress_tun_port=tun_port, actions=include_actions)


def _parse_set(sc: _Scanner, port_names: Mapping[str, int] | None) -> Action:
    start = sc.pos
    km = _parse_key_attr(sc, port_names)
    sc.expect(")")
    key, mask = km.key, km.mask
    if isinstance(key, Encap) or isinstance(mask, Encap):
        raise sc.error("set(encap(...)) is not supported by pyvswitch", start, "encap")
    if km.full:
        return Set(key)
    return SetMasked(key, mask)


def _mpls_fields(sc: _Scanner, names: Sequence[str]) -> int:
    """``label=L,tc=T,ttl=TT,bos=B`` -> LSE."""
    vals = []
    for i, fld in enumerate(names):
        sc.expect(("," if i else "") + fld + "=")
        vals.append(sc.integer(32, 0, fld))
    label, tc, ttl, bos = vals
    for v, bits, what in ((label, 20, "label"), (tc, 3, "tc"), (ttl, 8, "ttl"), (bos, 1, "bos")):
        if v >> bits:
            raise sc.error(f"MPLS {what} {v} does not fit {bits} bits")
    return (label << 12) | (tc << 9) | (bos << 8) | ttl


def _parse_action_list(
    sc: _Scanner, port_names: Mapping[str, int] | None, depth: int
) -> tuple[Action, ...]:
    """``parse_action_list``: actions up to (not including) ``)``; a lone
    ``drop`` is the empty list."""
    out: list[Action] = []
    while True:
        sc.skip_delims()
        if sc.peek() == ")":
            break
        if sc.at_end():
            raise sc.error("unterminated action list")
        if sc.text.startswith(("drop", "DROP", "Drop"), sc.pos) and sc.peek(4) in (
            *DELIMITERS,
            ")",
        ):
            sc.pos += 4
            continue
        out.append(_parse_action(sc, port_names, depth + 1))
    return tuple(out)


def _parse_action(sc: _Scanner, port_names: Mapping[str, int] | None, depth: int) -> Action:
    """``parse_odp_action__``."""
    if depth >= 32:
        raise sc.error("actions nested too deeply")
    start = sc.pos
    c = sc.peek()
    if c.isdigit():
        return Output(sc.integer(32, 0, "port"))
    if sc.accept("trunc("):
        v = sc.integer(32, 0, "max_len")
        sc.expect(")")
        return Trunc(v)
    if port_names:
        j = start
        while j < len(sc.text) and sc.text[j] not in DELIMITERS:
            j += 1
        tok = sc.text[start:j]
        if tok in port_names:
            sc.pos = j
            return Output(port_names[tok])
    if sc.accept("recirc("):
        v = sc.integer(32, 0, "recirc id")
        sc.expect(")")
        return Recirc(v)
    if sc.accept("userspace("):
        return _parse_userspace(sc)
    if sc.accept("set("):
        return _parse_set(sc, port_names)
    if sc.accept("push_vlan("):
        tpid = F.ETH_P_8021Q
        if sc.accept("tpid="):
            tpid = sc.integer(16, 0, "tpid")
            sc.expect(",")
        sc.expect("vid=")
        vstart = sc.pos
        vid = sc.integer(32, 0, "vid")
        sc.expect(",pcp=")
        pstart = sc.pos
        pcp = sc.integer(32, 0, "pcp")
        cfi = 1
        if sc.accept(",cfi="):
            cfi = sc.integer(32, 0, "cfi")
        sc.expect(")")
        if vid > 0xFFF:
            raise sc.error("vid must fit 12 bits", vstart)
        if pcp > 7:
            raise sc.error("pcp must fit 3 bits", pstart)
        return PushVlan(tpid, vid | (pcp << 13) | (0x1000 if cfi else 0))
    if sc.accept("pop_vlan"):
        return PopVlan()
    if sc.accept("meter("):
        v = sc.integer(32, 0, "meter id")
        sc.expect(")")
        return Meter(v)
    if sc.accept("sample(sample="):
        pstart = sc.pos
        j = pstart
        t = sc.text
        if j < len(t) and t[j] in "+-":
            j += 1
        while j < len(t) and (t[j].isdigit() or t[j] in ".eE+-"):
            j += 1
        try:
            pct = float(t[pstart:j])
        except ValueError:
            raise sc.error("expected a percentage", pstart) from None
        if not 0.0 <= pct <= 100.0:
            raise sc.error("sample percentage must be between 0 and 100", pstart)
        sc.pos = j
        sc.expect("%,actions(")
        prob = math.floor(UINT32_MAX * (pct / 100.0) + 0.5)
        prob = 0 if prob <= 0 else min(prob, UINT32_MAX)
        acts = _parse_action_list(sc, port_names, depth)
        sc.expect("))")
        return Sample(prob, acts)
    if sc.accept("clone("):
        acts = _parse_action_list(sc, port_names, depth)
        sc.expect(")")
        return Clone(acts)
    if sc.accept("ct_clear"):
        return CtClear()
    if sc.accept("check_pkt_len(size="):
        size = sc.integer(16, 0, "size")
        sc.expect(",gt(")
        gt = _parse_action_list(sc, port_names, depth)
        sc.expect("),le(")
        le = _parse_action_list(sc, port_names, depth)
        sc.expect("))")
        return CheckPktLen(size, gt, le)
    if sc.accept("dec_ttl("):
        sc.expect("le_1(")
        acts = _parse_action_list(sc, port_names, depth)
        sc.expect("))")
        return DecTtl(acts)
    if sc.accept("add_mpls("):
        lse = _mpls_fields(sc, ("label", "tc", "ttl", "bos"))
        sc.expect(",eth_type=")
        et = sc.integer(16, 16, "eth_type")
        sc.expect(")")
        return AddMpls(lse, et, 0)
    if sc.accept("push_mpls("):
        lse = _mpls_fields(sc, ("label", "tc", "ttl", "bos"))
        sc.expect(",eth_type=")
        et = sc.integer(16, 16, "eth_type")
        sc.expect(")")
        return PushMpls(lse, et)
    if sc.accept("pop_mpls("):
        sc.expect("eth_type=")
        et = sc.integer(16, 16, "eth_type")
        sc.expect(")")
        return PopMpls(et)
    if sc.accept("hash("):
        hstart = sc.pos
        if sc.accept("l4("):
            alg = U.OVS_HASH_ALG_L4
        elif sc.accept("sym_l4("):
            alg = U.OVS_HASH_ALG_SYM_L4
        else:
            raise sc.error("expected l4( or sym_l4( in hash(...)", hstart)
        basis = sc.integer(32, 0, "hash basis")
        sc.expect("))")
        return Hash(alg, basis)
    if sc.accept("push_eth("):
        sc.expect("src=")
        src = sc.mac()
        sc.expect(",dst=")
        dst = sc.mac()
        if sc.accept(",type="):
            sc.integer(16, 0, "type")
        sc.expect(")")
        return PushEth(src, dst)
    if sc.accept("pop_eth"):
        return PopEth()
    if sc.startswith("ct"):
        nxt = sc.peek(2)
        if nxt == "" or nxt == "(" or nxt in DELIMITERS or nxt == ")":
            sc.pos += 2
            return _parse_ct(sc)
    name = sc.ident()
    if name in _UNSUPPORTED_ACTIONS:
        raise sc.error(
            f"action {_UNSUPPORTED_ACTIONS[name]} is not supported by pyvswitch", start, name
        )
    if name.lower() == "drop":
        raise sc.error("'drop' must be the only action", start, name)
    raise sc.error("unknown action", start)


def parse_actions(text: str, port_names: Mapping[str, int] | None = None) -> tuple[Action, ...]:
    """Parse datapath action text (``odp_actions_from_string``): ``drop`` or a
    comma-separated list.  ``drop`` alone gives ``(Drop(),)``, as OVS does.
    Output ports may be names when ``port_names`` is given."""
    if text.strip().lower() == "drop":
        return (Drop(0),)
    sc = _Scanner(text)
    out: list[Action] = []
    while True:
        sc.skip_delims()
        if sc.at_end():
            break
        a = _parse_action(sc, port_names, 0)
        if not sc.at_end() and sc.peek() not in DELIMITERS:
            raise sc.error("expected ',' between actions")
        out.append(a)
    return tuple(out)


# ---------------------------------------------------------------------------
# Statistics and dump lines


def format_flow_stats(stats: FlowStats, now: float) -> str:
    """``dpif_flow_stats_format``: ``packets:N, bytes:N, used:X.XXXs|never``
    and ``, flags:...`` when TCP flags were seen.  ``now`` and ``stats.used``
    are seconds on the same (monotonic) clock; ``used == 0`` means never."""
    s = f"packets:{stats.packets}, bytes:{stats.bytes}, used:"
    if stats.used:
        s += f"{(int(now * 1000) - int(stats.used * 1000)) / 1000.0:.3f}s"
    else:
        s += "never"
    if stats.tcp_flags:
        s += ", flags:" + format_tcp_flags_letters(stats.tcp_flags)
    return s


def format_dump_line(
    key: int,
    mask: int | None,
    actions: Sequence[Action],
    stats: FlowStats,
    now: float,
    *,
    ufid: bytes | None = None,
    verbose: bool = False,
    style: Style = "kernel",
    port_names: Mapping[int, str] | None = None,
    dp_layer: str | None = None,
    offloaded: bool = False,
    dp_extra_info: str | None = None,
) -> str:
    """One ``dump-flows`` line (dpctl's ``format_dpif_flow``):
    ``[ufid:UUID, ]KEY, packets:N, bytes:N, used:X[, flags:F][, offloaded:..]
    [, dp:..], actions:ACTIONS[, dp-extra-info:..]`` -- the bracketed
    ``ufid``/``offloaded``/``dp``/``dp-extra-info`` parts only with ``verbose``
    (``-m``)."""
    s = ""
    if verbose and ufid is not None:
        s += "ufid:" + format_ufid(ufid) + ", "
    s += format_flow(key, mask, verbose=verbose, style=style, port_names=port_names)
    s += ", " + format_flow_stats(stats, now)
    if verbose and offloaded:
        s += ", offloaded:partial" if dp_layer == "ovs" else ", offloaded:yes"
    if verbose and dp_layer:
        s += f", dp:{dp_layer}"
    s += ", actions:" + format_actions(actions, port_names)
    if verbose and dp_extra_info:
        s += f", dp-extra-info:{dp_extra_info}"
    return s
