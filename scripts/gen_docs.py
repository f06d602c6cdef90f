"""Regenerate what is generated from the CLI: completions/, the README's CLI reference and its
exit-code table (from the ExitCode enum).

``--check`` changes nothing and fails when either is stale (a test runs the same check).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import typer

from pushctl.cli.app import app
from pushctl.cli.completion_gen import generate
from pushctl.cli.reference_gen import replace_exit_codes, replace_reference

ROOT = Path(__file__).resolve().parent.parent
COMPLETIONS = ROOT / "completions"
README = ROOT / "README.md"


def wanted() -> dict[Path, str]:
    """Every generated file and the text it must hold."""
    files = {COMPLETIONS / name: text for name, text in generate(typer.main.get_command(app)).items()}
    files[README] = replace_exit_codes(replace_reference(README.read_text(), app))
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if anything generated is stale")
    args = parser.parse_args()
    files = wanted()
    stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run python scripts/gen_docs.py)", file=sys.stderr)
        return 1 if stale else 0
    COMPLETIONS.mkdir(exist_ok=True)
    for path in stale:
        path.write_text(files[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
