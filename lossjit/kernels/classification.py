"""Classification losses: softmax cross-entropy and focal, binary cross-entropy, sigmoid focal.

Class-axis kernels take ``x`` laid out as ``(n, C, S)``: ``n`` rows, ``C`` classes and ``S``
positions per row (``S = d1*...*dk`` for PyTorch's ``(N, C, d1..dk)`` inputs, 1 otherwise).
Targets are ``(n, S)`` class indices (``*_index``) or ``(n, C, S)`` probabilities
(``*_soft``); per-term outputs and weights are ``(n, S)``. Every kernel follows the signature
in :mod:`lossjit.kernels._blocks`.

Softmax is evaluated as log-sum-exp with the maximum subtracted, so no finite logit
overflows; a -inf logit is a masked class that contributes exactly 0, and a -inf logit at the
target gives a loss of +inf.

>>> import numpy as np
>>> from lossjit.kernels import cross_entropy_index
>>> x = np.array([[1.0, 2.0, 0.5]]).reshape(1, 3, 1)
>>> y = np.array([[1]])
>>> none = np.empty((0, 0))
>>> round(cross_entropy_index(x, y, none, np.empty((0, 0, 0)), none, 1.0,
...                           np.empty(0), -100, 0.0), 6)
0.464369
"""

from __future__ import annotations

import math

from lossjit._jit import jit
from lossjit.kernels._blocks import elementwise_kernels, row_kernels
from lossjit.kernels._stable import sigmoid, softplus


@jit
def _log_sum_exp(x, r, s):
    """log sum_c exp(x[r, c, s]), with the maximum subtracted first."""
    top = -math.inf
    for c in range(x.shape[1]):
        v = float(x[r, c, s])
        if v > top or v != v:
            top = v
    if top == -math.inf or top != top:
        return top
    total = 0.0
    for c in range(x.shape[1]):
        total += math.exp(float(x[r, c, s]) - top)
    return top + math.log(total)


@jit
def _clip(p, eps):
    """p clipped to [eps, 1]; NaN stays NaN."""
    if p < eps:
        return eps
    if p > 1.0:
        return 1.0
    return p


@jit
def _ignore_term(grad, losses, r, s):
    """An ignored position contributes nothing: zero gradient and zero loss."""
    if grad.size:
        for c in range(grad.shape[1]):
            grad[r, c, s] = 0.0
    if losses.size:
        losses[r, s] = 0.0


@jit
def _focal_factor(logp, gamma):
    """(1-p)^gamma and F = (1-p)^gamma (1 - gamma p log(p) / (1-p)), from log p.

    F is the factor of the softmax focal gradient: d/dx_j = F (p_j - [j = y]). It has the
    limit (1 + gamma p) (1-p)^gamma as p -> 1, which this form keeps finite.
    """
    p = math.exp(logp)
    u = -math.expm1(logp)
    modulating = u ** gamma
    if p == 0.0:
        return modulating, modulating
    if u == 0.0:
        return modulating, modulating * (1.0 + gamma * p)
    return modulating, modulating * (1.0 - gamma * p * logp / u)


@jit
def cross_entropy_index_block(x, y, w, grad, losses, scale, weight, ignore_index, smoothing):
    """-(1-e) w_y log p_y - (e/C) sum_c w_c log p_c, p = softmax(x); grad w.r.t. x."""
    n, classes, positions = x.shape
    weighted = weight.size > 0
    weight_sum = 0.0
    for c in range(classes):
        weight_sum += weight[c] if weighted else 1.0
    keep = 1.0 - smoothing
    spread = smoothing / classes
    total = 0.0
    for r in range(n):
        for s in range(positions):
            target = y[r, s]
            if target == ignore_index:
                _ignore_term(grad, losses, r, s)
                continue
            lse = _log_sum_exp(x, r, s)
            w_target = weight[target] if weighted else 1.0
            value = keep * w_target * (lse - float(x[r, target, s]))
            if smoothing != 0.0:
                smooth = 0.0
                for c in range(classes):
                    smooth += (weight[c] if weighted else 1.0) * (lse - float(x[r, c, s]))
                value += spread * smooth
            term_weight = w[r, s] if w.size else 1.0
            value *= term_weight
            if losses.size:
                losses[r, s] = value
            total += value
            if grad.size:
                g = term_weight * scale
                for c in range(classes):
                    p = math.exp(float(x[r, c, s]) - lse)
                    w_c = weight[c] if weighted else 1.0
                    slope = keep * w_target * p + spread * (weight_sum * p - w_c)
                    if c == target:
                        slope -= keep * w_target
                    grad[r, c, s] = slope * g
    return total


@jit
def cross_entropy_soft_block(x, y, w, grad, losses, scale, weight, smoothing):
    """-sum_c w_c q_c log p_c, q = (1-e) t + e/C, p = softmax(x); grad w.r.t. x."""
    n, classes, positions = x.shape
    weighted = weight.size > 0
    keep = 1.0 - smoothing
    spread = smoothing / classes
    total = 0.0
    for r in range(n):
        for s in range(positions):
            lse = _log_sum_exp(x, r, s)
            value = 0.0
            mass = 0.0
            for c in range(classes):
                wq = (weight[c] if weighted else 1.0) * (keep * float(y[r, c, s]) + spread)
                if wq != 0.0:
                    value += wq * (lse - float(x[r, c, s]))
                    mass += wq
            term_weight = w[r, s] if w.size else 1.0
            value *= term_weight
            if losses.size:
                losses[r, s] = value
            total += value
            if grad.size:
                g = term_weight * scale
                for c in range(classes):
                    wq = (weight[c] if weighted else 1.0) * (keep * float(y[r, c, s]) + spread)
                    grad[r, c, s] = (mass * math.exp(float(x[r, c, s]) - lse) - wq) * g
    return total


@jit
def cross_entropy_probs_block(x, y, w, grad, losses, scale, weight, smoothing, eps):
    """-sum_c w_c q_c log clip(p_c, eps, 1) on probabilities; grad -w_c q_c / p_c in the clip."""
    n, classes, positions = x.shape
    weighted = weight.size > 0
    keep = 1.0 - smoothing
    spread = smoothing / classes
    total = 0.0
    for r in range(n):
        for s in range(positions):
            term_weight = w[r, s] if w.size else 1.0
            value = 0.0
            for c in range(classes):
                wq = (weight[c] if weighted else 1.0) * (keep * float(y[r, c, s]) + spread)
                p = float(x[r, c, s])
                value -= wq * math.log(_clip(p, eps))
                if grad.size:
                    inside = eps <= p <= 1.0
                    slope = -wq / p if inside and wq != 0.0 else 0.0
                    if p != p:
                        slope = p
                    grad[r, c, s] = slope * term_weight * scale
            value *= term_weight
            if losses.size:
                losses[r, s] = value
            total += value
    return total


@jit
def focal_index_block(x, y, w, grad, losses, scale, alpha, gamma, ignore_index):
    """-alpha_y (1-p_y)^gamma log p_y, p = softmax(x); grad F (p_j - [j = y])."""
    n, classes, positions = x.shape
    total = 0.0
    for r in range(n):
        for s in range(positions):
            target = y[r, s]
            if target == ignore_index:
                _ignore_term(grad, losses, r, s)
                continue
            lse = _log_sum_exp(x, r, s)
            logp = float(x[r, target, s]) - lse
            a = (alpha[target] if alpha.size else 1.0) * (w[r, s] if w.size else 1.0)
            modulating, factor = _focal_factor(logp, gamma)
            value = -a * modulating * logp
            if losses.size:
                losses[r, s] = value
            total += value
            if grad.size:
                g = a * factor * scale
                for c in range(classes):
                    p = math.exp(float(x[r, c, s]) - lse)
                    grad[r, c, s] = (p - 1.0 if c == target else p) * g
    return total


@jit
def focal_soft_block(x, y, w, grad, losses, scale, alpha, gamma):
    """-sum_c alpha_c t_c (1-p_c)^gamma log p_c, p = softmax(x); grad p_j sum_c F_c - F_j."""
    n, classes, positions = x.shape
    total = 0.0
    for r in range(n):
        for s in range(positions):
            lse = _log_sum_exp(x, r, s)
            term_weight = w[r, s] if w.size else 1.0
            value = 0.0
            mass = 0.0
            for c in range(classes):
                at = (alpha[c] if alpha.size else 1.0) * float(y[r, c, s])
                if at != 0.0:
                    logp = float(x[r, c, s]) - lse
                    modulating, factor = _focal_factor(logp, gamma)
                    value -= at * modulating * logp
                    mass += at * factor
            value *= term_weight
            if losses.size:
                losses[r, s] = value
            total += value
            if grad.size:
                g = term_weight * scale
                for c in range(classes):
                    at = (alpha[c] if alpha.size else 1.0) * float(y[r, c, s])
                    own = 0.0
                    if at != 0.0:
                        own = at * _focal_factor(float(x[r, c, s]) - lse, gamma)[1]
                    grad[r, c, s] = (math.exp(float(x[r, c, s]) - lse) * mass - own) * g
    return total


@jit
def focal_probs_block(x, y, w, grad, losses, scale, alpha, gamma, eps):
    """-sum_{t_c>0} alpha_c t_c (1-q)^gamma log q, q = clip(p_c, eps, 1), on probabilities.

    d/dp_c = -alpha_c t_c ((1-q)^gamma / q - gamma (1-q)^(gamma-1) log q) inside the clip,
    0 outside it.
    """
    n, classes, positions = x.shape
    total = 0.0
    for r in range(n):
        for s in range(positions):
            term_weight = w[r, s] if w.size else 1.0
            value = 0.0
            for c in range(classes):
                at = (alpha[c] if alpha.size else 1.0) * float(y[r, c, s])
                p = float(x[r, c, s])
                q = _clip(p, eps)
                u = 1.0 - q
                slope = 0.0
                if at > 0.0:
                    logq = math.log(q)
                    value -= at * u ** gamma * logq
                    if eps <= p <= 1.0:
                        bend = gamma * u ** (gamma - 1.0) * logq if u > 0.0 else 0.0
                        slope = -at * (u ** gamma / q - bend)
                if p != p:
                    slope = p
                if grad.size:
                    grad[r, c, s] = slope * term_weight * scale
            value *= term_weight
            if losses.size:
                losses[r, s] = value
            total += value
    return total


#: PyTorch's floor on x (1 - x) in the gradient of binary_cross_entropy: 1e-12 as a float32.
BCE_FLOOR = 9.999999960041972e-13


@jit
def binary_cross_entropy_pointwise(x, y):
    """-(y log x + (1-y) log(1-x)), logs clamped at -100; grad (x-y)/max(x(1-x), 1e-12)."""
    log_x = max(math.log(x), -100.0)
    log_1mx = max(math.log1p(-x), -100.0)
    value = -(y * log_x + (1.0 - y) * log_1mx)
    return value, (x - y) / max(x * (1.0 - x), BCE_FLOOR)


@jit
def bce_with_logits_block(x, y, w, grad, losses, scale, pos_weight):
    """(1-y) x + (1+(pw-1) y) softplus(-x) over rows of (n, L); grad (1+(pw-1)y) sigmoid(x) - pw y.

    ``pos_weight`` has one entry per column (the last axis), or is empty for none.
    """
    n, columns = x.shape
    total = 0.0
    for r in range(n):
        for j in range(columns):
            xv = float(x[r, j])
            yv = float(y[r, j])
            pw = pos_weight[j] if pos_weight.size else 1.0
            lift = 1.0 + (pw - 1.0) * yv
            term_weight = w[r, j] if w.size else 1.0
            value = term_weight * ((1.0 - yv) * xv + lift * softplus(-xv))
            if losses.size:
                losses[r, j] = value
            total += value
            if grad.size:
                grad[r, j] = term_weight * (lift * sigmoid(xv) - pw * yv) * scale
    return total


@jit
def sigmoid_focal_pointwise(x, y, alpha, gamma):
    """alpha_t (1-p_t)^gamma bce_with_logits(x, y), p = sigmoid(x) (torchvision's form).

    With m = 1 - p_t = p (1-y) + (1-p) y:
    d/dx = alpha_t [(p - y) m^gamma + gamma m^(gamma-1) p (1-p) (1-2y) bce].
    """
    p = sigmoid(x)
    q = sigmoid(-x)
    bce = (1.0 - y) * x + softplus(-x)
    m = p * (1.0 - y) + q * y
    modulating = m ** gamma
    bend = 0.0
    if m > 0.0:
        bend = gamma * m ** (gamma - 1.0) * p * q * (1.0 - 2.0 * y) * bce
    value = modulating * bce
    slope = (p - y) * modulating + bend
    if alpha >= 0.0:
        alpha_t = alpha * y + (1.0 - alpha) * (1.0 - y)
        value *= alpha_t
        slope *= alpha_t
    return value, slope


cross_entropy_index, cross_entropy_index_parallel = row_kernels(
    "cross_entropy_index", cross_entropy_index_block)
cross_entropy_soft, cross_entropy_soft_parallel = row_kernels(
    "cross_entropy_soft", cross_entropy_soft_block)
cross_entropy_probs, cross_entropy_probs_parallel = row_kernels(
    "cross_entropy_probs", cross_entropy_probs_block)
focal_index, focal_index_parallel = row_kernels("focal_index", focal_index_block)
focal_soft, focal_soft_parallel = row_kernels("focal_soft", focal_soft_block)
focal_probs, focal_probs_parallel = row_kernels("focal_probs", focal_probs_block)
binary_cross_entropy, binary_cross_entropy_parallel = elementwise_kernels(
    "binary_cross_entropy", binary_cross_entropy_pointwise)
bce_with_logits, bce_with_logits_parallel = row_kernels("bce_with_logits", bce_with_logits_block)
sigmoid_focal, sigmoid_focal_parallel = elementwise_kernels(
    "sigmoid_focal", sigmoid_focal_pointwise)
