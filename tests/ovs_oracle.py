"""Test oracle harness around the real Open vSwitch binaries (OVS 3.1, Debian bookworm).

Differential tests compare pyvswitch with what real OVS does.  This module wraps the
oracles described in ``/work/shared/docs/ovs-datapath-notes.md`` §9:

* no daemon needed: ``ovs-dpctl parse-actions`` / ``normalize-actions``
  (:func:`parse_actions`, :func:`normalize_actions`, :func:`format_key`) and
  ``ovs-ofctl parse-pcap`` (:func:`parse_pcap_keys`, :func:`parse_frames`);
* a private ``ovsdb-server`` + ``ovs-vswitchd --enable-dummy`` (:class:`OvsSandbox`)
  giving standalone dummy datapaths (``dpctl/*``), the exact ODP key the userspace
  extractor builds for a frame (:meth:`OvsSandbox.extract_keys`) and the bytes a
  datapath action list transmits (:meth:`OvsSandbox.execute_capture`).

Everything a sandbox creates lives in one fresh temporary directory (``OVS_RUNDIR``,
``OVS_LOGDIR``, ``OVS_DBDIR`` and ``OVS_SYSCONFDIR`` all point at it for every child
command); the daemons are our own child processes (never ``--detach``-ed) and are
always stopped by pid (SIGTERM, then SIGKILL) and reaped, and the directory removed.

See ``docs/testing-with-ovs.md`` for usage and caveats.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from types import TracebackType

__all__ = [
    "BRIDGE_DPIF",
    "ORACLE_BRIDGE",
    "ORACLE_PORTS",
    "OvsCommandError",
    "OvsError",
    "OvsSandbox",
    "OvsUnavailableError",
    "UnixctlClient",
    "dump_line_actions",
    "dump_line_key",
    "find_binary",
    "format_key",
    "key_attrs",
    "normalize_actions",
    "ovs_available",
    "ovs_sandbox",
    "ovs_sandbox_or_skip",
    "parse_actions",
    "parse_frames",
    "parse_pcap_keys",
    "read_pcap",
    "require_ovs",
    "write_pcap",
]

#: Binaries the harness needs (``ovs-pcap`` is optional, only mentioned in the docs).
REQUIRED_BINARIES: tuple[str, ...] = (
    "ovsdb-tool",
    "ovsdb-server",
    "ovs-vswitchd",
    "ovs-vsctl",
    "ovs-appctl",
    "ovs-ofctl",
    "ovs-dpctl",
)
SCHEMA_CANDIDATES: tuple[str, ...] = (
    "/usr/share/openvswitch/vswitch.ovsschema",
    "/usr/local/share/openvswitch/vswitch.ovsschema",
)
#: Extra directories searched for binaries (``/usr/sbin`` is often not on a user's PATH).
_EXTRA_PATH = ("/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")

#: Name of the bridge-backed dummy datapath (one per ovs-vswitchd, shared by all bridges).
BRIDGE_DPIF = "dummy@ovs-dummy"
#: The oracle bridge and its dummy ports (OpenFlow port N == ``pN``).
ORACLE_BRIDGE = "br0"
ORACLE_PORTS: tuple[str, ...] = ("p1", "p2", "p3")

#: ``other_config`` applied before the oracle bridge exists.  max-idle/max-revalidator keep
#: the revalidator from expiring or "fixing" datapath flows for an hour; vlan-limit=2 makes
#: the userspace extractor parse both tags of a QinQ frame (the default is 1).
ORACLE_OTHER_CONFIG: dict[str, str] = {
    "max-idle": "3600000",
    "max-revalidator": "3600000",
    "vlan-limit": "2",
}

#: Largest MTU netdev-dummy accepts; the oracle ports use it so jumbo frames are captured.
DUMMY_MAX_MTU = 65535
_ENV_DIR_VARS = ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR")
_ETH_HEADER_LEN = 14
_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
_PCAP_GLOBAL_HEADER_LEN = 24
_PCAP_RECORD_HEADER_LEN = 16


# --------------------------------------------------------------------------- errors


class OvsError(RuntimeError):
    """Something went wrong while driving the OVS binaries."""


class OvsUnavailableError(OvsError):
    """The OVS binaries are not usable here (see :func:`ovs_available`)."""


class OvsCommandError(OvsError):
    """A command (subprocess or unixctl request) failed; carries its stderr."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        shown = " ".join(_shell_quote(a) for a in self.argv)
        msg = f"command failed (exit {returncode}): {shown}\nstderr: {stderr.strip()}"
        if stdout.strip():
            msg += f"\nstdout: {stdout.strip()}"
        super().__init__(msg)


def _shell_quote(arg: str) -> str:
    if len(arg) > 200:
        arg = arg[:200] + "..."
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else repr(arg)


# --------------------------------------------------------------------------- discovery


def find_binary(name: str) -> str | None:
    """Absolute path of an OVS binary, searching PATH and the usual sbin directories."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_PATH])
    return shutil.which(name, path=path)


def _binary(name: str) -> str:
    found = find_binary(name)
    if found is None:
        raise OvsUnavailableError(f"{name} not found")
    return found


def _schema_path() -> str | None:
    return next((p for p in SCHEMA_CANDIDATES if os.path.exists(p)), None)


@cache
def ovs_available() -> str | None:
    """``None`` if the OVS binaries are usable, else the reason (for ``pytest.skip``).

    Only checks what cannot be fixed by the test itself (platform, binaries, schema,
    binaries actually executing).  A sandbox that then fails to start is a real error
    and raises instead of skipping.
    """
    if not sys.platform.startswith("linux"):
        return f"OVS oracle needs Linux, not {sys.platform}"
    missing = [b for b in REQUIRED_BINARIES if find_binary(b) is None]
    if missing:
        return "Open vSwitch binaries not found: " + ", ".join(missing)
    if _schema_path() is None:
        return "vswitch.ovsschema not found in " + ", ".join(SCHEMA_CANDIDATES)
    for name in ("ovs-vswitchd", "ovs-dpctl"):
        try:
            proc = subprocess.run(
                [_binary(name), "--version"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{name} --version failed: {exc}"
        if proc.returncode != 0:
            return f"{name} --version exited {proc.returncode}: {proc.stderr.strip()}"
    return None


def require_ovs() -> None:
    """``pytest.skip`` the calling test if OVS is unavailable."""
    reason = ovs_available()
    if reason is not None:
        import pytest

        pytest.skip(reason)


# --------------------------------------------------------------------------- subprocesses


def _run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
) -> str:
    """Run a command, return stdout; raise :class:`OvsCommandError` on non-zero exit."""
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            env=None if env is None else dict(env),
            cwd=cwd,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        raise OvsCommandError(argv, -1, out, f"timed out after {timeout}s\n{err}") from exc
    if proc.returncode != 0:
        raise OvsCommandError(argv, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


@cache
def _scratch_env() -> dict[str, str]:
    """Environment for daemon-less commands: OVS_* dirs point at a private temp dir."""
    scratch = tempfile.mkdtemp(prefix="ovs-oracle-scratch-")
    atexit.register(shutil.rmtree, scratch, True)
    env = dict(os.environ)
    for var in _ENV_DIR_VARS:
        env[var] = scratch
    return env


# --------------------------------------------------------------------------- unixctl client


class UnixctlClient:
    """Minimal JSON-RPC client for an OVS unixctl socket (what ``ovs-appctl`` speaks).

    One persistent connection; requests are sent one at a time and each reply is
    awaited, so commands execute in order.  About 50x faster than spawning
    ``ovs-appctl`` for every command.
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""
        self._next_id = 0
        self._lock = threading.Lock()
        self._decoder = json.JSONDecoder()

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
            except OSError:
                sock.close()
                raise
            self._sock = sock
            self._buf = b""
        return self._sock

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.close()
                self._sock = None

    def call(self, command: str, *args: str) -> str:
        """Run one command; return its reply text or raise :class:`OvsCommandError`."""
        with self._lock:
            try:
                return self._call(command, args)
            except (OSError, ValueError) as exc:
                # Connection state is unknown now; drop it so the next call reconnects.
                if self._sock is not None:
                    with contextlib.suppress(OSError):
                        self._sock.close()
                    self._sock = None
                raise OvsError(f"unixctl {self.path}: {command}: {exc!r}") from exc

    def _call(self, command: str, args: tuple[str, ...]) -> str:
        sock = self._connect()
        self._next_id += 1
        req_id = self._next_id
        request = {"method": command, "params": list(args), "id": req_id}
        sock.sendall(json.dumps(request).encode())
        while True:
            msg = self._read_message(sock)
            if msg.get("id") != req_id:  # not ours (unixctl never sends any, be safe)
                continue
            error = msg.get("error")
            if error is not None:
                text = error if isinstance(error, str) else json.dumps(error)
                raise OvsCommandError(["ovs-appctl", command, *args], 2, "", text)
            result = msg.get("result")
            return result if isinstance(result, str) else json.dumps(result)

    def _read_message(self, sock: socket.socket) -> dict[str, object]:
        while True:
            text = self._buf.lstrip()
            if text:
                try:
                    decoded = text.decode()
                    obj, end = self._decoder.raw_decode(decoded)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    pass  # incomplete message: read more
                else:
                    self._buf = decoded[end:].encode()
                    if not isinstance(obj, dict):
                        raise ValueError(f"unexpected JSON-RPC message {obj!r}")
                    return obj
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("unixctl server closed the connection")
            self._buf += chunk


# --------------------------------------------------------------------------- pcap helpers


def write_pcap(path: str | os.PathLike[str], frames: Iterable[bytes], linktype: int = 1) -> None:
    """Write ``frames`` as a classic (microsecond, little-endian) pcap file."""
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        for i, frame in enumerate(frames):
            frame = bytes(frame)
            fh.write(struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)))
            fh.write(frame)


def read_pcap(path: str | os.PathLike[str], offset: int = 0) -> list[bytes]:
    """Frames in a classic pcap file (either byte order, µs or ns timestamps).

    ``offset``: byte offset of the first record to return (e.g. the file size before
    some traffic was sent); 0 or anything inside the global header means "all records".
    A truncated trailing record (file still being written) is ignored.
    """
    data = Path(path).read_bytes()
    if len(data) < _PCAP_GLOBAL_HEADER_LEN:
        return []
    magic = data[:4]
    if magic not in _PCAP_MAGICS:
        raise ValueError(f"{path}: not a classic pcap file (magic {magic.hex()})")
    endian = _PCAP_MAGICS[magic][0]
    pos = max(offset, _PCAP_GLOBAL_HEADER_LEN)
    frames: list[bytes] = []
    while pos + _PCAP_RECORD_HEADER_LEN <= len(data):
        _sec, _frac, incl_len, _orig_len = struct.unpack_from(endian + "IIII", data, pos)
        pos += _PCAP_RECORD_HEADER_LEN
        if pos + incl_len > len(data):
            break
        frames.append(data[pos : pos + incl_len])
        pos += incl_len
    return frames


# --------------------------------------------------------------------------- daemon-less oracles


def parse_pcap_keys(path: str | os.PathLike[str]) -> list[str]:
    """``ovs-ofctl parse-pcap FILE``: one OpenFlow-style flow line per packet.

    Userspace ``flow_extract`` semantics, e.g.
    ``udp,in_port=ANY,vlan_tci=0x0000,dl_src=...,nw_frag=no,tp_src=1,tp_dst=2``.
    """
    out = _run([_binary("ovs-ofctl"), "parse-pcap", os.fspath(path)], env=_scratch_env())
    return [line for line in out.splitlines() if line.strip()]


def parse_frames(frames: Sequence[bytes]) -> list[str]:
    """:func:`parse_pcap_keys` for in-memory frames (via a temporary pcap file)."""
    with tempfile.TemporaryDirectory(prefix="ovs-oracle-pcap-") as tmp:
        path = Path(tmp) / "frames.pcap"
        write_pcap(path, frames)
        lines = parse_pcap_keys(path)
    if len(lines) != len(frames):
        raise OvsError(f"parse-pcap printed {len(lines)} lines for {len(frames)} frames")
    return lines


def parse_actions(*action_strings: str) -> list[str]:
    """``ovs-dpctl parse-actions A B ...``: each list parsed and printed back by OVS's C code.

    ``parse_actions('recirc(5)') == ['recirc(0x5)']``; ``''`` prints ``drop``.  Raises
    :class:`OvsCommandError` if any string does not parse.
    """
    if not action_strings:
        return []
    out = _run([_binary("ovs-dpctl"), "parse-actions", *action_strings], env=_scratch_env())
    lines = out.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != len(action_strings):
        raise OvsError(f"parse-actions printed {len(lines)} lines for {len(action_strings)}")
    return lines


# "VLANS: MPLS: " prefix of every group printed by normalize-actions.
_NORMALIZE_GROUP_RE = re.compile(
    r"(?:no vlan: |(?:vlan\((?:tpid=0x[0-9a-f]+,)?vid=\d+,pcp=\d+\): )+)"
    r"(?:no mpls: |mpls\(label=\d+,tc=\d+,ttl=\d+\): )"
)


def _normalize(flow: str, actions: str, port_names: Mapping[str, int] | None) -> tuple[str, str]:
    extra = [f"{name}={number}" for name, number in (port_names or {}).items()]
    out = _run(
        [_binary("ovs-dpctl"), "normalize-actions", flow, actions, *extra], env=_scratch_env()
    )
    first, _, rest = out.partition("\n")
    prefix = "input flow: "
    if not first.startswith(prefix):
        raise OvsError(f"unexpected normalize-actions output: {out!r}")
    return first[len(prefix) :], rest


def normalize_actions(
    flow: str, actions: str, port_names: Mapping[str, int] | None = None
) -> list[str]:
    """``ovs-dpctl normalize-actions FLOW ACTIONS [NAME=NUMBER...]``.

    Returns one ``"<vlans>: <mpls>: <actions>"`` string per resulting packet variant,
    e.g. ``['no vlan: no mpls: 2', 'vlan(vid=11,pcp=0): no mpls: 1,3']``.  (OVS 3.1
    prints the groups with no separator at all; they are split here.)  FLOW must be a
    complete key (every field of every present attribute).
    """
    _, rest = _normalize(flow, actions, port_names)
    rest = rest.rstrip("\n")
    starts = [m.start() for m in _NORMALIZE_GROUP_RE.finditer(rest)]
    if not starts or starts[0] != 0:
        raise OvsError(f"unexpected normalize-actions output: {rest!r}")
    bounds = [*starts, len(rest)]
    return [rest[a:b] for a, b in itertools.pairwise(bounds)]


def format_key(flow: str, port_names: Mapping[str, int] | None = None) -> str:
    """OVS's own text for a full flow key: parsed by ``odp_flow_from_string`` and printed
    by ``odp_flow_format`` with no mask (the ``input flow:`` line of normalize-actions).

    A key printer/parser oracle that needs no daemon.  The key must convert to a
    ``struct flow`` (``odp_flow_key_to_flow``), so it must be well formed.
    """
    key, _ = _normalize(flow, "drop", port_names)
    return key


# --------------------------------------------------------------------------- dump-line helpers


def dump_line_key(line: str) -> str:
    """Key part of a ``dpctl/dump-flows`` line (drops ``ufid:..., `` and ``, packets:...``)."""
    line = line.strip()
    if line.startswith("ufid:"):
        line = line.split(", ", 1)[1] if ", " in line else line
    key, sep, _ = line.partition(", packets:")
    if not sep:
        raise ValueError(f"not a dump-flows line: {line!r}")
    return key


def dump_line_actions(line: str) -> str:
    """Action part of a ``dpctl/dump-flows`` line (without ``, dp-extra-info:...``)."""
    _, sep, actions = line.strip().partition(" actions:")
    if not sep:
        raise ValueError(f"not a dump-flows line: {line!r}")
    return actions.split(", dp-extra-info:", 1)[0]


def key_attrs(key: str) -> list[str]:
    """Split ODP key text into its top-level attributes (commas inside parentheses kept).

    ``key_attrs('in_port(1),eth(src=a,dst=b),eth_type(0x0800)')``
    → ``['in_port(1)', 'eth(src=a,dst=b)', 'eth_type(0x0800)']``.
    """
    attrs: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(key):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            attrs.append(key[start:i])
            start = i + 1
    if key[start:]:
        attrs.append(key[start:])
    return attrs


# --------------------------------------------------------------------------- sandbox


def _short_tmpdir() -> str:
    """A temp root short enough for AF_UNIX paths (108 bytes) even with a long $TMPDIR."""
    root = tempfile.gettempdir()
    return root if len(root) <= 40 else "/tmp"


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """Make children die with SIGKILL if the (main) thread that spawned them dies."""
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        # PDEATHSIG fires when the *thread* exits; a worker thread may exit early.
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # parent already gone
            os._exit(1)

    return preexec


# Started and not yet closed (strong references: an unclosed sandbox is closed at exit).
_LIVE_SANDBOXES: set[OvsSandbox] = set()


@atexit.register
def _close_live_sandboxes() -> None:
    for sandbox in list(_LIVE_SANDBOXES):
        with contextlib.suppress(Exception):
            sandbox.close()


_DPIF_SHOW_PORT_RE = re.compile(r"^\s+(\S+) (\d+)/(\d+):", re.MULTILINE)
_GET_FLOW_PACKETS_RE = re.compile(r", packets:(\d+),")


class OvsSandbox:
    """A private ``ovsdb-server`` + ``ovs-vswitchd --enable-dummy`` in a fresh temp dir.

    Use as a context manager (or call :meth:`start` / :meth:`close`).  Several sandboxes
    can run at the same time; each has its own directory, sockets and datapaths.

    The oracle bridge (``br0`` with dummy ports ``p1``/``p2``/``p3``, all transmitting
    into ``<dir>/pN.pcap``) is created lazily by the first :meth:`extract_keys` /
    :meth:`execute_capture`.  Dummy netdev names are global inside one ovs-vswitchd,
    so standalone datapaths must not reuse ``p1``..``p3`` once the bridge exists (and
    vice versa); :meth:`add_standalone_dp` checks this.
    """

    def __init__(
        self,
        *,
        startup_timeout: float = 30.0,
        command_timeout: float = 30.0,
        packet_timeout: float = 10.0,
    ) -> None:
        #: Seconds to wait for the daemons to come up.
        self.startup_timeout = startup_timeout
        #: Seconds any single command (subprocess or unixctl request) may take.
        self.command_timeout = command_timeout
        #: Seconds to wait for a received frame to show up in the datapath (it normally
        #: does before the next unixctl request is even read; this is a safety net).
        self.packet_timeout = packet_timeout
        self._lock = threading.RLock()  # one oracle-bridge operation at a time
        self._dir: Path | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._clients: dict[str, UnixctlClient] = {}
        self._env: dict[str, str] = {}
        self._netdev_owner: dict[str, str] = {}  # dummy netdev name -> datapath
        self._oracle_ports: dict[str, int] | None = None
        self._closed = False

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> OvsSandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def directory(self) -> Path:
        """The sandbox's private directory (run/log/db dir of both daemons)."""
        if self._dir is None:
            raise OvsError("sandbox not started")
        return self._dir

    @property
    def env(self) -> dict[str, str]:
        """Environment used for every child command (OVS_* dirs point into the sandbox)."""
        return dict(self._env)

    @property
    def pids(self) -> dict[str, int]:
        """``{"ovsdb-server": pid, "ovs-vswitchd": pid}`` of the daemons started so far."""
        return {name: proc.pid for name, proc in self._procs.items()}

    def ctl_path(self, target: str = "ovs-vswitchd") -> Path:
        return self.directory / f"{target}.ctl"

    def start(self) -> None:
        if self._dir is not None:
            raise OvsError("sandbox already started")
        reason = ovs_available()
        if reason is not None:
            raise OvsUnavailableError(reason)
        schema = _schema_path()
        assert schema is not None
        self._dir = Path(tempfile.mkdtemp(prefix="ovs-oracle-", dir=_short_tmpdir()))
        _LIVE_SANDBOXES.add(self)
        env = dict(os.environ)
        for var in _ENV_DIR_VARS:
            env[var] = str(self._dir)
        for var in ("OVS_DB", "OVS_UNIXCTL_PATH"):
            env.pop(var, None)
        self._env = env
        try:
            d = self._dir
            _run(
                [_binary("ovsdb-tool"), "create", str(d / "conf.db"), schema],
                env=env,
                cwd=d,
                timeout=self.startup_timeout,
            )
            self._spawn(
                "ovsdb-server",
                [
                    str(d / "conf.db"),
                    f"--remote=punix:{d / 'db.sock'}",
                    f"--unixctl={self.ctl_path('ovsdb-server')}",
                    f"--pidfile={d / 'ovsdb-server.pid'}",
                    f"--log-file={d / 'ovsdb-server.log'}",
                    "--no-chdir",
                    "-vconsole:off",
                ],
            )
            self._wait_for_socket("ovsdb-server", d / "db.sock")
            self.vsctl("--no-wait", "init")
            self._spawn(
                "ovs-vswitchd",
                [
                    f"unix:{d / 'db.sock'}",
                    "--enable-dummy",
                    "--disable-system",
                    "--disable-system-route",
                    f"--unixctl={self.ctl_path('ovs-vswitchd')}",
                    f"--pidfile={d / 'ovs-vswitchd.pid'}",
                    f"--log-file={d / 'ovs-vswitchd.log'}",
                    "--no-chdir",
                    "-vconsole:off",
                ],
            )
            self._wait_for_socket("ovs-vswitchd")
            # Without --no-wait, ovs-vsctl blocks until ovs-vswitchd has applied the
            # configuration (cur_cfg == next_cfg): the daemon is fully up.
            self.vsctl("init")
        except BaseException:
            self.close()
            raise

    def _spawn(self, name: str, args: list[str]) -> None:
        # Not --detach'ed: the daemons stay our children, so we can reap them (no zombies
        # left for a container init that may never reap) and they die with us (PDEATHSIG).
        with open(self.directory / f"{name}.stderr", "wb") as log:
            proc = subprocess.Popen(
                [_binary(name), *args],
                env=self._env,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_pdeathsig_preexec(),
                start_new_session=True,
            )
        self._procs[name] = proc

    def _wait_for_socket(self, name: str, extra_socket: Path | None = None) -> None:
        proc = self._procs[name]
        ctl = self.ctl_path(name)
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.002
        while True:
            if proc.poll() is not None:
                raise OvsError(
                    f"{name} exited with status {proc.returncode} during startup\n"
                    + self.log_tail(name)
                )
            if ctl.exists() and (extra_socket is None or extra_socket.exists()):
                client = UnixctlClient(ctl, timeout=self.command_timeout)
                try:
                    client.call("version")
                except OvsError:
                    client.close()
                else:
                    self._clients[name] = client
                    return
            if time.monotonic() > deadline:
                raise OvsError(
                    f"{name} not ready after {self.startup_timeout}s\n" + self.log_tail(name)
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def log_warnings(self, name: str = "ovs-vswitchd") -> list[str]:
        """WARN/ERR/EMER lines of a daemon's log so far (a health check for tests)."""
        try:
            text = (self.directory / f"{name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [ln for ln in text.splitlines() if re.search(r"\|(WARN|ERR|EMER)\|", ln)]

    def log_tail(self, name: str = "ovs-vswitchd", lines: int = 30) -> str:
        """Last lines of a daemon's log (and captured stderr), for error messages."""
        if self._dir is None:
            return ""
        chunks = []
        for suffix in (".log", ".stderr"):
            path = self._dir / f"{name}{suffix}"
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                if text:
                    chunks.append(f"--- {path.name} ---\n" + "\n".join(text))
        return "\n".join(chunks)

    def close(self) -> None:
        """Stop both daemons (SIGTERM, then SIGKILL; reaped) and delete the directory.

        Idempotent; safe to call after a failed :meth:`start`.
        """
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        # vswitchd first: it is a client of ovsdb-server.
        for name in ("ovs-vswitchd", "ovsdb-server"):
            proc = self._procs.get(name)
            if proc is not None:
                _stop_process(proc)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._closed = True
        _LIVE_SANDBOXES.discard(self)

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs.values())

    # ----------------------------------------------------------------- raw commands

    def vsctl(self, *args: str, timeout: float | None = None) -> str:
        """``ovs-vsctl --timeout=T ARGS`` against the sandbox's database; returns stdout."""
        t = timeout if timeout is not None else self.command_timeout
        argv = [
            _binary("ovs-vsctl"),
            f"--db=unix:{self.directory / 'db.sock'}",
            f"--timeout={max(1, int(t))}",
            *args,
        ]
        return _run(argv, env=self._env, cwd=self.directory, timeout=t + 5)

    def ofctl(self, *args: str) -> str:
        """``ovs-ofctl ARGS`` (bridge names resolve to ``<dir>/BRIDGE.mgmt``)."""
        argv = [_binary("ovs-ofctl"), *args]
        return _run(argv, env=self._env, cwd=self.directory, timeout=self.command_timeout)

    def appctl(self, *args: str, target: str = "ovs-vswitchd") -> str:
        """Run a unixctl command (``ovs-appctl -t TARGET ARGS``); returns the reply text.

        Talks JSON-RPC to the daemon's control socket directly (same protocol and reply
        as ``ovs-appctl``, much faster).  Errors raise :class:`OvsCommandError` whose
        ``stderr`` is the daemon's error text.
        """
        if not args:
            raise ValueError("appctl needs a command")
        client = self._clients.get(target)
        if client is None:
            raise OvsError(f"no unixctl connection to {target!r} (sandbox not running?)")
        try:
            return client.call(*args)
        except OvsCommandError as exc:
            argv = ["ovs-appctl", "-t", str(self.ctl_path(target)), *args]
            raise OvsCommandError(argv, exc.returncode, exc.stdout, exc.stderr) from None
        except OvsError as exc:
            raise OvsError(f"{exc}\n{self.log_tail(target)}") from exc

    def appctl_cli(self, *args: str, target: str = "ovs-vswitchd") -> str:
        """Same as :meth:`appctl` but through the real ``ovs-appctl`` binary."""
        argv = [_binary("ovs-appctl"), "-t", str(self.ctl_path(target)), *args]
        return _run(argv, env=self._env, cwd=self.directory, timeout=self.command_timeout)

    # ----------------------------------------------------------------- standalone datapaths

    @staticmethod
    def dpif_name(dp: str) -> str:
        """``"dp0"`` → ``"dummy@dp0"``; names with a type are returned unchanged."""
        return dp if "@" in dp else f"dummy@{dp}"

    def _check_netdevs(self, dpif: str, names: Iterable[str]) -> None:
        for name in names:
            owner = self._netdev_owner.get(name)
            if owner is not None and owner != dpif:
                raise ValueError(
                    f"dummy netdev {name!r} already belongs to {owner}: netdev names are "
                    "global inside ovs-vswitchd and sharing one corrupts both datapaths"
                )

    def _claim_netdevs(self, dpif: str, names: Iterable[str]) -> None:
        for name in names:
            self._netdev_owner[name] = dpif

    def add_standalone_dp(self, name: str, ports: Mapping[str, int] | None = None) -> str:
        """``dpctl/add-dp dummy@NAME`` + ``dpctl/add-if dummy@NAME P,type=dummy,port_no=N``.

        No OpenFlow and no upcall handler: packets are not processed, so use it for
        port/flow-table commands only.  Returns the datapath name (``dummy@NAME``).
        """
        dpif = self.dpif_name(name)
        ports = dict(ports or {})
        names = [dpif.split("@", 1)[1], *ports]
        self._check_netdevs(dpif, names)
        self.appctl("dpctl/add-dp", dpif)
        self._claim_netdevs(dpif, names[:1])
        if ports:
            specs = [f"{port},type=dummy,port_no={no}" for port, no in ports.items()]
            self.appctl("dpctl/add-if", dpif, *specs)
            self._claim_netdevs(dpif, names[1:])
        return dpif

    def dpctl_add_flow(self, dp: str, flow: str, actions: str) -> str:
        return self.appctl("dpctl/add-flow", self.dpif_name(dp), flow, actions)

    def dpctl_mod_flow(self, dp: str, flow: str, actions: str) -> str:
        return self.appctl("dpctl/mod-flow", self.dpif_name(dp), flow, actions)

    def dpctl_del_flow(self, dp: str, flow: str) -> str:
        return self.appctl("dpctl/del-flow", self.dpif_name(dp), flow)

    def dpctl_del_flows(self, dp: str) -> str:
        return self.appctl("dpctl/del-flows", self.dpif_name(dp))

    def dpctl_get_flow(self, dp: str, ufid: str) -> str:
        if not ufid.startswith("ufid:"):
            ufid = f"ufid:{ufid}"
        return self.appctl("dpctl/get-flow", self.dpif_name(dp), ufid).strip()

    def dpctl_dump_flows(self, dp: str, *opts: str) -> list[str]:
        """``dpctl/dump-flows [OPTS] DP`` lines, without the ``flow-dump from ...`` headers.

        Options (``-m``, ``--names``, ``filter=...``) count against ovs-appctl's
        argument limit (see notes §6.5).
        """
        options = [o for o in opts if o.startswith("-")]
        rest = [o for o in opts if not o.startswith("-")]
        out = self.appctl("dpctl/dump-flows", *options, self.dpif_name(dp), *rest)
        return [
            line
            for line in out.splitlines()
            if line.strip() and not line.startswith("flow-dump from")
        ]

    def dpctl_show(self, dp: str, stats: bool = False) -> str:
        args = ["-s"] if stats else []
        return self.appctl("dpctl/show", *args, self.dpif_name(dp))

    def dpctl_del_dp(self, dp: str) -> str:
        dpif = self.dpif_name(dp)
        out = self.appctl("dpctl/del-dp", dpif)
        for name in [n for n, owner in self._netdev_owner.items() if owner == dpif]:
            del self._netdev_owner[name]
        return out

    # ----------------------------------------------------------------- oracle bridge

    @property
    def oracle_ports(self) -> dict[str, int]:
        """``{"p1": dp_port, ...}``: datapath port numbers of the oracle bridge's ports.

        Read from ``dpif/show`` (``p1 1/1`` = OpenFlow port / datapath port).  With
        this harness p1..p3 get datapath ports 1..3 (dpif-netdev derives the number
        from the digits in a dummy port's name) and br0 gets 100, but always use this
        mapping rather than hard-coding.
        """
        with self._lock:
            if self._oracle_ports is None:
                self._setup_oracle_bridge()
            assert self._oracle_ports is not None
            return dict(self._oracle_ports)

    def pcap_path(self, port: str) -> Path:
        """File into which oracle-bridge port ``port`` writes every frame it transmits."""
        return self.directory / f"{port}.pcap"

    def _setup_oracle_bridge(self) -> None:
        self._check_netdevs(BRIDGE_DPIF, [ORACLE_BRIDGE, *ORACLE_PORTS])
        self._claim_netdevs(BRIDGE_DPIF, [ORACLE_BRIDGE, *ORACLE_PORTS])
        other_config = [f"other_config:{k}={v}" for k, v in ORACLE_OTHER_CONFIG.items()]
        args = ["set", "Open_vSwitch", ".", *other_config]
        args += ["--", "add-br", ORACLE_BRIDGE]
        args += ["--", "set", "bridge", ORACLE_BRIDGE, "datapath-type=dummy", "fail-mode=secure"]
        for port in ORACLE_PORTS:
            args += ["--", "add-port", ORACLE_BRIDGE, port]
            args += ["--", "set", "Interface", port, "type=dummy"]
            args += [f"ofport_request={port[1:]}", f"options:tx_pcap={self.pcap_path(port)}"]
            # Dummy ports silently refuse to transmit frames longer than MTU + 14
            # (+4 with an 802.1Q tag); the default MTU is 1500.
            args += [f"mtu_request={DUMMY_MAX_MTU}"]
        self.vsctl(*args)
        self.appctl("upcall/disable-megaflows")
        self.ofctl("add-flow", ORACLE_BRIDGE, "actions=drop")
        # Stop the revalidator threads for good: they would otherwise "fix" (replace the
        # actions of) flows installed by hand with dpctl/add-flow whenever something
        # triggers a revalidation.  revalidator/purge still works: it runs in the main
        # thread.  (revalidator/wait would block for max-revalidator = 1 h here.)
        self.appctl("revalidator/pause")
        show = self.appctl("dpif/show")
        ports = {m[1]: int(m[3]) for m in _DPIF_SHOW_PORT_RE.finditer(show)}
        missing = [p for p in ORACLE_PORTS if p not in ports]
        if missing:
            raise OvsError(f"oracle ports {missing} missing from dpif/show:\n{show}")
        self._oracle_ports = {p: ports[p] for p in ORACLE_PORTS}
        self._oracle_ports[ORACLE_BRIDGE] = ports.get(ORACLE_BRIDGE, -1)

    def _bridge_flows(self, *opts: str) -> list[str]:
        return self.dpctl_dump_flows(BRIDGE_DPIF, *opts)

    def _wait_until(
        self, what: str, poll: Callable[[], list[str]], done: Callable[[list[str]], bool]
    ) -> list[str]:
        deadline = time.monotonic() + self.packet_timeout
        delay = 0.0002
        while True:
            result = poll()
            if done(result):
                return result
            if time.monotonic() > deadline:
                raise OvsError(f"timed out waiting for {what}; last: {result}\n{self.log_tail()}")
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def flush_flows(self) -> None:
        """Remove every flow of the bridge datapath *and* the matching udpif keys.

        ``revalidator/purge`` (not ``dpctl/del-flows``): deleting only the datapath flow
        leaves ofproto's ukey behind, and a later upcall for the same key then fails
        with "upcall_cb failure: ukey installation fails" and installs nothing.
        """
        self.appctl("revalidator/purge")
        flows = self._bridge_flows()
        if flows:
            # Flows without a ukey (hand-installed with dpctl/add-flow) are not purged.
            self.dpctl_del_flows(BRIDGE_DPIF)
            self._wait_until("an empty datapath", self._bridge_flows, lambda f: not f)

    @staticmethod
    def _check_frame(frame: bytes) -> str:
        if len(frame) < _ETH_HEADER_LEN:
            raise ValueError(f"frame of {len(frame)} bytes is shorter than an Ethernet header")
        return bytes(frame).hex()

    def extract_key(self, frame: bytes, in_port_name: str = "p1", *, verbose: bool = False) -> str:
        """The exact ODP key OVS's userspace extracts from ``frame`` received on a port.

        See :meth:`extract_keys`.
        """
        return self.extract_keys([frame], in_port_name, verbose=verbose)[0]

    def extract_keys(
        self, frames: Sequence[bytes], in_port_name: str = "p1", *, verbose: bool = False
    ) -> list[str]:
        """Exact ODP flow keys (dump text up to ``, packets:``) for each frame, in order.

        Megaflows are disabled, so the key shows every field with an exact mask, e.g.
        ``skb_priority(0),skb_mark(0),ct_state(-new-est-rel-rpl-inv-trk-snat-dnat),
        ct_zone(0),ct_mark(0),ct_label(0),recirc_id(0),dp_hash(0),in_port(1),
        packet_type(ns=0,id=0),eth(src=..,dst=..),eth_type(0x0800),ipv4(...),udp(...)``
        where ``in_port`` is the *datapath* port of ``in_port_name``
        (:attr:`oracle_ports`).

        One frame at a time: the datapath is empty, the frame is received, the dump is
        polled until the upcall has installed exactly one flow, then everything is
        purged again — so each key belongs to exactly one frame, duplicates included.

        ``verbose=True`` returns the ``dump-flows -m`` form instead: every attribute,
        wildcarded fields as ``value/0``, ports by name (``in_port(p1)``).  Needed for
        IPv6 ND frames: with megaflows disabled OVS 3.1 installs their ``nd(...)``
        attribute with an all-zero mask, so the default form omits it entirely.
        """
        ports = self.oracle_ports
        if in_port_name not in ports:
            raise ValueError(f"unknown oracle port {in_port_name!r}; use one of {list(ports)}")
        hexes = [self._check_frame(f) for f in frames]
        with self._lock:
            return self._extract_keys(hexes, in_port_name, verbose)

    def _extract_keys(self, hexes: list[str], in_port_name: str, verbose: bool) -> list[str]:
        dump_opts = ("-m",) if verbose else ()
        self.flush_flows()
        keys: list[str] = []
        for index, hex_frame in enumerate(hexes):
            self.appctl("netdev-dummy/receive", in_port_name, hex_frame)
            flows = self._wait_until(
                f"the datapath flow of frame #{index} ({hex_frame[:64]}...)",
                lambda: self._bridge_flows(*dump_opts),
                bool,
            )
            if len(flows) != 1:
                raise OvsError(f"frame #{index}: expected one datapath flow, got {flows}")
            keys.append(dump_line_key(flows[0]))
            self.flush_flows()
        return keys

    def _resolve_actions(self, actions: str, out_port_name: str) -> str:
        """Replace ``{p1}``/``{p2}``/``{p3}``/``{out}`` by datapath port numbers; without
        any placeholder, ``,{out}`` is appended (``out`` = ``out_port_name``), except to
        ``drop``.  Only those four tokens are touched, so Geneve ``{class=...}`` is safe."""
        ports = self.oracle_ports
        if out_port_name not in ports:
            raise ValueError(f"unknown oracle port {out_port_name!r}")
        tokens = {f"{{{p}}}": str(n) for p, n in ports.items()}
        tokens["{out}"] = str(ports[out_port_name])
        actions = actions.strip()
        if actions == "drop":
            return actions
        if not any(tok in actions for tok in tokens):
            actions = f"{actions},{{out}}" if actions else "{out}"
        for tok, number in tokens.items():
            actions = actions.replace(tok, number)
        return actions

    def execute(
        self, frame: bytes, actions: str, in_port_name: str = "p1"
    ) -> dict[str, list[bytes]]:
        """Run datapath ``actions`` on ``frame``; return what each oracle port transmitted.

        ``actions`` uses ``{p1}``/``{p2}``/``{p3}`` (or ``{out}`` = p2) for output ports,
        e.g. ``"push_vlan(vid=10,pcp=3),{p2},pop_vlan,{p3}"``; without placeholders
        ``,{p2}`` is appended.  Implementation: the frame's exact key (see
        :meth:`extract_keys`) is installed with ``dpctl/add-flow`` under a fresh UFID,
        the frame is received on ``in_port_name``, ``dpctl/get-flow`` is polled until
        the flow counted the packet (stats are updated and actions run by the same
        ovs-vswitchd thread that answers us), then each port's pcap is read from its
        previous end.  The oracle ports have MTU 65535; a dummy port silently does not
        transmit a longer frame (MTU + 14, + 4 with an 802.1Q tag).
        """
        return self._execute(frame, actions, in_port_name, "p2")

    def execute_capture(
        self, frame: bytes, actions: str, in_port_name: str = "p1", out_port_name: str = "p2"
    ) -> list[bytes]:
        """Frames transmitted on ``out_port_name`` after running ``actions`` on ``frame``.

        ``execute_capture(frame, "set(ipv4(ttl=10))")`` installs
        ``set(ipv4(ttl=10)),<p2>`` for the frame's exact key; see :meth:`execute`.
        """
        return self._execute(frame, actions, in_port_name, out_port_name)[out_port_name]

    def _execute(
        self, frame: bytes, actions: str, in_port_name: str, out_port_name: str
    ) -> dict[str, list[bytes]]:
        hex_frame = self._check_frame(frame)
        resolved = self._resolve_actions(actions, out_port_name)
        with self._lock:
            return self._execute_locked(hex_frame, resolved, in_port_name)

    def _execute_locked(
        self, hex_frame: str, resolved: str, in_port_name: str
    ) -> dict[str, list[bytes]]:
        # The verbose key reproduces the upcall's flow exactly (key *and* mask); the
        # default text is not always installable (IPv6 ND: nd() is omitted).
        (key,) = self._extract_keys([hex_frame], in_port_name, True)  # datapath left empty
        ufid = str(uuid.uuid4())
        offsets = {p: self._pcap_size(p) for p in ORACLE_PORTS}
        self.dpctl_add_flow(BRIDGE_DPIF, f"ufid:{ufid},{key}", resolved)
        try:
            self.appctl("netdev-dummy/receive", in_port_name, hex_frame)
            self._wait_until(
                f"the installed flow to see the frame (actions {resolved})",
                lambda: [self.dpctl_get_flow(BRIDGE_DPIF, ufid)],
                lambda lines: _flow_packets(lines[0]) >= 1,
            )
        finally:
            self.flush_flows()
        return {p: read_pcap(self.pcap_path(p), offsets[p]) for p in ORACLE_PORTS}

    def _pcap_size(self, port: str) -> int:
        try:
            return self.pcap_path(port).stat().st_size
        except FileNotFoundError:
            return 0


def _flow_packets(line: str) -> int:
    m = _GET_FLOW_PACKETS_RE.search(line)
    if m is None:
        raise OvsError(f"no packet count in {line!r}")
    return int(m[1])


def _stop_process(proc: subprocess.Popen[bytes], term_timeout: float = 5.0) -> None:
    """SIGTERM, wait, SIGKILL, wait: the process is gone and reaped afterwards."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=term_timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait(timeout=30)


# --------------------------------------------------------------------------- context managers


@contextlib.contextmanager
def ovs_sandbox(**kwargs: float) -> Iterator[OvsSandbox]:
    """``with ovs_sandbox() as ovs:`` — a started :class:`OvsSandbox`, always cleaned up."""
    with OvsSandbox(**kwargs) as sandbox:
        yield sandbox


@contextlib.contextmanager
def ovs_sandbox_or_skip(**kwargs: float) -> Iterator[OvsSandbox]:
    """Like :func:`ovs_sandbox`, but ``pytest.skip`` when OVS is unavailable.

    Only skips for the reasons :func:`ovs_available` reports; a sandbox that fails to
    start raises.  Works in a test or in a (module-scoped) fixture::

        @pytest.fixture(scope="module")
        def ovs() -> Iterator[OvsSandbox]:
            with ovs_sandbox_or_skip() as sandbox:
                yield sandbox
    """
    require_ovs()
    with ovs_sandbox(**kwargs) as sandbox:
        yield sandbox
