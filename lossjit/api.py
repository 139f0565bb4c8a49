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
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from lossjit import registry
from lossjit.errors import LossjitError
from lossjit.layouts import Call
from lossjit.registry import LossSpec, Param

Reduction = Literal["mean", "sum", "none", "batchmean"]
Empty = Literal["nan", "zero", "error"]
LossValue = float | np.ndarray

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


_scratches = threading.local()


def _scratch(role: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A buffer of ``shape`` for the kernel's side of a gradient that is then unpacked into
    the user's layout, kept per thread and reused by the next call of the same size: a fresh
    buffer would be paged in on every call (on this kind of machine, slower than the kernel)."""
    buffers = _scratches.__dict__
    size = int(np.prod(shape))
    buffer = buffers.get((role, np.dtype(dtype)))
    if buffer is None or buffer.size != size:
        buffer = buffers[(role, np.dtype(dtype))] = np.empty(size, dtype=dtype)
    return buffer.reshape(shape)


def _sample_weights(sample_weight: Any, call: Call) -> np.ndarray:
    """``sample_weight`` broadcast to the terms' shape, laid out as the kernel's terms."""
    sw = np.asarray(sample_weight)
    if sw.dtype.kind not in "biuf":
        raise LossjitError(f"sample_weight: dtype {sw.dtype} is not supported; expected numbers")
    try:
        sw = np.broadcast_to(sw.astype(np.float64), call.terms_shape)
    except ValueError:
        raise LossjitError(f"sample_weight: shape {sw.shape} does not match the loss terms' "
                           f"shape {call.terms_shape}; expected one weight per term") from None
    bad = ~(np.isfinite(sw) & (sw >= 0))
    if bad.any():
        raise LossjitError(f"sample_weight: weights must be finite and >= 0, got "
                           f"{sw.flat[np.argmax(bad)]!r}")
    assert call.terms_layout is not None
    return np.array(sw.reshape(call.terms_layout), order="C")


def _denominator(name: str, call: Call, reduction: str, predictions: np.ndarray,
                 sample_weight: np.ndarray | None, empty: str) -> float:
    """What the reduced loss divides by (1 for "sum" and "none"); an empty mean follows
    ``empty``: NaN (0 returned here), 0, or an error."""
    if reduction in ("sum", "none"):
        return 1.0
    if reduction == "batchmean":
        count = float(predictions.shape[0]) if predictions.ndim else 1.0
    elif sample_weight is None:
        count = call.count
    elif call.counts is None:
        count = float(sample_weight.sum())
    else:
        count = float(np.dot(sample_weight.reshape(-1), call.counts()))
    if count == 0 and empty == "error":
        raise LossjitError(f"{name}: the {reduction} is over zero terms (an empty input, every "
                           "target ignored, or zero weights); set empty to 'nan' or 'zero' "
                           "(--empty on the command line) to get a number")
    return count


def check_settings(spec: LossSpec, reduction: str, empty: str) -> None:
    """Raise a clear LossjitError unless ``reduction`` and ``empty`` are valid for ``spec``."""
    if reduction not in spec.reductions:
        raise LossjitError(f"reduction: expected one of {', '.join(spec.reductions)}; got "
                           f"{reduction!r}")
    if empty not in registry.EMPTY_CHOICES:
        raise LossjitError(f"empty: expected one of {', '.join(registry.EMPTY_CHOICES)}; got "
                           f"{empty!r}")


def compute(name: str, predictions: Any, targets: Any = None, *, reduction: str = "mean",
            want_grad: bool = True, out: np.ndarray | None = None, sample_weight: Any = None,
            empty: str = "nan", wrt: Sequence[str] = ("predictions",), hessian: bool = False,
            want_value: bool = True, **params: Any
            ) -> tuple[LossValue | None, dict[str, np.ndarray], np.ndarray | None]:
    """The loss (unless not ``want_value``), the gradients named in ``wrt`` (when
    ``want_grad``) and, with ``hessian``, the diagonal of the Hessian: the engine of the
    public functions."""
    spec = registry.resolve(name)
    check_settings(spec, reduction, empty)
    differentiable = ("predictions", *(p.name for p in spec.params if p.differentiable))
    for item in wrt:
        if item not in differentiable:
            raise LossjitError(f"wrt: {spec.name} has no gradient with respect to {item!r}; "
                               f"expected {' or '.join(map(repr, differentiable))}")
    options = spec.options(params)
    predictions = np.asarray(predictions)
    if spec.targets == "none":
        targets = None
    elif spec.targets == "required" and targets is None:
        raise LossjitError(f"targets: missing; {spec.name} needs targets ({spec.layout})")
    call = _prepare_function(spec)(predictions, targets, options)
    x = call.x
    kernel_name = call.kernel
    if hessian:
        if not spec.hessian or isinstance(kernel_name, tuple):
            raise LossjitError(f"{spec.name}: no Hessian diagonal is available for this loss; "
                               "lossjit info lists the losses that have one")
        kernel_name = kernel_name + "_hessian"
        if not hasattr(importlib.import_module("lossjit.kernels"), kernel_name):
            raise LossjitError(f"{spec.name}: no Hessian diagonal with these options "
                               f"({spec.hessian})")
    serial, parallel = _kernel_pair(kernel_name)
    kernel = parallel if x.size >= PARALLEL_MIN else serial

    weights = call.w
    sw = None
    if sample_weight is not None:
        sw = _sample_weights(sample_weight, call)
        weights = sw if not weights.size else weights * sw
    count = _denominator(spec.name, call, reduction, predictions, sw, empty)

    grad = None
    grad_view = _empty(x.ndim, x.dtype)
    if want_grad or hessian:
        if out is not None:
            _check_out(out, predictions.shape, x.dtype, (predictions, targets))
            grad = out
        else:
            grad = np.empty(predictions.shape, dtype=x.dtype)
        grad_view = (grad.reshape(x.shape) if call.unpack is None
                     else _scratch("grad", x.shape, x.dtype))
    elif out is not None:
        raise LossjitError("out: only a gradient can be written to out")

    assert call.terms_layout is not None
    hess = hess_view = None
    if hessian:
        hess = np.empty(predictions.shape, dtype=x.dtype)
        hess_view = (hess.reshape(x.shape) if call.unpack is None
                     else _scratch("hess", x.shape, x.dtype))
        losses = hess_view
    elif reduction == "none":
        losses = np.empty(call.terms_layout, dtype=x.dtype)
    else:
        losses = _empty(len(call.terms_layout), x.dtype)

    scale = 1.0 / count if count else 0.0
    if not weights.size:
        weights = _empty(len(call.terms_layout), np.float64)
    total = kernel(x, call.y, weights, grad_view, losses, scale, *call.params)

    grads: dict[str, np.ndarray] = {}
    if grad is not None:
        if call.unpack is not None:
            call.unpack(grad_view, grad)
            if hess is not None:
                call.unpack(hess_view, hess)
        grads["predictions"] = grad
        for item in wrt:
            if item != "predictions":
                grads[item] = call.wrt[item](grad_view)

    value: LossValue | None
    if not want_value:
        value = None
    elif reduction == "none":
        if hessian:  # a Hessian kernel's losses slot held the Hessian: a value-only pass
            losses = np.empty(call.terms_layout, dtype=x.dtype)
            plain = _kernel_pair(call.kernel)[kernel is parallel]
            plain(x, call.y, weights, _empty(x.ndim, x.dtype), losses, 1.0, *call.params)
        value = losses.reshape(call.terms_shape)
    elif count:
        value = float(total) / count
    else:
        value = 0.0 if empty == "zero" else float("nan")
    return value, grads, hess


def _wrt_names(wrt: str | Sequence[str]) -> tuple[str, ...]:
    names = (wrt,) if isinstance(wrt, str) else tuple(wrt)
    if not names:
        raise LossjitError("wrt: name at least one input, e.g. 'predictions'")
    return names


def value_and_grad(name: str, predictions: Any, targets: Any = None, *,
                   reduction: Reduction = "mean", out: np.ndarray | None = None,
                   sample_weight: Any = None, empty: Empty = "nan",
                   wrt: str | Sequence[str] = "predictions", **params: Any
                   ) -> tuple[LossValue, Any]:
    """The loss and its gradient w.r.t. ``predictions``, from one fused pass.

    The loss is a float for ``reduction="mean"``/``"sum"`` and an array of per-term losses
    for ``"none"`` (whose gradient is that of their sum). The gradient has the shape and
    dtype of ``predictions``; ``out`` receives it when given.

    - ``sample_weight``: one weight per loss term (broadcast to the terms' shape); the mean
      becomes ``sum(w l) / sum(w)`` (class weights keep their own meaning);
    - ``empty``: what a mean over zero terms gives: ``"nan"`` (PyTorch's), ``"zero"`` or
      ``"error"``;
    - ``wrt``: the input to differentiate, or a tuple of them, which returns a tuple of
      gradients: ``wrt=("predictions", "var")`` for ``gaussian_nll``.

    >>> import numpy as np
    >>> value_and_grad("l1", np.array([0.0, 2.0]), np.array([1.0, 1.0]), reduction="sum")
    (2.0, array([-1.,  1.]))
    >>> value_and_grad("mse", np.array([1.0, 3.0]), np.zeros(2), sample_weight=[3.0, 1.0])
    (3.0, array([1.5, 1.5]))
    """
    names = _wrt_names(wrt)
    value, grads, _ = compute(name, predictions, targets, reduction=reduction, out=out,
                              sample_weight=sample_weight, empty=empty, wrt=names, **params)
    if isinstance(wrt, str):
        return value, grads[wrt]
    return value, tuple(grads[item] for item in names)


def loss(name: str, predictions: Any, targets: Any = None, *, reduction: Reduction = "mean",
         sample_weight: Any = None, empty: Empty = "nan", **params: Any) -> LossValue:
    """The loss alone; no gradient is computed or written.

    >>> import numpy as np
    >>> loss("huber", np.array([0.0, 3.0]), np.array([0.0, 0.0]), delta=1.0)
    1.25
    """
    return compute(name, predictions, targets, reduction=reduction, want_grad=False,
                   sample_weight=sample_weight, empty=empty, **params)[0]


def grad(name: str, predictions: Any, targets: Any = None, *, reduction: Reduction = "mean",
         out: np.ndarray | None = None, sample_weight: Any = None, empty: Empty = "nan",
         wrt: str | Sequence[str] = "predictions", **params: Any) -> Any:
    """The gradient of the loss w.r.t. ``predictions`` (shape and dtype of ``predictions``),
    or the gradients named in ``wrt``.

    >>> import numpy as np
    >>> grad("mse", np.array([1.0, 3.0]), np.array([0.0, 0.0]), reduction="sum")
    array([2., 6.])
    """
    return value_and_grad(name, predictions, targets, reduction=reduction, out=out,
                          sample_weight=sample_weight, empty=empty, wrt=wrt, **params)[1]


def grad_hess(name: str, predictions: Any, targets: Any = None, *,
              reduction: Reduction = "mean", sample_weight: Any = None, empty: Empty = "nan",
              **params: Any) -> tuple[np.ndarray, np.ndarray]:
    """The gradient and the diagonal of the Hessian of the loss w.r.t. ``predictions``, both
    of the predictions' shape and dtype, from one fused pass.

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
                             want_value=False, **params)
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
