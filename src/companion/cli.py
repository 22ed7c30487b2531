"""Command line: ``companion params | train | sweep | reproduce | experiments | weights | store``.

A thin shell: each sub-command's arguments and behaviour live in the module that implements
it (``add_cli(subparsers)`` registers it), so the CLI and the notebooks call the same functions.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

#: sub-command -> module that defines ``add_cli(subparsers)``
COMMANDS = {
    "params": "companion.nn.params",
    "train": "companion.train.cli",
    "sweep": "companion.experiments.sweep",
    "reproduce": "companion.book.reproduce",
    "experiments": "companion.experiments.stages",
    "weights": "companion.book.export",
    "store": "companion.book.prune",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="companion",
        description="Companion to 'Towards Learning Convolutions from Scratch' (Neyshabur, 2020).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        try:
            mod = import_module(module)
        except ModuleNotFoundError as exc:  # a sub-command whose module is not written yet
            if exc.name != module:
                raise
            continue
        mod.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        # Bad input: one clear message, no traceback.
        print(f"companion {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
