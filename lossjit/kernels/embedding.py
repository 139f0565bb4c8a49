"""Embedding and ranking losses on stacked inputs: pairs ``(B, 2, D)``, triplets
``(B, 3, D)`` and rank pairs ``(B, 2)``.

The gradient has the same stacked shape, so it covers every member of a pair or triplet.
Every kernel follows the signature in :mod:`lossjit.kernels._blocks`.

>>> import numpy as np
>>> from lossjit.kernels import triplet
>>> x = np.array([[[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]]])
>>> none = np.empty(0)
>>> empty = np.empty((0, 0, 0))
>>> triplet(x, none, none, empty, empty, none, none, 1.0, 1.0, 2.0, 1e-6, False)
0.0
"""

from __future__ import annotations

import math

import numpy as np

from lossjit._jit import jit
from lossjit.kernels._blocks import LANES, from_block, kernel_table, lane_sum
from lossjit.kernels.vecmath import sign


@jit
def contrastive_block(x, y, w, grad, hess, losses, scale, margin):
    """y d^2 + (1-y) max(0, margin - d)^2, d = ||x[b,0] - x[b,1]||_2; gradient 0 at d = 0.

    d^2 is added in ``LANES`` interleaved lanes (:func:`lane_sum`, a fixed order that
    vectorises), from differences kept for the gradient; float32 pairs are subtracted and
    squared in float64 (exact differences).
    """
    n, _, dim = x.shape
    diff = np.empty(dim)
    squares = np.empty(dim)
    lanes = np.empty(LANES)
    total = 0.0
    for r in range(n):
        for k in range(dim):
            e = float(x[r, 0, k]) - float(x[r, 1, k])
            diff[k] = e
            squares[k] = e * e
        d2 = lane_sum(squares, lanes)
        d = math.sqrt(d2)
        label = float(y[r])
        gap = max(0.0, margin - d)
        term_weight = w[r] if w.size else 1.0
        value = term_weight * (label * d2 + (1.0 - label) * gap * gap)
        if losses.size:
            losses[r] = value
        total += value
        if grad.size:
            pull = 2.0 * label
            if d > 0.0:
                pull -= 2.0 * (1.0 - label) * gap / d
            g = term_weight * pull * scale
            for k in range(dim):
                grad[r, 0, k] = g * diff[k]
                grad[r, 1, k] = -g * diff[k]
    return total


@jit
def _distance(x, r, i, j, p, eps):
    """||x[r,i] - x[r,j] + eps||_p, as PyTorch's pairwise_distance."""
    total = 0.0
    for k in range(x.shape[2]):
        v = abs(float(x[r, i, k]) - float(x[r, j, k]) + eps)
        if p == 2.0:
            total += v * v
        elif p == 1.0:
            total += v
        else:
            total += v ** p
    if p == 2.0:
        return math.sqrt(total)
    if p == 1.0:
        return total
    return total ** (1.0 / p)


@jit
def _add_distance_grad(grad, x, r, i, j, p, eps, d, g):
    """grad[r,i] += g dd/dv and grad[r,j] -= g dd/dv, for d = ||v||_p, v = x[r,i]-x[r,j]+eps."""
    if d == 0.0:
        return
    for k in range(x.shape[2]):
        v = float(x[r, i, k]) - float(x[r, j, k]) + eps
        if p == 2.0:
            slope = v / d
        elif p == 1.0:
            slope = sign(v)
        else:
            slope = sign(v) * (abs(v) / d) ** (p - 1.0)
        grad[r, i, k] += g * slope
        grad[r, j, k] -= g * slope


@jit
def triplet_block(x, y, w, grad, hess, losses, scale, margin, p, eps, swap):
    """max(0, d(a,p) - d(a,n) + margin), d(u,v) = ||u - v + eps||_p; with swap,
    d(a,n) becomes min(d(a,n), d(p,n)). Rows of x are (anchor, positive, negative).

    As in PyTorch, the hinge passes its gradient at exactly 0, and a tie in the swap's
    minimum splits the gradient evenly between the two distances.
    """
    n = x.shape[0]
    total = 0.0
    for r in range(n):
        d_pos = _distance(x, r, 0, 1, p, eps)
        d_an = _distance(x, r, 0, 2, p, eps)
        d_neg = d_an
        share_an = 1.0
        if swap:
            d_pn = _distance(x, r, 1, 2, p, eps)
            if d_pn < d_an:
                d_neg = d_pn
                share_an = 0.0
            elif d_pn == d_an:
                share_an = 0.5
        hinge = d_pos - d_neg + margin
        term_weight = w[r] if w.size else 1.0
        value = term_weight * max(hinge, 0.0)
        if hinge != hinge:
            value = hinge
        if losses.size:
            losses[r] = value
        total += value
        if grad.size:
            for i in range(3):
                for k in range(x.shape[2]):
                    grad[r, i, k] = 0.0
            if hinge >= 0.0:
                g = term_weight * scale
                _add_distance_grad(grad, x, r, 0, 1, p, eps, d_pos, g)
                if share_an > 0.0:
                    _add_distance_grad(grad, x, r, 0, 2, p, eps, d_an, -g * share_an)
                if share_an < 1.0:
                    _add_distance_grad(grad, x, r, 1, 2, p, eps, d_neg, -g * (1.0 - share_an))
    return total


#: What PyTorch adds to the squared norms in cosine_embedding: 1e-12 as a float32.
COSINE_EPS = 9.999999960041972e-13


@jit
def cosine_embedding_block(x, y, w, grad, hess, losses, scale, margin):
    """1 - cos for y = 1, max(0, cos - margin) for y = -1 (the gradient passes at the tie, as
    PyTorch's clamp_min), cos = x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)).

    d cos / d x1 = x2 / denominator - cos x1 / (|x1|^2 + 1e-12), and the same with 1 and 2
    swapped: finite at a zero vector.
    """
    n, _, dim = x.shape
    total = 0.0
    for r in range(n):
        dot = 0.0
        square1 = 0.0
        square2 = 0.0
        for k in range(dim):
            u = float(x[r, 0, k])
            v = float(x[r, 1, k])
            dot += u * v
            square1 += u * u
            square2 += v * v
        square1 += COSINE_EPS
        square2 += COSINE_EPS
        denominator = math.sqrt(square1 * square2)
        cos = dot / denominator
        if y[r] > 0:
            value, direction = 1.0 - cos, -1.0
        else:
            gap = cos - margin + 0.0 * float(y[r])  # a NaN label is kept
            value = gap if (gap >= 0.0 or gap != gap) else 0.0
            direction = 1.0 if gap >= 0.0 else 0.0
        term_weight = w[r] if w.size else 1.0
        value *= term_weight
        if losses.size:
            losses[r] = value
        total += value
        if grad.size:
            g = direction * term_weight * scale
            across = g / denominator  # no division in the loop: it vectorises
            own1 = g * cos / square1
            own2 = g * cos / square2
            for k in range(dim):
                u = float(x[r, 0, k])
                v = float(x[r, 1, k])
                grad[r, 0, k] = v * across - u * own1
                grad[r, 1, k] = u * across - v * own2
    return total


@jit
def margin_ranking_block(x, y, w, grad, hess, losses, scale, margin):
    """max(0, -y (x1 - x2) + margin) on rows (x1, x2); the gradient (-y, y) passes at the tie
    (PyTorch's clamp_min)."""
    n = x.shape[0]
    total = 0.0
    for r in range(n):
        label = float(y[r])
        hinge = -label * (float(x[r, 0]) - float(x[r, 1])) + margin
        active = hinge >= 0.0
        term_weight = w[r] if w.size else 1.0
        value = term_weight * (hinge if (active or hinge != hinge) else 0.0)
        if losses.size:
            losses[r] = value
        total += value
        if grad.size:
            g = term_weight * scale * label if active else 0.0
            grad[r, 0] = -g
            grad[r, 1] = g
    return total


contrastive = from_block(contrastive_block)
triplet = from_block(triplet_block)
cosine_embedding = from_block(cosine_embedding_block)
margin_ranking = from_block(margin_ranking_block)

KERNELS = kernel_table(globals())
