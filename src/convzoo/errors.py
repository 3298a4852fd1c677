"""The one exception type for mistakes a user can fix.

A `UserError` message names the offending value, says why it is wrong and what to do instead, on one
line. The command line prints it as ``convzoo: error: <message>`` and exits with status 2.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["PeerFailed", "UserError", "closest"]


class UserError(ValueError):
    """Bad input from the user: unknown name, impossible input size, missing data, bad checkpoint."""


class PeerFailed(UserError):
    """Training on several processes: another process of the job ended, or could not be reached in time."""


def closest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The registered spellings nearest to `word`, best first (for "did you mean" hints)."""
    choices = list(choices)
    found = difflib.get_close_matches(word, choices, n=n, cutoff=0.5)
    if not found:  # a prefix ("vgg") or a fragment ("resnext") still deserves a hint
        found = [c for c in choices if word.lower() in c][:n]
    return found
