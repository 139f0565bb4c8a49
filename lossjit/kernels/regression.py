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
    KernelSet,
    Recipe,
    elementwise,
    elementwise_template,
    kernel_table,
    lane_sum,
    rows_template,
)
from lossjit.kernels.vecmath import (
    atanh2_as,
    const_as,
    exp,
    exp_as,
    exp_om_as,
    in_precision,
    ln2_parts,
    log_as,
    sign,
)

block = None  # bound to gaussian_nll's block in its kernels
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


@jit(inline=True)
def _gaussian_terms(mean, target, var, eps, constant):
    """(loss, d/dmean, d/dvar, 1/v) of one element: 0.5 (log v + e^2 / v) + constant,
    v = max(var, eps) (a select: NaN stays NaN). The logarithm and 1/v are taken in the data's
    precision (float32 lanes for float32 data), the rest in float64 from them."""
    v = eps if var < eps else var
    inverse = float(const_as(v, 1.0) / v)
    e = float(mean) - float(target)
    slope = e * inverse
    value = 0.5 * (float(log_as(v)) + e * slope) + constant
    return value, slope, 0.5 * (inverse - slope * slope), inverse


@jit(inline=True)
def _gaussian_store(r, x, y, var, floor, constant, weights, scale, values, grad, hess,
                    with_hessian):
    """Row r's loss (weighted) to ``values``, its gradient to ``grad[r]`` (and its Hessian's
    diagonal to ``hess[r]``)."""
    value, slope, var_slope, inverse = _gaussian_terms(x[r, 0], y[r], var, floor, constant)
    g = weights[r] * scale
    values[r] = value * weights[r]
    grad[r, 0] = slope * g
    grad[r, 1] = var_slope * g
    if with_hessian and hess.size:
        hess[r, 0] = inverse * g
        hess[r, 1] = 0.0


def gaussian_nll_block(x, y, w, grad, hess, losses, scale, full, eps, var):
    """0.5 (log v + e^2 / v) (+ log(2 pi) / 2 if ``full``), v = max(var, eps), e = mean - y,
    on rows ``x[r] = (mean, ...)`` (only ``x[r, 0]`` is read: the layout hands the means
    over as a read-only view, each seen twice) with the variances ``var`` beside them (the
    block's part of them, or one number for all).

    d/dmean = e / v goes to ``grad[r, 0]``, d/dvar = (1/v - e^2/v^2) / 2 to ``grad[r, 1]``
    (passed straight through the clamp, as PyTorch does); ``hess[r, 0]`` receives
    d2/dmean2 = 1 / v (and ``hess[r, 1]`` 0: only the mean's is defined here). Nothing is
    copied in: the loops read the means, targets and variances where they are.
    """
    n = x.shape[0]
    values = np.empty(n)
    constant = HALF_LOG_2PI if full else 0.0
    one_var = var.size != n or n == 0
    first = np.zeros(1, var.dtype)  # the one variance (typed as the data, for const_as)
    if var.size:
        first[0] = var[0]
    single = first[0]
    floor = const_as(single, eps)
    weights = np.ones(n)
    if w.size:
        for r in range(n):
            weights[r] = w[r]
    if not grad.size:
        if one_var:
            for r in range(n):
                values[r] = _gaussian_terms(x[r, 0], y[r], single, floor, constant)[0]
        else:
            for r in range(n):
                values[r] = _gaussian_terms(x[r, 0], y[r], var[r], floor, constant)[0]
        for r in range(n):
            values[r] *= weights[r]
    elif one_var:
        for r in range(n):
            _gaussian_store(r, x, y, single, floor, constant, weights, scale, values, grad,
                            hess, hessian)
    else:
        for r in range(n):
            _gaussian_store(r, x, y, var[r], floor, constant, weights, scale, values, grad,
                            hess, hessian)
    if losses.size:
        for r in range(n):
            losses[r] = values[r]
    return lane_sum(values, np.empty(LANES))


@jit(inline=True)
def _gaussian_cut(params, lo, hi, n):
    """A block's parameters of gaussian_nll: (full, eps, its rows' variances), or the one
    variance that all rows share."""
    full, eps, var = params
    return full, eps, (var[lo:hi] if var.size == n else var)


_gaussian_block = specialise(gaussian_nll_block, "gaussian_nll_block", hessian=True)

gaussian_nll = KernelSet(
    "gaussian_nll",
    specialise(rows_template, "gaussian_nll", block=_gaussian_block, cut=_gaussian_cut,
               cache=True),
    specialise(rows_template, "gaussian_nll", parallel=True, block=_gaussian_block,
               cut=_gaussian_cut, cache=True),
    hessian=True)

KERNELS = {**kernel_table(globals()), "gaussian_nll": gaussian_nll}
