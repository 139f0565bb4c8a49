"""What the reader and writer tests share: bit equality and one-line error messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lossjit.errors import LossjitError


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape and bytes (so -0.0 != 0.0 and NaN == NaN of the same payload)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def error(func, *args, **kwargs) -> str:
    """Call func, expect a one-line LossjitError, and return its message."""
    with pytest.raises(LossjitError) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    return message


def check(message: str, what: str, path, *phrases: str) -> None:
    """``message`` names ``what`` first, then ``path``, and holds every phrase."""
    assert message.startswith(f"{what}: "), message
    assert str(path) in message, message
    for phrase in phrases:
        assert phrase in message, (phrase, message)


def new_imports(module: str) -> list[str]:
    """The top-level packages other than the standard library, NumPy and lossjit that
    importing ``module`` brings in (in a fresh interpreter)."""
    code = ("import sys, lossjit.errors\n"
            "before = set(sys.modules)\n"
            f"import {module}\n"
            "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
            "allowed = set(sys.stdlib_module_names) | {'numpy', 'lossjit'}\n"
            "print(' '.join(sorted(new - allowed)))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()
