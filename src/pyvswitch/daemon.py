"""``pyvswitch daemon``: the process that owns the datapaths (what
``ovs-vswitchd`` is to a kernel datapath, minus OpenFlow).

One single-threaded :class:`~pyvswitch.eventloop.EventLoop` runs everything:
the backend's device fds, the upcall handlers (a MAC-learning
:class:`~pyvswitch.learning.LearningSwitch` per datapath unless
``--no-learning``), periodic work (mask rebalancing, idle-flow expiry,
coverage rates) and the control socket, which speaks ``ovs-appctl``'s
JSON-RPC (:mod:`pyvswitch.unixctl`), so both ``pyvswitch dpctl ...`` and the
real ``ovs-appctl -t SOCKET dpctl/show`` work.

Control socket commands (``list-commands`` prints them with their usage):

* ``dpctl/CMD`` for every ``ovs-dpctl`` command (OVS's names, usage and
  argument limits; options lead and count against the limit, as in OVS);
* ``pyvswitch/dpctl [OPTIONS] CMD [ARG...]``: the same commands with
  ``ovs-dpctl`` argument rules (what ``pyvswitch dpctl`` sends);
* ``dpctl/monitor [DP]``: a subscription; after its reply the connection
  receives one JSON-RPC notification ``{"method": "dpctl/monitor",
  "params": [LINE], "id": null}`` per upcall a handler receives;
* ``coverage/show``, ``version``, ``list-commands``, ``help``, ``exit``,
  ``vlog/reopen``; the memory backend adds ``netdev-memory/*``.

Backends are pluggable: ``memory`` (:mod:`pyvswitch.backends.memory`; every
``add-if NAME`` of a device that does not exist creates a veth pair whose
other end is ``eth0`` in a host namespace called NAME, the way a dummy
datapath creates its netdevs) and ``linux`` (``pyvswitch.backends.linux``,
``LinuxNetns(name, loop)``, which registers its device fds with the loop).

``--workers N`` (N > 1, linux backend) forks N worker processes that receive
on every netdev port through ``PACKET_FANOUT_HASH`` groups and run the
receive path and the upcall handlers; this process keeps the control socket
and the configuration and replicates every change to the workers
(:mod:`pyvswitch.workers`).  ``workers/show`` lists them.
"""

from __future__ import annotations

import argparse
import binascii
import contextlib
import datetime
import errno
import fcntl
import itertools
import logging
import os
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TextIO

from . import __version__, odp, percpu
from .backends.memory import MemoryDevice, MemoryNetns, MemoryWorld
from .datapath import Datapath, Openvswitch
from .device import NetDevice, NetNamespace
from .dpctl import COMMANDS, Dpctl, DpctlError, DpctlOptionError, DpctlParams, parse_options
from .errors import PyvswitchError
from .eventloop import EventLoop
from .learning import LearningSwitch
from .uapi import Upcall
from .unixctl import (
    UnixctlCommands,
    UnixctlConn,
    UnixctlError,
    UnixctlServer,
)
from .upcall import upcall_cmd_name
from .vport import Vport
from .workers import MAX_WORKERS, WorkerEnv, WorkerNamespace, WorkerPool

log = logging.getLogger("pyvswitch.daemon")

PROGRAM = "pyvswitch"
#: a monitor subscriber whose unsent output exceeds this misses upcalls
MONITOR_BACKLOG = 1 << 20
#: ovs-vswitchd's default max-idle: handler-installed flows idle this long go
DEFAULT_MAX_IDLE_MS = 10000
COVERAGE_RUN_INTERVAL = 5.0


class DaemonError(PyvswitchError):
    """The daemon cannot start (bad option, pidfile locked, socket in use...)."""


# ---------------------------------------------------------------------------
# Directories


def default_rundir() -> str:
    """``$PYVSWITCH_RUNDIR``, else ``/run/pyvswitch`` for root, else
    ``$XDG_RUNTIME_DIR/pyvswitch`` or ``/tmp/pyvswitch-UID``."""
    env = os.environ.get("PYVSWITCH_RUNDIR")
    if env:
        return env
    if os.geteuid() == 0:
        return "/run/pyvswitch"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "pyvswitch")
    return f"/tmp/pyvswitch-{os.geteuid()}"


def default_logdir() -> str:
    env = os.environ.get("PYVSWITCH_LOGDIR")
    if env:
        return env
    return "/var/log/pyvswitch" if os.geteuid() == 0 else default_rundir()


def default_unixctl_path() -> str:
    """Where the daemon listens and ``pyvswitch dpctl`` connects by default
    (``$PYVSWITCH_UNIXCTL`` overrides the CLI's choice)."""
    return os.path.join(default_rundir(), f"{PROGRAM}.ctl")


def _in_dir(path: str | None, directory: str, default_name: str) -> str:
    """OVS's rule for ``--pidfile[=FILE]``/``--log-file[=FILE]``: no value
    means ``DIR/DEFAULT``; a relative name is relative to DIR."""
    if not path:
        return os.path.join(directory, default_name)
    return os.path.abspath(path) if os.path.isabs(path) else os.path.join(directory, path)


# ---------------------------------------------------------------------------
# Backends


class Backend(Protocol):
    """What the daemon needs from a backend."""

    name: str
    #: the ``TYPE`` of ``TYPE@NAME`` datapath names
    dp_type: str
    #: where datapaths are created
    net: NetNamespace

    def run_pending(self) -> int:
        """Do queued work that no fd announces; return how much."""
        ...

    def register_commands(self, commands: UnixctlCommands, switch: Switch) -> None: ...

    def close(self) -> None: ...


class _AutoNetns(MemoryNetns):
    """The switch namespace of the memory backend: looking up a device that
    does not exist creates a veth pair to a new host namespace of that name
    (``eth0`` there), as a dummy datapath creates netdevs on ``add-if``."""

    def dev_get_by_name(self, name: str) -> NetDevice | None:
        dev = self.devices.get(name)
        if dev is None and 0 < len(name) <= 15 and "/" not in name:
            host = self.world.netns(f"{name}-host" if name == self.name else name)
            if "eth0" not in host.devices:
                self.world.veth(host, "eth0", self, name)
                dev = self.devices[name]
        return dev


class MemoryBackend:
    """Everything in memory: namespaces, veth pairs, host stacks."""

    name = "memory"
    dp_type = "memory"

    def __init__(self, netns: str | None = None) -> None:
        self.world = MemoryWorld()
        ns = _AutoNetns(self.world, netns or "switch")
        self.world.namespaces[ns.name] = ns
        self.switch_ns: MemoryNetns = ns
        self.net: NetNamespace = ns

    def run_pending(self) -> int:
        try:
            return self.world.run(max_batches=1000)
        except RuntimeError:  # not idle yet: more next time round
            return 1000

    def _host(self, name: str) -> MemoryNetns:
        ns = self.world.namespaces.get(name)
        if ns is None or ns is self.switch_ns:
            raise UnixctlError(f"no host namespace named {name}")
        return ns

    def _switch_dev(self, port: str) -> MemoryDevice:
        dev = self.switch_ns.devices.get(port)
        if dev is None:
            raise UnixctlError(f"no device named {port} in {self.switch_ns.name}")
        return dev

    def register_commands(self, commands: UnixctlCommands, switch: Switch) -> None:
        def ip4addr(_c: UnixctlConn | None, a: list[str]) -> str:
            host = self._host(a[0])
            try:
                host.add_address("eth0", a[1])
            except ValueError as e:
                raise UnixctlError(f"{a[1]}: {e}") from None
            return "OK"

        def ping(_c: UnixctlConn | None, a: list[str]) -> str:
            host = self._host(a[0])
            try:
                count = int(a[2]) if len(a) > 2 else 1
            except ValueError:
                raise UnixctlError(f"bad count {a[2]!r}") from None
            if not 1 <= count <= 10000:
                raise UnixctlError("count must be 1..10000")
            res = None
            for _ in range(count):  # one echo at a time, as ping does
                try:
                    res = host.ping(a[1], result=res)
                except ValueError as e:
                    raise UnixctlError(f"{a[1]}: {e}") from None
                switch.settle()
            assert res is not None
            loss = 100 * (res.sent - res.received) // max(res.sent, 1)
            return f"{res.sent} packets transmitted, {res.received} received, {loss}% packet loss"

        def receive(_c: UnixctlConn | None, a: list[str]) -> str:
            dev = self._switch_dev(a[0])
            frames = []
            for hx in a[1:]:
                try:
                    frames.append(bytes.fromhex(hx))
                except ValueError:
                    raise UnixctlError(f"{hx}: not a packet in hex") from None
            if dev.peer is None:
                raise UnixctlError(f"{a[0]} has no peer to receive from")
            dev.peer.host_xmit(frames)
            switch.settle()
            return ""

        def show(_c: UnixctlConn | None, _a: list[str]) -> str:
            out = []
            for ns in sorted(self.world.namespaces.values(), key=lambda n: n.name):
                out.append(f"{ns.name}:\n")
                for dev in sorted(ns.devices.values(), key=lambda d: d.name):
                    line = f"  {dev.name}"
                    if dev.kind != "veth":
                        line += f" ({dev.kind})"
                    addr = ns.stack.addresses.get(dev.name)
                    if addr is not None:
                        line += f" {addr}"
                    if dev.peer is not None:
                        line += f" peer {dev.peer.netns.name}/{dev.peer.name}"
                    s = dev.stats
                    line += (
                        f" rx:{s.rx_packets} tx:{s.tx_packets}"
                        f" mac {':'.join(f'{b:02x}' for b in dev.mac)}"
                    )
                    out.append(line + "\n")
            return "".join(out)

        commands.register("netdev-memory/ip4addr", "host addr/prefix", 2, 2, ip4addr)
        commands.register("netdev-memory/ping", "host dst [count]", 2, 3, ping)
        commands.register("netdev-memory/receive", "port packet...", 2, 2**31 - 1, receive)
        commands.register("netdev-memory/show", "", 0, 0, show)

    def close(self) -> None:
        pass


class LinuxBackend:
    """Real devices through ``pyvswitch.backends.linux.LinuxNetns``; with
    ``control=True`` the namespace of a switch whose worker processes
    receive (``ControlNetns``: devices never receive here)."""

    name = "linux"
    dp_type = "system"

    def __init__(self, netns: str | None, loop: EventLoop, *, control: bool = False) -> None:
        try:
            from .backends import linux
        except ImportError as e:
            raise DaemonError(
                f"the linux backend is not available ({e})", errno=errno.EAFNOSUPPORT
            ) from e
        self.netns_name = netns
        self.net: NetNamespace = (
            linux.ControlNetns(netns, loop) if control else linux.LinuxNetns(netns, loop)
        )

    def worker_env(self, *, learning: bool, max_idle_ms: int) -> WorkerEnv:
        """What worker processes need: fanout namespaces, socket pairs, the
        TAP descriptors of this process's internal devices."""
        from .backends import linux

        net = self.net
        assert isinstance(net, linux.ControlNetns)
        fanout = linux.Fanout(seed=os.getpid())
        netns = self.netns_name

        def make_netns(loop: EventLoop, index: int) -> WorkerNamespace:
            return linux.WorkerNetns(netns, loop, fanout=fanout, read_taps=index == 0)

        return WorkerEnv(
            socketpair=lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM),
            make_netns=make_netns,
            internal_fd=net.internal_device_fd,
            learning=learning,
            max_idle_ms=max_idle_ms,
        )

    def run_pending(self) -> int:
        return 0

    def register_commands(self, commands: UnixctlCommands, switch: Switch) -> None:
        pass

    def close(self) -> None:
        close = getattr(self.net, "close", None)
        if callable(close):
            close()


def linux_backend_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("pyvswitch.backends.linux") is not None
    except (ImportError, ValueError):
        return False


def default_backend() -> str:
    """``linux`` when running as root and the backend is installed, else ``memory``."""
    return "linux" if os.geteuid() == 0 and linux_backend_available() else "memory"


def open_backend(
    name: str | None, loop: EventLoop, netns: str | None = None, *, workers: int = 1
) -> Backend:
    choice = name or default_backend()
    if choice == "memory":
        if workers > 1:
            raise DaemonError("--workers needs the linux backend", errno=errno.EINVAL)
        return MemoryBackend(netns)
    if choice == "linux":
        return LinuxBackend(netns, loop, control=workers > 1)
    raise DaemonError(f"unknown backend {choice!r} (memory or linux)")


# ---------------------------------------------------------------------------
# Coverage counters (OVS's coverage/show)


class Coverage:
    """Named event totals with OVS's averaged rates: over the last
    :data:`COVERAGE_RUN_INTERVAL` seconds, the last minute, the last hour."""

    MIN_AVG_LEN = int(60 / COVERAGE_RUN_INTERVAL)
    HR_AVG_LEN = 60

    def __init__(self, read: Callable[[], dict[str, int]]) -> None:
        self.read = read
        self._last: dict[str, int] = {}
        self._min: dict[str, deque[int]] = {}
        self._hr: dict[str, deque[int]] = {}
        self._pending_min: dict[str, int] = {}
        self._n_runs = 0

    def run(self) -> None:
        """Every :data:`COVERAGE_RUN_INTERVAL` seconds (``coverage_run``)."""
        totals = self.read()
        self._n_runs += 1
        for name, total in totals.items():
            delta = max(0, total - self._last.get(name, 0))
            self._last[name] = total
            ring = self._min.setdefault(name, deque([0] * self.MIN_AVG_LEN, self.MIN_AVG_LEN))
            ring.append(delta)
            self._pending_min[name] = self._pending_min.get(name, 0) + delta
        if self._n_runs % self.MIN_AVG_LEN == 0:
            for name, n in self._pending_min.items():
                hr = self._hr.setdefault(name, deque([0] * self.HR_AVG_LEN, self.HR_AVG_LEN))
                hr.append(n)
            self._pending_min.clear()

    def show(self) -> str:
        """``coverage_read``."""
        totals = self.read()
        names = sorted(totals)
        h = binascii.crc32(" ".join(f"{n}={totals[n]}" for n in names).encode())
        lines = [
            f"Event coverage, avg rate over last: {int(COVERAGE_RUN_INTERVAL)} seconds, "
            f"last minute, last hour,  hash={h:08x}:"
        ]
        never = 0
        for name in names:
            total = totals[name]
            if not total:
                never += 1
                continue
            mins = self._min.get(name)
            last = mins[-1] if mins else 0
            minute = sum(mins) if mins else 0
            hour = sum(self._hr.get(name, ())) + self._pending_min.get(name, 0)
            lines.append(
                f"{name:<24} {last / COVERAGE_RUN_INTERVAL:5.1f}/sec {minute / 60.0:9.3f}/sec "
                f"{hour / 3600.0:13.4f}/sec   total: {total}"
            )
        lines.append(f"{never} events never hit")
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# The switch: datapaths, handlers, monitors, commands


class _Monitor:
    __slots__ = ("conn", "dp_name", "missed")

    def __init__(self, conn: UnixctlConn, dp_name: str | None) -> None:
        self.conn = conn
        self.dp_name = dp_name
        self.missed = 0


class DaemonLearningSwitch(LearningSwitch):
    """The default upcall handler; reports each upcall to monitors first."""

    def __init__(self, dp: Datapath, switch: Switch) -> None:
        self.switch = switch
        super().__init__(dp)

    def handle_upcall(self, upcall: Upcall) -> None:
        if self.switch.monitors:
            self.switch.publish_upcall(self.dp, upcall)
        super().handle_upcall(upcall)


class Switch:
    """One pyvswitch instance behind a command table: the
    :class:`~pyvswitch.datapath.Openvswitch`, its :class:`~pyvswitch.dpctl.Dpctl`,
    the upcall handlers and monitor subscriptions.  The daemon serves
    :attr:`commands` on its socket; ``pyvswitch dpctl --in-memory`` runs them
    in-process."""

    def __init__(
        self,
        backend: Backend,
        loop: EventLoop | None = None,
        *,
        learning: bool = True,
        max_idle_ms: int = DEFAULT_MAX_IDLE_MS,
        program: str = PROGRAM,
        read_file: Callable[[str], str] | None = None,
        local_handlers: bool = True,
    ) -> None:
        self.backend = backend
        self.loop = loop
        self.learning = learning
        #: run upcall handlers in this process (False: worker processes do)
        self.local_handlers = local_handlers
        #: wraps every dpctl command: (command name, its arguments, run it) ->
        #: reply text (the worker pool replicates what the command changed)
        self.command_hook: Callable[[str, Sequence[str], Callable[[], str]], str] | None = None
        #: coverage counters kept elsewhere (worker processes)
        self.extra_coverage: Callable[[], dict[str, int]] | None = None
        self.max_idle_ms = max_idle_ms
        self.program = program
        self.ovs = Openvswitch()
        self.handlers: dict[Datapath, LearningSwitch] = {}
        self.monitors: list[_Monitor] = []
        self.retired: dict[str, int] = {}
        self.dpctl = Dpctl(
            self.ovs,
            backend.net,
            dp_type=backend.dp_type,
            on_dp_added=self._dp_added,
            on_port_added=self._port_added,
            on_dp_deleted=self._dp_deleted,
            read_file=read_file,
        )
        self.commands = UnixctlCommands(program)
        self.coverage = Coverage(self.coverage_totals)
        self._register_commands()
        backend.register_commands(self.commands, self)
        if loop is not None:
            loop.add_idle(self.run_pending)
            loop.call_every(1.0, self.tick)
            loop.call_every(COVERAGE_RUN_INTERVAL, self.coverage.run)

    # -- handlers ------------------------------------------------------------

    def _dp_added(self, dp: Datapath) -> None:
        if self.learning and self.local_handlers:
            self.handlers[dp] = DaemonLearningSwitch(dp, self)
        log.info("%s: created", self.dpctl.full_name(dp))

    def _port_added(self, vport: Vport) -> None:
        handler = self.handlers.get(vport.dp) if vport.dp is not None else None
        if handler is not None:
            vport.set_upcall_portids(handler.portids)

    def _dp_deleted(self, dp: Datapath) -> None:
        handler = self.handlers.pop(dp, None)
        if handler is not None:
            for name, n in self._handler_counts(handler).items():
                self.retired[name] = self.retired.get(name, 0) + n
            handler.close()
        for reason, n in dp.drops.items():
            self.retired[reason] = self.retired.get(reason, 0) + n
        log.info("%s: deleted", self.dpctl.full_name(dp))

    @staticmethod
    def _handler_counts(h: LearningSwitch) -> dict[str, int]:
        return {
            "handler_upcall": h.n_handled,
            "handler_error": h.n_errors,
            "handler_flow_install": h.n_flows_installed,
        }

    def run_pending(self) -> int:
        """Backend work plus one round of every upcall handler; how much was done."""
        n = self.backend.run_pending()
        for h in list(self.handlers.values()):
            n += h.poll()
        return n

    def settle(self, limit: int = 100000) -> int:
        """Run until nothing is left to do (bounded): traffic started by a
        command (ping, receive, execute) is delivered before it replies."""
        total = 0
        for _ in range(limit):
            n = self.run_pending()
            if not n:
                break
            total += n
        return total

    def tick(self) -> None:
        """Once a second: mask rebalancing and, like ovs-vswitchd's
        revalidators, expiry of handler-installed flows idle for max-idle."""
        for dp in list(self.ovs):
            dp.tick()
        if self.max_idle_ms > 0:
            for h in self.handlers.values():
                h.expire(self.max_idle_ms / 1000.0)

    # -- monitors ----------------------------------------------------------------

    def publish_upcall(self, dp: Datapath, upcall: Upcall) -> None:
        """``dpif_print_packet``'s text, one line: ``TYPE@DP: miss upcall: KEY``."""
        name = self.dpctl.full_name(dp)
        line = (
            f"{name}: {upcall_cmd_name(upcall.cmd)} upcall: "
            f"{odp.format_flow(upcall.key, None, verbose=True, style='kernel')}"
        )
        if upcall.userdata:
            line += f", userdata({upcall.userdata.hex()})"
        line += f", packet_len:{len(upcall.packet)}"
        for m in list(self.monitors):
            if m.dp_name is not None and m.dp_name != dp.name:
                continue
            if m.conn.backlog > MONITOR_BACKLOG:
                m.missed += 1
                continue
            if m.missed:
                m.conn.notify("dpctl/monitor", [f"({m.missed} upcalls not shown: too slow)"])
                m.missed = 0
            m.conn.notify("dpctl/monitor", [line])

    def _monitor(self, conn: UnixctlConn | None, args: list[str]) -> str:
        if conn is None:
            raise UnixctlError("dpctl/monitor streams to a connection; it needs the daemon")
        dp_name = None
        if args:
            try:
                dp_name = self.dpctl.open_dp(args[0]).name
            except DpctlError as e:
                raise UnixctlError(f"{self.program}: {e}") from e
        mon = _Monitor(conn, dp_name)
        self.monitors.append(mon)
        conn.on_close.append(lambda _c: self.monitors.remove(mon) if mon in self.monitors else None)
        what = "" if not self.learning else " (handled upcalls)"
        return (
            f"monitoring upcalls{what}; each arrives as a JSON-RPC notification "
            f"(pyvswitch dpctl monitor prints them)"
        )

    # -- commands ----------------------------------------------------------------

    def _register_commands(self) -> None:
        c = self.commands
        for cmd in COMMANDS:
            if cmd.name == "coverage":
                continue
            c.register(
                f"dpctl/{cmd.name}", cmd.usage, cmd.min_args, cmd.max_args, self._appctl(cmd.name)
            )
        c.register("pyvswitch/dpctl", "[options] command [arg...]", 1, 2**31 - 1, self._dpctl)
        c.register("dpctl/monitor", "[dp]", 0, 1, self._monitor)
        c.register("coverage/show", "", 0, 0, lambda _c, _a: self.coverage.show())

    def _guarded(self, name: str, args: Sequence[str], fn: Callable[[], str]) -> str:
        hook = self.command_hook
        return fn() if hook is None else hook(name, args, fn)

    def _appctl(self, name: str) -> Callable[[UnixctlConn | None, list[str]], str]:
        def run(_conn: UnixctlConn | None, args: list[str]) -> str:
            try:
                return self._guarded(name, args, lambda: self.dpctl.run_appctl(name, args))
            except DpctlOptionError as e:
                raise UnixctlError(str(e)) from e
            except DpctlError as e:
                # dpctl_error prefixes the program name, here as in ovs-vswitchd
                raise UnixctlError(f"{self.program}: {e.full_text()}") from e

        return run

    def _dpctl(self, _conn: UnixctlConn | None, args: list[str]) -> str:
        """``pyvswitch/dpctl``: ``ovs-dpctl`` rules (options do not count)."""
        try:
            p, rest = parse_options(args, DpctlParams(is_appctl=False))
            name = rest[0] if rest else ""
            return self._guarded(name, rest[1:], lambda: self.dpctl.run(rest, p))
        except DpctlError as e:
            raise UnixctlError(e.full_text()) from e

    def coverage_totals(self) -> dict[str, int]:
        t = dict(self.retired)
        if self.extra_coverage is not None:
            for name, n in self.extra_coverage().items():
                t[name] = t.get(name, 0) + n
        t.setdefault("unixctl_received", 0)
        t["unixctl_received"] += self.commands.n_received
        t["unixctl_replied"] = t.get("unixctl_replied", 0) + self.commands.n_replied
        for h in self.handlers.values():
            for name, n in self._handler_counts(h).items():
                t[name] = t.get(name, 0) + n
        for dp in self.ovs:
            for reason, n in dp.drops.items():
                t[reason] = t.get(reason, 0) + n
            s = dp.get_stats()
            t["datapath_upcall_lost"] = t.get("datapath_upcall_lost", 0) + s.n_lost
        return t

    def close(self) -> None:
        """Delete every datapath (ports and their devices released), drop
        monitors, close the backend."""
        for dp in list(self.ovs):
            try:
                self.dpctl.del_dp(self.dpctl.full_name(dp))
            except PyvswitchError as e:
                log.warning("deleting %s: %s", dp.name, e)
        for m in list(self.monitors):
            m.conn.close()
        self.monitors.clear()
        if self.loop is not None:
            self.loop.remove_idle(self.run_pending)
        self.backend.close()


# ---------------------------------------------------------------------------
# Process plumbing: logging, pidfile, daemonizing, signals

_LEVELS = {
    logging.DEBUG: "DBG",
    logging.INFO: "INFO",
    logging.WARNING: "WARN",
    logging.ERROR: "ERR",
    logging.CRITICAL: "EMER",
}


class _Sequence(logging.Filter):
    """Numbers each log message once, whatever the number of destinations
    (OVS's ``msg_num``)."""

    def __init__(self) -> None:
        super().__init__()
        self._seq = itertools.count(1)

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "vlog_seq"):
            record.vlog_seq = next(self._seq)
        return True


class VlogFormatter(logging.Formatter):
    """OVS's log line: ``2024-01-01T12:00:00.123Z|00042|module|INFO|text``."""

    def format(self, record: logging.LogRecord) -> str:
        t = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        module = record.name.rsplit(".", 1)[-1]
        level = _LEVELS.get(record.levelno, record.levelname)
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        stamp = f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"
        seq = getattr(record, "vlog_seq", 0)
        return f"{stamp}|{seq:05d}|{module}|{level}|{text}"


class _LogFile:
    """The ``--log-file`` handler; :meth:`reopen` for log rotation."""

    def __init__(
        self, path: str, formatter: logging.Formatter, level: int, seq: logging.Filter
    ) -> None:
        self.path = path
        self.formatter = formatter
        self.level = level
        self.seq = seq
        self.handler: logging.FileHandler | None = None
        self.reopen()

    def reopen(self) -> None:
        root = logging.getLogger()
        try:
            new = logging.FileHandler(self.path, encoding="utf-8")
        except OSError as e:
            raise DaemonError(f"{self.path}: cannot open log file ({e.strerror})") from e
        new.setFormatter(self.formatter)
        new.setLevel(self.level)
        new.addFilter(self.seq)
        if self.handler is not None:
            root.removeHandler(self.handler)
            self.handler.close()
        root.addHandler(new)
        self.handler = new

    def close(self) -> None:
        if self.handler is not None:
            logging.getLogger().removeHandler(self.handler)
            self.handler.close()
            self.handler = None


class Pidfile:
    """``--pidfile``: the pid, under an fcntl lock held while we run (so
    ``ovs-appctl -t pyvswitch`` and a second daemon can tell it is live)."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise DaemonError(f"{path}: create failed ({e.strerror})", errno=e.errno) from e
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.read(fd, 64).decode(errors="replace").strip()
            os.close(fd)
            raise DaemonError(
                f"{path}: already running as pid {other or '?'}, aborting", errno=errno.EALREADY
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        self.ino = os.fstat(fd).st_ino

    def remove(self) -> None:
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.ino:
                os.unlink(self.path)
        os.close(self.fd)
        self.fd = -1


def _daemonize_start() -> int:
    """Fork twice (``daemonize_start``); the original process waits until the
    daemon reports readiness, then exits 0 (or prints its error and exits 1).
    Returns, in the daemon, the fd to report readiness on."""
    r, w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        chunks = []
        while True:
            b = os.read(r, 4096)
            if not b:
                break
            chunks.append(b)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        msg = b"".join(chunks).decode(errors="replace")
        if msg.startswith("0"):
            os._exit(0)
        text = msg[1:].strip() or "daemon exited during startup"
        sys.stderr.write(f"{PROGRAM}: {text}\n")
        sys.stderr.flush()
        os._exit(1)
    os.close(r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    return w


def _daemonize_complete(fd: int, error: str | None = None) -> None:
    """Tell the waiting parent how startup went; detach stdio."""
    with contextlib.suppress(OSError):
        os.write(fd, b"0" if error is None else b"1" + error.encode())
    os.close(fd)
    if error is None:
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        os.close(null)


class _Signals:
    """SIGTERM/SIGINT/SIGHUP end the loop (OVS's fatal signals); a wake-up
    socket makes the loop notice at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self, loop: EventLoop) -> None:
        self.loop = loop
        self.received: int | None = None
        self.rsock, self.wsock = socket.socketpair()
        self.rsock.setblocking(False)
        self.wsock.setblocking(False)
        self.old_wakeup = signal.set_wakeup_fd(self.wsock.fileno(), warn_on_full_buffer=False)
        self.old = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        loop.add_reader(self.rsock.fileno(), self._drain)

    def _handler(self, signum: int, _frame: object) -> None:
        self.received = signum
        self.loop.stop()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while self.rsock.recv(512):
                pass

    def close(self) -> None:
        self.loop.remove_reader(self.rsock.fileno())
        signal.set_wakeup_fd(self.old_wakeup)
        for s, h in self.old.items():
            signal.signal(s, h)
        self.rsock.close()
        self.wsock.close()


# ---------------------------------------------------------------------------
# The daemon


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``pyvswitch daemon`` options."""
    p.add_argument(
        "--unixctl",
        metavar="PATH",
        help="control socket (default: $PYVSWITCH_RUNDIR/pyvswitch.ctl, "
        f"now {default_unixctl_path()})",
    )
    p.add_argument(
        "--backend",
        choices=("memory", "linux"),
        help="where devices live: memory (in-process veth pairs and hosts) or linux "
        "(real devices); default linux when root and available, else memory",
    )
    p.add_argument(
        "--netns",
        metavar="NAME",
        help="namespace datapaths are created in (memory: its name, default 'switch')",
    )
    p.add_argument(
        "--no-learning",
        action="store_true",
        help="run no upcall handler: misses are counted as lost, like a bare kernel datapath",
    )
    p.add_argument(
        "--max-idle",
        type=int,
        default=DEFAULT_MAX_IDLE_MS,
        metavar="MS",
        help="delete handler-installed flows idle this long (default %(default)s; 0 = never)",
    )
    p.add_argument(
        "--detach",
        action="store_true",
        help="run in the background once ready (stdio to /dev/null)",
    )
    p.add_argument(
        "--no-chdir",
        action="store_true",
        help="with --detach, keep the working directory (default: chdir to /)",
    )
    p.add_argument(
        "--pidfile",
        nargs="?",
        const="",
        metavar="FILE",
        help="write the pid to FILE (default FILE: $PYVSWITCH_RUNDIR/pyvswitch.pid)",
    )
    p.add_argument(
        "--log-file",
        nargs="?",
        const="",
        metavar="FILE",
        help="log to FILE (default FILE: $PYVSWITCH_LOGDIR/pyvswitch.log)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="N worker processes receive through PACKET_FANOUT (linux backend); "
        "default 1: everything in this process",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages too")


class Daemon:
    """Runs a :class:`Switch` behind a control socket until told to stop."""

    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        rundir = default_rundir()
        self.rundir = rundir
        self.ctl_path = os.path.abspath(opts.unixctl or default_unixctl_path())
        self.pidfile_path = (
            None if opts.pidfile is None else _in_dir(opts.pidfile, rundir, f"{PROGRAM}.pid")
        )
        self.log_path = (
            None
            if opts.log_file is None
            else _in_dir(opts.log_file, default_logdir(), f"{PROGRAM}.log")
        )
        self.loop = EventLoop()
        self.switch: Switch | None = None
        self.server: UnixctlServer | None = None
        self.pidfile: Pidfile | None = None
        self.logfile: _LogFile | None = None
        self.signals: _Signals | None = None
        self.appctl_link: str | None = None
        self.exit_requested = False
        self.pool: WorkerPool | None = None
        #: what run_daemon returns (1 when the workers could not be kept up)
        self.exit_status = 0
        self.fatal: str | None = None

    # -- startup -------------------------------------------------------------

    def _setup_logging(self, console: TextIO | None) -> None:
        root = logging.getLogger()
        level = logging.DEBUG if self.opts.verbose else logging.INFO
        root.setLevel(level)
        fmt = VlogFormatter()
        seq = _Sequence()
        if console is not None:
            h = logging.StreamHandler(console)
            h.setFormatter(fmt)
            h.setLevel(level)
            h.addFilter(seq)
            root.addHandler(h)
        if self.log_path is not None:
            try:
                os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
            except OSError as e:
                raise DaemonError(f"{self.log_path}: cannot create directory ({e.strerror})") from e
            self.logfile = _LogFile(self.log_path, fmt, level, seq)

    def _read_file(self, path: str) -> str:
        if path == "-":
            raise DpctlError(
                'Opening file "-" failed (the daemon has no stdin; pass a file name)',
                errno=errno.EINVAL,
            )
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read()
        except OSError as e:
            raise DpctlError(
                f'Opening file "{path}" failed ({e.strerror})', errno=e.errno or errno.EIO
            ) from e

    def start(self) -> None:
        """Everything up to "ready": pidfile, backend, switch, socket, signals."""
        for d in {os.path.dirname(self.ctl_path), os.path.dirname(self.pidfile_path or "")}:
            if d:
                try:
                    os.makedirs(d, mode=0o755, exist_ok=True)
                except OSError as e:
                    raise DaemonError(f"{d}: cannot create directory ({e.strerror})") from e
        if self.pidfile_path is not None:
            self.pidfile = Pidfile(self.pidfile_path)
        n_workers = getattr(self.opts, "workers", 1)
        arena: percpu.SharedArena | None = None
        if n_workers > 1:
            # counters live in shared memory mapped before the workers fork:
            # row i is worker i's, the last row this process's
            arena = percpu.SharedArena(n_workers + 1)
            percpu.configure(n_workers + 1, percpu.allocator_with_fallback(arena))
            percpu.set_worker(n_workers)
        backend = open_backend(self.opts.backend, self.loop, self.opts.netns, workers=n_workers)
        self.switch = Switch(
            backend,
            self.loop,
            learning=not self.opts.no_learning,
            max_idle_ms=self.opts.max_idle,
            read_file=self._read_file,
            local_handlers=n_workers == 1,
        )
        c = self.switch.commands
        c.register("exit", "[--cleanup]", 0, 1, self._exit)
        c.register("vlog/reopen", "", 0, 0, self._reopen)
        if arena is not None:
            assert isinstance(backend, LinuxBackend)
            env = backend.worker_env(
                learning=not self.opts.no_learning, max_idle_ms=self.opts.max_idle
            )
            self.pool = WorkerPool(
                n_workers, self.switch, self.loop, arena, env, on_fatal=self._workers_failed
            )
            self.switch.command_hook = self.pool.around_command
            self.switch.extra_coverage = self.pool.coverage_totals
            pool = self.pool
            c.register("workers/show", "", 0, 0, lambda _c, _a: pool.show())
            self.pool.start()
        self.server = UnixctlServer(self.ctl_path, c, self.loop)
        self._appctl_target_link()
        self.signals = _Signals(self.loop)
        log.info(
            "%s %s started: backend %s, control socket %s%s",
            PROGRAM,
            __version__,
            backend.name,
            self.ctl_path,
            f", {n_workers} workers" if n_workers > 1 else "",
        )

    def _workers_failed(self, why: str) -> None:
        """The worker pool gave up: stop, exit non-zero."""
        self.fatal = why
        self.exit_status = 1
        self.loop.stop()

    def _appctl_target_link(self) -> None:
        """With the default pidfile in the rundir, also answer at
        ``RUNDIR/pyvswitch.PID.ctl`` so ``ovs-appctl -t pyvswitch`` (with
        ``OVS_RUNDIR=RUNDIR``) finds us the way it finds ovs-vswitchd."""
        if self.pidfile_path is None or self.pidfile is None:
            return
        if os.path.dirname(self.pidfile_path) != os.path.dirname(self.ctl_path):
            return
        if os.path.basename(self.pidfile_path) != f"{PROGRAM}.pid":
            return
        link = os.path.join(os.path.dirname(self.ctl_path), f"{PROGRAM}.{os.getpid()}.ctl")
        if link == self.ctl_path:
            return
        with contextlib.suppress(OSError):
            if os.path.islink(link):
                os.unlink(link)
            os.symlink(os.path.basename(self.ctl_path), link)
            self.appctl_link = link

    def _exit(self, _conn: UnixctlConn | None, args: list[str]) -> str:
        if args and args[0] != "--cleanup":
            raise UnixctlError(f"exit: unknown option {args[0]}")
        self.exit_requested = True
        self.loop.stop()
        return ""

    def _reopen(self, _conn: UnixctlConn | None, _args: list[str]) -> str:
        if self.logfile is None:
            return "Logging to file not configured"
        try:
            self.logfile.reopen()
        except DaemonError as e:
            raise UnixctlError(str(e)) from e
        if self.pool is not None:
            self.pool.reopen_logs()
        return ""

    # -- running and stopping ------------------------------------------------

    def run(self) -> None:
        self.loop.run()
        if self.signals is not None and self.signals.received is not None:
            name = signal.Signals(self.signals.received).name
            log.info("%s: received %s, exiting", PROGRAM, name)
        elif self.exit_requested:
            log.info("%s: exit requested, exiting", PROGRAM)
        elif self.fatal is not None:
            log.error("%s: %s, exiting", PROGRAM, self.fatal)

    def stop(self) -> None:
        """Clean shutdown: datapaths deleted (devices released), control
        socket, appctl link and pidfile removed.  Workers exit first."""
        if self.pool is not None:
            self.pool.stop()
            self.pool = None
            percpu.configure(1)  # counters made from now on are private again
            percpu.set_worker(0)
        if self.switch is not None:
            self.switch.close()
            self.switch = None
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.appctl_link is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.appctl_link)
            self.appctl_link = None
        if self.signals is not None:
            self.signals.close()
            self.signals = None
        if self.pidfile is not None:
            self.pidfile.remove()
            self.pidfile = None
        if self.logfile is not None:
            self.logfile.close()
            self.logfile = None
        self.loop.close()


def run_daemon(opts: argparse.Namespace) -> int:
    """``pyvswitch daemon``: 0 after a clean shutdown (signal or ``exit``),
    1 if it could not start (one line on stderr)."""
    if opts.max_idle < 0:
        raise DaemonError("--max-idle must be >= 0")
    workers = getattr(opts, "workers", 1)
    if not 1 <= workers <= MAX_WORKERS:
        raise DaemonError(f"--workers must be 1..{MAX_WORKERS}")
    ready_fd = -1
    if opts.detach:
        # resolve every path before chdir("/")
        for attr in ("unixctl", "pidfile", "log_file"):
            v = getattr(opts, attr)
            if v:
                setattr(opts, attr, os.path.abspath(v))
        ready_fd = _daemonize_start()
        if not opts.no_chdir:
            os.chdir("/")
    daemon = Daemon(opts)
    try:
        daemon._setup_logging(None if opts.detach else sys.stderr)
        daemon.start()
    except PyvswitchError as e:
        daemon.stop()
        if ready_fd >= 0:
            _daemonize_complete(ready_fd, str(e))
            os._exit(1)
        raise
    except BaseException as e:
        daemon.stop()
        if ready_fd >= 0:
            _daemonize_complete(ready_fd, f"{type(e).__name__}: {e}")
            os._exit(1)
        raise
    if ready_fd >= 0:
        _daemonize_complete(ready_fd)
    try:
        daemon.run()
    finally:
        daemon.stop()
    return daemon.exit_status


@contextlib.contextmanager
def in_memory_switch(netns: str | None = None, *, learning: bool = True) -> Iterator[Switch]:
    """A fresh in-memory :class:`Switch` with no socket and no loop running
    (``pyvswitch dpctl --in-memory``)."""
    sw = Switch(MemoryBackend(netns), None, learning=learning)
    try:
        yield sw
    finally:
        sw.close()


def run_command(switch: Switch, method: str, params: Sequence[str]) -> str:
    """Run one control command in-process; raise :class:`UnixctlError` with
    the error reply; deliver the traffic it caused."""
    ok, text = switch.commands.execute(method, list(params))
    switch.settle()
    if not ok:
        raise UnixctlError(text)
    return text
