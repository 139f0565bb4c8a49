"""The kernel templates every loss is built from, and the deterministic reduction.

A lossjit kernel has one signature, whatever the loss::

    kernel(x, y, w, grad, losses, scale, *params) -> float

- ``x``: the predictions, C-contiguous, float32 or float64, terms along axis 0;
- ``y``: the targets (labels or values), or an empty array where the loss has none;
- ``w``: one weight per loss term, or an empty array for no weights;
- ``grad``: the gradient output (shape of ``x``), or an empty array for a value-only call;
- ``losses``: the per-term loss output (``reduction="none"``), or an empty array;
- ``scale``: what every gradient entry is multiplied by (``1/denominator`` for a mean);
- ``params``: the loss's own scalars and small arrays;
- returns the sum of the (weighted) loss terms, accumulated in float64.

``rows_template`` splits axis 0 into fixed blocks of about ``BLOCK`` numbers, runs a loss's
``block`` function on each block (in parallel with ``prange`` in the parallel specialisation,
in order in the serial one) and adds the block sums in block order with ``sum_in_order``. The
blocks depend only on the shape, so the loss is bit-identical for any thread count and for the
serial and parallel kernels.

``elementwise_template`` is the ``block`` of every loss whose terms are single elements: it
calls the loss's ``pointwise(x, y, params) -> (loss, dloss/dx, d2loss/dx2)`` on each element,
``params`` being the tuple of the loss's scalar options. Built-in pointwise functions are
inlined where they are called (``jit(inline=True)``), so the element loops vectorise, and what
a kernel does not store (the second derivative, mostly) is compiled away.

**Hessian kernels.** A template specialised with ``hessian=True`` computes the loss, the
gradient and the diagonal of the Hessian: its ``losses`` slot then receives the Hessian's
diagonal, laid out as ``x`` and scaled like the gradient. Their kernels are named
``<kernel>_hessian`` (and ``<kernel>_hessian_parallel``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import prange

from lossjit._jit import jit, specialise

#: About how many numbers of ``x`` one block covers (a whole number of rows, at least one).
BLOCK = 8192

#: Independent partial sums in ``lane_sum``: wide enough for LLVM to vectorise the adds.
LANES = 16

# Free names of the templates, bound per loss by ``specialise``.
block: Any = None
pointwise: Any = None
user_pointwise: Any = None
hessian = False


@jit
def lane_sum(values, lanes):
    """The sum of ``values`` in a fixed order that vectorises: ``LANES`` interleaved partial
    sums (kept in the scratch array ``lanes``), then a fixed halving tree. With no fast-math
    flags the order, and so the result to the bit, never depends on how the loop was optimised.

    >>> import numpy as np
    >>> float(lane_sum(np.arange(100.0), np.empty(LANES)))
    4950.0
    """
    n = values.size
    whole = n - n % LANES
    for k in range(LANES):
        lanes[k] = 0.0
    for start in range(0, whole, LANES):
        for k in range(LANES):
            lanes[k] += values[start + k]
    for i in range(whole, n):
        lanes[i - whole] += values[i]
    width = LANES
    while width > 1:
        width //= 2
        for k in range(width):
            lanes[k] += lanes[k + width]
    return lanes[0]


@jit
def sum_in_order(partials):
    """Add ``partials`` left to right: the block sums, in block order."""
    total = 0.0
    for value in partials:
        total += value
    return total


def rows_template(x, y, w, grad, losses, scale, *params):
    """Sum of ``block`` over fixed blocks of rows of ``x``, added in block order."""
    n = x.shape[0]
    row = x.size // n if n else 1
    rows = max(1, BLOCK // max(row, 1))
    nblocks = (n + rows - 1) // rows
    partials = np.empty(nblocks)
    for b in prange(nblocks):
        lo = b * rows
        hi = min(n, lo + rows)
        partials[b] = block(x[lo:hi], y[lo:hi], w[lo:hi], grad[lo:hi], losses[lo:hi], scale,
                            *params)
    return sum_in_order(partials)


def elementwise_template(x, y, w, grad, losses, scale, *params):
    """Block of an element-wise loss: ``pointwise`` on every element (it gets the elements in
    their dtype and returns float64 results).

    The per-element losses go to a buffer that ``lane_sum`` adds up; the value-only and the
    gradient loops differ only by the gradient store, so they give the same loss. With
    ``hessian`` bound true, ``losses`` receives the second derivatives instead.
    """
    n = x.size
    values = np.empty(n)
    if hessian:
        for i in range(n):
            value, slope, curvature = pointwise(x[i], y[i], params)
            values[i] = value
            grad[i] = slope * scale
            losses[i] = curvature * scale
    elif grad.size:
        for i in range(n):
            value, slope, _ = pointwise(x[i], y[i], params)
            values[i] = value
            grad[i] = slope * scale
    else:
        for i in range(n):
            values[i] = pointwise(x[i], y[i], params)[0]
    if w.size:
        for i in range(n):
            values[i] *= w[i]
        if grad.size:
            for i in range(n):
                grad[i] *= w[i]
        if hessian:
            for i in range(n):
                losses[i] *= w[i]
    if losses.size and not hessian:
        for i in range(n):
            losses[i] = values[i]
    return lane_sum(values, np.empty(LANES))


def columns_template(x, y, w, grad, losses, scale, column_params):
    """Block of an element-wise loss on rows ``(n, L)`` whose one parameter differs by
    column: ``pointwise(x[r, j], y[r, j], (column_params[j],))`` (in float64)."""
    n, columns = x.shape
    values = np.empty(columns)
    lanes = np.empty(LANES)
    total = 0.0
    for r in range(n):
        for j in range(columns):
            value, slope, curvature = pointwise(float(x[r, j]), float(y[r, j]),
                                                (column_params[j],))
            term_weight = w[r, j] if w.size else 1.0
            values[j] = term_weight * value
            if grad.size:
                grad[r, j] = term_weight * slope * scale
            if hessian:
                losses[r, j] = term_weight * curvature * scale
            elif losses.size:
                losses[r, j] = term_weight * value
        total += lane_sum(values, lanes)
    return total


def user_pointwise_template(x, y, params):
    """A user's ``pointwise(x, y, *params) -> (loss, slope)`` (on float64 numbers) called the
    way the element-wise block calls (with no second derivative: NaN)."""
    value, slope = user_pointwise(float(x), float(y), *params)
    return value, slope, math.nan


def row_kernels(name: str, block_fn: Callable[..., Any]) -> tuple[Any, Any]:
    """The serial and parallel kernels of a loss, from its ``block`` function (cached)."""
    return (specialise(rows_template, name, block=block_fn, cache=True),
            specialise(rows_template, name, parallel=True, block=block_fn, cache=True))


def template_kernels(name: str, template: Callable[..., Any], *, hessian: bool = False,
                     **bindings: Any) -> tuple[Any, Any]:
    """The serial and parallel kernels of a loss whose block is ``template`` specialised with
    ``bindings`` (and, for a Hessian kernel, ``hessian=True``)."""
    return row_kernels(name, specialise(template, name + "_block", hessian=hessian, **bindings))


def elementwise_kernels(name: str, pointwise_fn: Callable[..., Any]) -> tuple[Any, Any]:
    """The serial and parallel kernels of an element-wise loss, from its ``pointwise``."""
    return template_kernels(name, elementwise_template, pointwise=pointwise_fn)


def elementwise_family(name: str, pointwise_fn: Callable[..., Any]) -> tuple[Any, ...]:
    """The kernels of a built-in element-wise loss, from its ``pointwise``: serial, parallel,
    and the Hessian kernels ``<name>_hessian`` and ``<name>_hessian_parallel``."""
    return (*elementwise_kernels(name, pointwise_fn),
            *template_kernels(name + "_hessian", elementwise_template, hessian=True,
                              pointwise=pointwise_fn))
