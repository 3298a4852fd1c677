"""The `convzoo` command: argparse subcommands, each a thin call into the library.

Exit codes: 0 success; 2 a usage error or bad input (one line on stderr naming the problem and the
fix); 1 an unexpected failure (with its traceback); 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..errors import UserError
from . import bench_cmd, data_cmd, inspect_cmd, models_cmd, tables_cmd, train_cmd

__all__ = ["main"]

# Each command module exposes `register(subparsers)`, which adds its parsers with `func=` defaults.
COMMANDS = (models_cmd, inspect_cmd, tables_cmd, data_cmd, train_cmd, bench_cmd)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the problem and where to look), exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="convzoo", description=__doc__.splitlines()[0])
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"convzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as err:
        sys.stderr.write(f"convzoo: error: {err}\n")
        return 2
    except KeyboardInterrupt as err:  # a run's own message says what is saved and how to resume
        sys.stderr.write(f"convzoo: {err or 'interrupted'}\n")
        return 130
    except BrokenPipeError:  # `convzoo list | head`
        sys.stderr.close()
        return 0
    return 0
