"""The options every loss has: ``sample_weight``, ``empty``, ``wrt`` (gaussian_nll's
var) and ``grad_hess``.

Expected numbers never come from lossjit itself: values from the NumPy oracle (tests/naive.py,
which defines sample_weight and empty as the README does), gradients from central finite
differences of the oracle, var gradients from finite differences and from PyTorch's
straight-through formula at the clamp, Hessian diagonals from central finite differences of
lossjit's gradient (itself checked against the oracle in test_losses.py).

Sections:
1. sample_weight: value and gradient for mean/sum/none on every loss; ones = no weight; the
   gradient scales per term; a common factor cancels in the mean; class weights and ignored
   targets in the mean's denominator;
2. empty = "nan" | "zero" | "error" on every loss's empty input, on all-ignored targets and
   on all-zero sample weights; sum and none unaffected;
3. wrt for gaussian_nll: (g_pred, g_var) for each of PyTorch's var shapes, the clamp's
   straight-through gradient, wrt naming something not differentiable;
4. grad_hess: the Hessian diagonal of every loss that has one, vs finite differences of
   lossjit.grad; the losses without one raise.
"""

import math

import numpy as np
import pytest
from naive import oracle, reductions_of
from test_losses import (
    FD_ATOL,
    FD_RTOL,
    VALUE_ATOL,
    VALUE_RTOL,
    fd_grad,
    hinge_inputs,
    kl_inputs,
    layout_inputs,
    poisson_inputs,
    regression_inputs,
    rng_for,
    sample_inputs,
    spread_over_predictions,
)

import lossjit
from lossjit import registry
from lossjit.errors import LossjitError
from lossjit.layouts import ClassAxis, LastAxisClasses, RankPairs, Stacked, Variance
from lossjit.plan import make_plan

REDUCTIONS = ("mean", "sum", "none")
NAMES = lossjit.names()


def layout_of(name):
    return registry.resolve(name).layout


#: Losses whose terms are the predictions' shape without the class axis (axis 0 of a 1-D
#: input, else axis 1): the registry's ClassAxis layouts.
CLASS_AXIS = tuple(name for name in NAMES if isinstance(layout_of(name), ClassAxis))


def means_of(name):
    """The reductions of the loss that divide by a denominator: mean, and batchmean where
    the loss has it (kl_div)."""
    return tuple(r for r in registry.resolve(name).reductions if r not in ("sum", "none"))


def terms_shape(name, x, t, params):
    return np.shape(oracle(name, x, t, reduction="none", **params))


def per_element(name, sw, x):
    """Sample weights (the terms' shape) spread over the predictions' elements each term
    covers, i.e. the factor by which the weight scales each gradient entry."""
    return spread_over_predictions(name, np.asarray(sw, dtype=np.float64), x)


def check_weighted(name, x, t, reduction, params, sw):
    """Value vs the oracle, gradient vs central differences of the oracle, with weights."""
    expected = oracle(name, x, t, reduction=reduction, sample_weight=sw, **params)
    value, grad = lossjit.value_and_grad(name, x, t, reduction=reduction, sample_weight=sw,
                                         **params)
    assert np.shape(value) == np.shape(expected)
    np.testing.assert_allclose(value, expected, rtol=VALUE_RTOL, atol=VALUE_ATOL)
    assert grad.shape == x.shape and grad.dtype == x.dtype

    def total(z):
        return float(np.sum(oracle(name, z, t, reduction=reduction, sample_weight=sw,
                                   **params)))

    np.testing.assert_allclose(grad, fd_grad(total, x), rtol=FD_RTOL, atol=FD_ATOL)


# --- 1. sample_weight -----------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", NAMES)
def test_sample_weight_value_and_gradient(name, reduction):
    rng = rng_for("sample_weight", name)
    x, t, params = sample_inputs(name, rng)
    sw = rng.uniform(0.2, 2.0, size=terms_shape(name, x, t, params))
    sw.flat[-1] = 0.0  # a zero weight is allowed
    check_weighted(name, x, t, reduction, params, sw)
    if reduction == "mean":
        for other in means_of(name)[1:]:  # kl_div's batchmean
            check_weighted(name, x, t, other, params, sw)


#: Losses whose mean's denominator has class weights or ignored positions (each term's share
#: of it, c, is then not 1).
DENOMINATOR_CASES = [
    ("cross_entropy", {"weight": np.array([0.5, 2.0, 1.0, 3.0])}, "index"),
    ("cross_entropy", {"weight": np.array([0.5, 2.0, 1.0, 3.0]), "ignore_index": 1,
                       "label_smoothing": 0.1}, "index"),
    ("cross_entropy", {"weight": np.array([0.5, 2.0, 1.0, 3.0])}, "soft"),
    ("nll", {"weight": np.array([0.5, 2.0, 1.0, 3.0]), "ignore_index": 1}, "index"),
    ("focal", {"ignore_index": 1, "alpha": np.array([0.5, 2.0, 1.0, 3.0])}, "index"),
    ("poly1", {"ignore_index": 1, "epsilon": 2.0}, "index"),
    ("multi_margin", {"weight": np.array([0.5, 2.0, 1.0, 3.0]), "p": 2}, "index"),
]


def _option_names(name):
    return {p.name for p in registry.resolve(name).params}


#: Every class-axis loss with class weights or an ignore_index (the registry's) is among them:
#: one with no case above gets one with both its options.
DENOMINATOR_CASES += [
    (name, {**({"weight": np.array([0.5, 2.0, 1.0, 3.0])} if "weight" in _option_names(name)
               else {}),
            **({"ignore_index": 1} if "ignore_index" in _option_names(name) else {})}, "index")
    for name in CLASS_AXIS
    if _option_names(name) & {"weight", "ignore_index"}
    and name not in {case[0] for case in DENOMINATOR_CASES}
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, params, kind", DENOMINATOR_CASES,
                         ids=[f"{n}-{sorted(p)}-{k}" for n, p, k in DENOMINATOR_CASES])
def test_sample_weight_with_class_weights_and_ignored_targets(name, params, kind, reduction):
    """mean = sum(w l) / sum(w c): c = weight[y] for cross_entropy/nll with indices, 0 where
    ignored; 1 elsewhere (focal's alpha and multi_margin's weight are not in it)."""
    rng = rng_for("denominator", name, sorted(params), kind)
    if name == "multi_margin":
        x = rng.normal(size=(6, 4)) * 0.3  # every margin - x_y + x_i > 0.05: no kink near
    else:
        x = rng.normal(size=(6, 4)) * 1.5
    if layout_of(name).log_probabilities:  # nll
        x = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    t = np.array([0, 1, 3, 2, 1, 0]) if kind == "index" else rng.dirichlet(np.ones(4), size=6)
    sw = rng.uniform(0.2, 2.0, size=6)
    check_weighted(name, x, t, reduction, params, sw)


@pytest.mark.parametrize("name", NAMES)
def test_sample_weight_of_ones_is_no_weight(name):
    rng = rng_for("ones", name)
    x, t, params = sample_inputs(name, rng)
    ones = np.ones(terms_shape(name, x, t, params))
    for reduction in reductions_of(name):
        v0, g0 = lossjit.value_and_grad(name, x, t, reduction=reduction, **params)
        v1, g1 = lossjit.value_and_grad(name, x, t, reduction=reduction, sample_weight=ones,
                                        **params)
        np.testing.assert_allclose(v1, v0, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(g1, g0, rtol=1e-12, atol=1e-300)
        # a scalar weight of 1 broadcasts to every term
        v2 = lossjit.loss(name, x, t, reduction=reduction, sample_weight=1.0, **params)
        np.testing.assert_allclose(v2, v0, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", NAMES)
def test_sample_weight_scales_the_gradient_per_term(name):
    """d/dx sum_t w_t l_t = sum_t w_t dl_t/dx: each term's gradient entries scale by its
    weight (reductions sum and none); the mean's gradient is that over sum(w c), and a common
    factor of the weights cancels in it."""
    rng = rng_for("scales", name)
    x, t, params = sample_inputs(name, rng)
    sw = rng.uniform(0.2, 3.0, size=terms_shape(name, x, t, params))
    factor = per_element(name, sw, x)
    for reduction in ("sum", "none"):
        plain = lossjit.grad(name, x, t, reduction=reduction, **params)
        weighted = lossjit.grad(name, x, t, reduction=reduction, sample_weight=sw, **params)
        np.testing.assert_allclose(weighted, factor * plain, rtol=1e-12, atol=1e-300)
        terms = lossjit.loss(name, x, t, reduction="none", **params)
        weighted_terms = lossjit.loss(name, x, t, reduction="none", sample_weight=sw, **params)
        np.testing.assert_allclose(weighted_terms, sw * terms, rtol=1e-12, atol=1e-300)
    v1, g1 = lossjit.value_and_grad(name, x, t, sample_weight=sw, **params)
    v7, g7 = lossjit.value_and_grad(name, x, t, sample_weight=7.0 * sw, **params)
    np.testing.assert_allclose(v7, v1, rtol=1e-12)
    np.testing.assert_allclose(g7, g1, rtol=1e-12, atol=1e-300)


def test_sample_weight_broadcasts_to_the_terms():
    rng = rng_for("broadcast")
    x, y = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    for sw in (rng.uniform(0.5, 2, size=(3, 1)), rng.uniform(0.5, 2, size=4),
               rng.uniform(0.5, 2, size=(1, 4)), np.float64(2.5), [1.0, 2.0, 0.5, 1.5]):
        for reduction in REDUCTIONS:
            check_weighted("huber", x, y, reduction, {"delta": 0.7}, sw)
    logits = rng.normal(size=(2, 3, 5))  # (N, C, d): terms (N, d)
    t = rng.integers(0, 3, size=(2, 5))
    for sw in (rng.uniform(0.5, 2, size=(2, 1)), rng.uniform(0.5, 2, size=(2, 5))):
        check_weighted("cross_entropy", logits, t, "mean", {}, sw)


# --- 2. empty -------------------------------------------------------------------------------


def empty_inputs(name):
    """An input with zero terms, for every loss (by its layout)."""
    layout = layout_of(name)
    if isinstance(layout, ClassAxis):
        return np.zeros((0, 3)), np.zeros(0, dtype=np.int64), {}
    if isinstance(layout, LastAxisClasses):
        return np.zeros((0, 3)), np.zeros((0, 3)), {}
    if isinstance(layout, Stacked):
        return (np.zeros((0, layout.members, 3)), None if layout.labels is None else np.zeros(0),
                {})
    if isinstance(layout, RankPairs):
        return np.zeros((0, 2)), np.zeros(0), {}
    if isinstance(layout, Variance):
        return np.zeros((0, 3)), np.zeros((0, 3)), {"var": np.ones((0, 3))}
    return np.zeros((0, 3)), np.zeros((0, 3)), {}


def check_empty_modes(name, x, t, params, means):
    """The means follow ``empty``; sum and none do not care; the gradient is zeros."""
    for reduction in means:
        for mode, expected in (("nan", math.nan), ("zero", 0.0)):
            value, grad = lossjit.value_and_grad(name, x, t, reduction=reduction, empty=mode,
                                                 **params)
            assert isinstance(value, float)
            if math.isnan(expected):
                assert math.isnan(value), (reduction, mode, value)
            else:
                assert value == 0.0, (reduction, mode, value)
            np.testing.assert_array_equal(grad, np.zeros_like(x))
            alone = lossjit.loss(name, x, t, reduction=reduction, empty=mode, **params)
            np.testing.assert_equal(alone, expected)
            np.testing.assert_equal(oracle(name, x, t, reduction=reduction, empty=mode,
                                           **params), expected)
        for call in (lossjit.loss, lossjit.grad, lossjit.value_and_grad):
            with pytest.raises(LossjitError):
                call(name, x, t, reduction=reduction, empty="error", **params)
        with pytest.raises(ValueError):
            oracle(name, x, t, reduction=reduction, empty="error", **params)
    for mode in ("nan", "zero", "error"):
        value, grad = lossjit.value_and_grad(name, x, t, reduction="sum", empty=mode, **params)
        assert value == 0.0 and isinstance(value, float)
        np.testing.assert_array_equal(grad, np.zeros_like(x))
        terms = lossjit.loss(name, x, t, reduction="none", empty=mode, **params)
        np.testing.assert_array_equal(terms, oracle(name, x, t, reduction="none", **params))


@pytest.mark.parametrize("name", NAMES)
def test_empty_input_follows_the_empty_option(name):
    x, t, params = empty_inputs(name)
    check_empty_modes(name, x, t, params, means_of(name))


@pytest.mark.parametrize("name, params", [
    ("cross_entropy", {}), ("cross_entropy", {"weight": np.array([1.0, 2.0, 3.0])}),
    ("nll", {}), ("nll", {"ignore_index": 1}), ("focal", {}), ("poly1", {}),
    ("poly1", {"ignore_index": 2, "epsilon": 0.5}),
])
def test_every_target_ignored_follows_the_empty_option(name, params):
    x = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    if name == "nll":
        x = np.log(x)
    ignore = params.get("ignore_index", -100)
    check_empty_modes(name, x, np.array([ignore, ignore]), params, ("mean",))


@pytest.mark.parametrize("name", NAMES)
def test_all_zero_sample_weights_are_an_empty_mean(name):
    """sum(w c) = 0 is a zero denominator too."""
    rng = rng_for("zero-weights", name)
    x, t, params = sample_inputs(name, rng)
    params = dict(params, sample_weight=np.zeros(terms_shape(name, x, t, params)))
    check_empty_modes(name, x, t, params, ("mean",))


def test_empty_default_is_nan():
    x, t = np.zeros((0, 3)), np.zeros((0, 3))
    assert math.isnan(lossjit.loss("mse", x, t))
    assert math.isnan(lossjit.value_and_grad("kl_div", x, t, reduction="batchmean")[0])


# --- 3. wrt: gaussian_nll's var ---------------------------------------------------------------


#: (predictions' shape, var's shape) for each shape PyTorch accepts; None is a float var.
VAR_LAYOUTS = [
    ((3, 4), None), ((3, 4), (3, 4)), ((3, 4), (3,)), ((3, 4), (3, 1)), ((3, 4), (1, 4)),
    ((2, 3, 4), (2, 1, 4)), ((2, 3, 4), (2, 3)), ((5,), ()),
]


def expected_var_grad(x, y, var, eps, reduction, sw=None):
    """PyTorch's var gradient, by formula: 0.5 (1/v - e^2/v^2) at v = max(var, eps) (passed
    straight through the clamp), times the sample weight and the reduction's scale, summed
    over the axes var is broadcast along."""
    v_given = np.asarray(var, dtype=np.float64)
    v_layout = v_given
    if v_given.ndim and v_given.shape != x.shape and v_given.shape == x.shape[:-1]:
        v_layout = v_given[..., None]
    v = np.maximum(np.broadcast_to(v_layout, x.shape), eps)
    e = x - y
    g = 0.5 * (1.0 / v - e * e / (v * v))
    w = np.ones(x.shape) if sw is None else np.broadcast_to(sw, x.shape)
    g = g * w
    if reduction == "mean":
        g = g / w.sum()
    if v_given.ndim == 0:
        return np.asarray(g.sum())
    axes = tuple(i for i, n in enumerate(v_layout.shape) if n == 1 and x.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(v_given.shape)


def fd_var_grad(x, y, var, reduction, params):
    """Central differences of the oracle w.r.t. each var entry (a float var: w.r.t. it)."""
    if np.ndim(var) == 0 and not isinstance(var, np.ndarray):
        def total_float(v):
            return float(np.sum(oracle("gaussian_nll", x, y, reduction=reduction,
                                       var=float(v), **params)))
        return fd_grad(total_float, np.array(var))

    def total(v):
        return float(np.sum(oracle("gaussian_nll", x, y, reduction=reduction, var=v,
                                   **params)))

    return fd_grad(total, var)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape, var_shape", VAR_LAYOUTS,
                         ids=[f"{s}-{v}" for s, v in VAR_LAYOUTS])
def test_gaussian_nll_var_gradient(shape, var_shape, reduction):
    rng = rng_for("wrt", shape, var_shape)
    x, y = rng.normal(size=shape) * 1.5, rng.normal(size=shape)
    var = 0.9 if var_shape is None else rng.uniform(0.3, 2.0, size=var_shape)
    for params in ({}, {"full": True}, {"sample_weight": rng.uniform(0.2, 2.0, size=shape)}):
        value, grads = lossjit.value_and_grad("gaussian_nll", x, y, reduction=reduction,
                                              var=var, wrt=("predictions", "var"), **params)
        assert isinstance(grads, tuple) and len(grads) == 2
        g_pred, g_var = grads
        expected = oracle("gaussian_nll", x, y, reduction=reduction, var=var, **params)
        np.testing.assert_allclose(value, expected, rtol=VALUE_RTOL, atol=VALUE_ATOL)
        assert g_pred.shape == x.shape
        assert isinstance(g_var, np.ndarray) and g_var.shape == np.shape(var)
        oracle_params = {k: v for k, v in params.items()}
        sw = oracle_params.pop("sample_weight", None)

        def total_x(z, sw=sw, oracle_params=oracle_params):
            return float(np.sum(oracle("gaussian_nll", z, y, reduction=reduction, var=var,
                                       sample_weight=sw, **oracle_params)))

        np.testing.assert_allclose(g_pred, fd_grad(total_x, x), rtol=FD_RTOL, atol=FD_ATOL)
        numeric = fd_var_grad(x, y, var, reduction, params)
        np.testing.assert_allclose(g_var, numeric, rtol=FD_RTOL, atol=FD_ATOL)
        np.testing.assert_allclose(g_var, expected_var_grad(x, y, var, 1e-6, reduction, sw),
                                   rtol=1e-12, atol=1e-15)
        # the predictions' gradient is the plain one; wrt="var" alone gives just g_var
        np.testing.assert_allclose(
            g_pred, lossjit.grad("gaussian_nll", x, y, reduction=reduction, var=var, **params),
            rtol=1e-12, atol=1e-300)
        alone = lossjit.grad("gaussian_nll", x, y, reduction=reduction, var=var, wrt="var",
                             **params)
        assert isinstance(alone, np.ndarray)
        np.testing.assert_allclose(alone, g_var, rtol=1e-12, atol=1e-300)
        v2, g_alone = lossjit.value_and_grad("gaussian_nll", x, y, reduction=reduction,
                                             var=var, wrt="var", **params)
        np.testing.assert_allclose(v2, value, rtol=1e-12)
        np.testing.assert_allclose(g_alone, g_var, rtol=1e-12, atol=1e-300)
        # a tuple gives the gradients in its own order
        swapped = lossjit.grad("gaussian_nll", x, y, reduction=reduction, var=var,
                               wrt=("var", "predictions"), **params)
        np.testing.assert_allclose(swapped[0], g_var, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(swapped[1], g_pred, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("var_shape", [(3, 4), (3, 1), (3,), None])
def test_gaussian_nll_var_gradient_at_the_clamp_is_straight_through(var_shape, reduction):
    """Where var < eps the loss uses eps, and PyTorch's var gradient is still
    0.5 (1/eps - e^2/eps^2): the clamp runs under no_grad (torch 2.13 gives -1.249995e11 for
    e = 0.5, var = 1e-8)."""
    rng = rng_for("clamp", var_shape)
    x, y = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    eps = 1e-6
    if var_shape is None:
        var = 1e-8
    else:
        var = rng.uniform(0.5, 2.0, size=var_shape)
        var.flat[0] = 0.0
        var.flat[-1] = eps / 4
    for params in ({}, {"eps": 1e-3}):
        eps = params.get("eps", 1e-6)
        _, (g_pred, g_var) = lossjit.value_and_grad(
            "gaussian_nll", x, y, reduction=reduction, var=var, wrt=("predictions", "var"),
            **params)
        np.testing.assert_allclose(g_var, expected_var_grad(x, y, var, eps, reduction),
                                   rtol=1e-12, atol=1e-15)
        v = np.maximum(np.broadcast_to(
            np.asarray(var)[..., None] if np.shape(var) == (3,) else var, x.shape), eps)
        scale = 1.0 / x.size if reduction == "mean" else 1.0
        np.testing.assert_allclose(g_pred, scale * (x - y) / v, rtol=1e-12)
    # (finite differences would drown in the clamped terms' ~1e6 here; the formula for the
    # unclamped entries is checked against them in test_gaussian_nll_var_gradient)


@pytest.mark.parametrize("name, wrt", [
    ("gaussian_nll", "targets"), ("gaussian_nll", ("predictions", "targets")),
    ("gaussian_nll", "eps"), ("gaussian_nll", "bogus"), ("mse", "var"), ("mse", "targets"),
    ("cross_entropy", "weight"), ("bce_with_logits", "pos_weight"),
])
def test_wrt_naming_something_not_differentiable_raises(name, wrt):
    rng = rng_for("bad-wrt", name)
    x, t, params = sample_inputs(name, rng)
    if name == "bce_with_logits":
        params = {"pos_weight": np.ones(x.shape[-1])}
    for call in (lossjit.value_and_grad, lossjit.grad):
        with pytest.raises(LossjitError, match="wrt"):
            call(name, x, t, wrt=wrt, **params)


# --- 4. grad_hess -----------------------------------------------------------------------------

HESS_H = 1e-5


def fd_hess_diag(gradient, x, h=HESS_H):
    """Central differences of the gradient's i-th entry along x_i: the Hessian's diagonal."""
    x = np.array(x, dtype=np.float64)
    out = np.empty_like(x)
    flat, oflat = x.reshape(-1), out.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = gradient(x).reshape(-1)[i]
        flat[i] = old - h
        down = gradient(x).reshape(-1)[i]
        flat[i] = old
        oflat[i] = (up - down) / (2 * h)
    return out


def hess_inputs(name, rng, variant):
    """Small float64 inputs away from each loss's kinks (and var's clamp)."""
    if name in ("mse", "log_cosh", "pseudo_huber", "gaussian_nll"):
        return rng.normal(size=(3, 4)) * 1.5, rng.normal(size=(3, 4))
    if name in ("l1", "quantile"):
        return regression_inputs(rng, (3, 4), (0.0,))
    if name in ("huber", "smooth_l1"):
        return regression_inputs(rng, (3, 4), (0.0, 0.5, 1.0, 2.0))
    if name == "poisson_nll":
        return poisson_inputs(rng, (3, 4), variant != "rate")
    if name == "binary_cross_entropy":
        y = rng.integers(0, 2, size=(3, 4)).astype(np.float64)
        y[0, 0] = 0.3
        return rng.uniform(0.1, 0.9, size=(3, 4)), y
    if name in ("bce_with_logits", "sigmoid_focal"):
        y = rng.integers(0, 2, size=(3, 4)).astype(np.float64)
        y[0, 0] = 0.3
        return rng.normal(size=(3, 4)) * 2, y
    if name == "kl_div":
        return kl_inputs(rng, (3, 4), variant == "log_target")
    if name == "hinge_embedding":
        return hinge_inputs(rng, (3, 4), 1.0)
    if name == "soft_margin":
        y = np.where(rng.uniform(size=(3, 4)) < 0.5, 1.0, -1.0)
        y[0, 0] = 0.4
        return rng.normal(size=(3, 4)) * 2, y
    if name == "cross_entropy":
        if variant == "NCd":
            return rng.normal(size=(2, 3, 2)) * 2, np.array([[0, 2], [1, -100]])
        if variant == "soft":
            return rng.normal(size=(4, 3)) * 2, rng.dirichlet(np.ones(3), size=4)
        return rng.normal(size=(4, 3)) * 2, np.array([0, 2, 1, 1])
    raise AssertionError(name)


def has_hessian(name):
    """Whether the loss's default-option call (its layout's first example) runs on a kernel
    set with a Hessian."""
    x, t, options = layout_inputs(name, rng_for("has-hessian", name))
    plan = make_plan(name, hessian=True, **options)
    try:
        plan.kernel_set(plan.lay_out(x, t))
    except LossjitError:
        return False
    return True


#: The losses whose kernels (for their default options) compute a Hessian diagonal.
HESS_LOSSES = frozenset(name for name in NAMES if has_hessian(name))


#: (loss, variant of its inputs, options): every loss the registry gives a Hessian, a few options.
HESS_CASES = [
    ("mse", "", {}),
    ("l1", "", {}),
    ("huber", "", {"delta": 0.5}),
    ("huber", "", {"delta": 2.0}),
    ("smooth_l1", "", {"beta": 0.5}),
    ("smooth_l1", "", {"beta": 1.0}),
    ("log_cosh", "", {}),
    ("pseudo_huber", "", {"delta": 0.5}),
    ("pseudo_huber", "", {"delta": 2.0}),
    ("quantile", "", {"quantile": 0.2}),
    ("quantile", "", {"quantile": 0.7}),
    ("poisson_nll", "", {}),
    ("poisson_nll", "", {"full": True}),
    ("poisson_nll", "rate", {"log_input": False}),
    ("poisson_nll", "rate", {"log_input": False, "full": True, "eps": 0.1}),
    ("gaussian_nll", "", {"var": "full"}),
    ("gaussian_nll", "", {"var": 0.7, "full": True}),
    ("gaussian_nll", "", {"var": "col"}),
    ("binary_cross_entropy", "", {}),
    ("binary_cross_entropy", "", {"weight": "last"}),
    ("bce_with_logits", "", {}),
    ("bce_with_logits", "", {"weight": "last", "pos_weight": "last"}),
    ("sigmoid_focal", "", {}),
    ("sigmoid_focal", "", {"alpha": -1.0, "gamma": 0.5}),
    ("sigmoid_focal", "", {"alpha": 0.75, "gamma": 3.0}),
    ("kl_div", "", {}),
    ("kl_div", "log_target", {"log_target": True}),
    ("hinge_embedding", "", {}),
    ("soft_margin", "", {}),
    ("cross_entropy", "", {}),
    ("cross_entropy", "", {"weight": "classes", "label_smoothing": 0.1, "ignore_index": 1}),
    ("cross_entropy", "soft", {}),
    ("cross_entropy", "soft", {"weight": "classes", "label_smoothing": 0.2}),
    ("cross_entropy", "NCd", {"weight": "classes"}),
]
#: Every other loss with a Hessian: its layout's first example, with that example's options.
HESS_CASES += [(name, "example", {}) for name in sorted(HESS_LOSSES)
               if name not in {case[0] for case in HESS_CASES}]


def test_hess_cases_cover_the_losses_spec_lists():
    """The cases cover exactly the losses whose kernels have a Hessian, which are the losses
    whose declaration says what their Hessian is."""
    assert {name for name, _, _ in HESS_CASES} == HESS_LOSSES
    assert HESS_LOSSES == {spec.name for spec in registry.BUILTIN if spec.hessian}


def hess_params(params, x, rng):
    """Concrete arrays for the placeholder options of HESS_CASES."""
    out = {}
    for key, value in params.items():
        if value == "full":
            value = rng.uniform(0.3, 2.0, size=x.shape)
        elif value == "col":
            value = rng.uniform(0.3, 2.0, size=(x.shape[0], 1))
        elif value == "last":
            value = rng.uniform(0.5, 2.0, size=x.shape[-1])
        elif value == "classes":
            value = rng.uniform(0.5, 2.0, size=x.shape[1])
        out[key] = value
    return out


@pytest.mark.parametrize("name, variant, params", HESS_CASES,
                         ids=[f"{n}-{v}-{sorted(p.items())}" for n, v, p in HESS_CASES])
def test_grad_hess_matches_finite_differences_of_the_gradient(name, variant, params):
    rng = rng_for("hess", name, variant, sorted(params))
    if variant == "example":  # a loss without hand-chosen inputs: its layout's first example
        x, t, params = layout_inputs(name, rng)
    else:
        x, t = hess_inputs(name, rng, variant)
        params = hess_params(params, x, rng)
    for reduction in reductions_of(name):
        g, h = lossjit.grad_hess(name, x, t, reduction=reduction, **params)
        assert g.shape == x.shape and h.shape == x.shape
        assert g.dtype == x.dtype and h.dtype == x.dtype
        np.testing.assert_allclose(
            g, lossjit.grad(name, x, t, reduction=reduction, **params), rtol=1e-12,
            atol=1e-300)

        def gradient(z, reduction=reduction):
            return lossjit.grad(name, z, t, reduction=reduction, **params)

        numeric = fd_hess_diag(gradient, x)
        scale = max(1.0, float(np.abs(numeric).max()))
        np.testing.assert_allclose(h, numeric, rtol=1e-6, atol=1e-8 * scale,
                                   err_msg=f"{name} {reduction}")


@pytest.mark.parametrize("name", ["mse", "bce_with_logits", "cross_entropy", "gaussian_nll"])
def test_grad_hess_with_sample_weight(name):
    """The Hessian of sum(w l) / sum(w c) is sum(w h) / sum(w c): with one weight per term,
    each term's diagonal scales by its weight."""
    rng = rng_for("hess-sw", name)
    x, t, params = sample_inputs(name, rng)
    sw = rng.uniform(0.2, 2.0, size=terms_shape(name, x, t, params))
    factor = per_element(name, sw, x)
    for reduction in REDUCTIONS:
        g, h = lossjit.grad_hess(name, x, t, reduction=reduction, sample_weight=sw, **params)
        np.testing.assert_allclose(
            g, lossjit.grad(name, x, t, reduction=reduction, sample_weight=sw, **params),
            rtol=1e-12, atol=1e-300)

        def gradient(z, reduction=reduction):
            return lossjit.grad(name, z, t, reduction=reduction, sample_weight=sw, **params)

        numeric = fd_hess_diag(gradient, x)
        np.testing.assert_allclose(h, numeric, rtol=1e-6,
                                   atol=1e-8 * max(1.0, float(np.abs(numeric).max())))
        if reduction != "mean":
            _, plain = lossjit.grad_hess(name, x, t, reduction=reduction, **params)
            np.testing.assert_allclose(h, factor * plain, rtol=1e-12, atol=1e-300)


def test_grad_hess_float32_keeps_float32():
    rng = rng_for("hess32")
    x, y = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    g, h = lossjit.grad_hess("log_cosh", x, y)
    assert g.dtype == np.float32 and h.dtype == np.float32
    e = x.astype(np.float64) - y.astype(np.float64)
    np.testing.assert_allclose(h, (1 - np.tanh(e) ** 2) / x.size, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(set(NAMES) - HESS_LOSSES))
def test_grad_hess_on_a_loss_without_one_raises(name):
    rng = rng_for("no-hess", name)
    x, t, params = sample_inputs(name, rng)
    with pytest.raises(LossjitError, match=name):
        lossjit.grad_hess(name, x, t, **params)


def test_grad_hess_on_cross_entropy_of_probabilities_raises():
    p = np.array([[0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    with pytest.raises(LossjitError) as info:
        lossjit.grad_hess("cross_entropy", p, np.array([1, 2]), from_logits=False)
    message = str(info.value)
    assert "cross_entropy" in message or "from_logits" in message, message
