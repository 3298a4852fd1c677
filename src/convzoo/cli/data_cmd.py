"""`convzoo data list` and `convzoo data show`: where each dataset is, and a look at its images."""
from __future__ import annotations

import argparse
import json

from ..errors import UserError
from ..render import text_table

__all__ = ["register"]

MAX_GRID = 1024


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="datasets: where they are found (list), a grid of samples (show)")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(p))
    data_sub.required = True
    q = data_sub.add_parser("list", help="every dataset: classes, sizes, where its files are or how to get them")
    q.add_argument("--data-dir", metavar="DIR", help="look in DIR only (as `train --data-dir DIR` would)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=run_list)
    q = data_sub.add_parser("show", help="write a labelled grid of sample images as a PNG")
    q.add_argument("name", help="a dataset name (see `convzoo data list`)")
    q.add_argument("--out", required=True, metavar="PNG", help="the PNG file to write")
    q.add_argument("--split", choices=("train", "test"), default="train", help="which split (default: train)")
    q.add_argument("--n", type=int, default=64, help=f"how many images, 1..{MAX_GRID} (default: 64)")
    q.add_argument("--seed", type=int, default=0, help="which images (default: 0)")
    q.add_argument("--data-dir", metavar="DIR", help="the dataset's files (required for imagefolder)")
    q.add_argument("--no-verify", action="store_true", help="accept files whose checksums are not the official ones")
    q.set_defaults(func=run_show)


def run_list(args: argparse.Namespace) -> None:
    from ..data import data_status

    rows = data_status(args.data_dir)
    if args.json:
        print(json.dumps(rows, indent=1))
        return

    def count(n: int | None) -> str:
        return "-" if n is None else f"{n:,}"

    print(text_table(["name", "classes", "train", "test", "where"],
                     [[r["name"], count(r["classes"]), count(r["train"]), count(r["test"]), r["where"]] for r in rows],
                     right=[False, True, True, True, False]))
    hints = [f"  {r['name']}: {r['hint']}" for r in rows if r["hint"]]
    if hints:
        print("\nto get the missing ones:\n" + "\n".join(hints))


def run_show(args: argparse.Namespace) -> None:
    from ..data import load_dataset, save_grid

    if not 1 <= args.n <= MAX_GRID:
        raise UserError(f"--n {args.n} is out of range; ask for 1 to {MAX_GRID} images")
    ds = load_dataset(args.name, data_dir=args.data_dir, verify=not args.no_verify,
                      in_memory=False if args.name == "imagefolder" else None)  # decode only the images shown
    out = save_grid(ds, args.out, split=args.split, n=args.n, seed=args.seed)
    print(f"wrote {out}: {min(args.n, len(ds.train if args.split == 'train' else ds.test))} {args.split} images "
          f"of {ds.name} from {ds.source}")
