"""lossjit's values and gradients against independent references.

Expected numbers never come from lossjit itself: values come from the NumPy oracle
(tests/naive.py, checked against PyTorch) or from formulas written out here, and gradients
from central finite differences of the oracle. Random inputs are seeded and kept away from the
kinks (hinges, branch points, clips) so that the finite differences are accurate.

Sections:
1. every loss x an option grid x every reduction (and kl_div's "batchmean"): value vs oracle,
   gradient vs finite diffs (a registered loss without a grid here: each of its layout's
   examples); bce_with_logits' per-channel pos_weight;
2. the seed's worked examples, with the correct numbers;
3. extremes: huge and infinite logits, NaN, clamps, d = 0, ties at the hinges, ignored and
   empty inputs;
4. API behaviour: shapes, dtypes, label dtypes, conversions, ``out=``, return types, aliases,
   loss objects;
5. bad input: clear errors that name the argument.
"""

import itertools
import math
import zlib

import numpy as np
import pytest
from naive import oracle, reductions_of

import lossjit
from lossjit import registry
from lossjit.layouts import ClassAxis, ConversionWarning, LastAxisClasses, RankPairs, Stacked

REDUCTIONS = ("mean", "sum", "none")
VALUE_RTOL = 1e-10
VALUE_ATOL = 1e-13
FD_H = 1e-6
FD_RTOL = 1e-6
FD_ATOL = 1e-8


def rng_for(*key):
    """A generator seeded by the case's key: every case sees the same inputs on every run."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def layout_inputs(name, rng, dtype=np.float64, index=0, size=12, width=4):
    """The ``index``-th example of the loss's layout (``Layout.examples``, the registry's own
    valid inputs) as (predictions, targets, options): the inputs of a loss this file has no
    hand-chosen ones for."""
    spec = registry.resolve(name)
    example = spec.layout.examples(size, dtype, rng, width=width)[index]
    return example.predictions, example.targets, dict(example.options)


def layout_example_count(name):
    """How many examples the loss's layout gives."""
    return len(registry.resolve(name).layout.examples(12, np.float64, rng_for("count", name),
                                                      width=4))


def spread_over_predictions(name, per_term, x):
    """An array of the terms' shape spread over the predictions' elements each term covers
    (by the loss's layout): the class axis of a ClassAxis loss, the last axis of a
    LastAxisClasses one, the members and their vectors of a Stacked group, the pair of
    RankPairs; one element per term otherwise."""
    a = np.asarray(per_term)
    layout = registry.resolve(name).layout
    if a.ndim == 0:  # one term covers everything
        return np.broadcast_to(a, x.shape)
    if isinstance(layout, ClassAxis):
        a = np.expand_dims(a, 1)
    elif isinstance(layout, LastAxisClasses):
        a = a[..., None]
    elif isinstance(layout, Stacked):
        a = a[:, None, None]
    elif isinstance(layout, RankPairs):
        a = a[:, None]
    return np.broadcast_to(a, x.shape)


def fd_grad(f, x, h=FD_H):
    """Central finite differences of the scalar function ``f`` at ``x`` (float64)."""
    x = np.array(x, dtype=np.float64)
    g = np.empty_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        up, down = old + h, old - h
        flat[i] = up
        f_up = f(x)
        flat[i] = down
        f_down = f(x)
        flat[i] = old
        gflat[i] = (f_up - f_down) / (up - down)
    return g


def oracle_total(name, targets, reduction, params):
    """The scalar whose gradient lossjit returns: the reduced loss, or the sum for "none"."""

    def f(x):
        return float(np.sum(oracle(name, x, targets, reduction=reduction, **params)))

    return f


def check_against_oracle(name, predictions, targets, reduction, params):
    """Value to 1e-10 relative, gradient to central finite differences of the oracle."""
    expected = oracle(name, predictions, targets, reduction=reduction, **params)
    value, grad = lossjit.value_and_grad(name, predictions, targets, reduction=reduction,
                                         **params)
    if reduction == "none":
        assert isinstance(value, np.ndarray)
        assert value.shape == np.shape(expected)
    else:
        assert isinstance(value, float)
    np.testing.assert_allclose(value, expected, rtol=VALUE_RTOL, atol=VALUE_ATOL)
    assert grad.shape == predictions.shape and grad.dtype == predictions.dtype
    numeric = fd_grad(oracle_total(name, targets, reduction, params), predictions)
    np.testing.assert_allclose(grad, numeric, rtol=FD_RTOL, atol=FD_ATOL)


# --- 1. inputs away from the kinks ---------------------------------------------------------


def away(values, points, gap):
    """True where ``values`` are at least ``gap`` from every one of ``points``."""
    ok = np.ones(np.shape(values), dtype=bool)
    for point in points:
        ok &= np.abs(values - point) >= gap
    return ok


def regression_inputs(rng, shape, kinks):
    """x, y with |x - y| kept 0.05 away from every kink (in |e|)."""
    x = rng.normal(size=shape) * 1.5
    y = rng.normal(size=shape)
    for _ in range(100):
        bad = ~away(np.abs(x - y), kinks, 0.05)
        if not bad.any():
            break
        x[bad] = rng.normal(size=int(bad.sum())) * 1.5
    assert away(np.abs(x - y), kinks, 0.05).all()
    return x, y


CLASS_SHAPES = {"C": (4,), "NC": (3, 4), "NCd": (2, 3, 2, 2)}


def class_inputs(rng, shape, target_kind, from_logits, ignore_index):
    """Logits (or probabilities in [0.05, 0.95]) and targets of one kind.

    Index targets of a multi-position input hold one ``ignore_index`` and at least one
    kept position; a (C,) input's single target is never ignored here.
    """
    if from_logits:
        x = rng.normal(size=shape) * 2.0
    else:
        x = rng.uniform(0.05, 0.95, size=shape)
    classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else (shape[0], *shape[2:])
    positions = int(np.prod(target_shape, dtype=np.int64))
    if target_kind == "index":
        flat = rng.integers(0, classes, size=positions)
        if positions > 1:
            flat[0] = ignore_index
            flat[1] = 0 if ignore_index != 0 else 2
        elif flat[0] == ignore_index:
            flat[0] = (ignore_index + 1) % classes
        return x, flat.reshape(target_shape).astype(np.int64)
    if target_kind == "onehot":
        index = rng.integers(0, classes, size=positions)
        rows = np.eye(classes)[index]
    else:  # soft probabilities
        rows = rng.dirichlet(np.ones(classes), size=positions)
    t = rows.reshape((*target_shape, classes)) if target_shape else rows.reshape(classes)
    if len(shape) > 1:
        t = np.moveaxis(t, -1, 1)
    return x, np.ascontiguousarray(t)


def triplet_ok(x, margin, p, eps, swap, gap=0.05):
    """Every row is 0.05 from the hinge and the swap's tie; differences 0.01 from 0 (p=1)."""
    for anchor, positive, negative in x:
        diffs = [anchor - positive + eps, anchor - negative + eps, positive - negative + eps]
        if np.min(np.abs(np.concatenate(diffs))) < 0.01:
            return False
        d_pos, d_an, d_pn = (np.linalg.norm(v, ord=p) for v in diffs)
        d_neg = min(d_an, d_pn) if swap else d_an
        if abs(d_pos - d_neg + margin) < gap or (swap and abs(d_an - d_pn) < gap):
            return False
    return True


def triplet_inputs(rng, margin, p, eps, swap, batch=4, dim=3):
    for _ in range(1000):
        x = rng.normal(size=(batch, 3, dim))
        x[:, 1] = x[:, 0] + rng.normal(size=(batch, dim)) * rng.uniform(0.2, 1.5, (batch, 1))
        if triplet_ok(x, margin, p, eps, swap):
            return x
    raise AssertionError("could not draw triplets away from the kinks")


def contrastive_inputs(rng, margin, batch=6, dim=3):
    for _ in range(1000):
        x = rng.normal(size=(batch, 2, dim)) * rng.uniform(0.2, 0.8)
        d = np.linalg.norm(x[:, 0] - x[:, 1], axis=1)
        if (d > 0.05).all() and away(d, [margin], 0.05).all():
            labels = np.array([1, 0] * (batch // 2))
            return x, labels
    raise AssertionError("could not draw pairs away from the margin")


def log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def redraw(rng, draw, ok, what, tries=1000):
    """``draw(rng)`` until ``ok`` holds for it."""
    for _ in range(tries):
        drawn = draw(rng)
        if ok(*drawn):
            return drawn
    raise AssertionError(f"could not draw {what} away from the kinks")


def hinge_inputs(rng, shape, margin):
    """x and labels in {1, -1}: where y = -1, x is 0.05 from the hinge at x = margin."""
    def draw(r):
        return r.normal(size=shape) * 1.5, np.where(r.uniform(size=shape) < 0.5, 1.0, -1.0)

    def ok(x, y):
        z = margin - x[y == -1]
        return bool(away(z, [0.0], 0.05).all() and (y == 1).any() and (z < 0).any()
                    and (z > 0).any())

    return redraw(rng, draw, ok, "hinge_embedding inputs")


def multi_margin_inputs(rng, shape, margin):
    """Scores (C,) or (N, C) and class indices with every margin - x_y + x_i 0.05 from 0."""
    def draw(r):
        x = r.normal(size=shape)
        return x, r.integers(0, shape[-1], size=shape[:-1])

    def ok(x, t):
        rows, labels = x.reshape(-1, shape[-1]), t.reshape(-1)
        z = margin - rows[np.arange(len(rows)), labels][:, None] + rows
        z[np.arange(len(rows)), labels] = 1.0  # the target class itself does not count
        return bool(away(z, [0.0], 0.05).all() and (z < 0).any() and (z > 0).any())

    return redraw(rng, draw, ok, "multi_margin inputs")


def cosine(x1, x2):
    return np.sum(x1 * x2, -1) / np.sqrt((np.sum(x1 * x1, -1) + 1e-12)
                                         * (np.sum(x2 * x2, -1) + 1e-12))


def cosine_inputs(rng, margin, batch=6, dim=3):
    """Pairs (B, 2, D), labels +-1: where y = -1, cos is 0.05 from the margin."""
    labels = np.array([1, -1] * (batch // 2))

    def draw(r):
        return (r.normal(size=(batch, 2, dim)),)

    def ok(x):
        z = cosine(x[:, 0], x[:, 1])[labels == -1] - margin
        return bool(away(z, [0.0], 0.05).all() and (z < 0).any() and (z > 0).any())

    return redraw(rng, draw, ok, "cosine_embedding pairs")[0], labels


def ranking_inputs(rng, margin, batch=6):
    """Rank pairs (B, 2), labels +-1, with -y (x1 - x2) + margin 0.05 from 0 on both sides."""
    labels = np.array([1, -1] * (batch // 2))

    def draw(r):
        return (r.normal(size=(batch, 2)),)

    def ok(x):
        z = -labels * (x[:, 0] - x[:, 1]) + margin
        return bool(away(z, [0.0], 0.05).all() and (z < 0).any() and (z > 0).any())

    return redraw(rng, draw, ok, "margin_ranking pairs")[0], labels


VAR_SHAPES = {"float": None, "full": (3, 4), "nolast": (3,), "col": (3, 1), "row": (1, 4),
              "clamped": (3, 4)}


def gaussian_var(rng, kind, eps=1e-6):
    """A var of one of PyTorch's shapes for (3, 4) predictions; "clamped" has entries at 0 and
    below eps (where v = eps)."""
    if kind == "float":
        return 0.8
    var = rng.uniform(0.3, 2.0, size=VAR_SHAPES[kind])
    if kind == "clamped":
        var[0, 0], var[1, 2], var[2, 3] = 0.0, eps / 10, eps / 2
    return var


def poisson_inputs(rng, shape, log_input):
    x = rng.normal(size=shape) if log_input else rng.uniform(0.2, 3.0, size=shape)
    y = rng.integers(0, 6, size=shape).astype(np.float64)
    y.flat[:3] = [0.0, 1.0, 4.0]  # no Stirling term at 0 and 1; one at 4
    return x, y


def kl_inputs(rng, shape, log_target):
    """Log-probabilities x and probabilities y (rows on the last axis), one y exactly 0."""
    x = log_softmax(rng.normal(size=shape), -1)
    y = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    y.flat[1] = 0.0
    if log_target:
        y = np.log(np.where(y == 0, 0.25, y))
    return x, y


def grid(**axes):
    keys = list(axes)
    for combo in itertools.product(*(axes[k] for k in keys)):
        yield dict(zip(keys, combo, strict=True))


def case_id(name, params, extra=""):
    shown = ",".join(f"{k}={'arr' if isinstance(v, np.ndarray) else v}"
                     for k, v in params.items())
    return f"{name}[{extra}{shown}]"


def build_cases():
    cases = []

    def add(name, make, params, reduction, extra=""):
        cases.append(pytest.param(name, make, params, reduction,
                                  id=case_id(name, params, extra) + "-" + reduction))

    for reduction in REDUCTIONS:
        for shape in [(5,), (2, 3)]:
            add("mse", ("regression", shape, ()), {}, reduction, f"{shape},")
            add("l1", ("regression", shape, (0.0,)), {}, reduction, f"{shape},")
        for delta in (0.5, 1.0, 2.0):
            add("huber", ("regression", (3, 4), (0.0, delta)), {"delta": delta}, reduction)
        for beta in (0.0, 0.5, 1.0):
            add("smooth_l1", ("regression", (3, 4), (0.0, beta)), {"beta": beta}, reduction)

        # cross_entropy: weight x ignore_index x label_smoothing x from_logits x targets x shape
        for opt in grid(weight=(None, "w"), ignore_index=(-100, 1), label_smoothing=(0.0, 0.2),
                        from_logits=(True, False), targets=("index", "soft", "onehot"),
                        shape=tuple(CLASS_SHAPES)):
            if opt["targets"] != "index" and opt["ignore_index"] != -100:
                continue  # ignore_index only concerns class indices
            params = {k: opt[k] for k in ("ignore_index", "label_smoothing", "from_logits")}
            if opt["weight"]:
                params["weight"] = "w"
            add("cross_entropy", ("classes", opt["shape"], opt["targets"]), params, reduction,
                f"{opt['shape']},{opt['targets']},")

        for opt in grid(weight=(None, "full", "last", "scalar")):
            add("binary_cross_entropy", ("bce", (3, 4), opt["weight"]),
                {} if opt["weight"] is None else {"weight": opt["weight"]}, reduction)
        for opt in grid(weight=(None, "full", "last"), pos_weight=(None, "last", "scalar")):
            params = {k: v for k, v in opt.items() if v is not None}
            add("bce_with_logits", ("logits", (3, 4)), params, reduction)

        # focal: gamma x alpha x ignore_index x from_logits x targets (x shape, rotating)
        for n, opt in enumerate(grid(gamma=(0.0, 0.5, 2.0), alpha=(None, 0.25, "per_class"),
                                     ignore_index=(-100, 2), from_logits=(True, False),
                                     targets=("index", "onehot", "soft"))):
            if opt["targets"] != "index" and opt["ignore_index"] != -100:
                continue
            if opt["targets"] == "soft" and not opt["from_logits"]:
                continue  # the probability form is the seed's, with one-hot targets
            shape = ("NC", "NCd", "C")[n % 3] if opt["from_logits"] else ("NC", "NCd")[n % 2]
            params = {k: opt[k] for k in ("gamma", "ignore_index", "from_logits")}
            if opt["alpha"] is not None:
                params["alpha"] = opt["alpha"]
            add("focal", ("classes", shape, opt["targets"]), params, reduction,
                f"{shape},{opt['targets']},")

        for opt in grid(alpha=(-1.0, 0.25, 0.75), gamma=(0.0, 0.5, 2.0)):
            add("sigmoid_focal", ("logits01", (3, 4)), opt, reduction)
        add("sigmoid_focal", ("logits_soft", (3, 4)), {"alpha": 0.25, "gamma": 2.0}, reduction,
            "soft,")

        for opt in grid(margin=(0.5, 1.0, 2.0), labels=("flat", "column")):
            add("contrastive", ("pairs", opt["labels"]), {"margin": opt["margin"]}, reduction,
                f"{opt['labels']},")
        for opt in grid(margin=(0.5, 1.0), p=(1.0, 2.0, 3.0), eps=(1e-6, 0.1),
                        swap=(False, True)):
            add("triplet", ("triplets",), opt, reduction)

        # --- log_cosh to margin_ranking ---
        add("log_cosh", ("regression", (3, 4), ()), {}, reduction)
        add("log_cosh", ("regression", (5,), ()), {}, reduction, "(5,),")
        for delta in (0.5, 1.0, 2.0):
            add("pseudo_huber", ("regression", (3, 4), ()), {"delta": delta}, reduction)
        for q in (0.1, 0.5, 0.9):
            add("quantile", ("regression", (3, 4), (0.0,)), {"quantile": q}, reduction)
        for opt in grid(log_input=(True, False), full=(False, True), eps=(1e-8, 0.1)):
            add("poisson_nll", ("poisson", (3, 4)), opt, reduction)
        for opt in grid(var=tuple(VAR_SHAPES), full=(False, True)):
            # at the default eps a clamped var makes the terms ~1e6: finite differences would
            # drown in rounding, so the clamp is tested here with eps = 0.05 (and by formula in
            # section 3)
            params = {"full": opt["full"]}
            if opt["var"] == "clamped":
                params["eps"] = 0.05
            add("gaussian_nll", ("gaussian", opt["var"]), params, reduction, f"var={opt['var']},")

        for opt in grid(weight=(None, "w"), ignore_index=(-100, 1), shape=tuple(CLASS_SHAPES)):
            params = {"ignore_index": opt["ignore_index"]}
            if opt["weight"]:
                params["weight"] = "w"
            add("nll", ("classes", opt["shape"], "index"), params, reduction, f"{opt['shape']},")
        for n, opt in enumerate(grid(epsilon=(1.0, 2.0, -0.5), ignore_index=(-100, 2),
                                     targets=("index", "soft", "onehot"))):
            if opt["targets"] != "index" and opt["ignore_index"] != -100:
                continue
            shape = tuple(CLASS_SHAPES)[n % 3]
            add("poly1", ("classes", shape, opt["targets"]), opt_params(opt), reduction,
                f"{shape},{opt['targets']},")

        kl_reductions = (reduction, "batchmean") if reduction == "mean" else (reduction,)
        for kl_reduction in kl_reductions:
            for opt in grid(log_target=(False, True), shape=((3, 4), (5,))):
                add("kl_div", ("kl", opt["shape"]), {"log_target": opt["log_target"]},
                    kl_reduction, f"{opt['shape']},")

        for opt in grid(margin=(0.5, 1.0, 2.0), labels=("float", "int")):
            add("hinge_embedding", ("hinge", (3, 4), opt["labels"]), {"margin": opt["margin"]},
                reduction, f"{opt['labels']},")
        for opt in grid(p=(1, 2), margin=(0.5, 1.0), weight=(None, "w"), shape=((5, 4), (4,))):
            params = {"p": opt["p"], "margin": opt["margin"]}
            if opt["weight"]:
                params["weight"] = "w"
            add("multi_margin", ("multi_margin", opt["shape"]), params, reduction,
                f"{opt['shape']},")
        add("soft_margin", ("soft_margin", (3, 4)), {}, reduction)
        add("soft_margin", ("soft_margin", (7,)), {}, reduction, "(7,),")
        for opt in grid(weight=(None, "w"), shape=((3, 4), (4,), (2, 3, 4))):
            params = {"weight": "w"} if opt["weight"] else {}
            add("multilabel_soft_margin", ("multilabel", opt["shape"]), params, reduction,
                f"{opt['shape']},")

        for opt in grid(margin=(0.0, 0.3, -0.3), labels=("flat", "column")):
            add("cosine_embedding", ("cosine", opt["labels"]), {"margin": opt["margin"]},
                reduction, f"{opt['labels']},")
        for opt in grid(margin=(0.0, 0.5), labels=("flat", "column")):
            add("margin_ranking", ("ranking", opt["labels"]), {"margin": opt["margin"]},
                reduction, f"{opt['labels']},")
        if reduction != "none":  # one pair: (2, D) and (2,) (the terms' shape is ())
            add("cosine_embedding", ("cosine", "single"), {"margin": 0.3}, reduction, "single,")
            add("margin_ranking", ("ranking", "single"), {"margin": 0.5}, reduction, "single,")

    # every registered loss without a grid above: each of its layout's examples (with their
    # options), every reduction it accepts
    gridded = {case.values[0] for case in cases}
    for name in lossjit.names():
        if name in gridded:
            continue
        for index in range(layout_example_count(name)):
            for reduction in registry.resolve(name).reductions:
                add(name, ("layout", index), {}, reduction, f"example {index},")
    return cases


def opt_params(opt):
    """poly1's params of a grid point: ignore_index only for class-index targets."""
    params = {"epsilon": opt["epsilon"]}
    if opt["targets"] == "index":
        params["ignore_index"] = opt["ignore_index"]
    return params


CASES = build_cases()


def materialise(name, make, params, rng):
    """The case's predictions, targets and concrete params (arrays drawn from ``rng``)."""
    params = dict(params)
    kind = make[0]
    if kind == "regression":
        _, shape, kinks = make
        x, y = regression_inputs(rng, shape, kinks)
        return x, y, params
    if kind == "classes":
        _, shape_key, target_kind = make
        shape = CLASS_SHAPES[shape_key]
        classes = shape[0] if len(shape) == 1 else shape[1]
        if params.get("weight") == "w":
            params["weight"] = rng.uniform(0.5, 2.0, size=classes)
        if isinstance(params.get("alpha"), str):
            params["alpha"] = rng.uniform(0.1, 1.0, size=classes)
        x, t = class_inputs(rng, shape, target_kind, params.get("from_logits", True),
                            params.get("ignore_index", -100))
        if name == "nll":  # log-probabilities
            x = log_softmax(x, 0 if x.ndim == 1 else 1)
        return x, t, params
    if kind == "bce":
        _, shape, weight = make
        x = rng.uniform(0.05, 0.95, size=shape)
        y = rng.integers(0, 2, size=shape).astype(np.float64)
        y[0, 0] = 0.3  # a soft target too
        if weight == "full":
            params["weight"] = rng.uniform(0.5, 2.0, size=shape)
        elif weight == "last":
            params["weight"] = rng.uniform(0.5, 2.0, size=shape[-1])
        elif weight == "scalar":
            params["weight"] = np.float64(1.7)
        return x, y, params
    if kind in ("logits", "logits01", "logits_soft"):
        shape = make[1]
        x = rng.normal(size=shape) * 2.0
        if kind == "logits_soft":
            y = rng.uniform(0.0, 1.0, size=shape)
        else:
            y = rng.integers(0, 2, size=shape).astype(np.float64)
        if params.get("weight") == "full":
            params["weight"] = rng.uniform(0.5, 2.0, size=shape)
        elif params.get("weight") == "last":
            params["weight"] = rng.uniform(0.5, 2.0, size=shape[-1])
        if params.get("pos_weight") == "last":
            params["pos_weight"] = rng.uniform(0.5, 3.0, size=shape[-1])
        elif params.get("pos_weight") == "scalar":
            params["pos_weight"] = np.float64(2.5)
        return x, y, params
    if kind == "pairs":
        x, labels = contrastive_inputs(rng, params["margin"])
        if make[1] == "column":
            labels = labels.reshape(-1, 1).astype(np.float64)
        return x, labels, params
    if kind == "triplets":
        x = triplet_inputs(rng, params["margin"], params["p"], params["eps"], params["swap"])
        return x, None, params
    if kind == "poisson":
        x, y = poisson_inputs(rng, make[1], params["log_input"])
        return x, y, params
    if kind == "gaussian":
        x, y = rng.normal(size=(3, 4)) * 1.5, rng.normal(size=(3, 4))
        params["var"] = gaussian_var(rng, make[1], params.get("eps", 1e-6))
        return x, y, params
    if kind == "kl":
        x, y = kl_inputs(rng, make[1], params["log_target"])
        return x, y, params
    if kind == "hinge":
        x, y = hinge_inputs(rng, make[1], params["margin"])
        return x, (y.astype(np.int64) if make[2] == "int" else y), params
    if kind == "multi_margin":
        shape = make[1]
        if params.get("weight") == "w":
            params["weight"] = rng.uniform(0.5, 2.0, size=shape[-1])
        x, t = multi_margin_inputs(rng, shape, params["margin"])
        return x, t, params
    if kind == "soft_margin":
        x = rng.normal(size=make[1]) * 2.0
        y = np.where(rng.uniform(size=make[1]) < 0.5, 1.0, -1.0)
        y.flat[0] = 0.4  # any real target
        return x, y, params
    if kind == "multilabel":
        shape = make[1]
        x = rng.normal(size=shape) * 2.0
        y = (rng.uniform(size=shape) < 0.5).astype(np.float64)
        y.flat[0] = 0.3  # a soft target
        if params.get("weight") == "w":
            params["weight"] = rng.uniform(0.5, 2.0, size=shape[-1])
        return x, y, params
    if kind == "cosine":
        x, labels = cosine_inputs(rng, params["margin"])
        if make[1] == "column":
            return x, labels.reshape(-1, 1).astype(np.float64), params
        if make[1] == "single":
            row = 1  # a y = -1 pair
            return x[row], np.array(labels[row]), params
        return x, labels, params
    if kind == "layout":
        x, t, options = layout_inputs(name, rng, index=make[1])
        return x, t, {**options, **params}
    if kind == "ranking":
        x, labels = ranking_inputs(rng, params["margin"])
        if make[1] == "column":
            return x, labels.reshape(-1, 1).astype(np.float64), params
        if make[1] == "single":
            z = -labels * (x[:, 0] - x[:, 1]) + params["margin"]
            row = int(np.argmax(z > 0))  # an active pair
            return x[row], np.array(float(labels[row])), params
        return x, labels, params
    raise AssertionError(kind)


@pytest.mark.parametrize("name, make, params, reduction", CASES)
def test_value_and_gradient_match_oracle(name, make, params, reduction):
    rng = rng_for(name, make, sorted((k, str(v)) for k, v in params.items()))
    x, t, concrete = materialise(name, make, params, rng)
    check_against_oracle(name, x, t, reduction, concrete)


def test_grid_covers_every_loss_and_reduction():
    covered = {(case.values[0], case.values[3]) for case in CASES}
    assert covered == {(name, r) for name in lossjit.names() for r in reductions_of(name)}


@pytest.mark.parametrize("name, make, params, check", [
    ("hinge_embedding", ("hinge", (3, 4), "float"), {"margin": 1.0}, "hinge"),
    ("multi_margin", ("multi_margin", (5, 4)), {"p": 1, "margin": 1.0}, "multi_margin"),
    ("cosine_embedding", ("cosine", "flat"), {"margin": 0.0}, "cosine"),
    ("margin_ranking", ("ranking", "flat"), {"margin": 0.5}, "ranking"),
])
def test_hinge_grids_have_both_sides_of_the_hinge(name, make, params, check):
    """The random inputs of the hinge losses have active and inactive hinges (else the grid
    would not test one side)."""
    x, t, concrete = materialise(name, make, params, rng_for("sides", name))
    margin = concrete["margin"]
    if check == "hinge":
        z = margin - x[t == -1]
    elif check == "multi_margin":
        z = margin - x[np.arange(len(t)), t][:, None] + x
        z[np.arange(len(t)), t] = np.nan
    elif check == "cosine":
        z = cosine(x[:, 0], x[:, 1])[t == -1] - margin
    else:
        z = -t * (x[:, 0] - x[:, 1]) + margin
    assert (z > 0).any() and (z < 0).any()


def test_triplet_grid_has_active_and_inactive_rows():
    """The random triplets exercise both sides of the hinge (else the test would be weak)."""
    rng = rng_for("triplet-activity")
    x = triplet_inputs(rng, 0.5, 2.0, 1e-6, False, batch=40)
    terms = oracle("triplet", x, reduction="none", margin=0.5)
    assert (terms > 0).any() and (terms == 0).any()
    check_against_oracle("triplet", x, None, "sum", {"margin": 0.5})


def test_contrastive_grid_has_both_sides_of_the_margin():
    rng = rng_for("contrastive-activity")
    x, labels = contrastive_inputs(rng, 1.0, batch=40)
    d = np.linalg.norm(x[:, 0] - x[:, 1], axis=1)
    dissimilar = labels == 0
    assert (d[dissimilar] < 1.0).any() and (d[dissimilar] > 1.0).any()
    check_against_oracle("contrastive", x, labels, "mean", {"margin": 1.0})


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_pos_weight_per_channel(reduction, weighted):
    """pos_weight broadcasts against the targets as PyTorch's does: (C, 1, 1) weighs each
    channel of (N, C, H, W) logits. Value and gradient are the formula's,
    w [(1 - y) x + (1 + (pw - 1) y) softplus(-x)] and w [(1 + (pw - 1) y) sigmoid(x) - pw y],
    with NumPy broadcasting (the mean over all elements), and the oracle's (gradient by
    central differences); the same as pos_weight broadcast to the full shape."""
    rng = rng_for("pos-weight-channels", reduction, weighted)
    x = rng.normal(size=(2, 3, 4, 5)) * 2.0
    y = rng.integers(0, 2, size=x.shape).astype(np.float64)
    y[0, 0, 0, 0], y[1, 2, 3, 4] = 0.3, 0.8  # soft targets too
    pw = rng.uniform(0.5, 3.0, size=(3, 1, 1))
    params = {"pos_weight": pw}
    w = np.ones(x.shape)
    if weighted:
        w = rng.uniform(0.5, 2.0, size=x.shape)
        params["weight"] = w
    terms = w * ((1.0 - y) * x + (1.0 + (pw - 1.0) * y) * np.logaddexp(0.0, -x))
    grad = w * ((1.0 + (pw - 1.0) * y) / (1.0 + np.exp(-x)) - pw * y)
    expected = {"mean": terms.mean(), "sum": terms.sum(), "none": terms}[reduction]
    if reduction == "mean":
        grad = grad / x.size
    value, got = lossjit.value_and_grad("bce_with_logits", x, y, reduction=reduction,
                                        **params)
    np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got, grad, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(lossjit.loss("bce_with_logits", x, y, reduction=reduction,
                                            **params), expected, rtol=1e-12, atol=1e-15)
    check_against_oracle("bce_with_logits", x, y, reduction, params)
    full = dict(params, pos_weight=np.broadcast_to(pw, x.shape).copy())
    v_full, g_full = lossjit.value_and_grad("bce_with_logits", x, y, reduction=reduction,
                                            **full)
    np.testing.assert_allclose(value, v_full, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(got, g_full, rtol=1e-13, atol=1e-15)


# --- 2. the seed's worked examples ---------------------------------------------------------


def test_seed_mse_example():
    p, t = np.array([1.5, 2.3, 0.8]), np.array([1.0, 2.0, 1.0])
    mse = lossjit.MeanSquaredError()
    assert round(mse.forward(p, t), 6) == 0.126667
    assert math.isclose(mse.forward(p, t), (0.25 + 0.09 + 0.04) / 3, rel_tol=1e-14)
    expected = 2 * (p - t) / 3
    np.testing.assert_allclose(mse.backward(p, t), expected, rtol=1e-14)
    np.testing.assert_array_equal(np.round(mse.backward(p, t), 4), [0.3333, 0.2, -0.1333])


SEED_LOGITS = np.array([[1.0, 2.0, 0.5], [0.8, 0.2, 1.5]])
SEED_ONEHOT = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def test_seed_cross_entropy_example_on_logits():
    rows = []
    for logits, target in zip(SEED_LOGITS.tolist(), [1, 2], strict=True):
        lse = math.log(sum(math.exp(v) for v in logits))
        rows.append(lse - logits[target])
    expected_value = sum(rows) / 2
    softmax = np.exp(SEED_LOGITS) / np.exp(SEED_LOGITS).sum(axis=1, keepdims=True)
    expected_grad = (softmax - SEED_ONEHOT) / 2
    ce = lossjit.CrossEntropyLoss()
    assert math.isclose(ce.forward(SEED_LOGITS, SEED_ONEHOT), expected_value, rel_tol=1e-13)
    np.testing.assert_allclose(ce.backward(SEED_LOGITS, SEED_ONEHOT), expected_grad,
                               rtol=1e-12, atol=1e-15)
    # Integer class indices are the same targets.
    index = np.array([1, 2])
    assert math.isclose(ce.forward(SEED_LOGITS, index), expected_value, rel_tol=1e-13)
    np.testing.assert_allclose(ce.backward(SEED_LOGITS, index), expected_grad, rtol=1e-12,
                               atol=1e-15)


SEED_PROBS = np.array([[0.9, 0.1], [0.6, 0.4]])
SEED_FOCAL_TARGETS = np.array([[1.0, 0.0], [1.0, 0.0]])


def test_seed_focal_example_value():
    # -(1/B) sum over positive targets of alpha (1 - p)^gamma log p
    expected = -(0.25 * 0.1 ** 2 * math.log(0.9) + 0.25 * 0.4 ** 2 * math.log(0.6)) / 2
    focal = lossjit.FocalLoss(2.0, 0.25, 1e-10)
    value = focal.forward(SEED_PROBS, SEED_FOCAL_TARGETS)
    assert math.isclose(value, expected, rel_tol=1e-13)
    assert round(value, 6) == 0.010348


def test_seed_focal_example_gradient_is_the_true_derivative():
    alpha, gamma, batch = 0.25, 2.0, 2
    p = SEED_PROBS
    hot = SEED_FOCAL_TARGETS > 0
    # d/dp of -alpha (1-p)^g log p / B  =  -alpha [(1-p)^g / p - g (1-p)^(g-1) log p] / B
    true = np.where(hot, -alpha * ((1 - p) ** gamma / p
                                   - gamma * (1 - p) ** (gamma - 1) * np.log(p)) / batch, 0.0)
    flipped = np.where(hot, -alpha * ((1 - p) ** gamma / p
                                      + gamma * (1 - p) ** (gamma - 1) * np.log(p)) / batch, 0.0)
    got = lossjit.FocalLoss(2.0, 0.25, 1e-10).backward(p, SEED_FOCAL_TARGETS)
    np.testing.assert_allclose(got, true, rtol=1e-12, atol=1e-15)
    assert not np.allclose(got, flipped, rtol=1e-3, atol=0)
    # ... and the true derivative is what finite differences of the value say.
    numeric = fd_grad(lambda q: oracle("focal", q, SEED_FOCAL_TARGETS, gamma=2.0, alpha=0.25,
                                       from_logits=False), p)
    np.testing.assert_allclose(true, numeric, rtol=1e-6, atol=1e-9)


def test_seed_triplet_example_is_zero():
    emb = np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]])
    triplet = lossjit.TripletLoss(1.0)
    assert triplet.forward(emb, np.zeros(3)) == 0.0
    assert oracle("triplet", emb[None], margin=1.0) == 0.0
    grad = triplet.backward(emb, np.zeros(3))
    assert grad.shape == (3, 3)
    np.testing.assert_array_equal(grad, np.zeros((3, 3)))


def test_seed_cross_entropy_on_probabilities_gradient_is_minus_t_over_p():
    p = np.array([[0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    t = SEED_ONEHOT
    ce = lossjit.CrossEntropyLoss(from_logits=False)
    expected_value = -(math.log(0.7) + math.log(0.4)) / 2
    assert math.isclose(ce.forward(p, t), expected_value, rel_tol=1e-13)
    got = ce.backward(p, t)
    np.testing.assert_allclose(got, -t / p / 2, rtol=1e-13, atol=0)
    assert not np.allclose(got, (p - t) / 2)


def test_seed_objects_default_layouts():
    """CrossEntropyLoss takes logits, FocalLoss probabilities, unless told otherwise."""
    ce_logits = lossjit.CrossEntropyLoss().forward(SEED_LOGITS, SEED_ONEHOT)
    assert math.isclose(ce_logits, oracle("cross_entropy", SEED_LOGITS, SEED_ONEHOT),
                        rel_tol=1e-12)
    focal_probs = lossjit.FocalLoss().forward(SEED_PROBS, SEED_FOCAL_TARGETS)
    assert math.isclose(focal_probs, oracle("focal", SEED_PROBS, SEED_FOCAL_TARGETS,
                                            from_logits=False), rel_tol=1e-12)
    focal_logits = lossjit.FocalLoss(from_logits=True).forward(SEED_LOGITS, np.array([1, 2]))
    assert math.isclose(focal_logits, oracle("focal", SEED_LOGITS, np.array([1, 2])),
                        rel_tol=1e-12)
    pairs = np.array([[[0.0, 0.0], [3.0, 4.0]], [[1.0, 1.0], [1.0, 1.5]]])
    labels = np.array([1.0, 0.0])
    # y d^2 + (1-y) max(0, m - d)^2 with d = 5 and 0.5: (25 + (2 - 0.5)^2) / 2
    assert lossjit.ContrastiveLoss(2.0).forward(pairs, labels) == (25.0 + 1.5 ** 2) / 2


# --- 3. extremes ---------------------------------------------------------------------------


def test_float32_huge_logits_are_finite():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4]], dtype=np.float32)
    index = np.array([1, 0])
    soft = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]], dtype=np.float32)
    binary = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    calls = [
        ("cross_entropy", logits, index, {}),
        ("cross_entropy", logits, soft, {}),
        ("cross_entropy", logits, index, {"label_smoothing": 0.1}),
        ("focal", logits, index, {}),
        ("focal", logits, index, {"gamma": 0.5, "alpha": 0.25}),
        ("focal", logits, soft, {}),
        ("bce_with_logits", logits, binary, {}),
        ("bce_with_logits", logits, binary, {"pos_weight": np.array([1.0, 2.0, 3.0])}),
        ("sigmoid_focal", logits, binary, {}),
        ("sigmoid_focal", logits, binary, {"gamma": 0.5, "alpha": -1.0}),
    ]
    for name, x, t, params in calls:
        for reduction in REDUCTIONS:
            value, grad = lossjit.value_and_grad(name, x, t, reduction=reduction, **params)
            assert np.all(np.isfinite(value)), (name, params, reduction, value)
            assert np.all(np.isfinite(grad)), (name, params, reduction, grad)
            assert grad.dtype == np.float32
            expected = oracle(name, x.astype(np.float64), t, reduction=reduction, **params)
            np.testing.assert_allclose(value, expected, rtol=1e-6, err_msg=name)


def test_cross_entropy_huge_logit_values():
    # logits [1e4, -1e4, 0] target 1: lse = 1e4, loss = 1e4 - (-1e4) = 2e4
    x = np.array([[1e4, -1e4, 0.0]], dtype=np.float32)
    value, grad = lossjit.value_and_grad("cross_entropy", x, np.array([1]))
    assert value == 2e4
    np.testing.assert_allclose(grad, [[1.0, -1.0, 0.0]], atol=1e-30)


MASK_CASES = [
    ("cross_entropy", {}, "index"),
    ("cross_entropy", {"weight": "w"}, "index"),
    ("cross_entropy", {}, "soft"),
    ("focal", {}, "index"),
    ("focal", {"gamma": 0.5, "alpha": 0.25}, "index"),
    ("focal", {}, "soft"),
]


@pytest.mark.parametrize("name, params, kind", MASK_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_minus_inf_logit_is_a_masked_class(name, params, kind, dtype):
    rng = rng_for("mask", name, kind)
    full = rng.normal(size=(3, 4)).astype(dtype)
    full[:, 2] = -np.inf
    reduced = np.delete(full, 2, axis=1)
    weight_full = np.array([0.5, 1.5, 3.0, 2.0])
    if kind == "index":
        t_full = np.array([0, 3, 1])
        t_reduced = np.array([0, 2, 1])
    else:
        t_reduced = rng.dirichlet(np.ones(3), size=3).astype(dtype)
        t_full = np.insert(t_reduced, 2, 0.0, axis=1)
    p_full, p_reduced = dict(params), dict(params)
    if "weight" in params:
        p_full["weight"] = weight_full
        p_reduced["weight"] = np.delete(weight_full, 2)
    for reduction in REDUCTIONS:
        v_full, g_full = lossjit.value_and_grad(name, full, t_full, reduction=reduction,
                                                **p_full)
        v_red, g_red = lossjit.value_and_grad(name, reduced, t_reduced, reduction=reduction,
                                              **p_reduced)
        assert np.all(np.isfinite(v_full))
        np.testing.assert_allclose(v_full, v_red, rtol=1e-14 if dtype == np.float64 else 1e-6)
        assert np.all(g_full[:, 2] == 0.0)
        np.testing.assert_allclose(np.delete(g_full, 2, axis=1), g_red,
                                   rtol=1e-14 if dtype == np.float64 else 1e-6, atol=1e-300)


@pytest.mark.parametrize("name", ["cross_entropy", "focal"])
def test_minus_inf_logit_at_target_gives_inf(name):
    x = np.array([[0.5, -np.inf, 1.0], [0.2, 0.1, 0.0]])
    terms = lossjit.loss(name, x, np.array([1, 0]), reduction="none")
    assert terms[0] == np.inf
    assert np.isfinite(terms[1])
    assert lossjit.loss(name, x, np.array([1, 0])) == np.inf
    soft = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert lossjit.loss(name, x, soft, reduction="none")[0] == np.inf


NAN_CASES = [
    ("mse", (4,), {}),
    ("l1", (4,), {}),
    ("huber", (4,), {}),
    ("smooth_l1", (4,), {}),
    ("binary_cross_entropy", (4,), {}),
    ("bce_with_logits", (4,), {}),
    ("sigmoid_focal", (4,), {}),
    ("cross_entropy", (4, 3), {}),
    ("cross_entropy", (4, 3), {"label_smoothing": 0.1}),
    ("cross_entropy", (4, 3), {"from_logits": False}),
    ("focal", (4, 3), {}),
    ("focal", (4, 3), {"from_logits": False}),
    ("contrastive", (4, 2, 3), {}),
    ("triplet", (4, 3, 3), {}),
    ("log_cosh", (4,), {}),
    ("pseudo_huber", (4,), {}),
    ("quantile", (4,), {"quantile": 0.3}),
    ("poisson_nll", (4,), {}),
    ("poisson_nll", (4,), {"log_input": False, "full": True}),
    ("gaussian_nll", (4,), {"var": 0.5}),
    ("soft_margin", (4,), {}),
    ("hinge_embedding", (4,), {}),
    ("multilabel_soft_margin", (4, 3), {}),
    ("nll", (4, 3), {}),
    ("poly1", (4, 3), {}),
    ("margin_ranking", (4, 2), {}),
    ("cosine_embedding", (4, 2, 3), {}),
]

#: Losses with a class axis, whose targets here are class indices (the registry's ClassAxis
#: layouts).
CLASS_INDEX_LOSSES = tuple(name for name in lossjit.names()
                           if isinstance(registry.resolve(name).layout, ClassAxis))


@pytest.mark.parametrize("name, shape, params", NAN_CASES)
def test_nan_in_a_term_gives_nan(name, shape, params):
    rng = rng_for("nan", name, shape)
    x = rng.uniform(0.1, 0.9, size=shape)
    if name in CLASS_INDEX_LOSSES:
        t = np.array([0, 1, 2, 0])
    elif name == "contrastive":
        t = np.array([0, 1, 0, 1])
    elif name == "triplet":
        t = None
    elif name in ("hinge_embedding", "margin_ranking", "cosine_embedding"):
        t = np.array([1.0, -1.0, -1.0, 1.0])  # NaN at a y = -1 term: the hinge keeps it
    else:
        t = rng.integers(0, 2, size=shape).astype(np.float64)
    if name in CLASS_INDEX_LOSSES:
        x[2, 2] = np.nan  # at the target class of row 2
    else:
        x[(2,) + (0,) * (x.ndim - 1)] = np.nan
    terms = lossjit.loss(name, x, t, reduction="none", **params)
    assert np.isnan(terms[2]), (name, terms)
    assert np.isfinite(np.delete(terms, 2)).all(), (name, terms)
    assert math.isnan(lossjit.loss(name, x, t, **params))
    assert math.isnan(lossjit.loss(name, x, t, reduction="sum", **params))


NAN_COVERED = {name for name, _, _ in NAN_CASES}


@pytest.mark.parametrize("name", [name for name in lossjit.names() if name not in NAN_COVERED])
def test_nan_in_a_term_gives_nan_for_every_other_loss(name):
    """As above, for every registered loss without a case in NAN_CASES, on its sample inputs:
    a NaN in one prediction makes NaN the term that covers it (by the loss's layout) and no
    other, and the mean and the sum NaN."""
    rng = rng_for("nan-any", name)
    x, t, params = sample_inputs(name, rng)
    x = np.array(x, dtype=np.float64)
    where = x.size // 2
    x.flat[where] = np.nan
    shape = np.shape(oracle(name, x, t, reduction="none", **params))
    owner = spread_over_predictions(name, np.arange(math.prod(shape)).reshape(shape), x)
    expected = np.zeros(shape, dtype=bool)
    expected.flat[owner.flat[where]] = True
    terms = np.asarray(lossjit.loss(name, x, t, reduction="none", **params))
    np.testing.assert_array_equal(np.isnan(terms), expected, err_msg=f"{name}: {terms}")
    assert np.isfinite(terms[~expected]).all(), (name, terms)
    assert math.isnan(lossjit.loss(name, x, t, **params))
    assert math.isnan(lossjit.loss(name, x, t, reduction="sum", **params))


@pytest.mark.parametrize("name, params", [
    ("cross_entropy", {}), ("cross_entropy", {"from_logits": False}),
    ("cross_entropy", {"label_smoothing": 0.1, "from_logits": False}),
    ("cross_entropy", {"weight": np.array([1.0, 2.0, 0.5])}),
    ("focal", {}), ("focal", {"gamma": 0.5}),
])
def test_nan_at_a_non_target_class_gives_nan(name, params):
    """A NaN anywhere in a term's row makes that term NaN (docs/LOSSES.md: "A NaN anywhere in a
    term gives NaN for that term"); the oracle agrees."""
    x = np.array([[0.2, 0.5, 0.3], [0.6, np.nan, 0.3]])
    t = np.array([0, 2])
    expected = oracle(name, x, t, reduction="none", **params)
    assert np.isnan(expected[1]) and np.isfinite(expected[0])
    terms = lossjit.loss(name, x, t, reduction="none", **params)
    assert np.isfinite(terms[0])
    assert np.isnan(terms[1]), f"{name} {params}: NaN at a non-target class gave {terms[1]!r}"
    assert math.isnan(lossjit.loss(name, x, t, **params))


def test_binary_cross_entropy_at_exact_zero_and_one():
    x = np.array([0.0, 1.0, 0.0, 1.0])
    y = np.array([0.0, 1.0, 1.0, 0.0])
    value, grad = lossjit.value_and_grad("binary_cross_entropy", x, y, reduction="none")
    np.testing.assert_array_equal(value, [0.0, 0.0, 100.0, 100.0])
    assert lossjit.loss("bce", x, y) == 50.0
    # PyTorch's gradient: (x - y) / max(x (1 - x), 1e-12), with 1e-12 as a float32
    floor = float(np.float32(1e-12))
    np.testing.assert_allclose(grad, [0.0, 0.0, -1.0 / floor, 1.0 / floor], rtol=1e-12)
    assert np.isfinite(grad).all()
    g32 = lossjit.grad("bce", x.astype(np.float32), y.astype(np.float32), reduction="none")
    assert np.isfinite(g32).all()


def test_contrastive_at_zero_distance_has_a_finite_gradient():
    pairs = np.array([[[0.3, -1.0, 2.0], [0.3, -1.0, 2.0]],
                      [[0.3, -1.0, 2.0], [0.3, -1.0, 2.0]]])
    for labels in (np.array([0.0, 0.0]), np.array([1.0, 0.0])):
        for margin in (0.0, 1.0, 2.0):
            value, grad = lossjit.value_and_grad("contrastive", pairs, labels, margin=margin,
                                                 reduction="sum")
            # d = 0: y * 0 + (1 - y) margin^2
            assert value == (labels == 0).sum() * margin ** 2
            assert np.isfinite(grad).all()
            np.testing.assert_array_equal(grad, np.zeros_like(pairs))


def test_triplet_with_anchor_equal_to_positive():
    anchor = np.array([0.5, -0.2, 1.0])
    negative = anchor + np.array([0.3, -0.2, 0.1])
    x = np.stack([anchor, anchor, negative])[None]
    eps = 1e-6
    for p in (1.0, 2.0, 3.0):
        value, grad = lossjit.value_and_grad("triplet", x, margin=1.0, p=p, eps=eps,
                                             reduction="sum")
        expected = oracle("triplet", x, margin=1.0, p=p, eps=eps, reduction="sum")
        assert math.isclose(value, expected, rel_tol=1e-12)
        assert value > 0 and np.isfinite(grad).all()
        # d(u, v) = ||u - v + eps||_p; its gradient w.r.t. u is sign(w) (|w| / d)^(p-1)
        def dnorm(w, p=p):
            d = np.linalg.norm(w, ord=p)
            return np.sign(w) * (np.abs(w) / d) ** (p - 1)

        g_pos = dnorm(np.full(3, eps))
        g_neg = dnorm(anchor - negative + eps)
        np.testing.assert_allclose(grad[0, 0], g_pos - g_neg, rtol=1e-9)
        np.testing.assert_allclose(grad[0, 1], -g_pos, rtol=1e-9)
        np.testing.assert_allclose(grad[0, 2], g_neg, rtol=1e-9)


HUGE = np.float32(1e4)


def huge_calls():
    """(name, x, t, params) in float32 with |x| = 1e4 where each formula is finite."""
    h = HUGE
    x_reg = np.array([[h, -h, 0.5], [-h, h, 2.0]], dtype=np.float32)
    zeros = np.zeros_like(x_reg)
    logits = np.array([[h, -h, 0.0], [-h, h, -h]], dtype=np.float32)
    index = np.array([1, 0])
    soft = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]], dtype=np.float32)
    binary = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    signs = np.array([[1.0, 1.0, -1.0], [1.0, -1.0, -1.0]], dtype=np.float32)
    rates = np.array([[h, h / 2, 1.0], [3.0, h, 0.5]], dtype=np.float32)
    counts = np.array([[3.0, 0.0, 2.0], [1.0, 7.0, 0.0]], dtype=np.float32)
    log_probs = np.full((2, 3), -h, dtype=np.float32)
    log_probs[:, 0] = 0.0
    probs = np.array([[0.2, 0.5, 0.3], [0.0, 0.6, 0.4]], dtype=np.float32)
    pairs = np.array([[[h, -h, h], [h, h, -h]], [[-h, -h, h], [h, -h, h]],
                      [[h, 0.0, 0.0], [0.0, h, 0.0]]], dtype=np.float32)
    ranks = np.array([[h, -h], [-h, h], [h, h]], dtype=np.float32)
    return [
        ("log_cosh", x_reg, zeros, {}),
        ("pseudo_huber", x_reg, zeros, {"delta": 0.5}),
        ("quantile", x_reg, zeros, {"quantile": 0.2}),
        ("poisson_nll", rates, counts, {"log_input": False}),
        ("poisson_nll", rates, counts, {"log_input": False, "full": True}),
        ("poisson_nll", -rates, counts, {}),  # exp(-1e4) = 0: finite
        ("gaussian_nll", x_reg, zeros, {"var": 2.0}),
        ("soft_margin", logits, signs, {}),
        ("multilabel_soft_margin", logits, binary, {}),
        ("multilabel_soft_margin", logits, binary, {"weight": np.array([1.0, 2.0, 0.5])}),
        ("hinge_embedding", x_reg, signs, {}),
        ("multi_margin", logits, index, {}),
        ("multi_margin", logits, index, {"p": 2}),
        ("poly1", logits, index, {}),
        ("poly1", logits, soft, {"epsilon": 2.0}),
        ("nll", log_probs, np.array([0, 2]), {}),
        ("kl_div", log_probs, probs, {}),
        ("cosine_embedding", pairs, np.array([1, -1, 1]), {}),
        ("margin_ranking", ranks, np.array([1, 1, -1]), {"margin": 0.5}),
    ]


@pytest.mark.parametrize("name, x, t, params", huge_calls(),
                         ids=[f"{c[0]}-{sorted(c[3])}" for c in huge_calls()])
def test_float32_huge_inputs_of_the_new_losses_are_finite(name, x, t, params):
    reductions = reductions_of(name)
    for reduction in reductions:
        value, grad = lossjit.value_and_grad(name, x, t, reduction=reduction, **params)
        assert np.all(np.isfinite(value)), (reduction, value)
        assert np.all(np.isfinite(grad)), (reduction, grad)
        assert grad.dtype == np.float32
        expected = oracle(name, x.astype(np.float64), t, reduction=reduction, **params)
        np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-6, err_msg=reduction)


def test_huge_errors_have_the_formula_gradients():
    """At |e| = 1e4 in float32: log_cosh's gradient is tanh(e) = +-1, pseudo_huber's
    e / sqrt(1 + (e/delta)^2) -> +-delta, soft_margin's -y sigmoid(-y x) in {0, -y}."""
    e = np.array([1e4, -1e4, 3e3], dtype=np.float32)
    zeros = np.zeros_like(e)
    np.testing.assert_allclose(lossjit.grad("log_cosh", e, zeros, reduction="sum"),
                               [1.0, -1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(lossjit.grad("pseudo_huber", e, zeros, reduction="sum",
                                            delta=2.0),
                               2.0 * np.sign(e) / np.sqrt(1 + (2.0 / e.astype(float)) ** 2),
                               rtol=1e-6)
    value = lossjit.loss("log_cosh", e, zeros, reduction="none")
    np.testing.assert_allclose(value, np.abs(e.astype(float)) - math.log(2.0), rtol=1e-6)
    x = np.array([1e4, -1e4, 1e4, -1e4], dtype=np.float32)
    y = np.array([1.0, 1.0, -1.0, -1.0], dtype=np.float32)
    value, grad = lossjit.value_and_grad("soft_margin", x, y, reduction="none")
    np.testing.assert_allclose(value, [0.0, 1e4, 1e4, 0.0], atol=1e-30, rtol=1e-6)
    np.testing.assert_allclose(grad, [0.0, -1.0, 1.0, 0.0], atol=1e-30, rtol=1e-6)


def test_cosine_embedding_with_zero_vectors_has_a_finite_gradient():
    """cos = s / sqrt(m1 m2), m = |x|^2 + eps; dcos/dx1 = x2 / sqrt(m1 m2) - cos x1 / m1.
    With x1 = 0: cos = 0, dcos/dx1 = x2 / sqrt(eps m2) (large but finite), dcos/dx2 = 0.
    eps is PyTorch's EPSILON, 1e-12 as a float32 (torch 2.13 gives -600000.0012 for
    x2 = (3, 4, 0) below, not -600000.0000)."""
    eps = float(np.float32(1e-12))
    x2 = np.array([3.0, 4.0, 0.0])
    m2 = 25.0 + eps
    dcos_dx1 = x2 / math.sqrt(eps * m2)
    pairs = np.array([[np.zeros(3), x2], [np.zeros(3), np.zeros(3)], [x2, np.zeros(3)]])
    # y = 1: 1 - cos; y = -1 with margin -0.5: max(0, cos + 0.5) = cos + 0.5 (active)
    for labels, margin, sign, value in (([1, 1, 1], 0.0, -1.0, 3.0),
                                        ([-1, -1, -1], -0.5, 1.0, 1.5)):
        got, grad = lossjit.value_and_grad("cosine_embedding", pairs, np.array(labels),
                                           margin=margin, reduction="sum")
        assert got == pytest.approx(value, rel=1e-15)
        assert np.isfinite(grad).all()
        expected = np.zeros_like(pairs)
        expected[0, 0] = sign * dcos_dx1
        expected[2, 1] = sign * dcos_dx1
        np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=0)
        g32 = lossjit.grad("cosine_embedding", pairs.astype(np.float32), np.array(labels),
                           margin=margin, reduction="sum")
        assert np.isfinite(g32).all()
        np.testing.assert_allclose(g32, expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
def test_kl_div_zero_target_gives_exactly_zero(reduction):
    x = np.array([[-np.inf, -0.5, -1.2], [-2.0, -np.inf, -0.1]])
    y = np.array([[0.0, 0.6, 0.4], [0.3, 0.0, 0.7]])
    value, grad = lossjit.value_and_grad("kl_div", x, y, reduction=reduction)
    terms = lossjit.loss("kl_div", x, y, reduction="none")
    assert terms[0, 0] == 0.0 and terms[1, 1] == 0.0
    assert np.isfinite(value).all()
    # d/dx = -y: exactly 0 where y = 0, even at x = -inf
    assert grad[0, 0] == 0.0 and grad[1, 1] == 0.0
    scale = {"mean": 1 / 6, "batchmean": 1 / 2}.get(reduction, 1.0)
    np.testing.assert_allclose(grad, -y * scale, rtol=1e-15)
    finite = np.where(y > 0, y * (np.log(np.where(y > 0, y, 1.0)) - np.where(y > 0, x, 0.0)),
                      0.0)
    expected = {"none": finite, "sum": finite.sum(), "mean": finite.sum() / 6,
                "batchmean": finite.sum() / 2}[reduction]
    np.testing.assert_allclose(value, expected, rtol=1e-14)


def test_kl_div_batchmean_divides_by_the_first_axis():
    rng = rng_for("batchmean")
    for shape in ((4,), (2, 5), (2, 3, 4)):
        x = log_softmax(rng.normal(size=shape), -1)
        y = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
        total, g_sum = lossjit.value_and_grad("kl_div", x, y, reduction="sum")
        value, grad = lossjit.value_and_grad("kl_div", x, y, reduction="batchmean")
        assert value == pytest.approx(total / shape[0], rel=1e-14)
        np.testing.assert_allclose(grad, -y / shape[0], rtol=1e-14)
    # a 0-d input: no division
    value, grad = lossjit.value_and_grad("kl_div", np.float64(-0.7), np.float64(0.25),
                                         reduction="batchmean")
    assert value == pytest.approx(0.25 * (math.log(0.25) + 0.7), rel=1e-14)
    assert float(grad) == -0.25


def test_gaussian_nll_var_below_eps_uses_eps():
    x = np.array([0.5, -1.0, 2.0, 0.3])
    y = np.array([0.0, 0.5, 1.0, 0.3])
    var = np.array([0.0, 1e-9, 5e-7, 0.5])  # the first three are below eps = 1e-6
    v = np.array([1e-6, 1e-6, 1e-6, 0.5])
    e = x - y
    for reduction, scale in (("sum", 1.0), ("mean", 0.25)):
        value, grad = lossjit.value_and_grad("gaussian_nll", x, y, var=var, reduction=reduction)
        assert value == pytest.approx(scale * np.sum(0.5 * (np.log(v) + e * e / v)), rel=1e-13)
        np.testing.assert_allclose(grad, scale * e / v, rtol=1e-13)
    value = lossjit.loss("gaussian_nll", x, y, var=0.01, eps=0.1, full=True, reduction="none")
    np.testing.assert_allclose(value, 0.5 * (math.log(0.1) + e * e / 0.1)
                               + 0.5 * math.log(2 * math.pi), rtol=1e-13)


def test_ties_at_the_hinges_follow_torch():
    """PyTorch's clamp_min passes the gradient at the tie (margin - x == 0 in
    hinge_embedding, cos == margin in cosine_embedding, -y (x1 - x2) + margin == 0 in
    margin_ranking); multi_margin's kernel tests z > 0, so a tie gives no gradient; the
    quantile loss has 0.5 - q at e' = 0."""
    # hinge_embedding: y = -1 at x = margin: loss 0, gradient -1; y = 1: gradient 1
    value, grad = lossjit.value_and_grad("hinge_embedding", np.array([1.0, 0.7, 1.5]),
                                         np.array([-1.0, 1.0, -1.0]), reduction="sum")
    assert value == 0.7
    np.testing.assert_array_equal(grad, [-1.0, 1.0, 0.0])
    value, grad = lossjit.value_and_grad("hinge_embedding", np.array([0.25, 0.5]),
                                         np.array([-1.0, -1.0]), margin=0.25, reduction="mean")
    assert value == 0.0
    np.testing.assert_array_equal(grad, [-0.5, 0.0])
    # margin_ranking: -y (x1 - x2) + margin = 0 for both pairs
    pairs = np.array([[1.0, 1.5], [2.0, 1.5]])
    value, grad = lossjit.value_and_grad("margin_ranking", pairs, np.array([-1.0, 1.0]),
                                         margin=0.5, reduction="sum")
    assert value == 0.0
    np.testing.assert_array_equal(grad, [[1.0, -1.0], [-1.0, 1.0]])  # d/dx1 = -y, d/dx2 = y
    # cosine_embedding: orthogonal pair, y = -1, margin 0: cos = 0 = margin
    pair = np.array([[[2.0, 0.0], [0.0, 3.0]]])
    value, grad = lossjit.value_and_grad("cosine_embedding", pair, np.array([-1]),
                                         reduction="sum")
    assert value == 0.0
    eps = float(np.float32(1e-12))  # PyTorch's EPSILON
    denom = math.sqrt((4.0 + eps) * (9.0 + eps))
    # dcos/dx1 = x2 / sqrt(m1 m2) - cos x1 / m1 with cos = 0
    np.testing.assert_allclose(grad, [[[0.0, 3.0 / denom], [2.0 / denom, 0.0]]], rtol=1e-14)
    # multi_margin: row [1, 0, 0.5], y = 0, margin 1: z = 0 (i = 1, a tie) and 0.5 (i = 2)
    for p, z_term in ((1, 0.5), (2, 0.25)):
        value, grad = lossjit.value_and_grad("multi_margin", np.array([[1.0, 0.0, 0.5]]),
                                             np.array([0]), p=p, reduction="sum")
        assert value == pytest.approx(z_term / 3, rel=1e-15)
        dz = 1.0 if p == 1 else 2 * 0.5  # d max(0, z)^p / dz at z = 0.5
        np.testing.assert_allclose(grad, [[-dz / 3, 0.0, dz / 3]], rtol=1e-15)
    # quantile at e' = y - x = 0: gradient 0.5 - q
    for q in (0.2, 0.5, 0.9):
        value, grad = lossjit.value_and_grad("quantile", np.array([1.5, 0.0, 2.0]),
                                             np.array([1.5, 1.0, 1.0]), quantile=q,
                                             reduction="sum")
        assert value == pytest.approx(q * 1.0 + (1 - q) * 1.0, rel=1e-15)
        np.testing.assert_allclose(grad, [0.5 - q, -q, 1 - q], rtol=1e-15)


IGNORED_CASES = [
    ("cross_entropy", {}),
    ("cross_entropy", {"weight": np.array([1.0, 2.0, 3.0]), "label_smoothing": 0.1}),
    ("cross_entropy", {"from_logits": False}),
    ("cross_entropy", {"ignore_index": 1}),
    ("focal", {}),
    ("focal", {"from_logits": False}),
    ("focal", {"ignore_index": 2, "alpha": 0.5}),
    ("nll", {}),
    ("nll", {"weight": np.array([1.0, 2.0, 3.0]), "ignore_index": 1}),
    ("poly1", {}),
    ("poly1", {"ignore_index": 2, "epsilon": 2.0}),
]


@pytest.mark.parametrize("name, params", IGNORED_CASES)
def test_every_target_ignored(name, params):
    x = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    ignore = params.get("ignore_index", -100)
    t = np.array([ignore, ignore])
    value, grad = lossjit.value_and_grad(name, x, t, **params)
    assert math.isnan(value)
    assert math.isnan(oracle(name, x, t, **params))
    np.testing.assert_array_equal(grad, np.zeros_like(x))
    value, grad = lossjit.value_and_grad(name, x, t, reduction="sum", **params)
    assert value == 0.0
    np.testing.assert_array_equal(grad, np.zeros_like(x))
    terms = lossjit.loss(name, x, t, reduction="none", **params)
    np.testing.assert_array_equal(terms, [0.0, 0.0])


EMPTY_CASES = [
    ("mse", (0,), np.zeros(0), {}),
    ("l1", (0, 3), np.zeros((0, 3)), {}),
    ("huber", (0,), np.zeros(0), {}),
    ("smooth_l1", (0,), np.zeros(0), {}),
    ("binary_cross_entropy", (0,), np.zeros(0), {}),
    ("bce_with_logits", (0, 3), np.zeros((0, 3)), {}),
    ("sigmoid_focal", (0,), np.zeros(0), {}),
    ("cross_entropy", (0, 3), np.zeros(0, dtype=np.int64), {}),
    ("cross_entropy", (0, 3), np.zeros((0, 3)), {}),
    ("cross_entropy", (0, 3), np.zeros((0, 3)), {"from_logits": False}),
    ("cross_entropy", (0, 3, 2), np.zeros((0, 2), dtype=np.int64), {}),
    ("focal", (0, 3), np.zeros(0, dtype=np.int64), {}),
    ("focal", (0, 3), np.zeros((0, 3)), {}),
    ("focal", (0, 3), np.zeros((0, 3)), {"from_logits": False}),
    ("contrastive", (0, 2, 3), np.zeros(0), {}),
    ("triplet", (0, 3, 3), None, {}),
    ("log_cosh", (0,), np.zeros(0), {}),
    ("pseudo_huber", (0, 3), np.zeros((0, 3)), {}),
    ("quantile", (0,), np.zeros(0), {"quantile": 0.3}),
    ("poisson_nll", (0,), np.zeros(0), {}),
    ("poisson_nll", (0, 2), np.zeros((0, 2)), {"log_input": False, "full": True}),
    ("gaussian_nll", (0,), np.zeros(0), {"var": 1.0}),
    ("gaussian_nll", (0, 3), np.zeros((0, 3)), {"var": np.ones((0, 3))}),
    ("gaussian_nll", (0, 3), np.zeros((0, 3)), {"var": np.ones((0, 1))}),
    ("nll", (0, 3), np.zeros(0, dtype=np.int64), {}),
    ("nll", (0, 3, 2), np.zeros((0, 2), dtype=np.int64), {"weight": np.ones(3)}),
    ("kl_div", (0, 3), np.zeros((0, 3)), {}),
    ("kl_div", (0,), np.zeros(0), {"log_target": True}),
    ("hinge_embedding", (0,), np.zeros(0), {}),
    ("multi_margin", (0, 3), np.zeros(0, dtype=np.int64), {}),
    ("multi_margin", (0, 3), np.zeros(0, dtype=np.int64), {"p": 2, "weight": np.ones(3)}),
    ("soft_margin", (0,), np.zeros(0), {}),
    ("multilabel_soft_margin", (0, 3), np.zeros((0, 3)), {}),
    ("poly1", (0, 3), np.zeros(0, dtype=np.int64), {}),
    ("poly1", (0, 3), np.zeros((0, 3)), {}),
    ("cosine_embedding", (0, 2, 3), np.zeros(0), {}),
    ("margin_ranking", (0, 2), np.zeros(0), {}),
]


def empty_case_id(case):
    name, shape, targets, params = case
    shown = {k: (np.shape(v) if isinstance(v, np.ndarray) else v) for k, v in params.items()}
    return f"{name}-{shape}-{'none' if targets is None else targets.dtype}-{shown}"


@pytest.mark.parametrize("name, shape, targets, params", EMPTY_CASES,
                         ids=[empty_case_id(c) for c in EMPTY_CASES])
def test_empty_input(name, shape, targets, params):
    x = np.zeros(shape)
    value, grad = lossjit.value_and_grad(name, x, targets, **params)
    assert math.isnan(oracle(name, x, targets, **params))
    assert math.isnan(value), f"{name} {params}: mean over zero terms gave {value!r}, not NaN"
    assert grad.shape == shape
    value, grad = lossjit.value_and_grad(name, x, targets, reduction="sum", **params)
    assert value == 0.0 and isinstance(value, float)
    terms = lossjit.loss(name, x, targets, reduction="none", **params)
    assert terms.size == 0


# --- 4. API behaviour ----------------------------------------------------------------------


def sample_inputs(name, rng, dtype=np.float64):
    """A small valid (predictions, targets, params) for every loss."""
    if name in ("mse", "l1", "huber", "smooth_l1"):
        return rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=(3, 4)).astype(dtype), {}
    if name == "binary_cross_entropy":
        return (rng.uniform(0.05, 0.95, size=(3, 4)).astype(dtype),
                rng.integers(0, 2, size=(3, 4)).astype(dtype), {})
    if name in ("bce_with_logits", "sigmoid_focal"):
        return (rng.normal(size=(3, 4)).astype(dtype),
                rng.integers(0, 2, size=(3, 4)).astype(dtype), {})
    if name in ("cross_entropy", "focal"):
        return rng.normal(size=(5, 4)).astype(dtype), rng.integers(0, 4, size=5), {}
    if name == "contrastive":
        return rng.normal(size=(4, 2, 3)).astype(dtype), np.array([1, 0, 1, 0]), {}
    if name == "triplet":
        return rng.normal(size=(4, 3, 3)).astype(dtype), None, {}
    # log_cosh to margin_ranking, away from their kinks
    if name in ("log_cosh", "pseudo_huber", "gaussian_nll"):
        params = {"var": 0.8} if name == "gaussian_nll" else {}
        return rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=(3, 4)).astype(dtype), params
    if name == "quantile":
        x, y = regression_inputs(rng, (3, 4), (0.0,))
        return x.astype(dtype), y.astype(dtype), {"quantile": 0.3}
    if name == "poisson_nll":
        x, y = poisson_inputs(rng, (3, 4), True)
        return x.astype(dtype), y.astype(dtype), {}
    if name in ("nll", "poly1"):
        x = rng.normal(size=(5, 4))
        if name == "nll":
            x = log_softmax(x, 1)
        return x.astype(dtype), rng.integers(0, 4, size=5), {}
    if name == "kl_div":
        x, y = kl_inputs(rng, (3, 4), False)
        return x.astype(dtype), y.astype(dtype), {}
    if name == "hinge_embedding":
        x, y = hinge_inputs(rng, (3, 4), 1.0)
        return x.astype(dtype), y.astype(dtype), {}
    if name == "multi_margin":
        x, t = multi_margin_inputs(rng, (5, 4), 1.0)
        return x.astype(dtype), t, {}
    if name == "soft_margin":
        return (rng.normal(size=(3, 4)).astype(dtype),
                np.where(rng.uniform(size=(3, 4)) < 0.5, 1.0, -1.0).astype(dtype), {})
    if name == "multilabel_soft_margin":
        return (rng.normal(size=(3, 4)).astype(dtype),
                rng.integers(0, 2, size=(3, 4)).astype(dtype), {})
    if name == "cosine_embedding":
        x, labels = cosine_inputs(rng, 0.0, batch=4)
        return x.astype(dtype), labels, {}
    if name == "margin_ranking":
        x, labels = ranking_inputs(rng, 0.0, batch=6)
        return x.astype(dtype), labels, {}
    # any other loss: its layout's first example (valid by the registry's own domains)
    return layout_inputs(name, rng, dtype)


@pytest.mark.parametrize("name", lossjit.names())
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradient_shape_dtype_and_float32_accuracy(name, reduction):
    rng = rng_for("dtypes", name)
    x32, t, params = sample_inputs(name, rng, np.float32)
    t32 = t.astype(np.float32) if t is not None and t.dtype.kind == "f" else t
    v32, g32 = lossjit.value_and_grad(name, x32, t32, reduction=reduction, **params)
    x64 = x32.astype(np.float64)
    t64 = t32.astype(np.float64) if t32 is not None and t32.dtype.kind == "f" else t32
    v64, g64 = lossjit.value_and_grad(name, x64, t64, reduction=reduction, **params)
    assert g32.shape == x32.shape and g32.dtype == np.float32
    assert g64.shape == x64.shape and g64.dtype == np.float64
    if reduction == "none":
        assert v32.dtype in (np.float32, np.float64)
    np.testing.assert_allclose(v32, v64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-6 * np.abs(g64).max())
    # the float64 run is itself right
    np.testing.assert_allclose(v64, oracle(name, x64, t64, reduction=reduction, **params),
                               rtol=VALUE_RTOL, atol=VALUE_ATOL)


LABEL_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8]


@pytest.mark.parametrize("name, params", [("cross_entropy", {}),
                                          ("cross_entropy", {"from_logits": False}),
                                          ("focal", {}), ("focal", {"from_logits": False})])
def test_integer_label_dtypes_agree(name, params):
    rng = rng_for("labels", name, params.get("from_logits"))
    x = rng.uniform(0.05, 0.95, size=(6, 5))
    labels = np.array([0, 4, 2, 1, 3, 4])
    results = [lossjit.value_and_grad(name, x, labels.astype(dtype), **params)
               for dtype in LABEL_DTYPES]
    expected = oracle(name, x, labels, **params)
    for value, grad in results:
        assert math.isclose(value, expected, rel_tol=1e-12)
        assert value == results[0][0]
        np.testing.assert_array_equal(grad, results[0][1])


def test_integer_labels_for_contrastive_and_regression_targets():
    rng = rng_for("int-labels")
    pairs = rng.normal(size=(4, 2, 3))
    labels = np.array([1, 0, 0, 1])
    reference = lossjit.value_and_grad("contrastive", pairs, labels.astype(np.float64))
    for dtype in LABEL_DTYPES:
        value, grad = lossjit.value_and_grad("contrastive", pairs, labels.astype(dtype))
        assert value == reference[0]
        np.testing.assert_array_equal(grad, reference[1])
    x = rng.normal(size=5)
    y = np.array([0, 1, 2, 3, 4])
    for dtype in LABEL_DTYPES:
        assert lossjit.loss("mse", x, y.astype(dtype)) == lossjit.loss("mse", x, y * 1.0)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_])
def test_integer_predictions_are_converted_with_a_warning(dtype):
    x = np.array([[1, 0, 1], [0, 0, 1]], dtype=dtype)
    y = np.array([[0.5, 0.0, 1.0], [1.0, 0.0, 0.25]])
    with pytest.warns(ConversionWarning):
        value, grad = lossjit.value_and_grad("mse", x, y)
    assert grad.dtype == np.float64
    expected_value, expected_grad = lossjit.value_and_grad("mse", x.astype(np.float64), y)
    assert value == expected_value
    np.testing.assert_array_equal(grad, expected_grad)
    assert math.isclose(value, oracle("mse", x, y), rel_tol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out_receives_the_gradient(dtype):
    rng = rng_for("out", dtype)
    x = rng.normal(size=(4, 3)).astype(dtype)
    t = np.array([0, 2, 1, 1])
    out = np.full(x.shape, 7.0, dtype=dtype)
    expected = lossjit.grad("cross_entropy", x, t)
    value, got = lossjit.value_and_grad("cross_entropy", x, t, out=out)
    assert got is out
    np.testing.assert_array_equal(out, expected)
    out2 = np.full(x.shape, 7.0, dtype=dtype)
    assert lossjit.grad("cross_entropy", x, t, out=out2, reduction="none") is out2
    np.testing.assert_array_equal(out2, lossjit.grad("cross_entropy", x, t, reduction="none"))
    out3 = np.empty_like(x)
    assert lossjit.get("ce").backward(x, t, out=out3) is out3
    np.testing.assert_array_equal(out3, expected)


def test_bad_out_raises():
    x = np.array([[0.2, 0.5], [1.0, -1.0], [0.0, 3.0]])
    t = np.zeros_like(x)
    bad_outs = {
        "shape": np.empty((2, 3)),
        "dtype": np.empty((3, 2), dtype=np.float32),
        "non-contiguous": np.empty((2, 3)).T,
        "strided": np.empty((3, 4))[:, ::2],
        "not an array": [[0.0, 0.0]] * 3,
        "read-only": np.lib.stride_tricks.as_strided(np.empty((3, 2)), writeable=False),
    }
    for why, out in bad_outs.items():
        with pytest.raises(lossjit.LossjitError, match="out") as info:
            lossjit.grad("mse", x, t, out=out)
        assert "out" in str(info.value), why
    with pytest.raises(lossjit.LossjitError, match="out"):
        lossjit.grad("mse", x, t, out=x)
    with pytest.raises(lossjit.LossjitError, match="out"):
        lossjit.grad("mse", x, t, out=t)
    view = np.empty((2, 3, 2))
    with pytest.raises(lossjit.LossjitError, match="out"):
        lossjit.grad("mse", view[0], t, out=view[0])
    before = x.copy()
    with pytest.raises(lossjit.LossjitError, match="out"):
        lossjit.value_and_grad("mse", x, t, out=x)
    np.testing.assert_array_equal(x, before)


def test_loss_return_types():
    x, t = np.array([1.0, 2.0, 4.0]), np.array([0.0, 0.0, 0.0])
    for reduction in ("mean", "sum"):
        value = lossjit.loss("mse", x, t, reduction=reduction)
        assert type(value) is float
        value32 = lossjit.loss("mse", x.astype(np.float32), t.astype(np.float32),
                               reduction=reduction)
        assert type(value32) is float
    assert lossjit.loss("mse", x, t) == 7.0
    assert lossjit.loss("mse", x, t, reduction="sum") == 21.0
    terms = lossjit.loss("mse", x, t, reduction="none")
    assert isinstance(terms, np.ndarray)
    np.testing.assert_array_equal(terms, [1.0, 4.0, 16.0])
    terms2d = lossjit.loss("mse", x.reshape(3, 1), t.reshape(3, 1), reduction="none")
    assert terms2d.shape == (3, 1)
    ce_terms = lossjit.loss("ce", np.zeros((2, 3, 4)), np.zeros((2, 4), dtype=int),
                            reduction="none")
    assert ce_terms.shape == (2, 4)
    np.testing.assert_allclose(ce_terms, np.log(3.0), rtol=1e-15)


@pytest.mark.parametrize("alias, canonical", [
    ("mae", "l1"), ("ce", "cross_entropy"), ("bce", "binary_cross_entropy"),
    ("mean_squared_error", "mse"), ("triplet_margin", "triplet"), ("MSE", "mse"),
    ("Smooth-L1", "smooth_l1"), ("pinball", "quantile"),
])
def test_aliases(alias, canonical):
    rng = rng_for("alias", canonical)
    x, t, params = sample_inputs(canonical, rng)
    for reduction in REDUCTIONS:
        a = lossjit.value_and_grad(alias, x, t, reduction=reduction, **params)
        b = lossjit.value_and_grad(canonical, x, t, reduction=reduction, **params)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert lossjit.get(alias).name == canonical


@pytest.mark.parametrize("name, options", [
    ("huber", {"delta": 0.5}), ("cross_entropy", {"label_smoothing": 0.1}),
    ("focal", {"gamma": 1.0, "alpha": 0.5}), ("triplet", {"margin": 0.3, "swap": True}),
    ("contrastive", {"margin": 2.0}), ("bce", {}),
])
def test_get_agrees_with_functions(name, options):
    rng = rng_for("get", name)
    x, t, _ = sample_inputs(lossjit.get(name).name, rng)
    for reduction in REDUCTIONS:
        obj = lossjit.get(name, reduction=reduction, **options)
        assert obj.reduction == reduction
        value, grad = lossjit.value_and_grad(name, x, t, reduction=reduction, **options)
        value_only = lossjit.loss(name, x, t, reduction=reduction, **options)
        np.testing.assert_array_equal(obj.forward(x, t), value_only)
        np.testing.assert_array_equal(obj(x, t), value_only)
        np.testing.assert_array_equal(obj.backward(x, t), grad)
        np.testing.assert_array_equal(lossjit.grad(name, x, t, reduction=reduction, **options),
                                      grad)
        v2, g2 = obj.value_and_grad(x, t)
        np.testing.assert_array_equal(v2, value)
        np.testing.assert_array_equal(g2, grad)
        expected = oracle(lossjit.get(name).name, x, t, reduction=reduction, **options)
        np.testing.assert_allclose(value_only, expected, rtol=VALUE_RTOL, atol=VALUE_ATOL)


@pytest.mark.parametrize("name", lossjit.names())
@pytest.mark.parametrize("size", [12, 1000])
def test_value_only_call_gives_the_same_bits_as_the_fused_call(name, size):
    """loss() and value_and_grad() return the same number to the bit: the loss must not
    depend on whether its gradient was asked for (lossjit promises bit-identical results
    whatever the thread count; a value that changes with want_grad breaks the same promise)."""
    mismatches = []
    for seed in range(8):
        rng = rng_for("value-only", name, size, seed)
        x, t, params = sample_inputs(name, rng)
        reps = max(1, size // x.size)
        x = np.concatenate([x] * reps)
        t = None if t is None else np.concatenate([t] * reps)
        for reduction in ("mean", "sum"):
            fused = lossjit.value_and_grad(name, x, t, reduction=reduction, **params)[0]
            alone = lossjit.loss(name, x, t, reduction=reduction, **params)
            if alone != fused:
                mismatches.append(f"seed {seed} {reduction}: loss() {alone!r} != "
                                  f"value_and_grad() {fused!r}")
    assert not mismatches, (f"{name} n~{size}: {len(mismatches)} of 16 differ, e.g. "
                            + "; ".join(mismatches[:3]))


def test_non_contiguous_inputs():
    rng = rng_for("non-contiguous")
    base = rng.normal(size=(4, 6))
    x = base.T  # (6, 4), Fortran order
    t = rng.integers(0, 4, size=6)
    value, grad = lossjit.value_and_grad("cross_entropy", x, t)
    v2, g2 = lossjit.value_and_grad("cross_entropy", np.ascontiguousarray(x), t)
    assert value == v2
    np.testing.assert_array_equal(grad, g2)
    y = rng.normal(size=(6, 4))
    np.testing.assert_array_equal(lossjit.grad("huber", x[:, ::2], y[:, ::2]),
                                  lossjit.grad("huber", x[:, ::2].copy(), y[:, ::2].copy()))


def test_value_only_call_does_not_need_out_and_rejects_it():
    x, t = np.array([1.0, 2.0]), np.array([0.0, 0.0])
    with pytest.raises(lossjit.LossjitError, match="out"):
        lossjit.api.compute("mse", x, t, want_grad=False, out=np.empty(2))


def test_inputs_are_not_modified():
    rng = rng_for("unmodified")
    for name in lossjit.names():
        x, t, params = sample_inputs(name, rng)
        x0 = x.copy()
        t0 = None if t is None else t.copy()
        lossjit.value_and_grad(name, x, t, reduction="none", **params)
        np.testing.assert_array_equal(x, x0)
        if t is not None:
            np.testing.assert_array_equal(t, t0)


def test_names_lists_the_core_losses():
    assert set(lossjit.names()) >= {
        "mse", "l1", "huber", "smooth_l1", "cross_entropy", "binary_cross_entropy",
        "bce_with_logits", "focal", "sigmoid_focal", "contrastive", "triplet",
        "log_cosh", "pseudo_huber", "quantile", "poisson_nll", "gaussian_nll", "nll",
        "kl_div", "hinge_embedding", "multi_margin", "soft_margin", "multilabel_soft_margin",
        "poly1", "cosine_embedding", "margin_ranking"}


# --- 5. bad input --------------------------------------------------------------------------


def raises_naming(*words, call):
    with pytest.raises(lossjit.LossjitError) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


def test_targets_shape_mismatch():
    raises_naming("targets", "(3,)", "(4,)",
                  call=lambda: lossjit.loss("mse", np.zeros(4), np.zeros(3)))
    raises_naming("targets", call=lambda: lossjit.loss("bce_with_logits", np.zeros((2, 3)),
                                                       np.zeros((3, 2))))
    raises_naming("targets", call=lambda: lossjit.loss("cross_entropy", np.zeros((2, 3)),
                                                       np.zeros(3, dtype=int)))
    raises_naming("targets", call=lambda: lossjit.loss("cross_entropy", np.zeros((2, 3)),
                                                       np.zeros((2, 2))))
    raises_naming("targets", call=lambda: lossjit.loss("contrastive", np.zeros((3, 2, 2)),
                                                       np.zeros(2)))


def test_class_index_out_of_range():
    raises_naming("targets", "5", call=lambda: lossjit.loss(
        "cross_entropy", np.zeros((2, 3)), np.array([0, 5])))
    raises_naming("targets", "-1", call=lambda: lossjit.loss(
        "focal", np.zeros((2, 3)), np.array([-1, 0])))
    raises_naming("targets", "3", call=lambda: lossjit.grad(
        "cross_entropy", np.full((2, 3), 0.3), np.array([3, 0]), from_logits=False))


def test_unknown_option():
    raises_naming("foo", call=lambda: lossjit.loss("mse", np.zeros(2), np.zeros(2), foo=1))
    raises_naming("gamma", call=lambda: lossjit.loss("huber", np.zeros(2), np.zeros(2),
                                                     gamma=1.0))
    raises_naming("delta", call=lambda: lossjit.get("smooth_l1", delta=1.0))


def test_invalid_option_values():
    x, y = np.zeros(2), np.zeros(2)
    for delta in (0.0, -1.0, math.inf, math.nan):
        raises_naming("delta", call=lambda d=delta: lossjit.loss("huber", x, y, delta=d))
    raises_naming("beta", call=lambda: lossjit.loss("smooth_l1", x, y, beta=-0.5))
    logits, labels = np.zeros((2, 3)), np.array([0, 1])
    for ls in (1.5, -0.1):
        raises_naming("label_smoothing", call=lambda s=ls: lossjit.loss(
            "cross_entropy", logits, labels, label_smoothing=s))
    raises_naming("gamma", call=lambda: lossjit.loss("focal", logits, labels, gamma=-1.0))
    raises_naming("margin", call=lambda: lossjit.loss("contrastive", np.zeros((2, 2, 2)),
                                                      np.zeros(2), margin=-1.0))
    raises_naming("p", call=lambda: lossjit.loss("triplet", np.zeros((2, 3, 2)), p=0.0))
    raises_naming("from_logits", call=lambda: lossjit.loss("cross_entropy", logits, labels,
                                                           from_logits="yes"))
    raises_naming("ignore_index", call=lambda: lossjit.loss("cross_entropy", logits, labels,
                                                            ignore_index=1.5))


def test_bad_reduction():
    for reduction in ("avg", "batchmean", None):
        raises_naming("reduction", call=lambda r=reduction: lossjit.loss(
            "mse", np.zeros(2), np.zeros(2), reduction=r))
    raises_naming("reduction", call=lambda: lossjit.get("mse", reduction="max"))


def test_missing_targets():
    raises_naming("targets", call=lambda: lossjit.loss("mse", np.zeros(2)))
    raises_naming("targets", call=lambda: lossjit.loss("cross_entropy", np.zeros((2, 3))))
    raises_naming("targets", call=lambda: lossjit.loss("contrastive", np.zeros((2, 2, 3))))
    raises_naming("targets", call=lambda: lossjit.MeanSquaredError().backward(np.zeros(2)))


def test_wrong_stacked_shapes():
    raises_naming("predictions", "(B, 3, D)",
                  call=lambda: lossjit.loss("triplet", np.zeros((4, 2, 3))))
    raises_naming("predictions", call=lambda: lossjit.loss("triplet", np.zeros((4, 3))))
    raises_naming("predictions", call=lambda: lossjit.loss("triplet", np.zeros(9)))
    raises_naming("predictions", "(B, 2, D)",
                  call=lambda: lossjit.loss("contrastive", np.zeros((4, 3, 2)), np.zeros(4)))
    raises_naming("predictions",
                  call=lambda: lossjit.loss("contrastive", np.zeros((4, 2)), np.zeros(4)))


def test_bce_inputs_outside_unit_interval():
    for bad in (-0.1, 1.5):
        raises_naming("predictions", call=lambda b=bad: lossjit.loss(
            "binary_cross_entropy", np.array([0.5, b]), np.array([1.0, 0.0])))


def test_weights_of_wrong_length():
    logits, labels = np.zeros((2, 3)), np.array([0, 1])
    raises_naming("weight", call=lambda: lossjit.loss("cross_entropy", logits, labels,
                                                      weight=np.ones(2)))
    raises_naming("alpha", call=lambda: lossjit.loss("focal", logits, labels, alpha=np.ones(4)))
    raises_naming("weight", call=lambda: lossjit.loss("bce", np.full((2, 3), 0.5),
                                                      np.zeros((2, 3)), weight=np.ones(2)))
    raises_naming("weight", call=lambda: lossjit.loss("bce_with_logits", logits,
                                                      np.zeros((2, 3)), weight=np.ones(4)))
    raises_naming("pos_weight", "(2,)", "(2, 3)", "does not broadcast to the targets' shape",
                  call=lambda: lossjit.loss("bce_with_logits", logits, np.zeros((2, 3)),
                                            pos_weight=np.ones(2)))
    # pos_weight broadcasts against the whole targets' shape: (C, 1, 1) fits (N, C, H, W) only
    # with C channels
    images = np.zeros((2, 3, 4, 5))
    raises_naming("pos_weight", "(4, 1, 1)", "(2, 3, 4, 5)",
                  "does not broadcast to the targets' shape",
                  call=lambda: lossjit.loss("bce_with_logits", images, images,
                                            pos_weight=np.ones((4, 1, 1))))


def test_unknown_loss_name():
    with pytest.raises(lossjit.UnknownLossError) as info:
        lossjit.loss("msee", np.zeros(2), np.zeros(2))
    message = str(info.value)
    assert message == "unknown loss 'msee'; did you mean 'mse'? (lossjit list shows every loss)"
    assert isinstance(info.value, lossjit.LossjitError)
    with pytest.raises(lossjit.UnknownLossError):
        lossjit.get("nope")


def test_labels_must_be_plus_or_minus_one():
    for bad in (np.array([1.0, 0.0, -1.0]), np.array([1.0, 2.0, -1.0]),
                np.array([1.0, -1.0, 0.5])):
        raises_naming("targets", call=lambda b=bad: lossjit.loss(
            "hinge_embedding", np.zeros(3), b))
        raises_naming("targets", call=lambda b=bad: lossjit.loss(
            "cosine_embedding", np.ones((3, 2, 2)), b))
        raises_naming("targets", call=lambda b=bad: lossjit.loss(
            "margin_ranking", np.zeros((3, 2)), b))
    raises_naming("targets", call=lambda: lossjit.loss(
        "cosine_embedding", np.ones((3, 2, 2)), np.array([1, 0, -1])))


def test_gaussian_nll_bad_var():
    x, y = np.zeros((3, 4)), np.zeros((3, 4))
    raises_naming("var", call=lambda: lossjit.loss("gaussian_nll", x, y))
    raises_naming("var", call=lambda: lossjit.loss("gaussian_nll", x, y, var=-0.5))
    negative = np.ones((3, 4))
    negative[1, 2] = -1e-3
    raises_naming("var", call=lambda: lossjit.loss("gaussian_nll", x, y, var=negative))
    for shape in ((4,), (3, 4, 1), (1, 1), (2, 4), (3, 2), (12,), (4, 3)):
        raises_naming("var", call=lambda s=shape: lossjit.loss("gaussian_nll", x, y,
                                                               var=np.ones(s)))


def test_multi_margin_p_must_be_one_or_two():
    for p in (0, 3, 1.5):
        raises_naming("p", call=lambda q=p: lossjit.loss(
            "multi_margin", np.zeros((2, 3)), np.array([0, 1]), p=q))


def test_nll_takes_class_indices_only():
    raises_naming("targets", call=lambda: lossjit.loss(
        "nll", np.zeros((2, 3)), np.array([0.0, 1.0])))
    raises_naming("targets", call=lambda: lossjit.loss(
        "nll", np.zeros((2, 3)), np.full((2, 3), 1 / 3)))
    raises_naming("targets", "3", call=lambda: lossjit.loss(
        "nll", np.zeros((2, 3)), np.array([0, 3])))


def test_quantile_must_be_inside_the_unit_interval():
    for q in (0.0, 1.0, 1.5, -0.1, math.nan):
        raises_naming("quantile", call=lambda v=q: lossjit.loss(
            "quantile", np.zeros(2), np.zeros(2), quantile=v))
    raises_naming("delta", call=lambda: lossjit.loss(
        "pseudo_huber", np.zeros(2), np.zeros(2), delta=0.0))


def test_bad_sample_weight():
    x, y = np.zeros((3, 4)), np.zeros((3, 4))
    for bad in (np.ones(3), np.ones((4, 3)), np.ones((3, 4, 2)), np.ones((2, 4))):
        raises_naming("sample_weight", call=lambda b=bad: lossjit.loss(
            "mse", x, y, sample_weight=b))
    for bad in (-1.0, np.nan, np.inf):
        w = np.ones((3, 4))
        w[1, 1] = bad
        raises_naming("sample_weight", call=lambda b=w: lossjit.loss(
            "mse", x, y, sample_weight=b))
        raises_naming("sample_weight", call=lambda b=w: lossjit.grad(
            "mse", x, y, sample_weight=b, reduction="sum"))
    # the terms of cross_entropy on (N, C) are (N,): a weight per element is the wrong shape
    raises_naming("sample_weight", call=lambda: lossjit.loss(
        "cross_entropy", x, np.array([0, 1, 2]), sample_weight=np.ones((3, 4))))
    raises_naming("sample_weight", call=lambda: lossjit.loss(
        "triplet", np.zeros((2, 3, 2)), sample_weight=np.ones(3)))


def test_bad_empty_option():
    for bad in ("ignore", "NaN", None, 0):
        raises_naming("empty", call=lambda b=bad: lossjit.loss(
            "mse", np.zeros(2), np.zeros(2), empty=b))


@pytest.mark.parametrize("name", [name for name in lossjit.names()
                                  if "batchmean" not in registry.resolve(name).reductions])
def test_batchmean_is_for_kl_div_only(name):
    """Every loss whose declaration does not list "batchmean" (all but kl_div) refuses it."""
    rng = rng_for("batchmean", name)
    x, t, params = sample_inputs(name, rng)
    raises_naming("reduction", call=lambda: lossjit.loss(name, x, t, reduction="batchmean",
                                                         **params))
