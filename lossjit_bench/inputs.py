"""Example inputs of the losses: the input kinds (how a loss's arrays are laid out), the
predictions' shape for an element count, and random, valid arrays.

A loss's input kind comes from its spec's layout (:func:`kind_of`), and the lists of
:data:`INPUT_KINDS` from the registry: a loss added to the catalogue is in them, in its kind,
with nothing to edit here. Its inputs come from its layout (:func:`make_inputs`) unless
:data:`SPECIAL_INPUTS` gives it inputs of its own, chosen for honest timing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossjit import layouts, registry
from lossjit_bench.names import canonical, in_table_order

#: Width of the embeddings in the pair and triplet cases.
EMBED_DIM = 64
#: Classes in a classification case given only an element count.
DEFAULT_CLASSES = 10
#: The input kinds, in table order.
KINDS = ("elementwise", "classes", "multilabel", "pairs", "triplets", "ranks")


def kind_of(layout: layouts.Layout) -> str | None:
    """The input kind of a layout object, None for a layout the harness does not know.

    >>> kind_of(layouts.Stacked(3, "triplets", ())), kind_of(layouts.Variance())
    ('triplets', 'elementwise')
    """
    if isinstance(layout, (layouts.Elementwise, layouts.PositiveWeights, layouts.Variance)):
        return "elementwise"
    if isinstance(layout, layouts.ClassAxis):
        return "classes"
    if isinstance(layout, layouts.LastAxisClasses):
        return "multilabel"
    if isinstance(layout, layouts.Stacked):
        return {2: "pairs", 3: "triplets"}.get(layout.members)
    if isinstance(layout, layouts.RankPairs):
        return "ranks"
    return None


def _signed(layout: layouts.Layout) -> bool:
    """Whether a layout's targets are labels in {1, -1}."""
    if isinstance(layout, layouts.Elementwise):
        return layout.targets == layouts.SIGNS
    if isinstance(layout, layouts.Stacked):
        return layout.signs or layout.labels == layouts.SIGNS
    return isinstance(layout, layouts.RankPairs)


def _kinds() -> tuple[tuple[str, tuple[str, ...]], ...]:
    members: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for name in in_table_order(registry.names()):
        kind = kind_of(registry.resolve(name).layout)
        if kind is not None:
            members[kind].append(name)
    return tuple((kind, tuple(members[kind])) for kind in KINDS)


#: Every input kind, in table order: (kind name, its losses), from the registry.
INPUT_KINDS = _kinds()
#: Element-wise losses: predictions and targets of one shape (gaussian_nll: and its var).
#: Class-axis losses: (N, C) scores and integer class indices. Multi-label losses: (N, C)
#: logits and 0/1 targets of the same shape. Pairs (B, 2, D) and triplets (B, 3, D) of
#: embeddings. Rank pairs: (B, 2) = (x1, x2) and labels in {1, -1}.
ELEMENTWISE, CLASSES, MULTILABEL, PAIRS, TRIPLETS, RANKS = (names for _, names in INPUT_KINDS)
#: The losses that take labels in {1, -1}.
SIGNED_LABELS = tuple(name for _, names in INPUT_KINDS for name in names
                      if _signed(registry.resolve(name).layout))


def input_kind(loss: str) -> str:
    """The input kind (layout) of a loss: ``"elementwise"``, ``"classes"``,
    ``"multilabel"``, ``"pairs"``, ``"triplets"`` or ``"ranks"`` (see :data:`INPUT_KINDS`),
    from its spec's layout. A loss whose layout is none of these raises ValueError."""
    spec = registry.resolve(loss)
    kind = kind_of(spec.layout)
    if kind is None:
        raise ValueError(f"no benchmark inputs for the loss {loss!r}: its layout "
                         f"{type(spec.layout).__name__} has no input kind")
    return kind


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


# --- inputs of their own, for honest timing ---------------------------------------------------

#: (predictions, targets, options the inputs add): a special input maker's result.
Made = tuple[np.ndarray, np.ndarray | None, dict[str, Any]]
#: A special input maker: ``maker(shape, dtype, rng, options) -> Made``.
Maker = Callable[[tuple[int, ...], np.dtype, np.random.Generator, dict[str, Any]], Made]


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    z = x - top
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _signs(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.where(rng.random(shape) < 0.5, 1.0, -1.0).astype(dtype)


def _coins(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return (rng.random(shape) < 0.5).astype(dtype)


def _probabilities_and_coins(shape, dtype, rng, options) -> Made:
    return rng.uniform(0.02, 0.98, shape).astype(dtype), _coins(rng, shape, dtype), {}


def _logits_and_coins(shape, dtype, rng, options) -> Made:
    return rng.normal(0.0, 2.0, shape).astype(dtype), _coins(rng, shape, dtype), {}


def _rates_and_counts(shape, dtype, rng, options) -> Made:
    rate = rng.uniform(0.1, 3.0, shape)
    counts = rng.poisson(rate).astype(dtype)
    return (np.log(rate) if options.get("log_input", True) else rate).astype(dtype), counts, {}


def _means_and_variances(shape, dtype, rng, options) -> Made:
    extra = {} if "var" in options else {"var": rng.uniform(0.25, 2.0, shape).astype(dtype)}
    return rng.normal(size=shape).astype(dtype), rng.normal(size=shape).astype(dtype), extra


def _log_probabilities(shape, dtype, rng, options) -> Made:
    x = np.log(rng.uniform(0.01, 1.0, shape)).astype(dtype)
    if options.get("log_target", False):
        return x, np.log(rng.uniform(0.01, 1.0, shape)).astype(dtype), {}
    return x, (rng.uniform(0.0, 1.0, shape) * (rng.random(shape) >= 0.1)).astype(dtype), {}


def _distances_and_signs(shape, dtype, rng, options) -> Made:
    return rng.uniform(0.0, 2.0, shape).astype(dtype), _signs(rng, shape, dtype), {}


def _logits_and_signs(shape, dtype, rng, options) -> Made:
    return rng.normal(0.0, 2.0, shape).astype(dtype), _signs(rng, shape, dtype), {}


def _class_indices(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, shape[1], (shape[0],) + tuple(shape[2:]), dtype=np.int64)


def _logits_and_classes(shape, dtype, rng, options) -> Made:
    x = rng.normal(0.0, 2.0, shape)
    return x.astype(dtype), _class_indices(rng, shape), {}


def _log_probabilities_and_classes(shape, dtype, rng, options) -> Made:
    x = _log_softmax(rng.normal(0.0, 2.0, shape), 1)
    return x.astype(dtype), _class_indices(rng, shape), {}


def _scores_and_classes(shape, dtype, rng, options) -> Made:
    x = rng.normal(0.0, 1.0, shape)
    return x.astype(dtype), _class_indices(rng, shape), {}


def _embeddings(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype
                ) -> np.ndarray:
    """N(0, 1/(2D)) per coordinate: distances are about 1, on both sides of the margin."""
    return rng.normal(0.0, 1.0 / math.sqrt(2 * shape[2]), shape).astype(dtype)


def _pairs_and_coins(shape, dtype, rng, options) -> Made:
    x = _embeddings(rng, shape, dtype)
    return x, _coins(rng, shape[0], np.float64), {}


def _pairs_and_signs(shape, dtype, rng, options) -> Made:
    x = _embeddings(rng, shape, dtype)
    return x, _signs(rng, shape[:1], dtype), {}


def _triplets(shape, dtype, rng, options) -> Made:
    return _embeddings(rng, shape, dtype), None, {}


def _rank_pairs(shape, dtype, rng, options) -> Made:
    return rng.normal(size=shape).astype(dtype), _signs(rng, shape[:1], dtype), {}


#: Inputs of their own for some built-in losses, where the layout's examples would time
#: something else (their distributions are in :func:`make_inputs`' docstring). Every other
#: loss, a newly added one included, gets its inputs from its layout.
SPECIAL_INPUTS: dict[str, Maker] = {
    "binary_cross_entropy": _probabilities_and_coins,
    "bce_with_logits": _logits_and_coins,
    "sigmoid_focal": _logits_and_coins,
    "poisson_nll": _rates_and_counts,
    "gaussian_nll": _means_and_variances,
    "kl_div": _log_probabilities,
    "hinge_embedding": _distances_and_signs,
    "soft_margin": _logits_and_signs,
    "cross_entropy": _logits_and_classes,
    "focal": _logits_and_classes,
    "poly1": _logits_and_classes,
    "nll": _log_probabilities_and_classes,
    "multi_margin": _scores_and_classes,
    "multilabel_soft_margin": _logits_and_coins,
    "contrastive": _pairs_and_coins,
    "cosine_embedding": _pairs_and_signs,
    "triplet": _triplets,
    "margin_ranking": _rank_pairs,
}


# --- inputs from the layout -------------------------------------------------------------------


def _in_dtype(value: Any, dtype: np.dtype) -> Any:
    """Float arrays (labels included) in ``dtype``; integer class indices stay as they are."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return value.astype(dtype, copy=False)
    return value


def _reshaped(value: Any, size: int, shape: tuple[int, ...]) -> Any:
    """An array of one number per element laid out in ``shape``; anything else as it is."""
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.size == size:
        return value.reshape(shape)
    return value


def _from_layout(name: str, kind: str, shape: tuple[int, ...], dtype: np.dtype,
                 rng: np.random.Generator) -> Made:
    """Inputs from the layout of a loss without special inputs.

    Element-wise: predictions and targets drawn from the layout's domains in ``shape`` (or,
    for a layout without domains, such as Variance, its example's arrays laid out in
    ``shape``), with its example's options. Other kinds: the layout's first example of
    ``shape``; ValueError when it has none."""
    layout = registry.resolve(name).layout
    size = math.prod(shape)
    if kind == "elementwise":
        domains = (getattr(layout, "predictions", None), getattr(layout, "targets", None))
        if all(isinstance(d, layouts.Domain) for d in domains):
            p = domains[0].sample(rng, shape).astype(dtype)
            t = domains[1].sample(rng, shape).astype(dtype)
            found = layout.examples(size, dtype, rng)
            options = found[0].options if found else {}
        else:
            example = layout.examples(size, dtype, rng)[0]
            p, t, options = example.predictions, example.targets, example.options
        return (_reshaped(_in_dtype(p, dtype), size, shape),
                _reshaped(_in_dtype(t, dtype), size, shape),
                {key: _reshaped(value, size, shape) for key, value in options.items()})
    width = None if kind == "ranks" else shape[1 if kind == "classes" else -1]
    for example in layout.examples(size, dtype, rng, width=width):
        if example.predictions.shape == shape:
            return (_in_dtype(example.predictions, dtype), _in_dtype(example.targets, dtype),
                    dict(example.options))
    raise ValueError(f"no benchmark inputs of shape {shape} for the loss {name!r}: its "
                     "layout's examples have other shapes")


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

    Those are :data:`SPECIAL_INPUTS` (the regression losses' N(0, 1) is their layout's). Any
    other loss gets its inputs from its layout: element-wise, predictions and targets drawn
    from the layout's domains with the options of its example; the other kinds, the layout's
    example of the predictions' shape. Float targets and labels are in ``dtype`` there.
    """
    name = canonical(loss)
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    shape = shape_for(name, size)
    kind = input_kind(name)
    options = dict(params or {})
    special = SPECIAL_INPUTS.get(name)
    if special is not None:
        p, t, extra = special(shape, dtype, rng, options)
    else:
        p, t, extra = _from_layout(name, kind, shape, dtype, rng)
    return Inputs(name, p, t, {**extra, **options})
