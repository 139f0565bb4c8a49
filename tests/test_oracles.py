"""Checks of the NumPy test oracle (tests/naive.py) against PyTorch's golden values.

tests/golden/torch_cases.json holds loss values computed by PyTorch (see
tests/golden/make_golden.py); every case's value must be reproduced by the oracle, with the
case's ``sample_weight`` and ``empty`` (in its params) too. Where a case records PyTorch's
gradient w.r.t. gaussian_nll's ``var`` ("var_grad"), the oracle's finite differences w.r.t.
var must match it away from the clamp. Then identities between the oracle's own losses, and
its sample_weight / empty / batchmean rules. These tests need neither torch nor lossjit's
kernels: of lossjit they read only the registry (which imports no Numba), for which losses
have which options.
"""

import ast
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from naive import LOSSES, REDUCTIONS, oracle, reductions_of  # noqa: E402

from lossjit import registry  # noqa: E402

GOLDEN_PATH = TESTS_DIR / "golden" / "torch_cases.json"
GOLDEN = json.loads(GOLDEN_PATH.read_text())


def _torch_defined():
    """The losses tests/golden/make_golden.py defines in PyTorch (the keys of its
    TORCH_LOSSES), read from its source, as the generator needs torch to import: the keys of
    its module-level dict literals, with ``**other`` taking other's."""
    tree = ast.parse((TESTS_DIR / "golden" / "make_golden.py").read_text())
    dicts = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Dict)):
            keys = set()
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                if key is None:  # **other
                    keys |= dicts[value.id]
                else:
                    keys.add(ast.literal_eval(key))
            dicts[node.targets[0].id] = keys
    return frozenset(dicts["TORCH_LOSSES"])


#: The losses with a PyTorch definition in the golden generator.
TORCH_DEFINED = _torch_defined()

#: The losses with an ignore_index option (their class-index targets can all be ignored).
IGNORE_INDEX_LOSSES = tuple(spec.name for spec in registry.BUILTIN
                            if "ignore_index" in {p.name for p in spec.params})

RTOL = 1e-12
ATOL = 1e-14


def golden_arrays(case):
    """The case's (predictions, targets) as NumPy arrays of their recorded dtypes."""
    predictions = np.asarray(case["predictions"], dtype=case["predictions_dtype"])
    targets = case["targets"]
    if targets is not None:
        targets = np.asarray(targets, dtype=case["targets_dtype"])
    return predictions, targets


@pytest.mark.parametrize("case", GOLDEN, ids=[case["id"] for case in GOLDEN])
def test_oracle_matches_torch(case):
    predictions, targets = golden_arrays(case)
    if case["loss_value"] is None:  # a mean over nothing with empty="error": no value
        assert case["params"].get("empty") == "error", case["id"]
        with pytest.raises(ValueError):
            oracle(case["loss"], predictions, targets, reduction=case["reduction"],
                   **case["params"])
        return
    value = oracle(
        case["loss"], predictions, targets, reduction=case["reduction"], **case["params"]
    )
    expected = np.asarray(case["loss_value"], dtype=np.float64)
    assert np.shape(value) == expected.shape
    np.testing.assert_allclose(value, expected, rtol=RTOL, atol=ATOL, equal_nan=True)


def test_golden_covers_every_loss_and_reduction():
    """Every loss the generator defines in PyTorch has golden cases for each of its
    reductions, and there are no others."""
    covered = {(case["loss"], case["reduction"]) for case in GOLDEN}
    assert covered == {(name, r) for name in LOSSES if name in TORCH_DEFINED
                       for r in reductions_of(name)}


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_loss_has_golden_cases(name):
    """Each registered loss has an oracle and, where the golden generator defines it in
    PyTorch, golden cases for each of its reductions; a loss it does not define has none, and
    its spec names no PyTorch function as its reference."""
    assert name in LOSSES, f"{name}: no oracle in tests/naive.py"
    covered = {case["reduction"] for case in GOLDEN if case["loss"] == name}
    if name not in TORCH_DEFINED:
        assert not covered
        assert "PyTorch" not in registry.resolve(name).reference
        return
    assert covered == set(reductions_of(name))


@pytest.mark.parametrize("case", GOLDEN, ids=[case["id"] for case in GOLDEN])
def test_golden_gradient_has_predictions_shape(case):
    predictions, _ = golden_arrays(case)
    if case["grad"] is not None:
        assert np.asarray(case["grad"], dtype=np.float64).shape == predictions.shape
    if case.get("hess") is not None:
        assert np.asarray(case["hess"], dtype=np.float64).shape == predictions.shape
    if case.get("var_grad") is not None:
        assert np.shape(case["var_grad"]) == np.shape(case["params"]["var"])


VAR_CASES = [case for case in GOLDEN if case.get("var_grad") is not None]


@pytest.mark.parametrize("case", VAR_CASES, ids=[case["id"] for case in VAR_CASES])
def test_oracle_var_gradient_matches_torch(case):
    """Central differences of the oracle w.r.t. each var entry at least 10 eps above the clamp
    (where the loss is smooth in var) reproduce PyTorch's var gradient."""
    predictions, targets = golden_arrays(case)
    params = dict(case["params"])
    var = np.array(params.pop("var"), dtype=np.float64)
    eps = params.get("eps", 1e-6)
    expected = np.asarray(case["var_grad"], dtype=np.float64)

    def total(v):
        value = oracle(case["loss"], predictions, targets, reduction=case["reduction"],
                       var=v if var.ndim else float(v), **params)
        return float(np.sum(value))

    checked = 0
    flat = var.reshape(-1)
    for i in range(flat.size):
        if not flat[i] >= 10 * eps:
            continue
        h = 1e-6 * flat[i]
        up, down = flat.copy(), flat.copy()
        up[i] += h
        down[i] -= h
        numeric = (total(up.reshape(var.shape)) - total(down.reshape(var.shape))) / (up[i]
                                                                                      - down[i])
        np.testing.assert_allclose(numeric, expected.reshape(-1)[i], rtol=1e-6,
                                   atol=1e-8 * max(1.0, np.abs(expected).max()))
        checked += 1
    assert checked or var.size == 0


def test_seed_mse_example():
    value = oracle("mse", [1.5, 2.3, 0.8], [1.0, 2.0, 1.0])
    assert round(value, 6) == 0.126667


def test_focal_with_gamma_zero_is_cross_entropy():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(6, 5))
    y = np.array([0, 4, 2, -100, 1, 3])
    for reduction in REDUCTIONS:
        np.testing.assert_allclose(
            oracle("focal", x, y, reduction=reduction, gamma=0.0),
            oracle("cross_entropy", x, y, reduction=reduction),
            rtol=1e-14,
        )


def test_empty_mean_is_nan():
    x = np.zeros((3, 4))
    assert math.isnan(oracle("cross_entropy", x, np.full(3, -100)))
    assert math.isnan(oracle("focal", x, np.full(3, -100)))
    assert math.isnan(oracle("mse", np.zeros(0), np.zeros(0)))
    assert oracle("mse", np.zeros(0), np.zeros(0), reduction="sum") == 0.0


def test_masked_class_contributes_nothing():
    x = np.array([[0.0, -np.inf, 1.0]])
    finite = oracle("cross_entropy", x[:, [0, 2]], np.array([1]))
    assert oracle("cross_entropy", x, np.array([2])) == pytest.approx(finite, rel=1e-15)
    assert oracle("cross_entropy", x, np.array([1])) == math.inf


# --- identities between the oracle's losses ---------------------------------------------------


def log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_of_log_softmax_is_cross_entropy(reduction):
    rng = np.random.default_rng(11)
    for shape, tshape in (((4,), ()), ((6, 4), (6,)), ((2, 4, 3), (2, 3))):
        x = rng.normal(size=shape) * 2
        t = rng.integers(0, 4, size=tshape)
        if t.ndim:
            t.flat[0] = -100
        axis = 0 if x.ndim == 1 else 1
        for weight in (None, np.array([0.5, 2.0, 1.0, 1.5])):
            np.testing.assert_allclose(
                oracle("nll", log_softmax(x, axis), t, reduction=reduction, weight=weight),
                oracle("cross_entropy", x, t, reduction=reduction, weight=weight),
                rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_poly1_with_epsilon_zero_is_cross_entropy(reduction):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(6, 5))
    index = np.array([0, 4, 2, -100, 1, 3])
    soft = rng.dirichlet(np.ones(5), size=6)
    for t in (index, soft):
        np.testing.assert_allclose(oracle("poly1", x, t, reduction=reduction, epsilon=0.0),
                                   oracle("cross_entropy", x, t, reduction=reduction),
                                   rtol=1e-14)
    # epsilon adds epsilon (1 - p_y) per kept term; one-hot and index targets agree
    onehot = np.eye(5)[[0, 4, 2, 1]]
    np.testing.assert_allclose(
        oracle("poly1", x[[0, 1, 2, 4]], onehot, reduction=reduction, epsilon=2.0),
        oracle("poly1", x[[0, 1, 2, 4]], np.array([0, 4, 2, 1]), reduction=reduction,
               epsilon=2.0), rtol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_logistic_identities(reduction):
    """soft_margin with y = +-1 is bce_with_logits with targets (1 + y) / 2;
    multilabel_soft_margin is bce_with_logits averaged over the last axis."""
    rng = np.random.default_rng(13)
    x = rng.normal(size=(3, 4)) * 3
    y = np.where(rng.uniform(size=(3, 4)) < 0.5, 1.0, -1.0)
    np.testing.assert_allclose(oracle("soft_margin", x, y, reduction=reduction),
                               oracle("bce_with_logits", x, (1 + y) / 2, reduction=reduction),
                               rtol=1e-14)
    t = rng.uniform(size=(3, 4))
    w = np.array([0.5, 1.0, 2.0, 3.0])
    per_row = oracle("bce_with_logits", x, t, reduction="none", weight=w).mean(axis=-1)
    expected = {"none": per_row, "sum": per_row.sum(), "mean": per_row.mean()}[reduction]
    np.testing.assert_allclose(
        oracle("multilabel_soft_margin", x, t, reduction=reduction, weight=w), expected,
        rtol=1e-14)


def test_regression_formulas_at_chosen_points():
    x, y = np.array([0.0, 3.0, -2.0]), np.array([1.0, 1.0, 1.0])  # e = -1, 2, -3
    np.testing.assert_allclose(oracle("log_cosh", x, y, reduction="none"),
                               np.log(np.cosh([-1.0, 2.0, -3.0])), rtol=1e-15)
    np.testing.assert_allclose(oracle("pseudo_huber", x, y, reduction="none", delta=2.0),
                               4.0 * (np.sqrt(1 + np.array([0.25, 1.0, 2.25])) - 1), rtol=1e-15)
    # pinball with q = 0.25: e' = y - x = 1, -2, 3 -> 0.25, 1.5, 0.75
    np.testing.assert_allclose(oracle("pinball", x, y, reduction="none", quantile=0.25),
                               [0.25, 1.5, 0.75], rtol=1e-15)
    assert oracle("quantile", x, y, quantile=0.25) == pytest.approx(2.5 / 3, rel=1e-15)
    assert oracle("log_cosh", np.array([1000.0]), np.array([0.0])) == pytest.approx(
        1000.0 - math.log(2.0), rel=1e-15)
    # Stirling term only where y > 1
    stirling = 3 * math.log(3) - 3 + 0.5 * math.log(2 * math.pi * 3)
    np.testing.assert_allclose(
        oracle("poisson_nll", np.array([0.5, 0.5]), np.array([1.0, 3.0]), reduction="none",
               full=True),
        [math.exp(0.5) - 0.5, math.exp(0.5) - 1.5 + stirling], rtol=1e-15)


def test_gaussian_nll_var_shapes_and_clamp():
    rng = np.random.default_rng(14)
    x, y = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    full = rng.uniform(0.5, 2.0, size=(3, 4))
    expected = 0.5 * (np.log(full) + (x - y) ** 2 / full)
    np.testing.assert_allclose(oracle("gaussian_nll", x, y, reduction="none", var=full),
                               expected, rtol=1e-15)
    row = full[:, :1]
    for var in (row, row[:, 0]):  # (3, 1) and (3,), unsqueezed at -1
        np.testing.assert_allclose(
            oracle("gaussian_nll", x, y, reduction="none", var=var),
            0.5 * (np.log(row) + (x - y) ** 2 / row), rtol=1e-15)
    col = full[:1]
    np.testing.assert_allclose(oracle("gaussian_nll", x, y, reduction="none", var=col),
                               0.5 * (np.log(col) + (x - y) ** 2 / col), rtol=1e-15)
    np.testing.assert_allclose(oracle("gaussian_nll", x, y, reduction="none", var=0.5),
                               0.5 * (np.log(0.5) + (x - y) ** 2 / 0.5), rtol=1e-15)
    clamped = oracle("gaussian_nll", x, y, reduction="none", var=0.0, eps=1e-3, full=True)
    np.testing.assert_allclose(
        clamped, 0.5 * (np.log(1e-3) + (x - y) ** 2 / 1e-3) + 0.5 * math.log(2 * math.pi),
        rtol=1e-15)
    for bad in (np.ones((1, 1)), np.ones(4), np.ones((3, 4, 1)), -0.5, None):
        with pytest.raises(ValueError):
            oracle("gaussian_nll", x, y, var=bad)


def test_kl_div_zero_targets_and_batchmean():
    x = np.array([[-np.inf, -0.5, -1.0], [-2.0, -0.1, -np.inf]])
    y = np.array([[0.0, 0.7, 0.3], [0.2, 0.8, 0.0]])
    terms = oracle("kl_div", x, y, reduction="none")
    assert terms[0, 0] == 0.0 and terms[1, 2] == 0.0
    assert oracle("kl_div", x, y, reduction="batchmean") == pytest.approx(terms.sum() / 2,
                                                                          rel=1e-15)
    assert oracle("kl_div", x, y) == pytest.approx(terms.sum() / 6, rel=1e-15)
    logy = np.log(y[0, 1:])
    np.testing.assert_allclose(oracle("kl_div", x[0, 1:], logy, reduction="none",
                                      log_target=True), terms[0, 1:], rtol=1e-15)
    assert oracle("kl_div", np.float64(-0.5), np.float64(0.25), reduction="batchmean") == (
        pytest.approx(0.25 * (math.log(0.25) + 0.5), rel=1e-15))
    with pytest.raises(ValueError):
        oracle("mse", x, y, reduction="batchmean")


def test_sample_weight_rules():
    rng = np.random.default_rng(15)
    x = rng.normal(size=(5, 3))
    t = np.array([0, 2, -100, 1, 2])
    weight = np.array([0.5, 2.0, 3.0])
    sw = np.array([1.0, 0.5, 4.0, 2.0, 0.0])
    terms = oracle("cross_entropy", x, t, reduction="none", weight=weight)
    shares = np.array([0.5, 3.0, 0.0, 2.0, 3.0])  # weight[y], 0 where ignored
    np.testing.assert_allclose(
        oracle("cross_entropy", x, t, reduction="none", weight=weight, sample_weight=sw),
        sw * terms, rtol=1e-15)
    assert oracle("cross_entropy", x, t, weight=weight, sample_weight=sw) == pytest.approx(
        (sw * terms).sum() / (sw * shares).sum(), rel=1e-14)
    assert oracle("cross_entropy", x, t, reduction="sum", weight=weight,
                  sample_weight=sw) == pytest.approx((sw * terms).sum(), rel=1e-14)
    focal_terms = oracle("focal", x, t, reduction="none")
    assert oracle("focal", x, t, sample_weight=sw) == pytest.approx(
        (sw * focal_terms).sum() / (sw * (t != -100)).sum(), rel=1e-14)
    # broadcasting to the terms' shape, ones = no weight, a common factor cancels in the mean
    y = rng.normal(size=(5, 3))
    column = np.array([[1.0], [2.0], [0.5], [1.0], [3.0]])
    np.testing.assert_allclose(oracle("mse", x, y, reduction="none", sample_weight=column),
                               column * (x - y) ** 2, rtol=1e-15)
    for name, target in (("mse", y), ("cross_entropy", t), ("poly1", t)):
        terms_shape = np.shape(oracle(name, x, target, reduction="none"))
        for reduction in REDUCTIONS:
            np.testing.assert_allclose(
                oracle(name, x, target, reduction=reduction,
                       sample_weight=np.ones(terms_shape)),
                oracle(name, x, target, reduction=reduction), rtol=1e-15)
        w = rng.uniform(0.5, 2.0, size=terms_shape)
        assert oracle(name, x, target, sample_weight=7.0 * w) == pytest.approx(
            oracle(name, x, target, sample_weight=w), rel=1e-14)
    for bad in (np.ones(3), np.ones((5, 1)), -np.ones(5), np.array([1, 1, np.nan, 1, 1])):
        with pytest.raises(ValueError):
            oracle("cross_entropy", x, t, sample_weight=bad)


def test_empty_modes():
    x = np.zeros((0, 3))
    for name, t in (("mse", np.zeros((0, 3))), ("cross_entropy", np.zeros(0, dtype=int)),
                    ("kl_div", np.zeros((0, 3)))):
        reductions = [r for r in reductions_of(name) if r not in ("sum", "none")]
        for reduction in reductions:
            assert math.isnan(oracle(name, x, t, reduction=reduction))
            assert math.isnan(oracle(name, x, t, reduction=reduction, empty="nan"))
            assert oracle(name, x, t, reduction=reduction, empty="zero") == 0.0
            with pytest.raises(ValueError):
                oracle(name, x, t, reduction=reduction, empty="error")
        assert oracle(name, x, t, reduction="sum", empty="error") == 0.0
        assert oracle(name, x, t, reduction="none", empty="error").size == 0
    ignored = np.full(2, -100)
    assert IGNORE_INDEX_LOSSES
    for name in IGNORE_INDEX_LOSSES:
        assert oracle(name, np.zeros((2, 3)), ignored, empty="zero") == 0.0
        with pytest.raises(ValueError):
            oracle(name, np.zeros((2, 3)), ignored, empty="error")
    # all sample weights 0: the denominator is 0 too
    assert oracle("mse", np.ones(3), np.zeros(3), sample_weight=np.zeros(3), empty="zero") == 0
    assert math.isnan(oracle("mse", np.ones(3), np.zeros(3), sample_weight=np.zeros(3)))
    with pytest.raises(ValueError):
        oracle("mse", np.ones(3), np.zeros(3), empty="skip")


def test_label_checks():
    with pytest.raises(ValueError):
        oracle("hinge_embedding", np.zeros(2), np.array([1.0, 0.0]))
    with pytest.raises(ValueError):
        oracle("cosine_embedding", np.zeros((2, 2, 3)), np.array([1, 2]))
    with pytest.raises(ValueError):
        oracle("margin_ranking", np.zeros((2, 2)), np.array([1.0, 0.5]))
    with pytest.raises(ValueError):
        oracle("nll", np.zeros((2, 3)), np.array([0.0, 1.0]))
    for q in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError):
            oracle("quantile", np.zeros(2), np.zeros(2), quantile=q)
    with pytest.raises(ValueError):
        oracle("multi_margin", np.zeros((2, 3)), np.array([0, 1]), p=3)
