"""The raw Numba kernels, callable from Python or from a user's own ``@njit`` code.

Every kernel has the signature ``kernel(x, y, w, grad, losses, scale, *params) -> float``
described in :mod:`lossjit.kernels._blocks`: it writes the gradient into ``grad`` (unless it is
empty), per-term losses into ``losses`` (unless empty), and returns the float64 sum of the
loss terms. Each ``name`` runs serially; ``name_parallel`` is its multi-threaded twin, with a
bit-identical result. Importing this module imports Numba but compiles nothing.

>>> import numpy as np
>>> from numba import njit
>>> from lossjit import kernels
>>> @njit
... def half_mse(x, y):
...     grad = np.empty_like(x)
...     return kernels.mse(x, y, np.empty(0), grad, np.empty(0), 1.0) / 2, grad
>>> half_mse(np.array([1.0, 3.0]), np.array([0.0, 0.0]))[0]
5.0
"""

from lossjit.kernels.classification import (
    bce_with_logits,
    bce_with_logits_columns,
    bce_with_logits_columns_parallel,
    bce_with_logits_parallel,
    binary_cross_entropy,
    binary_cross_entropy_parallel,
    cross_entropy_index,
    cross_entropy_index_parallel,
    cross_entropy_probs,
    cross_entropy_probs_parallel,
    cross_entropy_soft,
    cross_entropy_soft_parallel,
    focal_index,
    focal_index_parallel,
    focal_probs,
    focal_probs_parallel,
    focal_soft,
    focal_soft_parallel,
    sigmoid_focal,
    sigmoid_focal_parallel,
)
from lossjit.kernels.embedding import (
    contrastive,
    contrastive_parallel,
    triplet,
    triplet_parallel,
)
from lossjit.kernels.regression import (
    huber,
    huber_parallel,
    l1,
    l1_parallel,
    mse,
    mse_parallel,
    smooth_l1,
    smooth_l1_parallel,
)

__all__ = [
    "bce_with_logits", "bce_with_logits_parallel",
    "bce_with_logits_columns", "bce_with_logits_columns_parallel",
    "binary_cross_entropy", "binary_cross_entropy_parallel",
    "contrastive", "contrastive_parallel",
    "cross_entropy_index", "cross_entropy_index_parallel",
    "cross_entropy_probs", "cross_entropy_probs_parallel",
    "cross_entropy_soft", "cross_entropy_soft_parallel",
    "focal_index", "focal_index_parallel",
    "focal_probs", "focal_probs_parallel",
    "focal_soft", "focal_soft_parallel",
    "huber", "huber_parallel",
    "l1", "l1_parallel",
    "mse", "mse_parallel",
    "sigmoid_focal", "sigmoid_focal_parallel",
    "smooth_l1", "smooth_l1_parallel",
    "triplet", "triplet_parallel",
]
