"""lossjit before and after a change, on the same machine: the same cases timed with two
checkouts, in alternating fresh processes, medians of medians.

    git worktree add /tmp/before <commit>
    .venv/bin/python benchmarks/compare_trees.py /tmp/before .

Each tree is put first on ``PYTHONPATH`` of its child processes, which share one Numba cache
directory (the kernels' cache names differ between the trees' sources). Prints one row per
case: the median call time of each tree and their ratio (above 1: the second tree is slower).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r'''
import json, time
import numpy as np
import lossjit

rng = np.random.default_rng(0)
f32 = np.float32


def median_time(fn, number):
    fn(); fn()
    times = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return sorted(times)[3]


def normal(*shape, dtype=f32):
    return rng.normal(size=shape).astype(dtype)


def binary(n):
    return (rng.random(n) < 0.5).astype(f32)


CASES = [
    ("mse", normal(1000), normal(1000), {}, 3000),
    ("mse", normal(10**6), normal(10**6), {}, 30),
    ("huber", normal(10**5), normal(10**5), {}, 300),
    ("bce_with_logits", normal(10**6), binary(10**6), {}, 10),
    ("bce_with_logits", normal(10**5, dtype=np.float64), binary(10**5) * 1.0, {}, 100),
    ("sigmoid_focal", normal(10**6), binary(10**6), {}, 5),
    ("binary_cross_entropy", rng.uniform(0.02, 0.98, 10**6).astype(f32), binary(10**6), {}, 10),
    ("poisson_nll", normal(10**6), rng.poisson(2, 10**6).astype(f32), {}, 10),
    ("log_cosh", normal(10**6), normal(10**6), {}, 10),
    ("hinge_embedding", normal(10**6), np.where(rng.random(10**6) < 0.5, f32(1), f32(-1)), {},
     10),
    ("gaussian_nll", normal(10**6), normal(10**6),
     {"var": rng.uniform(0.25, 2, 10**6).astype(f32)}, 10),
    ("cross_entropy", normal(65536, 10), rng.integers(0, 10, 65536), {}, 10),
    ("cross_entropy", normal(8192, 100, dtype=np.float64), rng.integers(0, 100, 8192), {}, 10),
    ("focal", normal(65536, 10), rng.integers(0, 10, 65536), {}, 10),
    ("nll", normal(65536, 10), rng.integers(0, 10, 65536), {}, 20),
    ("triplet", normal(5000, 3, 64), None, {}, 10),
    ("contrastive", normal(7812, 2, 64), binary(7812) * 1.0, {}, 10),
    ("margin_ranking", normal(500000, 2), np.where(rng.random(500000) < 0.5, 1.0, -1.0), {},
     10),
]
results = {}
for name, x, y, options, number in CASES:
    out = np.empty_like(x)
    call = lambda: lossjit.value_and_grad(name, x, y, out=out, **options)  # noqa: E731
    results[f"{name} {x.shape} {x.dtype}"] = median_time(call, number)
print(json.dumps(results))
'''


def run_tree(tree: str, cache: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree), "NUMBA_CACHE_DIR": cache}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                         text=True, check=True, cwd=tempfile.gettempdir()).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    before, after = sys.argv[1:3]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    with tempfile.TemporaryDirectory() as cache:
        runs: dict[str, list[dict[str, float]]] = {before: [], after: []}
        for _ in range(rounds):
            for tree in (after, before):
                runs[tree].append(run_tree(tree, cache))
    print(f"{'case (value_and_grad, out=)':45s} {'before':>10s} {'after':>10s}  after/before")
    for case in runs[after][0]:
        old = statistics.median(r[case] for r in runs[before])
        new = statistics.median(r[case] for r in runs[after])
        print(f"{case:45s} {old * 1e6:8.1f}us {new * 1e6:8.1f}us  {new / old:5.2f}")


if __name__ == "__main__":
    main()
