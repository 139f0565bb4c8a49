"""lossjit inside a program: its kernels between other libraries' parallel work, in one process.

Scenarios (each timed as a median over many repetitions):

- ``ce_after_blas``: ``cross_entropy`` on (8192, 1000) float32 right after a BLAS matrix
  product (OpenBLAS threads);
- ``bce_after_blas``: ``bce_with_logits`` on 1e6 float32 right after a BLAS product;
- ``ce_after_torch``: ``cross_entropy`` right after a PyTorch matrix product (its own threads);
- ``ce_alone``: the same call with nothing else in between;
- ``train_lossjit`` / ``train_numpy`` / ``train_torch``: one step of logistic regression on
  1e5 x 20 float64 (``z = X @ w``, loss and gradient, ``X.T @ g``, update), with lossjit's
  ``bce_with_logits(out=)``, in plain NumPy, and in PyTorch (CPU, no autograd);
  ``train_lossjit_torch_loaded``: lossjit's step in a
  process where PyTorch was imported first (its OpenMP runtime already loaded);
  ``matvecs_numpy`` / ``matvecs_torch``: the step's two matrix-vector products and the update
  alone (the loss replaced by an element-wise multiply-add), the floor of each library's step.

Settings (each in a fresh process, since the OpenMP runtime reads its environment once):

- ``default``: lossjit as shipped;
- ``static``: the kernels' former static split of blocks (``prange`` over blocks) and the
  OpenMP runtime's own wait policy, as before this benchmark's fixes;
- ``spin``: the shipped kernels with the OpenMP runtime's own wait policy
  (``LOSSJIT_OMP_WAIT=keep``);
- ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` set by the user (``LOSSJIT_OMP_WAIT=passive`` does
  the same where lossjit starts the threads);
- ``workqueue``: Numba's workqueue threading layer;
- ``serial``: the serial kernels only (the floor a parallel kernel must beat).

    python benchmarks/program.py                 # every setting, 3 interleaved rounds
    python benchmarks/program.py --rounds 5 --settings default,serial
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    "static": {"LOSSJIT_OMP_WAIT": "keep", "PROGRAM_STATIC": "1"},
    "spin": {"LOSSJIT_OMP_WAIT": "keep"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "workqueue": {"NUMBA_THREADING_LAYER": "workqueue"},
    "serial": {"PROGRAM_SERIAL": "1"},
}


def _static_template():
    """The former rows template: ``prange`` over the blocks (a static split)."""
    import numpy as np
    from numba import prange

    from lossjit.kernels import _blocks

    def rows_template(x, y, w, grad, hess, losses, sums, scale, *params):
        n = x.shape[0]
        rows = _block_rows(x.size // n if n else 1)  # noqa: F821 (a template's free name)
        nblocks = (n + rows - 1) // rows
        partials = sums if sums.size else np.empty(nblocks)
        for b in prange(nblocks):
            lo = b * rows
            hi = min(n, lo + rows)
            partials[b] = block(x[lo:hi], y[lo:hi], w[lo:hi], grad[lo:hi],  # noqa: F821
                                hess[lo:hi], losses[lo:hi], scale, *params)
        return sum_in_order(partials[:nblocks])  # noqa: F821

    rows_template.__globals__.update(_block_rows=_blocks._block_rows,
                                     sum_in_order=_blocks.sum_in_order)
    _blocks.rows_template = rows_template


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        times.append(fn())
    return statistics.median(times) * 1e3


def worker(repeat: int, part: str) -> dict[str, float]:
    """Run one part's scenarios in this process ("numpy": no PyTorch in the process, so
    lossjit is the first to load the OpenMP runtime; "torch": PyTorch imported first, as a
    PyTorch program does); the settings came through the environment."""
    import numpy as np

    if os.environ.get("PROGRAM_STATIC"):
        _static_template()
    import lossjit
    from lossjit import blocking

    if os.environ.get("PROGRAM_SERIAL"):
        blocking.PARALLEL_MIN = 1 << 62
    if part == "torch":
        import torch

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((8192, 1000)).astype(np.float32)
    labels = rng.integers(0, 1000, 8192)
    z1 = rng.standard_normal(1_000_000).astype(np.float32)
    t1 = (rng.random(1_000_000) < 0.5).astype(np.float32)
    m = rng.standard_normal((600, 600))
    out_ce = np.empty_like(logits)
    out_b = np.empty_like(z1)

    def ce():
        lossjit.value_and_grad("cross_entropy", logits, labels, out=out_ce)

    def bce():
        lossjit.value_and_grad("bce_with_logits", z1, t1, out=out_b)

    def after(before, call):
        def timed():
            before()
            start = time.perf_counter()
            call()
            return time.perf_counter() - start
        return timed

    def alone(call):
        def timed():
            start = time.perf_counter()
            call()
            return time.perf_counter() - start
        return timed

    blas = lambda: m @ m  # noqa: E731
    ce(), bce(), blas()
    n, d = 100_000, 20
    X = rng.standard_normal((n, d))
    y = (X @ rng.standard_normal(d) + rng.standard_normal(n) > 0).astype(np.float64)
    g = np.empty(n)
    if part == "torch":
        tm, Xt, yt = torch.from_numpy(m), torch.from_numpy(X), torch.from_numpy(y)
        torch_mm = lambda: torch.mm(tm, tm)  # noqa: E731
        result = {"ce_after_torch": _median_ms(after(torch_mm, ce), repeat)}
    else:
        result = {"ce_alone": _median_ms(alone(ce), repeat),
                  "ce_after_blas": _median_ms(after(blas, ce), repeat),
                  "bce_after_blas": _median_ms(after(blas, bce), repeat)}

    def loop(step, steps=100):
        step()  # warm
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3

    w = np.zeros(d)

    def step_lossjit():
        nonlocal w
        z = X @ w
        lossjit.value_and_grad("bce_with_logits", z, y, out=g)
        w = w - 0.1 * (X.T @ g)

    def step_numpy():
        nonlocal w
        z = X @ w
        float(np.mean(np.logaddexp(0.0, z) - y * z))
        grad = (1.0 / (1.0 + np.exp(-z)) - y) / n
        w = w - 0.1 * (X.T @ grad)

    def step_matvecs():  # the step's two matrix-vector products alone: its floor in NumPy
        nonlocal w
        z = X @ w
        w = w - 0.1 * (X.T @ (z * 0.0 + y))

    if part == "torch":
        wt = torch.zeros(d, dtype=torch.float64)

        def step_torch_matvecs():
            nonlocal wt
            z = Xt @ wt
            wt = wt - 0.1 * (Xt.T @ (z * 0.0 + yt))

        def step_torch():
            nonlocal wt
            z = Xt @ wt
            float(torch.nn.functional.binary_cross_entropy_with_logits(z, yt))
            grad = (torch.sigmoid(z) - yt) / n
            wt = wt - 0.1 * (Xt.T @ grad)

        result["train_torch"] = loop(step_torch)
        result["matvecs_torch"] = loop(step_torch_matvecs)
        result["train_lossjit_torch_loaded"] = loop(step_lossjit)
        return result
    result["train_lossjit"] = loop(step_lossjit)
    result["train_numpy"] = loop(step_numpy)
    result["matvecs_numpy"] = loop(step_matvecs)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--worker", choices=("numpy", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the medians here")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.repeat, args.worker)))
        return
    names = args.settings.split(",")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(args.rounds):  # interleaved: each round runs every setting once
        for name in names:
            env = dict(os.environ, **SETTINGS[name])
            if name == "static":  # another template under the same names: its own cache
                env["NUMBA_CACHE_DIR"] = env.get("NUMBA_CACHE_DIR", "/tmp/lossjit") + "_static"
            merged: dict[str, float] = {}
            for part in ("numpy", "torch"):
                done = subprocess.run([sys.executable, __file__, "--worker", part, "--repeat",
                                       str(args.repeat)], env=env, capture_output=True,
                                      text=True, check=True, cwd=ROOT)
                merged.update(json.loads(done.stdout.strip().splitlines()[-1]))
            runs[name].append(merged)
    scenarios = list(runs[names[0]][0])
    table = {name: {s: statistics.median(r[s] for r in runs[name]) for s in scenarios}
             for name in names}
    print(f"ms (median of per-process medians; load average {os.getloadavg()[0]:.1f})")
    print(f"{'scenario':27}" + "".join(f"{name:>10}" for name in names))
    for s in scenarios:
        print(f"{s:27}" + "".join(f"{table[name][s]:10.2f}" for name in names))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
