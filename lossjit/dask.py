"""lossjit on Dask arrays: the loss and its gradient of arrays spread over a cluster, with the
bits of the NumPy call (the optional extra ``lossjit[dask]``).

Each chunk of the predictions (and the same rows of the targets and sample weights) is one
task that runs the compiled kernels on its piece (:func:`lossjit.streaming.piece_run`) and
returns its gradient, Hessian diagonal and per-term losses, which do not depend on how the rows
are cut, and the block sums of the kernels' blocks that lie wholly inside it. A block that a
chunk shares with its neighbours (the chunk's bounds are not multiples of the layout's cut,
:meth:`lossjit.layouts.Layout.cut`: 8192 numbers for element-wise losses) comes back as the
chunk's rows of it, at most one block at each end; the task that adds the loss up puts those
blocks together and sums them. All block sums are added exactly and rounded once, so the loss
does not depend on the scheduler, the number of workers, the tree or the chunking, and no
chunking needs a rechunk along axis 0 (the other axes, the class axis among them, are put in
one chunk). The gradient comes back in the predictions' chunks. Where the mean's denominator
depends on the data (sample weights, class weights and ignored targets,
``nan_policy="omit"``), a first set of tasks adds it up from the targets, in the same way.

The tasks name the loss and its options, and each worker resolves them in its own registry:
the built-in losses, and losses registered by a module the workers import. Kernels compile
once per worker process (or load from the on-disk cache, :func:`lossjit.cache.cache_dir`,
where the workers share it).

>>> import numpy as np
>>> import dask.array as da
>>> x = da.from_array(np.arange(6.0), chunks=4)
>>> loss, grad = value_and_grad("mse", x, da.zeros(6, chunks=2))
>>> float(loss.compute()), grad.chunks
(9.166666666666666, ((4, 2),))
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from lossjit.errors import LossjitError
from lossjit.plan import ExactSum, Plan, combine, denominator, finish, make_plan

__all__ = ["grad", "grad_hess", "loss", "value_and_grad"]


def _dask() -> Any:
    from lossjit.formats import optional

    dask = optional("dask", "lossjit.dask")
    optional("dask.array", "lossjit.dask")
    return dask


Task = TypeVar("Task", bound=Callable[..., Any])


def _task(function: Task) -> Task:
    """A task whose kernels use the threads a worker gives one task: ``OMP_NUM_THREADS``
    where it is set (distributed's worker processes set 1, since their own threads run tasks
    side by side), else all of Numba's. The setting is the calling thread's, restored after."""

    @functools.wraps(function)
    def run(*args: Any) -> Any:
        limit = os.environ.get("OMP_NUM_THREADS", "").strip()
        if not limit.isdigit() or int(limit) < 1:
            return function(*args)
        import numba

        from lossjit._jit import start_threads

        start_threads()
        before = numba.get_num_threads()
        numba.set_num_threads(min(int(limit), numba.config.NUMBA_NUM_THREADS))
        try:
            return function(*args)
        finally:
            numba.set_num_threads(before)

    return run  # type: ignore[return-value]


def _plan(name: str, settings: dict[str, Any], options: dict[str, Any]) -> Plan:
    return make_plan(name, **settings, **options)


def split(lo: int, hi: int, n: int, cut: int) -> tuple[int, int]:
    """The whole blocks of the chunk ``lo:hi`` of ``n`` rows: ``a:b`` (blocks start at
    multiples of ``cut``; the last ends at ``n``); the rows ``lo:a`` and ``b:hi`` are parts of
    blocks that the chunk shares with its neighbours.

    >>> split(0, 20000, 30000, 8192), split(5000, 10000, 30000, 8192)
    ((0, 16384), (8192, 8192))
    >>> split(8192, 30000, 30000, 8192)
    (8192, 30000)
    """
    a = lo if lo % cut == 0 else min(hi, (lo // cut + 1) * cut)
    b = hi if hi == n else max(a, hi // cut * cut)
    return a, b


def _parts(lo: int, hi: int, n: int, cut: int | None) -> list[tuple[int, int, bool]]:
    """(start, end, whole blocks) of the chunk ``lo:hi``: its head, its whole blocks and its
    tail, the empty ones left out."""
    a, b = (lo, hi) if cut is None else split(lo, hi, n, cut)
    return [(s, e, whole) for s, e, whole in ((lo, a, False), (a, b, True), (b, hi, False))
            if e > s or (whole and lo == hi)]


def _rows_of(array: Any, lo: int, hi: int, start: int) -> Any:
    return None if array is None else np.asarray(array[lo - start:hi - start])


@_task
def _count_task(name: str, settings: dict[str, Any], options: dict[str, Any],
                shape: tuple[int, ...], cut: int | None, lo: int, hi: int, x: Any, y: Any,
                sw: Any) -> tuple[ExactSum, list[tuple[int, Any, Any, Any]]]:
    """A chunk's share of the denominator from its whole blocks, and the rows of the blocks it
    shares (counted where those blocks are put together, :func:`_merge_counts`)."""
    from lossjit.streaming import piece_count

    plan = _plan(name, settings, options)
    count, shared = ExactSum(), []
    for s, e, whole in _parts(lo, hi, shape[0], cut):
        rows = (_rows_of(x, s, e, lo), _rows_of(y, s, e, lo), _rows_of(sw, s, e, lo))
        if whole:
            part = piece_count(plan, shape, s, e, *rows)
            count.count += part.count
            count.sums.extend(part.sums)
        else:
            shared.append((s, *rows))
    return count, shared


@_task
def _run_task(name: str, settings: dict[str, Any], options: dict[str, Any],
              shape: tuple[int, ...], cut: int | None, lo: int, hi: int, x: Any, y: Any,
              sw: Any, scale: float) -> tuple[list[float], Any, Any, Any, list[Any]]:
    """A chunk run: the block sums of its whole blocks, its gradient, Hessian diagonal and
    per-term losses (element by element, the same however the rows are cut), and the rows of
    the blocks it shares with its neighbours (summed where they are put together,
    :func:`_value`)."""
    from lossjit.streaming import piece_run

    plan = _plan(name, settings, options)
    x = np.asarray(x)
    y = None if y is None else np.asarray(y)
    sums: list[float] = []
    shared, outputs = [], []
    for s, e, whole in _parts(lo, hi, shape[0], cut):
        rows = (_rows_of(x, s, e, lo), _rows_of(y, s, e, lo), _rows_of(sw, s, e, lo))
        found, g, h, terms = piece_run(plan, shape, s, e, *rows, scale)
        outputs.append((g, h, terms))
        if whole:
            sums.extend(found)
        else:
            shared.append((s, *rows))
    joined = outputs[0] if len(outputs) == 1 else [
        None if outputs[0][k] is None else np.concatenate([o[k] for o in outputs])
        for k in range(3)]
    return sums, joined[0], joined[1], joined[2], shared


def _blocks(shared: list[tuple[int, Any, Any, Any]], n: int,
            cut: int) -> list[tuple[int, int, Any, Any, Any]]:
    """The shared blocks put together from their chunks' rows: (start, end, x, y, sw)."""
    by_block: dict[int, list[tuple[int, Any, Any, Any]]] = {}
    for item in shared:
        by_block.setdefault(item[0] // cut, []).append(item)
    found = []
    for block, items in sorted(by_block.items()):
        items.sort(key=lambda item: item[0])
        joined = [None if items[0][k] is None else np.concatenate([i[k] for i in items])
                  for k in (1, 2, 3)]
        found.append((block * cut, min(n, (block + 1) * cut), *joined))
    return found


def _second(pair: tuple[float, float]) -> float:
    return pair[1]


@_task
def _merge_counts(name: str, settings: dict[str, Any], options: dict[str, Any],
                  shape: tuple[int, ...], cut: int | None, *parts: Any) -> ExactSum:
    from lossjit.streaming import piece_count

    total, shared = ExactSum(), []
    for count, rows in parts:
        total.count += count.count
        total.sums.extend(count.sums)
        shared.extend(rows)
    if shared:
        plan = _plan(name, settings, options)
        for s, e, x, y, sw in _blocks(shared, shape[0], cut or 1):
            part = piece_count(plan, shape, s, e, x, y, sw)
            total.count += part.count
            total.sums.extend(part.sums)
    return total


def _scale(name: str, settings: dict[str, Any], options: dict[str, Any],
           shape: tuple[int, ...], count: ExactSum) -> tuple[float, float]:
    plan = _plan(name, settings, options)
    divisor = denominator(plan, count, np.broadcast_to(np.zeros(()), shape))
    return divisor, (1.0 / divisor if divisor else 0.0)


@_task
def _value(name: str, settings: dict[str, Any], options: dict[str, Any],
           shape: tuple[int, ...], cut: int | None, scaled: tuple[float, float],
           *parts: tuple[list[float], list[Any]]) -> float:
    """The loss: the whole blocks' sums of every chunk, and the sums of the shared blocks put
    together here, added exactly."""
    from lossjit.streaming import piece_run

    plan = _plan(name, settings, options)
    sums = [s for found, _ in parts for s in found]
    shared = [row for _, rows in parts for row in rows]
    for s, e, x, y, sw in _blocks(shared, shape[0], cut or 1):
        sums.extend(piece_run(plan, shape, s, e, x, y, sw, scaled[1])[0])
    result = finish(plan, combine(sums), scaled[0], None, {}, None)
    return float(result.value)


def _rows(array: Any, chunks: tuple[int, ...]) -> Any:
    """``array`` with ``chunks`` along axis 0 and its other axes whole."""
    return array.rechunk({0: chunks, **{axis: -1 for axis in range(1, array.ndim)}})


def _compute(name: str, predictions: Any, targets: Any, *, reduction: str, sample_weight: Any,
             empty: str, nan_policy: str, want_grad: bool, hessian: bool,
             options: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(loss, gradient, Hessian diagonal) as Dask collections sharing one graph."""
    dask = _dask()
    da = dask.array
    settings = {"reduction": reduction, "empty": empty, "nan_policy": nan_policy,
                "want_grad": want_grad, "hessian": hessian}
    options = {k: (np.asarray(v) if isinstance(v, (list, tuple)) else v)
               for k, v in options.items()}
    plan = _plan(name, settings, options)  # the options are checked here, before any task
    x = da.asarray(predictions)
    if x.ndim == 0:
        raise LossjitError("predictions: expected an array with a batch axis, got a scalar")
    y = None if targets is None or plan.spec.targets == "none" else da.asarray(targets)
    if plan.spec.targets == "required" and y is None:
        raise LossjitError(f"targets: missing; {plan.spec.name} needs targets "
                           f"({plan.spec.inputs})")
    shape = tuple(int(n) for n in x.shape)
    if y is not None and (y.ndim == 0 or y.shape[0] != shape[0]):
        raise LossjitError(f"targets: shape {tuple(y.shape)} does not match predictions "
                           f"{shape} along axis 0")
    cut = plan.spec.layout.cut(shape, plan.options)
    chunks = (shape[0],) if cut is None else tuple(int(c) for c in x.chunks[0])
    given = x.chunks
    x = _rows(x, chunks)
    y = None if y is None else _rows(y, chunks)
    from lossjit.layouts import FLOATS
    from lossjit.streaming import needs_count, terms_shape_of, whole_count

    # the terms' shape from the layout of an empty piece (of zeros of the whole shape for a
    # call that cannot be cut: one vector, one pair)
    float_dtype = x.dtype if x.dtype in FLOATS else np.dtype(np.float64)
    probe = shape if cut is None else (0, *shape[1:])
    probe_y = None if y is None else np.zeros((probe[0], *y.shape[1:]), y.dtype)
    if cut is None:
        terms_shape = plan.lay_out(np.zeros(probe, float_dtype), probe_y).terms_shape
    else:
        terms_shape = terms_shape_of(plan, shape, np.zeros(probe, float_dtype), probe_y)
    sw = None
    if sample_weight is not None:
        sw = _rows(da.broadcast_to(da.asarray(sample_weight, dtype=np.float64), terms_shape),
                   chunks)
    bounds = np.cumsum((0, *chunks)).tolist()
    delayed = dask.delayed
    xs = x.to_delayed().reshape(-1)
    ys = [None] * len(chunks) if y is None else y.to_delayed().reshape(-1)
    sws = [None] * len(chunks) if sw is None else sw.to_delayed().reshape(-1)
    spans = list(zip(bounds, bounds[1:], strict=False))
    if needs_count(plan, sample_weight):
        counts = [delayed(_count_task, pure=True)(
            name, settings, options, shape, cut, lo, hi,
            xs[i] if nan_policy == "omit" else None, ys[i], sws[i])
            for i, (lo, hi) in enumerate(spans)]
        count = delayed(_merge_counts, pure=True)(name, settings, options, shape, cut,
                                                   *counts)
    else:
        count = whole_count(plan, terms_shape)
    scaled = delayed(_scale, pure=True)(name, settings, options, shape, count)
    scale = delayed(_second, pure=True)(scaled)
    runs = [delayed(_run_task, pure=True, nout=5)(name, settings, options, shape, cut, lo,
                                                   hi, xs[i], ys[i], sws[i], scale)
            for i, (lo, hi) in enumerate(spans)]
    dtype = float_dtype

    def stacked(index: int, rows_shape: tuple[int, ...]) -> Any:
        parts = [da.from_delayed(run[index], shape=(hi - lo, *rows_shape), dtype=dtype)
                 for run, (lo, hi) in zip(runs, spans, strict=True)]
        return da.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]

    if reduction == "none":
        value = stacked(3, tuple(terms_shape[1:]))
    else:
        value = da.from_delayed(delayed(_value, pure=True)(
            name, settings, options, shape, cut, scaled,
            *[(run[0], run[4]) for run in runs]), shape=(), dtype=np.float64)
    gradient = hess = None
    if want_grad:
        gradient = stacked(1, shape[1:])
        if gradient.chunks != given:
            gradient = gradient.rechunk(given)
    if hessian:
        hess = stacked(2, shape[1:])
        if hess.chunks != given:
            hess = hess.rechunk(given)
    return value, gradient, hess


def value_and_grad(name: str, predictions: Any, targets: Any = None, *,
                   reduction: str = "mean", sample_weight: Any = None, empty: str = "nan",
                   nan_policy: str = "propagate", **options: Any) -> tuple[Any, Any]:
    """The loss (a 0-d Dask array; the per-term losses for ``reduction="none"``) and its
    gradient w.r.t. ``predictions`` (a Dask array in the predictions' chunks), lazily, as
    :func:`lossjit.value_and_grad` computes them: ``dask.compute(loss, grad)`` or
    ``grad.to_zarr(...)``. ``predictions``, ``targets`` and ``sample_weight`` may be Dask or
    NumPy arrays."""
    value, gradient, _ = _compute(name, predictions, targets, reduction=reduction,
                                  sample_weight=sample_weight, empty=empty,
                                  nan_policy=nan_policy, want_grad=True, hessian=False,
                                  options=options)
    return value, gradient


def loss(name: str, predictions: Any, targets: Any = None, *, reduction: str = "mean",
         sample_weight: Any = None, empty: str = "nan", nan_policy: str = "propagate",
         **options: Any) -> Any:
    """The loss alone, lazily (:func:`value_and_grad`)."""
    return _compute(name, predictions, targets, reduction=reduction,
                    sample_weight=sample_weight, empty=empty, nan_policy=nan_policy,
                    want_grad=False, hessian=False, options=options)[0]


def grad(name: str, predictions: Any, targets: Any = None, *, reduction: str = "mean",
         sample_weight: Any = None, empty: str = "nan", nan_policy: str = "propagate",
         **options: Any) -> Any:
    """The gradient alone, lazily (:func:`value_and_grad`)."""
    return value_and_grad(name, predictions, targets, reduction=reduction,
                          sample_weight=sample_weight, empty=empty, nan_policy=nan_policy,
                          **options)[1]


def grad_hess(name: str, predictions: Any, targets: Any = None, *, reduction: str = "mean",
              sample_weight: Any = None, empty: str = "nan", nan_policy: str = "propagate",
              **options: Any) -> tuple[Any, Any]:
    """The gradient and the Hessian's diagonal, lazily (:func:`lossjit.grad_hess`)."""
    _, gradient, hess = _compute(name, predictions, targets, reduction=reduction,
                                 sample_weight=sample_weight, empty=empty,
                                 nan_policy=nan_policy, want_grad=True, hessian=True,
                                 options=options)
    return gradient, hess
