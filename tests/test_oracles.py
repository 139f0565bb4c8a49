"""Checks of the NumPy test oracle (tests/naive.py) against PyTorch's golden values.

tests/golden/torch_cases.json holds loss values computed by PyTorch (see
tests/golden/make_golden.py); every case's value must be reproduced by the oracle. These tests
need neither torch nor lossjit.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from naive import LOSSES, REDUCTIONS, oracle  # noqa: E402

GOLDEN_PATH = TESTS_DIR / "golden" / "torch_cases.json"
GOLDEN = json.loads(GOLDEN_PATH.read_text())

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
    value = oracle(
        case["loss"], predictions, targets, reduction=case["reduction"], **case["params"]
    )
    expected = np.asarray(case["loss_value"], dtype=np.float64)
    assert np.shape(value) == expected.shape
    np.testing.assert_allclose(value, expected, rtol=RTOL, atol=ATOL, equal_nan=True)


def test_golden_covers_every_loss_and_reduction():
    covered = {(case["loss"], case["reduction"]) for case in GOLDEN}
    assert covered == {(name, r) for name in LOSSES for r in REDUCTIONS}


@pytest.mark.parametrize("case", GOLDEN, ids=[case["id"] for case in GOLDEN])
def test_golden_gradient_has_predictions_shape(case):
    predictions, _ = golden_arrays(case)
    assert np.asarray(case["grad"], dtype=np.float64).shape == predictions.shape


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
