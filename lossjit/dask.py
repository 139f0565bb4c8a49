"""lossjit on Dask arrays: the loss and its gradient of arrays spread over a cluster, with the
bits of the NumPy call (the optional extra ``lossjit[dask]``).

Each chunk of the predictions (and the same rows of the targets and sample weights) is one
task that runs the compiled kernels on its piece and returns the piece's block sums, gradient,
Hessian diagonal and per-term losses (:func:`lossjit.streaming.piece_run`). The block sums of
all the tasks are added exactly and rounded once, so the loss does not depend on the
scheduler, the number of workers, the tree or the chunking. That holds when every chunk is a
whole number of the kernels' blocks: chunks along axis 0 that do not end at a multiple of the
layout's cut (:meth:`lossjit.layouts.Layout.cut`, 8192 numbers for element-wise losses) are
realigned first (one rechunk, moving the rows between neighbouring chunks), and the other axes
(the class axis among them) are put in one chunk. The gradient comes back in the
predictions' chunks. Where the mean's denominator depends on the data (sample weights, class
weights and ignored targets, ``nan_policy="omit"``), a first set of tasks adds it up from the
targets.

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

from typing import Any

import numpy as np

from lossjit.errors import LossjitError
from lossjit.plan import ExactSum, Plan, combine, denominator, finish, make_plan

__all__ = ["grad", "grad_hess", "loss", "value_and_grad"]


def _dask() -> Any:
    from lossjit.formats import optional

    dask = optional("dask", "lossjit.dask")
    optional("dask.array", "lossjit.dask")
    return dask


def aligned_chunks(chunks: tuple[int, ...], cut: int) -> tuple[int, ...]:
    """Chunks along axis 0 whose bounds are multiples of ``cut`` (the last one ends the
    array): each bound moves down to a multiple, and chunks left empty go.

    >>> aligned_chunks((5000, 5000, 5000), 8192)
    (8192, 6808)
    >>> aligned_chunks((8192, 10000, 100), 8192)
    (8192, 8192, 1908)
    """
    total = sum(chunks)
    bounds, edge = [], 0
    for size in chunks[:-1]:
        edge += size
        bound = edge // cut * cut
        if bound > (bounds[-1] if bounds else 0):
            bounds.append(bound)
    edges = [0, *bounds, total]
    return tuple(b - a for a, b in zip(edges, edges[1:], strict=False) if b > a) or (0,)


def _plan(name: str, settings: dict[str, Any], options: dict[str, Any]) -> Plan:
    return make_plan(name, **settings, **options)


def _count_task(name: str, settings: dict[str, Any], options: dict[str, Any],
                shape: tuple[int, ...], lo: int, hi: int, x: Any, y: Any,
                sw: Any) -> ExactSum:
    from lossjit.streaming import piece_count

    return piece_count(_plan(name, settings, options), shape, lo, hi, x, y, sw)


def _run_task(name: str, settings: dict[str, Any], options: dict[str, Any],
              shape: tuple[int, ...], lo: int, hi: int, x: Any, y: Any, sw: Any,
              scale: float) -> tuple[list[float], Any, Any, Any]:
    from lossjit.streaming import piece_run

    return piece_run(_plan(name, settings, options), shape, lo, hi, np.asarray(x),
                     None if y is None else np.asarray(y), sw, scale)


def _second(pair: tuple[float, float]) -> float:
    return pair[1]


def _merge_counts(*parts: ExactSum) -> ExactSum:
    total = ExactSum()
    for part in parts:
        total.count += part.count
        total.sums.extend(part.sums)
    return total


def _scale(name: str, settings: dict[str, Any], options: dict[str, Any],
           shape: tuple[int, ...], count: ExactSum) -> tuple[float, float]:
    plan = _plan(name, settings, options)
    divisor = denominator(plan, count, np.broadcast_to(np.zeros(()), shape))
    return divisor, (1.0 / divisor if divisor else 0.0)


def _value(name: str, settings: dict[str, Any], options: dict[str, Any],
           scaled: tuple[float, float], *parts: list[float]) -> float:
    sums = [s for part in parts for s in part]
    result = finish(_plan(name, settings, options), combine(sums), scaled[0], None, {}, None)
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
    chunks = (shape[0],) if cut is None else aligned_chunks(x.chunks[0], cut)
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
            name, settings, options, shape, lo, hi,
            xs[i] if nan_policy == "omit" else None, ys[i], sws[i])
            for i, (lo, hi) in enumerate(spans)]
        count = delayed(_merge_counts, pure=True)(*counts)
    else:
        count = whole_count(plan, terms_shape)
    scaled = delayed(_scale, pure=True)(name, settings, options, shape, count)
    scale = delayed(_second, pure=True)(scaled)
    runs = [delayed(_run_task, pure=True, nout=4)(name, settings, options, shape, lo, hi,
                                                   xs[i], ys[i], sws[i], scale)
            for i, (lo, hi) in enumerate(spans)]
    dtype = float_dtype

    def stacked(index: int, rows_shape: tuple[int, ...]) -> Any:
        parts = [da.from_delayed(run[index], shape=(hi - lo, *rows_shape), dtype=dtype)
                 for run, (lo, hi) in zip(runs, spans, strict=True)]
        return da.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]

    if reduction == "none":
        value = stacked(3, tuple(terms_shape[1:]))
        if cut is not None and value.chunks[0] != given[0]:
            value = value.rechunk({0: given[0]})
    else:
        value = da.from_delayed(delayed(_value, pure=True)(
            name, settings, options, scaled, *[run[0] for run in runs]), shape=(),
            dtype=np.float64)
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
