"""The quick path of small calls (:func:`lossjit.plan.quick_call`) gives what the general path
gives, to the bit, and steps aside where it does not apply.

For every built-in loss whose layout passes arrays as they are (element-wise), in float32 and
float64, for "mean" and "sum", with a fresh gradient and with ``out=``: the loss and gradient of
the quick path are the bits of :func:`lossjit.plan.run` with the quick path turned off. It
declines NaN totals (the general path spreads NaN through the gradient), more than one block,
other dtypes, views, sample weights and layouts that lay arrays out.
"""

import dataclasses

import numpy as np
import pytest

import lossjit
from lossjit import plan as P
from lossjit import registry
from lossjit.blocking import BLOCK
from lossjit.layouts import Elementwise


def _elementwise_losses() -> list[str]:
    return [name for name in registry.names()
            if isinstance(registry.resolve(name).layout, Elementwise)]


def _general(plan: P.Plan) -> P.Plan:
    slow = dataclasses.replace(plan)
    slow.quick = False
    return slow


def _bits(a):
    return np.atleast_1d(np.asarray(a)).view(np.uint8).tobytes()


def test_some_losses_take_the_quick_path():
    names = _elementwise_losses()
    assert {"mse", "l1", "huber", "poisson_nll", "sigmoid_focal"} <= set(names)


@pytest.mark.parametrize("name", _elementwise_losses())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_quick_is_the_general_path_to_the_bit(name, dtype, reduction):
    spec = registry.resolve(name)
    rng = np.random.default_rng(7)
    example = spec.layout.examples(1000, dtype, rng)[0]
    x, y = example.predictions, example.targets
    options = dict(example.options)
    plan = P.make_plan(name, reduction=reduction, **options)
    expected = P.run(_general(plan), x, y)
    assert plan.quick
    lossjit.value_and_grad(name, x, y, reduction=reduction, **options)  # compiles, if needed
    quick = P.quick_call(plan)
    done = quick(x, y, None)
    assert done is not None, f"{name}: the quick path declined a plain call"
    assert _bits(done[0]) == _bits(expected.value)
    assert _bits(done[1]) == _bits(expected.grads["predictions"])
    out = np.full_like(x, 7.0)
    assert quick(x, y, out)[1] is out
    assert _bits(out) == _bits(expected.grads["predictions"])
    value, grad = lossjit.value_and_grad(name, x, y, reduction=reduction, **options)
    assert _bits(value) == _bits(expected.value) and _bits(grad) == _bits(
        expected.grads["predictions"])


def test_quick_declines_what_it_does_not_serve():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(100)
    y = rng.standard_normal(100)
    lossjit.value_and_grad("mse", x, y)
    quick = P.quick_call(P.make_plan("mse"))
    assert quick(x, y, None) is not None
    assert P.quick_value_and_grad("mse", "mean", "nan", "propagate", x, y, None) is not None
    big = rng.standard_normal(BLOCK + 1)
    assert quick(big, big[::-1].copy(), None) is None  # two blocks
    assert quick(x[::2], y[::2], None) is None  # a view that is not contiguous
    assert quick(x, y.astype(np.float32), None) is None  # dtypes differ
    assert quick(x.tolist(), y, None) is None  # not an array
    assert quick(x.astype(">f8"), y, None) is None  # not native
    assert quick(x[:0], y[:0], None) is None  # empty: the general path's rule
    readonly = x.copy()
    readonly.flags.writeable = False
    assert quick(readonly, y, None) is None  # another kernel type: the general way
    assert P.quick_call(P.make_plan("gaussian_nll", var=1.0)) is None  # laid out
    assert P.quick_call(P.make_plan("huber", delta=2.0)) is not None  # options are parameters
    assert not P.make_plan("mse", nan_policy="omit").quick
    assert not P.make_plan("mse", reduction="none").quick
    assert not P.make_plan("mse", wrt=("predictions",), hessian=True).quick


def test_a_nan_total_goes_the_general_way():
    x = np.array([1.0, np.nan, 3.0])
    y = np.zeros(3)
    lossjit.value_and_grad("huber", np.ones(3), y)
    assert P.quick_call(P.make_plan("huber"))(x, y, None) is None
    value, grad = lossjit.value_and_grad("huber", x, y)
    assert np.isnan(value) and np.isnan(grad[1]) and grad[0] == pytest.approx(1 / 3)


def test_quick_keeps_the_layouts_checks():
    y = np.array([0.5, 2.0])
    lossjit.value_and_grad("tweedie", np.zeros(2), np.ones(2))
    with pytest.raises(lossjit.LossjitError, match="targets: expected values >= 0"):
        lossjit.value_and_grad("tweedie", np.zeros(2), -y)
    with pytest.raises(lossjit.LossjitError, match="out"):
        lossjit.value_and_grad("mse", np.zeros(2), y, out=np.empty(3))
