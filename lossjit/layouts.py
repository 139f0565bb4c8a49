"""Input layouts: check the user's arrays and turn them into one kernel call.

Each ``prepare`` function takes ``(predictions, targets, options)`` and returns a
:class:`Call`: which kernel, its ``x``/``y``/``w`` arrays and parameters, the shape of the
per-term losses, and the denominator of the mean. Every check raises a
:class:`~lossjit.errors.LossjitError` that names the argument, what it got and what was
expected. Only NumPy is used here; nothing is compiled.

>>> import numpy as np
>>> call = elementwise_for("mse")(np.zeros((2, 3)), np.ones((2, 3)), {})
>>> call.kernel, call.x.shape, call.count
('mse', (6,), 6.0)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossjit.errors import LossjitError

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
NO_WEIGHTS = np.empty(0)


class ConversionWarning(UserWarning):
    """An input was not float32/float64 and was converted to float64."""


@dataclass
class Call:
    """One kernel call: ``kernel(x, y, w, grad, losses, scale, *params)``.

    ``grad`` is laid out as ``x``, and reshaped to the predictions' shape (or copied into it
    by ``unpack``); ``losses`` is laid out as ``terms_layout``, returned to the user with
    ``terms_shape``; ``count`` is what ``reduction="mean"`` divides by, and ``counts`` (when
    the terms do not count one each) gives each term's share of it, laid out as the terms:
    what ``sample_weight`` weighs. ``wrt`` maps an option that can be differentiated to the
    function that takes its gradient out of the kernel's gradient.
    """

    kernel: str | tuple[Any, Any]
    x: np.ndarray
    y: np.ndarray
    params: tuple[Any, ...]
    terms_shape: tuple[int, ...]
    count: float
    w: np.ndarray = field(default_factory=lambda: NO_WEIGHTS)
    terms_layout: tuple[int, ...] | None = None
    unpack: Callable[[np.ndarray, np.ndarray], None] | None = None
    counts: Callable[[], np.ndarray] | None = None
    wrt: dict[str, Callable[[np.ndarray], np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.terms_layout is None:
            self.terms_layout = self.terms_shape


def floats(array: Any, what: str) -> np.ndarray:
    """``array`` as a C-contiguous float32/float64 array; other numbers become float64."""
    a = np.asarray(array)
    if a.dtype in FLOATS:
        return np.asarray(a, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
    if a.dtype.kind in "biu" or a.dtype == np.float16:
        warnings.warn(f"{what}: converted {a.dtype} to float64", ConversionWarning, stacklevel=4)
        return np.asarray(a, dtype=np.float64, order="C")
    raise LossjitError(f"{what}: dtype {a.dtype} is not supported; expected float or integer "
                       "numbers")


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _values_like(targets: Any, x: np.ndarray, what: str = "targets") -> np.ndarray:
    """Targets holding one number per prediction, in the predictions' dtype."""
    if targets is None:
        raise LossjitError(f"{what}: missing; expected an array of shape {_shape(x.shape)}")
    t = np.asarray(targets)
    if t.dtype.kind not in "biuf":
        raise LossjitError(f"{what}: dtype {t.dtype} is not supported; expected numbers")
    if t.shape != x.shape:
        raise LossjitError(f"{what}: shape {_shape(t.shape)} does not match predictions "
                           f"{_shape(x.shape)}")
    return np.asarray(t, dtype=x.dtype, order="C")


def _broadcast_weight(weight: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A weight array broadcast to ``shape``, as float64 (PyTorch's broadcasting rules)."""
    if weight is None:
        return NO_WEIGHTS
    wt = np.asarray(weight)
    if wt.dtype.kind not in "biuf":
        raise LossjitError(f"{what}: dtype {wt.dtype} is not supported; expected numbers")
    try:  # a copy: a broadcast view is read-only, which Numba would compile apart
        return np.array(np.broadcast_to(wt.astype(np.float64), shape), order="C")
    except ValueError:
        raise LossjitError(f"{what}: shape {_shape(wt.shape)} does not broadcast to the "
                           f"predictions' shape {_shape(shape)}") from None


def _class_vector(values: Any, classes: int, what: str) -> np.ndarray:
    """A per-class float64 vector of length ``classes`` (a scalar is repeated)."""
    if values is None:
        return NO_WEIGHTS
    v = np.asarray(values, dtype=np.float64) if np.asarray(values).dtype.kind in "biuf" else None
    if v is None:
        raise LossjitError(f"{what}: expected numbers, got dtype {np.asarray(values).dtype}")
    if v.ndim == 0:
        return np.full(classes, float(v))
    if v.shape != (classes,):
        raise LossjitError(f"{what}: shape {_shape(v.shape)} does not match the {classes} "
                           f"classes; expected shape ({classes},)")
    return np.ascontiguousarray(v)


# --- element-wise -------------------------------------------------------------------------


def elementwise_for(kernel: str | tuple[Any, Any], *param_names: str) -> Callable[..., Call]:
    """The ``prepare`` of an element-wise loss whose options are ``param_names``, in order."""

    def prepare(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
        x = floats(predictions, "predictions")
        y = _values_like(targets, x)
        params = tuple(options[name] for name in param_names)
        return Call(kernel, x.reshape(-1), y.reshape(-1), params, x.shape, float(x.size),
                    terms_layout=(x.size,))

    return prepare


mse = elementwise_for("mse")
l1 = elementwise_for("l1")
huber = elementwise_for("huber", "delta")
smooth_l1 = elementwise_for("smooth_l1", "beta")
log_cosh = elementwise_for("log_cosh")
pseudo_huber = elementwise_for("pseudo_huber", "delta")
quantile = elementwise_for("quantile", "quantile")
poisson_nll = elementwise_for("poisson_nll", "log_input", "full", "eps")
sigmoid_focal = elementwise_for("sigmoid_focal", "alpha", "gamma")
kl_div = elementwise_for("kl_div", "log_target")
soft_margin = elementwise_for("soft_margin")


def _check_signs(labels: np.ndarray, what: str = "targets") -> None:
    """Labels must be 1 or -1."""
    bad = (labels != 1) & (labels != -1)
    if bad.any():
        raise LossjitError(f"{what}: labels must be 1 or -1, got {labels.flat[np.argmax(bad)]!r}")


def hinge_embedding(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Element-wise, with targets 1 or -1."""
    call = elementwise_for("hinge_embedding", "margin")(predictions, targets, options)
    _check_signs(call.y)
    return call


def gaussian_nll(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Means and targets of one shape, and ``var`` in one of the shapes PyTorch accepts; the
    kernel gets rows (mean, var), with var broadcast, and differentiates both."""
    x = floats(predictions, "predictions")
    y = _values_like(targets, x)
    v = np.asarray(options["var"])
    if v.dtype.kind not in "biuf":
        raise LossjitError(f"var: dtype {v.dtype} is not supported; expected numbers")
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
        raise LossjitError(f"var: variances must be >= 0, got {v.flat[np.argmax(negative)]!r}")
    rows = np.empty((x.size, 2), dtype=x.dtype)
    rows[:, 0] = x.reshape(-1)
    rows[:, 1] = np.broadcast_to(v, x.shape).reshape(-1)
    shape = x.shape
    summed = tuple(axis for axis in range(x.ndim) if v.ndim == 0 or v.shape[axis] != shape[axis])

    def unpack(view: np.ndarray, grad: np.ndarray) -> None:
        grad.reshape(-1)[...] = view[:, 0]

    def var_grad(view: np.ndarray) -> np.ndarray:
        full = np.ascontiguousarray(view[:, 1]).reshape(shape)
        return np.asarray(full.sum(axis=summed, keepdims=v.ndim > 0)).reshape(given)

    return Call("gaussian_nll", rows, y.reshape(-1), (options["full"], options["eps"]), shape,
                float(x.size), terms_layout=(x.size,), unpack=unpack, wrt={"var": var_grad})


def binary_cross_entropy(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Probabilities in [0, 1], targets of the same shape, ``weight`` broadcast."""
    call = elementwise_for("binary_cross_entropy")(predictions, targets, options)
    x = call.x
    outside = (x < 0) | (x > 1)
    if outside.any():
        bad = float(x[np.argmax(outside)])
        raise LossjitError(f"predictions: binary_cross_entropy expects probabilities in "
                           f"[0, 1], got {bad!r}; use bce_with_logits for logits")
    call.w = _broadcast_weight(options["weight"], call.terms_shape, "weight").reshape(-1)
    return call


def bce_with_logits(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Logits element-wise; with one ``pos_weight`` per column of the last axis, as rows."""
    x = floats(predictions, "predictions")
    y = _values_like(targets, x)
    w = _broadcast_weight(options["weight"], x.shape, "weight")
    last = x.shape[-1] if x.ndim else 1
    pos_weight = options["pos_weight"]
    pw = np.ones(1) if pos_weight is None else np.asarray(pos_weight, dtype=np.float64)
    if pw.ndim > 1 or pw.size not in (1, last):
        raise LossjitError(f"pos_weight: shape {_shape(pw.shape)} does not broadcast along "
                           f"the last axis of the predictions; expected ({last},)")
    if pw.size == 1:
        return Call("bce_with_logits", x.reshape(-1), y.reshape(-1), (float(pw.reshape(-1)[0]),),
                    x.shape, float(x.size), w=w.reshape(-1), terms_layout=(x.size,))
    rows = x.size // last if last else 0
    return Call("bce_with_logits_columns", x.reshape(rows, last), y.reshape(rows, last),
                (np.ascontiguousarray(pw),), x.shape, float(x.size),
                w=w.reshape(rows, last) if w.size else w, terms_layout=(rows, last))


# --- class axis ---------------------------------------------------------------------------


@dataclass
class _Classes:
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

    def call(self, kernel: str, params: tuple[Any, ...], count: float,
             w: np.ndarray = NO_WEIGHTS) -> Call:
        targets = self.index if self.index is not None else self.soft
        assert targets is not None
        return Call(kernel, self.x, targets, params, self.terms_shape, count, w=w,
                    terms_layout=(self.x.shape[0],), unpack=self.unpack)


def _class_rows(a: np.ndarray, n: int, classes: int, positions: int) -> np.ndarray:
    """(n, C, positions) as contiguous (n * positions, C) rows."""
    if positions == 1:
        return a.reshape(n, classes)
    return np.ascontiguousarray(
        np.moveaxis(a.reshape(n, classes, positions), 1, 2)).reshape(n * positions, classes)


def _classes(predictions: Any, targets: Any, ignore_index: int | None) -> _Classes:
    x = floats(predictions, "predictions")
    if x.ndim == 0:
        raise LossjitError("predictions: a scalar has no class axis; expected shape (C,), "
                           "(N, C) or (N, C, d1, ...)")
    if x.ndim == 1:
        n, classes, positions, terms = 1, x.shape[0], 1, ()
    else:
        n, classes = x.shape[0], x.shape[1]
        positions = int(np.prod(x.shape[2:], dtype=np.int64))
        terms = (x.shape[0], *x.shape[2:])
    if classes == 0:
        raise LossjitError(f"predictions: shape {_shape(x.shape)} has no classes on axis "
                           f"{0 if x.ndim == 1 else 1}")
    unpack = None
    if positions != 1:
        def unpack(rows: np.ndarray, grad: np.ndarray) -> None:
            grad.reshape(n, classes, positions)[...] = (
                rows.reshape(n, positions, classes).transpose(0, 2, 1))
    rows = _class_rows(x, n, classes, positions)
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
        index = np.ascontiguousarray(t, dtype=np.int64).reshape(-1)
        lowest, highest = (int(index.min()), int(index.max())) if index.size else (0, 0)
        if lowest < 0 or highest >= classes:  # out of range, or ignore_index outside 0..C-1
            valid = (index >= 0) & (index < classes)
            if ignore_index is not None:
                valid |= index == ignore_index
            if not valid.all():
                bad = int(index[np.argmin(valid)])
                raise LossjitError(f"targets: class index {bad} is out of range; expected 0 "
                                   f"to {classes - 1}" + (f" or ignore_index {ignore_index}"
                                                          if ignore_index is not None else ""))
        return _Classes(rows, terms, index, None, unpack,
                        ignored=ignore_index is not None and lowest <= ignore_index <= highest)
    if t.dtype.kind == "f":
        if t.shape != x.shape:
            raise LossjitError(
                f"targets: probabilities of shape {_shape(t.shape)} do not match predictions "
                f"{_shape(x.shape)}; pass integer class indices of shape {_shape(terms)} or "
                f"probabilities of shape {_shape(x.shape)}")
        soft = _class_rows(np.ascontiguousarray(t, dtype=x.dtype), n, classes, positions)
        return _Classes(rows, terms, None, soft, unpack)
    raise LossjitError(f"targets: dtype {t.dtype} is not supported; expected integer class "
                       "indices or float probabilities")


def _one_hot(c: _Classes, ignore_index: int) -> np.ndarray:
    """Turn index targets into one-hot rows; return a 0/1 weight that drops ignored terms."""
    assert c.index is not None
    kept = c.index != ignore_index
    hot = np.zeros(c.x.shape, dtype=c.x.dtype)
    hot[np.nonzero(kept)[0], c.index[kept]] = 1
    c.index, c.soft = None, hot
    return kept.astype(np.float64)


def _index_counts(c: _Classes, ignore: int, weight: np.ndarray = NO_WEIGHTS
                  ) -> tuple[float, Callable[[], np.ndarray]]:
    """The mean's denominator for class-index targets: the summed class weight of the kept
    targets (their number without weights), and each term's share of it."""
    assert c.index is not None
    index = c.index
    kept = index[index != ignore] if c.ignored else index
    count = float(weight[kept].sum()) if weight.size else float(kept.size)

    def counts() -> np.ndarray:
        share = (weight[np.where(index == ignore, 0, index)] if weight.size
                 else np.ones(index.size))
        return np.where(index == ignore, 0.0, share)

    return count, counts


def _integer_targets(targets: Any, loss: str) -> None:
    t = np.asarray(targets) if targets is not None else None
    if t is not None and t.dtype.kind not in "iu":
        raise LossjitError(f"targets: {loss} takes integer class indices, got dtype {t.dtype}")


def cross_entropy(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Softmax cross-entropy on logits (or on probabilities with ``from_logits=False``)."""
    ignore = options["ignore_index"]
    c = _classes(predictions, targets, ignore)
    weight = _class_vector(options["weight"], c.classes, "weight")
    smoothing = options["label_smoothing"]
    count = float(c.x.shape[0])
    counts = None
    if c.index is not None:
        count, counts = _index_counts(c, ignore, weight)
    if options["from_logits"]:
        if c.index is not None:
            call = c.call("cross_entropy_index", (weight, ignore, smoothing), count)
            call.counts = counts
            return call
        return c.call("cross_entropy_soft", (weight, smoothing, 0.0), count)
    kept_weight = _one_hot(c, ignore) if c.index is not None else NO_WEIGHTS
    call = c.call("cross_entropy_probs", (weight, smoothing, options["eps"]), count,
                  kept_weight)
    call.counts = counts
    return call


def focal(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Softmax focal loss on logits, or the seed's form on probabilities."""
    ignore = options["ignore_index"]
    c = _classes(predictions, targets, ignore)
    alpha = _class_vector(options["alpha"], c.classes, "alpha")
    gamma = options["gamma"]
    count = float(c.x.shape[0])
    counts = None
    if c.index is not None:
        count, counts = _index_counts(c, ignore)
    if options["from_logits"]:
        if c.index is not None:
            call = c.call("focal_index", (alpha, gamma, ignore), count)
        else:
            call = c.call("focal_soft", (alpha, 0.0, gamma), count)
    else:
        kept_weight = _one_hot(c, ignore) if c.index is not None else NO_WEIGHTS
        call = c.call("focal_probs", (alpha, gamma, options["eps"]), count, kept_weight)
    call.counts = counts
    return call


def poly1(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Poly-1 cross-entropy on logits, with class-index or probability targets."""
    ignore = options["ignore_index"]
    c = _classes(predictions, targets, ignore)
    epsilon = options["epsilon"]
    if c.index is None:
        return c.call("poly1_soft", (NO_WEIGHTS, 0.0, epsilon), float(c.x.shape[0]))
    count, counts = _index_counts(c, ignore)
    call = c.call("poly1_index", (NO_WEIGHTS, epsilon, ignore), count)
    call.counts = counts
    return call


def nll(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Log-probabilities laid out as cross_entropy's logits, with class-index targets."""
    _integer_targets(targets, "nll")
    ignore = options["ignore_index"]
    c = _classes(predictions, targets, ignore)
    weight = _class_vector(options["weight"], c.classes, "weight")
    count, counts = _index_counts(c, ignore, weight)
    call = c.call("nll", (weight, ignore), count)
    call.counts = counts
    return call


def multi_margin(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Scores (C,) or (N, C) with class-index targets () or (N,)."""
    _integer_targets(targets, "multi_margin")
    x = np.asarray(predictions)
    if x.ndim > 2:
        raise LossjitError(f"predictions: shape {_shape(x.shape)} has too many axes; "
                           "multi_margin takes (C,) or (N, C)")
    c = _classes(x, targets, None)
    weight = _class_vector(options["weight"], c.classes, "weight")
    return c.call("multi_margin", (options["p"], options["margin"], weight),
                  float(c.x.shape[0]))


def multilabel_soft_margin(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Logits (..., C) with 0/1 (or soft) targets of the same shape; one term per row."""
    x = floats(predictions, "predictions")
    y = _values_like(targets, x)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise LossjitError(f"predictions: shape {_shape(x.shape)} has no classes on its last "
                           "axis; expected (..., C)")
    classes = x.shape[-1]
    rows = x.size // classes
    weight = _class_vector(options["weight"], classes, "weight")
    return Call("multilabel_soft_margin", x.reshape(rows, classes), y.reshape(rows, classes),
                (weight,), x.shape[:-1], float(rows), terms_layout=(rows,))


# --- stacked embeddings -------------------------------------------------------------------


def _stacked(predictions: Any, members: int, what: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """Predictions as (B, members, D), and the terms' shape: (B,), or () for one group given
    as (members, D) (as PyTorch's losses of single vectors give one number)."""
    x = floats(predictions, "predictions")
    if x.ndim == 2 and x.shape[0] == members:
        return x.reshape(1, members, x.shape[1]), ()
    if x.ndim != 3 or x.shape[1] != members:
        raise LossjitError(f"predictions: shape {_shape(x.shape)} is not a stack of {what}; "
                           f"expected (B, {members}, D)")
    return x, (x.shape[0],)


def _pair_labels(targets: Any, batch: int, meaning: str) -> np.ndarray:
    """One label per pair, as a float64 (B,) vector; (B, 1) is accepted too."""
    if targets is None:
        raise LossjitError(f"targets: missing; expected {batch} pair labels ({meaning})")
    t = np.asarray(targets)
    if t.dtype.kind not in "biuf":
        raise LossjitError(f"targets: dtype {t.dtype} is not supported; expected labels "
                           f"({meaning})")
    if t.shape not in ((batch,), (batch, 1)) and not (batch == 1 and t.size == 1):
        raise LossjitError(f"targets: shape {_shape(t.shape)} does not match {batch} pairs; "
                           f"expected ({batch},) or ({batch}, 1)")
    return np.ascontiguousarray(t, dtype=np.float64).reshape(batch)


def contrastive(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Pairs (B, 2, D) and labels (B,) or (B, 1): 1 = similar, 0 = dissimilar."""
    x, terms = _stacked(predictions, 2, "pairs")
    batch = x.shape[0]
    y = _pair_labels(targets, batch, "1 = similar, 0 = dissimilar")
    return Call("contrastive", x, y, (options["margin"],), terms, float(batch),
                terms_layout=(batch,))


def cosine_embedding(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Pairs (B, 2, D) and labels (B,) or (B, 1): 1 = similar, -1 = dissimilar."""
    x, terms = _stacked(predictions, 2, "pairs")
    batch = x.shape[0]
    y = _pair_labels(targets, batch, "1 = similar, -1 = dissimilar")
    _check_signs(y)
    return Call("cosine_embedding", x, y, (options["margin"],), terms, float(batch),
                terms_layout=(batch,))


def margin_ranking(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Rank pairs (B, 2) = (x1, x2), (2,) being one pair, and labels 1 (x1 should rank
    higher) or -1, of shape (B,) or (B, 1)."""
    x = floats(predictions, "predictions")
    terms = () if x.shape == (2,) else x.shape[:1]
    if x.shape == (2,):
        x = x.reshape(1, 2)
    if x.ndim != 2 or x.shape[1] != 2:
        raise LossjitError(f"predictions: shape {_shape(x.shape)} is not a stack of rank "
                           "pairs; expected (B, 2)")
    batch = x.shape[0]
    y = _pair_labels(targets, batch, "1: the first should rank higher, -1: the second")
    _check_signs(y)
    return Call("margin_ranking", x, y, (options["margin"],), terms, float(batch),
                terms_layout=(batch,))


def triplet(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Triplets (B, 3, D) of anchor, positive and negative; targets are ignored."""
    x, terms = _stacked(predictions, 3, "triplets")
    batch = x.shape[0]
    return Call("triplet", x, np.empty(0, dtype=x.dtype),
                (options["margin"], options["p"], options["eps"], options["swap"]),
                terms, float(batch), terms_layout=(batch,))
