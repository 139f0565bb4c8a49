"""The raw Numba kernels, callable from Python or from a user's own ``@njit`` code.

Every kernel has the signature ``kernel(x, y, w, grad, hess, losses, sums, scale, *params)
-> float`` described in :mod:`lossjit.kernels._blocks`: it writes the gradient into ``grad``,
the Hessian's diagonal into ``hess``, per-term losses into ``losses`` and the block sums into
``sums`` (each unless it is empty), and returns the float64 sum of the loss terms. Each
``name`` runs serially; ``name_parallel`` is its multi-threaded twin, with a bit-identical
result.

The names come from the table of each kernel module (``regression``, ``classification``,
``embedding``), loaded when a name is first asked for: importing this package imports no
kernel module and no Numba, and nothing is compiled before a kernel's first call.

>>> import numpy as np
>>> from numba import njit
>>> from lossjit import kernels
>>> @njit
... def half_mse(x, y):
...     grad, none = np.empty_like(x), np.empty(0)
...     return kernels.mse(x, y, none, grad, none, none, none, 1.0) / 2, grad
>>> half_mse(np.array([1.0, 3.0]), np.array([0.0, 0.0]))[0]
5.0
"""

from __future__ import annotations

import importlib
from typing import Any

#: The kernel modules, one per family of losses.
FAMILIES = ("regression", "classification", "embedding")

_public: dict[str, Any] = {}


def _names() -> dict[str, Any]:
    """Every public kernel name, from the tables of all kernel modules."""
    if not _public:
        for family in FAMILIES:
            module = importlib.import_module(f"{__name__}.{family}")
            for kernel_set in module.KERNELS.values():
                _public.update(kernel_set.public_names())
    return _public


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return sorted(_names())
    if name in FAMILIES:
        return importlib.import_module(f"{__name__}.{name}")
    if not name.startswith("_") and name in _names():
        return _public[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *FAMILIES, *_names()])
