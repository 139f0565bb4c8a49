"""lossjit: loss functions and their exact gradients as fused Numba kernels.

>>> import numpy as np
>>> import lossjit
>>> loss, grad = lossjit.value_and_grad("mse", np.array([1.5, 2.3, 0.8]),
...                                     np.array([1.0, 2.0, 1.0]))
>>> round(loss, 6)
0.126667

The public API: :func:`value_and_grad`, :func:`loss`, :func:`grad`, :func:`grad_hess`,
:func:`get`, :func:`names`, :func:`register`, :func:`check_grad`, and the seed's classes.
Raw kernels are in :mod:`lossjit.kernels`. Importing lossjit imports neither Numba nor NumPy
(each name is imported when first used); the first call of a loss imports its kernel module.
"""

from __future__ import annotations

import importlib
from typing import Any

from lossjit import registry  # noqa: F401  (lossjit.registry, as before; no NumPy)
from lossjit._version import __version__
from lossjit.errors import LossjitError, UnknownLossError

#: Where each public name lives, imported when it is first asked for: ``import lossjit`` (and
#: the CLI's ``--help``, ``list`` and ``info``) imports neither Numba nor NumPy.
_LAZY = {
    **dict.fromkeys(["grad", "grad_hess", "loss", "names", "register", "value_and_grad"],
                    "lossjit.api"),
    "check_grad": "lossjit.gradcheck",
    **dict.fromkeys(["ContrastiveLoss", "CrossEntropyLoss", "FocalLoss", "Loss",
                     "MeanSquaredError", "TripletLoss", "get"], "lossjit.loss_objects"),
    **dict.fromkeys(["LossSpec", "Param"], "lossjit.registry"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
