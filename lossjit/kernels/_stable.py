"""Numerically stable scalar helpers shared by the kernels (float64 in, float64 out).

>>> from lossjit.kernels._stable import softplus
>>> round(softplus(0.0), 6)
0.693147
"""

from __future__ import annotations

import math

from lossjit._jit import jit


@jit
def softplus(x: float) -> float:
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)); finite for every finite x."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@jit
def sigmoid(x: float) -> float:
    """1 / (1 + exp(-x)), evaluated so that neither tail overflows."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@jit
def sign(x: float) -> float:
    """-1, 0 or 1 (0 at x = 0, NaN for NaN), as torch.sign."""
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return x
