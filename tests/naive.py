"""Test oracle: plain NumPy reference implementations of lossjit's losses.

Every function here computes the loss VALUE only (no gradient), in float64, written directly
from the formulas in LOSSES.md with straightforward NumPy (explicit loops where they make the
definition easier to read). Nothing here is optimised or shared with lossjit itself, so it can
serve as an independent oracle in the tests.

Entry point::

    oracle(name, predictions, targets=None, reduction="mean", **params)

``name`` is one of ``mse``, ``l1``, ``huber``, ``smooth_l1``, ``cross_entropy``,
``binary_cross_entropy``, ``bce_with_logits``, ``focal``, ``sigmoid_focal``, ``contrastive``
and ``triplet``; ``params`` use the same names and defaults as lossjit's Python API.
``reduction`` is ``"mean"`` (default), ``"sum"`` or ``"none"``. ``"mean"`` and ``"sum"``
return a Python float; ``"none"`` returns the array of per-term losses. A mean over zero terms
is NaN.
"""

import numpy as np

REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _float_array(a):
    return np.asarray(a, dtype=np.float64)


def _reduce(losses, reduction, denominator=None):
    """Apply a reduction to the per-term losses.

    ``denominator`` is the divisor of the mean; by default the number of terms. A mean over
    zero terms (0 / 0) is NaN.
    """
    losses = _float_array(losses)
    if reduction == "none":
        return losses
    total = np.float64(losses.sum())
    if reduction == "sum":
        return float(total)
    if reduction == "mean":
        if denominator is None:
            denominator = losses.size
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(total / np.float64(denominator))
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_same_shape(predictions, targets):
    if predictions.shape != targets.shape:
        raise ValueError(
            f"predictions {predictions.shape} and targets {targets.shape} must have the same shape"
        )


def _class_axis(x):
    """Classes are on axis 0 of a (C,) input and on axis 1 of (N, C) and (N, C, d1..dk)."""
    if x.ndim == 0:
        raise ValueError("class scores need at least one axis")
    return 0 if x.ndim == 1 else 1


def _classes_last(x):
    """Move the class axis to the end: (C,) stays, (N, C, d1..dk) becomes (N, d1..dk, C)."""
    return np.moveaxis(x, _class_axis(x), -1)


def _log_softmax(x, axis):
    """log softmax with the maximum subtracted first (log-sum-exp)."""
    m = np.max(x, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore"):
        shifted = x - m
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _sum_coef_times_log(coef, logp):
    """sum_c coef_c * logp_c over the last axis.

    A zero coefficient times log(0) = -inf counts as 0: a class whose probability is exactly 0
    (a -inf logit, i.e. a masked class) and that the target does not ask for contributes
    nothing. Any other NaN or infinity propagates.
    """
    with np.errstate(invalid="ignore"):
        products = coef * logp
    products = np.where((coef == 0) & np.isneginf(logp), 0.0, products)
    return products.sum(axis=-1)


def _is_class_index(targets):
    return np.issubdtype(targets.dtype, np.integer)


def _class_vector(value, n_classes, name):
    """None -> ones, a scalar -> that value for every class, an array -> checked (C,) vector."""
    if value is None:
        return np.ones(n_classes)
    value = _float_array(value)
    if value.ndim == 0:
        return np.full(n_classes, float(value))
    if value.shape != (n_classes,):
        raise ValueError(f"{name} must have shape ({n_classes},), got {value.shape}")
    return value


def _sigmoid(x):
    """Logistic function without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(x):
    """log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


# ---------------------------------------------------------------------------------------------
# Regression
# ---------------------------------------------------------------------------------------------


def mse(predictions, targets, reduction="mean"):
    """e^2 with e = x - y."""
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    e = x - y
    return _reduce(e * e, reduction)


def l1(predictions, targets, reduction="mean"):
    """|e| with e = x - y."""
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    return _reduce(np.abs(x - y), reduction)


def huber(predictions, targets, reduction="mean", delta=1.0):
    """0.5 e^2 if |e| < delta, else delta (|e| - 0.5 delta)."""
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    a = np.abs(x - y)
    losses = np.where(a < delta, 0.5 * a * a, delta * (a - 0.5 * delta))
    return _reduce(losses, reduction)


def smooth_l1(predictions, targets, reduction="mean", beta=1.0):
    """0.5 e^2 / beta if |e| < beta, else |e| - 0.5 beta; beta = 0 is the L1 loss."""
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    a = np.abs(x - y)
    if beta == 0:
        return _reduce(a, reduction)
    losses = np.where(a < beta, 0.5 * a * a / beta, a - 0.5 * beta)
    return _reduce(losses, reduction)


# ---------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------


def cross_entropy(
    predictions,
    targets,
    reduction="mean",
    weight=None,
    ignore_index=-100,
    label_smoothing=0.0,
    from_logits=True,
    eps=1e-10,
):
    """Cross-entropy with PyTorch's semantics.

    predictions: logits (or probabilities when ``from_logits=False``) of shape (C,), (N, C) or
    (N, C, d1..dk); classes on axis 1.

    Class-index targets (integer, the shape without the C axis; 0-d for a (C,) input)::

        q = (1 - eps_ls) onehot(y) + eps_ls / C
        loss = -sum_c q_c w_c log p_c     (0 at positions whose target is ignore_index)
        mean = sum(loss) / sum over non-ignored positions of w[y]

    Probability targets (float, the shape of the logits)::

        q = (1 - eps_ls) t + eps_ls / C
        loss = -sum_c q_c w_c log p_c
        mean = sum(loss) / number of positions (N * d1 * ... * dk)

    log p is log_softmax(x) over the class axis, or log(clip(x, eps, 1)) when
    ``from_logits=False``.
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    x = _float_array(predictions)
    axis = _class_axis(x)
    n_classes = x.shape[axis]
    if from_logits:
        logp = _log_softmax(x, axis)
    else:
        logp = np.log(np.clip(x, eps, 1.0))
    logp = _classes_last(logp)  # (..positions.., C)
    positions = logp.shape[:-1]
    w = _class_vector(weight, n_classes, "weight")
    t = np.asarray(targets)

    if _is_class_index(t):
        if t.shape != positions:
            raise ValueError(f"class-index targets must have shape {positions}, got {t.shape}")
        losses = np.zeros(positions)
        denominator = 0.0
        for pos in np.ndindex(*positions):
            y = int(t[pos])
            if y == ignore_index:
                continue
            if not 0 <= y < n_classes:
                raise ValueError(f"target {y} is not a class index in [0, {n_classes})")
            q = np.full(n_classes, label_smoothing / n_classes)
            q[y] += 1.0 - label_smoothing
            losses[pos] = -_sum_coef_times_log(q * w, logp[pos])
            denominator += w[y]
        return _reduce(losses, reduction, denominator)

    t = _float_array(t)
    _check_same_shape(x, t)
    q = (1.0 - label_smoothing) * _classes_last(t) + label_smoothing / n_classes
    losses = -_sum_coef_times_log(q * w, logp)
    return _reduce(losses, reduction, int(np.prod(positions)))


def binary_cross_entropy(predictions, targets, reduction="mean", weight=None):
    """-w [y log x + (1 - y) log(1 - x)], each log clamped at >= -100 (PyTorch's clamp).

    ``weight`` broadcasts against the input.
    """
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    with np.errstate(divide="ignore"):
        log_x = np.maximum(np.log(x), -100.0)
        log_1mx = np.maximum(np.log(1.0 - x), -100.0)
    losses = -(y * log_x + (1.0 - y) * log_1mx)
    if weight is not None:
        losses = np.broadcast_to(_float_array(weight), x.shape) * losses
    return _reduce(losses, reduction)


def bce_with_logits(predictions, targets, reduction="mean", weight=None, pos_weight=None):
    """w [(1 - y) x + (1 + (pw - 1) y) softplus(-x)].

    ``weight`` broadcasts against the input, ``pos_weight`` along the last axis (both as in
    PyTorch). softplus(-x) = -log sigmoid(x) is evaluated without overflow.
    """
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    pw = 1.0 if pos_weight is None else _float_array(pos_weight)
    losses = (1.0 - y) * x + (1.0 + (pw - 1.0) * y) * _softplus(-x)
    if weight is not None:
        losses = np.broadcast_to(_float_array(weight), x.shape) * losses
    return _reduce(losses, reduction)


def focal(
    predictions,
    targets,
    reduction="mean",
    gamma=2.0,
    alpha=None,
    ignore_index=-100,
    from_logits=True,
    eps=1e-10,
):
    """Multi-class (softmax) focal loss.

    p = softmax(x) over the class axis (layouts as for ``cross_entropy``), or
    pc = clip(x, eps, 1) when ``from_logits=False`` (x are probabilities, the seed's form).
    alpha: None (1 for every class), a scalar, or a (C,) vector of per-class factors.

    Class-index targets: loss = -alpha_y (1 - p_y)^gamma log p_y; positions whose target is
    ignore_index give 0; the mean divides by the number of non-ignored positions (alpha is not
    part of the denominator).

    Float (one-hot or probability) targets: loss = -sum_c alpha_c t_c (1 - p_c)^gamma log p_c,
    with only the classes where t_c > 0 taking part when ``from_logits=False``; the mean
    divides by the number of positions (N for the seed's (N, C) layout).
    """
    x = _float_array(predictions)
    axis = _class_axis(x)
    n_classes = x.shape[axis]
    if from_logits:
        logp = _log_softmax(x, axis)
        p = np.exp(logp)
    else:
        p = np.clip(x, eps, 1.0)
        logp = np.log(p)
    logp, p = _classes_last(logp), _classes_last(p)
    positions = logp.shape[:-1]
    a = _class_vector(alpha, n_classes, "alpha")
    t = np.asarray(targets)

    if _is_class_index(t):
        if t.shape != positions:
            raise ValueError(f"class-index targets must have shape {positions}, got {t.shape}")
        losses = np.zeros(positions)
        count = 0
        for pos in np.ndindex(*positions):
            y = int(t[pos])
            if y == ignore_index:
                continue
            if not 0 <= y < n_classes:
                raise ValueError(f"target {y} is not a class index in [0, {n_classes})")
            p_y, logp_y = p[pos][y], logp[pos][y]
            losses[pos] = -a[y] * (1.0 - p_y) ** gamma * logp_y
            count += 1
        return _reduce(losses, reduction, count)

    t = _float_array(t)
    _check_same_shape(x, t)
    t = _classes_last(t)
    coef = a * t * (1.0 - p) ** gamma
    if from_logits:
        losses = -_sum_coef_times_log(coef, logp)
    else:
        losses = -np.where(t > 0, coef * logp, 0.0).sum(axis=-1)
    return _reduce(losses, reduction, int(np.prod(positions)))


def sigmoid_focal(predictions, targets, reduction="mean", alpha=0.25, gamma=2.0):
    """torchvision's sigmoid_focal_loss, with lossjit's default reduction "mean".

        p = sigmoid(x)
        ce = bce_with_logits(x, y)
        p_t = p y + (1 - p)(1 - y)
        loss = ce (1 - p_t)^gamma
        if alpha >= 0: loss *= alpha y + (1 - alpha)(1 - y)

    The mean is over all elements.
    """
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    p = _sigmoid(x)
    ce = (1.0 - y) * x + _softplus(-x)
    p_t = p * y + (1.0 - p) * (1.0 - y)
    losses = ce * (1.0 - p_t) ** gamma
    if alpha >= 0:
        losses = (alpha * y + (1.0 - alpha) * (1.0 - y)) * losses
    return _reduce(losses, reduction)


# ---------------------------------------------------------------------------------------------
# Embeddings
# ---------------------------------------------------------------------------------------------


def contrastive(predictions, targets, reduction="mean", margin=1.0):
    """Pairs (B, 2, D), labels (B,) or (B, 1) with 1 = similar.

    loss_b = y d^2 + (1 - y) max(0, margin - d)^2, d = Euclidean distance of the pair;
    the mean is over B.
    """
    x = _float_array(predictions)
    if x.ndim != 3 or x.shape[1] != 2:
        raise ValueError(f"contrastive expects predictions of shape (B, 2, D), got {x.shape}")
    batch = x.shape[0]
    y = _float_array(targets)
    if y.shape not in ((batch,), (batch, 1)):
        raise ValueError(f"labels must have shape ({batch},) or ({batch}, 1), got {y.shape}")
    y = y.reshape(batch)
    losses = np.zeros(batch)
    for b in range(batch):
        diff = x[b, 0] - x[b, 1]
        d_squared = np.sum(diff * diff)
        d = np.sqrt(d_squared)
        losses[b] = y[b] * d_squared + (1.0 - y[b]) * max(0.0, margin - d) ** 2
    return _reduce(losses, reduction)


def _pairwise_distance(u, v, p, eps):
    """PyTorch's pairwise_distance: the p-norm of (u - v + eps)."""
    return np.linalg.norm(u - v + eps, ord=p)


def triplet(predictions, targets=None, reduction="mean", margin=1.0, p=2.0, eps=1e-6, swap=False):
    """Triplets (B, 3, D) ordered anchor, positive, negative; targets are ignored.

    loss_b = max(0, d(a, p) - d(a, n) + margin), d(u, v) = ||u - v + eps||_p; with ``swap``,
    d(a, n) is replaced by min(d(a, n), d(p, n)). Mean over B.
    """
    x = _float_array(predictions)
    if x.ndim != 3 or x.shape[1] != 3:
        raise ValueError(f"triplet expects predictions of shape (B, 3, D), got {x.shape}")
    losses = np.zeros(x.shape[0])
    for b in range(x.shape[0]):
        anchor, positive, negative = x[b]
        d_pos = _pairwise_distance(anchor, positive, p, eps)
        d_neg = _pairwise_distance(anchor, negative, p, eps)
        if swap:
            d_neg = min(d_neg, _pairwise_distance(positive, negative, p, eps))
        losses[b] = max(0.0, d_pos - d_neg + margin)
    return _reduce(losses, reduction)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

LOSSES = {
    "mse": mse,
    "l1": l1,
    "huber": huber,
    "smooth_l1": smooth_l1,
    "cross_entropy": cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
    "bce_with_logits": bce_with_logits,
    "focal": focal,
    "sigmoid_focal": sigmoid_focal,
    "contrastive": contrastive,
    "triplet": triplet,
}


def oracle(name, predictions, targets=None, reduction="mean", **params):
    """Value of loss ``name`` (float for "mean"/"sum", array for "none"), computed in float64."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    try:
        loss = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known: {sorted(LOSSES)}") from None
    return loss(predictions, targets, reduction=reduction, **params)
