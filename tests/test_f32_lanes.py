"""float32 lanes: float32 data computed per element in float32, against float64 references.

The element-wise formulas of float32 data run their transcendental parts (exp, log, the shared
reciprocals) in float32, twice as many lanes at a time; sums stay float64. Each formula's
float32 results are checked here over the whole float32 range of its inputs against a NumPy
float64 reference, in float32 ulp of the reference (``ULP``). Where a result is a difference
of larger parts (a cancellation that no precision avoids: exp(x) - y x, log v + e^2 / v),
its error is measured in ulp of the largest part instead.
"""

import numpy as np
import pytest
from numba import njit

from lossjit.kernels import classification as cls
from lossjit.kernels import regression as reg
from lossjit.kernels import vecmath

#: The bound on the per-element errors measured below, in float32 ulp (measured: at most
#: about 6: one shared reciprocal instead of two or three divisions costs a few roundings).
ULP = 8.0
#: log_cosh near 0 (its value is 2 atanh(t^2): t's error counts twice) and sigmoid_focal
#: (m^gamma, gamma = 2: m's error counts twice) (measured: at most about 12.2).
ULP_SQUARED = 16.0

RNG = np.random.default_rng(20261130)
F32 = np.float32


def ulp32(got, expected, scale=None):
    """Largest |got - expected| in float32 ulp of ``scale`` (default |expected|), over the
    entries where the reference is a finite normal float32; infinities must match."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.abs(expected) if scale is None else np.asarray(scale, dtype=np.float64)
    scale = np.minimum(scale, np.finfo(np.float32).max)
    infinite = np.isinf(expected)
    np.testing.assert_array_equal(got[infinite], expected[infinite])
    usable = np.isfinite(expected) & (scale >= np.finfo(np.float32).tiny)
    assert np.isfinite(got[usable]).all()
    if not usable.any():
        return 0.0
    spacing = np.spacing(scale[usable].astype(np.float32)).astype(np.float64)
    return float(np.max(np.abs(got[usable] - expected[usable]) / spacing))


def zero_where_zero(got, expected):
    """Where the reference is exactly 0 (or below float32's normals), so is the result
    (to within a float32 subnormal)."""
    small = np.abs(expected) < np.finfo(np.float32).tiny
    assert np.all(np.abs(np.asarray(got)[small]) <= 2 * np.finfo(np.float32).tiny)


@njit
def _run(which, x, y, p0, p1):
    """One pointwise formula over arrays: (loss, slope, curvature) per element."""
    n = x.size
    out = np.empty((3, n))
    for i in range(n):
        if which == 0:
            r = reg.log_cosh_pointwise(x[i], y[i], (p0,))
        elif which == 1:
            r = cls.bce_with_logits_pointwise(x[i], y[i], (p0,))
        elif which == 2:
            r = cls.binary_cross_entropy_pointwise(x[i], y[i], (p0,))
        elif which == 3:
            r = cls.sigmoid_focal_pointwise(x[i], y[i], (p0, p1))
        elif which == 4:
            r = reg.poisson_log_pointwise(x[i], y[i], (False, p0))
        else:
            r = reg.poisson_rate_pointwise(x[i], y[i], (False, p0))
        out[0, i] = r[0]
        out[1, i] = r[1]
        out[2, i] = r[2]
    return out


@njit
def _logistic(x):
    out = np.empty((3, x.size))
    for i in range(x.size):
        tail, p, q = vecmath.logistic_shared(x[i])
        out[0, i] = tail
        out[1, i] = p
        out[2, i] = q
    return out


@njit
def _exp_om(t):
    out = np.empty((2, t.size))
    for i in range(t.size):
        z, om = vecmath.exp_om_as(t[i])
        out[0, i] = z
        out[1, i] = om
    return out


def run32(which, x, y, p0=0.0, p1=0.0):
    return _run(which, x.astype(F32), y.astype(F32), p0, p1)


def wide(low, high, n):
    """Uniform on a log scale over [low, high] (both > 0), as float32."""
    return np.exp(RNG.uniform(np.log(low), np.log(high), n)).astype(F32)


def signed_wide(n, low=1e-30, high=1e4):
    return (wide(low, high, n) * RNG.choice([-1, 1], n)).astype(F32)


def test_logistic_shared_and_exp_om_float32():
    x = np.concatenate([signed_wide(200_000, 1e-38, 100.0), RNG.uniform(-20, 20, 100_000),
                        [0.0, -0.0, 88.0, -88.0, 1e4, -1e4]]).astype(F32)
    got = _logistic(x)
    xd = x.astype(np.float64)
    z = np.exp(-np.abs(xd))
    tail, p, q = np.log1p(z), 1 / (1 + np.exp(-xd)), 1 / (1 + np.exp(xd))
    assert ulp32(got[0], tail) <= ULP
    assert ulp32(got[1], p) <= ULP
    assert ulp32(got[2], q) <= ULP
    zero_where_zero(got[2], q)
    t = np.concatenate([wide(1e-38, 104.0, 200_000), [0.0, 1e-8, 0.3466, 0.3467]]).astype(F32)
    z, om = _exp_om(t)
    assert ulp32(z, np.exp(-t.astype(np.float64))) <= ULP
    assert ulp32(om, -np.expm1(-t.astype(np.float64))) <= ULP
    edges = _logistic(np.array([np.inf, -np.inf, np.nan], dtype=F32))
    np.testing.assert_array_equal(edges[:, :2], [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert np.isnan(edges[:, 2]).all()


def test_log_cosh_float32():
    e = np.concatenate([signed_wide(300_000, 1e-30, 1e4), RNG.uniform(-3, 3, 200_000),
                        [0.0, 0.88, -0.88, 0.8799999, 1e-20]]).astype(F32)
    got = run32(0, e, np.zeros_like(e))
    a = np.abs(e.astype(np.float64))
    # log cosh a = a + log1p(exp(-2a)) - log 2, and its series a^2/2 - a^4/12 where tiny
    value = np.where(a < 1e-4, a * a / 2 - a ** 4 / 12, a + np.log1p(np.exp(-2 * a)) - np.log(2))
    value = np.where((a >= 1e-4) & (a < 0.5), np.log(np.cosh(a)), value)
    assert ulp32(got[0], value) <= ULP_SQUARED
    zero_where_zero(got[0], value)
    assert ulp32(got[1], np.tanh(e.astype(np.float64))) <= ULP
    assert ulp32(got[2], 1 / np.cosh(a) ** 2) <= ULP_SQUARED


@pytest.mark.parametrize("pos_weight", [1.0, 2.5])
def test_bce_with_logits_float32(pos_weight):
    x = np.concatenate([signed_wide(300_000, 1e-30, 1e4), RNG.uniform(-30, 30, 200_000),
                        [0.0, -0.0]]).astype(F32)
    y = RNG.integers(0, 2, x.size).astype(F32)
    got = run32(1, x, y, pos_weight)
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    sp_neg = np.logaddexp(0.0, -xd)
    sp_pos = np.logaddexp(0.0, xd)
    lift = 1 + (pos_weight - 1) * yd
    value = np.where(yd == 1, lift * sp_neg, sp_pos)  # (1-y) x + lift softplus(-x)
    p, q = 1 / (1 + np.exp(-xd)), 1 / (1 + np.exp(xd))
    assert ulp32(got[0], value) <= ULP
    assert ulp32(got[1], np.where(yd == 1, -pos_weight * q, p)) <= ULP
    assert ulp32(got[2], lift * p * q) <= ULP


def test_binary_cross_entropy_float32():
    tiny = np.finfo(np.float32).tiny
    x = np.concatenate([wide(tiny, 1.0, 200_000),
                        (1 - wide(6e-8, 1.0, 200_000).astype(np.float64)).astype(F32),
                        RNG.uniform(0, 1, 100_000), [0.0, 1.0, 0.5, 0.29289323]]).astype(F32)
    x = np.clip(x, 0, 1).astype(F32)
    y = RNG.integers(0, 2, x.size).astype(F32)
    got = run32(2, x, y)
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    with np.errstate(divide="ignore"):
        log_x = np.maximum(np.log(xd), -100.0)
        log_1mx = np.maximum(np.log1p(-xd), -100.0)
    value = -(yd * log_x + (1 - yd) * log_1mx)
    spread = np.maximum(xd * (1 - xd), cls.BCE_FLOOR)
    assert ulp32(got[0], value) <= ULP
    zero_where_zero(got[0], value)
    assert ulp32(got[1], (xd - yd) / spread) <= ULP
    floored = xd * (1 - xd) < cls.BCE_FLOOR
    bend = np.where(floored, 1 / cls.BCE_FLOOR, (yd * (1 - xd) ** 2 + (1 - yd) * xd ** 2)
                    / spread ** 2)
    assert ulp32(got[2], bend) <= ULP


def test_sigmoid_focal_float32():
    x = np.concatenate([signed_wide(200_000, 1e-30, 80.0), RNG.uniform(-15, 15, 100_000),
                        [0.0]]).astype(F32)
    y = RNG.integers(0, 2, x.size).astype(F32)
    alpha, gamma = 0.25, 2.0
    got = run32(3, x, y, alpha, gamma)
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    p, q = 1 / (1 + np.exp(-xd)), 1 / (1 + np.exp(xd))
    bce = np.where(yd == 1, np.logaddexp(0.0, -xd), np.logaddexp(0.0, xd))
    m = np.where(yd == 1, q, p)
    alpha_t = alpha * yd + (1 - alpha) * (1 - yd)
    value = alpha_t * m ** gamma * bce
    # d/dx = alpha_t [(p - y) m^g + g (pq/m) m^g (1 - 2y) B], each part non-negative times
    # the sign (1 - 2y): no cancellation for 0/1 labels
    k = 1 - 2 * yd
    residual = np.where(yd == 1, -q, p)  # p - y without its cancellation
    slope = alpha_t * (residual * m ** gamma + gamma * (p * q / m) * m ** gamma * k * bce)
    assert ulp32(got[0], value) <= ULP_SQUARED
    zero_where_zero(got[0], value)
    assert ulp32(got[1], slope) <= ULP_SQUARED


def test_poisson_nll_float32():
    x = np.concatenate([RNG.uniform(-87, 88, 300_000), signed_wide(100_000, 1e-30, 80.0)]
                       ).astype(F32)
    y = RNG.poisson(3.0, x.size).astype(F32)
    got = run32(4, x, y)
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    rate = np.exp(xd)
    # exp(x) - y x is a difference: its error in ulp of the larger part
    assert ulp32(got[0], rate - yd * xd, np.maximum(rate, np.abs(yd * xd))) <= ULP
    assert ulp32(got[1], rate - yd, np.maximum(rate, yd)) <= ULP
    assert ulp32(got[2], rate) <= ULP
    r = np.concatenate([wide(1e-20, 1e30, 200_000), [0.0]]).astype(F32)
    t = RNG.poisson(3.0, r.size).astype(F32)
    eps = 1e-8
    got = run32(5, r, t, eps)
    shifted = (r + F32(eps)).astype(np.float64)  # x + eps rounds in float32, as PyTorch's
    rd, td = r.astype(np.float64), t.astype(np.float64)
    parts = np.maximum(np.abs(rd), np.abs(td * np.log(shifted)))
    assert ulp32(got[0], rd - td * np.log(shifted), parts) <= ULP
    assert ulp32(got[1], 1 - td / shifted, np.maximum(1.0, td / shifted)) <= ULP
    assert ulp32(got[2], td / shifted ** 2) <= ULP
