"""The control socket: JSON-RPC 1.0 over a Unix stream socket, exactly what
``ovs-appctl`` speaks (OVS's ``lib/unixctl.c`` on top of ``lib/jsonrpc.c``).

Wire protocol, as OVS implements it:

* A connection carries a stream of JSON texts with no delimiter between them
  (OVS's incremental JSON parser); each must be an object.
* A request is ``{"method": M, "params": [strings...], "id": ID}`` with no
  other members; ``ovs-appctl`` sends ``"id": 0``.
* The reply is ``{"result": TEXT, "error": null, "id": ID}`` or
  ``{"result": null, "error": TEXT, "id": ID}``.  A non-empty TEXT always
  ends with a newline (``unixctl_command_reply__`` appends one).  OVS itself
  leaves ``result`` out of error replies; JSON-RPC 1.0 and every client
  (``ovs-appctl`` included) read both forms the same.
* Commands are registered with a minimum and maximum argument count
  (``unixctl_command_register``); the count includes any options, since the
  server cannot tell them apart.  The errors are OVS's texts:
  ``"M" is not a valid command (use "list-commands" to see a list of valid
  commands)``, ``"M" command requires at least N arguments``, ``"M" command
  takes at most N arguments``, ``"M" command has non-string argument``.
* A message that is not valid JSON, not an object, or not a well-formed
  request (extra members, ``params`` not an array, a notification, ...) is a
  protocol error: OVS logs it and drops the connection without a reply; so
  does this server.
* Built-in commands: ``list-commands`` (``  %-23s %s`` per command, sorted),
  ``version``, and here also ``help [COMMAND]``.

Beyond OVS, a command may keep its connection as a *subscription* and send
JSON-RPC notifications (``{"method": M, "params": [...], "id": null}``) after
its reply; ``pyvswitch dpctl monitor`` streams upcalls that way.  OVS's
``jsonrpc_transact_block`` skips messages that are not its reply, so
``ovs-appctl`` is not confused by them.

Socket paths longer than ``sun_path`` allows are reached through
``/proc/self/fd/N/NAME``, as OVS's ``make_sockaddr_un`` does.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import selectors
import socket
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from . import __version__
from .errors import PyvswitchError
from .eventloop import EventLoop

log = logging.getLogger(__name__)

#: ``sizeof(sun_path) - 1``
MAX_UN_LEN = 107
#: A single JSON-RPC message larger than this is a protocol error.
MAX_MESSAGE = 64 << 20
#: A connection whose unsent replies exceed this is dropped (a client that
#: sends requests without ever reading).
MAX_BACKLOG = 256 << 20
#: Requests handled per connection per wake-up (OVS: 10).
_REQUESTS_PER_RUN = 10
_RECV_SIZE = 1 << 16


class UnixctlError(PyvswitchError):
    """Raised by a command callback: the text becomes the error reply."""


class UnixctlProtocolError(PyvswitchError):
    """The peer sent something that is not JSON-RPC."""

    errno = errno.EPROTO


class UnixctlConnectError(PyvswitchError):
    """The client could not reach or keep talking to the server."""


class UnixctlServerError(PyvswitchError):
    """The server answered with an error; ``text`` is its reply, verbatim."""

    def __init__(self, text: str) -> None:
        super().__init__(text.rstrip("\n") or "server returned an error")
        self.text = text


# ---------------------------------------------------------------------------
# JSON text framing (the part of OVS's json_parser that finds message ends)


class JsonStream:
    """Splits a byte stream into complete top-level JSON texts.

    Only objects and arrays can be told apart without a delimiter, so (like
    OVS's parser for a JSON-RPC stream) anything else at the top level is an
    error.  State is kept across :meth:`feed` calls, so a message arriving in
    many pieces is scanned once."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.buf = bytearray()
        self.max_message = max_message
        self._pos = 0  # next byte to scan
        self._start = -1  # start of the current text, -1 = between texts
        self._depth = 0
        self._in_string = False
        self._escape = False

    def feed(self, data: bytes) -> list[Any]:
        """Add bytes; return the JSON values completed by them (decoded).
        Raises :class:`UnixctlProtocolError` on malformed input."""
        self.buf += data
        out: list[Any] = []
        buf = self.buf
        i = self._pos
        n = len(buf)
        while i < n:
            c = buf[i]
            if self._start < 0:
                if c in b" \t\r\n":
                    i += 1
                    continue
                if c not in b"{[":
                    raise UnixctlProtocolError(
                        f"syntax error at beginning of input (got {chr(c)!r})"
                    )
                self._start = i
                self._depth = 1
                i += 1
                continue
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif c == 0x5C:  # backslash
                    self._escape = True
                elif c == 0x22:  # quote
                    self._in_string = False
                i += 1
                continue
            if c == 0x22:
                self._in_string = True
            elif c in b"{[":
                self._depth += 1
            elif c in b"}]":
                self._depth -= 1
                if self._depth == 0:
                    text = bytes(buf[self._start : i + 1])
                    try:
                        out.append(json.loads(text.decode("utf-8")))
                    except (UnicodeDecodeError, ValueError) as e:
                        raise UnixctlProtocolError(f"invalid JSON: {e}") from None
                    del buf[: i + 1]
                    n = len(buf)
                    i = 0
                    self._start = -1
                    continue
            i += 1
        self._pos = i
        if self._start >= 0 and len(buf) - self._start > self.max_message:
            raise UnixctlProtocolError(f"message longer than {self.max_message} bytes")
        if self._start < 0:
            del buf[:]
            self._pos = 0
        return out


def encode_message(msg: dict[str, Any]) -> bytes:
    """One JSON-RPC message as OVS writes it: compact, UTF-8, no delimiter."""
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _reply_body(text: str | None) -> str:
    """``unixctl_command_reply__``: a non-empty body always ends with ``\\n``."""
    body = text or ""
    if body and not body.endswith("\n"):
        body += "\n"
    return body


@dataclass(frozen=True, slots=True)
class Request:
    """A validated JSON-RPC request."""

    method: str
    params: list[Any]
    id: Any


def parse_request(msg: Any) -> Request:
    """``jsonrpc_msg_from_json`` + ``jsonrpc_msg_is_valid`` for a request.
    Anything else (a reply, a notification, junk) raises
    :class:`UnixctlProtocolError`."""
    if not isinstance(msg, dict):
        raise UnixctlProtocolError("message is not a JSON object")
    obj = dict(msg)
    method = obj.pop("method", None)
    if method is not None and not isinstance(method, str):
        raise UnixctlProtocolError("method is not a JSON string")
    params = obj.pop("params", None)
    result = obj.pop("result", None)
    error = obj.pop("error", None)
    id_ = obj.pop("id", None)
    if obj:
        raise UnixctlProtocolError(f'message has unexpected member "{next(iter(obj))}"')
    if params is not None and not isinstance(params, list):
        raise UnixctlProtocolError('"params" must be JSON array')
    kind = (
        "reply"
        if result is not None
        else "error"
        if error is not None
        else "request"
        if id_ is not None
        else "notification"
    )
    if kind != "request":
        raise UnixctlProtocolError(f"received unexpected {kind} message")
    if method is None:
        raise UnixctlProtocolError('request must have "method"')
    if params is None:
        raise UnixctlProtocolError('request must have "params"')
    return Request(method, params, id_)


# ---------------------------------------------------------------------------
# Commands


#: ``callback(conn, args)``: ``conn`` is the connection (None when the command
#: runs in-process); the returned text is the reply.  Raise
#: :class:`UnixctlError` (or any :class:`PyvswitchError`) for an error reply.
Callback = Callable[["UnixctlConn | None", list[str]], str]


@dataclass(frozen=True, slots=True)
class UnixctlCommand:
    name: str
    usage: str
    min_args: int
    max_args: int
    callback: Callback


def program_version(program: str = "pyvswitch") -> str:
    """``ovs_get_program_version`` for pyvswitch."""
    return f"{program} (pyvswitch) {__version__}"


class UnixctlCommands:
    """The command table (OVS's global ``commands`` shash) and the request
    checks of ``process_command``.  Usable without a socket: the in-memory CLI
    runs commands through :meth:`execute` directly."""

    def __init__(self, program: str = "pyvswitch") -> None:
        self.program = program
        self.commands: dict[str, UnixctlCommand] = {}
        self.n_received = 0
        self.n_replied = 0
        self.register("list-commands", "", 0, 0, lambda _c, _a: self.list_commands())
        self.register("version", "", 0, 0, lambda _c, _a: program_version(self.program))
        self.register("help", "[COMMAND]", 0, 1, self._help)

    def register(
        self, name: str, usage: str, min_args: int, max_args: int, callback: Callback
    ) -> None:
        """``unixctl_command_register``.  Registering a name twice with a
        different callback is a programming error."""
        old = self.commands.get(name)
        if old is not None:
            if old.callback is not callback:
                raise ValueError(f"unixctl command {name!r} is already registered")
            return
        if min_args < 0 or max_args < min_args:
            raise ValueError(f"{name}: bad argument limits {min_args}..{max_args}")
        self.commands[name] = UnixctlCommand(name, usage, min_args, max_args, callback)

    def unregister(self, name: str) -> None:
        self.commands.pop(name, None)

    def list_commands(self) -> str:
        """``unixctl_list_commands``."""
        lines = ["The available commands are:\n"]
        for name in sorted(self.commands):
            lines.append(f"  {name:<23} {self.commands[name].usage}\n")
        return "".join(lines)

    def _help(self, _conn: UnixctlConn | None, args: list[str]) -> str:
        if not args:
            return self.list_commands()
        cmd = self.commands.get(args[0])
        if cmd is None:
            raise UnixctlError(self._unknown(args[0]))
        return f"usage: {cmd.name} {cmd.usage}".rstrip() + "\n"

    @staticmethod
    def _unknown(method: str) -> str:
        return (
            f'"{method}" is not a valid command (use "list-commands" to see a list of valid '
            "commands)"
        )

    def execute(
        self, method: str, params: Sequence[Any], conn: UnixctlConn | None = None
    ) -> tuple[bool, str]:
        """``process_command``: check the method and arguments, run the
        callback; returns ``(success, reply body)``."""
        self.n_received += 1
        try:
            cmd = self.commands.get(method)
            if cmd is None:
                raise UnixctlError(self._unknown(method))
            if len(params) < cmd.min_args:
                raise UnixctlError(f'"{method}" command requires at least {cmd.min_args} arguments')
            if len(params) > cmd.max_args:
                raise UnixctlError(f'"{method}" command takes at most {cmd.max_args} arguments')
            if not all(isinstance(p, str) for p in params):
                raise UnixctlError(f'"{method}" command has non-string argument')
            ok, text = True, cmd.callback(conn, list(params))
        except UnixctlError as e:
            ok, text = False, e.args[0] if e.args else ""
        except PyvswitchError as e:
            ok, text = False, str(e)
        except Exception as e:  # a failing command never takes the daemon down
            log.exception("unixctl command %s failed", method)
            ok, text = False, f"{method}: internal error: {type(e).__name__}: {e}"
        self.n_replied += 1
        return ok, _reply_body(text)


# ---------------------------------------------------------------------------
# Socket addresses


@contextlib.contextmanager
def _sun_path(path: str) -> Iterator[str]:
    """A name for ``path`` that fits ``sun_path`` (``shorten_name_via_proc``)."""
    if len(os.fsencode(path)) <= MAX_UN_LEN:
        yield path
        return
    dirname, base = os.path.split(os.path.abspath(path))
    try:
        dirfd = os.open(dirname or ".", os.O_DIRECTORY | os.O_RDONLY)
    except OSError as e:
        raise UnixctlConnectError(f"{dirname}: open failed ({e.strerror})", errno=e.errno) from e
    try:
        short = f"/proc/self/fd/{dirfd}/{base}"
        if len(os.fsencode(short)) > MAX_UN_LEN:
            raise UnixctlConnectError(
                f"Unix socket name {path} is longer than maximum {MAX_UN_LEN} bytes",
                errno=errno.ENAMETOOLONG,
            )
        yield short
    finally:
        os.close(dirfd)


def _connect(path: str, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with _sun_path(path) as name:
            sock.connect(name)
    except BaseException:
        sock.close()
        raise
    return sock


# ---------------------------------------------------------------------------
# Server


class UnixctlConn:
    """One client connection: reads requests, queues replies and
    notifications, writes without blocking."""

    def __init__(self, server: UnixctlServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.stream = JsonStream()
        self.out = bytearray()
        self.closed = False
        #: called once when the connection goes away (subscriptions clean up)
        self.on_close: list[Callable[[UnixctlConn], None]] = []
        self._wfd = -1  # dup of fd registered for writability while output is pending
        self._deferred: list[dict[str, Any]] | None = None  # notifications during a request
        self.name = f"unix#{self.fd}"

    # -- input -----------------------------------------------------------------

    def _on_readable(self) -> None:
        if self.closed:
            return
        try:
            data = self.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            log.debug("%s: receive error: %s", self.name, e.strerror)
            self.close()
            return
        if not data:
            self.close()
            return
        try:
            messages = self.stream.feed(data)
            for msg in messages:
                if self.closed:
                    return
                req = parse_request(msg)
                self._process(req)
        except UnixctlProtocolError as e:
            log.warning("%s: received bad JSON-RPC message: %s", self.name, e)
            self.close()

    def _process(self, req: Request) -> None:
        self._deferred = []
        try:
            ok, body = self.server.commands.execute(req.method, req.params, self)
        finally:
            deferred, self._deferred = self._deferred, None
        if ok:
            self.send({"result": body, "error": None, "id": req.id})
        else:
            self.send({"result": None, "error": body, "id": req.id})
        for msg in deferred:  # what the command sent goes after its reply
            self.send(msg)

    # -- output ----------------------------------------------------------------

    def send(self, msg: dict[str, Any]) -> None:
        """Queue a JSON-RPC message and write what the socket takes now."""
        if self.closed:
            return
        self.out += encode_message(msg)
        self._flush()
        if len(self.out) > MAX_BACKLOG:
            log.warning("%s: output backlog too large, dropping connection", self.name)
            self.close()

    def notify(self, method: str, params: list[Any]) -> None:
        """Send a JSON-RPC notification (``id: null``); from inside a
        command, it follows the command's reply."""
        msg = {"method": method, "params": params, "id": None}
        if self._deferred is not None:
            self._deferred.append(msg)
        else:
            self.send(msg)

    @property
    def backlog(self) -> int:
        """Bytes queued but not yet written."""
        return len(self.out)

    def _flush(self) -> None:
        while self.out and not self.closed:
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                log.debug("%s: send error: %s", self.name, e.strerror)
                self.close()
                return
            del self.out[:n]
        if self.closed:
            return
        if self.out and self._wfd < 0:
            # The event loop dispatches any ready fd to its callback; a dup of
            # the socket registered for EVENT_WRITE keeps the read side's
            # registration untouched.
            self._wfd = os.dup(self.fd)
            self.server.loop.selector.register(self._wfd, selectors.EVENT_WRITE, self._flush)
        elif not self.out and self._wfd >= 0:
            self._unregister_writer()

    def _unregister_writer(self) -> None:
        if self._wfd >= 0:
            with contextlib.suppress(KeyError, ValueError):
                self.server.loop.selector.unregister(self._wfd)
            os.close(self._wfd)
            self._wfd = -1

    def flush_blocking(self, timeout: float) -> None:
        """Write pending output, waiting up to ``timeout`` seconds (shutdown)."""
        deadline = time.monotonic() + timeout
        while self.out and not self.closed and time.monotonic() < deadline:
            self._flush()
            if self.out and not self.closed:
                sel = selectors.DefaultSelector()
                try:
                    sel.register(self.fd, selectors.EVENT_WRITE)
                    sel.select(max(0.0, deadline - time.monotonic()))
                finally:
                    sel.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._unregister_writer()
        self.server.loop.remove_reader(self.fd)
        self.server.conns.discard(self)
        with contextlib.suppress(OSError):
            self.sock.close()
        callbacks, self.on_close = self.on_close, []
        for cb in callbacks:
            try:
                cb(self)
            except Exception:
                log.exception("unixctl close callback failed")


class UnixctlServer:
    """Listens on ``path`` (mode ``mode``) and serves ``commands`` from
    ``loop``.  The path's parent directory must exist.  A stale socket (no
    one listening) is replaced; a live one is an error (EADDRINUSE)."""

    def __init__(
        self, path: str, commands: UnixctlCommands, loop: EventLoop, *, mode: int = 0o600
    ) -> None:
        self.path = os.path.abspath(path)
        self.commands = commands
        self.loop = loop
        self.conns: set[UnixctlConn] = set()
        self._remove_stale(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old_umask = os.umask(0o777 & ~mode)
            try:
                with _sun_path(self.path) as name:
                    sock.bind(name)
            finally:
                os.umask(old_umask)
            os.chmod(self.path, mode)
            sock.listen(64)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            raise UnixctlConnectError(
                f"could not initialize control socket {self.path} ({e.strerror})", errno=e.errno
            ) from e
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._ino = os.stat(self.path).st_ino
        loop.add_reader(sock.fileno(), self._accept)

    @staticmethod
    def _remove_stale(path: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise UnixctlConnectError(f"{path} exists and is not a socket", errno=errno.EEXIST)
        try:
            _connect(path, 1.0).close()
        except OSError:
            os.unlink(path)  # nobody listening: a leftover of a crashed daemon
            return
        raise UnixctlConnectError(
            f"{path}: another daemon is already listening here", errno=errno.EADDRINUSE
        )

    def _accept(self) -> None:
        for _ in range(10):
            try:
                sock, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning("%s: accept failed: %s", self.path, e.strerror)
                return
            sock.setblocking(False)
            conn = UnixctlConn(self, sock)
            self.conns.add(conn)
            self.loop.add_reader(conn.fd, conn._on_readable)

    def close(self, flush_timeout: float = 1.0) -> None:
        """Flush pending replies (briefly), drop every connection, stop
        listening and remove the socket file (if it is still ours)."""
        for conn in list(self.conns):
            conn.flush_blocking(flush_timeout)
            conn.close()
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._ino:
                os.unlink(self.path)


# ---------------------------------------------------------------------------
# Client


class UnixctlClient:
    """A blocking JSON-RPC client (``unixctl_client_create`` +
    ``unixctl_client_transact``), also able to receive notifications."""

    def __init__(self, path: str, timeout: float | None = None) -> None:
        self.path = path
        self.timeout = timeout
        try:
            self.sock = _connect(path, timeout)
        except OSError as e:
            raise UnixctlConnectError(
                f'cannot connect to "{path}" ({e.strerror or e})', errno=e.errno or errno.EIO
            ) from e
        self.stream = JsonStream()
        self._pending: list[Any] = []
        self._notifications: list[dict[str, Any]] = []
        self._next_id = 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> UnixctlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _comm_error(self, e: OSError | str) -> UnixctlConnectError:
        if isinstance(e, OSError):
            what = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
            return UnixctlConnectError(
                f"{self.path}: transaction error ({what})", errno=e.errno or errno.EIO
            )
        return UnixctlConnectError(f"{self.path}: {e}", errno=errno.EPROTO)

    def recv_message(self) -> dict[str, Any]:
        """The next message from the server (blocking, honours the timeout)."""
        while not self._pending:
            try:
                data = self.sock.recv(_RECV_SIZE)
            except OSError as e:
                raise self._comm_error(e) from e
            if not data:
                raise self._comm_error("connection closed by the server")
            try:
                self._pending.extend(self.stream.feed(data))
            except UnixctlProtocolError as e:
                raise self._comm_error(str(e)) from e
        msg = self._pending.pop(0)
        if not isinstance(msg, dict):
            raise self._comm_error("message is not a JSON object")
        return msg

    def transact(self, method: str, params: Sequence[str] = ()) -> str:
        """Run one command; the reply text, or :class:`UnixctlServerError`."""
        req_id = self._next_id
        self._next_id += 1
        try:
            request = {"method": method, "params": list(params), "id": req_id}
            self.sock.sendall(encode_message(request))
        except OSError as e:
            raise self._comm_error(e) from e
        while True:
            msg = self.recv_message()
            if msg.get("id") is None and isinstance(msg.get("method"), str):
                self._notifications.append(msg)  # kept for notifications()
                continue
            if msg.get("id") != req_id or ("result" not in msg and "error" not in msg):
                continue  # not our reply (jsonrpc_transact_block)
            error = msg.get("error")
            if error is not None:
                if not isinstance(error, str):
                    raise self._comm_error(f"unexpected error type in JSON RPC reply: {error!r}")
                raise UnixctlServerError(error)
            result = msg.get("result")
            if not isinstance(result, str):
                raise self._comm_error(f"unexpected result type in JSON RPC reply: {result!r}")
            return result

    def notifications(self) -> Iterator[tuple[str, list[Any]]]:
        """Yield ``(method, params)`` of each notification until the server
        closes the connection (then :class:`UnixctlConnectError`)."""
        while True:
            msg = self._notifications.pop(0) if self._notifications else self.recv_message()
            if msg.get("id") is None and isinstance(msg.get("method"), str):
                params = msg.get("params")
                yield msg["method"], params if isinstance(params, list) else []


def transact(
    path: str, method: str, params: Sequence[str] = (), timeout: float | None = None
) -> str:
    """Connect, run one command, disconnect."""
    with UnixctlClient(path, timeout) as client:
        return client.transact(method, params)
