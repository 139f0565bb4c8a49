"""A call cut into pieces gives the whole call's results to the bit, checked with Hypothesis.

1. For every built-in loss, in float32 and float64, on example inputs (from the layout's
   ``examples``) spanning several kernel blocks (3 to 8 multiples of the layout's ``cut``,
   plus a remainder), with and without sample weights (some zero), class weights (``weight``
   / ``alpha``, some zero), broadcast weights, ``pos_weight``, variances of several shapes
   (var of the means' shape without its last axis among them),
   targets set to ``ignore_index``, extra position axes where the layout takes them,
   and for each of the loss's reductions: :func:`~lossjit.plan.run_pieces` at random allowed
   bounds (empty pieces included) gives the same loss, gradient, per-term losses and (where
   the kernels have one) Hessian as :func:`~lossjit.plan.run`, bit for bit; the value-only
   and Hessian passes give the same loss as the gradient pass; ``lossjit.loss``,
   ``value_and_grad`` and ``grad_hess`` agree with ``run``; and the mean's denominator,
   built from the pieces as ``run_pieces`` builds it (``add_count`` into one ``ExactSum``),
   is the whole call's.
2. The combination is ``math.fsum`` to the bit whatever the order (huge and tiny magnitudes,
   subnormals, cancellations, ties); the block sums of per-term numbers cut at block
   boundaries are the whole's, so their exact sum is too; NaN/inf inputs give what an IEEE
   sum gives.
3. ``run_pieces`` refuses bounds that are not multiples of the cut or that fall, accepts empty
   pieces, and layouts that cannot be cut (one pair, one group, a class vector) have no cut
   and refuse bounds; without bounds they run as one piece.
4. The loss, gradient and Hessian are the same bits with 1 and 2 Numba threads on inputs that
   run on the parallel kernels.

Floats are compared by their bits (so 0.0 and -0.0 differ), except that any NaN matches any
NaN: the whole call's sum of NaNs comes from the kernel, the pieces' from ``math.fsum``.
"""

import math

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lossjit
from lossjit.blocking import PARALLEL_MIN
from lossjit.errors import LossjitError
from lossjit.layouts import (
    ClassAxis,
    Elementwise,
    LastAxisClasses,
    PositiveWeights,
    Variance,
)
from lossjit.plan import (
    ExactSum,
    _piece_options,
    add_count,
    combine,
    denominator,
    make_plan,
    run,
    run_pieces,
    sample_weights,
)
from lossjit.registry import BUILTIN, resolve

SETTINGS = settings(max_examples=8, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
SUM_SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None)
DTYPES = (np.float32, np.float64)
seeds = st.integers(0, 2**32 - 1)


# --- comparing bits ---------------------------------------------------------------------------


def same_float(a, b):
    """The same float to the bit (NaN matches NaN)."""
    if math.isnan(a) and math.isnan(b):
        return True
    return np.float64(a).tobytes() == np.float64(b).tobytes()


def assert_same_array(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, a.shape, b.dtype, b.shape)
    if a.dtype.kind != "f":
        assert np.array_equal(a, b), what
        return
    nan = np.isnan(a)
    assert np.array_equal(nan, np.isnan(b)), (what, "NaNs differ")
    bits = np.dtype(f"u{a.dtype.itemsize}")
    differ = np.flatnonzero((a.view(bits) != b.view(bits)) & ~nan)
    assert not differ.size, (what, f"{differ.size} elements differ, first at flat index "
                             f"{differ[0]}: {a.flat[differ[0]]!r} vs {b.flat[differ[0]]!r}")


def assert_same_value(a, b, what):
    if a is None or b is None:
        assert a is None and b is None, what
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), what
        assert_same_array(a, b, what)
    else:
        assert isinstance(a, float) and isinstance(b, float), (what, type(a), type(b))
        assert same_float(a, b), (what, a, b)


def assert_same_result(a, b, what):
    assert_same_value(a.value, b.value, (what, "value"))
    assert sorted(a.grads) == sorted(b.grads), (what, "grads")
    for name in a.grads:
        assert_same_array(a.grads[name], b.grads[name], (what, "grad", name))
    assert (a.hess is None) == (b.hess is None), (what, "hess")
    if a.hess is not None:
        assert_same_array(a.hess, b.hess, (what, "hess"))


# --- inputs -----------------------------------------------------------------------------------


def draw_choices(data, spec):
    """Everything about a case but its size, drawn once."""
    layout = spec.layout
    params = {p.name: p for p in spec.params}
    probe = layout.examples(64, np.float64, np.random.default_rng(0), width=3)
    extra = 1
    if isinstance(layout, (Elementwise, Variance, LastAxisClasses, PositiveWeights)) or (
            isinstance(layout, ClassAxis) and layout.max_ndim is None):
        extra = data.draw(st.sampled_from([1, 1, 2, 3]), label="extra axis")
    choices = {
        "seed": data.draw(seeds, label="seed"),
        "width": data.draw(st.integers(3, 5), label="width"),
        "example": data.draw(st.integers(0, len(probe) - 1), label="example"),
        "extra": extra,
        "sample_weight": data.draw(st.sampled_from([None, "terms", "leading"]),
                                   label="sample_weight"),
        "zeros": data.draw(st.sampled_from([0.0, 0.3, 1.0]), label="zero weights"),
    }
    if any(p.kind in ("array", "float_or_array") for p in spec.params
           if p.name in ("weight", "alpha")):
        choices["weight"] = data.draw(
            st.sampled_from([None, "classes", "full", "last", "scalar"]), label="weight")
        choices["class_zeros"] = data.draw(st.sampled_from([0.0, 0.4]), label="class zeros")
    if "pos_weight" in params:
        choices["pos_weight"] = data.draw(
            st.sampled_from([None, "one", "last", "channels"]), label="pos_weight")
    if "var" in params:
        choices["var"] = data.draw(
            st.sampled_from(["full", "scalar", "last one", "first one", "no last"]),
            label="var")
    if "ignore_index" in params:
        choices["ignore_index"] = data.draw(st.sampled_from([None, -100, -1, 0, 2]),
                                            label="ignore_index")
        choices["ignored"] = data.draw(st.sampled_from(["few", "some", "all"]),
                                       label="ignored")
    return choices


def _to_positions(a, n, d):
    """(n * d, ...) rows as (n, d, ...), then the class axis moved to axis 1."""
    return np.ascontiguousarray(np.moveaxis(a.reshape(n, d, *a.shape[1:]), 2, 1))


def materialise(spec, dtype, choices, n):
    """(predictions, targets, options, sample_weight) with ``n`` indices on axis 0."""
    layout = spec.layout
    rng = np.random.default_rng(choices["seed"])
    d = choices["extra"]
    per = layout.examples(1000, dtype, np.random.default_rng(0),
                          width=choices["width"])[choices["example"]].predictions
    per = per[0].size
    example = layout.examples(n * d * per, dtype, rng,
                              width=choices["width"])[choices["example"]]
    x, y, options = example.predictions, example.targets, dict(example.options)
    assert x.shape[0] == n * d, (spec.name, x.shape, n, d)
    if d > 1:
        if isinstance(layout, (Elementwise, Variance)):
            x, y = x.reshape(n, d), y.reshape(n, d)
            if "var" in options:
                options["var"] = options["var"].reshape(n, d)
        elif isinstance(layout, LastAxisClasses):
            x, y = x.reshape(n, d, -1), y.reshape(n, d, -1)
        else:  # class axis on axis 1: (n, C, d)
            x = _to_positions(x, n, d)
            y = (np.asarray(y).reshape(n, d) if np.asarray(y).ndim == 1
                 else _to_positions(np.asarray(y), n, d))
            options.pop("weight", None)
            options.pop("pos_weight", None)
    params = {p.name: p for p in spec.params}
    classed = isinstance(layout, (ClassAxis, LastAxisClasses))
    classes = (x.shape[1] if isinstance(layout, ClassAxis) else x.shape[-1]) if classed else 0

    def positive(shape, zeros=0.0):
        w = rng.uniform(0.1, 2.0, shape)
        return np.where(rng.random(shape) < zeros, 0.0, w)

    kind = choices.get("weight")
    if kind is not None:
        name = "weight" if "weight" in params else "alpha"
        if classed:
            value = (float(rng.uniform(0.1, 2.0)) if kind == "scalar" and name == "alpha"
                     else positive(classes, choices["class_zeros"]))
        else:  # weights that broadcast against the predictions
            shape = {"full": x.shape, "last": x.shape[-1:], "scalar": (1,),
                     "classes": x.shape[1:]}[kind]
            value = positive(shape, choices["class_zeros"])
        options[name] = value
    if "pos_weight" in choices:
        kind = choices["pos_weight"]
        if kind is None:
            options.pop("pos_weight", None)
        else:
            shape = {"one": (1,), "last": x.shape[-1:],
                     "channels": x.shape[1:2] + (1,) * (x.ndim - 2)}[kind]
            options["pos_weight"] = rng.uniform(0.5, 3.0, shape)
    if "var" in choices:
        kind = choices["var"]
        if kind == "scalar":
            options["var"] = float(rng.uniform(0.1, 3.0))
        elif kind == "last one":
            options["var"] = rng.uniform(0.1, 3.0, x.shape[:-1] + (1,)).astype(dtype)
        elif kind == "first one":
            options["var"] = rng.uniform(0.1, 3.0, (1,) + x.shape[1:]).astype(dtype)
        elif kind == "no last" and x.ndim > 1:
            options["var"] = rng.uniform(0.1, 3.0, x.shape[:-1]).astype(dtype)
    ignore = choices.get("ignore_index")
    if ignore is not None:
        options["ignore_index"] = ignore
        y = np.asarray(y)
        if y.dtype.kind in "iu":
            y = y.copy()
            flat = y.reshape(-1)
            count = {"few": min(3, flat.size), "some": flat.size // 3,
                     "all": flat.size}[choices["ignored"]]
            flat[rng.choice(flat.size, count, replace=False)] = ignore

    plan = make_plan(spec.name, **options)
    terms = plan.lay_out(x, y).terms_shape
    sw = None
    if choices["sample_weight"] is not None:
        shape = terms
        if choices["sample_weight"] == "leading":
            shape = terms[:1] + (1,) * (len(terms) - 1)
        sw = positive(shape, choices["zeros"])
    return x, y, options, sw


def sized_case(spec, dtype, choices, multiples, rest=0, at_least=0):
    """The case of ``choices`` with ``multiples`` multiples of its cut (more where needed for
    ``at_least`` numbers) and ``rest`` more on the predictions' axis 0; and that multiple."""
    x, _, options, _ = materialise(spec, dtype, choices, 1)
    multiple = spec.layout.cut(x.shape, make_plan(spec.name, **options).options)
    assert multiple is not None and multiple >= 1, (spec.name, x.shape)
    multiples = max(multiples, at_least // (multiple * x.size) + 1)
    x, y, options, sw = materialise(spec, dtype, choices, multiples * multiple + rest)
    assert spec.layout.cut(x.shape, make_plan(spec.name, **options).options) == multiple
    return x, y, options, sw, multiple


def draw_case(data, spec, dtype):
    """A case whose predictions span 3 to 8 multiples of the cut (plus a remainder), and
    bounds: sorted multiples of the cut, repeats (empty pieces) allowed."""
    choices = draw_choices(data, spec)
    x, _, options, _ = materialise(spec, dtype, choices, 1)
    multiple = spec.layout.cut(x.shape, make_plan(spec.name, **options).options)
    m = data.draw(st.integers(3, 8), label="multiples")
    rest = data.draw(st.sampled_from([0, 1, multiple - 1, multiple // 2]), label="remainder")
    x, y, options, sw, multiple = sized_case(spec, dtype, choices, m, rest)
    positions = list(range(0, x.shape[0] + 1, multiple))
    bounds = sorted(data.draw(st.lists(st.sampled_from(positions), max_size=6), label="bounds"))
    return x, y, options, sw, bounds


def piece_denominators(plan, x, y, sw, bounds):
    """The mean's denominator of the whole call, and built from the pieces at ``bounds`` as
    run_pieces builds it (one ExactSum that every piece adds its count to)."""
    whole = plan.lay_out(x, y)
    count = ExactSum()
    add_count(count, whole, None if sw is None else sample_weights(sw, whole))
    full_sw = (None if sw is None else
               np.broadcast_to(np.asarray(sw, dtype=np.float64), whole.terms_shape))
    pieces = ExactSum()
    edges = [0, *bounds, x.shape[0]]
    for lo, hi in zip(edges, edges[1:], strict=False):
        inputs = plan.lay_out(x[lo:hi], None if y is None else np.asarray(y)[lo:hi],
                              _piece_options(plan, x.shape, lo, hi))
        add_count(pieces, inputs, None if full_sw is None else
                  sample_weights(full_sw[lo:hi], inputs))
    return denominator(plan, count, x), denominator(plan, pieces, x), count, pieces


# --- 1. pieces and the whole ------------------------------------------------------------------


def check_pieces(spec, x, y, options, sw, bounds, empty="nan"):
    """Every check of part 1 on one case, for each of the loss's reductions."""
    name = spec.name
    plan = make_plan(name, **options)
    has_hessian = plan.kernel_set(plan.lay_out(x, y)).hessian
    for reduction in spec.reductions:
        what = (name, reduction, x.dtype.name, x.shape, bounds)
        kw = {"reduction": reduction, "empty": empty}
        plan = make_plan(name, **kw, **options)
        whole = run(plan, x, y, sample_weight=sw)
        assert_same_result(run_pieces(plan, x, y, sample_weight=sw, bounds=bounds), whole,
                           (*what, "pieces"))

        value_only = make_plan(name, want_grad=False, **kw, **options)
        alone = run(value_only, x, y, sample_weight=sw)
        assert not alone.grads and alone.hess is None
        assert_same_value(alone.value, whole.value, (*what, "value-only"))
        assert_same_result(run_pieces(value_only, x, y, sample_weight=sw, bounds=bounds),
                           alone, (*what, "value-only pieces"))

        api_value = lossjit.loss(name, x, y, sample_weight=sw, **kw, **options)
        assert_same_value(api_value, whole.value, (*what, "lossjit.loss"))
        value, grad = lossjit.value_and_grad(name, x, y, sample_weight=sw, **kw, **options)
        assert_same_value(value, whole.value, (*what, "value_and_grad"))
        assert_same_array(grad, whole.grads["predictions"], (*what, "value_and_grad grad"))

        if has_hessian:
            with_hess = make_plan(name, hessian=True, **kw, **options)
            full = run(with_hess, x, y, sample_weight=sw)
            assert full.hess is not None
            assert_same_result(run_pieces(with_hess, x, y, sample_weight=sw, bounds=bounds),
                               full, (*what, "hessian pieces"))
            assert_same_value(full.value, api_value, (*what, "hessian pass vs loss()"))
            assert_same_array(full.grads["predictions"], whole.grads["predictions"],
                              (*what, "hessian pass's gradient"))
            g, h = lossjit.grad_hess(name, x, y, sample_weight=sw, **kw, **options)
            assert_same_array(g, full.grads["predictions"], (*what, "grad_hess grad"))
            assert_same_array(h, full.hess, (*what, "grad_hess hess"))

        d_whole, d_pieces, count, pieces = piece_denominators(plan, x, y, sw, bounds)
        assert isinstance(d_whole, float) and isinstance(d_pieces, float)
        assert same_float(d_whole, d_pieces), (*what, "denominator", d_whole, d_pieces)
        assert same_float(count.value(), pieces.value()), (*what, "count")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("spec", BUILTIN, ids=lambda s: s.name)
@SETTINGS
@given(data=st.data())
def test_pieces_give_the_whole_calls_bits(spec, dtype, data):
    x, y, options, sw, bounds = draw_case(data, spec, dtype)
    empty = data.draw(st.sampled_from(["nan", "zero"]), label="empty")
    check_pieces(spec, x, y, options, sw, bounds, empty)


def test_every_loss_is_covered():
    """Part 1 runs every built-in loss, each of which can be cut on its examples."""
    rng = np.random.default_rng(0)
    for spec in BUILTIN:
        for ex in spec.layout.examples(100, np.float64, rng, width=3):
            options = make_plan(spec.name, **ex.options).options
            assert spec.layout.cut(ex.predictions.shape, options) is not None, spec.name


@pytest.mark.parametrize("bounds", [[], [2048]])
def test_gaussian_nll_var_without_the_last_axis_in_pieces(bounds):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(4096, 2)), rng.normal(size=(4096, 2))
    var = rng.uniform(0.1, 3.0, 4096)
    assert resolve("gaussian_nll").layout.cut(x.shape, make_plan("gaussian_nll",
                                                                 var=var).options) == 2048
    check_pieces(resolve("gaussian_nll"), x, y, {"var": var}, None, bounds)


# --- 2. exact sums ----------------------------------------------------------------------------


def _scaled(max_exponent):
    """Arrays of m 2^e: 53-bit (and shorter) mantissas over the whole exponent range, down to
    subnormals and beyond (rounded to zero)."""
    pairs = st.tuples(st.integers(-(2**53), 2**53), st.integers(-1130, max_exponent))
    return st.lists(pairs, max_size=80).map(
        lambda items: np.array([math.ldexp(m, e) for m, e in items], dtype=np.float64))


@st.composite
def cancelling(draw):
    """a, -a and a few small values, shuffled: sums that cancel almost entirely."""
    a = draw(_scaled(960))
    b = draw(_scaled(-900 if draw(st.booleans()) else 0).map(lambda v: v[:5]))
    values = np.concatenate([a, -a, b])
    return np.random.default_rng(draw(seeds)).permutation(values)


finite_arrays = st.one_of(
    hnp.arrays(np.float64, st.integers(0, 80),
               elements=st.floats(allow_nan=False, allow_infinity=False)),
    _scaled(960),
    cancelling(),
)


def _fsum(values):
    try:
        return math.fsum(values)
    except OverflowError:  # an intermediate overflow of finite values
        return None


@SUM_SETTINGS
@given(values=finite_arrays)
@example(values=np.array([1e100, 1.0, -1e100, 1e-100]))
@example(values=np.array([0.1] * 10))
@example(values=np.array([5e-324] * 3 + [-1e-320]))
@example(values=np.array([1.0, 2.0**-53]))  # a tie: to even
@example(values=np.array([1.0, 2.0**-53, 2.0**-80]))  # above the tie: up
@example(values=np.array([-0.0, -0.0]))
@example(values=np.array([2.0**e for e in range(-1074, 1000, 54)]))  # many partials
@example(values=np.array([]))
def test_combine_is_fsum_whatever_the_order(values):
    expected = _fsum(values)
    assume(expected is not None)
    assert same_float(combine(values.tolist()), expected)
    assert same_float(combine(values[::-1].tolist()), expected)


@SUM_SETTINGS
@given(values=finite_arrays, per_block=st.integers(1, 9), cuts=st.lists(st.integers(0, 8),
                                                                         max_size=4))
@example(values=np.array([1e308, -1e308, 1.0, 2.0**-1074]), per_block=1, cuts=[1, 2, 3])
def test_block_sums_of_pieces_cut_at_block_boundaries_are_the_whole_call_s(values, per_block,
                                                                          cuts):
    blocks = -(-values.size // per_block)
    edges = [0, *sorted(min(c * per_block, values.size) for c in cuts), values.size]
    whole = ExactSum()
    whole.add(values, per_block)
    pieces = ExactSum()
    for lo, hi in zip(edges, edges[1:], strict=False):
        pieces.add(values[lo:hi], per_block)
    assert len(whole.sums) == blocks
    assert [v.hex() for v in whole.sums if v == v] == [v.hex() for v in pieces.sums if v == v]
    assert same_float(whole.value(), pieces.value())
    expected = _fsum(np.array(whole.sums))
    assume(expected is not None)
    assert same_float(whole.value(), expected)


@st.composite
def with_specials(draw):
    """Finite values that cannot overflow, with infinities and NaNs among them."""
    finite = draw(_scaled(900))
    specials = draw(st.lists(st.sampled_from([math.inf, -math.inf, math.nan]), min_size=1,
                             max_size=4))
    values = np.concatenate([finite, specials])
    return np.random.default_rng(draw(seeds)).permutation(values)


def ieee_sum(values):
    """What adding ``values`` in IEEE arithmetic gives when no finite sum overflows."""
    if np.isnan(values).any() or (np.isposinf(values).any() and np.isneginf(values).any()):
        return math.nan
    return math.inf if np.isposinf(values).any() else -math.inf


@SUM_SETTINGS
@given(values=with_specials(), cuts=st.lists(st.floats(0, 1), max_size=4))
@example(values=np.array([math.inf, -math.inf]), cuts=[0.5])
@example(values=np.array([1.0, math.inf, 2.0]), cuts=[])
@example(values=np.array([-math.inf, 1e300, math.nan]), cuts=[0.3])
def test_nan_and_inf_sum_like_ieee(values, cuts):
    expected = ieee_sum(values)
    assert same_float(combine(values.tolist()), expected)
    edges = [0, *sorted(int(c * values.size) for c in cuts), values.size]
    sums = ExactSum()
    for lo, hi in zip(edges, edges[1:], strict=False):
        sums.add(values[lo:hi], 1)
    assert same_float(sums.value(), expected)


# --- 3. what cannot be cut --------------------------------------------------------------------


FIXED = {"seed": 1, "width": 3, "example": 0, "extra": 1, "sample_weight": None,
         "zeros": 0.0}


@pytest.mark.parametrize("spec", BUILTIN, ids=lambda s: s.name)
@settings(max_examples=2, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_bounds_off_the_cut_are_refused(spec, data):
    choices = draw_choices(data, spec)
    x, y, options, sw, multiple = sized_case(spec, np.float64, choices, 3)
    plan = make_plan(spec.name, **options)
    if multiple > 1:
        off = data.draw(st.integers(1, 3 * multiple - 1).filter(lambda b: b % multiple),
                        label="off the cut")
        with pytest.raises(LossjitError, match="bounds"):
            run_pieces(plan, x, y, sample_weight=sw, bounds=[off])
        with pytest.raises(LossjitError, match="bounds"):
            run_pieces(plan, x, y, sample_weight=sw, bounds=[multiple, off + 2 * multiple])
    with pytest.raises(LossjitError, match="bounds"):  # falling
        run_pieces(plan, x, y, sample_weight=sw, bounds=[2 * multiple, multiple])
    with pytest.raises(LossjitError, match="bounds"):  # past the end
        run_pieces(plan, x, y, sample_weight=sw, bounds=[4 * multiple])


@pytest.mark.parametrize("name", ["mse", "cross_entropy", "contrastive", "gaussian_nll"])
def test_empty_pieces_are_accepted(name):
    spec = resolve(name)
    x, y, options, _, multiple = sized_case(spec, np.float64, FIXED, 3)
    n = x.shape[0]
    assert n == 3 * multiple
    for bounds in ([0], [0, 0, multiple, multiple], [n], [multiple, n, n]):
        check_pieces(spec, x, y, options, None, bounds)


UNCUT = [
    ("contrastive", (2, 4), {}),  # one pair
    ("cosine_embedding", (2, 4), {}),
    ("triplet", (3, 4), {}),  # one triplet
    ("margin_ranking", (2,), {}),  # one rank pair
    ("multilabel_soft_margin", (5,), {}),  # one row of logits
    ("bce_with_logits", (5,), {"pos_weight": np.arange(1.0, 6.0)}),  # varies along axis 0
    ("cross_entropy", (5,), {}),  # a class vector, with a 0-d target
    ("nll", (5,), {}),
    ("multi_margin", (5,), {}),
    ("mse", (), {}),  # a scalar
    ("gaussian_nll", (), {"var": 1.0}),
]


def uncut_case(name, shape):
    rng = np.random.default_rng(2)
    x = rng.normal(size=shape)
    if name in ("cross_entropy", "nll", "multi_margin"):
        y = np.int64(1)  # a class vector's one target: 0-d
    elif name in ("multilabel_soft_margin", "bce_with_logits"):
        y = rng.integers(0, 2, shape).astype(np.float64)
    elif name in ("contrastive", "cosine_embedding", "margin_ranking"):
        y = np.ones(1)
    elif name == "triplet":
        y = None
    else:
        y = rng.normal(size=shape)
    return x, y


@pytest.mark.parametrize("name, shape, options", UNCUT)
def test_what_cannot_be_cut(name, shape, options):
    spec = resolve(name)
    plan = make_plan(name, **options)
    assert spec.layout.cut(shape, plan.options) is None
    x, y = uncut_case(name, shape)
    run(plan, x, y)
    with pytest.raises(LossjitError, match="cannot be cut"):
        run_pieces(plan, x, y, bounds=[0])
    if shape:
        with pytest.raises(LossjitError, match="cannot be cut"):
            run_pieces(plan, x, y, bounds=[1])


@pytest.mark.parametrize("name, shape, options", UNCUT)
def test_an_uncut_call_runs_as_one_piece(name, shape, options):
    plan = make_plan(name, **options)
    x, y = uncut_case(name, shape)
    assert_same_result(run_pieces(plan, x, y), run(plan, x, y), name)


# --- 4. thread counts -------------------------------------------------------------------------

THREADS = min(2, numba.config.NUMBA_NUM_THREADS)


def at_threads(n, fn, *args, **kwargs):
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        return fn(*args, **kwargs)
    finally:
        numba.set_num_threads(old)


THREAD_CASES = [
    ("mse", {}),
    ("cross_entropy", {"width": 5, "weight": "classes", "ignore_index": -100}),
    ("bce_with_logits", {"width": 4, "example": 1}),
    ("triplet", {"width": 8}),
    ("gaussian_nll", {"var": "last one"}),
]


@pytest.mark.skipif(THREADS < 2, reason="Numba is limited to one thread")
@pytest.mark.parametrize("name, extra", THREAD_CASES, ids=[case[0] for case in THREAD_CASES])
@settings(max_examples=2, deadline=None, derandomize=True, database=None)
@given(seed=seeds, weighted=st.booleans())
def test_thread_counts_give_the_same_bits(name, extra, seed, weighted):
    spec = resolve(name)
    choices = {**FIXED, "seed": seed, "sample_weight": "terms" if weighted else None,
               "zeros": 0.3, "class_zeros": 0.0, "ignored": "some", **extra}
    x, y, options, sw, multiple = sized_case(spec, np.float64, choices, 3,
                                             at_least=PARALLEL_MIN)
    plan = make_plan(name, **options)
    assert plan.lay_out(x, y).x.size >= PARALLEL_MIN
    bounds = [multiple, 2 * multiple]
    has_hessian = plan.kernel_set(plan.lay_out(x, y)).hessian
    for reduction in spec.reductions:
        plan = make_plan(name, reduction=reduction, hessian=has_hessian, **options)
        one = at_threads(1, run, plan, x, y, sample_weight=sw)
        two = at_threads(THREADS, run, plan, x, y, sample_weight=sw)
        assert_same_result(one, two, (name, reduction, "threads"))
        cut = at_threads(THREADS, run_pieces, plan, x, y, sample_weight=sw, bounds=bounds)
        assert_same_result(cut, one, (name, reduction, "threads, pieces"))
