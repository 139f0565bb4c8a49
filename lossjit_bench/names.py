"""Loss names, resolved without importing Numba."""

from __future__ import annotations


def canonical(loss: str) -> str:
    """The canonical name of a loss (aliases resolve), without importing Numba."""
    from lossjit import registry

    return registry.resolve(loss).name
