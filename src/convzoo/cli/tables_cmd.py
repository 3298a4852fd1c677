"""`convzoo table FAMILY`: the paper's own tables, side by side with ours and the difference."""
from __future__ import annotations

import argparse

from .. import tables

__all__ = ["register", "run_table"]

_RENDER = {"table": tables.to_text, "md": tables.to_markdown, "csv": tables.to_csv, "json": tables.to_json}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("table", help="a paper's own tables reproduced: its figures, ours, and the difference",
                       description="The paper's own tables (e.g. MobileNet v1's Tables 6 and 7), each printed figure "
                                   "next to ours and the difference, with a note on every figure the paper's own "
                                   f"architecture cannot reproduce. Families: {', '.join(tables.families())}.")
    p.add_argument("family", metavar="FAMILY", help="a family with a paper table (a registered model name stands "
                                                    "for its family)")
    p.add_argument("--format", choices=tuple(_RENDER), default="table")
    p.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")
    p.set_defaults(func=run_table)


def run_table(args: argparse.Namespace) -> None:
    print(_RENDER[args.format](tables.compare_family(args.family)).rstrip("\n"))
