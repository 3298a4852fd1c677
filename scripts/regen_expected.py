"""Rewrite the pinned figures in tests/expected/models/<family>.json from the current code.

    python scripts/regen_expected.py            # every family
    python scripts/regen_expected.py vgg resnet # some families

The figures (parameters, MACs at the paper input, per-stage output shapes) are computed on the meta
device in seconds. Review the diff against the papers before committing it: the diff is the review.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import convzoo

EXPECTED = Path(__file__).resolve().parent.parent / "tests" / "expected" / "models"


def dumps(obj: object) -> str:
    """JSON with one figure per line and shapes kept on one line, for readable diffs."""
    text = json.dumps(obj, indent=1)
    return re.sub(r"\[\s*([-\d,\s]+?)\s*\]", lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",")
                  + "]", text) + "\n"


def family_figures(family: str) -> dict[str, dict]:
    return {name: convzoo.figures(name) for name in convzoo.list_models(family=family)}


def main(argv: list[str]) -> int:
    families = argv or convzoo.list_families()
    unknown = sorted(set(families) - set(convzoo.list_families()))
    if unknown:
        print(f"unknown families {unknown}; known: {convzoo.list_families()}", file=sys.stderr)
        return 2
    EXPECTED.mkdir(parents=True, exist_ok=True)
    for family in families:
        path = EXPECTED / f"{family}.json"
        path.write_text(dumps(family_figures(family)))
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
