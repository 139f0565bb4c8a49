"""Plan, then run: the path of every call, from a loss's name to its value and gradient.

1. **Plan** (:func:`make_plan`, once per call): resolve the loss, validate its options, the
   reduction, ``empty`` and ``wrt``. Nothing here looks at an array.
2. **Lay out** (:meth:`Plan.lay_out`): the loss's layout object checks the arrays and lays
   them out into a kernel call (:class:`~lossjit.layouts.KernelInputs`).
3. **Count**: the mean's denominator: the number of terms, or the block sums of each term's
   share, added exactly (:class:`ExactSum`), so that it does not depend on how the terms were
   split.
4. **Run the pieces**: each piece is one kernel call that writes its gradient, Hessian and
   per-term losses in place and its block sums to ``sums``.
5. **Combine**: the block sums of all pieces are added exactly and rounded once
   (:func:`combine`), then divided by the denominator.

:func:`run` does this for whole arrays (one piece); :func:`run_pieces` cuts the predictions
along axis 0 at positions the layout allows (:meth:`~lossjit.layouts.Layout.cut`), lays out
and runs each piece, and gives the same loss, denominator and gradient to the bit. A runner
for memory maps or Dask blocks is another way of handing pieces to the same plan: no kernel
changes.

**NaN and inf** (``nan_policy``, as in SciPy; decided per piece, on whole terms, so pieces give
the whole call's bits):

- ``"propagate"`` (the default): IEEE arithmetic. A term whose loss is NaN (a NaN input, or an
  inf that makes one, such as ``inf - inf``) makes the loss NaN, and every gradient and Hessian
  entry of that term NaN: the kernels' own result, completed by :func:`spread_nan`, which runs
  only when a piece's loss is NaN, so finite inputs pay nothing.
- ``"raise"``: a LossjitError names the argument (predictions, targets, sample_weight, or a
  differentiable option such as ``var``) and the first NaN or infinite value and its position.
- ``"omit"``: the terms with a NaN in their predictions, targets or sample weight
  (:func:`omitted_terms`) are dropped: the mean's denominator counts them with weight 0, their
  gradient and Hessian entries are 0, and the sum adds the other terms only
  (:func:`drop_terms`); with ``reduction="none"`` their losses are NaN. A mean over no
  remaining term follows ``empty``; ``batchmean`` still divides by the first axis.

>>> import numpy as np
>>> plan = make_plan("mse")
>>> x, y = np.arange(20000.0) / 7, np.zeros(20000)
>>> whole = run(plan, x, y)
>>> cut = run_pieces(plan, x, y, bounds=[8192, 16384])
>>> whole.value == cut.value, bool((whole.grads["predictions"] == cut.grads["predictions"]).all())
(True, True)
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, get_args

import numpy as np

from lossjit import registry
from lossjit.blocking import BLOCK, block_count, block_rows
from lossjit.errors import LossjitError
from lossjit.layouts import KernelInputs, first_bad, numbers
from lossjit.registry import LossSpec

LossValue = float | np.ndarray
NanPolicy = Literal["propagate", "raise", "omit"]
#: The choices of ``nan_policy``, the default first.
NAN_POLICIES: tuple[str, ...] = get_args(NanPolicy)


class Result(NamedTuple):
    """What a run gives: the loss (None when not asked for), the gradients by what they are
    taken with respect to, and the Hessian's diagonal (or None)."""

    value: LossValue | None
    grads: dict[str, np.ndarray]
    hess: np.ndarray | None


def check_settings(spec: LossSpec, reduction: str, empty: str,
                   nan_policy: str = "propagate") -> None:
    """Raise a clear LossjitError unless ``reduction``, ``empty`` and ``nan_policy`` are valid
    for ``spec``."""
    if reduction not in spec.reductions:
        raise LossjitError(f"reduction: expected one of {', '.join(spec.reductions)}; got "
                           f"{reduction!r}")
    if empty not in registry.EMPTY_CHOICES:
        raise LossjitError(f"empty: expected one of {', '.join(registry.EMPTY_CHOICES)}; got "
                           f"{empty!r}")
    if nan_policy not in NAN_POLICIES:
        raise LossjitError(f"nan_policy: expected one of {', '.join(NAN_POLICIES)}; got "
                           f"{nan_policy!r}")


@dataclass(slots=True)
class Plan:
    """One call, resolved and validated: the loss, its options and what to compute."""

    spec: LossSpec
    options: dict[str, Any]
    reduction: str = "mean"
    empty: str = "nan"
    wrt: tuple[str, ...] = ("predictions",)
    want_value: bool = True
    want_grad: bool = True
    hessian: bool = False
    nan_policy: str = "propagate"
    #: whether :func:`quick_call` may serve the plan's calls, and its function, once made
    quick: bool = field(init=False)
    quick_call: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.quick = (self.reduction in ("mean", "sum") and self.want_value and self.want_grad
                      and not self.hessian and self.wrt == ("predictions",)
                      and self.nan_policy == "propagate")

    def lay_out(self, predictions: Any, targets: Any, options: dict[str, Any] | None = None
                ) -> KernelInputs:
        """The arrays checked and laid out by the loss's layout."""
        spec = self.spec
        if spec.targets == "none":
            targets = None
        elif spec.targets == "required" and targets is None:
            raise LossjitError(f"targets: missing; {spec.name} needs targets ({spec.inputs})")
        return spec.layout.lay_out(np.asarray(predictions), targets,
                                   self.options if options is None else options)

    def kernel_set(self, inputs: KernelInputs) -> Any:
        """The kernels the laid-out call runs on (checking that they have a Hessian when it
        is asked for)."""
        kernels = self.spec.kernel_set(inputs.variant)
        if self.hessian and not kernels.hessian:
            if not self.spec.hessian:
                raise LossjitError(f"{self.spec.name}: no Hessian diagonal is available for "
                                   "this loss; lossjit info lists the losses that have one")
            raise LossjitError(f"{self.spec.name}: no Hessian diagonal with these options "
                               f"({self.spec.hessian})")
        return kernels

    @property
    def computes_grad(self) -> bool:
        return self.want_grad or self.hessian

    def refuse_non_finite(self, predictions: Any, targets: Any, sample_weight: Any) -> None:
        """``nan_policy="raise"``: name the first NaN or infinite number of the predictions,
        the targets, the sample weights or a differentiable option (``var``), and where."""
        arrays = [("predictions", predictions), ("targets", targets),
                  ("sample_weight", sample_weight)]
        arrays += [(p.name, self.options[p.name]) for p in self.spec.params if p.differentiable]
        for what, value in arrays:
            if value is None or (what == "targets" and self.spec.targets == "none"):
                continue
            a = np.asarray(value)
            if a.dtype.kind != "f":  # integers are finite; other dtypes are refused elsewhere
                continue
            finite = np.isfinite(a)
            if not finite.all():
                raise LossjitError(f"{what}: {first_bad(a, ~finite)}; nan_policy='raise' "
                                   "refuses NaN and infinite values (nan_policy='omit' drops "
                                   "the terms that hold NaN, 'propagate' computes with them)")


_plans: dict[tuple[Any, ...], Plan] = {}


def make_plan(name: str, *, reduction: str = "mean", empty: str = "nan",
              wrt: Sequence[str] = ("predictions",), hessian: bool = False,
              want_grad: bool = True, want_value: bool = True,
              nan_policy: str = "propagate", **params: Any) -> Plan:
    """Resolve ``name`` and validate everything about the call that is not an array. Plans
    of calls whose options are plain numbers are kept, so a loop of calls validates once."""
    key = None
    if all(isinstance(v, (int, float, bool, str, type(None))) for v in params.values()):
        key = (registry.generation, name, reduction, empty, tuple(wrt), hessian, want_grad,
               want_value, nan_policy, *sorted(params.items()))
        plan = _plans.get(key)
        if plan is not None:
            return plan
    plan = _make_plan(name, reduction, empty, tuple(wrt), hessian, want_grad, want_value,
                      nan_policy, params)
    if key is not None:
        _plans[key] = plan
        if plan.quick and not params:
            _quick_plans[(registry.generation, name, reduction, empty, nan_policy)] = plan
    return plan


_quick_plans: dict[tuple[Any, ...], Plan] = {}


def quick_value_and_grad(name: str, reduction: str, empty: str, nan_policy: str, x: Any,
                         y: Any, out: np.ndarray | None) -> tuple[float, np.ndarray] | None:
    """``value_and_grad(name, x, y, ...)`` without options, sample weights or ``wrt`` by the
    quick path (:func:`quick_call`) of the plan an earlier call made, or None."""
    plan = _quick_plans.get((registry.generation, name, reduction, empty, nan_policy))
    if plan is None or plan.quick_call is None:
        return None
    return plan.quick_call(x, y, out)


def _make_plan(name: str, reduction: str, empty: str, wrt: tuple[str, ...], hessian: bool,
               want_grad: bool, want_value: bool, nan_policy: str,
               params: dict[str, Any]) -> Plan:
    spec = registry.resolve(name)
    check_settings(spec, reduction, empty, nan_policy)
    differentiable = ("predictions", *(p.name for p in spec.params if p.differentiable))
    for item in wrt:
        if item not in differentiable:
            raise LossjitError(f"wrt: {spec.name} has no gradient with respect to {item!r}; "
                               f"expected {' or '.join(map(repr, differentiable))}")
    return Plan(spec, spec.options(params), reduction, empty, wrt, want_value, want_grad,
                hessian, nan_policy)


# --- exact sums -------------------------------------------------------------------------------


def combine(values: Sequence[float] | np.ndarray) -> float:
    """The exact sum of ``values``, rounded once (``math.fsum``): the same whatever their
    order or grouping. inf - inf gives NaN, an overflow the infinity it overflows to.

    >>> combine([1e100, 1.0, -1e100]), combine([float("inf"), float("-inf")])
    (1.0, nan)
    """
    try:
        return math.fsum(values)
    except ValueError:  # inf - inf
        return math.nan
    except OverflowError:
        return math.copysign(math.inf, sum(values))


@dataclass(slots=True)
class ExactSum:
    """An exact sum built from pieces in any order: whole counts, and the block sums of
    per-term numbers (in the kernels' blocks, so that the same terms cut at block boundaries
    give the same block sums), added with :func:`combine`."""

    count: int = 0
    sums: list[float] = field(default_factory=list)

    def add(self, values: np.ndarray, per_block: int) -> None:
        from lossjit.kernels._blocks import block_sums

        values = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
        blocks = np.empty(-(-values.size // per_block) if per_block else 0)
        self.sums.extend(block_sums(values, per_block, blocks).tolist())

    def value(self) -> float:
        if not self.sums:
            return float(self.count)
        return combine([*self.sums, float(self.count)])


# --- the steps of a run -----------------------------------------------------------------------


def sample_weights(sample_weight: Any, inputs: KernelInputs, nan_policy: str = "propagate"
                   ) -> np.ndarray:
    """``sample_weight`` broadcast to the terms' shape, laid out as the kernel's terms. Each
    weight is finite and >= 0; with ``nan_policy="omit"`` it may be NaN (its term is then
    dropped by :func:`omitted_terms`)."""
    sw = numbers(sample_weight, "sample_weight", "one weight per term").astype(np.float64)
    bad = (sw < 0) | np.isinf(sw)
    if nan_policy != "omit":
        bad |= np.isnan(sw)
    if bad.any():
        raise LossjitError("sample_weight: weights must be finite and >= 0, got "
                           f"{first_bad(sw, bad)}" + ("" if nan_policy == "omit" else
                                                      " (nan_policy='omit' drops the terms of "
                                                      "NaN weights)"))
    try:
        sw = np.broadcast_to(sw, inputs.terms_shape)
    except ValueError:
        raise LossjitError(f"sample_weight: shape {sw.shape} does not match the loss terms' "
                           f"shape {inputs.terms_shape}; expected one weight per term") from None
    assert inputs.terms_layout is not None
    return np.array(sw.reshape(inputs.terms_layout), order="C")


def _by_term(array: np.ndarray, terms: tuple[int, ...]) -> np.ndarray | None:
    """``array``, laid out as the kernel's ``x`` (the terms along its first axes), as
    ``(*terms, numbers per term)``; None where it is not laid out so."""
    if array.shape[:len(terms)] != terms:
        return None
    return array.reshape(*terms, math.prod(array.shape[len(terms):]))


def omitted_terms(inputs: KernelInputs, sw: np.ndarray | None
                  ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``nan_policy="omit"``: (the terms to drop, as a bool array laid out as the terms, or
    None when there is none; the sample weights with 0 for the dropped terms, the weights of
    the mean's denominator). A term is dropped when any of its predictions (a class row, a
    pair or triplet, a mean and its variance), its targets or its sample weight is NaN."""
    terms = inputs.terms_layout
    assert terms is not None
    mask = None
    for what, array in (("predictions", inputs.x), ("targets", inputs.y)):
        if array.dtype.kind != "f" or not array.size or not np.isnan(array.sum()):
            continue  # a sum without NaN: no NaN (inf - inf checks the numbers one by one)
        view = _by_term(array, terms)
        if view is None:
            raise LossjitError(f"nan_policy: 'omit' cannot tell which terms hold the {what} of "
                               "this layout; use 'propagate' or 'raise'")
        found = np.isnan(view).any(axis=-1)
        mask = found if mask is None else mask | found
    if sw is not None:
        weightless = np.isnan(sw)
        if weightless.any():
            mask = weightless if mask is None else mask | weightless
    if mask is None or not mask.any():
        return None, sw
    return mask, np.where(mask, 0.0, 1.0 if sw is None else sw)


def terms_per_block(inputs: KernelInputs) -> int:
    """How many terms each of the kernel's blocks holds (the last may hold fewer)."""
    rows = inputs.x.shape[0]
    return block_rows(inputs.x.size // rows if rows else 1) * (inputs.terms // rows
                                                                if rows else 1)


def add_count(total: ExactSum, inputs: KernelInputs, sw: np.ndarray | None) -> None:
    """Add one piece's share of the mean's denominator to ``total``: its terms, or their
    shares (class weights, 0 when ignored), weighed by the sample weights."""
    if sw is None and inputs.shares is None:
        total.count += inputs.terms
        return
    per_block = terms_per_block(inputs)
    if sw is None:
        total.add(inputs.shares(), per_block)
    else:
        total.add(sw if inputs.shares is None else sw.reshape(-1) * inputs.shares(), per_block)


def denominator(plan: Plan, count: ExactSum, predictions: np.ndarray) -> float:
    """What the reduced loss divides by (1 for "sum" and "none"); an empty mean follows
    ``empty``: NaN (0 returned here), 0, or an error."""
    if plan.reduction in ("sum", "none"):
        return 1.0
    if plan.reduction == "batchmean":
        value = float(predictions.shape[0]) if predictions.ndim else 1.0
    else:
        value = count.value()
    if value == 0 and plan.empty == "error":
        raise LossjitError(f"{plan.spec.name}: the {plan.reduction} is over zero terms (an "
                           "empty input, every target ignored, or zero weights); set empty to "
                           "'nan' or 'zero' (--empty on the command line) to get a number")
    return value


_empties: dict[tuple[int, Any], np.ndarray] = {}


def nothing(ndim: int, dtype: Any) -> np.ndarray:
    """A shared empty array: the kernels' "nothing here" (never written, having no element)."""
    empty = _empties.get((ndim, dtype))
    if empty is None:
        empty = _empties[(ndim, dtype)] = np.empty((0,) * ndim, dtype=dtype)
    return empty


_scratches = threading.local()


def scratch(role: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A buffer of ``shape`` for the kernel's side of a gradient that is then unpacked into
    the user's layout, kept per thread and reused by the next call of the same size: a fresh
    buffer would be paged in on every call (on this kind of machine, slower than the kernel)."""
    buffers = _scratches.__dict__
    size = math.prod(shape)
    buffer = buffers.get((role, np.dtype(dtype)))
    if buffer is None or buffer.size != size:
        buffer = buffers[(role, np.dtype(dtype))] = np.empty(size, dtype=dtype)
    return buffer.reshape(shape)


def check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype, inputs: Sequence[Any]) -> None:
    """``out`` must be a writeable C-contiguous array of the gradient's shape and dtype."""
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


@dataclass(slots=True)
class Outputs:
    """Where one piece's kernel writes: the gradient and Hessian in the user's layout (and
    the kernel's, when they differ), and the per-term losses."""

    grad: np.ndarray | None
    grad_view: np.ndarray
    hess: np.ndarray | None
    hess_view: np.ndarray
    losses: np.ndarray

    def unpack(self, inputs: KernelInputs) -> None:
        """Copy the kernel's layout into the user's where they differ."""
        if inputs.unpack is None:
            return
        if self.grad is not None:
            inputs.unpack(self.grad_view, self.grad)
        if self.hess is not None:
            inputs.unpack(self.hess_view, self.hess)


def outputs_for(plan: Plan, inputs: KernelInputs, grad: np.ndarray | None,
                hess: np.ndarray | None, per_term: bool = False) -> Outputs:
    """The kernel's outputs for ``inputs``, writing into ``grad`` and ``hess`` (the user's
    arrays, or their piece) where they are given; the per-term losses for
    ``reduction="none"`` or ``per_term``."""
    x = inputs.x
    assert inputs.terms_layout is not None

    none = nothing(x.ndim, x.dtype)
    if inputs.unpack is None:
        grad_view = none if grad is None else grad.reshape(x.shape)
        hess_view = none if hess is None else hess.reshape(x.shape)
    else:
        grad_view = none if grad is None else scratch("grad", x.shape, x.dtype)
        hess_view = none if hess is None else scratch("hess", x.shape, x.dtype)
    losses = (np.empty(inputs.terms_layout, dtype=x.dtype)
              if plan.reduction == "none" or per_term
              else nothing(len(inputs.terms_layout), x.dtype))
    return Outputs(grad, grad_view, hess, hess_view, losses)


_called: set[tuple[int, str]] = set()


def call_kernel(kernel: Any, inputs: KernelInputs, weights: np.ndarray, outputs: Outputs,
                sums: np.ndarray, scale: float) -> float:
    """Run one kernel call. The first call of a kernel for a dtype may compile it: Numba's one
    pedantic warning about the inlined precision overloads of :mod:`lossjit.kernels.vecmath`
    is silenced there, and only there."""
    args = (inputs.x, inputs.y, weights, outputs.grad_view, outputs.hess_view, outputs.losses,
            sums, scale, *inputs.params)
    key = (id(kernel), inputs.x.dtype.char)
    if key in _called:
        return float(kernel(*args))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"variable '_lossjit_precision__locals")
        total = float(kernel(*args))
    _called.add(key)
    return total


def block_sums_for(x: np.ndarray) -> np.ndarray:
    """The ``sums`` output of a kernel call on ``x``: one number per block."""
    rows = x.shape[0]
    return np.empty(block_count(rows, x.size // rows if rows else 1))


def weights_for(inputs: KernelInputs, sw: np.ndarray | None) -> np.ndarray:
    """The per-term weights the kernel gets: the layout's, times the sample weights."""
    weights = inputs.w
    if sw is not None:
        weights = sw if not weights.size else weights * sw
    assert inputs.terms_layout is not None
    return weights if weights.size else nothing(len(inputs.terms_layout), np.float64)


def finish(plan: Plan, total: float, count: float, terms: np.ndarray | None,
           grads: dict[str, np.ndarray], hess: np.ndarray | None) -> Result:
    """The reduced loss from the combined total and the denominator."""
    value: LossValue | None
    if not plan.want_value:
        value = None
    elif plan.reduction == "none":
        value = terms
    elif count:
        value = total / count
    else:
        value = 0.0 if plan.empty == "zero" else math.nan
    return Result(value, grads, hess)


# --- runners ----------------------------------------------------------------------------------


def spread_nan(kernel: Any, inputs: KernelInputs, weights: np.ndarray, outputs: Outputs,
               scale: float) -> None:
    """After a kernel call whose loss is NaN: every gradient and Hessian entry of a term whose
    loss is NaN becomes NaN, where the kernel's formulas (which pick, clamp and mask) dropped
    it: the term's gradient is undefined as a whole. This is ``nan_policy="propagate"``, and
    what any policy does with a NaN that no input held (``inf - inf``). The per-term losses
    come from the call (``reduction="none"``) or from a value-only call."""
    if not (outputs.grad_view.size or outputs.hess_view.size):
        return
    losses = outputs.losses
    if not losses.size:
        x = inputs.x
        none = nothing(x.ndim, x.dtype)
        losses = np.empty(inputs.terms_layout, dtype=x.dtype)
        call_kernel(kernel, inputs, weights, Outputs(None, none, None, none, losses),
                    nothing(1, np.float64), scale)
    undefined = np.isnan(losses)
    if not undefined.any():
        return
    for view in (outputs.grad_view, outputs.hess_view):
        by_term = _by_term(view, undefined.shape) if view.size else None
        if by_term is not None:
            by_term[undefined] = np.nan


def drop_terms(plan: Plan, kernel: Any, inputs: KernelInputs, weights: np.ndarray,
               outputs: Outputs, scale: float, omitted: np.ndarray, sums: list[float]) -> None:
    """``nan_policy="omit"``, after the kernel call: the omitted terms' gradient and Hessian
    entries become 0, and each block that holds one gets, in ``sums``, the lane sum
    (:func:`~lossjit.kernels._blocks.block_sums`) of its other terms' losses; a whole call and
    its pieces hold the same blocks, so they still give the same bits. With
    ``reduction="none"`` the omitted terms' losses are NaN."""
    from lossjit.kernels._blocks import block_sums

    losses = outputs.losses.reshape(-1)
    flat = omitted.reshape(-1)
    losses[flat] = 0.0
    if plan.reduction != "none" and sums:
        per_block = terms_per_block(inputs)
        fixed = block_sums(losses.astype(np.float64), per_block, np.empty(len(sums)))
        for block in np.unique(np.flatnonzero(flat) // per_block).tolist():
            sums[block] = float(fixed[block])
    spread_nan(kernel, inputs, weights, outputs, scale)  # a NaN kept (inf - inf) spreads
    for view in (outputs.grad_view, outputs.hess_view):
        by_term = _by_term(view, omitted.shape) if view.size else None
        if by_term is not None:
            by_term[omitted] = 0.0
    if plan.reduction == "none":
        losses[flat] = np.nan


def run_piece(plan: Plan, inputs: KernelInputs, sw: np.ndarray | None, scale: float,
              grad: np.ndarray | None, hess: np.ndarray | None,
              omitted: np.ndarray | None = None) -> tuple[list[float], Outputs]:
    """Run one laid-out piece: its gradient and Hessian go into ``grad`` and ``hess`` (the
    user's arrays, or their part), and its block sums come back for :func:`combine`. NaN
    follows the plan's ``nan_policy``: ``omitted`` are the terms to drop
    (:func:`omitted_terms`)."""
    kernels = plan.kernel_set(inputs)
    outputs = outputs_for(plan, inputs, grad, hess, per_term=omitted is not None)
    x = inputs.x
    sums = block_sums_for(x)
    kernel = kernels.pick(x.size)
    weights = weights_for(inputs, sw)
    # one block: the kernel's own total is that block's sum (no buffer to read back)
    total = call_kernel(kernel, inputs, weights, outputs,
                        sums if sums.size > 1 else nothing(1, np.float64), scale)
    found = sums.tolist() if sums.size > 1 else ([total] if sums.size else [])
    if omitted is not None:
        drop_terms(plan, kernel, inputs, weights, outputs, scale, omitted, found)
    elif total != total:  # NaN; free to test when finite
        spread_nan(kernel, inputs, weights, outputs, scale)
    outputs.unpack(inputs)
    return found, outputs


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_NO_SUMS = np.empty(0)
Quick = Callable[[Any, Any, "np.ndarray | None"], "tuple[float, np.ndarray] | None"]


def quick_call(plan: Plan) -> Quick | None:
    """:func:`run` for small calls that need nothing laid out, as a function
    ``(predictions, targets, out) -> (loss, gradient)`` that returns None where it does not
    apply (None: it never applies to ``plan``). It serves writeable C-contiguous NumPy arrays
    of one shape and native float dtype, of at most one block of terms (so that the kernel's
    total is the block's exact sum), that the layout passes as they are
    (:meth:`~lossjit.layouts.Layout.plain`), once the kernel was called for the dtype; the
    plan is a "mean" or "sum" of the loss and its gradient w.r.t. the predictions, with
    ``nan_policy="propagate"``, and the call has no sample weights. It computes what
    :func:`run` computes, to the bit, without the general bookkeeping; a NaN total goes the
    general way, which spreads NaN through the gradient.

    >>> import numpy as np
    >>> call = quick_call(make_plan("mse"))
    >>> x, y = np.array([1.0, 3.0]), np.zeros(2)
    >>> _ = run(make_plan("mse"), x, y)  # the first call of a kernel goes the general way
    >>> call(x, y, None)
    (5.0, array([1., 3.]))
    >>> call(x.tolist(), y, None) is None
    True
    """
    if not plan.quick:
        return None
    plain = plan.spec.layout.plain(plan.options)
    if plain is None:
        return None
    params, checks = plain
    kernel = plan.spec.kernel_set(None).serial
    ready = {_F32: (id(kernel), "f"), _F64: (id(kernel), "d")}
    mean = plan.reduction == "mean"
    ndarray, empty, block, none = np.ndarray, np.empty, BLOCK, {
        _F32: nothing(1, _F32), _F64: nothing(1, _F64)}

    def call(x: Any, y: Any, out: np.ndarray | None) -> tuple[float, np.ndarray] | None:
        if type(x) is not ndarray or type(y) is not ndarray:
            return None
        dtype = x.dtype
        key = ready.get(dtype)
        if key is None or y.dtype is not dtype or x.shape != y.shape:
            return None
        n = x.size
        fx, fy = x.flags, y.flags
        if (not 0 < n <= block or not (fx.c_contiguous and fy.c_contiguous and fx.writeable
                                       and fy.writeable) or key not in _called):
            return None  # a kernel's first call goes the general way (it may compile it)
        if checks is not None:
            checks(x, y)
        if out is None:
            grad = empty(x.shape, dtype)
        else:
            check_out(out, x.shape, dtype, (x, y))
            grad = out
        if x.ndim != 1:
            x, y, flat = x.reshape(n), y.reshape(n), grad.reshape(n)
        else:
            flat = grad
        nil = none[dtype]
        total = kernel(x, y, _NO_SUMS, flat, nil, nil, _NO_SUMS, 1.0 / n if mean else 1.0,
                       *params)
        if total != total:
            return None
        return (total / n if mean else total), grad

    return call


def _never(x: Any, y: Any, out: Any) -> None:
    return None


def run(plan: Plan, predictions: Any, targets: Any = None, *, sample_weight: Any = None,
        out: np.ndarray | None = None) -> Result:
    """Run ``plan`` on whole arrays: one piece."""
    if plan.quick and sample_weight is None:
        if plan.quick_call is None:
            plan.quick_call = quick_call(plan) or _never
        done = plan.quick_call(predictions, targets, out)
        if done is not None:
            return Result(done[0], {"predictions": done[1]}, None)
    predictions = np.asarray(predictions)
    inputs = plan.lay_out(predictions, targets)
    plan.kernel_set(inputs)  # a missing Hessian is refused before anything is allocated
    if plan.nan_policy == "raise":
        plan.refuse_non_finite(predictions, targets, sample_weight)
    x = inputs.x
    sw = (None if sample_weight is None else
          sample_weights(sample_weight, inputs, plan.nan_policy))
    omitted = None
    if plan.nan_policy == "omit":
        omitted, sw = omitted_terms(inputs, sw)
    count = ExactSum()
    if plan.reduction not in ("sum", "none"):
        add_count(count, inputs, sw)
    divisor = denominator(plan, count, predictions)

    grad = hess = None
    if plan.computes_grad:
        if out is not None:
            check_out(out, predictions.shape, x.dtype, (predictions, targets))
            grad = out
        else:
            grad = np.empty(predictions.shape, dtype=x.dtype)
    elif out is not None:
        raise LossjitError("out: only a gradient can be written to out")
    if plan.hessian:
        hess = np.empty(predictions.shape, dtype=x.dtype)
    sums, outputs = run_piece(plan, inputs, sw, 1.0 / divisor if divisor else 0.0, grad, hess,
                              omitted)

    grads: dict[str, np.ndarray] = {}
    if grad is not None:
        grads["predictions"] = grad
        for item in plan.wrt:
            if item != "predictions":
                grads[item] = inputs.wrt[item](outputs.grad_view)
    terms = outputs.losses.reshape(inputs.terms_shape) if plan.reduction == "none" else None
    return finish(plan, combine(sums), divisor, terms, grads, hess)


def _piece_options(plan: Plan, shape: tuple[int, ...], lo: int, hi: int) -> dict[str, Any]:
    """The options of the piece ``lo:hi``: arrays that broadcast against the predictions are
    cut with them (as the layout aligns them to the predictions' axes)."""
    options = dict(plan.options)
    for param in plan.spec.params:
        value = options[param.name]
        if param.broadcasts and value is not None:
            aligned = plan.spec.layout.align(param.name, np.asarray(value), shape)
            options[param.name] = np.broadcast_to(aligned, shape)[lo:hi]
    return options


def _part(array: np.ndarray | None, span: slice | None) -> np.ndarray | None:
    """The part of an output that a piece writes (all of it for an uncut call)."""
    return array if array is None or span is None else array[span]


def run_pieces(plan: Plan, predictions: Any, targets: Any = None, *,
               sample_weight: Any = None, bounds: Sequence[int] = ()) -> Result:
    """Run ``plan`` cut into pieces along the predictions' axis 0 at ``bounds`` (each a
    multiple of the layout's :meth:`~lossjit.layouts.Layout.cut`): each piece is laid out
    and run alone, the denominator and the block sums are added exactly across the pieces.
    The result is the whole call's, to the bit. In memory (the whole arrays are laid out once
    too, for their checks and the terms' shape), for the tests and as the pattern of the
    streaming and Dask runners."""
    predictions = np.asarray(predictions)
    spec = plan.spec
    if len(plan.wrt) > 1 or plan.wrt[0] != "predictions":
        raise LossjitError("wrt: a call run in pieces differentiates the predictions only")
    whole = plan.lay_out(predictions, targets)
    multiple = spec.layout.cut(predictions.shape, plan.options)
    if multiple is None and bounds:
        raise LossjitError(f"{spec.name}: predictions of shape {predictions.shape} cannot be "
                           "cut into pieces")
    edges = [0, *bounds, predictions.shape[0] if predictions.ndim else 0]
    for lo, hi in zip(edges, edges[1:], strict=False):
        if hi < lo or (multiple and lo % multiple):
            raise LossjitError(f"bounds: {list(bounds)} must rise, each a multiple of "
                               f"{multiple}")
    if plan.nan_policy == "raise":
        plan.refuse_non_finite(predictions, targets, sample_weight)
    sw_whole = (None if sample_weight is None else
                sample_weights(sample_weight, whole, plan.nan_policy))

    # (span, laid-out piece, its sample weights); no bounds: the whole arrays as one piece
    pieces: list[tuple[slice | None, KernelInputs, np.ndarray | None]] = []
    if not bounds:
        pieces.append((None, whole, sw_whole))
    else:
        sw_terms = (None if sample_weight is None else
                    np.broadcast_to(np.asarray(sample_weight, dtype=np.float64),
                                    whole.terms_shape))
        for lo, hi in zip(edges, edges[1:], strict=False):
            inputs = plan.lay_out(predictions[lo:hi],
                                  None if targets is None else np.asarray(targets)[lo:hi],
                                  _piece_options(plan, predictions.shape, lo, hi))
            sw = (None if sw_terms is None else
                  sample_weights(sw_terms[lo:hi], inputs, plan.nan_policy))
            pieces.append((slice(lo, hi), inputs, sw))
    # the terms each piece omits (nan_policy="omit"), and its weights without them
    omits = [omitted_terms(inputs, sw) if plan.nan_policy == "omit" else (None, sw)
             for _, inputs, sw in pieces]
    count = ExactSum()
    if plan.reduction not in ("sum", "none"):
        for (_, inputs, _), (_, sw) in zip(pieces, omits, strict=True):
            add_count(count, inputs, sw)
    divisor = denominator(plan, count, predictions)
    scale = 1.0 / divisor if divisor else 0.0

    dtype = whole.x.dtype
    grad = np.empty(predictions.shape, dtype=dtype) if plan.computes_grad else None
    hess = np.empty(predictions.shape, dtype=dtype) if plan.hessian else None
    sums: list[float] = []
    terms: list[np.ndarray] = []
    for (span, inputs, _), (omitted, sw) in zip(pieces, omits, strict=True):
        piece_sums, outputs = run_piece(plan, inputs, sw, scale, _part(grad, span),
                                        _part(hess, span), omitted)
        sums.extend(piece_sums)
        if plan.reduction == "none":
            terms.append(outputs.losses.reshape(inputs.terms_shape))
    grads = {} if grad is None else {"predictions": grad}
    value = np.concatenate(terms) if terms else None
    return finish(plan, combine(sums), divisor, value, grads, hess)
