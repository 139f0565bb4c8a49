"""Generate tests/golden/torch_cases.json: golden loss values and derivatives from PyTorch.

Each case is a small, deterministic input (fixed per-case seeds) for one lossjit loss, one
option combination and one reduction: the hand-built cases of each loss (its edge cases), then
the layouts' example inputs (``spec.layout.examples``, the inputs lossjit's warm-up, benchmarks
and parametrised tests run: float64, size 24, width 4, a seed fixed per loss) for every built-in
loss with a PyTorch counterpart (``TORCH_FUNCTIONAL``) and each of its reductions, with ids
"<loss>/example:<label>/<reduction>". A new loss with a torch.nn.functional counterpart gets
these cases from its entry in ``TORCH_FUNCTIONAL`` alone; lossjit is imported from this
checkout, for the catalogue and the layouts (NumPy only: no Numba is needed).

PyTorch computes, in float64, the value and the gradient with respect to ``predictions`` with an
upstream gradient of ones (``loss.sum().backward()``, which for "mean", "sum" and "batchmean" is
the gradient of the scalar and for "none" that of the sum of the per-term losses).

Losses that ``torch.nn.functional`` has are called directly: mse_loss, l1_loss, huber_loss,
smooth_l1_loss, cross_entropy, binary_cross_entropy, binary_cross_entropy_with_logits,
triplet_margin_loss, poisson_nll_loss, gaussian_nll_loss, nll_loss, kl_div,
hinge_embedding_loss, multi_margin_loss, soft_margin_loss, multilabel_soft_margin_loss,
cosine_embedding_loss and margin_ranking_loss (lossjit's stacked pair layouts are split into
torch's two inputs); they make ``TORCH_FUNCTIONAL``. The others (``TORCH_OPS``) are written
here in torch ops and differentiated by autograd:
``sigmoid_focal`` exactly as torchvision's ``sigmoid_focal_loss``, softmax ``focal`` as
-alpha_y (1 - p_y)^gamma log_softmax(x)_y, ``contrastive`` as
y d^2 + (1 - y) max(0, margin - d)^2, ``cross_entropy`` with ``from_logits=False`` as
-sum_c q_c w_c log(clamp(p_c, eps, 1)), ``log_cosh`` as optax's logaddexp(e, -e) - log 2,
``pseudo_huber`` as delta^2 (sqrt(1 + (e / delta)^2) - 1), ``quantile`` as
max(q (y - x), (q - 1) (y - x)), and ``poly1`` as optax's poly_loss_cross_entropy,
CE + epsilon sum_c t_c (1 - p_c), on the class axis; their denominators are those of
docs/LOSSES.md.

Beyond the value and the gradient, a case may carry:

- ``hess``: for the losses lossjit.grad_hess supports (HESS_LOSSES; cross_entropy with
  logits only), the diagonal of torch.autograd.functional.hessian of the reduced loss (of the
  sum of the terms for "none") on the flattened predictions;
- ``var_grad``: for gaussian_nll with an array ``var``, torch's gradient with respect to var
  (var's shape; torch clamps var under no_grad, so the gradient passes the clamp);
- ``params["sample_weight"]``: torch's per-term losses (reduction "none") times the weights,
  then summed ("sum"), divided by sum(w c) ("mean", c from term_shares) or by
  predictions.shape[0] ("batchmean");
- ``params["empty"] = "zero"``: a mean over no terms, written from its definition (value 0.0,
  zero gradient and Hessian diagonal), not by torch.

Generated with torch 2.13.0 (CPU). To regenerate, from the repository root::

    python tests/golden/make_golden.py

The output is deterministic: rerunning with the same torch version on the same machine
rewrites the same file. Another CPU may change the last bit or two of some values (torch's
vectorised exp/log/sqrt and summation order differ between CPUs), far inside the tests'
tolerances.

JSON layout: a list of objects with keys ``id`` ("<loss>/<variant>/<reduction>"), ``loss``,
``params`` (lossjit parameter names, arrays as lists), ``reduction``, ``predictions``,
``predictions_dtype``, ``targets``, ``targets_dtype`` (null when the loss takes no targets),
``loss_value`` (a float, or a nested list for reduction "none"), ``grad`` (nested list, the
shape of ``predictions``) and, where they apply, ``var_grad`` and ``hess`` (the shape of
``predictions``).
"""

import json
import math
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# lossjit from this checkout (before any installed copy): its catalogue and layouts give the
# example cases' inputs.
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from lossjit.registry import BUILTIN  # noqa: E402

OUTPUT = Path(__file__).resolve().parent / "torch_cases.json"
REDUCTIONS = ("mean", "sum", "none")
DTYPE = torch.float64


# ---------------------------------------------------------------------------------------------
# PyTorch definitions of each loss, with lossjit's parameter names
# ---------------------------------------------------------------------------------------------


def _class_axis(x):
    return 0 if x.dim() == 1 else 1


def _class_view(vector, x):
    """Reshape a (C,) vector so that it broadcasts along the class axis of x."""
    shape = [1] * x.dim()
    shape[_class_axis(x)] = -1
    return vector.view(shape)


def _class_vector(value, n_classes):
    if value is None:
        return torch.ones(n_classes, dtype=DTYPE)
    value = torch.as_tensor(value, dtype=DTYPE)
    return value.expand(n_classes) if value.dim() == 0 else value


def _reduce(losses, reduction, denominator):
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / denominator


def torch_mse(x, t, reduction):
    return F.mse_loss(x, t, reduction=reduction)


def torch_l1(x, t, reduction):
    return F.l1_loss(x, t, reduction=reduction)


def torch_huber(x, t, reduction, delta=1.0):
    return F.huber_loss(x, t, reduction=reduction, delta=delta)


def torch_smooth_l1(x, t, reduction, beta=1.0):
    return F.smooth_l1_loss(x, t, reduction=reduction, beta=beta)


def torch_cross_entropy(
    x,
    t,
    reduction,
    weight=None,
    ignore_index=-100,
    label_smoothing=0.0,
    from_logits=True,
    eps=1e-10,
):
    w = None if weight is None else torch.tensor(weight, dtype=DTYPE)
    if from_logits:
        return F.cross_entropy(
            x,
            t,
            weight=w,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )
    # Probabilities as input: -sum_c q_c w_c log(clamp(p_c, eps, 1)) with PyTorch's targets,
    # smoothing and denominators.
    axis = _class_axis(x)
    n_classes = x.shape[axis]
    w = _class_vector(weight, n_classes)
    logp = torch.log(torch.clamp(x, eps, 1.0))
    if t.dtype == torch.int64:
        valid = t != ignore_index
        safe = torch.where(valid, t, torch.zeros_like(t))
        onehot = torch.movedim(F.one_hot(safe, n_classes).to(DTYPE), -1, axis)
        q = (1 - label_smoothing) * onehot + label_smoothing / n_classes
        losses = -(q * _class_view(w, x) * logp).sum(axis)
        losses = torch.where(valid, losses, torch.zeros_like(losses))
        denominator = (w[safe] * valid).sum()
    else:
        q = (1 - label_smoothing) * t + label_smoothing / n_classes
        losses = -(q * _class_view(w, x) * logp).sum(axis)
        denominator = losses.numel()
    return _reduce(losses, reduction, denominator)


def torch_binary_cross_entropy(x, t, reduction, weight=None):
    w = None if weight is None else torch.tensor(weight, dtype=DTYPE)
    return F.binary_cross_entropy(x, t, weight=w, reduction=reduction)


def torch_bce_with_logits(x, t, reduction, weight=None, pos_weight=None):
    w = None if weight is None else torch.tensor(weight, dtype=DTYPE)
    pw = None if pos_weight is None else torch.tensor(pos_weight, dtype=DTYPE)
    return F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, reduction=reduction)


def torch_focal(
    x, t, reduction, gamma=2.0, alpha=None, ignore_index=-100, from_logits=True, eps=1e-10
):
    """-alpha_y (1 - p_y)^gamma log p_y (index targets), -sum_c alpha_c t_c (1 - p_c)^gamma log p_c
    (float targets); the mean divides by the number of non-ignored positions."""
    axis = _class_axis(x)
    n_classes = x.shape[axis]
    a = _class_vector(alpha, n_classes)
    if from_logits:
        logp = F.log_softmax(x, dim=axis)
        p = torch.exp(logp)
    else:
        p = torch.clamp(x, eps, 1.0)
        logp = torch.log(p)
    if t.dtype == torch.int64:
        valid = t != ignore_index
        safe = torch.where(valid, t, torch.zeros_like(t))
        logp_y = logp.gather(axis, safe.unsqueeze(axis)).squeeze(axis)
        p_y = p.gather(axis, safe.unsqueeze(axis)).squeeze(axis)
        losses = -a[safe] * (1 - p_y) ** gamma * logp_y
        losses = torch.where(valid, losses, torch.zeros_like(losses))
        return _reduce(losses, reduction, valid.sum())
    terms = -_class_view(a, x) * t * (1 - p) ** gamma * logp
    if not from_logits:
        terms = torch.where(t > 0, terms, torch.zeros_like(terms))
    losses = terms.sum(axis)
    return _reduce(losses, reduction, losses.numel())


def torch_sigmoid_focal(x, t, reduction, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss, line for line."""
    inputs, targets = x, t
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return _reduce(loss, reduction, loss.numel())


def torch_contrastive(x, t, reduction, margin=1.0):
    y = t.reshape(-1)
    d = torch.linalg.vector_norm(x[:, 0] - x[:, 1], dim=-1)
    losses = y * d**2 + (1 - y) * torch.clamp(margin - d, min=0.0) ** 2
    return _reduce(losses, reduction, losses.numel())


def torch_triplet(x, t, reduction, margin=1.0, p=2.0, eps=1e-6, swap=False):
    return F.triplet_margin_loss(
        x[:, 0], x[:, 1], x[:, 2], margin=margin, p=p, eps=eps, swap=swap, reduction=reduction
    )


def torch_log_cosh(x, t, reduction):
    """optax.log_cosh: logaddexp(e, -e) - log 2."""
    e = x - t
    losses = torch.logaddexp(e, -e) - math.log(2.0)
    return _reduce(losses, reduction, losses.numel())


def torch_pseudo_huber(x, t, reduction, delta=1.0):
    """delta^2 (sqrt(1 + (e / delta)^2) - 1)."""
    e = x - t
    losses = delta**2 * (torch.sqrt(1 + (e / delta) ** 2) - 1)
    return _reduce(losses, reduction, losses.numel())


def torch_quantile(x, t, reduction, quantile=0.5):
    """Pinball loss max(q e', (q - 1) e') with e' = y - x (sklearn's mean_pinball_loss)."""
    e = t - x
    losses = torch.maximum(quantile * e, (quantile - 1) * e)
    return _reduce(losses, reduction, losses.numel())


def torch_poisson_nll(x, t, reduction, log_input=True, full=False, eps=1e-8):
    return F.poisson_nll_loss(x, t, log_input=log_input, full=full, eps=eps, reduction=reduction)


def torch_gaussian_nll(x, t, reduction, var, full=False, eps=1e-6):
    """var: a list (made a tensor here), a tensor (to take its gradient) or a Python float."""
    if isinstance(var, list):
        var = torch.tensor(var, dtype=DTYPE)
    elif not torch.is_tensor(var):
        var = float(var)
    return F.gaussian_nll_loss(x, t, var, full=full, eps=eps, reduction=reduction)


def torch_nll(x, t, reduction, weight=None, ignore_index=-100):
    w = None if weight is None else torch.tensor(weight, dtype=DTYPE)
    return F.nll_loss(x, t, weight=w, ignore_index=ignore_index, reduction=reduction)


def torch_kl_div(x, t, reduction, log_target=False):
    with warnings.catch_warnings():
        # torch warns that "mean" will mean "batchmean" in a future release; 2.13 divides by
        # the number of elements.
        warnings.filterwarnings("ignore", message="reduction: 'mean' divides")
        return F.kl_div(x, t, reduction=reduction, log_target=log_target)


def torch_hinge_embedding(x, t, reduction, margin=1.0):
    return F.hinge_embedding_loss(x, t, margin=margin, reduction=reduction)


def torch_multi_margin(x, t, reduction, p=1, margin=1.0, weight=None):
    w = None if weight is None else torch.tensor(weight, dtype=DTYPE)
    return F.multi_margin_loss(x, t, p=p, margin=margin, weight=w, reduction=reduction)


def torch_soft_margin(x, t, reduction):
    return F.soft_margin_loss(x, t, reduction=reduction)


def torch_multilabel_soft_margin(x, t, reduction, weight=None):
    w = None if weight is None else torch.tensor(weight, dtype=DTYPE)
    return F.multilabel_soft_margin_loss(x, t, weight=w, reduction=reduction)


def torch_poly1(x, t, reduction, epsilon=1.0, ignore_index=-100):
    """optax.poly_loss_cross_entropy on the class axis: CE + epsilon sum_c t_c (1 - p_c), with
    one-hot t for index targets; ignored index targets give 0 and leave the mean's count."""
    axis = _class_axis(x)
    n_classes = x.shape[axis]
    logp = F.log_softmax(x, dim=axis)
    p = torch.exp(logp)
    if t.dtype == torch.int64:
        valid = t != ignore_index
        safe = torch.where(valid, t, torch.zeros_like(t))
        onehot = torch.movedim(F.one_hot(safe, n_classes).to(DTYPE), -1, axis)
        losses = -(onehot * logp).sum(axis) + epsilon * (onehot * (1 - p)).sum(axis)
        losses = torch.where(valid, losses, torch.zeros_like(losses))
        return _reduce(losses, reduction, valid.sum())
    losses = -(t * logp).sum(axis) + epsilon * (t * (1 - p)).sum(axis)
    return _reduce(losses, reduction, losses.numel())


def torch_cosine_embedding(x, t, reduction, margin=0.0):
    """Pairs (B, 2, D) or one pair (2, D); targets (B,), (B, 1) or 0-d."""
    first, second = x.select(-2, 0), x.select(-2, 1)
    y = t.reshape(x.shape[:-2]).to(DTYPE)
    return F.cosine_embedding_loss(first, second, y, margin=margin, reduction=reduction)


def torch_margin_ranking(x, t, reduction, margin=0.0):
    """Rank pairs (B, 2) or one pair (2,); targets (B,), (B, 1) or 0-d."""
    y = t.reshape(x.shape[:-1]).to(DTYPE)
    return F.margin_ranking_loss(x[..., 0], x[..., 1], y, margin=margin, reduction=reduction)


# The generator's mapping of loss -> torch call, in two parts. TORCH_FUNCTIONAL: the losses that
# torch.nn.functional has, called directly; these are lossjit's losses with a PyTorch
# counterpart, and the only ones that get the layouts' example cases (example_cases).
TORCH_FUNCTIONAL = {
    "mse": torch_mse,
    "l1": torch_l1,
    "huber": torch_huber,
    "smooth_l1": torch_smooth_l1,
    "cross_entropy": torch_cross_entropy,
    "binary_cross_entropy": torch_binary_cross_entropy,
    "bce_with_logits": torch_bce_with_logits,
    "triplet": torch_triplet,
    "poisson_nll": torch_poisson_nll,
    "gaussian_nll": torch_gaussian_nll,
    "nll": torch_nll,
    "kl_div": torch_kl_div,
    "hinge_embedding": torch_hinge_embedding,
    "multi_margin": torch_multi_margin,
    "soft_margin": torch_soft_margin,
    "multilabel_soft_margin": torch_multilabel_soft_margin,
    "cosine_embedding": torch_cosine_embedding,
    "margin_ranking": torch_margin_ranking,
}

# TORCH_OPS: losses torch does not have, written here in torch ops from their definitions (their
# hand-built cases only). Losses in neither part (tweedie, gamma_nll, ...) have no golden cases.
TORCH_OPS = {
    "focal": torch_focal,
    "sigmoid_focal": torch_sigmoid_focal,
    "contrastive": torch_contrastive,
    "log_cosh": torch_log_cosh,
    "pseudo_huber": torch_pseudo_huber,
    "quantile": torch_quantile,
    "poly1": torch_poly1,
}

TORCH_LOSSES = {**TORCH_FUNCTIONAL, **TORCH_OPS}

# Losses whose golden cases carry "hess" (lossjit.grad_hess); cross_entropy only with logits.
HESS_LOSSES = {
    "mse",
    "l1",
    "huber",
    "smooth_l1",
    "log_cosh",
    "pseudo_huber",
    "quantile",
    "poisson_nll",
    "gaussian_nll",
    "binary_cross_entropy",
    "bce_with_logits",
    "sigmoid_focal",
    "kl_div",
    "hinge_embedding",
    "soft_margin",
    "cross_entropy",
}


def has_hess(loss, params):
    return loss in HESS_LOSSES and params.get("from_logits", True)


def term_shares(loss, x, t, params):
    """Each loss term's share c of the unweighted mean's denominator (the sample_weight
    mean is sum(w l) / sum(w c)): weight[y] for cross_entropy / nll index targets and 0/1
    (ignored or not) for focal / poly1 index targets, 0 for ignored terms; 1 otherwise."""
    if loss in ("cross_entropy", "nll", "focal", "poly1") and t.dtype == torch.int64:
        valid = t != params.get("ignore_index", -100)
        if loss in ("focal", "poly1"):
            return valid.to(DTYPE)
        n_classes = x.shape[_class_axis(x)]
        weight = _class_vector(params.get("weight"), n_classes)
        safe = torch.where(valid, t, torch.zeros_like(t))
        return weight[safe] * valid
    return None


def reduced_loss(loss, x, t, reduction, params):
    """The loss as lossjit defines it for these params: torch's own reduction, or with
    "sample_weight" the weighted per-term losses reduced as the README defines."""
    params = dict(params)
    sample_weight = params.pop("sample_weight", None)
    if sample_weight is None:
        return TORCH_LOSSES[loss](x, t, reduction, **params)
    terms = TORCH_LOSSES[loss](x, t, "none", **params)
    w = torch.tensor(sample_weight, dtype=DTYPE).expand(terms.shape)
    weighted = w * terms
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    if reduction == "batchmean":
        return weighted.sum() / (x.shape[0] if x.dim() else 1)
    shares = term_shares(loss, x, t, params)
    return weighted.sum() / (w.sum() if shares is None else (w * shares).sum())


# ---------------------------------------------------------------------------------------------
# Case recording
# ---------------------------------------------------------------------------------------------

CASES = []


def rng_for(name):
    """A generator seeded from the case name, so that each case's data is fixed on its own."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def hessian_diagonal(loss, params, reduction, x, t):
    """Diagonal of the Hessian of the reduced loss (of the sum of the terms for "none") with
    respect to predictions, by torch.autograd.functional.hessian on the flattened input."""
    shape = x.shape

    def scalar_loss(flat):
        return reduced_loss(loss, flat.reshape(shape), t, reduction, params).sum()

    hess = torch.autograd.functional.hessian(scalar_loss, x.detach().reshape(-1))
    return torch.diagonal(hess).reshape(shape)


def evaluate(loss, params, reduction, predictions, targets):
    """Return {"loss_value", "grad"} and, where they apply, "var_grad" (gaussian_nll with an
    array var) and "hess", as Python floats / nested lists."""
    x = torch.tensor(predictions, dtype=DTYPE, requires_grad=True)
    t = None if targets is None else torch.as_tensor(targets)
    params = dict(params)
    var = None
    if isinstance(params.get("var"), list):
        var = torch.tensor(params["var"], dtype=DTYPE, requires_grad=True)
        params["var"] = var
    out = reduced_loss(loss, x, t, reduction, params)
    out.sum().backward()
    result = {
        "loss_value": out.item() if out.dim() == 0 else out.detach().tolist(),
        "grad": x.grad.tolist(),
    }
    if var is not None:
        result["var_grad"] = var.grad.tolist()
        params["var"] = var.detach()
    if has_hess(loss, params):
        result["hess"] = hessian_diagonal(loss, params, reduction, x, t).tolist()
    return result


def as_arrays(predictions, targets):
    predictions = np.asarray(predictions, dtype=np.float64)
    if targets is not None:
        targets = np.asarray(targets)
        if np.issubdtype(targets.dtype, np.integer):
            targets = targets.astype(np.int64)
        else:
            targets = targets.astype(np.float64)
    return predictions, targets


def record(loss, variant, reduction, params, predictions, targets, expected):
    CASES.append(
        {
            "id": f"{loss}/{variant}/{reduction}",
            "loss": loss,
            "params": params,
            "reduction": reduction,
            "predictions": predictions.tolist(),
            "predictions_dtype": "float64",
            "targets": None if targets is None else targets.tolist(),
            "targets_dtype": None if targets is None else str(targets.dtype),
            **expected,
        }
    )


# Variants whose "hess" torch does not give as the derivative of its own gradient: at x = 0 or 1
# binary_cross_entropy's gradient is (x - y) / 1e-12 (clamped), whose derivative lossjit gives,
# but torch's double backward uses (x^2 - 2xy + y) / ((x + 1e-12)^2 (1 - x + 1e-12)^2) there.
# Their Hessians are checked against finite differences in the tests instead.
NO_HESS_VARIANTS = {("binary_cross_entropy", "edges"), ("binary_cross_entropy", "edges+weight")}


def add(loss, variant, predictions, targets=None, params=None, reductions=REDUCTIONS):
    """Record the case for each reduction. predictions/targets are NumPy arrays (or None)."""
    params = params or {}
    predictions, targets = as_arrays(predictions, targets)
    for reduction in reductions:
        expected = evaluate(loss, params, reduction, predictions, targets)
        if (loss, variant) in NO_HESS_VARIANTS:
            expected.pop("hess", None)
        record(loss, variant, reduction, params, predictions, targets, expected)


def per_term(loss, predictions, targets, params):
    """Per-term losses (reduction "none") as a NumPy array, for checks on the generated data."""
    predictions, targets = as_arrays(predictions, targets)
    return np.asarray(evaluate(loss, params, "none", predictions, targets)["loss_value"])


# ---------------------------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------------------------


def regression_data(name, shape=(3, 4), boundary=1.0):
    """Random data rounded to 3 decimals, with exact special points in the first row:
    e = 0, e = +boundary and e = -boundary (dyadic values, so x - y is exact)."""
    rng = rng_for(name)
    x = np.round(rng.normal(0.0, 1.5, size=shape), 3)
    y = np.round(rng.normal(0.0, 1.0, size=shape), 3)
    x.flat[0], y.flat[0] = 0.75, 0.75
    x.flat[1], y.flat[1] = 0.25 + boundary, 0.25
    x.flat[2], y.flat[2] = -0.5 - boundary, -0.5
    return x, y


def regression_cases():
    x, y = regression_data("mse")
    add("mse", "basic", x, y)
    x, y = regression_data("mse/3d", shape=(2, 3, 2))
    add("mse", "3d", x, y)
    add("mse", "seed_example", [1.5, 2.3, 0.8], [1.0, 2.0, 1.0])

    x, y = regression_data("l1")
    add("l1", "basic", x, y)

    for delta, variant in ((1.0, "default"), (0.5, "delta=0.5"), (2.0, "delta=2")):
        x, y = regression_data(f"huber/{variant}", boundary=delta)
        add("huber", variant, x, y, {} if variant == "default" else {"delta": delta})

    for beta, variant in ((1.0, "default"), (0.5, "beta=0.5"), (0.0, "beta=0")):
        x, y = regression_data(f"smooth_l1/{variant}", boundary=beta or 1.0)
        add("smooth_l1", variant, x, y, {} if variant == "default" else {"beta": beta})


def logits(name, shape, scale=1.5):
    return np.round(rng_for(name).normal(0.0, scale, size=shape), 3)


def probabilities(name, shape, axis=1):
    """Random probability vectors along ``axis``, rounded, each summing to 1 within rounding."""
    z = np.exp(logits(name + "/probs", shape))
    return np.round(z / z.sum(axis=axis, keepdims=True), 4)


def cross_entropy_cases():
    n, c = 5, 4
    weight = [0.5, 2.0, 1.0, 1.5]
    x = logits("ce/x", (n, c))
    y = np.array([0, 3, 1, 1, 2])
    y_ignored = np.array([0, -100, 1, -100, 2])
    add("cross_entropy", "index", x, y)
    add("cross_entropy", "weight", x, y, {"weight": weight})
    add("cross_entropy", "ignore_index", x, y_ignored)
    add("cross_entropy", "ignore_index=1", x, y, {"ignore_index": 1})
    add("cross_entropy", "label_smoothing", x, y, {"label_smoothing": 0.1})
    add(
        "cross_entropy",
        "weight+ignore+smoothing",
        x,
        y_ignored,
        {"weight": weight, "ignore_index": -100, "label_smoothing": 0.2},
    )
    add("cross_entropy", "all_ignored", x, np.full(n, -100))

    t = probabilities("ce/t", (n, c))
    add("cross_entropy", "probs", x, t)
    add("cross_entropy", "probs+weight", x, t, {"weight": weight})
    add("cross_entropy", "probs+smoothing", x, t, {"label_smoothing": 0.15})
    add(
        "cross_entropy", "probs+weight+smoothing", x, t, {"weight": weight, "label_smoothing": 0.15}
    )

    x1 = logits("ce/1d", (c,))
    add("cross_entropy", "1d", x1, np.array(2))
    add(
        "cross_entropy",
        "1d+weight+smoothing",
        x1,
        np.array(2),
        {"weight": weight, "label_smoothing": 0.1},
    )
    add("cross_entropy", "1d_probs", x1, probabilities("ce/1d", (c,), axis=0))

    xk = logits("ce/kdim", (2, 3, 2, 3))
    yk = rng_for("ce/kdim/y").integers(0, 3, size=(2, 2, 3))
    yk[0, 1, 2] = yk[1, 0, 0] = yk[1, 1, 1] = -100
    add("cross_entropy", "kdim+weight+ignore", xk, yk, {"weight": [0.3, 1.0, 2.5]})
    add(
        "cross_entropy",
        "kdim+weight+ignore+smoothing",
        xk,
        yk,
        {"weight": [0.3, 1.0, 2.5], "label_smoothing": 0.1},
    )
    add("cross_entropy", "kdim_probs", xk, probabilities("ce/kdim", (2, 3, 2, 3)))

    seed_logits = [[1.0, 2.0, 0.5], [0.8, 0.2, 1.5]]
    seed_onehot = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    add("cross_entropy", "seed_example", seed_logits, seed_onehot)

    # Probabilities as input (from_logits=False), the seed's implementation's form.
    p = probabilities("ce/p", (n, c))
    onehot = np.eye(c)[y]
    add("cross_entropy", "from_probs+onehot", p, onehot, {"from_logits": False})
    add(
        "cross_entropy",
        "from_probs+index+weight+ignore+smoothing",
        p,
        y_ignored,
        {"from_logits": False, "weight": weight, "label_smoothing": 0.2},
    )


def binary_cross_entropy_cases():
    rng = rng_for("bce")
    x = np.round(rng.uniform(0.05, 0.95, size=(4, 3)), 3)
    y = rng.integers(0, 2, size=(4, 3)).astype(np.float64)
    y[3] = [0.25, 0.5, 0.9]  # soft targets
    add("binary_cross_entropy", "basic", x, y)
    add("binary_cross_entropy", "weight", x, y, {"weight": [0.5, 1.0, 3.0]})
    # Inputs exactly 0 and 1: matching targets (loss 0, gradient 0), mismatching targets (log
    # clamped at -100, gradient (x - y) / max(x (1 - x), EPSILON)), and soft targets.
    x_edge = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.3, 0.7, 0.5]])
    y_edge = np.array([[0.0, 1.0, 1.0], [0.0, 0.5, 0.5], [1.0, 0.0, 0.5]])
    add("binary_cross_entropy", "edges", x_edge, y_edge)
    add("binary_cross_entropy", "edges+weight", x_edge, y_edge, {"weight": [2.0, 0.5, 1.0]})


def bce_with_logits_cases():
    rng = rng_for("bce_with_logits")
    x = np.round(rng.normal(0.0, 2.0, size=(4, 3)), 3)
    y = rng.integers(0, 2, size=(4, 3)).astype(np.float64)
    x[0], y[0] = [50.0, -50.0, 50.0], [1.0, 0.0, 0.0]
    x[1, 0], y[1, 0] = -50.0, 1.0
    y[3] = [0.25, 0.5, 0.9]  # soft targets
    add("bce_with_logits", "basic", x, y)
    add("bce_with_logits", "weight", x, y, {"weight": [0.5, 1.0, 3.0]})
    add("bce_with_logits", "pos_weight", x, y, {"pos_weight": [2.0, 0.5, 1.0]})
    add(
        "bce_with_logits",
        "weight+pos_weight",
        x,
        y,
        {"weight": [[1.0], [0.5], [2.0], [1.5]], "pos_weight": [3.0, 1.0, 0.25]},
    )


def focal_cases():
    n, c = 5, 4
    x = logits("focal/x", (n, c))
    y = np.array([2, 0, 3, 1, 0])
    y_ignored = np.array([2, -100, 3, 1, -100])
    alpha = [0.25, 0.5, 1.0, 2.0]

    # gamma = 0 and no alpha is exactly cross-entropy.
    for reduction in REDUCTIONS:
        xt = torch.tensor(x)
        focal0 = torch_focal(xt, torch.tensor(y), reduction, gamma=0.0)
        ce = F.cross_entropy(xt, torch.tensor(y), reduction=reduction)
        assert torch.allclose(focal0, ce, rtol=1e-14, atol=0), (reduction, focal0, ce)

    add("focal", "gamma=0", x, y, {"gamma": 0.0})
    add("focal", "gamma=1.5", x, y, {"gamma": 1.5})
    add("focal", "default", x, y)
    add("focal", "alpha=0.25", x, y, {"alpha": 0.25})
    add("focal", "alpha_per_class", x, y, {"gamma": 1.5, "alpha": alpha})
    add("focal", "ignore_index", x, y_ignored)
    add("focal", "ignore_index+alpha_per_class", x, y_ignored, {"alpha": alpha})
    add("focal", "ignore_index=3", x, y, {"ignore_index": 3})

    x1 = logits("focal/1d", (c,))
    add("focal", "1d", x1, np.array(1), {"alpha": alpha})

    xk = logits("focal/kdim", (2, 3, 2, 3))
    yk = rng_for("focal/kdim/y").integers(0, 3, size=(2, 2, 3))
    yk[0, 0, 1] = yk[1, 1, 2] = -100
    add("focal", "kdim+ignore", xk, yk)
    add("focal", "kdim+ignore+alpha_per_class", xk, yk, {"gamma": 1.5, "alpha": [0.5, 1.0, 2.0]})

    # Float targets on logits: one-hot and soft probabilities.
    add("focal", "onehot", x, np.eye(c)[y])
    add("focal", "probs+alpha_per_class", x, probabilities("focal/t", (n, c)), {"alpha": alpha})

    # Probabilities as input with one-hot targets (from_logits=False), the seed's form.
    p = probabilities("focal/p", (n, c))
    add("focal", "from_probs", p, np.eye(c)[y], {"from_logits": False})
    add(
        "focal",
        "from_probs+alpha_per_class+gamma=1.5",
        p,
        np.eye(c)[y],
        {"from_logits": False, "gamma": 1.5, "alpha": alpha},
    )
    add(
        "focal",
        "seed_example",
        [[0.9, 0.1], [0.6, 0.4]],
        [[1.0, 0.0], [1.0, 0.0]],
        {"gamma": 2.0, "alpha": 0.25, "eps": 1e-10, "from_logits": False},
    )


def sigmoid_focal_cases():
    rng = rng_for("sigmoid_focal")
    x = np.round(rng.normal(0.0, 2.0, size=(4, 3)), 3)
    y = rng.integers(0, 2, size=(4, 3)).astype(np.float64)
    y[0] = [0.0, 1.0, 1.0]
    y[1] = [1.0, 0.0, 0.0]
    add("sigmoid_focal", "default", x, y)
    add("sigmoid_focal", "alpha=-1", x, y, {"alpha": -1.0})
    add("sigmoid_focal", "gamma=0", x, y, {"gamma": 0.0})
    add("sigmoid_focal", "alpha=-1+gamma=0", x, y, {"alpha": -1.0, "gamma": 0.0})
    add("sigmoid_focal", "alpha=0.5+gamma=1.5", x, y, {"alpha": 0.5, "gamma": 1.5})
    y_soft = y.copy()
    y_soft[2] = [0.1, 0.5, 0.8]
    add("sigmoid_focal", "soft_targets", x, y_soft)


def contrastive_data(name, margin):
    """Six pairs: three similar, three dissimilar, of which two closer than the margin and one
    farther than it."""
    rng = rng_for(name)
    first = np.round(rng.normal(0.0, 1.0, size=(6, 3)), 3)
    directions = rng.normal(0.0, 1.0, size=(6, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    distances = margin * np.array([0.3, 1.2, 0.7, 0.25, 0.8, 1.6])
    second = np.round(first + distances[:, None] * directions, 3)
    labels = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    pairs = np.stack([first, second], axis=1)
    d = np.linalg.norm(pairs[:, 0] - pairs[:, 1], axis=1)
    dissimilar = labels == 0
    assert np.any(d[dissimilar] < margin) and np.any(d[dissimilar] > margin)
    return pairs, labels


def contrastive_cases():
    pairs, labels = contrastive_data("contrastive/default", 1.0)
    add("contrastive", "default", pairs, labels)
    add("contrastive", "labels_column", pairs, labels[:, None])
    pairs, labels = contrastive_data("contrastive/margin=2", 2.0)
    add("contrastive", "margin=2", pairs, labels, {"margin": 2.0})
    add("contrastive", "margin=2+labels_column", pairs, labels[:, None], {"margin": 2.0})


def triplet_data(name):
    """Five triplets (B, 3, D): positives and negatives at chosen distances from the anchor, so
    that the hinge is active for some triplets and inactive for others."""
    rng = rng_for(name)
    anchor = rng.normal(0.0, 1.0, size=(5, 3))
    pos_scale = np.array([0.2, 1.5, 0.6, 0.3, 1.0])
    neg_scale = np.array([2.5, 0.8, 0.9, 0.4, 3.0])
    positive = anchor + pos_scale[:, None] * rng.normal(0.0, 1.0, size=(5, 3)) / np.sqrt(3)
    negative = anchor + neg_scale[:, None] * rng.normal(0.0, 1.0, size=(5, 3)) / np.sqrt(3)
    return np.round(np.stack([anchor, positive, negative], axis=1), 3)


def triplet_cases():
    variants = [
        ("default", {}),
        ("margin=0.5", {"margin": 0.5}),
        ("p=1", {"p": 1.0}),
        ("p=1+margin=0.5", {"p": 1.0, "margin": 0.5}),
        ("swap", {"swap": True}),
        ("swap+p=1", {"swap": True, "p": 1.0}),
        ("swap+margin=0.5", {"swap": True, "margin": 0.5}),
    ]
    x = triplet_data("triplet")
    for variant, params in variants:
        hinge = per_term("triplet", x, None, params)
        assert np.any(hinge > 0) and np.any(hinge == 0), (variant, hinge)
        if params.get("swap"):
            no_swap = per_term("triplet", x, None, {**params, "swap": False})
            assert np.any(hinge != no_swap), variant  # the swap changes some triplet
        add("triplet", variant, x, None, params)
    seed = [[[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]]]
    add("triplet", "seed_example", seed, None)


def no_tie_data(name, shape=(3, 4)):
    """Random regression data rounded to 3 decimals with x != y everywhere."""
    rng = rng_for(name)
    x = np.round(rng.normal(0.0, 1.5, size=shape), 3)
    y = np.round(rng.normal(0.0, 1.0, size=shape), 3)
    assert np.all(x != y), name
    return x, y


def new_regression_cases():
    x, y = regression_data("log_cosh")
    x[2] = [30.0, -30.0, 40.5, -25.0]  # large |e|: cosh(e) would overflow float32
    add("log_cosh", "basic", x, y)
    x, y = regression_data("log_cosh/3d", shape=(2, 3, 2))
    add("log_cosh", "3d", x, y)

    for delta, variant in ((1.0, "default"), (0.5, "delta=0.5"), (2.0, "delta=2")):
        x, y = regression_data(f"pseudo_huber/{variant}", boundary=delta)
        x[2, 3] = 25.0  # |e| >> delta: the linear tail
        add("pseudo_huber", variant, x, y, {} if variant == "default" else {"delta": delta})

    for q, variant in ((0.5, "default"), (0.1, "q=0.1"), (0.25, "q=0.25"), (0.9, "q=0.9")):
        x, y = no_tie_data(f"quantile/{variant}")
        add("quantile", variant, x, y, {} if variant == "default" else {"quantile": q})


def poisson_nll_cases():
    rng = rng_for("poisson_nll")
    log_rate = np.round(rng.normal(0.0, 1.0, size=(3, 4)), 3)
    rate = np.round(rng.uniform(0.1, 4.0, size=(3, 4)), 3)
    # Counts 0, 1 (no Stirling term: it applies where y > 1 only), above 1, and non-integers.
    counts = np.array([[0.0, 1.0, 2.0, 5.0], [0.0, 0.5, 1.0, 3.0], [7.0, 0.0, 1.5, 12.0]])
    rate[0, 0] = 0.0  # x = 0 with y = 0: x - y log(x + eps) = 0, gradient 1
    add("poisson_nll", "default", log_rate, counts)
    add("poisson_nll", "full", log_rate, counts, {"full": True})
    variants = [
        ("log_input=False", {"log_input": False}),
        ("log_input=False+full", {"log_input": False, "full": True}),
        ("log_input=False+eps=0.1", {"log_input": False, "eps": 0.1}),
        ("log_input=False+full+eps=0.1", {"log_input": False, "full": True, "eps": 0.1}),
    ]
    for variant, params in variants:
        add("poisson_nll", variant, rate, counts, params)


def gaussian_nll_cases():
    x, y = regression_data("gaussian_nll")
    rng = rng_for("gaussian_nll/var")
    var = np.round(rng.uniform(0.2, 2.0, size=(3, 4)), 3)
    # Entries below eps, clamped to it (torch clamps under no_grad, so the var gradient passes):
    var[0, 0] = 0.0  # where e = 0
    var[1, 1] = 5e-7  # below the default eps 1e-6
    var[1, 3] = 0.03  # below eps = 0.05 only
    var_shapes = [
        ("var_same", var.tolist()),
        ("var_short", [0.7, 0.04, 1.3]),  # (3,): one axis short, unsqueezed at -1
        ("var_col", [[1.1], [0.02], [4e-7]]),  # (3, 1)
        ("var_row", [[0.5, 1.7, 0.0, 0.9]]),  # (1, 4)
        ("var_float", 0.8),
    ]
    for name, v in var_shapes:
        add("gaussian_nll", name, x, y, {"var": v})
        add("gaussian_nll", f"{name}+full+eps=0.05", x, y, {"var": v, "full": True, "eps": 0.05})
    add("gaussian_nll", "var_same+full", x, y, {"var": var.tolist(), "full": True})
    add("gaussian_nll", "var_same+eps=0.05", x, y, {"var": var.tolist(), "eps": 0.05})
    add("gaussian_nll", "var_float=0.03+eps=0.05", x, y, {"var": 0.03, "eps": 0.05})
    x3, y3 = regression_data("gaussian_nll/3d", shape=(2, 3, 2))
    var3 = np.round(rng_for("gaussian_nll/3d/var").uniform(0.2, 2.0, size=(2, 3)), 3)
    add("gaussian_nll", "3d+var_short", x3, y3, {"var": var3.tolist()})
    var_mid = np.round(rng_for("gaussian_nll/3d/var_mid").uniform(0.2, 2.0, size=(2, 1, 2)), 3)
    add("gaussian_nll", "3d+var_mid", x3, y3, {"var": var_mid.tolist()})  # a middle axis of 1


def log_probs(name, shape, axis=1):
    """Rounded log-softmax of random logits (not exactly normalised after rounding)."""
    z = logits(name, shape)
    z = z - z.max(axis=axis, keepdims=True)
    return np.round(z - np.log(np.exp(z).sum(axis=axis, keepdims=True)), 3)


def nll_cases():
    n, c = 5, 4
    weight = [0.5, 2.0, 1.0, 1.5]
    x = log_probs("nll/x", (n, c))
    y = np.array([0, 3, 1, 1, 2])
    y_ignored = np.array([0, -100, 1, -100, 2])
    add("nll", "index", x, y)
    add("nll", "weight", x, y, {"weight": weight})
    add("nll", "ignore_index", x, y_ignored)
    add("nll", "ignore_index=1", x, y, {"ignore_index": 1})
    add("nll", "weight+ignore_index", x, y_ignored, {"weight": weight, "ignore_index": -100})
    add("nll", "weight+ignore_index=3", x, y, {"weight": weight, "ignore_index": 3})
    add("nll", "all_ignored", x, np.full(n, -100))

    x1 = log_probs("nll/1d", (c,), axis=0)
    add("nll", "1d", x1, np.array(2))
    add("nll", "1d+weight", x1, np.array(2), {"weight": weight})
    add("nll", "1d_ignored", x1, np.array(-100))

    xk = log_probs("nll/kdim", (2, 3, 2, 2))
    yk = rng_for("nll/kdim/y").integers(0, 3, size=(2, 2, 2))
    yk[0, 1, 0] = yk[1, 0, 1] = -100
    add("nll", "kdim+ignore", xk, yk)
    add("nll", "kdim+weight+ignore", xk, yk, {"weight": [0.3, 1.0, 2.5]})


KL_REDUCTIONS = REDUCTIONS + ("batchmean",)


def kl_div_cases():
    x = log_probs("kl_div/x", (3, 4))
    t = probabilities("kl_div/t", (3, 4))
    t[0, 1] = t[1, 3] = t[2, 0] = 0.0  # y = 0 with finite x: the term is exactly 0
    add("kl_div", "basic", x, t, reductions=KL_REDUCTIONS)
    t_log = log_probs("kl_div/t_log", (3, 4))
    t_log[1, 2] = -60.0  # exp(y) ~ 1e-26
    add("kl_div", "log_target", x, t_log, {"log_target": True}, reductions=KL_REDUCTIONS)

    x3 = log_probs("kl_div/3d", (2, 3, 2))
    t3 = probabilities("kl_div/3d", (2, 3, 2))
    t3[1, 0, 1] = 0.0
    add("kl_div", "3d", x3, t3, reductions=KL_REDUCTIONS)
    add(
        "kl_div",
        "3d+log_target",
        x3,
        np.log(t3 + 0.125),
        {"log_target": True},
        reductions=KL_REDUCTIONS,
    )

    # A 0-d input: "batchmean" does not divide.
    add("kl_div", "0d", np.array(-1.25), np.array(0.3), reductions=KL_REDUCTIONS)
    add(
        "kl_div",
        "0d+log_target",
        np.array(-1.25),
        np.array(-0.75),
        {"log_target": True},
        reductions=KL_REDUCTIONS,
    )


def hinge_embedding_cases():
    for margin, variant in (
        (1.0, "default"),
        (0.5, "margin=0.5"),
        (2.0, "margin=2"),
        (0.0, "margin=0"),
    ):
        rng = rng_for(f"hinge_embedding/{variant}")
        x = np.round(rng.normal(0.0, 1.5, size=(3, 4)), 3)
        y = np.where(rng.random(size=(3, 4)) < 0.5, 1.0, -1.0)
        x[0], y[0] = [margin, margin + 0.25, margin - 0.25, -0.5], [-1.0, -1.0, -1.0, 1.0]
        add("hinge_embedding", variant, x, y, {} if variant == "default" else {"margin": margin})


def multi_margin_data(name, margin, shape=(4, 5)):
    """Logits with one exact tie margin - x_y + x_i == 0 (dyadic values) in the first row."""
    x = logits(name, shape)
    if x.ndim == 1:
        y = np.array(3)
        x[3], x[0] = 0.75, 0.75 - margin
    else:
        y = np.array([1, 4, 0, 2])
        x[0, 1], x[0, 3] = 0.75, 0.75 - margin
    return x, y


def multi_margin_cases():
    weight = [0.5, 2.0, 1.0, 1.5, 0.75]
    for margin in (1.0, 0.5):
        x, y = multi_margin_data(f"multi_margin/margin={margin}", margin)
        for p in (1, 2):
            for w in (None, weight):
                params = {}
                if p == 2:
                    params["p"] = 2
                if margin != 1.0:
                    params["margin"] = margin
                if w is not None:
                    params["weight"] = w
                variant = "+".join(f"{k}={v}" if k != "weight" else k for k, v in params.items())
                add("multi_margin", variant or "default", x, y, params)
    x, y = multi_margin_data("multi_margin/1d", 1.0, shape=(5,))
    add("multi_margin", "1d", x, y)
    x, y = multi_margin_data("multi_margin/1d", 0.5, shape=(5,))
    add("multi_margin", "1d+p=2+margin=0.5+weight", x, y, {"p": 2, "margin": 0.5, "weight": weight})


def soft_margin_cases():
    rng = rng_for("soft_margin")
    x = np.round(rng.normal(0.0, 2.0, size=(3, 4)), 3)
    y = np.where(rng.random(size=(3, 4)) < 0.5, 1.0, -1.0)
    # -y x = -30, 30, 35, -35: torch's log1p(exp(-y x)) is still finite in float64 here.
    x[0], y[0] = [30.0, -30.0, 35.0, -35.0], [1.0, 1.0, -1.0, -1.0]
    add("soft_margin", "basic", x, y)
    y_real = y.copy()
    y_real[2] = [0.5, -2.0, 0.0, 1.5]
    add("soft_margin", "real_targets", x, y_real)


def multilabel_soft_margin_cases():
    weight = [0.5, 2.0, 1.0, 1.5]
    rng = rng_for("multilabel_soft_margin")
    x = logits("multilabel_soft_margin/x", (3, 4), scale=2.0)
    y = rng.integers(0, 2, size=(3, 4)).astype(np.float64)
    y[2] = [0.2, 0.9, 0.5, 0.0]  # soft targets
    add("multilabel_soft_margin", "basic", x, y)
    add("multilabel_soft_margin", "weight", x, y, {"weight": weight})
    x3 = logits("multilabel_soft_margin/3d", (2, 3, 4), scale=2.0)
    y3 = rng.integers(0, 2, size=(2, 3, 4)).astype(np.float64)
    add("multilabel_soft_margin", "3d", x3, y3)
    add("multilabel_soft_margin", "3d+weight", x3, y3, {"weight": weight})
    x1 = logits("multilabel_soft_margin/1d", (4,), scale=2.0)
    add(
        "multilabel_soft_margin",
        "1d+weight",
        x1,
        np.array([1.0, 0.0, 0.0, 1.0]),
        {"weight": weight},
    )


def cosine_embedding_data():
    rng = rng_for("cosine_embedding")
    pairs = np.round(rng.normal(0.0, 1.0, size=(6, 2, 3)), 3)
    y = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    pairs[0, 0] = 0.0  # a zero vector, similar pair: cos = 0
    pairs[1, 1] = 0.0  # a zero vector, dissimilar pair: cos = 0, a tie at margin 0
    pairs[3] = [[1.5, 0.0, 0.0], [0.0, -2.0, 0.75]]  # orthogonal, dissimilar: a tie at margin 0
    return pairs, y


def cosine_embedding_cases():
    pairs, y = cosine_embedding_data()
    add("cosine_embedding", "default", pairs, y)
    add("cosine_embedding", "margin=0.3", pairs, y, {"margin": 0.3})
    add("cosine_embedding", "margin=-0.2", pairs, y, {"margin": -0.2})
    add("cosine_embedding", "targets_column", pairs, y[:, None])
    add("cosine_embedding", "pair", pairs[2], np.array(-1.0), {"margin": 0.3})


def margin_ranking_cases():
    for margin, variant in ((0.0, "default"), (0.5, "margin=0.5"), (-0.25, "margin=-0.25")):
        rng = rng_for(f"margin_ranking/{variant}")
        x = np.round(rng.normal(0.0, 1.0, size=(6, 2)), 3)
        y = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
        x[0] = [0.75 + margin, 0.75]  # y = 1: -(x1 - x2) + margin == 0, a tie
        x[1] = [0.75 - margin, 0.75]  # y = -1: (x1 - x2) + margin == 0, a tie
        params = {} if variant == "default" else {"margin": margin}
        add("margin_ranking", variant, x, y, params)
        if variant == "default":
            add("margin_ranking", "targets_column", x, y[:, None])
            add("margin_ranking", "pair", x[2], np.array(-1.0))


def poly1_cases():
    n, c = 5, 4
    x = logits("poly1/x", (n, c))
    y = np.array([2, 0, 3, 1, 0])
    y_ignored = np.array([2, -100, 3, 1, -100])
    add("poly1", "default", x, y)
    add("poly1", "epsilon=2", x, y, {"epsilon": 2.0})
    add("poly1", "epsilon=-0.5", x, y, {"epsilon": -0.5})
    add("poly1", "ignore_index", x, y_ignored)
    add("poly1", "ignore_index+epsilon=2", x, y_ignored, {"epsilon": 2.0, "ignore_index": -100})
    add("poly1", "ignore_index=3", x, y, {"ignore_index": 3})
    add("poly1", "all_ignored", x, np.full(n, -100))
    t = probabilities("poly1/t", (n, c))
    add("poly1", "probs", x, t)
    add("poly1", "probs+epsilon=2", x, t, {"epsilon": 2.0})
    add("poly1", "onehot", x, np.eye(c)[y])
    x1 = logits("poly1/1d", (c,))
    add("poly1", "1d", x1, np.array(1), {"epsilon": 2.0})
    add("poly1", "1d_probs", x1, probabilities("poly1/1d", (c,), axis=0))
    xk = logits("poly1/kdim", (2, 3, 2, 3))
    yk = rng_for("poly1/kdim/y").integers(0, 3, size=(2, 2, 3))
    yk[0, 0, 1] = yk[1, 1, 2] = -100
    add("poly1", "kdim+ignore", xk, yk, {"epsilon": 0.5})
    add("poly1", "kdim_probs", xk, probabilities("poly1/kdim", (2, 3, 2, 3)))


def sample_weight(name, shape, zero_at):
    """Weights in [0.2, 2] with one 0, as a nested list of ``shape``."""
    w = np.round(rng_for(name + "/sample_weight").uniform(0.2, 2.0, size=shape), 3)
    w[zero_at] = 0.0
    return w.tolist()


def sample_weight_cases():
    x, y = regression_data("mse")
    add("mse", "sample_weight", x, y, {"sample_weight": sample_weight("mse", (3, 4), (1, 2))})
    add("mse", "sample_weight_broadcast", x, y, {"sample_weight": [[0.5], [0.0], [1.75]]})

    rng = rng_for("bce_with_logits")
    xb = np.round(rng.normal(0.0, 2.0, size=(4, 3)), 3)
    yb = rng.integers(0, 2, size=(4, 3)).astype(np.float64)
    yb[3] = [0.25, 0.5, 0.9]
    sw = sample_weight("bce_with_logits", (4, 3), (2, 0))
    add(
        "bce_with_logits",
        "pos_weight+sample_weight",
        xb,
        yb,
        {"pos_weight": [2.0, 0.5, 1.0], "sample_weight": sw},
    )

    n, c = 5, 4
    weight = [0.5, 2.0, 1.0, 1.5]
    x = logits("ce/x", (n, c))
    y_ignored = np.array([0, -100, 1, -100, 2])
    sw = sample_weight("ce", (n,), 2)
    add(
        "cross_entropy",
        "weight+ignore+sample_weight",
        x,
        y_ignored,
        {"weight": weight, "ignore_index": -100, "sample_weight": sw},
    )
    add(
        "cross_entropy",
        "probs+weight+sample_weight",
        x,
        probabilities("ce/t", (n, c)),
        {"weight": weight, "sample_weight": sw},
    )
    xk = logits("ce/kdim", (2, 3, 2, 3))
    yk = rng_for("ce/kdim/y").integers(0, 3, size=(2, 2, 3))
    yk[0, 1, 2] = yk[1, 0, 0] = yk[1, 1, 1] = -100
    add(
        "cross_entropy",
        "kdim+weight+ignore+smoothing+sample_weight",
        xk,
        yk,
        {
            "weight": [0.3, 1.0, 2.5],
            "label_smoothing": 0.1,
            "sample_weight": sample_weight("ce/kdim", (2, 2, 3), (0, 0, 0)),
        },
    )

    xn = log_probs("nll/x", (n, c))
    add(
        "nll",
        "weight+ignore_index+sample_weight",
        xn,
        y_ignored,
        {"weight": weight, "sample_weight": sample_weight("nll", (n,), 4)},
    )

    xf = logits("focal/x", (n, c))
    yf = np.array([2, -100, 3, 1, -100])
    add(
        "focal",
        "ignore_index+alpha_per_class+sample_weight",
        xf,
        yf,
        {"alpha": [0.25, 0.5, 1.0, 2.0], "sample_weight": sample_weight("focal", (n,), 0)},
    )

    xp = logits("poly1/x", (n, c))
    yp = np.array([2, -100, 3, 1, -100])
    add(
        "poly1",
        "ignore_index+sample_weight",
        xp,
        yp,
        {"epsilon": 2.0, "sample_weight": sample_weight("poly1", (n,), 3)},
    )

    xm, ym = multi_margin_data("multi_margin/margin=1.0", 1.0)
    add(
        "multi_margin",
        "p=2+weight+sample_weight",
        xm,
        ym,
        {
            "p": 2,
            "weight": [0.5, 2.0, 1.0, 1.5, 0.75],
            "sample_weight": sample_weight("multi_margin", (4,), 1),
        },
    )

    rng = rng_for("multilabel_soft_margin")
    xl = logits("multilabel_soft_margin/x", (3, 4), scale=2.0)
    yl = rng.integers(0, 2, size=(3, 4)).astype(np.float64)
    add(
        "multilabel_soft_margin",
        "weight+sample_weight",
        xl,
        yl,
        {
            "weight": [0.5, 2.0, 1.0, 1.5],
            "sample_weight": sample_weight("multilabel_soft_margin", (3,), 1),
        },
    )
    xl3 = logits("multilabel_soft_margin/3d", (2, 3, 4), scale=2.0)
    yl3 = rng.integers(0, 2, size=(2, 3, 4)).astype(np.float64)
    add(
        "multilabel_soft_margin",
        "3d+sample_weight",
        xl3,
        yl3,
        {"sample_weight": sample_weight("multilabel_soft_margin/3d", (2, 3), (1, 0))},
    )

    pairs, labels = contrastive_data("contrastive/default", 1.0)
    add(
        "contrastive",
        "sample_weight",
        pairs,
        labels,
        {"sample_weight": sample_weight("contrastive", (6,), 4)},
    )

    add(
        "triplet",
        "sample_weight",
        triplet_data("triplet"),
        None,
        {"sample_weight": sample_weight("triplet", (5,), 1)},
    )

    pairs, y = cosine_embedding_data()
    add(
        "cosine_embedding",
        "margin=-0.2+sample_weight",
        pairs,
        y,
        {"margin": -0.2, "sample_weight": sample_weight("cosine_embedding", (6,), 5)},
    )

    rng = rng_for("margin_ranking/margin=0.5")
    xr = np.round(rng.normal(0.0, 1.0, size=(6, 2)), 3)
    yr = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    add(
        "margin_ranking",
        "margin=0.5+sample_weight",
        xr,
        yr,
        {"margin": 0.5, "sample_weight": sample_weight("margin_ranking", (6,), 2)},
    )

    xk = log_probs("kl_div/x", (3, 4))
    tk = probabilities("kl_div/t", (3, 4))
    tk[0, 1] = tk[1, 3] = tk[2, 0] = 0.0
    add(
        "kl_div",
        "sample_weight",
        xk,
        tk,
        {"sample_weight": sample_weight("kl_div", (3, 4), (2, 2))},
        reductions=KL_REDUCTIONS,
    )

    x, y = regression_data("gaussian_nll")
    var = np.round(rng_for("gaussian_nll/sample_weight/var").uniform(0.2, 2.0, size=(3, 4)), 3)
    var[1, 1] = 5e-7
    add(
        "gaussian_nll",
        "var_same+sample_weight",
        x,
        y,
        {"var": var.tolist(), "sample_weight": sample_weight("gaussian_nll", (3, 4), (0, 3))},
    )
    add(
        "gaussian_nll",
        "var_short+full+sample_weight",
        x,
        y,
        {
            "var": [0.7, 0.04, 1.3],
            "full": True,
            "sample_weight": sample_weight("gaussian_nll/short", (3, 4), (2, 1)),
        },
    )


def add_empty(loss, variant, predictions, targets, params):
    """A mean over no terms with empty="zero": by the definition of empty the value is 0.0 and the
    gradient (and the Hessian diagonal, where recorded) is all zeros."""
    predictions, targets = as_arrays(predictions, targets)
    zeros = np.zeros_like(predictions).tolist()
    expected = {"loss_value": 0.0, "grad": zeros}
    if has_hess(loss, params):
        expected["hess"] = zeros
    record(loss, variant, "mean", params, predictions, targets, expected)


def empty_cases():
    n, c = 5, 4
    x = logits("ce/x", (n, c))
    nobody = np.full(n, -100)
    add_empty("cross_entropy", "all_ignored+empty=zero", x, nobody, {"empty": "zero"})
    add_empty(
        "cross_entropy",
        "all_ignored+weight+smoothing+empty=zero",
        x,
        nobody,
        {"weight": [0.5, 2.0, 1.0, 1.5], "label_smoothing": 0.1, "empty": "zero"},
    )
    # Every non-ignored term has sample weight 0: the weighted mean's denominator is 0.
    add_empty(
        "cross_entropy",
        "sample_weight_zero_denominator+empty=zero",
        x,
        np.array([0, -100, 1, -100, 2]),
        {
            "weight": [0.5, 2.0, 1.0, 1.5],
            "sample_weight": [0.0, 1.5, 0.0, 0.5, 0.0],
            "empty": "zero",
        },
    )
    add_empty(
        "nll", "all_ignored+empty=zero", log_probs("nll/x", (n, c)), nobody, {"empty": "zero"}
    )
    add_empty(
        "nll",
        "1d_ignored+empty=zero",
        log_probs("nll/1d", (c,), axis=0),
        np.array(-100),
        {"weight": [0.5, 2.0, 1.0, 1.5], "empty": "zero"},
    )
    add_empty(
        "focal", "all_ignored+empty=zero", logits("focal/x", (n, c)), nobody, {"empty": "zero"}
    )
    xk = logits("focal/kdim", (2, 3, 2, 3))
    add_empty(
        "focal",
        "kdim_all_ignored+empty=zero",
        xk,
        np.full((2, 2, 3), -100),
        {"alpha": [0.5, 1.0, 2.0], "empty": "zero"},
    )
    add_empty(
        "poly1", "all_ignored+empty=zero", logits("poly1/x", (n, c)), nobody, {"empty": "zero"}
    )


EXAMPLE_SIZE = 24
EXAMPLE_WIDTH = 4


def plain(value):
    """An example's option as JSON data: arrays as (nested) lists, NumPy scalars as numbers."""
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def example_cases():
    """The layouts' example inputs, for every built-in loss with a PyTorch counterpart: the
    rule is its entry in TORCH_FUNCTIONAL, so that losses torch does not have are left out here
    and a new loss torch has needs no input code. Each of the loss's reductions is recorded."""
    for spec in BUILTIN:
        if spec.name not in TORCH_FUNCTIONAL:
            continue
        rng = rng_for(f"{spec.name}/example")
        for example in spec.layout.examples(EXAMPLE_SIZE, np.float64, rng, width=EXAMPLE_WIDTH):
            params = {name: plain(value) for name, value in example.options.items()}
            add(
                spec.name,
                f"example:{example.label}",
                example.predictions,
                example.targets,
                params,
                reductions=spec.reductions,
            )


def main():
    regression_cases()
    cross_entropy_cases()
    binary_cross_entropy_cases()
    bce_with_logits_cases()
    focal_cases()
    sigmoid_focal_cases()
    contrastive_cases()
    triplet_cases()
    new_regression_cases()
    poisson_nll_cases()
    gaussian_nll_cases()
    nll_cases()
    kl_div_cases()
    hinge_embedding_cases()
    multi_margin_cases()
    soft_margin_cases()
    multilabel_soft_margin_cases()
    poly1_cases()
    cosine_embedding_cases()
    margin_ranking_cases()
    sample_weight_cases()
    empty_cases()
    example_cases()
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    # One case per line keeps the file readable and its diffs local.
    OUTPUT.write_text("[\n" + ",\n".join(json.dumps(case) for case in CASES) + "\n]\n")
    print(f"wrote {len(CASES)} cases to {OUTPUT} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
