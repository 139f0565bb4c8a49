"""The machine: the STREAM triad bandwidth (Numba) and the CPU, cores, versions and
thread settings a run records."""

from __future__ import annotations

import functools
import os
import platform
import sys
import time
from typing import Any

import numpy as np

from lossjit_bench.timing import median


@functools.cache
def _triad_kernel() -> Any:
    import numba

    @numba.njit(parallel=True, cache=False)
    def triad(a, b, c, s):  # pragma: no cover - compiled
        for i in numba.prange(a.size):
            a[i] = b[i] + s * c[i]

    return triad


_triad_arrays: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def triad_bandwidth(n: float = 2e7, threads: int | None = 2, *, repeat: int = 10,
                    keep: bool = True) -> dict[str, float]:
    """STREAM triad ``a = b + s c`` on float64 arrays of ``n`` numbers with ``threads``
    Numba threads (None: Numba's default). Bytes counted: 3 arrays x 8 bytes x n, as STREAM
    does (no write-allocate traffic). Returns ``{"gbs": median GB/s, "best_gbs", "threads",
    "n"}``. The arrays are kept for later calls unless ``keep`` is false."""
    import numba

    n = int(n)
    kernel = _triad_kernel()
    if n not in _triad_arrays:
        b = np.full(n, 1.0)
        c = np.full(n, 2.0)
        _triad_arrays[n] = (np.zeros(n), b, c)
    a, b, c = _triad_arrays[n]
    before = numba.get_num_threads()
    count = min(threads or before, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(count)
    try:
        kernel(a, b, c, 3.0)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            kernel(a, b, c, 3.0)
            times.append(time.perf_counter() - start)
    finally:
        numba.set_num_threads(before)
        if not keep:
            _triad_arrays.pop(n, None)
    moved = 3 * 8 * n
    return {"gbs": moved / median(times) / 1e9, "best_gbs": moved / min(times) / 1e9,
            "threads": count, "n": n}


def release_triad_arrays() -> None:
    _triad_arrays.clear()

_VERSION_OF = {"numpy": "numpy", "numba": "numba", "llvmlite": "llvmlite", "torch": "torch",
               "jax": "jax", "jaxlib": "jaxlib", "sklearn": "scikit-learn", "scipy": "scipy",
               "lossjit": "lossjit", "click": "click"}

_THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "OMP_NUM_THREADS",
                     "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
                     "OPENBLAS_L2_SIZE", "XLA_FLAGS", "NUMBA_CACHE_DIR")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(("avx", "fma", "sse4")))
    except OSError:
        pass
    return []


def machine_info() -> dict[str, Any]:
    """CPU model, cores, versions of lossjit and its peers, and the thread settings."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for key, dist in _VERSION_OF.items():
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    threads: dict[str, Any] = {
        "environment": {k: os.environ.get(k) for k in _THREAD_VARIABLES if k in os.environ},
    }
    if sys.modules.get("numba") is not None:
        import numba

        threads["numba_num_threads"] = numba.get_num_threads()
        try:
            threads["numba_threading_layer"] = numba.threading_layer()
        except ValueError:
            threads["numba_threading_layer"] = "not yet chosen"
    if sys.modules.get("torch") is not None:
        threads["torch_num_threads"] = sys.modules["torch"].get_num_threads()
    try:
        from threadpoolctl import threadpool_info

        threads["threadpools"] = [
            {k: pool.get(k) for k in ("internal_api", "num_threads", "architecture", "version")}
            for pool in threadpool_info()
        ]
    except ImportError:
        pass
    return {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "threads": threads,
    }
