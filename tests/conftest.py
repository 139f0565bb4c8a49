"""Shared test helpers: the golden cases and the NumPy oracle are importable from here."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

# The golden-data generator needs torch; the suite must run without it.
collect_ignore = ["golden/make_golden.py"]

GOLDEN = json.loads((TESTS_DIR / "golden" / "torch_cases.json").read_text())


def golden_arrays(case):
    """A golden case's (predictions, targets) as arrays of their recorded dtypes."""
    predictions = np.asarray(case["predictions"], dtype=case["predictions_dtype"])
    targets = case["targets"]
    if targets is not None:
        targets = np.asarray(targets, dtype=case["targets_dtype"])
    return predictions, targets


# The CLI tests' fixtures, defined with their helpers in cli_helpers.py.
pytest.register_assert_rewrite("cli_helpers")
from cli_helpers import exe, work  # noqa: E402, F401
