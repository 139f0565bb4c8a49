"""Checking gradients: lossjit's against central finite differences on the user's own data,
or a gradient computed elsewhere (a framework's) against lossjit's.

The finite difference of element i is ``(L(x + h e_i) - L(x - h e_i)) / (2 h)`` with
``h = step * max(1, |x_i|)``, computed in float64 with lossjit's own loss; the Hessian's
diagonal (where the loss has one) is checked the same way against finite differences of the
gradient. The error of an element is ``|a - b| / max(|a|, |b|, floor)``, the floor being
``1e-3`` of the largest reference value checked: relative where the gradient is of the
order of its scale, absolute below it.

>>> import numpy as np
>>> x, y = np.array([0.5, -1.0, 2.0]), np.array([0.0, 0.0, 1.0])
>>> result = check_grad("log_cosh", x, y)
>>> result.ok(1e-6), result.checked
(True, 3)
>>> mine = np.array([1 / 3, -2 / 3, 0.7])  # a gradient computed elsewhere, one entry off
>>> bad = check_grad("mse", x, y, against=mine)
>>> bad.position, round(bad.error, 4), bad.ok(1e-6)
((2,), 0.0476, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lossjit import api
from lossjit.errors import LossjitError
from lossjit.layouts import plain
from lossjit.plan import make_plan


@dataclass(frozen=True)
class Check:
    """The worst element of one comparison: its ``error``, its ``position`` in the
    predictions, and the two values there (``value``: lossjit's, ``reference``: the finite
    difference, or the gradient given with ``against``); ``checked`` elements were compared."""

    what: str
    error: float
    position: tuple[int, ...]
    value: float
    reference: float
    checked: int

    def ok(self, tol: float) -> bool:
        """Whether the worst error is at most ``tol`` (NaN is never ok)."""
        return bool(self.error <= tol)


@dataclass(frozen=True)
class GradCheck(Check):
    """A gradient check, with the Hessian's (None where the loss has no Hessian or a
    gradient was given with ``against``)."""

    hessian: Check | None = None

    def ok(self, tol: float) -> bool:
        return super().ok(tol) and (self.hessian is None or self.hessian.ok(tol))


def _worst(what: str, values: np.ndarray, reference: np.ndarray, flat: np.ndarray,
           shape: tuple[int, ...]) -> Check:
    floor = 1e-3 * float(np.max(np.abs(reference))) if reference.size else 0.0
    scale = np.maximum(np.maximum(np.abs(values), np.abs(reference)), floor or 1e-300)
    errors = np.abs(values - reference) / scale
    errors = np.where(np.isnan(errors), np.inf, errors)
    worst = int(np.argmax(errors)) if errors.size else 0
    if not errors.size:
        return Check(what, 0.0, (), 0.0, 0.0, 0)
    position = tuple(int(i) for i in np.unravel_index(int(flat[worst]), shape))
    error = float(errors[worst])
    if np.isnan(values[worst]) or np.isnan(reference[worst]):
        error = float("nan")
    return Check(what, error, position, float(values[worst]), float(reference[worst]),
                 int(flat.size))


def check_grad(name: str, predictions: Any, targets: Any = None, *,
               reduction: str = "mean", sample_weight: Any = None, samples: int | None = None,
               seed: int = 0, step: float = 1e-6, against: Any = None,
               nan_policy: str = "propagate", **params: Any) -> GradCheck:
    """Compare the gradient of loss ``name`` w.r.t. ``predictions`` with central finite
    differences (or, with ``against``, with that gradient), on every element or on
    ``samples`` of them drawn at random (``seed``); the Hessian's diagonal too where the loss
    has one. Returns the worst element of each comparison (:class:`GradCheck`).

    ``nan_policy`` is :func:`lossjit.value_and_grad`'s: with ``"omit"`` the terms that hold
    NaN are left out of the loss (so their finite differences and gradient entries are 0)
    and the others are checked; with ``"propagate"`` a NaN makes the check fail (its error is
    NaN); ``"raise"`` refuses it.

    >>> x = np.array([0.5, np.nan, 2.0])
    >>> check_grad("mse", x, np.zeros(3), nan_policy="omit").ok(1e-6)
    True
    """
    x = np.array(predictions, dtype=np.float64)
    options = dict(reduction=reduction, sample_weight=sample_weight, nan_policy=nan_policy,
                   **params)
    if not step > 0:
        raise LossjitError(f"step: expected a number > 0, got {plain(step)}")
    if samples is not None and (int(samples) != samples or samples < 1):
        raise LossjitError(f"samples: expected a whole number >= 1, got {plain(samples)}")
    # per-term losses (reduction "none") add up to the loss; omitted terms' are NaN
    total = np.nansum if nan_policy == "omit" else np.sum
    grad = api.grad(name, x, targets, **options)
    count = x.size if samples is None else min(int(samples), x.size)
    flat = (np.arange(x.size) if count == x.size
            else np.sort(np.random.default_rng(seed).choice(x.size, count, replace=False)))
    if against is not None:
        given = np.asarray(against, dtype=np.float64)
        if given.shape != x.shape:
            raise LossjitError(f"against: shape {given.shape} does not match predictions "
                               f"{x.shape}; expected the gradient of the predictions")
        worst = _worst("gradient", given.reshape(-1)[flat], grad.reshape(-1)[flat], flat,
                       x.shape)
        return GradCheck(**vars(worst))

    plan = make_plan(name, hessian=True, reduction=reduction, nan_policy=nan_policy, **params)
    has_hessian = plan.spec.kernel_set(plan.lay_out(x, targets).variant).hessian
    hess = api.grad_hess(name, x, targets, **options)[1] if has_hessian else None
    numeric = np.empty(count)
    numeric_hess = np.empty(count) if hess is not None else None
    for k, i in enumerate(flat):
        h = step * max(1.0, abs(float(x.flat[i])))
        up, down = x.copy(), x.copy()
        up.flat[i] += h
        down.flat[i] -= h
        numeric[k] = (float(total(api.loss(name, up, targets, **options)))
                      - float(total(api.loss(name, down, targets, **options)))) / (2 * h)
        if numeric_hess is not None:
            numeric_hess[k] = (api.grad(name, up, targets, **options).flat[i]
                               - api.grad(name, down, targets, **options).flat[i]) / (2 * h)
    worst = _worst("gradient", grad.reshape(-1)[flat], numeric, flat, x.shape)
    hessian = None
    if hess is not None and numeric_hess is not None:
        hessian = _worst("hessian", hess.reshape(-1)[flat], numeric_hess, flat, x.shape)
    return GradCheck(**vars(worst), hessian=hessian)
