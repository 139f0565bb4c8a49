"""The kernel templates every loss is built from, the exact sums, and the kernel sets.

A lossjit kernel has one signature, whatever the loss::

    kernel(x, y, w, grad, hess, losses, sums, scale, *params) -> float

- ``x``: the predictions, C-contiguous, float32 or float64, terms along axis 0 ("rows");
- ``y``: the targets (labels or values), or an empty array where the loss has none;
- ``w``: one weight per loss term, or an empty array for no weights;
- ``grad``: the gradient output (laid out as ``x``), or an empty array for a value-only call;
- ``hess``: the output of the Hessian's diagonal (laid out as ``x``), or an empty array; only
  the kernels of a :class:`KernelSet` with ``hessian`` write it;
- ``losses``: the per-term loss output (``reduction="none"``), or an empty array;
- ``sums``: an output for the block sums (:func:`lossjit.blocking.block_count` of them), or an
  empty array: ``math.fsum`` of them is the exact sum of the loss terms, rounded once, the
  same however the call was cut (what the runners of :mod:`lossjit.plan` return);
- ``scale``: what every gradient (and Hessian) entry is multiplied by (``1/denominator``);
- ``params``: the loss's own scalars and small arrays;
- returns the sum of the (weighted) loss terms, the block sums added in block order.

``rows_template`` splits axis 0 into the blocks of :mod:`lossjit.blocking`, runs a loss's
``block`` on each (in parallel with ``prange`` in the parallel specialisation, in order in the
serial one) and writes each block's sum. Within a block the terms are added in ``LANES``
interleaved lanes (:func:`lane_sum`), in a fixed order, so a block's sum is the same to the
bit for any thread count, for the serial and parallel kernels, and in any piece of a call cut
at block boundaries; the runners add the block sums exactly (``math.fsum``).

``elementwise_template`` is the ``block`` of every loss whose terms are single elements: it
calls the loss's ``pointwise(x, y, params) -> (loss, dloss/dx, d2loss/dx2)`` on each element.
Built-in pointwise functions are inlined where they are called (``jit(inline=True)``), so the
element loops vectorise, and what a kernel does not store is compiled away.

A kernel module declares each loss's kernels once, as a recipe (:func:`elementwise`,
:func:`from_block`, :func:`from_template`), and ends with ``kernel_table(globals())``, which
names and builds every recipe into a :class:`KernelSet`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import prange, types
from numba.extending import intrinsic

from lossjit import _jit, blocking
from lossjit._jit import jit, specialise
from lossjit.blocking import BLOCK, block_rows

__all__ = ["BLOCK", "LANES", "KernelSet", "block_sums", "lane_sum", "sum_in_order"]

#: Independent partial sums in ``lane_sum``: wide enough for LLVM to vectorise the adds.
LANES = 16

# Free names of the templates, bound per loss by ``specialise``.
block: Any = None
pointwise: Any = None
user_pointwise: Any = None
hessian = False

_block_rows = jit(inline=True)(block_rows)


@intrinsic
def _atomic_add(typingctx, counter, step):
    """``counter[0] += step`` as one atomic read-modify-write (sequentially consistent);
    returns the value before the add."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None
    sig = types.int64(counter, types.int64)

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        delta = context.cast(builder, args[1], signature.args[1], types.int64)
        return builder.atomic_rmw("add", array.data, delta, "seq_cst")

    return sig, codegen


@jit(inline=True)
def _fetch_add(counter, step):
    """The next block from the shared ``counter`` (its old value)."""
    return _atomic_add(counter, step)


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
    """Add ``partials`` left to right: the block sums, in block order (one block's sum is
    itself, -0.0 included)."""
    if partials.size == 0:
        return 0.0
    total = partials[0]
    for i in range(1, partials.size):
        total += partials[i]
    return total


@jit
def block_sums(values, per_block, out):
    """``out[b]`` = the :func:`lane_sum` of ``values[b * per_block:(b + 1) * per_block]``: the
    per-block sums of per-term numbers (a mean's denominator shares), in the blocks the
    kernels use, so that a call cut at block boundaries gives the same sums."""
    lanes = np.empty(LANES)
    for b in range(out.size):
        out[b] = lane_sum(values[b * per_block:(b + 1) * per_block], lanes)
    return out


def rows_template(x, y, w, grad, hess, losses, sums, scale, *params):
    """Sum of ``block`` over the fixed blocks of rows of ``x``, added in block order; the
    block sums themselves go to ``sums`` when it is given.

    The blocks are handed out dynamically: every iteration of the ``prange`` takes the next
    block from a shared atomic counter and goes on taking blocks until none is left, so a thread
    that the OS descheduled (another thread pool spinning on its core) delays the call by at most
    one block instead of by its whole static share; the other threads' iterations take its
    blocks. Each block's sum goes to its own slot, so the result is the same whichever thread ran
    which block. (The loop reads no thread count: a kernel that called Numba's threading layer
    could not be cached.) In the serial twin the first iteration takes every block.
    """
    n = x.shape[0]
    rows = _block_rows(x.size // n if n else 1)
    nblocks = (n + rows - 1) // rows
    partials = sums if sums.size else np.empty(nblocks)
    counter = np.zeros(1, dtype=np.int64)
    for _ in prange(nblocks):
        b = _fetch_add(counter, 1)
        while b < nblocks:
            lo = b * rows
            hi = min(n, lo + rows)
            partials[b] = block(x[lo:hi], y[lo:hi], w[lo:hi], grad[lo:hi], hess[lo:hi],
                                losses[lo:hi], scale, *params)
            b = _fetch_add(counter, 1)
    return sum_in_order(partials[:nblocks])


def elementwise_template(x, y, w, grad, hess, losses, scale, *params):
    """Block of an element-wise loss: ``pointwise`` on every element (it gets the elements in
    their dtype and returns float64 results).

    The per-element losses go to a buffer that ``lane_sum`` adds up; the value-only, gradient
    and Hessian loops differ only by their stores, so they give the same loss.
    """
    n = x.size
    values = np.empty(n)
    if hessian and hess.size:
        for i in range(n):
            value, slope, curvature = pointwise(x[i], y[i], params)
            values[i] = value
            grad[i] = slope * scale
            hess[i] = curvature * scale
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
        if hessian and hess.size:
            for i in range(n):
                hess[i] *= w[i]
    if losses.size:
        for i in range(n):
            losses[i] = values[i]
    return lane_sum(values, np.empty(LANES))


def columns_template(x, y, w, grad, hess, losses, scale, column_params):
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
            if hessian and hess.size:
                hess[r, j] = term_weight * curvature * scale
            if losses.size:
                losses[r, j] = term_weight * value
        total += lane_sum(values, lanes)
    return total


def user_pointwise_template(x, y, params):
    """A user's ``pointwise(x, y, *params) -> (loss, slope)`` (on float64 numbers) called the
    way the element-wise block calls (with no second derivative: NaN)."""
    value, slope = user_pointwise(float(x), float(y), *params)
    return value, slope, math.nan


# --- kernel sets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelSet:
    """The kernels of one loss (or of one variant of it): ``serial`` and its multi-threaded
    twin ``parallel``, bit-identical; ``hessian`` says whether they write the Hessian's
    diagonal into ``hess``: the one place where that is decided."""

    name: str
    serial: Any
    parallel: Any
    hessian: bool = False

    def pick(self, numbers: int) -> Any:
        """The kernel for an input of ``numbers`` numbers: parallel from
        :data:`lossjit.blocking.PARALLEL_MIN` (read at each call)."""
        if numbers >= blocking.PARALLEL_MIN:
            if not _jit._threads_started:
                _jit.start_threads()
            return self.parallel
        return self.serial

    def public_names(self) -> dict[str, Any]:
        """The names under which :mod:`lossjit.kernels` offers these kernels."""
        return {self.name: self.serial, self.name + "_parallel": self.parallel}


@dataclass(frozen=True)
class Recipe:
    """How to build a loss's kernels: a block ``template`` with its ``bindings`` (or a
    ready ``block`` function), and whether it writes the Hessian."""

    template: Callable[..., Any] | None = None
    block: Any = None
    hessian: bool = False
    bindings: dict[str, Any] = field(default_factory=dict)

    def build(self, name: str, *, cache: bool = True) -> KernelSet:
        block_fn = self.block
        if block_fn is None:
            bindings = {**self.bindings, **({"hessian": True} if self.hessian else {})}
            block_fn = specialise(self.template, name + "_block", **bindings)
        return KernelSet(
            name,
            specialise(rows_template, name, block=block_fn, cache=cache),
            specialise(rows_template, name, parallel=True, block=block_fn, cache=cache),
            self.hessian)


def from_block(block_fn: Any) -> Recipe:
    """The kernels of a loss written as one ``block`` function (no Hessian)."""
    return Recipe(block=block_fn)


def from_template(template: Callable[..., Any], *, hessian: bool = False,
                  **bindings: Any) -> Recipe:
    """The kernels of a loss whose block is ``template`` with its free names bound."""
    return Recipe(template=template, hessian=hessian, bindings=bindings)


def elementwise(pointwise_fn: Any, *, hessian: bool = True) -> Recipe:
    """The kernels of an element-wise loss, from its ``pointwise`` (loss, slope, curvature)."""
    return from_template(elementwise_template, hessian=hessian, pointwise=pointwise_fn)


def kernel_table(namespace: dict[str, Any]) -> dict[str, KernelSet]:
    """Build every :class:`Recipe` in a kernel module's ``namespace`` into a
    :class:`KernelSet` of the same name, in place, and return them by name: the module's
    one table of kernels, from which :mod:`lossjit.kernels` makes its public names."""
    table = {name: value.build(name) for name, value in list(namespace.items())
             if isinstance(value, Recipe)}
    namespace.update(table)
    return table


def user_kernels(name: str, pointwise_fn: Any) -> KernelSet:
    """The kernels of a user's element-wise loss from ``pointwise(x, y, *params) ->
    (loss, slope)`` (no Hessian)."""
    adapter = specialise(user_pointwise_template, f"user_{name}_pointwise",
                         user_pointwise=pointwise_fn)
    return elementwise(adapter, hessian=False).build(f"user_{name}")
