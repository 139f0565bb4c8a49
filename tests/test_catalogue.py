"""Every registered loss, checked from its declaration alone: its layout's example inputs
against the NumPy oracle (tests/naive.py), its gradient against central finite differences,
its Hessian's diagonal (where its kernel set has one) against finite differences of the
gradient, and its ``nonnegative`` flag. A loss added to the catalogue is tested here with no
edit of this file."""

import numpy as np
import pytest
from naive import oracle

import lossjit
from lossjit import registry
from lossjit.layouts import examples_for
from lossjit.plan import make_plan

H = 1e-6
CASES = [
    pytest.param(spec.name, index, id=f"{spec.name}-{example.label}")
    for spec in registry.BUILTIN
    for index, example in enumerate(examples_for(spec.layout, 24, np.float64, width=4))
]


def example(name, index):
    spec = registry.resolve(name)
    return spec, examples_for(spec.layout, 24, np.float64, width=4)[index]


def _loss(name, x, y, reduction, options):
    return lossjit.loss(name, x, y, reduction=reduction, **options)


@pytest.mark.parametrize("name, index", CASES)
def test_value_matches_the_oracle(name, index):
    spec, ex = example(name, index)
    for reduction in spec.reductions:
        got = _loss(name, ex.predictions, ex.targets, reduction, ex.options)
        expected = oracle(name, ex.predictions, ex.targets, reduction=reduction, **ex.options)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12,
                                   err_msg=f"{name} {reduction}")


@pytest.mark.parametrize("name, index", CASES)
def test_gradient_is_the_derivative(name, index):
    spec, ex = example(name, index)
    x = np.array(ex.predictions, dtype=np.float64)
    for reduction in ("mean", "sum"):
        _, grad = lossjit.value_and_grad(name, x, ex.targets, reduction=reduction, **ex.options)
        numeric = np.empty_like(x)
        for i in range(x.size):
            up, down = x.copy(), x.copy()
            up.flat[i] += H
            down.flat[i] -= H
            numeric.flat[i] = (_loss(name, up, ex.targets, reduction, ex.options)
                               - _loss(name, down, ex.targets, reduction, ex.options)) / (2 * H)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7,
                                   err_msg=f"{name} {reduction}")


@pytest.mark.parametrize("name, index", CASES)
def test_hessian_is_the_derivative_of_the_gradient(name, index):
    spec, ex = example(name, index)
    plan = make_plan(name, hessian=True, **ex.options)
    if not plan.spec.kernel_set(plan.lay_out(ex.predictions, ex.targets).variant).hessian:
        with pytest.raises(lossjit.LossjitError, match="Hessian"):
            lossjit.grad_hess(name, ex.predictions, ex.targets, **ex.options)
        return
    x = np.array(ex.predictions, dtype=np.float64)
    _, hess = lossjit.grad_hess(name, x, ex.targets, reduction="sum", **ex.options)
    numeric = np.empty_like(x)
    for i in range(x.size):
        up, down = x.copy(), x.copy()
        up.flat[i] += H
        down.flat[i] -= H
        numeric.flat[i] = (lossjit.grad(name, up, ex.targets, reduction="sum", **ex.options).flat[i]
                           - lossjit.grad(name, down, ex.targets, reduction="sum",
                                          **ex.options).flat[i]) / (2 * H)
    np.testing.assert_allclose(hess, numeric, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name, index", CASES)
def test_nonnegative_losses_have_no_negative_term(name, index):
    spec, ex = example(name, index)
    terms = _loss(name, ex.predictions, ex.targets, "none", ex.options)
    if spec.nonnegative:
        assert (np.asarray(terms) >= 0).all()


def test_the_hessian_text_and_the_kernel_sets_agree():
    for spec in registry.BUILTIN:
        assert bool(spec.hessian) == any(k.hessian for k in spec.kernel_sets()), spec.name


def test_every_loss_has_examples_in_both_dtypes_that_it_accepts():
    for spec in registry.BUILTIN:
        for dtype in (np.float32, np.float64):
            for ex in examples_for(spec.layout, 24, dtype, width=4):
                assert ex.predictions.dtype == dtype
                value = lossjit.loss(spec.name, ex.predictions, ex.targets, **ex.options)
                assert np.isfinite(value), (spec.name, ex.label)
