"""``ovs-dpctl`` commands over pyvswitch datapaths (OVS's ``lib/dpctl.c``).

Each command takes the same arguments as ``ovs-dpctl``/``ovs-appctl dpctl/…``
and returns the text OVS would print; failures raise :class:`DpctlError`
whose message is the one line OVS would print (``add_dp (File exists)``).
The CLI (``pyvswitch dpctl``) and the daemon's control socket both call
:class:`Dpctl`; the CLI runs it in-process or sends it to the daemon.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .datapath import Datapath, Openvswitch
from .device import DeviceStats, NetNamespace
from .errors import PyvswitchError
from .uapi import OVSP_LOCAL, VPORT_TYPE_ALIASES
from .vport import Vport, VportStats


class DpctlError(PyvswitchError):
    """A dpctl command failed; ``str(e)`` is the one-line message."""


def _err(msg: str, e: PyvswitchError | int | None = None) -> DpctlError:
    if isinstance(e, PyvswitchError):
        return DpctlError(f"{msg} ({e.strerror})", errno=e.errno)
    if isinstance(e, int):
        return DpctlError(f"{msg} ({os.strerror(e)})", errno=e)
    return DpctlError(msg)


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


@dataclass
class Dpctl:
    """The dpctl command set bound to one pyvswitch instance.

    ``net`` is the namespace new datapaths are created in; ``dp_type`` is the
    datapath type shown as ``TYPE@NAME`` (``system`` on Linux, ``memory`` for
    the in-memory backend).  ``on_port_added`` lets an owner (the daemon)
    attach upcall handlers to new ports.
    """

    ovs: Openvswitch
    net: NetNamespace
    dp_type: str = "system"
    on_dp_added: Callable[[Datapath], None] | None = None
    on_port_added: Callable[[Vport], None] | None = None
    on_dp_deleted: Callable[[Datapath], None] | None = None
    extra_show: list[Callable[[Datapath], str]] = field(default_factory=list)

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

    # -- show ----------------------------------------------------------------

    def show(self, *dp_names: str, stats: bool = False) -> str:
        dps = [self.open_dp(n) for n in dp_names] if dp_names else list(self.ovs)
        return "".join(self.show_dp(dp, stats=stats) for dp in dps)

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

    def coverage(self, dp_name: str | None = None) -> str:
        """Datapath drop counters by reason (like ``coverage/show``)."""
        dps = [self.open_dp(dp_name)] if dp_name else list(self.ovs)
        out = []
        for dp in dps:
            out.append(f"{self.full_name(dp)}:\n")
            for reason, n in sorted(dp.drops.items()):
                out.append(f"  {reason:<40} {n}\n")
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


def split_dp_arg(dpctl: Dpctl, args: Sequence[str], n_rest: int) -> tuple[str | None, list[str]]:
    """Flow commands take an optional leading DP argument: present when there
    are more arguments than the command needs."""
    rest = list(args)
    if len(rest) > n_rest:
        return rest[0], rest[1:]
    return None, rest
