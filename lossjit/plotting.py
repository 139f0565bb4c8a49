"""Curves of a loss, its gradient and its Hessian diagonal over a range of predictions.

For teaching and for choosing a loss: :func:`curves` computes, for one fixed target, the loss
of each prediction on a grid, its derivative and (where lossjit has one for the loss) the
second derivative, each grid point being one independent loss term; :func:`plot` draws
several losses on one figure, one panel each for the loss, the gradient and the Hessian
diagonal, and saves it as PNG, SVG or PDF (matplotlib, the ``plot`` extra, is needed only
there).

What the x-axis is depends on the loss's layout:

- element-wise losses: the prediction, over a range chosen from its domain (the target
  +/- 3 for regression, logits in [-4, 4] for binary and sign targets, (0, 1) for
  probabilities, log-means around log(target) for the log-link losses);
- class-axis losses (``cross_entropy``, ``focal``, ``nll``, ``poly1``, ``multi_margin``): the
  probability p of the true class in (0, 1), given as the two-class logits
  ``[log p, log(1 - p)]`` (log-probabilities for ``nll``) with target class 0; the gradient
  shown is the derivative with respect to the true class's logit;
- losses of pairs, triplets or rank pairs have no such curve: they raise a LossjitError.

>>> c = curves("mse", lo=-1, hi=1, points=3)
>>> c.loss, c.grad, c.hess
(array([1., 0., 1.]), array([-2.,  0.,  2.]), array([2., 2., 2.]))
>>> c = curves("cross_entropy", lo=0.5, hi=0.5, points=1)
>>> c.xlabel, c.loss.round(4), c.grad
('probability of the true class', array([0.6931]), array([-0.5]))
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossjit import api, registry
from lossjit.errors import LossjitError
from lossjit.layouts import (
    BINARY,
    COUNTS,
    DISTANCES,
    LOG_PROBS,
    NONNEGATIVE,
    POSITIVE,
    POSITIVE_ONLY,
    REAL,
    SIGNS,
    UNIT,
    ClassAxis,
    Domain,
    Elementwise,
    LastAxisClasses,
    PositiveWeights,
    Variance,
)

__all__ = ["FORMATS", "Curves", "curves", "plot"]

#: The file formats :func:`plot` writes, by extension.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}

#: The target drawn when none is given, by the targets' domain.
DEFAULT_TARGETS: dict[str, float] = {
    REAL.name: 0.0, UNIT.name: 1.0, BINARY.name: 1.0, SIGNS.name: 1.0, COUNTS.name: 2.0,
    POSITIVE.name: 1.0, NONNEGATIVE.name: 1.0, POSITIVE_ONLY.name: 1.0, DISTANCES.name: 1.0,
    LOG_PROBS.name: math.log(0.5),
}

_LOG_LINK = {COUNTS.name, NONNEGATIVE.name, POSITIVE_ONLY.name, POSITIVE.name}
_LABELS = {BINARY.name, SIGNS.name, UNIT.name}


@dataclass(frozen=True)
class Curves:
    """One loss over a grid of predictions for a fixed target.

    ``x`` is the grid (what ``xlabel`` says it is), ``loss``, ``grad`` and ``hess`` the loss
    of each point, its derivative with respect to ``wrt`` and its second derivative (None when
    the loss has no Hessian diagonal, or none with these options); ``target`` is the target
    every point shares (the class index 0 for class-axis losses) and ``options`` the loss
    options used.
    """

    name: str
    x: np.ndarray
    loss: np.ndarray
    grad: np.ndarray
    hess: np.ndarray | None
    xlabel: str
    target: float
    wrt: str = "prediction"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Range:
    """A default range: its ends, and whether each is open (left out of the grid)."""

    lo: float
    hi: float
    open_lo: bool = False
    open_hi: bool = False


def _grid(name: str, default: _Range, lo: float | None, hi: float | None, points: int,
          bounds: tuple[float, float] | None = None) -> np.ndarray:
    """``points`` evenly spaced values from ``lo`` to ``hi``; an end left to its open default
    is not on the grid. ``bounds`` (open) are limits that given ends must keep inside."""
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 1:
        raise LossjitError(f"points: expected an integer >= 1, got {points!r}")
    for what, value in (("lo", lo), ("hi", hi)):
        if value is not None and not math.isfinite(float(value)):
            raise LossjitError(f"{what}: expected a finite number, got {value!r}")
        if value is not None and bounds is not None and not bounds[0] < value < bounds[1]:
            raise LossjitError(f"{what}: {name} is drawn over the probability of the true "
                               f"class; expected a value in (0, 1), got {value!r}")
    start = default.lo if lo is None else float(lo)
    stop = default.hi if hi is None else float(hi)
    if start > stop or (start == stop and points > 1):
        raise LossjitError(f"lo, hi: expected lo < hi, got lo={start!r}, hi={stop!r}")
    open_lo = lo is None and default.open_lo
    open_hi = hi is None and default.open_hi
    x = np.linspace(start, stop, int(points) + open_lo + open_hi)
    return x[int(open_lo): x.size - int(open_hi)]


def _target(spec: registry.LossSpec, domain: Domain, target: float | None,
            options: dict[str, Any]) -> float:
    if target is not None:
        value = float(target)
        if not math.isfinite(value):
            raise LossjitError(f"target: expected a finite number, got {target!r}")
        return value
    if options.get("log_target"):  # kl_div: targets are log-probabilities
        return 0.0
    if domain.name in DEFAULT_TARGETS:
        return DEFAULT_TARGETS[domain.name]
    return float(np.median(domain.sample(np.random.default_rng(0), (1001,))))


def _sampled_range(domain: Domain) -> _Range:
    """The range of a domain lossjit does not know, from its example values."""
    values = domain.sample(np.random.default_rng(0), (2000,))
    lo, hi = float(np.min(values)), float(np.max(values))
    return _Range(lo, hi) if lo < hi else _Range(lo - 1.0, lo + 1.0)


def _elementwise_range(predictions: Domain, targets: Domain, target: float,
                       options: dict[str, Any]) -> tuple[_Range, str]:
    """The default range of an element-wise loss's predictions, and what they are."""
    if predictions.name == UNIT.name:
        return _Range(0.0, 1.0, True, True), "predicted probability"
    if predictions.name == LOG_PROBS.name:
        return _Range(-4.0, 0.0), "predicted log-probability"
    if predictions.name == DISTANCES.name:
        return _Range(0.0, 3.0), "distance"
    if predictions.name != REAL.name:
        return _sampled_range(predictions), "prediction"
    if targets.name == REAL.name:
        return _Range(target - 3.0, target + 3.0), "prediction"
    if targets.name in _LABELS:
        return _Range(-4.0, 4.0), "logit"
    if targets.name in _LOG_LINK:
        if "log_input" in options and not options["log_input"]:  # poisson_nll on rates
            return _Range(0.0, 2.0 * max(target, 0.0) + 3.0, open_lo=True), "predicted rate"
        centre = math.log(target) if target > 0 else 0.0
        return _Range(centre - 3.0, centre + 3.0), "log of the predicted mean"
    return _sampled_range(predictions), "prediction"


def _class_axis_curves(spec: registry.LossSpec, layout: ClassAxis, lo: float | None,
                       hi: float | None, target: float | None, points: int,
                       given: dict[str, Any], resolved: dict[str, Any]) -> Curves:
    if target is not None and float(target) != 0:
        raise LossjitError(f"target: {spec.name} is drawn over the probability of the true "
                           f"class (class 0 of two); leave target unset, got {target!r}")
    p = _grid(spec.name, _Range(0.0, 1.0, True, True), lo, hi, points, bounds=(0.0, 1.0))
    probabilities = not resolved.get("from_logits", True)
    two = np.stack([p, 1.0 - p], axis=1)
    predictions = two if probabilities else np.log(two)
    labels = np.zeros(p.size, dtype=np.int64)
    losses, grads, hess = _compute(spec, predictions, labels, given)
    wrt = ("probability of the true class" if probabilities
           else "log-probability of the true class" if layout.log_probabilities
           else "score of the true class" if spec.name == "multi_margin"
           else "logit of the true class")
    return Curves(spec.name, p, losses, grads[:, 0], None if hess is None else hess[:, 0],
                  "probability of the true class", 0.0, wrt, dict(given))


def _compute(spec: registry.LossSpec, predictions: np.ndarray, targets: np.ndarray,
             options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Each term's loss, its gradient and, where the loss has one, its Hessian diagonal."""
    try:
        losses, grads = api.value_and_grad(spec.name, predictions, targets, reduction="none",
                                           **options)
    except LossjitError as err:
        raise LossjitError(f"{spec.name}: {err}") from err
    hess = None
    if spec.hessian:
        try:  # a "sum" makes each element's derivatives its own term's
            _, hess = api.grad_hess(spec.name, predictions, targets, reduction="sum",
                                    **options)
        except LossjitError:  # none with these options (e.g. from_logits=False)
            hess = None
    return np.asarray(losses, dtype=np.float64), grads, hess


def curves(name: str, *, lo: float | None = None, hi: float | None = None,
           target: float | None = None, points: int = 401,
           options: dict[str, Any] | None = None) -> Curves:
    """The loss ``name``, its gradient and Hessian diagonal over ``points`` predictions from
    ``lo`` to ``hi``, each with the target ``target``, as :class:`Curves`.

    Left unset, the range and the target come from the loss's domains (the module's
    docstring says which); ``options`` are the loss's options. Class-axis losses are drawn
    over the probability of the true class in (0, 1) (``lo`` and ``hi`` are then
    probabilities; ``target`` stays unset). Raises a LossjitError for losses of pairs,
    triplets or rank pairs, and for options or values the loss refuses.

    >>> c = curves("huber", lo=-2, hi=2, points=5, options={"delta": 1.0})
    >>> c.loss.tolist(), c.grad.tolist()
    ([1.5, 0.5, 0.0, 0.5, 1.5], [-1.0, -1.0, 0.0, 1.0, 1.0])
    """
    spec = registry.resolve(name)
    given = dict(options or {})
    layout = spec.layout
    if isinstance(layout, Variance) and given.get("var") is None:
        given["var"] = 1.0  # gaussian_nll: unit variance unless told
    resolved = spec.options(given)
    if isinstance(layout, ClassAxis):
        return _class_axis_curves(spec, layout, lo, hi, target, points, given, resolved)
    if isinstance(layout, Elementwise):
        predictions, targets = layout.predictions, layout.targets
    elif isinstance(layout, PositiveWeights):
        predictions, targets = layout.predictions, layout.targets
    elif isinstance(layout, Variance):
        predictions, targets = REAL, REAL
    elif isinstance(layout, LastAxisClasses):  # one class per row: the loss of one logit
        predictions, targets = REAL, BINARY
    else:
        raise LossjitError(f"{spec.name}: cannot be drawn as curves over one prediction; it "
                           f"takes {spec.inputs}")
    y = _target(spec, targets, target, resolved)
    default, xlabel = _elementwise_range(predictions, targets, y, resolved)
    if isinstance(layout, Variance):
        xlabel = "predicted mean"
    x = _grid(spec.name, default, lo, hi, points)
    shape = (x.size, 1) if isinstance(layout, LastAxisClasses) else x.shape
    losses, grads, hess = _compute(spec, x.reshape(shape), np.full(shape, y), given)
    return Curves(spec.name, x, losses.reshape(-1), grads.reshape(-1),
                  None if hess is None else hess.reshape(-1), xlabel, y, xlabel, given)


# --- the figure ---------------------------------------------------------------------------


def _options_for(names: Sequence[str], options: dict[str, Any]) -> list[dict[str, Any]]:
    """Each loss's share of ``options``: the ones it has (each must belong to some loss)."""
    specs = [registry.resolve(name) for name in names]
    known = [{p.name for p in spec.params} for spec in specs]
    unused = sorted(set(options) - set().union(*known))
    if unused:
        raise LossjitError(f"plot: option {unused[0]!r} belongs to none of the losses "
                           f"{', '.join(spec.name for spec in specs)}")
    return [{key: value for key, value in options.items() if key in mine} for mine in known]


def _label(c: Curves) -> str:
    shown = ", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                      for key, value in c.options.items() if np.ndim(value) == 0)
    return f"{c.name} ({shown})" if shown else c.name


def _xlabel(found: Sequence[Curves]) -> str:
    labels: list[str] = []
    for c in found:
        label = (c.xlabel if c.xlabel == "probability of the true class"
                 else f"{c.xlabel} (target {c.target:g})")
        if label not in labels:
            labels.append(label)
    return " / ".join(labels)


def _limits(values: Sequence[np.ndarray]) -> tuple[float, float] | None:
    """y-limits that keep a curve shooting off near an end of the range from flattening the
    others (None: matplotlib's own)."""
    data = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.empty(0)
    if data.size < 2:
        return None
    low, high = float(data.min()), float(data.max())
    inner_low, inner_high = np.percentile(data, [2.0, 98.0])
    span = inner_high - inner_low
    if span <= 0 or high - low <= 4.0 * span:
        return None
    pad = 0.1 * span
    return float(min(inner_low, 0.0) - pad), float(inner_high + pad)


def _figure(found: Sequence[Curves], title: str | None) -> Any:
    figure_module = _matplotlib("matplotlib.figure")
    panels = [("loss", "loss"), ("gradient", "grad")]
    if any(c.hess is not None for c in found):
        panels.append(("Hessian diagonal", "hess"))
    fig = figure_module.Figure(figsize=(4.2 * len(panels), 3.7), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colours = [f"C{i % 10}" for i in range(len(found))]
    styles = ["-", "--", "-.", ":"]
    wrts = sorted({c.wrt for c in found})
    for ax, (heading, attr) in zip(axes, panels, strict=True):
        drawn = []
        for i, c in enumerate(found):
            values = getattr(c, attr)
            if values is None:
                continue
            ax.plot(c.x, values, color=colours[i], linestyle=styles[(i // 10) % len(styles)],
                    linewidth=1.8, label=_label(c))
            drawn.append(values)
        if attr != "loss":
            ax.axhline(0.0, color="0.75", linewidth=0.8, zorder=0)
        limits = _limits(drawn)
        if limits is not None:
            ax.set_ylim(*limits)
        if attr == "grad" and len(wrts) == 1 and wrts[0] != "prediction":
            heading = f"gradient w.r.t. the {wrts[0]}"
        missing = [c.name for c in found if getattr(c, attr) is None]
        if missing:
            ax.text(0.02, 0.02, "none for " + ", ".join(missing), transform=ax.transAxes,
                    fontsize=8, color="0.4")
        ax.set_title(heading, fontsize=11)
        ax.set_xlabel(_xlabel(found), fontsize=9)
        ax.grid(True, color="0.92", linewidth=0.7)
        ax.tick_params(labelsize=8)
    axes[0].legend(fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def _matplotlib(module: str) -> Any:
    """Import a part of matplotlib, or raise the LossjitError naming the ``plot`` extra."""
    from lossjit.formats import optional

    return optional(module, "lossjit plot")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _save(fig: Any, path: str) -> None:
    """Write the figure to ``path`` atomically (a temporary file beside it, then a rename)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise LossjitError(f"path: cannot tell the format of {path!r} from its extension "
                           f"{ext or '(none)'!r}; expected one of {', '.join(FORMATS)}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise LossjitError(f"path: the folder {folder!r} of {path!r} does not exist")
    if os.path.isdir(path):
        raise LossjitError(f"path: {path!r} is a folder; expected a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".lossjit-plot-", suffix=ext, dir=folder)
    except OSError as err:
        raise LossjitError(f"path: cannot write in {folder!r}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            fig.savefig(handle, format=FORMATS[ext])
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def plot(names: Sequence[str], path: str, *, lo: float | None = None, hi: float | None = None,
         target: float | None = None, points: int = 401, options: dict[str, Any] | None = None,
         title: str | None = None) -> None:
    """Draw the losses ``names`` on one figure and save it to ``path`` (.png, .svg or .pdf).

    Two panels side by side, the loss and its gradient, and a third, the Hessian diagonal,
    when any of the losses has one; one line per loss, with a legend. ``lo``, ``hi``,
    ``target`` and ``points`` are those of :func:`curves`, for every loss; each option in
    ``options`` goes to the losses that have it (one that none has is an error). The file
    is written atomically; matplotlib (the ``plot`` extra) is needed.
    """
    if isinstance(names, str):
        names = [names]
    if not names:
        raise LossjitError("plot: name at least one loss")
    _matplotlib("matplotlib")  # before any work: say which extra is missing
    shares = _options_for(names, dict(options or {}))
    found = [curves(name, lo=lo, hi=hi, target=target, points=points, options=share)
             for name, share in zip(names, shares, strict=True)]
    _save(_figure(found, title), path)
