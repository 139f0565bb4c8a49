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


def show(text: object, limit: int = 60) -> str:
    """A path or token quoted for a one-line message: control characters escaped, long ones
    cut.

    >>> show("a\\nb"), show("x" * 10, limit=6)
    ("'a\\\\nb'", "'xxx...'")
    """
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__
