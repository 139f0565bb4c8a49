"""Streaming from disk: peak memory and time of ``lossjit compute --stream`` on inputs larger
than its memory budget, next to the in-memory run and to what reading the files alone costs.

For each case the benchmark makes the inputs with ``open_memmap`` (deleted after), then runs,
each in a fresh process (``/usr/bin/time``-like: ``resource.getrusage`` of the child):

- ``cat x.npy y.npy > /dev/null``: reading alone;
- ``dd`` of the gradient's bytes to a file, synced (``conv=fsync``): writing alone, which a
  streamed run does too, since it syncs its outputs before renaming them into place;
- ``lossjit compute LOSS x.npy y.npy --stream --grad-out g.npy``: streamed, the gradient
  written piece by piece;
- with ``--in-memory``, the same command with ``--no-stream`` (needs the inputs, the gradient
  and their copies in memory).

Each command runs ``--repeat`` times (3): the median is reported, with every run's seconds.
Peak RSS is reported above the baseline of a process that only imports lossjit and loads the
loss's kernels (``--warm-only``), and the loss printed by both runs is compared.

    python benchmarks/stream.py                          # 4 GiB float32 inputs: mse, bce
    python benchmarks/stream.py --gib 1 --in-memory      # smaller, with the in-memory run
    python benchmarks/stream.py --cases ce --gib 2       # (rows, 100) float32 cross-entropy
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

LOSSJIT = [sys.executable, "-m", "lossjit"]


def make_inputs(directory: Path, case: str, gib: float) -> tuple[Path, Path]:
    """The case's two inputs, of about ``gib`` GiB of predictions, written piece by piece."""
    rng = np.random.default_rng(0)
    x_path, y_path = directory / "x.npy", directory / "y.npy"
    if case == "ce":
        classes = 100
        rows = int(gib * 2**30 / 4 / classes)
        x = np.lib.format.open_memmap(x_path, "w+", np.float32, (rows, classes))
        y = np.lib.format.open_memmap(y_path, "w+", np.int64, (rows,))
        step = 100_000
        for lo in range(0, rows, step):
            hi = min(rows, lo + step)
            x[lo:hi] = rng.standard_normal((hi - lo, classes), dtype=np.float32)
            y[lo:hi] = rng.integers(0, classes, hi - lo)
    else:
        n = int(gib * 2**30 / 4)
        x = np.lib.format.open_memmap(x_path, "w+", np.float32, (n,))
        y = np.lib.format.open_memmap(y_path, "w+", np.float32, (n,))
        step = 1 << 24
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            x[lo:hi] = rng.standard_normal(hi - lo, dtype=np.float32)
            y[lo:hi] = (rng.standard_normal(hi - lo, dtype=np.float32) if case == "mse"
                        else (rng.random(hi - lo) < 0.5).astype(np.float32))
    x.flush()
    y.flush()
    del x, y
    return x_path, y_path


def measure(command: list[str], cwd: Path) -> dict[str, float | str]:
    """Wall seconds, peak RSS (MiB) and stdout of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-500:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": seconds, "peak_mib": max(peak, before) / 1024,
            "stdout": done.stdout.strip()}


def peak_of(command: list[str], cwd: Path, repeat: int = 1) -> dict[str, Any]:
    """``measure`` in a fresh wrapper process, so that each command's peak is its own;
    ``repeat`` times: the median seconds and peak, and every run's seconds."""
    wrapper = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
               "from stream import measure; from pathlib import Path; "
               f"print(json.dumps(measure({command!r}, Path({str(cwd)!r}))))")
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True,
                             check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return {"seconds": statistics.median(r["seconds"] for r in runs),
            "peak_mib": statistics.median(r["peak_mib"] for r in runs),
            "runs": [round(r["seconds"], 2) for r in runs], "stdout": runs[-1]["stdout"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=4.0, help="GiB of each float32 input")
    parser.add_argument("--cases", default="mse,bce", help="mse, bce, ce")
    parser.add_argument("--memory", default="256MiB", help="lossjit's --memory")
    parser.add_argument("--in-memory", action="store_true",
                        help="also the --no-stream run (needs several times --gib of memory)")
    parser.add_argument("--dir", default=None, help="where to make the inputs [a temporary "
                                                     "directory]")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each command (the median is reported) [3]")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    names = {"mse": "mse", "bce": "bce_with_logits", "ce": "cross_entropy"}
    results = []
    for case in args.cases.split(","):
        work = Path(tempfile.mkdtemp(dir=args.dir, prefix="lossjit-stream-"))
        try:
            x, y = make_inputs(work, case, args.gib)
            os.sync()  # on disk, as a user's inputs are: no write-back under the runs
            loss = names[case]
            size = (x.stat().st_size + y.stat().st_size) / 2**30
            small = work / "small"
            small.mkdir()
            np.save(small / "x.npy", np.load(x, mmap_mode="r")[:1000])
            np.save(small / "y.npy", np.load(y, mmap_mode="r")[:1000])
            base = peak_of([*LOSSJIT, "compute", loss, "x.npy", "y.npy", "--stream",
                            "--grad-out", "g.npy"], small)
            row = {"case": loss, "shape": list(np.load(x, mmap_mode="r").shape),
                   "inputs_gib": round(size, 2), "baseline_mib": base["peak_mib"]}
            row["cat"] = peak_of(["sh", "-c", f"cat '{x}' '{y}' > /dev/null"], work,
                                 args.repeat)
            mib = -(-x.stat().st_size // 2**20)
            row["dd"] = peak_of(["sh", "-c", f"dd if=/dev/zero of=dd.out bs=1M count={mib} "
                                 "conv=fsync 2>/dev/null; rm dd.out"], work, args.repeat)
            streamed = peak_of([*LOSSJIT, "compute", loss, str(x), str(y), "--stream",
                                "--memory", args.memory, "--grad-out", "g.npy"], work,
                               args.repeat)
            row["stream"] = streamed
            if args.in_memory:
                (work / "g.npy").unlink()
                row["in_memory"] = peak_of([*LOSSJIT, "compute", loss, str(x), str(y),
                                            "--no-stream", "--grad-out", "g.npy"], work)
                row["same_loss"] = row["in_memory"]["stdout"] == streamed["stdout"]
            results.append(row)
            above = streamed["peak_mib"] - base["peak_mib"]
            print(f"{loss:16} {size:5.2f} GiB inputs  cat {row['cat']['seconds']:6.2f} s  "
                  f"dd {row['dd']['seconds']:6.2f} s {row['dd']['runs']}  "
                  f"stream {streamed['seconds']:6.2f} s {streamed['runs']}, "
                  f"peak RSS {streamed['peak_mib']:7.0f} "
                  f"MiB ({above:+.0f} MiB above the {base['peak_mib']:.0f} MiB baseline)"
                  + (f"  in memory {row['in_memory']['seconds']:6.2f} s, "
                     f"{row['in_memory']['peak_mib']:7.0f} MiB, same loss: {row['same_loss']}"
                     if args.in_memory else ""), flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
