"""NaN and inf in the inputs: ``nan_policy="propagate" | "raise" | "omit"`` (as in SciPy).

1. propagate (the default): for every built-in loss and each of its layout's examples, a NaN
   prediction makes NaN the loss and exactly the gradient and Hessian entries of the terms
   whose loss is NaN (a term: an element, a class row, a pair or triplet); so does an inf that
   makes a NaN (``inf - inf``); checked against PyTorch for the losses it has.
2. raise: a LossjitError names the argument, the first non-finite value and its position, for
   predictions, targets, sample weights and ``var``, in every entry point.
3. omit: for every built-in loss and example, dropping the terms with a NaN prediction,
   target or sample weight gives what the clean inputs give with those terms weighted 0 (the
   gradient and Hessian of the other terms to the bit, 0 for the dropped ones; NaN as their
   per-term loss with ``reduction="none"``); and the NumPy formulas on the finite subset.
4. A call cut into pieces gives the whole call's bits with NaN, under propagate and omit.
"""

import math

import numpy as np
import pytest
from naive import oracle

import lossjit
from lossjit import registry
from lossjit.errors import LossjitError
from lossjit.layouts import ClassAxis, LastAxisClasses, RankPairs, Stacked, examples_for
from lossjit.plan import make_plan, run, run_pieces

#: Every built-in loss with each of its layout's examples (by position).
EXAMPLES = [
    pytest.param(spec.name, index, id=f"{spec.name}-{ex.label}")
    for spec in registry.BUILTIN
    for index, ex in enumerate(examples_for(spec.layout, 24, np.float64, width=4))
]


def example(name, index, dtype=np.float64, size=24, seed=0):
    ex = examples_for(registry.resolve(name).layout, size, dtype, seed=seed, width=4)[index]
    targets = None if ex.targets is None else np.array(ex.targets)
    return np.array(ex.predictions), targets, dict(ex.options)


def has_hessian(name, x, t, options):
    plan = make_plan(name, hessian=True, **options)
    return plan.spec.kernel_set(plan.lay_out(x, t).variant).hessian


def term_ids(name, x, terms_shape):
    """For each prediction, the flat index of the loss term that holds it (by the layout)."""
    ids = np.arange(math.prod(terms_shape)).reshape(terms_shape)
    layout = registry.resolve(name).layout
    if ids.ndim == 0:
        return np.broadcast_to(ids, x.shape)
    if isinstance(layout, ClassAxis):
        ids = np.expand_dims(ids, 1)
    elif isinstance(layout, LastAxisClasses):
        ids = ids[..., None]
    elif isinstance(layout, Stacked):
        ids = ids[:, None, None]
    elif isinstance(layout, RankPairs):
        ids = ids[:, None]
    return np.broadcast_to(ids, x.shape)


def spread(name, per_term, x):
    """A per-term array spread over the predictions each term holds."""
    per_term = np.asarray(per_term)
    return per_term.reshape(-1)[term_ids(name, x, per_term.shape)]


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


# --- 1. propagate -----------------------------------------------------------------------------


@pytest.mark.parametrize("name, index", EXAMPLES)
def test_propagate_makes_nan_the_gradient_of_nan_terms(name, index):
    x, t, options = example(name, index)
    where = x.size // 2
    x.reshape(-1)[where] = np.nan
    terms = np.asarray(lossjit.loss(name, x, t, reduction="none", **options))
    nan_terms = np.isnan(terms)
    expected = spread(name, nan_terms, x)
    if name != "nll":  # nll reads the target's log-probability only
        assert expected.reshape(-1)[where], f"{name}: a NaN prediction left its term finite"
    for reduction in ("mean", "sum", "none"):
        value, grad = lossjit.value_and_grad(name, x, t, reduction=reduction, **options)
        assert np.array_equal(np.isnan(value), nan_terms if reduction == "none"
                              else nan_terms.any())
        np.testing.assert_array_equal(np.isnan(grad), expected, err_msg=f"{name} {reduction}")
    if has_hessian(name, x, t, options):
        grad, hess = lossjit.grad_hess(name, x, t, reduction="sum", **options)
        np.testing.assert_array_equal(np.isnan(grad), expected)
        np.testing.assert_array_equal(np.isnan(hess), expected, err_msg=f"{name} Hessian")


def test_propagate_costs_nothing_on_the_other_terms():
    """The other terms' gradient entries are those of a call without the NaN term (weighted
    0), to the bit: the NaN is written over the NaN terms only."""
    rng = np.random.default_rng(4)
    x, t = rng.normal(size=(6, 4)), np.array([0, 1, 2, 3, 0, 1])
    clean = lossjit.grad("cross_entropy", x, t, reduction="sum")
    x[2, 3] = np.nan
    grad = lossjit.grad("cross_entropy", x, t, reduction="sum")
    assert np.isnan(grad[2]).all()
    np.testing.assert_array_equal(np.delete(grad, 2, axis=0), np.delete(clean, 2, axis=0))


@pytest.mark.parametrize("name, x, t", [
    ("mse", np.array([np.inf, 1.0, 2.0]), np.array([np.inf, 0.0, 0.0])),  # inf - inf
    ("huber", np.array([-np.inf, 1.0]), np.array([-np.inf, 0.0])),
    ("l1", np.array([np.inf, 0.5]), np.array([np.inf, 0.0])),
    ("cross_entropy", np.array([[np.inf, 0.0, 1.0], [0.2, 0.1, 0.0]]), np.array([1, 0])),
    ("margin_ranking", np.array([[np.inf, np.inf], [0.3, 0.1]]), np.array([1.0, -1.0])),
])
def test_an_inf_that_makes_nan_propagates(name, x, t):
    terms = lossjit.loss(name, x, t, reduction="none")
    assert np.isnan(terms[0]) and np.isfinite(terms[1:]).all()
    value, grad = lossjit.value_and_grad(name, x, t)
    assert math.isnan(value)
    assert np.isnan(grad[0]).all() and np.isfinite(grad[1:]).all()


def test_an_inf_loss_is_not_a_nan():
    """inf is a loss, not an undefined one: its gradient keeps the kernel's values."""
    value, grad = lossjit.value_and_grad("mse", np.array([np.inf, 1.0]), np.zeros(2),
                                         reduction="sum")
    assert value == np.inf
    assert grad[0] == np.inf and grad[1] == 2.0


def test_propagate_for_a_registered_pointwise_loss():
    from numba import njit

    @njit
    def clipped(x, y):
        e = x - y
        return min(e * e, 4.0), (2.0 * e if e * e < 4.0 else 0.0)  # min() drops NaN

    lossjit.register("nan_clipped_square", pointwise=clipped, replace=True)
    try:
        value, grad = lossjit.value_and_grad("nan_clipped_square", np.array([np.nan, 1.0]),
                                             np.zeros(2))
    finally:
        registry._specs.pop("nan_clipped_square", None)
        registry._aliases.pop("nan_clipped_square", None)
    assert math.isnan(value) and math.isnan(grad[0]) and grad[1] == 1.0


# PyTorch: the loss (and per-term losses) agree; our NaN gradient entries are exactly the NaN
# terms'; every NaN of PyTorch's gradient is among them; the other entries agree. Not here:
# binary_cross_entropy (PyTorch refuses NaN) and multi_margin (PyTorch's hinge drops a NaN:
# lossjit keeps it, as every loss does).

def _torch_cases():
    rng = np.random.default_rng(11)
    probs = rng.uniform(0.05, 0.95, (4, 3))
    labels = np.array([1.0, -1.0, -1.0, 1.0])
    pairs = rng.normal(size=(4, 2, 3))
    return [
        ("mse", {}, rng.normal(size=(4, 3)), rng.normal(size=(4, 3)),
         lambda F, x, y, r: F.mse_loss(x, y, reduction=r)),
        ("l1", {}, rng.normal(size=(4, 3)), rng.normal(size=(4, 3)),
         lambda F, x, y, r: F.l1_loss(x, y, reduction=r)),
        ("huber", {"delta": 0.7}, rng.normal(size=(4, 3)), rng.normal(size=(4, 3)),
         lambda F, x, y, r: F.huber_loss(x, y, reduction=r, delta=0.7)),
        ("smooth_l1", {}, rng.normal(size=(4, 3)), rng.normal(size=(4, 3)),
         lambda F, x, y, r: F.smooth_l1_loss(x, y, reduction=r)),
        ("cross_entropy", {}, rng.normal(size=(4, 3)), np.array([0, 1, 2, 1]),
         lambda F, x, y, r: F.cross_entropy(x, y, reduction=r)),
        ("cross_entropy", {"label_smoothing": 0.1}, rng.normal(size=(4, 3)),
         np.array([0, 1, 2, 1]),
         lambda F, x, y, r: F.cross_entropy(x, y, reduction=r, label_smoothing=0.1)),
        ("cross_entropy", {}, rng.normal(size=(4, 3)), probs / probs.sum(1, keepdims=True),
         lambda F, x, y, r: F.cross_entropy(x, y, reduction=r)),
        ("nll", {}, np.log(probs / probs.sum(1, keepdims=True)), np.array([0, 1, 2, 1]),
         lambda F, x, y, r: F.nll_loss(x, y, reduction=r)),
        ("bce_with_logits", {}, rng.normal(size=(4, 3)), rng.integers(0, 2, (4, 3)) * 1.0,
         lambda F, x, y, r: F.binary_cross_entropy_with_logits(x, y, reduction=r)),
        ("kl_div", {}, np.log(probs), probs[::-1].copy(),
         lambda F, x, y, r: F.kl_div(x, y, reduction=r)),
        ("hinge_embedding", {}, rng.uniform(0, 2, 4), labels,
         lambda F, x, y, r: F.hinge_embedding_loss(x, y, reduction=r)),
        ("soft_margin", {}, rng.normal(size=4), labels,
         lambda F, x, y, r: F.soft_margin_loss(x, y, reduction=r)),
        ("multilabel_soft_margin", {}, rng.normal(size=(4, 3)),
         rng.integers(0, 2, (4, 3)) * 1.0,
         lambda F, x, y, r: F.multilabel_soft_margin_loss(x, y, reduction=r)),
        ("poisson_nll", {}, rng.normal(size=(4, 3)), rng.poisson(2.0, (4, 3)) * 1.0,
         lambda F, x, y, r: F.poisson_nll_loss(x, y, reduction=r)),
        ("gaussian_nll", {"var": 0.5}, rng.normal(size=(4, 3)), rng.normal(size=(4, 3)),
         lambda F, x, y, r: F.gaussian_nll_loss(x, y, F.torch.full((4, 3), 0.5,
                                                                   dtype=F.torch.float64),
                                                reduction=r)),
        ("triplet", {}, rng.normal(size=(4, 3, 3)), None,
         lambda F, x, y, r: F.triplet_margin_loss(x[:, 0], x[:, 1], x[:, 2], reduction=r)),
        ("cosine_embedding", {}, pairs, labels,
         lambda F, x, y, r: F.cosine_embedding_loss(x[:, 0], x[:, 1], y, reduction=r)),
        ("margin_ranking", {}, rng.normal(size=(4, 2)), labels,
         lambda F, x, y, r: F.margin_ranking_loss(x[:, 0], x[:, 1], y, reduction=r)),
    ]


TORCH_CASES = [pytest.param(*case, id=f"{case[0]}-{i}") for i, case in enumerate(_torch_cases())]


@pytest.mark.parametrize("name, options, x, t, torch_loss", TORCH_CASES)
def test_propagate_agrees_with_pytorch(name, options, x, t, torch_loss):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    F.torch = torch
    x = np.array(x, dtype=np.float64)
    x.reshape(-1)[x.size // 2] = np.nan
    for reduction in ("mean", "sum", "none"):
        tx = torch.tensor(x, requires_grad=True)
        ty = None if t is None else torch.tensor(t)
        expected = torch_loss(F, tx, ty, reduction)
        expected.sum().backward()
        value, grad = lossjit.value_and_grad(name, x, t, reduction=reduction, **options)
        np.testing.assert_allclose(value, expected.detach().numpy(), rtol=1e-12, atol=1e-14)
        theirs = tx.grad.numpy()
        nan_terms = np.isnan(np.asarray(lossjit.loss(name, x, t, reduction="none", **options)))
        np.testing.assert_array_equal(np.isnan(grad), spread(name, nan_terms, x))
        assert not (np.isnan(theirs) & ~np.isnan(grad)).any(), (name, theirs, grad)
        both = np.isfinite(theirs) & np.isfinite(grad)
        np.testing.assert_allclose(grad[both], theirs[both], rtol=1e-12, atol=1e-14)


# --- 2. raise ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, shown", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_raise_names_the_first_non_finite_prediction(bad, shown):
    x = np.zeros((5, 2))
    x[3, 1] = bad
    x[4, 0] = np.nan
    message = rf"^predictions: {shown} at position \(3, 1\); nan_policy='raise'"
    for call in (lossjit.value_and_grad, lossjit.loss, lossjit.grad, lossjit.grad_hess):
        with pytest.raises(LossjitError, match=message):
            call("mse", x, np.zeros((5, 2)), nan_policy="raise")
    with pytest.raises(LossjitError, match=message):
        lossjit.get("mse", nan_policy="raise").forward(x, np.zeros((5, 2)))
    with pytest.raises(LossjitError, match=message):
        lossjit.check_grad("mse", x, np.zeros((5, 2)), nan_policy="raise")
    with pytest.raises(LossjitError, match=message):
        run_pieces(make_plan("mse", nan_policy="raise"), x, np.zeros((5, 2)))
    with pytest.raises(LossjitError, match=message):
        lossjit.api.compute("mse", x, np.zeros((5, 2)), nan_policy="raise")


def test_raise_names_targets_sample_weights_and_var():
    x = np.zeros((3, 4))
    t = np.zeros((3, 4))
    t[2, 0] = np.nan
    with pytest.raises(LossjitError, match=r"^targets: NaN at position \(2, 0\); nan_policy="):
        lossjit.loss("mse", x, t, nan_policy="raise")
    soft = np.full((3, 4), 0.25)
    soft[1, 2] = np.inf
    with pytest.raises(LossjitError, match=r"^targets: inf at position \(1, 2\)"):
        lossjit.loss("cross_entropy", x, soft, nan_policy="raise")
    with pytest.raises(LossjitError, match=r"^sample_weight: NaN at position \(1,\); nan_"):
        lossjit.loss("cross_entropy", x, np.array([0, 1, 2]), sample_weight=[1.0, np.nan, 1.0],
                     nan_policy="raise")
    var = np.ones((3, 4))
    var[0, 3] = np.nan
    with pytest.raises(LossjitError, match=r"^var: NaN at position \(0, 3\)"):
        lossjit.loss("gaussian_nll", x, np.zeros((3, 4)), var=var, nan_policy="raise")


def test_raise_passes_finite_inputs_unchanged():
    rng = np.random.default_rng(2)
    x, t = rng.normal(size=(5, 3)), np.array([0, 1, 2, 0, 1])
    assert same_bits(lossjit.value_and_grad("cross_entropy", x, t, nan_policy="raise")[1],
                     lossjit.value_and_grad("cross_entropy", x, t)[1])


def test_a_bad_nan_policy_is_refused():
    for call in (lambda: lossjit.loss("mse", np.zeros(2), np.zeros(2), nan_policy="drop"),
                 lambda: lossjit.get("mse", nan_policy="ignore"),
                 lambda: make_plan("mse", nan_policy=None)):
        with pytest.raises(LossjitError, match="nan_policy: expected one of propagate, raise, "
                                               "omit"):
            call()


def test_nan_weights_are_refused_unless_omitted():
    x = np.zeros(3)
    with pytest.raises(LossjitError, match=r"weights must be finite and >= 0, got NaN at "
                                           r"position \(1,\).*nan_policy='omit'"):
        lossjit.loss("mse", x, x, sample_weight=[1.0, np.nan, 1.0])
    with pytest.raises(LossjitError, match=r"got inf at position \(2,\)"):
        lossjit.loss("mse", x, x, sample_weight=[1.0, 1.0, np.inf], nan_policy="omit")


# --- 3. omit ----------------------------------------------------------------------------------


def _with_nans(name, x, t, options, rng):
    """NaN put into three terms: one by a prediction, one by a target (where targets are
    floats of the predictions' or the terms' shape), one by its sample weight. Returns the
    inputs with NaN, the clean weights with those terms at 0, and the omitted terms."""
    terms_shape = np.shape(lossjit.loss(name, x, t, reduction="none", **options))
    ids = term_ids(name, x, terms_shape)
    count = math.prod(terms_shape)
    if count < 4:
        pytest.skip("one term")
    picked = rng.choice(count, 3, replace=False)
    x_nan, t_nan = x.copy(), None if t is None else t.copy()
    x_nan.reshape(-1)[np.flatnonzero(ids == picked[0])[-1]] = np.nan
    omitted = {int(picked[0]), int(picked[2])}
    if t is not None and t.dtype.kind == "f":
        if t.shape == x.shape:
            t_nan.reshape(-1)[np.flatnonzero(ids == picked[1])[0]] = np.nan
            omitted.add(int(picked[1]))
        elif t.size == count:
            t_nan.reshape(-1)[picked[1]] = np.nan
            omitted.add(int(picked[1]))
    sw = rng.uniform(0.5, 2.0, count)
    sw_nan = sw.copy()
    sw_nan[picked[2]] = np.nan
    mask = np.zeros(count, bool)
    mask[sorted(omitted)] = True
    kept_sw = np.where(mask, 0.0, sw)
    return (x_nan, t_nan, sw_nan.reshape(terms_shape), kept_sw.reshape(terms_shape),
            mask.reshape(terms_shape))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, index", EXAMPLES)
def test_omit_is_weighting_the_nan_terms_zero(name, index, dtype):
    x, t, options = example(name, index, dtype, size=48)
    if registry.resolve(name).targets == "none":
        t = None
    x_nan, t_nan, sw_nan, kept_sw, mask = _with_nans(name, x, t, options,
                                                          np.random.default_rng(index))
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    for reduction in registry.resolve(name).reductions:
        value, grad = lossjit.value_and_grad(name, x_nan, t_nan, sample_weight=sw_nan,
                                             reduction=reduction, nan_policy="omit", **options)
        e_value, e_grad = lossjit.value_and_grad(name, x, t, sample_weight=kept_sw,
                                                 reduction=reduction, **options)
        assert same_bits(grad, e_grad), (name, reduction, grad, e_grad)
        assert (grad[spread(name, mask, x)] == 0).all()
        if reduction == "none":
            assert np.isnan(value[mask]).all()
            assert same_bits(value[~mask], e_value[~mask])
        else:
            assert math.isclose(value, e_value, rel_tol=rtol, abs_tol=1e-300), (value, e_value)
    if has_hessian(name, x, t, options):
        g, h = lossjit.grad_hess(name, x_nan, t_nan, sample_weight=sw_nan, nan_policy="omit",
                                 **options)
        e_g, e_h = lossjit.grad_hess(name, x, t, sample_weight=kept_sw, **options)
        assert same_bits(g, e_g) and same_bits(h, e_h)


def test_omit_is_the_mean_over_the_finite_subset():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=40), rng.normal(size=40)
    x[[3, 17]] = np.nan
    y[25] = np.nan
    keep = np.isfinite(x) & np.isfinite(y)
    for name in ("mse", "l1", "huber", "log_cosh", "bce_with_logits"):
        yy = (y > 0) * 1.0 if name == "bce_with_logits" else y
        yy = np.where(np.isnan(y), np.nan, yy)
        value, grad = lossjit.value_and_grad(name, x, yy, nan_policy="omit")
        assert math.isclose(value, oracle(name, x[keep], yy[keep]), rel_tol=1e-12)
        assert (grad[~keep] == 0).all()
        sub = lossjit.grad(name, x[keep], yy[keep])
        np.testing.assert_allclose(grad[keep], sub, rtol=1e-13, atol=1e-16)
        # sum: the sum over the subset; none: NaN for the omitted terms
        assert math.isclose(lossjit.loss(name, x, yy, reduction="sum", nan_policy="omit"),
                            oracle(name, x[keep], yy[keep], reduction="sum"), rel_tol=1e-12)
        terms = lossjit.loss(name, x, yy, reduction="none", nan_policy="omit")
        assert np.isnan(terms[~keep]).all()
        np.testing.assert_allclose(terms[keep], oracle(name, x[keep], yy[keep], "none"),
                                   rtol=1e-12)


def test_omit_drops_whole_class_rows_with_their_weights():
    rng = np.random.default_rng(6)
    x, t = rng.normal(size=(7, 4)), np.array([0, 3, 1, 2, -100, 1, 0])
    weight = np.array([1.0, 2.0, 0.5, 1.5])
    x[1, 2] = np.nan  # not at the target: the row is dropped all the same
    keep = np.array([True, False, True, True, True, True, True])
    value, grad = lossjit.value_and_grad("cross_entropy", x, t, weight=weight,
                                         nan_policy="omit")
    expected = oracle("cross_entropy", x[keep], t[keep], weight=weight)
    assert math.isclose(value, expected, rel_tol=1e-12)
    assert (grad[1] == 0).all()
    np.testing.assert_allclose(grad[keep], lossjit.grad("cross_entropy", x[keep], t[keep],
                                                        weight=weight), rtol=1e-13)
    soft = np.full((7, 4), 0.25)
    soft[5, 0] = np.nan
    value = lossjit.loss("cross_entropy", np.nan_to_num(x), soft, nan_policy="omit")
    assert math.isclose(value, oracle("cross_entropy", np.nan_to_num(x)[np.arange(7) != 5],
                                      soft[np.arange(7) != 5]), rel_tol=1e-12)


def test_omit_of_every_term_follows_empty():
    x = np.array([np.nan, np.nan])
    assert math.isnan(lossjit.loss("mse", x, np.zeros(2), nan_policy="omit"))
    assert lossjit.loss("mse", x, np.zeros(2), nan_policy="omit", empty="zero") == 0.0
    assert lossjit.loss("mse", x, np.zeros(2), nan_policy="omit", reduction="sum") == 0.0
    with pytest.raises(LossjitError, match="zero terms"):
        lossjit.loss("mse", x, np.zeros(2), nan_policy="omit", empty="error")
    value, grad = lossjit.value_and_grad("mse", x, np.zeros(2), nan_policy="omit")
    assert (grad == 0).all()


def test_omit_keeps_an_inf_that_makes_nan():
    """omit drops NaN inputs only; a NaN made of infinities propagates (as SciPy's omit)."""
    x, y = np.array([np.inf, 1.0, np.nan]), np.array([np.inf, 0.0, 0.0])
    value, grad = lossjit.value_and_grad("mse", x, y, nan_policy="omit")
    assert math.isnan(value)
    assert np.isnan(grad[0]) and grad[1] == 1.0 and grad[2] == 0.0


def test_omit_in_loss_objects_and_check_grad():
    x, y = np.array([0.5, np.nan, 2.0, -1.0]), np.array([0.0, 1.0, np.nan, 0.5])
    mse = lossjit.get("mse", nan_policy="omit")
    assert "nan_policy='omit'" in repr(mse)
    assert mse.forward(x, y) == 0.5 * (0.25 + 2.25)
    np.testing.assert_array_equal(mse.backward(x, y), [0.5, 0.0, 0.0, -1.5])
    assert lossjit.check_grad("mse", x, y, nan_policy="omit").ok(1e-6)
    assert lossjit.check_grad("log_cosh", x, y, nan_policy="omit", reduction="none").ok(1e-6)
    assert not lossjit.check_grad("mse", x, y).ok(1e-6)


# --- 4. pieces --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [spec.name for spec in registry.BUILTIN])
def test_pieces_give_the_whole_bits_with_nan(name):
    spec = registry.resolve(name)
    ex = examples_for(spec.layout, 1, np.float64, width=3)[0]
    multiple = spec.layout.cut(np.shape(ex.predictions), make_plan(name, **ex.options).options)
    # 4 multiples of the cut and a remainder (the cut is a kernel block of rows)
    rows = 4 * (multiple or 1) + 3
    size = rows * max(1, np.size(ex.predictions) // max(1, np.shape(ex.predictions)[0]))
    x, t, options = example(name, 0, size=size, seed=1)
    if registry.resolve(name).targets == "none":
        t = None
    multiple = spec.layout.cut(x.shape, make_plan(name, **options).options)
    if multiple is None or x.shape[0] < 3 * multiple:
        pytest.skip("cannot be cut")
    rng = np.random.default_rng(3)
    x.reshape(-1)[rng.choice(x.size // 2, 5, replace=False)] = np.nan  # in the first pieces
    bounds = [multiple, 3 * multiple]
    for policy in ("propagate", "omit"):
        for reduction in ("mean", "none"):
            plan = make_plan(name, reduction=reduction, nan_policy=policy, **options)
            whole, cut = run(plan, x, t), run_pieces(plan, x, t, bounds=bounds)
            assert same_bits(whole.value, cut.value), (name, policy, reduction)
            assert same_bits(whole.grads["predictions"], cut.grads["predictions"])
            if policy == "omit" and reduction == "mean":
                assert not math.isnan(whole.value)
