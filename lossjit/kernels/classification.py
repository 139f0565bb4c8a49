"""Classification losses: softmax cross-entropy and focal, binary cross-entropy, sigmoid focal.

Class-axis kernels take ``x`` as ``(rows, C)``: one row of C logits (or probabilities) per
loss term; PyTorch's ``(N, C, d1..dk)`` inputs are laid out that way by
:mod:`lossjit.layouts`. Targets are ``(rows,)`` class indices (``*_index``) or ``(rows, C)``
probabilities (``*_soft``, ``*_probs``); per-term weights and outputs are ``(rows,)``. Every
kernel follows the signature in :mod:`lossjit.kernels._blocks`.

Softmax is log-sum-exp with the row's maximum subtracted, so no finite logit overflows; the
exponentials use the vectorising ``exp`` of :mod:`lossjit.kernels._stable` and are added in
lanes. A -inf logit is a masked class that contributes exactly 0; a -inf logit at the target
gives a loss of +inf.

>>> import numpy as np
>>> from lossjit.kernels import cross_entropy_index
>>> x, y = np.array([[1.0, 2.0, 0.5]]), np.array([1])
>>> none = np.empty(0)
>>> round(cross_entropy_index(x, y, none, np.empty((0, 0)), none, 1.0, none, -100, 0.0), 6)
0.464369
"""

from __future__ import annotations

import math

import numpy as np

from lossjit._jit import jit
from lossjit.kernels._blocks import LANES, elementwise_kernels, lane_sum, row_kernels
from lossjit.kernels._stable import exp, exp_as, log, log1p_as, log_as, logistic_as


@jit
def _row_max(x, r, lanes):
    """max_c x[r, c] (NaN if any is NaN); in ``LANES`` interleaved lanes for long rows."""
    classes = x.shape[1]
    whole = classes - classes % LANES if classes >= 4 * LANES else 0
    for k in range(LANES):
        lanes[k] = -math.inf
    for start in range(0, whole, LANES):
        for k in range(LANES):
            v = float(x[r, start + k])
            top = lanes[k]
            lanes[k] = v if (v > top or v != v) else top
    top = lanes[0]
    for k in range(1, LANES):
        v = lanes[k]
        top = v if (v > top or v != v) else top
    for c in range(whole, classes):
        v = float(x[r, c])
        top = v if (v > top or v != v) else top
    return top


@jit
def _softmax_row(x, r, e, lanes):
    """Fill e[c] = exp(x[r, c] - max) and return (max, sum_c e[c], log-sum-exp)."""
    top = _row_max(x, r, lanes)
    for c in range(x.shape[1]):
        e[c] = exp(float(x[r, c]) - top)
    total = lane_sum(e, lanes)
    return top, total, top + log(total)


#: Rows at most this long are worked on across rows (a transposed copy), longer ones along
#: the row: either way the loops vectorise.
SHORT_ROWS = 32


@jit
def _softmax_block(x, e, top, mass, lse):
    """For every row r of the block: top[r] = max_c x[r, c], e[r, c] = exp(x[r, c] - top[r]),
    mass[r] = sum_c e[r, c] (float64) and lse[r] = top[r] + log(mass[r]) (float64).

    ``e`` and ``top`` have the dtype of ``x``: float32 data is exponentiated in float32, twice
    as many lanes at a time; the sums and logarithms are float64 either way.
    """
    n, classes = x.shape
    if classes <= SHORT_ROWS:
        columns = np.empty((classes, n), x.dtype)
        for r in range(n):
            for c in range(classes):
                columns[c, r] = x[r, c]
        for r in range(n):
            top[r] = -np.inf
            mass[r] = 0.0
        for c in range(classes):
            for r in range(n):
                v = columns[c, r]
                t = top[r]
                top[r] = v if (v > t or v != v) else t
        for c in range(classes):
            for r in range(n):
                value = exp_as(columns[c, r] - top[r])
                columns[c, r] = value
                mass[r] += value
        for r in range(n):
            for c in range(classes):
                e[r, c] = columns[c, r]
    else:
        lanes = np.empty(LANES)
        for r in range(n):
            top[r] = _row_max(x, r, lanes)
            for c in range(classes):
                e[r, c] = exp_as(x[r, c] - top[r])
            mass[r] = lane_sum(e[r], lanes)
    for r in range(n):
        lse[r] = top[r] + log(mass[r])


@jit
def _clip(p, eps):
    """p clipped to [eps, 1]; NaN stays NaN."""
    if p < eps:
        return eps
    if p > 1.0:
        return 1.0
    return p


@jit
def _focal_factor(logp, gamma):
    """(1-p)^gamma and F = (1-p)^gamma (1 - gamma p log(p) / (1-p)), from log p.

    F is the factor of the softmax focal gradient: d/dx_j = F (p_j - [j = y]). It has the
    limit (1 + gamma p) (1-p)^gamma as p -> 1, which this form keeps finite.
    """
    if gamma == 0.0:
        return 1.0, 1.0
    p = math.exp(logp)
    u = -math.expm1(logp)
    modulating = u ** gamma
    if p == 0.0:
        return modulating, modulating
    if u == 0.0:
        return modulating, modulating * (1.0 + gamma * p)
    return modulating, modulating * (1.0 - gamma * p * logp / u)


@jit
def _class_weights(weight, classes):
    """The per-class weights as a float64 vector (ones when ``weight`` is empty), so that
    loops read them unconditionally and vectorise."""
    weights = np.ones(classes)
    if weight.size:
        for c in range(classes):
            weights[c] = weight[c]
    return weights


@jit
def cross_entropy_index_block(x, y, w, grad, losses, scale, weight, ignore_index, smoothing):
    """-(1-e) w_y log p_y - (e/C) sum_c w_c log p_c, p = softmax(x); grad w.r.t. x."""
    n, classes = x.shape
    weights = _class_weights(weight, classes)
    keep = 1.0 - smoothing
    spread = smoothing / classes
    lanes = np.empty(LANES)
    weight_sum = lane_sum(weights, lanes)
    e = np.empty((n, classes), x.dtype)
    top, mass, lse, values = np.empty(n, x.dtype), np.empty(n), np.empty(n), np.empty(n)
    parts = np.empty(classes)
    _softmax_block(x, e, top, mass, lse)
    term_weights = _term_weights(w, n)
    for r in range(n):  # gathers first, so that the arithmetic below vectorises
        kept = y[r] != ignore_index
        target = y[r] if kept else 0
        values[r] = (keep * weights[target] * (lse[r] - float(x[r, target])) * term_weights[r]
                     if kept else 0.0)
    if smoothing != 0.0:
        for r in range(n):
            if y[r] != ignore_index:
                for c in range(classes):
                    parts[c] = weights[c] * (lse[r] - float(x[r, c]))
                values[r] += spread * lane_sum(parts, lanes) * term_weights[r]
    if grad.size:
        share, even, pull = np.empty(n), np.empty(n), np.empty(n)
        for r in range(n):
            target = y[r] if y[r] != ignore_index else 0
            g = term_weights[r] * scale
            share[r] = (keep * weights[target] + spread * weight_sum) * g / mass[r]
            even[r] = spread * g
            pull[r] = keep * weights[target] * g
        _softmax_grad(grad, e, y, ignore_index, share, even, weights, pull)
    return _terms_total(values, losses, lanes)


@jit
def cross_entropy_probs_block(x, y, w, grad, losses, scale, weight, smoothing, eps):
    """-sum_c w_c q_c log clip(p_c, eps, 1) on probabilities; grad -w_c q_c / p_c in the clip."""
    n, classes = x.shape
    weighted = weight.size > 0
    keep = 1.0 - smoothing
    spread = smoothing / classes
    parts = np.empty(classes)
    lanes = np.empty(LANES)
    total = 0.0
    for r in range(n):
        term_weight = w[r] if w.size else 1.0
        for c in range(classes):
            q = (weight[c] if weighted else 1.0) * (keep * float(y[r, c]) + spread)
            p = float(x[r, c])
            parts[c] = -q * log(_clip(p, eps))
            if grad.size:
                slope = -q / p if eps <= p <= 1.0 and q != 0.0 else 0.0
                grad[r, c] = (p if p != p else slope) * term_weight * scale
        value = lane_sum(parts, lanes) * term_weight
        if losses.size:
            losses[r] = value
        total += value
    return total


@jit
def _softmax_grad(grad, e, y, ignore_index, share, even, weights, pull):
    """The gradient of a softmax loss with class-index targets, row by row:
    grad[r, c] = e[r, c] share[r] - even[r] weights[c], then grad[r, y[r]] -= pull[r];
    ignored rows get zeros."""
    n, classes = grad.shape
    for r in range(n):
        target = y[r]
        if target == ignore_index:
            for c in range(classes):
                grad[r, c] = 0.0
            continue
        for c in range(classes):
            grad[r, c] = e[r, c] * share[r] - even[r] * weights[c]
        grad[r, target] -= pull[r]


@jit
def _terms_total(values, losses, lanes):
    """Copy the per-term losses out (``reduction="none"``) and return their sum."""
    if losses.size:
        for r in range(values.size):
            losses[r] = values[r]
    return lane_sum(values, lanes)


@jit
def _term_weights(w, n):
    """The per-term weights as a float64 vector (ones when ``w`` is empty)."""
    weights = np.ones(n)
    if w.size:
        for r in range(n):
            weights[r] = w[r]
    return weights


@jit
def focal_index_block(x, y, w, grad, losses, scale, alpha, gamma, ignore_index):
    """-alpha_y (1-p_y)^gamma log p_y, p = softmax(x); grad F (p_j - [j = y]).

    1 - p_y is taken as the softmax mass of the other classes, which keeps its precision as
    p_y -> 1. The per-row loop has no branches, so it vectorises across rows.
    """
    n, classes = x.shape
    alphas = _class_weights(alpha, classes)
    term_weights = _term_weights(w, n)
    e = np.empty((n, classes), x.dtype)
    top, mass, lse = np.empty(n, x.dtype), np.empty(n), np.empty(n)
    others, values, factors = np.zeros(n), np.empty(n), np.empty(n)
    _softmax_block(x, e, top, mass, lse)
    for c in range(classes):
        for r in range(n):
            others[r] += e[r, c] if c != y[r] else 0.0
    # gather each row's target entries first: the arithmetic below then vectorises
    kept = np.empty(n, np.bool_)
    at_target, e_target, a = np.empty(n), np.empty(n), np.empty(n)
    for r in range(n):
        kept[r] = y[r] != ignore_index
        target = y[r] if kept[r] else 0
        at_target[r] = x[r, target]
        e_target[r] = e[r, target]
        a[r] = alphas[target] * term_weights[r]
    for r in range(n):
        logp = at_target[r] - lse[r]
        p = e_target[r] / mass[r]
        u = others[r] / mass[r]
        modulating = 1.0 if gamma == 0.0 else exp(gamma * log(u))
        ratio = logp / u if u > 0.0 else -1.0  # log(p) / (1 - p) -> -1 as p -> 1
        bend = gamma * p * ratio if p > 0.0 else 0.0
        values[r] = -a[r] * modulating * logp if kept[r] else 0.0
        factors[r] = a[r] * modulating * (1.0 - bend) if kept[r] else 0.0
    if grad.size:
        share, even, pull = np.empty(n), np.zeros(n), np.empty(n)
        for r in range(n):
            pull[r] = factors[r] * scale
            share[r] = pull[r] / mass[r]
        _softmax_grad(grad, e, y, ignore_index, share, even, alphas, pull)
    return _terms_total(values, losses, np.empty(LANES))


@jit
def soft_targets_block(x, y, w, grad, losses, scale, weight, smoothing, gamma):
    """-sum_c a_c q_c (1-p_c)^gamma log p_c, p = softmax(x), q = (1-e) t + e/C: softmax
    cross-entropy with probability targets (gamma = 0, a = class weights) and softmax focal
    loss with one-hot or soft targets (e = 0, a = alpha). grad p_j sum_c F_c - F_j, with
    F_c = a_c q_c (1-p_c)^gamma (1 - gamma p_c log p_c / (1-p_c)).
    """
    n, classes = x.shape
    weights = _class_weights(weight, classes)
    keep = 1.0 - smoothing
    spread = smoothing / classes
    e = np.empty(classes)
    own = np.empty(classes)
    parts = np.empty(classes)
    lanes = np.empty(LANES)
    total = 0.0
    for r in range(n):
        _, mass, lse = _softmax_row(x, r, e, lanes)
        for c in range(classes):
            aq = weights[c] * (keep * float(y[r, c]) + spread)
            own[c] = 0.0
            parts[c] = 0.0
            if aq != 0.0:  # a class with no target mass adds exactly 0, even at a -inf logit
                logp = float(x[r, c]) - lse
                modulating, factor = _focal_factor(logp, gamma)
                parts[c] = -aq * modulating * logp
                own[c] = aq * factor
        term_weight = w[r] if w.size else 1.0
        value = lane_sum(parts, lanes) * term_weight
        if losses.size:
            losses[r] = value
        total += value
        if grad.size:
            weight_total = lane_sum(own, lanes)
            g = term_weight * scale
            inverse = 1.0 / mass
            for c in range(classes):
                grad[r, c] = (e[c] * inverse * weight_total - own[c]) * g
    return total


@jit
def focal_probs_block(x, y, w, grad, losses, scale, alpha, gamma, eps):
    """-sum_{t_c>0} alpha_c t_c (1-q)^gamma log q, q = clip(p_c, eps, 1), on probabilities.

    d/dp_c = -alpha_c t_c ((1-q)^gamma / q - gamma (1-q)^(gamma-1) log q) inside the clip,
    0 outside it.
    """
    n, classes = x.shape
    parts = np.empty(classes)
    lanes = np.empty(LANES)
    total = 0.0
    for r in range(n):
        term_weight = w[r] if w.size else 1.0
        for c in range(classes):
            at = (alpha[c] if alpha.size else 1.0) * float(y[r, c])
            p = float(x[r, c])
            q = _clip(p, eps)
            u = 1.0 - q
            slope = 0.0
            parts[c] = 0.0
            if at > 0.0:
                logq = math.log(q)
                parts[c] = -at * u ** gamma * logq
                if eps <= p <= 1.0:
                    bend = gamma * u ** (gamma - 1.0) * logq if u > 0.0 else 0.0
                    slope = -at * (u ** gamma / q - bend)
            if grad.size:
                grad[r, c] = (p if p != p else slope) * term_weight * scale
        value = lane_sum(parts, lanes) * term_weight
        if losses.size:
            losses[r] = value
        total += value
    return total


#: PyTorch's floor on x (1 - x) in the gradient of binary_cross_entropy: 1e-12 as a float32.
BCE_FLOOR = 9.999999960041972e-13


@jit(inline=True)
def binary_cross_entropy_pointwise(x, y, params):
    """-(y log x + (1-y) log(1-x)), logs clamped at -100; grad (x-y)/max(x(1-x), 1e-12).

    The logarithms are taken in the data's precision (float32 lanes for float32 data).
    """
    log_x = float(log_as(x))
    log_1mx = float(log1p_as(-x))
    x = float(x)
    y = float(y)
    log_x = -100.0 if log_x < -100.0 else log_x  # selects (NaN stays NaN): max() is a call
    log_1mx = -100.0 if log_1mx < -100.0 else log_1mx
    value = -(y * log_x + (1.0 - y) * log_1mx)
    spread = x * (1.0 - x)
    return value, (x - y) / (BCE_FLOOR if spread < BCE_FLOOR else spread)


@jit(inline=True)
def bce_with_logits_pointwise(x, y, params):
    """(1-y) x + (1+(pw-1) y) softplus(-x); d/dx = (1+(pw-1) y) sigmoid(x) - pw y."""
    pos_weight = params[0]
    softplus_neg, p, _ = logistic_as(x)  # in the data's precision
    x = float(x)
    y = float(y)
    lift = 1.0 + (pos_weight - 1.0) * y
    return (1.0 - y) * x + lift * float(softplus_neg), lift * float(p) - pos_weight * y


@jit
def bce_with_logits_columns_block(x, y, w, grad, losses, scale, pos_weight):
    """bce_with_logits over rows of (n, L) with one ``pos_weight`` per column."""
    n, columns = x.shape
    values = np.empty(columns)
    lanes = np.empty(LANES)
    total = 0.0
    for r in range(n):
        for j in range(columns):
            value, slope = bce_with_logits_pointwise(float(x[r, j]), float(y[r, j]),
                                                     (pos_weight[j],))
            term_weight = w[r, j] if w.size else 1.0
            values[j] = term_weight * value
            if losses.size:
                losses[r, j] = term_weight * value
            if grad.size:
                grad[r, j] = term_weight * slope * scale
        total += lane_sum(values, lanes)
    return total


@jit(inline=True)
def sigmoid_focal_pointwise(x, y, params):
    """alpha_t (1-p_t)^gamma bce_with_logits(x, y), p = sigmoid(x) (torchvision's form).

    With m = 1 - p_t = p (1-y) + (1-p) y:
    d/dx = alpha_t [(p - y) m^gamma + gamma m^(gamma-1) p (1-p) (1-2y) bce].
    """
    alpha, gamma = params
    softplus_neg, p, q = logistic_as(x)  # in the data's precision
    p = float(p)
    q = float(q)
    x = float(x)
    y = float(y)
    bce = (1.0 - y) * x + float(softplus_neg)
    m = p * (1.0 - y) + q * y
    log_m = log(m)  # m^gamma as exp(gamma log m): pow() is a library call, this vectorises
    modulating = 1.0 if gamma == 0.0 else exp(gamma * log_m)
    bend = gamma * exp((gamma - 1.0) * log_m) * p * q * (1.0 - 2.0 * y) * bce
    bend = bend if m > 0.0 else 0.0
    value = modulating * bce
    slope = (p - y) * modulating + bend
    if alpha >= 0.0:
        alpha_t = alpha * y + (1.0 - alpha) * (1.0 - y)
        value *= alpha_t
        slope *= alpha_t
    return value, slope


cross_entropy_index, cross_entropy_index_parallel = row_kernels(
    "cross_entropy_index", cross_entropy_index_block)
# one block, two kernels: each loss keeps kernels (and cache entries) of its own
cross_entropy_soft, cross_entropy_soft_parallel = row_kernels("cross_entropy_soft",
                                                              soft_targets_block)
focal_soft, focal_soft_parallel = row_kernels("focal_soft", soft_targets_block)
cross_entropy_probs, cross_entropy_probs_parallel = row_kernels(
    "cross_entropy_probs", cross_entropy_probs_block)
focal_index, focal_index_parallel = row_kernels("focal_index", focal_index_block)
focal_probs, focal_probs_parallel = row_kernels("focal_probs", focal_probs_block)
binary_cross_entropy, binary_cross_entropy_parallel = elementwise_kernels(
    "binary_cross_entropy", binary_cross_entropy_pointwise)
bce_with_logits, bce_with_logits_parallel = elementwise_kernels(
    "bce_with_logits", bce_with_logits_pointwise)
bce_with_logits_columns, bce_with_logits_columns_parallel = row_kernels(
    "bce_with_logits_columns", bce_with_logits_columns_block)
sigmoid_focal, sigmoid_focal_parallel = elementwise_kernels(
    "sigmoid_focal", sigmoid_focal_pointwise)
