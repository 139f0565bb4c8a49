"""Benchmark helpers: timing, inputs, NumPy references and the PyTorch/JAX/scikit-learn peers.

Used by ``benchmarks/run.py`` (the full side-by-side run) and meant for a ``lossjit bench``
command. Importing this module imports NumPy only: lossjit's kernels, Numba, PyTorch, JAX and
scikit-learn are imported on first use, and a peer that is not installed is skipped with the
reason ``"not installed"``.

- :func:`time_call` gives per-call seconds (warm-up first; take the median).
- :func:`make_inputs` builds the inputs of a loss for a total element count and dtype.
- :data:`REFERENCES` are fair, vectorised NumPy implementations of every built-in loss, value
  and gradient, in stable forms (they compute in the input's dtype, as a NumPy user would),
  for reduction "mean" and "sum" (kl_div also "batchmean"); class-axis ones take (N, C)
  scores with integer class indices.
- :func:`run_case` times lossjit against them and against the installed peers.
- :func:`triad_bandwidth` measures the STREAM triad ``a = b + s * c`` (float64, Numba) in GB/s.

Timing conventions (also recorded in ``run_case``'s result under ``"notes"``):

- **lossjit**: ``value_and_grad`` (a fresh gradient array each call); ``lossjit_out`` with
  ``out=`` a reused buffer; ``lossjit_value``: ``loss`` (no gradient).
- **numpy**: the reference below, allocating its gradient; ``numpy_value``: value only.
- **torch**: autograd on 2 threads; the leaf's ``.grad`` is set to ``None`` before every call
  (as ``optimizer.zero_grad(set_to_none=True)``), so each backward allocates a fresh gradient;
  the tensors are made from the NumPy arrays once, outside the timed region. Losses that
  ``torch.nn.functional`` lacks (focal, sigmoid_focal, contrastive, log_cosh, pseudo_huber,
  quantile, poly1) are composed from torch ops; kl_div is ``kl_div(reduction="sum") / numel``
  (its "mean" warns on every call).
- **jax**: ``jax.jit(jax.value_and_grad(f))`` on the CPU with ``jax_enable_x64`` (so float64
  stays float64), ``block_until_ready`` on the result; arrays put on the device once
  (gaussian_nll's var is an argument of ``f``). optax is not a dependency: the losses are
  written in ``jax.numpy`` as optax writes them.
- **sklearn**: the private ``sklearn._loss`` classes, ``loss_gradient(..., loss_out=,
  gradient_out=, n_threads=2)`` into preallocated buffers, plus the sum of ``loss_out`` (it
  returns per-sample losses). Its "half" conventions differ (e.g. ``HalfSquaredError`` is
  e^2/2 with gradient e, unscaled; ``HalfPoissonLoss`` adds constants): compare speed only.
  Compare it with ``lossjit_out``.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Every peer run_case knows, in table order.
PEERS = ("numpy", "torch", "jax", "sklearn")

#: Families of the built-in losses, by how their inputs are laid out.
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
#: Every family, in table order: (family name, its losses).
FAMILIES = (("elementwise", ELEMENTWISE), ("classes", CLASSES), ("multilabel", MULTILABEL),
            ("pairs", PAIRS), ("triplets", TRIPLETS), ("ranks", RANKS))
#: The losses that take labels in {1, -1}.
SIGNED_LABELS = ("hinge_embedding", "soft_margin", "cosine_embedding", "margin_ranking")

#: Width of the embeddings in the pair and triplet cases.
EMBED_DIM = 64
#: Classes in a classification case given only an element count.
DEFAULT_CLASSES = 10

#: PyTorch's floor on x (1 - x) in the binary_cross_entropy gradient: 1e-12 as a float32.
BCE_FLOOR = 9.999999960041972e-13
#: PyTorch's 1e-12 added to the squared norms in cosine_embedding_loss, which its kernel
#: rounds to a float32 (also for float64 inputs): it shows where a norm is about 0.
COSINE_EPS = 9.999999960041972e-13


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def _calibrate(fn: Callable[[], Any], sample_time: float) -> tuple[int, float]:
    """Warm ``fn`` up (the first call compiles or loads caches) and choose how many calls one
    timed sample runs so that it lasts about ``sample_time``. Returns (number, seconds/call)."""
    fn()
    batch = 1
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    # Short calls: time a growing batch of them for a steadier estimate.
    while elapsed < min(sample_time, 0.01):
        batch *= 4
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        elapsed = time.perf_counter() - start
    per_call = max(elapsed / batch, 1e-9)
    return max(1, math.ceil(sample_time / per_call)), per_call


def _sample(fn: Callable[[], Any], number: int) -> float:
    """Seconds per call of ``number`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def _samples_for(per_call: float, repeat: int, max_time: float) -> int:
    """At most ``repeat`` samples, fewer (down to 3) where each call is slow."""
    return max(3, min(repeat, int(max_time / max(per_call, 1e-9))))


def time_call(fn: Callable[[], Any], *, repeat: int = 7, min_time: float = 0.2,
              max_time: float = 5.0) -> list[float]:
    """Per-call seconds of ``fn()``, one entry per timed sample; report their median.

    ``fn`` is called once or more to warm up, then ``repeat`` samples are taken, each running
    ``fn`` enough times to last about ``min_time / repeat`` seconds (fewer samples, but at
    least 3, where one call is slower than ``max_time / repeat``).
    """
    number, per_call = _calibrate(fn, min_time / repeat)
    return [_sample(fn, number) for _ in range(_samples_for(per_call, repeat, max_time))]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def time_many(fns: dict[str, Callable[[], Any]], *, repeat: int = 7, min_time: float = 0.2,
              max_time: float = 5.0) -> dict[str, list[float]]:
    """:func:`time_call` for several implementations of one case, interleaved.

    Each is warmed up and calibrated, then the samples are taken in rounds, one sample of each
    implementation per round, in a rotating order, so that drift in a noisy machine's speed
    (a neighbour's load, the turbo clock) falls on all of them alike.
    """
    plans = {}
    for name, fn in fns.items():
        number, per_call = _calibrate(fn, min_time / repeat)
        plans[name] = (number, _samples_for(per_call, repeat, max_time))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for round_ in range(max((plan[1] for plan in plans.values()), default=0)):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            number, count = plans[name]
            if len(samples[name]) < count:
                samples[name].append(_sample(fns[name], number))
    return samples


def _cpu_snapshot() -> tuple[float, float, float] | None:
    """(wall seconds, busy CPU seconds of the whole machine, CPU seconds of this process)."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    busy = (sum(fields) - fields[3] - fields[4]) / tick  # all but idle and iowait
    own = os.times()
    return time.monotonic(), busy, own.user + own.system


class ForeignLoad:
    """How many cores' worth of CPU other processes used during a ``with`` block (Linux;
    ``load`` is None elsewhere): a noise indicator for a shared machine.

    >>> with ForeignLoad() as meter:
    ...     pass
    >>> meter.load is None or meter.load >= 0.0
    True
    """

    load: float | None = None

    def __enter__(self) -> ForeignLoad:
        self._start = _cpu_snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        end = _cpu_snapshot()
        if self._start is None or end is None or end[0] <= self._start[0]:
            return
        wall = end[0] - self._start[0]
        other = (end[1] - self._start[1]) - (end[2] - self._start[2])
        self.load = max(0.0, other / wall)


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def family(loss: str) -> str:
    """The input layout of a built-in loss: ``"elementwise"``, ``"classes"``,
    ``"multilabel"``, ``"pairs"``, ``"triplets"`` or ``"ranks"`` (see :data:`FAMILIES`).
    A loss without benchmark inputs (a user's own) raises ValueError."""
    name = canonical(loss)
    for fam, members in FAMILIES:
        if name in members:
            return fam
    raise ValueError(f"no benchmark inputs for the loss {loss!r}")


def canonical(loss: str) -> str:
    """The canonical name of a loss (aliases resolve), without importing Numba."""
    from lossjit import registry

    return registry.resolve(loss).name


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
    fam = family(loss)
    if fam == "elementwise":
        return (n,)
    if fam in ("classes", "multilabel"):
        return (max(1, n // DEFAULT_CLASSES), DEFAULT_CLASSES)
    if fam == "ranks":
        return (max(1, n // 2), 2)
    members = 2 if fam == "pairs" else 3
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
    fam = family(name)
    options = dict(params or {})
    if fam == "elementwise":
        p, t, extra = _elementwise_inputs(name, shape, dtype, rng, options)
        return Inputs(name, p.astype(dtype), t.astype(dtype), {**extra, **options})
    if fam == "classes":
        x = rng.normal(0.0, 1.0 if name == "multi_margin" else 2.0, shape)
        if name == "nll":
            x = _log_softmax(x, 1)
        y = rng.integers(0, shape[1], (shape[0],) + tuple(shape[2:]), dtype=np.int64)
        return Inputs(name, x.astype(dtype), y, options)
    if fam == "multilabel":
        x = rng.normal(0.0, 2.0, shape).astype(dtype)
        return Inputs(name, x, (rng.random(shape) < 0.5).astype(dtype), options)
    if fam == "ranks":
        return Inputs(name, rng.normal(size=shape).astype(dtype),
                      _signs(rng, shape[:1], dtype), options)
    x = rng.normal(0.0, 1.0 / math.sqrt(2 * shape[2]), shape).astype(dtype)
    if name == "cosine_embedding":
        return Inputs(name, x, _signs(rng, shape[:1], dtype), options)
    if fam == "pairs":
        labels = (rng.random(shape[0]) < 0.5).astype(np.float64)
        return Inputs(name, x, labels, options)
    return Inputs(name, x, None, options)


# ---------------------------------------------------------------------------------------------
# NumPy references: value and gradient, vectorised, in the input's dtype
# ---------------------------------------------------------------------------------------------
# Each takes (p, t, *, grad=True, out=None, reduction="mean", **params) and returns
# (value, gradient or None). ``out`` receives the gradient when given.


def _scale(reduction: str, count: float) -> float:
    if reduction == "sum":
        return 1.0
    if reduction != "mean":
        raise ValueError("the NumPy references support reduction='mean' and 'sum'")
    return 1.0 / count if count else math.nan


def _total(total: float, reduction: str, count: float) -> float:
    if reduction == "sum":
        return float(total)
    return float(total) / count if count else math.nan


def _flat_dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a.reshape(-1), b.reshape(-1)))


def ref_mse(p, t, *, grad=True, out=None, reduction="mean"):
    """(x - y)^2; gradient 2 (x - y)."""
    e = np.subtract(p, t, out=out)
    total = _flat_dot(e, e)
    if not grad:
        return _total(total, reduction, p.size), None
    np.multiply(e, 2.0 * _scale(reduction, p.size), out=e)
    return _total(total, reduction, p.size), e


def ref_l1(p, t, *, grad=True, out=None, reduction="mean"):
    """|x - y|; gradient sign(x - y), using sum |e| = sign(e) . e."""
    e = np.subtract(p, t)
    if not grad:
        return _total(np.abs(e, out=e).sum(), reduction, p.size), None
    s = np.sign(e, out=out)
    total = _flat_dot(s, e)
    np.multiply(s, _scale(reduction, p.size), out=s)
    return _total(total, reduction, p.size), s


def _huber_parts(p, t, delta, out):
    """e and c = clip(e, -delta, delta); the loss is c (e - c/2) and its gradient is c."""
    e = np.subtract(p, t)
    c = np.clip(e, -delta, delta, out=out)
    return e, c


def ref_huber(p, t, *, grad=True, out=None, reduction="mean", delta=1.0):
    """0.5 e^2 if |e| < delta else delta (|e| - delta/2); gradient clip(e, -delta, delta)."""
    e, c = _huber_parts(p, t, delta, out)
    total = _flat_dot(c, e) - 0.5 * _flat_dot(c, c)
    if not grad:
        return _total(total, reduction, p.size), None
    np.multiply(c, _scale(reduction, p.size), out=c)
    return _total(total, reduction, p.size), c


def ref_smooth_l1(p, t, *, grad=True, out=None, reduction="mean", beta=1.0):
    """huber(delta=beta) / beta; beta = 0 is l1."""
    if beta == 0:
        return ref_l1(p, t, grad=grad, out=out, reduction=reduction)
    e, c = _huber_parts(p, t, beta, out)
    total = (_flat_dot(c, e) - 0.5 * _flat_dot(c, c)) / beta
    if not grad:
        return _total(total, reduction, p.size), None
    np.multiply(c, _scale(reduction, p.size) / beta, out=c)
    return _total(total, reduction, p.size), c


def ref_binary_cross_entropy(p, t, *, grad=True, out=None, reduction="mean", weight=None):
    """-(y log x + (1-y) log(1-x)), logs clamped at -100; gradient (x-y)/max(x(1-x), 1e-12)."""
    if weight is not None:
        raise NotImplementedError("weight")
    with np.errstate(divide="ignore"):
        log_x = np.log(p)
        log_1mx = np.log1p(-p)
    np.maximum(log_x, -100.0, out=log_x)
    np.maximum(log_1mx, -100.0, out=log_1mx)
    total = -(float(log_1mx.sum()) + _flat_dot(t, np.subtract(log_x, log_1mx, out=log_x)))
    if not grad:
        return _total(total, reduction, p.size), None
    denominator = np.multiply(p, 1.0 - p, out=log_1mx)
    np.maximum(denominator, BCE_FLOOR, out=denominator)
    g = np.subtract(p, t, out=out)
    np.divide(g, denominator, out=g)
    np.multiply(g, _scale(reduction, p.size), out=g)
    return _total(total, reduction, p.size), g


def _sigmoid_parts(x):
    """a = exp(-|x|), sigmoid(x) and sigmoid(-x), without overflow."""
    a = np.exp(-np.abs(x))
    inv = 1.0 / (1.0 + a)
    positive = x >= 0
    sig = np.where(positive, inv, a * inv)
    return a, sig, np.where(positive, a * inv, inv)


def ref_bce_with_logits(p, t, *, grad=True, out=None, reduction="mean", weight=None,
                        pos_weight=None):
    """max(x, 0) - x y + log1p(exp(-|x|)); gradient sigmoid(x) - y."""
    if weight is not None or pos_weight is not None:
        raise NotImplementedError("weight, pos_weight")
    a = np.exp(-np.abs(p))
    total = (float(np.maximum(p, 0).sum()) - _flat_dot(t, p) + float(np.log1p(a).sum()))
    if not grad:
        return _total(total, reduction, p.size), None
    # sigmoid(x) = 1/(1+a) for x >= 0, a/(1+a) otherwise
    g = np.where(p >= 0, 1.0, a).astype(p.dtype, copy=False)
    if out is not None:
        out[...] = g
        g = out
    np.divide(g, np.add(a, 1.0, out=a), out=g)
    np.subtract(g, t, out=g)
    np.multiply(g, _scale(reduction, p.size), out=g)
    return _total(total, reduction, p.size), g


def ref_sigmoid_focal(p, t, *, grad=True, out=None, reduction="mean", alpha=0.25, gamma=2.0):
    """alpha_t (1 - p_t)^gamma bce_with_logits(x, y) (torchvision's form), exact gradient."""
    a, sig, sig_neg = _sigmoid_parts(p)
    bce = np.maximum(p, 0) - t * p + np.log1p(a)
    m = sig * (1.0 - t) + sig_neg * t
    modulating = m * m if gamma == 2.0 else m ** gamma
    alpha_t = alpha * t + (1.0 - alpha) * (1.0 - t) if alpha >= 0 else None
    value = modulating * bce
    if alpha_t is not None:
        value *= alpha_t
    total = float(value.sum())
    if not grad:
        return _total(total, reduction, p.size), None
    bend_m = m if gamma == 2.0 else np.where(m > 0, m ** (gamma - 1.0), 0.0)
    slope = (sig - t) * modulating + gamma * bend_m * sig * sig_neg * (1.0 - 2.0 * t) * bce
    if alpha_t is not None:
        slope *= alpha_t
    g = np.multiply(slope, _scale(reduction, p.size), out=out)
    return _total(total, reduction, p.size), g.astype(p.dtype, copy=False)


def _check_rows(x, y, loss):
    if x.ndim != 2 or not np.issubdtype(np.asarray(y).dtype, np.integer):
        raise NotImplementedError(f"{loss}: the NumPy reference takes (N, C) logits and "
                                  "integer class indices")


def _softmax_rows(p, t, ignore_index, out, loss):
    """The shared start of the class-index references: (rows, kept, safe targets, row maxima,
    z = exp(p - max) written into ``out`` when given, s = the rows' sums of z)."""
    _check_rows(p, t, loss)
    rows = np.arange(p.shape[0])
    kept = t != ignore_index
    safe = np.where(kept, t, 0) if not kept.all() else t
    top = p.max(axis=1, keepdims=True)
    z = np.subtract(p, top, out=out)
    np.exp(z, out=z)
    return rows, kept, safe, top, z, z.sum(axis=1)


def ref_cross_entropy(p, t, *, grad=True, out=None, reduction="mean", weight=None,
                      ignore_index=-100, label_smoothing=0.0):
    """Softmax cross-entropy with class-index targets, PyTorch's denominators."""
    n, classes = p.shape
    rows, kept, safe, top, z, s = _softmax_rows(p, t, ignore_index, out, "cross_entropy")
    lse = np.log(s) + top[:, 0]
    plain = weight is None and label_smoothing == 0.0
    if plain and kept.all():
        total = float((lse - p[rows, t]).sum())
        count = float(n)
        if not grad:
            return _total(total, reduction, count), None
        z /= s[:, None]
        z[rows, t] -= 1.0
        z *= _scale(reduction, count)
        return _total(total, reduction, count), z
    w = np.ones(classes) if weight is None else np.asarray(weight, dtype=np.float64)
    w_y = np.where(kept, w[safe], 0.0)
    keep = 1.0 - label_smoothing
    spread = label_smoothing / classes
    terms = keep * w_y * (lse - p[rows, safe])
    if label_smoothing:
        terms = terms + spread * np.where(kept, (w * (lse[:, None] - p)).sum(axis=1), 0.0)
    total = float(terms.sum())
    count = float(w_y.sum())
    if not grad:
        return _total(total, reduction, count), None
    z /= s[:, None]
    g = keep * w_y[:, None] * z + spread * (w.sum() * z - w) * kept[:, None]
    g[rows, safe] -= keep * w_y
    g *= _scale(reduction, count)
    if out is not None:
        out[...] = g
        g = out
    return _total(total, reduction, count), g.astype(p.dtype, copy=False)


def ref_focal(p, t, *, grad=True, out=None, reduction="mean", gamma=2.0, alpha=None,
              ignore_index=-100):
    """Softmax focal loss with class indices: -alpha_y (1-p_y)^gamma log p_y; exact gradient
    F (p_j - [j = y]), F = alpha_y (1-p_y)^gamma (1 - gamma p_y log p_y / (1-p_y))."""
    classes = p.shape[1]
    rows, kept, safe, top, z, s = _softmax_rows(p, t, ignore_index, out, "focal")
    logp = (p[rows, safe] - top[:, 0]) - np.log(s)
    py = np.exp(logp)
    u = -np.expm1(logp)
    modulating = u * u if gamma == 2.0 else u ** gamma
    if alpha is None:
        a = kept.astype(np.float64)
    else:
        a = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (classes,))[safe] * kept
    total = float(-(a * modulating * logp).sum())
    count = float(kept.sum())
    if not grad:
        return _total(total, reduction, count), None
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = modulating * (1.0 - gamma * py * logp / u)
    factor = np.where(u == 0, modulating * (1.0 + gamma * py), factor)
    factor = np.where(py == 0, modulating, factor)
    z /= s[:, None]
    z[rows, safe] -= 1.0
    z *= (a * factor * _scale(reduction, count)).astype(p.dtype)[:, None]
    return _total(total, reduction, count), z


def ref_contrastive(p, t, *, grad=True, out=None, reduction="mean", margin=1.0):
    """y d^2 + (1-y) max(0, margin - d)^2 over pairs (B, 2, D); gradient 0 at d = 0."""
    batch = p.shape[0]
    y = np.asarray(t, dtype=np.float64).reshape(batch)
    diff = np.subtract(p[:, 0], p[:, 1])
    d2 = np.einsum("bd,bd->b", diff, diff).astype(np.float64)
    d = np.sqrt(d2)
    gap = np.maximum(margin - d, 0.0)
    total = float((y * d2 + (1.0 - y) * gap * gap).sum())
    if not grad:
        return _total(total, reduction, batch), None
    with np.errstate(divide="ignore", invalid="ignore"):
        push = np.where(d > 0, 2.0 * (1.0 - y) * gap / d, 0.0)
    g = ((2.0 * y - push) * _scale(reduction, batch)).astype(p.dtype)[:, None]
    result = np.empty_like(p) if out is None else out
    np.multiply(diff, g, out=result[:, 0])
    np.negative(result[:, 0], out=result[:, 1])
    return _total(total, reduction, batch), result


def _norm_and_slope(v, p_norm, grad):
    """d = ||v||_p over the last axis and (when ``grad``) dd/dv (0 where d = 0)."""
    if p_norm == 2.0:
        d = np.sqrt(np.einsum("bd,bd->b", v, v))
    elif p_norm == 1.0:
        d = np.abs(v).sum(axis=1)
    else:
        d = (np.abs(v) ** p_norm).sum(axis=1) ** (1.0 / p_norm)
    if not grad:
        return d, None
    with np.errstate(divide="ignore", invalid="ignore"):
        if p_norm == 2.0:
            slope = v / d[:, None]
        elif p_norm == 1.0:
            slope = np.sign(v)
        else:
            slope = np.sign(v) * (np.abs(v) / d[:, None]) ** (p_norm - 1.0)
    slope[d == 0] = 0.0
    return d, slope


def ref_triplet(x, t=None, *, grad=True, out=None, reduction="mean", margin=1.0, p=2.0,
                eps=1e-6, swap=False):
    """max(0, d(a,p) - d(a,n) + margin), d(u,v) = ||u - v + eps||_p (PyTorch's); the hinge
    passes its gradient at 0 and a tie in the swap's minimum splits it evenly."""
    norm = float(p)
    p = x
    batch = p.shape[0]
    anchor, positive, negative = p[:, 0], p[:, 1], p[:, 2]
    v_ap = anchor - positive + eps
    v_an = anchor - negative + eps
    d_ap, s_ap = _norm_and_slope(v_ap, norm, grad)
    d_an, s_an = _norm_and_slope(v_an, norm, grad)
    share = np.ones(batch)
    d_neg = d_an
    if swap:
        v_pn = positive - negative + eps
        d_pn, s_pn = _norm_and_slope(v_pn, norm, grad)
        share = np.where(d_pn < d_an, 0.0, np.where(d_pn == d_an, 0.5, 1.0))
        d_neg = np.minimum(d_an, d_pn)
    hinge = d_ap - d_neg + margin
    total = float(np.maximum(hinge, 0.0).sum())
    if not grad:
        return _total(total, reduction, batch), None
    g = np.where(hinge >= 0, _scale(reduction, batch), 0.0)
    ga, gs = g[:, None], (g * share)[:, None]
    result = np.empty_like(p) if out is None else out
    result[:, 0] = ga * s_ap - gs * s_an
    result[:, 1] = -ga * s_ap
    result[:, 2] = gs * s_an
    if swap:
        rest = (g * (1.0 - share))[:, None] * s_pn
        result[:, 1] -= rest
        result[:, 2] += rest
    return _total(total, reduction, batch), result


def _grad_into(g, out, dtype):
    """``g`` in ``dtype``, written into ``out`` when it is given."""
    if out is not None:
        out[...] = g
        return out
    return g.astype(dtype, copy=False)


def ref_log_cosh(p, t, *, grad=True, out=None, reduction="mean"):
    """log(cosh(e)) = |e| + log1p(exp(-2|e|)) - log 2 (no overflow); gradient tanh(e)."""
    e = np.subtract(p, t)
    a = np.abs(e)
    terms = np.multiply(a, -2.0)
    np.exp(terms, out=terms)
    np.log1p(terms, out=terms)
    terms += a
    terms -= math.log(2.0)
    total = float(terms.sum())
    if not grad:
        return _total(total, reduction, p.size), None
    g = np.tanh(e, out=e if out is None else out)
    np.multiply(g, _scale(reduction, p.size), out=g)
    return _total(total, reduction, p.size), g


def ref_pseudo_huber(p, t, *, grad=True, out=None, reduction="mean", delta=1.0):
    """delta^2 (sqrt(1 + (e/delta)^2) - 1), as delta^2 r^2 / (1 + s) with r = e/delta and
    s = sqrt(1 + r^2) (no cancellation at small e); gradient e / s."""
    e = np.subtract(p, t)
    r2 = np.divide(e, delta)
    np.multiply(r2, r2, out=r2)
    s = np.add(r2, 1.0)
    np.sqrt(s, out=s)
    terms = np.add(s, 1.0)
    np.divide(r2, terms, out=terms)
    total = float(terms.sum()) * delta * delta
    if not grad:
        return _total(total, reduction, p.size), None
    g = np.divide(e, s, out=out)
    np.multiply(g, _scale(reduction, p.size), out=g)
    return _total(total, reduction, p.size), g


def ref_quantile(p, t, *, grad=True, out=None, reduction="mean", quantile=0.5):
    """max(q e', (q - 1) e') with e' = y - x; gradient -q (e' > 0), 1 - q (e' < 0) and
    0.5 - q at e' = 0, i.e. 0.5 - q - sign(e') / 2."""
    q = float(quantile)
    e = np.subtract(t, p)
    terms = np.multiply(e, q)
    np.maximum(terms, np.multiply(e, q - 1.0), out=terms)
    total = float(terms.sum())
    if not grad:
        return _total(total, reduction, p.size), None
    g = np.sign(e, out=out)
    scale = _scale(reduction, p.size)
    np.multiply(g, -0.5 * scale, out=g)
    np.add(g, (0.5 - q) * scale, out=g)
    return _total(total, reduction, p.size), g


def _stirling(t):
    """Sum of PyTorch's Stirling term y log y - y + log(2 pi y) / 2 where y > 1."""
    y = t[t > 1]
    return float((y * np.log(y) - y + 0.5 * np.log(2.0 * math.pi * y)).sum())


def ref_poisson_nll(p, t, *, grad=True, out=None, reduction="mean", log_input=True, full=False,
                    eps=1e-8):
    """exp(x) - y x (log_input) or x - y log(x + eps); gradient exp(x) - y or 1 - y/(x+eps);
    full adds the Stirling term where y > 1 (no gradient)."""
    if log_input:
        g = np.exp(p, out=out)
        terms = np.multiply(t, p)
        np.subtract(g, terms, out=terms)
    else:
        shifted = np.add(p, eps)
        terms = np.log(shifted)
        np.multiply(terms, t, out=terms)
        np.subtract(p, terms, out=terms)
    total = float(terms.sum()) + (_stirling(t) if full else 0.0)
    if not grad:
        return _total(total, reduction, p.size), None
    if log_input:
        np.subtract(g, t, out=g)
    else:
        g = np.divide(t, shifted, out=out)
        np.subtract(1.0, g, out=g)
    np.multiply(g, _scale(reduction, p.size), out=g)
    return _total(total, reduction, p.size), g


def _gaussian_var(var, p):
    """var as an array (or a float) that broadcasts against ``p`` as PyTorch's
    gaussian_nll_loss does: a missing last axis is added; negative var is an error."""
    if var is None:
        raise ValueError("gaussian_nll needs the option var")
    if np.ndim(var) == 0:
        v = float(var)
        if v < 0:
            raise ValueError("gaussian_nll: var has negative entries")
        return v
    v = np.asarray(var)
    if v.ndim == p.ndim - 1 and v.shape == p.shape[:-1]:
        v = v[..., None]
    if (v < 0).any():
        raise ValueError("gaussian_nll: var has negative entries")
    return v.astype(p.dtype, copy=False)


def ref_gaussian_nll(p, t, *, grad=True, out=None, reduction="mean", var=None, full=False,
                     eps=1e-6):
    """0.5 (log v + e^2 / v) [+ 0.5 log(2 pi)], v = max(var, eps); gradient e / v."""
    v = _gaussian_var(var, p)
    if isinstance(v, float):
        v = max(v, eps)
        log_v = math.log(v) * p.size
    else:
        v = np.maximum(v, eps)
        log_v = float(np.log(v).sum()) * (p.size // v.size if v.size else 0)
    e = np.subtract(p, t)
    r = np.divide(e, v, out=out)
    total = 0.5 * (log_v + _flat_dot(e, r))
    if full:
        total += 0.5 * math.log(2.0 * math.pi) * p.size
    if not grad:
        return _total(total, reduction, p.size), None
    np.multiply(r, _scale(reduction, p.size), out=r)
    return _total(total, reduction, p.size), r


def ref_nll(p, t, *, grad=True, out=None, reduction="mean", weight=None, ignore_index=-100):
    """-w[y] x_y on (N, C) log-probabilities; the mean divides by the sum of w[y] over the
    non-ignored rows (PyTorch's); gradient -w[y] at the target class."""
    _check_rows(p, t, "nll")
    n = p.shape[0]
    rows = np.arange(n)
    kept = t != ignore_index
    if weight is None and kept.all():
        total = -float(p[rows, t].sum())
        w_y, safe, count = None, t, float(n)
    else:
        safe = np.where(kept, t, 0)
        w = np.ones(p.shape[1]) if weight is None else np.asarray(weight, dtype=np.float64)
        w_y = np.where(kept, w[safe], 0.0)
        total = -float((w_y * p[rows, safe]).sum())
        count = float(w_y.sum())
    if not grad:
        return _total(total, reduction, count), None
    g = np.zeros_like(p) if out is None else out
    if out is not None:
        g.fill(0.0)
    scale = _scale(reduction, count)
    g[rows, safe] = -scale if w_y is None else -scale * w_y
    return _total(total, reduction, count), g


def ref_kl_div(p, t, *, grad=True, out=None, reduction="mean", log_target=False):
    """y (log y - x), exactly 0 where y = 0 (log_target: exp(y) (y - x)); gradient -y (or
    -exp(y)). reduction also "batchmean": the sum over predictions.shape[0]."""
    count = float(p.size)
    if reduction == "batchmean":
        reduction, count = "mean", float(p.shape[0] if p.ndim else 1)
    if log_target:
        weight = np.exp(t)
        terms = np.subtract(t, p)
        total = _flat_dot(weight, terms)
    else:
        weight = t
        positive = t > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.log(t)
            np.subtract(terms, p, out=terms)
            np.multiply(terms, t, out=terms)
        total = float(np.where(positive, terms, 0.0).sum())
    if not grad:
        return _total(total, reduction, count), None
    g = np.multiply(weight, -_scale(reduction, count), out=out)
    return _total(total, reduction, count), g if out is not None else g.astype(p.dtype,
                                                                               copy=False)


def ref_hinge_embedding(p, t, *, grad=True, out=None, reduction="mean", margin=1.0):
    """x where y = 1, max(0, margin - x) where y = -1; gradient 1, or -1 where
    margin - x >= 0 (PyTorch's clamp_min passes the tie)."""
    positive = t == 1
    gap = np.subtract(margin, p)
    total = float(np.where(positive, p, np.maximum(gap, 0.0)).sum())
    if not grad:
        return _total(total, reduction, p.size), None
    scale = _scale(reduction, p.size)
    g = np.where(positive, scale, np.where(gap >= 0, -scale, 0.0))
    return _total(total, reduction, p.size), _grad_into(g, out, p.dtype)


def ref_multi_margin(x, t, *, grad=True, out=None, reduction="mean", p=1, margin=1.0,
                     weight=None):
    """(1/C) sum_{i != y} w_y max(0, margin - x_y + x_i)^p on (N, C) scores (or one (C,)
    row); no gradient where margin - x_y + x_i <= 0; the mean is over the N rows."""
    power = int(p)
    p = x
    rows2d = p.reshape(1, -1) if p.ndim == 1 else p
    y = np.reshape(t, rows2d.shape[0])
    n, classes = rows2d.shape
    rows = np.arange(n)
    z = rows2d - rows2d[rows, y][:, None]
    z += margin
    z[rows, y] = 0.0
    h = np.maximum(z, 0.0)
    w_y = None if weight is None else np.asarray(weight, dtype=np.float64)[y]
    per_row = (h if power == 1 else h * h).sum(axis=1)
    total = float(per_row.sum() if w_y is None else np.dot(w_y, per_row)) / classes
    if not grad:
        return _total(total, reduction, n), None
    coef = (z > 0).astype(p.dtype) if power == 1 else np.multiply(h, 2.0, out=h)
    scale = _scale(reduction, n) / classes
    row_scale = scale if w_y is None else (w_y * scale).astype(p.dtype)[:, None]
    np.multiply(coef, row_scale, out=coef)
    coef[rows, y] = -coef.sum(axis=1)
    return _total(total, reduction, n), _grad_into(coef.reshape(p.shape), out, p.dtype)


def ref_soft_margin(p, t, *, grad=True, out=None, reduction="mean"):
    """softplus(-y x) = max(u, 0) + log1p(exp(-|u|)), u = -y x; gradient -y sigmoid(u)."""
    u = np.multiply(t, p)
    np.negative(u, out=u)
    a = np.exp(-np.abs(u))
    total = float(np.maximum(u, 0.0).sum()) + float(np.log1p(a).sum())
    if not grad:
        return _total(total, reduction, p.size), None
    # sigmoid(u) = 1/(1+a) for u >= 0, a/(1+a) otherwise
    g = np.where(u >= 0, 1.0, a).astype(p.dtype, copy=False)
    np.divide(g, np.add(a, 1.0, out=a), out=g)
    np.multiply(g, t, out=g)
    np.multiply(g, -_scale(reduction, p.size), out=g)
    return _total(total, reduction, p.size), _grad_into(g, out, p.dtype)


def ref_multilabel_soft_margin(p, t, *, grad=True, out=None, reduction="mean", weight=None):
    """-(1/C) sum_c w_c [y log sigmoid(x) + (1-y) log sigmoid(-x)] over the last axis, i.e.
    (1/C) sum_c w_c bce_with_logits; gradient w_c (sigmoid(x) - y) / C."""
    classes = p.shape[-1] if p.ndim else 1
    count = p.size // classes if classes else 0
    a = np.exp(-np.abs(p))
    terms = np.maximum(p, 0.0)
    terms -= t * p
    terms += np.log1p(a)
    w = None if weight is None else np.asarray(weight, dtype=np.float64)
    total = float((terms if w is None else terms * w).sum()) / classes
    if not grad:
        return _total(total, reduction, count), None
    g = np.where(p >= 0, 1.0, a).astype(p.dtype, copy=False)
    np.divide(g, np.add(a, 1.0, out=a), out=g)
    np.subtract(g, t, out=g)
    scale = _scale(reduction, count) / classes
    g = np.multiply(g, scale if w is None else (w * scale).astype(p.dtype), out=g)
    return _total(total, reduction, count), _grad_into(g, out, p.dtype)


def ref_poly1(p, t, *, grad=True, out=None, reduction="mean", epsilon=1.0, ignore_index=-100):
    """CE + epsilon (1 - p_y) with class-index targets on (N, C) logits; the mean is over the
    non-ignored rows; gradient (1 + epsilon p_y) (softmax - onehot)."""
    rows, kept, safe, top, z, s = _softmax_rows(p, t, ignore_index, out, "poly1")
    ce = np.log(s) - (p[rows, safe] - top[:, 0])
    one_minus = -np.expm1(-ce)
    total = float(((ce + epsilon * one_minus) * kept).sum())
    count = float(kept.sum())
    if not grad:
        return _total(total, reduction, count), None
    z /= s[:, None]
    z[rows, safe] -= 1.0
    factor = (1.0 + epsilon * (1.0 - one_minus)) * kept * _scale(reduction, count)
    z *= factor.astype(p.dtype)[:, None]
    return _total(total, reduction, count), z


def ref_cosine_embedding(p, t, *, grad=True, out=None, reduction="mean", margin=0.0):
    """1 - cos where y = 1, max(0, cos - margin) where y = -1, on pairs (B, 2, D) (or one
    (2, D)); cos = x1.x2 / sqrt((|x1|^2 + eps)(|x2|^2 + eps)) with PyTorch's eps
    (:data:`COSINE_EPS`, 1e-12 as a float32); the hinge passes its gradient at the tie."""
    x = p.reshape((1,) + p.shape) if p.ndim == 2 else p
    batch = x.shape[0]
    y = np.reshape(t, batch)
    a, b = x[:, 0], x[:, 1]
    dot = np.einsum("bd,bd->b", a, b)
    na = np.einsum("bd,bd->b", a, a) + COSINE_EPS
    nb = np.einsum("bd,bd->b", b, b) + COSINE_EPS
    denom = np.sqrt(na * nb)
    cos = dot / denom
    positive = y == 1
    total = float(np.where(positive, 1.0 - cos, np.maximum(cos - margin, 0.0)).sum())
    if not grad:
        return _total(total, reduction, batch), None
    scale = _scale(reduction, batch)
    c = np.where(positive, -scale, np.where(cos - margin >= 0, scale, 0.0))
    result = np.empty_like(x) if out is None else out.reshape(x.shape)
    np.multiply(b, (c / denom).astype(p.dtype)[:, None], out=result[:, 0])
    result[:, 0] -= (c * cos / na).astype(p.dtype)[:, None] * a
    np.multiply(a, (c / denom).astype(p.dtype)[:, None], out=result[:, 1])
    result[:, 1] -= (c * cos / nb).astype(p.dtype)[:, None] * b
    return _total(total, reduction, batch), (result.reshape(p.shape) if out is None else out)


def ref_margin_ranking(p, t, *, grad=True, out=None, reduction="mean", margin=0.0):
    """max(0, -y (x1 - x2) + margin) on rank pairs (B, 2) (or one (2,)); the hinge passes its
    gradient at the tie (PyTorch's clamp_min)."""
    x = p.reshape(1, 2) if p.ndim == 1 else p
    batch = x.shape[0]
    y = np.reshape(t, batch)
    z = np.subtract(x[:, 0], x[:, 1])
    np.multiply(z, -y, out=z)
    z += margin
    total = float(np.maximum(z, 0.0).sum())
    if not grad:
        return _total(total, reduction, batch), None
    c = np.where(z >= 0, -y * _scale(reduction, batch), 0.0).astype(p.dtype, copy=False)
    result = np.empty_like(x) if out is None else out.reshape(x.shape)
    result[:, 0] = c
    np.negative(c, out=result[:, 1])
    return _total(total, reduction, batch), (result.reshape(p.shape) if out is None else out)


REFERENCES: dict[str, Callable[..., tuple[float, np.ndarray | None]]] = {
    "mse": ref_mse,
    "l1": ref_l1,
    "huber": ref_huber,
    "smooth_l1": ref_smooth_l1,
    "binary_cross_entropy": ref_binary_cross_entropy,
    "bce_with_logits": ref_bce_with_logits,
    "sigmoid_focal": ref_sigmoid_focal,
    "cross_entropy": ref_cross_entropy,
    "focal": ref_focal,
    "contrastive": ref_contrastive,
    "triplet": ref_triplet,
    "log_cosh": ref_log_cosh,
    "pseudo_huber": ref_pseudo_huber,
    "quantile": ref_quantile,
    "poisson_nll": ref_poisson_nll,
    "gaussian_nll": ref_gaussian_nll,
    "nll": ref_nll,
    "kl_div": ref_kl_div,
    "hinge_embedding": ref_hinge_embedding,
    "multi_margin": ref_multi_margin,
    "soft_margin": ref_soft_margin,
    "multilabel_soft_margin": ref_multilabel_soft_margin,
    "poly1": ref_poly1,
    "cosine_embedding": ref_cosine_embedding,
    "margin_ranking": ref_margin_ranking,
}


def reference(loss: str, predictions: np.ndarray, targets: Any = None, *, grad: bool = True,
              out: np.ndarray | None = None, reduction: str = "mean",
              **params: Any) -> tuple[float, np.ndarray | None]:
    """The NumPy reference's (value, gradient) of ``loss`` (gradient None when not ``grad``)."""
    return REFERENCES[canonical(loss)](predictions, targets, grad=grad, out=out,
                                       reduction=reduction, **params)


# ---------------------------------------------------------------------------------------------
# Peers: each returns a zero-argument callable that runs one value+grad, or raises Skip
# ---------------------------------------------------------------------------------------------


class Skip(Exception):
    """A peer that cannot run this case; the message says why."""


@functools.cache
def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise Skip("not installed") from None
    torch.set_num_threads(2)
    return torch


@functools.cache
def _jax() -> Any:
    try:
        import jax
    except ImportError:
        raise Skip("not installed") from None
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_enable_x64", True)
    return jax


@functools.cache
def _sklearn_loss() -> Any:
    try:
        from sklearn._loss import loss as sk_loss
    except ImportError:
        raise Skip("not installed") from None
    return sk_loss


def _as_tensor(value: Any) -> Any:
    """A NumPy array option as a tensor (made once, outside the timed region); None stays."""
    return None if value is None else _torch().from_numpy(np.asarray(value))


def _torch_loss(name: str, params: dict[str, Any]) -> Callable[..., Any]:
    torch = _torch()
    F = torch.nn.functional
    if name == "mse":
        return F.mse_loss
    if name == "l1":
        return F.l1_loss
    if name == "huber":
        return lambda x, t: F.huber_loss(x, t, delta=params.get("delta", 1.0))
    if name == "smooth_l1":
        return lambda x, t: F.smooth_l1_loss(x, t, beta=params.get("beta", 1.0))
    if name == "binary_cross_entropy":
        return F.binary_cross_entropy
    if name == "bce_with_logits":
        return F.binary_cross_entropy_with_logits
    if name == "sigmoid_focal":  # torchvision.ops.sigmoid_focal_loss's code, mean reduction
        alpha, gamma = params.get("alpha", 0.25), params.get("gamma", 2.0)

        def sigmoid_focal(x, t):
            prob = torch.sigmoid(x)
            ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
            p_t = prob * t + (1 - prob) * (1 - t)
            loss = ce * ((1 - p_t) ** gamma)
            if alpha >= 0:
                loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
            return loss.mean()
        return sigmoid_focal
    if name == "cross_entropy":
        return F.cross_entropy
    if name == "focal":
        gamma = params.get("gamma", 2.0)
        if params.get("alpha") is not None:
            raise Skip("options differ")

        def focal(x, y):
            logp = F.log_softmax(x, dim=1).gather(1, y[:, None]).squeeze(1)
            return (-((1 - logp.exp()) ** gamma) * logp).mean()
        return focal
    if name == "contrastive":
        margin = params.get("margin", 1.0)

        def contrastive(x, y):
            d2 = ((x[:, 0] - x[:, 1]) ** 2).sum(dim=1)
            gap = torch.clamp(margin - d2.sqrt(), min=0)
            return (y * d2 + (1 - y) * gap * gap).mean()
        return contrastive
    if name == "triplet":
        margin, eps = params.get("margin", 1.0), params.get("eps", 1e-6)
        norm, swap = params.get("p", 2.0), params.get("swap", False)
        return lambda x: F.triplet_margin_loss(x[:, 0], x[:, 1], x[:, 2], margin=margin,
                                               p=norm, eps=eps, swap=swap)
    if name == "log_cosh":  # optax's form; torch.log(torch.cosh(e)) overflows
        log2 = math.log(2.0)

        def log_cosh(x, t):
            e = x - t
            return (torch.logaddexp(e, -e) - log2).mean()
        return log_cosh
    if name == "pseudo_huber":
        delta = params.get("delta", 1.0)
        return lambda x, t: (delta * delta * (torch.sqrt(1 + ((x - t) / delta) ** 2) - 1)).mean()
    if name == "quantile":  # torch.maximum splits the gradient at the tie: 0.5 - q
        q = params.get("quantile", 0.5)

        def quantile(x, t):
            e = t - x
            return torch.maximum(q * e, (q - 1) * e).mean()
        return quantile
    if name == "poisson_nll":
        options = {k: params[k] for k in ("log_input", "full", "eps") if k in params}
        return lambda x, t: F.poisson_nll_loss(x, t, **options)
    if name == "gaussian_nll":
        var = params.get("var")
        var = float(var) if np.ndim(var) == 0 else torch.from_numpy(np.asarray(var))
        options = {k: params[k] for k in ("full", "eps") if k in params}
        return lambda x, t: F.gaussian_nll_loss(x, t, var, **options)
    if name == "nll":
        options = {"weight": _as_tensor(params.get("weight")),
                   "ignore_index": params.get("ignore_index", -100)}
        return lambda x, y: F.nll_loss(x, y, **options)
    if name == "kl_div":  # "sum" / numel: "mean" warns on every call
        log_target = params.get("log_target", False)
        return lambda x, t: F.kl_div(x, t, reduction="sum", log_target=log_target) / x.numel()
    if name == "hinge_embedding":
        margin = params.get("margin", 1.0)
        return lambda x, t: F.hinge_embedding_loss(x, t, margin=margin)
    if name == "multi_margin":
        options = {"p": params.get("p", 1), "margin": params.get("margin", 1.0),
                   "weight": _as_tensor(params.get("weight"))}
        return lambda x, y: F.multi_margin_loss(x, y, **options)
    if name == "soft_margin":
        return F.soft_margin_loss
    if name == "multilabel_soft_margin":
        weight = _as_tensor(params.get("weight"))
        return lambda x, t: F.multilabel_soft_margin_loss(x, t, weight=weight)
    if name == "poly1":  # optax.poly_loss_cross_entropy's form, with class indices
        epsilon = params.get("epsilon", 1.0)
        ignore_index = params.get("ignore_index", -100)

        def poly1(x, y):
            ce = F.cross_entropy(x, y, reduction="none", ignore_index=ignore_index)
            kept = y != ignore_index
            return ((ce + epsilon * -torch.expm1(-ce)) * kept).sum() / kept.sum()
        return poly1
    if name == "cosine_embedding":
        margin = params.get("margin", 0.0)
        return lambda x, y: F.cosine_embedding_loss(x[:, 0], x[:, 1], y, margin=margin)
    if name == "margin_ranking":
        margin = params.get("margin", 0.0)
        return lambda x, y: F.margin_ranking_loss(x[:, 0], x[:, 1], y, margin=margin)
    raise Skip("no equivalent loss")


def torch_peer(inputs: Inputs) -> Callable[[], Any]:
    """loss + backward with PyTorch autograd (2 threads); ``.grad`` reset to None each call."""
    torch = _torch()
    fn = _torch_loss(inputs.loss, inputs.params)
    x = torch.from_numpy(inputs.predictions).requires_grad_()
    args: tuple[Any, ...] = (x,)
    if inputs.targets is not None:
        t = torch.from_numpy(inputs.targets)
        if inputs.loss == "contrastive":
            t = t.to(x.dtype)
        args = (x, t)

    def run() -> Any:
        x.grad = None
        loss = fn(*args)
        loss.backward()
        return loss
    return run


def _jax_loss(name: str, params: dict[str, Any]) -> Callable[..., Any]:
    jax = _jax()
    jnp = jax.numpy
    if name == "mse":
        return lambda x, t: jnp.mean((x - t) ** 2)
    if name == "l1":
        return lambda x, t: jnp.mean(jnp.abs(x - t))
    if name in ("huber", "smooth_l1"):
        delta = params.get("delta", params.get("beta", 1.0))
        divide = delta if name == "smooth_l1" else 1.0

        def huber(x, t):
            e = jnp.abs(x - t)
            return jnp.mean(jnp.where(e < delta, 0.5 * e * e, delta * (e - 0.5 * delta))) / divide
        return huber
    if name == "binary_cross_entropy":
        return lambda x, t: -jnp.mean(t * jnp.maximum(jnp.log(x), -100.0)
                                      + (1 - t) * jnp.maximum(jnp.log1p(-x), -100.0))
    if name == "bce_with_logits":  # optax.sigmoid_binary_cross_entropy's form
        return lambda x, t: jnp.mean(-t * jax.nn.log_sigmoid(x) - (1 - t) * jax.nn.log_sigmoid(-x))
    if name == "sigmoid_focal":  # optax.sigmoid_focal_loss's form
        alpha, gamma = params.get("alpha", 0.25), params.get("gamma", 2.0)

        def sigmoid_focal(x, t):
            prob = jax.nn.sigmoid(x)
            ce = -t * jax.nn.log_sigmoid(x) - (1 - t) * jax.nn.log_sigmoid(-x)
            p_t = prob * t + (1 - prob) * (1 - t)
            loss = ce * (1 - p_t) ** gamma
            if alpha >= 0:
                loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
            return jnp.mean(loss)
        return sigmoid_focal
    if name == "cross_entropy":  # optax.softmax_cross_entropy_with_integer_labels's form
        def cross_entropy(x, y):
            logp = jax.nn.log_softmax(x, axis=1)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
        return cross_entropy
    if name == "focal":
        gamma = params.get("gamma", 2.0)
        if params.get("alpha") is not None:
            raise Skip("options differ")

        def focal(x, y):
            logp = jnp.take_along_axis(jax.nn.log_softmax(x, axis=1), y[:, None], axis=1)
            return jnp.mean(-((1 - jnp.exp(logp)) ** gamma) * logp)
        return focal
    if name == "contrastive":
        margin = params.get("margin", 1.0)

        def contrastive(x, y):
            d2 = jnp.sum((x[:, 0] - x[:, 1]) ** 2, axis=1)
            gap = jnp.maximum(margin - jnp.sqrt(d2), 0.0)
            return jnp.mean(y * d2 + (1 - y) * gap * gap)
        return contrastive
    if name == "triplet":
        margin, eps = params.get("margin", 1.0), params.get("eps", 1e-6)

        def triplet(x):
            d_ap = jnp.sqrt(jnp.sum((x[:, 0] - x[:, 1] + eps) ** 2, axis=1))
            d_an = jnp.sqrt(jnp.sum((x[:, 0] - x[:, 2] + eps) ** 2, axis=1))
            return jnp.mean(jnp.maximum(d_ap - d_an + margin, 0.0))
        if params.get("p", 2.0) != 2.0 or params.get("swap", False):
            raise Skip("only p=2 without swap")
        return triplet
    if name == "log_cosh":  # optax.log_cosh
        return lambda x, t: jnp.mean(jnp.logaddexp(x - t, t - x) - jnp.log(2.0))
    if name == "pseudo_huber":
        delta = params.get("delta", 1.0)
        return lambda x, t: jnp.mean(delta * delta * (jnp.sqrt(1 + ((x - t) / delta) ** 2) - 1))
    if name == "quantile":
        q = params.get("quantile", 0.5)
        return lambda x, t: jnp.mean(jnp.maximum(q * (t - x), (q - 1) * (t - x)))
    if name == "poisson_nll":
        if params.get("log_input", True) is False or params.get("full", False):
            raise Skip("only log_input=True without full")
        return lambda x, t: jnp.mean(jnp.exp(x) - t * x)
    if name == "gaussian_nll":
        eps = params.get("eps", 1e-6)
        if params.get("full", False):
            raise Skip("only full=False")

        def gaussian_nll(x, t, var):  # var: a float or broadcastable, as in PyTorch
            if jnp.ndim(var) == x.ndim - 1 and jnp.ndim(var):
                var = var[..., None]
            v = jnp.maximum(var, eps)
            return jnp.mean(0.5 * (jnp.log(v) + (x - t) ** 2 / v))
        return gaussian_nll
    if name == "nll":
        if params.get("weight") is not None:
            raise Skip("options differ")
        return lambda x, y: -jnp.mean(jnp.take_along_axis(x, y[:, None], axis=1))
    if name == "kl_div":  # optax.kl_divergence_with_log_targets / kl_divergence, per element
        if params.get("log_target", False):
            return lambda x, t: jnp.mean(jnp.exp(t) * (t - x))
        return lambda x, t: jnp.mean(t * (jnp.where(t == 0, 0.0, jnp.log(t)) - x))
    if name == "hinge_embedding":
        margin = params.get("margin", 1.0)
        return lambda x, t: jnp.mean(jnp.where(t == 1, x, jnp.maximum(margin - x, 0.0)))
    if name == "multi_margin":
        power, margin = params.get("p", 1), params.get("margin", 1.0)
        if params.get("weight") is not None:
            raise Skip("options differ")

        def multi_margin(x, y):
            z = margin - jnp.take_along_axis(x, y[:, None], axis=1) + x
            h = jnp.where(jnp.arange(x.shape[1]) == y[:, None], 0.0, jnp.maximum(z, 0.0))
            return jnp.mean(jnp.sum(h if power == 1 else h * h, axis=1)) / x.shape[1]
        return multi_margin
    if name == "soft_margin":
        return lambda x, t: jnp.mean(jax.nn.softplus(-t * x))
    if name == "multilabel_soft_margin":
        if params.get("weight") is not None:
            raise Skip("options differ")
        return lambda x, t: jnp.mean(-t * jax.nn.log_sigmoid(x) - (1 - t) * jax.nn.log_sigmoid(-x))
    if name == "poly1":  # optax.poly_loss_cross_entropy's form, with class indices
        epsilon = params.get("epsilon", 1.0)

        def poly1(x, y):
            logp = jnp.take_along_axis(jax.nn.log_softmax(x, axis=1), y[:, None], axis=1)
            return jnp.mean(-logp + epsilon * (1 - jnp.exp(logp)))
        return poly1
    if name == "cosine_embedding":
        margin = params.get("margin", 0.0)

        def cosine_embedding(x, y):
            a, b = x[:, 0], x[:, 1]
            cos = jnp.sum(a * b, axis=1) / jnp.sqrt((jnp.sum(a * a, axis=1) + 1e-12)
                                                    * (jnp.sum(b * b, axis=1) + 1e-12))
            return jnp.mean(jnp.where(y == 1, 1 - cos, jnp.maximum(cos - margin, 0.0)))
        return cosine_embedding
    if name == "margin_ranking":
        margin = params.get("margin", 0.0)
        return lambda x, y: jnp.mean(jnp.maximum(-y * (x[:, 0] - x[:, 1]) + margin, 0.0))
    raise Skip("no equivalent loss")


def jax_peer(inputs: Inputs) -> Callable[[], Any]:
    """``jax.jit(jax.value_and_grad(f))`` on the CPU, blocked until ready."""
    jax = _jax()
    fn = jax.jit(jax.value_and_grad(_jax_loss(inputs.loss, inputs.params)))
    args: tuple[Any, ...] = (jax.device_put(inputs.predictions),)
    if inputs.targets is not None:
        t = inputs.targets
        if inputs.loss == "contrastive":
            t = t.astype(inputs.predictions.dtype)
        args += (jax.device_put(t),)
    if inputs.loss == "gaussian_nll":  # var is an argument, not a constant folded into f
        var = inputs.params.get("var")
        args += (var if np.ndim(var) == 0 else jax.device_put(var),)

    def run() -> Any:
        return jax.block_until_ready(fn(*args))
    return run


#: lossjit loss -> (sklearn._loss class name, constructor arguments from the loss options).
SKLEARN_LOSSES: dict[str, tuple[str, Callable[[dict[str, Any], tuple[int, ...]], dict]]] = {
    "mse": ("HalfSquaredError", lambda params, shape: {}),
    "l1": ("AbsoluteError", lambda params, shape: {}),
    "huber": ("HuberLoss", lambda params, shape: {"delta": params.get("delta", 1.0)}),
    "smooth_l1": ("HuberLoss", lambda params, shape: {"delta": params.get("beta", 1.0)}),
    "bce_with_logits": ("HalfBinomialLoss", lambda params, shape: {}),
    "cross_entropy": ("HalfMultinomialLoss", lambda params, shape: {"n_classes": shape[1]}),
    "quantile": ("PinballLoss", lambda params, shape: {"quantile": params.get("quantile", 0.5)}),
    "poisson_nll": ("HalfPoissonLoss", lambda params, shape: {}),
}


def sklearn_peer(inputs: Inputs) -> Callable[[], Any]:
    """``sklearn._loss`` ``loss_gradient`` into preallocated buffers, n_threads=2, + sum."""
    if inputs.loss not in SKLEARN_LOSSES or inputs.predictions.ndim > 2:
        raise Skip("no equivalent loss")
    if inputs.params:
        raise Skip("options differ")
    sk_loss = _sklearn_loss()
    cls, kwargs = SKLEARN_LOSSES[inputs.loss]
    loss = getattr(sk_loss, cls)(**kwargs(inputs.params, inputs.shape))
    raw = inputs.predictions
    y = np.ascontiguousarray(inputs.targets, dtype=raw.dtype)
    loss_out = np.empty(raw.shape[0], dtype=raw.dtype)
    gradient_out = np.empty_like(raw)

    def run() -> float:
        loss.loss_gradient(y, raw, loss_out=loss_out, gradient_out=gradient_out, n_threads=2)
        return float(loss_out.sum())
    return run


def numpy_peer(inputs: Inputs, *, grad: bool = True) -> Callable[[], Any]:
    ref = REFERENCES[inputs.loss]
    p, t, params = inputs.predictions, inputs.targets, inputs.params
    return lambda: ref(p, t, grad=grad, **params)


PEER_FACTORIES = {"torch": torch_peer, "jax": jax_peer, "sklearn": sklearn_peer}


def peer_available(peer: str) -> str | None:
    """None when ``peer`` can be imported, else why not."""
    loader = {"torch": _torch, "jax": _jax, "sklearn": _sklearn_loss}.get(peer)
    if loader is None:
        return None
    try:
        loader()
    except Skip as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


def lossjit_calls(inputs: Inputs) -> dict[str, Callable[[], Any]]:
    """lossjit's timed calls: value_and_grad, with ``out=`` and value only."""
    import lossjit

    name, p, t, params = inputs.loss, inputs.predictions, inputs.targets, inputs.params
    buffer = np.empty_like(p)
    return {
        "lossjit": lambda: lossjit.value_and_grad(name, p, t, **params),
        "lossjit_out": lambda: lossjit.value_and_grad(name, p, t, out=buffer, **params),
        "lossjit_value": lambda: lossjit.loss(name, p, t, **params),
    }


def run_case(loss: str, shape: int | Sequence[int], dtype: Any = np.float64, *,
             value_only: bool = False, peers: Sequence[str] = PEERS, out: bool = True,
             repeat: int = 7, min_time: float = 0.2, max_time: float = 5.0,
             seed: int = 0, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Median seconds per value+grad call of lossjit and its peers on one case.

    ``shape`` is an element count or the predictions' shape (see :func:`shape_for`);
    ``params`` are options of the loss (default: its defaults, and what :func:`make_inputs`
    supplies where one is required, such as gaussian_nll's var).
    Returns ``{"loss", "shape", "dtype", "elements", "bytes", "times": {impl: median s},
    "samples": {impl: [s, ...]}, "skipped": {peer: why}}``. Implementations: ``lossjit``
    (allocating its gradient), ``lossjit_out`` (with ``out=``, when ``out``),
    ``lossjit_value`` and ``numpy_value`` (value only, when ``value_only``), ``numpy``,
    ``torch``, ``jax`` and ``sklearn`` (those in ``peers`` that are installed and have the
    loss). ``"foreign_load"`` is the CPU other processes used meanwhile, in cores.
    """
    inputs = make_inputs(loss, shape, dtype, seed=seed, params=params)
    calls = lossjit_calls(inputs)
    fns: dict[str, Callable[[], Any]] = {"lossjit": calls["lossjit"]}
    if out:
        fns["lossjit_out"] = calls["lossjit_out"]
    if value_only:
        fns["lossjit_value"] = calls["lossjit_value"]
    skipped: dict[str, str] = {}
    for peer in peers:
        if peer == "numpy":
            fns["numpy"] = numpy_peer(inputs)
            if value_only:
                fns["numpy_value"] = numpy_peer(inputs, grad=False)
            continue
        try:
            fns[peer] = PEER_FACTORIES[peer](inputs)
        except Skip as exc:
            skipped[peer] = str(exc)
        except KeyError:
            skipped[peer] = "unknown peer"
    with ForeignLoad() as meter:
        samples = time_many(fns, repeat=repeat, min_time=min_time, max_time=max_time)
    return {
        "loss": inputs.loss,
        "shape": list(inputs.shape),
        "dtype": np.dtype(dtype).name,
        "elements": inputs.size,
        "bytes": {"value_and_grad": inputs.nbytes(), "value": inputs.nbytes(grad=False)},
        "times": {name: median(values) for name, values in samples.items()},
        "samples": samples,
        "skipped": skipped,
        "foreign_load": meter.load,
    }


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def format_time(seconds: float | None) -> str:
    """12.3us, 4.56ms or 1.23s; "-" for None."""
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f}us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f}ms"
    return f"{seconds:.2f}s"


def format_ratio(value: float | None) -> str:
    """2.50x; "-" for None."""
    return "-" if value is None else f"{value:.2f}x"


def format_shape(shape: list[int]) -> str:
    """1e7 for (10000000,), 8192x1000 for (8192, 1000)."""
    if len(shape) == 1:
        n = shape[0]
        exponent = int(round(math.log10(n))) if n > 0 else 0
        return f"1e{exponent}" if 10 ** exponent == n else str(n)
    return "x".join(str(s) for s in shape)


def speedup(case: dict[str, Any], peer: str, base: str) -> float | None:
    """peer time / base time in a :func:`run_case` result (> 1: base is faster)."""
    times = case["times"]
    if peer not in times or base not in times or not times[base]:
        return None
    return float(times[peer] / times[base])


def add_bandwidth(case: dict[str, Any], triad_gbs: float, triad_source: str = "") -> None:
    """Add lossjit's GB/s and its fraction of ``triad_gbs`` to a non-class case."""
    if family(case["loss"]) == "classes":
        return
    times = case["times"]
    grad_bytes = case["bytes"]["value_and_grad"]
    value_bytes = case["bytes"]["value"]
    gbs = {}
    for name, moved in (("lossjit", grad_bytes), ("lossjit_out", grad_bytes),
                        ("lossjit_value", value_bytes)):
        if name in times:
            gbs[name] = moved / times[name] / 1e9
    case["gbs"] = gbs
    case["triad_gbs"] = triad_gbs
    case["triad_source"] = triad_source
    case["fraction_of_triad"] = {name: value / triad_gbs for name, value in gbs.items()}


#: The table's columns: lossjit's medians (value_and_grad, with out=, value only), then
#: speed-ups (peer time / lossjit time; sklearn against the out= call, np-val against value
#: only), lossjit's GB/s with out= and its share of the triad, and the foreign CPU load.
TABLE_HEADER = (f"{'loss':<22} {'shape':<12} {'dtype':<7} {'lossjit':>9} {'+out':>9} "
                f"{'value':>9} | {'numpy':>7} {'np-val':>7} {'torch':>7} {'jax':>7} "
                f"{'sklearn':>7} | {'out GB/s':>8} {'%triad':>6} {'load':>4}")


def table_row(case: dict[str, Any]) -> str:
    """One line of the table under :data:`TABLE_HEADER` for a :func:`run_case` result
    (after :func:`add_bandwidth` for the GB/s columns)."""
    times = case["times"]
    gbs = case.get("gbs", {}).get("lossjit_out")
    frac = case.get("fraction_of_triad", {}).get("lossjit_out")
    load = case.get("foreign_load")
    return (f"{case['loss']:<22} {format_shape(case['shape']):<12} {case['dtype']:<7} "
            f"{format_time(times.get('lossjit')):>9} {format_time(times.get('lossjit_out')):>9} "
            f"{format_time(times.get('lossjit_value')):>9} "
            f"| {format_ratio(speedup(case, 'numpy', 'lossjit')):>7} "
            f"{format_ratio(speedup(case, 'numpy_value', 'lossjit_value')):>7} "
            f"{format_ratio(speedup(case, 'torch', 'lossjit')):>7} "
            f"{format_ratio(speedup(case, 'jax', 'lossjit')):>7} "
            f"{format_ratio(speedup(case, 'sklearn', 'lossjit_out')):>7} "
            f"| {('-' if gbs is None else f'{gbs:.1f}'):>8} "
            f"{('-' if frac is None else f'{100 * frac:.0f}%'):>6} "
            f"{('-' if load is None else f'{load:.1f}'):>4}")


# ---------------------------------------------------------------------------------------------
# Memory bandwidth
# ---------------------------------------------------------------------------------------------


@functools.cache
def _triad_kernel() -> Any:
    import numba

    @numba.njit(parallel=True, cache=False)
    def triad(a, b, c, s):  # pragma: no cover - compiled
        for i in numba.prange(a.size):
            a[i] = b[i] + s * c[i]

    return triad


_triad_arrays: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def triad_bandwidth(n: float = 2e7, threads: int | None = 2, *, repeat: int = 10,
                    keep: bool = True) -> dict[str, float]:
    """STREAM triad ``a = b + s c`` on float64 arrays of ``n`` numbers with ``threads``
    Numba threads (None: Numba's default). Bytes counted: 3 arrays x 8 bytes x n, as STREAM
    does (no write-allocate traffic). Returns ``{"gbs": median GB/s, "best_gbs", "threads",
    "n"}``. The arrays are kept for later calls unless ``keep`` is false."""
    import numba

    n = int(n)
    kernel = _triad_kernel()
    if n not in _triad_arrays:
        b = np.full(n, 1.0)
        c = np.full(n, 2.0)
        _triad_arrays[n] = (np.zeros(n), b, c)
    a, b, c = _triad_arrays[n]
    before = numba.get_num_threads()
    count = min(threads or before, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(count)
    try:
        kernel(a, b, c, 3.0)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            kernel(a, b, c, 3.0)
            times.append(time.perf_counter() - start)
    finally:
        numba.set_num_threads(before)
        if not keep:
            _triad_arrays.pop(n, None)
    moved = 3 * 8 * n
    return {"gbs": moved / median(times) / 1e9, "best_gbs": moved / min(times) / 1e9,
            "threads": count, "n": n}


def release_triad_arrays() -> None:
    _triad_arrays.clear()


# ---------------------------------------------------------------------------------------------
# Machine
# ---------------------------------------------------------------------------------------------

_VERSION_OF = {"numpy": "numpy", "numba": "numba", "llvmlite": "llvmlite", "torch": "torch",
               "jax": "jax", "jaxlib": "jaxlib", "sklearn": "scikit-learn", "scipy": "scipy",
               "lossjit": "lossjit", "click": "click"}

_THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "OMP_NUM_THREADS",
                     "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
                     "OPENBLAS_L2_SIZE", "XLA_FLAGS", "NUMBA_CACHE_DIR")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(("avx", "fma", "sse4")))
    except OSError:
        pass
    return []


def machine_info() -> dict[str, Any]:
    """CPU model, cores, versions of lossjit and its peers, and the thread settings."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for key, dist in _VERSION_OF.items():
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    threads: dict[str, Any] = {
        "environment": {k: os.environ.get(k) for k in _THREAD_VARIABLES if k in os.environ},
    }
    if sys.modules.get("numba") is not None:
        import numba

        threads["numba_num_threads"] = numba.get_num_threads()
        try:
            threads["numba_threading_layer"] = numba.threading_layer()
        except ValueError:
            threads["numba_threading_layer"] = "not yet chosen"
    if sys.modules.get("torch") is not None:
        threads["torch_num_threads"] = sys.modules["torch"].get_num_threads()
    try:
        from threadpoolctl import threadpool_info

        threads["threadpools"] = [
            {k: pool.get(k) for k in ("internal_api", "num_threads", "architecture", "version")}
            for pool in threadpool_info()
        ]
    except ImportError:
        pass
    return {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "threads": threads,
    }
