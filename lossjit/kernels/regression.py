"""Regression and likelihood losses: the per-element formula and its derivatives.

Each ``*_pointwise(x, y, params)`` returns ``(loss, dloss/dx, d2loss/dx2)`` in float64 for one
element (given in the data's dtype), with ``e = x - y`` and ``params`` the tuple of the loss's
options. Each loss's kernels are one :class:`~lossjit.kernels._blocks.KernelSet` (``mse``,
``l1``, ...; all of them write the Hessian's diagonal on request), in the table ``KERNELS``;
they follow the signature in :mod:`lossjit.kernels._blocks`.

``gaussian_nll`` differentiates two inputs: its ``x`` is ``(n, 2)``, the mean and the variance
of each element, and its gradient has the same layout.

>>> import numpy as np
>>> from lossjit.kernels import mse
>>> x, y = np.array([1.5, 2.3, 0.8]), np.array([1.0, 2.0, 1.0])
>>> grad, none = np.empty(3), np.empty(0)
>>> round(mse(x, y, none, grad, none, none, none, 1 / 3) / 3, 6)
0.126667
"""

from __future__ import annotations

import math

import numpy as np

from lossjit._jit import jit, specialise
from lossjit.kernels._blocks import (
    LANES,
    Recipe,
    elementwise,
    elementwise_template,
    from_template,
    kernel_table,
    lane_sum,
)
from lossjit.kernels.vecmath import (
    atanh2_as,
    const_as,
    exp,
    exp_as,
    exp_om_as,
    in_precision,
    ln2_parts,
    log,
    log_as,
    sign,
)

hessian = False  # bound true where a kernel writes the Hessian (see lossjit.kernels._blocks)

LOG_2 = math.log(2.0)
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@jit(inline=True)
def mse_pointwise(x, y, params):
    """e^2; d/dx = 2e; d2 = 2."""
    e = float(x) - float(y)
    return e * e, 2.0 * e, 2.0


@jit(inline=True)
def l1_pointwise(x, y, params):
    """|e|; d/dx = sign(e) (0 at e = 0); d2 = 0."""
    e = float(x) - float(y)
    return abs(e), sign(e), 0.0


@jit(inline=True)
def huber_pointwise(x, y, params):
    """0.5 e^2 if |e| < delta else delta (|e| - delta/2); d/dx = e or delta sign(e);
    d2 = 1 or 0."""
    delta = params[0]
    e = float(x) - float(y)
    a = abs(e)
    if a < delta:
        return 0.5 * e * e, e, 1.0
    return delta * (a - 0.5 * delta), delta * sign(e), 0.0


@jit(inline=True)
def smooth_l1_pointwise(x, y, params):
    """0.5 e^2 / beta if |e| < beta else |e| - beta/2; d/dx = e/beta or sign(e);
    d2 = 1/beta or 0."""
    beta = params[0]
    e = float(x) - float(y)
    a = abs(e)
    if a < beta:
        return 0.5 * e * e / beta, e / beta, 1.0 / beta
    return a - 0.5 * beta, sign(e), 0.0


@jit(inline=True)
def log_cosh_pointwise(x, y, params):
    """log(cosh(e)) in the data's precision, from w = exp(-a), a = |e|, with one division,
    R = 1 / ((1 + w) (1 + w^2) (2 + w^2)):

    - a < 0.88: log cosh a = log1p(2 sinh^2(a/2)) = 2 atanh(t^2), t = tanh(a/2) =
      (1 - w) / (1 + w) (no cancellation as a -> 0, where it is a^2 / 2);
    - otherwise a - log 2 + log1p(z), z = w^2, log1p(z) = 2 atanh(z / (2 + z)) (cannot
      overflow);

    d/dx = tanh(e) = sign(e) (1 - w)(1 + w) / (1 + w^2), 1 - w without cancellation;
    d2 = 1 - tanh^2 = 4 z / (1 + z)^2.
    """
    e = x - in_precision(x, y)
    a = abs(e)
    one = const_as(e, 1.0)
    w, om = exp_om_as(a)
    z = w * w
    opw = one + w
    opz = one + z
    tpz = const_as(e, 2.0) + z
    shared = one / (opw * opz * tpz)
    t = om * (opz * tpz * shared)  # tanh(a/2)
    near = atanh2_as(t * t)
    hi, lo = ln2_parts(e)
    far = (a - hi) + (atanh2_as(z * (opz * opw * shared)) - lo)
    value = near if a < const_as(e, 0.88) else far
    to_z = opw * tpz * shared  # 1 / (1 + z)
    tanh = om * opw * to_z
    slope = tanh if e >= const_as(e, 0.0) else -tanh
    return float(value), float(slope if e == e else e), float(const_as(e, 4.0) * z * to_z * to_z)


@jit(inline=True)
def pseudo_huber_pointwise(x, y, params):
    """delta^2 (sqrt(1 + (e/delta)^2) - 1), as delta^2 u / (sqrt(1 + u) + 1) with
    u = (e/delta)^2 (no cancellation for small e); d/dx = e / sqrt(1 + u);
    d2 = (1 + u)^(-3/2)."""
    delta = params[0]
    e = float(x) - float(y)
    r = e / delta
    u = r * r
    root = math.sqrt(1.0 + u)
    inverse = 1.0 / root
    return delta * delta * u / (root + 1.0), e * inverse, inverse * inverse * inverse


@jit(inline=True)
def quantile_pointwise(x, y, params):
    """max(q e', (q - 1) e') with e' = y - x; d/dx = -q (e' > 0), 1 - q (e' < 0),
    1/2 - q (e' = 0, the mean of the two); d2 = 0."""
    q = params[0]
    e = float(y) - float(x)
    if e > 0.0:
        return q * e, -q, 0.0
    if e < 0.0:
        return (q - 1.0) * e, 1.0 - q, 0.0
    return 0.0 * e, (0.5 - q) + 0.0 * e, 0.0  # e = 0, or NaN kept


@jit(inline=True)
def _stirling(y):
    """y log y - y + log(2 pi y) / 2 where y > 1, else 0 (``full``); the logarithm in the
    data's precision."""
    big = y > const_as(y, 1.0)
    log_y = float(log_as(y if big else const_as(y, 1.0)))
    t = float(y)
    return (t * log_y - t + 0.5 * log_y + HALF_LOG_2PI) if big else 0.0


@jit(inline=True)
def poisson_log_pointwise(x, y, params):
    """log_input: exp(x) - y x; d/dx = exp(x) - y; d2 = exp(x). exp in the data's precision
    (float32 lanes for float32 data), the rest in float64 (y x exact there)."""
    rate = float(exp_as(x))
    t = float(y)
    return rate - t * float(x), rate - t, rate


@jit(inline=True)
def poisson_log_full_pointwise(x, y, params):
    """``poisson_log_pointwise`` plus Stirling's term."""
    value, slope, curvature = poisson_log_pointwise(x, y, params)
    return value + _stirling(in_precision(x, y)), slope, curvature


@jit(inline=True)
def poisson_rate_pointwise(x, y, params):
    """x - y log(x + eps); d/dx = 1 - y / (x + eps); d2 = y / (x + eps)^2; the logarithm
    and 1 / (x + eps) in the data's precision."""
    shifted = x + const_as(x, params[1])
    inverse = float(const_as(x, 1.0) / shifted)
    t = float(y)
    ratio = t * inverse
    return float(x) - t * float(log_as(shifted)), 1.0 - ratio, ratio * inverse


@jit(inline=True)
def poisson_rate_full_pointwise(x, y, params):
    """``poisson_rate_pointwise`` plus Stirling's term."""
    value, slope, curvature = poisson_rate_pointwise(x, y, params)
    return value + _stirling(in_precision(x, y)), slope, curvature


_poisson_blocks = tuple(
    specialise(elementwise_template, f"poisson_nll_{kind}_block", pointwise=fn, hessian=True)
    for kind, fn in (("log", poisson_log_pointwise), ("log_full", poisson_log_full_pointwise),
                     ("rate", poisson_rate_pointwise),
                     ("rate_full", poisson_rate_full_pointwise)))
_poisson_log, _poisson_log_full, _poisson_rate, _poisson_rate_full = _poisson_blocks


@jit
def poisson_nll_block(x, y, w, grad, hess, losses, scale, log_input, full, eps):
    """log_input: exp(x) - y x, d/dx = exp(x) - y, d2 = exp(x); otherwise x - y log(x + eps),
    d/dx = 1 - y / (x + eps), d2 = y / (x + eps)^2. ``full`` adds Stirling's approximation
    y log y - y + log(2 pi y) / 2 where y > 1.

    The options choose one of four element-wise blocks, each a loop without branches that
    computes only what its form needs.
    """
    params = (full, eps)
    if log_input:
        if full:
            return _poisson_log_full(x, y, w, grad, hess, losses, scale, *params)
        return _poisson_log(x, y, w, grad, hess, losses, scale, *params)
    if full:
        return _poisson_rate_full(x, y, w, grad, hess, losses, scale, *params)
    return _poisson_rate(x, y, w, grad, hess, losses, scale, *params)


@jit(inline=True)
def tweedie_pointwise(x, y, params):
    """Tweedie deviance with a log link, power p in (1, 2), without its constant:
    -y exp((1-p) x) / (1-p) + exp((2-p) x) / (2-p); d/dx = -y exp((1-p) x) + exp((2-p) x);
    d2 = -y (1-p) exp((1-p) x) + (2-p) exp((2-p) x)."""
    p = params[0]
    x = float(x)
    y = float(y)
    low = exp((1.0 - p) * x)
    high = exp((2.0 - p) * x)
    return (-y * low / (1.0 - p) + high / (2.0 - p), -y * low + high,
            -y * (1.0 - p) * low + (2.0 - p) * high)


@jit(inline=True)
def gamma_nll_pointwise(x, y, params):
    """Gamma deviance with a log link, without its constant: x + y exp(-x);
    d/dx = 1 - y exp(-x); d2 = y exp(-x)."""
    x = float(x)
    scaled = float(y) * exp(-x)
    return x + scaled, 1.0 - scaled, scaled


mse = elementwise(mse_pointwise)
l1 = elementwise(l1_pointwise)
huber = elementwise(huber_pointwise)
smooth_l1 = elementwise(smooth_l1_pointwise)
log_cosh = elementwise(log_cosh_pointwise)
pseudo_huber = elementwise(pseudo_huber_pointwise)
quantile = elementwise(quantile_pointwise)
poisson_nll = Recipe(block=poisson_nll_block, hessian=True)
tweedie = elementwise(tweedie_pointwise)
gamma_nll = elementwise(gamma_nll_pointwise)


def gaussian_nll_template(x, y, w, grad, hess, losses, scale, full, eps):
    """0.5 (log v + e^2 / v) (+ log(2 pi) / 2 if ``full``), v = max(var, eps), e = mean - y,
    on rows ``x[r] = (mean, var)``.

    d/dmean = e / v; d/dvar = (1/v - e^2/v^2) / 2, passed straight through the clamp as
    PyTorch does (it clamps without recording it). ``hess[r, 0]`` receives d2/dmean2 = 1 / v
    (and ``hess[r, 1]`` 0: only the mean's is defined here).
    The two columns are taken apart first, so that every loop after runs on contiguous
    numbers and vectorises.
    """
    n = x.shape[0]
    mean, v, logs, values = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    for r in range(n):
        var = float(x[r, 1])
        v[r] = eps if var < eps else var  # a select: NaN stays NaN
        mean[r] = x[r, 0]
    for r in range(n):
        logs[r] = log(v[r])
    constant = HALF_LOG_2PI if full else 0.0
    for r in range(n):  # then mean, v and logs hold the derivatives
        e = mean[r] - float(y[r])
        inverse = 1.0 / v[r]
        slope = e * inverse
        values[r] = 0.5 * (logs[r] + e * slope) + constant
        mean[r] = slope
        v[r] = 0.5 * (inverse - slope * slope)
        logs[r] = inverse
    if w.size:
        for r in range(n):
            values[r] *= w[r]
    if grad.size:
        for r in range(n):
            g = (w[r] if w.size else 1.0) * scale
            grad[r, 0] = mean[r] * g
            grad[r, 1] = v[r] * g
            if hessian and hess.size:
                hess[r, 0] = logs[r] * g
                hess[r, 1] = 0.0
    if losses.size:
        for r in range(n):
            losses[r] = values[r]
    return lane_sum(values, np.empty(LANES))


gaussian_nll = from_template(gaussian_nll_template, hessian=True)

KERNELS = kernel_table(globals())
