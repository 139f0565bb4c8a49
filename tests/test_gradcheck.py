"""lossjit.check_grad: lossjit's gradients pass it on every loss, a wrong gradient fails it at
the right place, and a gradient from elsewhere is compared element by element."""

import numpy as np
import pytest
from numba import njit

import lossjit
from lossjit import registry
from lossjit.layouts import examples_for


@pytest.mark.parametrize("spec", registry.BUILTIN, ids=lambda spec: spec.name)
def test_every_loss_passes_its_own_check(spec):
    for example in examples_for(spec.layout, 16, np.float64, width=3):
        result = lossjit.check_grad(spec.name, example.predictions, example.targets,
                                    **example.options)
        assert result.checked == example.predictions.size
        assert result.ok(1e-5), (spec.name, example.label, result)
        has_hessian = bool(spec.hessian) and result.hessian is not None
        assert (result.hessian is not None) == has_hessian


@njit
def _half_slope(x, y):
    e = x - y
    return e * e, e  # the derivative of e^2 is 2e: this one is wrong by half


@pytest.fixture
def wrong_loss():
    spec = lossjit.register("gradcheck_wrong", pointwise=_half_slope, replace=True)
    yield spec
    registry._specs.pop("gradcheck_wrong", None)
    registry._aliases.pop("gradcheck_wrong", None)


def test_a_wrong_gradient_fails_with_its_worst_position(wrong_loss):
    x = np.array([[0.0, 1.0, 2.0], [0.5, 3.0, -1.0]])
    y = np.zeros_like(x)
    result = lossjit.check_grad("gradcheck_wrong", x, y, reduction="sum")
    assert not result.ok(1e-3)
    assert result.error == pytest.approx(0.5, rel=1e-6)  # |e - 2e| / |2e|
    assert result.value == pytest.approx(x[result.position] / 1.0)
    assert result.reference == pytest.approx(2 * x[result.position], rel=1e-6)
    assert result.hessian is None  # a user's pointwise loss has no Hessian


def test_against_finds_the_entry_that_differs():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    true = 2 * (x - y) / x.size  # mse's gradient, as another framework would give it
    assert lossjit.check_grad("mse", x, y, against=true).ok(1e-12)
    off = true.copy()
    off[3, 1] *= 1.01
    result = lossjit.check_grad("mse", x, y, against=off)
    assert result.position == (3, 1)
    assert result.error == pytest.approx(0.01 / 1.01, rel=1e-6)
    assert result.value == off[3, 1] and result.reference == pytest.approx(true[3, 1])


def test_samples_check_that_many_elements():
    x = np.random.default_rng(1).normal(size=(50, 6))
    labels = np.random.default_rng(2).integers(0, 6, 50)
    result = lossjit.check_grad("cross_entropy", x, labels, samples=7, seed=3)
    assert result.checked == 7 and result.hessian.checked == 7
    assert result.ok(1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"samples": 0}, "samples: expected a whole number >= 1"),
    ({"step": 0.0}, "step: expected a number > 0"),
    ({"against": np.zeros(2)}, r"against: shape \(2,\) does not match predictions \(3,\)"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(lossjit.LossjitError, match=message):
        lossjit.check_grad("mse", np.zeros(3), np.ones(3), **kwargs)
