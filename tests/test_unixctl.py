"""The control socket protocol (pyvswitch.unixctl): JSON framing, request
validation, OVS's error texts and argument-count checks, a live server with
our client, raw sockets and the real ``ovs-appctl``."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator

import pytest

from pyvswitch.eventloop import EventLoop
from pyvswitch.unixctl import (
    JsonStream,
    UnixctlClient,
    UnixctlCommands,
    UnixctlConn,
    UnixctlConnectError,
    UnixctlError,
    UnixctlProtocolError,
    UnixctlServer,
    UnixctlServerError,
    parse_request,
    program_version,
    transact,
)

OVS_APPCTL = shutil.which("ovs-appctl") or "/usr/bin/ovs-appctl"

# --------------------------------------------------------------------------- framing


def test_stream_splits_concatenated_messages() -> None:
    s = JsonStream()
    assert s.feed(b'{"a":1}{"b":[2,{"c":3}]}  \n[4]') == [{"a": 1}, {"b": [2, {"c": 3}]}, [4]]
    assert s.feed(b"") == []


def test_stream_keeps_state_across_pieces() -> None:
    msg = b'{"method":"x","params":["{[\\"}]"],"id":0}'
    s = JsonStream()
    got = []
    for i in range(len(msg)):
        got += s.feed(msg[i : i + 1])
        if i < len(msg) - 1:
            assert got == []
    assert got == [{"method": "x", "params": ['{["}]'], "id": 0}]


def test_stream_utf8_split_inside_a_character() -> None:
    msg = json.dumps({"params": ["é→"]}, ensure_ascii=False).encode()
    s = JsonStream()
    cut = msg.index("→".encode()) + 1
    assert s.feed(msg[:cut]) == []
    assert s.feed(msg[cut:]) == [{"params": ["é→"]}]


@pytest.mark.parametrize("data", [b"42", b'"text"', b"nul", b"{]", b'{"a":}'])
def test_stream_rejects_what_is_not_an_object_or_array(data: bytes) -> None:
    with pytest.raises(UnixctlProtocolError):
        JsonStream().feed(data)


def test_stream_limits_message_size() -> None:
    s = JsonStream(max_message=100)
    with pytest.raises(UnixctlProtocolError, match="longer than"):
        s.feed(b'{"a":"' + b"x" * 200)


# --------------------------------------------------------------------------- requests


def test_parse_request_valid() -> None:
    r = parse_request({"method": "dpctl/show", "params": ["-s"], "id": 0})
    assert (r.method, r.params, r.id) == ("dpctl/show", ["-s"], 0)


@pytest.mark.parametrize(
    ("msg", "text"),
    [
        ([1], "message is not a JSON object"),
        ({"method": 1, "params": [], "id": 0}, "method is not a JSON string"),
        ({"method": "m", "params": [], "id": 0, "x": 1}, 'unexpected member "x"'),
        ({"method": "m", "params": {}, "id": 0}, '"params" must be JSON array'),
        ({"method": "m", "params": []}, "unexpected notification message"),
        ({"method": "m", "params": [], "id": None}, "unexpected notification message"),
        ({"result": "x", "error": None, "id": 0}, "unexpected reply message"),
        ({"params": [], "id": 0}, 'request must have "method"'),
        ({"method": "m", "id": 0}, 'request must have "params"'),
    ],
)
def test_parse_request_rejects(msg: object, text: str) -> None:
    with pytest.raises(UnixctlProtocolError, match=text):
        parse_request(msg)


# --------------------------------------------------------------------------- command table


def _echo(_conn: UnixctlConn | None, args: list[str]) -> str:
    return " ".join(args)


def _commands() -> UnixctlCommands:
    c = UnixctlCommands("testd")
    c.register("echo", "[word...]", 0, 3, _echo)
    c.register("two", "a b", 2, 2, lambda _c, a: "")
    c.register("fail", "", 0, 0, lambda _c, a: (_ for _ in ()).throw(UnixctlError("it failed")))
    c.register("boom", "", 0, 0, lambda _c, a: str(1 // 0))
    return c


def test_command_checks_use_ovs_texts() -> None:
    c = _commands()
    assert c.execute("nope", []) == (
        False,
        '"nope" is not a valid command (use "list-commands" to see a list of valid commands)\n',
    )
    assert c.execute("two", ["x"]) == (False, '"two" command requires at least 2 arguments\n')
    assert c.execute("echo", ["1", "2", "3", "4"]) == (
        False,
        '"echo" command takes at most 3 arguments\n',
    )
    assert c.execute("echo", ["1", 2]) == (False, '"echo" command has non-string argument\n')


def test_reply_body_gets_one_trailing_newline() -> None:
    c = _commands()
    assert c.execute("echo", ["a", "b"]) == (True, "a b\n")
    assert c.execute("echo", ["a\n"]) == (True, "a\n")
    assert c.execute("echo", []) == (True, "")  # empty stays empty
    assert c.execute("two", ["a", "b"]) == (True, "")
    assert c.execute("fail", []) == (False, "it failed\n")


def test_a_crashing_command_is_an_error_reply() -> None:
    ok, text = _commands().execute("boom", [])
    assert not ok and "internal error: ZeroDivisionError" in text


def test_builtins() -> None:
    c = _commands()
    ok, text = c.execute("list-commands", [])
    assert ok
    assert text.splitlines() == [
        "The available commands are:",
        "  boom                    ",
        "  echo                    [word...]",
        "  fail                    ",
        "  help                    [COMMAND]",
        "  list-commands           ",
        "  two                     a b",
        "  version                 ",
    ]
    assert c.execute("version", []) == (True, program_version("testd") + "\n")
    assert program_version("testd").startswith("testd (pyvswitch) ")
    assert c.execute("help", ["two"]) == (True, "usage: two a b\n")
    assert c.execute("help", []) == (True, text)
    assert c.execute("help", ["zz"])[0] is False
    assert c.execute("list-commands", ["x"]) == (
        False,
        '"list-commands" command takes at most 0 arguments\n',
    )


def test_register_twice() -> None:
    c = _commands()
    c.register("echo", "[word...]", 0, 3, _echo)  # same callback: ignored, like OVS
    with pytest.raises(ValueError):
        c.register("echo", "", 0, 0, lambda _c, a: "")
    with pytest.raises(ValueError):
        c.register("bad", "", 2, 1, _echo)


# --------------------------------------------------------------------------- live server


class LiveServer:
    """A server on a real socket with its event loop in a thread."""

    def __init__(self, path: str, commands: UnixctlCommands) -> None:
        self.loop = EventLoop()
        self.server = UnixctlServer(path, commands, self.loop)
        self.thread = threading.Thread(target=self.loop.run, kwargs={"poll_interval": 0.02})
        self.thread.start()

    def close(self) -> None:
        self.loop.stop()
        self.thread.join(5)
        assert not self.thread.is_alive()
        self.server.close()
        self.loop.close()


@pytest.fixture
def tmpdir_short() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="pvs", dir="/tmp")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def live(tmpdir_short: str) -> Iterator[LiveServer]:
    c = _commands()
    big = "x" * 3_000_000
    c.register("big", "", 0, 0, lambda _c, a: big)

    def sub(conn: UnixctlConn | None, args: list[str]) -> str:
        assert conn is not None
        for i in range(int(args[0])):
            conn.notify("tick", [str(i)])
        return "subscribed"

    c.register("sub", "n", 1, 1, sub)
    srv = LiveServer(os.path.join(tmpdir_short, "t.ctl"), c)
    try:
        yield srv
    finally:
        srv.close()


def _raw(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    return s


def _read_json(sock: socket.socket, n: int = 1) -> list[object]:
    stream = JsonStream()
    out: list[object] = []
    while len(out) < n:
        data = sock.recv(65536)
        assert data, "server closed the connection"
        out += stream.feed(data)
    return out


def test_round_trip_and_reply_shape(live: LiveServer) -> None:
    path = live.server.path
    with _raw(path) as s:
        s.sendall(b'{"method":"echo","params":["hi","there"],"id":0}')
        assert _read_json(s) == [{"result": "hi there\n", "error": None, "id": 0}]
        s.sendall(b'{"method":"two","params":[],"id":"abc"}')
        assert _read_json(s) == [
            {"result": None, "error": '"two" command requires at least 2 arguments\n', "id": "abc"}
        ]


def test_pipelined_and_fragmented_requests(live: LiveServer) -> None:
    with _raw(live.server.path) as s:
        s.sendall(
            b'{"method":"echo","params":["1"],"id":1}\n{"method":"echo","params":["2"],"id":2}'
        )
        assert [m["id"] for m in _read_json(s, 2)] == [1, 2]  # type: ignore[index]
        msg = b'{"method":"echo","params":["split"],"id":3}'
        for b in msg:
            s.send(bytes([b]))
        assert _read_json(s) == [{"result": "split\n", "error": None, "id": 3}]


@pytest.mark.parametrize(
    "junk",
    [
        b"nonsense",
        b'{"method":"echo","params":["x"]}',  # a notification
        b'{"method":"echo","params":"x","id":1}',
        b'{"method":"echo","params":[],"id":1,"extra":0}',
    ],
)
def test_protocol_errors_drop_the_connection(live: LiveServer, junk: bytes) -> None:
    with _raw(live.server.path) as s:
        s.sendall(junk)
        assert s.recv(100) == b""  # closed, no reply (OVS: EPROTO)
    # the server is fine
    assert transact(live.server.path, "echo", ["ok"], timeout=5) == "ok\n"


def test_client_transact_and_errors(live: LiveServer) -> None:
    with UnixctlClient(live.server.path, timeout=5) as c:
        assert c.transact("echo", ["a"]) == "a\n"
        with pytest.raises(UnixctlServerError) as ei:
            c.transact("fail")
        assert ei.value.text == "it failed\n" and str(ei.value) == "it failed"
        assert c.transact("echo", ["b"]) == "b\n"  # connection still usable


def test_large_reply_goes_through_partial_writes(live: LiveServer) -> None:
    with UnixctlClient(live.server.path, timeout=10) as c:
        assert len(c.transact("big")) == 3_000_001
        assert c.transact("echo", ["after"]) == "after\n"


def test_notifications_follow_the_reply(live: LiveServer) -> None:
    with UnixctlClient(live.server.path, timeout=5) as c:
        assert c.transact("sub", ["3"]) == "subscribed\n"
        got = []
        for method, params in c.notifications():
            got.append((method, params))
            if len(got) == 3:
                break
        assert got == [("tick", ["0"]), ("tick", ["1"]), ("tick", ["2"])]
    with _raw(live.server.path) as s:  # raw: a JSON-RPC notification has "id": null
        s.sendall(b'{"method":"sub","params":["1"],"id":7}')
        assert _read_json(s, 2) == [
            {"result": "subscribed\n", "error": None, "id": 7},
            {"method": "tick", "params": ["0"], "id": None},
        ]


def test_socket_mode_0600_and_removed_on_close(tmpdir_short: str) -> None:
    path = os.path.join(tmpdir_short, "m.ctl")
    old = os.umask(0)
    try:
        srv = LiveServer(path, _commands())
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        srv.close()
    assert not os.path.exists(path)


def test_stale_socket_replaced_live_one_refused(tmpdir_short: str) -> None:
    path = os.path.join(tmpdir_short, "s.ctl")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    srv = LiveServer(path, _commands())
    try:
        assert transact(path, "echo", ["x"], timeout=5) == "x\n"
        with pytest.raises(UnixctlConnectError, match="already listening"):
            UnixctlServer(path, _commands(), EventLoop())
    finally:
        srv.close()
    with open(path, "w") as fh:
        fh.write("not a socket")
    with pytest.raises(UnixctlConnectError, match="not a socket"):
        UnixctlServer(path, _commands(), EventLoop())
    assert os.path.exists(path)  # a regular file is never unlinked


def test_long_socket_path(tmpdir_short: str) -> None:
    deep = os.path.join(tmpdir_short, *(["d" * 40] * 3))
    os.makedirs(deep)
    path = os.path.join(deep, "long.ctl")
    assert len(path) > 107
    srv = LiveServer(path, _commands())
    try:
        assert os.path.exists(path)
        assert transact(path, "echo", ["long"], timeout=5) == "long\n"
    finally:
        srv.close()
    assert not os.path.exists(path)


def test_client_connect_error(tmpdir_short: str) -> None:
    with pytest.raises(UnixctlConnectError, match=r'cannot connect to ".*nothing.ctl"'):
        UnixctlClient(os.path.join(tmpdir_short, "nothing.ctl"), timeout=1)


def test_client_sees_server_going_away(live: LiveServer) -> None:
    c = UnixctlClient(live.server.path, timeout=5)
    try:
        assert c.transact("echo", ["x"]) == "x\n"
        live.loop.stop()
        live.thread.join(5)
        live.server.close()
        with pytest.raises(UnixctlConnectError):
            c.transact("echo", ["y"])
    finally:
        c.close()


# --------------------------------------------------------------------------- real ovs-appctl


def _appctl(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    if not os.path.exists(OVS_APPCTL):
        pytest.skip(f"{OVS_APPCTL} not installed (Debian package openvswitch-common)")
    return subprocess.run(
        [OVS_APPCTL, "-t", path, *args], capture_output=True, text=True, timeout=30
    )


def test_real_ovs_appctl_talks_to_our_server(live: LiveServer) -> None:
    path = live.server.path
    p = _appctl(path, "echo", "a", "b")
    assert (p.returncode, p.stdout, p.stderr) == (0, "a b\n", "")
    p = _appctl(path, "version")
    assert p.stdout == program_version("testd") + "\n"
    p = _appctl(path, "list-commands")
    assert p.stdout.startswith("The available commands are:\n  big                     \n  boom ")
    p = _appctl(path, "echo", "1", "2", "3", "4")
    assert p.returncode == 2
    assert p.stderr == (
        f'"echo" command takes at most 3 arguments\novs-appctl: {path}: server returned an error\n'
    )
    p = _appctl(path, "fail")
    assert p.returncode == 2 and p.stderr.startswith("it failed\n")
    p = _appctl(path, "big")
    assert p.returncode == 0 and len(p.stdout) == 3_000_001
