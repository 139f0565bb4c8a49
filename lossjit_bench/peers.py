"""The peers: PyTorch, JAX (with optax) and scikit-learn (and NumPy's reference) as
zero-argument callables that run one value+grad, or raise Skip. Each library is imported on
first use; one that is not installed is skipped with the reason "not installed".

Each peer is written as its users write it: the library's own loss function where it has one
(``torch.nn.functional``, optax's losses, ``sklearn._loss``). Where it has none, or where
several idiomatic forms exist (optax's function, ``take_along_axis(log_softmax)``, a one-hot
dot), every form is built, checked against lossjit and timed briefly, and the fastest form
that agrees is kept (:func:`choose_form`; the run records which, and every form's time).

Every callable a factory returns has ``run.result()``: the ``(value, gradient)`` of its last
call in lossjit's convention (sklearn's "half" losses rescaled), so that :func:`check_peer`
can compare it with lossjit's before it is timed: a peer that disagrees is excluded
(:class:`Disagree`), not timed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from lossjit_bench.references import REFERENCES

if TYPE_CHECKING:
    from lossjit_bench.inputs import Inputs

#: Every peer run_case knows, in table order.
PEERS = ("numpy", "torch", "jax", "sklearn")

#: (relative, absolute) tolerance of a peer's loss value against lossjit's, by dtype.
VALUE_TOLERANCE = {"float32": (1e-3, 1e-6), "float64": (1e-7, 1e-12)}
#: Tolerance of a gradient entry, relative to the largest entry of lossjit's gradient.
GRAD_TOLERANCE = {"float32": 1e-3, "float64": 1e-7}
#: The share of gradient entries allowed outside GRAD_TOLERANCE (ties at a kink, where the
#: conventions of sub-gradients differ, e.g. torch.maximum splitting it at e = 0).
GRAD_OUTLIERS = 1e-3


class Skip(Exception):
    """A peer that cannot run this case; the message says why."""


class Disagree(Skip):
    """A peer whose value or gradient differs from lossjit's: excluded, not timed."""


@functools.cache
def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise Skip("not installed") from None
    torch.set_num_threads(2)
    return torch


@functools.cache
def _jax() -> Any:
    try:
        import jax
    except ImportError:
        raise Skip("not installed") from None
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_enable_x64", True)
    return jax


@functools.cache
def _optax_losses() -> Any:
    """optax.losses, or None where optax is not installed (the jax.numpy forms remain)."""
    _jax()
    try:
        import optax
    except ImportError:
        return None
    return optax.losses


@functools.cache
def _sklearn_loss() -> Any:
    try:
        from sklearn._loss import loss as sk_loss
    except ImportError:
        raise Skip("not installed") from None
    return sk_loss


def _with_result(run: Callable[[], Any], result: Callable[[], tuple[float, Any]],
                 form: str | None = None) -> Callable[[], Any]:
    run.result = result  # type: ignore[attr-defined]
    run.form = form  # type: ignore[attr-defined]
    return run


def disagreement(found: tuple[float, Any], expected: tuple[float, Any],
                 dtype: Any) -> str | None:
    """Why a peer's ``(value, gradient)`` differs from lossjit's ``expected``, or None when it
    agrees (value within VALUE_TOLERANCE; all but GRAD_OUTLIERS of the gradient entries within
    GRAD_TOLERANCE of the largest; a gradient of None is not compared).

    >>> import numpy as np
    >>> disagreement((1.0, None), (1.0 + 1e-9, None), np.float64) is None
    True
    >>> disagreement((2.0, None), (1.0, None), np.float64)
    'value 2 vs lossjit 1'
    """
    name = np.dtype(dtype).name
    rtol, atol = VALUE_TOLERANCE.get(name, VALUE_TOLERANCE["float32"])
    value, grad = float(found[0]), found[1]
    want, want_grad = float(expected[0]), expected[1]
    if not (math.isclose(value, want, rel_tol=rtol, abs_tol=atol)
            or (math.isnan(value) and math.isnan(want))):
        return f"value {value:.7g} vs lossjit {want:.7g}"
    if grad is None or want_grad is None:
        return None
    grad = np.asarray(grad)
    want_grad = np.asarray(want_grad)
    if grad.size != want_grad.size:
        return f"gradient of {grad.size} entries vs lossjit's {want_grad.size}"
    grad = grad.reshape(want_grad.shape).astype(np.float64)
    want_grad = want_grad.astype(np.float64)
    scale = float(np.max(np.abs(want_grad))) if want_grad.size else 0.0
    limit = GRAD_TOLERANCE.get(name, GRAD_TOLERANCE["float32"]) * max(scale, 1e-300)
    off = np.abs(grad - want_grad) > limit
    off &= ~(np.isnan(grad) & np.isnan(want_grad))
    count = int(np.count_nonzero(off))
    if count > GRAD_OUTLIERS * want_grad.size:
        worst = float(np.nanmax(np.abs(grad - want_grad)))
        return (f"gradient: {count} of {want_grad.size} entries differ "
                f"(max |diff| {worst:.3g}, largest entry {scale:.3g})")
    return None


def check_peer(run: Callable[[], Any], expected: tuple[float, Any], dtype: Any) -> str | None:
    """Call ``run`` once and compare its ``run.result()`` with lossjit's ``expected``;
    None when it agrees, else why not (a peer that raises disagrees too)."""
    try:
        run()
        found = run.result()  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - a peer that fails is reported, not timed
        return f"failed: {type(exc).__name__}: {exc}"
    return disagreement(found, expected, dtype)


def choose_form(forms: dict[str, Callable[[], Callable[[], Any]]], inputs: Inputs,
                expected: tuple[float, Any] | None) -> Callable[[], Any]:
    """Build every form, drop those that disagree with ``expected`` (lossjit's value and
    gradient), time the others briefly and return the fastest, its ``form`` the label and
    ``form_times`` every agreeing form's median seconds (``form_disagreed``: why the others
    were dropped). Raises :class:`Disagree` when no form agrees, Skip when none can run."""
    from lossjit_bench.timing import median, time_call

    built: dict[str, Callable[[], Any]] = {}
    dropped: dict[str, str] = {}
    skips: list[str] = []
    for label, make in forms.items():
        try:
            run = make()
        except Skip as exc:
            skips.append(f"{label}: {exc}")
            continue
        why = check_peer(run, expected, inputs.predictions.dtype) if expected is not None else None
        if why is not None:
            dropped[label] = why
            continue
        built[label] = run
    if not built:
        if dropped:
            raise Disagree("; ".join(f"{k}: {v}" for k, v in dropped.items()))
        raise Skip("; ".join(skips) or "no equivalent loss")
    times: dict[str, float] = {}
    if len(built) > 1:
        for label, run in built.items():
            times[label] = median(time_call(run, repeat=3, min_time=0.03, max_time=0.5))
        best = min(times, key=times.__getitem__)
    else:
        best = next(iter(built))
    chosen = built[best]
    chosen.form = best  # type: ignore[attr-defined]
    chosen.form_times = times  # type: ignore[attr-defined]
    chosen.form_disagreed = dropped  # type: ignore[attr-defined]
    chosen.checked = expected is not None  # type: ignore[attr-defined]
    return chosen


def _as_tensor(value: Any) -> Any:
    """A NumPy array option as a tensor (made once, outside the timed region); None stays."""
    return None if value is None else _torch().from_numpy(np.asarray(value))


def _torch_loss(name: str, params: dict[str, Any]) -> Callable[..., Any]:
    torch = _torch()
    F = torch.nn.functional
    if name == "mse":
        return F.mse_loss
    if name == "l1":
        return F.l1_loss
    if name == "huber":
        return lambda x, t: F.huber_loss(x, t, delta=params.get("delta", 1.0))
    if name == "smooth_l1":
        return lambda x, t: F.smooth_l1_loss(x, t, beta=params.get("beta", 1.0))
    if name == "binary_cross_entropy":
        return F.binary_cross_entropy
    if name == "bce_with_logits":
        return F.binary_cross_entropy_with_logits
    if name == "sigmoid_focal":  # torchvision.ops.sigmoid_focal_loss's code, mean reduction
        alpha, gamma = params.get("alpha", 0.25), params.get("gamma", 2.0)

        def sigmoid_focal(x, t):
            prob = torch.sigmoid(x)
            ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
            p_t = prob * t + (1 - prob) * (1 - t)
            loss = ce * ((1 - p_t) ** gamma)
            if alpha >= 0:
                loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
            return loss.mean()
        return sigmoid_focal
    if name == "cross_entropy":
        return F.cross_entropy
    if name == "focal":
        gamma = params.get("gamma", 2.0)
        if params.get("alpha") is not None:
            raise Skip("options differ")

        def focal(x, y):
            logp = F.log_softmax(x, dim=1).gather(1, y[:, None]).squeeze(1)
            return (-((1 - logp.exp()) ** gamma) * logp).mean()
        return focal
    if name == "contrastive":
        margin = params.get("margin", 1.0)

        def contrastive(x, y):
            d2 = ((x[:, 0] - x[:, 1]) ** 2).sum(dim=1)
            gap = torch.clamp(margin - d2.sqrt(), min=0)
            return (y * d2 + (1 - y) * gap * gap).mean()
        return contrastive
    if name == "triplet":
        margin, eps = params.get("margin", 1.0), params.get("eps", 1e-6)
        norm, swap = params.get("p", 2.0), params.get("swap", False)
        return lambda x: F.triplet_margin_loss(x[:, 0], x[:, 1], x[:, 2], margin=margin,
                                               p=norm, eps=eps, swap=swap)
    if name == "log_cosh":  # optax's form; torch.log(torch.cosh(e)) overflows
        log2 = math.log(2.0)

        def log_cosh(x, t):
            e = x - t
            return (torch.logaddexp(e, -e) - log2).mean()
        return log_cosh
    if name == "pseudo_huber":
        delta = params.get("delta", 1.0)
        return lambda x, t: (delta * delta * (torch.sqrt(1 + ((x - t) / delta) ** 2) - 1)).mean()
    if name == "quantile":  # torch.maximum splits the gradient at the tie: 0.5 - q
        q = params.get("quantile", 0.5)

        def quantile(x, t):
            e = t - x
            return torch.maximum(q * e, (q - 1) * e).mean()
        return quantile
    if name == "poisson_nll":
        options = {k: params[k] for k in ("log_input", "full", "eps") if k in params}
        return lambda x, t: F.poisson_nll_loss(x, t, **options)
    if name == "gaussian_nll":
        var = params.get("var")
        var = float(var) if np.ndim(var) == 0 else torch.from_numpy(np.asarray(var))
        options = {k: params[k] for k in ("full", "eps") if k in params}
        return lambda x, t: F.gaussian_nll_loss(x, t, var, **options)
    if name == "nll":
        options = {"weight": _as_tensor(params.get("weight")),
                   "ignore_index": params.get("ignore_index", -100)}
        return lambda x, y: F.nll_loss(x, y, **options)
    if name == "kl_div":  # "sum" / numel: "mean" warns on every call
        log_target = params.get("log_target", False)
        return lambda x, t: F.kl_div(x, t, reduction="sum", log_target=log_target) / x.numel()
    if name == "hinge_embedding":
        margin = params.get("margin", 1.0)
        return lambda x, t: F.hinge_embedding_loss(x, t, margin=margin)
    if name == "multi_margin":
        options = {"p": params.get("p", 1), "margin": params.get("margin", 1.0),
                   "weight": _as_tensor(params.get("weight"))}
        return lambda x, y: F.multi_margin_loss(x, y, **options)
    if name == "soft_margin":
        return F.soft_margin_loss
    if name == "multilabel_soft_margin":
        weight = _as_tensor(params.get("weight"))
        return lambda x, t: F.multilabel_soft_margin_loss(x, t, weight=weight)
    if name == "poly1":  # optax.poly_loss_cross_entropy's form, with class indices
        epsilon = params.get("epsilon", 1.0)
        ignore_index = params.get("ignore_index", -100)

        def poly1(x, y):
            ce = F.cross_entropy(x, y, reduction="none", ignore_index=ignore_index)
            kept = y != ignore_index
            return ((ce + epsilon * -torch.expm1(-ce)) * kept).sum() / kept.sum()
        return poly1
    if name == "cosine_embedding":
        margin = params.get("margin", 0.0)
        return lambda x, y: F.cosine_embedding_loss(x[:, 0], x[:, 1], y, margin=margin)
    if name == "margin_ranking":
        margin = params.get("margin", 0.0)
        return lambda x, y: F.margin_ranking_loss(x[:, 0], x[:, 1], y, margin=margin)
    raise Skip("no equivalent loss")


def _torch_forms(name: str, params: dict[str, Any]) -> dict[str, Callable[..., Any]]:
    """The idiomatic torch forms of a loss: ``torch.nn.functional``'s where it has the loss,
    else the compositions users write (more than one where they differ in speed)."""
    torch = _torch()
    F = torch.nn.functional
    forms = {"torch": _torch_loss(name, params)}
    if name == "focal" and params.get("alpha") is None:
        gamma = params.get("gamma", 2.0)

        def focal_ce(x, y):  # the common form: p_t = exp(-ce)
            ce = F.cross_entropy(x, y, reduction="none")
            return ((1 - torch.exp(-ce)) ** gamma * ce).mean()
        forms["cross_entropy(none) + exp(-ce)"] = focal_ce
    if name == "log_cosh":
        log2 = math.log(2.0)

        def log_cosh_softplus(x, t):
            e = x - t
            return (e + F.softplus(-2 * e) - log2).mean()
        forms["e + softplus(-2e)"] = log_cosh_softplus
    if name == "quantile":
        q = params.get("quantile", 0.5)

        def quantile_where(x, t):
            e = t - x
            return torch.where(e >= 0, q * e, (q - 1) * e).mean()
        forms["where"] = quantile_where
    return forms


def torch_peer(inputs: Inputs, expected: tuple[float, Any] | None = None) -> Callable[[], Any]:
    """loss + backward with PyTorch autograd (2 threads); ``.grad`` reset to None each call.
    With ``expected`` (lossjit's value and gradient), the forms that disagree are dropped and
    the fastest of the others is kept."""
    torch = _torch()
    x = torch.from_numpy(inputs.predictions).requires_grad_()
    args: tuple[Any, ...] = (x,)
    if inputs.targets is not None:
        t = torch.from_numpy(inputs.targets)
        if inputs.loss == "contrastive":
            t = t.to(x.dtype)
        args = (x, t)

    def make(fn: Callable[..., Any]) -> Callable[[], Callable[[], Any]]:
        def build() -> Callable[[], Any]:
            last: list[Any] = [None]

            def run() -> Any:
                x.grad = None
                loss = fn(*args)
                loss.backward()
                last[0] = loss
                return loss

            def result() -> tuple[float, Any]:
                return float(last[0].detach()), x.grad.numpy().copy()
            return _with_result(run, result)
        return build

    forms = {label: make(fn) for label, fn in _torch_forms(inputs.loss, inputs.params).items()}
    if len(forms) == 1 and expected is None:
        return next(iter(forms.values()))()
    return choose_form(forms, inputs, expected)


def _jax_forms(name: str, params: dict[str, Any]) -> dict[str, Callable[..., Any]]:
    """The idiomatic JAX forms of a loss, optax's function first where optax has the loss
    (and is installed), then the ``jax.numpy`` forms users write; :func:`jax_peer` keeps the
    fastest that agrees with lossjit."""
    jax = _jax()
    jnp = jax.numpy
    ol = _optax_losses()
    forms: dict[str, Callable[..., Any]] = {}

    def add(label: str, fn: Callable[..., Any], needs_optax: bool = False) -> None:
        if not needs_optax or ol is not None:
            forms[label] = fn

    def one_hot(y, x):
        return jax.nn.one_hot(y, x.shape[1], dtype=x.dtype)

    if name == "mse":
        add("optax.squared_error", lambda x, t: jnp.mean(ol.squared_error(x, t)), True)
        add("jnp", lambda x, t: jnp.mean((x - t) ** 2))
    elif name == "l1":
        add("jnp", lambda x, t: jnp.mean(jnp.abs(x - t)))
    elif name in ("huber", "smooth_l1"):
        delta = params.get("delta", params.get("beta", 1.0))
        if delta <= 0:
            raise Skip("delta/beta = 0")
        divide = delta if name == "smooth_l1" else 1.0
        add("optax.huber_loss",
            lambda x, t: jnp.mean(ol.huber_loss(x, t, delta=delta)) / divide, True)

        def huber(x, t):
            e = jnp.abs(x - t)
            return jnp.mean(jnp.where(e < delta, 0.5 * e * e, delta * (e - 0.5 * delta))) / divide
        add("jnp.where", huber)
    elif name == "binary_cross_entropy":
        add("jnp (logs clamped at -100)",
            lambda x, t: -jnp.mean(t * jnp.maximum(jnp.log(x), -100.0)
                                   + (1 - t) * jnp.maximum(jnp.log1p(-x), -100.0)))
    elif name in ("bce_with_logits", "multilabel_soft_margin"):
        if params.get("weight") is not None or params.get("pos_weight", 1.0) != 1.0:
            raise Skip("options differ")
        add("optax.sigmoid_binary_cross_entropy",
            lambda x, t: jnp.mean(ol.sigmoid_binary_cross_entropy(x, t)), True)
        add("jnp log_sigmoid", lambda x, t: jnp.mean(-t * jax.nn.log_sigmoid(x)
                                                     - (1 - t) * jax.nn.log_sigmoid(-x)))
        add("jnp softplus(x) - t x", lambda x, t: jnp.mean(jax.nn.softplus(x) - t * x))
    elif name == "sigmoid_focal":
        alpha, gamma = params.get("alpha", 0.25), params.get("gamma", 2.0)
        add("optax.sigmoid_focal_loss",
            lambda x, t: jnp.mean(ol.sigmoid_focal_loss(
                x, t, alpha=alpha if alpha >= 0 else None, gamma=gamma)), True)

        def sigmoid_focal(x, t):
            prob = jax.nn.sigmoid(x)
            ce = -t * jax.nn.log_sigmoid(x) - (1 - t) * jax.nn.log_sigmoid(-x)
            p_t = prob * t + (1 - prob) * (1 - t)
            loss = ce * (1 - p_t) ** gamma
            if alpha >= 0:
                loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
            return jnp.mean(loss)
        add("jnp (torchvision's code)", sigmoid_focal)
    elif name == "cross_entropy":
        if any(params.get(k) not in (None, d) for k, d in (("weight", None),
                                                           ("label_smoothing", 0.0),
                                                           ("ignore_index", -100))):
            raise Skip("options differ")
        add("optax.softmax_cross_entropy_with_integer_labels",
            lambda x, y: jnp.mean(ol.softmax_cross_entropy_with_integer_labels(x, y)), True)
        add("optax.softmax_cross_entropy(one_hot)",
            lambda x, y: jnp.mean(ol.softmax_cross_entropy(x, one_hot(y, x))), True)
        add("jnp take_along_axis(log_softmax)",
            lambda x, y: -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(x, axis=1),
                                                       y[:, None], axis=1)))
        add("jnp logsumexp - x[y]",
            lambda x, y: jnp.mean(jax.nn.logsumexp(x, axis=1)
                                  - jnp.take_along_axis(x, y[:, None], axis=1)[:, 0]))
    elif name == "focal":
        gamma = params.get("gamma", 2.0)
        if params.get("alpha") is not None:
            raise Skip("options differ")

        def focal_gather(x, y):
            logp = jnp.take_along_axis(jax.nn.log_softmax(x, axis=1), y[:, None], axis=1)
            return jnp.mean(-((1 - jnp.exp(logp)) ** gamma) * logp)

        def focal_one_hot(x, y):
            logp = jnp.sum(jax.nn.log_softmax(x, axis=1) * one_hot(y, x), axis=1)
            return jnp.mean(-((1 - jnp.exp(logp)) ** gamma) * logp)

        def focal_optax(x, y):  # p_t = exp(-ce), with optax's cross-entropy
            ce = ol.softmax_cross_entropy_with_integer_labels(x, y)
            return jnp.mean((1 - jnp.exp(-ce)) ** gamma * ce)
        add("optax ce + exp(-ce)", focal_optax, True)
        add("jnp take_along_axis(log_softmax)", focal_gather)
        add("jnp one-hot dot", focal_one_hot)
    elif name == "contrastive":
        margin = params.get("margin", 1.0)

        def contrastive(x, y):
            d2 = jnp.sum((x[:, 0] - x[:, 1]) ** 2, axis=1)
            gap = jnp.maximum(margin - jnp.sqrt(d2), 0.0)
            return jnp.mean(y * d2 + (1 - y) * gap * gap)
        add("jnp", contrastive)
    elif name == "triplet":
        margin, eps = params.get("margin", 1.0), params.get("eps", 1e-6)
        if params.get("p", 2.0) != 2.0 or params.get("swap", False):
            raise Skip("only p=2 without swap")

        def triplet(x):
            d_ap = jnp.sqrt(jnp.sum((x[:, 0] - x[:, 1] + eps) ** 2, axis=1))
            d_an = jnp.sqrt(jnp.sum((x[:, 0] - x[:, 2] + eps) ** 2, axis=1))
            return jnp.mean(jnp.maximum(d_ap - d_an + margin, 0.0))
        add("jnp", triplet)  # first: optax's differs from torch's by ~1e-8 (relative)
        add("optax.triplet_margin_loss",
            lambda x: jnp.mean(ol.triplet_margin_loss(x[:, 0], x[:, 1], x[:, 2],
                                                      margin=margin, eps=eps)), True)
    elif name == "log_cosh":
        add("optax.log_cosh", lambda x, t: jnp.mean(ol.log_cosh(x, t)), True)
        add("jnp logaddexp", lambda x, t: jnp.mean(jnp.logaddexp(x - t, t - x) - jnp.log(2.0)))
    elif name == "pseudo_huber":
        delta = params.get("delta", 1.0)
        add("jnp", lambda x, t: jnp.mean(delta * delta
                                         * (jnp.sqrt(1 + ((x - t) / delta) ** 2) - 1)))
    elif name == "quantile":
        q = params.get("quantile", 0.5)
        add("jnp maximum", lambda x, t: jnp.mean(jnp.maximum(q * (t - x), (q - 1) * (t - x))))
        add("jnp where", lambda x, t: jnp.mean(jnp.where(t >= x, q * (t - x), (q - 1) * (t - x))))
    elif name == "poisson_nll":
        if params.get("log_input", True) is False or params.get("full", False):
            raise Skip("only log_input=True without full")
        add("jnp", lambda x, t: jnp.mean(jnp.exp(x) - t * x))
    elif name == "gaussian_nll":
        eps = params.get("eps", 1e-6)
        if params.get("full", False):
            raise Skip("only full=False")

        def gaussian_nll(x, t, var):  # var: a float or broadcastable, as in PyTorch
            if jnp.ndim(var) == x.ndim - 1 and jnp.ndim(var):
                var = var[..., None]
            v = jnp.maximum(var, eps)
            return jnp.mean(0.5 * (jnp.log(v) + (x - t) ** 2 / v))
        add("jnp", gaussian_nll)
    elif name == "nll":
        if params.get("weight") is not None:
            raise Skip("options differ")
        add("jnp take_along_axis",
            lambda x, y: -jnp.mean(jnp.take_along_axis(x, y[:, None], axis=1)))
        add("jnp one-hot dot", lambda x, y: -jnp.mean(jnp.sum(x * one_hot(y, x), axis=1)))
    elif name == "kl_div":
        if params.get("log_target", False):
            add("optax.kl_divergence_with_log_targets",
                lambda x, t: jnp.sum(ol.kl_divergence_with_log_targets(x, t)) / x.size, True)
            add("jnp", lambda x, t: jnp.mean(jnp.exp(t) * (t - x)))
        else:
            add("optax.kl_divergence",
                lambda x, t: jnp.sum(ol.kl_divergence(x, t)) / x.size, True)
            add("jnp xlogy", lambda x, t: jnp.mean(jax.scipy.special.xlogy(t, t) - t * x))
            add("jnp where", lambda x, t: jnp.mean(t * (jnp.where(t == 0, 0.0, jnp.log(t)) - x)))
    elif name == "hinge_embedding":
        margin = params.get("margin", 1.0)
        add("jnp", lambda x, t: jnp.mean(jnp.where(t == 1, x, jnp.maximum(margin - x, 0.0))))
    elif name == "multi_margin":
        power, margin = params.get("p", 1), params.get("margin", 1.0)
        if params.get("weight") is not None:
            raise Skip("options differ")

        def multi_margin(x, y):
            z = margin - jnp.take_along_axis(x, y[:, None], axis=1) + x
            h = jnp.where(jnp.arange(x.shape[1]) == y[:, None], 0.0, jnp.maximum(z, 0.0))
            return jnp.mean(jnp.sum(h if power == 1 else h * h, axis=1)) / x.shape[1]
        add("jnp", multi_margin)
    elif name == "soft_margin":
        add("jnp softplus", lambda x, t: jnp.mean(jax.nn.softplus(-t * x)))
    elif name == "poly1":
        epsilon = params.get("epsilon", 1.0)
        if params.get("ignore_index", -100) != -100:
            raise Skip("options differ")
        add("optax.poly_loss_cross_entropy(one_hot)",
            lambda x, y: jnp.mean(ol.poly_loss_cross_entropy(x, one_hot(y, x),
                                                             epsilon=epsilon)), True)

        def poly1(x, y):
            logp = jnp.take_along_axis(jax.nn.log_softmax(x, axis=1), y[:, None], axis=1)
            return jnp.mean(-logp + epsilon * (1 - jnp.exp(logp)))
        add("jnp take_along_axis(log_softmax)", poly1)
    elif name == "cosine_embedding":
        margin = params.get("margin", 0.0)

        def cosine_embedding(x, y):
            a, b = x[:, 0], x[:, 1]
            cos = jnp.sum(a * b, axis=1) / jnp.sqrt((jnp.sum(a * a, axis=1) + 1e-12)
                                                    * (jnp.sum(b * b, axis=1) + 1e-12))
            return jnp.mean(jnp.where(y == 1, 1 - cos, jnp.maximum(cos - margin, 0.0)))
        add("jnp", cosine_embedding)
    elif name == "margin_ranking":
        margin = params.get("margin", 0.0)
        add("jnp", lambda x, y: jnp.mean(jnp.maximum(-y * (x[:, 0] - x[:, 1]) + margin, 0.0)))
    if not forms:
        raise Skip("no equivalent loss")
    return forms


def _jax_loss(name: str, params: dict[str, Any]) -> Callable[..., Any]:
    """The first (preferred) JAX form of a loss."""
    return next(iter(_jax_forms(name, params).values()))


def jax_peer(inputs: Inputs, expected: tuple[float, Any] | None = None) -> Callable[[], Any]:
    """``jax.jit(jax.value_and_grad(f))`` on the CPU, blocked until ready. With ``expected``
    (lossjit's value and gradient) every form of :func:`_jax_forms` is checked and timed and
    the fastest that agrees is kept; without, the first (optax's where it has the loss)."""
    jax = _jax()
    args: tuple[Any, ...] = (jax.device_put(inputs.predictions),)
    if inputs.targets is not None:
        t = inputs.targets
        if inputs.loss == "contrastive":
            t = t.astype(inputs.predictions.dtype)
        args += (jax.device_put(t),)
    if inputs.loss == "gaussian_nll":  # var is an argument, not a constant folded into f
        var = inputs.params.get("var")
        args += (var if np.ndim(var) == 0 else jax.device_put(var),)

    def make(f: Callable[..., Any], label: str) -> Callable[[], Callable[[], Any]]:
        def build() -> Callable[[], Any]:
            fn = jax.jit(jax.value_and_grad(f))
            last: list[Any] = [None]

            def run() -> Any:
                last[0] = jax.block_until_ready(fn(*args))
                return last[0]

            def result() -> tuple[float, Any]:
                value, grad = last[0]
                return float(value), np.asarray(grad)
            return _with_result(run, result, label)
        return build

    forms = {label: make(f, label)
             for label, f in _jax_forms(inputs.loss, inputs.params).items()}
    if expected is None:
        return next(iter(forms.values()))()
    return choose_form(forms, inputs, expected)


#: lossjit loss -> (sklearn._loss class name, constructor arguments from the loss options).
SKLEARN_LOSSES: dict[str, tuple[str, Callable[[dict[str, Any], tuple[int, ...]], dict]]] = {
    "mse": ("HalfSquaredError", lambda params, shape: {}),
    "l1": ("AbsoluteError", lambda params, shape: {}),
    "huber": ("HuberLoss", lambda params, shape: {"delta": params.get("delta", 1.0)}),
    "smooth_l1": ("HuberLoss", lambda params, shape: {"delta": params.get("beta", 1.0)}),
    "bce_with_logits": ("HalfBinomialLoss", lambda params, shape: {}),
    "cross_entropy": ("HalfMultinomialLoss", lambda params, shape: {"n_classes": shape[1]}),
    "quantile": ("PinballLoss", lambda params, shape: {"quantile": params.get("quantile", 0.5)}),
    "poisson_nll": ("HalfPoissonLoss", lambda params, shape: {}),
    "tweedie": ("HalfTweedieLoss", lambda params, shape: {"power": params.get("power", 1.5)}),
    "gamma_nll": ("HalfGammaLoss", lambda params, shape: {}),
}


#: What sklearn's per-sample losses (and gradients) are multiplied by, besides 1 / rows, to be
#: lossjit's: HalfSquaredError is e^2 / 2 (gradient e).
SKLEARN_SCALE = {"mse": 2.0}


def sklearn_peer(inputs: Inputs, expected: tuple[float, Any] | None = None
                 ) -> Callable[[], Any]:
    """``sklearn._loss`` ``loss_gradient`` into preallocated buffers, n_threads=2, + sum.
    Its ``result()`` rescales sklearn's convention to lossjit's (the mean over rows; twice
    ``HalfSquaredError``), so that its value and gradient can be checked."""
    if inputs.loss not in SKLEARN_LOSSES or inputs.predictions.ndim > 2:
        raise Skip("no equivalent loss")
    if inputs.params:
        raise Skip("options differ")
    sk_loss = _sklearn_loss()
    cls, kwargs = SKLEARN_LOSSES[inputs.loss]
    loss = getattr(sk_loss, cls)(**kwargs(inputs.params, inputs.shape))
    raw = inputs.predictions
    y = np.ascontiguousarray(inputs.targets, dtype=raw.dtype)
    loss_out = np.empty(raw.shape[0], dtype=raw.dtype)
    gradient_out = np.empty_like(raw)
    scale = SKLEARN_SCALE.get(inputs.loss, 1.0) / raw.shape[0]
    last = [0.0]

    def run() -> float:
        loss.loss_gradient(y, raw, loss_out=loss_out, gradient_out=gradient_out, n_threads=2)
        last[0] = float(loss_out.sum())
        return last[0]

    return _with_result(run, lambda: (last[0] * scale, gradient_out * scale), cls)


def numpy_peer(inputs: Inputs, *, grad: bool = True) -> Callable[[], Any]:
    ref = REFERENCES[inputs.loss]
    p, t, params = inputs.predictions, inputs.targets, inputs.params
    last: list[Any] = [(math.nan, None)]

    def run() -> Any:
        last[0] = ref(p, t, grad=grad, **params)
        return last[0]

    return _with_result(run, lambda: (float(last[0][0]), last[0][1]), "reference")


PEER_FACTORIES = {"torch": torch_peer, "jax": jax_peer, "sklearn": sklearn_peer}


def peer_available(peer: str) -> str | None:
    """None when ``peer`` can be imported, else why not."""
    loader = {"torch": _torch, "jax": _jax, "sklearn": _sklearn_loss}.get(peer)
    if loader is None:
        return None
    try:
        loader()
    except Skip as exc:
        return str(exc)
    return None
