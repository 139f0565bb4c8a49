"""Input validation: class indices, dtypes and the numbers in messages.

1. A class index out of range is named with its position, its value and the valid range
   (with ``ignore_index`` where the loss has one), for every integer dtype, unsigned ones
   included (uint64 above the int64 maximum among them); valid indices of any integer dtype
   give the same result.
2. Every dtype whose numbers NumPy converts to float64 without loss is accepted for
   predictions, targets and weights alike, in either byte order, and gives the same result as
   the machine's own; the others (complex, object, str, bytes, datetime, a long double wider
   than float64, ...) are refused by name with what is expected.
3. Messages show plain numbers (``-1.0``, never ``np.float64(-1.0)``).
"""

import re
import warnings

import numpy as np
import pytest

import lossjit
from lossjit.errors import LossjitError
from lossjit.layouts import ConversionWarning

INTEGERS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def message_of(call, *args, **kwargs):
    with pytest.raises(LossjitError) as info:
        call(*args, **kwargs)
    text = str(info.value)
    assert "np." not in text, text
    return text


# --- 1. class indices -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", INTEGERS)
@pytest.mark.parametrize("name", ["cross_entropy", "nll", "focal", "poly1", "multi_margin"])
def test_an_index_out_of_range_is_named_with_its_position(name, dtype):
    x = np.log(np.full((5, 4), 0.25))
    t = np.array([0, 3, 1, 7, 9], dtype=dtype)
    text = message_of(lossjit.loss, name, x, t)
    ignore = "" if name == "multi_margin" else " or ignore_index -100"
    assert text == (f"targets: class index 7 at position (3,) is out of range; expected 0 to 3"
                    f"{ignore}")


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
def test_a_negative_index_is_out_of_range_unless_ignored(dtype):
    x = np.zeros((2, 4, 3))  # (N, C, d1): targets (N, d1)
    t = np.array([[0, 1, 2], [3, -1, 0]], dtype=dtype)
    text = message_of(lossjit.loss, "cross_entropy", x, t)
    assert re.fullmatch(r"targets: class index -1 at position \(1, 1\) is out of range; "
                        r"expected 0 to 3 or ignore_index -100", text)
    assert lossjit.loss("cross_entropy", x, t, ignore_index=-1) == pytest.approx(np.log(4))


def test_uint64_above_the_int64_maximum_is_out_of_range():
    x = np.zeros((3, 4))
    huge = 2**63 + 5
    t = np.array([1, huge, 2], dtype=np.uint64)
    assert message_of(lossjit.loss, "cross_entropy", x, t) == (
        f"targets: class index {huge} at position (1,) is out of range; expected 0 to 3 or "
        "ignore_index -100")
    top = np.array([1, 2**64 - 1, 2], dtype=np.uint64)
    assert f"class index {2**64 - 1} at position (1,)" in message_of(lossjit.loss, "nll", x, top)


def test_an_unsigned_ignore_index_is_ignored():
    x = np.log(np.full((3, 4), 0.25))
    t = np.array([1, 255, 2], dtype=np.uint8)
    value = lossjit.loss("nll", x, t, ignore_index=255)
    assert value == pytest.approx(np.log(4))
    assert "class index 255 at position (1,)" in message_of(lossjit.loss, "nll", x, t)


@pytest.mark.parametrize("dtype", INTEGERS + [">i4", ">u8", "<i2"])
def test_valid_indices_of_any_integer_dtype_agree(dtype):
    rng = np.random.default_rng(3)
    x, t = rng.normal(size=(6, 5)), np.array([0, 4, 2, 1, 3, 4])
    expected = lossjit.value_and_grad("cross_entropy", x, t)
    value, grad = lossjit.value_and_grad("cross_entropy", x, t.astype(dtype))
    assert value == expected[0]
    np.testing.assert_array_equal(grad, expected[1])


# --- 2. dtypes --------------------------------------------------------------------------------


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("native", ["f8", "f4"])
def test_big_endian_floats_give_the_native_result_without_a_warning(native):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 3)).astype(native), rng.normal(size=(4, 3)).astype(native)
    logits, labels = rng.normal(size=(5, 3)).astype(native), np.array([0, 2, 1, 1, 0])
    pairs = rng.normal(size=(4, 2, 3)).astype(native)
    swapped = ">" + native
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConversionWarning)
        for name, p, t, options in [
            ("mse", x, y, {}),
            ("huber", x, y, {"delta": 0.5}),
            ("cross_entropy", logits, labels, {}),
            ("cross_entropy", logits, np.abs(logits) / np.abs(logits).sum(1, keepdims=True), {}),
            ("contrastive", pairs, np.array([1.0, 0.0, 1.0, 0.0]), {}),
            ("margin_ranking", x[:, :2], np.array([1.0, -1.0, 1.0, -1.0]), {}),
            ("gaussian_nll", x, y, {"var": np.abs(y) + 0.1}),
            ("bce_with_logits", x, (y > 0).astype(native), {"pos_weight": np.ones(3) * 2}),
        ]:
            big = {k: (v.astype(">f8") if isinstance(v, np.ndarray) else v)
                   for k, v in options.items()}
            t_big = t.astype(swapped) if t.dtype.kind == "f" else t.astype(">i4")
            expected = lossjit.value_and_grad(name, p, t, **options)
            got = lossjit.value_and_grad(name, p.astype(swapped), t_big, **big)
            assert got[0] == expected[0], name
            _same(got[1], expected[1])
            sw = np.linspace(0.5, 2.0, np.size(lossjit.loss(name, p, t, reduction="none",
                                                             **options)))
            sw = sw.reshape(np.shape(lossjit.loss(name, p, t, reduction="none", **options)))
            assert (lossjit.loss(name, p, t, sample_weight=sw.astype(">f8"), **options)
                    == lossjit.loss(name, p, t, sample_weight=sw, **options))


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint16, ">i4", np.int64, np.uint64,
                                   np.float16, ">f2"])
def test_lossless_dtypes_are_converted_to_float64(dtype):
    x = np.array([[1, 0, 1], [0, 0, 1]]).astype(dtype)
    y = np.array([[1, 1, 0], [0, 1, 1]]).astype(dtype)
    reference = lossjit.value_and_grad("mse", x.astype(np.float64), y.astype(np.float64))
    with pytest.warns(ConversionWarning, match="predictions: converted"):
        value, grad = lossjit.value_and_grad("mse", x, y)
    assert value == reference[0]
    _same(grad, reference[1])
    # as targets, and as sample weights
    assert lossjit.loss("mse", x.astype(np.float64), y) == reference[0]
    assert lossjit.loss("mse", x.astype(np.float64), y.astype(np.float64),
                        sample_weight=np.ones(3, dtype=dtype)) == reference[0]


REFUSED = [
    (np.complex128, "complex128"),
    (np.complex64, "complex64"),
    (object, "object"),
    ("U3", "str"),
    ("S3", "bytes"),
    ("datetime64[D]", "datetime64[D]"),
    ("timedelta64[s]", "timedelta64[s]"),
    ([("a", "f8"), ("b", "f8")], "void (structured)"),
]
if np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant:  # wider than float64 here
    REFUSED.append((np.longdouble, np.dtype(np.longdouble).name))


def _array_of(dtype, shape):
    if np.dtype(dtype).kind in "US":
        return np.full(shape, "1", dtype=dtype)
    if np.dtype(dtype).kind in "mM":
        return np.zeros(shape, dtype="i8").astype(dtype)
    return np.zeros(shape, dtype=dtype)


@pytest.mark.parametrize("dtype, shown", REFUSED)
def test_other_dtypes_are_refused_by_name(dtype, shown):
    good = np.zeros((2, 3))
    bad = _array_of(dtype, (2, 3))
    expected = re.escape(f"dtype {shown} is not supported; expected ")
    for what, call in [
        ("predictions", lambda: lossjit.loss("mse", bad, good)),
        ("targets", lambda: lossjit.loss("mse", good, bad)),
        ("predictions", lambda: lossjit.loss("cross_entropy", bad, np.array([0, 1]))),
        ("targets", lambda: lossjit.loss("cross_entropy", good, bad)),
        ("targets", lambda: lossjit.loss("contrastive", np.zeros((2, 2, 3)), bad[:, 0])),
        ("sample_weight", lambda: lossjit.loss("mse", good, good, sample_weight=bad)),
        ("weight", lambda: lossjit.loss("binary_cross_entropy", good + 0.5, good,
                                        weight=bad)),
        ("var", lambda: lossjit.loss("gaussian_nll", good, good, var=bad)),
    ]:
        text = message_of(call)
        assert re.match(f"{what}: {expected}", text), text


# --- 3. plain numbers -------------------------------------------------------------------------


@pytest.mark.parametrize("call, expected", [
    (lambda: lossjit.loss("mse", np.zeros(3), np.zeros(3), sample_weight=[1.0, -1.0, 1.0]),
     "sample_weight: weights must be finite and >= 0, got -1.0 at position (1,)"),
    (lambda: lossjit.loss("hinge_embedding", np.zeros(3), np.array([1.0, -1.0, 0.5])),
     "targets: labels must be 1 or -1, got 0.5 at position (2,)"),
    (lambda: lossjit.loss("tweedie", np.zeros((2, 2)), np.array([[1.0, 0.0], [-2.0, 1.0]])),
     "targets: expected values >= 0, got -2.0 at position (1, 0)"),
    (lambda: lossjit.loss("bce", np.array([0.5, 1.5]), np.zeros(2)),
     "predictions: binary_cross_entropy expects probabilities in [0, 1], got 1.5 at position "
     "(1,)"),
    (lambda: lossjit.loss("gaussian_nll", np.zeros(3), np.zeros(3),
                          var=np.array([1.0, -1.0, 1.0], dtype=np.float32)),
     "var: variances must be >= 0, got -1.0 at position (1,)"),
    (lambda: lossjit.loss("cosine_embedding", np.zeros((2, 2, 3)), np.array([1, 2],
                                                                            dtype=np.uint8)),
     "targets: labels must be 1 or -1, got 2.0 at position (1,)"),
    (lambda: lossjit.check_grad("mse", np.zeros(2), np.zeros(2), step=np.float64(-1.0)),
     "step: expected a number > 0, got -1.0"),
])
def test_messages_show_plain_numbers(call, expected):
    assert message_of(call).startswith(expected)
