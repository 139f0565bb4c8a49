"""NumPy references: value and gradient of every built-in loss, vectorised, in the
input's dtype.

Each takes (p, t, *, grad=True, out=None, reduction="mean", **params) and returns
(value, gradient or None). ``out`` receives the gradient when given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from lossjit_bench.names import canonical

#: PyTorch's floor on x (1 - x) in the binary_cross_entropy gradient: 1e-12 as a float32.
BCE_FLOOR = 9.999999960041972e-13
#: PyTorch's 1e-12 added to the squared norms in cosine_embedding_loss, which its kernel
#: rounds to a float32 (also for float64 inputs): it shows where a norm is about 0.
COSINE_EPS = 9.999999960041972e-13


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


def ref_tweedie(p, t, *, grad=True, out=None, reduction="mean", power=1.5):
    """-y exp((1-q) x)/(1-q) + exp((2-q) x)/(2-q), q the power; gradient
    -y exp((1-q) x) + exp((2-q) x)."""
    low = np.exp((1.0 - power) * p)
    high = np.exp((2.0 - power) * p)
    total = float(high.sum()) / (2.0 - power) - _flat_dot(t, low) / (1.0 - power)
    if not grad:
        return _total(total, reduction, p.size), None
    g = np.multiply(t, low, out=out)
    np.subtract(high, g, out=g)
    np.multiply(g, _scale(reduction, p.size), out=g)
    return _total(total, reduction, p.size), g


def ref_gamma_nll(p, t, *, grad=True, out=None, reduction="mean"):
    """x + y exp(-x); gradient 1 - y exp(-x)."""
    scaled = np.exp(-p)
    np.multiply(scaled, t, out=scaled)
    total = float(p.sum()) + float(scaled.sum())
    if not grad:
        return _total(total, reduction, p.size), None
    g = np.subtract(1.0, scaled, out=out)
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
    "tweedie": ref_tweedie,
    "gamma_nll": ref_gamma_nll,
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
