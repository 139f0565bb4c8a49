"""Test oracle: plain NumPy reference implementations of lossjit's losses.

Every function here computes the loss VALUE only (no gradient), in float64, written directly
from the formulas in docs/LOSSES.md with straightforward NumPy (explicit loops where they make the
definition easier to read). Nothing here is optimised or shared with lossjit itself, so it can
serve as an independent oracle in the tests.

Entry point::

    oracle(name, predictions, targets=None, reduction="mean", sample_weight=None, empty="nan",
           **params)

``name`` is one of

- regression: ``mse``, ``l1``, ``huber``, ``smooth_l1``, ``log_cosh``, ``pseudo_huber``,
  ``quantile`` (alias ``pinball``), ``poisson_nll``, ``gaussian_nll``, ``tweedie``,
  ``gamma_nll``;
- classification: ``cross_entropy``, ``nll``, ``binary_cross_entropy``, ``bce_with_logits``,
  ``focal``, ``sigmoid_focal``, ``kl_div``, ``hinge_embedding``, ``multi_margin``,
  ``soft_margin``, ``multilabel_soft_margin``, ``poly1``;
- embeddings and ranking: ``contrastive``, ``triplet``, ``cosine_embedding``,
  ``margin_ranking``;

``params`` use the same names and defaults as lossjit's Python API.

Reductions. Every loss first computes its per-term losses ``l`` (the "terms", whose shape each
function's docstring gives) and each term's share ``c`` of the mean's denominator (1, except
for cross_entropy and nll with class-index targets, where it is the target class's weight, and
for ignored positions, where it is 0).

- ``sample_weight`` ``w`` (None, or an array that broadcasts to the terms' shape; finite and
  >= 0) multiplies every term: the terms become ``w * l`` for every reduction.
- ``reduction="none"`` returns the array of (weighted) terms; ``"sum"`` their sum;
  ``"mean"`` ``sum(w * l) / sum(w * c)``; kl_div also takes ``"batchmean"``,
  ``sum(w * l) / predictions.shape[0]`` (the sum itself for a 0-d input).
- A mean whose denominator is 0 (an empty input, every target ignored, all weights 0) gives
  what ``empty`` says: ``"nan"`` (default) NaN, ``"zero"`` 0.0, ``"error"`` raises
  ValueError.

``"mean"``, ``"sum"`` and ``"batchmean"`` return a Python float; ``"none"`` returns an array.
Bad arguments raise ValueError.
"""

import math

import numpy as np

REDUCTIONS = ("mean", "sum", "none")
EMPTY_MODES = ("nan", "zero", "error")
#: Added to each squared norm in cosine_embedding: PyTorch's EPSILON, 1e-12 as a float32
#: constant (9.99999996e-13), which shows at zero vectors.
COSINE_EPS = float(np.float32(1e-12))


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _float_array(a):
    return np.asarray(a, dtype=np.float64)


def _weights_for_terms(sample_weight, shape):
    """The sample weights broadcast to the terms' shape; finite and >= 0, or ValueError."""
    w = _float_array(sample_weight)
    try:
        w = np.broadcast_to(w, shape)
    except ValueError:
        raise ValueError(
            f"sample_weight of shape {w.shape} does not broadcast to the terms' shape {shape}"
        ) from None
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and >= 0")
    return w


def _divide(total, denominator, empty):
    """total / denominator; a zero denominator gives what ``empty`` says."""
    if denominator == 0:
        if empty == "zero":
            return 0.0
        if empty == "error":
            raise ValueError("empty: the mean has a zero denominator (no terms to average)")
        return math.nan
    return float(np.float64(total) / np.float64(denominator))


def _reduce(losses, reduction, sample_weight=None, empty="nan", shares=None):
    """Apply the sample weights and the reduction to the per-term losses.

    ``shares`` are the terms' shares c of the mean's denominator (1 for every term by
    default), so that the mean is sum(w * l) / sum(w * c).
    """
    if empty not in EMPTY_MODES:
        raise ValueError(f"empty must be one of {EMPTY_MODES}, got {empty!r}")
    losses = _float_array(losses)
    shares = np.ones(losses.shape) if shares is None else _float_array(shares)
    if sample_weight is not None:
        w = _weights_for_terms(sample_weight, losses.shape)
        with np.errstate(invalid="ignore"):
            losses = w * losses
        shares = w * shares
    if reduction == "none":
        return losses
    total = np.float64(losses.sum())
    if reduction == "sum":
        return float(total)
    if reduction == "mean":
        return _divide(total, np.float64(shares.sum()), empty)
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_same_shape(predictions, targets):
    if predictions.shape != targets.shape:
        raise ValueError(
            f"predictions {predictions.shape} and targets {targets.shape} must have the same shape"
        )


def _check_plus_minus_one(labels):
    if not np.all((labels == 1) | (labels == -1)):
        raise ValueError("targets must be 1 or -1")


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


def _class_index(targets, positions, n_classes, ignore_index=None):
    """Class-index targets checked: integer dtype, the positions' shape, each in [0, C) or
    ``ignore_index``."""
    if not _is_class_index(targets):
        raise ValueError(f"targets must be class indices (integers), got dtype {targets.dtype}")
    if targets.shape != positions:
        raise ValueError(f"class-index targets must have shape {positions}, got {targets.shape}")
    for y in targets.reshape(-1).tolist():
        if y != ignore_index and not 0 <= y < n_classes:
            raise ValueError(f"target {y} is not a class index in [0, {n_classes})")
    return targets


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


def _pair_labels(targets, batch, single):
    """Labels of B pairs: shape (B,) or (B, 1); one pair (``single``) takes a 0-d label (or one
    of shape (1,)). Returned flat, as floats."""
    y = _float_array(targets)
    allowed = ((), (1,)) if single else ((batch,), (batch, 1))
    if y.shape not in allowed:
        raise ValueError(f"labels must have shape {' or '.join(map(str, allowed))}, got {y.shape}")
    return y.reshape(batch)


# ---------------------------------------------------------------------------------------------
# Regression (terms: the predictions' shape)
# ---------------------------------------------------------------------------------------------


def mse(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan"):
    """e^2 with e = x - y."""
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    e = x - y
    return _reduce(e * e, reduction, sample_weight, empty)


def l1(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan"):
    """|e| with e = x - y."""
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    return _reduce(np.abs(x - y), reduction, sample_weight, empty)


def huber(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan",
          delta=1.0):
    """0.5 e^2 if |e| < delta, else delta (|e| - 0.5 delta)."""
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    a = np.abs(x - y)
    losses = np.where(a < delta, 0.5 * a * a, delta * (a - 0.5 * delta))
    return _reduce(losses, reduction, sample_weight, empty)


def smooth_l1(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan",
              beta=1.0):
    """0.5 e^2 / beta if |e| < beta, else |e| - 0.5 beta; beta = 0 is the L1 loss."""
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    a = np.abs(x - y)
    if beta == 0:
        return _reduce(a, reduction, sample_weight, empty)
    losses = np.where(a < beta, 0.5 * a * a / beta, a - 0.5 * beta)
    return _reduce(losses, reduction, sample_weight, empty)


def log_cosh(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan"):
    """log(cosh(e)), e = x - y, evaluated as |e| + log1p(exp(-2|e|)) - log 2.

    (cosh(e) = e^|e| (1 + e^(-2|e|)) / 2, so the two forms are equal; this one cannot
    overflow.)
    """
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    a = np.abs(x - y)
    losses = a + np.log1p(np.exp(-2.0 * a)) - math.log(2.0)
    return _reduce(losses, reduction, sample_weight, empty)


def pseudo_huber(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan",
                 delta=1.0):
    """delta^2 (sqrt(1 + (e / delta)^2) - 1), e = x - y."""
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    r = (x - y) / delta
    losses = delta * delta * (np.sqrt(1.0 + r * r) - 1.0)
    return _reduce(losses, reduction, sample_weight, empty)


def quantile(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan",
             quantile=0.5):
    """Pinball loss: max(q e', (q - 1) e') with e' = y - x and 0 < q < 1 (sklearn's
    mean_pinball_loss for reduction "mean")."""
    q = quantile
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    e = y - x
    losses = np.maximum(q * e, (q - 1.0) * e)
    return _reduce(losses, reduction, sample_weight, empty)


def poisson_nll(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan",
                log_input=True, full=False, eps=1e-8):
    """PyTorch's poisson_nll_loss.

        log_input=True:  exp(x) - y x          (x is the log of the rate)
        log_input=False: x - y log(x + eps)    (x is the rate)
        full=True adds the Stirling term y log y - y + 0.5 log(2 pi y) where y > 1 (0 elsewhere).
    """
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if log_input:
            losses = np.exp(x) - y * x
        else:
            losses = x - y * np.log(x + eps)
        if full:
            stirling = y * np.log(y) - y + 0.5 * np.log(2.0 * math.pi * y)
            losses = losses + np.where(y > 1.0, stirling, 0.0)
    return _reduce(losses, reduction, sample_weight, empty)


def tweedie(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan",
            power=1.5):
    """Tweedie deviance with a log link, without its constant (scikit-learn's
    HalfTweedieLoss less y^(2-p) / ((1-p)(2-p))): -y exp((1-p) x)/(1-p) + exp((2-p) x)/(2-p).
    Targets must be >= 0; power in (1, 2)."""
    if not 1.0 < power < 2.0:
        raise ValueError(f"power must be in (1, 2), got {power}")
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    if (y < 0).any():
        raise ValueError("tweedie targets must be >= 0")
    losses = -y * np.exp((1.0 - power) * x) / (1.0 - power) + np.exp((2.0 - power) * x) / (
        2.0 - power)
    return _reduce(losses, reduction, sample_weight, empty)


def gamma_nll(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan"):
    """Gamma deviance with a log link, without its constant (scikit-learn's HalfGammaLoss
    plus log(y) + 1): x + y exp(-x). Targets must be > 0."""
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    if (y <= 0).any():
        raise ValueError("gamma_nll targets must be > 0")
    return _reduce(x + y * np.exp(-x), reduction, sample_weight, empty)


def _gaussian_variance(var, shape):
    """PyTorch's accepted shapes of var, broadcast to the predictions' ``shape``.

    A number; the predictions' shape; that shape without its last axis (unsqueezed at -1); or
    the same number of axes with exactly one axis of size 1 where the predictions' differs.
    """
    if var is None:
        raise ValueError("var is required")
    v = _float_array(var)
    if np.any(v < 0):
        raise ValueError("var must be >= 0")
    if v.ndim == 0:
        return np.full(shape, float(v))
    if v.shape != shape:
        if v.shape == shape[:-1]:
            v = v[..., None]
        elif v.ndim != len(shape) or sum(
                vs for xs, vs in zip(shape, v.shape, strict=True) if xs != vs) != 1:
            raise ValueError(f"var of shape {v.shape} does not fit predictions of shape {shape}")
    try:
        return np.broadcast_to(v, shape)
    except ValueError:
        raise ValueError(
            f"var of shape {v.shape} does not fit predictions of shape {shape}") from None


def gaussian_nll(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan",
                 var=None, full=False, eps=1e-6):
    """PyTorch's gaussian_nll_loss: 0.5 (log v + (x - y)^2 / v), v = max(var, eps).

    ``var`` (required) is a number or an array of one of PyTorch's shapes (see
    ``_gaussian_variance``); negative entries are an error. full=True adds 0.5 log(2 pi).
    The mean is over predictions.size.
    """
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    v = np.maximum(_gaussian_variance(var, x.shape), eps)
    e = x - y
    losses = 0.5 * (np.log(v) + e * e / v)
    if full:
        losses = losses + 0.5 * math.log(2.0 * math.pi)
    return _reduce(losses, reduction, sample_weight, empty)


# ---------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------


def cross_entropy(
    predictions,
    targets,
    reduction="mean",
    *,
    sample_weight=None,
    empty="nan",
    weight=None,
    ignore_index=-100,
    label_smoothing=0.0,
    from_logits=True,
    eps=1e-10,
):
    """Cross-entropy with PyTorch's semantics.

    predictions: logits (or probabilities when ``from_logits=False``) of shape (C,), (N, C) or
    (N, C, d1..dk); classes on axis 1. Terms: the shape without the C axis.

    Class-index targets (integer, the shape without the C axis; 0-d for a (C,) input)::

        q = (1 - eps_ls) onehot(y) + eps_ls / C
        loss = -sum_c q_c w_c log p_c     (0 at positions whose target is ignore_index)
        share c = w[y] (0 at ignored positions): mean = sum(loss) / sum of w[y]

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
        _class_index(t, positions, n_classes, ignore_index)
        losses = np.zeros(positions)
        shares = np.zeros(positions)
        for pos in np.ndindex(*positions):
            y = int(t[pos])
            if y == ignore_index:
                continue
            q = np.full(n_classes, label_smoothing / n_classes)
            q[y] += 1.0 - label_smoothing
            losses[pos] = -_sum_coef_times_log(q * w, logp[pos])
            shares[pos] = w[y]
        return _reduce(losses, reduction, sample_weight, empty, shares)

    t = _float_array(t)
    _check_same_shape(x, t)
    q = (1.0 - label_smoothing) * _classes_last(t) + label_smoothing / n_classes
    losses = -_sum_coef_times_log(q * w, logp)
    return _reduce(losses, reduction, sample_weight, empty)


def nll(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan",
        weight=None, ignore_index=-100):
    """PyTorch's nll_loss: -w[y] x_y on log-probabilities x.

    predictions: (C,), (N, C) or (N, C, d1..dk), classes on axis 1 (as cross_entropy's
    logits); targets: class indices only, the shape without the C axis (the terms' shape).
    Ignored positions give 0 and share 0; others share w[y]: mean = sum(loss) / sum of w[y].
    """
    x = _float_array(predictions)
    axis = _class_axis(x)
    n_classes = x.shape[axis]
    x = _classes_last(x)
    positions = x.shape[:-1]
    w = _class_vector(weight, n_classes, "weight")
    t = _class_index(np.asarray(targets), positions, n_classes, ignore_index)
    losses = np.zeros(positions)
    shares = np.zeros(positions)
    for pos in np.ndindex(*positions):
        y = int(t[pos])
        if y == ignore_index:
            continue
        losses[pos] = -w[y] * x[pos][y]
        shares[pos] = w[y]
    return _reduce(losses, reduction, sample_weight, empty, shares)


def binary_cross_entropy(predictions, targets, reduction="mean", *, sample_weight=None,
                         empty="nan", weight=None):
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
    return _reduce(losses, reduction, sample_weight, empty)


def bce_with_logits(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan",
                    weight=None, pos_weight=None):
    """w [(1 - y) x + (1 + (pw - 1) y) softplus(-x)].

    ``weight`` broadcasts against the input, ``pos_weight`` against the targets (both as in
    PyTorch). softplus(-x) = -log sigmoid(x) is evaluated without overflow.
    """
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    pw = 1.0 if pos_weight is None else _float_array(pos_weight)
    losses = (1.0 - y) * x + (1.0 + (pw - 1.0) * y) * _softplus(-x)
    if weight is not None:
        losses = np.broadcast_to(_float_array(weight), x.shape) * losses
    return _reduce(losses, reduction, sample_weight, empty)


def focal(
    predictions,
    targets,
    reduction="mean",
    *,
    sample_weight=None,
    empty="nan",
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
    ignore_index give 0 and share 0; the mean divides by the number of non-ignored positions
    (alpha is not part of the denominator).

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
        _class_index(t, positions, n_classes, ignore_index)
        losses = np.zeros(positions)
        shares = np.zeros(positions)
        for pos in np.ndindex(*positions):
            y = int(t[pos])
            if y == ignore_index:
                continue
            p_y, logp_y = p[pos][y], logp[pos][y]
            losses[pos] = -a[y] * (1.0 - p_y) ** gamma * logp_y
            shares[pos] = 1.0
        return _reduce(losses, reduction, sample_weight, empty, shares)

    t = _float_array(t)
    _check_same_shape(x, t)
    t = _classes_last(t)
    coef = a * t * (1.0 - p) ** gamma
    if from_logits:
        losses = -_sum_coef_times_log(coef, logp)
    else:
        losses = -np.where(t > 0, coef * logp, 0.0).sum(axis=-1)
    return _reduce(losses, reduction, sample_weight, empty)


def sigmoid_focal(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan",
                  alpha=0.25, gamma=2.0):
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
    return _reduce(losses, reduction, sample_weight, empty)


def kl_div(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan",
           log_target=False):
    """PyTorch's kl_div, element-wise on log-probabilities x (terms: the predictions' shape).

        log_target=False: y (log y - x), exactly 0 where y == 0 (whatever x)
        log_target=True:  exp(y) (y - x)

    reduction "batchmean": the (weighted) sum / predictions.shape[0] (the sum itself for a 0-d
    input); "mean" divides by the number of elements, as PyTorch does.
    """
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        if log_target:
            losses = np.exp(y) * (y - x)
        else:
            losses = np.where(y == 0, 0.0, y * (np.log(y) - x))
    if reduction == "batchmean":
        total = _reduce(losses, "sum", sample_weight, empty)
        return total if x.ndim == 0 else _divide(total, x.shape[0], empty)
    return _reduce(losses, reduction, sample_weight, empty)


def hinge_embedding(predictions, targets, reduction="mean", *, sample_weight=None,
                    empty="nan", margin=1.0):
    """PyTorch's hinge_embedding_loss: x where y = 1, max(0, margin - x) where y = -1.

    Targets have the predictions' shape, with values in {1, -1} (anything else is an error).
    """
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    _check_plus_minus_one(y)
    losses = np.where(y == 1, x, np.maximum(0.0, margin - x))
    return _reduce(losses, reduction, sample_weight, empty)


def multi_margin(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan",
                 p=1, margin=1.0, weight=None):
    """PyTorch's multi_margin_loss. predictions (C,) or (N, C); targets class indices () or
    (N,) (the terms' shape).

        loss = (1/C) sum_{i != y} w[y] max(0, margin - x_y + x_i)^p,   p in {1, 2}

    The mean is over the N rows (the weights are not part of it).
    """
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p}")
    x = _float_array(predictions)
    if x.ndim not in (1, 2):
        raise ValueError(f"multi_margin expects predictions (C,) or (N, C), got {x.shape}")
    rows = x.reshape(-1, x.shape[-1])
    n_classes = x.shape[-1]
    w = _class_vector(weight, n_classes, "weight")
    t = _class_index(np.asarray(targets), x.shape[:-1], n_classes).reshape(-1)
    losses = np.zeros(rows.shape[0])
    for n, row in enumerate(rows):
        y = int(t[n])
        for i in range(n_classes):
            if i != y:
                losses[n] += w[y] * np.maximum(0.0, margin - row[y] + row[i]) ** p
        losses[n] /= n_classes
    return _reduce(losses.reshape(x.shape[:-1]), reduction, sample_weight, empty)


def soft_margin(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan"):
    """PyTorch's soft_margin_loss: log(1 + exp(-y x)) = softplus(-y x), element-wise; y is any
    real (normally +-1)."""
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    return _reduce(_softplus(-y * x), reduction, sample_weight, empty)


def multilabel_soft_margin(predictions, targets, reduction="mean", *, sample_weight=None,
                           empty="nan", weight=None):
    """PyTorch's multilabel_soft_margin_loss. predictions (..., C), targets the same shape
    (0/1 or soft); terms: predictions.shape[:-1].

        loss = -(1/C) sum_c w_c [y_c log sigmoid(x_c) + (1 - y_c) log sigmoid(-x_c)]

    with log sigmoid(x) = -softplus(-x).
    """
    x, y = _float_array(predictions), _float_array(targets)
    _check_same_shape(x, y)
    if x.ndim == 0:
        raise ValueError("multilabel_soft_margin needs a class axis")
    n_classes = x.shape[-1]
    w = _class_vector(weight, n_classes, "weight")
    per_class = y * _softplus(-x) + (1.0 - y) * _softplus(x)
    losses = (w * per_class).sum(axis=-1) / n_classes
    return _reduce(losses, reduction, sample_weight, empty)


def poly1(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan",
          epsilon=1.0, ignore_index=-100):
    """Poly-1 cross-entropy (Leng et al. 2022; optax poly_loss_cross_entropy) on logits laid
    out as cross_entropy's; terms: the shape without the C axis. p = softmax(x).

        index targets:       loss = -log p_y + epsilon (1 - p_y)
                             (0 at ignored positions; the mean divides by the others' count)
        probability targets: loss = -sum_c t_c log p_c + epsilon sum_c t_c (1 - p_c)
    """
    x = _float_array(predictions)
    axis = _class_axis(x)
    n_classes = x.shape[axis]
    logp = _classes_last(_log_softmax(x, axis))
    p = np.exp(logp)
    positions = logp.shape[:-1]
    t = np.asarray(targets)

    if _is_class_index(t):
        _class_index(t, positions, n_classes, ignore_index)
        losses = np.zeros(positions)
        shares = np.zeros(positions)
        for pos in np.ndindex(*positions):
            y = int(t[pos])
            if y == ignore_index:
                continue
            losses[pos] = -logp[pos][y] + epsilon * (1.0 - p[pos][y])
            shares[pos] = 1.0
        return _reduce(losses, reduction, sample_weight, empty, shares)

    t = _float_array(t)
    _check_same_shape(x, t)
    t = _classes_last(t)
    losses = -_sum_coef_times_log(t, logp) + epsilon * (t * (1.0 - p)).sum(axis=-1)
    return _reduce(losses, reduction, sample_weight, empty)


# ---------------------------------------------------------------------------------------------
# Embeddings and ranking (terms: (B,))
# ---------------------------------------------------------------------------------------------


def contrastive(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan",
                margin=1.0):
    """Pairs (B, 2, D), labels (B,) or (B, 1) with 1 = similar.

    loss_b = y d^2 + (1 - y) max(0, margin - d)^2, d = Euclidean distance of the pair;
    the mean is over B.
    """
    x = _float_array(predictions)
    if x.ndim != 3 or x.shape[1] != 2:
        raise ValueError(f"contrastive expects predictions of shape (B, 2, D), got {x.shape}")
    batch = x.shape[0]
    y = _pair_labels(targets, batch, single=False)
    losses = np.zeros(batch)
    for b in range(batch):
        diff = x[b, 0] - x[b, 1]
        d_squared = np.sum(diff * diff)
        d = np.sqrt(d_squared)
        losses[b] = y[b] * d_squared + (1.0 - y[b]) * max(0.0, margin - d) ** 2
    return _reduce(losses, reduction, sample_weight, empty)


def _pairwise_distance(u, v, p, eps):
    """PyTorch's pairwise_distance: the p-norm of (u - v + eps)."""
    return np.linalg.norm(u - v + eps, ord=p)


def triplet(predictions, targets=None, reduction="mean", *, sample_weight=None, empty="nan",
            margin=1.0, p=2.0, eps=1e-6, swap=False):
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
    return _reduce(losses, reduction, sample_weight, empty)


def cosine_embedding(predictions, targets, reduction="mean", *, sample_weight=None,
                     empty="nan", margin=0.0):
    """PyTorch's cosine_embedding_loss. Pairs (B, 2, D) (a (2, D) input is one pair, whose
    terms are 0-d); labels (B,) or (B, 1) in {1, -1}.

        cos = x1.x2 / sqrt((|x1|^2 + 1e-12) (|x2|^2 + 1e-12))   (1e-12 as a float32)
        loss_b = 1 - cos if y = 1;  max(0, cos - margin) if y = -1
    """
    x = _float_array(predictions)
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3 or x.shape[1] != 2:
        raise ValueError(f"cosine_embedding expects predictions (B, 2, D) or (2, D), got "
                         f"{np.shape(predictions)}")
    batch = x.shape[0]
    y = _pair_labels(targets, batch, single)
    _check_plus_minus_one(y)
    losses = np.zeros(batch)
    for b in range(batch):
        x1, x2 = x[b]
        cos = np.sum(x1 * x2) / np.sqrt((np.sum(x1 * x1) + COSINE_EPS)
                                        * (np.sum(x2 * x2) + COSINE_EPS))
        losses[b] = 1.0 - cos if y[b] == 1 else np.maximum(0.0, cos - margin)
    return _reduce(losses.reshape(()) if single else losses, reduction, sample_weight, empty)


def margin_ranking(predictions, targets, reduction="mean", *, sample_weight=None, empty="nan",
                   margin=0.0):
    """PyTorch's margin_ranking_loss. Rank pairs (B, 2) = (x1, x2) (a (2,) input is one pair,
    whose term is 0-d); labels (B,) or (B, 1) in {1, -1}.

        loss_b = max(0, -y (x1 - x2) + margin)
    """
    x = _float_array(predictions)
    single = x.ndim == 1
    if single:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"margin_ranking expects predictions (B, 2) or (2,), got "
                         f"{np.shape(predictions)}")
    batch = x.shape[0]
    y = _pair_labels(targets, batch, single)
    _check_plus_minus_one(y)
    losses = np.maximum(0.0, -y * (x[:, 0] - x[:, 1]) + margin)
    return _reduce(losses.reshape(()) if single else losses, reduction, sample_weight, empty)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

LOSSES = {
    "mse": mse,
    "l1": l1,
    "huber": huber,
    "smooth_l1": smooth_l1,
    "log_cosh": log_cosh,
    "pseudo_huber": pseudo_huber,
    "quantile": quantile,
    "poisson_nll": poisson_nll,
    "gaussian_nll": gaussian_nll,
    "tweedie": tweedie,
    "gamma_nll": gamma_nll,
    "cross_entropy": cross_entropy,
    "nll": nll,
    "binary_cross_entropy": binary_cross_entropy,
    "bce_with_logits": bce_with_logits,
    "focal": focal,
    "sigmoid_focal": sigmoid_focal,
    "kl_div": kl_div,
    "hinge_embedding": hinge_embedding,
    "multi_margin": multi_margin,
    "soft_margin": soft_margin,
    "multilabel_soft_margin": multilabel_soft_margin,
    "poly1": poly1,
    "contrastive": contrastive,
    "triplet": triplet,
    "cosine_embedding": cosine_embedding,
    "margin_ranking": margin_ranking,
}

#: Other names the oracle answers to (LOSSES holds the canonical names only).
ALIASES = {"pinball": "quantile"}


def reductions_of(name):
    """The reductions a loss accepts: mean, sum, none, and batchmean for kl_div."""
    name = ALIASES.get(name, name)
    return REDUCTIONS + ("batchmean",) if name == "kl_div" else REDUCTIONS


def oracle(name, predictions, targets=None, reduction="mean", sample_weight=None, empty="nan",
           **params):
    """Value of loss ``name`` (float for "mean"/"sum"/"batchmean", array for "none"), in
    float64, with ``sample_weight`` and ``empty`` as the module docstring defines them."""
    canonical = ALIASES.get(name, name)
    try:
        loss = LOSSES[canonical]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known: {sorted(LOSSES)}") from None
    if reduction not in reductions_of(canonical):
        raise ValueError(
            f"reduction must be one of {reductions_of(canonical)} for {canonical}, "
            f"got {reduction!r}")
    if empty not in EMPTY_MODES:
        raise ValueError(f"empty must be one of {EMPTY_MODES}, got {empty!r}")
    return loss(predictions, targets, reduction=reduction, sample_weight=sample_weight,
                empty=empty, **params)
