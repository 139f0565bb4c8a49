"""Classification losses: softmax cross-entropy, focal and Poly-1; NLL; binary cross-entropy,
sigmoid focal and KL divergence; the margin losses (hinge embedding, multi-margin, soft
margin, multi-label soft margin).

Class-axis kernels take ``x`` as ``(rows, C)``: one row of C logits (or probabilities) per
loss term; PyTorch's ``(N, C, d1..dk)`` inputs are laid out that way by
:mod:`lossjit.layouts`. Targets are ``(rows,)`` class indices (``*_index``) or ``(rows, C)``
probabilities (``*_soft``, ``*_probs``); per-term weights and outputs are ``(rows,)``. Every
kernel follows the signature in :mod:`lossjit.kernels._blocks`.

Softmax is log-sum-exp with the row's maximum subtracted, so no finite logit overflows; the
exponentials use the vectorising ``exp`` of :mod:`lossjit.kernels.vecmath` and are added in
lanes. A -inf logit is a masked class that contributes exactly 0; a -inf logit at the target
gives a loss of +inf.

>>> import numpy as np
>>> from lossjit.kernels import cross_entropy_index
>>> x, y = np.array([[1.0, 2.0, 0.5]]), np.array([1])
>>> none = np.empty(0)
>>> empty = np.empty((0, 0))
>>> round(cross_entropy_index(x, y, none, empty, empty, none, none, 1.0, none, -100, 0.0), 6)
0.464369
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lossjit._jit import jit
from lossjit.kernels._blocks import (
    LANES,
    columns_template,
    elementwise,
    from_block,
    from_template,
    kernel_table,
    lane_sum,
)
from lossjit.kernels.vecmath import (
    _pow2,
    atanh2_as,
    const_as,
    exp,
    exp_as,
    in_precision,
    ln2_parts,
    log,
    log1p,
    logistic_as,
    logistic_shared,
    mantissa_as,
)

# Free names of the templates, bound per loss by ``specialise``: the per-class term
# ``term(logp, p, 1 - p, parameter) -> (value, gradient factor)``, and whether the kernel
# writes the Hessian's diagonal (see lossjit.kernels._blocks).
term: Any = None
hessian = False


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


@jit(inline=True)
def focal_term(logp, p, u, gamma):
    """One class's focal term from log p, p and u = 1 - p (each computed where it is exact):
    (-(1-p)^gamma log p, F) with F = (1-p)^gamma (1 - gamma p log p / (1-p)), the factor of
    the softmax gradient, d/dx_j = F (p_j - [j = y]). F has the limit (1 + gamma p) (1-p)^gamma
    as p -> 1, which this form keeps finite. gamma = 0 is cross-entropy: (-log p, 1).
    """
    modulating = 1.0 if gamma == 0.0 else exp(gamma * log(u))
    ratio = logp / u if u > 0.0 else -1.0  # log(p) / (1 - p) -> -1 as p -> 1
    bend = gamma * p * ratio if p > 0.0 else 0.0
    return -modulating * logp, modulating * (1.0 - bend)


@jit(inline=True)
def cross_entropy_term(logp, p, u, unused):
    """One class's cross-entropy term: (-log p, 1); the gradient is p_j - [j = y]."""
    return -logp, 1.0


@jit(inline=True)
def poly1_term(logp, p, u, epsilon):
    """One class's Poly-1 term: (-log p + epsilon (1 - p), 1 + epsilon p); the gradient is
    (1 + epsilon p_y) (p_j - [j = y]), the same form as focal's."""
    return epsilon * u - logp, 1.0 + epsilon * p


@jit
def _class_weights(weight, classes):
    """The per-class weights as a float64 vector (ones when ``weight`` is empty), so that
    loops read them unconditionally and vectorise."""
    weights = np.ones(classes)
    if weight.size:
        for c in range(classes):
            weights[c] = weight[c]
    return weights


def cross_entropy_index_template(x, y, w, grad, hess, losses, scale, weight, ignore_index,
                                 smoothing):
    """-(1-e) w_y log p_y - (e/C) sum_c w_c log p_c, p = softmax(x); grad w.r.t. x. With
    ``hessian`` bound true, ``hess`` (when given) receives the Hessian's diagonal
    A p_c (1 - p_c), A = (1-e) w_y + (e/C) sum_c w_c (0 for an ignored row)."""
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
        if hessian and hess.size:  # share e_c = A g p_c
            for r in range(n):
                inverse = 1.0 / mass[r]
                kept = y[r] != ignore_index
                for c in range(classes):
                    curvature = share[r] * e[r, c] * (1.0 - e[r, c] * inverse)
                    hess[r, c] = curvature if kept else 0.0
    return _terms_total(values, losses, lanes)


@jit
def cross_entropy_probs_block(x, y, w, grad, hess, losses, scale, weight, smoothing, eps):
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


def target_index_template(x, y, w, grad, hess, losses, scale, alpha, parameter, ignore_index):
    """alpha_y v(p_y), p = softmax(x), for a bound per-class ``term(logp, p, u, parameter) ->
    (v, F)`` (softmax focal, Poly-1); grad alpha_y F (p_j - [j = y]).

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
        # where p_y > 1/2, log p_y = -log1p(others / e_y): exact also as p_y rounds to 1
        # (where -log p_y ~ 1 - p_y); elsewhere x_y - log-sum-exp, finite whatever e_y is
        near = -log1p(others[r] / e_target[r])
        logp = near if e_target[r] > others[r] else at_target[r] - lse[r]
        value, factor = term(logp, e_target[r] / mass[r], others[r] / mass[r], parameter)
        values[r] = a[r] * value if kept[r] else 0.0
        factors[r] = a[r] * factor if kept[r] else 0.0
    if grad.size:
        share, even, pull = np.empty(n), np.zeros(n), np.empty(n)
        for r in range(n):
            pull[r] = factors[r] * scale
            share[r] = pull[r] / mass[r]
        _softmax_grad(grad, e, y, ignore_index, share, even, alphas, pull)
    return _terms_total(values, losses, np.empty(LANES))


def soft_targets_template(x, y, w, grad, hess, losses, scale, weight, smoothing, parameter):
    """sum_c a_c q_c v(p_c), p = softmax(x), q = (1-e) t + e/C, for a bound per-class
    ``term(logp, p, u, parameter) -> (v, F)``: softmax cross-entropy with probability targets
    (a = class weights), softmax focal loss with one-hot or soft targets (e = 0, a = alpha) and
    Poly-1. grad p_j sum_c a_c q_c F_c - a_j q_j F_j. With ``hessian`` bound true (for
    cross-entropy's term, F = 1), ``hess`` (when given) receives the Hessian's diagonal
    A p_c (1 - p_c), A = sum_c a_c q_c.
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
        inverse = 1.0 / mass
        for c in range(classes):
            aq = weights[c] * (keep * float(y[r, c]) + spread)
            own[c] = 0.0
            parts[c] = 0.0
            if aq != 0.0:  # a class with no target mass adds exactly 0, even at a -inf logit
                logp = float(x[r, c]) - lse
                p = e[c] * inverse
                # 1 - p, exact as p -> 1 (a row has at most one class with p > 1/2)
                u = -math.expm1(logp) if p > 0.5 else 1.0 - p
                value, factor = term(logp, p, u, parameter)
                parts[c] = aq * value
                own[c] = aq * factor
        term_weight = w[r] if w.size else 1.0
        value = lane_sum(parts, lanes) * term_weight
        if losses.size:
            losses[r] = value
        total += value
        if grad.size:
            weight_total = lane_sum(own, lanes)
            g = term_weight * scale
            for c in range(classes):
                grad[r, c] = (e[c] * inverse * weight_total - own[c]) * g
            if hessian and hess.size:
                for c in range(classes):
                    p = e[c] * inverse
                    hess[r, c] = weight_total * g * p * (1.0 - p)
    return total


@jit
def focal_probs_block(x, y, w, grad, hess, losses, scale, alpha, gamma, eps):
    """-sum_{t_c>0} alpha_c t_c (1-q)^gamma log q, q = clip(p_c, eps, 1), on probabilities.

    d/dp_c = -alpha_c t_c ((1-q)^gamma / q - gamma (1-q)^(gamma-1) log q) inside the clip,
    0 outside it. A NaN probability makes its row's loss NaN, at a class without target mass
    too (as cross-entropy's does).
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
            parts[c] = p - p  # 0, or NaN: a NaN anywhere in the row makes its loss NaN
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


LOG_2 = math.log(2.0)

#: PyTorch's floor on x (1 - x) in the gradient of binary_cross_entropy: 1e-12 as a float32.
BCE_FLOOR = 9.999999960041972e-13


@jit(inline=True)
def _clamped_log(m, e, s, x, floor):
    """ln x = e ln 2 + 2 atanh(s) from its reduction (s computed by the caller, who shares a
    reciprocal), with ln 0 = -inf and NaN for x < 0 or NaN, then clamped below at ``floor``
    (a select: NaN stays NaN)."""
    hi, lo = ln2_parts(s)
    value = e * hi + (atanh2_as(s) + e * lo)
    zero = const_as(x, 0.0)
    value = floor if (x == zero or value < floor) else value
    return value if (x >= zero) else x - x + const_as(x, np.nan)


@jit(inline=True)
def binary_cross_entropy_pointwise(x, y, params):
    """-(y log x + (1-y) log(1-x)), logs clamped at -100; grad (x-y)/max(x(1-x), 1e-12)
    (PyTorch's); d2 its derivative, (y (1-x)^2 + (1-y) x^2) / (x(1-x))^2 (1e12 where floored).

    In the data's precision (float32 lanes for float32 data), with one division: the
    logarithms' s = (m - 1) / (m + 1) (log(1 - x) as 2 atanh(-x / (2 - x)) for x <= 1 - 1/sqrt 2,
    exact as x -> 0) and 1 / max(x (1 - x), 1e-12) share 1 / (d1 d2 spread). The sum of the
    two logs and the derivatives are formed in float64.
    """
    one = const_as(x, 1.0)
    t = in_precision(x, y)
    w = one - x
    m1, e1 = mantissa_as(x)
    d1 = m1 + one
    near = x <= const_as(x, 0.2928932188134524)  # 1 - x in [1/sqrt 2, 1]: log1p's form
    m2, e2 = mantissa_as(w)
    n2 = -x if near else m2 - one
    d2 = (const_as(x, 2.0) - x) if near else m2 + one
    e2 = const_as(x, 0.0) if near else e2
    spread = x * w
    floor32 = const_as(x, BCE_FLOOR)
    floored = spread < floor32
    divisor = floor32 if floored else spread
    both = d1 * d2
    shared = one / (both * divisor)
    s1 = (m1 - one) * (d2 * divisor * shared)
    s2 = n2 * (d1 * divisor * shared)
    to_spread = float(both * shared)
    clamp = const_as(x, -100.0)
    log_x = float(_clamped_log(m1, e1, s1, x, clamp))
    log_1mx = float(_clamped_log(m2, e2, s2, w, clamp))
    x = float(x)
    y = float(t)
    value = -(y * log_x + (1.0 - y) * log_1mx)
    slope = (x - y) * to_spread
    w64 = float(w)
    bend = (y * w64 * w64 + (1.0 - y) * x * x) * to_spread * to_spread
    return value, slope, (to_spread if floored else bend)


@jit(inline=True)
def bce_with_logits_pointwise(x, y, params):
    """(1-y) x + (1+(pw-1) y) softplus(-x); d/dx = (1+(pw-1) y) sigmoid(x) - pw y;
    d2 = (1+(pw-1) y) sigmoid(x) sigmoid(-x).

    softplus(-x) = max(-x, 0) + L with L = log1p(exp(-|x|)), so the loss is
    [(1-y) x if x >= 0 else -pw y x] + lift L: a sum of non-negative parts for y in [0, 1]
    (no cancellation); the gradient is sigmoid(x) (1-y) - pw y sigmoid(-x), exact for 0/1
    labels. L and the sigmoids in the data's precision with one division
    (:func:`~lossjit.kernels.vecmath.logistic_shared`), the rest in float64.
    """
    pos_weight = params[0]
    tail, p, q = logistic_shared(x)
    x = float(x)
    y = float(y)
    p = float(p)
    q = float(q)
    lift = 1.0 + (pos_weight - 1.0) * y
    linear = (1.0 - y) * x if x >= 0.0 else -(pos_weight * y) * x
    return (linear + lift * float(tail), p * (1.0 - y) - pos_weight * y * q, lift * p * q)


@jit(inline=True)
def sigmoid_focal_pointwise(x, y, params):
    """alpha_t (1-p_t)^gamma bce_with_logits(x, y), p = sigmoid(x) (torchvision's form).

    With m = 1 - p_t = p (1-y) + (1-p) y, M = m^gamma, s = p (1-p), k = 1 - 2y, r = s / m
    (at most 1, so nothing overflows as m -> 0) and B = bce:
    d/dx = alpha_t [(p - y) M + gamma r M k B];
    d2 = alpha_t M [s + gamma k r (2 (p - y) + B ((1 - 2p) + (gamma - 1) k r))].

    The sigmoids and log1p(exp(-|x|)) share one division, log m and 1/m another (in the data's
    precision); M = exp(gamma log m).
    """
    alpha, gamma = params
    tail, p32, q32 = logistic_shared(x)
    t = in_precision(x, y)
    one = const_as(x, 1.0)
    m32 = p32 * (one - t) + q32 * t
    mm, me = mantissa_as(m32)
    shared = one / (mm * (mm + one))
    s_log = (mm - one) * (mm * shared)
    log_m = float(me) * LOG_2 + float(atanh2_as(s_log))  # in float64: M = exp(gamma log m)
    # needs log m to its absolute precision
    x = float(x)
    y = float(y)
    p = float(p32)
    q = float(q32)
    m = float(m32)
    half = math.floor(-0.5 * float(me))
    to_m = float((mm + one) * shared) * (_pow2(half) * _pow2(-float(me) - half))  # 2^-e / mm
    bce = ((1.0 - y) * x if x >= 0.0 else -y * x) + float(tail)
    s = p * q
    k = 1.0 - 2.0 * y
    modulating = 1.0 if gamma == 0.0 else exp(gamma * log_m)
    modulating = 0.0 if (m == 0.0 and gamma > 0.0) else modulating
    r = s * to_m if m > 0.0 else 0.0
    residual = p * (1.0 - y) - q * y  # p - y, exact for 0/1 labels as p rounds to 1
    value = modulating * bce
    slope = residual * modulating + gamma * r * modulating * k * bce
    curvature = modulating * (s + gamma * k * r * (2.0 * residual
                                                    + bce * ((q - p)
                                                             + (gamma - 1.0) * k * r)))
    if alpha >= 0.0:
        alpha_t = alpha * y + (1.0 - alpha) * (1.0 - y)
        value *= alpha_t
        slope *= alpha_t
        curvature *= alpha_t
    return value, slope, curvature


@jit
def nll_block(x, y, w, grad, hess, losses, scale, weight, ignore_index):
    """-weight_y x_y on log-probabilities x; grad -weight_y at the target (0 when ignored)."""
    n, classes = x.shape
    weights = _class_weights(weight, classes)
    term_weights = _term_weights(w, n)
    values, pull = np.empty(n), np.empty(n)
    for r in range(n):
        kept = y[r] != ignore_index
        target = y[r] if kept else 0
        a = weights[target] * term_weights[r]
        values[r] = -a * float(x[r, target]) if kept else 0.0
        pull[r] = a * scale if kept else 0.0
    if grad.size:
        for r in range(n):
            for c in range(classes):
                grad[r, c] = 0.0
            if y[r] != ignore_index:
                grad[r, y[r]] = -pull[r]
    return _terms_total(values, losses, np.empty(LANES))


@jit
def multi_margin_block(x, y, w, grad, hess, losses, scale, p, margin, weight):
    """(1/C) sum_{c != y} weight_y max(0, margin - x_y + x_c)^p, p in {1, 2}; a class adds
    to the gradient only where margin - x_y + x_c > 0 (PyTorch's rule). The class loop runs
    over every class without branches, and the target's entry is cleared after it."""
    n, classes = x.shape
    term_weights = _term_weights(w, n)
    values, parts, slopes = np.empty(n), np.empty(classes), np.empty(classes)
    lanes = np.empty(LANES)
    for r in range(n):
        target = y[r]
        a = (weight[target] if weight.size else 1.0) / classes * term_weights[r]
        g = a * scale
        at_target = float(x[r, target])
        for c in range(classes):
            z = margin - at_target + float(x[r, c])
            active = z > 0.0
            power = z if p == 1 else z * z
            parts[c] = power if active else (z if z != z else 0.0)
            slopes[c] = (g if p == 1 else 2.0 * z * g) if active else 0.0
        parts[target] = 0.0
        slopes[target] = 0.0
        values[r] = lane_sum(parts, lanes) * a
        if grad.size:
            for c in range(classes):
                grad[r, c] = slopes[c]
            grad[r, target] = -lane_sum(slopes, lanes)
    return _terms_total(values, losses, lanes)


@jit
def multilabel_soft_margin_block(x, y, w, grad, hess, losses, scale, weight):
    """(1/C) sum_c w_c [(1 - y) x + softplus(-x)] (= -(1/C) sum_c w_c [y log sigmoid(x) +
    (1-y) log sigmoid(-x)]); grad w_c (sigmoid(x) - y) / C."""
    n, classes = x.shape
    term_weights = _term_weights(w, n)
    values, parts = np.empty(n), np.empty(classes)
    lanes = np.empty(LANES)
    for r in range(n):
        g = term_weights[r] * scale / classes
        for c in range(classes):
            value, slope, _ = bce_with_logits_pointwise(x[r, c], y[r, c], (1.0,))
            class_weight = weight[c] if weight.size else 1.0
            parts[c] = class_weight * value
            if grad.size:
                grad[r, c] = class_weight * slope * g
        values[r] = lane_sum(parts, lanes) / classes * term_weights[r]
    return _terms_total(values, losses, lanes)


@jit(inline=True)
def kl_div_pointwise(x, y, params):
    """y log y - y x on log-probabilities x, exactly 0 where y = 0; with log_target,
    exp(y) (y - x). d/dx = -y or -exp(y); d2 = 0."""
    log_target = params[0]
    x = float(x)
    y = float(y)
    if log_target:
        t = exp(y)
        return t * (y - x), -t, 0.0
    value = y * log(y) - y * x
    return (0.0 if y == 0.0 else value), -y, 0.0


@jit(inline=True)
def hinge_embedding_pointwise(x, y, params):
    """x for y = 1; max(0, margin - x) for y = -1, whose gradient -1 includes the tie
    margin - x = 0 (PyTorch's clamp_min); d2 = 0."""
    margin = params[0]
    x = float(x)
    if y > 0:
        return x, 1.0, 0.0
    gap = margin - x + 0.0 * float(y)  # + (-0.0), or NaN for a NaN label: it is kept
    if gap >= 0.0:
        return gap, -1.0, 0.0
    return (gap if gap != gap else 0.0), 0.0, 0.0


@jit(inline=True)
def soft_margin_pointwise(x, y, params):
    """log(1 + exp(-y x)) = softplus(-y x), finite for every finite input; d/dx =
    -y sigmoid(-y x); d2 = y^2 sigmoid(y x) sigmoid(-y x)."""
    softplus_neg, p, q = logistic_as(y * x)  # in the data's precision
    y = float(y)
    q = float(q)
    return float(softplus_neg), -y * q, y * y * float(p) * q


cross_entropy_index = from_template(cross_entropy_index_template, hessian=True)
cross_entropy_soft = from_template(soft_targets_template, hessian=True, term=cross_entropy_term)
cross_entropy_probs = from_block(cross_entropy_probs_block)
focal_index = from_template(target_index_template, term=focal_term)
focal_soft = from_template(soft_targets_template, term=focal_term)
focal_probs = from_block(focal_probs_block)
poly1_index = from_template(target_index_template, term=poly1_term)
poly1_soft = from_template(soft_targets_template, term=poly1_term)
nll = from_block(nll_block)
multi_margin = from_block(multi_margin_block)
multilabel_soft_margin = from_block(multilabel_soft_margin_block)
binary_cross_entropy = elementwise(binary_cross_entropy_pointwise)
bce_with_logits = elementwise(bce_with_logits_pointwise)
bce_with_logits_columns = from_template(columns_template, hessian=True,
                                        pointwise=bce_with_logits_pointwise)
sigmoid_focal = elementwise(sigmoid_focal_pointwise)
kl_div = elementwise(kl_div_pointwise)
hinge_embedding = elementwise(hinge_embedding_pointwise)
soft_margin = elementwise(soft_margin_pointwise)

KERNELS = kernel_table(globals())
