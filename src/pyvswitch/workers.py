"""Worker processes: ``pyvswitch daemon --workers N`` (N > 1).

The main process keeps the control plane: the control socket, the
configuration (datapaths, ports, the flows ``dpctl`` installed) and a copy of
every datapath that never receives (its netdev devices only transmit; see
``backends.linux.ControlNetns``).  N forked **workers** do the data plane:
each has its own event loop, its own replica of every datapath and its own
upcall handlers, and receives on every netdev port through a packet socket
joined to the port's ``PACKET_FANOUT_HASH`` group (the kernel's flow hash
picks the worker, so a flow stays on one worker).  Internal ports are TAPs
created by the main process; every worker writes to them through a copy of
the descriptor, worker 0 alone reads them.

**Replication.**  A ``dpctl`` command runs on the main process's datapaths
exactly as with one process; afterwards :meth:`WorkerPool.around_command`
compares the configuration with what it was before the command and pushes
the difference to every worker as one message of low-level operations
(``dp_new``, ``vport_add``, ``flow_put``, ``flow_del``, ...), pickled over a
Unix socket pair per worker (TAP descriptors travel as ``SCM_RIGHTS``).  A
worker applies a message between two receive batches.  A (re)started worker
gets the whole configuration in one ``sync`` message.

**Reading flows.**  Commands that report or match flows (``show``,
``dump-flows``, ``get-flow``, ``add/mod/del-flow(s)``, ``coverage``) first
ask every worker for its flows (one round trip) and *materialize* them in the
main process's table for the duration of the command: a flow's packets and
bytes are summed over the workers, ``used`` is the latest, TCP flags are
OR-ed.  Flows a worker's handler installed (MAC learning) exist only in the
workers and may differ between them; they are merged by megaflow (mask and
masked key, or UFID): one line per megaflow, counts summed over every
worker's copy, actions of the copy that saw the most packets.  The command
then sees one table, as with one process: ``add-flow`` of a flow a handler
installed is ``File exists``, ``del-flow``/``mod-flow`` of one go to every
worker.

**Counters.**  Vport and datapath counters are :class:`~.percpu.PcpuCounters`
whose rows live in a :class:`~.percpu.SharedArena` mapped before the fork:
row i is worker i's, the last row the main process's (``execute``); the
main process sums them on every read without asking anyone.

**Failures.**  A worker whose socket closes (it died) is reaped, logged with
its exit status and restarted after a short delay with the current
configuration (its counters continue in the same row, so they never go
back).  A worker that answers nothing for :attr:`WorkerPool.HANG_TIMEOUT`
seconds is killed and restarted.  More than :attr:`WorkerPool.RESTART_LIMIT`
failures of one worker within :attr:`WorkerPool.RESTART_WINDOW` seconds make
the daemon give up: it logs why and exits with status 1.  Workers die with
the daemon: ``PR_SET_PDEATHSIG`` (SIGKILL) and an ``exit`` message at a
clean shutdown.

This module only needs a :class:`~.device.NetNamespace`; the daemon supplies
the Linux pieces (the namespaces and the socket pairs).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import gc
import itertools
import logging
import os
import pickle
import select
import signal
import socket
import struct
import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from . import flow, percpu
from .datapath import Datapath, Openvswitch
from .device import NetDevice, NetNamespace
from .errors import PyvswitchError
from .eventloop import EventLoop
from .flow_table import Flow
from .learning import LearningSwitch
from .uapi import (
    OVS_PACKET_CMD_MISS,
    OVS_VPORT_TYPE_INTERNAL,
    OVS_VPORT_TYPE_NETDEV,
    VPORT_TYPE_ALIASES,
    Action,
    Upcall,
)
from .vport import RX_PACKETS, Vport

log = logging.getLogger("pyvswitch.workers")

#: vport types a worker can replicate (tunnel ports need one process)
REPLICATED_TYPES = frozenset((OVS_VPORT_TYPE_NETDEV, OVS_VPORT_TYPE_INTERNAL))
#: commands that neither read nor change datapath state
PURE_COMMANDS = frozenset(("list-commands", "parse-actions", "normalize-actions", "dump-dps"))
#: commands that see flows (or drop counters) the workers hold
FLOW_COMMANDS = frozenset(
    (
        "show",
        "dump-flows",
        "get-flow",
        "add-flow",
        "mod-flow",
        "del-flow",
        "add-flows",
        "mod-flows",
        "del-flows",
        "coverage",
    )
)
#: a worker stops reporting upcalls to monitors while this much is unsent
MONITOR_BACKLOG = 1 << 20
MAX_WORKERS = 64

# ---------------------------------------------------------------------------
# The channel: length-prefixed pickles over a Unix stream socket, descriptors
# as SCM_RIGHTS

_LEN = struct.Struct("!I")
_MAX_FDS = 64


class ChannelClosed(PyvswitchError):
    """The other process closed its end (it exited)."""


class ChannelTimeout(PyvswitchError):
    """The other process did not read for too long."""


class Channel:
    """One end of a worker's socket pair: messages are pickled tuples, each
    behind a 4-byte length; :meth:`send` may attach descriptors.  The socket
    is non-blocking; unsent bytes wait in a buffer (:meth:`flush`)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._out = bytearray()
        self._in = bytearray()
        #: descriptors received, in order (each ``fd`` message takes one)
        self.fds: deque[int] = deque()
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def backlog(self) -> int:
        """Bytes not yet sent."""
        return len(self._out)

    def send(self, msg: object, fds: Sequence[int] = (), *, timeout: float | None = 5.0) -> bool:
        """Send a message.  ``timeout=None`` never blocks (what does not fit
        waits in the buffer); else wait up to ``timeout`` seconds for the peer
        to read (:class:`ChannelTimeout`).  Returns whether all was sent."""
        if self.closed:
            raise ChannelClosed("worker channel closed")
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        frame = _LEN.pack(len(data)) + data
        if fds:
            # descriptors travel with the first byte of their message
            self.flush(5.0 if timeout is None else timeout)
            sent = self._send_with_fds(frame, fds, timeout)
            self._out += frame[sent:]
        else:
            self._out += frame
        return self.flush(timeout)

    def _send_with_fds(self, frame: bytes, fds: Sequence[int], timeout: float | None) -> int:
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array("i", fds).tobytes())]
        deadline = time.monotonic() + (5.0 if timeout is None else timeout)
        while True:
            try:
                return self.sock.sendmsg([frame], anc)
            except BlockingIOError:
                self._wait(select.POLLOUT, deadline)
            except InterruptedError:
                continue
            except OSError as e:
                self.closed = True
                raise ChannelClosed(f"worker channel: {e}") from e

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Send buffered bytes; with ``timeout=None`` only what fits now."""
        deadline = None if timeout is None else time.monotonic() + timeout
        out = self._out
        while out:
            try:
                n = self.sock.send(out)
            except BlockingIOError:
                if deadline is None:
                    return False
                self._wait(select.POLLOUT, deadline)
                continue
            except InterruptedError:
                continue
            except OSError as e:
                self.closed = True
                raise ChannelClosed(f"worker channel: {e}") from e
            del out[:n]
        return True

    def _wait(self, event: int, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ChannelTimeout("the other process does not read its channel")
        p = select.poll()
        p.register(self.sock.fileno(), event)
        p.poll(left * 1000)

    def receive(self, max_reads: int = 64) -> list[Any]:
        """Read what is there (never blocks); the complete messages.  At end
        of file :attr:`closed` becomes true."""
        cmsg = socket.CMSG_SPACE(_MAX_FDS * 4)
        for _ in range(max_reads):
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(1 << 18, cmsg)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError:
                self.closed = True
                break
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    a = array("i")
                    a.frombytes(cdata[: len(cdata) - len(cdata) % a.itemsize])
                    self.fds.extend(a)
            if not data:
                self.closed = True
                break
            self._in += data
        return self._decode()

    def _decode(self) -> list[Any]:
        buf = self._in
        msgs: list[Any] = []
        pos = 0
        while len(buf) - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if len(buf) - pos - 4 < n:
                break
            msgs.append(pickle.loads(buf[pos + 4 : pos + 4 + n]))
            pos += 4 + n
        if pos:
            del buf[:pos]
        return msgs

    def wait_readable(self, timeout: float) -> bool:
        p = select.poll()
        p.register(self.sock.fileno(), select.POLLIN)
        return bool(p.poll(max(0.0, timeout) * 1000))

    def close(self) -> None:
        self.closed = True
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()
        self.sock.close()


# ---------------------------------------------------------------------------
# What the daemon provides


class WorkerNamespace(NetNamespace, Protocol):
    """A worker's namespace (``backends.linux.WorkerNetns``)."""

    def adopt_internal_fd(self, name: str, fd: int) -> None: ...

    def discard_internal_fds(self) -> int: ...

    def close(self) -> None: ...


class ControlSwitch(Protocol):
    """What the pool needs from the daemon's ``Switch``."""

    ovs: Openvswitch

    @property
    def monitors(self) -> Sequence[object]: ...

    def publish_upcall(self, dp: Datapath, upcall: Upcall) -> None: ...


@dataclass
class WorkerEnv:
    """The pieces the daemon plugs in."""

    #: a connected ``AF_UNIX`` stream socket pair
    socketpair: Callable[[], tuple[socket.socket, socket.socket]]
    #: in a worker: its namespace (event loop, worker index)
    make_netns: Callable[[EventLoop, int], WorkerNamespace]
    #: in the main process: the TAP descriptor behind an internal device
    internal_fd: Callable[[NetDevice], int]
    #: MAC learning handlers in the workers
    learning: bool = True
    #: handler-installed flows idle this long are deleted (0: never)
    max_idle_ms: int = 10000


def _flow_ident(f: Flow) -> tuple[bytes | None, int, int]:
    """How the main process names a flow to the workers: its UFID, else its
    megaflow (mask, masked key)."""
    return f.ufid, f.mask.key, f.key


def _find_flow(dp: Datapath, ufid: bytes | None, mask: int, mkey: int) -> Flow | None:
    if ufid is not None:
        return dp.table.lookup_ufid(ufid)
    return _slot_flow(dp, mask, mkey)


def _slot_flow(dp: Datapath, mask: int, mkey: int) -> Flow | None:
    for m in dp.table.masks:
        if m.key == mask:
            return m.flows.get(mkey)
    return None


# ---------------------------------------------------------------------------
# The worker process


class _WorkerLearning(LearningSwitch):
    """A worker's MAC-learning handler.  What it learns goes to the other
    workers through the main process (one MAC table, as in ovs-vswitchd:
    a worker must not flood towards a MAC another worker has seen); it
    reports upcalls while the main process has monitor subscriptions."""

    #: a MAC seen again on the same port is re-announced after this long
    RELEARN_INTERVAL = 10.0

    def __init__(self, dp: Datapath, rt: WorkerRuntime) -> None:
        self.rt = rt
        self._announced: dict[tuple[int, int], tuple[int, float]] = {}
        super().__init__(dp)

    def handle_upcall(self, upcall: Upcall) -> None:
        if self.rt.monitoring:
            self.rt.report_upcall(self.dp.name, upcall)
        super().handle_upcall(upcall)
        if upcall.cmd != OVS_PACKET_CMD_MISS:
            return
        mac = flow.key_get(upcall.key, "eth_src")
        where = (flow.key_get(upcall.key, "vlan_tci") & 0x0FFF, mac)
        entry = self.mac_table.get(where)
        if entry is None:
            return
        last = self._announced.get(where)
        if last is None or last[0] != entry[0] or entry[1] - last[1] > self.RELEARN_INTERVAL:
            self._announced[where] = entry
            if len(self._announced) > 4 * len(self.mac_table) + 1024:
                self._announced.clear()
            self.rt.report_learned(self.dp.name, where[0], mac, entry[0])

    def learn(self, vlan: int, mac: int, port: int) -> None:
        """Another worker saw ``mac`` on ``port``: as if this one had."""
        if port not in self.dp.ports:
            return
        now = time.monotonic()
        old = self.mac_table.get((vlan, mac))
        if old is None or old[0] != port:
            if old is not None:
                self._revalidate()
            self.mac_table[(vlan, mac)] = (port, now)
            if old is None:
                self._revalidate_flood()
        else:
            self.mac_table[(vlan, mac)] = (port, now)
        self._announced[(vlan, mac)] = (port, now)


class WorkerRuntime:
    """Runs in a worker process: replicas of the datapaths, handlers, the
    channel to the main process, one event loop."""

    def __init__(
        self,
        index: int,
        chan: Channel,
        arena: percpu.SharedArena,
        env: WorkerEnv,
    ) -> None:
        self.index = index
        self.chan = chan
        self.arena = arena
        self.env = env
        self.loop = EventLoop()
        self.net = env.make_netns(self.loop, index)
        self.ovs = Openvswitch()
        self.handlers: dict[str, LearningSwitch] = {}
        self.applied = 0
        self.monitoring = False
        self.monitor_missed = 0
        #: counts of deleted datapaths and their handlers (coverage)
        self.retired: dict[str, int] = {}
        self.loop.add_reader(chan.fileno(), self._on_channel)
        self.loop.add_idle(self._idle)
        self.loop.call_every(1.0, self._tick)

    # -- running ------------------------------------------------------------

    def run(self) -> None:
        self.loop.run(poll_interval=0.5)
        self.close()

    def close(self) -> None:
        for name in list(self.handlers):
            self.handlers.pop(name).close()
        with contextlib.suppress(Exception):
            self.net.close()

    def _idle(self) -> int:
        n = 0
        for h in list(self.handlers.values()):
            n += h.poll()
        if self.chan.backlog:
            with contextlib.suppress(PyvswitchError):
                self.chan.flush(None)
        return n

    def _tick(self) -> None:
        for dp in list(self.ovs):
            dp.tick()
        if self.env.max_idle_ms > 0:
            for h in self.handlers.values():
                h.expire(self.env.max_idle_ms / 1000.0)

    def _reply(self, msg: tuple[Any, ...]) -> None:
        try:
            self.chan.send(msg, timeout=10.0)
        except PyvswitchError as e:
            log.error("cannot answer the main process: %s", e)
            self.loop.stop()

    def report_learned(self, dp_name: str, vlan: int, mac: int, port: int) -> None:
        with contextlib.suppress(PyvswitchError):
            self.chan.send(("learned", dp_name, vlan, mac, port), timeout=None)

    def report_upcall(self, dp_name: str, upcall: Upcall) -> None:
        if self.chan.backlog > MONITOR_BACKLOG:
            self.monitor_missed += 1
            return
        with contextlib.suppress(PyvswitchError):
            self.chan.send(("upcall", dp_name, upcall), timeout=None)

    # -- messages -------------------------------------------------------------

    def _on_channel(self) -> None:
        for msg in self.chan.receive():
            try:
                self._dispatch(msg)
            except Exception:
                log.exception("message %r failed", msg[0] if msg else msg)
        if self.chan.closed:
            log.info("the main process closed the channel; exiting")
            self.loop.stop()

    def _dispatch(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "fd":
            self.net.adopt_internal_fd(msg[1], self.chan.fds.popleft())
        elif kind == "ops":
            config = msg[1] >= 0  # (-1: relayed learning, not configuration)
            self._apply_all(msg[2], discard_fds=config)
            if config:
                self.applied = msg[1]
                self._reply(("applied", self.applied))
        elif kind == "sync":
            self._sync(msg[2])
            self.applied = msg[1]
            self._reply(("synced", self.applied))
        elif kind == "ping":
            self._reply(("pong", msg[1], self.applied, self.totals()))
        elif kind == "rpc":
            self._reply(("reply", msg[1], self.applied, self._rpc(msg[2])))
        elif kind == "monitor":
            self.monitoring = bool(msg[1])
        elif kind == "reopen_log":
            _reopen_log_files()
        elif kind == "exit":
            log.info("exiting (pid %d)", os.getpid())
            self.loop.stop()
        else:
            log.warning("unknown message %r", kind)

    def _rpc(self, kind: str) -> object:
        if kind == "snapshot":
            return {
                dp.name: {
                    "flows": [
                        (f.ufid, f.unmasked_key, f.mask.key, f.actions, tuple(f.stats))
                        for f in dp.table
                    ],
                    "drops": dict(dp.drops),
                }
                for dp in self.ovs
            }
        if kind == "info":
            return {dp.name: {"ports": len(dp.ports), "flows": dp.table.count} for dp in self.ovs}
        if kind == "totals":
            return self.totals()
        raise ValueError(f"unknown request {kind!r}")

    def totals(self) -> dict[str, int]:
        """Coverage counters of this worker (deleted datapaths included)."""
        t = dict(self.retired)
        for h in self.handlers.values():
            for name, n in _handler_counts(h).items():
                t[name] = t.get(name, 0) + n
        for dp in self.ovs:
            for reason, n in dp.drops.items():
                t[reason] = t.get(reason, 0) + n
        return t

    # -- applying the configuration ----------------------------------------------

    def _sync(self, config: list[dict[str, Any]]) -> None:
        for dp in list(self.ovs):
            self._dp_del(dp.name)
        self._apply_all([op for d in config for op in d["ops"]])

    def _apply_all(self, ops: Sequence[tuple[Any, ...]], *, discard_fds: bool = True) -> None:
        for op in ops:
            try:
                getattr(self, "_" + op[0])(*op[1:])
            except PyvswitchError as e:
                log.error("%s %s: %s", op[0], " ".join(map(str, op[1:3])), e)
            except Exception:
                log.exception("applying %s failed", op[0])
        if discard_fds:
            # a TAP descriptor whose port could not be added must not keep it alive
            self.net.discard_internal_fds()

    def _adopt(self, counters: percpu.PcpuCounters, offset: int) -> None:
        if offset >= 0:
            counters.rows = self.arena.rows_at(offset, len(counters.fields))

    def _dp_new(self, name: str, user_features: int, dp_off: int, local_off: int) -> None:
        dp = self.ovs.dp_new(name, self.net, user_features=user_features)
        self._adopt(dp.stats, dp_off)
        self._adopt(dp.ports[0].stats, local_off)
        if self.env.learning:
            self.handlers[name] = _WorkerLearning(dp, self)

    def _dp_del(self, name: str) -> None:
        dp = self.ovs.get_dp(name)
        h = self.handlers.pop(name, None)
        if h is not None:
            for k, n in _handler_counts(h).items():
                self.retired[k] = self.retired.get(k, 0) + n
            h.close()
        for reason, n in dp.drops.items():
            self.retired[reason] = self.retired.get(reason, 0) + n
        self.ovs.dp_del(dp)

    def _vport_add(
        self, dp_name: str, port_no: int, name: str, type_: int, options: dict[str, str], off: int
    ) -> None:
        dp = self.ovs.get_dp(dp_name)
        vport = dp.vport_add(name, type_, port_no=port_no, options=options)
        self._adopt(vport.stats, off)
        h = self.handlers.get(dp_name)
        if h is not None:
            vport.set_upcall_portids(h.portids)

    def _vport_del(self, dp_name: str, port_no: int) -> None:
        self.ovs.get_dp(dp_name).vport_del(port_no)

    def _vport_set(self, dp_name: str, port_no: int, options: dict[str, str]) -> None:
        self.ovs.get_dp(dp_name).vport_set(port_no, options=options)

    def _cache(self, dp_name: str, masks_cache: int, emc: int) -> None:
        table = self.ovs.get_dp(dp_name).table
        if table.mask_cache_size != masks_cache:
            table.set_mask_cache_size(masks_cache)
        table.emc_size = emc
        table.emc_flush()

    def _flow_put(
        self,
        dp_name: str,
        ufid: bytes | None,
        key: int,
        mask: int,
        actions: tuple[Action, ...],
    ) -> None:
        """Create, or replace the actions of, a flow (the main process has
        decided; a conflicting flow of this worker's handler gives way)."""
        dp = self.ovs.get_dp(dp_name)
        table = dp.table
        f = _find_flow(dp, ufid, mask, key & mask)
        if f is not None and f.ufid == ufid:
            table.replace_actions(f, actions)
            return
        if f is not None:
            table.remove(f)
        other = _slot_flow(dp, mask, key & mask)
        if other is not None:
            table.remove(other)
        table.insert(Flow(key, mask, actions, ufid))

    def _flow_del(self, dp_name: str, ufid: bytes | None, mask: int, mkey: int) -> None:
        dp = self.ovs.get_dp(dp_name)
        f = _find_flow(dp, ufid, mask, mkey)
        if f is not None:
            dp.table.remove(f)

    def _flow_clear(self, dp_name: str, ufid: bytes | None, mask: int, mkey: int) -> None:
        f = _find_flow(self.ovs.get_dp(dp_name), ufid, mask, mkey)
        if f is not None:
            f.clear_stats()

    def _flow_flush(self, dp_name: str) -> None:
        self.ovs.get_dp(dp_name).flow_flush()

    def _learn(self, dp_name: str, vlan: int, mac: int, port: int) -> None:
        h = self.handlers.get(dp_name)
        if isinstance(h, _WorkerLearning):
            h.learn(vlan, mac, port)


def _handler_counts(h: LearningSwitch) -> dict[str, int]:
    return {
        "handler_upcall": h.n_handled,
        "handler_error": h.n_errors,
        "handler_flow_install": h.n_flows_installed,
    }


def _reopen_log_files() -> None:
    for h in logging.getLogger().handlers:
        if isinstance(h, logging.FileHandler):
            h.acquire()
            try:
                if h.stream is not None:
                    h.stream.close()
                h.stream = h._open()
            finally:
                h.release()


# ---------------------------------------------------------------------------
# Process plumbing for a new worker

_PR_SET_PDEATHSIG = 1


def _set_pdeathsig(sig: int) -> None:
    """``prctl(PR_SET_PDEATHSIG)``: the kernel kills us when the main process
    dies, whatever the way."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _log_fds() -> set[int]:
    fds: set[int] = set()
    for h in logging.getLogger().handlers:
        stream = getattr(h, "stream", None)
        with contextlib.suppress(Exception):
            fds.add(stream.fileno())  # type: ignore[union-attr]
    return fds


def _close_fds_except(keep: set[int]) -> None:
    """Close every inherited descriptor but ``keep``: the main process's
    sockets, TAPs, epoll and control socket are not the worker's (a TAP must
    disappear when the main process closes it)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _worker_log_prefix(index: int) -> None:
    old = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        rec = old(*args, **kwargs)
        rec.msg = f"worker {index}: {rec.msg}"
        return rec

    logging.setLogRecordFactory(factory)


# ---------------------------------------------------------------------------
# The main process's side


@dataclass
class WorkerHandle:
    """A worker as the main process sees it."""

    index: int
    pid: int
    chan: Channel
    started: float
    #: starting (sync sent), up (synced), dead
    state: str = "starting"
    #: the last ``ops`` sequence number it reported applied
    applied: int = 0
    last_seen: float = 0.0
    #: coverage counters last reported
    totals: dict[str, int] = field(default_factory=dict)
    replies: dict[int, Any] = field(default_factory=dict)
    exit_status: str = ""


@dataclass
class _PortState:
    vport: Vport
    options: dict[str, str]


@dataclass
class _DpState:
    dp: Datapath
    ports: dict[int, _PortState]
    cache: tuple[int, int]
    #: flows (after materialization): actions and stats before the command
    flows: dict[Flow, tuple[tuple[Action, ...], tuple[int, ...]]]


@dataclass
class _Materialized:
    """Worker state shown in the main process's datapaths for one command."""

    #: the main process's own flow stats, restored afterwards
    own: dict[Flow, list[int]] = field(default_factory=dict)
    #: handler flows inserted for the command, removed afterwards
    inserted: list[tuple[Datapath, Flow]] = field(default_factory=list)
    #: the main process's own drop counters, restored afterwards
    drops: dict[Datapath, dict[str, int]] = field(default_factory=dict)


class WorkerPool:
    """The main process's side: starts, feeds, watches and restarts the
    workers, and replicates what ``dpctl`` commands change."""

    #: seconds between pings (also: reaping, slot release, monitor state)
    HEARTBEAT = 1.0
    #: a worker silent this long is killed (and restarted)
    HANG_TIMEOUT = 15.0
    #: how long a command waits for the workers' flows
    RPC_TIMEOUT = 5.0
    #: how long start() waits for every worker to be synced
    START_TIMEOUT = 20.0
    #: failures of one worker within RESTART_WINDOW seconds that end the daemon
    RESTART_LIMIT = 5
    RESTART_WINDOW = 60.0
    #: delay before a restart (doubles with each recent failure, max 2 s)
    RESTART_DELAY = 0.1

    def __init__(
        self,
        n: int,
        switch: ControlSwitch,
        loop: EventLoop,
        arena: percpu.SharedArena,
        env: WorkerEnv,
        *,
        on_fatal: Callable[[str], None],
    ) -> None:
        if not 2 <= n <= MAX_WORKERS:
            raise ValueError(f"workers must be 2..{MAX_WORKERS}")
        if arena.n_rows != n + 1:
            raise ValueError("the arena needs one row per worker plus one")
        self.n = n
        self.switch = switch
        self.loop = loop
        self.arena = arena
        self.env = env
        self.on_fatal = on_fatal
        self.handles: list[WorkerHandle | None] = [None] * n
        self.failures: list[deque[float]] = [deque() for _ in range(n)]
        self.restarts = [0] * n
        #: ``ops`` messages sent so far (the epoch of freed counter slots)
        self.seq = 0
        self.monitoring = False
        #: coverage counters of workers that died
        self.retired: dict[str, int] = {}
        self.stopping = False
        #: learned MACs per datapath, (vlan, mac) -> port (for restarted workers)
        self.macs: dict[str, dict[tuple[int, int], int]] = {}
        self.parent_pid = os.getpid()
        self._rids = itertools.count(1)
        self._awaiting: set[int] = set()

    # -- lifetime -------------------------------------------------------------------

    def start(self) -> None:
        """Fork the workers and wait until each has its configuration."""
        for i in range(self.n):
            self._spawn(i)
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            live = [h for h in self.handles if h is not None and h.state != "dead"]
            if len(live) == self.n and all(h.state == "up" for h in live):
                break
            self._poll_all(0.05)
            if any(h is None or h.state == "dead" for h in self.handles):
                raise PyvswitchError("a worker process failed to start (see the log)")
        else:
            raise PyvswitchError("worker processes did not start in time")
        self.loop.call_every(self.HEARTBEAT, self.tick)
        log.info(
            "%d workers up (pids %s), PACKET_FANOUT_HASH on every netdev port",
            self.n,
            " ".join(str(h.pid) for h in self.live()),
        )

    def live(self) -> list[WorkerHandle]:
        return [h for h in self.handles if h is not None and h.state != "dead"]

    def _spawn(self, index: int) -> None:
        parent, child = self.env.socketpair()
        for s in (parent, child):
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        try:
            pid = os.fork()
        except OSError:
            parent.close()
            child.close()
            raise
        if pid == 0:  # pragma: no cover - the child never returns
            self._child(index, child, parent)
        child.close()
        now = time.monotonic()
        h = WorkerHandle(index, pid, Channel(parent), now, last_seen=now)
        self.handles[index] = h
        self.loop.add_reader(h.chan.fileno(), lambda: self._on_readable(h))
        try:
            self._send_sync(h)
        except PyvswitchError as e:
            self._lost(h, f"cannot be configured ({e})")
            return
        log.info("worker %d started: pid %d", index, pid)

    def _child(self, index: int, sock: socket.socket, parent_end: socket.socket) -> NoReturn:
        status = 1
        try:
            parent_end.detach()  # closed below with everything inherited
            for sig in (signal.SIGTERM, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            for sig in (signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(-1)
            _set_pdeathsig(signal.SIGKILL)
            if os.getppid() != self.parent_pid:
                os._exit(0)
            # Objects inherited from the main process are never collected
            # here: their finalizers would close descriptors by number.
            gc.freeze()
            _close_fds_except({sock.fileno(), 0, 1, 2} | _log_fds())
            _worker_log_prefix(index)
            percpu.set_worker(index)
            percpu.configure(self.arena.n_rows)
            rt = WorkerRuntime(index, Channel(sock), self.arena, self.env)
            rt.run()
            status = 0
        except BaseException:
            with contextlib.suppress(BaseException):
                log.exception("worker %d failed", index)
        finally:
            for h in logging.getLogger().handlers:
                with contextlib.suppress(BaseException):
                    h.flush()
            os._exit(status)

    def stop(self) -> None:
        """Tell every worker to exit; kill what has not after 3 s."""
        self.stopping = True
        for h in self.live():
            with contextlib.suppress(PyvswitchError, OSError):
                h.chan.send(("exit",), timeout=0.5)
        deadline = time.monotonic() + 3.0
        for w in self.live():
            self.loop.remove_reader(w.chan.fileno())
            w.exit_status = _wait_pid(w.pid, deadline)
            w.state = "dead"
            w.chan.close()

    # -- watching ----------------------------------------------------------------

    def _on_readable(self, h: WorkerHandle) -> None:
        if h.state == "dead":
            return
        for msg in h.chan.receive():
            self._handle(h, msg)
        if h.chan.closed:
            self._lost(h, "exited")

    def _handle(self, h: WorkerHandle, msg: tuple[Any, ...]) -> None:
        h.last_seen = time.monotonic()
        kind = msg[0]
        if kind == "synced":
            h.state = "up"
            h.applied = msg[1]
        elif kind == "applied":
            h.applied = msg[1]
        elif kind == "pong":
            h.applied = msg[2]
            h.totals = msg[3]
        elif kind == "reply":
            h.applied = msg[2]
            if msg[1] in self._awaiting:
                h.replies[msg[1]] = msg[3]
        elif kind == "upcall":
            self._publish(msg[1], msg[2])
        elif kind == "learned":
            self._relay_learned(h, msg[1], msg[2], msg[3], msg[4])
        else:
            log.warning("worker %d: unknown message %r", h.index, kind)

    def _relay_learned(
        self, src: WorkerHandle, dp_name: str, vlan: int, mac: int, port: int
    ) -> None:
        """One MAC table: what a worker learned goes to the others (and to a
        restarted worker with its configuration)."""
        if dp_name not in {dp.name for dp in self.switch.ovs}:
            return
        table = self.macs.setdefault(dp_name, {})
        table[(vlan, mac)] = port
        if len(table) > 65536:
            table.pop(next(iter(table)))
        op = ("ops", -1, [("learn", dp_name, vlan, mac, port)])
        for h in self.live():
            if h is not src:
                try:
                    h.chan.send(op, timeout=None)
                except PyvswitchError as e:
                    self._lost(h, f"channel failed ({e})")

    def _publish(self, dp_name: str, upcall: Upcall) -> None:
        if not self.switch.monitors:
            return
        try:
            dp = self.switch.ovs.get_dp(dp_name)
        except PyvswitchError:
            return
        self.switch.publish_upcall(dp, upcall)

    def _lost(self, h: WorkerHandle, why: str) -> None:
        """A worker died or had to be killed: reap it, log, restart (or give up)."""
        if h.state == "dead":
            return
        h.state = "dead"
        self.loop.remove_reader(h.chan.fileno())
        h.chan.close()
        h.exit_status = _wait_pid(h.pid, time.monotonic() + 2.0)
        for k, n in h.totals.items():
            self.retired[k] = self.retired.get(k, 0) + n
        h.totals = {}
        if not self.stopping:
            self._failed(h.index, f"worker {h.index} (pid {h.pid}) {why} ({h.exit_status})")

    def _failed(self, index: int, what: str) -> None:
        """Count a failure of worker ``index``; restart it after a delay that
        grows with recent failures, or give up (the daemon exits 1)."""
        now = time.monotonic()
        fails = self.failures[index]
        fails.append(now)
        while fails and now - fails[0] > self.RESTART_WINDOW:
            fails.popleft()
        if len(fails) > self.RESTART_LIMIT:
            msg = f"{what}; it failed {len(fails)} times in {self.RESTART_WINDOW:.0f} s: giving up"
            log.error("%s", msg)
            self.on_fatal(msg)
            return
        delay = min(2.0, self.RESTART_DELAY * 2 ** (len(fails) - 1))
        log.error("%s; restarting it in %.1f s", what, delay)
        self.loop.call_later(delay, lambda: self._restart(index))

    def _restart(self, index: int) -> None:
        if self.stopping:
            return
        h = self.handles[index]
        if h is not None and h.state != "dead":
            return
        self.restarts[index] += 1
        try:
            self._spawn(index)
        except OSError as e:  # fork or socketpair failed (EAGAIN, ENOMEM, EMFILE)
            self._failed(index, f"worker {index} could not be started ({e})")

    def tick(self) -> None:
        """Once a second: reap, ping, kill the silent, release counter slots,
        tell workers whether anyone monitors upcalls."""
        now = time.monotonic()
        rid = next(self._rids)
        for h in self.live():
            if _exited(h.pid):
                self._on_readable(h)  # whatever it said last
                self._lost(h, "exited")
                continue
            limit = self.START_TIMEOUT if h.state == "starting" else self.HANG_TIMEOUT
            if now - h.last_seen > limit:
                with contextlib.suppress(OSError):
                    os.kill(h.pid, signal.SIGKILL)
                self._lost(h, f"did not answer for {now - h.last_seen:.0f} s and was killed")
                continue
            try:
                h.chan.send(("ping", rid), timeout=None)  # (also flushes relayed learning)
            except PyvswitchError as e:
                self._lost(h, f"channel failed ({e})")
        self._release_slots()
        want = bool(self.switch.monitors)
        if want != self.monitoring:
            self.monitoring = want
            self._broadcast(("monitor", want))

    def _release_slots(self) -> None:
        live = self.live()
        done = min((h.applied for h in live), default=self.seq)
        self.arena.release(done)

    def reopen_logs(self) -> None:
        """``vlog/reopen`` in every worker."""
        self._broadcast(("reopen_log",))

    def _broadcast(self, msg: tuple[Any, ...]) -> None:
        for h in self.live():
            try:
                h.chan.send(msg, timeout=2.0)
            except PyvswitchError as e:
                self._lost(h, f"channel failed ({e})")

    def _poll_all(self, timeout: float) -> None:
        live = self.live()
        if not live:
            time.sleep(timeout)
            return
        p = select.poll()
        by_fd = {}
        for h in live:
            p.register(h.chan.fileno(), select.POLLIN)
            by_fd[h.chan.fileno()] = h
        for fd, _ev in p.poll(timeout * 1000):
            ready = by_fd.get(fd)
            if ready is not None:
                self._on_readable(ready)

    # -- asking the workers --------------------------------------------------------

    def rpc(self, kind: str, timeout: float | None = None) -> list[tuple[WorkerHandle, Any]]:
        """Ask every live worker; the answers that came within ``timeout``."""
        rid = next(self._rids)
        self._awaiting.add(rid)
        waiting: dict[int, WorkerHandle] = {}
        for h in self.live():
            try:
                h.chan.send(("rpc", rid, kind), timeout=2.0)
            except PyvswitchError as e:
                self._lost(h, f"channel failed ({e})")
                continue
            waiting[h.index] = h
        results: list[tuple[WorkerHandle, Any]] = []
        deadline = time.monotonic() + (self.RPC_TIMEOUT if timeout is None else timeout)
        try:
            while waiting:
                for i, h in list(waiting.items()):
                    if rid in h.replies:
                        results.append((h, h.replies.pop(rid)))
                        del waiting[i]
                    elif h.state == "dead":
                        del waiting[i]
                left = deadline - time.monotonic()
                if not waiting or left <= 0:
                    break
                self._poll_all(min(left, 0.5))
        finally:
            self._awaiting.discard(rid)
            for w in self.live():
                w.replies.pop(rid, None)
        for h in waiting.values():
            log.warning("worker %d did not answer %s in time", h.index, kind)
        return results

    def coverage_totals(self) -> dict[str, int]:
        """Coverage counters of every worker (the dead ones' last report too)."""
        t = dict(self.retired)
        for h, totals in self.rpc("totals", timeout=1.0):
            h.totals = totals
        for h in self.live():
            for k, n in h.totals.items():
                t[k] = t.get(k, 0) + n
        return t

    # -- the configuration ------------------------------------------------------------

    def _dp_ops(self, dp: Datapath) -> tuple[list[tuple[Any, ...]], list[tuple[str, int]]]:
        """Everything that creates ``dp`` in a worker: operations, TAP fds."""
        local = dp.ports[0]
        ops: list[tuple[Any, ...]] = [
            ("dp_new", dp.name, dp.user_features, _offset(dp.stats), _offset(local.stats))
        ]
        fds = self._tap_fds([local])
        for port_no, vport in sorted(dp.ports.items()):
            if port_no:
                ops.append(self._vport_add_op(dp, vport))
                fds += self._tap_fds([vport])
        t = dp.table
        ops.append(("cache", dp.name, t.mask_cache_size, t.emc_size))
        for f in t:
            ops.append(("flow_put", dp.name, f.ufid, f.unmasked_key, f.mask.key, f.actions))
        for (vlan, mac), port in self.macs.get(dp.name, {}).items():
            ops.append(("learn", dp.name, vlan, mac, port))
        return ops, fds

    @staticmethod
    def _vport_add_op(dp: Datapath, v: Vport) -> tuple[Any, ...]:
        return ("vport_add", dp.name, v.port_no, v.name, v.type, dict(v.options), _offset(v.stats))

    def _tap_fds(self, vports: Sequence[Vport]) -> list[tuple[str, int]]:
        out = []
        for v in vports:
            dev = getattr(v, "dev", None)
            if v.type == OVS_VPORT_TYPE_INTERNAL and dev is not None:
                fd = self.env.internal_fd(dev)
                if fd >= 0:
                    out.append((v.name, fd))
        return out

    def _send_sync(self, h: WorkerHandle) -> None:
        config = []
        fds: list[tuple[str, int]] = []
        for dp in self.switch.ovs:
            ops, dp_fds = self._dp_ops(dp)
            config.append({"name": dp.name, "ops": ops})
            fds += dp_fds
        for name, fd in fds:
            h.chan.send(("fd", name), [fd])
        h.chan.send(("sync", self.seq, config), timeout=10.0)

    def push(self, ops: list[tuple[Any, ...]], fds: list[tuple[str, int]]) -> None:
        """Send one batch of operations to every live worker and wait until
        each has applied it (so a command's effect is there when it replies,
        as with one process)."""
        if not ops:
            return
        self.seq += 1
        seq = self.seq
        for h in self.live():
            try:
                for name, fd in fds:
                    h.chan.send(("fd", name), [fd])
                h.chan.send(("ops", seq, ops), timeout=5.0)
            except PyvswitchError as e:
                with contextlib.suppress(OSError):
                    os.kill(h.pid, signal.SIGKILL)
                self._lost(h, f"could not be sent the configuration ({e})")
        deadline = time.monotonic() + self.RPC_TIMEOUT
        while True:
            behind = [h for h in self.live() if h.applied < seq]
            left = deadline - time.monotonic()
            if not behind or left <= 0:
                break
            self._poll_all(min(left, 0.5))
        for h in behind:
            log.warning("worker %d has not applied configuration %d yet", h.index, seq)

    # -- around a dpctl command ---------------------------------------------------------

    def around_command(self, name: str, args: Sequence[str], fn: Callable[[], str]) -> str:
        """Run a dpctl command with the workers' flows materialized, then
        push what it changed."""
        if name in PURE_COMMANDS:
            return fn()
        if name in ("add-dp", "add-if"):
            _refuse_tunnel_specs(args)
        mat = self._materialize() if name in FLOW_COMMANDS else _Materialized()
        before = self._capture()
        self.arena.track()
        try:
            result = fn()
        except BaseException:
            self._commit(before, mat, flush=name == "del-flows")
            raise
        refused = self._commit(before, mat, flush=name == "del-flows")
        if refused:
            from .dpctl import DpctlError

            raise DpctlError(
                "; ".join(f"adding {r} failed (a tunnel port needs --workers 1)" for r in refused)
                + " (Operation not supported)",
                errno=errno.EOPNOTSUPP,
            )
        return result

    def _capture(self) -> dict[str, _DpState]:
        out = {}
        for dp in self.switch.ovs:
            ports = {n: _PortState(v, dict(v.options)) for n, v in dp.ports.items()}
            t = dp.table
            flows = {f: (f.actions, tuple(f.stats)) for f in t}
            out[dp.name] = _DpState(dp, ports, (t.mask_cache_size, t.emc_size), flows)
        return out

    def _materialize(self) -> _Materialized:
        """Put the workers' flows (summed) and drop counters into the main
        process's datapaths for one command."""
        mat = _Materialized()
        answers = self.rpc("snapshot")
        dps = {dp.name: dp for dp in self.switch.ovs}
        per_dp: dict[str, list[dict[str, Any]]] = {}
        for _h, snap in answers:
            for dp_name, d in snap.items():
                per_dp.setdefault(dp_name, []).append(d)
        for dp_name, snaps in per_dp.items():
            dp = dps.get(dp_name)
            if dp is None:
                continue
            drops = dict(dp.drops)
            mat.drops[dp] = dp.drops
            for d in snaps:
                for reason, n in d["drops"].items():
                    drops[reason] = drops.get(reason, 0) + n
            dp.drops = drops
            self._materialize_flows(dp, [fl for d in snaps for fl in d["flows"]], mat)
        return mat

    @staticmethod
    def _materialize_flows(dp: Datapath, copies: list[tuple[Any, ...]], mat: _Materialized) -> None:
        slots: dict[tuple[int, int], list[tuple[Any, ...]]] = {}
        for c in copies:
            _ufid, ukey, mask, _acts, _st = c
            slots.setdefault((mask, ukey & mask), []).append(c)
        table = dp.table
        mine = {(f.mask.key, f.key): f for f in table}
        for slot, cs in slots.items():
            total = [0, 0, 0, 0]
            for c in cs:
                st = c[4]
                total[0] += st[0]
                total[1] += st[1]
                total[2] = max(total[2], st[2])
                total[3] |= st[3]
            f = mine.get(slot)
            if f is not None:
                own = list(f.stats)
                mat.own[f] = own
                f.stats[:] = [
                    own[0] + total[0],
                    own[1] + total[1],
                    max(own[2], total[2]),
                    own[3] | total[3],
                ]
                continue
            ufid, ukey, mask, acts, _st = max(cs, key=lambda c: c[4][0])
            if ufid is not None and table.lookup_ufid(ufid) is not None:
                continue
            nf = Flow(ukey, mask, acts, ufid)
            nf.stats[:] = total
            table.insert(nf)
            mat.inserted.append((dp, nf))

    def _commit(
        self, before: dict[str, _DpState], mat: _Materialized, *, flush: bool = False
    ) -> list[str]:
        """Push what changed, free counter slots of what went, take the
        materialized worker state out again.  Returns refused ports.
        ``flush``: a table that ended up empty was flushed (``del-flows``),
        which also deletes flows a handler installed meanwhile."""
        ops: list[tuple[Any, ...]] = []
        fds: list[tuple[str, int]] = []
        refused: list[str] = []
        freed: list[percpu.PcpuCounters] = []
        after = {dp.name: dp for dp in self.switch.ovs}
        for name, st in before.items():
            if after.get(name) is not st.dp:
                ops.append(("dp_del", name))
                self.macs.pop(name, None)
                freed.append(st.dp.stats)
                freed += [p.vport.stats for p in st.ports.values()]
        for name, dp in after.items():
            refused += self._refuse_unreplicated(dp)
            prev = before.get(name)
            if prev is None or prev.dp is not dp:
                dp_ops, dp_fds = self._dp_ops(dp)
                ops += dp_ops
                fds += dp_fds
                continue
            for port_no, p in prev.ports.items():
                if dp.ports.get(port_no) is not p.vport:
                    ops.append(("vport_del", name, port_no))
                    freed.append(p.vport.stats)
            for port_no, v in sorted(dp.ports.items()):
                old = prev.ports.get(port_no)
                if old is None or old.vport is not v:
                    ops.append(self._vport_add_op(dp, v))
                    fds += self._tap_fds([v])
                elif v.options != old.options:
                    ops.append(("vport_set", name, port_no, dict(v.options)))
            t = dp.table
            if (t.mask_cache_size, t.emc_size) != prev.cache:
                ops.append(("cache", name, t.mask_cache_size, t.emc_size))
            ops += self._flow_ops(dp, prev, flush)
        self._dematerialize(mat)
        self.push(ops, fds)
        for c in freed:
            self.arena.free(c.rows, self.seq)
        # slots of counters made by a command that failed half-way (a vport
        # whose device did not exist) are nobody's
        live = {_offset(dp.stats) for dp in after.values()}
        live |= {_offset(v.stats) for dp in after.values() for v in dp.ports.values()}
        for rows in self.arena.untrack():
            if rows.offset not in live:
                self.arena.free(rows, 0)
        self._release_slots()
        return refused

    def _refuse_unreplicated(self, dp: Datapath) -> list[str]:
        refused = []
        for port_no, v in sorted(dp.ports.items()):
            if v.type not in REPLICATED_TYPES:
                refused.append(f"{v.name} to {dp.name}")
                dp.vport_del(port_no)  # (its counter slot is freed as untracked)
        return refused

    @staticmethod
    def _flow_ops(dp: Datapath, st: _DpState, flush: bool) -> list[tuple[Any, ...]]:
        name = dp.name
        ops: list[tuple[Any, ...]] = []
        current = list(dp.table)
        cur = set(current)
        if flush and not current:
            return [("flow_flush", name)]
        for f in st.flows:
            if f not in cur:
                ops.append(("flow_del", name, *_flow_ident(f)))
        for f in current:
            old = st.flows.get(f)
            if old is None or f.actions != old[0]:
                ops.append(("flow_put", name, f.ufid, f.unmasked_key, f.mask.key, f.actions))
            if old is not None and any(old[1]) and not any(f.stats):
                ops.append(("flow_clear", name, *_flow_ident(f)))
        return ops

    @staticmethod
    def _dematerialize(mat: _Materialized) -> None:
        for f, own in mat.own.items():
            if not f.dead and any(f.stats):  # (cleared stays cleared)
                f.stats[:] = own
        for dp, f in mat.inserted:
            if not f.dead:
                dp.table.remove(f)
        for dp, drops in mat.drops.items():
            dp.drops = drops

    # -- introspection -----------------------------------------------------------------

    def show(self) -> str:
        """``workers/show``: one paragraph per worker."""
        info = {h.index: d for h, d in self.rpc("info", timeout=2.0)}
        now = time.monotonic()
        out = [f"workers: {self.n} (PACKET_FANOUT_HASH), ops sent: {self.seq}\n"]
        for i, w in enumerate(self.handles):
            if w is None:
                out.append(f"worker {i}: not started\n")
                continue
            rx = 0
            for dp in self.switch.ovs:
                for v in dp.ports.values():
                    rows = v.stats.rows
                    if i < len(rows):
                        rx += rows[i][RX_PACKETS]
            state = w.state if w.state != "dead" else f"dead ({w.exit_status})"
            out.append(
                f"worker {i}: pid {w.pid}, {state}, up {now - w.started:.1f}s, "
                f"restarts {self.restarts[i]}, ops applied {w.applied}/{self.seq}, "
                f"rx packets {rx}\n"
            )
            for dp_name, d in sorted(info.get(i, {}).items()):
                out.append(f"  {dp_name}: ports {d['ports']}, flows {d['flows']}\n")
        return "".join(out)


def _refuse_tunnel_specs(args: Sequence[str]) -> None:
    """``add-dp``/``add-if`` arguments: a port of a type the workers cannot
    replicate is refused before anything is created."""
    from .dpctl import DpctlError, parse_iface
    from .vport import resolve_type

    for spec in args:
        if "," not in spec or spec.startswith("-"):
            continue
        try:
            name, type_name, _port_no, _opts = parse_iface(spec)
            t = resolve_type(VPORT_TYPE_ALIASES.get(type_name, type_name))
        except PyvswitchError:
            continue  # the command reports it
        if t not in REPLICATED_TYPES:
            raise DpctlError(
                f"adding {name} failed (a {type_name} port needs --workers 1) "
                "(Operation not supported)",
                errno=errno.EOPNOTSUPP,
            )


def _offset(c: percpu.PcpuCounters) -> int:
    rows = c.rows
    return rows.offset if isinstance(rows, percpu.SharedRowList) else -1


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited (it is not reaped here)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _wait_pid(pid: int, deadline: float) -> str:
    """Reap ``pid`` (SIGKILL at ``deadline``); its exit status as text."""
    killed = False
    while True:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return "already reaped"
        if got:
            break
        if time.monotonic() >= deadline and not killed:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            killed = True
            deadline = time.monotonic() + 5.0
        elif killed and time.monotonic() >= deadline:
            return "did not die"
        time.sleep(0.01)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"killed by {name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
