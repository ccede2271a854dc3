"""The ``pyvswitch`` command line.

* ``pyvswitch demo`` -- the in-memory demo;
* ``pyvswitch daemon`` -- the switch daemon and its control socket
  (:mod:`pyvswitch.daemon`);
* ``pyvswitch dpctl COMMAND ...`` -- ``ovs-dpctl``'s commands, options and
  output, sent to the daemon (or run on a fresh in-memory switch with
  ``--in-memory``, e.g. a batch with ``--script FILE``);
* ``pyvswitch appctl COMMAND ...`` -- any control-socket command, like
  ``ovs-appctl``;
* ``pyvswitch parse-pcap`` -- only when :mod:`pyvswitch.pcap` provides
  ``parse_pcap_lines``.

Every failure exits non-zero with one clear line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from . import __version__
from .errors import PyvswitchError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line on stderr, exit status 2."""
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


# ---------------------------------------------------------------------------
# dpctl: the command table as the CLI presents it

#: command -> (usage of the arguments, options it takes)
_DPCTL_CLI: dict[str, tuple[str, tuple[str, ...]]] = {
    "add-dp": ("DP [IFACE...]", ()),
    "del-dp": ("DP", ()),
    "add-if": ("DP IFACE[,OPTION=VALUE...]...", ()),
    "set-if": ("DP IFACE[,OPTION=VALUE...]...", ()),
    "del-if": ("DP IFACE...", ()),
    "dump-dps": ("", ()),
    "show": ("[DP...]", ("stats",)),
    "dump-flows": ("[DP] [filter=FIELD=VALUE,...] [type=TYPE] [pmd=N]", ("more", "names")),
    "add-flow": ("[DP] FLOW ACTIONS", ("stats",)),
    "mod-flow": ("[DP] FLOW ACTIONS", ("stats", "clear", "may_create")),
    "get-flow": ("[DP] ufid:UFID", ("more", "names")),
    "del-flow": ("[DP] FLOW|ufid:UFID", ("stats",)),
    "add-flows": ("[DP] FILE", ("stats",)),
    "mod-flows": ("[DP] FILE", ("stats", "clear", "may_create")),
    "del-flows": ("[DP] [FILE]", ("stats",)),
    "cache-get-size": ("[DP]", ()),
    "cache-set-size": ("DP CACHE SIZE", ()),
    "list-commands": ("", ()),
    "parse-actions": ("ACTIONS...", ()),
    "normalize-actions": ("FLOW ACTIONS [NAME=NUMBER...]", ("more",)),
    "execute": ("[DP] [in_port=PORT] PACKET ACTIONS", ()),
    "coverage": ("[DP]", ()),
}

_DPCTL_EPILOG = """\
FLOW is datapath flow text, as dump-flows prints it:
  'in_port(1),eth(),eth_type(0x0800),ipv4(src=10.0.0.0/255.255.255.0,frag=no)'
optionally preceded by 'ufid:UUID,'.  ACTIONS is datapath action text: '2,3',
'set(ipv4(ttl=10)),push_vlan(vid=10,pcp=3),2', 'drop'.  For the flow commands
DP may be left out when there is exactly one datapath.

Without --in-memory the command goes to the daemon's control socket
(--unixctl, else $PYVSWITCH_UNIXCTL, else $PYVSWITCH_RUNDIR/pyvswitch.ctl).
"""


def _add_flag(p: argparse.ArgumentParser, name: str, dest_prefix: str) -> None:
    sup = argparse.SUPPRESS
    if name == "stats":
        p.add_argument(
            "-s",
            "--statistics",
            dest=dest_prefix + "stats",
            action="store_true",
            default=sup,
            help="print statistics (ports for show; a flow's for the flow commands)",
        )
    elif name == "more":
        p.add_argument(
            "-m",
            "--more",
            dest=dest_prefix + "more",
            action="count",
            default=sup,
            help="more verbose output (UFIDs, every field, port names)",
        )
    elif name == "names":
        g = p.add_mutually_exclusive_group()
        g.add_argument(
            "--names",
            dest=dest_prefix + "names",
            action="store_true",
            default=sup,
            help="print port names instead of numbers (default with -m)",
        )
        g.add_argument(
            "--no-names",
            dest=dest_prefix + "names",
            action="store_false",
            default=sup,
            help="print port numbers",
        )
    elif name == "clear":
        p.add_argument(
            "--clear",
            dest=dest_prefix + "clear",
            action="store_true",
            default=sup,
            help="reset the flow's statistics to zero",
        )
    elif name == "may_create":
        p.add_argument(
            "--may-create",
            dest=dest_prefix + "may_create",
            action="store_true",
            default=sup,
            help="create the flow if it does not exist",
        )


def _add_dpctl_parser(sub: Any) -> None:
    from .dpctl import COMMANDS_BY_NAME

    d = sub.add_parser(
        "dpctl",
        help="ovs-dpctl's commands: datapaths, ports, flows (via the daemon, or --in-memory)",
        description="Open vSwitch datapath management, as ovs-dpctl does it: the same "
        "commands, options and output.",
        epilog=_DPCTL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    conn = d.add_argument_group("where the datapaths are")
    where = conn.add_mutually_exclusive_group()
    where.add_argument(
        "--unixctl",
        metavar="PATH",
        help="the daemon's control socket (default: $PYVSWITCH_UNIXCTL, else "
        "$PYVSWITCH_RUNDIR/pyvswitch.ctl)",
    )
    where.add_argument(
        "--in-memory",
        action="store_true",
        help="no daemon: run on a fresh in-memory switch that lasts for this command "
        "(or --script); a missing port device is created as a veth pair to a host "
        "namespace of the same name",
    )
    conn.add_argument(
        "-t",
        "--timeout",
        type=float,
        metavar="SECS",
        help="give up after SECS seconds waiting for the daemon",
    )
    conn.add_argument(
        "--script",
        metavar="FILE",
        help="run the commands in FILE ('-' = stdin), one per line in shell syntax: a dpctl "
        "command ('add-flow FLOW ACTIONS', 'show -s') or a control-socket command "
        "('netdev-memory/ping h1 10.0.0.2 3'); '#' starts a comment; stops at the first "
        "failure",
    )
    g = d.add_argument_group("options for the command (may also follow it)")
    g.add_argument(
        "-s", "--statistics", dest="g_stats", action="store_true", help="print statistics"
    )
    g.add_argument(
        "-m", "--more", dest="g_more", action="count", default=0, help="more verbose output"
    )
    names = g.add_mutually_exclusive_group()
    names.add_argument(
        "--names",
        dest="g_names",
        action="store_true",
        default=None,
        help="port names instead of numbers (default with -m)",
    )
    names.add_argument("--no-names", dest="g_names", action="store_false", help="port numbers")
    g.add_argument("--clear", dest="g_clear", action="store_true", help="zero flow statistics")
    g.add_argument(
        "--may-create",
        dest="g_may_create",
        action="store_true",
        help="mod-flow creates the flow if it does not exist",
    )
    g.add_argument(
        "--read-only", dest="g_read_only", action="store_true", help="refuse read/write commands"
    )
    cmds = d.add_subparsers(
        dest="dpctl_command", metavar="COMMAND", parser_class=_Parser, required=False
    )
    for name, (usage, flags) in _DPCTL_CLI.items():
        c = COMMANDS_BY_NAME[name]
        sp = cmds.add_parser(
            name,
            help=c.help,
            description=f"{c.help} (ovs-dpctl {name}).",
            usage=f"pyvswitch dpctl {name} [-h]"
            + "".join(f" [{_FLAG_USAGE[f]}]" for f in flags)
            + (f" {usage}" if usage else ""),
        )
        for f in flags:
            _add_flag(sp, f, "c_")
        sp.add_argument("args", nargs="*", metavar="ARG", help=usage or argparse.SUPPRESS)
    m = cmds.add_parser(
        "monitor",
        help="print upcalls as the daemon's handlers receive them, until interrupted",
        description="Subscribe to the daemon's upcalls (dpctl/monitor) and print one line "
        "per upcall: 'TYPE@DP: miss upcall: KEY, packet_len:N'.  Only upcalls that reach a "
        "handler are seen (none with 'pyvswitch daemon --no-learning').",
        usage="pyvswitch dpctl monitor [-h] [-n COUNT] [DP]",
    )
    m.add_argument("dp", nargs="?", metavar="DP", help="only this datapath")
    m.add_argument(
        "-n", "--count", type=int, metavar="COUNT", help="exit after COUNT upcalls (default: never)"
    )


_FLAG_USAGE = {
    "stats": "-s",
    "more": "-m",
    "names": "--names|--no-names",
    "clear": "--clear",
    "may_create": "--may-create",
}


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="pyvswitch",
        description="The Open vSwitch datapath re-built in Python.",
    )
    p.add_argument("--version", action="version", version=f"pyvswitch {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser(
        "demo",
        help="run the in-memory demo: a switch, then a tunnel between two datapaths (no root)",
        description="Part 1: two hosts on one datapath in memory, a MAC-learning upcall "
        "handler, a ping, and the datapath shown the way ovs-dpctl does. Part 2: two "
        "datapaths joined by a tunnel (flows in OVS syntax), a ping across.",
    )
    d.add_argument("-c", "--count", type=int, default=3, help="pings to send (default 3)")
    d.add_argument(
        "--tunnel",
        default="vxlan",
        choices=("vxlan", "geneve", "gre", "gre64", "stt", "none"),
        help="tunnel type for part 2 (default vxlan; none skips part 2)",
    )

    from .daemon import add_arguments

    dm = sub.add_parser(
        "daemon",
        help="run the switch daemon (datapaths, upcall handlers, control socket)",
        description="Run the pyvswitch daemon: it owns the datapaths, runs a MAC-learning "
        "upcall handler per datapath and serves ovs-appctl's protocol on a control socket "
        "(dpctl/* commands; try 'pyvswitch appctl list-commands').  Runs in the foreground "
        "unless --detach; SIGTERM, SIGINT or 'exit' delete the datapaths and remove the "
        "socket and pidfile.",
    )
    add_arguments(dm)

    _add_dpctl_parser(sub)

    a = sub.add_parser(
        "appctl",
        help="send one command to the daemon's control socket (like ovs-appctl)",
        description="Send COMMAND with ARGs to the daemon's control socket and print the "
        "reply, as ovs-appctl does (exit status 2 when the daemon returns an error).",
        usage="pyvswitch appctl [-h] [-t PATH] [--timeout SECS] COMMAND [ARG...]",
    )
    a.add_argument(
        "-t",
        "--target",
        metavar="PATH",
        help="control socket (default: $PYVSWITCH_UNIXCTL, else $PYVSWITCH_RUNDIR/pyvswitch.ctl)",
    )
    a.add_argument("--timeout", type=float, metavar="SECS", help="give up after SECS seconds")
    a.add_argument("appctl_command", metavar="COMMAND", help="e.g. list-commands, dpctl/show")
    a.add_argument("appctl_args", nargs=argparse.REMAINDER, metavar="ARG")

    parse_pcap = _pcap_parser()
    if parse_pcap is not None:
        pp = sub.add_parser(
            "parse-pcap",
            help="print the flow key of every packet in a pcap file",
            description="Print one line per packet of a capture file: the flow key the "
            "datapath extracts from it, in OVS's datapath flow syntax (our counterpart of "
            "ovs-ofctl parse-pcap).",
        )
        pp.add_argument("file", metavar="FILE", help="a pcap or pcapng file (link type Ethernet)")
        pp.add_argument(
            "--in-port", type=int, default=0, metavar="N", help="input port (default 0)"
        )
    return p


def _pcap_parser() -> Callable[..., Any] | None:
    """``pyvswitch.pcap.parse_pcap_lines`` if that module exists."""
    try:
        mod = importlib.import_module("pyvswitch.pcap")
    except ImportError:
        return None
    fn = getattr(mod, "parse_pcap_lines", None)
    return fn if callable(fn) else None


# ---------------------------------------------------------------------------
# Executing dpctl commands


class _Executor(Protocol):
    def dpctl(self, argv: list[str], params: Any) -> str: ...

    def appctl(self, method: str, params: list[str]) -> str: ...

    def dp_names(self) -> list[str]: ...

    def close(self) -> None: ...


class _Remote:
    """Commands go to the daemon (``pyvswitch/dpctl`` keeps ovs-dpctl's
    argument rules; ``dpctl/CMD`` would count options)."""

    def __init__(self, path: str, timeout: float | None) -> None:
        from .unixctl import UnixctlClient, UnixctlConnectError

        try:
            self.client = UnixctlClient(path, timeout)
        except UnixctlConnectError as e:
            raise UnixctlConnectError(
                f"{e}; is 'pyvswitch daemon' running? (or use --in-memory)", errno=e.errno
            ) from e

    def dpctl(self, argv: list[str], params: Any) -> str:
        return self.client.transact("pyvswitch/dpctl", [*params.to_args(), *argv])

    def appctl(self, method: str, params: list[str]) -> str:
        return self.client.transact(method, params)

    def dp_names(self) -> list[str]:
        return self.client.transact("dpctl/dump-dps", []).split()

    def close(self) -> None:
        self.client.close()


class _Local:
    """Commands run on an in-memory switch in this process."""

    def __init__(self) -> None:
        from .daemon import MemoryBackend, Switch

        self.switch = Switch(MemoryBackend(), None)

    def dpctl(self, argv: list[str], params: Any) -> str:
        try:
            return self.switch.dpctl.run(argv, params)
        finally:
            self.switch.settle()

    def appctl(self, method: str, params: list[str]) -> str:
        from .daemon import run_command

        return run_command(self.switch, method, params)

    def dp_names(self) -> list[str]:
        return self.switch.dpctl.dump_dps().split()

    def close(self) -> None:
        self.switch.close()


def _read_input(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as e:
        raise PyvswitchError(f'Opening file "{path}" failed ({e.strerror})') from e


def _run_dpctl(ex: _Executor, name: str, args: list[str], params: Any) -> str:
    """One dpctl command; flow files are read here, like ovs-dpctl does."""
    from .dpctl import FLOWS_ADD, FLOWS_DEL, FLOWS_MOD, process_flow_lines

    if name in ("add-flows", "mod-flows", "del-flows"):
        names = set(ex.dp_names()) if args else set()

        def is_dp(a: str) -> bool:
            return a in names or any(n.split("@", 1)[1] == a for n in names)

        file_arg = None
        dp: str | None = None
        if len(args) == 2:
            dp, file_arg = args
        elif len(args) == 1 and not (name == "del-flows" and is_dp(args[0])):
            file_arg = args[0]
        if file_arg is not None:
            default = {"add-flows": FLOWS_ADD, "mod-flows": FLOWS_MOD}.get(name, FLOWS_DEL)
            return process_flow_lines(
                _read_input(file_arg),
                default,
                lambda argv: ex.dpctl(argv, params),
                dp=dp,
                source=file_arg,
            )
    return ex.dpctl([name, *args], params)


def _one_line(text: str) -> str:
    """An error reply as one line: ``pyvswitch: ...``."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    msg = "; ".join(lines) or "failed"
    return msg if msg.startswith("pyvswitch: ") else f"pyvswitch: {msg}"


def _error_text(e: PyvswitchError) -> str:
    from .dpctl import DpctlError
    from .unixctl import UnixctlServerError

    if isinstance(e, UnixctlServerError):
        return e.text
    if isinstance(e, DpctlError):
        return e.full_text()
    return str(e)


def _split_script_line(tokens: list[str]) -> tuple[list[str], list[str]]:
    opts = [t for t in tokens if t.startswith("-") and t != "-"]
    rest = [t for t in tokens if not (t.startswith("-") and t != "-")]
    return opts, rest


def _run_script(ex: _Executor, path: str, base: Any, out: Any) -> int:
    from .dpctl import DpctlParams, check_arg_count, parse_options

    text = _read_input(path)
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{path}:{number}"
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as e:
            sys.stderr.write(f"pyvswitch: {where}: {e}\n")
            return 1
        if not tokens:
            continue
        try:
            if "/" in tokens[0]:
                out.write(ex.appctl(tokens[0], tokens[1:]))
            elif tokens[0] == "monitor":
                raise PyvswitchError("monitor cannot run from a script")
            else:
                opts, rest = _split_script_line(tokens[1:])
                p = DpctlParams(**vars(base))
                p, _ = parse_options(opts, p)
                check_arg_count(tokens[0], len(rest))
                out.write(_run_dpctl(ex, tokens[0], rest, p))
            out.flush()
        except PyvswitchError as e:
            msg = _one_line(_error_text(e)).removeprefix("pyvswitch: ")
            sys.stderr.write(f"pyvswitch: {where}: {msg}\n")
            return 1
    return 0


def _params(args: argparse.Namespace) -> Any:
    from .dpctl import DpctlParams

    def get(name: str, default: Any) -> Any:
        return getattr(args, "c_" + name, default)

    names = get("names", None)
    if names is None:
        names = args.g_names
    return DpctlParams(
        is_appctl=False,
        print_statistics=bool(get("stats", False) or args.g_stats),
        zero_statistics=bool(get("clear", False) or args.g_clear),
        may_create=bool(get("may_create", False) or args.g_may_create),
        verbosity=int(get("more", 0) or 0) + args.g_more,
        names=names,
        read_only=args.g_read_only,
    )


def _socket_path(explicit: str | None) -> str:
    from .daemon import default_unixctl_path

    return explicit or os.environ.get("PYVSWITCH_UNIXCTL") or default_unixctl_path()


def _monitor(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .unixctl import UnixctlClient, UnixctlConnectError

    if args.in_memory:
        parser.error("monitor needs a running daemon (not --in-memory)")
    if args.count is not None and args.count < 1:
        parser.error("--count must be at least 1")
    path = _socket_path(args.unixctl)
    try:
        client = UnixctlClient(path, args.timeout)
    except UnixctlConnectError as e:
        raise UnixctlConnectError(f"{e}; is 'pyvswitch daemon' running?", errno=e.errno) from e
    with client:
        client.transact("dpctl/monitor", [args.dp] if args.dp else [])
        n = 0
        for method, params in client.notifications():
            if method != "dpctl/monitor":
                continue
            for line in params:
                sys.stdout.write(f"{line}\n")
            sys.stdout.flush()
            n += 1
            if args.count is not None and n >= args.count:
                break
    return 0


def _dpctl_main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .dpctl import check_arg_count

    name: str | None = args.dpctl_command
    if name == "monitor":
        return _monitor(args, parser)
    if args.timeout is not None and args.timeout <= 0:
        parser.error("--timeout must be positive")
    if name is None and args.script is None:
        parser.error("a COMMAND or --script is required (see 'pyvswitch dpctl --help')")
    if name is not None and args.script is not None:
        parser.error("give either a COMMAND or --script, not both")
    params = _params(args)
    cmd_args: list[str] = list(getattr(args, "args", []))
    if name is not None:
        try:
            check_arg_count(name, len(cmd_args))
        except PyvswitchError as e:
            parser.error(str(e))
    ex: _Executor
    if args.in_memory:
        ex = _Local()
    else:
        ex = _Remote(_socket_path(args.unixctl), args.timeout)
    try:
        if args.script is not None:
            return _run_script(ex, args.script, params, sys.stdout)
        assert name is not None
        sys.stdout.write(_run_dpctl(ex, name, cmd_args, params))
        return 0
    finally:
        ex.close()


def _appctl_main(args: argparse.Namespace) -> int:
    from .unixctl import UnixctlServerError, transact

    path = _socket_path(args.target)
    try:
        sys.stdout.write(transact(path, args.appctl_command, args.appctl_args, args.timeout))
    except UnixctlServerError as e:
        sys.stderr.write(_one_line(e.text) + "\n")
        return 2
    return 0


def _parse_pcap_main(args: argparse.Namespace) -> int:
    fn = _pcap_parser()
    assert fn is not None
    try:
        result = fn(args.file, args.in_port)
        lines: Iterable[str] = result.splitlines() if isinstance(result, str) else result
        for line in lines:  # a generator reads the file as it goes
            sys.stdout.write(f"{line}\n")
    except OSError as e:
        raise PyvswitchError(f"{args.file}: {e.strerror or e}") from e
    except ValueError as e:
        raise PyvswitchError(f"{args.file}: {e}") from e
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo

            if args.count < 1:
                parser.error("--count must be at least 1")
            return run_demo(count=args.count, tunnel=None if args.tunnel == "none" else args.tunnel)
        if args.command == "daemon":
            from .daemon import run_daemon

            return run_daemon(args)
        if args.command == "dpctl":
            return _dpctl_main(args, _subparser(parser, "dpctl", args.dpctl_command))
        if args.command == "appctl":
            return _appctl_main(args)
        if args.command == "parse-pcap":
            return _parse_pcap_main(args)
        parser.print_help()
        return 2
    except PyvswitchError as e:
        sys.stderr.write(_one_line(_error_text(e)) + "\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error of ours
        sys.stderr.close()
        return 0


def _subparser(parser: argparse.ArgumentParser, *path: str | None) -> argparse.ArgumentParser:
    """The parser of ``pyvswitch dpctl [COMMAND]`` (for usage errors)."""
    current = parser
    for name in path:
        if name is None:
            break
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction) and name in action.choices:
                current = action.choices[name]
                break
    return current


if __name__ == "__main__":
    sys.exit(main())
