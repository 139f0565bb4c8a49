"""The raw Numba kernels, callable from Python or from a user's own ``@njit`` code.

Every kernel has the signature ``kernel(x, y, w, grad, losses, scale, *params) -> float``
described in :mod:`lossjit.kernels._blocks`: it writes the gradient into ``grad`` (unless it is
empty), per-term losses into ``losses`` (unless empty), and returns the float64 sum of the
loss terms. Each ``name`` runs serially; ``name_parallel`` is its multi-threaded twin, with a
bit-identical result. A ``name_hessian`` kernel also writes the diagonal of the Hessian, in
place of the per-term losses. Importing this module imports Numba but compiles nothing.

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

from lossjit.kernels import classification, embedding, regression
from lossjit.kernels.classification import *  # noqa: F403
from lossjit.kernels.embedding import *  # noqa: F403
from lossjit.kernels.regression import *  # noqa: F403

__all__ = sorted([*regression.__all__, *classification.__all__, *embedding.__all__])
