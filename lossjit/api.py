"""The functions behind ``lossjit.value_and_grad``, ``loss``, ``grad``, ``get`` and ``register``.

One path serves them all: look the loss up in the registry, validate its options, lay the
arrays out for its kernel (:mod:`lossjit.layouts`), allocate the outputs with NumPy, run the
serial kernel on small inputs and its parallel twin on large ones (the result is the same to
the bit), then reduce.

>>> import numpy as np
>>> loss, grad = value_and_grad("mse", np.array([1.5, 2.3, 0.8]), np.array([1.0, 2.0, 1.0]))
>>> round(loss, 6), np.round(grad, 4).tolist()
(0.126667, [0.3333, 0.2, -0.1333])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from lossjit import registry
from lossjit.errors import LossjitError
from lossjit.layouts import Call
from lossjit.registry import LossSpec, Param

Reduction = Literal["mean", "sum", "none"]
LossValue = float | np.ndarray
REDUCTIONS = ("mean", "sum", "none")

#: Inputs with at least this many numbers run on the parallel kernel; smaller ones serially,
#: where a thread launch would cost more than it saves.
PARALLEL_MIN = 1 << 16


def _prepare_function(spec: LossSpec) -> Callable[..., Call]:
    if callable(spec.prepare):
        return spec.prepare
    module, _, attribute = spec.prepare.partition(":")
    return getattr(importlib.import_module(module), attribute)  # type: ignore[no-any-return]


_kernel_pairs: dict[str, tuple[Any, Any]] = {}


def _kernel_pair(kernel: str | tuple[Any, Any]) -> tuple[Any, Any]:
    """The (serial, parallel) kernels named ``kernel`` in :mod:`lossjit.kernels`."""
    if isinstance(kernel, tuple):
        return kernel
    pair = _kernel_pairs.get(kernel)
    if pair is None:
        kernels = importlib.import_module("lossjit.kernels")
        pair = _kernel_pairs[kernel] = (getattr(kernels, kernel),
                                        getattr(kernels, kernel + "_parallel"))
    return pair


def _check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype, inputs: Sequence[Any]) -> None:
    if not isinstance(out, np.ndarray):
        raise LossjitError(f"out: expected a NumPy array, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise LossjitError(f"out: got shape {out.shape} {out.dtype}; expected shape {shape} "
                           f"{dtype} (the predictions' shape and dtype)")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise LossjitError("out: expected a writeable C-contiguous array")
    for array in inputs:
        if isinstance(array, np.ndarray) and np.may_share_memory(out, array):
            raise LossjitError("out: shares memory with an input; pass a separate array")


_empties: dict[tuple[int, Any], np.ndarray] = {}


def _empty(ndim: int, dtype: Any) -> np.ndarray:
    """A shared empty array: the kernels' "nothing here" (never written, having no element)."""
    key = (ndim, np.dtype(dtype))
    empty = _empties.get(key)
    if empty is None:
        empty = _empties[key] = np.empty((0,) * ndim, dtype=dtype)
    return empty


def compute(name: str, predictions: Any, targets: Any = None, *, reduction: str = "mean",
            want_grad: bool = True, out: np.ndarray | None = None,
            **params: Any) -> tuple[LossValue, np.ndarray | None]:
    """The loss and (when ``want_grad``) its gradient; the engine of the public functions."""
    spec = registry.resolve(name)
    if reduction not in REDUCTIONS:
        raise LossjitError(f"reduction: expected one of mean, sum, none; got {reduction!r}")
    options = spec.options(params)
    predictions = np.asarray(predictions)
    if spec.targets == "none":
        targets = None
    elif spec.targets == "required" and targets is None:
        raise LossjitError(f"targets: missing; {spec.name} needs targets ({spec.layout})")
    call = _prepare_function(spec)(predictions, targets, options)
    x = call.x
    serial, parallel = _kernel_pair(call.kernel)
    kernel = parallel if x.size >= PARALLEL_MIN else serial

    grad = None
    grad_view = _empty(x.ndim, x.dtype)
    if want_grad:
        if out is not None:
            _check_out(out, predictions.shape, x.dtype, (predictions, targets))
            grad = out
        else:
            grad = np.empty(predictions.shape, dtype=x.dtype)
        grad_view = (grad.reshape(x.shape) if call.unpack is None
                     else np.empty(x.shape, dtype=x.dtype))
    elif out is not None:
        raise LossjitError("out: only a gradient can be written to out")

    assert call.terms_layout is not None
    if reduction == "none":
        losses = np.empty(call.terms_layout, dtype=x.dtype)
    else:
        losses = _empty(len(call.terms_layout), x.dtype)

    count = call.count
    scale = (1.0 / count if count else 0.0) if reduction == "mean" else 1.0
    weights = call.w if call.w.size else _empty(len(call.terms_layout), np.float64)
    total = kernel(x, call.y, weights, grad_view, losses, scale, *call.params)

    if grad is not None and call.unpack is not None:
        call.unpack(grad_view, grad)

    value: LossValue
    if reduction == "none":
        value = losses.reshape(call.terms_shape)
    elif reduction == "sum":
        value = float(total)
    else:
        value = float(total) / count if count else float("nan")
    return value, grad


def value_and_grad(name: str, predictions: Any, targets: Any = None, *,
                   reduction: Reduction = "mean", out: np.ndarray | None = None,
                   **params: Any) -> tuple[LossValue, np.ndarray]:
    """The loss and its gradient w.r.t. ``predictions``, from one fused pass.

    The loss is a float for ``reduction="mean"``/``"sum"`` and an array of per-term losses
    for ``"none"`` (whose gradient is that of their sum). The gradient has the shape and
    dtype of ``predictions``; ``out`` receives it when given.

    >>> import numpy as np
    >>> value_and_grad("l1", np.array([0.0, 2.0]), np.array([1.0, 1.0]), reduction="sum")
    (2.0, array([-1.,  1.]))
    """
    value, grad = compute(name, predictions, targets, reduction=reduction, out=out, **params)
    assert grad is not None
    return value, grad


def loss(name: str, predictions: Any, targets: Any = None, *, reduction: Reduction = "mean",
         **params: Any) -> LossValue:
    """The loss alone; no gradient is computed or written.

    >>> import numpy as np
    >>> loss("huber", np.array([0.0, 3.0]), np.array([0.0, 0.0]), delta=1.0)
    1.25
    """
    return compute(name, predictions, targets, reduction=reduction, want_grad=False,
                   **params)[0]


def grad(name: str, predictions: Any, targets: Any = None, *, reduction: Reduction = "mean",
         out: np.ndarray | None = None, **params: Any) -> np.ndarray:
    """The gradient of the loss w.r.t. ``predictions`` (shape and dtype of ``predictions``).

    >>> import numpy as np
    >>> grad("mse", np.array([1.0, 3.0]), np.array([0.0, 0.0]), reduction="sum")
    array([2., 6.])
    """
    return value_and_grad(name, predictions, targets, reduction=reduction, out=out,
                          **params)[1]


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
             prepare: Callable[..., Call] | None = None, family: str = "custom",
             formula: str = "", layout: str = "predictions and targets of the same shape",
             targets: str = "required", reference: str = "", replace: bool = False
             ) -> LossSpec:
    """Add a loss of your own; it then works in the API, ``lossjit list`` and the CLI.

    Give either ``pointwise``, an ``@njit`` function ``(x, y, *params) -> (loss, dloss/dx)``
    for one element (lossjit builds the fused, blocked serial and parallel kernels), or
    ``kernel``, a kernel with lossjit's signature (one dispatcher, or a (serial, parallel)
    pair). ``params`` are :class:`~lossjit.registry.Param` objects or ``(name, default)``
    pairs; their values reach the kernel in that order. An element-wise layout is assumed
    unless ``prepare`` lays the arrays out itself.

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
    if (kernel is None) == (pointwise is None) and prepare is None:
        raise LossjitError("register: give exactly one of kernel= or pointwise=")
    specs = tuple(_as_param(p) for p in params)
    pair: Any = kernel
    if pointwise is not None:
        from lossjit._jit import specialise
        from lossjit.kernels import _blocks

        adapter = specialise(_blocks.user_pointwise_template, f"user_{name}_pointwise",
                             user_pointwise=pointwise)
        pair = _blocks.elementwise_kernels(f"user_{name}", adapter)
    elif kernel is not None and not isinstance(kernel, tuple):
        pair = (kernel, kernel)
    if prepare is None:
        from lossjit.layouts import elementwise_for

        prepare = elementwise_for(pair, *(p.name for p in specs))
    spec = LossSpec(name=name, family=family, formula=formula, layout=layout, params=specs,
                    prepare=prepare, aliases=tuple(aliases), targets=targets,
                    reference=reference)
    return registry.register_spec(spec, replace=replace)
