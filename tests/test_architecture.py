"""Keep the documented architecture true: the README example runs, and the
sans-I/O core imports nothing from a backend."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "src" / "pyvswitch"


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def test_readme_library_example_runs(capsys) -> None:  # type: ignore[no-untyped-def]
    blocks = _python_blocks((ROOT / "README.md").read_text())
    assert blocks, "the README has a Python example"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("3 DpStats(n_hit=8, n_missed=0, n_lost=0")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            names.add("." * node.level + mod)
    return names


def test_core_imports_nothing_from_backends() -> None:
    # modules that wire a backend in on purpose (the product around the core)
    product = {"demo.py", "daemon.py", "cli.py"}
    offenders = []
    for path in sorted(CORE.glob("*.py")):
        if path.name in product:
            continue
        for name in _imports(path):
            if "backends" in name:
                offenders.append(f"{path.name}: {name}")
    assert offenders == []


_OPENERS = {"socket", "socketpair", "create_connection", "create_server", "fromfd", "open"}


def _socket_calls(path: Path) -> list[str]:
    """Calls that open sockets or files: socket.socket(...), open(...), ..."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            if (
                isinstance(f, ast.Attribute)
                and f.attr in _OPENERS
                and isinstance(f.value, ast.Name)
            ):
                if f.value.id in ("socket", "os"):
                    found.append(f"{f.value.id}.{f.attr}")
            elif isinstance(f, ast.Name) and f.id in ("open", "socket"):
                found.append(f.id)
    return found


def test_core_never_opens_sockets_or_files() -> None:
    # the product around the core: daemon, CLI, control socket, event loop,
    # capture files
    product = {
        "demo.py",
        "daemon.py",
        "cli.py",
        "dpctl.py",
        "unixctl.py",
        "eventloop.py",
        "pcap.py",
    }
    offenders = {
        path.name: calls
        for path in sorted(CORE.glob("*.py"))
        if path.name not in product and (calls := _socket_calls(path))
    }
    assert offenders == {}
