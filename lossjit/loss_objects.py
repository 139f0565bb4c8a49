"""Loss objects: ``lossjit.get(name, **options)`` and the seed's classes.

A :class:`Loss` binds a loss name, its options and a reduction, and offers the seed's
``forward``/``backward`` pair plus ``value_and_grad``. The seed's classes
(:class:`MeanSquaredError`, :class:`CrossEntropyLoss`, :class:`FocalLoss`,
:class:`ContrastiveLoss`, :class:`TripletLoss`) are ``Loss`` objects with the seed's
constructors.

>>> import numpy as np
>>> mse = MeanSquaredError()
>>> p, t = np.array([1.5, 2.3, 0.8]), np.array([1.0, 2.0, 1.0])
>>> round(mse.forward(p, t), 6)
0.126667
>>> np.round(mse.backward(p, t), 4).tolist()
[0.3333, 0.2, -0.1333]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lossjit import api, registry
from lossjit.api import Empty, LossValue, NanPolicy, Reduction


class Loss:
    """A loss with its options bound: ``forward`` (the loss), ``backward`` (its gradient).

    >>> import numpy as np
    >>> huber = Loss("huber", delta=0.5)
    >>> huber.forward(np.array([2.0]), np.array([0.0]))
    0.875
    >>> Loss("mse", nan_policy="omit").forward(np.array([2.0, np.nan]), np.zeros(2))
    4.0
    """

    def __init__(self, name: str, *, reduction: Reduction = "mean", empty: Empty = "nan",
                 nan_policy: NanPolicy = "propagate", **options: Any) -> None:
        self.spec = registry.resolve(name)
        self.spec.options(options)  # fail early on a bad option
        api.check_settings(self.spec, reduction, empty, nan_policy)
        self.name = self.spec.name
        self.reduction: Reduction = reduction
        self.empty: Empty = empty
        self.nan_policy: NanPolicy = nan_policy
        self.options = dict(options)

    def _keywords(self, sample_weight: Any) -> dict[str, Any]:
        return dict(reduction=self.reduction, empty=self.empty, nan_policy=self.nan_policy,
                    sample_weight=sample_weight, **self.options)

    def forward(self, predictions: Any, targets: Any = None, *,
                sample_weight: Any = None) -> LossValue:
        """The loss value (a float, or per-term losses for ``reduction="none"``)."""
        return api.loss(self.name, predictions, targets, **self._keywords(sample_weight))

    def backward(self, predictions: Any, targets: Any = None, *, sample_weight: Any = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        """The gradient of the loss w.r.t. ``predictions``."""
        return api.grad(self.name, predictions, targets, out=out,
                        **self._keywords(sample_weight))

    def value_and_grad(self, predictions: Any, targets: Any = None, *,
                       sample_weight: Any = None, out: np.ndarray | None = None
                       ) -> tuple[LossValue, np.ndarray]:
        """The loss and its gradient, from one fused pass."""
        return api.value_and_grad(self.name, predictions, targets, out=out,
                                  **self._keywords(sample_weight))

    def grad_hess(self, predictions: Any, targets: Any = None, *,
                  sample_weight: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """The gradient and the diagonal of the Hessian (see :func:`lossjit.grad_hess`)."""
        return api.grad_hess(self.name, predictions, targets, **self._keywords(sample_weight))

    __call__ = forward

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        policy = "" if self.nan_policy == "propagate" else f", nan_policy={self.nan_policy!r}"
        return (f"{type(self).__name__}({self.name!r}, reduction={self.reduction!r}{policy}"
                + (f", {shown}" if shown else "") + ")")


def get(name: str, *, reduction: Reduction = "mean", empty: Empty = "nan",
        nan_policy: NanPolicy = "propagate", **options: Any) -> Loss:
    """A :class:`Loss` object for ``name`` (any alias) with ``options`` bound; ``nan_policy``
    as in :func:`lossjit.value_and_grad`.

    >>> import numpy as np
    >>> get("mae").forward(np.array([1.0, -1.0]), np.array([0.0, 0.0]))
    1.0
    >>> get("mae", nan_policy="omit").forward(np.array([1.0, np.nan]), np.array([0.0, 0.0]))
    1.0
    """
    return Loss(name, reduction=reduction, empty=empty, nan_policy=nan_policy, **options)


class MeanSquaredError(Loss):
    """The seed's MSE: mean of (x - y)^2, gradient 2 (x - y) / n."""

    def __init__(self, *, reduction: Reduction = "mean",
                 nan_policy: NanPolicy = "propagate") -> None:
        super().__init__("mse", reduction=reduction, nan_policy=nan_policy)


class CrossEntropyLoss(Loss):
    """The seed's cross-entropy. It takes **logits** by default, as the seed's module doc does
    (softmax is applied inside); ``from_logits=False`` takes probabilities instead, as the
    seed's implementation did, with ``-sum t log(clip(p, eps, 1))`` and its true gradient.
    Targets are one-hot/probability rows or integer class indices. Every option of
    ``cross_entropy`` is accepted: ``weight``, ``ignore_index``, ``label_smoothing``, ``eps``.

    >>> import numpy as np
    >>> logits = np.array([[1.0, 2.0, 0.5], [0.8, 0.2, 1.5]])
    >>> onehot = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> round(CrossEntropyLoss().forward(logits, onehot), 6)
    0.517425
    """

    def __init__(self, *, from_logits: bool = True, reduction: Reduction = "mean",
                 **options: Any) -> None:
        super().__init__("cross_entropy", reduction=reduction, from_logits=from_logits,
                         **options)


class FocalLoss(Loss):
    """The seed's focal loss ``FocalLoss(gamma, alpha, eps)``. It takes **probabilities**
    with one-hot targets by default, as the seed's focal example does:
    ``-(1/B) sum over positive targets of alpha (1-p)^gamma t log(clip(p, eps, 1))``, with
    the correct gradient (the seed's had the sign of the gamma term flipped).
    ``from_logits=True`` takes logits (softmax focal), with class indices or one-hot targets
    and ``ignore_index``.

    >>> import numpy as np
    >>> probs = np.array([[0.9, 0.1], [0.6, 0.4]])
    >>> onehot = np.array([[1.0, 0.0], [1.0, 0.0]])
    >>> round(FocalLoss(2.0, 0.25).forward(probs, onehot), 6)
    0.010348
    """

    def __init__(self, gamma: float = 2.0, alpha: Any = None, eps: float = 1e-10, *,
                 from_logits: bool = False, reduction: Reduction = "mean",
                 **options: Any) -> None:
        super().__init__("focal", reduction=reduction, gamma=gamma, alpha=alpha, eps=eps,
                         from_logits=from_logits, **options)


class ContrastiveLoss(Loss):
    """The seed's contrastive loss on pairs (B, 2, D) with labels (1 = similar):
    ``y d^2 + (1-y) max(0, margin - d)^2``, averaged over pairs."""

    def __init__(self, margin: float = 1.0, *, reduction: Reduction = "mean",
                 nan_policy: NanPolicy = "propagate") -> None:
        super().__init__("contrastive", reduction=reduction, nan_policy=nan_policy,
                         margin=margin)


class TripletLoss(Loss):
    """The seed's triplet loss on (B, 3, D) = anchor, positive, negative (targets ignored):
    ``max(0, d(a,p) - d(a,n) + margin)`` with PyTorch's ``p``, ``eps`` and ``swap`` options.

    >>> import numpy as np
    >>> emb = np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]])
    >>> TripletLoss(1.0).forward(emb, np.zeros(3))
    0.0
    """

    def __init__(self, margin: float = 1.0, *, reduction: Reduction = "mean",
                 **options: Any) -> None:
        super().__init__("triplet", reduction=reduction, margin=margin, **options)
