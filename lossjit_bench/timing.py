"""Timing: per-call seconds of a callable (warm-up and calibration first), several
implementations interleaved, their median, and the CPU other processes used meanwhile."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def _calibrate(fn: Callable[[], Any], sample_time: float) -> tuple[int, float]:
    """Warm ``fn`` up (the first call compiles or loads caches) and choose how many calls one
    timed sample runs so that it lasts about ``sample_time``. Returns (number, seconds/call)."""
    fn()
    batch = 1
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    # Short calls: time a growing batch of them for a steadier estimate.
    while elapsed < min(sample_time, 0.01):
        batch *= 4
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        elapsed = time.perf_counter() - start
    per_call = max(elapsed / batch, 1e-9)
    return max(1, math.ceil(sample_time / per_call)), per_call


def _sample(fn: Callable[[], Any], number: int) -> float:
    """Seconds per call of ``number`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def _samples_for(per_call: float, repeat: int, max_time: float) -> int:
    """At most ``repeat`` samples, fewer (down to 3) where each call is slow."""
    return max(3, min(repeat, int(max_time / max(per_call, 1e-9))))


def time_call(fn: Callable[[], Any], *, repeat: int = 7, min_time: float = 0.2,
              max_time: float = 5.0) -> list[float]:
    """Per-call seconds of ``fn()``, one entry per timed sample; report their median.

    ``fn`` is called once or more to warm up, then ``repeat`` samples are taken, each running
    ``fn`` enough times to last about ``min_time / repeat`` seconds (fewer samples, but at
    least 3, where one call is slower than ``max_time / repeat``).
    """
    number, per_call = _calibrate(fn, min_time / repeat)
    return [_sample(fn, number) for _ in range(_samples_for(per_call, repeat, max_time))]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def time_many(fns: dict[str, Callable[[], Any]], *, repeat: int = 7, min_time: float = 0.2,
              max_time: float = 5.0) -> dict[str, list[float]]:
    """:func:`time_call` for several implementations of one case, interleaved.

    Each is warmed up and calibrated, then the samples are taken in rounds, one sample of each
    implementation per round, in a rotating order, so that drift in a noisy machine's speed
    (a neighbour's load, the turbo clock) falls on all of them alike.
    """
    plans = {}
    for name, fn in fns.items():
        number, per_call = _calibrate(fn, min_time / repeat)
        plans[name] = (number, _samples_for(per_call, repeat, max_time))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for round_ in range(max((plan[1] for plan in plans.values()), default=0)):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            number, count = plans[name]
            if len(samples[name]) < count:
                samples[name].append(_sample(fns[name], number))
    return samples


def _cpu_snapshot() -> tuple[float, float, float] | None:
    """(wall seconds, busy CPU seconds of the whole machine, CPU seconds of this process)."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    busy = (sum(fields) - fields[3] - fields[4]) / tick  # all but idle and iowait
    own = os.times()
    return time.monotonic(), busy, own.user + own.system


class ForeignLoad:
    """How many cores' worth of CPU other processes used during a ``with`` block (Linux;
    ``load`` is None elsewhere): a noise indicator for a shared machine.

    >>> with ForeignLoad() as meter:
    ...     pass
    >>> meter.load is None or meter.load >= 0.0
    True
    """

    load: float | None = None

    def __enter__(self) -> ForeignLoad:
        self._start = _cpu_snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        end = _cpu_snapshot()
        if self._start is None or end is None or end[0] <= self._start[0]:
            return
        wall = end[0] - self._start[0]
        other = (end[1] - self._start[1]) - (end[2] - self._start[2])
        self.load = max(0.0, other / wall)
