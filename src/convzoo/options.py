"""Checks for the options a network is built with: each returns the value, or raises one `UserError` line.

Every message reads ``<Owner>: <option> must be <what is allowed>, got <value!r>[; <note>]``, where the owner
is the network class ("AlexNet: conv1_padding must be an integer from 0 to 5, got -3; ...") and the note says
what the paper uses. Values arrive from Python or from ``convzoo ... --set KEY=VALUE``, which reads them with
`ast.literal_eval` (so a mistyped ``--set conv1_padding=abc`` arrives as the string ``'abc'``): the checks
test the type as well as the range, and a bool is never taken for a number.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from torch import nn

from .errors import UserError

__all__ = ["check_bool", "check_choice", "check_float", "check_int", "check_layer", "check_probability"]

T = TypeVar("T")


def _fail(owner: str, name: str, allowed: str, value: object, note: str | None, verb: str = "must be") -> UserError:
    return UserError(f"{owner}: {name} {verb} {allowed}, got {value!r}" + (f"; {note}" if note else ""))


def check_int(owner: str, name: str, value: object, *, minimum: int | None = None, maximum: int | None = None,
              note: str | None = None) -> int:
    """`value` as an int in [minimum, maximum] (either bound may be None: unbounded on that side)."""
    if minimum is not None and maximum is not None:
        allowed = f"an integer from {minimum} to {maximum}"
    elif minimum == 1:
        allowed = "a positive integer"
    elif minimum == 0:
        allowed = "a non-negative integer"
    elif minimum is not None:
        allowed = f"an integer ≥ {minimum}"
    else:
        allowed = "an integer" if maximum is None else f"an integer ≤ {maximum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _fail(owner, name, allowed, value, note)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise _fail(owner, name, allowed, value, note)
    return int(value)


def check_float(owner: str, name: str, value: object, *, minimum: float | None = None, maximum: float | None = None,
                min_open: bool = False, max_open: bool = False, note: str | None = None) -> float:
    """`value` (an int or a float, finite) as a float within the bounds; ``*_open`` excludes that bound."""
    if minimum == 0 and min_open and maximum is None:
        allowed = "a positive number"
    elif minimum is not None and maximum is not None:
        allowed = f"a number in {'(' if min_open else '['}{minimum}, {maximum}{')' if max_open else ']'}"
    elif minimum is not None:
        allowed = f"a number {'>' if min_open else '≥'} {minimum}"
    else:
        allowed = "a finite number" if maximum is None else f"a number {'<' if max_open else '≤'} {maximum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise _fail(owner, name, allowed, value, note)
    low_ok = minimum is None or (value > minimum if min_open else value >= minimum)
    high_ok = maximum is None or (value < maximum if max_open else value <= maximum)
    if not (low_ok and high_ok):
        raise _fail(owner, name, allowed, value, note)
    return float(value)


def check_probability(owner: str, name: str, value: object, note: str | None = None) -> float:
    """A dropout rate: a number in [0, 1) (1 would drop everything)."""
    try:
        return check_float(owner, name, value, minimum=0, maximum=1, max_open=True)
    except UserError:
        raise _fail(owner, name, "a probability in [0, 1)", value, note, verb="is") from None


def check_bool(owner: str, name: str, value: object, note: str | None = None) -> bool:
    """True or False, nothing else: not 1, not "yes" (``--set aux_logits=True`` spells it)."""
    if not isinstance(value, bool):
        raise _fail(owner, name, "True or False", value, note)
    return value


def _same_kind(value: object, choice: object) -> bool:
    """Whether `value` may stand for `choice`: 1 for 1.0, but not 3.0 for 3, nor True for 1."""
    if isinstance(value, bool) or isinstance(choice, bool):
        return type(value) is type(choice)
    if isinstance(choice, numbers.Integral):
        return isinstance(value, numbers.Integral)
    if isinstance(choice, numbers.Real):
        return isinstance(value, numbers.Real)
    return type(value) is type(choice)


def check_choice(owner: str, name: str, value: object, choices: Sequence[T], note: str | None = None) -> T:
    """The member of `choices` equal to `value` (of the same kind); the choices are listed when none is."""
    for choice in choices:
        if _same_kind(value, choice) and value == choice:
            return choice
    shown = [repr(c) for c in choices]
    allowed = " or ".join(shown) if len(shown) <= 2 else f"one of {', '.join(shown[:-1])} or {shown[-1]}"
    raise _fail(owner, name, allowed, value, note)


def check_layer(owner: str, name: str, value: object, example: str) -> Callable[[], nn.Module]:
    """A layer factory: a class or callable that makes an `nn.Module` when called with no arguments (an
    activation such as nn.ReLU). It is called once to check; layer constructors have no side effects."""
    made: Any = None
    if callable(value) and not isinstance(value, (nn.Module, str)):
        try:
            made = value()
        except TypeError:  # it needs arguments: not a layer factory
            made = None
    if not isinstance(made, nn.Module):
        raise _fail(owner, name, f"a layer class or a callable that makes one with no arguments, e.g. {example}",
                    value, "the command line cannot pass one: build the network in Python")
    return value  # type: ignore[return-value]
