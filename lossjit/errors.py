"""The exceptions lossjit raises for bad input.

Every message names the argument, what it got and what was expected, so the CLI can print it
as one line and exit 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


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


class Interrupted(BaseException):
    """A signal that ends the run (SIGINT, SIGTERM, SIGHUP): unwinds it like an exception, so
    every temporary file is removed; the CLI then exits 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: The signal that interrupted the run, once one has (see :func:`interrupt`).
received: int | None = None


#: How many :func:`deferred` blocks are running (a signal then only is remembered).
_deferring = 0


def interrupt(signum: int, frame: object) -> None:
    """The CLI's signal handler: remember the signal and raise :class:`Interrupted`. An
    exception raised while a C library calls back into Python (Numba's compiler does) is
    dropped there, so :func:`check_interrupted` raises it again where lossjit next looks.
    Inside :func:`deferred`, the signal is only remembered."""
    global received
    received = signum
    if not _deferring:
        raise Interrupted(signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Let a signal stop the run only once the block is done: for work that other threads
    finish on their own (zarr writes its chunks from its I/O thread), so that nothing is
    written into a temporary after it is removed."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
    check_interrupted()


def check_interrupted() -> None:
    """Raise :class:`Interrupted` if a signal came (before an output is committed, between
    the pieces of a streamed run)."""
    if received is not None:
        raise Interrupted(received)
