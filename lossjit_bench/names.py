"""Loss names, resolved without importing Numba, and the order of the report's table."""

from __future__ import annotations

from collections.abc import Iterable

#: The order of the built-in losses in the report's table and in ``benchmarks/run.py`` (the
#: first release's losses first within each input kind). Only the order: which losses there
#: are, and their input kinds, come from the registry. A loss not named here follows those
#: that are, in registration order (:func:`in_table_order`).
TABLE_ORDER = (
    "mse", "l1", "huber", "smooth_l1", "binary_cross_entropy", "bce_with_logits",
    "sigmoid_focal", "log_cosh", "pseudo_huber", "quantile", "poisson_nll", "gaussian_nll",
    "kl_div", "hinge_embedding", "soft_margin",
    "cross_entropy", "focal", "nll", "multi_margin", "poly1",
    "multilabel_soft_margin",
    "contrastive", "cosine_embedding",
    "triplet",
    "margin_ranking",
)


def canonical(loss: str) -> str:
    """The canonical name of a loss (aliases resolve), without importing Numba."""
    from lossjit import registry

    return registry.resolve(loss).name


def in_table_order(names: Iterable[str]) -> list[str]:
    """``names`` (canonical, in registration order) in table order: those in
    :data:`TABLE_ORDER` as it orders them, then the others as given.

    >>> in_table_order(["tweedie", "log_cosh", "mse"])
    ['mse', 'log_cosh', 'tweedie']
    """
    rank = {name: i for i, name in enumerate(TABLE_ORDER)}
    given = list(enumerate(names))
    return [name for _, name in sorted(given, key=lambda g: (rank.get(g[1], len(rank)), g[0]))]
