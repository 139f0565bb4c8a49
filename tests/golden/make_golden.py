"""Generate tests/golden/torch_cases.json: golden loss values and gradients from PyTorch.

Each case is a small, deterministic input (fixed per-case seeds) for one lossjit loss, one
option combination and one reduction. PyTorch computes the value and the gradient with respect
to ``predictions`` in float64, with an upstream gradient of ones (``loss.sum().backward()``,
which for "mean" and "sum" is the gradient of the scalar and for "none" that of the sum of the
per-term losses).

Losses that ``torch.nn.functional`` has (mse_loss, l1_loss, huber_loss, smooth_l1_loss,
cross_entropy, binary_cross_entropy, binary_cross_entropy_with_logits, triplet_margin_loss) are
called directly. The others are written here in torch ops and differentiated by autograd:
``sigmoid_focal`` exactly as torchvision's ``sigmoid_focal_loss``, softmax ``focal`` as
-alpha_y (1 - p_y)^gamma log_softmax(x)_y, ``contrastive`` as
y d^2 + (1 - y) max(0, margin - d)^2, and ``cross_entropy`` with ``from_logits=False`` as
-sum_c q_c w_c log(clamp(p_c, eps, 1)); their denominators are those of LOSSES.md.

Generated with torch 2.13.0 (CPU). To regenerate, from the repository root::

    python tests/golden/make_golden.py

The output is deterministic: rerunning with the same torch version rewrites the same file.

JSON layout: a list of objects with keys ``id`` ("<loss>/<variant>/<reduction>"), ``loss``,
``params`` (lossjit parameter names, arrays as lists), ``reduction``, ``predictions``,
``predictions_dtype``, ``targets``, ``targets_dtype`` (null when the loss takes no targets),
``loss_value`` (a float, or a nested list for reduction "none") and ``grad`` (nested list, the
shape of ``predictions``).
"""

import json
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

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


TORCH_LOSSES = {
    "mse": torch_mse,
    "l1": torch_l1,
    "huber": torch_huber,
    "smooth_l1": torch_smooth_l1,
    "cross_entropy": torch_cross_entropy,
    "binary_cross_entropy": torch_binary_cross_entropy,
    "bce_with_logits": torch_bce_with_logits,
    "focal": torch_focal,
    "sigmoid_focal": torch_sigmoid_focal,
    "contrastive": torch_contrastive,
    "triplet": torch_triplet,
}


# ---------------------------------------------------------------------------------------------
# Case recording
# ---------------------------------------------------------------------------------------------

CASES = []


def rng_for(name):
    """A generator seeded from the case name, so that each case's data is fixed on its own."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def evaluate(loss, params, reduction, predictions, targets):
    """Return (loss value, gradient w.r.t. predictions) as Python lists/floats."""
    x = torch.tensor(predictions, dtype=DTYPE, requires_grad=True)
    t = None if targets is None else torch.as_tensor(targets)
    out = TORCH_LOSSES[loss](x, t, reduction, **params)
    out.sum().backward()
    value = out.item() if reduction != "none" else out.detach().tolist()
    return value, x.grad.tolist()


def add(loss, variant, predictions, targets=None, params=None, reductions=REDUCTIONS):
    """Record the case for each reduction. predictions/targets are NumPy arrays (or None)."""
    params = params or {}
    predictions = np.asarray(predictions, dtype=np.float64)
    if targets is not None:
        targets = np.asarray(targets)
        if np.issubdtype(targets.dtype, np.integer):
            targets = targets.astype(np.int64)
        else:
            targets = targets.astype(np.float64)
    for reduction in reductions:
        value, grad = evaluate(loss, params, reduction, predictions, targets)
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
                "loss_value": value,
                "grad": grad,
            }
        )


def per_term(loss, predictions, targets, params):
    """Per-term losses (reduction "none") as a NumPy array, for checks on the generated data."""
    value, _ = evaluate(loss, params, "none", np.asarray(predictions, dtype=np.float64), targets)
    return np.asarray(value)


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


def main():
    regression_cases()
    cross_entropy_cases()
    binary_cross_entropy_cases()
    bce_with_logits_cases()
    focal_cases()
    sigmoid_focal_cases()
    contrastive_cases()
    triplet_cases()
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    # One case per line keeps the file readable and its diffs local.
    OUTPUT.write_text("[\n" + ",\n".join(json.dumps(case) for case in CASES) + "\n]\n")
    print(f"wrote {len(CASES)} cases to {OUTPUT} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
