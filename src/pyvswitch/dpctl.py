"""``ovs-dpctl`` commands over pyvswitch datapaths (OVS's ``lib/dpctl.c``).

Each command takes the same arguments as ``ovs-dpctl``/``ovs-appctl dpctl/…``
and returns the text OVS would print; failures raise :class:`DpctlError`
whose message is the one line OVS would print (``add_dp (File exists)``).

:meth:`Dpctl.run` is ``dpctl_run_command`` (an ``ovs-dpctl`` command line:
options already parsed, only the other arguments count against the
command's limits); :func:`parse_options` is the option loop of
``dpctl_unixctl_handler`` (options lead the arguments, as in ``ovs-appctl
dpctl/CMD -s ...``).  The daemon registers every command of :data:`COMMANDS`
as ``dpctl/CMD``; the CLI runs them in-process or through the daemon.

Differences from OVS, on purpose:

* Flow and action text errors say where and what (``parsing flow key
  (unknown key attribute 'foo' at position 17 near 'foo') (Invalid
  argument)``); OVS prints ``parsing actions (Invalid argument)``.
  Datapath-side rejections carry the reason the kernel would only log:
  ``updating flow table (recirc_id must be matched exactly ...) (Invalid
  argument)``.
* Action text may name output ports (``actions:p2``) when they exist.
* ``add-flows``/``mod-flows``/``del-flows FILE`` go on after a bad line as
  OVS does, but then fail (OVS reports success), naming the first bad line.
* ``normalize-actions`` ends each group with a newline and prints VLAN TPIDs
  in host order; OVS 3.1 runs the groups together and byte-swaps the TPID.
* ``dump-flows type=...`` is accepted outside appctl too.
* Extra commands: ``execute [DP] [in_port=PORT] PACKET ACTIONS`` (run
  actions on one packet, ``OVS_PACKET_CMD_EXECUTE``) and ``coverage [DP]``.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from . import flow as F
from . import odp
from .datapath import Datapath, Openvswitch
from .device import DeviceStats, NetNamespace
from .errors import OdpParseError, PyvswitchError
from .flow_table import Flow
from .uapi import OVSP_LOCAL, VPORT_TYPE_ALIASES, Action, FlowStats, Output, PopVlan, PushVlan
from .vport import Vport, VportStats


class DpctlError(PyvswitchError):
    """A dpctl command failed; ``str(e)`` is the one-line message.

    ``hint`` is a second line OVS prints after some errors (``Perhaps you
    need to specify a UFID?``); :meth:`full_text` has both."""

    def __init__(self, message: str, errno: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, errno)
        self.hint = hint

    def full_text(self) -> str:
        return str(self) + (f"\n{self.hint}" if self.hint else "")


class DpctlOptionError(DpctlError):
    """An unknown option in an appctl request (OVS replies with the bare
    message, without the program name)."""


def _err(msg: str, e: PyvswitchError | int | None = None) -> DpctlError:
    if isinstance(e, PyvswitchError):
        return DpctlError(f"{msg} ({e.strerror})", errno=e.errno)
    if isinstance(e, int):
        return DpctlError(f"{msg} ({os.strerror(e)})", errno=e)
    return DpctlError(msg)


def _err_detail(msg: str, e: PyvswitchError) -> DpctlError:
    """``MSG (detail) (strerror)``: OVS's ``parsing flow key (%s)`` form."""
    return DpctlError(f"{msg} ({e}) ({e.strerror})", errno=e.errno)


def human_size(value: int) -> str:
    """``print_human_size``: `` (1.1 MiB)`` for values >= 1 KiB, else ``''``."""
    if value >= 1024**4:
        return f" ({value / 1024**4:.1f} TiB)"
    if value >= 1024**3:
        return f" ({value / 1024**3:.1f} GiB)"
    if value >= 1024**2:
        return f" ({value / 1024**2:.1f} MiB)"
    if value >= 1024:
        return f" ({value / 1024:.1f} KiB)"
    return ""


def _stat(v: int | None) -> str:
    return "?" if v is None else str(v)


def port_type_name(vport: Vport) -> str:
    """The type as ``ovs-dpctl show`` names it (``system`` for netdev)."""
    return "system" if vport.type_name == "netdev" else vport.type_name


def port_stats(vport: Vport) -> DeviceStats:
    """A port's counters for ``show -s``: the vport's own per-worker counters,
    the rest (overruns, frame, aborted, carrier, collisions) unknown."""
    s: VportStats = vport.get_stats()
    return DeviceStats(
        rx_packets=s.rx_packets,
        tx_packets=s.tx_packets,
        rx_bytes=s.rx_bytes,
        tx_bytes=s.tx_bytes,
        rx_errors=s.rx_errors,
        tx_errors=s.tx_errors,
        rx_dropped=s.rx_dropped,
        tx_dropped=s.tx_dropped,
        rx_over_errors=None,
        rx_frame_errors=None,
        tx_aborted_errors=None,
        tx_carrier_errors=None,
        collisions=None,
    )


def parse_iface(spec: str) -> tuple[str, str, int | None, dict[str, str]]:
    """``name[,type=T][,port_no=N][,key=value]...`` as ``dpctl_add_if`` splits it."""
    parts = spec.split(",")
    name = parts[0]
    if not name:
        raise DpctlError(f"{spec} is not a valid network device name", errno=errno.EINVAL)
    type_ = "system"
    port_no: int | None = None
    args: dict[str, str] = {}
    for option in parts[1:]:
        if not option:
            continue
        key, _, value = option.partition("=")
        if key == "type":
            type_ = value
        elif key == "port_no":
            try:
                port_no = int(value)
            except ValueError:
                raise DpctlError(f"{name}: bad port_no '{value}'", errno=errno.EINVAL) from None
        elif key in args:
            raise DpctlError(f'duplicate "{key}" option', errno=errno.EINVAL)
        else:
            args[key] = value
    return name, type_, port_no, args


# ---------------------------------------------------------------------------
# Options and the command table


@dataclass
class DpctlParams:
    """``struct dpctl_params``: the options of one command."""

    is_appctl: bool = False
    print_statistics: bool = False  # -s, --statistics
    zero_statistics: bool = False  # --clear
    may_create: bool = False  # --may-create
    verbosity: int = 0  # -m, --more (repeatable)
    names: bool | None = None  # --names / --no-names; default: names iff -m
    read_only: bool = False  # --read-only

    @property
    def use_names(self) -> bool:
        return self.verbosity > 0 if self.names is None else self.names

    def to_args(self) -> list[str]:
        """These options as ``ovs-appctl dpctl/CMD`` leading arguments."""
        out: list[str] = []
        if self.print_statistics:
            out.append("-s")
        if self.zero_statistics:
            out.append("--clear")
        if self.may_create:
            out.append("--may-create")
        out += ["-m"] * self.verbosity
        if self.names is not None:
            out.append("--names" if self.names else "--no-names")
        if self.read_only:
            out.append("--read-only")
        return out


def parse_options(
    args: Sequence[str], params: DpctlParams | None = None
) -> tuple[DpctlParams, list[str]]:
    """Leading options of an appctl ``dpctl/CMD`` request, parsed like
    ``dpctl_unixctl_handler``: ``--statistics --clear --may-create --more
    --names --no-names`` and bundles of ``-m``/``-s``; the first argument not
    starting with ``-`` ends the options."""
    p = params if params is not None else DpctlParams(is_appctl=True)
    rest = list(args)
    while rest:
        arg = rest[0]
        if arg.startswith("--"):
            if arg == "--statistics":
                p.print_statistics = True
            elif arg == "--clear":
                p.zero_statistics = True
            elif arg == "--may-create":
                p.may_create = True
            elif arg == "--more":
                p.verbosity += 1
            elif arg == "--names":
                p.names = True
            elif arg == "--no-names":
                p.names = False
            elif arg == "--read-only" and not p.is_appctl:
                p.read_only = True
            else:
                raise DpctlOptionError(f"Unrecognized option {arg}", errno=errno.EINVAL)
        elif arg.startswith("-") and arg != "-":
            for c in arg[1:]:
                if c == "m":
                    p.verbosity += 1
                elif c == "s":
                    p.print_statistics = True
                else:
                    raise DpctlOptionError(f"Unrecognized option -{c}", errno=errno.EINVAL)
        else:
            break
        rest.pop(0)
    return p, rest


@dataclass(frozen=True, slots=True)
class DpctlCommand:
    """One row of OVS's ``all_commands`` table."""

    name: str
    usage: str
    min_args: int
    max_args: int
    read_write: bool
    help: str


INT_MAX = 2**31 - 1

#: The commands, in OVS's table order (``lib/dpctl.c``), with OVS's usage
#: strings and argument limits, plus pyvswitch's ``execute`` and ``coverage``.
COMMANDS: tuple[DpctlCommand, ...] = (
    DpctlCommand("add-dp", "dp [iface...]", 1, INT_MAX, True, "add new datapath DP (with IFACEs)"),
    DpctlCommand("del-dp", "dp", 1, 1, True, "delete local datapath DP"),
    DpctlCommand("add-if", "dp iface...", 2, INT_MAX, True, "add each IFACE as a port on DP"),
    DpctlCommand("del-if", "dp iface...", 2, INT_MAX, True, "delete each IFACE from DP"),
    DpctlCommand("set-if", "dp iface...", 2, INT_MAX, True, "reconfigure each IFACE within DP"),
    DpctlCommand("dump-dps", "", 0, 0, False, "display names of all datapaths"),
    DpctlCommand("show", "[-s] [dp...]", 0, INT_MAX, False, "show basic info on datapaths"),
    DpctlCommand(
        "dump-flows",
        "[-m] [--names] [dp] [filter=..] [type=..] [pmd=..]",
        0,
        6,
        False,
        "display flows in DP",
    ),
    DpctlCommand("add-flow", "[dp] flow actions", 2, 3, True, "add FLOW with ACTIONS to DP"),
    DpctlCommand("mod-flow", "[dp] flow actions", 2, 3, True, "change FLOW actions to ACTIONS"),
    DpctlCommand("get-flow", "[dp] ufid", 1, 2, False, "fetch flow corresponding to UFID"),
    DpctlCommand("del-flow", "[dp] flow", 1, 2, True, "delete FLOW from DP"),
    DpctlCommand("add-flows", "[dp] file", 1, 2, True, "add flows from FILE"),
    DpctlCommand("mod-flows", "[dp] file", 1, 2, True, "change flows from FILE"),
    DpctlCommand("del-flows", "[dp] [file]", 0, 2, True, "delete all or specified flows"),
    DpctlCommand("cache-get-size", "[dp]", 0, 1, False, "show the current size of all caches"),
    DpctlCommand("cache-set-size", "dp cache <size>", 3, 3, True, "set the size of a cache"),
    DpctlCommand("list-commands", "", 0, INT_MAX, False, "list the dpctl commands"),
    DpctlCommand("parse-actions", "actions", 1, INT_MAX, False, "parse and print ACTIONS"),
    DpctlCommand(
        "normalize-actions", "actions", 2, INT_MAX, False, "print ACTIONS grouped by VLAN"
    ),
    DpctlCommand(
        "execute",
        "[dp] [in_port=port] packet actions",
        2,
        4,
        True,
        "run ACTIONS on PACKET (hex) in DP",
    ),
    DpctlCommand("coverage", "[dp]", 0, 1, False, "datapath drop counters by reason"),
)
COMMANDS_BY_NAME: dict[str, DpctlCommand] = {c.name: c for c in COMMANDS}


def check_arg_count(name: str, n_args: int) -> None:
    """``dpctl_run_command``'s checks for an ``ovs-dpctl`` command line."""
    cmd = COMMANDS_BY_NAME.get(name)
    if cmd is None:
        raise DpctlError(f"unknown command '{name}'; use --help for help", errno=errno.EINVAL)
    if n_args < cmd.min_args:
        raise DpctlError(
            f"'{name}' command requires at least {cmd.min_args} arguments", errno=errno.EINVAL
        )
    if n_args > cmd.max_args:
        raise DpctlError(
            f"'{name}' command takes at most {cmd.max_args} arguments", errno=errno.EINVAL
        )


# ---------------------------------------------------------------------------
# Flow files (add-flows / mod-flows / del-flows FILE)

FLOWS_ADD, FLOWS_MOD, FLOWS_DEL = "add-flow", "mod-flow", "del-flow"


def parse_flow_line(line: str, default: str) -> tuple[str, str | None, str | None]:
    """``dpctl_parse_flow_line``: ``[add|modify|delete] FLOW [ACTIONS]`` ->
    ``(command, flow, actions)``.  The keyword may be abbreviated (OVS
    compares only the typed prefix)."""
    s = line.lstrip(" \t\r\n")
    word = re.match(r"[^, \t\r\n]*", s)
    n = len(word.group(0)) if word else 0
    cmd = default
    if n and "add".startswith(s[:n]):
        cmd = FLOWS_ADD
    elif n and "delete".startswith(s[:n]):
        cmd = FLOWS_DEL
    elif n and "modify".startswith(s[:n]):
        cmd = FLOWS_MOD
    else:
        n = 0
    s = s[n:].lstrip(" \t\r\n")
    m = re.match(r"[^ \t\r\n]*", s)
    flow_s = m.group(0) if m else ""
    if not flow_s:
        return cmd, None, None
    rest = s[len(flow_s) :].strip(" \t\r\n")
    return cmd, flow_s, rest or None


def preprocessed_lines(text: str) -> Iterable[tuple[int, str]]:
    """``ds_get_preprocessed_line``: ``(line number, line)`` without comments
    (``#`` to end of line) and blank lines."""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0]
        if line.strip():
            yield number, line


def process_flow_lines(
    text: str,
    default: str,
    run: Callable[[list[str]], str],
    *,
    dp: str | None = None,
    source: str = "-",
) -> str:
    """``dpctl_process_flows``: run one ``add-flow``/``mod-flow``/``del-flow``
    per line through ``run(argv)``.  Like OVS, a failing line does not stop
    the rest; unlike OVS, failures then raise :class:`DpctlError` naming the
    first one (``FILE:LINE: message``) and how many there were."""
    out: list[str] = []
    errors: list[str] = []
    first_errno = errno.EINVAL
    for number, line in preprocessed_lines(text):
        cmd, flow_s, actions_s = parse_flow_line(line, default)
        bad = (
            (flow_s is None and actions_s is None)
            or (cmd != FLOWS_DEL and actions_s is None)
            or (cmd == FLOWS_DEL and actions_s is not None)
        )
        if bad:
            errors.append(f"{source}:{number}: Failed parsing line number {number}, skipped!")
            continue
        argv = [cmd, *([dp] if dp else []), flow_s or ""]
        if actions_s is not None:
            argv.append(actions_s)
        try:
            out.append(run(argv))
        except PyvswitchError as e:
            if not errors:
                first_errno = e.errno
            text = e.full_text() if isinstance(e, DpctlError) else str(e)
            errors.append(f"{source}:{number}: " + "; ".join(text.splitlines()))
    if errors:
        more = f" (and {len(errors) - 1} more failed lines)" if len(errors) > 1 else ""
        raise DpctlError(errors[0] + more, errno=first_errno)
    return "".join(out)


# ---------------------------------------------------------------------------
# dump-flows filter=... (an OpenFlow-style exact match, parse_ofp_exact_flow)

#: protocol keyword -> (dl_type, nw_proto)
_PROTOCOLS: dict[str, tuple[int, int]] = {
    "ip": (0x0800, 0),
    "ipv4": (0x0800, 0),
    "ipv6": (0x86DD, 0),
    "icmp": (0x0800, 1),
    "icmp6": (0x86DD, 58),
    "tcp": (0x0800, 6),
    "tcp6": (0x86DD, 6),
    "udp": (0x0800, 17),
    "udp6": (0x86DD, 17),
    "sctp": (0x0800, 132),
    "sctp6": (0x86DD, 132),
    "arp": (0x0806, 0),
    "rarp": (0x8035, 0),
    "mpls": (0x8847, 0),
    "mplsm": (0x8848, 0),
}
_IP_TYPES = (0x0800, 0x86DD)
_ARP_TYPES = (0x0806, 0x8035)


def _v_int(bits: int) -> Callable[[str], int]:
    def parse(s: str) -> int:
        v = int(s, 0)
        if not 0 <= v < 1 << bits:
            raise ValueError(f"value {s} out of range")
        return v

    return parse


def _v_mac(s: str) -> int:
    parts = s.split(":")
    if len(parts) != 6 or not all(re.fullmatch(r"[0-9a-fA-F]{1,2}", p) for p in parts):
        raise ValueError(f"{s}: invalid Ethernet address")
    return int("".join(f"{int(p, 16):02x}" for p in parts), 16)


def _v_ip4(s: str) -> int:
    return int(ipaddress.IPv4Address(s))


def _v_ip6(s: str) -> int:
    return int(ipaddress.IPv6Address(s))


@dataclass(frozen=True, slots=True)
class _FilterField:
    key_field: str
    parse: Callable[[str], int]
    value_shift: int = 0  # where the value sits inside the key field
    field_mask: int = -1  # which bits of the key field the OpenFlow field covers
    prereq: str = ""  # "ip", "ipv4", "ipv6", "arp", "l4", "tcp", "icmp", "icmp6", "mpls", "vlan"


_F = _FilterField
_FILTER_FIELDS: dict[str, _FilterField] = {
    "recirc_id": _F("recirc_id", _v_int(32)),
    "dp_hash": _F("dp_hash", _v_int(32)),
    "skb_priority": _F("priority", _v_int(32)),
    "pkt_mark": _F("skb_mark", _v_int(32)),
    "skb_mark": _F("skb_mark", _v_int(32)),
    "tun_id": _F("tun_id", _v_int(64)),
    "tunnel_id": _F("tun_id", _v_int(64)),
    "tun_src": _F("tun_ipv4_src", _v_ip4),
    "tun_dst": _F("tun_ipv4_dst", _v_ip4),
    "ct_zone": _F("ct_zone", _v_int(16)),
    "ct_mark": _F("ct_mark", _v_int(32)),
    "dl_src": _F("eth_src", _v_mac),
    "eth_src": _F("eth_src", _v_mac),
    "dl_dst": _F("eth_dst", _v_mac),
    "eth_dst": _F("eth_dst", _v_mac),
    "dl_type": _F("eth_type", _v_int(16)),
    "eth_type": _F("eth_type", _v_int(16)),
    "vlan_tci": _F("vlan_tci", _v_int(16)),
    "dl_vlan": _F("vlan_tci", _v_int(12), 0, 0x1FFF),
    "vlan_vid": _F("vlan_tci", _v_int(12), 0, 0x1FFF),
    "dl_vlan_pcp": _F("vlan_tci", _v_int(3), 13, 0xF000),
    "vlan_pcp": _F("vlan_tci", _v_int(3), 13, 0xF000),
    "nw_src": _F("ipv4_src", _v_ip4, prereq="ipv4"),
    "ip_src": _F("ipv4_src", _v_ip4, prereq="ipv4"),
    "nw_dst": _F("ipv4_dst", _v_ip4, prereq="ipv4"),
    "ip_dst": _F("ipv4_dst", _v_ip4, prereq="ipv4"),
    "ipv6_src": _F("ipv6_src", _v_ip6, prereq="ipv6"),
    "ipv6_dst": _F("ipv6_dst", _v_ip6, prereq="ipv6"),
    "ipv6_label": _F("ipv6_label", _v_int(20), prereq="ipv6"),
    "nw_proto": _F("ip_proto", _v_int(8), prereq="ip"),
    "ip_proto": _F("ip_proto", _v_int(8), prereq="ip"),
    "nw_tos": _F("ip_tos", _v_int(8), 0, 0xFC, prereq="ip"),
    "ip_dscp": _F("ip_tos", _v_int(6), 2, 0xFC, prereq="ip"),
    "nw_ecn": _F("ip_tos", _v_int(2), 0, 0x03, prereq="ip"),
    "ip_ecn": _F("ip_tos", _v_int(2), 0, 0x03, prereq="ip"),
    "nw_ttl": _F("ip_ttl", _v_int(8), prereq="ip"),
    "tp_src": _F("tp_src", _v_int(16), prereq="l4"),
    "tp_dst": _F("tp_dst", _v_int(16), prereq="l4"),
    "tcp_src": _F("tp_src", _v_int(16), prereq="tcp"),
    "tcp_dst": _F("tp_dst", _v_int(16), prereq="tcp"),
    "udp_src": _F("tp_src", _v_int(16), prereq="udp"),
    "udp_dst": _F("tp_dst", _v_int(16), prereq="udp"),
    "sctp_src": _F("tp_src", _v_int(16), prereq="sctp"),
    "sctp_dst": _F("tp_dst", _v_int(16), prereq="sctp"),
    "tcp_flags": _F("tcp_flags", _v_int(12), prereq="tcp"),
    "icmp_type": _F("tp_src", _v_int(8), prereq="icmp"),
    "icmp_code": _F("tp_dst", _v_int(8), prereq="icmp"),
    "icmpv6_type": _F("tp_src", _v_int(8), prereq="icmp6"),
    "icmpv6_code": _F("tp_dst", _v_int(8), prereq="icmp6"),
    "arp_op": _F("ip_proto", _v_int(8), prereq="arp"),
    "arp_spa": _F("ipv4_src", _v_ip4, prereq="arp"),
    "arp_tpa": _F("ipv4_dst", _v_ip4, prereq="arp"),
    "arp_sha": _F("arp_sha", _v_mac, prereq="arp"),
    "arp_tha": _F("arp_tha", _v_mac, prereq="arp"),
    "mpls_label": _F("mpls_lse0", _v_int(20), 12, 0xFFFFF000, prereq="mpls"),
    "mpls_tc": _F("mpls_lse0", _v_int(3), 9, 0x00000E00, prereq="mpls"),
    "mpls_bos": _F("mpls_lse0", _v_int(1), 8, 0x00000100, prereq="mpls"),
    "mpls_ttl": _F("mpls_lse0", _v_int(8), 0, 0x000000FF, prereq="mpls"),
}


def _prereq_ok(prereq: str, dl_type: int | None, nw_proto: int | None) -> bool:
    if not prereq:
        return True
    if prereq == "ip":
        return dl_type in _IP_TYPES
    if prereq == "ipv4":
        return dl_type == 0x0800
    if prereq == "ipv6":
        return dl_type == 0x86DD
    if prereq == "arp":
        return dl_type in _ARP_TYPES
    if prereq == "mpls":
        return dl_type in (0x8847, 0x8848)
    if dl_type not in _IP_TYPES:
        return False
    if prereq == "l4":
        return nw_proto in (6, 17, 132)
    if prereq == "icmp":
        return dl_type == 0x0800 and nw_proto == 1
    if prereq == "icmp6":
        return dl_type == 0x86DD and nw_proto == 58
    return nw_proto == {"tcp": 6, "udp": 17, "sctp": 132}[prereq]


def parse_filter(text: str, port_names: Mapping[str, int] | None = None) -> tuple[int, int]:
    """``parse_ofp_exact_flow`` for ``dump-flows filter=...``: OpenFlow-style
    ``field=value`` pairs and protocol keywords (``tcp,tp_dst=80``) as a key
    and mask in the :mod:`pyvswitch.flow` layout.  Raises ``ValueError`` with
    OVS's message (``tcp,foo=1: unknown field foo``)."""
    key = mask = 0
    dl_type: int | None = None
    nw_proto: int | None = None
    seen: set[str] = set()

    def put(name: str, value: int, fmask: int = -1, shift: int = 0) -> None:
        nonlocal key, mask
        shift0, width = F.FIELDS[name]
        full = (1 << width) - 1
        fm = full if fmask < 0 else fmask & full
        key = (key & ~(fm << shift0)) | (((value << shift) & fm) << shift0)
        mask |= fm << shift0

    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        name, eq, value = item.partition("=")
        if not eq and name in _PROTOCOLS:
            if dl_type is not None:
                raise ValueError(f"{text}: Ethernet type set multiple times")
            dl_type, proto = _PROTOCOLS[name]
            put("eth_type", dl_type)
            if proto:
                nw_proto = proto
                put("ip_proto", proto)
            continue
        if name == "in_port":
            if "in_port" in seen:
                raise ValueError(f"{text}: field in_port set multiple times")
            seen.add("in_port")
            if port_names is not None and value in port_names:
                put("in_port", port_names[value])
                continue
            try:
                put("in_port", _v_int(16)(value))
            except ValueError:
                raise ValueError(f"{text}: bad value for in_port ({value}: unknown port)") from None
            continue
        fld = _FILTER_FIELDS.get(name)
        if fld is None:
            raise ValueError(f"{text}: unknown field {name}")
        if not _prereq_ok(fld.prereq, dl_type, nw_proto):
            raise ValueError(f"{text}: prerequisites not met for setting {name}")
        if name in seen:
            raise ValueError(f"{text}: field {name} set multiple times")
        seen.add(name)
        try:
            v = fld.parse(value)
        except ValueError as e:
            raise ValueError(f"{text}: bad value for {name} ({e})") from None
        if name in ("dl_vlan", "vlan_vid", "dl_vlan_pcp", "vlan_pcp"):
            put("vlan_tci", 0x1000, 0x1000)  # a tag is present
        put(fld.key_field, v, fld.field_mask, fld.value_shift)
        if fld.key_field == "eth_type":
            dl_type = v
        elif fld.key_field == "ip_proto" and fld.prereq == "ip":
            nw_proto = v
    return key, mask


# ---------------------------------------------------------------------------
# The command set


def ufid_from_key(key: int) -> bytes:
    """``odp_flow_key_hash``: the UFID ``ovs-appctl dpctl/add-flow`` makes up
    for a flow given without one (a 128-bit hash of the key, with the bits
    of a random UUID set).  Deterministic here; OVS seeds it per process."""
    h = hashlib.blake2b(key.to_bytes(F.KEY_BYTES, "big"), digest_size=16).digest()
    p0, p1, p2, p3 = struct.unpack("<4I", h)
    p2 = (p2 & ~0xC0000000) | 0x80000000  # uuid_set_bits_v4
    p1 = (p1 & ~0x0000F000) | 0x00004000
    return struct.pack("<4I", p0, p1, p2, p3)


def _split_ufid(text: str) -> tuple[bytes | None, str]:
    """``odp_ufid_from_string``: an optional leading ``ufid:UUID``."""
    s = text.lstrip()
    if not s.startswith("ufid:"):
        return None, text
    try:
        ufid = odp.parse_ufid(s[:41])
    except OdpParseError as e:
        raise _err_detail("parsing flow ufid", e) from e
    return ufid, s[41:].lstrip(", \t\r\n")


def _sort_output_runs(actions: Sequence[Action]) -> list[Action]:
    """``sort_output_actions``: each run of consecutive outputs by port."""
    out: list[Action] = []
    run: list[Output] = []
    for a in actions:
        if isinstance(a, Output):
            run.append(a)
            continue
        out.extend(_sorted_outputs(run))
        run = []
        out.append(a)
    out.extend(_sorted_outputs(run))
    return out


def _sorted_outputs(run: list[Output]) -> list[Output]:
    return sorted(run, key=_output_port)


def _output_port(a: Output) -> int:
    return a.port


@dataclass
class Dpctl:
    """The dpctl command set bound to one pyvswitch instance.

    ``net`` is the namespace new datapaths are created in; ``dp_type`` is the
    datapath type shown as ``TYPE@NAME`` (``system`` on Linux, ``memory`` for
    the in-memory backend).  ``on_dp_added``/``on_port_added``/
    ``on_dp_deleted`` let an owner (the daemon) attach upcall handlers.
    ``read_file`` reads ``add-flows FILE`` (``-`` = stdin for the owner to
    define).
    """

    ovs: Openvswitch
    net: NetNamespace
    dp_type: str = "system"
    on_dp_added: Callable[[Datapath], None] | None = None
    on_port_added: Callable[[Vport], None] | None = None
    on_dp_deleted: Callable[[Datapath], None] | None = None
    extra_show: list[Callable[[Datapath], str]] = field(default_factory=list)
    read_file: Callable[[str], str] | None = None

    # -- datapath names ------------------------------------------------------

    def _split(self, name: str) -> str:
        t, sep, n = name.partition("@")
        if not sep:
            return name
        if t not in (self.dp_type, "system", "netdev", "memory"):
            raise DpctlError(f"opening datapath ({os.strerror(errno.EAFNOSUPPORT)})")
        return n

    def full_name(self, dp: Datapath) -> str:
        return f"{self.dp_type}@{dp.name}"

    def open_dp(self, name: str | None) -> Datapath:
        """``parsed_dpif_open``; with no name, the only datapath there is."""
        if name is None:
            dps = list(self.ovs)
            if len(dps) == 1:
                return dps[0]
            if not dps:
                raise DpctlError("no datapaths exist", errno=errno.ENODEV)
            raise DpctlError("multiple datapaths, specify one", errno=errno.EINVAL)
        try:
            return self.ovs.get_dp(self._split(name))
        except PyvswitchError as e:
            raise _err("opening datapath", e) from e

    def is_dp_name(self, arg: str) -> bool:
        try:
            self.ovs.get_dp(self._split(arg))
            return True
        except PyvswitchError:
            return False

    def _opt_dp(self, argv: Sequence[str], max_args: int) -> Datapath:
        """``opt_dpif_open``: ``argv[1]`` if it names a datapath; else, unless
        all ``max_args`` arguments are there, the only datapath."""
        if len(argv) > 1 and self.is_dp_name(argv[1]):
            return self.open_dp(argv[1])
        if len(argv) != max_args:
            return self.open_dp(None)
        raise DpctlError("datapath not found (Invalid argument)", errno=errno.EINVAL)

    # -- running commands ----------------------------------------------------

    def run(self, argv: Sequence[str], params: DpctlParams | None = None) -> str:
        """``dpctl_run_command``: ``argv[0]`` is the command, options are in
        ``params``; only ``argv[1:]`` counts against the limits."""
        p = params if params is not None else DpctlParams()
        if not argv:
            raise DpctlError("missing command name; use --help for help", errno=errno.EINVAL)
        name = argv[0]
        check_arg_count(name, len(argv) - 1)
        if COMMANDS_BY_NAME[name].read_write and p.read_only:
            raise DpctlError(
                f"'{name}' command does not work in read only mode", errno=errno.EINVAL
            )
        handler: Callable[[list[str], DpctlParams], str] = getattr(
            self, "cmd_" + name.replace("-", "_")
        )
        return handler(list(argv), p)

    def run_appctl(self, name: str, args: Sequence[str]) -> str:
        """``dpctl_unixctl_handler``: leading options, then the command (whose
        argument count the unixctl layer has already checked)."""
        p, rest = parse_options(args)
        handler: Callable[[list[str], DpctlParams], str] = getattr(
            self, "cmd_" + name.replace("-", "_")
        )
        return handler([name, *rest], p)

    # -- datapaths -----------------------------------------------------------

    def add_dp(self, name: str, *ifaces: str) -> str:
        try:
            dp = self.ovs.dp_new(self._split(name), self.net)
        except PyvswitchError as e:
            raise _err("add_dp", e) from e
        dp.ports[OVSP_LOCAL].dev.open()  # type: ignore[attr-defined]
        if self.on_dp_added is not None:
            self.on_dp_added(dp)
        if ifaces:
            self.add_if(name, *ifaces)
        return ""

    def del_dp(self, name: str) -> str:
        dp = self.open_dp(name)
        if self.on_dp_deleted is not None:
            self.on_dp_deleted(dp)
        self.ovs.dp_del(dp)
        return ""

    def dump_dps(self) -> str:
        return "".join(f"{self.full_name(dp)}\n" for dp in self.ovs)

    def cmd_add_dp(self, argv: list[str], p: DpctlParams) -> str:
        return self.add_dp(argv[1], *argv[2:])

    def cmd_del_dp(self, argv: list[str], p: DpctlParams) -> str:
        return self.del_dp(argv[1])

    def cmd_dump_dps(self, argv: list[str], p: DpctlParams) -> str:
        return self.dump_dps()

    # -- ports ---------------------------------------------------------------

    def add_if(self, dp_name: str, *ifaces: str) -> str:
        dp = self.open_dp(dp_name)
        for spec in ifaces:
            name, type_name, port_no, args = parse_iface(spec)
            vtype: int | str = VPORT_TYPE_ALIASES.get(type_name, type_name)
            try:
                vport = dp.vport_add(name, vtype, port_no=port_no, options=args)
            except PyvswitchError as e:
                raise _err(f"adding {name} to {dp_name} failed", e) from e
            dev = getattr(vport, "dev", None)
            if dev is not None:
                try:
                    dev.open()
                except PyvswitchError as e:
                    raise _err(f"{name}: failed bringing interface up", e) from e
            if self.on_port_added is not None:
                self.on_port_added(vport)
        return ""

    def set_if(self, dp_name: str, *ifaces: str) -> str:
        dp = self.open_dp(dp_name)
        for spec in ifaces:
            name, type_, port_no, args = parse_iface(spec)
            try:
                vport = dp.get_vport(name)
            except PyvswitchError as e:
                raise _err(f"{dp_name}: port {name} does not exist", e) from e
            cur_type = port_type_name(vport)
            if "type=" in spec and type_ not in (cur_type, vport.type_name):
                raise DpctlError(f"{name}: can't change type from {cur_type} to {type_}")
            if port_no is not None and port_no != vport.port_no:
                raise DpctlError(
                    f"{name}: can't change port number from {vport.port_no} to {port_no}"
                )
            options = dict(vport.options)
            for k, v in args.items():
                if v:
                    options[k] = v
                else:
                    options.pop(k, None)
            try:
                dp.vport_set(name, options=options)
            except PyvswitchError as e:
                raise _err(f"{name}: failed to set configuration", e) from e
        return ""

    def del_if(self, dp_name: str, *names: str) -> str:
        dp = self.open_dp(dp_name)
        for name in names:
            try:
                vport = dp.get_vport(int(name) if name.isdigit() else name)
            except PyvswitchError:
                raise DpctlError(f"no port named {name}", errno=errno.ENODEV) from None
            try:
                dp.vport_del(vport.port_no)
            except PyvswitchError as e:
                raise _err(f"deleting port {name} from {dp_name} failed", e) from e
        return ""

    def cmd_add_if(self, argv: list[str], p: DpctlParams) -> str:
        return self.add_if(argv[1], *argv[2:])

    def cmd_set_if(self, argv: list[str], p: DpctlParams) -> str:
        return self.set_if(argv[1], *argv[2:])

    def cmd_del_if(self, argv: list[str], p: DpctlParams) -> str:
        return self.del_if(argv[1], *argv[2:])

    # -- show ----------------------------------------------------------------

    def show(self, *dp_names: str, stats: bool = False) -> str:
        if not dp_names:
            return "".join(self.show_dp(dp, stats=stats) for dp in self.ovs)
        out: list[str] = []
        for name in dp_names:
            try:
                dp = self.ovs.get_dp(self._split(name))
            except PyvswitchError as e:
                raise _err(f"opening datapath {name} failed", e) from e
            out.append(self.show_dp(dp, stats=stats))
        return "".join(out)

    def show_dp(self, dp: Datapath, *, stats: bool = False) -> str:
        s = dp.get_stats()
        out = [f"{self.full_name(dp)}:\n"]
        out.append(f"  lookups: hit:{s.n_hit} missed:{s.n_missed} lost:{s.n_lost}\n")
        out.append(f"  flows: {s.n_flows}\n")
        n_pkts = s.n_hit + s.n_missed
        avg = s.n_mask_hit / n_pkts if n_pkts else 0.0
        out.append(f"  masks: hit:{s.n_mask_hit} total:{s.n_masks} hit/pkt:{avg:.2f}\n")
        rate = s.n_cache_hit / n_pkts * 100 if n_pkts else 0.0
        out.append(f"  cache: hit:{s.n_cache_hit} hit-rate:{rate:.2f}%\n")
        out.append("  caches:\n")
        out.append(f"    masks-cache: size:{s.masks_cache_size}\n")
        out.append(f"    emc: size:{s.emc_size}\n")
        for extra in self.extra_show:
            out.append(extra(dp))
        for port_no in sorted(dp.ports):
            vport = dp.ports[port_no]
            line = f"  port {port_no}: {vport.name}"
            t = port_type_name(vport)
            if t != "system":
                line += f" ({t}"
                for i, (k, v) in enumerate(sorted(vport.get_options().items())):
                    line += f"{',' if i else ':'} {k}={v}"
                line += ")"
            out.append(line + "\n")
            if stats:
                out.append(format_port_stats(port_stats(vport)))
        return "".join(out)

    def cmd_show(self, argv: list[str], p: DpctlParams) -> str:
        return self.show(*argv[1:], stats=p.print_statistics)

    # -- caches ----------------------------------------------------------------

    def cache_get_size(self, dp_name: str | None = None) -> str:
        dp = self.open_dp(dp_name)
        return (
            f"{self.full_name(dp)}:\n"
            f"  masks-cache: size:{dp.table.mask_cache_size}\n"
            f"  emc: size:{dp.table.emc_size}\n"
        )

    def cache_set_size(self, dp_name: str, cache: str, size: str) -> str:
        dp = self.open_dp(dp_name)
        try:
            n = int(size)
        except ValueError:
            raise DpctlError(f"bad cache size '{size}'", errno=errno.EINVAL) from None
        if cache == "masks-cache":
            try:
                dp.table.set_mask_cache_size(n)
            except PyvswitchError as e:
                raise _err("setting cache size", e) from e
        elif cache == "emc":
            if n < 0:
                raise DpctlError("setting cache size (Invalid argument)", errno=errno.EINVAL)
            dp.table.emc_size = n
            dp.table.emc_flush()
        else:
            raise DpctlError(f"Cache name '{cache}' not found on datapath", errno=errno.EINVAL)
        return f"Setting cache size successful, new size {n}.\n"

    def cmd_cache_get_size(self, argv: list[str], p: DpctlParams) -> str:
        return self.cache_get_size(self._opt_dp(argv, 2).name)

    def cmd_cache_set_size(self, argv: list[str], p: DpctlParams) -> str:
        return self.cache_set_size(argv[1], argv[2], argv[3])

    def coverage(self, dp_name: str | None = None) -> str:
        """Datapath drop counters by reason (like ``coverage/show``)."""
        dps = [self.open_dp(dp_name)] if dp_name else list(self.ovs)
        out = []
        for dp in dps:
            out.append(f"{self.full_name(dp)}:\n")
            for reason, n in sorted(dp.drops.items()):
                out.append(f"  {reason:<40} {n}\n")
        return "".join(out)

    def cmd_coverage(self, argv: list[str], p: DpctlParams) -> str:
        return self.coverage(argv[1] if len(argv) > 1 else None)

    # -- flows -----------------------------------------------------------------

    @staticmethod
    def _port_numbers(dp: Datapath) -> dict[str, int]:
        return {v.name: n for n, v in dp.ports.items()}

    def _names(self, dp: Datapath, p: DpctlParams) -> dict[int, str] | None:
        return dp.port_names() if p.use_names else None

    @staticmethod
    def _parse_key(
        text: str, names: Mapping[str, int], what: str = "updating flow table"
    ) -> odp.ParsedFlow:
        """Flow text to key and mask; ``what`` names the operation when the
        datapath's own checks (``ovs_nla_get_match``) refuse the key."""
        try:
            return odp.parse_flow(text, names)
        except OdpParseError as e:
            raise _err_detail("parsing flow key", e) from e
        except PyvswitchError as e:
            raise _err_detail(what, e) from e

    @staticmethod
    def _parse_actions(text: str, names: Mapping[str, int]) -> tuple[Action, ...]:
        try:
            return odp.parse_actions(text, names)
        except OdpParseError as e:
            raise _err_detail("parsing actions", e) from e

    def format_flow_line(self, dp: Datapath, f: Flow, p: DpctlParams) -> str:
        """``format_dpif_flow`` for a kernel-style datapath: UFID flows are
        reported with their masked key, others with the key they were
        installed with; ``-m`` adds the UFID and ``dp:ovs``."""
        key = f.key if f.ufid is not None else f.unmasked_key
        return odp.format_dump_line(
            key,
            f.mask.key,
            f.actions,
            f.get_stats(),
            dp.clock(),
            ufid=f.ufid,
            verbose=p.verbosity > 0,
            style="kernel",
            port_names=self._names(dp, p),
            dp_layer="ovs",
        )

    def dump_flows(self, *args: str, verbosity: int = 0, names: bool | None = None) -> str:
        """``dump-flows [DP] [filter=F] [type=T] [pmd=N]``."""
        return self.cmd_dump_flows(
            ["dump-flows", *args], DpctlParams(verbosity=verbosity, names=names)
        )

    def cmd_dump_flows(self, argv: list[str], p: DpctlParams) -> str:
        args = list(argv)
        filter_s: str | None = None
        types: str | None = None
        pmd_filter = False
        last = 0
        while len(args) > 1 and last != len(args):
            last = len(args)
            a = args[-1]
            if a.startswith("filter=") and filter_s is None:
                filter_s = args.pop()[7:]
            elif a.startswith("type=") and types is None:
                types = args.pop()[5:]
            elif a.startswith("pmd="):
                try:
                    int(args.pop()[4:])
                except ValueError:
                    raise DpctlError(f"invalid pmd argument '{a}'", errno=errno.EINVAL) from None
                pmd_filter = True
        dp = self._opt_dp(args, 2)
        fkey = fmask = 0
        if filter_s is not None:
            try:
                fkey, fmask = parse_filter(filter_s, self._port_numbers(dp))
            except ValueError as e:
                raise DpctlError(f"Failed to parse filter ({e})", errno=errno.EINVAL) from None
        want_ovs = True
        if types is not None:
            want_ovs = False
            for t in types.split(","):
                if t in ("ovs", "non-offloaded", "all"):
                    want_ovs = True
                elif t not in ("tc", "dpdk", "offloaded", "partially-offloaded"):
                    raise DpctlError(f"Failed to parse type ({t})", errno=errno.EINVAL)
        if pmd_filter or not want_ovs:
            # kernel flows belong to no PMD thread and are never offloaded
            return ""
        out: list[str] = []
        for f in dp.flow_dump():
            if fmask:
                key = f.key if f.ufid is not None else f.unmasked_key
                m = f.mask.key & fmask
                if key & m != fkey & m:
                    continue
            out.append(self.format_flow_line(dp, f, p) + "\n")
        return "".join(out)

    def _put_flow(self, argv: list[str], p: DpctlParams, *, create: bool, modify: bool) -> str:
        dp = self._opt_dp(argv, 4)
        names = self._port_numbers(dp)
        ufid, key_s = _split_ufid(argv[-2])
        pf = self._parse_key(key_s, names)
        actions = self._parse_actions(argv[-1], names)
        if ufid is None and p.is_appctl:
            ufid = ufid_from_key(pf.key)
        try:
            _flow, old = dp.flow_put(
                pf.key,
                pf.mask,
                actions,
                ufid=ufid,
                create=create,
                modify=modify,
                clear=p.zero_statistics,
            )
        except PyvswitchError as e:
            raise self._flow_table_error(e) from e
        if p.print_statistics:
            return odp.format_flow_stats(old or FlowStats(), dp.clock()) + "\n"
        return ""

    @staticmethod
    def _flow_table_error(e: PyvswitchError) -> DpctlError:
        if e.errno in (errno.EEXIST, errno.ENOENT):
            return _err("updating flow table", e)
        return _err_detail("updating flow table", e)

    def cmd_add_flow(self, argv: list[str], p: DpctlParams) -> str:
        return self._put_flow(argv, p, create=True, modify=False)

    def cmd_mod_flow(self, argv: list[str], p: DpctlParams) -> str:
        return self._put_flow(argv, p, create=p.may_create, modify=True)

    def cmd_get_flow(self, argv: list[str], p: DpctlParams) -> str:
        dp = self._opt_dp(argv, 3)
        text = argv[-1].strip()
        try:
            ufid = odp.parse_ufid(text)
        except OdpParseError as e:
            raise _err_detail("parsing flow ufid", e) from e
        try:
            f = dp.flow_get(ufid=ufid)
        except PyvswitchError as e:
            raise _err("getting flow", e) from e
        return self.format_flow_line(dp, f, p) + "\n"

    def cmd_del_flow(self, argv: list[str], p: DpctlParams) -> str:
        dp = self._opt_dp(argv, 3)
        return self._del_flow(dp, argv[-1], p)

    def _del_flow(self, dp: Datapath, text: str, p: DpctlParams) -> str:
        ufid, key_s = _split_ufid(text)
        generated = False
        key: int | None = None
        if key_s.strip(", \t\r\n"):
            key = self._parse_key(key_s, self._port_numbers(dp), "deleting flow").key
        elif ufid is None:
            raise DpctlError("deleting flow (Invalid argument): no flow given", errno=errno.EINVAL)
        if ufid is None and p.is_appctl and key is not None:
            ufid, generated = ufid_from_key(key), True
        try:
            # the kernel identifies a flow by UFID, else by its exact key
            st = dp.flow_del(None if ufid is not None else key, None, ufid=ufid)
        except PyvswitchError as e:
            hint = None
            if e.errno == errno.ENOENT and (ufid is None or generated):
                hint = "Perhaps you need to specify a UFID?"
            err = _err("deleting flow", e)
            raise DpctlError(str(err), errno=e.errno, hint=hint) from e
        if p.print_statistics:
            return odp.format_flow_stats(st, dp.clock()) + "\n"
        return ""

    def _read(self, path: str) -> str:
        if self.read_file is not None:
            return self.read_file(path)
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read()
        except OSError as e:
            raise _err(f'Opening file "{path}" failed', e.errno or errno.EIO) from e

    def _process_flows(self, argv: list[str], p: DpctlParams, default: str) -> str:
        dp = self._opt_dp(argv, 4)
        path = argv[-1]
        text = self._read(path)
        return process_flow_lines(
            text,
            default,
            lambda a: self.run(a, p),
            dp=self.full_name(dp),
            source=path,
        )

    def cmd_add_flows(self, argv: list[str], p: DpctlParams) -> str:
        return self._process_flows(argv, p, FLOWS_ADD)

    def cmd_mod_flows(self, argv: list[str], p: DpctlParams) -> str:
        return self._process_flows(argv, p, FLOWS_MOD)

    def cmd_del_flows(self, argv: list[str], p: DpctlParams) -> str:
        has_dp = len(argv) > 1 and self.is_dp_name(argv[1])
        if (not has_dp and len(argv) == 2) or len(argv) > 2:
            return self._process_flows(argv, p, FLOWS_DEL)
        dp = self._opt_dp(argv, 2)
        dp.flow_flush()
        return ""

    # -- packets ------------------------------------------------------------------

    def cmd_execute(self, argv: list[str], p: DpctlParams) -> str:
        args = argv[1:]
        dp = self.open_dp(args.pop(0)) if len(args) > 2 and self.is_dp_name(args[0]) else None
        in_port: int | None = None
        if len(args) > 2 and args[0].startswith("in_port="):
            in_port_s = args.pop(0)[8:]
            if dp is None:
                dp = self.open_dp(None)
            names = self._port_numbers(dp)
            if in_port_s in names:
                in_port = names[in_port_s]
            else:
                try:
                    in_port = int(in_port_s, 0)
                except ValueError:
                    raise DpctlError(f"no port named {in_port_s}", errno=errno.ENODEV) from None
        if len(args) != 2:
            raise DpctlError(
                "usage: execute [DP] [in_port=PORT] PACKET ACTIONS", errno=errno.EINVAL
            )
        if dp is None:
            dp = self.open_dp(None)
        try:
            packet = bytes.fromhex(args[0].removeprefix("0x"))
        except ValueError:
            raise DpctlError(
                "parsing packet (not an even number of hex digits) (Invalid argument)",
                errno=errno.EINVAL,
            ) from None
        actions = self._parse_actions(args[1], self._port_numbers(dp))
        try:
            dp.execute(packet, actions, in_port=in_port)
        except PyvswitchError as e:
            raise _err_detail("executing packet", e) from e
        return ""

    # -- helpers that need no datapath --------------------------------------------

    def cmd_list_commands(self, argv: list[str], p: DpctlParams) -> str:
        prefix = "dpctl/" if p.is_appctl else ""
        lines = ["The available commands are:\n"]
        for c in COMMANDS:
            lines.append(f"  {prefix}{c.name:<23} {c.usage}\n")
        return "".join(lines)

    def cmd_parse_actions(self, argv: list[str], p: DpctlParams) -> str:
        out = []
        for text in argv[1:]:
            try:
                actions = odp.parse_actions(text)
            except OdpParseError as e:
                raise _err_detail("odp_actions_from_string", e) from e
            out.append(odp.format_actions(actions) + "\n")
        return "".join(out)

    def cmd_normalize_actions(self, argv: list[str], p: DpctlParams) -> str:
        return normalize_actions(argv[1], argv[2], argv[3:], verbosity=p.verbosity)


def normalize_actions(
    flow_s: str, actions_s: str, port_args: Sequence[str] = (), *, verbosity: int = 0
) -> str:
    """``dpctl_normalize_actions``: the actions grouped by the VLAN tags (and
    MPLS label) the packet has when each runs, output runs sorted, groups in
    ``struct flow`` order."""
    names: dict[str, int] = {}
    for arg in port_args:
        m = re.fullmatch(r"([^=]{1,15})=(-?\d+)", arg)
        if m is None:
            raise DpctlError(f"{arg}: expected NAME=NUMBER", errno=errno.EINVAL)
        names[m.group(1)] = int(m.group(2))
    try:
        ks, _ms, _ufid = odp.parse_key_streams(flow_s, names)
        key = odp.parse_flow(flow_s, names).key
    except OdpParseError as e:
        raise _err_detail("odp_flow_key_from_string", e) from e
    except PyvswitchError as e:
        raise _err_detail("odp_flow_key_to_flow failed", e) from e
    out = [f"input flow: {odp.format_key_streams(ks, None, verbose=verbosity > 0)}\n"]
    try:
        actions = odp.parse_actions(actions_s, names)
    except OdpParseError as e:
        raise _err_detail("odp_actions_from_string", e) from e
    if verbosity:
        out.append(f"input actions: {odp.format_actions(actions)}\n")
    # struct flow's vlans[]: (tpid, tci) outermost first, FLOW_MAX_VLAN_HEADERS = 2
    vlans = [
        (F.key_get(key, "vlan_tpid"), F.key_get(key, "vlan_tci")),
        (F.key_get(key, "cvlan_tpid"), F.key_get(key, "cvlan_tci")),
    ]
    vlans = [v if v[1] else (0, 0) for v in vlans]
    groups: dict[tuple[tuple[int, int], ...], list[Action]] = {}
    for a in actions:
        if isinstance(a, PopVlan):
            vlans = [*vlans[1:], (0, 0)]
            continue
        if isinstance(a, PushVlan):
            vlans = [(a.tpid, a.tci), *vlans[:-1]]
            continue
        groups.setdefault(tuple(vlans), []).append(a)
    eth_type = F.key_get(key, "eth_type")
    lse = F.key_get(key, "mpls_lse0")
    if eth_type in (0x8847, 0x8848):
        mpls = f"mpls(label={lse >> 12},tc={(lse >> 9) & 7},ttl={lse & 0xFF}): "
    else:
        mpls = "no mpls: "
    for state in sorted(groups):
        text = ""
        for tpid, tci in state:
            if not tci:
                if not text:
                    text = "no vlan: "
                break
            text += "vlan("
            if tpid != 0x8100:
                text += f"tpid=0x{tpid:04x},"
            text += f"vid={tci & 0xFFF},pcp={tci >> 13}): "
        out.append(text + mpls + odp.format_actions(_sort_output_runs(groups[state])) + "\n")
    return "".join(out)


def format_port_stats(s: DeviceStats) -> str:
    return (
        f"    RX packets:{s.rx_packets} errors:{_stat(s.rx_errors)} "
        f"dropped:{_stat(s.rx_dropped)} overruns:{_stat(s.rx_over_errors)} "
        f"frame:{_stat(s.rx_frame_errors)}\n"
        f"    TX packets:{s.tx_packets} errors:{_stat(s.tx_errors)} "
        f"dropped:{_stat(s.tx_dropped)} aborted:{_stat(s.tx_aborted_errors)} "
        f"carrier:{_stat(s.tx_carrier_errors)}\n"
        f"    collisions:{_stat(s.collisions)}\n"
        f"    RX bytes:{s.rx_bytes}{human_size(s.rx_bytes)}"
        f"  TX bytes:{s.tx_bytes}{human_size(s.tx_bytes)}\n"
    )
