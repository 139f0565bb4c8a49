"""Properties of lossjit's kernels and losses, checked with Hypothesis.

- the serial and parallel kernels give the same bits (sums, block sums, gradients, Hessian
  diagonals, per-term losses), for sizes from 0 to a few blocks, including sizes that are not
  a multiple of the block; and the loss does not depend on what else a call stores;
- a kernel set with ``hessian`` writes ``hess`` in the same pass as the per-term ``losses``,
  each in its own output; one without leaves ``hess`` alone;
- the same bits for NUMBA_NUM_THREADS=1 and 2 (in subprocesses);
- cross-entropy (and softmax focal) are invariant to adding a constant to a row of logits;
- losses are >= 0 where their ``nonnegative`` flag says so (and kl_div's sum over
  distributions);
- float32 results are close to float64 results.

Every loss is covered, from the registry: its layout's examples (``spec.layout.examples``)
are the inputs, its options and kernel sets are read from its spec, and the raw kernels are
reached through the plan (``make_plan``, ``Plan.lay_out``, ``Plan.kernel_set``), so no kernel
name is written here.
"""

import hashlib
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lossjit
from lossjit import kernels, layouts, registry
from lossjit.blocking import BLOCK, PARALLEL_MIN, block_count
from lossjit.layouts import examples_for
from lossjit.plan import make_plan, sample_weights, weights_for

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

seeds = st.integers(0, 2**32 - 1)
dtypes = st.sampled_from([np.float64, np.float32])

#: The built-in losses (a loss registered by a test is not among them).
SPECS = {spec.name: spec for spec in registry.BUILTIN}
NAMES = list(SPECS)

#: Every built-in loss with each of its layout's examples (by position).
EXAMPLES = [
    pytest.param(spec.name, index, id=f"{spec.name}-{ex.label}")
    for spec in registry.BUILTIN
    for index, ex in enumerate(examples_for(spec.layout, 24, np.float64, width=4))
]

#: Element-wise losses: one term per element of predictions and targets of one shape.
ELEMENTWISE = [spec.name for spec in registry.BUILTIN
               if isinstance(spec.layout, layouts.Elementwise)]

#: Losses whose predictions carry a class axis (axis 1), and which kinds of target each takes.
CLASS_AXIS = [spec.name for spec in registry.BUILTIN
              if isinstance(spec.layout, layouts.ClassAxis)]

#: Losses with a kernel set that writes the Hessian's diagonal.
HESSIAN = [spec.name for spec in registry.BUILTIN
           if any(kernel_set.hessian for kernel_set in spec.kernel_sets())]


# --- calling the raw kernels as the API does ------------------------------------------------


def build_call(name, predictions, targets, **options):
    """(kernel set, laid-out inputs) of a call: the plan's own lay-out and choice of kernels."""
    plan = make_plan(name, **options)
    inputs = plan.lay_out(predictions, targets)
    return plan.kernel_set(inputs), inputs


def call_weights(inputs, sample_weight=None):
    """The kernel's weights, as the API makes them: the layout's own (class weights, kept
    targets), times the sample weights laid out as the terms."""
    sw = None if sample_weight is None else sample_weights(sample_weight, inputs)
    return weights_for(inputs, sw)


#: What a Hessian output holds before a kernel writes it: a kernel set without a Hessian must
#: leave it so, one with a Hessian must overwrite every entry.
SENTINEL = -7.0
SCALE = 0.37


def run_kernel(kernel, inputs, weights, grad=False, hess=False, terms=False, sums=False):
    """Call a raw kernel with the 9-slot signature ``kernel(x, y, w, grad, hess, losses, sums,
    scale, *params)``, an empty array in each slot not asked for; returns (sum, grad, hess,
    terms, block sums)."""
    x = inputs.x
    layout = inputs.terms_layout

    def output(wanted, shape, fill=None):
        if not wanted:
            return np.empty((0,) * len(shape), dtype=x.dtype)
        return np.empty(shape, x.dtype) if fill is None else np.full(shape, fill, x.dtype)

    rows = x.shape[0]
    block_sums = (np.empty(block_count(rows, x.size // rows if rows else 1)) if sums
                  else np.empty(0))
    g, h, t = output(grad, x.shape), output(hess, x.shape, SENTINEL), output(terms, layout)
    total = kernel(x, inputs.y, weights, g, h, t, block_sums, SCALE, *inputs.params)
    return total, g, h, t, block_sums


#: What a call stores: (grad, hess, terms, block sums). A Hessian is only ever asked for with
#: a gradient, as the API does.
STORES = [
    (False, False, False, False), (True, False, False, False), (False, False, True, True),
    (True, False, True, True), (True, True, False, False), (True, True, True, True),
]


def same(a, b):
    """Equal to the bit as the old tests meant it (array_equal, ==), NaN equal to NaN."""
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def assert_serial_equals_parallel(kernel_set, inputs, sample_weight=None):
    """The serial and parallel kernels of ``kernel_set`` give the same bits for every set of
    outputs; the loss, gradient, Hessian and terms do not depend on what else is stored; the
    kernel returns its block sums added in block order; and ``hess`` is written exactly when
    the kernel set has a Hessian, beside the per-term losses in the same pass."""
    name = kernel_set.name
    if not name.startswith("user_"):
        assert getattr(kernels, name) is kernel_set.serial, name
        assert getattr(kernels, name + "_parallel") is kernel_set.parallel, name
    weights = call_weights(inputs, sample_weight)
    first = {}
    for stores in STORES:
        want_grad, want_hess, want_terms, want_sums = stores
        serial = run_kernel(kernel_set.serial, inputs, weights, *stores)
        parallel = run_kernel(kernel_set.parallel, inputs, weights, *stores)
        assert isinstance(serial[0], float) and isinstance(parallel[0], float)
        for what, s, p in zip(("sum", "grad", "hess", "terms", "sums"), serial, parallel,
                              strict=True):
            assert same(s, p), (name, stores, what, s, p)
        total, grad, hess, terms, block_sums = serial
        assert same(total, first.setdefault("sum", total)), (name, stores, total, first["sum"])
        if want_grad:
            assert same(grad, first.setdefault("grad", grad)), (name, stores)
        if want_terms:
            assert same(terms, first.setdefault("terms", terms)), (name, stores)
        if want_sums:  # the kernel returns its block sums added in block order
            sums = block_sums.tolist()
            in_order = sum(sums[1:], sums[0]) if sums else 0.0
            assert same(in_order, total), (name, stores, total)
        if want_hess:
            if kernel_set.hessian:
                assert not (hess == SENTINEL).any(), (name, "hess not written")
                assert same(hess, first.setdefault("hess", hess)), (name, stores)
            else:
                assert (hess == SENTINEL).all(), (name, "hess written without a Hessian")


# --- options and inputs from the registry ---------------------------------------------------

#: Values tried for scalar options, each kept where the option's check accepts it.
FLOAT_VALUES = (0.0, 0.3, 0.7, 1.5)
INT_VALUES = (0, 1, 2)


def _valid(param, value):
    return param.check is None or param.check(value)


def random_options(spec, predictions, own, rng, classes=None):
    """Options drawn from what the spec declares: the inputs' ``own`` options (those they
    need), then for every other option its default or another valid value; an array option is
    absent or given, with the predictions' shape where it broadcasts against them and one
    value per class otherwise (``classes``, default the predictions' last axis)."""
    options = {}
    for param in spec.params:
        if param.name in own:
            options[param.name] = own[param.name]
            continue
        if param.kind == "bool":
            choices = [param.default]  # flipping one can leave the example's domain
        elif param.kind == "int":
            choices = [param.default, *(v for v in INT_VALUES if _valid(param, v))]
        elif param.kind == "float":
            choices = [param.default, *(v for v in FLOAT_VALUES if _valid(param, v))]
        else:
            shape = (predictions.shape if param.broadcasts
                     else (predictions.shape[-1] if classes is None else classes,))
            array = rng.uniform(0.5, 2.0, shape)
            choices = [None, array] if param.kind == "array" else [None, 0.25, array]
        options[param.name] = choices[rng.integers(len(choices))]
    return options


def rows_of(spec, predictions, targets, options, lo, hi):
    """Entries ``lo:hi`` of the predictions' axis 0, with their targets and the options that
    broadcast against the predictions."""
    options = dict(options)
    for param in spec.params:
        value = options.get(param.name)
        if param.broadcasts and isinstance(value, np.ndarray) and value.ndim:
            options[param.name] = np.broadcast_to(value, predictions.shape)[lo:hi]
    if targets is not None and np.ndim(targets):
        targets = np.asarray(targets)[lo:hi]
    return predictions[lo:hi], targets, options


def example_call(name, index, size, seed, dtype, *, vary=True):
    """(predictions, targets, options) of the ``index``-th example of ``name`` with about
    ``size`` numbers of ``dtype`` (0: no rows), with options drawn by :func:`random_options`
    (its own only, without ``vary``)."""
    spec = SPECS[name]
    rng = np.random.default_rng(seed)
    ex = examples_for(spec.layout, max(size, 1), dtype, seed=seed, width=4)[index]
    x, t = ex.predictions, ex.targets
    options = random_options(spec, x, ex.options, rng) if vary else dict(ex.options)
    if size == 0:
        x, t, options = rows_of(spec, x, t, options, 0, 0)
    return x, t, options


def term_weights(inputs, rng):
    return rng.uniform(0.0, 2.0, size=inputs.terms_shape)


# --- serial == parallel ---------------------------------------------------------------------

# Sizes around the block boundaries, and a few blocks in all.
NUMBERS = st.integers(0, 3 * BLOCK + 700)
EDGE_SIZES = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 3, 3 * BLOCK]


def test_the_examples_reach_every_kernel_set():
    """The layouts' examples (with their own options) run every kernel set of every loss:
    every variant its layout can choose is covered by the tests below."""
    for spec in registry.BUILTIN:
        reached = set()
        for ex in examples_for(spec.layout, 24, np.float64, width=4):
            reached.add(build_call(spec.name, ex.predictions, ex.targets, **ex.options)[0].name)
        assert reached == {kernel_set.name for kernel_set in spec.kernel_sets()}, spec.name


@pytest.mark.parametrize("name, index", EXAMPLES)
@SETTINGS
@given(size=NUMBERS, seed=seeds, dtype=dtypes, weighted=st.booleans())
@example(size=0, seed=0, dtype=np.float64, weighted=False)
@example(size=BLOCK + 1, seed=1, dtype=np.float32, weighted=True)
def test_serial_equals_parallel(name, index, size, seed, dtype, weighted):
    x, t, options = example_call(name, index, size, seed, dtype)
    kernel_set, inputs = build_call(name, x, t, **options)
    rng = np.random.default_rng(seed + 1)
    assert_serial_equals_parallel(kernel_set, inputs,
                                  term_weights(inputs, rng) if weighted else None)


@pytest.mark.parametrize("size", EDGE_SIZES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_serial_equals_parallel_at_block_edges(name, size):
    x, t, options = example_call(name, 0, size, size, np.float64, vary=False)
    assert x.size == size
    assert_serial_equals_parallel(*build_call(name, x, t, **options))


@SETTINGS
@given(rows=st.integers(0, 3 * BLOCK // 5 + 50), seed=seeds, dtype=dtypes,
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
    assert_serial_equals_parallel(*build_call("bce_with_logits", x, y, **options))


def target_kinds(name):
    """The kinds of target a class-axis loss takes, from its layout: class indices; class
    probabilities (unless it takes indices only); and, for a loss that also takes
    probabilities as predictions (``from_logits=False``), those with one-hot targets."""
    layout = SPECS[name].layout
    return (["index"] + (["soft"] if layout.index_only is None else [])
            + (["probs"] if layout.probabilities else []))


CLASS_CASES = [(name, kind) for name in CLASS_AXIS for kind in target_kinds(name)]


@pytest.mark.parametrize("name, kind", CLASS_CASES, ids=[f"{n}-{k}" for n, k in CLASS_CASES])
@SETTINGS
@given(rows=st.integers(0, 3 * BLOCK // 6 + 40), classes=st.integers(1, 7),
       positions=st.sampled_from([1, 1, 3]), seed=seeds, dtype=dtypes,
       weighted=st.booleans())
@example(rows=BLOCK, classes=1, positions=1, seed=0, dtype=np.float64, weighted=False)
@example(rows=BLOCK // 6 + 1, classes=6, positions=1, seed=1, dtype=np.float64,
         weighted=True)
def test_serial_equals_parallel_classes(name, kind, rows, classes, positions, seed, dtype,
                                        weighted):
    """Class axes of every size, (N, C, d) positions where the layout takes them, ignored
    targets (``ignore_index`` drawn among the classes), class weights and smoothing: the
    options are drawn from the spec."""
    spec = SPECS[name]
    rng = np.random.default_rng(seed)
    if spec.layout.max_ndim is not None:
        positions = 1
    shape = (rows, classes) if positions == 1 else (rows, classes, positions)
    tshape = (rows,) if positions == 1 else (rows, positions)
    if kind == "probs":
        x = rng.uniform(0.0, 1.0, size=shape)
    else:
        x = rng.normal(size=shape) * 3
    index = rng.integers(0, classes, size=tshape)
    # probabilities as predictions take indices, one-hot or soft targets
    targets = kind if kind != "probs" else ("index", "one-hot", "soft")[rng.integers(3)]
    if targets == "index":
        t = index
    elif targets == "one-hot":
        t = np.ascontiguousarray(np.moveaxis(np.eye(classes)[index], -1, 1))
    else:
        soft = rng.uniform(size=shape)
        t = soft / soft.sum(axis=1, keepdims=True)
    own = {"from_logits": False} if kind == "probs" else {}
    options = random_options(spec, x, own, rng, classes=classes)
    kernel_set, inputs = build_call(name, x.astype(dtype), t, **options)
    assert_serial_equals_parallel(kernel_set, inputs,
                                  term_weights(inputs, rng) if weighted else None)


@SETTINGS
@given(batch=st.integers(0, 3 * BLOCK // 8 + 30), dim=st.integers(1, 5), seed=seeds,
       margin=st.floats(0.0, 3.0), column=st.booleans(), dtype=dtypes)
@example(batch=BLOCK // 8, dim=4, seed=0, margin=1.0, column=False, dtype=np.float64)
def test_serial_equals_parallel_contrastive(batch, dim, seed, margin, column, dtype):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 2, dim)).astype(dtype)
    x[::7, 1] = x[::7, 0]  # some pairs at d = 0
    labels = rng.integers(0, 2, size=(batch, 1) if column else batch)
    assert_serial_equals_parallel(*build_call("contrastive", x, labels, margin=margin))


@SETTINGS
@given(batch=st.integers(0, 3 * BLOCK // 9 + 30), dim=st.integers(1, 4), seed=seeds,
       margin=st.floats(-1.0, 3.0), p=st.sampled_from([1.0, 2.0, 3.0, 1.5]),
       eps=st.sampled_from([0.0, 1e-6, 0.1]), swap=st.booleans(), dtype=dtypes)
def test_serial_equals_parallel_triplet(batch, dim, seed, margin, p, eps, swap, dtype):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 3, dim)).astype(dtype)
    assert_serial_equals_parallel(*build_call("triplet", x, None, margin=margin, p=p, eps=eps,
                                              swap=swap))


def _gaussian(var):
    def make(units, rng):
        x, y = rng.normal(size=(units, 3)) * 2, rng.normal(size=(units, 3))
        return x, y, {"full": True, "var": var(units, rng)}
    return make


def _poisson_rates(units, rng):
    x = rng.uniform(0.0, 3.0, (units, 3))
    return x, rng.integers(0, 5, size=(units, 3)).astype(np.float64), {"log_input": False,
                                                                        "full": True}


def _kl_div(log_target):
    def make(units, rng):
        x = np.log(rng.dirichlet(np.ones(4), size=units))
        y = rng.dirichlet(np.ones(4), size=units)
        y[::5, 0] = 0.0  # the y = 0 terms
        if log_target:
            return x, np.log(y + 0.01), {"log_target": True}
        return x, y, {}
    return make


def _zero_vectors(units, rng):
    x = rng.normal(size=(units, 2, 3))
    x[::9, 0] = 0.0
    return x, np.where(rng.uniform(size=units) < 0.5, -1, 1), {"margin": 0.2}


#: Inputs the layouts' examples do not make: option values that change the inputs' domain
#: (rates instead of log-rates, log-targets), other shapes of gaussian_nll's var, targets or
#: vectors at 0.
SPECIAL_INPUTS = {
    "gaussian_nll-float": _gaussian(lambda units, rng: 0.6),
    "gaussian_nll-full": _gaussian(lambda units, rng: rng.uniform(0.0, 2.0, (units, 3))),
    "gaussian_nll-column": _gaussian(lambda units, rng: rng.uniform(0.0, 2.0, (units, 1))),
    "poisson_nll-rates": _poisson_rates,
    "kl_div-zero_targets": _kl_div(False),
    "kl_div-log_target": _kl_div(True),
    "cosine_embedding-zero_vectors": _zero_vectors,
}


def test_special_inputs_are_of_registered_losses():
    assert {key.split("-")[0] for key in SPECIAL_INPUTS} <= set(NAMES)


@pytest.mark.parametrize("case", SPECIAL_INPUTS)
@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(units=st.integers(0, 3 * BLOCK // 3 + 40), seed=seeds, dtype=dtypes,
       weighted=st.booleans())
@example(units=BLOCK // 3 + 1, seed=0, dtype=np.float64, weighted=True)
def test_serial_equals_parallel_special_inputs(case, units, seed, dtype, weighted):
    rng = np.random.default_rng(seed)
    x, t, options = SPECIAL_INPUTS[case](units, rng)
    if t is not None and t.dtype.kind == "f":
        t = t.astype(dtype)
    kernel_set, inputs = build_call(case.split("-")[0], x.astype(dtype), t, **options)
    assert_serial_equals_parallel(kernel_set, inputs,
                                  term_weights(inputs, rng) if weighted else None)


def _large_example(name, index):
    """The ``index``-th example of ``name`` with at least PARALLEL_MIN numbers and halves of
    fewer, as (spec, predictions, targets, options)."""
    spec = SPECS[name]
    ex = examples_for(spec.layout, PARALLEL_MIN + 4000, np.float64, seed=5, width=4)[index]
    return spec, ex.predictions, ex.targets, ex.options


HESSIAN_EXAMPLES = [
    pytest.param(name, index, id=f"{name}-{ex.label}")
    for name in HESSIAN
    for index, ex in enumerate(examples_for(SPECS[name].layout, 24, np.float64, width=4))
    if build_call(name, ex.predictions, ex.targets, **ex.options)[0].hessian
]


@pytest.mark.parametrize("name, index", HESSIAN_EXAMPLES)
def test_grad_hess_of_a_large_input_equals_that_of_its_halves(name, index):
    """A large input runs the parallel kernels, its halves the serial ones; with reduction
    "sum" every term's gradient and Hessian entries are its own, so both must agree to the
    bit."""
    spec, x, t, options = _large_example(name, index)
    rows = x.shape[0]
    first = rows_of(spec, x, t, options, 0, rows // 2)
    rest = rows_of(spec, x, t, options, rows // 2, rows)
    assert x.size >= PARALLEL_MIN > max(first[0].size, rest[0].size)
    g, h = lossjit.grad_hess(name, x, t, reduction="sum", **options)
    g1, h1 = lossjit.grad_hess(name, first[0], first[1], reduction="sum", **first[2])
    g2, h2 = lossjit.grad_hess(name, rest[0], rest[1], reduction="sum", **rest[2])
    assert np.array_equal(g, np.concatenate([g1, g2]))
    assert np.array_equal(h, np.concatenate([h1, h2]))


# --- the same bits for any thread count ------------------------------------------------------

THREAD_SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import numba
    import numpy as np
    import lossjit
    from lossjit.blocking import PARALLEL_MIN

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
    from lossjit.blocking import PARALLEL_MIN

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
    from lossjit.blocking import BLOCK

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
            ts = serial(x, y, none, gs, none, none, none, 1.0, *params)
            tp = parallel(x, y, none, gp, none, none, none, 1.0, *params)
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
    return layout_inputs(name, data, size)


def layout_inputs(name, data, size):
    """Inputs of a loss without strategies of its own here: one of its layout's examples, of
    about ``size`` numbers, with a drawn seed."""
    spec = SPECS[name]
    seed = data.draw(seeds)
    found = examples_for(spec.layout, size, np.float64, seed=seed, width=data.draw(
        st.integers(1, 6)))
    ex = found[data.draw(st.integers(0, len(found) - 1))]
    return ex.predictions, ex.targets, dict(ex.options)


#: Non-negative per term, as their specs say (kl_div's sum over a distribution is, tested
#: below, though its terms are not).
NONNEG = [spec.name for spec in registry.BUILTIN if spec.nonnegative]


@pytest.mark.parametrize("name", [name for name in NAMES if name not in NONNEG])
def test_a_loss_not_flagged_nonnegative_has_negative_terms(name):
    """The flag is not merely cautious: a loss without it takes valid inputs (its layout's
    examples) with a negative term, so every loss whose terms are all >= 0 has the flag."""
    spec = SPECS[name]
    lowest = math.inf
    for seed in range(5):
        for ex in examples_for(spec.layout, 1000, np.float64, seed=seed, width=4):
            terms = lossjit.loss(name, ex.predictions, ex.targets, reduction="none",
                                 **ex.options)
            lowest = min(lowest, float(np.min(terms)))
    assert lowest < 0, f"{name}: no negative term in its examples; is it nonnegative?"


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


FLOAT32_LOSSES = NAMES


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
    for reduction in SPECS[name].reductions:
        v32, g32 = lossjit.value_and_grad(name, x32, t32, reduction=reduction, **options)
        v64, g64 = lossjit.value_and_grad(name, x64, t64, reduction=reduction, **options)
        assert g32.dtype == np.float32 and g32.shape == x32.shape
        tiny = 1e-6 * max(1.0, float(np.max(np.abs(v64))), scale)
        np.testing.assert_allclose(v32, v64, rtol=1e-5, atol=tiny)
        per_element = scale / x.size if reduction == "mean" else scale
        gscale = 1e-6 * max(1e-30, float(np.max(np.abs(g64))), per_element)
        np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=gscale)
