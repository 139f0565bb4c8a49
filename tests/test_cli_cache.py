"""Tests of ``lossjit cache path|clear|warm``, as real processes."""

from __future__ import annotations

import os
import subprocess
import sys


def test_cache_path_warm_and_clear(tmp_path):
    """`lossjit cache warm` fills the cache directory, `path` names it, `clear` empties it."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "lossjit", "cache", *args], env=env,
                              capture_output=True, text=True, timeout=300)

    warmed = run("warm", "mse", "--dtype", "float64", "--no-parallel", "--jobs", "1")
    assert warmed.returncode == 0, warmed.stderr
    assert "mse:" in warmed.stderr and "compiled" in warmed.stderr
    listed = run("path")
    assert listed.returncode == 0 and listed.stdout.strip() == str(tmp_path / "cache")
    files = [p for p in (tmp_path / "cache").rglob("*") if p.suffix in (".nbi", ".nbc")]
    assert files and f"{len(files)} kernel files" in listed.stderr
    cleared = run("clear")
    assert cleared.returncode == 0 and f"removed {len(files)} kernel files" in cleared.stderr
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.suffix in (".nbi", ".nbc")]
    assert run("warm", "no_such_loss").returncode == 1
