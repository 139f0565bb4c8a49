"""Many small jobs: one `lossjit batch` process against one `lossjit compute` process per job.

Writes N small prediction/target pairs (.npy, 100 float64 each) and a job list into a
temporary directory, then times, on the same machine in one run:

- `lossjit batch jobs.ndjson` over all N jobs (one process: the start-up and the kernels'
  loading are paid once), and with `--jobs 2`;
- `lossjit compute` run once per job for the first K jobs (a shell loop's cost per job);
- the same jobs through the Python API in one process (`lossjit.loss` on arrays already read).

Each figure is the median of `--repeats` runs, after one warm-up that fills the kernel cache.
Every batch result is checked against NumPy's mean squared error of the same files.

    python benchmarks/batch.py                 # 1000 jobs, 20 separate processes
    python benchmarks/batch.py --jobs 200 --processes 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LOSSJIT = str(Path(sys.executable).with_name("lossjit"))


def timed(argv: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, check=False)
    return time.perf_counter() - started, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the batch")
    parser.add_argument("--processes", type=int, default=20,
                        help="jobs run as separate `lossjit compute` processes")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lossjit-batch-"))
    try:
        rng = np.random.default_rng(0)
        expected = []
        lines = []
        for i in range(args.jobs):
            p, t = rng.standard_normal(100), rng.standard_normal(100)
            np.save(work / f"p{i}.npy", p)
            np.save(work / f"t{i}.npy", t)
            expected.append(float(np.mean((p - t) ** 2)))
            lines.append(json.dumps({"loss": "mse", "predictions": f"p{i}.npy",
                                     "targets": f"t{i}.npy"}))
        (work / "jobs.ndjson").write_text("\n".join(lines) + "\n")
        timed([LOSSJIT, "compute", "mse", "p0.npy", "t0.npy", "--no-grad"], work)  # warm-up

        figures: dict[str, list[float]] = {"batch": [], "batch --jobs 2": [], "compute": [],
                                           "api": []}
        for _ in range(args.repeats):
            for name, extra in (("batch", []), ("batch --jobs 2", ["--jobs", "2"])):
                seconds, proc = timed([LOSSJIT, "batch", "jobs.ndjson", *extra], work)
                results = [json.loads(line) for line in proc.stdout.decode().splitlines()]
                losses = [r["loss"] for r in results]
                assert proc.returncode == 0 and np.allclose(losses, expected, rtol=1e-12), \
                    proc.stderr.decode()
                figures[name].append(seconds / args.jobs)
            started = time.perf_counter()
            for i in range(args.processes):
                proc = subprocess.run([LOSSJIT, "compute", "mse", f"p{i}.npy", f"t{i}.npy",
                                       "--no-grad"], cwd=work, capture_output=True)
                assert abs(float(proc.stdout) - expected[i]) <= 1e-12 * expected[i]
            figures["compute"].append((time.perf_counter() - started) / args.processes)
            code = ("import sys, time, numpy as np, lossjit\n"
                    f"n = {args.jobs}\n"
                    "t = time.perf_counter()\n"
                    "for i in range(n):\n"
                    "    lossjit.loss('mse', np.load(f'p{i}.npy'), np.load(f't{i}.npy'))\n"
                    "print((time.perf_counter() - t) / n)\n")
            proc = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True,
                                  check=True)
            figures["api"].append(float(proc.stdout))

        print(f"{args.jobs} jobs of mse on 100 float64 numbers (.npy pairs), median of "
              f"{args.repeats} runs, {os.cpu_count()} cores\n")
        print("| how | per job | 1000 jobs |")
        print("|---|---|---|")
        rows = (("`lossjit batch jobs.ndjson` (one process)", "batch"),
                ("`lossjit batch jobs.ndjson --jobs 2`", "batch --jobs 2"),
                (f"`lossjit compute` per job (a shell loop; {args.processes} jobs timed)",
                 "compute"),
                ("Python API in one process, arrays loaded per job (no start-up)", "api"))
        for label, key in rows:
            per_job = statistics.median(figures[key])
            print(f"| {label} | {per_job * 1e3:.2f} ms | {per_job * 1000:.1f} s |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
