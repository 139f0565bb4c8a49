"""Element-wise regression losses: the per-element formula and its derivative.

Each ``*_pointwise(x, y, params)`` returns ``(loss, dloss/dx)`` in float64 for one element
(given in the data's dtype), with ``e = x - y`` and ``params`` the tuple of the loss's
options. The kernels (``mse``, ``l1``, ``huber``, ``smooth_l1`` and their ``*_parallel``
twins) follow the signature in :mod:`lossjit.kernels._blocks`.

>>> import numpy as np
>>> from lossjit.kernels import mse
>>> x, y = np.array([1.5, 2.3, 0.8]), np.array([1.0, 2.0, 1.0])
>>> grad, none = np.empty(3), np.empty(0)
>>> round(mse(x, y, none, grad, none, 1 / 3) / 3, 6)
0.126667
"""

from __future__ import annotations

from lossjit._jit import jit
from lossjit.kernels._blocks import elementwise_kernels
from lossjit.kernels._stable import sign


@jit(inline=True)
def mse_pointwise(x, y, params):
    """e^2, d/dx = 2e."""
    e = float(x) - float(y)
    return e * e, 2.0 * e


@jit(inline=True)
def l1_pointwise(x, y, params):
    """|e|, d/dx = sign(e) (0 at e = 0)."""
    e = float(x) - float(y)
    return abs(e), sign(e)


@jit(inline=True)
def huber_pointwise(x, y, params):
    """0.5 e^2 if |e| < delta else delta (|e| - delta/2); d/dx = e or delta sign(e)."""
    delta = params[0]
    e = float(x) - float(y)
    a = abs(e)
    if a < delta:
        return 0.5 * e * e, e
    return delta * (a - 0.5 * delta), delta * sign(e)


@jit(inline=True)
def smooth_l1_pointwise(x, y, params):
    """0.5 e^2 / beta if |e| < beta else |e| - beta/2; d/dx = e/beta or sign(e)."""
    beta = params[0]
    e = float(x) - float(y)
    a = abs(e)
    if a < beta:
        return 0.5 * e * e / beta, e / beta
    return a - 0.5 * beta, sign(e)


mse, mse_parallel = elementwise_kernels("mse", mse_pointwise)
l1, l1_parallel = elementwise_kernels("l1", l1_pointwise)
huber, huber_parallel = elementwise_kernels("huber", huber_pointwise)
smooth_l1, smooth_l1_parallel = elementwise_kernels("smooth_l1", smooth_l1_pointwise)
