"""The vectorising exp, log and log1p against NumPy's: the whole float64 range, the edges.

Errors are measured in ulp of the reference; NumPy's own results are within about 1 ulp of
the correctly rounded values, so a bound of a few ulp is what "a few ulp accurate" means here.
"""

import math

import numpy as np
import pytest
from numba import njit

from lossjit.kernels import vecmath


@njit
def _map(kind, x):
    """One of the math helpers over an array, in the array's precision."""
    out = np.empty_like(x)
    for i in range(x.size):
        if kind == 0:
            out[i] = vecmath.exp_as(x[i])
        elif kind == 1:
            out[i] = vecmath.log_as(x[i])
        elif kind == 2:
            out[i] = vecmath.log1p_as(x[i])
        elif kind == 3:
            out[i] = vecmath.softplus(x[i])
        else:
            out[i] = vecmath.sigmoid(x[i])
    return out


def exp(x):
    return _map(0, np.asarray(x, dtype=np.float64))


def log(x):
    return _map(1, np.asarray(x, dtype=np.float64))


def log1p(x):
    return _map(2, np.asarray(x, dtype=np.float64))


def ulp_error(got, expected):
    """Largest |got - expected| in units of expected's last place (finite, non-zero values)."""
    finite = np.isfinite(expected) & (expected != 0)
    assert np.array_equal(np.isfinite(got[finite]), np.ones(finite.sum(), dtype=bool))
    return float(np.max(np.abs(got[finite] - expected[finite]) / np.spacing(
        np.abs(expected[finite])))) if finite.any() else 0.0


RNG = np.random.default_rng(20261129)


def test_exp_whole_range_within_two_ulp():
    x = np.concatenate([RNG.uniform(-745.0, 709.78, 400_000), RNG.uniform(-1, 1, 100_000),
                        RNG.uniform(-1e-8, 1e-8, 10_000), np.arange(-745, 710, 0.25)])
    with np.errstate(under="ignore"):
        expected = np.exp(x)
    normal = expected >= np.finfo(np.float64).tiny
    assert ulp_error(exp(x)[normal], expected[normal]) <= 2


def test_exp_subnormal_results_and_underflow():
    x = np.linspace(-745.2, -708.4, 20_001)
    with np.errstate(under="ignore"):
        expected = np.exp(x)
    got = exp(x)
    # subnormals have fewer digits: compare to within two of the smallest subnormal steps
    assert np.max(np.abs(got - expected)) <= 2 * 5e-324 + 2 * np.spacing(expected).max()
    assert exp(np.array([-745.2, -746.0, -1e4, -1e308]))[:].tolist() == [0.0] * 4


def test_exp_edges():
    x = np.array([-np.inf, np.inf, np.nan, 0.0, -0.0, 709.78, 709.79, 710.0, 1e308, 5e-324,
                  -5e-324])
    got = exp(x)
    with np.errstate(over="ignore"):
        expected = np.exp(x)
    np.testing.assert_array_equal(got, expected)


def test_log_whole_range_within_four_ulp():
    x = np.concatenate([np.exp(RNG.uniform(-744.0, 709.0, 400_000)),
                        RNG.uniform(0.5, 2.0, 100_000), 1 + RNG.uniform(-1e-10, 1e-10, 10_000),
                        np.array([np.finfo(np.float64).max, np.finfo(np.float64).tiny])])
    assert ulp_error(log(x), np.log(x)) <= 4


def test_log_subnormals_and_edges():
    sub = np.array([5e-324, 1e-320, 1e-310, 2.2250738585072009e-308])
    assert ulp_error(log(sub), np.log(sub)) <= 4
    x = np.array([0.0, -0.0, -1.0, -np.inf, np.inf, np.nan, 1.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.log(x)
    np.testing.assert_array_equal(log(x), expected)


def test_log1p_small_and_large_arguments():
    u = np.concatenate([10.0 ** RNG.uniform(-300, 0, 100_000), RNG.uniform(0, 1, 100_000),
                        -RNG.uniform(0, 0.999, 100_000), 10.0 ** RNG.uniform(0, 300, 10_000)])
    assert ulp_error(log1p(u), np.log1p(u)) <= 4
    edges = np.array([0.0, -0.0, -1.0, np.inf, np.nan, 5e-324])
    with np.errstate(divide="ignore"):
        expected = np.log1p(edges)
    np.testing.assert_array_equal(log1p(edges), expected)


@pytest.mark.parametrize("x", [-1e4, -800.0, -50.0, -1e-9, 0.0, 1e-9, 50.0, 800.0, 1e4])
def test_softplus_and_sigmoid_are_stable(x):
    softplus = _map(3, np.array([x]))[0]
    sigmoid = _map(4, np.array([x]))[0]
    expected_softplus = max(x, 0.0) + math.log1p(math.exp(-abs(x)))
    expected_sigmoid = 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))
    assert softplus == pytest.approx(expected_softplus, rel=1e-15, abs=1e-300)
    assert sigmoid == pytest.approx(expected_sigmoid, rel=1e-15, abs=1e-300)


def ulp32_error(got, exact):
    """Largest |got - exact| in float32 ulp of the exact (float64) value."""
    exact32 = exact.astype(np.float32)
    finite = np.isfinite(exact32) & (np.abs(exact32) >= np.finfo(np.float32).tiny)
    assert got.dtype == np.float32
    return float(np.max(np.abs(got[finite].astype(np.float64) - exact[finite])
                        / np.spacing(np.abs(exact32[finite])).astype(np.float64)))


def test_float32_exp_log_log1p_within_a_few_ulp_and_edges():
    x = np.concatenate([RNG.uniform(-103.0, 88.7, 300_000), RNG.uniform(-1, 1, 50_000)])
    x = x.astype(np.float32)
    with np.errstate(under="ignore"):
        assert ulp32_error(_map(0, x), np.exp(x.astype(np.float64))) <= 2
    y = np.exp(RNG.uniform(-87.0, 88.0, 300_000)).astype(np.float32)
    assert ulp32_error(_map(1, y), np.log(y.astype(np.float64))) <= 3
    u = np.concatenate([10.0 ** RNG.uniform(-40, 0, 100_000), RNG.uniform(-0.99, 1, 100_000),
                        10.0 ** RNG.uniform(0, 30, 10_000)]).astype(np.float32)
    assert ulp32_error(_map(2, u), np.log1p(u.astype(np.float64))) <= 4
    edges = np.array([-np.inf, np.inf, np.nan, 0.0, -1.0, 1e-45], dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.testing.assert_array_equal(_map(0, edges)[[0, 1, 2, 3, 5]],
                                      np.exp(edges)[[0, 1, 2, 3, 5]])
        np.testing.assert_array_equal(_map(1, edges)[[0, 1, 2, 3, 4]],
                                      np.log(edges)[[0, 1, 2, 3, 4]])
        np.testing.assert_array_equal(_map(2, edges)[[1, 2, 3, 4]],
                                      np.log1p(edges)[[1, 2, 3, 4]])
