"""The benchmark's pieces: NumPy references agree with lossjit, timings come back positive.

No timing bound is ever asserted here; speed is measured by ``benchmarks/run.py``. None of
these tests needs PyTorch, JAX or scikit-learn.
"""

import dataclasses
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lossjit
import lossjit_bench as bench
from lossjit import layouts, registry
from lossjit_bench.inputs import SPECIAL_INPUTS, kind_of
from lossjit_bench.names import TABLE_ORDER

ROOT = Path(__file__).resolve().parent.parent

CASES = [
    ("mse", {}),
    ("l1", {}),
    ("huber", {}),
    ("huber", {"delta": 0.3}),
    ("smooth_l1", {}),
    ("smooth_l1", {"beta": 0.0}),
    ("smooth_l1", {"beta": 2.5}),
    ("binary_cross_entropy", {}),
    ("bce_with_logits", {}),
    ("sigmoid_focal", {}),
    ("sigmoid_focal", {"alpha": -1.0, "gamma": 1.5}),
    ("cross_entropy", {}),
    ("focal", {}),
    ("focal", {"gamma": 0.5, "alpha": 0.3}),
    ("contrastive", {}),
    ("contrastive", {"margin": 2.0}),
    ("triplet", {}),
    ("triplet", {"p": 1.0, "swap": True}),
    ("triplet", {"p": 3.0, "margin": 0.2}),
    ("log_cosh", {}),
    ("pseudo_huber", {}),
    ("pseudo_huber", {"delta": 0.3}),
    ("quantile", {}),
    ("pinball", {"quantile": 0.9}),
    ("poisson_nll", {}),
    ("poisson_nll", {"full": True}),
    ("poisson_nll", {"log_input": False}),
    ("poisson_nll", {"log_input": False, "full": True, "eps": 0.1}),
    ("gaussian_nll", {}),
    ("gaussian_nll", {"full": True, "eps": 0.5}),
    ("gaussian_nll", {"var": 0.7}),
    ("nll", {}),
    ("nll", {"weight": np.linspace(0.5, 2.0, 10)}),
    ("kl_div", {}),
    ("kl_div", {"log_target": True}),
    ("hinge_embedding", {}),
    ("hinge_embedding", {"margin": 0.5}),
    ("multi_margin", {}),
    ("multi_margin", {"p": 2, "margin": 0.5}),
    ("multi_margin", {"weight": np.linspace(0.5, 2.0, 10)}),
    ("soft_margin", {}),
    ("multilabel_soft_margin", {}),
    ("multilabel_soft_margin", {"weight": np.linspace(0.5, 2.0, 10)}),
    ("poly1", {}),
    ("poly1", {"epsilon": 2.5}),
    ("cosine_embedding", {}),
    ("cosine_embedding", {"margin": 0.2}),
    ("margin_ranking", {}),
    ("margin_ranking", {"margin": 0.5}),
]


def close(a, b, tol=1e-9):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(a), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0)) <= tol * scale


def test_every_builtin_loss_has_a_reference_and_inputs():
    builtin = {spec.name for spec in registry.BUILTIN}
    assert builtin <= set(bench.REFERENCES)
    kinds = {kind for kind, _ in bench.INPUT_KINDS}
    members = [name for _, names in bench.INPUT_KINDS for name in names]
    assert len(members) == len(set(members)) and set(members) == set(bench.REFERENCES)
    for name in builtin:
        assert bench.input_kind(name) in kinds
        inputs = bench.make_inputs(name, 100, np.float32)
        lossjit.value_and_grad(name, inputs.predictions, inputs.targets, **inputs.params)


def _ids(cases):
    return [f"{n}-" + ",".join(f"{k}={np.ndim(v) and 'array' or v}" for k, v in p.items())
            for n, p in cases]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name,params", CASES, ids=_ids(CASES))
def test_reference_matches_lossjit(name, params, reduction):
    inputs = bench.make_inputs(name, 2000, np.float64, seed=3, params=params)
    p, t, params = inputs.predictions, inputs.targets, inputs.params
    value, grad = lossjit.value_and_grad(name, p, t, reduction=reduction, **params)
    ref_value, ref_grad = bench.reference(name, p, t, reduction=reduction, **params)
    assert math.isclose(ref_value, value, rel_tol=1e-9, abs_tol=1e-300)
    assert ref_grad.shape == grad.shape and ref_grad.dtype == grad.dtype
    assert close(grad, ref_grad)
    alone, none = bench.reference(name, p, t, reduction=reduction, grad=False, **params)
    assert none is None and math.isclose(alone, ref_value, rel_tol=1e-12)
    out = np.empty_like(p)
    out_value, out_grad = bench.reference(name, p, t, reduction=reduction, out=out, **params)
    assert out_grad is out and math.isclose(out_value, ref_value, rel_tol=1e-12)
    assert close(out, ref_grad, 1e-15)


@pytest.mark.parametrize("params", [{"weight": np.arange(1.0, 8.0)}, {"label_smoothing": 0.2},
                                    {"weight": np.arange(1.0, 8.0), "label_smoothing": 0.1}])
def test_cross_entropy_reference_options_and_ignored_targets(params):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(50, 7)), rng.integers(0, 7, 50)
    y[::5] = -100
    value, grad = lossjit.value_and_grad("ce", x, y, **params)
    ref_value, ref_grad = bench.reference("ce", x, y, **params)
    assert math.isclose(ref_value, value, rel_tol=1e-9) and close(grad, ref_grad)
    ref_value, ref_grad = bench.reference("focal", x, y, alpha=np.arange(1.0, 8.0))
    value, grad = lossjit.value_and_grad("focal", x, y, alpha=np.arange(1.0, 8.0))
    assert math.isclose(ref_value, value, rel_tol=1e-9) and close(grad, ref_grad)


def _wide(value):
    if isinstance(value, np.ndarray) and value.dtype == np.float32:
        return value.astype(np.float64)
    return value


@pytest.mark.parametrize("name", sorted(bench.REFERENCES))
def test_reference_float32_stays_float32_and_close(name):
    inputs = bench.make_inputs(name, 2000, np.float32, seed=5)
    value, grad = bench.reference(name, inputs.predictions, inputs.targets, **inputs.params)
    assert grad.dtype == np.float32 and np.all(np.isfinite(grad))
    wide = inputs.predictions.astype(np.float64)
    expected, expected_grad = bench.reference(name, wide, _wide(inputs.targets),
                                              **{k: _wide(v) for k, v in inputs.params.items()})
    assert math.isclose(value, expected, rel_tol=1e-4)
    assert close(grad, expected_grad, 1e-4)


def check_against_lossjit(name, x, t, reductions=("mean", "sum"), tol=1e-9, **params):
    """The reference's value and gradient are lossjit's, also with out=."""
    for reduction in reductions:
        value, grad = lossjit.value_and_grad(name, x, t, reduction=reduction, **params)
        ref_value, ref_grad = bench.reference(name, x, t, reduction=reduction, **params)
        assert math.isclose(ref_value, value, rel_tol=tol, abs_tol=1e-300), (name, reduction)
        assert ref_grad.shape == grad.shape and ref_grad.dtype == grad.dtype
        assert close(grad, ref_grad, tol), (name, reduction)
        out = np.empty_like(x)
        out_value, out_grad = bench.reference(name, x, t, reduction=reduction, out=out,
                                              **params)
        assert out_grad is out and close(out, ref_grad, 1e-15)


def test_nll_and_poly1_references_with_ignored_targets():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 7))
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    y = rng.integers(0, 7, 60)
    y[::5] = -100
    check_against_lossjit("nll", logp, y)
    check_against_lossjit("nll", logp, y, weight=np.arange(1.0, 8.0))
    y3 = np.where(y == -100, 3, y)
    check_against_lossjit("nll", logp, y3, ignore_index=3)
    check_against_lossjit("poly1", x, y)
    check_against_lossjit("poly1", x, y, epsilon=0.5)


def test_kl_div_reference_batchmean_and_zero_targets():
    rng = np.random.default_rng(3)
    x = np.log(rng.dirichlet(np.ones(6), 40))
    y = rng.dirichlet(np.ones(6), 40)
    y[::3, 1] = 0.0
    x[::3, 1] = -np.inf  # y = 0 contributes exactly 0 whatever x is
    value, grad = bench.reference("kl_div", x, y, reduction="batchmean")
    assert math.isfinite(value) and np.all(np.isfinite(grad))
    x[::3, 1] = -3.0
    check_against_lossjit("kl_div", x, y, reductions=("mean", "sum", "batchmean"))
    check_against_lossjit("kl_div", x, np.log(y + 0.01), reductions=("batchmean",),
                          log_target=True)


@pytest.mark.parametrize("var_shape", ["full", "no last axis", "one axis", "float"])
def test_gaussian_nll_reference_var_shapes(var_shape):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    var = {"full": rng.uniform(0.1, 2.0, (30, 4)), "no last axis": rng.uniform(0.1, 2.0, 30),
           "one axis": rng.uniform(0.1, 2.0, (30, 1)), "float": 0.7}[var_shape]
    check_against_lossjit("gaussian_nll", x, y, var=var)
    check_against_lossjit("gaussian_nll", x, y, var=np.multiply(var, 1e-9), full=True)
    with pytest.raises(ValueError):
        bench.reference("gaussian_nll", x, y)
    with pytest.raises(ValueError):
        bench.reference("gaussian_nll", x, y, var=-np.ones((30, 4)))


def test_hinge_references_at_their_ties():
    """Ties where PyTorch's clamp_min passes the gradient and torch.maximum splits it."""
    x = np.array([1.0, 0.5, 1.0, 2.0, 0.0, 1.0])
    y = np.array([-1.0, -1.0, 1.0, -1.0, -1.0, -1.0])
    _, grad = bench.reference("hinge_embedding", x, y, reduction="sum")
    assert grad.tolist() == [-1.0, -1.0, 1.0, 0.0, -1.0, -1.0]
    check_against_lossjit("hinge_embedding", x, y)
    x, y = np.array([0.0, 1.0, 2.0, -1.0]), np.array([0.0, 1.0, 1.5, 3.0])
    _, grad = bench.reference("quantile", x, y, reduction="sum", quantile=0.2)
    assert np.allclose(grad, [0.3, 0.3, 0.8, -0.2], rtol=0, atol=1e-15)
    check_against_lossjit("quantile", x, y, quantile=0.2)
    pairs = np.array([[1.0, 1.0], [2.0, 0.5], [0.0, 3.0], [-1.0, -1.0]])
    labels = np.array([1.0, -1.0, 1.0, -1.0])
    _, grad = bench.reference("margin_ranking", pairs, labels, reduction="sum")
    assert grad.tolist() == [[-1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, -1.0]]
    check_against_lossjit("margin_ranking", pairs, labels)
    check_against_lossjit("margin_ranking", pairs, labels[:, None], margin=0.5)
    check_against_lossjit("margin_ranking", pairs[0], labels[:1])
    scores = np.array([[0.5, 1.0, -1.0], [2.0, 1.0, 3.0]])  # z = 0 at (1, 1): no gradient
    _, grad = bench.reference("multi_margin", scores, np.array([1, 0]), reduction="sum")
    assert np.allclose(grad, [[1 / 3, -1 / 3, 0.0], [-1 / 3, 0.0, 1 / 3]], rtol=0, atol=1e-15)
    check_against_lossjit("multi_margin", scores, np.array([1, 0]))
    check_against_lossjit("multi_margin", scores, np.array([1, 0]), p=2)
    check_against_lossjit("multi_margin", scores[1], np.int64(0))


def test_cosine_embedding_reference_ties_and_one_pair():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(12, 2, 5))
    x[::2, 1] = -x[::2, 0]              # cos = -1
    x[1::4, 1] = 0.0                    # cos = 0: the tie at margin 0
    y = np.where(rng.random(12) < 0.5, 1.0, -1.0)
    y[1::4] = -1.0
    check_against_lossjit("cosine_embedding", x, y)
    check_against_lossjit("cosine_embedding", x[2:], y[2:, None], margin=0.3)
    check_against_lossjit("cosine_embedding", x[2], y[2:3])


def test_multilabel_soft_margin_reference_soft_targets_and_more_axes():
    rng = np.random.default_rng(6)
    x, y = rng.normal(0.0, 3.0, (4, 5, 6)), rng.random((4, 5, 6))
    check_against_lossjit("multilabel_soft_margin", x, y)
    check_against_lossjit("multilabel_soft_margin", x, y, weight=np.arange(1.0, 7.0))


def test_reference_is_stable_at_extreme_logits():
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4], dtype=np.float32)
    t = np.array([1.0, 0.0, 1.0, 1.0, 0.0], dtype=np.float32)
    for name in ("bce_with_logits", "sigmoid_focal", "multilabel_soft_margin"):
        value, grad = bench.reference(name, x, t)
        assert math.isfinite(value) and np.all(np.isfinite(grad))
    for name in ("log_cosh", "soft_margin", "pseudo_huber"):
        value, grad = bench.reference(name, x, 2 * t - 1)
        assert math.isfinite(value) and np.all(np.isfinite(grad))
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]], dtype=np.float32)
    for name in ("cross_entropy", "focal", "poly1"):
        value, grad = bench.reference(name, logits, np.array([2, 0]))
        assert math.isfinite(value) and np.all(np.isfinite(grad))


def test_shapes_per_family():
    assert bench.shape_for("mse", 1000) == (1000,)
    assert bench.shape_for("ce", 1000) == (100, 10)
    assert bench.shape_for("cross_entropy", (8192, 1000)) == (8192, 1000)
    assert bench.shape_for("contrastive", 100_000) == (100_000 // 128, 2, 64)
    assert bench.shape_for("triplet_margin", 100_000) == (100_000 // 192, 3, 64)
    assert bench.shape_for("triplet", 10) == (1, 3, 64)
    inputs = bench.make_inputs("ce", (16, 5), "float32")
    assert inputs.predictions.dtype == np.float32 and inputs.targets.dtype == np.int64
    assert inputs.nbytes() == 2 * 16 * 5 * 4 + 16 * 8
    assert bench.make_inputs("triplet", 1000).targets is None
    assert bench.shape_for("nll", 1000) == (100, 10)
    assert bench.shape_for("multilabel_soft_margin", 1000) == (100, 10)
    assert bench.shape_for("cosine_embedding", 100_000) == (100_000 // 128, 2, 64)
    assert bench.shape_for("margin_ranking", 1000) == (500, 2)
    assert bench.shape_for("pinball", 1000) == (1000,)
    inputs = bench.make_inputs("gaussian_nll", 100, "float32")
    assert inputs.params["var"].shape == (100,) and inputs.params["var"].dtype == np.float32
    assert inputs.nbytes() == 4 * 100 * 4 and inputs.nbytes(grad=False) == 3 * 100 * 4
    with pytest.raises(ValueError):
        bench.input_kind("not_a_loss")


def test_inputs_are_valid_for_their_loss():
    logp = bench.make_inputs("nll", (50, 7)).predictions
    assert np.allclose(np.exp(logp).sum(axis=1), 1.0)
    kl = bench.make_inputs("kl_div", 1000)
    assert (kl.predictions <= 0).all() and (kl.targets >= 0).all() and (kl.targets == 0).any()
    assert (bench.make_inputs("kl_div", 100, params={"log_target": True}).targets <= 0).all()
    for name in bench.SIGNED_LABELS:
        labels = bench.make_inputs(name, 10_000, "float32").targets
        assert labels.dtype == np.float32 and set(np.unique(labels)) == {-1.0, 1.0}
    poisson = bench.make_inputs("poisson_nll", 1000)
    counts = poisson.targets
    assert (counts >= 0).all() and (counts == np.round(counts)).all() and (counts > 1).any()
    rates = bench.make_inputs("poisson_nll", 1000, params={"log_input": False})
    assert (rates.predictions > 0).all() and rates.params == {"log_input": False}
    assert np.allclose(np.log(rates.predictions), poisson.predictions)
    assert (bench.make_inputs("gaussian_nll", 100).params["var"] > 0).all()
    assert bench.make_inputs("gaussian_nll", 100, params={"var": 0.5}).params == {"var": 0.5}
    multi = bench.make_inputs("multilabel_soft_margin", (20, 4))
    assert set(np.unique(multi.targets)) <= {0.0, 1.0} and multi.targets.shape == (20, 4)
    classes = bench.make_inputs("multi_margin", (20, 4))
    assert classes.targets.dtype == np.int64 and classes.targets.max() < 4


def test_input_kinds_come_from_the_layouts_in_table_order():
    members = [name for _, names in bench.INPUT_KINDS for name in names]
    assert sorted(members) == sorted(registry.names())
    for kind, names in bench.INPUT_KINDS:
        assert all(kind_of(registry.resolve(name).layout) == kind for name in names)
    listed = [name for name in members if name in TABLE_ORDER]
    assert listed == [name for name in TABLE_ORDER if name in members]
    for _, names in bench.INPUT_KINDS:  # a loss the table does not name ends its kind
        ranks = [TABLE_ORDER.index(n) if n in TABLE_ORDER else len(TABLE_ORDER) for n in names]
        assert ranks == sorted(ranks)
    assert bench.ELEMENTWISE[:4] == ("mse", "l1", "huber", "smooth_l1")
    assert bench.PAIRS == ("contrastive", "cosine_embedding") and bench.RANKS == (
        "margin_ranking",)
    assert {"hinge_embedding", "soft_margin", "cosine_embedding", "margin_ranking"} <= set(
        bench.SIGNED_LABELS)
    assert "contrastive" not in bench.SIGNED_LABELS and "mse" not in bench.SIGNED_LABELS
    assert kind_of(layouts.Stacked(4, "quadruplets", ())) is None


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_loss_gets_inputs_with_a_finite_loss(name):
    for dtype in (np.float32, np.float64):
        inputs = bench.make_inputs(name, 2000, dtype, seed=11)
        assert inputs.loss == name and inputs.predictions.dtype == dtype
        value = lossjit.loss(name, inputs.predictions, inputs.targets, **inputs.params)
        assert math.isfinite(value), (name, dtype, value)


@pytest.fixture
def unlisted(request):
    """A copy of a built-in loss under a name the harness has never heard of: no special
    inputs, no place in the table; only its layout says what its inputs are."""
    base = registry.resolve(request.param)
    spec = registry.register_spec(dataclasses.replace(base, name=f"unlisted_{base.name}",
                                                      aliases=()))
    yield base.name, spec.name
    registry._specs.pop(spec.name, None)
    registry._aliases.pop(spec.name, None)


@pytest.mark.parametrize("unlisted", registry.names(), indirect=True)
def test_a_new_loss_gets_valid_inputs_from_its_layout(unlisted):
    base, name = unlisted
    assert name not in SPECIAL_INPUTS and bench.input_kind(name) == bench.input_kind(base)
    kind = bench.input_kind(name)
    shapes = [2000] + ([(40, 50)] if kind in ("elementwise", "classes", "multilabel") else [])
    for size in shapes:
        for dtype in (np.float32, np.float64):
            inputs = bench.make_inputs(name, size, dtype, seed=2)
            assert inputs.shape == bench.shape_for(name, size) == bench.shape_for(base, size)
            assert inputs.predictions.dtype == dtype
            t = inputs.targets
            assert t is None or t.dtype == dtype or t.dtype.kind in "iu"
            for value in inputs.params.values():
                assert np.ndim(value) == 0 or np.shape(value) == inputs.shape
            value, grad = lossjit.value_and_grad(name, inputs.predictions, t, **inputs.params)
            assert math.isfinite(value) and np.all(np.isfinite(grad)), (name, size, dtype)
    again = bench.make_inputs(name, 2000, seed=2)
    assert np.array_equal(again.predictions, bench.make_inputs(name, 2000, seed=2).predictions)


def test_a_loss_of_an_unknown_layout_has_no_inputs():
    class Ragged(layouts.Layout):
        pass

    spec = registry.register_spec(dataclasses.replace(registry.resolve("mse"),
                                                      name="unlisted_ragged", aliases=(),
                                                      layout=Ragged()))
    try:
        with pytest.raises(ValueError, match="no benchmark inputs"):
            bench.input_kind(spec.name)
        with pytest.raises(ValueError, match="no benchmark inputs"):
            bench.make_inputs(spec.name, 100)
    finally:
        registry._specs.pop(spec.name, None)
        registry._aliases.pop(spec.name, None)


def test_time_call_and_time_many_give_positive_seconds():
    samples = bench.time_call(lambda: sum(range(100)), repeat=4, min_time=0.01)
    assert len(samples) == 4 and all(s > 0 for s in samples)
    many = bench.time_many({"a": lambda: None, "b": lambda: [0] * 100}, repeat=3,
                           min_time=0.01)
    assert set(many) == {"a", "b"} and all(len(v) == 3 and min(v) > 0 for v in many.values())


def test_run_case_tiny():
    case = bench.run_case("mse", 1000, np.float32, value_only=True, peers=("numpy",),
                          repeat=3, min_time=0.01)
    assert set(case["times"]) == {"lossjit", "lossjit_out", "lossjit_value", "numpy",
                                  "numpy_value"}
    assert all(seconds > 0 for seconds in case["times"].values())
    assert case["shape"] == [1000] and case["dtype"] == "float32" and case["elements"] == 1000
    assert case["bytes"] == {"value_and_grad": 12000, "value": 8000}
    case = bench.run_case("ce", (64, 5), np.float64, out=False, peers=("numpy", "nope"),
                          repeat=3, min_time=0.01)
    assert set(case["times"]) == {"lossjit", "numpy"} and case["skipped"] == {
        "nope": "unknown peer"}


def test_a_missing_or_unmatched_peer_is_skipped_with_a_reason():
    inputs = bench.make_inputs("focal", (8, 3))
    with pytest.raises(bench.Skip):
        bench.sklearn_peer(inputs)
    assert bench.peer_available("numpy") is None
    for peer in ("torch", "jax", "sklearn"):
        assert bench.peer_available(peer) in (None, "not installed")


def test_triad_bandwidth_and_machine_info():
    for threads in (1, 2):
        result = bench.triad_bandwidth(100_000, threads, repeat=3, keep=False)
        assert result["gbs"] > 0 and result["best_gbs"] >= result["gbs"]
        assert result["n"] == 100_000 and result["threads"] >= 1
    info = bench.machine_info()
    assert info["cores"] >= 1 and info["versions"]["numpy"] == np.__version__
    assert "numba_num_threads" in info["threads"]
    with bench.ForeignLoad() as meter:
        pass
    assert meter.load is None or meter.load >= 0


def test_importing_bench_imports_numpy_only():
    code = ("import sys, lossjit_bench; "
            "print([m for m in ('numba', 'torch', 'jax', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def test_reporting_helpers():
    assert bench.format_time(None) == "-" and bench.format_time(12.34e-6) == "12.3us"
    assert bench.format_time(4.561e-3) == "4.56ms" and bench.format_time(1.5) == "1.50s"
    assert bench.format_ratio(2.5) == "2.50x" and bench.format_ratio(None) == "-"
    assert bench.format_shape([10_000_000]) == "1e7" and bench.format_shape([1234]) == "1234"
    assert bench.format_shape([8192, 1000]) == "8192x1000"
    case = {"loss": "mse", "shape": [1000], "dtype": "float32", "foreign_load": 0.0,
            "times": {"lossjit": 2e-6, "lossjit_out": 1e-6, "torch": 8e-6, "sklearn": 3e-6},
            "bytes": {"value_and_grad": 12000, "value": 8000}}
    assert bench.speedup(case, "torch", "lossjit") == 4.0
    assert bench.speedup(case, "jax", "lossjit") is None
    bench.add_bandwidth(case, 24.0)
    assert case["gbs"]["lossjit_out"] == pytest.approx(12.0)
    assert case["fraction_of_triad"]["lossjit_out"] == pytest.approx(0.5)
    line = bench.table_row(case)
    assert "4.00x" in line and "3.00x" in line and "50%" in line
    assert len(line) == len(bench.TABLE_HEADER)


# --- benchmarks/run.py ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def runner():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_full_plan_covers_every_family_size_and_dtype(runner):
    cases = runner.plan(False, None)
    every = len(runner.EVERY_SIZE)
    assert len(cases) == (every * 4 + (len(bench.REFERENCES) - every)) * 2
    assert ("cross_entropy", (8192, 1000), "float64") in cases
    assert ("triplet", 10_000_000, "float32") in cases
    assert {name for name, _, _ in cases} == set(bench.REFERENCES)
    # the later losses run at fewer sizes by default, at all of them when named
    assert ("log_cosh", 1_000_000, "float32") in cases
    assert ("log_cosh", 10_000_000, "float32") not in cases
    assert ("nll", (65536, 10), "float64") in cases and ("nll", (1024, 10), "float64") not in cases
    assert runner.plan(False, ["pinball"]) == [("quantile", s, d) for s in runner.SIZES
                                               for d in runner.DTYPES]
    assert len(runner.plan(False, ["poly1"])) == len(runner.CLASS_SHAPES) * 2
    assert runner.plan(False, ["mae"]) == [("l1", s, d) for s in runner.SIZES
                                           for d in runner.DTYPES]
    assert all(name == "focal" for name, _, _ in runner.plan(True, ["focal"]))
    assert runner.plan(True, ["gaussian_nll"]) == [("gaussian_nll", 100_000, "float32"),
                                                   ("gaussian_nll", 100_000, "float64")]


def test_quick_plan_covers_every_kernel_family_in_both_dtypes(runner):
    cases = runner.plan(True, None)
    names = {name for name, _, _ in cases}
    for kind, members in bench.INPUT_KINDS:
        assert names & set(members), kind
    for name in names:
        assert {d for n, _, d in cases if n == name} == set(runner.DTYPES)
    for name, size, _ in cases:
        n = math.prod(bench.shape_for(name, size))
        assert 90_000 <= n <= 1_000_000, (name, size)  # pairs: whole rows of 64


def test_targets_are_judged_from_a_report(runner):
    def case(loss, shape, times, frac=None):
        out = {"loss": loss, "shape": list(shape), "dtype": "float32",
               "elements": int(np.prod(shape)), "times": times}
        if frac is not None:
            out["fraction_of_triad"] = {"lossjit_out": frac}
        return out

    report = {
        "cases": [
            case("mse", (10_000_000,), {"lossjit": 1.0, "lossjit_out": 0.5, "torch": 4.0,
                                        "jax": 0.9, "sklearn": 1.0}, frac=0.8),
            case("cross_entropy", (1024, 10), {"lossjit": 1.0, "lossjit_out": 1.0,
                                               "torch": 2.0, "sklearn": 1.5}),
        ],
        "small_call": {"times": {"lossjit": 5e-6, "torch": 20e-6}},
        "accuracy": {"elements": 10_000_000,
                     "losses": {"mse": {"relative_error": {"lossjit": 1e-9}}}},
    }
    verdict = {t["target"].split(":")[0]: t["met"] for t in runner.targets(report)}
    assert verdict["element-wise 1e7 with out="] is True
    assert verdict["element-wise 1e7 without out="] is True
    assert verdict["every family >= 1e5 (CE/focal"] is not None
    by_name = {t["target"]: t for t in runner.targets(report)}
    jax_target = next(t for name, t in by_name.items() if name.endswith("faster than jax"))
    assert jax_target["met"] is False and "mse 1e7 float32: 0.90x" in jax_target["misses"]
    sk = next(t for name, t in by_name.items() if name.startswith("cross_entropy >= 2x"))
    assert sk["met"] is False
    assert verdict["small call mse 1e3 float32"] is True
    assert verdict["accuracy"] is True


def test_quick_run_writes_json(runner, tmp_path, capsys):
    path = tmp_path / "out.json"
    runner.main(["--quick", "--losses", "mse", "--peers", "numpy", "--json", str(path),
                 "--skip", "small", "memory", "cli", "determinism", "accuracy"])
    report = json.loads(path.read_text())
    assert report["quick"] and report["machine"]["cores"] >= 1
    assert {c["loss"] for c in report["cases"]} == {"mse"}
    for c in report["cases"]:
        assert all(seconds > 0 for seconds in c["times"].values())
        assert c["fraction_of_triad"]["lossjit_out"] > 0
    assert report["triad"]["start"]["2"]["gbs"] > 0
    assert "speed" in capsys.readouterr().out


def test_quick_run_of_a_later_loss_with_a_required_option(runner, tmp_path):
    path = tmp_path / "out.json"
    runner.main(["--quick", "--losses", "gaussian_nll", "nll", "--peers", "numpy", "--json",
                 str(path), "--skip", "small", "memory", "cli", "determinism", "accuracy"])
    report = json.loads(path.read_text())
    assert [c["loss"] for c in report["cases"]] == ["gaussian_nll"] * 2 + ["nll"] * 2
    assert all("error" not in c and c["times"]["numpy"] > 0 for c in report["cases"])
    assert report["cases"][0]["bytes"]["value_and_grad"] == 4 * 4 * 100_000


def test_cli_bench_feeds_every_family():
    from click.testing import CliRunner

    from lossjit.cli import cli

    names = ["gaussian_nll", "pinball", "nll", "multilabel_soft_margin", "cosine_embedding",
             "margin_ranking"]
    result = CliRunner().invoke(cli, ["bench", *names, "--size", "2000", "--peers", "numpy",
                                      "--json"])
    assert result.exit_code == 0, result.output
    cases = json.loads(result.stdout.strip().splitlines()[-1])
    assert [c["loss"] for c in cases] == [registry.resolve(n).name for n in names]
    assert all(c["times"]["lossjit_out"] > 0 and c["times"]["numpy"] > 0 for c in cases)


@pytest.mark.parametrize("name", sorted(bench.REFERENCES))
def test_torch_and_jax_peers_compute_the_reference_loss(name):
    """The peers time the same loss: their value is the reference's (float64)."""
    inputs = bench.make_inputs(name, 3000, np.float64, seed=9)
    expected, _ = bench.reference(name, inputs.predictions, inputs.targets, **inputs.params)
    checked = 0
    for peer in ("torch", "jax"):
        if bench.peer_available(peer):
            continue
        try:
            run = bench.PEER_FACTORIES[peer](inputs)
        except bench.Skip:
            continue
        found = run()
        value = float(found[0] if peer == "jax" else found.detach())
        assert math.isclose(value, expected, rel_tol=1e-10), peer
        checked += 1
    if not checked:
        pytest.skip("neither torch nor jax is installed")


# --- peer checks ------------------------------------------------------------------------------


def _fake_peer(value_shift=0.0, grad_scale=1.0, sleep=0.0):
    """A peer factory that returns lossjit's own value and gradient, shifted and scaled."""
    import time

    def factory(inputs, expected=None):
        value, grad = lossjit.value_and_grad(inputs.loss, inputs.predictions, inputs.targets,
                                             **inputs.params)

        def run():
            if sleep:
                time.sleep(sleep)
            return value

        run.result = lambda: (value + value_shift, grad * grad_scale)
        return run
    return factory


def test_a_peer_that_disagrees_with_lossjit_is_excluded_not_timed(monkeypatch):
    monkeypatch.setitem(bench.PEER_FACTORIES, "right", _fake_peer())
    monkeypatch.setitem(bench.PEER_FACTORIES, "wrong_value", _fake_peer(value_shift=0.01))
    monkeypatch.setitem(bench.PEER_FACTORIES, "wrong_grad", _fake_peer(grad_scale=2.0))
    case = bench.run_case("mse", 2000, np.float64, out=False,
                          peers=("numpy", "right", "wrong_value", "wrong_grad"),
                          repeat=3, min_time=0.01)
    assert set(case["times"]) == {"lossjit", "numpy", "right"}
    assert set(case["disagreed"]) == {"wrong_value", "wrong_grad"}
    assert "value" in case["disagreed"]["wrong_value"]
    assert "gradient" in case["disagreed"]["wrong_grad"]
    assert case["skipped"]["wrong_grad"].startswith("disagrees with lossjit")


def test_disagreement_tolerances_follow_the_dtype():
    grad = np.linspace(-1.0, 1.0, 5000)
    assert bench.peers.disagreement((1.0 + 1e-5, grad), (1.0, grad), np.float32) is None
    assert bench.peers.disagreement((1.0 + 1e-5, grad), (1.0, grad), np.float64) is not None
    off = grad.copy()
    off[:3] += 0.5  # a few ties at a kink are allowed
    assert bench.peers.disagreement((1.0, off), (1.0, grad), np.float64) is None
    off[:100] += 0.5
    assert "gradient" in bench.peers.disagreement((1.0, off), (1.0, grad), np.float64)
    assert bench.peers.disagreement((1.0, grad[:10]), (1.0, grad), np.float64) is not None
    assert bench.peers.disagreement((math.nan, None), (math.nan, None), np.float64) is None


def test_choose_form_drops_wrong_forms_and_keeps_the_fastest():
    inputs = bench.make_inputs("mse", 1000, np.float64)
    expected = lossjit.value_and_grad("mse", inputs.predictions, inputs.targets)
    forms = {label: (lambda f=f: f(inputs)) for label, f in (
        ("slow", _fake_peer(sleep=2e-3)), ("fast_but_wrong", _fake_peer(value_shift=1.0)),
        ("fast", _fake_peer()))}
    chosen = bench.peers.choose_form(forms, inputs, expected)
    assert chosen.form == "fast" and set(chosen.form_times) == {"slow", "fast"}
    assert "fast_but_wrong" in chosen.form_disagreed
    with pytest.raises(bench.peers.Disagree):
        bench.peers.choose_form({"wrong": forms["fast_but_wrong"]}, inputs, expected)


@pytest.mark.parametrize("peer", ["torch", "jax", "sklearn"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_installed_peers_agree_with_lossjit(peer, dtype):
    """No real peer is excluded on the benchmark's own inputs (one per family)."""
    if bench.peer_available(peer):
        pytest.skip(f"{peer} not installed")
    for name, size in (("mse", 3000), ("huber", 3000), ("bce_with_logits", 3000),
                       ("cross_entropy", (300, 10)), ("focal", (300, 10)), ("kl_div", 3000),
                       ("poly1", (300, 10)), ("log_cosh", 3000), ("triplet", 3000)):
        inputs = bench.make_inputs(name, size, dtype, seed=3)
        expected = lossjit.value_and_grad(name, inputs.predictions, inputs.targets,
                                          **inputs.params)
        try:
            run = bench.PEER_FACTORIES[peer](inputs, expected=expected)
        except bench.peers.Disagree as exc:
            pytest.fail(f"{peer} {name}: {exc}")
        except bench.Skip:
            continue
        assert bench.peers.check_peer(run, expected, dtype) is None, (peer, name)


def test_jax_cross_entropy_uses_optax_where_installed():
    if bench.peer_available("jax"):
        pytest.skip("jax not installed")
    forms = bench.peers._jax_forms("cross_entropy", {})
    assert "jnp take_along_axis(log_softmax)" in forms
    if bench.peers._optax_losses() is not None:
        assert next(iter(forms)) == "optax.softmax_cross_entropy_with_integer_labels"


# --- roofline -------------------------------------------------------------------------------


def test_roofline_arithmetic():
    from lossjit_bench.roofline import WORK, roofline

    assert set(bench.ELEMENTWISE) <= set(WORK)
    # memory-bound: 12 bytes x 1e6 at 24 GB/s = 0.5 ms; lossjit at 1 ms = 50%
    r = roofline("mse", 1_000_000, 12_000_000, 1e-3, 24.0, {})
    assert r["memory_s"] == pytest.approx(5e-4) and r["compute_s"] == 0.0
    assert r["bound"] == "memory" and r["fraction"] == pytest.approx(0.5)
    # compute-bound: 1e6 x (exp64 2 ns + log1p64 3 ns + div64 1 ns) = 6 ms
    r = roofline("log_cosh", 1_000_000, 24_000_000, 8e-3, 24.0,
                 {"exp64": 2e-9, "log1p64": 3e-9, "div64": 1e-9})
    assert r["compute_s"] == pytest.approx(6e-3) and r["memory_s"] == pytest.approx(1e-3)
    assert r["bound"] == "compute" and r["fraction"] == pytest.approx(0.75)
    # counts multiply: pseudo_huber has three divisions and a square root
    r = roofline("pseudo_huber", 10, 0, 1.0, 1.0, {"div64": 1.0, "sqrt64": 10.0})
    assert r["compute_s"] == pytest.approx(10 * (3 * 1.0 + 10.0))
    assert roofline("mse", 10, 240, None, 24.0, {})["fraction"] is None


def test_roofline_in_a_case_and_its_row(monkeypatch):
    from lossjit_bench import roofline as rl

    monkeypatch.setattr(rl, "op_seconds", lambda op, dtype, n, repeat=7: 1e-9)
    case = {"loss": "bce_with_logits", "shape": [1_000_000], "dtype": "float32",
            "elements": 1_000_000, "foreign_load": 0.0,
            "times": {"lossjit": 2e-3, "lossjit_out": 1e-3},
            "bytes": {"value_and_grad": 12_000_000, "value": 8_000_000}}
    rl.add_roofline(case, 24.0)
    roof = case["roofline"]
    assert roof["memory_s"] == pytest.approx(5e-4) and roof["compute_s"] == pytest.approx(1e-3)
    assert roof["fraction"] == pytest.approx(1.0) and roof["bound"] == "compute"
    line = bench.table_row(case)
    assert "100%" in line and len(line) == len(bench.TABLE_HEADER)
    other = {"loss": "cross_entropy", "times": {"lossjit_out": 1.0}}
    rl.add_roofline(other, 24.0)
    assert "roofline" not in other


def test_vecmath_speed_is_measured():
    from lossjit_bench.roofline import op_seconds

    assert op_seconds("exp", "float32", 50_000, repeat=3) >= 0.0
    assert op_seconds("div64", "float64", 50_000, repeat=3) >= 0.0


def test_roofline_target_is_judged(runner):
    case = {"loss": "mse", "shape": [10_000_000], "dtype": "float32", "elements": 10_000_000,
            "times": {"lossjit": 1.0, "lossjit_out": 0.5},
            "fraction_of_triad": {"lossjit_out": 0.8},
            "roofline": {"fraction": 0.6}}
    found = {t["target"]: t for t in runner.targets({"cases": [case]})}
    roof = next(t for name, t in found.items() if "roofline" in name)
    assert roof["met"] is False and roof["misses"] == ["mse 1e7 float32: 60%"]
