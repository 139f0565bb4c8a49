"""The catalogue of built-in losses: one declaration each, as data.

Each :class:`~lossjit.registry.LossSpec` holds its layout object (how its inputs are checked,
laid out, exemplified and cut: ``layout=lambda: ...``, built on first use) and its kernel set,
loaded on first use from its own kernel module (``kernels=lambda: ...``): listing and
describing losses import neither NumPy nor Numba, and a call imports one kernel module.
Adding a loss means its pointwise (or block) function in a kernel module, its entry here, its
NumPy oracle in ``tests/naive.py`` and its benchmark reference; everything else reads this.

>>> [spec.name for spec in BUILTIN][:3]
['mse', 'l1', 'huber']
"""

from __future__ import annotations

import math
from typing import Any

from lossjit import kernels as k
from lossjit.registry import REDUCTIONS, LossSpec, Param


class _Layouts:
    """:mod:`lossjit.layouts`, imported when a loss's layout is first built (each ``layout=``
    below is a function that builds it): declaring and listing the losses imports no NumPy."""

    def __getattr__(self, name: str) -> Any:
        from lossjit import layouts

        return getattr(layouts, name)


L = _Layouts()


def _positive(v: float) -> bool:
    return v > 0 and math.isfinite(v)


def _non_negative(v: float) -> bool:
    return v >= 0 and math.isfinite(v)


def _finite(v: float) -> bool:
    return math.isfinite(v)


def _unit(v: float) -> bool:
    return 0.0 <= v <= 1.0


_WEIGHT = Param("weight", "array", None, "per-class weights, shape (C,)")
_IGNORE = Param("ignore_index", "int", -100, "target class index that contributes nothing")
_FROM_LOGITS = Param("from_logits", "bool", True,
                     "predictions are logits (true) or probabilities (false)")
_EPS_CLIP = Param("eps", "float", 1e-10, "probabilities are clipped to [eps, 1]",
                  "> 0", _positive)

BUILTIN: tuple[LossSpec, ...] = (
    LossSpec(
        name="mse", aliases=("mean_squared_error",), family="regression",
        formula="(x - y)^2", gradient="2 (x - y)",
        inputs="predictions and targets of the same shape", params=(),
        layout=lambda: L.Elementwise(),
        kernels=lambda: k.regression.mse, hessian="2",
        reference="PyTorch mse_loss; seed MeanSquaredError",
    ),
    LossSpec(
        name="l1", aliases=("mae",), family="regression",
        formula="|x - y|", gradient="sign(x - y), 0 at x = y",
        inputs="predictions and targets of the same shape", params=(),
        layout=lambda: L.Elementwise(),
        kernels=lambda: k.regression.l1, hessian="0",
        reference="PyTorch l1_loss",
    ),
    LossSpec(
        name="huber", family="regression",
        formula="0.5 e^2 if |e| < delta else delta (|e| - 0.5 delta), e = x - y",
        gradient="e, or delta sign(e)",
        inputs="predictions and targets of the same shape",
        params=(Param("delta", "float", 1.0, "where the loss turns linear", "> 0", _positive),),
        layout=lambda: L.Elementwise(("delta",)),
        kernels=lambda: k.regression.huber, hessian="1 if |e| < delta else 0",
        reference="PyTorch huber_loss",
    ),
    LossSpec(
        name="smooth_l1", family="regression",
        formula="0.5 e^2 / beta if |e| < beta else |e| - 0.5 beta, e = x - y",
        gradient="e / beta, or sign(e)",
        inputs="predictions and targets of the same shape",
        params=(Param("beta", "float", 1.0, "where the loss turns linear (0: plain l1)",
                      ">= 0", _non_negative),),
        layout=lambda: L.Elementwise(("beta",)),
        kernels=lambda: k.regression.smooth_l1, hessian="1 / beta if |e| < beta else 0",
        reference="PyTorch smooth_l1_loss",
    ),
    LossSpec(
        name="log_cosh", family="regression",
        formula="log(cosh(e)), e = x - y, evaluated without overflow",
        gradient="tanh(e)", hessian="1 - tanh(e)^2",
        inputs="predictions and targets of the same shape", params=(),
        layout=lambda: L.Elementwise(),
        kernels=lambda: k.regression.log_cosh,
        reference="optax log_cosh",
    ),
    LossSpec(
        name="pseudo_huber", family="regression",
        formula="delta^2 (sqrt(1 + (e / delta)^2) - 1), e = x - y",
        gradient="e / sqrt(1 + (e / delta)^2)", hessian="(1 + (e / delta)^2)^(-3/2)",
        inputs="predictions and targets of the same shape",
        params=(Param("delta", "float", 1.0, "scale where the loss turns linear", "> 0",
                      _positive),),
        layout=lambda: L.Elementwise(("delta",)),
        kernels=lambda: k.regression.pseudo_huber,
        reference="Charbonnier et al. 1994; Hartley and Zisserman (pseudo-Huber)",
    ),
    LossSpec(
        name="quantile", aliases=("pinball",), family="regression",
        formula="max(q (y - x), (q - 1) (y - x))",
        gradient="-q if y > x, 1 - q if y < x, 1/2 - q at y = x", hessian="0",
        inputs="predictions and targets of the same shape",
        params=(Param("quantile", "float", 0.5, "the quantile q to estimate", "in (0, 1)",
                      lambda v: 0.0 < v < 1.0),),
        layout=lambda: L.Elementwise(("quantile",)),
        kernels=lambda: k.regression.quantile,
        reference="scikit-learn mean_pinball_loss; Koenker and Bassett 1978",
    ),
    LossSpec(
        name="poisson_nll", nonnegative=False, family="regression",
        formula="exp(x) - y x (log_input), or x - y log(x + eps); full adds "
                "y log y - y + log(2 pi y)/2 where y > 1",
        gradient="exp(x) - y, or 1 - y / (x + eps)",
        hessian="exp(x), or y / (x + eps)^2",
        inputs="predictions (log-rates, or rates) and counts of the same shape",
        params=(
            Param("log_input", "bool", True, "predictions are log-rates (true) or rates"),
            Param("full", "bool", False, "add the Stirling term of log(y!)"),
            Param("eps", "float", 1e-8, "added to rates before the log", ">= 0",
                  _non_negative),
        ),
        layout=lambda: L.Elementwise(("log_input", "full", "eps"), targets=L.COUNTS),
        kernels=lambda: k.regression.poisson_nll,
        reference="PyTorch poisson_nll_loss",
    ),
    LossSpec(
        name="gaussian_nll", nonnegative=False, family="regression",
        formula="0.5 (log v + (x - y)^2 / v), v = max(var, eps); full adds log(2 pi)/2",
        gradient="(x - y) / v; w.r.t. var (wrt='var'): (1/v - (x - y)^2/v^2) / 2",
        hessian="1 / v (w.r.t. the predictions, the means)",
        inputs="means and targets of the same shape; var of that shape, that shape without "
               "its last axis, with one axis of size 1, or a number",
        params=(
            Param("var", "float_or_array", None, "the variances: a number, or an array of "
                  "the means' shape or one that broadcasts to it", differentiable=True,
                  required=True, broadcasts=True),
            Param("full", "bool", False, "add the constant log(2 pi)/2"),
            Param("eps", "float", 1e-6, "variances are clamped to >= eps", ">= 0",
                  _non_negative),
        ),
        layout=lambda: L.Variance(),
        kernels=lambda: k.regression.gaussian_nll,
        reference="PyTorch gaussian_nll_loss",
        notes="The gradient w.r.t. var is PyTorch's: taken at the clamped variance and passed "
              "straight through the clamp.",
    ),
    LossSpec(
        name="tweedie", family="regression",
        formula="-y exp((1 - p) x) / (1 - p) + exp((2 - p) x) / (2 - p), x = log of the mean",
        gradient="-y exp((1 - p) x) + exp((2 - p) x)",
        hessian="-y (1 - p) exp((1 - p) x) + (2 - p) exp((2 - p) x)",
        inputs="log-means and targets >= 0 of the same shape",
        params=(Param("power", "float", 1.5, "the Tweedie power p", "in (1, 2)",
                      lambda v: 1.0 < v < 2.0),),
        layout=lambda: L.Elementwise(("power",), targets=L.NONNEGATIVE),
        kernels=lambda: k.regression.tweedie,
        reference="scikit-learn HalfTweedieLoss (up to its constant); LightGBM and XGBoost "
                  "tweedie",
        notes="The log link: predictions are log-means; the constant of the deviance "
              "(which depends on y alone) is left out.",
    ),
    LossSpec(
        name="gamma_nll", nonnegative=False, family="regression",
        formula="x + y exp(-x), x = log of the mean",
        gradient="1 - y exp(-x)", hessian="y exp(-x)",
        inputs="log-means and targets > 0 of the same shape", params=(),
        layout=lambda: L.Elementwise(targets=L.POSITIVE_ONLY),
        kernels=lambda: k.regression.gamma_nll,
        reference="scikit-learn HalfGammaLoss (up to its constant); XGBoost reg:gamma",
        notes="The log link: predictions are log-means; the constant log(y) + 1 of the "
              "deviance is left out.",
    ),
    LossSpec(
        name="cross_entropy", aliases=("ce",), family="classification",
        formula="-sum_c w_c q_c log softmax(x)_c, q = (1 - ls) onehot(y) + ls/C",
        gradient="w.r.t. the logits; from_logits=false: -w_c q_c / p_c inside the clip",
        inputs="logits (C,), (N, C) or (N, C, d1..dk); targets class indices (integers, "
               "shape without C) or probabilities (floats, shape of the logits)",
        params=(
            _WEIGHT, _IGNORE,
            Param("label_smoothing", "float", 0.0, "mass spread uniformly over the classes",
                  "in [0, 1]", _unit),
            _FROM_LOGITS, _EPS_CLIP,
        ),
        layout=lambda: L.ClassAxis(L.bind_cross_entropy, probabilities=True),
        kernels=lambda: {
            "index": k.classification.cross_entropy_index,
            "soft": k.classification.cross_entropy_soft,
            "probs": k.classification.cross_entropy_probs,
        },
        hessian="A p_c (1 - p_c), A = the row's total target weight (from_logits=true only)",
        reference="PyTorch cross_entropy (its weight, ignore_index and label-smoothing "
                  "denominators); seed CrossEntropyLoss",
        notes="With class indices the mean divides by the summed weight of the non-ignored "
              "targets; with probabilities, by the number of positions.",
    ),
    LossSpec(
        name="nll", family="classification",
        formula="-w_y x_y on log-probabilities x",
        gradient="-w_y at the target class, 0 elsewhere",
        inputs="log-probabilities (C,), (N, C) or (N, C, d1..dk); class-index targets of the "
               "shape without C",
        params=(_WEIGHT, _IGNORE),
        layout=lambda: L.ClassAxis(L.bind_nll, index_only="nll", log_probabilities=True),
        kernels=lambda: k.classification.nll,
        reference="PyTorch nll_loss",
        notes="The mean divides by the summed weight of the non-ignored targets.",
    ),
    LossSpec(
        name="poly1", family="classification",
        formula="-log p_t + epsilon (1 - p_t), p = softmax(x); 1 - p_t = sum_c t_c (1 - p_c) "
                "for probability targets",
        gradient="(1 + epsilon p_y) (p_j - [j = y]) for class indices",
        inputs="logits like cross_entropy; class-index or probability targets",
        params=(
            Param("epsilon", "float", 1.0, "weight of the polynomial term", "finite", _finite),
            _IGNORE,
        ),
        layout=lambda: L.ClassAxis(L.bind_poly1),
        kernels=lambda: {
            "index": k.classification.poly1_index,
            "soft": k.classification.poly1_soft,
        },
        reference="Leng et al. 2022 (PolyLoss); optax poly_loss_cross_entropy",
        notes="With class indices the mean divides by the number of non-ignored targets.",
    ),
    LossSpec(
        name="binary_cross_entropy", aliases=("bce",), family="classification",
        formula="-w [y log x + (1 - y) log(1 - x)], each log clamped at >= -100",
        gradient="w (x - y) / max(x (1 - x), 1e-12)",
        inputs="probabilities in [0, 1] and targets of the same shape",
        params=(Param("weight", "array", None, "weights broadcast against the predictions",
                  broadcasts=True),),
        layout=lambda: L.Elementwise(predictions=L.UNIT, targets=L.UNIT, weight="weight",
                           check=L.check_probabilities),
        kernels=lambda: k.classification.binary_cross_entropy,
        hessian="w (x^2 - 2 x y + y) / (x (1 - x))^2",
        reference="PyTorch binary_cross_entropy",
    ),
    LossSpec(
        name="bce_with_logits", family="classification",
        formula="w [(1 - y) x + (1 + (pw - 1) y) softplus(-x)]",
        gradient="w [(1 + (pw - 1) y) sigmoid(x) - pw y]",
        inputs="logits and targets of the same shape",
        params=(
            Param("weight", "array", None, "weights broadcast against the predictions",
                  broadcasts=True),
            Param("pos_weight", "array", None, "weight of positives, broadcast against the "
                  "targets (per class: (C,); per channel of (N, C, H, W): (C, 1, 1))"),
        ),
        layout=lambda: L.PositiveWeights(),
        kernels=lambda: {
            "elementwise": k.classification.bce_with_logits,
            "columns": k.classification.bce_with_logits_columns,
        },
        hessian="w (1 + (pw - 1) y) sigmoid(x) sigmoid(-x)",
        reference="PyTorch binary_cross_entropy_with_logits",
    ),
    LossSpec(
        name="focal", family="classification",
        formula="-alpha_y (1 - p_y)^gamma log p_y, p = softmax(x)",
        gradient="F (p_j - [j = y]), F = alpha_y (1-p_y)^gamma (1 - gamma p_y log p_y / (1-p_y))",
        inputs="logits like cross_entropy with class indices or one-hot targets; "
               "from_logits=false: probabilities (N, C) with one-hot targets (the seed's form)",
        params=(
            Param("gamma", "float", 2.0, "focusing exponent", ">= 0", _non_negative),
            Param("alpha", "float_or_array", None, "class weight: one number or one per class"),
            _IGNORE, _FROM_LOGITS, _EPS_CLIP,
        ),
        layout=lambda: L.ClassAxis(L.bind_focal, probabilities=True),
        kernels=lambda: {
            "index": k.classification.focal_index,
            "soft": k.classification.focal_soft,
            "probs": k.classification.focal_probs,
        },
        reference="Lin et al. 2017; Keras CategoricalFocalCrossentropy; seed FocalLoss",
        notes="The mean divides by the number of non-ignored positions; alpha is not "
              "normalised away.",
    ),
    LossSpec(
        name="sigmoid_focal", family="classification",
        formula="alpha_t (1 - p_t)^gamma bce_with_logits(x, y), p = sigmoid(x)",
        gradient="exact, in a form that stays finite for large |x|",
        inputs="logits and binary (or soft) targets of the same shape",
        params=(
            Param("alpha", "float", 0.25, "weight of positives (negative: no weighting)",
                  "<= 1", lambda v: v <= 1),
            Param("gamma", "float", 2.0, "focusing exponent", ">= 0", _non_negative),
        ),
        layout=lambda: L.Elementwise(("alpha", "gamma"), targets=L.BINARY),
        kernels=lambda: k.classification.sigmoid_focal, hessian="exact, in the same stable form",
        reference="torchvision sigmoid_focal_loss (whose default reduction is none)",
    ),
    LossSpec(
        name="kl_div", nonnegative=False, family="classification",
        formula="y (log y - x), 0 where y = 0; log_target: exp(y) (y - x)",
        gradient="-y, or -exp(y)", hessian="0",
        inputs="log-probabilities and targets of the same shape",
        params=(Param("log_target", "bool", False, "targets are log-probabilities"),),
        layout=lambda: L.Elementwise(("log_target",), predictions=L.LOG_PROBS, targets=L.UNIT),
        kernels=lambda: k.classification.kl_div,
        reference="PyTorch kl_div",
        reductions=(*REDUCTIONS, "batchmean"),
        notes="reduction batchmean divides the sum by the size of the first axis.",
    ),
    LossSpec(
        name="hinge_embedding", family="classification",
        formula="x if y = 1; max(0, margin - x) if y = -1",
        gradient="1, or -1 where margin - x >= 0", hessian="0",
        inputs="predictions and labels 1 or -1 of the same shape",
        params=(Param("margin", "float", 1.0, "where the loss of y = -1 stops", "finite",
                      _finite),),
        layout=lambda: L.Elementwise(("margin",), predictions=L.DISTANCES, targets=L.SIGNS,
                           check=L.check_signs_of_targets),
        kernels=lambda: k.classification.hinge_embedding,
        reference="PyTorch hinge_embedding_loss",
    ),
    LossSpec(
        name="multi_margin", family="classification",
        formula="(1/C) sum_{c != y} w_y max(0, margin - x_y + x_c)^p",
        gradient="w.r.t. every score, where margin - x_y + x_c > 0",
        inputs="scores (C,) or (N, C); class-index targets () or (N,)",
        params=(
            Param("p", "int", 1, "power of the hinge", "1 or 2", lambda v: v in (1, 2)),
            Param("margin", "float", 1.0, "required gap between the target and the others",
                  "finite", _finite),
            _WEIGHT,
        ),
        layout=lambda: L.ClassAxis(L.bind_multi_margin, index_only="multi_margin", max_ndim=2),
        kernels=lambda: k.classification.multi_margin,
        reference="PyTorch multi_margin_loss",
        notes="The mean divides by the number of rows; weights do not enter it.",
    ),
    LossSpec(
        name="soft_margin", family="classification",
        formula="log(1 + exp(-y x)), evaluated without overflow",
        gradient="-y sigmoid(-y x)", hessian="y^2 sigmoid(y x) sigmoid(-y x)",
        inputs="predictions and labels (normally 1 or -1) of the same shape", params=(),
        layout=lambda: L.Elementwise(targets=L.SIGNS),
        kernels=lambda: k.classification.soft_margin,
        reference="PyTorch soft_margin_loss",
    ),
    LossSpec(
        name="multilabel_soft_margin", family="classification",
        formula="-(1/C) sum_c w_c [y_c log sigmoid(x_c) + (1 - y_c) log sigmoid(-x_c)]",
        gradient="w_c (sigmoid(x_c) - y_c) / C",
        inputs="logits (..., C), labels on the last axis; targets 0/1 of the same shape",
        params=(Param("weight", "array", None, "per-class weights, shape (C,)"),),
        layout=lambda: L.LastAxisClasses(),
        kernels=lambda: k.classification.multilabel_soft_margin,
        reference="PyTorch multilabel_soft_margin_loss",
    ),
    LossSpec(
        name="contrastive", family="embedding",
        formula="y d^2 + (1 - y) max(0, margin - d)^2, d = ||x1 - x2||_2",
        gradient="safe (0) at d = 0",
        inputs="pairs (B, 2, D) and labels (B,) or (B, 1), 1 = similar",
        params=(Param("margin", "float", 1.0, "distance dissimilar pairs are pushed to",
                      ">= 0", _non_negative),),
        layout=lambda: L.Stacked(2, "pairs", ("margin",), L.BINARY, "1 = similar, 0 = dissimilar"),
        kernels=lambda: k.embedding.contrastive,
        reference="Hadsell et al. 2006; seed ContrastiveLoss",
    ),
    LossSpec(
        name="triplet", aliases=("triplet_margin",), family="embedding",
        formula="max(0, d(a, p) - d(a, n) + margin), d(u, v) = ||u - v + eps||_p",
        gradient="w.r.t. anchor, positive and negative",
        inputs="triplets (B, 3, D): anchor, positive, negative; no targets",
        params=(
            Param("margin", "float", 1.0, "required gap between the distances", "finite",
                  _finite),
            Param("p", "float", 2.0, "norm degree", "> 0", _positive),
            Param("eps", "float", 1e-6, "added to differences before the norm", "finite",
                  _finite),
            Param("swap", "bool", False, "use min(d(a, n), d(p, n)) as the negative distance"),
        ),
        layout=lambda: L.Stacked(3, "triplets", ("margin", "p", "eps", "swap")),
        kernels=lambda: k.embedding.triplet, targets="none",
        reference="PyTorch triplet_margin_loss; seed TripletLoss",
    ),
    LossSpec(
        name="cosine_embedding", family="embedding",
        formula="1 - cos(x1, x2) if y = 1; max(0, cos(x1, x2) - margin) if y = -1",
        gradient="w.r.t. both members; finite at a zero vector (1e-12 on the squared norms)",
        inputs="pairs (B, 2, D) and labels 1 or -1, (B,) or (B, 1)",
        params=(Param("margin", "float", 0.0, "cosine above which dissimilar pairs count",
                      "finite", _finite),),
        layout=lambda: L.Stacked(2, "pairs", ("margin",), L.SIGNS, "1 = similar, -1 = dissimilar",
                                 signs=True),
        kernels=lambda: k.embedding.cosine_embedding,
        reference="PyTorch cosine_embedding_loss",
    ),
    LossSpec(
        name="margin_ranking", family="embedding",
        formula="max(0, -y (x1 - x2) + margin)",
        gradient="(-y, y) where the hinge is >= 0",
        inputs="rank pairs (B, 2) = (x1, x2) and labels 1 or -1, (B,) or (B, 1)",
        params=(Param("margin", "float", 0.0, "required gap between the pair", "finite",
                      _finite),),
        layout=lambda: L.RankPairs(),
        kernels=lambda: k.embedding.margin_ranking,
        reference="PyTorch margin_ranking_loss",
    ),
)
