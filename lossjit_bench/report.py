"""Reporting: times, ratios and shapes as text, speed-ups, bandwidth figures and the
table of run_case results."""

from __future__ import annotations

import math
from typing import Any

from lossjit_bench.inputs import input_kind


def format_time(seconds: float | None) -> str:
    """12.3us, 4.56ms or 1.23s; "-" for None."""
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f}us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f}ms"
    return f"{seconds:.2f}s"


def format_ratio(value: float | None) -> str:
    """2.50x; "-" for None."""
    return "-" if value is None else f"{value:.2f}x"


def format_shape(shape: list[int]) -> str:
    """1e7 for (10000000,), 8192x1000 for (8192, 1000)."""
    if len(shape) == 1:
        n = shape[0]
        exponent = int(round(math.log10(n))) if n > 0 else 0
        return f"1e{exponent}" if 10 ** exponent == n else str(n)
    return "x".join(str(s) for s in shape)


def speedup(case: dict[str, Any], peer: str, base: str) -> float | None:
    """peer time / base time in a :func:`run_case` result (> 1: base is faster)."""
    times = case["times"]
    if peer not in times or base not in times or not times[base]:
        return None
    return float(times[peer] / times[base])


def add_bandwidth(case: dict[str, Any], triad_gbs: float, triad_source: str = "") -> None:
    """Add lossjit's GB/s and its fraction of ``triad_gbs`` to a non-class case."""
    if input_kind(case["loss"]) == "classes":
        return
    times = case["times"]
    grad_bytes = case["bytes"]["value_and_grad"]
    value_bytes = case["bytes"]["value"]
    gbs = {}
    for name, moved in (("lossjit", grad_bytes), ("lossjit_out", grad_bytes),
                        ("lossjit_value", value_bytes)):
        if name in times:
            gbs[name] = moved / times[name] / 1e9
    case["gbs"] = gbs
    case["triad_gbs"] = triad_gbs
    case["triad_source"] = triad_source
    case["fraction_of_triad"] = {name: value / triad_gbs for name, value in gbs.items()}


#: The table's columns: lossjit's medians (value_and_grad, with out=, value only), then
#: speed-ups (peer time / lossjit time; sklearn against the out= call, np-val against value
#: only; "-" also for a peer that disagreed with lossjit and was not timed), lossjit's GB/s
#: with out= and its share of the triad, the roofline (element-wise losses: the memory time
#: at the triad bandwidth, "mem", and the transcendental time at vecmath's measured speed,
#: "cpu"; the larger as a share of lossjit's out= time, "%roof") and the foreign CPU load.
TABLE_HEADER = (f"{'loss':<22} {'shape':<12} {'dtype':<7} {'lossjit':>9} {'+out':>9} "
                f"{'value':>9} | {'numpy':>7} {'np-val':>7} {'torch':>7} {'jax':>7} "
                f"{'sklearn':>7} | {'out GB/s':>8} {'%triad':>6} | {'mem':>8} {'cpu':>8} "
                f"{'%roof':>5} {'load':>4}")


def table_row(case: dict[str, Any]) -> str:
    """One line of the table under :data:`TABLE_HEADER` for a :func:`run_case` result
    (after :func:`add_bandwidth` for the GB/s columns)."""
    times = case["times"]
    gbs = case.get("gbs", {}).get("lossjit_out")
    frac = case.get("fraction_of_triad", {}).get("lossjit_out")
    load = case.get("foreign_load")
    roof = case.get("roofline") or {}
    fraction = roof.get("fraction")
    return (f"{case['loss']:<22} {format_shape(case['shape']):<12} {case['dtype']:<7} "
            f"{format_time(times.get('lossjit')):>9} {format_time(times.get('lossjit_out')):>9} "
            f"{format_time(times.get('lossjit_value')):>9} "
            f"| {format_ratio(speedup(case, 'numpy', 'lossjit')):>7} "
            f"{format_ratio(speedup(case, 'numpy_value', 'lossjit_value')):>7} "
            f"{format_ratio(speedup(case, 'torch', 'lossjit')):>7} "
            f"{format_ratio(speedup(case, 'jax', 'lossjit')):>7} "
            f"{format_ratio(speedup(case, 'sklearn', 'lossjit_out')):>7} "
            f"| {('-' if gbs is None else f'{gbs:.1f}'):>8} "
            f"{('-' if frac is None else f'{100 * frac:.0f}%'):>6} "
            f"| {format_time(roof.get('memory_s')):>8} {format_time(roof.get('compute_s')):>8} "
            f"{('-' if fraction is None else f'{100 * fraction:.0f}%'):>5} "
            f"{('-' if load is None else f'{load:.1f}'):>4}")
