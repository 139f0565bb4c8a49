"""Input layouts: one class per kind of input, one configured object per loss.

A layout object does three things for the losses it serves:

- :meth:`Layout.lay_out` checks the user's arrays and lays them out into one kernel call
  (:class:`KernelInputs`): ``x``/``y``/``w``, the parameters, the shape of the per-term
  losses, each term's share of the mean's denominator, and which of the loss's kernel sets
  (``variant``) it needs. Every check raises a :class:`~lossjit.errors.LossjitError` that names
  the argument, what it got and what was expected.
- :meth:`Layout.examples` makes valid example inputs of about a given size and dtype: what
  cache warm-up, ``lossjit bench``, the benchmarks and the parametrised tests run.
- :meth:`Layout.cut` says where a call may be cut into pieces: along the predictions' axis 0,
  at multiples of the number it returns, so that each piece holds whole kernel blocks
  (:mod:`lossjit.blocking`); ``None`` when it cannot be cut.

Only NumPy is used here; nothing is compiled.

>>> import numpy as np
>>> inputs = Elementwise().lay_out(np.zeros((2, 3)), np.ones((2, 3)), {})
>>> inputs.x.shape, inputs.terms
((6,), 6)
>>> Elementwise().cut((100_000, 3), {})
8192
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossjit.blocking import block_rows
from lossjit.errors import LossjitError

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
NO_WEIGHTS = np.empty(0)


class ConversionWarning(UserWarning):
    """An input was not float32/float64 and was converted to float64."""


@dataclass
class KernelInputs:
    """One kernel call, laid out: ``kernel(x, y, w, grad, hess, losses, sums, scale,
    *params)`` with the kernels of the loss's ``variant`` (None where it has one set).

    ``grad`` and ``hess`` are laid out as ``x``, and reshaped to the predictions' shape (or
    copied into it by ``unpack``); ``losses`` is laid out as ``terms_layout`` and returned to
    the user with ``terms_shape``. ``shares`` (when the terms do not count one each towards
    the mean's denominator) gives each term's share of it, laid out as the terms: the class
    weight of its target, 0 when ignored. ``wrt`` maps an option that can be differentiated to
    the function that takes its gradient out of the kernel's gradient.
    """

    variant: str | None
    x: np.ndarray
    y: np.ndarray
    params: tuple[Any, ...]
    terms_shape: tuple[int, ...]
    w: np.ndarray = field(default_factory=lambda: NO_WEIGHTS)
    terms_layout: tuple[int, ...] | None = None
    unpack: Callable[[np.ndarray, np.ndarray], None] | None = None
    shares: Callable[[], np.ndarray] | None = None
    wrt: dict[str, Callable[[np.ndarray], np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.terms_layout is None:
            self.terms_layout = self.terms_shape

    @property
    def terms(self) -> int:
        """How many loss terms the call has."""
        assert self.terms_layout is not None
        return math.prod(self.terms_layout)


@dataclass(frozen=True)
class Example:
    """Valid inputs for a loss: what ``label`` says, with the ``options`` they need."""

    label: str
    predictions: np.ndarray
    targets: Any
    options: dict[str, Any] = field(default_factory=dict)


# --- checks and conversions -------------------------------------------------------------------


def plain(value: Any) -> str:
    """A number for a message as Python writes it: ``-1.0``, not ``np.float64(-1.0)``; NaN as
    ``NaN``.

    >>> plain(np.float64(-1.0)), plain(np.uint64(2**64 - 1)), plain(float("nan")), plain(-np.inf)
    ('-1.0', '18446744073709551615', 'NaN', '-inf')
    """
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return repr(value)


def position(index: int, shape: tuple[int, ...]) -> str:
    """The flat (C-order) ``index`` of an array of ``shape`` as its position ``(i, j, ...)``.

    >>> position(7, (4, 2)), position(2, (5,)), position(0, ())
    ('(3, 1)', '(2,)', '()')
    """
    return _shape(tuple(int(i) for i in np.unravel_index(index, shape)) if shape else ())


def first(mask: np.ndarray) -> int:
    """The flat index of the first true element of ``mask`` (which has one)."""
    return int(np.argmax(mask.reshape(-1)))


def first_bad(values: np.ndarray, bad: np.ndarray) -> str:
    """``"VALUE at position (i, ...)"`` of the first true element of ``bad`` in ``values``."""
    index = first(bad)
    return f"{plain(values.reshape(-1)[index])} at position {position(index, values.shape)}"


def _dtype_name(dtype: np.dtype) -> str:
    kinds = {"U": "str", "S": "bytes", "V": "void (structured)"}
    return kinds.get(dtype.kind, dtype.name)


def lossless(dtype: np.dtype) -> bool:
    """Whether numbers of ``dtype`` become float64 without loss (NumPy's safe casting): bool,
    integers of up to 64 bits, signed or not, float16/32/64 in either byte order. Not complex,
    object, str, datetime, or a long double wider than float64.

    >>> [lossless(np.dtype(d)) for d in ("?", "u8", ">i4", ">f8", "c16", "O", "U3", "M8[D]")]
    [True, True, True, True, False, False, False, False]
    """
    return dtype in FLOATS or (dtype.kind in "biuf" and np.can_cast(dtype, np.float64, "safe"))


#: What every array of numbers may be, said in messages.
NUMBER_DTYPES = "bool, integer or float numbers that convert to float64 without loss"


def numbers(value: Any, what: str, expected: str = "numbers") -> np.ndarray:
    """``value`` as an array, refusing by name a dtype whose numbers do not convert to float64
    without loss (:func:`lossless`); ``expected`` says what the argument holds."""
    a = np.asarray(value)
    if not lossless(a.dtype):
        raise LossjitError(f"{what}: dtype {_dtype_name(a.dtype)} is not supported; expected "
                           f"{expected} ({NUMBER_DTYPES})")
    return a


def floats(array: Any, what: str) -> np.ndarray:
    """``array`` as a C-contiguous float32/float64 array in the machine's byte order; other
    numbers (:func:`lossless`) become float64 with a :class:`ConversionWarning`."""
    a = np.asarray(array)
    if a.dtype in FLOATS:
        return np.asarray(a, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
    a = numbers(a, what, "real numbers")
    if a.dtype.kind == "f" and a.dtype.itemsize in (4, 8):  # a byte order: no conversion
        return np.asarray(a, dtype=a.dtype.newbyteorder("="), order="C")
    warnings.warn(f"{what}: converted {a.dtype.name} to float64", ConversionWarning,
                  stacklevel=5)
    return np.asarray(a, dtype=np.float64, order="C")


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _values_like(targets: Any, x: np.ndarray, what: str = "targets") -> np.ndarray:
    """Targets holding one number per prediction, in the predictions' dtype."""
    if targets is None:
        raise LossjitError(f"{what}: missing; expected an array of shape {_shape(x.shape)}")
    t = numbers(targets, what)
    if t.shape != x.shape:
        raise LossjitError(f"{what}: shape {_shape(t.shape)} does not match predictions "
                           f"{_shape(x.shape)}")
    return np.asarray(t, dtype=x.dtype, order="C")


def _broadcast_weight(weight: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A weight array broadcast to ``shape``, as float64 (PyTorch's broadcasting rules)."""
    if weight is None:
        return NO_WEIGHTS
    wt = numbers(weight, what)
    try:  # a copy: a broadcast view is read-only, which Numba would compile apart
        return np.array(np.broadcast_to(wt.astype(np.float64), shape), order="C")
    except ValueError:
        raise LossjitError(f"{what}: shape {_shape(wt.shape)} does not broadcast to the "
                           f"predictions' shape {_shape(shape)}") from None


def _class_vector(values: Any, classes: int, what: str) -> np.ndarray:
    """A per-class float64 vector of length ``classes`` (a scalar is repeated)."""
    if values is None:
        return NO_WEIGHTS
    v = numbers(values, what).astype(np.float64)
    if v.ndim == 0:
        return np.full(classes, float(v))
    if v.shape != (classes,):
        raise LossjitError(f"{what}: shape {_shape(v.shape)} does not match the {classes} "
                           f"classes; expected shape ({classes},)")
    return np.ascontiguousarray(v)


def check_signs(labels: np.ndarray, what: str = "targets") -> None:
    """Labels must be 1 or -1 (or NaN, a missing label: ``nan_policy`` says what it does)."""
    bad = (labels != 1) & (labels != -1) & ~np.isnan(labels)
    if bad.any():
        raise LossjitError(f"{what}: labels must be 1 or -1, got {first_bad(labels, bad)}")


# --- example values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Domain:
    """The values an input takes: ``sample(rng, shape) -> float64`` makes example values, and
    ``outside(values) -> bool array``, where given, marks the values a loss refuses (NaN is
    never refused: it propagates)."""

    name: str
    sample: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
    outside: Callable[[np.ndarray], np.ndarray] | None = None

    def check(self, values: np.ndarray, what: str) -> None:
        """Raise a LossjitError naming the first value outside the domain, if any."""
        if self.outside is None:
            return
        bad = self.outside(values)
        if bad.any():
            raise LossjitError(f"{what}: expected values {self.name}, got "
                               f"{first_bad(values, bad)}")


REAL = Domain("real", lambda rng, shape: rng.normal(size=shape))
UNIT = Domain("in (0, 1)", lambda rng, shape: rng.uniform(0.05, 0.95, shape))
BINARY = Domain("0 or 1", lambda rng, shape: rng.integers(0, 2, shape).astype(np.float64))
SIGNS = Domain("1 or -1", lambda rng, shape: rng.choice([-1.0, 1.0], shape))
COUNTS = Domain("counts", lambda rng, shape: rng.poisson(2.0, shape).astype(np.float64))
POSITIVE = Domain("> 0", lambda rng, shape: rng.uniform(0.1, 3.0, shape))
LOG_PROBS = Domain("log-probabilities", lambda rng, shape: np.log(rng.uniform(0.05, 1.0, shape)))
DISTANCES = Domain("distances", lambda rng, shape: rng.uniform(0.0, 2.0, shape))
#: Checked domains: a loss whose targets must lie in them refuses anything else.
NONNEGATIVE = Domain(">= 0", lambda rng, shape: rng.gamma(0.5, 2.0, shape)
                     * rng.integers(0, 2, shape), lambda v: v < 0)
POSITIVE_ONLY = Domain("> 0", lambda rng, shape: rng.gamma(2.0, 1.0, shape) + 1e-3,
                       lambda v: v <= 0)


# --- the layout classes -----------------------------------------------------------------------


class Layout:
    """The base of every layout: the rule for cutting a call, from :meth:`rows`."""

    #: whether the mean's denominator can depend on the targets (class weights, ignored
    #: targets), not only on the number of terms
    counts_by_targets = False

    def lay_out(self, predictions: Any, targets: Any, options: dict[str, Any]) -> KernelInputs:
        raise NotImplementedError

    def plain(self, options: dict[str, Any]
              ) -> tuple[tuple[Any, ...], Callable[[np.ndarray, np.ndarray], None] | None] | None:
        """For the quick path of small calls (:func:`lossjit.plan.quick_call`): when this
        layout, under ``options``, hands predictions and targets of one shape and dtype to the
        kernel as they are (flattened, no weights), the kernel's parameters and the checks the
        arrays must pass (None: none); None when every call must be laid out."""
        return None

    def examples(self, size: int, dtype: Any, rng: np.random.Generator, *,
                 width: int | None = None) -> list[Example]:
        """Valid inputs of about ``size`` numbers of ``dtype``; ``width`` is the classes of a
        class axis or the embedding size of pairs and triplets."""
        raise NotImplementedError

    def rows(self, shape: tuple[int, ...], options: dict[str, Any]
             ) -> tuple[int, int] | None:
        """(kernel rows per index of the predictions' axis 0, numbers per kernel row), or
        None when axis 0 is not a stack of whole kernel rows."""
        return None

    def align(self, option: str, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """An array option that broadcasts against predictions of ``shape``, with its axes
        lined up with theirs (NumPy's broadcasting rules, unless the layout has its own)."""
        return value

    def class_index_shape(self, shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """The shape of class-index targets for predictions of ``shape``, or None when the
        layout takes no class indices."""
        return None

    def class_count(self, shape: tuple[int, ...]) -> int:
        """The number of classes of predictions of ``shape`` (0 without a class axis)."""
        return 0

    def cut(self, shape: tuple[int, ...], options: dict[str, Any]) -> int | None:
        """Pieces may start at multiples of this many indices of the predictions' axis 0
        (None: the call cannot be cut): every piece then holds whole kernel blocks."""
        rows = self.rows(tuple(shape), options)
        if rows is None:
            return None
        per_index, width = rows
        per_block = block_rows(width)
        return per_block // math.gcd(per_block, per_index) if per_index else 1


def _elements(shape: tuple[int, ...]) -> tuple[int, int] | None:
    return (math.prod(shape[1:]), 1) if len(shape) else None


@dataclass(frozen=True)
class Elementwise(Layout):
    """Predictions and targets of the same shape, one loss term per element: the kernel gets
    both flattened. ``params`` are the options the kernel takes, in order; ``predictions`` and
    ``targets`` are their domains (a checked domain refuses values outside it); ``weight``
    names an option of weights that broadcast against the predictions; ``check(x, y)`` refuses
    what else the loss cannot take."""

    params: tuple[str, ...] = ()
    predictions: Domain = REAL
    targets: Domain = REAL
    weight: str | None = None
    check: Callable[[np.ndarray, np.ndarray], None] | None = None

    def lay_out(self, predictions: Any, targets: Any, options: dict[str, Any]) -> KernelInputs:
        x = floats(predictions, "predictions")
        y = _values_like(targets, x)
        self.predictions.check(x, "predictions")
        self.targets.check(y, "targets")
        if self.check is not None:
            self.check(x, y)
        w = NO_WEIGHTS
        if self.weight is not None:
            w = _broadcast_weight(options[self.weight], x.shape, self.weight).reshape(-1)
        return KernelInputs(None, x.reshape(-1), y.reshape(-1),
                            tuple(options[name] for name in self.params), x.shape, w=w,
                            terms_layout=(x.size,))

    def plain(self, options: dict[str, Any]
              ) -> tuple[tuple[Any, ...], Callable[[np.ndarray, np.ndarray], None] | None] | None:
        if self.weight is not None and options[self.weight] is not None:
            return None
        checks = None
        if (self.predictions.outside is not None or self.targets.outside is not None
                or self.check is not None):
            def checks(x: np.ndarray, y: np.ndarray) -> None:
                self.predictions.check(x, "predictions")
                self.targets.check(y, "targets")
                if self.check is not None:
                    self.check(x, y)
        return tuple(options[name] for name in self.params), checks

    def examples(self, size: int, dtype: Any, rng: np.random.Generator, *,
                 width: int | None = None) -> list[Example]:
        shape = (size,)
        return [Example(f"predictions {self.predictions.name}, targets {self.targets.name}",
                        self.predictions.sample(rng, shape).astype(dtype),
                        self.targets.sample(rng, shape).astype(dtype))]

    def rows(self, shape: tuple[int, ...], options: dict[str, Any]) -> tuple[int, int] | None:
        return _elements(shape)


def check_probabilities(x: np.ndarray, y: np.ndarray) -> None:
    """binary_cross_entropy: predictions must be probabilities."""
    outside = (x < 0) | (x > 1)
    if outside.any():
        raise LossjitError(f"predictions: binary_cross_entropy expects probabilities in "
                           f"[0, 1], got {first_bad(x, outside)}; use bce_with_logits for "
                           "logits")


def check_signs_of_targets(x: np.ndarray, y: np.ndarray) -> None:
    """Targets must be 1 or -1."""
    check_signs(y)


@dataclass(frozen=True)
class PositiveWeights(Layout):
    """Logits and targets of the same shape with ``weight`` and ``pos_weight``, both
    broadcast against the targets as PyTorch does. A ``pos_weight`` that is one number runs
    the element-wise kernels (variant ``"elementwise"``); one that varies (per class ``(C,)``,
    per channel ``(C, 1, 1)``, ...) runs the per-column kernels (variant ``"columns"``) on
    rows that span the axes it varies along, with its values for one row as the columns'
    parameter."""

    predictions: Domain = REAL
    targets: Domain = BINARY

    @staticmethod
    def _columns(shape: tuple[int, ...], pos_weight: Any) -> tuple[int, np.ndarray] | None:
        """(first axis of the rows, one row's pos_weight), or None for a single number."""
        if pos_weight is None:
            return None
        pw = numbers(pos_weight, "pos_weight").astype(np.float64)
        if pw.ndim > len(shape):
            raise LossjitError(f"pos_weight: shape {_shape(pw.shape)} has more axes than the "
                               f"predictions {_shape(shape)}")
        aligned = pw.reshape((1,) * (len(shape) - pw.ndim) + pw.shape)
        try:
            np.broadcast_shapes(aligned.shape, shape)
        except ValueError:
            raise LossjitError(f"pos_weight: shape {_shape(pw.shape)} does not broadcast to the "
                               f"targets' shape {_shape(shape)}") from None
        varying = [axis for axis, size in enumerate(aligned.shape) if size != 1]
        if not varying:
            return None
        first = varying[0]
        row = np.broadcast_to(aligned[(0,) * first], shape[first:])
        return first, np.ascontiguousarray(row).reshape(-1)

    def lay_out(self, predictions: Any, targets: Any, options: dict[str, Any]) -> KernelInputs:
        x = floats(predictions, "predictions")
        y = _values_like(targets, x)
        w = _broadcast_weight(options["weight"], x.shape, "weight")
        columns = self._columns(x.shape, options["pos_weight"])
        if columns is None:
            pw = options["pos_weight"]
            pw = 1.0 if pw is None else float(np.asarray(pw, dtype=np.float64).reshape(-1)[0])
            return KernelInputs("elementwise", x.reshape(-1), y.reshape(-1), (pw,), x.shape,
                                w=w.reshape(-1), terms_layout=(x.size,))
        first, row = columns
        length = row.size
        rows = x.size // length if length else 0
        return KernelInputs("columns", x.reshape(rows, length), y.reshape(rows, length),
                            (row,), x.shape, w=w.reshape(rows, length) if w.size else w,
                            terms_layout=(rows, length))

    def examples(self, size: int, dtype: Any, rng: np.random.Generator, *,
                 width: int | None = None) -> list[Example]:
        classes = width or 4
        rows = max(1, size // classes)
        x = self.predictions.sample(rng, (rows, classes)).astype(dtype)
        y = self.targets.sample(rng, (rows, classes)).astype(dtype)
        return [Example("logits and targets", x, y),
                Example("per-class weights", x, y,
                        {"weight": rng.uniform(0.5, 2.0, classes),
                         "pos_weight": rng.uniform(0.5, 3.0, classes)})]

    def rows(self, shape: tuple[int, ...], options: dict[str, Any]) -> tuple[int, int] | None:
        columns = self._columns(shape, options.get("pos_weight"))
        if columns is None:
            return _elements(shape)
        first, row = columns
        if first == 0:
            return None
        return math.prod(shape[1:first]), row.size


@dataclass(frozen=True)
class Variance(Layout):
    """Means and targets of one shape, and ``var`` in one of the shapes PyTorch accepts; the
    kernel gets rows (mean, var), with var broadcast, and differentiates both."""

    def lay_out(self, predictions: Any, targets: Any, options: dict[str, Any]) -> KernelInputs:
        x = floats(predictions, "predictions")
        y = _values_like(targets, x)
        v = numbers(options["var"], "var")
        given = v.shape
        if v.ndim and v.shape != x.shape:
            if v.shape == x.shape[:-1]:
                v = v[..., None]
            mismatched = [size for size, full in zip(v.shape, x.shape, strict=False)
                          if size != full]
            if v.ndim != x.ndim or mismatched != [1]:
                raise LossjitError(
                    f"var: shape {_shape(given)} does not fit predictions {_shape(x.shape)}; "
                    f"expected {_shape(x.shape)}, {_shape(x.shape[:-1])}, that shape with one "
                    "axis of size 1, or a number")
        v = v.astype(x.dtype, copy=False)
        negative = v < 0
        if negative.any():
            raise LossjitError(f"var: variances must be >= 0, got {first_bad(v, negative)}")
        rows = np.empty((x.size, 2), dtype=x.dtype)
        rows[:, 0] = x.reshape(-1)
        rows[:, 1] = np.broadcast_to(v, x.shape).reshape(-1)
        shape = x.shape
        summed = tuple(axis for axis in range(x.ndim)
                       if v.ndim == 0 or v.shape[axis] != shape[axis])

        def unpack(view: np.ndarray, grad: np.ndarray) -> None:
            grad.reshape(-1)[...] = view[:, 0]

        def var_grad(view: np.ndarray) -> np.ndarray:
            full = np.ascontiguousarray(view[:, 1]).reshape(shape)
            return np.asarray(full.sum(axis=summed, keepdims=v.ndim > 0)).reshape(given)

        return KernelInputs(None, rows, y.reshape(-1), (options["full"], options["eps"]),
                            shape, terms_layout=(x.size,), unpack=unpack,
                            wrt={"var": var_grad})

    def examples(self, size: int, dtype: Any, rng: np.random.Generator, *,
                 width: int | None = None) -> list[Example]:
        x = REAL.sample(rng, (size,)).astype(dtype)
        y = REAL.sample(rng, (size,)).astype(dtype)
        return [Example("means, targets and variances", x, y,
                        {"var": POSITIVE.sample(rng, (size,)).astype(dtype)})]

    def rows(self, shape: tuple[int, ...], options: dict[str, Any]) -> tuple[int, int] | None:
        return (math.prod(shape[1:]), 2) if len(shape) else None

    def align(self, option: str, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """``var`` of the means' shape without its last axis gets that axis back."""
        if value.ndim and value.shape != shape and value.shape == shape[:-1]:
            return value[..., None]
        return value


# --- class axis -------------------------------------------------------------------------------


@dataclass
class ClassRows:
    """Logits (or probabilities) as (rows, C), one row per loss term, with their targets.

    PyTorch's (N, C, d1..dk) inputs become (N*d1*..dk, C) copies; ``unpack`` then copies the
    kernel's (rows, C) gradient back into the predictions' layout.
    """

    x: np.ndarray
    terms_shape: tuple[int, ...]
    index: np.ndarray | None  # (rows,) int64 class indices, or None for soft targets
    soft: np.ndarray | None  # (rows, C) target probabilities, or None
    unpack: Callable[[np.ndarray, np.ndarray], None] | None
    ignored: bool = False  # whether any index target equals ignore_index

    @property
    def classes(self) -> int:
        return self.x.shape[1]

    def inputs(self, variant: str, params: tuple[Any, ...], w: np.ndarray = NO_WEIGHTS,
               shares: Callable[[], np.ndarray] | None = None) -> KernelInputs:
        targets = self.index if self.index is not None else self.soft
        assert targets is not None
        return KernelInputs(variant, self.x, targets, params, self.terms_shape, w=w,
                            terms_layout=(self.x.shape[0],), unpack=self.unpack,
                            shares=shares)

    def one_hot(self, ignore_index: int) -> np.ndarray:
        """Turn index targets into one-hot rows; return a 0/1 weight that drops ignored
        terms."""
        assert self.index is not None
        kept = self.index != ignore_index
        hot = np.zeros(self.x.shape, dtype=self.x.dtype)
        hot[np.nonzero(kept)[0], self.index[kept]] = 1
        self.index, self.soft = None, hot
        return kept.astype(np.float64)

    def index_shares(self, ignore: int, weight: np.ndarray = NO_WEIGHTS
                     ) -> Callable[[], np.ndarray] | None:
        """Each index target's share of the mean's denominator: its class weight (1 without
        weights), 0 when ignored; None when every term counts one."""
        index = self.index
        assert index is not None
        if not weight.size and not self.ignored:
            return None

        def shares() -> np.ndarray:
            share = (weight[np.where(index == ignore, 0, index)] if weight.size
                     else np.ones(index.size))
            return np.where(index == ignore, 0.0, share)

        return shares


def _class_rows_of(a: np.ndarray, n: int, classes: int, positions: int) -> np.ndarray:
    """(n, C, positions) as contiguous (n * positions, C) rows."""
    if positions == 1:
        return a.reshape(n, classes)
    return np.ascontiguousarray(
        np.moveaxis(a.reshape(n, classes, positions), 1, 2)).reshape(n * positions, classes)


def class_rows(predictions: Any, targets: Any, ignore_index: int | None) -> ClassRows:
    """Check class-axis predictions and their targets and lay them out as rows."""
    x = floats(predictions, "predictions")
    if x.ndim == 0:
        raise LossjitError("predictions: a scalar has no class axis; expected shape (C,), "
                           "(N, C) or (N, C, d1, ...)")
    if x.ndim == 1:
        n, classes, positions, terms = 1, x.shape[0], 1, ()
    else:
        n, classes = x.shape[0], x.shape[1]
        positions = math.prod(x.shape[2:])
        terms = (x.shape[0], *x.shape[2:])
    if classes == 0:
        raise LossjitError(f"predictions: shape {_shape(x.shape)} has no classes on axis "
                           f"{0 if x.ndim == 1 else 1}")
    unpack = None
    if positions != 1:
        def unpack(rows: np.ndarray, grad: np.ndarray) -> None:
            grad.reshape(n, classes, positions)[...] = (
                rows.reshape(n, positions, classes).transpose(0, 2, 1))
    rows = _class_rows_of(x, n, classes, positions)
    if targets is None:
        raise LossjitError(f"targets: missing; expected class indices of shape {_shape(terms)} "
                           f"or probabilities of shape {_shape(x.shape)}")
    t = np.asarray(targets)
    if t.dtype.kind in "iu":
        if t.shape != terms:
            raise LossjitError(
                f"targets: class indices of shape {_shape(t.shape)} do not match predictions "
                f"{_shape(x.shape)}; expected shape {_shape(terms)} (the predictions' shape "
                "without the class axis)")
        lowest, highest = check_class_indices(t, classes, ignore_index)
        index = np.ascontiguousarray(t, dtype=np.int64).reshape(-1)
        return ClassRows(rows, terms, index, None, unpack,
                         ignored=ignore_index is not None and lowest <= ignore_index <= highest)
    if lossless(t.dtype):  # probabilities (bool: 0/1)
        if t.shape != x.shape:
            raise LossjitError(
                f"targets: probabilities of shape {_shape(t.shape)} do not match predictions "
                f"{_shape(x.shape)}; pass integer class indices of shape {_shape(terms)} or "
                f"probabilities of shape {_shape(x.shape)}")
        soft = _class_rows_of(np.ascontiguousarray(t, dtype=x.dtype), n, classes, positions)
        return ClassRows(rows, terms, None, soft, unpack)
    raise LossjitError(f"targets: dtype {_dtype_name(t.dtype)} is not supported; expected "
                       f"integer class indices or float probabilities ({NUMBER_DTYPES})")


def check_class_indices(t: np.ndarray, classes: int, ignore_index: int | None
                        ) -> tuple[int, int]:
    """Class indices (any integer dtype, unsigned ones included) must lie in ``0..classes-1``
    or equal ``ignore_index``; the first that does not is named with its position. Returns
    the lowest and highest index (0, 0 for none).

    >>> check_class_indices(np.array([[0, 1], [5, 2]], np.uint8), 3, -100)
    Traceback (most recent call last):
    ...
    lossjit.errors.LossjitError: targets: class index 5 at position (1, 0) is out of range; \
expected 0 to 2 or ignore_index -100
    """
    if not t.size:
        return 0, 0
    lowest, highest = int(t.min()), int(t.max())  # from t's own dtype: uint64 does not wrap
    if lowest >= 0 and highest < classes:
        return lowest, highest
    valid = (t >= 0) & (t < classes)  # NumPy compares Python ints with any integer dtype
    if ignore_index is not None:
        valid |= t == ignore_index
    if valid.all():
        return lowest, highest
    index = first(~valid)
    allowed = f"0 to {classes - 1}" + (f" or ignore_index {ignore_index}"
                                       if ignore_index is not None else "")
    raise LossjitError(f"targets: class index {plain(t.reshape(-1)[index])} at position "
                       f"{position(index, t.shape)} is out of range; expected {allowed}")


@dataclass(frozen=True)
class ClassAxis(Layout):
    """Logits ``(C,)``, ``(N, C)`` or ``(N, C, d1..dk)`` with classes on axis 1, and class
    indices (integers, the shape without C) or probabilities (floats, the logits' shape).

    ``bind(rows, options) -> KernelInputs`` is the loss's own part: which kernels, with which
    parameters and denominator. ``index_only`` names the loss when it takes class indices
    only; ``max_ndim`` limits the predictions' axes; ``probabilities`` says the loss also
    takes probabilities with ``from_logits=False``; ``log_probabilities`` that its
    predictions are log-probabilities (as its examples then are).
    """

    counts_by_targets = True  # class weights and ignored targets weigh the mean
    bind: Callable[[ClassRows, dict[str, Any]], KernelInputs]
    index_only: str | None = None
    max_ndim: int | None = None
    probabilities: bool = False
    log_probabilities: bool = False

    def lay_out(self, predictions: Any, targets: Any, options: dict[str, Any]) -> KernelInputs:
        if self.index_only is not None and targets is not None:
            t = np.asarray(targets)
            if t.dtype.kind not in "iu":
                raise LossjitError(f"targets: {self.index_only} takes integer class indices, "
                                   f"got dtype {_dtype_name(t.dtype)}")
        if self.max_ndim is not None and np.ndim(predictions) > self.max_ndim:
            raise LossjitError(f"predictions: shape {_shape(np.shape(predictions))} has too "
                               f"many axes; {self.index_only} takes (C,) or (N, C)")
        return self.bind(class_rows(predictions, targets, options.get("ignore_index")),
                         options)

    def examples(self, size: int, dtype: Any, rng: np.random.Generator, *,
                 width: int | None = None) -> list[Example]:
        classes = width or 10
        rows = max(1, size // classes)
        logits = REAL.sample(rng, (rows, classes))
        if self.log_probabilities:
            logits = np.log(_softmax(logits))
        logits = logits.astype(dtype)
        labels = rng.integers(0, classes, rows)
        found = [Example("class indices", logits, labels)]
        if self.index_only is None:
            found.append(Example("probability targets", logits,
                                 _softmax(REAL.sample(rng, (rows, classes))).astype(dtype)))
        if self.probabilities:
            found.append(Example("probabilities, one-hot targets",
                                 _softmax(logits.astype(np.float64)).astype(dtype),
                                 np.eye(classes, dtype=dtype)[labels], {"from_logits": False}))
        return found

    def rows(self, shape: tuple[int, ...], options: dict[str, Any]) -> tuple[int, int] | None:
        return (math.prod(shape[2:]), shape[1]) if len(shape) >= 2 else None

    def class_index_shape(self, shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """``(N, d1, ...)`` for logits ``(N, C, d1, ...)``; ``()`` for ``(C,)``."""
        if len(shape) == 0:
            return None
        return () if len(shape) == 1 else (shape[0], *shape[2:])

    def class_count(self, shape: tuple[int, ...]) -> int:
        return shape[0] if len(shape) == 1 else shape[1] if len(shape) > 1 else 0


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def bind_cross_entropy(c: ClassRows, options: dict[str, Any]) -> KernelInputs:
    """Softmax cross-entropy on logits (or on probabilities with ``from_logits=False``)."""
    ignore = options["ignore_index"]
    weight = _class_vector(options["weight"], c.classes, "weight")
    smoothing = options["label_smoothing"]
    shares = c.index_shares(ignore, weight) if c.index is not None else None
    if options["from_logits"]:
        if c.index is not None:
            return c.inputs("index", (weight, ignore, smoothing), shares=shares)
        return c.inputs("soft", (weight, smoothing, 0.0))
    kept_weight = c.one_hot(ignore) if c.index is not None else NO_WEIGHTS
    return c.inputs("probs", (weight, smoothing, options["eps"]), kept_weight, shares)


def bind_focal(c: ClassRows, options: dict[str, Any]) -> KernelInputs:
    """Softmax focal loss on logits, or the seed's form on probabilities."""
    ignore = options["ignore_index"]
    alpha = _class_vector(options["alpha"], c.classes, "alpha")
    gamma = options["gamma"]
    shares = c.index_shares(ignore) if c.index is not None else None
    if options["from_logits"]:
        if c.index is not None:
            return c.inputs("index", (alpha, gamma, ignore), shares=shares)
        return c.inputs("soft", (alpha, 0.0, gamma))
    kept_weight = c.one_hot(ignore) if c.index is not None else NO_WEIGHTS
    return c.inputs("probs", (alpha, gamma, options["eps"]), kept_weight, shares)


def bind_poly1(c: ClassRows, options: dict[str, Any]) -> KernelInputs:
    """Poly-1 cross-entropy on logits, with class-index or probability targets."""
    ignore = options["ignore_index"]
    epsilon = options["epsilon"]
    if c.index is None:
        return c.inputs("soft", (NO_WEIGHTS, 0.0, epsilon))
    return c.inputs("index", (NO_WEIGHTS, epsilon, ignore), shares=c.index_shares(ignore))


def bind_nll(c: ClassRows, options: dict[str, Any]) -> KernelInputs:
    """Log-probabilities laid out as cross_entropy's logits, with class-index targets."""
    ignore = options["ignore_index"]
    weight = _class_vector(options["weight"], c.classes, "weight")
    return c.inputs(None, (weight, ignore), shares=c.index_shares(ignore, weight))


def bind_multi_margin(c: ClassRows, options: dict[str, Any]) -> KernelInputs:
    """Scores (C,) or (N, C) with class-index targets () or (N,)."""
    weight = _class_vector(options["weight"], c.classes, "weight")
    return c.inputs(None, (options["p"], options["margin"], weight))


@dataclass(frozen=True)
class LastAxisClasses(Layout):
    """Logits ``(..., C)`` with 0/1 (or soft) targets of the same shape, classes on the last
    axis; one loss term per row, with per-class weights ``weight``."""

    def lay_out(self, predictions: Any, targets: Any, options: dict[str, Any]) -> KernelInputs:
        x = floats(predictions, "predictions")
        y = _values_like(targets, x)
        if x.ndim == 0 or x.shape[-1] == 0:
            raise LossjitError(f"predictions: shape {_shape(x.shape)} has no classes on its "
                               "last axis; expected (..., C)")
        classes = x.shape[-1]
        rows = x.size // classes
        weight = _class_vector(options["weight"], classes, "weight")
        return KernelInputs(None, x.reshape(rows, classes), y.reshape(rows, classes),
                            (weight,), x.shape[:-1], terms_layout=(rows,))

    def examples(self, size: int, dtype: Any, rng: np.random.Generator, *,
                 width: int | None = None) -> list[Example]:
        classes = width or 10
        shape = (max(1, size // classes), classes)
        return [Example("logits, 0/1 labels", REAL.sample(rng, shape).astype(dtype),
                        BINARY.sample(rng, shape).astype(dtype))]

    def rows(self, shape: tuple[int, ...], options: dict[str, Any]) -> tuple[int, int] | None:
        return (math.prod(shape[1:-1]), shape[-1]) if len(shape) >= 2 else None


# --- stacked embeddings -----------------------------------------------------------------------


def _pair_labels(targets: Any, batch: int, meaning: str) -> np.ndarray:
    """One label per pair, as a float64 (B,) vector; (B, 1) is accepted too."""
    if targets is None:
        raise LossjitError(f"targets: missing; expected {batch} pair labels ({meaning})")
    t = numbers(targets, "targets", f"labels ({meaning})")
    if t.shape not in ((batch,), (batch, 1)) and not (batch == 1 and t.size == 1):
        raise LossjitError(f"targets: shape {_shape(t.shape)} does not match {batch} pairs; "
                           f"expected ({batch},) or ({batch}, 1)")
    return np.ascontiguousarray(t, dtype=np.float64).reshape(batch)


@dataclass(frozen=True)
class Stacked(Layout):
    """Groups of ``members`` vectors stacked as ``(B, members, D)`` (pairs, triplets), one
    loss term per group; ``(members, D)`` is one group, whose loss has shape ``()``.

    ``labels`` is the domain of the one label per group (None: the loss takes no targets),
    ``meaning`` says it in words; ``signs`` checks that labels are 1 or -1; ``params`` are the
    options the kernel takes, in order."""

    members: int
    what: str
    params: tuple[str, ...]
    labels: Domain | None = None
    meaning: str = ""
    signs: bool = False

    def lay_out(self, predictions: Any, targets: Any, options: dict[str, Any]) -> KernelInputs:
        x = floats(predictions, "predictions")
        if x.ndim == 2 and x.shape[0] == self.members:
            x, terms = x.reshape(1, self.members, x.shape[1]), ()
        elif x.ndim != 3 or x.shape[1] != self.members:
            raise LossjitError(f"predictions: shape {_shape(x.shape)} is not a stack of "
                               f"{self.what}; expected (B, {self.members}, D)")
        else:
            terms = (x.shape[0],)
        batch = x.shape[0]
        if self.labels is None:
            y = np.empty(0, dtype=x.dtype)
        else:
            y = _pair_labels(targets, batch, self.meaning)
            if self.signs:
                check_signs(y)
        return KernelInputs(None, x, y, tuple(options[name] for name in self.params), terms,
                            terms_layout=(batch,))

    def examples(self, size: int, dtype: Any, rng: np.random.Generator, *,
                 width: int | None = None) -> list[Example]:
        dim = width or 64
        batch = max(1, size // (self.members * dim))
        x = REAL.sample(rng, (batch, self.members, dim)).astype(dtype)
        y = None if self.labels is None else self.labels.sample(rng, (batch,))
        return [Example(self.what, x, y)]

    def rows(self, shape: tuple[int, ...], options: dict[str, Any]) -> tuple[int, int] | None:
        return (1, self.members * shape[2]) if len(shape) == 3 else None


@dataclass(frozen=True)
class RankPairs(Layout):
    """Rank pairs ``(B, 2)`` = (x1, x2), ``(2,)`` being one pair, and labels 1 (x1 should rank
    higher) or -1, of shape (B,) or (B, 1)."""

    def lay_out(self, predictions: Any, targets: Any, options: dict[str, Any]) -> KernelInputs:
        x = floats(predictions, "predictions")
        terms = () if x.shape == (2,) else x.shape[:1]
        if x.shape == (2,):
            x = x.reshape(1, 2)
        if x.ndim != 2 or x.shape[1] != 2:
            raise LossjitError(f"predictions: shape {_shape(x.shape)} is not a stack of rank "
                               "pairs; expected (B, 2)")
        batch = x.shape[0]
        y = _pair_labels(targets, batch, "1: the first should rank higher, -1: the second")
        check_signs(y)
        return KernelInputs(None, x, y, (options["margin"],), terms, terms_layout=(batch,))

    def examples(self, size: int, dtype: Any, rng: np.random.Generator, *,
                 width: int | None = None) -> list[Example]:
        batch = max(1, size // 2)
        return [Example("rank pairs", REAL.sample(rng, (batch, 2)).astype(dtype),
                        SIGNS.sample(rng, (batch,)))]

    def rows(self, shape: tuple[int, ...], options: dict[str, Any]) -> tuple[int, int] | None:
        return (1, 2) if len(shape) == 2 else None


def examples_for(layout: Layout, size: int, dtype: Any, seed: int = 0,
                 width: int | None = None) -> Sequence[Example]:
    """``layout.examples`` with a fresh generator seeded by ``seed``."""
    return layout.examples(size, dtype, np.random.default_rng(seed), width=width)
