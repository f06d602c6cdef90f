"""Regenerate completions/ from the CLI (``--check`` fails when they are stale)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import typer

from pushctl.cli.app import app
from pushctl.cli.completion_gen import generate

OUT = Path(__file__).resolve().parent.parent / "completions"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if completions/ is stale")
    args = parser.parse_args()
    scripts = generate(typer.main.get_command(app))
    stale = [
        name
        for name, text in scripts.items()
        if not (OUT / name).exists() or (OUT / name).read_text() != text
    ]
    if args.check:
        if stale:
            print(
                f"stale completions: {', '.join(stale)}; run python scripts/gen_completions.py",
                file=sys.stderr,
            )
            return 1
        return 0
    OUT.mkdir(exist_ok=True)
    for name, text in scripts.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(scripts)} completion scripts to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
