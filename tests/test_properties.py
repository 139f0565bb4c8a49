"""Properties of lossjit's kernels and losses, checked with Hypothesis.

- the serial and parallel kernels give the same bits (sums, gradients, per-term losses), for
  sizes from 0 to a few blocks, including sizes that are not a multiple of the block;
- the same bits for NUMBA_NUM_THREADS=1 and 2 (in subprocesses);
- cross-entropy (and softmax focal) are invariant to adding a constant to a row of logits;
- losses are >= 0 where their formula says so (and kl_div's sum over distributions);
- float32 results are close to float64 results.

Every loss is covered; the raw kernels are reached through the registry (``build_call`` and
the Call's kernel name), so no kernel name is written here.
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from naive import reductions_of

import lossjit
from lossjit import kernels, registry
from lossjit.api import PARALLEL_MIN, _kernel_pair, _prepare_function
from lossjit.kernels._blocks import BLOCK

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

seeds = st.integers(0, 2**32 - 1)


def build_call(name, predictions, targets, **options):
    spec = registry.resolve(name)
    return _prepare_function(spec)(predictions, targets, spec.options(options))


def call_weights(call, sample_weight=None):
    """The kernel's weights, as the API makes them: the Call's own (class weights), times the
    sample weights laid out as the terms."""
    layout = call.terms_layout
    if sample_weight is None:
        return call.w if call.w.size else np.empty((0,) * len(layout), np.float64)
    sw = np.array(np.broadcast_to(sample_weight, call.terms_shape).reshape(layout), order="C")
    return sw if not call.w.size else call.w * sw


def run_kernel(kernel, call, want_grad, want_terms, weights=None):
    """Call a raw kernel as the API does; returns (sum, grad, terms)."""
    x = call.x
    layout = call.terms_layout
    grad = np.empty(x.shape, dtype=x.dtype) if want_grad else np.empty((0,) * x.ndim, x.dtype)
    terms = (np.empty(layout, dtype=x.dtype) if want_terms
             else np.empty((0,) * len(layout), x.dtype))
    if weights is None:
        weights = call_weights(call)
    total = kernel(x, call.y, weights, grad, terms, 0.37, *call.params)
    return total, grad, terms


def assert_serial_equals_parallel(call, sample_weight=None):
    name = call.kernel
    if isinstance(name, str):
        assert hasattr(kernels, name) and hasattr(kernels, name + "_parallel"), name
    serial, parallel = _kernel_pair(name)
    weights = call_weights(call, sample_weight)
    for want_grad, want_terms in ((True, False), (True, True), (False, False)):
        s_total, s_grad, s_terms = run_kernel(serial, call, want_grad, want_terms, weights)
        p_total, p_grad, p_terms = run_kernel(parallel, call, want_grad, want_terms, weights)
        assert isinstance(s_total, float) and isinstance(p_total, float)
        assert s_total == p_total, (name, want_grad, want_terms, s_total, p_total)
        assert np.array_equal(s_grad, p_grad), (name, want_grad, want_terms)
        assert np.array_equal(s_terms, p_terms), (name, want_grad, want_terms)


# Sizes around the block boundaries, and a few blocks in all.
NUMBERS = st.integers(0, 3 * BLOCK + 700)
EDGE_SIZES = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 3, 3 * BLOCK]


def elementwise_inputs(name, size, seed, dtype):
    rng = np.random.default_rng(seed)
    if name == "binary_cross_entropy":
        x = rng.uniform(0.0, 1.0, size)
        y = rng.uniform(0.0, 1.0, size)
    elif name in ("bce_with_logits", "sigmoid_focal"):
        x = rng.normal(size=size) * 4
        y = (rng.uniform(size=size) < 0.3).astype(np.float64)
    else:
        x = rng.normal(size=size) * 2
        y = rng.normal(size=size)
    return x.astype(dtype), y.astype(dtype)


ELEMENTWISE = [
    ("mse", {}), ("l1", {}), ("huber", {"delta": 0.7}), ("smooth_l1", {"beta": 0.3}),
    ("binary_cross_entropy", {}), ("sigmoid_focal", {"alpha": 0.25, "gamma": 1.5}),
]


@pytest.mark.parametrize("name, options", ELEMENTWISE, ids=[n for n, _ in ELEMENTWISE])
@SETTINGS
@given(size=NUMBERS, seed=seeds, dtype=st.sampled_from([np.float64, np.float32]))
def test_serial_equals_parallel_elementwise(name, options, size, seed, dtype):
    x, y = elementwise_inputs(name, size, seed, dtype)
    if name == "binary_cross_entropy":
        options = {"weight": np.random.default_rng(seed).uniform(0.5, 2.0, size)}
    assert_serial_equals_parallel(build_call(name, x, y, **options))


@pytest.mark.parametrize("size", EDGE_SIZES)
@pytest.mark.parametrize("name, options", ELEMENTWISE[:4], ids=[n for n, _ in ELEMENTWISE[:4]])
def test_serial_equals_parallel_at_block_edges(name, options, size):
    x, y = elementwise_inputs(name, size, size, np.float64)
    assert_serial_equals_parallel(build_call(name, x, y, **options))


@SETTINGS
@given(rows=st.integers(0, 3 * BLOCK // 5 + 50), seed=seeds,
       dtype=st.sampled_from([np.float64, np.float32]),
       weighted=st.booleans(), pos_weighted=st.booleans())
def test_serial_equals_parallel_bce_with_logits(rows, seed, dtype, weighted, pos_weighted):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(rows, 5)) * 3).astype(dtype)
    y = (rng.uniform(size=(rows, 5)) < 0.4).astype(dtype)
    options = {}
    if weighted:
        options["weight"] = rng.uniform(0.5, 2.0, size=(rows, 5))
    if pos_weighted:
        options["pos_weight"] = rng.uniform(0.5, 3.0, size=5)
    assert_serial_equals_parallel(build_call("bce_with_logits", x, y, **options))


CLASS_VARIANTS = [
    ("cross_entropy", "index", {}),
    ("cross_entropy", "index", {"label_smoothing": 0.1, "weight": "w", "ignore_index": 0}),
    ("cross_entropy", "soft", {"label_smoothing": 0.2}),
    ("cross_entropy", "index", {"from_logits": False}),
    ("cross_entropy", "soft", {"from_logits": False}),
    ("focal", "index", {"gamma": 2.0, "alpha": 0.25}),
    ("focal", "soft", {"gamma": 0.5}),
    ("focal", "onehot", {"from_logits": False, "alpha": "w"}),
]


@pytest.mark.parametrize("name, kind, options", CLASS_VARIANTS,
                         ids=[f"{n}-{k}-{sorted(o)}" for n, k, o in CLASS_VARIANTS])
@SETTINGS
@given(rows=st.integers(0, 3 * BLOCK // 6 + 40), classes=st.integers(1, 7),
       positions=st.sampled_from([1, 1, 3]), seed=seeds,
       dtype=st.sampled_from([np.float64, np.float32]))
@example(rows=BLOCK, classes=1, positions=1, seed=0, dtype=np.float64)
@example(rows=BLOCK // 6 + 1, classes=6, positions=1, seed=1, dtype=np.float64)
def test_serial_equals_parallel_classes(name, kind, options, rows, classes, positions, seed,
                                        dtype):
    rng = np.random.default_rng(seed)
    shape = (rows, classes) if positions == 1 else (rows, classes, positions)
    tshape = (rows,) if positions == 1 else (rows, positions)
    options = dict(options)
    for key in ("weight", "alpha"):
        if options.get(key) == "w":
            options[key] = rng.uniform(0.2, 2.0, size=classes)
    if options.get("from_logits", True):
        x = rng.normal(size=shape) * 3
    else:
        x = rng.uniform(0.0, 1.0, size=shape)
    index = rng.integers(0, classes, size=tshape)
    if kind == "index":
        t = index
    else:
        hot = np.moveaxis(np.eye(classes)[index], -1, 1)
        if kind == "soft":
            soft = rng.uniform(size=shape)
            hot = soft / soft.sum(axis=1, keepdims=True)
        t = np.ascontiguousarray(hot)
    assert_serial_equals_parallel(build_call(name, x.astype(dtype), t, **options))


@SETTINGS
@given(batch=st.integers(0, 3 * BLOCK // 8 + 30), dim=st.integers(1, 5), seed=seeds,
       margin=st.floats(0.0, 3.0), column=st.booleans(),
       dtype=st.sampled_from([np.float64, np.float32]))
@example(batch=BLOCK // 8, dim=4, seed=0, margin=1.0, column=False, dtype=np.float64)
def test_serial_equals_parallel_contrastive(batch, dim, seed, margin, column, dtype):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 2, dim)).astype(dtype)
    x[::7, 1] = x[::7, 0]  # some pairs at d = 0
    labels = rng.integers(0, 2, size=(batch, 1) if column else batch)
    assert_serial_equals_parallel(build_call("contrastive", x, labels, margin=margin))


@SETTINGS
@given(batch=st.integers(0, 3 * BLOCK // 9 + 30), dim=st.integers(1, 4), seed=seeds,
       margin=st.floats(-1.0, 3.0), p=st.sampled_from([1.0, 2.0, 3.0, 1.5]),
       eps=st.sampled_from([0.0, 1e-6, 0.1]), swap=st.booleans(),
       dtype=st.sampled_from([np.float64, np.float32]))
def test_serial_equals_parallel_triplet(batch, dim, seed, margin, p, eps, swap, dtype):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 3, dim)).astype(dtype)
    assert_serial_equals_parallel(build_call("triplet", x, None, margin=margin, p=p, eps=eps,
                                             swap=swap))


def new_loss_inputs(name, variant, units, rng):
    """(predictions, targets, options) with ``units`` loss terms, for the losses that came
    after the seed's core (log_cosh to margin_ranking)."""
    if name in ("log_cosh", "pseudo_huber", "quantile", "soft_margin", "gaussian_nll"):
        x, y = rng.normal(size=(units, 3)) * 2, rng.normal(size=(units, 3))
        if name == "soft_margin":
            y = np.where(y < 0, -1.0, 1.0)
        options = {"pseudo_huber": {"delta": 0.7}, "quantile": {"quantile": 0.3}}.get(name, {})
        if name == "gaussian_nll":
            options = {"full": True, "var": {"float": 0.6,
                                             "full": rng.uniform(0.0, 2.0, (units, 3)),
                                             "col": rng.uniform(0.0, 2.0, (units, 1))}[variant]}
        return x, y, options
    if name == "poisson_nll":
        log_input = variant == "log"
        x = rng.normal(size=(units, 3)) if log_input else rng.uniform(0.0, 3.0, (units, 3))
        y = rng.integers(0, 5, size=(units, 3)).astype(np.float64)
        return x, y, {"log_input": log_input, "full": not log_input}
    if name == "kl_div":
        x = np.log(rng.dirichlet(np.ones(4), size=units))
        y = rng.dirichlet(np.ones(4), size=units)
        y[::5, 0] = 0.0
        if variant == "log":
            return x, np.log(y + 0.01), {"log_target": True}
        return x, y, {}
    if name == "hinge_embedding":
        x = rng.normal(size=(units, 3))
        y = np.where(rng.uniform(size=(units, 3)) < 0.5, -1.0, 1.0)
        return x, y, {"margin": 0.5}
    if name in ("nll", "multi_margin", "poly1", "multilabel_soft_margin"):
        classes = 5
        x = rng.normal(size=(units, classes)) * 2
        index = rng.integers(0, classes, size=units)
        w = rng.uniform(0.5, 2.0, size=classes)
        if name == "nll":
            index[::7] = -100
            return x - 3.0, index, {"weight": w}
        if name == "multi_margin":
            return x, index, {"p": 2 if variant == "p2" else 1, "weight": w, "margin": 0.7}
        if name == "multilabel_soft_margin":
            return x, (rng.uniform(size=x.shape) < 0.3).astype(np.float64), {"weight": w}
        if variant == "soft":
            return x, rng.dirichlet(np.ones(classes), size=units), {"epsilon": 2.0}
        index[::7] = 1
        return x, index, {"epsilon": 0.5, "ignore_index": 1}
    if name == "cosine_embedding":
        x = rng.normal(size=(units, 2, 3))
        x[::9, 0] = 0.0  # zero vectors
        return x, np.where(rng.uniform(size=units) < 0.5, -1, 1), {"margin": 0.2}
    if name == "margin_ranking":
        x = rng.normal(size=(units, 2))
        return x, np.where(rng.uniform(size=units) < 0.5, -1.0, 1.0), {"margin": 0.3}
    raise AssertionError(name)


NEW_VARIANTS = [
    ("log_cosh", ""), ("pseudo_huber", ""), ("quantile", ""), ("soft_margin", ""),
    ("poisson_nll", "log"), ("poisson_nll", "rate"),
    ("gaussian_nll", "float"), ("gaussian_nll", "full"), ("gaussian_nll", "col"),
    ("kl_div", ""), ("kl_div", "log"), ("hinge_embedding", ""), ("nll", ""),
    ("multi_margin", "p1"), ("multi_margin", "p2"), ("poly1", "index"), ("poly1", "soft"),
    ("multilabel_soft_margin", ""), ("cosine_embedding", ""), ("margin_ranking", ""),
]


@pytest.mark.parametrize("name, variant", NEW_VARIANTS, ids=[f"{n}-{v}" for n, v in NEW_VARIANTS])
@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(units=st.integers(0, 3 * BLOCK // 3 + 40), seed=seeds,
       dtype=st.sampled_from([np.float64, np.float32]), weighted=st.booleans())
@example(units=BLOCK // 3 + 1, seed=0, dtype=np.float64, weighted=True)
def test_serial_equals_parallel_new_losses(name, variant, units, seed, dtype, weighted):
    rng = np.random.default_rng(seed)
    x, t, options = new_loss_inputs(name, variant, units, rng)
    if t is not None and t.dtype.kind == "f":
        t = t.astype(dtype)
    call = build_call(name, x.astype(dtype), t, **options)
    sw = rng.uniform(0.0, 2.0, size=call.terms_shape) if weighted else None
    assert_serial_equals_parallel(call, sw)


@pytest.mark.parametrize("name, options", [
    ("log_cosh", {}), ("gaussian_nll", {"var": 0.7}), ("cross_entropy", {"label_smoothing": 0.1}),
])
def test_grad_hess_of_a_large_input_equals_that_of_its_halves(name, options):
    """A large input runs the parallel kernels, its halves the serial ones; with reduction
    "sum" every term's gradient and Hessian entries are its own, so both must agree to the
    bit."""
    rng = np.random.default_rng(5)
    rows = PARALLEL_MIN // 4 + 1001
    x = rng.normal(size=(rows, 4)) * 2
    if name == "cross_entropy":
        t = rng.integers(0, 4, size=rows)
    else:
        t = rng.normal(size=(rows, 4))
    half = rows // 2
    assert x.size >= PARALLEL_MIN and x[:half].size < PARALLEL_MIN
    g, h = lossjit.grad_hess(name, x, t, reduction="sum", **options)
    g1, h1 = lossjit.grad_hess(name, x[:half], t[:half], reduction="sum", **options)
    g2, h2 = lossjit.grad_hess(name, x[half:], t[half:], reduction="sum", **options)
    assert np.array_equal(g, np.concatenate([g1, g2]))
    assert np.array_equal(h, np.concatenate([h1, h2]))


# --- the same bits for any thread count ------------------------------------------------------

THREAD_SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import numba
    import numpy as np
    import lossjit
    from lossjit.api import PARALLEL_MIN

    threads = int(sys.argv[1])
    assert numba.config.NUMBA_NUM_THREADS == threads, numba.config.NUMBA_NUM_THREADS
    assert numba.get_num_threads() == threads
    rng = np.random.default_rng(20240611)
    n = 3 * PARALLEL_MIN + 12345
    rows = n // 7
    cases = {
        "mse": (rng.normal(size=n), rng.normal(size=n), {}),
        "huber": (rng.normal(size=n) * 3, rng.normal(size=n), {"delta": 0.5}),
        "cross_entropy": (rng.normal(size=(rows, 7)) * 3, rng.integers(0, 7, rows),
                          {"label_smoothing": 0.1}),
        "focal": (rng.normal(size=(rows, 7)) * 3, rng.integers(0, 7, rows), {}),
        "bce_with_logits": (rng.normal(size=(rows, 7)), rng.integers(0, 2, (rows, 7)) * 1.0,
                            {"pos_weight": np.arange(1.0, 8.0)}),
        "sigmoid_focal": (rng.normal(size=n) * 3, rng.integers(0, 2, n) * 1.0, {}),
        "contrastive": (rng.normal(size=(n // 6, 2, 3)), rng.integers(0, 2, n // 6), {}),
        "triplet": (rng.normal(size=(n // 9, 3, 3)), None, {"swap": True}),
    }
    out = {}
    for name, (x, t, options) in cases.items():
        for dtype in (np.float64, np.float32):
            xd = x.astype(dtype)
            assert xd.size >= PARALLEL_MIN
            value, grad = lossjit.value_and_grad(name, xd, t, **options)
            alone = lossjit.loss(name, xd, t, reduction="sum", **options)
            terms = lossjit.loss(name, xd, t, reduction="none", **options)
            out[f"{name}-{np.dtype(dtype).name}"] = [
                repr(value), hashlib.sha256(grad.tobytes()).hexdigest(), repr(alone),
                hashlib.sha256(terms.tobytes()).hexdigest()]
    print(json.dumps(out))
""")


def run_with_threads(threads):
    env = dict(os.environ)
    env["NUMBA_NUM_THREADS"] = str(threads)
    if "NUMBA_CACHE_DIR" in os.environ:
        env["NUMBA_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"]
    result = subprocess.run([sys.executable, "-c", THREAD_SCRIPT, str(threads)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_same_bits_for_one_and_two_threads():
    # One run first, so that both compared runs load the kernels from the same cache: this
    # test is about the thread count only (compiling vs loading has a test of its own).
    run_with_threads(2)
    one = run_with_threads(1)
    two = run_with_threads(2)
    assert one.keys() == two.keys() and len(one) == 16
    differing = {k: (one[k], two[k]) for k in one if one[k] != two[k]}
    assert not differing, differing
    # ... and this process (its own thread count) agrees with them.
    rng = np.random.default_rng(20240611)
    n = 3 * PARALLEL_MIN + 12345
    x, t = rng.normal(size=n), rng.normal(size=n)
    value, grad = lossjit.value_and_grad("mse", x, t)
    assert [repr(value), hashlib.sha256(grad.tobytes()).hexdigest()] == one["mse-float64"][:2]


CACHE_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import lossjit
    from lossjit.api import PARALLEL_MIN

    rng = np.random.default_rng(7)
    out = {}
    for n in (3 * PARALLEL_MIN + 7, 1000):
        for name, options in (("l1", {}), ("mse", {}), ("huber", {"delta": 0.7})):
            x = rng.normal(size=n) * 2
            y = rng.normal(size=n)
            value, grad = lossjit.value_and_grad(name, x, y, reduction="sum", **options)
            alone = lossjit.loss(name, x, y, reduction="sum", **options)
            out[f"{name}-{n}"] = [repr(value), repr(alone), grad.tobytes().hex()[:64],
                                  str(hash(grad.tobytes()))]
    print(json.dumps(out))
""")


def test_same_bits_when_compiled_now_or_loaded_from_the_cache(tmp_path):
    """The first process compiles the kernels (into an empty cache), the second loads them:
    both must print the same bits, or results depend on the cache's history."""
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
    env["PYTHONHASHSEED"] = "0"
    runs = []
    for _ in range(2):
        result = subprocess.run([sys.executable, "-c", CACHE_SCRIPT], env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    compiled, cached = runs
    differing = {k: (compiled[k][:2], cached[k][:2]) for k in compiled
                 if compiled[k] != cached[k]}
    assert not differing, differing


WARM_SERIAL_SCRIPT = textwrap.dedent("""
    import numpy as np
    import lossjit
    for name, options in (("mse", {}), ("l1", {}), ("huber", {"delta": 0.7}),
                          ("smooth_l1", {"beta": 0.3})):
        lossjit.value_and_grad(name, np.zeros(5), np.ones(5), **options)
""")

COMPARE_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    from lossjit import kernels
    from lossjit.kernels._blocks import BLOCK

    rng = np.random.default_rng(11)
    none = np.empty(0)
    out = {}
    for name, params in (("mse", ()), ("l1", ()), ("huber", (0.7,)), ("smooth_l1", (0.3,))):
        serial = getattr(kernels, name)
        parallel = getattr(kernels, name + "_parallel")
        for n in (BLOCK + 1, 3 * BLOCK, 24 * BLOCK + 5):
            x = rng.normal(size=n) * 2
            y = rng.normal(size=n)
            gs, gp = np.empty(n), np.empty(n)
            ts = serial(x, y, none, gs, none, 1.0, *params)
            tp = parallel(x, y, none, gp, none, 1.0, *params)
            out[f"{name}-{n}"] = [repr(ts), repr(tp), bool(np.array_equal(gs, gp))]
    print(json.dumps(out))
""")


def test_serial_equals_parallel_when_compiled_in_different_processes(tmp_path):
    """Process 1 compiles the serial kernels (into an empty cache) through the API; process 2
    loads them and compiles the parallel twins: their sums must still be equal to the bit."""
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
    for script in (WARM_SERIAL_SCRIPT, COMPARE_SCRIPT):
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    differing = {k: v for k, v in out.items() if v[0] != v[1] or not v[2]}
    assert not differing, differing


# --- invariance, sign, precision ------------------------------------------------------------


@SETTINGS
@given(data=st.data(), rows=st.integers(1, 6), classes=st.integers(1, 6),
       positions=st.sampled_from([None, 2]), kind=st.sampled_from(["index", "soft"]),
       name=st.sampled_from(["cross_entropy", "focal"]), smoothing=st.sampled_from([0.0, 0.3]),
       weighted=st.booleans())
def test_softmax_losses_are_invariant_to_a_constant_per_row(data, rows, classes, positions,
                                                            kind, name, smoothing, weighted):
    shape = (rows, classes) if positions is None else (rows, classes, positions)
    tshape = (rows,) if positions is None else (rows, positions)
    logits = data.draw(hnp.arrays(np.float64, shape,
                                  elements=st.floats(-20, 20, allow_subnormal=False)))
    shift = data.draw(hnp.arrays(np.float64, tshape,
                                 elements=st.floats(-100, 100, allow_subnormal=False)))
    shifted = logits + np.expand_dims(shift, 1)
    index = data.draw(hnp.arrays(np.int64, tshape, elements=st.integers(0, classes - 1)))
    if kind == "index":
        t = index
    else:
        raw = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(0.01, 1.0)))
        t = raw / raw.sum(axis=1, keepdims=True)
    options = {}
    if name == "cross_entropy":
        options["label_smoothing"] = smoothing
        if weighted:
            options["weight"] = np.linspace(0.5, 2.0, classes)
    elif weighted:
        options["alpha"] = np.linspace(0.5, 2.0, classes)
    for reduction in ("mean", "sum", "none"):
        v0, g0 = lossjit.value_and_grad(name, logits, t, reduction=reduction, **options)
        v1, g1 = lossjit.value_and_grad(name, shifted, t, reduction=reduction, **options)
        scale = 1e-12 * (1 + np.abs(shift).max()) * classes
        np.testing.assert_allclose(v1, v0, rtol=1e-9, atol=100 * scale)
        np.testing.assert_allclose(g1, g0, rtol=1e-9, atol=100 * scale)


finite = {"allow_nan": False, "allow_infinity": False, "allow_subnormal": False}


def nonneg_inputs(name, data):
    size = data.draw(st.integers(1, 20))
    if name in ("mse", "l1", "huber", "smooth_l1"):
        x = data.draw(hnp.arrays(np.float64, size, elements=st.floats(-1e3, 1e3, **finite)))
        y = data.draw(hnp.arrays(np.float64, size, elements=st.floats(-1e3, 1e3, **finite)))
        return x, y, {}
    if name == "binary_cross_entropy":
        x = data.draw(hnp.arrays(np.float64, size, elements=st.floats(0.0, 1.0, **finite)))
        y = data.draw(hnp.arrays(np.float64, size, elements=st.floats(0.0, 1.0, **finite)))
        return x, y, {}
    if name in ("bce_with_logits", "sigmoid_focal"):
        x = data.draw(hnp.arrays(np.float64, size, elements=st.floats(-100, 100, **finite)))
        y = data.draw(hnp.arrays(np.float64, size, elements=st.floats(0.0, 1.0, **finite)))
        options = {}
        if name == "sigmoid_focal":
            options = {"alpha": data.draw(st.sampled_from([-1.0, 0.0, 0.25, 1.0])),
                       "gamma": data.draw(st.sampled_from([0.0, 0.5, 2.0]))}
        return x, y, options
    if name in ("cross_entropy", "focal"):
        classes = data.draw(st.integers(1, 6))
        x = data.draw(hnp.arrays(np.float64, (size, classes),
                                 elements=st.floats(-50, 50, **finite)))
        if data.draw(st.booleans()):
            t = data.draw(hnp.arrays(np.int64, size, elements=st.integers(0, classes - 1)))
        else:
            raw = data.draw(hnp.arrays(np.float64, (size, classes), elements=st.floats(0, 1)))
            t = raw / np.maximum(raw.sum(axis=1, keepdims=True), 1e-300)
        if name == "cross_entropy":
            options = {"label_smoothing": data.draw(st.sampled_from([0.0, 0.1, 1.0]))}
            if data.draw(st.booleans()):
                options["from_logits"] = False
                x = 1 / (1 + np.exp(-x))
        else:
            options = {"gamma": data.draw(st.sampled_from([0.0, 0.5, 2.0, 3.7])),
                       "alpha": data.draw(st.sampled_from([None, 0.0, 0.25, 1.0]))}
            if data.draw(st.booleans()):
                options["from_logits"] = False
                x = 1 / (1 + np.exp(-x))
        return x, t, options
    if name == "contrastive":
        dim = data.draw(st.integers(1, 4))
        x = data.draw(hnp.arrays(np.float64, (size, 2, dim),
                                 elements=st.floats(-10, 10, **finite)))
        labels = data.draw(hnp.arrays(np.int64, size, elements=st.integers(0, 1)))
        return x, labels, {"margin": data.draw(st.floats(0.0, 5.0))}
    if name == "triplet":
        dim = data.draw(st.integers(1, 4))
        x = data.draw(hnp.arrays(np.float64, (size, 3, dim),
                                 elements=st.floats(-10, 10, **finite)))
        return x, None, {"margin": data.draw(st.floats(-2.0, 5.0)),
                         "p": data.draw(st.sampled_from([1.0, 2.0, 3.0])),
                         "swap": data.draw(st.booleans())}
    return new_loss_strategy_inputs(name, data, size)


#: Values on a grid of 1/16 in [-8, 8]: exact in float32, so that a tie at a hinge (margin
#: - x == 0, ...) is a tie in float32 and float64 alike.
on_grid = st.integers(-128, 128).map(lambda k: k / 16)
plus_minus_one = st.sampled_from([1.0, -1.0])


def new_loss_strategy_inputs(name, data, size):
    """Hypothesis inputs for log_cosh to margin_ranking (valid for each, non-negative where the
    formula says so: nll on log-probabilities, hinge_embedding on distances)."""
    def arrays(shape, elements, dtype=np.float64):
        return data.draw(hnp.arrays(dtype, shape, elements=elements))

    if name in ("log_cosh", "pseudo_huber", "quantile"):
        x = arrays(size, st.floats(-1e3, 1e3, **finite))
        y = arrays(size, st.floats(-1e3, 1e3, **finite))
        options = {}
        if name == "pseudo_huber":
            options = {"delta": data.draw(st.sampled_from([0.1, 1.0, 3.0]))}
        if name == "quantile":
            options = {"quantile": data.draw(st.sampled_from([0.05, 0.5, 0.8]))}
        return x, y, options
    if name == "poisson_nll":
        log_input = data.draw(st.booleans())
        lo, hi = (-3.0, 3.0) if log_input else (0.0, 50.0)
        x = arrays(size, st.floats(lo, hi, **finite))
        y = arrays(size, st.integers(0, 20)).astype(np.float64)
        return x, y, {"log_input": log_input, "full": data.draw(st.booleans())}
    if name == "gaussian_nll":
        x = arrays(size, st.floats(-100, 100, **finite))
        y = arrays(size, st.floats(-100, 100, **finite))
        if data.draw(st.booleans()):
            var = data.draw(st.floats(0.0, 10.0, **finite))
        else:
            var = arrays(size, st.floats(0.0, 10.0, **finite))
        return x, y, {"var": var, "full": data.draw(st.booleans())}
    if name == "kl_div":
        x = arrays(size, st.floats(-20, 0, **finite))
        y = arrays(size, st.floats(0, 1, **finite))
        return x, y, {}
    if name == "hinge_embedding":
        x = arrays(size, on_grid.map(abs))  # distances
        return x, arrays(size, plus_minus_one), {"margin": data.draw(st.sampled_from(
            [0.0, 1.0, 2.5]))}
    if name == "soft_margin":
        x = arrays(size, st.floats(-100, 100, **finite))
        y = arrays(size, st.one_of(plus_minus_one, st.floats(-2, 2, **finite)))
        return x, y, {}
    if name in ("nll", "multi_margin", "poly1", "multilabel_soft_margin"):
        classes = data.draw(st.integers(1, 6))
        index = arrays(size, st.integers(0, classes - 1), np.int64)
        weight = (None if data.draw(st.booleans())
                  else arrays(classes, st.floats(0.1, 3.0, **finite)))  # > 0: no 0 / 0
        if name == "nll":
            x = arrays((size, classes), st.floats(-50, 0, **finite))  # log-probabilities
            return x, index, {"weight": weight}
        if name == "multi_margin":
            x = arrays((size, classes), on_grid)
            return x, index, {"weight": weight, "p": data.draw(st.sampled_from([1, 2])),
                              "margin": data.draw(st.sampled_from([0.0, 0.5, 1.0]))}
        x = arrays((size, classes), st.floats(-50, 50, **finite))
        if name == "multilabel_soft_margin":
            return x, arrays((size, classes), st.floats(0, 1, **finite)), {"weight": weight}
        # epsilon >= -1 keeps the terms >= 0 (-log p >= 1 - p); at -1 itself they are 0 up
        # to rounding when p -> 1, so the test stops short of it
        epsilon = data.draw(st.sampled_from([-0.5, 0.0, 1.0, 2.5]))
        if data.draw(st.booleans()):
            return x, index, {"epsilon": epsilon}
        raw = arrays((size, classes), st.floats(0, 1))
        return x, raw / np.maximum(raw.sum(axis=1, keepdims=True), 1e-300), {"epsilon": epsilon}
    if name == "cosine_embedding":
        dim = data.draw(st.integers(1, 4))
        x = arrays((size, 2, dim), on_grid)
        return x, arrays(size, st.sampled_from([1, -1]), np.int64), {
            "margin": data.draw(st.sampled_from([0.0, 0.25, -0.5]))}
    if name == "margin_ranking":
        x = arrays((size, 2), on_grid)
        return x, arrays(size, plus_minus_one), {
            "margin": data.draw(st.sampled_from([0.0, 0.5, -1.0]))}
    raise AssertionError(name)


#: Non-negative per term: every loss but poisson_nll, gaussian_nll and kl_div (whose terms
#: can be negative; kl_div's sum over a distribution cannot, tested below).
NONNEG = ["mse", "l1", "huber", "smooth_l1", "cross_entropy", "focal", "binary_cross_entropy",
          "bce_with_logits", "sigmoid_focal", "contrastive", "triplet", "log_cosh",
          "pseudo_huber", "quantile", "nll", "hinge_embedding", "multi_margin", "soft_margin",
          "multilabel_soft_margin", "poly1", "cosine_embedding", "margin_ranking"]


def test_nonneg_list_covers_every_loss_whose_terms_are_non_negative():
    assert set(NONNEG) == set(lossjit.names()) - {"poisson_nll", "gaussian_nll", "kl_div"}


@pytest.mark.parametrize("name", NONNEG)
@settings(max_examples=25, deadline=None, derandomize=True)
@given(data=st.data())
def test_losses_are_non_negative(name, data):
    x, t, options = nonneg_inputs(name, data)
    terms = lossjit.loss(name, x, t, reduction="none", **options)
    assert np.all(terms >= 0), (terms, options)
    assert lossjit.loss(name, x, t, reduction="sum", **options) >= 0
    assert lossjit.loss(name, x, t, **options) >= 0


@SETTINGS
@given(data=st.data(), rows=st.integers(1, 5), classes=st.integers(1, 6),
       reduction=st.sampled_from(["sum", "batchmean", "mean"]))
def test_kl_div_over_distributions_is_non_negative(data, rows, classes, reduction):
    """sum_c y_c (log y_c - x_c) >= 0 when x = log q for a distribution q (Gibbs)."""
    raw_q = data.draw(hnp.arrays(np.float64, (rows, classes), elements=st.floats(0.01, 1.0)))
    raw_y = data.draw(hnp.arrays(np.float64, (rows, classes), elements=st.floats(0.0, 1.0)))
    raw_y[:, 0] += 0.01  # not all zero
    x = np.log(raw_q / raw_q.sum(axis=1, keepdims=True))
    y = raw_y / raw_y.sum(axis=1, keepdims=True)
    assert lossjit.loss("kl_div", x, y, reduction=reduction) >= -1e-12
    assert lossjit.loss("kl_div", x, np.log(np.maximum(y, 1e-300)), reduction=reduction,
                        log_target=True) >= -1e-12


def value_scale(name, x, t, options):
    """The size of the numbers a loss's terms and gradients are differences of (poisson_nll,
    kl_div and gaussian_nll cancel, and so does a softmax gradient p - onehot: their float32
    error is relative to these, not to the result; e.g. with one class, p - 1 is exactly 0 in
    float64 and ~1e-8 in float32)."""
    if name in ("cross_entropy", "focal", "poly1") and options.get("from_logits", True):
        return 1.0 + abs(options.get("epsilon", 0.0))
    with np.errstate(all="ignore"):
        if name == "poisson_nll":
            if options.get("log_input", True):
                return float(np.max(np.exp(x) + np.abs(t * x) + np.abs(t)))
            return float(np.max(np.abs(x) + np.abs(t * np.log(x + 1e-8)) + t / (x + 1e-8)))
        if name == "kl_div":
            return float(np.max(np.abs(t) * (np.abs(np.log(np.maximum(t, 1e-300))) + np.abs(x))))
        if name == "gaussian_nll":
            v = np.maximum(np.broadcast_to(options["var"], x.shape), 1e-6)
            return float(np.max(np.abs(np.log(v)) + (x - t) ** 2 / v + np.abs(x - t) / v))
    return 0.0


FLOAT32_LOSSES = lossjit.names()


@pytest.mark.parametrize("name", FLOAT32_LOSSES)
@settings(max_examples=15, deadline=None, derandomize=True)
@given(data=st.data())
def test_float32_is_close_to_float64(name, data):
    x, t, options = nonneg_inputs(name, data)
    x32 = x.astype(np.float32)
    # Inputs below 1e-6 become 0: their squares (distances, norms) underflow in float32,
    # where a pair at d ~ 1e-45 is a pair at d = 0 (gradient 0), not at d > 0 (gradient +-2).
    x32[np.abs(x32) < 1e-6] = 0.0
    if name == "binary_cross_entropy":
        # keep clear of 0 and 1 (the clamp and PyTorch's gradient floor), and of the rounding
        # of x to float32 landing on them
        x32 = np.clip(x32, np.float32(1e-3), np.float32(1 - 1e-3))
    if name in ("cross_entropy", "focal") and options.get("from_logits") is False:
        x32 = np.clip(x32, np.float32(1e-3), np.float32(1.0))
    x64 = x32.astype(np.float64)
    t32 = t.astype(np.float32) if t is not None and t.dtype.kind == "f" else t
    t64 = t32.astype(np.float64) if t32 is not None and t32.dtype.kind == "f" else t32
    if name == "gaussian_nll" and isinstance(options["var"], np.ndarray):
        options = dict(options, var=options["var"].astype(np.float32).astype(np.float64))
    scale = value_scale(name, x64, t64, options)
    for reduction in reductions_of(name):
        v32, g32 = lossjit.value_and_grad(name, x32, t32, reduction=reduction, **options)
        v64, g64 = lossjit.value_and_grad(name, x64, t64, reduction=reduction, **options)
        assert g32.dtype == np.float32 and g32.shape == x32.shape
        tiny = 1e-6 * max(1.0, float(np.max(np.abs(v64))), scale)
        np.testing.assert_allclose(v32, v64, rtol=1e-5, atol=tiny)
        per_element = scale / x.size if reduction == "mean" else scale
        gscale = 1e-6 * max(1e-30, float(np.max(np.abs(g64))), per_element)
        np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=gscale)
