"""The layout holds: rooms with faces, arrows downward (import-linter), no cycles, a lazy CLI."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import click
import grimp
import pytest
import typer

from pushctl.cli.app import app
from pushctl.cli.commands import COMMANDS, load_command

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "pushctl"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_at_most_eight_top_level_modules() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top


@pytest.mark.parametrize("init", sorted(PACKAGE.glob("*/__init__.py")), ids=lambda p: p.parent.name)
def test_every_room_has_a_face_with_a_docstring(init: Path) -> None:
    tree = ast.parse(init.read_text())
    doc = ast.get_docstring(tree)
    assert doc and len(doc.split()) >= 8, f"{init.parent.name}/__init__.py: say what the room is for"


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_between_any_two_modules() -> None:
    assert _cycles(grimp.build_graph("pushctl", cache_dir=None)) == []


def test_cycle_finder_finds_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "loopy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from loopy import b\n")
    (pkg / "b.py").write_text("from loopy import c\n")
    (pkg / "c.py").write_text("from loopy import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _cycles(grimp.build_graph("loopy", cache_dir=None)) == [["loopy.a", "loopy.b", "loopy.c"]]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(REPO / "pyproject.toml")],
        cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )


def test_contracts_are_kept() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # an arrow pointing up: the transport learns about the send engine
        ("transport/tls.py", "from pushctl.delivery import Summary", "Rooms import only the rooms below"),
        # the CLI reaching behind a face
        ("cli/state.py", "from pushctl.journal.store import Journal", "journal/ through its face"),
        # the emulator borrowing pushctl's client side
        ("emulator/inbox.py", "from pushctl.message import Template", "The emulator stands alone"),
        # two shared bases importing each other
        ("runtime.py", "import pushctl.outcome", "No import cycles"),
    ],
)
def test_each_contract_fails_when_broken(tmp_path: Path, module: str, line: str, broken: str) -> None:
    copy = tmp_path / "pushctl"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "data"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    if module == "runtime.py":
        outcome = copy / "outcome.py"
        outcome.write_text(outcome.read_text() + "\nimport pushctl.runtime  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    broken_lines = [ln for ln in result.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(broken in ln for ln in broken_lines), result.stdout


def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['pushctl', '--help']\n"
        "from pushctl.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('h2', 'hpack', 'cryptography', 'jinja2', 'yaml', 'pushctl.emulator', 'pushctl.delivery')\n"
        "sys.stderr.write(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy\n"
        "    or m.startswith(heavy))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Commands:" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_table_matches_each_command(name: str) -> None:
    command = load_command(name)
    assert (command.help or "").split("\n\n")[0].strip() == COMMANDS[name].summary


def test_unknown_command_is_a_usage_error() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    assert group.get_command(click.Context(group), "sned") is None
