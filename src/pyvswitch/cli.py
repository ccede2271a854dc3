"""The ``pyvswitch`` command line.

Every failure exits non-zero with one clear line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .errors import PyvswitchError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line on stderr, exit status 2."""
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="pyvswitch",
        description="The Open vSwitch datapath re-built in Python.",
    )
    p.add_argument("--version", action="version", version=f"pyvswitch {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser(
        "demo",
        help="run the in-memory demo: two hosts, one datapath, a ping (no root)",
        description="Build two hosts on one datapath in memory, ping, and show the "
        "datapath the way ovs-dpctl does.",
    )
    d.add_argument("-c", "--count", type=int, default=3, help="pings to send (default 3)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo

            if args.count < 1:
                parser.error("--count must be at least 1")
            return run_demo(count=args.count)
        parser.print_help()
        return 2
    except PyvswitchError as e:
        sys.stderr.write(f"pyvswitch: {e}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
