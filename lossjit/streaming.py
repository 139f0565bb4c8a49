"""Streaming: one loss over arrays larger than memory, piece by piece along the predictions'
axis 0, in bounded memory, with the bits of the whole call.

The inputs are anything that slices along axis 0 into NumPy arrays: memory-mapped ``.npy``
files (:func:`open_npy`), Zarr arrays, or arrays in memory. Each piece is a whole number of
the layout's blocks (:meth:`~lossjit.layouts.Layout.cut`), so the block sums, added exactly
across pieces, are the whole call's, and so is the loss, to the bit; the gradient, Hessian
diagonal and per-term losses go piece by piece into outputs of the same kind
(:func:`create_npy`: a memory-mapped ``.npy`` file).

Where the mean's denominator depends on the data (sample weights, class weights and ignored
targets, ``nan_policy="omit"``), a first pass adds it up from the targets (and the sample
weights; the predictions too under "omit"), since every gradient entry is divided by it;
otherwise it is the number of terms.

>>> import numpy as np
>>> from lossjit.plan import make_plan
>>> x, y = np.arange(6.0), np.zeros(6)
>>> grad = np.empty(6)
>>> stream(make_plan("mse"), x, y, grad=grad, memory=1, rows=2)
9.166666666666666
>>> bool(np.allclose(grad, 2 * x / 6))
True
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from lossjit.errors import LossjitError, check_interrupted, deferred
from lossjit.plan import (
    ExactSum,
    LossValue,
    Plan,
    _piece_options,
    add_count,
    combine,
    denominator,
    finish,
    omitted_terms,
    run_piece,
    sample_weights,
)

#: The memory a streamed run may use for its pieces when nothing else is said.
DEFAULT_MEMORY = 256 * 2**20

#: How many bytes a piece needs in memory for each byte of its inputs and outputs: two slots
#: of them (one piece computed while the next is read), and the layout's float copies.
_OVERHEAD = 3

_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6,
          "mib": 2**20, "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12,
          "tib": 2**40}


def parse_memory(text: str | int) -> int:
    """A size in bytes from ``256MiB``, ``1G``, ``512k``, ``2e9`` or a number of bytes.

    >>> parse_memory("256MiB"), parse_memory("1g"), parse_memory("1.5KB"), parse_memory(4096)
    (268435456, 1073741824, 1500, 4096)
    """
    if isinstance(text, int):
        value = text
    else:
        match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([a-z]*)\s*", str(text).lower())
        if not match or match.group(2) not in _UNITS:
            raise LossjitError(f"memory: expected a size such as 256MiB, 1G or 500000000, "
                               f"got {text!r}")
        value = int(float(match.group(1)) * _UNITS[match.group(2)])
    if value <= 0:
        raise LossjitError(f"memory: expected a size above 0, got {text!r}")
    return value


def open_npy(path: str) -> np.memmap:
    """A ``.npy`` file memory-mapped read-only, its pages hinted for sequential reading."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise LossjitError(f"{path}: cannot map as .npy: {exc}") from None
    if not isinstance(array, np.memmap):
        raise LossjitError(f"{path}: not a plain .npy array")
    _advise(array, getattr(mmap, "MADV_SEQUENTIAL", None))
    return array


def open_zarr(path: str, name: str | None = None, *, what: str = "input") -> Any:
    """A Zarr array (``name`` within a group), read chunk by chunk as it is sliced (the
    ``dask`` extra brings zarr)."""
    from lossjit.formats import optional

    zarr = optional("zarr", "reading .zarr")
    try:
        found = zarr.open(path, mode="r")
        if name is not None:
            found = found[name]
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise LossjitError(f"{what}: {path}{':' + name if name else ''}: cannot open as a "
                           f"Zarr array: {exc}") from None
    if not hasattr(found, "shape") or not hasattr(found, "dtype"):
        names = ", ".join(sorted(found.array_keys())) if hasattr(found, "array_keys") else ""
        raise LossjitError(f"{what}: {path} is a Zarr group; name one of its arrays "
                           f"({path}:NAME){': ' + names if names else ''}")
    return found


def create_npy(path: str, shape: tuple[int, ...], dtype: Any) -> np.memmap:
    """A new ``.npy`` file of ``shape`` and ``dtype``, memory-mapped for writing."""
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)


def _advise(array: Any, advice: int | None, lo: int = 0, hi: int | None = None) -> None:
    """madvise the mapped bytes of rows ``lo:hi`` of a memory-mapped array, where the
    platform has it (a hint: nothing changes when it is missing)."""
    handle = getattr(array, "_mmap", None)
    if handle is None or advice is None or not array.size:
        return
    row = array.nbytes // array.shape[0] if array.shape[0] else 0
    start = array.offset + lo * row
    end = array.offset + (array.shape[0] if hi is None else hi) * row
    page = mmap.PAGESIZE
    start -= start % page  # madvise takes whole pages
    end = min(len(handle), end)
    if end > start:
        try:
            handle.madvise(advice, start, end - start)
        except (OSError, ValueError):
            pass


def _release(array: Any, lo: int, hi: int) -> None:
    """Drop the mapped pages of rows ``lo:hi`` from this process's memory once they are done.
    The file keeps what they hold: an input is read-only, and the written pages of an output
    stay in the page cache, to be written back by the system (the whole file is flushed and
    synced when it is committed)."""
    if isinstance(array, np.memmap) and array._mmap is not None:
        _advise(array, getattr(mmap, "MADV_DONTNEED", None), lo, hi)


def _file_position(array: Any) -> int | None:
    """Where the bytes of a C-contiguous memory-mapped array start in its file, or None for
    any other array (or where the system has no ``preadv``)."""
    handle = getattr(array, "_mmap", None)
    if (handle is None or getattr(array, "filename", None) is None or not hasattr(os, "preadv")
            or not array.flags.c_contiguous):
        return None
    start = array.offset - array.offset % mmap.ALLOCATIONGRANULARITY  # the mapping's byte 0
    return start + array.ctypes.data - np.frombuffer(handle, np.uint8).ctypes.data


#: Whether a second thread reads the next piece and writes the last one while the kernels
#: run (measured by benchmarks/stream_io.py).
_READ_AHEAD = True


class _Rows:
    """Rows of an input or output along axis 0, read or written a piece at a time.

    A memory-mapped ``.npy`` file is read with ``preadv`` into buffers reused from piece to
    piece (one per slot: a piece being computed, the next one being read), and written with
    ``pwritev``: no page faults, and no file pages held by the process. Anything else (a Zarr
    array, an array in memory) is sliced, a mapping's pages dropped once a piece is done.
    ``read`` returns a view valid until the slot's next ``read``."""

    def __init__(self, array: Any, rows: int, *, write: bool = False, slots: int = 1) -> None:
        self.array = array
        self.position = _file_position(array)
        self.row = array.dtype.itemsize * math.prod(array.shape[1:])
        self.fd = -1
        if self.position is not None:
            self.fd = os.open(array.filename, os.O_WRONLY if write else os.O_RDONLY)
            if not write and hasattr(os, "posix_fadvise"):
                os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            self.buffers = [] if write else [np.empty((rows, *array.shape[1:]), array.dtype)
                                             for _ in range(slots)]

    def read(self, lo: int, hi: int, slot: int = 0) -> np.ndarray:
        if self.fd < 0:
            return np.asarray(self.array[lo:hi])
        piece = self.buffers[slot][:hi - lo]
        view = memoryview(piece).cast("B")
        done, start = 0, self.position + lo * self.row
        while done < view.nbytes:
            got = os.preadv(self.fd, [view[done:]], start + done)
            if got <= 0:
                raise LossjitError(f"{self.array.filename}: the file ended at byte "
                                   f"{start + done}, before row {hi} of {self.array.shape}")
            done += got
        return piece

    def write(self, lo: int, part: np.ndarray) -> None:
        if self.fd < 0:
            with deferred():  # zarr's I/O thread finishes the chunks it has begun
                self.array[lo:lo + part.shape[0]] = part
            _release(self.array, lo, lo + part.shape[0])
            return
        view = memoryview(np.ascontiguousarray(part, self.array.dtype)).cast("B")
        done, start = 0, self.position + lo * self.row
        while done < view.nbytes:
            done += os.pwritev(self.fd, [view[done:]], start + done)

    def release(self, lo: int, hi: int) -> None:
        """A piece read is done with."""
        if self.fd < 0:
            _release(self.array, lo, hi)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def piece_rows(plan: Plan, shape: tuple[int, ...], dtypes: list[np.dtype], memory: int,
               rows: int | None = None, align: int = 1) -> int:
    """How many indices of axis 0 each piece takes: a multiple of the layout's cut, the most
    that fit in ``memory`` (at least one cut), or ``rows`` rounded down to a cut (at least
    one). Where a multiple of ``align`` (the inputs' chunks) and the cut fits, it is one."""
    cut = plan.spec.layout.cut(shape, plan.options)
    if cut is None:
        raise LossjitError(f"{plan.spec.name}: predictions of shape {shape} cannot be cut into "
                           "pieces, so they cannot be streamed (lossjit info says which "
                           "losses can)")
    if rows is None:
        per_index = math.prod(shape[1:]) * sum(np.dtype(d).itemsize for d in dtypes)
        rows = memory // max(1, _OVERHEAD * per_index)
        unit = math.lcm(cut, align)
        cut = unit if unit <= rows else cut
    return max(cut, rows // cut * cut)


def chunk_rows(array: Any) -> int:
    """The indices of axis 0 in each chunk of a chunked array (Zarr), 1 for any other."""
    chunks = getattr(array, "chunks", None)
    return chunks[0] if isinstance(chunks, tuple) and chunks and isinstance(chunks[0], int) \
        else 1


def stream_rows(plan: Plan, predictions: Any, targets: Any = None, *, outputs: int = 1,
                memory: int = DEFAULT_MEMORY, rows: int | None = None) -> int:
    """How many indices of axis 0 each piece of :func:`stream` takes, with ``outputs``
    arrays of the predictions' shape written (gradient, Hessian): as many as fit in
    ``memory``, and whole chunks of chunked (Zarr) inputs where they fit."""
    shape = tuple(predictions.shape)
    inputs = [predictions] + ([] if targets is None else [targets])
    dtypes = [a.dtype for a in inputs] + [predictions.dtype] * outputs
    align = math.lcm(*(chunk_rows(a) for a in inputs))
    return piece_rows(plan, shape, dtypes, memory, rows, align)


def _bounds(n: int, rows: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, n, rows):
        yield lo, min(n, lo + rows)


def piece_count(plan: Plan, shape: tuple[int, ...], lo: int, hi: int, x: Any, y: Any,
                sw: Any) -> ExactSum:
    """The share of the mean's denominator of the piece ``lo:hi`` of a call of ``shape``
    (``x`` its predictions, which matter only under ``nan_policy="omit"``: None stands for
    any; ``sw`` its sample weights or None); shares add exactly (:class:`ExactSum`)."""
    if x is None:
        x = np.broadcast_to(np.zeros((), np.float64), (hi - lo, *shape[1:]))
    inputs = plan.lay_out(x, y, _piece_options(plan, shape, lo, hi))
    weights = None if sw is None else sample_weights(sw, inputs, plan.nan_policy)
    if plan.nan_policy == "omit":
        _, weights = omitted_terms(inputs, weights)
    count = ExactSum()
    add_count(count, inputs, weights)
    return count


def piece_run(plan: Plan, shape: tuple[int, ...], lo: int, hi: int, x: np.ndarray, y: Any,
              sw: Any, scale: float, buffers: dict[str, np.ndarray] | None = None,
              ) -> tuple[list[float], Any, Any, Any]:
    """Run the piece ``lo:hi`` of a call of ``shape`` with the whole call's ``scale`` (1 /
    its denominator): the piece's block sums, and its gradient, Hessian diagonal and per-term
    losses (None where the plan does not compute them). The gradient and Hessian go into the
    first rows of ``buffers["grad"]`` and ``buffers["hess"]`` where they are given (arrays
    reused from piece to piece), of the layout's dtype, else into new arrays."""
    inputs = plan.lay_out(x, y, _piece_options(plan, shape, lo, hi))
    weights = None if sw is None else sample_weights(sw, inputs, plan.nan_policy)
    if plan.nan_policy == "raise":
        plan.refuse_non_finite(x, y, weights)
    omitted = None
    if plan.nan_policy == "omit":
        omitted, weights = omitted_terms(inputs, weights)
    dtype = inputs.x.dtype

    def output(key: str) -> np.ndarray:
        buffer = (buffers or {}).get(key)
        if buffer is not None and buffer.dtype == dtype and buffer.shape[1:] == x.shape[1:]:
            return buffer[:x.shape[0]]
        return np.empty(x.shape, dtype)

    g = output("grad") if plan.computes_grad else None
    h = output("hess") if plan.hessian else None
    found, outputs = run_piece(plan, inputs, weights, scale, g, h, omitted)
    terms = (outputs.losses.reshape(inputs.terms_shape) if plan.reduction == "none"
             else None)
    return found, g, h, terms


def whole_count(plan: Plan, terms_shape: tuple[int, ...]) -> ExactSum:
    """The mean's denominator where it is the number of terms (no first pass)."""
    count = ExactSum()
    count.count = math.prod(terms_shape)
    return count


def terms_shape_of(plan: Plan, shape: tuple[int, ...], x: np.ndarray, y: Any) -> tuple[int, ...]:
    """The terms' shape of a call of ``shape``, from the layout of its first piece ``x``."""
    first = plan.lay_out(x, y, _piece_options(plan, shape, 0, x.shape[0]))
    return (shape[0], *first.terms_shape[1:])


def needs_count(plan: Plan, sample_weight: Any) -> bool:
    """Whether the mean's denominator depends on the data (a first pass adds it up)."""
    return plan.reduction == "mean" and (sample_weight is not None
                                         or plan.nan_policy == "omit"
                                         or plan.spec.layout.counts_by_targets)


class _Lazy:
    """A task run when its result is asked for (a future, where no thread runs ahead)."""

    def __init__(self, task: Callable[..., Any], *args: Any) -> None:
        self.task, self.args = task, args

    def result(self) -> Any:
        return self.task(*self.args)


def stream(plan: Plan, predictions: Any, targets: Any = None, *, sample_weight: Any = None,
           grad: Any = None, hess: Any = None, losses: Any = None,
           memory: int = DEFAULT_MEMORY, rows: int | None = None,
           progress: Callable[[int], None] | None = None) -> LossValue | None:
    """Run ``plan`` on ``predictions`` and ``targets`` piece by piece; return the loss (None
    for ``reduction="none"``, whose per-term losses go to ``losses``). ``grad`` and ``hess``
    (the predictions' shape and dtype) and ``losses`` (the terms' shape) receive their parts
    piece by piece. ``memory`` bounds the pieces (``rows``: the indices of axis 0 in each,
    rounded down to the layout's cut; :func:`stream_rows` says how many by default);
    ``progress`` is called with the indices of axis 0 done after each piece.
    """
    shape = tuple(predictions.shape)
    if not shape:
        raise LossjitError("predictions: a scalar cannot be streamed")
    if len(plan.wrt) > 1 or plan.wrt[0] != "predictions":
        raise LossjitError("wrt: a streamed run differentiates the predictions only")
    if plan.want_grad and grad is None:
        raise LossjitError("grad: a streamed gradient needs an output to go to")
    if plan.hessian and hess is None:
        raise LossjitError("hess: a streamed Hessian needs an output to go to")
    n = shape[0]
    step = stream_rows(plan, predictions, targets, outputs=(grad is not None)
                       + (hess is not None), memory=memory, rows=rows)
    slots = 2 if _READ_AHEAD and n > step else 1
    with contextlib.ExitStack() as files:
        def rows_of(array: Any, write: bool = False) -> _Rows | None:
            if array is None:
                return None
            found = _Rows(array, min(n, step), write=write, slots=slots)
            files.callback(found.close)
            return found

        xs, ys = rows_of(predictions), rows_of(targets)

        def read(lo: int, hi: int, slot: int = 0, x: bool = True) -> tuple[Any, Any]:
            return (None if xs is None or not x else xs.read(lo, hi, slot),
                    None if ys is None else ys.read(lo, hi, slot))

        first = min(n, step)
        terms_shape = terms_shape_of(plan, shape, *read(0, first))
        sw_whole = None if sample_weight is None else np.broadcast_to(
            sample_weight if isinstance(sample_weight, np.ndarray)
            else np.asarray(sample_weight), terms_shape)

        def weights(lo: int, hi: int) -> np.ndarray | None:
            return None if sw_whole is None else np.asarray(sw_whole[lo:hi], dtype=np.float64)

        def done(lo: int, hi: int) -> None:
            for source in (xs, ys):
                if source is not None:
                    source.release(lo, hi)

        if needs_count(plan, sample_weight):
            # the predictions matter to the count only where NaN drops terms
            count = ExactSum()
            for lo, hi in _bounds(n, step):
                x, y = read(lo, hi, x=plan.nan_policy == "omit")
                part = piece_count(plan, shape, lo, hi, x, y, weights(lo, hi))
                count.count += part.count
                count.sums.extend(part.sums)
                done(lo, hi)
        else:
            count = whole_count(plan, terms_shape)
        divisor = denominator(plan, count, np.broadcast_to(np.zeros(()), shape))
        scale = 1.0 / divisor if divisor else 0.0

        outs = {key: rows_of(out, write=True) for key, out in
                (("grad", grad), ("hess", hess), ("losses", losses)) if out is not None}
        buffers = [{key: np.empty((first, *shape[1:]), out.array.dtype)
                    for key, out in outs.items() if key != "losses"} for _ in range(slots)]

        def write(lo: int, parts: dict[str, Any]) -> None:
            for key, out in outs.items():
                if parts[key] is not None:
                    out.write(lo, parts[key])

        # With two slots, piece j is computed while a second thread writes piece j - 1 out of
        # the other slot and then reads piece j + 1 into it. The thread takes its tasks in
        # order, so a slot is read into only once its last piece is written.
        helper = files.enter_context(ThreadPoolExecutor(1, "lossjit-io")) if slots > 1 \
            else None

        def later(task: Callable[..., Any], *args: Any) -> Any:
            return _Lazy(task, *args) if helper is None else helper.submit(task, *args)

        bounds = list(_bounds(n, step))
        ahead, behind = later(read, *bounds[0]), None
        sums: list[float] = []
        for j, (lo, hi) in enumerate(bounds):
            check_interrupted()
            x, y = ahead.result()
            if j + 1 < len(bounds):
                ahead = later(read, *bounds[j + 1], (j + 1) % slots)
            found, g, h, terms = piece_run(plan, shape, lo, hi, x, y, weights(lo, hi), scale,
                                           buffers[j % slots])
            sums.extend(found)
            done(lo, hi)
            if behind is not None:
                behind.result()  # (done by now, as a rule) its error, if any, stops the run
            behind = later(write, lo, {"grad": g, "hess": h, "losses": terms})
            if helper is None:  # one slot: out before the next piece is computed into it
                behind = behind.result()
            if progress is not None:
                progress(hi)
        if behind is not None:
            behind.result()
    result = finish(plan, combine(sums), divisor, None, {}, None)
    return None if plan.reduction == "none" else result.value
