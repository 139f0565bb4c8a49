"""Tests for lossjit.writers: every output format and compression, stdout, atomic writes.

Files are read back with NumPy, pyarrow and the compression modules directly, so these tests
do not depend on lossjit's reader.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from io_helpers import bits_equal, check, error, new_imports

import lossjit.writers as lw
from lossjit import formats
from lossjit.writers import (
    STREAM_FORMATS,
    WRITE_FORMATS,
    check_destination,
    default_grad_path,
    text_lines,
    write_array,
)

REPO = Path(__file__).resolve().parents[1]
TEXT_FORMATS = [".csv", ".tsv", ".txt"]
NUMPY_FORMATS = [".npy", ".npz"]
ARROW_FORMATS = [".parquet", ".feather", ".arrow"]
ALL_FORMATS = [*NUMPY_FORMATS, *TEXT_FORMATS, *ARROW_FORMATS]
COMPRESSIONS = [".gz", ".bz2", ".xz", ".zst"]
SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": None}  # None: np.loadtxt splits on whitespace


# ----------------------------------------------------------------------------------------------
# helpers: reading back without lossjit


def decompress(data: bytes, compression: str) -> bytes:
    if compression == "":
        return data
    if compression == ".gz":
        return gzip.decompress(data)
    if compression == ".bz2":
        return bz2.decompress(data)
    if compression == ".xz":
        return lzma.decompress(data)
    zstandard = pytest.importorskip("zstandard")
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
        return reader.read()


def needs(ext: str, compression: str = "") -> None:
    """Skip when the optional package a format or compression needs is missing."""
    if ext in ARROW_FORMATS:
        pytest.importorskip("pyarrow")
    if compression == ".zst":
        pytest.importorskip("zstandard")


def arrow_table(data: bytes, ext: str):
    pa = pytest.importorskip("pyarrow")
    if ext == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data))
    return pa.ipc.open_file(pa.BufferReader(data)).read_all()


def load_bytes(data: bytes, ext: str, dtype=np.float64, key: str = "grad") -> np.ndarray:
    """An array back from a file's (decompressed) bytes; text is parsed as ``dtype``."""
    if ext == ".npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    if ext == ".npz":
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            assert archive.files == [key]
            return archive[key]
    if ext in SEPARATORS:
        return np.loadtxt(io.StringIO(data.decode()), delimiter=SEPARATORS[ext], dtype=dtype)
    table = arrow_table(data, ext)
    columns = [column.to_numpy() for column in table.columns]
    return columns[0] if len(columns) == 1 else np.column_stack(columns)


def load(path, dtype=np.float64, key: str = "grad") -> np.ndarray:
    ext, compression = formats.split_name(str(path))
    return load_bytes(decompress(Path(path).read_bytes(), compression), ext, dtype, key)


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
# the public tables


def test_format_tables():
    assert WRITE_FORMATS == (
        ".npy", ".npz", ".csv", ".tsv", ".txt", ".parquet", ".feather", ".arrow", ".zarr"
    )
    assert STREAM_FORMATS == ("csv", "tsv", "txt", "npy")


# ----------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("ext", ALL_FORMATS)
@pytest.mark.parametrize("shape", [(37,), (7, 5)])
def test_float64_round_trip_is_bit_exact(tmp_path, rng, ext, shape):
    needs(ext)
    values = awkward_floats(rng, 40)[: int(np.prod(shape))].reshape(shape)
    path = tmp_path / f"a{ext}"
    write_array(str(path), values)
    assert bits_equal(load(path), values)


@pytest.mark.parametrize("ext", ALL_FORMATS)
@pytest.mark.parametrize("shape", [(20,), (4, 5)])
def test_float32_round_trip(tmp_path, rng, ext, shape):
    needs(ext)
    values = (rng.standard_normal(shape) * 1e3).astype(np.float32)
    values.flat[0] = np.float32(0.1)
    values.flat[1] = np.finfo(np.float32).tiny / 4  # subnormal
    values.flat[2] = np.finfo(np.float32).max
    path = tmp_path / f"a{ext}"
    write_array(str(path), values)
    back = load(path)
    if ext in TEXT_FORMATS:  # text reads as float64; casting back recovers the float32 bits
        assert back.dtype == np.float64
        back = back.astype(np.float32)
    assert bits_equal(back, values)


@pytest.mark.parametrize("ext", ALL_FORMATS)
def test_int_round_trip_stays_integer(tmp_path, ext):
    needs(ext)
    labels = np.array([[0, 3, -2], [7, 1, 2**62]], dtype=np.int64)
    path = tmp_path / f"labels{ext}"
    write_array(str(path), labels)
    assert bits_equal(load(path, dtype=np.int64), labels)
    if ext in TEXT_FORMATS:
        assert "." not in path.read_text()


@pytest.mark.parametrize("ext", ALL_FORMATS)
def test_nan_and_inf_round_trip(tmp_path, ext):
    needs(ext)
    values = np.array([np.nan, np.inf, -np.inf, 1.5, -0.0])
    path = tmp_path / f"s{ext}"
    write_array(str(path), values)
    assert bits_equal(load(path), values)


@pytest.mark.parametrize("ext", ALL_FORMATS)
def test_bool_round_trip(tmp_path, ext):
    needs(ext)
    mask = np.array([True, False, True])
    path = tmp_path / f"m{ext}"
    write_array(str(path), mask)
    if ext in TEXT_FORMATS:
        assert path.read_text() == "1\n0\n1\n"
        assert bits_equal(load(path, dtype=np.int64), np.array([1, 0, 1]))
    else:
        assert bits_equal(load(path), mask)


@pytest.mark.parametrize("ext", ALL_FORMATS)
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_every_format_with_every_compression(tmp_path, rng, ext, compression):
    needs(ext, compression)
    values = awkward_floats(rng, 11).reshape(6, 4)
    path = tmp_path / f"g{ext}{compression}"
    write_array(str(path), values)
    assert path.read_bytes().startswith(formats.COMPRESSIONS[compression])
    assert bits_equal(load(path), values)
    assert listing(tmp_path) == [path.name]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_compressed_csv_keeps_header_and_ints(tmp_path, compression):
    needs(".csv", compression)
    path = tmp_path / f"labels.csv{compression}"
    write_array(str(path), np.array([[1, 2], [3, 4]]), columns=["a", "b"])
    assert decompress(path.read_bytes(), compression) == b"a,b\n1,2\n3,4\n"


def test_gzip_output_is_reproducible(tmp_path):
    for name in ("a.csv.gz", "b.csv.gz"):
        write_array(str(tmp_path / name), np.arange(5.0))
    assert (tmp_path / "a.csv.gz").read_bytes() == (tmp_path / "b.csv.gz").read_bytes()


def test_npy_keeps_dtype_and_shape(tmp_path):
    for dtype in (np.float16, np.float32, np.float64, np.int8, np.uint16, np.int32, np.int64, bool):
        values = np.arange(24).reshape(2, 3, 4).astype(dtype)
        for ext in NUMPY_FORMATS:
            path = tmp_path / f"x{ext}"
            write_array(str(path), values)
            assert bits_equal(load(path), values)


def test_npy_keeps_non_contiguous_and_fortran_order(tmp_path):
    values = np.asfortranarray(np.arange(12.0).reshape(3, 4))[:, ::2]
    write_array(str(tmp_path / "x.npy"), values)
    assert bits_equal(np.ascontiguousarray(load(tmp_path / "x.npy")), np.ascontiguousarray(values))


def test_npz_written_under_key(tmp_path):
    values = np.linspace(0, 1, 6).reshape(2, 3)
    write_array(str(tmp_path / "g.npz"), values)
    assert bits_equal(load(tmp_path / "g.npz"), values)
    for key in ("hess", "file", "allow_pickle"):  # not taken for np.savez's own arguments
        write_array(str(tmp_path / "h.npz"), values, key=key)
        assert bits_equal(load(tmp_path / "h.npz", key=key), values)


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
    write_array(str(tmp_path / "h.csv"), np.array([0.1, 65504], dtype=np.float16))
    assert (tmp_path / "h.csv").read_text() == "0.1\n6.55e+04\n"


def test_text_column_and_row_vectors(tmp_path):
    write_array(str(tmp_path / "col.csv"), np.arange(4.0).reshape(4, 1))
    write_array(str(tmp_path / "row.csv"), np.arange(4.0).reshape(1, 4))
    assert (tmp_path / "col.csv").read_text() == "0.0\n1.0\n2.0\n3.0\n"
    assert (tmp_path / "row.csv").read_text() == "0.0,1.0,2.0,3.0\n"


def test_zero_d_array_written_as_one_value(tmp_path):
    write_array(str(tmp_path / "s.txt"), np.float64(2.5))
    assert (tmp_path / "s.txt").read_text() == "2.5\n"
    write_array(str(tmp_path / "s.npy"), np.float32(2.5))
    assert bits_equal(load(tmp_path / "s.npy"), np.array(2.5, dtype=np.float32))


def test_zero_d_array_to_arrow_is_one_row(tmp_path):
    pytest.importorskip("pyarrow")
    write_array(str(tmp_path / "s.parquet"), np.float64(2.5), key="loss")
    table = arrow_table((tmp_path / "s.parquet").read_bytes(), ".parquet")
    assert table.column_names == ["loss"] and table.column(0).to_pylist() == [2.5]


def test_python_lists_and_pathlike_accepted(tmp_path):
    write_array(tmp_path / "l.csv", [[1, 2], [3, 4]])
    assert (tmp_path / "l.csv").read_text() == "1,2\n3,4\n"


def test_uppercase_extension(tmp_path):
    write_array(str(tmp_path / "A.CSV"), np.array([[1.5, 2.5], [3.5, 4.5]]))
    assert (tmp_path / "A.CSV").read_text() == "1.5,2.5\n3.5,4.5\n"
    write_array(str(tmp_path / "B.NPY.GZ"), np.arange(3.0))
    assert bits_equal(np.load(io.BytesIO(gzip.decompress((tmp_path / "B.NPY.GZ").read_bytes()))),
                      np.arange(3.0))


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
    path = tmp_path / f"p{ext}"
    write_array(str(path), values)
    assert bits_equal(load(path), values)


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
    path = tmp_path / "p.csv"
    write_array(str(path), values)
    assert bits_equal(load(path).astype(np.float32), values)


# ----------------------------------------------------------------------------------------------
# column names


@pytest.mark.parametrize("ext, sep", [(".csv", ","), (".tsv", "\t"), (".txt", " ")])
def test_text_header_from_columns(tmp_path, ext, sep):
    path = tmp_path / f"g{ext}"
    write_array(str(path), np.array([[1.5, 2.0], [3.0, 4.0]]), columns=["pred", "target"])
    assert path.read_text() == f"pred{sep}target\n1.5{sep}2.0\n3.0{sep}4.0\n"
    write_array(str(path), np.array([0.5, 1.0]), columns=["y"])
    assert path.read_text() == "y\n0.5\n1.0\n"


@pytest.mark.parametrize(
    "values, columns",
    [
        (np.ones((2, 2)), ["a"]),  # too few names
        (np.ones((2, 2)), ["a", "b", "c"]),  # too many
        (np.ones(2), ["a", "b"]),  # 1-D takes one name
        (np.ones((2, 2)), ["0", "1"]),  # would read back as a row of data
        (np.ones((2, 2)), ["1e3", " nan"]),
        (np.ones((2, 2)), ["", ""]),
        (np.ones(2), "ab"),  # a string is not a list of names
        (np.ones((2, 2)), None),
    ],
)
def test_no_header_when_columns_do_not_fit(tmp_path, values, columns):
    path = tmp_path / "g.csv"
    write_array(str(path), values, columns=columns)
    assert path.read_text() == text_lines(values)
    assert path.read_text().startswith("1.0")


def test_header_names_with_separator_or_quotes_are_quoted():
    text = text_lines(np.ones((1, 3)), ",", ["a,b", 'say "hi"', "line\nbreak"])
    assert text == '"a,b","say ""hi""","line break"\n1.0,1.0,1.0\n'
    assert text_lines(np.ones((1, 2)), "\t", ["a,b", "c d"]) == "a,b\tc d\n1.0\t1.0\n"


@pytest.mark.parametrize("ext", ARROW_FORMATS)
def test_arrow_column_names(tmp_path, ext):
    pytest.importorskip("pyarrow")
    path = tmp_path / f"g{ext}"
    names = lambda: arrow_table(path.read_bytes(), ext).column_names  # noqa: E731
    write_array(str(path), np.ones((3, 2)), columns=["pred", "target"])
    assert names() == ["pred", "target"]
    write_array(str(path), np.ones((3, 2)))
    assert names() == ["0", "1"]
    write_array(str(path), np.ones((3, 2)), columns=["only one"])
    assert names() == ["0", "1"]
    write_array(str(path), np.ones(3))
    assert names() == ["grad"]
    write_array(str(path), np.ones(3), key="hess")
    assert names() == ["hess"]
    write_array(str(path), np.ones(3), columns=["loss"])
    assert names() == ["loss"]


def test_arrow_keeps_dtypes(tmp_path):
    pytest.importorskip("pyarrow")
    for dtype in (np.float16, np.float32, np.int8, np.uint64, bool):
        values = np.arange(6).reshape(3, 2).astype(dtype)
        for ext in ARROW_FORMATS:
            path = tmp_path / f"x{ext}"
            write_array(str(path), values)
            assert bits_equal(load(path), values), (dtype, ext)


# ----------------------------------------------------------------------------------------------
# text_lines


def test_text_lines_shapes():
    assert text_lines(np.float64(0.1)) == "0.1\n"
    assert text_lines(np.array([1, 2])) == "1\n2\n"
    assert text_lines(np.array([[1, 2]]), sep="\t") == "1\t2\n"
    assert text_lines(np.array([True, False])) == "1\n0\n"
    assert text_lines(np.array([2**63 - 1], dtype=np.uint64) + 1) == f"{2**63}\n"
    assert text_lines(np.array([], dtype=np.float64)) == ""
    assert text_lines(np.array([], dtype=np.float64), columns=["loss"]) == "loss\n"


def test_text_lines_flattens_more_than_2d_to_rows_of_last_axis():
    values = np.arange(12).reshape(2, 3, 2)
    assert text_lines(values) == "0,1\n2,3\n4,5\n6,7\n8,9\n10,11\n"
    assert text_lines(values, columns=["a", "b"]).startswith("a,b\n0,1\n")
    assert text_lines(np.zeros((2, 0, 3))) == ""


# ----------------------------------------------------------------------------------------------
# stdout


def test_write_stdout_npy():
    out = io.BytesIO()
    write_array("-", np.arange(4, dtype=np.float32), stdout=out, stream_format="npy")
    assert bits_equal(np.load(io.BytesIO(out.getvalue())), np.arange(4, dtype=np.float32))


@pytest.mark.parametrize("fmt, sep", [("csv", ","), ("tsv", "\t"), ("txt", " ")])
def test_write_stdout_text(fmt, sep):
    out = io.BytesIO()
    write_array("-", np.array([[0.5, 1.0], [2.0, -3.0]]), stdout=out, stream_format=fmt)
    assert out.getvalue() == f"0.5{sep}1.0\n2.0{sep}-3.0\n".encode()
    out = io.BytesIO()
    write_array("-", np.array([[1, 2]]), columns=["a", "b"], stdout=out, stream_format=fmt)
    assert out.getvalue() == f"a{sep}b\n1{sep}2\n".encode()


def test_write_stdout_csv_is_the_default():
    out = io.BytesIO()
    write_array("-", np.array([0.1, 2.0]), stdout=out)
    assert out.getvalue() == b"0.1\n2.0\n"


def test_write_stdout_flushes():
    class Recorder(io.BytesIO):
        flushed = 0

        def flush(self):
            self.flushed += 1
            super().flush()

    out = Recorder()
    write_array("-", np.ones(2), stdout=out)
    assert out.flushed >= 1


def test_write_stdout_default_is_sys_stdout_buffer(monkeypatch):
    class FakeStdout:
        buffer = io.BytesIO()

    fake = FakeStdout()
    monkeypatch.setattr(sys, "stdout", fake)
    values = np.linspace(-1, 1, 9).reshape(3, 3)
    write_array("-", values, protect=["-"], stream_format="npy")
    assert bits_equal(np.load(io.BytesIO(fake.buffer.getvalue())), values)


def test_write_stdout_errors():
    out = io.BytesIO()
    check(error(write_array, "-", np.ones(2), stdout=out, stream_format="parquet"),
          "--grad-out", "stdout", "'parquet'", "csv, tsv, txt, npy")
    check(error(write_array, "-", np.ones((2, 2, 2)), stdout=out, what="--loss-out"),
          "--loss-out", "stdout", "3-D", ".npy")
    write_array("-", np.ones((2, 2, 2)), stdout=out, stream_format="npy")  # npy holds any shape
    assert np.load(io.BytesIO(out.getvalue())).shape == (2, 2, 2)


def test_broken_pipe_propagates():
    class Closed(io.BytesIO):
        def write(self, data):
            raise BrokenPipeError(32, "Broken pipe")

    for fmt in STREAM_FORMATS:
        with pytest.raises(BrokenPipeError):
            write_array("-", np.ones(3), stdout=Closed(), stream_format=fmt)


@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_stdout_pipe_in_subprocess(fmt):
    """A real pipe: write to stdout in one process and read the bytes here."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = (
        "import numpy as np, lossjit.writers as w; "
        f"w.write_array('-', np.arange(5.0) / 3, stream_format={fmt!r})"
    )
    data = subprocess.run(
        [sys.executable, "-c", writer], capture_output=True, env=env, check=True
    ).stdout
    back = np.load(io.BytesIO(data)) if fmt == "npy" else np.loadtxt(io.StringIO(data.decode()))
    assert bits_equal(back, np.arange(5.0) / 3)


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
        ("x.csv.gz", "x.grad.csv.gz"),
        ("x.NPY.ZST", "x.grad.NPY.ZST"),
        ("t.parquet", "t.grad.parquet"),
        ("t.feather", "t.grad.feather"),
        ("t.arrow.xz", "t.grad.arrow.xz"),
        ("-", "stdin.grad.npy"),
        ("preds", "preds.grad.npy"),
        ("data/preds", "preds.grad.npy"),
        ("preds.dat", "preds.dat.grad.npy"),  # an extension write_array cannot write
        ("preds.gz", "preds.gz.grad.npy"),  # compressed, but no format
        ("t.arrows", "t.arrows.grad.npy"),  # read, not written
        ("a.b.npy", "a.b.grad.npy"),
        ("", "predictions.grad.npy"),
        ("dir/", "dir.grad.npy"),
    ],
)
def test_default_grad_path(predictions, expected):
    assert default_grad_path(predictions) == expected


def test_default_grad_path_suffix():
    assert default_grad_path("x.csv.gz", suffix="hess") == "x.hess.csv.gz"
    assert default_grad_path("-", suffix="loss") == "stdin.loss.npy"
    assert default_grad_path("p.dat", "hess") == "p.dat.hess.npy"


def test_default_grad_path_is_writable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ["x.npy", "x.csv", "x.csv.bz2", "x.dat", "x", "-"]:
        out = default_grad_path(name)
        assert os.path.dirname(out) == ""
        check_destination(out)
        write_array(out, np.ones(2))
        assert os.path.exists(out)


# ----------------------------------------------------------------------------------------------
# destination errors (write_array and check_destination raise the same)


BOTH = [
    pytest.param(lambda path, **kw: write_array(path, np.ones(2), **kw), id="write_array"),
    pytest.param(check_destination, id="check_destination"),
]


@pytest.mark.parametrize("func", BOTH)
def test_unknown_extension_lists_supported(tmp_path, func):
    for name in ["g.foo", "g", "g.gz", "g.json.xz"]:
        path = tmp_path / name
        message = error(func, str(path))
        check(message, "--grad-out", path, *WRITE_FORMATS, *COMPRESSIONS, "- for stdout")
    assert "no format extension before .gz" in error(func, str(tmp_path / "g.gz"))
    assert "'.foo' is not a format" in error(func, str(tmp_path / "g.foo"))
    assert listing(tmp_path) == []


@pytest.mark.parametrize("func", BOTH)
def test_missing_directory(tmp_path, func):
    path = tmp_path / "nope" / "g.npy"
    check(error(func, str(path)), "--grad-out", path, "does not exist", "create it")


@pytest.mark.parametrize("func", BOTH)
def test_destination_is_directory(tmp_path, func):
    path = tmp_path / "g.npy"
    path.mkdir()
    check(error(func, str(path)), "--grad-out", path, "is a directory")


@pytest.mark.parametrize("func", BOTH)
def test_what_label_is_used(tmp_path, func):
    assert error(func, str(tmp_path / "x.bad"), what="--loss-out").startswith("--loss-out: ")


@pytest.mark.parametrize("func", BOTH)
def test_empty_path(func):
    assert "empty path" in error(func, "", what="--hess-out")


@pytest.mark.parametrize("func", BOTH)
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anything")
def test_unwritable_directory(tmp_path, func):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        path = locked / "g.npy"
        check(error(func, str(path)), "--grad-out", path, "cannot write", "not writable")
    finally:
        os.chmod(locked, 0o700)


@pytest.mark.parametrize("func", BOTH)
def test_unwritable_directory_checked_before_writing(tmp_path, monkeypatch, func):
    """The same check where chmod cannot show it (as root): os.access says no."""
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    path = tmp_path / "g.csv"
    check(error(func, str(path)), "--grad-out", path, "cannot write", "not writable")
    assert listing(tmp_path) == []


def test_unwritable_directory_found_while_writing(tmp_path, monkeypatch):
    """Where the up-front check passes (root, ACLs) but creating the file fails."""
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: True)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(lw.tempfile, "mkstemp", refuse)
    path = tmp_path / "g.npy"
    check(error(write_array, str(path), np.ones(2)), "--grad-out", path, "cannot write",
          "Permission denied")


@pytest.mark.parametrize("func", BOTH)
@pytest.mark.parametrize("ext", [".parquet", ".feather", ".arrow"])
def test_missing_pyarrow_names_the_extra(tmp_path, monkeypatch, func, ext):
    for module in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    path = tmp_path / f"g{ext}.gz"
    check(error(func, str(path)), "--grad-out", path, "pyarrow", "lossjit[parquet]")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("func", BOTH)
@pytest.mark.parametrize("module,name,extra", [("zstandard", "g.csv.zst", "zstd"),
                                              ("zarr", "g.zarr", "dask")])
def test_missing_package_names_the_extra(tmp_path, monkeypatch, func, module, name, extra):
    monkeypatch.setitem(sys.modules, module, None)  # importing it raises ImportError
    path = tmp_path / name
    check(error(func, str(path)), "--grad-out", path, module, f"lossjit[{extra}]")
    assert listing(tmp_path) == []


def test_check_destination_passes_and_creates_nothing(tmp_path):
    for name in ["g.npy", "g.csv.gz", "G.TSV", "g.txt.bz2", "g.npz.xz"]:
        check_destination(str(tmp_path / name))
    check_destination("-")
    check_destination("-", protect=["-"])
    assert listing(tmp_path) == []


@pytest.mark.parametrize("ext", [*TEXT_FORMATS, *ARROW_FORMATS])
def test_more_than_2d_to_text_or_arrow_says_use_npy(tmp_path, ext):
    needs(ext)
    path = tmp_path / f"g{ext}"
    message = error(write_array, str(path), np.ones((2, 2, 2)))
    check(message, "--grad-out", path, "3-D", "(2, 2, 2)", ".npy or .npz")
    assert listing(tmp_path) == []


def test_unwritable_dtypes_refused(tmp_path):
    path = tmp_path / "g.csv"
    check(error(write_array, str(path), np.ones(2, complex)), "--grad-out", path, "complex128")
    path = tmp_path / "g.npy"
    check(error(write_array, str(path), np.array([None])), "--grad-out", path, "object")
    path = tmp_path / "g.txt.gz"
    check(error(write_array, str(path), np.array(["a"])), "--grad-out", path, "<U1")
    assert listing(tmp_path) == []


def test_unwritable_dtypes_refused_by_arrow(tmp_path):
    pytest.importorskip("pyarrow")
    for ext in ARROW_FORMATS:
        path = tmp_path / f"g{ext}"
        check(error(write_array, str(path), np.ones(2, complex)), "--grad-out", path,
              "complex128", "use .npy")
        if np.dtype(np.longdouble).itemsize > 8:
            check(error(write_array, str(path), np.ones(2, np.longdouble)), "--grad-out", path,
                  str(np.dtype(np.longdouble)))
    assert listing(tmp_path) == []


# ----------------------------------------------------------------------------------------------
# protect


@pytest.mark.parametrize("func", BOTH)
def test_protect_same_path(tmp_path, func):
    path = tmp_path / "in.npy"
    np.save(path, np.arange(3.0))
    before = path.read_bytes()
    message = error(func, str(path), protect=[str(path)])
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
        ("in.npy", Path("in.npy")),  # a path object
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
    assert "refusing" in error(check_destination, "new.npy", protect=[str(tmp_path / "new.npy")])


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


def test_temp_file_is_hidden_in_the_destination_directory(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def record(src, dst):
        seen.append((src, dst))
        assert os.path.exists(src) and listing(tmp_path) == [os.path.basename(src)]
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", record)
    write_array(str(tmp_path / "g.npy"), np.ones(2))
    ((src, dst),) = seen
    assert os.path.dirname(src) == str(tmp_path) and dst == str(tmp_path / "g.npy")
    name = os.path.basename(src)
    assert name.startswith(f".lossjit-g.npy.{os.getpid()}.") and name.endswith(".tmp")


@pytest.mark.parametrize("existing", [True, False])
@pytest.mark.parametrize("ext", [".npy", ".npz", ".npy.gz", ".npz.bz2"])
def test_failure_midway_leaves_destination_untouched(tmp_path, monkeypatch, existing, ext):
    path = tmp_path / f"g{ext}"
    if existing:
        path.write_bytes(b"old content")

    def half_written(file, *args, **kwargs):
        file.write(b"\x93NUMPY partial bytes")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(np.lib.format, "write_array", half_written)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_array(str(path), np.arange(1000.0))
    assert listing(tmp_path) == ([path.name] if existing else [])
    if existing:
        assert path.read_bytes() == b"old content"


@pytest.mark.parametrize("ext", [".csv", ".tsv.xz"])
def test_text_failure_midway_leaves_destination_untouched(tmp_path, monkeypatch, ext):
    path = tmp_path / f"g{ext}"
    path.write_text("old\n")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lw, "text_lines", boom)
    with pytest.raises(KeyboardInterrupt):
        write_array(str(path), np.arange(10.0))
    assert listing(tmp_path) == [path.name]
    assert path.read_text() == "old\n"


@pytest.mark.parametrize("ext", ARROW_FORMATS)
def test_arrow_failure_midway_leaves_destination_untouched(tmp_path, monkeypatch, ext):
    pytest.importorskip("pyarrow")
    path = tmp_path / f"g{ext}"
    path.write_bytes(b"old")

    def half_written(f, array, columns, key):
        f.write(b"PAR1 partial")
        raise MemoryError

    monkeypatch.setitem(lw._WRITERS, ext, half_written)
    with pytest.raises(MemoryError):
        write_array(str(path), np.arange(10.0))
    assert listing(tmp_path) == [path.name]
    assert path.read_bytes() == b"old"


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
        (tmp_path / "old.csv.gz").write_bytes(b"x")
        os.chmod(tmp_path / "old.csv.gz", 0o640)
        write_array(str(tmp_path / "old.csv.gz"), np.ones(2))
        assert stat.S_IMODE(os.stat(tmp_path / "old.csv.gz").st_mode) == 0o640
    finally:
        os.umask(umask)
    os.umask(0o077)
    try:
        write_array(str(tmp_path / "private.npy"), np.ones(2))
        assert stat.S_IMODE(os.stat(tmp_path / "private.npy").st_mode) == 0o600
    finally:
        os.umask(umask)


@pytest.mark.parametrize("ext", [".npy", ".csv.gz"])
def test_symlink_destination_is_written_through(tmp_path, ext):
    target = tmp_path / f"real{ext}"
    target.write_bytes(b"old")
    link = tmp_path / f"link{ext}"
    os.symlink(target, link)
    write_array(str(link), np.arange(3.0))
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert bits_equal(load(target), np.arange(3.0))
    assert listing(tmp_path) == sorted([target.name, link.name])


def test_symlink_into_another_directory(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "here").mkdir()
    link = tmp_path / "here" / "g.npy"
    os.symlink(tmp_path / "elsewhere" / "g.npy", link)  # dangling: the target is created
    write_array(str(link), np.ones(2))
    assert link.is_symlink()
    assert bits_equal(np.load(tmp_path / "elsewhere" / "g.npy"), np.ones(2))
    assert listing(tmp_path / "here") == ["g.npy"]


# ----------------------------------------------------------------------------------------------
# import hygiene


def test_import_pulls_in_only_numpy_and_stdlib():
    assert new_imports("lossjit.writers") == []


# ----------------------------------------------------------------------------------------------
# Zarr stores: a directory written as a temporary directory and put in place whole


def zarr_or_skip():
    return pytest.importorskip("zarr", reason="the dask extra (zarr) is not installed")


def no_temporaries(directory: Path) -> bool:
    return not [p for p in directory.rglob(".lossjit-*")]


@pytest.mark.parametrize("array", [
    np.arange(12.0).reshape(4, 3) * 0.1,
    np.array([-0.0, np.nan, np.inf, 1e-310], dtype=np.float64),
    np.linspace(-3, 3, 7, dtype=np.float32),
    np.arange(5, dtype=np.int16),
    np.array(2.5),
], ids=["2d", "specials", "float32", "int16", "0d"])
def test_zarr_round_trip_is_bit_exact(tmp_path, array):
    zarr = zarr_or_skip()
    write_array(str(tmp_path / "g.zarr"), array)
    back = zarr.open_array(str(tmp_path / "g.zarr"), mode="r")[...]
    assert bits_equal(np.asarray(back), array)
    assert listing(tmp_path) == ["g.zarr"]


def test_zarr_replaces_an_array_whole_and_keeps_its_mode(tmp_path, monkeypatch):
    zarr = zarr_or_skip()
    path = tmp_path / "g.zarr"
    write_array(str(path), np.zeros((100, 2)))
    os.chmod(path, 0o750)
    for exchange in (True, False):  # the one-step swap, and moving the old one aside
        if not exchange:
            monkeypatch.setattr(lw, "_exchange", lambda a, b: False)
        new = np.full(7, 3.0 if exchange else 4.0)
        write_array(str(path), new)
        assert bits_equal(zarr.open_array(str(path), mode="r")[:], new)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o750
        assert listing(tmp_path) == ["g.zarr"]


def test_zarr_arrays_of_a_new_group_are_written_together(tmp_path):
    zarr = zarr_or_skip()
    with lw.OutputSet() as outputs:
        outputs.add(str(tmp_path / "run.zarr:grad"), np.ones(3))
        outputs.add(str(tmp_path / "run.zarr:hess"), np.full(3, 2.0), what="--hess-out")
        assert listing(tmp_path) != ["run.zarr"]  # nothing in place before the commit
        outputs.commit()
    group = zarr.open_group(str(tmp_path / "run.zarr"), mode="r")
    assert sorted(group.array_keys()) == ["grad", "hess"]
    assert bits_equal(group["hess"][:], np.full(3, 2.0))
    assert listing(tmp_path) == ["run.zarr"]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_array_goes_into_an_existing_group_beside_its_arrays(tmp_path, zarr_format):
    zarr = zarr_or_skip()
    group = zarr.open_group(str(tmp_path / "run.zarr"), mode="w", zarr_format=zarr_format)
    group.create_array("x", data=np.arange(4.0))
    group.create_array("grad", data=np.zeros(9))
    write_array(str(tmp_path / "run.zarr:grad"), np.arange(3.0))
    write_array(str(tmp_path / "run.zarr:hess"), np.ones(2))
    group = zarr.open_group(str(tmp_path / "run.zarr"), mode="r")
    assert sorted(group.array_keys()) == ["grad", "hess", "x"]
    assert bits_equal(group["grad"][:], np.arange(3.0))
    assert bits_equal(group["x"][:], np.arange(4.0))
    assert group["hess"].metadata.zarr_format == zarr_format
    assert no_temporaries(tmp_path)


def test_zarr_destinations_refused_touch_nothing(tmp_path):
    zarr = zarr_or_skip()
    zarr.open_group(str(tmp_path / "run.zarr"), mode="w").create_array("x", data=np.ones(2))
    zarr.create_array(store=str(tmp_path / "x.zarr"), data=np.ones(2))
    (tmp_path / "notes.zarr").mkdir()
    (tmp_path / "notes.zarr" / "todo.txt").write_text("keep me")
    (tmp_path / "file.zarr").write_text("a file")
    cases = {
        "run.zarr": ["is a Zarr group", "run.zarr:grad"],
        "x.zarr:grad": ["is not a Zarr group"],
        "notes.zarr": ["holds no Zarr array"],
        "notes.zarr:grad": ["is not a Zarr group"],
        "file.zarr": ["is a file, not a Zarr store"],
        "run.zarr:.hidden": ["is not an array name"],
        "run.zarr:a/b": ["is not an array name"],
        "run.zarr:": ["is not an array name"],
    }
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    for name, phrases in cases.items():
        for func in (check_destination, lambda p, **kw: write_array(p, np.zeros(2), **kw)):
            check(error(func, str(tmp_path / name)), "--grad-out", tmp_path / name, *phrases)
    for name, protect in (("x.zarr", "x.zarr"), ("run.zarr:x", "run.zarr/x")):
        message = error(check_destination, str(tmp_path / name),
                        protect=[str(tmp_path / protect)])
        check(message, "--grad-out", tmp_path / name, "refusing to overwrite input")
    check_destination(str(tmp_path / "run.zarr:y"), protect=[str(tmp_path / "run.zarr/x")])
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "notes.zarr" / "todo.txt").read_text() == "keep me"


def test_zarr_set_left_by_an_error_leaves_the_old_array(tmp_path):
    zarr = zarr_or_skip()
    path = tmp_path / "g.zarr"
    write_array(str(path), np.arange(3.0))
    with pytest.raises(RuntimeError), lw.OutputSet() as outputs:
        pieces = outputs.mapped(str(path), (10, 2), np.float32, rows=4)
        pieces[:4] = 1.0
        assert pieces.chunks == (4, 2)
        raise RuntimeError("interrupted")
    assert bits_equal(zarr.open_array(str(path), mode="r")[:], np.arange(3.0))
    assert listing(tmp_path) == ["g.zarr"]


def test_stale_zarr_temporaries_are_removed(tmp_path):
    stale = tmp_path / ".lossjit-g.zarr.999999999.abc.tmp"
    (stale / "c").mkdir(parents=True)
    (stale / "zarr.json").write_text("{}")
    foreign = tmp_path / "lossjit-g.zarr.999999999.abc.tmp"  # not lossjit's name: kept
    foreign.mkdir()
    assert lw.remove_stale(str(tmp_path), now=time.time() + 2 * lw.STALE_AGE) == [stale.name]
    assert listing(tmp_path) == [foreign.name]
