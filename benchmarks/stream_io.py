"""How a streamed run moves its pieces: three ways, timed in one process on the same files.

- ``mapping``: the pieces sliced out of the memory-mapped inputs and copied into the
  memory-mapped output, each piece's pages dropped once done;
- ``descriptors``: ``preadv`` into one buffer per input and ``pwritev`` from one gradient
  buffer, reused for every piece;
- ``read ahead``: what :func:`lossjit.streaming.stream` does: the descriptors, with a second
  thread writing the last piece and reading the next one while the kernels run (two buffers
  of each).

Each way runs ``mse`` over two float32 ``.npy`` files of ``--gib`` GiB each (made with
``open_memmap``, deleted after) into a ``.npy`` gradient, ``--repeat`` times in turn; the
median seconds are reported (the gradient's fsync, the same for all, is left out). The loss
of every run, and the gradient's bytes, must equal the first run's. ``--cold`` asks the
system to drop the files' cached pages before each run (``posix_fadvise``; a hint).

    python benchmarks/stream_io.py                  # 2 x 4 GiB
    python benchmarks/stream_io.py --gib 1 --cold
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lossjit import streaming
from lossjit.plan import make_plan

PLAN = make_plan("mse")
MEMORY = streaming.DEFAULT_MEMORY


def make_inputs(directory: Path, gib: float) -> tuple[str, str]:
    n = int(gib * 2**30 / 4)
    paths = []
    for name in ("x", "y"):
        path = directory / f"{name}.npy"
        array = np.lib.format.open_memmap(path, "w+", np.float32, (n,))
        step = 1 << 24
        for lo in range(0, n, step):
            rng = np.random.default_rng([lo, len(paths)])
            array[lo:lo + step] = rng.standard_normal(min(step, n - lo), dtype=np.float32)
        array.flush()
        del array
        paths.append(str(path))
    return paths[0], paths[1]


def streamed(x_path: str, y_path: str, g_path: str) -> float:
    x, y = streaming.open_npy(x_path), streaming.open_npy(y_path)
    grad = streaming.create_npy(g_path, x.shape, x.dtype)
    value = streaming.stream(PLAN, x, y, grad=grad, memory=MEMORY)
    grad.flush()
    return value


def way(read_ahead: bool, descriptors: bool) -> Callable[[str, str, str], float]:
    def run(x_path: str, y_path: str, g_path: str) -> float:
        real = streaming._READ_AHEAD, streaming._file_position
        streaming._READ_AHEAD = read_ahead
        if not descriptors:
            streaming._file_position = lambda array: None  # pieces sliced from the mapping
        try:
            return streamed(x_path, y_path, g_path)
        finally:
            streaming._READ_AHEAD, streaming._file_position = real

    return run


WAYS: dict[str, Callable[[str, str, str], float]] = {
    "mapping": way(read_ahead=False, descriptors=False),
    "descriptors": way(read_ahead=False, descriptors=True),
    "read ahead": way(read_ahead=True, descriptors=True),
}


def evict(*paths: str) -> None:
    for path in paths:
        if os.path.exists(path):
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def same_bytes(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            left, right = fa.read(1 << 26), fb.read(1 << 26)
            if left != right:
                return False
            if not left:
                return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=4.0, help="GiB of each input [4]")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way [3]")
    parser.add_argument("--cold", action="store_true", help="drop cached pages before runs")
    parser.add_argument("--dir", default=None, help="where to make the files")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(dir=args.dir, prefix="lossjit-stream-io-"))
    try:
        x_path, y_path = make_inputs(work, args.gib)
        os.sync()  # on disk, as a user's inputs are: no write-back under the runs
        reference = str(work / "g_ref.npy")
        expected = streamed(x_path, y_path, reference)  # also compiles the kernel
        times: dict[str, list[float]] = {name: [] for name in WAYS}
        for _ in range(args.repeat):
            for name, way in WAYS.items():
                g_path = str(work / "g.npy")
                if args.cold:
                    evict(x_path, y_path, g_path)
                start = time.perf_counter()
                value = way(x_path, y_path, g_path)
                times[name].append(time.perf_counter() - start)
                if value != expected or not same_bytes(g_path, reference):
                    raise SystemExit(f"{name}: the loss {value!r} or the gradient differs from "
                                     f"the first run's ({expected!r})")
                os.unlink(g_path)
        cache = "cold" if args.cold else "in the page cache"
        print(f"mse, 2 x {args.gib:g} GiB float32 ({cache}), median of {args.repeat}, "
              f"{os.cpu_count()} cores:")
        base = statistics.median(times["mapping"])
        for name, runs in times.items():
            median = statistics.median(runs)
            print(f"  {name:12} {median:7.2f} s  ({base / median:4.2f}x the mapping)  "
                  f"runs: {', '.join(f'{t:.2f}' for t in runs)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
