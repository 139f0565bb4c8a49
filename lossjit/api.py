"""The functions behind ``lossjit.value_and_grad``, ``loss``, ``grad``, ``get`` and ``register``.

One path serves them all (:mod:`lossjit.plan`): look the loss up in the registry, validate its
options, lay the arrays out for its kernel (:mod:`lossjit.layouts`), count the denominator,
allocate the outputs with NumPy, run the serial kernel on small inputs and its parallel twin
on large ones (the result is the same to the bit), then combine the block sums exactly.

>>> import numpy as np
>>> loss, grad = value_and_grad("mse", np.array([1.5, 2.3, 0.8]), np.array([1.0, 2.0, 1.0]))
>>> round(loss, 6), np.round(grad, 4).tolist()
(0.126667, [0.3333, 0.2, -0.1333])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lossjit import registry
from lossjit.errors import LossjitError
from lossjit.layouts import Elementwise, Layout
from lossjit.plan import (
    NAN_POLICIES,
    LossValue,
    NanPolicy,
    check_settings,
    make_plan,
    quick_value_and_grad,
    run,
)
from lossjit.registry import Empty, LossSpec, Param, Reduction

__all__ = ["NAN_POLICIES", "Empty", "LossValue", "NanPolicy", "Reduction", "check_settings",
           "compute", "grad", "grad_hess", "loss", "names", "register", "value_and_grad"]


def compute(name: str, predictions: Any, targets: Any = None, *, reduction: str = "mean",
            want_grad: bool = True, out: np.ndarray | None = None, sample_weight: Any = None,
            empty: str = "nan", wrt: Sequence[str] = ("predictions",), hessian: bool = False,
            want_value: bool = True, nan_policy: str = "propagate", **params: Any
            ) -> tuple[LossValue | None, dict[str, np.ndarray], np.ndarray | None]:
    """The loss (unless not ``want_value``), the gradients named in ``wrt`` (when
    ``want_grad``) and, with ``hessian``, the diagonal of the Hessian: the engine of the
    public functions (:mod:`lossjit.plan`, on whole arrays). ``nan_policy`` is
    :func:`value_and_grad`'s."""
    plan = make_plan(name, reduction=reduction, empty=empty, wrt=wrt, hessian=hessian,
                     want_grad=want_grad, want_value=want_value, nan_policy=nan_policy,
                     **params)
    value, grads, hess = run(plan, predictions, targets, sample_weight=sample_weight, out=out)
    return value, grads, hess


def _wrt_names(wrt: str | Sequence[str]) -> tuple[str, ...]:
    names = (wrt,) if isinstance(wrt, str) else tuple(wrt)
    if not names:
        raise LossjitError("wrt: name at least one input, e.g. 'predictions'")
    return names


def value_and_grad(name: str, predictions: Any, targets: Any = None, *,
                   reduction: Reduction = "mean", out: np.ndarray | None = None,
                   sample_weight: Any = None, empty: Empty = "nan",
                   wrt: str | Sequence[str] = "predictions", nan_policy: NanPolicy = "propagate",
                   **params: Any) -> tuple[LossValue, Any]:
    """The loss and its gradient w.r.t. ``predictions``, from one fused pass.

    The loss is a float for ``reduction="mean"``/``"sum"`` and an array of per-term losses
    for ``"none"`` (whose gradient is that of their sum). The gradient has the shape and
    dtype of ``predictions``; ``out`` receives it when given.

    - ``sample_weight``: one weight per loss term (broadcast to the terms' shape); the mean
      becomes ``sum(w l) / sum(w)`` (class weights keep their own meaning);
    - ``empty``: what a mean over zero terms gives: ``"nan"`` (PyTorch's), ``"zero"`` or
      ``"error"``;
    - ``wrt``: the input to differentiate, or a tuple of them, which returns a tuple of
      gradients: ``wrt=("predictions", "var")`` for ``gaussian_nll``;
    - ``nan_policy``: what NaN (and inf) in the inputs do, as in SciPy. A *term* is what the
      loss counts as one: an element of element-wise losses, a row of the class axis, a pair
      or a triplet.

      - ``"propagate"`` (the default): IEEE arithmetic. A term whose loss is NaN (a NaN input,
        or an inf that makes one) gives a NaN loss, and NaN in every gradient (and Hessian)
        entry of that term: a NaN logit makes its whole softmax row NaN.
      - ``"raise"``: a LossjitError names the first NaN or infinite value of the
        predictions, targets or sample weights, and its position.
      - ``"omit"``: the terms with a NaN prediction, target or sample weight are dropped:
        the mean is over the others (its denominator as if they had weight 0), their
        gradient (and Hessian) entries are 0, and ``reduction="none"`` gives NaN as their
        losses. Every term omitted: the mean follows ``empty``, the sum is 0.

    >>> import numpy as np
    >>> value_and_grad("l1", np.array([0.0, 2.0]), np.array([1.0, 1.0]), reduction="sum")
    (2.0, array([-1.,  1.]))
    >>> value_and_grad("mse", np.array([1.0, 3.0]), np.zeros(2), sample_weight=[3.0, 1.0])
    (3.0, array([1.5, 1.5]))
    >>> x, y = np.array([1.0, np.nan, 3.0]), np.zeros(3)
    >>> value_and_grad("mse", x, y)
    (nan, array([0.66666667,        nan, 2.        ]))
    >>> value_and_grad("mse", x, y, nan_policy="omit")
    (5.0, array([1., 0., 3.]))
    >>> value_and_grad("mse", x, y, nan_policy="omit", reduction="none")[0]
    array([ 1., nan,  9.])
    >>> value_and_grad("mse", x, y, nan_policy="raise")
    Traceback (most recent call last):
    ...
    lossjit.errors.LossjitError: predictions: NaN at position (1,); nan_policy='raise' refuses \
NaN and infinite values (nan_policy='omit' drops the terms that hold NaN, 'propagate' computes \
with them)
    """
    if sample_weight is None and not params and wrt == "predictions":
        done = quick_value_and_grad(name, reduction, empty, nan_policy, predictions, targets,
                                    out)
        if done is not None:
            return done
    names = _wrt_names(wrt)
    value, grads, _ = compute(name, predictions, targets, reduction=reduction, out=out,
                              sample_weight=sample_weight, empty=empty, wrt=names,
                              nan_policy=nan_policy, **params)
    if isinstance(wrt, str):
        return value, grads[wrt]
    return value, tuple(grads[item] for item in names)


def loss(name: str, predictions: Any, targets: Any = None, *, reduction: Reduction = "mean",
         sample_weight: Any = None, empty: Empty = "nan", nan_policy: NanPolicy = "propagate",
         **params: Any) -> LossValue:
    """The loss alone; no gradient is computed or written. ``nan_policy`` is
    :func:`value_and_grad`'s.

    >>> import numpy as np
    >>> loss("huber", np.array([0.0, 3.0]), np.array([0.0, 0.0]), delta=1.0)
    1.25
    >>> loss("huber", np.array([0.0, 3.0, np.nan]), np.zeros(3), nan_policy="omit")
    1.25
    """
    return compute(name, predictions, targets, reduction=reduction, want_grad=False,
                   sample_weight=sample_weight, empty=empty, nan_policy=nan_policy,
                   **params)[0]


def grad(name: str, predictions: Any, targets: Any = None, *, reduction: Reduction = "mean",
         out: np.ndarray | None = None, sample_weight: Any = None, empty: Empty = "nan",
         wrt: str | Sequence[str] = "predictions", nan_policy: NanPolicy = "propagate",
         **params: Any) -> Any:
    """The gradient of the loss w.r.t. ``predictions`` (shape and dtype of ``predictions``),
    or the gradients named in ``wrt``; ``nan_policy`` is :func:`value_and_grad`'s.

    >>> import numpy as np
    >>> grad("mse", np.array([1.0, 3.0]), np.array([0.0, 0.0]), reduction="sum")
    array([2., 6.])
    """
    return value_and_grad(name, predictions, targets, reduction=reduction, out=out,
                          sample_weight=sample_weight, empty=empty, wrt=wrt,
                          nan_policy=nan_policy, **params)[1]


def grad_hess(name: str, predictions: Any, targets: Any = None, *,
              reduction: Reduction = "mean", sample_weight: Any = None, empty: Empty = "nan",
              nan_policy: NanPolicy = "propagate", **params: Any
              ) -> tuple[np.ndarray, np.ndarray]:
    """The gradient and the diagonal of the Hessian of the loss w.r.t. ``predictions``, both
    of the predictions' shape and dtype, from one fused pass; ``nan_policy`` is
    :func:`value_and_grad`'s (a NaN term's Hessian entries are NaN, an omitted one's 0).

    For Newton steps and gradient boosting: ``reduction="sum"`` gives the per-element
    derivatives. Element-wise losses and ``cross_entropy`` on logits have it (``lossjit
    info`` says which); other losses raise a LossjitError.

    >>> import numpy as np
    >>> g, h = grad_hess("bce_with_logits", np.array([0.0, 2.0]), np.array([1.0, 0.0]),
    ...                  reduction="sum")
    >>> np.round(g, 4).tolist(), np.round(h, 4).tolist()
    ([-0.5, 0.8808], [0.25, 0.105])
    """
    _, grads, hess = compute(name, predictions, targets, reduction=reduction,
                             sample_weight=sample_weight, empty=empty, hessian=True,
                             want_value=False, nan_policy=nan_policy, **params)
    assert hess is not None
    return grads["predictions"], hess


def names() -> list[str]:
    """The canonical names of every registered loss (aliases resolve everywhere too).

    >>> "cross_entropy" in names()
    True
    """
    return registry.names()


def _as_param(item: Param | tuple[Any, ...]) -> Param:
    if isinstance(item, Param):
        return item
    name, default, *rest = item
    kind = ("bool" if isinstance(default, bool) else "int" if isinstance(default, int)
            else "float" if isinstance(default, float) else "array")
    return Param(name, kind, default, rest[0] if rest else "")


def register(name: str, kernel: Any = None, *, pointwise: Any = None,
             params: Sequence[Param | tuple[Any, ...]] = (), aliases: Sequence[str] = (),
             layout: Layout | None = None, family: str = "custom", formula: str = "",
             inputs: str = "predictions and targets of the same shape",
             targets: str = "required", reference: str = "", nonnegative: bool = False,
             replace: bool = False) -> LossSpec:
    """Add a loss of your own; it then works in the API, ``lossjit list`` and the CLI.

    Give either ``pointwise``, an ``@njit`` function ``(x, y, *params) -> (loss, dloss/dx)``
    for one element (lossjit builds the fused, blocked serial and parallel kernels), or
    ``kernel``, a kernel with lossjit's signature (one dispatcher, a (serial, parallel) pair,
    or a :class:`~lossjit.kernels._blocks.KernelSet`). ``params`` are
    :class:`~lossjit.registry.Param` objects or ``(name, default)`` pairs; their values reach
    the kernel in that order. An element-wise layout is assumed unless ``layout`` (a
    :class:`~lossjit.layouts.Layout`) lays the arrays out otherwise; ``inputs`` says in words
    what they are.

    >>> import numpy as np
    >>> from numba import njit
    >>> @njit
    ... def cubic(x, y, k):
    ...     e = x - y
    ...     return k * abs(e) ** 3, 3 * k * e * abs(e)
    >>> spec = register("cubic_error", pointwise=cubic, params=[("k", 1.0)], replace=True)
    >>> value_and_grad("cubic_error", np.array([2.0]), np.array([0.0]), k=0.5)
    (4.0, array([6.]))
    """
    if (kernel is None) == (pointwise is None):
        raise LossjitError("register: give exactly one of kernel= or pointwise=")
    specs = tuple(_as_param(p) for p in params)
    from lossjit.kernels import _blocks

    if pointwise is not None:
        kernel_set = _blocks.user_kernels(name, pointwise)
    elif isinstance(kernel, _blocks.KernelSet):
        kernel_set = kernel
    else:
        serial, parallel = kernel if isinstance(kernel, tuple) else (kernel, kernel)
        kernel_set = _blocks.KernelSet(f"user_{name}", serial, parallel)
    spec = LossSpec(name=name, family=family, formula=formula, inputs=inputs, params=specs,
                    layout=layout or Elementwise(tuple(p.name for p in specs)),
                    kernels=lambda: kernel_set, aliases=tuple(aliases), targets=targets,
                    reference=reference, nonnegative=nonnegative)
    return registry.register_spec(spec, replace=replace)
