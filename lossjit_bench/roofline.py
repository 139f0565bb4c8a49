"""Roofline figures of the element-wise losses: the time their memory traffic takes at the
measured triad bandwidth, the time their transcendental work takes at the measured speed of
lossjit's own vectorised functions (:mod:`lossjit.kernels.vecmath`), and lossjit's time
against the larger of the two.

- memory time = bytes read + written (:meth:`Inputs.nbytes`: predictions, targets, array
  options, the gradient) / the 2-thread triad bandwidth;
- compute time = sum over the functions f of WORK[loss][f] x n x seconds per call of f, each
  measured here (:func:`op_seconds`) in a parallel Numba loop over the same n, with the
  kernels' own structure (blocks of 8192, values summed in lanes) and less that loop without
  the function (so only the function's own cost is counted);
- fraction = max(memory time, compute time) / lossjit's time with ``out=`` (1 = at the
  roofline; the issue's target is 0.7 at 1e7 elements).

WORK counts what each kernel's ``pointwise`` calls per element for value + gradient (the
Hessian compiled away), read from ``lossjit/kernels``: update it when a kernel changes its
math. Functions: ``exp``, ``log``, ``log1p``, ``logistic`` in the data's precision (``exp_as``
and its kin: float32 lanes for float32 data), ``exp64``, ``log64``, ``log1p64`` (float64
whatever the data), ``div64`` and ``sqrt64`` (a float64 division, square root).
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np

from lossjit_bench.timing import median

#: Per element, value + gradient: how many calls of each function lossjit's kernel makes.
WORK: dict[str, dict[str, int]] = {
    "mse": {},
    "l1": {},
    "huber": {},
    "smooth_l1": {"div64": 2},
    "binary_cross_entropy": {"log": 1, "log1p": 1, "div64": 1},
    "bce_with_logits": {"logistic": 1},
    "sigmoid_focal": {"logistic": 1, "exp64": 1, "log64": 1, "div64": 1},
    "log_cosh": {"exp64": 1, "log1p64": 1, "div64": 1},
    "pseudo_huber": {"div64": 3, "sqrt64": 1},
    "quantile": {},
    "poisson_nll": {"exp64": 1, "log64": 2, "div64": 1},
    "gaussian_nll": {"log64": 1, "div64": 1},
    "kl_div": {"log64": 1},
    "hinge_embedding": {},
    "soft_margin": {"logistic": 1},
    "tweedie": {"exp64": 2, "div64": 2},
    "gamma_nll": {"exp64": 1},
}

#: The functions, and the interval their argument sweeps.
OPS: dict[str, tuple[float, float]] = {
    "none": (-1.0, 1.0), "exp": (-10.0, 0.0), "log": (0.01, 10.0), "log1p": (0.0, 1.0),
    "logistic": (-8.0, 8.0), "exp64": (-10.0, 0.0), "log64": (0.01, 10.0),
    "log1p64": (0.0, 1.0), "div64": (0.0, 1.0), "sqrt64": (0.0, 1.0),
}


@functools.cache
def _op(name: str, single: bool) -> Any:
    """The function ``name`` as an inlined float64 -> float64 Numba function (its argument
    first rounded to float32 for ``single`` data)."""
    import numba

    from lossjit._jit import jit
    from lossjit.kernels import vecmath as vm

    cast = np.float32 if single else np.float64
    if name == "none":
        return jit(inline=True)(lambda v: float(cast(v)))
    if name == "logistic":
        def logistic(v):
            a, b, c = vm.logistic_as(cast(v))
            return float(a) + float(b) + float(c)
        return jit(inline=True)(logistic)
    precise = {"exp": vm.exp_as, "log": vm.log_as, "log1p": vm.log1p_as}
    if name in precise:
        f = precise[name]
        return jit(inline=True)(lambda v: float(f(cast(v))))
    double = {"exp64": vm.exp, "log64": vm.log, "log1p64": vm.log1p}
    if name in double:
        g = double[name]
        return jit(inline=True)(lambda v: g(float(cast(v))))
    if name == "div64":
        return jit(inline=True)(lambda v: 1.0 / (1.0 + float(cast(v))))
    if name == "sqrt64":
        return numba.njit(inline="always")(lambda v: np.sqrt(1.0 + float(cast(v))))
    raise KeyError(name)


@functools.cache
def _loop(name: str, single: bool) -> Any:
    """A parallel loop of ``n`` calls of the function, in blocks of 8192 whose values are
    summed in 16 lanes (as the kernels do), returning the total (so nothing is elided)."""
    import numba

    op = _op(name, single)

    @numba.njit(parallel=True, cache=False)
    def loop(n, lo, step):  # pragma: no cover - compiled
        blocks = (n + 8191) // 8192
        sums = np.zeros(blocks)
        for b in numba.prange(blocks):
            start = b * 8192
            stop = min(n, start + 8192)
            values = np.empty(stop - start)
            for i in range(start, stop):
                values[i - start] = op(lo + i * step)
            lanes = np.zeros(16)
            whole = (stop - start) - (stop - start) % 16
            for s in range(0, whole, 16):
                for k in range(16):
                    lanes[k] += values[s + k]
            for i in range(whole, stop - start):
                lanes[0] += values[i]
            sums[b] = lanes.sum()
        return sums.sum()

    return loop


def _loop_seconds(name: str, dtype: Any, n: int, repeat: int) -> float:
    import numba

    single = np.dtype(dtype) == np.float32
    loop = _loop(name, single)
    lo, hi = OPS[name]
    step = (hi - lo) / max(n, 1)
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        loop(n, lo, step)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            loop(n, lo, step)
            times.append(time.perf_counter() - start)
    finally:
        numba.set_num_threads(before)
    return median(times)


@functools.cache
def op_seconds(name: str, dtype: str, n: int, repeat: int = 7) -> float:
    """Seconds per call of the function ``name`` (see :data:`WORK`) for ``dtype`` data, on 2
    threads over ``n`` calls: the loop's time less that of the same loop without it."""
    base = _loop_seconds("none", dtype, n, repeat)
    return max(0.0, _loop_seconds(name, dtype, n, repeat) - base) / max(n, 1)


def roofline(loss: str, n: int, nbytes: int, seconds: float | None, triad_gbs: float,
             per_call: dict[str, float]) -> dict[str, Any]:
    """The roofline of one case from its figures: ``nbytes`` moved, lossjit's ``seconds``
    (with out=), the triad's GB/s and the seconds per call of each function in ``per_call``.

    >>> r = roofline("log_cosh", 10, 240, 2e-8, 24.0, {"exp64": 1e-9, "log1p64": 1e-9,
    ...                                                  "div64": 0.0})
    >>> r["memory_s"], r["compute_s"], r["bound"], r["fraction"]
    (1e-08, 2e-08, 'compute', 1.0)
    """
    work = WORK.get(loss)
    memory = nbytes / (triad_gbs * 1e9)
    compute = None if work is None else sum(count * n * per_call[op]
                                            for op, count in work.items())
    bound_s = max(memory, compute or 0.0)
    return {
        "memory_s": memory,
        "compute_s": compute,
        "bound": "compute" if compute is not None and compute > memory else "memory",
        "bound_s": bound_s,
        "fraction": (bound_s / seconds) if seconds else None,
        "work": work,
        "per_call_s": {op: per_call[op] for op in (work or {})},
    }


def add_roofline(case: dict[str, Any], triad_gbs: float) -> None:
    """Add ``case["roofline"]`` to an element-wise :func:`run_case` result (measuring the
    functions its loss calls at its n and dtype, once per process)."""
    loss = case["loss"]
    if loss not in WORK or "lossjit_out" not in case.get("times", {}):
        return
    n = case["elements"]
    per_call = {op: op_seconds(op, case["dtype"], n) for op in WORK[loss]}
    case["roofline"] = roofline(loss, n, case["bytes"]["value_and_grad"],
                                case["times"]["lossjit_out"], triad_gbs, per_call)
