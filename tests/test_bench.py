"""The benchmark's pieces: NumPy references agree with lossjit, timings come back positive.

No timing bound is ever asserted here; speed is measured by ``benchmarks/run.py``. None of
these tests needs PyTorch, JAX or scikit-learn.
"""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lossjit
from lossjit import bench, registry

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
]


def close(a, b, tol=1e-9):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(a), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0)) <= tol * scale


def test_every_builtin_loss_has_a_reference_and_inputs():
    builtin = {spec.name for spec in registry.BUILTIN}
    assert builtin <= set(bench.REFERENCES)
    for name in builtin:
        assert bench.family(name) in ("elementwise", "classes", "pairs", "triplets")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name,params", CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_reference_matches_lossjit(name, params, reduction):
    inputs = bench.make_inputs(name, 2000, np.float64, seed=3)
    p, t = inputs.predictions, inputs.targets
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


@pytest.mark.parametrize("name", sorted(bench.REFERENCES))
def test_reference_float32_stays_float32_and_close(name):
    inputs = bench.make_inputs(name, 2000, np.float32, seed=5)
    value, grad = bench.reference(name, inputs.predictions, inputs.targets)
    assert grad.dtype == np.float32 and np.all(np.isfinite(grad))
    wide = inputs.predictions.astype(np.float64)
    expected, expected_grad = bench.reference(name, wide, inputs.targets)
    assert math.isclose(value, expected, rel_tol=1e-4)
    assert close(grad, expected_grad, 1e-4)


def test_reference_is_stable_at_extreme_logits():
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4], dtype=np.float32)
    t = np.array([1.0, 0.0, 1.0, 1.0, 0.0], dtype=np.float32)
    for name in ("bce_with_logits", "sigmoid_focal"):
        value, grad = bench.reference(name, x, t)
        assert math.isfinite(value) and np.all(np.isfinite(grad))
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]], dtype=np.float32)
    for name in ("cross_entropy", "focal"):
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
    with pytest.raises(ValueError):
        bench.family("not_a_loss")


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
    code = ("import sys, lossjit.bench; "
            "print([m for m in ('numba', 'torch', 'jax', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
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
    assert len(cases) == 9 * 4 * 2 + 2 * 4 * 2
    assert ("cross_entropy", (8192, 1000), "float64") in cases
    assert ("triplet", 10_000_000, "float32") in cases
    assert {name for name, _, _ in cases} == set(bench.REFERENCES)
    assert runner.plan(False, ["mae"]) == [("l1", s, d) for s in runner.SIZES
                                           for d in runner.DTYPES]
    assert all(name == "focal" for name, _, _ in runner.plan(True, ["focal"]))


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
