"""lossjit: loss functions and their exact gradients as fused Numba kernels.

>>> import numpy as np
>>> import lossjit
>>> loss, grad = lossjit.value_and_grad("mse", np.array([1.5, 2.3, 0.8]),
...                                     np.array([1.0, 2.0, 1.0]))
>>> round(loss, 6)
0.126667

The public API: :func:`value_and_grad`, :func:`loss`, :func:`grad`, :func:`grad_hess`,
:func:`get`, :func:`names`, :func:`register`, :func:`check_grad`, and the seed's classes.
Raw kernels are in :mod:`lossjit.kernels`. Importing lossjit does not import Numba; the first
call does.
"""

from lossjit._version import __version__
from lossjit.api import grad, grad_hess, loss, names, register, value_and_grad
from lossjit.errors import LossjitError, UnknownLossError
from lossjit.gradcheck import check_grad
from lossjit.loss_objects import (
    ContrastiveLoss,
    CrossEntropyLoss,
    FocalLoss,
    Loss,
    MeanSquaredError,
    TripletLoss,
    get,
)
from lossjit.registry import LossSpec, Param

__all__ = [
    "ContrastiveLoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "Loss",
    "LossSpec",
    "LossjitError",
    "MeanSquaredError",
    "Param",
    "TripletLoss",
    "UnknownLossError",
    "__version__",
    "check_grad",
    "get",
    "grad",
    "grad_hess",
    "loss",
    "names",
    "register",
    "value_and_grad",
]
