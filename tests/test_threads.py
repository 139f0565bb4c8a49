"""Threads: the kernels' dynamic split of blocks gives the same bits for any thread count, and
lossjit's start of Numba's threads (idle OpenMP threads that spin briefly, then sleep) applies
only where lossjit owns them, never over what the user set, and can be turned off
(``LOSSJIT_OMP_WAIT=keep``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import lossjit
from lossjit import blocking
from lossjit.kernels import _blocks

THREADS = numba.config.NUMBA_NUM_THREADS


@pytest.mark.parametrize("rows", [1, 2, 3, 17, 130])
def test_dynamic_blocks_give_the_same_bits(rows, monkeypatch):
    """Any number of blocks (fewer than, as many as, more than the threads), serial and
    parallel twins, every thread count: the same loss and gradient to the bit."""
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows * blocking.block_rows(100) - 1, 100)).astype(np.float32)
    labels = rng.integers(0, 100, x.shape[0])
    results = []
    for parallel_min, threads in [(1 << 62, 1), *((0, t) for t in range(1, THREADS + 1))]:
        monkeypatch.setattr(blocking, "PARALLEL_MIN", parallel_min)
        old = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            results.append(lossjit.value_and_grad("cross_entropy", x, labels))
        finally:
            numba.set_num_threads(old)
    for value, grad in results[1:]:
        assert value == results[0][0]
        assert np.array_equal(grad, results[0][1])


def test_fetch_add_counts_atomically():
    """The block counter hands out every block once."""

    @numba.njit(parallel=True)
    def taken(n):
        counter = np.zeros(1, dtype=np.int64)
        seen = np.zeros(n, dtype=np.int64)
        for _ in numba.prange(numba.get_num_threads()):
            b = _blocks._fetch_add(counter, 1)
            while b < n:
                seen[b] += 1
                b = _blocks._fetch_add(counter, 1)
        return seen

    assert (taken(10_000) == 1).all()


_PROBE = """
import json, os, numpy as np
from numba.np.ufunc import parallel
seen = []
launch = parallel._launch_threads
def recording():
    seen.append([os.environ.get("OMP_WAIT_POLICY"), os.environ.get("GOMP_SPINCOUNT")])
    launch()
parallel._launch_threads = recording
import lossjit
x = np.ones(1 << 17)
lossjit.value_and_grad("mse", x, np.zeros_like(x))
print(json.dumps({"at_launch": seen[:1], "after": [os.environ.get("OMP_WAIT_POLICY"),
                                                   os.environ.get("GOMP_SPINCOUNT")]}))
"""


def _probe(**env: str) -> dict:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME",
                                "LOSSJIT_OMP_WAIT")}
    environment.update(env, NUMBA_THREADING_LAYER="omp")
    done = subprocess.run([sys.executable, "-c", _PROBE], env=environment, capture_output=True,
                          text=True, timeout=600)
    if done.returncode:
        pytest.skip(f"the OpenMP threading layer is not available here: {done.stderr[-300:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_threads_start_with_a_short_spin_and_the_environment_is_restored():
    assert _probe() == {"at_launch": [[None, "10000"]], "after": [None, None]}
    assert _probe(LOSSJIT_OMP_WAIT="passive") == {"at_launch": [["PASSIVE", None]],
                                                   "after": [None, None]}


def test_the_users_wait_policy_and_the_switch_are_kept():
    assert _probe(OMP_WAIT_POLICY="ACTIVE") == {"at_launch": [["ACTIVE", None]],
                                                "after": ["ACTIVE", None]}
    assert _probe(GOMP_SPINCOUNT="5") == {"at_launch": [[None, "5"]], "after": [None, "5"]}
    assert _probe(KMP_BLOCKTIME="0") == {"at_launch": [[None, None]], "after": [None, None]}
    assert _probe(LOSSJIT_OMP_WAIT="keep") == {"at_launch": [[None, None]],
                                               "after": [None, None]}
