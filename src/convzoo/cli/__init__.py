"""The `convzoo` command: argparse subcommands, each a thin call into the library.

Exit codes: 0 success; 2 a usage error or bad input (one line on stderr naming the problem and the
fix); 1 an unexpected failure (with its traceback); 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from ..errors import PeerFailed, UserError

__all__ = ["main"]


def _commands() -> tuple[ModuleType, ...]:
    """The command modules. Each exposes `register(subparsers)`, which adds its parsers with `func=` defaults.
    They are imported when the full parser is built, not with this package: `convzoo predict FILE.onnx` (see
    `main`) must run without torch."""
    from . import bench_cmd, compress_cmd, data_cmd, export_cmd, inspect_cmd, models_cmd, tables_cmd, train_cmd

    return (models_cmd, inspect_cmd, tables_cmd, data_cmd, train_cmd, bench_cmd, compress_cmd, export_cmd)


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
    for module in _commands():
        module.register(sub)
    return parser


def _echo(err: UserError) -> bool:
    """Under torchrun, the same bad input fails on every rank: rank 0 says it; the other ranks speak only of
    their own failures (a lost peer)."""
    import os

    return isinstance(err, PeerFailed) or os.environ.get("RANK", "0") == "0"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from .export_cmd import parse_onnx_predict  # a deployment's `predict FILE.onnx`: parsed alone, no torch

    args = parse_onnx_predict(argv) or build_parser().parse_args(argv)
    args.argv = argv  # `train --nproc` starts torchrun with the same arguments
    try:
        args.func(args)
    except UserError as err:
        if _echo(err):
            sys.stderr.write(f"convzoo: error: {err}\n")
        return 2
    except KeyboardInterrupt as err:  # a run's own message says what is saved and how to resume
        sys.stderr.write(f"convzoo: {err or 'interrupted'}\n")
        return 130
    except BrokenPipeError:  # `convzoo list | head`
        sys.stderr.close()
        return 0
    return 0
