"""The registry: every loss's name, aliases, options, input layout, formula and kernels.

The API, the CLI (its options and ``lossjit list``/``info``) and the README's table of losses
are all generated from the specs here, so a loss is described once. This module imports
neither NumPy nor Numba: listing losses stays instant.

>>> from lossjit.registry import resolve
>>> spec = resolve("mae")
>>> spec.name, [p.name for p in spec.params]
('l1', [])
>>> [p.name for p in resolve("huber").params]
['delta']
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lossjit.errors import LossjitError, UnknownLossError

#: Kinds of option: how it is typed, parsed on the command line and checked.
PARAM_KINDS = ("float", "int", "bool", "array", "float_or_array")


@dataclass(frozen=True)
class Param:
    """One option of a loss.

    ``kind`` is one of ``PARAM_KINDS``; ``expect`` says in words what values are valid and
    ``check`` tests a scalar value (arrays are checked where they are laid out).
    """

    name: str
    kind: str
    default: Any
    help: str
    expect: str = ""
    check: Callable[[Any], bool] | None = None

    def validate(self, loss: str, value: Any) -> Any:
        """Return ``value`` converted to this option's kind, or raise a clear LossjitError."""
        if value is None and self.kind in ("array", "float_or_array"):
            return None
        try:
            if self.kind == "bool":
                if not isinstance(value, (bool, int)) or value not in (0, 1):
                    raise TypeError
                value = bool(value)
            elif self.kind == "int":
                if isinstance(value, bool) or int(value) != value:
                    raise TypeError
                value = int(value)
            elif self.kind == "float" or (self.kind == "float_or_array" and _is_scalar(value)):
                if isinstance(value, bool):
                    raise TypeError
                value = float(value)
        except (TypeError, ValueError):
            raise LossjitError(
                f"{loss}: option {self.name} must be {_KIND_WORDS[self.kind]}, got {value!r}"
            ) from None
        if self.check is not None and _is_scalar(value) and not self.check(value):
            raise LossjitError(f"{loss}: option {self.name} must be {self.expect}, got {value!r}")
        return value


_KIND_WORDS = {
    "float": "a number",
    "int": "an integer",
    "bool": "true or false",
    "array": "an array",
    "float_or_array": "a number or an array",
}


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) or (
        hasattr(value, "ndim") and value.ndim == 0
    )


@dataclass(frozen=True)
class LossSpec:
    """Everything lossjit knows about one loss.

    - ``layout``: what ``predictions`` and ``targets`` look like, in words;
    - ``targets``: ``"required"``, ``"optional"`` or ``"none"`` (targets are ignored);
    - ``prepare``: ``"module:function"`` (imported on first use) or a callable that turns the
      user's arrays and options into a kernel call (see :mod:`lossjit.layouts`).
    """

    name: str
    family: str
    formula: str
    layout: str
    params: tuple[Param, ...]
    prepare: str | Callable[..., Any]
    aliases: tuple[str, ...] = ()
    targets: str = "required"
    reference: str = ""
    gradient: str = ""
    notes: str = ""

    def options(self, given: dict[str, Any]) -> dict[str, Any]:
        """The full option dict: defaults, overridden by ``given`` (validated)."""
        unknown = sorted(set(given) - {p.name for p in self.params})
        if unknown:
            known = ", ".join(p.name for p in self.params) or "none"
            raise LossjitError(
                f"{self.name}: unknown option {unknown[0]!r} (its options: {known})"
            )
        return {p.name: p.validate(self.name, given.get(p.name, p.default)) for p in self.params}


def _positive(v: float) -> bool:
    return v > 0 and math.isfinite(v)


def _non_negative(v: float) -> bool:
    return v >= 0 and math.isfinite(v)


def _finite(v: float) -> bool:
    return math.isfinite(v)


def _unit(v: float) -> bool:
    return 0.0 <= v <= 1.0


_REDUCTION_NOTE = "reduction: mean (default), sum or none."

_WEIGHT = Param("weight", "array", None, "per-class weights, shape (C,)")
_IGNORE = Param("ignore_index", "int", -100, "target class index that contributes nothing")
_FROM_LOGITS = Param("from_logits", "bool", True,
                     "predictions are logits (true) or probabilities (false)")
_EPS_CLIP = Param("eps", "float", 1e-10, "probabilities are clipped to [eps, 1]",
                  "> 0", _positive)

BUILTIN: tuple[LossSpec, ...] = (
    LossSpec(
        name="mse", aliases=("mean_squared_error",), family="regression",
        formula="(x - y)^2", gradient="2 (x - y)",
        layout="predictions and targets of the same shape", params=(),
        prepare="lossjit.layouts:mse",
        reference="PyTorch mse_loss; seed MeanSquaredError",
    ),
    LossSpec(
        name="l1", aliases=("mae",), family="regression",
        formula="|x - y|", gradient="sign(x - y), 0 at x = y",
        layout="predictions and targets of the same shape", params=(),
        prepare="lossjit.layouts:l1",
        reference="PyTorch l1_loss",
    ),
    LossSpec(
        name="huber", family="regression",
        formula="0.5 e^2 if |e| < delta else delta (|e| - 0.5 delta), e = x - y",
        gradient="e, or delta sign(e)",
        layout="predictions and targets of the same shape",
        params=(Param("delta", "float", 1.0, "where the loss turns linear", "> 0", _positive),),
        prepare="lossjit.layouts:huber",
        reference="PyTorch huber_loss",
    ),
    LossSpec(
        name="smooth_l1", family="regression",
        formula="0.5 e^2 / beta if |e| < beta else |e| - 0.5 beta, e = x - y",
        gradient="e / beta, or sign(e)",
        layout="predictions and targets of the same shape",
        params=(Param("beta", "float", 1.0, "where the loss turns linear (0: plain l1)",
                      ">= 0", _non_negative),),
        prepare="lossjit.layouts:smooth_l1",
        reference="PyTorch smooth_l1_loss",
    ),
    LossSpec(
        name="cross_entropy", aliases=("ce",), family="classification",
        formula="-sum_c w_c q_c log softmax(x)_c, q = (1 - ls) onehot(y) + ls/C",
        gradient="w.r.t. the logits; from_logits=false: -w_c q_c / p_c inside the clip",
        layout="logits (C,), (N, C) or (N, C, d1..dk); targets class indices (integers, "
               "shape without C) or probabilities (floats, shape of the logits)",
        params=(
            _WEIGHT, _IGNORE,
            Param("label_smoothing", "float", 0.0, "mass spread uniformly over the classes",
                  "in [0, 1]", _unit),
            _FROM_LOGITS, _EPS_CLIP,
        ),
        prepare="lossjit.layouts:cross_entropy",
        reference="PyTorch cross_entropy (its weight, ignore_index and label-smoothing "
                  "denominators); seed CrossEntropyLoss",
        notes="With class indices the mean divides by the summed weight of the non-ignored "
              "targets; with probabilities, by the number of positions.",
    ),
    LossSpec(
        name="binary_cross_entropy", aliases=("bce",), family="classification",
        formula="-w [y log x + (1 - y) log(1 - x)], each log clamped at >= -100",
        gradient="w (x - y) / max(x (1 - x), 1e-12)",
        layout="probabilities in [0, 1] and targets of the same shape",
        params=(Param("weight", "array", None, "weights broadcast against the predictions"),),
        prepare="lossjit.layouts:binary_cross_entropy",
        reference="PyTorch binary_cross_entropy",
    ),
    LossSpec(
        name="bce_with_logits", family="classification",
        formula="w [(1 - y) x + (1 + (pw - 1) y) softplus(-x)]",
        gradient="w [(1 + (pw - 1) y) sigmoid(x) - pw y]",
        layout="logits and targets of the same shape",
        params=(
            Param("weight", "array", None, "weights broadcast against the predictions"),
            Param("pos_weight", "array", None, "weight of positives, along the last axis"),
        ),
        prepare="lossjit.layouts:bce_with_logits",
        reference="PyTorch binary_cross_entropy_with_logits",
    ),
    LossSpec(
        name="focal", family="classification",
        formula="-alpha_y (1 - p_y)^gamma log p_y, p = softmax(x)",
        gradient="F (p_j - [j = y]), F = alpha_y (1-p_y)^gamma (1 - gamma p_y log p_y / (1-p_y))",
        layout="logits like cross_entropy with class indices or one-hot targets; "
               "from_logits=false: probabilities (N, C) with one-hot targets (the seed's form)",
        params=(
            Param("gamma", "float", 2.0, "focusing exponent", ">= 0", _non_negative),
            Param("alpha", "float_or_array", None, "class weight: one number or one per class"),
            _IGNORE, _FROM_LOGITS, _EPS_CLIP,
        ),
        prepare="lossjit.layouts:focal",
        reference="Lin et al. 2017; Keras CategoricalFocalCrossentropy; seed FocalLoss",
        notes="The mean divides by the number of non-ignored positions; alpha is not "
              "normalised away.",
    ),
    LossSpec(
        name="sigmoid_focal", family="classification",
        formula="alpha_t (1 - p_t)^gamma bce_with_logits(x, y), p = sigmoid(x)",
        gradient="exact, in a form that stays finite for large |x|",
        layout="logits and binary (or soft) targets of the same shape",
        params=(
            Param("alpha", "float", 0.25, "weight of positives (negative: no weighting)",
                  "<= 1", lambda v: v <= 1),
            Param("gamma", "float", 2.0, "focusing exponent", ">= 0", _non_negative),
        ),
        prepare="lossjit.layouts:sigmoid_focal",
        reference="torchvision sigmoid_focal_loss (whose default reduction is none)",
    ),
    LossSpec(
        name="contrastive", family="embedding",
        formula="y d^2 + (1 - y) max(0, margin - d)^2, d = ||x1 - x2||_2",
        gradient="safe (0) at d = 0",
        layout="pairs (B, 2, D) and labels (B,) or (B, 1), 1 = similar",
        params=(Param("margin", "float", 1.0, "distance dissimilar pairs are pushed to",
                      ">= 0", _non_negative),),
        prepare="lossjit.layouts:contrastive",
        reference="Hadsell et al. 2006; seed ContrastiveLoss",
    ),
    LossSpec(
        name="triplet", aliases=("triplet_margin",), family="embedding",
        formula="max(0, d(a, p) - d(a, n) + margin), d(u, v) = ||u - v + eps||_p",
        gradient="w.r.t. anchor, positive and negative",
        layout="triplets (B, 3, D): anchor, positive, negative; no targets",
        params=(
            Param("margin", "float", 1.0, "required gap between the distances", "finite",
                  _finite),
            Param("p", "float", 2.0, "norm degree", "> 0", _positive),
            Param("eps", "float", 1e-6, "added to differences before the norm", "finite",
                  _finite),
            Param("swap", "bool", False, "use min(d(a, n), d(p, n)) as the negative distance"),
        ),
        prepare="lossjit.layouts:triplet", targets="none",
        reference="PyTorch triplet_margin_loss; seed TripletLoss",
    ),
)

_specs: dict[str, LossSpec] = {}
_aliases: dict[str, str] = {}


def register_spec(spec: LossSpec, *, replace: bool = False) -> LossSpec:
    """Add ``spec`` to the registry (its name and aliases must be new unless ``replace``)."""
    for key in (spec.name, *spec.aliases):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
            raise LossjitError(f"register: {key!r} is not a valid loss name; use lowercase "
                               "letters, digits and underscores, starting with a letter")
    for key in (spec.name, *spec.aliases):
        owner = _aliases.get(key)
        if owner is not None and not (replace and owner == spec.name):
            raise LossjitError(f"register: the name {key!r} is taken by the loss {owner!r}")
    for p in spec.params:
        if p.kind not in PARAM_KINDS:
            raise LossjitError(
                f"register: option {p.name} has kind {p.kind!r}; expected one of "
                + ", ".join(PARAM_KINDS)
            )
    if spec.targets not in ("required", "optional", "none"):
        raise LossjitError(
            f"register: targets must be 'required', 'optional' or 'none', got {spec.targets!r}"
        )
    _specs[spec.name] = spec
    for key in (spec.name, *spec.aliases):
        _aliases[key] = spec.name
    return spec


def resolve(name: str) -> LossSpec:
    """The spec of a loss, by its name or an alias (case and '-' vs '_' do not matter)."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in _aliases:
        known = ", ".join(names())
        raise UnknownLossError(f"unknown loss {name!r}; known losses: {known}")
    return _specs[_aliases[key]]


def names() -> list[str]:
    """Canonical names of all registered losses, in registration order."""
    return list(_specs)


for _spec in BUILTIN:
    register_spec(_spec)
