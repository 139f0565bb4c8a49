"""The exceptions lossjit raises for bad input.

Every message names the argument, what it got and what was expected, so the CLI can print it
as one line and exit 1.
"""

from __future__ import annotations


class LossjitError(ValueError):
    """Bad input to a loss: an argument's shape, dtype or value is not what the loss accepts.

    >>> raise LossjitError("targets: shape (3,) does not match predictions (4,)")
    Traceback (most recent call last):
    ...
    lossjit.errors.LossjitError: targets: shape (3,) does not match predictions (4,)
    """


class UsageError(LossjitError):
    """A call that lacks an argument it needs (the CLI's usage error, exit 2)."""


class UnknownLossError(LossjitError, KeyError):
    """A loss name that is neither a registered name nor an alias."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
