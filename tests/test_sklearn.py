"""The likelihood losses against scikit-learn's own (``sklearn._loss``), which differ from
lossjit's only by terms that depend on the targets alone: the same gradient and Hessian, and
the same loss up to that constant. Skipped where scikit-learn is not installed."""

import numpy as np
import pytest

import lossjit

sk_loss = pytest.importorskip("sklearn._loss.loss")

#: lossjit's loss -> scikit-learn's class and arguments, and valid (raw, y) inputs.
CASES = {
    "tweedie": (lambda: sk_loss.HalfTweedieLoss(power=1.5), {"power": 1.5}),
    "tweedie-1.2": (lambda: sk_loss.HalfTweedieLoss(power=1.2), {"power": 1.2}),
    "gamma_nll": (lambda: sk_loss.HalfGammaLoss(), {}),
    "poisson_nll": (lambda: sk_loss.HalfPoissonLoss(), {}),
    "bce_with_logits": (lambda: sk_loss.HalfBinomialLoss(), {}),
}


def inputs(name, n=50, seed=0):
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=n)
    example = lossjit.registry.resolve(name).layout.examples(4 * n, np.float64, rng)[0]
    return raw, np.asarray(example.targets, dtype=np.float64).reshape(-1)[:n]


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradient_hessian_and_loss_up_to_a_constant(case):
    name = case.split("-")[0]
    make, options = CASES[case]
    theirs = make()
    raw, y = inputs(name)
    grad, hess = lossjit.grad_hess(name, raw, y, reduction="sum", **options)
    their_grad, their_hess = theirs.gradient_hessian(y, raw)
    np.testing.assert_allclose(grad, their_grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hess, their_hess, rtol=1e-12, atol=1e-12)
    ours = lossjit.loss(name, raw, y, reduction="none", **options)
    other_raw = raw + 0.3
    ours_moved = lossjit.loss(name, other_raw, y, reduction="none", **options)
    np.testing.assert_allclose(ours - ours_moved,
                               theirs.loss(y, raw) - theirs.loss(y, other_raw),
                               rtol=1e-10, atol=1e-12)
