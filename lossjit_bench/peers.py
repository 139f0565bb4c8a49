"""The peers: PyTorch, JAX and scikit-learn (and NumPy's reference) as zero-argument
callables that run one value+grad, or raise Skip. Each library is imported on first
use; one that is not installed is skipped with the reason "not installed"."""

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


class Skip(Exception):
    """A peer that cannot run this case; the message says why."""


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
def _sklearn_loss() -> Any:
    try:
        from sklearn._loss import loss as sk_loss
    except ImportError:
        raise Skip("not installed") from None
    return sk_loss


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


def torch_peer(inputs: Inputs) -> Callable[[], Any]:
    """loss + backward with PyTorch autograd (2 threads); ``.grad`` reset to None each call."""
    torch = _torch()
    fn = _torch_loss(inputs.loss, inputs.params)
    x = torch.from_numpy(inputs.predictions).requires_grad_()
    args: tuple[Any, ...] = (x,)
    if inputs.targets is not None:
        t = torch.from_numpy(inputs.targets)
        if inputs.loss == "contrastive":
            t = t.to(x.dtype)
        args = (x, t)

    def run() -> Any:
        x.grad = None
        loss = fn(*args)
        loss.backward()
        return loss
    return run


def _jax_loss(name: str, params: dict[str, Any]) -> Callable[..., Any]:
    jax = _jax()
    jnp = jax.numpy
    if name == "mse":
        return lambda x, t: jnp.mean((x - t) ** 2)
    if name == "l1":
        return lambda x, t: jnp.mean(jnp.abs(x - t))
    if name in ("huber", "smooth_l1"):
        delta = params.get("delta", params.get("beta", 1.0))
        divide = delta if name == "smooth_l1" else 1.0

        def huber(x, t):
            e = jnp.abs(x - t)
            return jnp.mean(jnp.where(e < delta, 0.5 * e * e, delta * (e - 0.5 * delta))) / divide
        return huber
    if name == "binary_cross_entropy":
        return lambda x, t: -jnp.mean(t * jnp.maximum(jnp.log(x), -100.0)
                                      + (1 - t) * jnp.maximum(jnp.log1p(-x), -100.0))
    if name == "bce_with_logits":  # optax.sigmoid_binary_cross_entropy's form
        return lambda x, t: jnp.mean(-t * jax.nn.log_sigmoid(x) - (1 - t) * jax.nn.log_sigmoid(-x))
    if name == "sigmoid_focal":  # optax.sigmoid_focal_loss's form
        alpha, gamma = params.get("alpha", 0.25), params.get("gamma", 2.0)

        def sigmoid_focal(x, t):
            prob = jax.nn.sigmoid(x)
            ce = -t * jax.nn.log_sigmoid(x) - (1 - t) * jax.nn.log_sigmoid(-x)
            p_t = prob * t + (1 - prob) * (1 - t)
            loss = ce * (1 - p_t) ** gamma
            if alpha >= 0:
                loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
            return jnp.mean(loss)
        return sigmoid_focal
    if name == "cross_entropy":  # optax.softmax_cross_entropy_with_integer_labels's form
        def cross_entropy(x, y):
            logp = jax.nn.log_softmax(x, axis=1)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
        return cross_entropy
    if name == "focal":
        gamma = params.get("gamma", 2.0)
        if params.get("alpha") is not None:
            raise Skip("options differ")

        def focal(x, y):
            logp = jnp.take_along_axis(jax.nn.log_softmax(x, axis=1), y[:, None], axis=1)
            return jnp.mean(-((1 - jnp.exp(logp)) ** gamma) * logp)
        return focal
    if name == "contrastive":
        margin = params.get("margin", 1.0)

        def contrastive(x, y):
            d2 = jnp.sum((x[:, 0] - x[:, 1]) ** 2, axis=1)
            gap = jnp.maximum(margin - jnp.sqrt(d2), 0.0)
            return jnp.mean(y * d2 + (1 - y) * gap * gap)
        return contrastive
    if name == "triplet":
        margin, eps = params.get("margin", 1.0), params.get("eps", 1e-6)

        def triplet(x):
            d_ap = jnp.sqrt(jnp.sum((x[:, 0] - x[:, 1] + eps) ** 2, axis=1))
            d_an = jnp.sqrt(jnp.sum((x[:, 0] - x[:, 2] + eps) ** 2, axis=1))
            return jnp.mean(jnp.maximum(d_ap - d_an + margin, 0.0))
        if params.get("p", 2.0) != 2.0 or params.get("swap", False):
            raise Skip("only p=2 without swap")
        return triplet
    if name == "log_cosh":  # optax.log_cosh
        return lambda x, t: jnp.mean(jnp.logaddexp(x - t, t - x) - jnp.log(2.0))
    if name == "pseudo_huber":
        delta = params.get("delta", 1.0)
        return lambda x, t: jnp.mean(delta * delta * (jnp.sqrt(1 + ((x - t) / delta) ** 2) - 1))
    if name == "quantile":
        q = params.get("quantile", 0.5)
        return lambda x, t: jnp.mean(jnp.maximum(q * (t - x), (q - 1) * (t - x)))
    if name == "poisson_nll":
        if params.get("log_input", True) is False or params.get("full", False):
            raise Skip("only log_input=True without full")
        return lambda x, t: jnp.mean(jnp.exp(x) - t * x)
    if name == "gaussian_nll":
        eps = params.get("eps", 1e-6)
        if params.get("full", False):
            raise Skip("only full=False")

        def gaussian_nll(x, t, var):  # var: a float or broadcastable, as in PyTorch
            if jnp.ndim(var) == x.ndim - 1 and jnp.ndim(var):
                var = var[..., None]
            v = jnp.maximum(var, eps)
            return jnp.mean(0.5 * (jnp.log(v) + (x - t) ** 2 / v))
        return gaussian_nll
    if name == "nll":
        if params.get("weight") is not None:
            raise Skip("options differ")
        return lambda x, y: -jnp.mean(jnp.take_along_axis(x, y[:, None], axis=1))
    if name == "kl_div":  # optax.kl_divergence_with_log_targets / kl_divergence, per element
        if params.get("log_target", False):
            return lambda x, t: jnp.mean(jnp.exp(t) * (t - x))
        return lambda x, t: jnp.mean(t * (jnp.where(t == 0, 0.0, jnp.log(t)) - x))
    if name == "hinge_embedding":
        margin = params.get("margin", 1.0)
        return lambda x, t: jnp.mean(jnp.where(t == 1, x, jnp.maximum(margin - x, 0.0)))
    if name == "multi_margin":
        power, margin = params.get("p", 1), params.get("margin", 1.0)
        if params.get("weight") is not None:
            raise Skip("options differ")

        def multi_margin(x, y):
            z = margin - jnp.take_along_axis(x, y[:, None], axis=1) + x
            h = jnp.where(jnp.arange(x.shape[1]) == y[:, None], 0.0, jnp.maximum(z, 0.0))
            return jnp.mean(jnp.sum(h if power == 1 else h * h, axis=1)) / x.shape[1]
        return multi_margin
    if name == "soft_margin":
        return lambda x, t: jnp.mean(jax.nn.softplus(-t * x))
    if name == "multilabel_soft_margin":
        if params.get("weight") is not None:
            raise Skip("options differ")
        return lambda x, t: jnp.mean(-t * jax.nn.log_sigmoid(x) - (1 - t) * jax.nn.log_sigmoid(-x))
    if name == "poly1":  # optax.poly_loss_cross_entropy's form, with class indices
        epsilon = params.get("epsilon", 1.0)

        def poly1(x, y):
            logp = jnp.take_along_axis(jax.nn.log_softmax(x, axis=1), y[:, None], axis=1)
            return jnp.mean(-logp + epsilon * (1 - jnp.exp(logp)))
        return poly1
    if name == "cosine_embedding":
        margin = params.get("margin", 0.0)

        def cosine_embedding(x, y):
            a, b = x[:, 0], x[:, 1]
            cos = jnp.sum(a * b, axis=1) / jnp.sqrt((jnp.sum(a * a, axis=1) + 1e-12)
                                                    * (jnp.sum(b * b, axis=1) + 1e-12))
            return jnp.mean(jnp.where(y == 1, 1 - cos, jnp.maximum(cos - margin, 0.0)))
        return cosine_embedding
    if name == "margin_ranking":
        margin = params.get("margin", 0.0)
        return lambda x, y: jnp.mean(jnp.maximum(-y * (x[:, 0] - x[:, 1]) + margin, 0.0))
    raise Skip("no equivalent loss")


def jax_peer(inputs: Inputs) -> Callable[[], Any]:
    """``jax.jit(jax.value_and_grad(f))`` on the CPU, blocked until ready."""
    jax = _jax()
    fn = jax.jit(jax.value_and_grad(_jax_loss(inputs.loss, inputs.params)))
    args: tuple[Any, ...] = (jax.device_put(inputs.predictions),)
    if inputs.targets is not None:
        t = inputs.targets
        if inputs.loss == "contrastive":
            t = t.astype(inputs.predictions.dtype)
        args += (jax.device_put(t),)
    if inputs.loss == "gaussian_nll":  # var is an argument, not a constant folded into f
        var = inputs.params.get("var")
        args += (var if np.ndim(var) == 0 else jax.device_put(var),)

    def run() -> Any:
        return jax.block_until_ready(fn(*args))
    return run


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


def sklearn_peer(inputs: Inputs) -> Callable[[], Any]:
    """``sklearn._loss`` ``loss_gradient`` into preallocated buffers, n_threads=2, + sum."""
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

    def run() -> float:
        loss.loss_gradient(y, raw, loss_out=loss_out, gradient_out=gradient_out, n_threads=2)
        return float(loss_out.sum())
    return run


def numpy_peer(inputs: Inputs, *, grad: bool = True) -> Callable[[], Any]:
    ref = REFERENCES[inputs.loss]
    p, t, params = inputs.predictions, inputs.targets, inputs.params
    return lambda: ref(p, t, grad=grad, **params)


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
