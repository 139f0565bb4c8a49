"""Tests for lossjit.readers: formats, compression, selectors, the text rules, stdin and pipes."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import struct
import subprocess
import sys
import threading
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from io_helpers import bits_equal, check, error, new_imports

import lossjit.readers as readers
from lossjit.errors import LossjitError
from lossjit.readers import Reader, Selected, Source, label_indices, parse_array_option

REPO = Path(__file__).resolve().parents[1]
COMPRESSIONS = [".gz", ".bz2", ".xz", ".zst"]


# ----------------------------------------------------------------------------------------------
# helpers


def write_text(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8", newline="")
    return str(path)


def write_bytes(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def read(source, what: str = "input", **reader_options) -> np.ndarray:
    return Reader(**reader_options).read(source, what=what).array


def read_stdin(data: bytes, selector: str | None = None, **reader_options) -> np.ndarray:
    source = "-" if selector is None else f"-:{selector}"
    return Reader(stdin=io.BytesIO(data), **reader_options).read(source, what="input").array


def read_error(source, what: str = "predictions", **reader_options) -> str:
    return error(Reader(**reader_options).read, source, what=what)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def compress(data: bytes, ext: str) -> bytes:
    if ext == ".gz":
        return gzip.compress(data)
    if ext == ".bz2":
        return bz2.compress(data)
    if ext == ".xz":
        return lzma.compress(data)
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(data)


def arrow_bytes(table, fmt: str) -> bytes:
    """``table`` written by pyarrow as .parquet, .feather (IPC file) or .arrows (IPC stream)."""
    pa = pytest.importorskip("pyarrow")
    sink = pa.BufferOutputStream()
    if fmt == ".parquet":
        pytest.importorskip("pyarrow.parquet").write_table(table, sink)
    elif fmt in (".feather", ".arrow"):
        pytest.importorskip("pyarrow.feather").write_feather(table, sink)
    else:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue().to_pybytes()


class CountingStdin(io.BytesIO):
    """A stdin that counts how often it is read."""

    reads = 0

    def read(self, *args):
        self.reads += 1
        return super().read(*args)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# ----------------------------------------------------------------------------------------------
# Source.parse


def test_source_parse_and_str(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_text(tmp_path / "a:b.csv", "1\n")
    write_text(tmp_path / "plain", "1\n")
    cases = {
        "-": ("-", None),
        "-:pred": ("-", "pred"),
        "a:b.csv": ("a:b.csv", None),  # an existing file whose name has a colon
        "a:b.csv:0": ("a:b.csv", "0"),
        "plain:x": ("plain", "x"),  # an existing file without extension
        "missing.npz:logits": ("missing.npz", "logits"),  # known extension: "file not found"
        "missing.csv.gz:p0..p2": ("missing.csv.gz", "p0..p2"),
        "preds.csv:": ("preds.csv", ""),  # an empty selector, an error when read
        "nofile:x": ("nofile:x", None),  # neither exists nor has a known extension
        "noext": ("noext", None),
    }
    for text, (path, selector) in cases.items():
        source = Source.parse(text)
        assert (source.path, source.selector) == (path, selector), text
        assert str(source) == text or text == "preds.csv:" and str(source) == "preds.csv:"
    assert Source.parse(tmp_path / "plain") == Source(str(tmp_path / "plain"))


def test_missing_file_with_selector_says_file_not_found(tmp_path):
    path = tmp_path / "missing.npz"
    check(read_error(f"{path}:logits", what="targets"), "targets", path, "file not found")
    assert ":logits" not in read_error(f"{path}:logits")


def test_empty_selector_is_an_error(tmp_path):
    path = write_text(tmp_path / "p.csv", "a,b\n1,2\n")
    check(read_error(f"{path}:"), "predictions", path, "empty selector")
    check(read_error(Source(path, " ")), "predictions", path, "empty selector")


# ----------------------------------------------------------------------------------------------
# .npy and .npz (ported from test_io)


def test_npy_keeps_dtype_and_shape(tmp_path):
    for dtype in (np.float16, np.float32, np.float64, np.int8, np.uint16, np.int32, np.int64, bool):
        values = np.arange(24).reshape(2, 3, 4).astype(dtype)
        np.save(tmp_path / "x.npy", values)
        assert bits_equal(read(str(tmp_path / "x.npy")), values)


def test_npz_with_any_single_key_is_read_whole(tmp_path):
    np.savez(tmp_path / "one.npz", logits=np.eye(3))
    selected = Reader().read(str(tmp_path / "one.npz"), what="input")
    assert bits_equal(selected.array, np.eye(3))
    assert selected.names == ("logits",)


def test_npz_keys_are_selected(tmp_path):
    path = tmp_path / "run.npz"
    np.savez(path, logits=np.arange(6.0).reshape(3, 2), labels=np.array([1, 0, 1]),
             weights=np.array([0.5, 1.0, 2.0]))
    reader = Reader()
    assert bits_equal(reader.read(f"{path}:logits", what="x").array, np.arange(6.0).reshape(3, 2))
    labels = reader.read(f"{path}:labels", what="x")
    assert bits_equal(labels.array, np.array([1, 0, 1])) and labels.names == ("labels",)
    both = reader.read(f"{path}:labels,weights", what="x")
    np.testing.assert_array_equal(both.array, [[1, 0.5], [0, 1.0], [1, 2.0]])
    assert both.names == ("labels", "weights")
    assert reader.names(str(path)) == ("logits", "labels", "weights")


def test_npz_errors(tmp_path):
    path = tmp_path / "two.npz"
    np.savez(path, logits=np.ones((2, 2)), labels=np.zeros(2))
    message = read_error(str(path), what="targets")
    check(message, "targets", path, "2 arrays", "labels", "logits", f"{path}:KEY")
    check(read_error(f"{path}:lables"), "predictions", path, "no key 'lables'", "logits, labels")
    check(read_error(f"{path}:0"), "predictions", path, "no key '0'")  # keys are not numbered
    check(read_error(f"{path}:logits,labels"), "predictions", path, "'logits' is 2-D")
    np.savez(tmp_path / "none.npz")
    check(read_error(str(tmp_path / "none.npz")), "predictions", tmp_path / "none.npz", "0 arrays")


def test_npy_and_lone_npz_member_columns(tmp_path):
    logits = np.arange(12.0).reshape(3, 4)
    np.save(tmp_path / "x.npy", logits)
    np.savez(tmp_path / "x.npz", logits=logits)
    for path in (tmp_path / "x.npy", tmp_path / "x.npz"):
        assert bits_equal(read(f"{path}:0"), logits[:, 0])
        assert bits_equal(read(f"{path}:1..3"), logits[:, 1:4])
        assert bits_equal(read(f"{path}:2.."), logits[:, 2:])
        assert bits_equal(read(f"{path}:3,0"), logits[:, [3, 0]])
        check(read_error(f"{path}:4"), "predictions", path, "out of range", "0..3")
    message = read_error(f"{tmp_path / 'x.npy'}:pred")
    check(message, "predictions", tmp_path / "x.npy", "no column named 'pred'", "(3, 4)", "0..3")
    np.save(tmp_path / "v.npy", np.arange(3.0))
    check(read_error(f"{tmp_path / 'v.npy'}:0"), "predictions", tmp_path / "v.npy", "1-D", "2-D")


def test_npy_content_with_other_extension_is_still_read(tmp_path):
    path = write_bytes(tmp_path / "arr.bin", npy_bytes(np.arange(3.0)))
    assert bits_equal(read(path), np.arange(3.0))
    path = write_bytes(tmp_path / "arr.csv", npz_bytes(x=np.arange(3)))  # content first
    assert bits_equal(read(path), np.arange(3))


@pytest.mark.parametrize(
    "array, phrases",
    [
        (np.array(["a", "b"]), ["dtype <U1", "not numeric", "float or integer"]),
        (np.array([b"a"]), ["dtype |S1", "not numeric"]),
        (np.array([1 + 2j]), ["complex", "float or integer"]),
        (np.zeros(2, dtype=[("a", "f8"), ("b", "i4")]), ["not numeric"]),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), ["datetime64", "not numeric"]),
    ],
)
@pytest.mark.parametrize("ext", [".npy", ".npz"])
def test_bad_npy_dtypes(tmp_path, array, phrases, ext):
    path = tmp_path / f"bad{ext}"
    if ext == ".npy":
        np.save(path, array)
    else:
        np.savez(path, only=array)
    check(read_error(str(path)), "predictions", path, *phrases)


@pytest.mark.parametrize("ext", [".npy", ".npz"])
def test_object_pickled_array(tmp_path, ext):
    path = tmp_path / f"obj{ext}"
    array = np.array([1, None], dtype=object)
    if ext == ".npy":
        np.save(path, array, allow_pickle=True)
    else:
        np.savez(path, only=array)
    check(read_error(str(path)), "predictions", path, "object", "pickle")


def test_truncated_npy_and_npz(tmp_path):
    path = write_bytes(tmp_path / "t.npy", npy_bytes(np.arange(100.0))[:-10])
    check(read_error(path, what="targets"), "targets", path, "not a valid .npy")
    path = write_bytes(tmp_path / "c.npz", npz_bytes(x=np.arange(50.0))[:40])
    check(read_error(path, what="targets"), "targets", path, "not a valid .npz")
    data = bytearray(npz_bytes(x=np.arange(500.0)))
    data[200:260] = b"\x00" * 60  # the member's bytes damaged, the zip directory intact
    path = write_bytes(tmp_path / "d.npz", bytes(data))
    check(read_error(f"{path}:x"), "predictions", path, "not a valid .npz")


@pytest.mark.parametrize("ext", [".npy", ".npz", ".parquet", ".feather", ".arrows"])
def test_binary_extension_without_its_header(tmp_path, ext):
    path = write_text(tmp_path / f"fake{ext}", "1 2 3\n")
    check(read_error(path), "predictions", path, "not a", "header")


# ----------------------------------------------------------------------------------------------
# text: values, shapes, separators (ported from test_io)


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("h.csv", "pred,target\n1,2\n3,4\n", [[1, 2], [3, 4]]),
        ("h.csv", '"pred","target"\n0.5,1\n0.25,0\n', [[0.5, 1.0], [0.25, 0.0]]),
        ("h.tsv", "p\tt\n1\t2\n3\t4\n", [[1, 2], [3, 4]]),
        ("h.csv", "label\n1\n0\n2\n", [1, 0, 2]),
        ("h.txt", "pred target\n1 2\n3 4\n", [[1, 2], [3, 4]]),
        ("h.csv", ",pred\n0,0.5\n1,0.25\n", [[0.0, 0.5], [1.0, 0.25]]),  # pandas index header
        ("h.csv", "p_0,_\n1,2\n", [1, 2]),
    ],
)
def test_header_row_is_skipped(tmp_path, name, text, expected):
    back = read(write_text(tmp_path / name, text))
    np.testing.assert_array_equal(back, expected)
    assert back.dtype == np.asarray(expected).dtype


def test_header_names(tmp_path):
    path = write_text(tmp_path / "h.csv", ",pred,label\n0,0.5,1\n1,0.25,0\n")
    assert Reader().names(path) == ("", "pred", "label")
    assert Reader().read(path, what="x").names == ("", "pred", "label")
    assert Reader().names(write_text(tmp_path / "n.csv", "1,2\n")) == ()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0,1,2\n3,4,5\n", [[0, 1, 2], [3, 4, 5]]),
        ("NA,1.0\n2,3\n", [[np.nan, 1.0], [2.0, 3.0]]),  # a marker is a value, not a name
        ("nan,inf\n1,2\n", [[np.nan, np.inf], [1.0, 2.0]]),
        ("1e3,2\n1,2\n", [[1000.0, 2.0], [1.0, 2.0]]),
        (",\n1,2\n", [[np.nan, np.nan], [1.0, 2.0]]),  # empty fields alone are no header
    ],
)
def test_first_row_of_values_is_data_not_header(tmp_path, text, expected):
    np.testing.assert_array_equal(read(write_text(tmp_path / "n.csv", text)), expected)


def test_first_row_with_a_number_is_data(tmp_path):
    """``id,1.5`` is no header (1.5 is a number): its word makes column 0 a label column."""
    path = write_text(tmp_path / "h.csv", "id,1.5\n1,2\n")
    check(read_error(path), "predictions", path, "column 0", "text labels", "'id'", f"{path}:1")
    np.testing.assert_array_equal(read(f"{path}:0"), ["id", "1"])
    np.testing.assert_array_equal(read(f"{path}:1"), [1.5, 2.0])


def test_unicode_minus_is_data_and_a_bad_value(tmp_path):
    path = write_text(tmp_path / "m.csv", "\u22121.5\n2\n")
    check(read_error(path), "predictions", path, "line 1:", "bad value '\u22121.5'", "expected a")
    path = write_text(tmp_path / "m2.csv", "1,\u22121.5\n2,3\n")
    check(read_error(path), "predictions", path, "line 1, column 2", "bad value")


def test_header_forced_on_and_off(tmp_path):
    path = write_text(tmp_path / "h.csv", "1,2\n3,4\n5,6\n")
    reader = Reader(header=True)
    assert reader.names(path) == ("1", "2")
    np.testing.assert_array_equal(reader.read(path, what="x").array, [[3, 4], [5, 6]])
    # a name that looks like an index is the name: "1" is the first column here
    np.testing.assert_array_equal(reader.read(f"{path}:1", what="x").array, [3, 5])
    np.testing.assert_array_equal(reader.read(f"{path}:0", what="x").array, [3, 5])
    path = write_text(tmp_path / "n.csv", "a,b\n3,4\n")
    np.testing.assert_array_equal(read(f"{path}:0", header=False), ["a", "3"])
    np.testing.assert_array_equal(read(path), [3, 4])
    # a forced header and nothing else: two columns of no values
    only = Reader(header=True).read(write_text(tmp_path / "one.csv", "1,2\n"), what="x")
    assert bits_equal(only.array, np.empty((0, 2))) and only.names == ("1", "2")


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
        ("1\nNA\n", np.float64),
        ("2.5\n1\n", np.float64),
        ("99999999999999999999\n1\n", np.float64),  # beyond int64: float64
        ("9223372036854775807\n-9223372036854775808\n", np.int64),
    ],
)
def test_int_vs_float_detection(tmp_path, text, dtype):
    back = read(write_text(tmp_path / "v.txt", text))
    assert back.dtype == dtype
    assert back.shape == (text.count("\n"),)


def test_int64_extremes_are_exact(tmp_path):
    back = read(write_text(tmp_path / "v.txt", f"{2**62 + 1}\n{-(2**63)}\n1\n"))
    assert back.dtype == np.int64 and back.tolist() == [2**62 + 1, -(2**63), 1]
    back = read(write_text(tmp_path / "w.txt", f"1.5\n{2**62 + 1}\n"))  # float first: float64
    assert back.dtype == np.float64


def test_integer_detection_is_per_column(tmp_path):
    path = write_text(tmp_path / "c.csv", "i,f,g\n1,2.0,0\n3,4,0.5\n5,6,1\n")
    assert bits_equal(read(f"{path}:i"), np.array([1, 3, 5]))
    assert bits_equal(read(f"{path}:f"), np.array([2.0, 4.0, 6.0]))
    assert bits_equal(read(f"{path}:g"), np.array([0.0, 0.5, 1.0]))
    assert read(path).dtype == np.float64
    assert bits_equal(read(f"{path}:i,i"), np.array([[1, 1], [3, 3], [5, 5]]))


def test_parsed_values(tmp_path):
    back = read(write_text(tmp_path / "v.txt", "-1\n+2\n007\n"))
    np.testing.assert_array_equal(back, [-1, 2, 7])
    back = read(write_text(tmp_path / "v.txt", "1\n.5\n-2.\n1e3\n-inf\n"))
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
        ("s.csv", "1,2\n   \n3,4\n", [[1, 2], [3, 4]]),  # a line of spaces in CSV
        ("s.csv", "1,2\n  # indented comment\n3,4\n", [[1, 2], [3, 4]]),
        ("s.txt", "# comment\n1 2 # trailing\n3 4\n#\n", [[1, 2], [3, 4]]),
        ("s.csv", "# made by hand\n1,2\n3,4\n", [[1, 2], [3, 4]]),
        ("s.csv", "1,2\r\n3,4\r\n", [[1, 2], [3, 4]]),  # CRLF
        ("s.csv", "\ufeffa,b\r\n1,2\r\n3,4\r\n", [[1, 2], [3, 4]]),  # BOM + header
        ("s.csv", "\ufeff1,2\n3,4\n", [[1, 2], [3, 4]]),  # BOM, no header
        ("s.txt", "1,2\n3,4\n", [[1, 2], [3, 4]]),  # .txt with commas: sniffed as CSV
        ("s.txt", "1\t2\n3\t4\n", [[1, 2], [3, 4]]),  # .txt with tabs
        ("s.txt", "1;2\n3;4\n", [[1, 2], [3, 4]]),  # .txt with semicolons
        ("s.dat", "1 2\n3 4\n", [[1, 2], [3, 4]]),  # unknown extension: text
        ("noext", "0.5\n1.5\n", [0.5, 1.5]),
        ("q.csv", '"1.5","2"\n3,4\n', [[1.5, 2.0], [3.0, 4.0]]),  # quoted numbers
    ],
)
def test_text_shapes_and_separators(tmp_path, name, text, expected):
    np.testing.assert_array_equal(read(write_text(tmp_path / name, text)), expected)


def test_uppercase_extension_and_pathlike(tmp_path):
    path = tmp_path / "A.CSV"
    write_text(path, "1.5,2.5\n3.5,4.5\n")
    assert read(path).shape == (2, 2)
    assert read(str(path)).shape == (2, 2)


def awkward_floats(rng, n: int) -> np.ndarray:
    special = [0.1, 1 / 3, -0.0, 0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
               -1e-300, 123456789.123456789, 1e16, 2.0**53 + 2, np.pi, -np.e]
    return np.concatenate(
        [np.array(special), rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)]
    )


@pytest.mark.parametrize("sep, ext", [(",", ".csv"), ("\t", ".tsv"), (" ", ".txt")])
def test_shortest_repr_text_reads_back_bit_exact(tmp_path, rng, sep, ext):
    values = awkward_floats(rng, 22).reshape(7, 5)
    text = "".join(sep.join(map(repr, row)) + "\n" for row in values.tolist())
    assert bits_equal(read(write_text(tmp_path / f"a{ext}", text)), values)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=6),
        elements=st.floats(allow_nan=False, allow_infinity=True, width=64),
    ),
    sep=st.sampled_from([",", "\t", ";", " "]),
)
def test_text_round_trip_property(tmp_path, values, sep):
    text = "".join(sep.join(map(repr, row)) + "\n" for row in values.tolist())
    assert bits_equal(read(write_text(tmp_path / "p.txt", text)), values)


# ----------------------------------------------------------------------------------------------
# text: missing values, trailing delimiters, labels


@pytest.mark.parametrize("marker", ["NA", "N/A", "null", "NULL", "None", "nan", ""])
@pytest.mark.parametrize("sep", [",", "\t", ";"])
def test_missing_markers_read_as_nan(tmp_path, marker, sep):
    rows = [["1", "2", "3"], [marker, "5", "6"], ["7", marker, "9"], ["10", "11", marker]]
    path = write_text(tmp_path / "m.txt", "".join(sep.join(row) + "\n" for row in rows))
    expected = np.array([[1, 2, 3], [np.nan, 5, 6], [7, np.nan, 9], [10, 11, np.nan]])
    assert bits_equal(read(path), expected)


@pytest.mark.parametrize("marker", ["NA", "N/A", "null", "NULL", "None", "nan"])
def test_missing_markers_in_whitespace_text(tmp_path, marker):
    path = write_text(tmp_path / "m.txt", f"1 {marker}\n{marker} 4\n")
    assert bits_equal(read(path), np.array([[1.0, np.nan], [np.nan, 4.0]]))


def test_padded_markers_and_only_whole_fields(tmp_path):
    path = write_text(tmp_path / "m.csv", "a,b\n NA , 1\n2 ,  \n")
    assert bits_equal(read(path), np.array([[np.nan, 1.0], [2.0, np.nan]]))
    path = write_text(tmp_path / "bad.csv", "a,b\n1,2\nNAN2,3\n")  # not a marker
    check(read_error(path), "predictions", path, "line 3, column 1", "'NAN2'")
    path = write_text(tmp_path / "bad2.csv", "a,b\n1,2\n3,NA x\n")
    check(read_error(path), "predictions", path, "line 3, column 2", "'NA x'")


def test_marker_turns_only_its_column_float(tmp_path):
    path = write_text(tmp_path / "m.csv", "x,y,z\n1,2,3\n4,,6\n7,8,NA\n")
    assert bits_equal(read(f"{path}:x"), np.array([1, 4, 7]))
    assert bits_equal(read(f"{path}:y"), np.array([2.0, np.nan, 8.0]))
    assert bits_equal(read(f"{path}:z"), np.array([3.0, 6.0, np.nan]))


@pytest.mark.parametrize("sep, ext", [(",", ".csv"), ("\t", ".tsv"), (",", ".txt"),
                                      ("\t", ".txt"), (";", ".txt"), (";", ".dat")])
def test_trailing_delimiter_rule(tmp_path, sep, ext):
    def table(*rows):
        return "".join(sep.join(row) + "\n" for row in rows)

    # every line ends with the delimiter: that empty last column is no column
    path = write_text(tmp_path / f"a{ext}", table(["1", "2", ""], ["3", "4", ""]))
    assert bits_equal(read(path), np.array([[1, 2], [3, 4]]))
    path = write_text(tmp_path / f"h{ext}", table(["p", "q", ""], ["1", "2", ""], ["3", "4", ""]))
    assert bits_equal(read(path), np.array([[1, 2], [3, 4]]))
    assert Reader().names(path) == ("p", "q")
    # not every line: an empty last field is a missing value
    path = write_text(tmp_path / f"b{ext}", table(["1", "2", ""], ["3", "4", "5"]))
    assert bits_equal(read(path), np.array([[1, 2, np.nan], [3, 4, 5]]))
    path = write_text(tmp_path / f"c{ext}", table(["p", "q", "r"], ["1", "2", ""], ["3", "4", ""]))
    assert bits_equal(read(path), np.array([[1, 2, np.nan], [3, 4, np.nan]]))
    # a header without the trailing delimiter does not match rows with it
    path = write_text(tmp_path / f"d{ext}", table(["p", "q"], ["1", "2", ""]))
    check(read_error(path), "predictions", path, "line 2 has 3 values", "header (line 1) has 2")


def test_trailing_delimiter_with_comments_and_crlf(tmp_path):
    path = write_text(tmp_path / "t.csv", "# note\r\n1,2,\r\n3,4, # more\r\n\r\n")
    assert bits_equal(read(path), np.array([[1, 2], [3, 4]]))


def test_label_columns_are_text(tmp_path):
    path = write_text(tmp_path / "l.csv", "pred,label\n0.5,cat\n0.25, dog \n1,3\n2,NA\n3,\n")
    labels = Reader().read(f"{path}:label", what="targets")
    assert labels.array.dtype.kind == "U"
    assert labels.array.tolist() == ["cat", "dog", "3", "NA", ""]
    assert labels.names == ("label",)
    assert bits_equal(read(f"{path}:pred"), np.array([0.5, 0.25, 1, 2, 3]))
    check(read_error(path), "predictions", path, "column 'label'", "text labels", "'cat'",
          f"{path}:pred")
    check(read_error(f"{path}:pred,label"), "predictions", path, "text labels and numbers")
    both = read(f"{path}:label,label")
    assert both.shape == (5, 2) and both[0].tolist() == ["cat", "cat"]


def test_quoted_labels_with_delimiters(tmp_path):
    path = write_text(tmp_path / "q.csv", 'name,score\n"Smith, J",1.5\n"Doe, A",2\n')
    assert read(f"{path}:name").tolist() == ["Smith, J", "Doe, A"]
    assert bits_equal(read(f"{path}:score"), np.array([1.5, 2.0]))


def test_label_indices():
    labels = np.array(["cat", "dog", "cat", "bird"])
    assert bits_equal(label_indices(labels, ["bird", "cat", "dog"], what="targets"),
                      np.array([1, 2, 1, 0]))
    grid = label_indices(np.array([["a", "b"], ["b", "a"]]), ("b", "a"), what="targets")
    assert bits_equal(grid, np.array([[1, 0], [0, 1]]))
    message = error(label_indices, labels, ["cat", "dog"], what="targets")
    assert message.startswith("targets: ")
    assert "'bird'" in message and "position 3" in message and "cat, dog" in message
    message = error(label_indices, np.array(["x", "y", "z"]), ["a"], what="--labels")
    assert "'x'" in message and "position 0" in message
    # numbers read as plain numbers, never as np.float64(-1.0)
    message = error(label_indices, np.array([2.0, -1.0]), ["2.0"], what="targets")
    assert "unknown label -1.0 at position 1" in message and "np." not in message, message


def test_label_indices_from_a_file(tmp_path):
    path = write_text(tmp_path / "t.tsv", "p\tlabel\n0.1\tneg\n0.9\tpos\n0.4\tneg\n")
    labels = read(f"{path}:label")
    assert bits_equal(label_indices(labels, ["neg", "pos"], what="targets"), np.array([0, 1, 0]))


# ----------------------------------------------------------------------------------------------
# text errors: every message names the argument, the path and the problem


@pytest.mark.parametrize(
    "name, content, phrases",
    [
        ("bad.csv", "x,y\n1,2\n3,abc\n", ["line 3", "column 2", "'abc'", "expected a number"]),
        ("bad.txt", "1\n2\n1.5.2\n", ["line 3", "'1.5.2'", "expected a number"]),
        ("bad.txt", "# c\n1\n\n0x10\n", ["line 4", "'0x10'"]),
        ("bad.csv", "1,2\n3,4\n5,6,7\n", ["line 3", "3 values", "line 1 has 2"]),
        ("bad.tsv", "a\tb\n1\t2\n\n3\n", ["line 4", "1 value ", "line 2 has 2"]),
        ("bad.txt", "1 2\n3\n", ["line 2", "whitespace"]),
        ("bad.csv", "a,b\n1,2,3\n", ["line 2", "3 values", "header (line 1) has 2"]),
        ("empty.csv", "", ["empty"]),
        ("blank.txt", "\n  \n# nothing\n", ["no numbers"]),
    ],
)
def test_text_errors(tmp_path, name, content, phrases):
    path = write_text(tmp_path / name, content)
    check(read_error(path), "predictions", path, *phrases)


def test_bad_value_line_numbers_count_every_line(tmp_path):
    lines = ["# header comment", "", "a,b"] + [f"{i},{i}.5" for i in range(20000)] + ["", "1,x"]
    path = write_text(tmp_path / "big.csv", "\n".join(lines) + "\n")
    check(read_error(path), "predictions", path, f"line {len(lines)}, column 2", "'x'")


def test_long_garbage_token_is_shortened(tmp_path):
    path = write_text(tmp_path / "g.txt", "1\n" + "z" * 500 + "\n")
    message = read_error(path, what="targets")
    assert "line 2" in message and "..." in message and len(message) < 400


def test_not_utf8(tmp_path):
    path = write_bytes(tmp_path / "bin.dat", b"\xff\xfe\x00\x81")
    check(read_error(path, what="targets"), "targets", path, "UTF-8", ".npy")
    path = write_bytes(tmp_path / "late.csv", b"1,2\n3,4\n5,\xe96\n")
    check(read_error(path), "predictions", path, "UTF-8", "line 3")


def test_file_not_found_directory_and_empty_path(tmp_path):
    path = tmp_path / "missing.npy"
    check(read_error(str(path), what="targets"), "targets", path, "not found")
    check(read_error(str(tmp_path), what="targets"), "targets", tmp_path,
          "is a directory; expected a file")
    assert read_error("", what="targets").startswith("targets: empty path")


def test_unreadable_file_via_oserror(tmp_path, monkeypatch):
    path = write_text(tmp_path / "locked.csv", "1\n")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(readers, "open", denied, raising=False)
    check(read_error(path, what="--weight"), "--weight", path, "cannot read", "Permission denied")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file_via_chmod(tmp_path):
    path = write_text(tmp_path / "locked.csv", "1\n")
    os.chmod(path, 0)
    try:
        check(read_error(path, what="--weight"), "--weight", path, "cannot read")
    finally:
        os.chmod(path, 0o600)


# ----------------------------------------------------------------------------------------------
# selectors


TABLE = "p0,p1,p2,label\n0.1,0.2,0.7,2\n0.5,0.25,0.25,0\n"
P = np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]])


@pytest.mark.parametrize(
    "selector, expected",
    [
        ("p1", P[:, 1]),
        ("1", P[:, 1]),
        ("label", np.array([2, 0])),
        ("p0,p1,p2", P),
        ("0,1,2", P),
        ("p2,0", P[:, [2, 0]]),
        ("p0..p2", P),
        ("0..2", P),
        ("p1..2", P[:, 1:]),
        ("1..1", P[:, 1:2]),  # a range is 2-D even of one column
        ("..p1", P[:, :2]),
        ("3..", np.array([[2], [0]])),
        (" p0 , p2 ", P[:, [0, 2]]),
    ],
)
def test_selectors(tmp_path, selector, expected):
    path = write_text(tmp_path / "t.csv", TABLE)
    back = read(f"{path}:{selector}")
    assert back.shape == expected.shape
    np.testing.assert_array_equal(back, expected)


def test_selected_records_names_and_source(tmp_path):
    path = write_text(tmp_path / "t.csv", TABLE)
    selected = Reader().read(f"{path}:p0..p1", what="x")
    assert isinstance(selected, Selected)
    assert selected.names == ("p0", "p1")
    assert selected.source == Source(path, "p0..p1")
    assert Reader().read(Source(path, "label"), what="x").names == ("label",)
    unnamed = write_text(tmp_path / "u.csv", "1,2\n3,4\n")
    assert Reader().read(f"{unnamed}:1", what="x").names == ()


@pytest.mark.parametrize(
    "selector, phrases",
    [
        ("p3", ["no column 'p3'", "p0, p1, p2, label", "0-based index"]),
        ("4", ["index 4 is out of range", "0..3", "4 columns"]),
        ("p0,,p1", ["empty item"]),
        ("p2..p0", ["range", "empty"]),
        ("p0..zz", ["no column 'zz'"]),
    ],
)
def test_selector_errors(tmp_path, selector, phrases):
    path = write_text(tmp_path / "t.csv", TABLE)
    check(read_error(f"{path}:{selector}", what="targets"), "targets", path, *phrases)


def test_selector_errors_without_header_and_with_duplicates(tmp_path):
    path = write_text(tmp_path / "u.csv", "1,2,3\n4,5,6\n")
    check(read_error(f"{path}:pred"), "predictions", path, "no column named 'pred'",
          "3 columns and no header", "0..2")
    path = write_text(tmp_path / "d.csv", "a,a,b\n1,2,3\n")
    check(read_error(f"{path}:a"), "predictions", path, "appears 2 times", "index")
    np.testing.assert_array_equal(read(f"{path}:1"), [2])


def test_column_listing_is_cut_short(tmp_path):
    header = ",".join(f"c{i}" for i in range(100))
    path = write_text(tmp_path / "w.csv", header + "\n" + ",".join(["1"] * 100) + "\n")
    message = read_error(f"{path}:nope")
    assert "c19" in message and "c50" not in message and "100 in all" in message


# ----------------------------------------------------------------------------------------------
# Reader.pair


def test_pair_from_npz_and_table(tmp_path):
    np.savez(tmp_path / "run.npz", logits=np.eye(3), labels=np.array([0, 1, 2]), extra=np.ones(3))
    predictions, targets = Reader().pair(str(tmp_path / "run.npz"))
    assert bits_equal(predictions.array, np.eye(3)) and predictions.names == ("logits",)
    assert bits_equal(targets.array, np.array([0, 1, 2])) and targets.names == ("labels",)
    assert predictions.source == Source(str(tmp_path / "run.npz"), "logits")
    path = write_text(tmp_path / "t.csv", "id,Y_Pred,Target\n0,0.5,1\n1,0.25,0\n")
    predictions, targets = Reader().pair(path)
    assert bits_equal(predictions.array, np.array([0.5, 0.25]))
    assert bits_equal(targets.array, np.array([1, 0]))


def test_pair_from_stdin():
    predictions, targets = Reader(stdin=io.BytesIO(b"pred,y\n0.5,1\n0.75,0\n")).pair("-")
    assert bits_equal(predictions.array, np.array([0.5, 0.75]))
    assert bits_equal(targets.array, np.array([1, 0]))


@pytest.mark.parametrize(
    "text, phrases",
    [
        ("pred,preds,label\n1,2,3\n", ["several predictions names", "pred, preds"]),
        ("score,label\n1,2\n", ["no predictions name", "score, label"]),
        ("pred,value\n1,2\n", ["no targets name"]),
        ("pred,y,labels\n1,2,3\n", ["several targets names"]),
        ("1,2\n3,4\n", ["no named arrays"]),
    ],
)
def test_pair_cannot_decide(tmp_path, text, phrases):
    path = write_text(tmp_path / "t.csv", text)
    message = error(Reader().pair, path, what="--data")
    check(message, "--data", path, "cannot tell", "FILE:NAME FILE:NAME", *phrases)
    if "no named" not in message:
        assert f"{path}:" in message


# ----------------------------------------------------------------------------------------------
# standard input


def test_stdin_npy_npz_and_text():
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert bits_equal(read_stdin(npy_bytes(values)), values)
    assert bits_equal(read_stdin(npz_bytes(x=np.arange(3))), np.arange(3))
    assert bits_equal(read_stdin(npz_bytes(a=np.arange(3), b=np.ones(2)), "b"), np.ones(2))


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"1\n2\n3\n", [1, 2, 3]),
        (b"a,b\n0.5,1\n2,3\n", [[0.5, 1.0], [2.0, 3.0]]),
        (b"0.5\t1\n2\t3\n", [[0.5, 1.0], [2.0, 3.0]]),
        (b"0.5;1\n2;3\n", [[0.5, 1.0], [2.0, 3.0]]),
        (b"0.5 1\n2 3\n", [[0.5, 1.0], [2.0, 3.0]]),
    ],
)
def test_stdin_text(data, expected):
    np.testing.assert_array_equal(read_stdin(data), expected)


def test_stdin_is_read_once_for_every_selector():
    stdin = CountingStdin(b"pred,label\n0.5,cat\n0.25,dog\n")
    reader = Reader(stdin=stdin)
    assert reader.names("-") == ("pred", "label")
    assert bits_equal(reader.read("-:pred", what="predictions").array, np.array([0.5, 0.25]))
    assert reader.read("-:label", what="targets").array.tolist() == ["cat", "dog"]
    assert reader.read(Source("-", "0"), what="x").array.tolist() == [0.5, 0.25]
    assert stdin.reads == 1


def test_stdin_read_once_even_after_an_error():
    stdin = CountingStdin(b"pred,label\n0.5,cat\n0.25,x y\n1,2,3\n")
    reader = Reader(stdin=stdin)
    first = error(reader.read, "-:pred", what="predictions")
    second = error(reader.read, "-:label", what="predictions")
    assert first == second and "line 4" in first
    assert stdin.reads == 1


def test_stdin_defaults_to_sys_stdin_buffer(monkeypatch):
    class FakeStdin:
        buffer = io.BytesIO(b"1,2,3\n")

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    np.testing.assert_array_equal(read("-", what="targets"), [1, 2, 3])


def test_stdin_text_stream_accepted():
    np.testing.assert_array_equal(read("-", stdin=io.StringIO("4\n5\n")), [4, 5])


def test_stdin_errors_name_what_and_stdin(monkeypatch):
    message = error(Reader(stdin=io.BytesIO(b"")).read, "-", what="predictions")
    assert message.startswith("predictions: stdin") and "no data" in message
    message = error(Reader(stdin=io.BytesIO(b"1\nx\n")).read, "-", what="predictions")
    assert "predictions: stdin" in message and "line 2" in message and "'x'" in message

    class Tty(io.BytesIO):
        def isatty(self):
            return True

    assert "terminal" in error(Reader(stdin=Tty(b"1\n")).read, "-", what="predictions")

    class FakeStdin:
        buffer = Tty(b"")

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    assert "terminal" in read_error("-")
    monkeypatch.setattr(sys, "stdin", None)
    assert "no stdin" in read_error("-")


def test_stdin_pipe_in_subprocess():
    """A real pipe on stdin: .npy bytes written by one process, read by another."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reader = (
        "import sys, lossjit.readers as r\n"
        "a = r.Reader().read('-:1', what='x').array\n"
        "sys.stdout.write(repr(a.tolist()))\n"
    )
    data = npy_bytes(np.arange(6.0).reshape(3, 2) / 3)
    result = subprocess.run(
        [sys.executable, "-c", reader], input=data, capture_output=True, env=env, check=True
    )
    assert result.stdout.decode() == repr((np.arange(6.0).reshape(3, 2) / 3)[:, 1].tolist())


# ----------------------------------------------------------------------------------------------
# named pipes and /dev/fd


def _writer(path_or_fd, data: bytes) -> threading.Thread:
    def write():
        if isinstance(path_or_fd, int):
            with os.fdopen(path_or_fd, "wb") as f:
                f.write(data)
        else:
            with open(path_or_fd, "wb") as f:
                f.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
@pytest.mark.parametrize("kind", ["npy", "csv", "csv.gz"])
def test_named_pipe(tmp_path, kind):
    values = np.arange(40000.0).reshape(20000, 2)  # more than a pipe's buffer
    text = b"a,b\n" + b"".join(b"%r,%r\n" % tuple(row) for row in values.tolist())
    data = {"npy": npy_bytes(values), "csv": text, "csv.gz": gzip.compress(text)}[kind]
    fifo = tmp_path / f"pipe.{kind}"
    os.mkfifo(fifo)
    thread = _writer(str(fifo), data)
    reader = Reader()
    expected = values[:, 1]
    assert bits_equal(reader.read(f"{fifo}:1", what="x").array, expected)
    assert bits_equal(reader.read(f"{fifo}:0", what="x").array, values[:, 0])  # not read again
    thread.join(timeout=10)


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="no /dev/fd")
def test_dev_fd_like_process_substitution():
    read_fd, write_fd = os.pipe()
    thread = _writer(write_fd, b"pred,label\n" + b"0.5,1\n0.25,0\n" * 5000)
    try:
        path = f"/dev/fd/{read_fd}"
        predictions, targets = Reader().pair(path)
        assert predictions.array.shape == (10000,) and targets.array.dtype == np.int64
    finally:
        os.close(read_fd)
    thread.join(timeout=10)


# ----------------------------------------------------------------------------------------------
# compression


def _format_bytes(fmt: str, values: np.ndarray) -> bytes:
    """``values`` (2 columns, named a and b where the format has names) written as ``fmt``."""
    if fmt == ".npy":
        return npy_bytes(values)
    if fmt == ".npz":
        return npz_bytes(a=values[:, 0], b=values[:, 1])
    if fmt in (".csv", ".tsv", ".txt"):
        sep = {".csv": ",", ".tsv": "\t", ".txt": " "}[fmt]
        return ("a" + sep + "b\n" + "".join(sep.join(map(repr, r)) + "\n"
                                           for r in values.tolist())).encode()
    pa = pytest.importorskip("pyarrow")
    return arrow_bytes(pa.table({"a": values[:, 0], "b": values[:, 1]}), fmt)


FORMATS = [".npy", ".npz", ".csv", ".tsv", ".txt", ".parquet", ".feather", ".arrows"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_compressed_by_extension_and_on_stdin(tmp_path, fmt, compression):
    values = np.array([[0.5, 1.0], [-2.0, 1e-300], [3.0, np.inf]])
    data = compress(_format_bytes(fmt, values), compression)
    selector = "1" if fmt == ".npy" else "b"
    path = write_bytes(tmp_path / f"x{fmt}{compression}", data)
    assert bits_equal(read(f"{path}:{selector}"), values[:, 1])
    assert bits_equal(read_stdin(data, selector), values[:, 1])  # by magic bytes alone
    # by content, also when the name says nothing of it
    assert bits_equal(read(f"{write_bytes(tmp_path / 'noext', data)}:{selector}"), values[:, 1])


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_damaged_compressed_data(tmp_path, compression):
    data = compress(b"a,b\n" + b"1.5,2.5\n" * 1000, compression)
    path = write_bytes(tmp_path / f"t.csv{compression}", data[: len(data) // 2])
    check(read_error(path, what="targets"), "targets", path, "damaged", "truncated")
    message = error(Reader(stdin=io.BytesIO(data[:-4])).read, "-", what="targets")
    assert message.startswith("targets: stdin: damaged")


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_compression_extension_without_its_header(tmp_path, compression):
    path = write_text(tmp_path / f"t.csv{compression}", "1,2\n")
    check(read_error(path), "predictions", path, f"not {compression} data", "header")


def test_compressed_empty_stream(tmp_path):
    path = write_bytes(tmp_path / "e.csv.gz", gzip.compress(b""))
    check(read_error(path), "predictions", path, "no data after gzip")


def test_missing_zstandard_names_the_extra(tmp_path, monkeypatch):
    data = compress(b"1,2\n", ".zst")
    monkeypatch.setitem(sys.modules, "zstandard", None)
    path = write_bytes(tmp_path / "x.csv.zst", data)
    check(read_error(path), "predictions", path, "zstandard", "lossjit[zstd]")


# ----------------------------------------------------------------------------------------------
# Parquet, Feather and Arrow


@pytest.fixture
def pa():
    return pytest.importorskip("pyarrow")


@pytest.mark.parametrize("fmt", [".parquet", ".feather", ".arrow", ".arrows", ".ipc"])
def test_arrow_columns(tmp_path, pa, fmt):
    table = pa.table({
        "pred": pa.array([0.5, None, 2.0], pa.float32()),
        "label": pa.array([1, 0, 2], pa.int64()),
        "count": pa.array([1, None, 3], pa.int32()),
        "name": pa.array(["cat", None, "dog"]),
        "kind": pa.array(["a", "b", "a"]).dictionary_encode(),
        "flag": pa.array([True, False, True]),
    })
    path = write_bytes(tmp_path / f"t{fmt}", arrow_bytes(table, ".arrows" if fmt == ".ipc"
                                                         else fmt))
    reader = Reader()
    assert reader.names(path) == ("pred", "label", "count", "name", "kind", "flag")
    assert bits_equal(reader.read(f"{path}:pred", what="x").array,
                      np.array([0.5, np.nan, 2.0]))  # nulls -> NaN (float64)
    assert bits_equal(reader.read(f"{path}:label", what="x").array, np.array([1, 0, 2]))
    assert bits_equal(reader.read(f"{path}:count", what="x").array, np.array([1.0, np.nan, 3.0]))
    assert reader.read(f"{path}:name", what="x").array.tolist() == ["cat", "", "dog"]
    assert reader.read(f"{path}:4", what="x").array.tolist() == ["a", "b", "a"]
    assert bits_equal(reader.read(f"{path}:flag", what="x").array, np.array([True, False, True]))
    np.testing.assert_array_equal(reader.read(f"{path}:pred..count", what="x").array,
                                  [[0.5, 1, 1], [np.nan, 0, np.nan], [2, 2, 3]])
    check(error(reader.read, path, what="predictions"), "predictions", path,
          "column 'name'", "text labels", "'cat'")


def test_arrow_whole_table_and_unsupported_types(tmp_path, pa):
    table = pa.table({"a": [1, 2], "b": [0.5, 1.5]})
    path = write_bytes(tmp_path / "t.parquet", arrow_bytes(table, ".parquet"))
    selected = Reader().read(path, what="x")
    assert bits_equal(selected.array, np.array([[1.0, 0.5], [2.0, 1.5]]))
    assert selected.names == ("a", "b")
    table = pa.table({"a": [1.0, 2.0], "when": pa.array([1, 2], pa.timestamp("s"))})
    path = write_bytes(tmp_path / "ts.parquet", arrow_bytes(table, ".parquet"))
    assert bits_equal(read(f"{path}:a"), np.array([1.0, 2.0]))  # the other column is no bother
    check(read_error(f"{path}:when"), "predictions", path, "'when'", "timestamp",
          "expected numbers or text labels")
    empty = pa.table({"a": pa.array([], pa.float64()), "s": pa.array([], pa.string())})
    path = write_bytes(tmp_path / "e.parquet", arrow_bytes(empty, ".parquet"))
    assert bits_equal(read(f"{path}:a"), np.empty(0))  # no rows: data, as from text
    assert read(f"{path}:s").shape == (0,)
    check(read_error(path), "predictions", path, "column 's'", "text labels")
    path = write_bytes(tmp_path / "none.parquet", arrow_bytes(pa.table({}), ".parquet"))
    check(read_error(path), "predictions", path, "no columns")


@pytest.mark.parametrize("fmt", [".parquet", ".feather", ".arrows"])
def test_damaged_arrow_files(tmp_path, pa, fmt):
    data = arrow_bytes(pa.table({"a": np.arange(1000.0)}), fmt)
    path = write_bytes(tmp_path / f"t{fmt}", data[: len(data) // 2])
    check(read_error(path, what="targets"), "targets", path, "not a valid", "truncated")
    message = error(Reader(stdin=io.BytesIO(data[: len(data) // 2])).read, "-", what="targets")
    assert message.startswith("targets: stdin: not a valid")


def test_arrow_data_that_would_crash_pyarrow_is_refused(pa):
    """pyarrow does not check an IPC file's offsets as it reads them; used, bad ones crash."""
    data = arrow_bytes(pa.table({"s": pa.array(["ab", "cd", "ef"])}), ".arrows")
    offsets = np.array([0, 2, 4, 6], "<i4").tobytes()
    assert data.count(offsets) == 1
    bad = data.replace(offsets, np.array([0, -(2**28), 4, 6], "<i4").tobytes())
    message = error(Reader(stdin=io.BytesIO(bad)).read, "-:s", what="targets")
    check(message, "targets", "stdin", "not a valid Arrow IPC stream", "offset")


def test_missing_pyarrow_names_the_extra(tmp_path, monkeypatch, pa):
    data = arrow_bytes(pa.table({"a": [1.0]}), ".parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    path = write_bytes(tmp_path / "t.parquet", data)
    check(read_error(path), "predictions", path, "pyarrow", "lossjit[parquet]")


# ----------------------------------------------------------------------------------------------
# damaged input of every kind: a LossjitError, never another exception


def _damaged(data: bytes, rng) -> list[bytes]:
    """Truncations, overwritten bytes and inserted bytes of ``data``."""
    out = []
    for _ in range(15):
        out.append(data[: int(rng.integers(len(data)))])
        flipped = bytearray(data)
        for i in rng.integers(len(data), size=3):
            flipped[i] = int(rng.integers(256))
        out.append(bytes(flipped))
        i = int(rng.integers(len(data)))
        out.append(data[:i] + rng.bytes(int(rng.integers(1, 20))) + data[i:])
    return out


@pytest.mark.parametrize("fmt", [*FORMATS, ".csv.gz", ".npy.xz", ".npz.bz2", ".csv.zst"])
def test_damaged_input_raises_only_lossjit_errors(rng, fmt):
    plain, _, compression = fmt.partition(".")[2].partition(".")
    data = _format_bytes("." + plain, np.array([[0.5, 1.0], [-2.0, 3.0], [4.0, 5.0]] * 20))
    data = compress(data, "." + compression) if compression else data
    for damaged in _damaged(data, rng):
        reader = Reader(stdin=io.BytesIO(damaged))
        for source in ("-", "-:b", "-:1"):
            try:
                reader.read(source, what="x")
            except LossjitError as exc:
                assert str(exc).startswith("x: stdin"), exc


def test_one_row_tables(tmp_path):
    path = write_text(tmp_path / "one.csv", "p,label\n0.5,cat\n")
    assert bits_equal(read(f"{path}:p"), np.array([0.5]))
    assert read(f"{path}:label").tolist() == ["cat"]
    assert bits_equal(read(write_text(tmp_path / "r.csv", "1,2.5\n")), np.array([1.0, 2.5]))


def test_control_characters_are_no_data(tmp_path):
    path = write_bytes(tmp_path / "c.txt", b"\x1f\n")
    check(read_error(path), "predictions", path)


# ----------------------------------------------------------------------------------------------
# parse_array_option (ported from test_io)


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


def test_parse_array_option_reads_sources(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("w.npy", np.array([0.25, 0.75]))
    np.testing.assert_array_equal(parse_array_option("w.npy", what="--weight"), [0.25, 0.75])
    write_text(tmp_path / "1,2", "7\n8\n9\n")  # an existing file wins over the number list
    np.testing.assert_array_equal(parse_array_option("1,2", what="--weight"), [7, 8, 9])
    write_text(tmp_path / "t.csv", "w,label\n0.5,cat\n2,dog\n")
    np.testing.assert_array_equal(parse_array_option("t.csv:w", what="--weight"), [0.5, 2.0])
    check(error(parse_array_option, "t.csv:label", what="--weight"), "--weight", "t.csv",
          "text labels", "'cat'", "expected numbers")
    stdin = CountingStdin(b"a,b\n1,2\n")
    reader = Reader(stdin=stdin)
    np.testing.assert_array_equal(parse_array_option("-:b", what="--weight", reader=reader), [2])
    np.testing.assert_array_equal(parse_array_option("-:a", what="--weight", reader=reader), [1])
    assert stdin.reads == 1


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
# empty inputs are data; no bytes at all is an error


@pytest.mark.parametrize("fmt", ["", ".gz", ".zst"])
def test_zero_size_arrays_are_read(tmp_path, fmt):
    path = write_bytes(tmp_path / f"e.npy{fmt}", compress(npy_bytes(np.zeros((0, 3))), fmt)
                       if fmt else npy_bytes(np.zeros((0, 3))))
    assert bits_equal(read(path), np.zeros((0, 3)))
    assert bits_equal(read(f"{path}:1"), np.zeros(0))
    path = write_bytes(tmp_path / "e.npz", npz_bytes(x=np.zeros(0, np.int32), y=np.ones((2, 0))))
    assert bits_equal(read(f"{path}:x"), np.zeros(0, np.int32))
    assert bits_equal(read(f"{path}:y"), np.ones((2, 0)))
    assert bits_equal(read_stdin(npy_bytes(np.zeros(0, np.float32))), np.zeros(0, np.float32))


@pytest.mark.parametrize(
    "name, text, names, shape",
    [
        ("h.csv", "pred,label\n", ("pred", "label"), (0, 2)),
        ("h.csv", "# a comment\n\npred\n\n", ("pred",), (0,)),
        ("h.tsv", "a\tb\tc\n", ("a", "b", "c"), (0, 3)),
        ("h.txt", "a b\n", ("a", "b"), (0, 2)),
        ("h.csv", "a,b,\n", ("a", "b"), (0, 2)),  # the trailing delimiter rule holds
        ("h.csv.gz", "\ufeffa,b\r\n", ("a", "b"), (0, 2)),
    ],
)
def test_header_without_rows_gives_empty_columns(tmp_path, name, text, names, shape):
    data = text.encode()
    data = compress(data, ".gz") if name.endswith(".gz") else data
    path = write_bytes(tmp_path / name, data)
    selected = Reader().read(path, what="x")
    assert bits_equal(selected.array, np.zeros(shape)) and selected.names == names
    for index, name_ in enumerate(names):
        assert bits_equal(read(f"{path}:{name_}"), np.zeros(0))
        assert bits_equal(read(f"{path}:{index}"), np.zeros(0))
    if len(names) > 1:
        assert bits_equal(read(f"{path}:0..1"), np.zeros((0, 2)))
    assert bits_equal(read_stdin(data, names[0]), np.zeros(0))


def test_no_bytes_at_all_is_still_an_error(tmp_path):
    path = write_bytes(tmp_path / "zero.npy", b"")
    check(read_error(path), "predictions", path, "file is empty")
    check(error(Reader(stdin=io.BytesIO(b"")).read, "-", what="targets"), "targets", "stdin",
          "no data")
    path = write_bytes(tmp_path / "e.csv.xz", compress(b"", ".xz"))
    check(read_error(path), "predictions", path, "no data after xz")
    path = write_text(tmp_path / "blank.csv", "\n# only a comment\n")
    check(read_error(path), "predictions", path, "no numbers found")


def test_empty_inputs_reach_the_cli_empty_option(tmp_path, monkeypatch):
    """--empty decides what a mean over no terms is, now that the reader hands it empty data."""
    from cli_helpers import invoke

    monkeypatch.chdir(tmp_path)
    write_text(tmp_path / "run.csv", "pred,target\n")
    np.save(tmp_path / "x.npy", np.zeros(0))
    np.save(tmp_path / "y.npy", np.zeros(0, np.float32))
    for sources in (["run.csv:pred", "run.csv:target"], ["x.npy", "y.npy"]):
        command = ["compute", "mse", *sources, "--empty"]
        result = invoke(*command, "nan")
        assert result.stdout.strip() == "nan", result.stderr
        assert invoke(*command, "zero").stdout.strip() == "0.0"
        result = invoke(*command, "error")
        assert result.exit_code == 1 and "zero terms" in result.stderr, result.stderr


# ----------------------------------------------------------------------------------------------
# limits: headers that lie, decompression bombs, memory


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    """An .npy version 1.0 header that declares ``shape`` of ``descr``, whatever follows it."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    text += " " * (-(len(text) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")


def zip_of(name: str, payload: bytes, *, method: int, size: int, crc: int = 0) -> bytes:
    """A zip of one member whose headers say what the arguments say (``size``: the
    uncompressed size, ``method``: 0 stored, 8 deflated), whatever ``payload`` holds."""
    raw = name.encode()
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc, len(payload),
                        size, len(raw), 0) + raw
    central = struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc,
                          len(payload), size, len(raw), 0, 0, 0, 0, 0, 0) + raw
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                      len(local) + len(payload), 0)
    return local + payload + central + end


def deflated(prefix: bytes, zero_gib: int = 0) -> bytes:
    """Raw deflate data of ``prefix`` then ``zero_gib`` GiB of zero bytes (about 1 MiB for each
    GiB, made in a moment: after a full flush, each 16 MiB of zeros compresses the same)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    piece = compressor.compress(bytes(16 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return head + piece * (64 * zero_gib) + compressor.flush()


def gzip_of_zero_lines(gib: int) -> bytes:
    """``gib`` GiB of the CSV line "0,0" in gzip members of 16 MiB each (about 16 KiB each)."""
    return gzip.compress(b"0,0\n" * (4 << 20), mtime=0) * (64 * gib)


PEAK_SCRIPT = """
import json, resource, sys
from lossjit.errors import LossjitError
from lossjit.readers import Reader
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin"
                                                                  else 1024)
base, messages = peak(), []
for source in sys.argv[1:]:
    try:
        array = Reader(stdin=sys.stdin.buffer).read(source, what="x").array
        messages.append(f"array {array.shape} {array.dtype} {float(array.sum())}")
    except LossjitError as exc:
        messages.append(str(exc))
print(json.dumps({"messages": messages, "grown": peak() - base}))
"""


def peak_memory(*sources: str, stdin: Path | None = None,
                env: dict[str, str] | None = None) -> tuple[list[str], int]:
    """What reading each source says (an array's shape, dtype and sum, or the error) in a
    fresh interpreter, and how far its peak memory grew beyond the interpreter with lossjit
    imported."""
    pytest.importorskip("resource")
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    with open(stdin or os.devnull, "rb") as f:
        result = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, *sources], stdin=f,
                                capture_output=True, text=True, env=full_env, check=False,
                                timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    return report["messages"], report["grown"]


MiB = 2**20


def test_npy_header_declaring_more_than_its_bytes_is_refused_before_allocating(tmp_path):
    lie = npy_header((10**8,)) + bytes(80)  # 800 MB declared, 80 bytes there
    sources = {
        "file": write_bytes(tmp_path / "lie.npy", lie),
        "gzip": write_bytes(tmp_path / "lie.npy.gz", compress(lie, ".gz")),
        "npz": write_bytes(tmp_path / "lie.npz", zip_of("x.npy", lie, method=0, size=len(lie),
                                                        crc=zlib.crc32(lie))),
    }
    tracemalloc.start()
    try:
        messages = [read_error(sources["file"]), read_error(sources["gzip"]),
                    read_error(f"{sources['npz']}:x"),
                    error(Reader(stdin=io.BytesIO(lie)).read, "-", what="predictions")]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, peak  # the 800 MB were never allocated
    for message, where in zip(messages, [*sources.values(), "stdin"], strict=True):
        check(message, "predictions", where, "(100000000,)", "float64", "800000000 bytes",
              "80 bytes follow the header")
    assert "member 'x'" in messages[2]


def test_npy_header_declaring_more_than_memory_is_refused(tmp_path):
    huge = npy_header((2**47,))  # 1 PiB of float64, in compressed data: no size to check
    message = error(Reader(stdin=io.BytesIO(compress(huge + bytes(1000), ".xz"))).read, "-",
                    what="x")
    check(message, "x", "stdin", f"({2**47},)", "this machine's memory", "before reading")


@pytest.mark.parametrize("header", [
    b"\x93NUMPY\x01\x00\xff\xff",  # a header longer than any numpy writes, cut short
    b"\x93NUMPY\x09\x00\x10\x00" + b" " * 16,  # an unknown version
    npy_header((3,), "|O")[:-1] + b"\n",  # object: pickled data, never loaded
    npy_header((3,), "('<f8', (2,))"),  # a subarray dtype
    b"\x93NUMPY\x01\x00\x10\x00{'shape': (1,)}\n",  # keys missing
    b"\x93NUMPY\x01\x00\x30\x00" + b"{'descr': '<f8', 'fortran_order': 0, 'shape': (-1,)}"[:48],
    b"\x93NUMPY\x01\x00\x20\x00__import__('os').system('x')   \n",  # code is not a literal
])
def test_bad_npy_headers(tmp_path, header):
    data = header + bytes(64)
    check(error(Reader(stdin=io.BytesIO(data)).read, "-", what="x"), "x", "stdin")
    path = write_bytes(tmp_path / "h.npy.bz2", compress(data, ".bz2"))
    check(read_error(path), "predictions", path)


def test_zip_headers_that_lie_are_not_trusted(tmp_path):
    member = npy_bytes(np.arange(5.0))
    crc = zlib.crc32(member)
    # the zip claims 2 GiB: the .npy header inside says how much to read, and that is right
    path = write_bytes(tmp_path / "big.npz", zip_of("x.npy", deflated(member), method=8,
                                                    size=2**31, crc=crc))
    assert bits_equal(read(f"{path}:x"), np.arange(5.0))
    # the zip claims 10 bytes: the member is cut short there
    path = write_bytes(tmp_path / "small.npz", zip_of("x.npy", deflated(member), method=8,
                                                      size=10, crc=crc))
    check(read_error(f"{path}:x"), "predictions", path, "not a valid .npz", "member 'x'")
    # bzip2 and lzma members would expand unchecked; numpy never writes them
    path = write_bytes(tmp_path / "bz.npz", zip_of("x.npy", bz2.compress(member), method=12,
                                                   size=len(member), crc=crc))
    check(read_error(f"{path}:x"), "predictions", path, "zip method 12", "numpy.savez")


def test_zip_bombs_take_little_memory(tmp_path):
    # each member a deflated .npy header and then 1 GiB of zeros, in about 1 MiB
    def bomb(name: str, shape: tuple[int, ...]) -> str:
        data = deflated(npy_header(shape), zero_gib=1)
        return write_bytes(tmp_path / name, zip_of("x.npy", data, method=8, size=2**32 - 1))

    past_memory = bomb("huge.npz", (2**47,))  # declares 1 PiB
    gib = bomb("gib.npz", (2**27,))  # declares the 1 GiB it holds
    one = bomb("one.npz", (1,))  # declares 8 bytes: the rest is never read
    messages, grown = peak_memory(f"{past_memory}:x", f"{one}:x")
    assert "this machine's memory" in messages[0], messages
    assert messages[1] == "array (1,) float64 0.0", messages
    messages_, grown_ = peak_memory(f"{gib}:x", env={"LOSSJIT_MAX_INPUT_BYTES": "64M"})
    assert "64 MiB), the limit LOSSJIT_MAX_INPUT_BYTES sets" in messages_[0], messages_
    assert max(grown, grown_) < 48 * MiB, (grown, grown_)


def test_gzip_bomb_is_refused_without_exhausting_memory(tmp_path):
    path = write_bytes(tmp_path / "bomb.csv.gz", gzip_of_zero_lines(1))  # 1 GiB in 1 MiB
    assert os.path.getsize(path) < 2 * MiB
    messages, grown = peak_memory(path, "-", stdin=Path(path))
    for message, where in zip(messages, [path, "stdin"], strict=True):
        check(message, "x", where, "gzip data decompresses to more than 268435456 bytes",
              "the larger of 268435456 bytes (256 MiB) and 100 times", "LOSSJIT_MAX_INPUT_BYTES")
    assert grown < 48 * MiB, grown  # it was counted in pieces, never held
    # an .npy inside: bounded by its header, which declares 1 GiB but the stream holds 8 MiB
    data = compress(npy_header((2**27,)) + bytes(8 * MiB), ".gz")
    path = write_bytes(tmp_path / "short.npy.gz", data)
    messages, grown = peak_memory(path)
    check(messages[0], "x", path, "declares shape (134217728,) of float64",
          "but 8388608 bytes (8 MiB) follow the header")
    assert grown < 48 * MiB, grown


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_decompression_limit_variable(tmp_path, monkeypatch, compression):
    monkeypatch.setenv("LOSSJIT_MAX_INPUT_BYTES", "1M")
    small = compress(b"a,b\n" + b"1,2\n" * 1000, compression)
    path = write_bytes(tmp_path / f"ok.csv{compression}", small)
    assert read(f"{path}:b").shape == (1000,)
    for fmt, inner in [(".csv", b"0,0\n" * MiB), (".npz", npz_bytes(x=np.zeros(MiB // 4))),
                       (".npy", npy_bytes(np.zeros(MiB // 4)))]:
        path = write_bytes(tmp_path / f"big{fmt}{compression}", compress(inner, compression))
        message = read_error(f"{path}:x" if fmt == ".npz" else path)
        limit = "1048576 bytes (1 MiB)"
        check(message, "predictions", path, f"more than {limit}", "LOSSJIT_MAX_INPUT_BYTES sets")
    monkeypatch.setenv("LOSSJIT_MAX_INPUT_BYTES", "lots")
    check(read_error(path), "predictions", path, "LOSSJIT_MAX_INPUT_BYTES='lots'",
          "not a number of bytes")


def test_text_memory_stays_near_the_array(tmp_path):
    """A regular CSV goes to np.loadtxt straight from the file: no copy of the text, no Python
    object per number."""
    block = "".join(f"{i * 0.37:.17g},{-i / 3:.17g},{i},{i * 1e-300:.17g},{i + 0.5}\n"
                    for i in range(1000))
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.write("a,b,c,d,e\n")
        for _ in range(200):
            f.write(block)
    assert path.stat().st_size > 10 * MiB
    messages, grown = peak_memory(str(path))
    assert messages == [f"array (200000, 5) float64 {float(read(str(path)).sum())}"]
    array_bytes = 200_000 * 5 * 8
    assert grown < 2 * array_bytes, (grown, array_bytes)


def test_every_read_failure_is_a_lossjit_error(tmp_path, monkeypatch):
    path = write_text(tmp_path / "x.csv", "a\n1\n")
    real_open = open

    class Failing(io.FileIO):
        def readinto(self, buffer):
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(readers, "open", lambda p, mode="r", *a, **k: Failing(p, "r")
                        if str(p) == path else real_open(p, mode, *a, **k), raising=False)
    check(read_error(path), "predictions", path, "cannot read file", "Input/output error")
    monkeypatch.undo()

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(readers.np, "loadtxt", no_memory)
    check(read_error(path), "predictions", path, "not enough memory")



# ----------------------------------------------------------------------------------------------
# import hygiene


def test_import_pulls_in_only_numpy_and_stdlib():
    assert new_imports("lossjit.readers") == []
