"""What the CLI tests share: the sample data, running the CLI in-process (CliRunner) and as
a real process, and the ``work`` and ``exe`` fixtures (made visible by conftest.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lossjit.cli import cli

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
DATA_FILES = ["preds.npy", "targets.npy", "preds.csv", "targets.csv", "logits.npy",
              "labels.npy", "pairs.npy", "pair_labels.npy", "triplets.npy", "results.csv",
              "animals.csv", "run.npz"]
# The console script of the environment running the tests, else the first one on PATH.
_SIBLING = Path(sys.executable).with_name("lossjit")
SCRIPT = str(_SIBLING) if _SIBLING.exists() else shutil.which("lossjit")


def load(name: str) -> np.ndarray:
    return np.load(DATA / name, allow_pickle=False)


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> bytes), hidden temp files included."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary current directory holding a copy of the sample files under data/."""
    missing = [name for name in DATA_FILES if not (DATA / name).exists()]
    assert not missing, f"run `python data/make_data.py` first; missing {missing}"
    (tmp_path / "data").mkdir()
    for name in DATA_FILES:
        shutil.copy(DATA / name, tmp_path / "data" / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str, input: bytes | str | None = None):
    """Run the CLI in-process; stdout and stderr are kept apart."""
    runner = CliRunner()
    return runner.invoke(cli, list(args), input=input, prog_name="lossjit",
                         catch_exceptions=False)


def run(argv: list[str], cwd: Path, input: bytes | None = None,
        shell: bool = False) -> subprocess.CompletedProcess:
    """A real process, with the test's environment (its NUMBA_CACHE_DIR included)."""
    return subprocess.run(argv if not shell else argv[0], cwd=cwd, input=input,
                          capture_output=True, shell=shell, timeout=120, env=dict(os.environ))


def launcher(kind: str) -> list[str]:
    if kind == "module":
        return [sys.executable, "-m", "lossjit"]
    if SCRIPT is None:
        pytest.skip("the lossjit console script is not installed")
    return [SCRIPT]


def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture(params=["module", "script"])
def exe(request) -> list[str]:
    """``python -m lossjit`` and the ``lossjit`` console script."""
    return launcher(request.param)
