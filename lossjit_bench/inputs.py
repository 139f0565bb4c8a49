"""Example inputs of the built-in losses: the input kinds (how a loss's arrays are laid
out), the predictions' shape for an element count, and random, valid arrays.

Everything the harness knows about the inputs of each loss is in this module."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossjit_bench.names import canonical

#: Input kinds of the built-in losses, by how their inputs are laid out.
ELEMENTWISE = ("mse", "l1", "huber", "smooth_l1", "binary_cross_entropy", "bce_with_logits",
               "sigmoid_focal", "log_cosh", "pseudo_huber", "quantile", "poisson_nll",
               "gaussian_nll", "kl_div", "hinge_embedding", "soft_margin")
#: Class-axis losses: (N, C) scores and integer class indices.
CLASSES = ("cross_entropy", "focal", "nll", "multi_margin", "poly1")
#: Multi-label losses: (N, C) logits and 0/1 targets of the same shape.
MULTILABEL = ("multilabel_soft_margin",)
PAIRS = ("contrastive", "cosine_embedding")
TRIPLETS = ("triplet",)
#: Rank pairs: (B, 2) = (x1, x2) and labels in {1, -1}.
RANKS = ("margin_ranking",)
#: Every input kind, in table order: (kind name, its losses).
INPUT_KINDS = (("elementwise", ELEMENTWISE), ("classes", CLASSES), ("multilabel", MULTILABEL),
               ("pairs", PAIRS), ("triplets", TRIPLETS), ("ranks", RANKS))
#: The losses that take labels in {1, -1}.
SIGNED_LABELS = ("hinge_embedding", "soft_margin", "cosine_embedding", "margin_ranking")

#: Width of the embeddings in the pair and triplet cases.
EMBED_DIM = 64
#: Classes in a classification case given only an element count.
DEFAULT_CLASSES = 10


def input_kind(loss: str) -> str:
    """The input kind (layout) of a built-in loss: ``"elementwise"``, ``"classes"``,
    ``"multilabel"``, ``"pairs"``, ``"triplets"`` or ``"ranks"`` (see :data:`INPUT_KINDS`).
    A loss without benchmark inputs (a user's own) raises ValueError."""
    name = canonical(loss)
    for kind, members in INPUT_KINDS:
        if name in members:
            return kind
    raise ValueError(f"no benchmark inputs for the loss {loss!r}")


@dataclass
class Inputs:
    """The arrays of one case: ``predictions``, ``targets`` (or None) and the loss options."""

    loss: str
    predictions: np.ndarray
    targets: np.ndarray | None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.predictions.shape)

    @property
    def size(self) -> int:
        return int(self.predictions.size)

    def nbytes(self, *, grad: bool = True) -> int:
        """Bytes a fused kernel must move: predictions, targets and array options (such as
        gaussian_nll's var) read, gradient written."""
        total = self.predictions.nbytes + (0 if self.targets is None else self.targets.nbytes)
        total += sum(v.nbytes for v in self.params.values() if isinstance(v, np.ndarray))
        return total + (self.predictions.nbytes if grad else 0)


def shape_for(loss: str, size: int | Sequence[int]) -> tuple[int, ...]:
    """The predictions' shape of a case with about ``size`` elements (or an explicit shape).

    element-wise: ``(n,)``; classes and multi-label: ``(n // 10, 10)``; pairs:
    ``(n // (2 D), 2, D)``; triplets: ``(n // (3 D), 3, D)``, with ``D = 64``; rank pairs:
    ``(n // 2, 2)`` (at least one row).
    """
    if not isinstance(size, (int, np.integer, float)):
        return tuple(int(s) for s in size)
    n = int(size)
    kind = input_kind(loss)
    if kind == "elementwise":
        return (n,)
    if kind in ("classes", "multilabel"):
        return (max(1, n // DEFAULT_CLASSES), DEFAULT_CLASSES)
    if kind == "ranks":
        return (max(1, n // 2), 2)
    members = 2 if kind == "pairs" else 3
    return (max(1, n // (members * EMBED_DIM)), members, EMBED_DIM)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    z = x - top
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _signs(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.where(rng.random(shape) < 0.5, 1.0, -1.0).astype(dtype)


def _elementwise_inputs(name: str, shape: tuple[int, ...], dtype: np.dtype,
                        rng: np.random.Generator,
                        params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, dict]:
    """(predictions, targets, options) of an element-wise case, in float64 before the cast."""
    extra: dict[str, Any] = {}
    if name == "binary_cross_entropy":
        return rng.uniform(0.02, 0.98, shape), (rng.random(shape) < 0.5) * 1.0, extra
    if name in ("bce_with_logits", "sigmoid_focal"):
        return rng.normal(0.0, 2.0, shape), (rng.random(shape) < 0.5) * 1.0, extra
    if name == "poisson_nll":  # rates in [0.1, 3], counts drawn from them
        rate = rng.uniform(0.1, 3.0, shape)
        counts = rng.poisson(rate).astype(np.float64)
        return (np.log(rate) if params.get("log_input", True) else rate), counts, extra
    if name == "gaussian_nll":
        if "var" not in params:
            extra["var"] = rng.uniform(0.25, 2.0, shape).astype(dtype)
        return rng.normal(size=shape), rng.normal(size=shape), extra
    if name == "kl_div":  # log-probabilities; probabilities with one in ten exactly 0
        x = np.log(rng.uniform(0.01, 1.0, shape))
        if params.get("log_target", False):
            return x, np.log(rng.uniform(0.01, 1.0, shape)), extra
        return x, rng.uniform(0.0, 1.0, shape) * (rng.random(shape) >= 0.1), extra
    if name == "hinge_embedding":  # distances on both sides of the margin
        return rng.uniform(0.0, 2.0, shape), _signs(rng, shape, np.dtype(np.float64)), extra
    if name == "soft_margin":
        return rng.normal(0.0, 2.0, shape), _signs(rng, shape, np.dtype(np.float64)), extra
    return rng.normal(size=shape), rng.normal(size=shape), extra


def make_inputs(loss: str, size: int | Sequence[int], dtype: Any = np.float64, *,
                seed: int = 0, params: dict[str, Any] | None = None) -> Inputs:
    """Random, valid inputs for ``loss``: ``size`` is an element count or the predictions'
    shape; ``params`` are options of the loss, kept in the result's ``params`` (the inputs
    follow them where the options change what is valid, e.g. poisson_nll's log_input).

    Regression (mse ... pseudo_huber, quantile): predictions and targets N(0, 1).
    binary_cross_entropy: probabilities in [0.02, 0.98] and 0/1 targets. bce_with_logits and
    sigmoid_focal: logits N(0, 2^2) and 0/1 targets. poisson_nll: log-rates (rates, with
    log_input=False) of rates U(0.1, 3) and Poisson counts. gaussian_nll: N(0, 1) and
    ``var`` U(0.25, 2) of the predictions' shape (the option it requires). kl_div: log U(0.01,
    1) log-probabilities and U(0, 1) targets, one in ten exactly 0 (log-probabilities with
    log_target=True). hinge_embedding: U(0, 2) distances, soft_margin: N(0, 2^2); both with
    labels in {1, -1}. cross_entropy, focal, poly1: logits N(0, 2^2); nll: their
    log-softmax; multi_margin: scores N(0, 1); all with int64 class indices.
    multilabel_soft_margin: logits N(0, 2^2) and 0/1 targets. Pairs and triplets: N(0, 1/(2D))
    per coordinate, so distances are about 1 (both sides of the margin occur); contrastive
    labels 0/1 in float64, cosine_embedding labels {1, -1} in ``dtype``. margin_ranking:
    N(0, 1) pairs and labels {1, -1} in ``dtype``.
    """
    name = canonical(loss)
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    shape = shape_for(name, size)
    kind = input_kind(name)
    options = dict(params or {})
    if kind == "elementwise":
        p, t, extra = _elementwise_inputs(name, shape, dtype, rng, options)
        return Inputs(name, p.astype(dtype), t.astype(dtype), {**extra, **options})
    if kind == "classes":
        x = rng.normal(0.0, 1.0 if name == "multi_margin" else 2.0, shape)
        if name == "nll":
            x = _log_softmax(x, 1)
        y = rng.integers(0, shape[1], (shape[0],) + tuple(shape[2:]), dtype=np.int64)
        return Inputs(name, x.astype(dtype), y, options)
    if kind == "multilabel":
        x = rng.normal(0.0, 2.0, shape).astype(dtype)
        return Inputs(name, x, (rng.random(shape) < 0.5).astype(dtype), options)
    if kind == "ranks":
        return Inputs(name, rng.normal(size=shape).astype(dtype),
                      _signs(rng, shape[:1], dtype), options)
    x = rng.normal(0.0, 1.0 / math.sqrt(2 * shape[2]), shape).astype(dtype)
    if name == "cosine_embedding":
        return Inputs(name, x, _signs(rng, shape[:1], dtype), options)
    if kind == "pairs":
        labels = (rng.random(shape[0]) < 0.5).astype(np.float64)
        return Inputs(name, x, labels, options)
    return Inputs(name, x, None, options)
