"""Tests for lossjit.io: reading and writing arrays, stdin/stdout, errors, atomic writes."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lossjit.io as lio
from lossjit.errors import LossjitError
from lossjit.io import default_grad_path, parse_array_option, read_array, write_array

REPO = Path(__file__).resolve().parents[1]
TEXT_FORMATS = [".csv", ".tsv", ".txt"]
ALL_FORMATS = [".npy", ".npz", *TEXT_FORMATS]


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape and bytes (so -0.0 != 0.0 and NaN == NaN of the same payload)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def error(func, *args, **kwargs) -> str:
    """Call func, expect a one-line LossjitError, and return its message."""
    with pytest.raises(LossjitError) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    return message


def write_text(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8", newline="")
    return str(path)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def awkward_floats(rng, n: int) -> np.ndarray:
    """Values whose shortest text form is long, tiny, huge or signed zero."""
    special = [
        0.1,
        1 / 3,
        -0.0,
        0.0,
        5e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        -1e-300,
        123456789.123456789,
        1e16,
        2.0**53 + 2,
        np.pi,
        -np.e,
    ]
    return np.concatenate(
        [np.array(special), rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)]
    )


# ----------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("ext", ALL_FORMATS)
@pytest.mark.parametrize("shape", [(37,), (7, 5)])
def test_float64_round_trip_is_bit_exact(tmp_path, rng, ext, shape):
    values = awkward_floats(rng, 40)[: int(np.prod(shape))].reshape(shape)
    path = str(tmp_path / f"a{ext}")
    write_array(path, values)
    back = read_array(path)
    assert bits_equal(back, values)


@pytest.mark.parametrize("ext", ALL_FORMATS)
@pytest.mark.parametrize("shape", [(20,), (4, 5)])
def test_float32_round_trip(tmp_path, rng, ext, shape):
    values = (rng.standard_normal(shape) * 1e3).astype(np.float32)
    values.flat[0] = np.float32(0.1)
    values.flat[1] = np.finfo(np.float32).tiny / 4  # subnormal
    values.flat[2] = np.finfo(np.float32).max
    path = str(tmp_path / f"a{ext}")
    write_array(path, values)
    back = read_array(path)
    if ext in (".npy", ".npz"):
        assert bits_equal(back, values)
    else:  # text reads as float64; casting back recovers the float32 bits exactly
        assert back.dtype == np.float64
        assert bits_equal(back.astype(np.float32), values)


@pytest.mark.parametrize("ext", ALL_FORMATS)
def test_int_round_trip_stays_integer(tmp_path, ext):
    labels = np.array([[0, 3, -2], [7, 1, 2**62]], dtype=np.int64)
    path = str(tmp_path / f"labels{ext}")
    write_array(path, labels)
    back = read_array(path)
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, labels)


@pytest.mark.parametrize("ext", TEXT_FORMATS)
def test_nan_and_inf_round_trip_through_text(tmp_path, ext):
    values = np.array([np.nan, np.inf, -np.inf, 1.5])
    path = str(tmp_path / f"s{ext}")
    write_array(path, values)
    back = read_array(path)
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back, values)  # NaN compares equal here


def test_bool_kept_in_npy_and_written_as_0_1_text(tmp_path):
    mask = np.array([True, False, True])
    write_array(str(tmp_path / "m.npy"), mask)
    assert bits_equal(read_array(str(tmp_path / "m.npy")), mask)
    write_array(str(tmp_path / "m.csv"), mask)
    assert (tmp_path / "m.csv").read_text() == "1\n0\n1\n"
    np.testing.assert_array_equal(read_array(str(tmp_path / "m.csv")), [1, 0, 1])


def test_npy_keeps_dtype_and_shape(tmp_path):
    for dtype in (np.float16, np.float32, np.float64, np.int8, np.uint16, np.int32, np.int64, bool):
        values = np.arange(24).reshape(2, 3, 4).astype(dtype)
        path = str(tmp_path / "x.npy")
        write_array(path, values)
        assert bits_equal(read_array(path), values)


def test_npz_written_under_key_grad(tmp_path):
    values = np.linspace(0, 1, 6).reshape(2, 3)
    path = str(tmp_path / "g.npz")
    write_array(path, values)
    with np.load(path) as archive:
        assert archive.files == ["grad"]
    assert bits_equal(read_array(path), values)


def test_npz_with_any_single_key_is_read(tmp_path):
    np.savez(tmp_path / "one.npz", logits=np.eye(3))
    assert bits_equal(read_array(str(tmp_path / "one.npz")), np.eye(3))


def test_text_layout_and_shortest_repr(tmp_path):
    write_array(str(tmp_path / "v.csv"), np.array([0.1, 2.0, 1e-7]))
    assert (tmp_path / "v.csv").read_text() == "0.1\n2.0\n1e-07\n"
    write_array(str(tmp_path / "m.csv"), np.array([[0.1, 2.0], [3.0, -4.5]]))
    assert (tmp_path / "m.csv").read_text() == "0.1,2.0\n3.0,-4.5\n"
    write_array(str(tmp_path / "m.tsv"), np.array([[1, 2], [3, 4]]))
    assert (tmp_path / "m.tsv").read_text() == "1\t2\n3\t4\n"
    write_array(str(tmp_path / "m.txt"), np.array([[1, 2], [3, 4]]))
    assert (tmp_path / "m.txt").read_text() == "1 2\n3 4\n"
    write_array(str(tmp_path / "f.csv"), np.array([0.1], dtype=np.float32))
    assert (tmp_path / "f.csv").read_text() == "0.1\n"


def test_text_column_and_row_vectors_read_back_1d(tmp_path):
    write_array(str(tmp_path / "col.csv"), np.arange(4.0).reshape(4, 1))
    write_array(str(tmp_path / "row.csv"), np.arange(4.0).reshape(1, 4))
    assert read_array(str(tmp_path / "col.csv")).shape == (4,)
    assert read_array(str(tmp_path / "row.csv")).shape == (4,)


def test_zero_d_array_written_as_one_value(tmp_path):
    write_array(str(tmp_path / "s.txt"), np.float64(2.5))
    assert (tmp_path / "s.txt").read_text() == "2.5\n"


def test_uppercase_extension(tmp_path):
    path = str(tmp_path / "A.CSV")
    write_array(path, np.array([[1.5, 2.5], [3.5, 4.5]]))
    assert (tmp_path / "A.CSV").read_text() == "1.5,2.5\n3.5,4.5\n"
    assert read_array(path).shape == (2, 2)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=2, min_side=2, max_side=6),
        elements=st.floats(allow_nan=False, allow_infinity=True, width=64),
    ),
    ext=st.sampled_from(TEXT_FORMATS),
)
def test_text_round_trip_property_float64(tmp_path, values, ext):
    path = str(tmp_path / f"p{ext}")
    write_array(path, values)
    assert bits_equal(read_array(path), values)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=hnp.arrays(
        np.float32,
        st.integers(2, 20),
        elements=st.floats(allow_nan=False, allow_infinity=True, width=32),
    )
)
def test_text_round_trip_property_float32(tmp_path, values):
    path = str(tmp_path / "p.csv")
    write_array(path, values)
    assert bits_equal(read_array(path).astype(np.float32), values)


# ----------------------------------------------------------------------------------------------
# text parsing


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("h.csv", "pred,target\n1,2\n3,4\n", [[1, 2], [3, 4]]),
        ("h.csv", '"pred","target"\n0.5,1\n0.25,0\n', [[0.5, 1.0], [0.25, 0.0]]),
        ("h.tsv", "p\tt\n1\t2\n3\t4\n", [[1, 2], [3, 4]]),
        ("h.csv", "label\n1\n0\n2\n", [1, 0, 2]),
        ("h.txt", "pred target\n1 2\n3 4\n", [[1, 2], [3, 4]]),
        ("h.csv", "id,1.5\n1,2\n", [1, 2]),  # any non-numeric field makes a header
        ("h.csv", ",pred\n0,0.5\n1,0.25\n", [[0.0, 0.5], [1.0, 0.25]]),  # pandas index header
    ],
)
def test_header_row_is_skipped(tmp_path, name, text, expected):
    back = read_array(write_text(tmp_path / name, text))
    np.testing.assert_array_equal(back, expected)
    assert back.dtype == np.asarray(expected).dtype


def test_numeric_first_row_is_data_not_header(tmp_path):
    back = read_array(write_text(tmp_path / "n.csv", "0,1,2\n3,4,5\n"))
    np.testing.assert_array_equal(back, [[0, 1, 2], [3, 4, 5]])


@pytest.mark.parametrize(
    "text, dtype",
    [
        ("1\n2\n3\n", np.int64),
        ("-1\n+2\n007\n", np.int64),
        ("1\n2.0\n", np.float64),
        ("1\n2.\n", np.float64),
        ("1\n.5\n", np.float64),
        ("1\n1e3\n", np.float64),
        ("1\n1E-3\n", np.float64),
        ("1\nnan\n", np.float64),
        ("1\nNaN\n", np.float64),
        ("1\n-inf\n", np.float64),
        ("1\nInfinity\n", np.float64),
        ("99999999999999999999\n1\n", np.float64),  # beyond int64: float64
    ],
)
def test_int_vs_float_detection(tmp_path, text, dtype):
    back = read_array(write_text(tmp_path / "v.txt", text))
    assert back.dtype == dtype
    assert back.shape == (text.count("\n"),)


def test_parsed_values(tmp_path):
    back = read_array(write_text(tmp_path / "v.txt", "-1\n+2\n007\n"))
    np.testing.assert_array_equal(back, [-1, 2, 7])
    back = read_array(write_text(tmp_path / "v.txt", "1\n.5\n-2.\n1e3\n-inf\n"))
    np.testing.assert_array_equal(back, [1.0, 0.5, -2.0, 1000.0, -np.inf])


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("s.csv", "1\n2\n3\n", [1, 2, 3]),  # one column: 1-D
        ("s.csv", "1,2,3\n", [1, 2, 3]),  # one row: 1-D
        ("s.csv", "4\n", [4]),
        ("s.csv", " 1 , 2 \n 3 , 4 \n", [[1, 2], [3, 4]]),  # spaces around fields
        ("s.txt", "1 2  3\n\t4 5 6\n", [[1, 2, 3], [4, 5, 6]]),  # runs of whitespace
        ("s.txt", "1\n\n\n2\n   \n", [1, 2]),  # empty lines
        ("s.txt", "# comment\n1 2 # trailing\n3 4\n#\n", [[1, 2], [3, 4]]),
        ("s.csv", "# made by hand\n1,2\n3,4\n", [[1, 2], [3, 4]]),
        ("s.csv", "1,2\r\n3,4\r\n", [[1, 2], [3, 4]]),  # CRLF
        ("s.csv", "\ufeffa,b\r\n1,2\r\n3,4\r\n", [[1, 2], [3, 4]]),  # BOM + header
        ("s.txt", "1,2\n3,4\n", [[1, 2], [3, 4]]),  # .txt with commas: sniffed as CSV
        ("s.txt", "1\t2\n3\t4\n", [[1, 2], [3, 4]]),  # .txt with tabs
        ("s.dat", "1 2\n3 4\n", [[1, 2], [3, 4]]),  # unknown extension: text
        ("noext", "0.5\n1.5\n", [0.5, 1.5]),
    ],
)
def test_text_shapes_and_separators(tmp_path, name, text, expected):
    np.testing.assert_array_equal(read_array(write_text(tmp_path / name, text)), expected)


def test_npy_content_with_other_extension_is_still_read(tmp_path):
    with open(tmp_path / "arr.bin", "wb") as f:
        np.save(f, np.arange(3.0))
    assert bits_equal(read_array(str(tmp_path / "arr.bin")), np.arange(3.0))


def test_accepts_pathlike(tmp_path):
    write_text(tmp_path / "p.csv", "1,2\n")
    np.testing.assert_array_equal(read_array(tmp_path / "p.csv"), [1, 2])


# ----------------------------------------------------------------------------------------------
# stdin


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_stdin_npy_bytes():
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert bits_equal(read_array("-", stdin=io.BytesIO(npy_bytes(values))), values)


def test_stdin_npz_bytes():
    buffer = io.BytesIO()
    np.savez(buffer, x=np.arange(3))
    assert bits_equal(read_array("-", stdin=io.BytesIO(buffer.getvalue())), np.arange(3))


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"1\n2\n3\n", [1, 2, 3]),
        (b"a,b\n0.5,1\n2,3\n", [[0.5, 1.0], [2.0, 3.0]]),
        (b"0.5\t1\n2\t3\n", [[0.5, 1.0], [2.0, 3.0]]),
        (b"0.5 1\n2 3\n", [[0.5, 1.0], [2.0, 3.0]]),
    ],
)
def test_stdin_text(data, expected):
    np.testing.assert_array_equal(read_array("-", stdin=io.BytesIO(data)), expected)


def test_stdin_defaults_to_sys_stdin_buffer(monkeypatch):
    class FakeStdin:
        buffer = io.BytesIO(b"1,2,3\n")

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    np.testing.assert_array_equal(read_array("-", what="targets"), [1, 2, 3])


def test_stdin_text_stream_accepted():
    np.testing.assert_array_equal(read_array("-", stdin=io.StringIO("4\n5\n")), [4, 5])


def test_stdin_errors_name_what_and_stdin(monkeypatch):
    message = error(read_array, "-", what="predictions", stdin=io.BytesIO(b""))
    assert message.startswith("predictions: stdin") and "no data" in message
    message = error(read_array, "-", what="predictions", stdin=io.BytesIO(b"1\nx\n"))
    assert "predictions: stdin" in message and "line 2" in message and "'x'" in message

    class Tty(io.BytesIO):
        def isatty(self):
            return True

    class FakeStdin:
        buffer = Tty(b"")

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    assert "terminal" in error(read_array, "-", what="predictions")
    monkeypatch.setattr(sys, "stdin", None)
    assert "no stdin" in error(read_array, "-", what="predictions")


# ----------------------------------------------------------------------------------------------
# read errors: every message names the argument, the path and the problem


def check(message: str, what: str, path, *phrases: str) -> None:
    assert message.startswith(f"{what}: "), message
    assert str(path) in message, message
    for phrase in phrases:
        assert phrase in message, (phrase, message)


@pytest.mark.parametrize(
    "name, content, phrases",
    [
        ("bad.csv", "x,y\n1,2\n3,abc\n", ["line 3", "column 2", "'abc'", "expected a number"]),
        ("bad.txt", "1\n2\n1.5.2\n", ["line 3", "'1.5.2'", "expected a number"]),
        ("bad.txt", "# c\n1\n\n0x10\n", ["line 4", "'0x10'"]),
        ("bad.csv", "1,,3\n4,5,6\n", ["line 1", "column 2", "empty value"]),
        ("bad.csv", "1,2,\n3,4,\n", ["line 1", "column 3", "empty value"]),
        ("bad.csv", "1,2\n3,4\n5,6,7\n", ["line 3", "3 values", "line 1 has 2"]),
        ("bad.tsv", "a\tb\n1\t2\n\n3\n", ["line 4", "1 value ", "line 2 has 2"]),
        ("bad.txt", "1 2\n3\n", ["line 2", "whitespace"]),
        ("empty.csv", "", ["empty"]),
        ("blank.txt", "\n  \n# nothing\n", ["no numbers"]),
        ("header.csv", "pred,target\n", ["header", "line 1"]),
        ("fake.npy", "1 2 3\n", ["not an .npy", "numpy.save"]),
        ("fake.npz", "1 2 3\n", ["not an .npz", "numpy.savez"]),
    ],
)
def test_text_and_format_errors(tmp_path, name, content, phrases):
    path = write_text(tmp_path / name, content)
    check(error(read_array, path, what="predictions"), "predictions", path, *phrases)


def test_long_garbage_token_is_shortened(tmp_path):
    path = write_text(tmp_path / "g.txt", "1\n" + "z" * 500 + "\n")
    message = error(read_array, path, what="targets")
    assert "line 2" in message and "..." in message and len(message) < 400


def test_not_utf8(tmp_path):
    path = tmp_path / "bin.dat"
    path.write_bytes(b"\xff\xfe\x00\x81")
    check(error(read_array, str(path), what="targets"), "targets", path, "UTF-8", ".npy")


def test_file_not_found(tmp_path):
    path = tmp_path / "missing.npy"
    check(error(read_array, str(path), what="targets"), "targets", path, "not found")


def test_directory(tmp_path):
    check(
        error(read_array, str(tmp_path), what="targets"),
        "targets",
        tmp_path,
        "is a directory; expected a file",
    )


def test_empty_path():
    assert error(read_array, "", what="targets").startswith("targets: empty path")


def test_unreadable_file_via_oserror(tmp_path, monkeypatch):
    path = write_text(tmp_path / "locked.csv", "1\n")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(lio, "open", denied, raising=False)
    check(
        error(read_array, path, what="--weight"),
        "--weight",
        path,
        "cannot read",
        "Permission denied",
    )


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file_via_chmod(tmp_path):
    path = write_text(tmp_path / "locked.csv", "1\n")
    os.chmod(path, 0)
    try:
        check(error(read_array, path, what="--weight"), "--weight", path, "cannot read")
    finally:
        os.chmod(path, 0o600)


@pytest.mark.parametrize(
    "array, phrases",
    [
        (np.array(["a", "b"]), ["dtype <U1", "not numeric", "float or integer"]),
        (np.array([b"a"]), ["dtype |S1", "not numeric"]),
        (np.array([1 + 2j]), ["complex", "float or integer"]),
        (np.zeros(2, dtype=[("a", "f8"), ("b", "i4")]), ["not numeric"]),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), ["datetime64", "not numeric"]),
        (np.zeros((0, 3)), ["empty", "(0, 3)"]),
    ],
)
@pytest.mark.parametrize("ext", [".npy", ".npz"])
def test_bad_npy_dtypes(tmp_path, array, phrases, ext):
    path = tmp_path / f"bad{ext}"
    if ext == ".npy":
        np.save(path, array)
    else:
        np.savez(path, only=array)
    check(error(read_array, str(path), what="predictions"), "predictions", path, *phrases)


@pytest.mark.parametrize("ext", [".npy", ".npz"])
def test_object_pickled_array(tmp_path, ext):
    path = tmp_path / f"obj{ext}"
    array = np.array([1, None], dtype=object)
    if ext == ".npy":
        np.save(path, array, allow_pickle=True)
    else:
        np.savez(path, only=array)
    check(error(read_array, str(path), what="predictions"), "predictions", path, "object", "pickle")


def test_truncated_npy(tmp_path):
    path = tmp_path / "t.npy"
    path.write_bytes(npy_bytes(np.arange(100.0))[:-10])
    check(error(read_array, str(path), what="targets"), "targets", path, "not a valid .npy")


def test_npz_needs_exactly_one_array(tmp_path):
    path = tmp_path / "two.npz"
    np.savez(path, logits=np.ones(2), labels=np.zeros(2))
    check(
        error(read_array, str(path), what="targets"),
        "targets",
        path,
        "2 arrays",
        "labels",
        "logits",
    )
    path = tmp_path / "none.npz"
    np.savez(path)
    check(error(read_array, str(path), what="targets"), "targets", path, "0 arrays")


def test_corrupt_npz(tmp_path):
    path = tmp_path / "c.npz"
    buffer = io.BytesIO()
    np.savez(buffer, x=np.arange(50.0))
    path.write_bytes(buffer.getvalue()[:40])
    check(error(read_array, str(path), what="targets"), "targets", path, "not a valid .npz")


# ----------------------------------------------------------------------------------------------
# parse_array_option


@pytest.mark.parametrize(
    "value, expected, dtype",
    [
        ("1,2,0.5", [1.0, 2.0, 0.5], np.float64),
        ("1,2,3", [1, 2, 3], np.int64),
        (" 1 , 2 ", [1, 2], np.int64),
        ("0.5", [0.5], np.float64),
        ("-3", [-3], np.int64),
        ("1e-3,inf", [1e-3, np.inf], np.float64),
    ],
)
def test_parse_array_option_numbers(value, expected, dtype):
    back = parse_array_option(value, what="--weight")
    assert back.dtype == dtype and back.ndim == 1
    np.testing.assert_array_equal(back, expected)


def test_parse_array_option_reads_existing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("w.npy", np.array([0.25, 0.75]))
    np.testing.assert_array_equal(parse_array_option("w.npy", what="--weight"), [0.25, 0.75])
    write_text(tmp_path / "1,2", "7\n8\n9\n")  # an existing file wins over the number list
    np.testing.assert_array_equal(parse_array_option("1,2", what="--weight"), [7, 8, 9])


def test_parse_array_option_file_errors_name_what(tmp_path):
    path = write_text(tmp_path / "w.csv", "1\nbad\n")
    check(error(parse_array_option, path, what="--weight"), "--weight", path, "line 2", "'bad'")


@pytest.mark.parametrize(
    "value, phrases",
    [
        ("1,2,x", ["'x'", "not a number"]),
        ("weights.npy", ["'weights.npy'", "neither an existing file nor a number"]),
        ("1,,2", ["empty item"]),
        ("", ["''"]),
        ("1;2", ["'1;2'"]),
    ],
)
def test_parse_array_option_errors(value, phrases):
    message = error(parse_array_option, value, what="--class-weight")
    assert message.startswith("--class-weight: "), message
    assert "file path or comma-separated numbers" in message
    for phrase in phrases:
        assert phrase in message, (phrase, message)


# ----------------------------------------------------------------------------------------------
# default_grad_path


@pytest.mark.parametrize(
    "predictions, expected",
    [
        ("data/logits.npy", "logits.grad.npy"),
        ("x.csv", "x.grad.csv"),
        ("/abs/dir/y.tsv", "y.grad.tsv"),
        ("p.txt", "p.grad.txt"),
        ("p.npz", "p.grad.npz"),
        ("P.CSV", "P.grad.CSV"),
        ("-", "stdin.grad.npy"),
        ("preds", "preds.grad.npy"),
        ("data/preds", "preds.grad.npy"),
        ("preds.dat", "preds.dat.grad.npy"),  # an extension write_array cannot write
        ("a.b.npy", "a.b.grad.npy"),
    ],
)
def test_default_grad_path(predictions, expected):
    assert default_grad_path(predictions) == expected


def test_default_grad_path_is_writable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ["x.npy", "x.csv", "x.dat", "x", "-"]:
        out = default_grad_path(name)
        assert os.path.dirname(out) == ""
        write_array(out, np.ones(2))
        assert os.path.exists(out)


# ----------------------------------------------------------------------------------------------
# write errors


def test_unknown_extension_lists_supported(tmp_path):
    for name in ["g.foo", "g"]:
        path = tmp_path / name
        message = error(write_array, str(path), np.ones(2))
        check(message, "--grad-out", path, ".npy", ".npz", ".csv", ".tsv", ".txt")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("ext", TEXT_FORMATS)
def test_more_than_2d_to_text_says_use_npy(tmp_path, ext):
    path = tmp_path / f"g{ext}"
    check(error(write_array, str(path), np.ones((2, 2, 2))), "--grad-out", path, "3-D", ".npy")
    assert listing(tmp_path) == []


def test_complex_to_text_and_object_refused(tmp_path):
    path = tmp_path / "g.csv"
    check(error(write_array, str(path), np.ones(2, complex)), "--grad-out", path, "complex128")
    path = tmp_path / "g.npy"
    check(error(write_array, str(path), np.array([None])), "--grad-out", path, "object")
    assert listing(tmp_path) == []


def test_missing_directory(tmp_path):
    path = tmp_path / "nope" / "g.npy"
    check(error(write_array, str(path), np.ones(2)), "--grad-out", path, "does not exist")


def test_destination_is_directory(tmp_path):
    (tmp_path / "g.npy").mkdir()
    path = tmp_path / "g.npy"
    check(error(write_array, str(path), np.ones(2)), "--grad-out", path, "is a directory")


def test_what_label_is_used(tmp_path):
    message = error(write_array, str(tmp_path / "x.bad"), np.ones(2), what="--loss-out")
    assert message.startswith("--loss-out: ")


# ----------------------------------------------------------------------------------------------
# protect


def test_protect_same_path(tmp_path):
    path = tmp_path / "in.npy"
    np.save(path, np.arange(3.0))
    before = path.read_bytes()
    message = error(write_array, str(path), np.zeros(3), protect=[str(path)])
    assert (
        message
        == f"--grad-out: refusing to overwrite input file {str(path)!r}; choose another --grad-out"
    )
    assert path.read_bytes() == before


def test_protect_other_spellings_and_links(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("in.npy", np.arange(3.0))
    before = (tmp_path / "in.npy").read_bytes()
    os.mkdir("sub")
    os.symlink("in.npy", "link.npy")
    os.link("in.npy", "hard.npy")
    for dest, protected in [
        ("./in.npy", "in.npy"),
        ("sub/../in.npy", str(tmp_path / "in.npy")),
        ("link.npy", "in.npy"),  # the destination is a symlink to an input
        ("in.npy", "link.npy"),  # the input is given through a symlink
        ("hard.npy", "in.npy"),  # a hard link is the same file
    ]:
        message = error(write_array, dest, np.zeros(3), protect=["-", "other.csv", protected])
        assert (
            "refusing to overwrite input file" in message and "choose another --grad-out" in message
        )
    assert (tmp_path / "in.npy").read_bytes() == before
    assert sorted(listing(tmp_path)) == ["hard.npy", "in.npy", "link.npy", "sub"]


def test_protect_nonexistent_path_compared_by_realpath(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "refusing" in error(
        write_array, "./new.npy", np.ones(1), protect=[str(tmp_path / "new.npy")]
    )


def test_protect_allows_other_files(tmp_path):
    np.save(tmp_path / "in.npy", np.arange(3.0))
    write_array(str(tmp_path / "out.npy"), np.ones(3), protect=[str(tmp_path / "in.npy"), "-"])
    assert bits_equal(np.load(tmp_path / "out.npy"), np.ones(3))


# ----------------------------------------------------------------------------------------------
# atomic writes


def test_overwrite_existing_and_no_temp_files_left(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("old\n")
    write_array(str(path), np.array([1.5, 2.5]))
    assert path.read_text() == "1.5\n2.5\n"
    assert listing(tmp_path) == ["g.csv"]


@pytest.mark.parametrize("existing", [True, False])
@pytest.mark.parametrize("func, ext", [("save", ".npy"), ("savez", ".npz")])
def test_failure_midway_leaves_destination_untouched(tmp_path, monkeypatch, existing, func, ext):
    path = tmp_path / f"g{ext}"
    if existing:
        path.write_bytes(b"old content")

    def half_written(file, *args, **kwargs):
        file.write(b"\x93NUMPY partial bytes")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(np, func, half_written)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_array(str(path), np.arange(1000.0))
    assert listing(tmp_path) == ([path.name] if existing else [])
    if existing:
        assert path.read_bytes() == b"old content"


def test_text_failure_midway_leaves_destination_untouched(tmp_path, monkeypatch):
    path = tmp_path / "g.csv"
    path.write_text("old\n")

    def boom(array, sep):
        raise KeyboardInterrupt

    monkeypatch.setattr(lio, "_text_lines", boom)
    with pytest.raises(KeyboardInterrupt):
        write_array(str(path), np.arange(10.0))
    assert listing(tmp_path) == ["g.csv"]
    assert path.read_text() == "old\n"


def test_oserror_during_write_becomes_lossjit_error(tmp_path, monkeypatch):
    path = tmp_path / "g.npy"
    path.write_bytes(b"old")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    check(
        error(write_array, str(path), np.ones(3)),
        "--grad-out",
        path,
        "cannot write",
        "No space left",
    )
    assert listing(tmp_path) == ["g.npy"]
    assert path.read_bytes() == b"old"


def test_failed_rename_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "g.npy"
    path.write_bytes(b"old")

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    check(error(write_array, str(path), np.ones(3)), "--grad-out", path, "Permission denied")
    assert listing(tmp_path) == ["g.npy"]
    assert path.read_bytes() == b"old"


def test_new_file_gets_umask_mode_and_existing_keeps_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        write_array(str(tmp_path / "new.npy"), np.ones(2))
        assert stat.S_IMODE(os.stat(tmp_path / "new.npy").st_mode) == 0o644
        (tmp_path / "old.npy").write_bytes(b"x")
        os.chmod(tmp_path / "old.npy", 0o640)
        write_array(str(tmp_path / "old.npy"), np.ones(2))
        assert stat.S_IMODE(os.stat(tmp_path / "old.npy").st_mode) == 0o640
    finally:
        os.umask(umask)


def test_symlink_destination_is_written_through(tmp_path):
    target = tmp_path / "real.npy"
    target.write_bytes(b"old")
    link = tmp_path / "link.npy"
    os.symlink(target, link)
    write_array(str(link), np.arange(3.0))
    assert link.is_symlink()
    assert bits_equal(np.load(target), np.arange(3.0))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anything")
def test_unwritable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        path = locked / "g.npy"
        check(error(write_array, str(path), np.ones(2)), "--grad-out", path, "cannot write")
    finally:
        os.chmod(locked, 0o700)


# ----------------------------------------------------------------------------------------------
# stdout


def test_write_stdout_parameter():
    out = io.BytesIO()
    write_array("-", np.arange(4, dtype=np.float32), stdout=out)
    assert bits_equal(np.load(io.BytesIO(out.getvalue())), np.arange(4, dtype=np.float32))


def test_write_stdout_default_and_read_back_via_stdin(monkeypatch):
    class FakeStdout:
        buffer = io.BytesIO()

    fake = FakeStdout()
    monkeypatch.setattr(sys, "stdout", fake)
    values = np.linspace(-1, 1, 9).reshape(3, 3)
    write_array("-", values, protect=["-"])
    assert bits_equal(read_array("-", stdin=io.BytesIO(fake.buffer.getvalue())), values)


def test_stdout_pipe_in_subprocess(tmp_path):
    """Real pipes: write .npy to stdout in one process and read it from stdin in another."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = "import numpy as np, lossjit.io as l; l.write_array('-', np.arange(5.0) / 3)"
    reader = (
        "import sys, lossjit.io as l; a = l.read_array('-'); sys.stdout.write(repr(a.tolist()))"
    )
    data = subprocess.run(
        [sys.executable, "-c", writer], capture_output=True, env=env, check=True
    ).stdout
    result = subprocess.run(
        [sys.executable, "-c", reader], input=data, capture_output=True, env=env, check=True
    )
    assert result.stdout.decode() == repr((np.arange(5.0) / 3).tolist())


# ----------------------------------------------------------------------------------------------
# import hygiene


def test_import_pulls_in_only_numpy_and_stdlib():
    code = (
        "import sys, lossjit.errors\n"
        "before = set(sys.modules)\n"
        "import lossjit.io\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "allowed = set(sys.stdlib_module_names) | {'numpy', 'lossjit'}\n"
        "print(sorted(new - allowed))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
