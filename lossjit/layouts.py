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
    ``terms_shape``; ``count`` is what ``reduction="mean"`` divides by.
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

    def __post_init__(self) -> None:
        if self.terms_layout is None:
            self.terms_layout = self.terms_shape


def floats(array: Any, what: str) -> np.ndarray:
    """``array`` as a C-contiguous float32/float64 array; other numbers become float64."""
    a = np.asarray(array)
    if a.dtype in FLOATS:
        return np.ascontiguousarray(a)
    if a.dtype.kind in "biu" or a.dtype == np.float16:
        warnings.warn(f"{what}: converted {a.dtype} to float64", ConversionWarning, stacklevel=4)
        return np.ascontiguousarray(a, dtype=np.float64)
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
    return np.ascontiguousarray(t, dtype=x.dtype)


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
sigmoid_focal = elementwise_for("sigmoid_focal", "alpha", "gamma")


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


def cross_entropy(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Softmax cross-entropy on logits (or on probabilities with ``from_logits=False``)."""
    ignore = options["ignore_index"]
    c = _classes(predictions, targets, ignore)
    weight = _class_vector(options["weight"], c.classes, "weight")
    smoothing = options["label_smoothing"]
    count = float(c.x.shape[0])
    if c.index is not None:
        kept = c.index[c.index != ignore] if c.ignored else c.index
        count = float(weight[kept].sum()) if weight.size else float(kept.size)
    if options["from_logits"]:
        if c.index is not None:
            return c.call("cross_entropy_index", (weight, ignore, smoothing), count)
        return c.call("cross_entropy_soft", (weight, smoothing, 0.0), count)
    kept_weight = _one_hot(c, ignore) if c.index is not None else NO_WEIGHTS
    return c.call("cross_entropy_probs", (weight, smoothing, options["eps"]), count,
                  kept_weight)


def focal(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Softmax focal loss on logits, or the seed's form on probabilities."""
    ignore = options["ignore_index"]
    c = _classes(predictions, targets, ignore)
    alpha = _class_vector(options["alpha"], c.classes, "alpha")
    gamma = options["gamma"]
    count = float(c.x.shape[0])
    if c.index is not None and c.ignored:
        count = float(np.count_nonzero(c.index != ignore))
    if options["from_logits"]:
        if c.index is not None:
            return c.call("focal_index", (alpha, gamma, ignore), count)
        return c.call("focal_soft", (alpha, 0.0, gamma), count)
    kept_weight = _one_hot(c, ignore) if c.index is not None else NO_WEIGHTS
    return c.call("focal_probs", (alpha, gamma, options["eps"]), count, kept_weight)


# --- stacked embeddings -------------------------------------------------------------------


def _stacked(predictions: Any, members: int, what: str) -> np.ndarray:
    """Predictions of shape (B, members, D); (members, D) is taken as one group."""
    x = floats(predictions, "predictions")
    if x.ndim == 2 and x.shape[0] == members:
        x = x.reshape(1, members, x.shape[1])
    if x.ndim != 3 or x.shape[1] != members:
        raise LossjitError(f"predictions: shape {_shape(x.shape)} is not a stack of {what}; "
                           f"expected (B, {members}, D)")
    return x


def contrastive(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Pairs (B, 2, D) and labels (B,) or (B, 1): 1 = similar, 0 = dissimilar."""
    x = _stacked(predictions, 2, "pairs")
    batch = x.shape[0]
    if targets is None:
        raise LossjitError(f"targets: missing; expected {batch} pair labels (1 = similar, "
                           "0 = dissimilar)")
    t = np.asarray(targets)
    if t.dtype.kind not in "biuf":
        raise LossjitError(f"targets: dtype {t.dtype} is not supported; expected labels 0/1")
    if t.shape not in ((batch,), (batch, 1)) and not (batch == 1 and t.size == 1):
        raise LossjitError(f"targets: shape {_shape(t.shape)} does not match {batch} pairs; "
                           f"expected ({batch},) or ({batch}, 1)")
    y = np.ascontiguousarray(t, dtype=np.float64).reshape(batch)
    return Call("contrastive", x, y, (options["margin"],), (batch,), float(batch))


def triplet(predictions: Any, targets: Any, options: dict[str, Any]) -> Call:
    """Triplets (B, 3, D) of anchor, positive and negative; targets are ignored."""
    x = _stacked(predictions, 3, "triplets")
    batch = x.shape[0]
    return Call("triplet", x, np.empty(0, dtype=x.dtype),
                (options["margin"], options["p"], options["eps"], options["swap"]),
                (batch,), float(batch))
