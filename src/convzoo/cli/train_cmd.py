"""`convzoo train`, `convzoo eval`, `convzoo predict` and `convzoo recipes`: thin over `convzoo.training`."""
from __future__ import annotations

import argparse
import json
from dataclasses import fields
from typing import Any

from ..errors import UserError
from ..render import text_table
from ..training import RECIPES, TrainConfig, evaluate_run, predict, resume, train
from ..training.config import add_arguments, explicit_overrides
from ..training.recipes import D2L, D2L_LENET, FAST, FAST_EXCEPTIONS, PAPER, Recipe
from .export_cmd import add_predict_arguments, print_predictions, run_onnx_predict
from .inspect_cmd import build_options

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a network on real data (Fashion-MNIST by default)",
                       description="Train a registered network. Settings: the recipe's, then the flags given.")
    p.add_argument("name", nargs="?", help=f"a registered name (default {TrainConfig.model})")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last finished epoch")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a builder option, e.g. dropout=0.3 (repeatable)")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train on N processes of this machine (starts torchrun; one per GPU on CUDA)")
    add_arguments(p)
    p.set_defaults(func=run_train)

    p = sub.add_parser("eval", help="top-1/top-5, per-class accuracy and the confusion matrix of a trained network")
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("--dataset", help="evaluate on this dataset (default: the one it was trained on)")
    p.add_argument("--data-dir", metavar="DIR")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="skip the checksum verification")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), help="autocast precision (default: the run's)")
    p.add_argument("--confusion", metavar="PNG", help="also draw the confusion matrix to this file")
    p.add_argument("--tta", action="append", metavar="PROTOCOL[,...]",
                   help="test-time protocols, one row each: none (or centre), flip, 10crop, dense, multicrop, "
                        "144crop (comma-separated or repeated; docs/evaluation.md)")
    p.add_argument("--scales", metavar="Q1,Q2,...",
                   help="with --tta dense/multicrop: shorter sides to rescale to (default the paper's × S/224)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_eval)

    p = sub.add_parser("predict", help="the top-5 classes of image files under a trained network or its ONNX export")
    add_predict_arguments(p)  # one definition with the torch-free parse of `predict FILE.onnx` (export_cmd)
    p.set_defaults(func=run_predict)

    p = sub.add_parser("recipes", help="the training recipes and their settings, per network family")
    p.add_argument("--family", help="only this family's paper recipe")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_recipes)


def run_train(args: argparse.Namespace) -> None:
    if args.nproc is not None:
        from ..training.launch import launch_local

        launch_local(args.nproc, without_nproc(getattr(args, "argv", [])))
        return
    given = explicit_overrides(args)
    if args.resume:
        extra = sorted(set(given) - {"epochs", "time_budget", "quiet"}) + (["NAME"] if args.name else []) + \
            (["--set"] if args.set else [])
        if extra:
            raise UserError(f"--resume continues a run with its own settings; leave out {', '.join(extra)} (only "
                            "--epochs or --time-budget, to extend it, and --quiet are allowed)")
        resume(args.resume, epochs=given.get("epochs"), time_budget=given.get("time_budget"), quiet=given.get("quiet"))
        return
    # --in-chans is a training flag here (it also converts the data); only --set goes to the builder
    options = build_options(argparse.Namespace(in_chans=None, num_classes=None, set=args.set))
    train(**({"model": args.name} if args.name else {}), **given, **({"options": options} if options else {}))


def without_nproc(argv: list[str]) -> list[str]:
    """The command line of `convzoo train`, less its --nproc (what each process runs)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def run_eval(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be 1 or more, got {args.batch_size}")
    if args.tta or args.scales:
        run_tta(args)
        return
    trained, ev = evaluate_run(args.source, dataset=args.dataset, data_dir=args.data_dir, verify=args.verify,
                               split=args.split, device=args.device, batch_size=args.batch_size, amp=args.amp)
    classes = trained.classes
    if args.confusion:
        from ..training.plots import plot_confusion

        plot_confusion(ev.confusion, classes, args.confusion, f"{trained.meta['model']}: {100 * ev.top1:.2f} %")
    record = {"checkpoint": str(trained.path), "model": trained.meta["model"], "split": args.split,
              "top1": ev.top1, "top5": ev.top5, "loss": ev.loss,
              "per_class": dict(zip(classes, ev.per_class)), "confusion": ev.confusion.tolist()}
    if args.json:
        print(json.dumps(record, indent=1))
        return
    precision = args.amp or trained.meta.get("amp", "none")
    print(f"{trained.meta['model']} ({trained.path}) on the {args.split} split"
          f"{'' if precision == 'none' else ', ' + precision + ' autocast'}: top-1 {100 * ev.top1:.2f} %, "
          f"top-5 {100 * ev.top5:.2f} %, loss {ev.loss:.4f}")
    print(text_table(["class", "accuracy"], [[c, f"{100 * a:.1f} %"] for c, a in zip(classes, ev.per_class)],
                     right=[False, True]))
    short = [c[:7] for c in classes]
    rows = [[short[i], *[str(v) for v in row]] for i, row in enumerate(ev.confusion.tolist())]
    print("confusion (rows: true class, columns: predicted):")
    print(text_table(["", *short], rows, right=[False, *[True] * len(classes)]))
    if args.confusion:
        print(f"confusion matrix drawn to {args.confusion}")


def run_tta(args: argparse.Namespace) -> None:
    """`convzoo eval RUN --tta ...`: one row per protocol, its accuracy and its cost (convzoo.deploy.tta)."""
    from ..deploy.tta import evaluate_protocols
    from ..render import fmt_si

    if not args.tta:
        raise UserError("--scales sets the scales of a test-time protocol; add --tta dense or --tta multicrop")
    if args.confusion:
        raise UserError("--confusion draws the plain evaluation's matrix; leave it out with --tta, or run without")
    report = evaluate_protocols(args.source, args.tta, scales=args.scales, dataset=args.dataset,
                                data_dir=args.data_dir, verify=args.verify, split=args.split, device=args.device,
                                batch_size=args.batch_size, amp=args.amp)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
        return
    precision = "" if report.amp == "none" else f", {report.amp} autocast"
    print(f"{report.model} ({report.checkpoint}) on the {report.dataset} {report.split} split, "
          f"{report.results[0].images:,} images{precision}; MACs: conv + fc multiply-accumulates")
    rows = [[r.protocol, ",".join(map(str, r.scales)), r.evaluations, fmt_si(r.macs_per_image),
             f"{100 * r.top1:.2f} %", f"{100 * r.top5:.2f} %", f"{r.seconds:.1f}"] for r in report.results]
    print(text_table(["protocol", "scales", "evals/image", "MACs/image", "top-1", "top-5", "seconds"], rows,
                     right=[False, False, True, True, True, True, True]))
    for note in report.notes:
        print(f"note: {note}")


def run_predict(args: argparse.Namespace) -> None:
    if args.top < 1:
        raise UserError(f"--top must be 1 or more, got {args.top}")
    if str(args.source).lower().endswith(".onnx"):  # an exported file: onnxruntime alone (deploy.onnx_predict)
        run_onnx_predict(args)
        return
    print_predictions(predict(args.source, args.images, top=args.top, device=args.device), args.json)


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def recipe_rows(family: str | None = None) -> list[dict[str, Any]]:
    rows = []
    if family is None:
        rows += [{"recipe": "fast", "family": "all", **_row(FAST)}]
        rows += [{"recipe": "fast", "family": who, **_row(Recipe(settings, why))}
                 for who, (settings, why) in FAST_EXCEPTIONS.items()]
        rows += [{"recipe": "d2l", "family": "lenet", **_row(D2L_LENET)},
                 {"recipe": "d2l", "family": "all others", **_row(D2L)}]
    families = [family] if family else sorted(PAPER)
    for f in families:
        if f not in PAPER:
            raise UserError(f"unknown family {f!r}; families: {', '.join(sorted(PAPER))}")
        rows.append({"recipe": "paper", "family": f, **_row(PAPER[f])})
    return rows


def _row(r: Any) -> dict[str, Any]:
    return {"settings": dict(r.settings), "builder_options": dict(r.options), "source": r.source,
            "guesses": list(r.guesses)}


def run_recipes(args: argparse.Namespace) -> None:
    rows = recipe_rows(args.family)
    if args.json:
        print(json.dumps(rows, indent=1, default=list))
        return
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    print(f"recipes: {', '.join(RECIPES)} (default {defaults['recipe']}); flags override any setting")
    for r in rows:
        opts = f"; builder: {_settings_text(r['builder_options'])}" if r["builder_options"] else ""
        print(f"\n{r['recipe']} [{r['family']}]: {_settings_text(r['settings'])}{opts}")
        print(f"  from: {r['source']}")
        for g in r["guesses"]:
            print(f"  guess: {g}")
