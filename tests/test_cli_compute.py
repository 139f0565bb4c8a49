"""Tests of ``lossjit compute``: in-process (Click's CliRunner) and as real processes, stdin
and shell pipelines included.

Every expected number comes from lossjit's Python API or from a formula written out here in
NumPy, never from the CLI's own output. The inputs are the sample files of data/ (written by
``python data/make_data.py``), copied into a temporary directory that is also the current
directory, since the CLI writes the gradient to the current directory by default.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import (
    DATA,
    DATA_FILES,
    bits_equal,
    invoke,
    launcher,
    load,
    one_line_error,
    run,
    snapshot,
    softmax,
)

import lossjit
import lossjit.writers
from lossjit.readers import Reader

# --------------------------------------------------------------------------------------------
# the sample data itself


def read_array(path: str) -> np.ndarray:
    return Reader().read(path, what="input").array


def test_sample_data_is_as_documented():
    preds, targets = load("preds.npy"), load("targets.npy")
    assert preds.dtype == targets.dtype == np.float64 and preds.shape == targets.shape == (64,)
    assert bits_equal(read_array(str(DATA / "preds.csv")), preds)
    assert bits_equal(read_array(str(DATA / "targets.csv")), targets)
    assert (DATA / "preds.csv").read_text().splitlines()[0] == "prediction"
    assert (DATA / "targets.csv").read_text().splitlines()[0] == "target"
    logits, labels = load("logits.npy"), load("labels.npy")
    assert logits.shape == (32, 5) and logits.dtype == np.float64
    assert labels.shape == (32,) and labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() < 5
    pairs, pair_labels = load("pairs.npy"), load("pair_labels.npy")
    assert pairs.shape == (16, 2, 8) and pairs.dtype == np.float64
    assert pair_labels.dtype == np.int64 and set(pair_labels.tolist()) == {0, 1}
    t = load("triplets.npy")
    assert t.shape == (16, 3, 8) and t.dtype == np.float64
    hinge = (np.linalg.norm(t[:, 0] - t[:, 1] + 1e-6, axis=1)
             - np.linalg.norm(t[:, 0] - t[:, 2] + 1e-6, axis=1) + 1.0)
    assert (hinge > 0).any() and (hinge < 0).any()


def test_make_data_is_deterministic(tmp_path: Path):
    """A copy of the script writes next to itself the very bytes committed in data/."""
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(DATA / "make_data.py", copy / "make_data.py")
    proc = subprocess.run([sys.executable, str(copy / "make_data.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]
    for name in DATA_FILES:
        assert (copy / name).read_bytes() == (DATA / name).read_bytes(), name


# --------------------------------------------------------------------------------------------
# compute: values and gradients, in-process


def test_mse_npy(work: Path):
    preds, targets = load("preds.npy"), load("targets.npy")
    result = invoke("compute", "mse", "data/preds.npy", "data/targets.npy")
    assert result.exit_code == 0, result.stderr
    expected = lossjit.loss("mse", preds, targets)
    assert result.stdout == repr(expected) + "\n"
    assert float(result.stdout) == pytest.approx(np.mean((preds - targets) ** 2), rel=1e-13)
    assert "preds.grad.npy" in result.stderr
    grad = np.load(work / "preds.grad.npy")
    assert bits_equal(grad, lossjit.grad("mse", preds, targets))
    np.testing.assert_allclose(grad, 2 * (preds - targets) / 64, rtol=1e-13)
    assert not (work / "data" / "preds.grad.npy").exists()


def test_mse_csv(work: Path):
    preds, targets = load("preds.npy"), load("targets.npy")
    result = invoke("compute", "mse", "data/preds.csv", "data/targets.csv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == repr(lossjit.loss("mse", preds, targets)) + "\n"
    assert "preds.grad.csv" in result.stderr
    assert not (work / "preds.grad.npy").exists()
    header, *text = (work / "preds.grad.csv").read_text().split()
    assert header == (work / "data" / "preds.csv").read_text().split()[0]  # kept from the input
    back = np.array([float(v) for v in text])
    assert bits_equal(back, lossjit.grad("mse", preds, targets))
    assert bits_equal(read_array("preds.grad.csv"), lossjit.grad("mse", preds, targets))


def test_alias_gives_the_same_numbers(work: Path):
    a = invoke("compute", "mean_squared_error", "data/preds.npy", "data/targets.npy",
               "--no-grad")
    b = invoke("compute", "mse", "data/preds.npy", "data/targets.npy", "--no-grad")
    assert a.exit_code == b.exit_code == 0
    assert a.stdout == b.stdout


def test_focal_json(work: Path):
    logits, labels = load("logits.npy"), load("labels.npy")
    result = invoke("compute", "focal", "data/logits.npy", "data/labels.npy", "--gamma", "1.5",
                    "--json")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1
    record = json.loads(result.stdout)
    assert isinstance(record, dict)
    assert set(record) == {"loss", "name", "predictions", "targets", "reduction", "params",
                           "sample_weight", "empty", "nan_policy", "shape", "dtype", "grad",
                           "read_seconds",
                           "compile_seconds", "compute_seconds", "write_seconds", "seconds"}
    assert record["predictions"] == "data/logits.npy"
    assert record["loss"] == lossjit.loss("focal", logits, labels, gamma=1.5)
    p_y = softmax(logits)[np.arange(32), labels]
    assert record["loss"] == pytest.approx(np.mean(-(1 - p_y) ** 1.5 * np.log(p_y)), rel=1e-12)
    assert record["name"] == "focal" and record["reduction"] == "mean"
    assert record["params"]["gamma"] == 1.5
    assert record["params"]["alpha"] is None and record["params"]["from_logits"] is True
    assert record["shape"] == [32, 5] and record["dtype"] == "float64"
    assert record["grad"] == "logits.grad.npy"
    assert isinstance(record["seconds"], float) and record["seconds"] >= 0
    grad = np.load(work / "logits.grad.npy")
    assert bits_equal(grad, lossjit.grad("focal", logits, labels, gamma=1.5))


def test_json_reduction_none_lists_terms(work: Path):
    result = invoke("compute", "focal", "data/logits.npy", "data/labels.npy", "--json",
                    "--reduction", "none", "--no-grad")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    expected = lossjit.loss("focal", load("logits.npy"), load("labels.npy"), reduction="none")
    assert record["loss"] == expected.tolist() and record["grad"] is None
    assert record["reduction"] == "none"


def test_triplet_without_targets(work: Path):
    t = load("triplets.npy")
    result = invoke("compute", "triplet", "data/triplets.npy")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == repr(lossjit.loss("triplet", t)) + "\n"
    d_ap = np.linalg.norm(t[:, 0] - t[:, 1] + 1e-6, axis=1)
    d_an = np.linalg.norm(t[:, 0] - t[:, 2] + 1e-6, axis=1)
    assert float(result.stdout) == pytest.approx(np.mean(np.maximum(0, d_ap - d_an + 1)),
                                                 rel=1e-12)
    grad = np.load(work / "triplets.grad.npy")
    assert grad.shape == (16, 3, 8)
    assert bits_equal(grad, lossjit.grad("triplet", t))
    inactive = d_ap - d_an + 1 < 0
    assert inactive.any() and np.all(grad[inactive] == 0) and np.any(grad[~inactive] != 0)


def test_triplet_swap_flag(work: Path):
    t = load("triplets.npy")
    on = invoke("compute", "triplet", "data/triplets.npy", "--swap", "--grad-out", "on.npy")
    off = invoke("compute", "triplet", "data/triplets.npy", "--no-swap", "--grad-out", "off.npy")
    assert on.exit_code == off.exit_code == 0
    assert on.stdout == repr(lossjit.loss("triplet", t, swap=True)) + "\n"
    assert off.stdout == repr(lossjit.loss("triplet", t, swap=False)) + "\n"
    assert bits_equal(np.load("on.npy"), lossjit.grad("triplet", t, swap=True))
    d_ap = np.linalg.norm(t[:, 0] - t[:, 1] + 1e-6, axis=1)
    d_an = np.linalg.norm(t[:, 0] - t[:, 2] + 1e-6, axis=1)
    d_pn = np.linalg.norm(t[:, 1] - t[:, 2] + 1e-6, axis=1)
    swapped = np.mean(np.maximum(0, d_ap - np.minimum(d_an, d_pn) + 1))
    assert float(on.stdout) == pytest.approx(swapped, rel=1e-12)


def test_triplet_ignores_given_targets_with_a_message(work: Path):
    result = invoke("compute", "triplet", "data/triplets.npy", "data/labels.npy", "--no-grad")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == repr(lossjit.loss("triplet", load("triplets.npy"))) + "\n"
    assert "ignoring" in result.stderr


def test_contrastive_pairs(work: Path):
    x, y = load("pairs.npy"), load("pair_labels.npy")
    result = invoke("compute", "contrastive", "data/pairs.npy", "data/pair_labels.npy",
                    "--margin", "2.5")
    assert result.exit_code == 0, result.stderr
    value, grad = lossjit.value_and_grad("contrastive", x, y, margin=2.5)
    assert result.stdout == repr(value) + "\n"
    d = np.linalg.norm(x[:, 0] - x[:, 1], axis=1)
    expected = np.mean(y * d**2 + (1 - y) * np.maximum(0, 2.5 - d) ** 2)
    assert float(result.stdout) == pytest.approx(expected, rel=1e-12)
    assert bits_equal(np.load(work / "pairs.grad.npy"), grad)
    dissimilar = (y == 0) & (d < 2.5)
    assert dissimilar.any() and (y == 1).any()


def _sigmoid_inputs(work: Path) -> None:
    preds, targets = load("preds.npy"), load("targets.npy")
    np.save(work / "binary.npy", (targets > 0).astype(np.float64))
    np.save(work / "probs1d.npy", 1 / (1 + np.exp(-preds)))


@pytest.mark.parametrize("args", [
    ["mse", "data/preds.npy", "data/targets.npy"],
    ["focal", "data/logits.npy", "data/labels.npy", "--gamma", "1.5"],
    ["triplet", "data/triplets.npy", "--swap"],
    ["contrastive", "data/pairs.npy", "data/pair_labels.npy"],
    ["contrastive", "data/pairs.npy", "data/pair_labels.npy", "--margin", "2.5"],
    ["contrastive", "data/pairs.npy", "data/pair_labels.npy", "--margin", "3", "--reduction",
     "none"],
    ["bce_with_logits", "data/preds.npy", "binary.npy"],
    ["binary_cross_entropy", "probs1d.npy", "binary.npy"],
], ids=lambda a: "-".join(x for x in a if not x.startswith("data/")))
def test_no_grad_prints_the_same_loss(work: Path, args: list[str]):
    """Asking for the gradient must not change the printed loss, not even in the last bit."""
    _sigmoid_inputs(work)
    with_grad = invoke("compute", *args)
    without = invoke("compute", *args, "--no-grad")
    assert with_grad.exit_code == without.exit_code == 0, (with_grad.stderr, without.stderr)
    assert with_grad.stdout == without.stdout


def _smoothed_weighted_ce(logits, labels, w, eps, ignore):
    """PyTorch's cross_entropy with class weights, label smoothing and ignore_index."""
    logp = np.log(softmax(logits))
    keep = labels != ignore
    rows = np.arange(len(labels))[keep]
    y = labels[keep]
    nll = -w[y] * logp[rows, y]
    smooth = -(logp[rows] * w).sum(axis=1)
    C = logits.shape[1]
    return ((1 - eps) * nll + eps / C * smooth).sum() / w[y].sum()


def test_cross_entropy_weight_smoothing_ignore(work: Path):
    logits, labels = load("logits.npy"), load("labels.npy")
    w = np.array([1.0, 2.0, 1.0, 1.0, 1.0])
    result = invoke("compute", "cross_entropy", "data/logits.npy", "data/labels.npy",
                    "--weight", "1,2,1,1,1", "--label-smoothing", "0.1", "--ignore-index", "2")
    assert result.exit_code == 0, result.stderr
    api = dict(weight=w, label_smoothing=0.1, ignore_index=2)
    assert result.stdout == repr(lossjit.loss("cross_entropy", logits, labels, **api)) + "\n"
    assert float(result.stdout) == pytest.approx(
        _smoothed_weighted_ce(logits, labels, w, 0.1, 2), rel=1e-12)
    grad = np.load(work / "logits.grad.npy")
    assert bits_equal(grad, lossjit.grad("cross_entropy", logits, labels, **api))
    assert np.all(grad[labels == 2] == 0)


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".txt"])
def test_weight_from_a_file(work: Path, suffix: str):
    logits, labels = load("logits.npy"), load("labels.npy")
    w = np.array([0.5, 2.0, 1.0, 3.0, 1.0])
    lossjit.writers.write_array(f"w{suffix}", w)
    result = invoke("compute", "ce", "data/logits.npy", "data/labels.npy", "--weight",
                    f"w{suffix}")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == repr(lossjit.loss("cross_entropy", logits, labels, weight=w)) + "\n"
    logp = np.log(softmax(logits))[np.arange(32), labels]
    assert float(result.stdout) == pytest.approx(
        -(w[labels] * logp).sum() / w[labels].sum(), rel=1e-12)


def test_focal_alpha_scalar_and_list(work: Path):
    logits, labels = load("logits.npy"), load("labels.npy")
    p_y = softmax(logits)[np.arange(32), labels]
    base = -(1 - p_y) ** 2 * np.log(p_y)

    scalar = invoke("compute", "focal", "data/logits.npy", "data/labels.npy", "--alpha", "0.25",
                    "--no-grad")
    assert scalar.exit_code == 0, scalar.stderr
    assert scalar.stdout == repr(lossjit.loss("focal", logits, labels, alpha=0.25)) + "\n"
    assert float(scalar.stdout) == pytest.approx(np.mean(0.25 * base), rel=1e-12)

    alpha = np.array([0.1, 0.2, 0.3, 0.2, 0.2])
    listed = invoke("compute", "focal", "data/logits.npy", "data/labels.npy", "--alpha",
                    "0.1,0.2,0.3,0.2,0.2", "--json")
    assert listed.exit_code == 0, listed.stderr
    record = json.loads(listed.stdout)
    assert record["loss"] == lossjit.loss("focal", logits, labels, alpha=alpha)
    assert record["loss"] == pytest.approx(np.mean(alpha[labels] * base), rel=1e-12)
    assert record["params"]["alpha"] == pytest.approx(alpha.tolist())
    assert bits_equal(np.load("logits.grad.npy"),
                      lossjit.grad("focal", logits, labels, alpha=alpha))


def test_no_from_logits_takes_probabilities(work: Path):
    probs = softmax(load("logits.npy"))
    labels = load("labels.npy")
    np.save("probs.npy", probs)
    result = invoke("compute", "cross_entropy", "probs.npy", "data/labels.npy",
                    "--no-from-logits")
    assert result.exit_code == 0, result.stderr
    api = lossjit.loss("cross_entropy", probs, labels, from_logits=False)
    assert result.stdout == repr(api) + "\n"
    assert float(result.stdout) == pytest.approx(-np.mean(np.log(probs[np.arange(32), labels])),
                                                 rel=1e-12)
    assert bits_equal(np.load("probs.grad.npy"),
                      lossjit.grad("cross_entropy", probs, labels, from_logits=False))
    # --from-logits (the default) reads the same numbers as logits: a different loss
    logits_run = invoke("compute", "cross_entropy", "probs.npy", "data/labels.npy",
                        "--from-logits", "--no-grad")
    assert logits_run.stdout == repr(lossjit.loss("cross_entropy", probs, labels)) + "\n"
    assert logits_run.stdout != result.stdout


def test_focal_no_from_logits_one_hot(work: Path):
    probs = softmax(load("logits.npy"))
    labels = load("labels.npy")
    np.save("probs.npy", probs)
    np.save("onehot.npy", np.eye(5)[labels])
    result = invoke("compute", "focal", "probs.npy", "onehot.npy", "--no-from-logits",
                    "--gamma", "2", "--no-grad")
    assert result.exit_code == 0, result.stderr
    api = lossjit.loss("focal", probs, np.eye(5)[labels], from_logits=False, gamma=2.0)
    assert result.stdout == repr(api) + "\n"
    p_y = probs[np.arange(32), labels]
    assert float(result.stdout) == pytest.approx(np.mean(-(1 - p_y) ** 2 * np.log(p_y)),
                                                 rel=1e-12)


# --------------------------------------------------------------------------------------------
# reductions, --no-grad, --grad-out


@pytest.mark.parametrize("args, name, n", [
    (["mse", "data/preds.npy", "data/targets.npy"], "mse", 64),
    (["focal", "data/logits.npy", "data/labels.npy"], "focal", 32),
    (["triplet", "data/triplets.npy"], "triplet", 16),
])
def test_reduction_none_one_line_per_term(work: Path, args, name, n):
    result = invoke("compute", *args, "--reduction", "none")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == n
    arrays = [load(Path(a).name) for a in args[1:]]
    expected = lossjit.loss(name, *arrays, reduction="none")
    assert lines == [repr(float(v)) for v in np.ravel(expected)]
    # the gradient is that of the sum of the terms
    grad = np.load(Path(args[1]).stem + ".grad.npy")
    assert bits_equal(grad, lossjit.grad(name, *arrays, reduction="none"))
    assert np.allclose(grad, lossjit.grad(name, *arrays, reduction="sum"), rtol=1e-14, atol=0)


def test_reduction_none_mse_matches_formula(work: Path):
    preds, targets = load("preds.npy"), load("targets.npy")
    result = invoke("compute", "mse", "data/preds.npy", "data/targets.npy", "--reduction",
                    "none", "--no-grad")
    values = np.array([float(v) for v in result.stdout.split()])
    assert bits_equal(values, (preds - targets) ** 2)


def test_reduction_sum(work: Path):
    preds, targets = load("preds.npy"), load("targets.npy")
    result = invoke("compute", "mse", "data/preds.npy", "data/targets.npy", "--reduction",
                    "sum")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == repr(lossjit.loss("mse", preds, targets, reduction="sum")) + "\n"
    assert float(result.stdout) == pytest.approx(np.sum((preds - targets) ** 2), rel=1e-13)
    np.testing.assert_allclose(np.load("preds.grad.npy"), 2 * (preds - targets), rtol=1e-14)


def test_no_grad_writes_nothing(work: Path):
    before = snapshot(work)
    result = invoke("compute", "mse", "data/preds.npy", "data/targets.npy", "--no-grad")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == repr(lossjit.loss("mse", load("preds.npy"),
                                              load("targets.npy"))) + "\n"
    assert snapshot(work) == before
    assert "gradient written" not in result.stderr


@pytest.mark.parametrize("name", ["out/g.npy", "g.npz", "g.csv", "g.tsv", "g.txt"])
def test_grad_out(work: Path, name: str):
    (work / "out").mkdir()
    logits, labels = load("logits.npy"), load("labels.npy")
    result = invoke("compute", "focal", "data/logits.npy", "data/labels.npy", "--grad-out",
                    name)
    assert result.exit_code == 0, result.stderr
    assert name in result.stderr
    assert not (work / "logits.grad.npy").exists()
    expected = lossjit.grad("focal", logits, labels)
    assert bits_equal(read_array(name), expected)
    if name.endswith((".csv", ".tsv", ".txt")):
        sep = {".csv": ",", ".tsv": "\t", ".txt": " "}[Path(name).suffix]
        rows = (work / name).read_text().splitlines()
        assert len(rows) == 32 and all(len(r.split(sep)) == 5 for r in rows)
        assert bits_equal(np.array([[float(v) for v in r.split(sep)] for r in rows]), expected)


def test_grad_out_text_of_1d(work: Path):
    preds, targets = load("preds.npy"), load("targets.npy")
    result = invoke("compute", "mse", "data/preds.npy", "data/targets.npy", "--grad-out",
                    "g.txt")
    assert result.exit_code == 0, result.stderr
    values = [float(v) for v in (work / "g.txt").read_text().splitlines()]
    assert bits_equal(np.array(values), lossjit.grad("mse", preds, targets))


def test_float32_keeps_dtype(work: Path):
    preds = load("preds.npy").astype(np.float32)
    targets = load("targets.npy").astype(np.float32)
    np.save("p32.npy", preds)
    np.save("t32.npy", targets)
    result = invoke("compute", "mse", "p32.npy", "t32.npy", "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["dtype"] == "float32"
    assert record["loss"] == lossjit.loss("mse", preds, targets)
    assert bits_equal(np.load("p32.grad.npy"), lossjit.grad("mse", preds, targets))


# --------------------------------------------------------------------------------------------
# sample weights, empty means, Hessians, gradients w.r.t. an option


def test_sample_weight_from_a_list_and_a_file(work: Path):
    preds, targets = load("preds.npy"), load("targets.npy")
    w = np.linspace(0.0, 2.0, preds.size)
    np.save(work / "w.npy", w)
    expected = float(np.sum(w * (preds - targets) ** 2) / np.sum(w))
    listed = ",".join(repr(float(v)) for v in w)
    for given in (listed, "w.npy"):
        result = invoke("compute", "mse", "data/preds.npy", "data/targets.npy",
                        "--sample-weight", given, "--grad-out", "g.npy")
        assert result.exit_code == 0, result.stderr
        assert float(result.stdout) == pytest.approx(expected, rel=1e-12)
        np.testing.assert_allclose(np.load("g.npy"), 2 * w * (preds - targets) / w.sum(),
                                   rtol=1e-12)
    assert bits_equal(np.load("w.npy"), w)  # an option's file is an input too


def test_sample_weight_of_a_wrong_shape_exits_1(work: Path):
    result = invoke("compute", "mse", "data/preds.npy", "data/targets.npy",
                    "--sample-weight", "1,2,3")
    assert result.exit_code == 1
    assert "sample_weight" in result.stderr and "(3,)" in result.stderr
    assert sorted(p.name for p in work.iterdir()) == ["data"]


@pytest.mark.parametrize("empty, expected", [("nan", "nan"), ("zero", "0.0")])
def test_empty_choices(work: Path, empty: str, expected: str):
    np.save(work / "x.npy", np.zeros((2, 3)))
    np.save(work / "y.npy", np.array([-100, -100]))
    result = invoke("compute", "cross_entropy", "x.npy", "y.npy", "--empty", empty)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == expected
    assert bits_equal(np.load("x.grad.npy"), np.zeros((2, 3)))


def test_empty_error_exits_1_and_writes_nothing(work: Path):
    np.save(work / "x.npy", np.zeros((2, 3)))
    np.save(work / "y.npy", np.array([-100, -100]))
    result = invoke("compute", "nll", "x.npy", "y.npy", "--empty", "error")
    assert result.exit_code == 1
    assert "zero terms" in result.stderr and "Traceback" not in result.stderr
    assert not (work / "x.grad.npy").exists()
    assert invoke("compute", "nll", "x.npy", "y.npy", "--empty", "never").exit_code == 2


def test_hess_out_writes_the_hessian_diagonal(work: Path):
    preds, targets = load("preds.npy"), load("targets.npy")
    result = invoke("compute", "log_cosh", "data/preds.npy", "data/targets.npy",
                    "--hess-out", "h.npy", "--reduction", "sum")
    assert result.exit_code == 0, result.stderr
    e = preds - targets
    np.testing.assert_allclose(np.load("h.npy"), 1 - np.tanh(e) ** 2, rtol=1e-12)
    np.testing.assert_allclose(np.load("preds.grad.npy"), np.tanh(e), rtol=1e-12)
    assert float(result.stdout) == pytest.approx(np.sum(np.log(np.cosh(e))), rel=1e-12)
    assert "Hessian diagonal written to h.npy" in result.stderr


def test_hess_out_with_no_grad_writes_only_the_hessian(work: Path):
    result = invoke("compute", "mse", "data/preds.npy", "data/targets.npy", "--no-grad",
                    "--hess-out", "h.npy")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in work.iterdir()) == ["data", "h.npy"]
    np.testing.assert_array_equal(np.load("h.npy"), np.full(64, 2.0 / 64))


def test_hess_out_is_offered_only_where_there_is_a_hessian(work: Path):
    assert "--hess-out" in invoke("compute", "cross_entropy", "--help").stdout
    assert "--hess-out" not in invoke("compute", "focal", "--help").stdout
    result = invoke("compute", "focal", "data/logits.npy", "data/labels.npy", "--hess-out",
                    "h.npy")
    assert result.exit_code == 2
    result = invoke("compute", "cross_entropy", "data/logits.npy", "data/labels.npy",
                    "--no-from-logits", "--hess-out", "h.npy")
    assert result.exit_code == 1 and "Hessian" in result.stderr


def test_var_grad_out(work: Path):
    preds, targets = load("preds.npy"), load("targets.npy")
    var = np.linspace(0.5, 2.0, preds.size)
    np.save(work / "var.npy", var)
    result = invoke("compute", "gaussian_nll", "data/preds.npy", "data/targets.npy",
                    "--var", "var.npy", "--var-grad-out", "dvar.npy", "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["var_grad"] == "dvar.npy" and record["grad"] == "preds.grad.npy"
    e = preds - targets
    n = preds.size
    np.testing.assert_allclose(np.load("dvar.npy"), 0.5 * (1 / var - e**2 / var**2) / n,
                               rtol=1e-12)
    np.testing.assert_allclose(np.load("preds.grad.npy"), e / var / n, rtol=1e-12)
    assert record["loss"] == pytest.approx(np.mean(0.5 * (np.log(var) + e**2 / var)),
                                           rel=1e-12)


def test_required_option_missing_is_a_usage_error(work: Path):
    result = invoke("compute", "gaussian_nll", "data/preds.npy", "data/targets.npy")
    assert result.exit_code == 2 and "--var" in result.stderr


def test_batchmean_is_a_reduction_of_kl_div_only(work: Path):
    log_p = np.log(softmax(load("logits.npy")))
    q = softmax(load("logits.npy")[::-1])
    np.save(work / "log_p.npy", log_p)
    np.save(work / "q.npy", q)
    result = invoke("compute", "kl_div", "log_p.npy", "q.npy", "--reduction", "batchmean",
                    "--no-grad")
    assert result.exit_code == 0, result.stderr
    expected = np.sum(q * (np.log(q) - log_p)) / log_p.shape[0]
    assert float(result.stdout) == pytest.approx(expected, rel=1e-12)
    result = invoke("compute", "mse", "data/preds.npy", "data/targets.npy", "--reduction",
                    "batchmean")
    assert result.exit_code == 2


# --------------------------------------------------------------------------------------------
# stdin, in-process


def test_stdin_npy_in_process(work: Path):
    preds, targets = load("preds.npy"), load("targets.npy")
    result = invoke("compute", "mse", "-", "data/targets.npy",
                    input=(work / "data" / "preds.npy").read_bytes())
    assert result.exit_code == 0, result.stderr
    assert result.stdout == repr(lossjit.loss("mse", preds, targets)) + "\n"
    assert bits_equal(np.load("stdin.grad.npy"), lossjit.grad("mse", preds, targets))


def test_stdin_text_in_process(work: Path):
    preds, targets = load("preds.npy"), load("targets.npy")
    result = invoke("compute", "mse", "-", "data/targets.npy", "--no-grad",
                    input=(work / "data" / "preds.csv").read_text())
    assert result.exit_code == 0, result.stderr
    assert result.stdout == repr(lossjit.loss("mse", preds, targets)) + "\n"


def test_targets_on_stdin(work: Path):
    logits, labels = load("logits.npy"), load("labels.npy")
    text = "label\n" + "\n".join(str(v) for v in labels) + "\n"
    result = invoke("compute", "ce", "data/logits.npy", "-", "--no-grad", input=text)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == repr(lossjit.loss("cross_entropy", logits, labels)) + "\n"


# --------------------------------------------------------------------------------------------
# errors, in-process: exit 1 with one line, exit 2 for usage errors; nothing written


def _bad_labels(work: Path) -> str:
    labels = load("labels.npy").copy()
    labels[3] = 7
    np.save(work / "bad_labels.npy", labels)
    return "bad_labels.npy"


def _bad_csv(work: Path) -> str:
    (work / "bad.csv").write_text("prediction\n1.5\nx\n2\n")
    return "bad.csv"


ERRORS_1 = {
    "missing file": (["mse", "data/nope.npy", "data/targets.npy"], None, "nope.npy"),
    "missing targets file": (["mse", "data/preds.npy", "nope.csv"], None, "nope.csv"),
    "shape mismatch": (["mse", "data/preds.npy", "data/labels.npy"], None, "shape"),
    "class out of range": (["cross_entropy", "data/logits.npy", "BAD_LABELS"], _bad_labels, "7"),
    "negative delta": (["huber", "data/preds.npy", "data/targets.npy", "--delta", "-1"], None,
                       "delta"),
    "negative gamma": (["focal", "data/logits.npy", "data/labels.npy", "--gamma", "-0.5"], None,
                       "gamma"),
    "smoothing > 1": (["ce", "data/logits.npy", "data/labels.npy", "--label-smoothing", "2"],
                      None, "label_smoothing"),
    "nan margin": (["triplet", "data/triplets.npy", "--margin", "nan"], None, "margin"),
    "bad weight list": (["ce", "data/logits.npy", "data/labels.npy", "--weight", "1,x,1"], None,
                        "--weight"),
    "weight length": (["ce", "data/logits.npy", "data/labels.npy", "--weight", "1,2,3"], None,
                      "weight"),
    "bad alpha": (["focal", "data/logits.npy", "data/labels.npy", "--alpha", "abc"], None,
                  "--alpha"),
    "unparsable csv": (["mse", "BAD_CSV", "data/targets.csv"], _bad_csv, "line 3"),
    "3-D as csv": (["triplet", "data/triplets.npy", "--grad-out", "t.csv"], None, "3-D"),
    "grad-out no dir": (["mse", "data/preds.npy", "data/targets.npy", "--grad-out",
                         "no/such/g.npy"], None, "directory"),
    "grad-out bad ext": (["mse", "data/preds.npy", "data/targets.npy", "--grad-out", "g.dat"],
                         None, ".dat"),
}


def _error_args(work: Path, case: str) -> tuple[list[str], str]:
    args, make, needle = ERRORS_1[case]
    args = list(args)
    if make is not None:
        made = make(work)
        args = [made if a in ("BAD_LABELS", "BAD_CSV") else a for a in args]
    return args, needle


@pytest.mark.parametrize("case", sorted(ERRORS_1))
def test_bad_input_exit_1_in_process(work: Path, case: str):
    args, needle = _error_args(work, case)
    before = snapshot(work)
    result = invoke("compute", *args)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    line = one_line_error(result.stderr)
    assert needle in line
    assert snapshot(work) == before  # no gradient, no temp file


USAGE_ERRORS = {
    "unknown loss": ["compute", "nope", "data/preds.npy", "data/targets.npy"],
    "missing targets": ["compute", "mse", "data/preds.npy"],
    "bad reduction": ["compute", "mse", "data/preds.npy", "data/targets.npy", "--reduction",
                      "median"],
    "unknown option": ["compute", "mse", "data/preds.npy", "data/targets.npy", "--delta", "1"],
    "grad-out and no-grad": ["compute", "mse", "data/preds.npy", "data/targets.npy",
                             "--grad-out", "g.npy", "--no-grad"],
    "int option not int": ["compute", "ce", "data/logits.npy", "data/labels.npy",
                           "--ignore-index", "2.5"],
    "missing predictions": ["compute", "triplet"],
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_usage_error_exit_2_in_process(work: Path, case: str):
    before = snapshot(work)
    result = invoke(*USAGE_ERRORS[case])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "Error" in result.stderr
    assert snapshot(work) == before


def test_unknown_loss_suggests_close_names_or_the_list(work: Path):
    result = invoke("compute", "nope", "data/preds.npy", "data/targets.npy")
    assert "unknown loss 'nope'; lossjit list shows every loss" in result.stderr
    result = invoke("compute", "cross-entrpy", "data/logits.npy", "data/labels.npy")
    assert "did you mean 'cross_entropy'" in result.stderr


# --------------------------------------------------------------------------------------------
# never overwrite an input; failures leave the directory as it was


def _copy_dir(work: Path) -> Path:
    copy = work / "data-copy"
    shutil.copytree(work / "data", copy)
    return copy


@pytest.mark.parametrize("target", ["data-copy/targets.npy", "data-copy/preds.npy",
                                    "./data-copy/../data-copy/targets.npy", "ABSOLUTE",
                                    "link.npy"])
def test_grad_out_never_overwrites_an_input(work: Path, target: str):
    copy = _copy_dir(work)
    os.symlink(copy / "targets.npy", work / "link.npy")
    if target == "ABSOLUTE":
        target = str(copy / "targets.npy")
    before = snapshot(work)
    result = invoke("compute", "mse", "data-copy/preds.npy", "data-copy/targets.npy",
                    "--grad-out", target)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "overwrite" in one_line_error(result.stderr)
    assert snapshot(work) == before
    assert (copy / "targets.npy").read_bytes() == (DATA / "targets.npy").read_bytes()
    assert (copy / "preds.npy").read_bytes() == (DATA / "preds.npy").read_bytes()


def test_default_grad_path_that_is_an_input_is_refused(work: Path):
    # `compute mse preds.npy preds.grad.npy`: the default gradient path is the targets file
    shutil.copy(work / "data" / "preds.npy", work / "preds.npy")
    shutil.copy(work / "data" / "targets.npy", work / "preds.grad.npy")
    before = snapshot(work)
    result = invoke("compute", "mse", "preds.npy", "preds.grad.npy")
    assert result.exit_code == 1
    assert "overwrite" in one_line_error(result.stderr)
    assert snapshot(work) == before


def test_grad_out_never_overwrites_an_option_file(work: Path):
    w = np.array([1.0, 2.0, 1.0, 1.0, 1.0])
    np.save("w.npy", w)
    before = snapshot(work)
    result = invoke("compute", "ce", "data/logits.npy", "data/labels.npy", "--weight", "w.npy",
                    "--grad-out", "w.npy")
    assert result.exit_code == 1
    assert "overwrite" in one_line_error(result.stderr)
    assert snapshot(work) == before


def test_failed_run_keeps_an_old_gradient(work: Path):
    (work / "preds.grad.npy").write_bytes(b"old gradient")
    before = snapshot(work)
    result = invoke("compute", "mse", "data/preds.npy", "data/labels.npy")
    assert result.exit_code == 1
    assert snapshot(work) == before


def test_successful_run_replaces_an_old_gradient_without_temp_files(work: Path):
    (work / "preds.grad.npy").write_bytes(b"old gradient")
    result = invoke("compute", "mse", "data/preds.npy", "data/targets.npy")
    assert result.exit_code == 0
    assert bits_equal(np.load("preds.grad.npy"),
                      lossjit.grad("mse", load("preds.npy"), load("targets.npy")))
    assert sorted(p.name for p in work.iterdir()) == ["data", "preds.grad.npy"]


# --------------------------------------------------------------------------------------------
# real processes: python -m lossjit and the console script


def test_process_mse_npy(work: Path, exe: list[str]):
    preds, targets = load("preds.npy"), load("targets.npy")
    proc = run([*exe, "compute", "mse", "data/preds.npy", "data/targets.npy"], work)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == repr(lossjit.loss("mse", preds, targets)) + "\n"
    assert "preds.grad.npy" in proc.stderr.decode()
    assert bits_equal(np.load(work / "preds.grad.npy"), lossjit.grad("mse", preds, targets))


def test_process_mse_csv(work: Path):
    preds, targets = load("preds.npy"), load("targets.npy")
    proc = run([*launcher("script"), "compute", "mse", "data/preds.csv", "data/targets.csv"],
               work)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == repr(lossjit.loss("mse", preds, targets)) + "\n"
    assert "preds.grad.csv" in proc.stderr.decode()
    header, *text = (work / "preds.grad.csv").read_text().split()
    assert header == "prediction"  # the input's column name
    back = np.array([float(v) for v in text])
    assert bits_equal(back, lossjit.grad("mse", preds, targets))


def test_process_focal_json(work: Path, exe: list[str]):
    logits, labels = load("logits.npy"), load("labels.npy")
    proc = run([*exe, "compute", "focal", "data/logits.npy", "data/labels.npy", "--gamma",
                "1.5", "--json"], work)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert out.count("\n") == 1 and out.endswith("\n")
    record = json.loads(out)
    assert set(record) == {"loss", "name", "predictions", "targets", "reduction", "params",
                           "sample_weight", "empty", "nan_policy", "shape", "dtype", "grad",
                           "read_seconds",
                           "compile_seconds", "compute_seconds", "write_seconds", "seconds"}
    assert record["predictions"] == "data/logits.npy"
    assert record["loss"] == lossjit.loss("focal", logits, labels, gamma=1.5)
    assert (work / "logits.grad.npy").exists()
    assert bits_equal(np.load(work / "logits.grad.npy"),
                      lossjit.grad("focal", logits, labels, gamma=1.5))


def test_process_shell_pipeline(work: Path):
    preds, targets = load("preds.npy"), load("targets.npy")
    lj = " ".join(shlex.quote(a) for a in launcher("script"))
    py = shlex.quote(sys.executable)
    command = (f"{lj} compute mse data/preds.npy data/targets.npy --no-grad | "
               f"{py} -c \"import sys; print(float(sys.stdin.read())*2)\"")
    proc = run([command], work, shell=True)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) == lossjit.loss("mse", preds, targets) * 2
    assert sorted(p.name for p in work.iterdir()) == ["data"]


def test_process_stdin_npy(work: Path):
    preds, targets = load("preds.npy"), load("targets.npy")
    lj = " ".join(shlex.quote(a) for a in launcher("script"))
    proc = run([f"cat data/preds.npy | {lj} compute mse - data/targets.npy"], work, shell=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == repr(lossjit.loss("mse", preds, targets)) + "\n"
    assert "stdin.grad.npy" in proc.stderr.decode()
    assert bits_equal(np.load(work / "stdin.grad.npy"), lossjit.grad("mse", preds, targets))


def test_process_stdin_text(work: Path, exe: list[str]):
    preds, targets = load("preds.npy"), load("targets.npy")
    text = "\n".join(repr(float(v)) for v in preds).encode() + b"\n"
    proc = run([*exe, "compute", "mse", "-", "data/targets.npy", "--json"], work, input=text)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["loss"] == lossjit.loss("mse", preds, targets)
    assert record["grad"] == "stdin.grad.npy"
    assert bits_equal(np.load(work / "stdin.grad.npy"), lossjit.grad("mse", preds, targets))


def test_process_stdin_twice_is_an_error(work: Path):
    proc = run([*launcher("script"), "compute", "mse", "-", "-"], work,
               input=(work / "data" / "preds.npy").read_bytes())
    assert proc.returncode == 1
    assert "stdin" in one_line_error(proc.stderr.decode())
    assert sorted(p.name for p in work.iterdir()) == ["data"]


def test_process_empty_stdin_is_an_error(work: Path):
    proc = run([*launcher("script"), "compute", "mse", "-", "data/targets.npy"], work,
               input=b"")
    assert proc.returncode == 1
    assert "stdin" in one_line_error(proc.stderr.decode())


@pytest.mark.parametrize("case", ["missing file", "shape mismatch", "class out of range",
                                  "negative delta", "unparsable csv", "3-D as csv"])
def test_process_bad_input_exit_1(work: Path, exe: list[str], case: str):
    args, needle = _error_args(work, case)
    before = snapshot(work)
    proc = run([*exe, "compute", *args], work)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == b""
    assert needle in one_line_error(proc.stderr.decode())
    assert snapshot(work) == before


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_process_usage_error_exit_2(work: Path, case: str):
    before = snapshot(work)
    proc = run([*launcher("script"), *USAGE_ERRORS[case]], work)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == b""
    stderr = proc.stderr.decode()
    assert "Traceback" not in stderr and "Error" in stderr
    assert snapshot(work) == before


def test_process_never_overwrites_an_input(work: Path):
    copy = _copy_dir(work)
    before = snapshot(work)
    proc = run([*launcher("script"), "compute", "mse", "data-copy/preds.npy",
                "data-copy/targets.npy", "--grad-out", "data-copy/targets.npy"], work)
    assert proc.returncode == 1
    assert "overwrite" in one_line_error(proc.stderr.decode())
    assert snapshot(work) == before
    assert (copy / "targets.npy").read_bytes() == (DATA / "targets.npy").read_bytes()
