"""Fuzz tests of every reader: random bytes, and valid files damaged (cut short, bytes
overwritten, inserted or dropped), as .npy, .npz, CSV/TSV/text, Parquet/Arrow, and each of
those compressed (.gz .bz2 .xz .zst), read from a file and from standard input.

Every case reads as the array that was written, when its bytes are the ones written, or raises
a LossjitError that names the input; never another exception, a hang (each example has
``LOSSJIT_FUZZ_TIMEOUT`` seconds, 20 by default) or a crash. A crafted pickle payload never
runs. The default run is short; ``LOSSJIT_FUZZ_EXAMPLES`` sets the examples per test for a
long one::

    LOSSJIT_FUZZ_EXAMPLES=5000 NUMBA_CACHE_DIR=$(mktemp -d) python -m pytest \\
        tests/test_fuzz_readers.py -p no:randomly
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import io
import os
import pickle
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lossjit import formats
from lossjit.errors import LossjitError, show
from lossjit.readers import MARKERS, Reader

EXAMPLES = int(os.environ.get("LOSSJIT_FUZZ_EXAMPLES", "100"))
TIMEOUT = float(os.environ.get("LOSSJIT_FUZZ_TIMEOUT", "20"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

HAS_ZSTD = importlib.util.find_spec("zstandard") is not None
COMPRESSIONS = ["", ".gz", ".bz2", ".xz", *([".zst"] if HAS_ZSTD else [])]
ARROW_FORMATS = [".parquet", ".feather", ".arrow", ".arrows"]  # .arrow: uncompressed Feather


# ----------------------------------------------------------------------------------------------
# reading a case, with a time limit


class Hang(BaseException):
    """An example that ran past TIMEOUT seconds (a BaseException, so that no reader catches
    it as a failure of its own)."""


@contextlib.contextmanager
def time_limit() -> Iterator[None]:
    """Raise Hang in the code under test after TIMEOUT seconds (where SIGALRM exists)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not \
            threading.main_thread():
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise Hang(f"reading took more than {TIMEOUT} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


Outcomes = dict[tuple[str, "str | None"], "np.ndarray | None"]


def read_both(tmp_path: Path, name: str, data: bytes, selectors: Sequence[str | None],
              header: bool | None = None) -> Outcomes:
    """Each selector (None: the whole file) read from a file called ``name`` holding ``data``,
    and from stdin: ``{(how, selector): the array, or None for a LossjitError}``. Any other
    exception fails the test; a LossjitError must be one line naming the input."""
    path = tmp_path / name
    path.write_bytes(data)
    outcomes: Outcomes = {}
    for how, reader, base in (("file", Reader(header=header), str(path)),
                              ("stdin", Reader(header=header, stdin=io.BytesIO(data)), "-")):
        shown = "stdin" if base == "-" else show(base, 200)
        for selector in selectors:
            source = base if selector is None else f"{base}:{selector}"
            with time_limit():
                try:
                    outcomes[how, selector] = reader.read(source, what="x").array
                except LossjitError as exc:
                    message = str(exc)
                    assert message.startswith(f"x: {shown}: "), message
                    assert "\n" not in message and "internal error" not in message, message
                    outcomes[how, selector] = None
    return outcomes


def assert_read_as(outcomes: Outcomes, selector: str | None, expected: np.ndarray | None,
                   *, exact: bool = True) -> None:
    """From the file and from stdin, ``selector`` read as ``expected`` (None: an error);
    ``exact``: dtype and bits too, else dtype (for text, its kind) and values (NaN equal to
    NaN)."""
    for how in ("file", "stdin"):
        got = outcomes[how, selector]
        if expected is None:
            assert got is None, (how, selector, got)
            continue
        assert got is not None, (how, selector, "raised a LossjitError")
        same = got.dtype.kind == "U" if expected.dtype.kind == "U" else got.dtype == expected.dtype
        assert same and got.shape == expected.shape, (how, selector, got, expected)
        if exact:
            assert got.tobytes() == expected.tobytes(), (how, selector, got, expected)
        else:
            np.testing.assert_array_equal(got, expected)


# ----------------------------------------------------------------------------------------------
# damage


MUTATIONS = st.lists(st.tuples(st.sampled_from(["cut", "flip", "insert", "drop"]),
                               st.integers(0, 2**32), st.binary(min_size=1, max_size=8)),
                     max_size=3)


def damaged(data: bytes, mutations: Sequence[tuple[str, int, bytes]]) -> bytes:
    """``data`` cut short, with bytes flipped (xor), inserted or dropped at the given places."""
    for kind, place, payload in mutations:
        i = place % (len(data) + 1)
        if kind == "cut":
            data = data[:i]
        elif kind == "flip":
            flipped = bytes(a ^ b for a, b in zip(data[i:i + len(payload)], payload[:len(data) - i],
                                                  strict=True))
            data = data[:i] + flipped + data[i + len(flipped):]
        elif kind == "insert":
            data = data[:i] + payload + data[i:]
        else:
            data = data[:i] + data[i + len(payload):]
    return data


def packed(inner: bytes, compression: str, mutations: Sequence[tuple[str, int, bytes]],
           outer: bool) -> bytes:
    """``inner`` compressed, damaged before compression or (``outer``) after it."""
    if not outer:
        inner = damaged(inner, mutations)
    data = formats.compress(inner, compression)
    return damaged(data, mutations) if outer else data


def save(writer, *args, **kwargs) -> bytes:
    buffer = io.BytesIO()
    writer(buffer, *args, **kwargs)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------
# random bytes, random text


MAGICS = [b"", b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00", b"\x93NUMPY\x03\x00", b"PK\x03\x04",
          b"PK\x05\x06", b"PAR1", b"ARROW1\x00\x00", b"\xff\xff\xff\xff", b"\x1f\x8b\x08\x00",
          b"BZh9", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", "\ufeff".encode()]
NAMES = ["x", "x.npy", "x.npz", "x.csv", "x.tsv", "x.txt", "x.parquet", "x.feather", "x.arrow",
         "x.arrows", "x.ipc", "x.csv.gz", "x.npy.bz2", "x.npz.xz", "x.parquet.zst", "x.txt.xz"]
TEXTISH = st.text(alphabet=st.sampled_from(list("0123456789.,;\t -+eE\n\r#\"NAnaifx_ ")),
                  max_size=120)


@FUZZ
@given(name=st.sampled_from(NAMES), prefix=st.sampled_from(MAGICS),
       body=st.binary(max_size=400))
def test_random_bytes(tmp_path, name, prefix, body):
    read_both(tmp_path, name, prefix + body, [None, "0", "x", "0..1"])


@FUZZ
@given(name=st.sampled_from(["x.csv", "x.tsv", "x.txt", "x", "x.csv.gz"]), text=TEXTISH,
       header=st.sampled_from([None, True, False]))
def test_random_text(tmp_path, name, text, header):
    data = formats.compress(text.encode(), ".gz" if name.endswith(".gz") else "")
    read_both(tmp_path, name, data, [None, "0", "1..", "x"], header)


@st.composite
def npy_headers(draw) -> bytes:
    """An .npy header of odd descr, fortran_order and shape, and some bytes after it."""
    descr = draw(st.sampled_from(["'<f8'", "'>i4'", "'|b1'", "'|O'", "'<U3'", "'V8'", "'S0'",
                                  "[('a', '<f8')]", "('<f8', (2,))", "'<f8,<i4'", "'08'", "3",
                                  "'<M8[D]'", "'<c16'", "None", "'<f8' + 'x'"])
                 | st.text(max_size=8).map(repr))
    fortran = draw(st.sampled_from(["False", "True", "0", "'no'"]))
    shape = draw(st.lists(st.integers(-2, 2**70), max_size=4).map(tuple) | st.just("[3]"))
    text = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
    if draw(st.booleans()):
        text = text.replace("'fortran_order'", "'order'")
    version = draw(st.sampled_from([1, 2, 3]))
    raw = text.encode("latin1" if version < 3 else "utf-8", "replace") + b"\n"
    size = len(raw).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + size + raw + draw(st.binary(max_size=64))


@FUZZ
@given(data=npy_headers(), compression=st.sampled_from(COMPRESSIONS))
def test_npy_headers(tmp_path, data, compression):
    read_both(tmp_path, f"x.npy{compression}", formats.compress(data, compression), [None, "0"])


# ----------------------------------------------------------------------------------------------
# .npy and .npz


DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.int8, np.uint16,
                          np.bool_, np.dtype(">f8"), np.dtype("<i2")])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)
ARRAYS = st.tuples(DTYPES, SHAPES).flatmap(lambda ds: hnp.arrays(*ds))


@FUZZ
@given(array=ARRAYS, fortran=st.booleans(), compression=st.sampled_from(COMPRESSIONS),
       mutations=MUTATIONS, outer=st.booleans())
def test_npy(tmp_path, array, fortran, compression, mutations, outer):
    if fortran:
        array = np.asfortranarray(array)
    written = save(np.save, array, allow_pickle=False)
    data = packed(written, compression, mutations, outer)
    outcomes = read_both(tmp_path, f"x.npy{compression}", data, [None, "0"])
    if data == formats.compress(written, compression):
        assert_read_as(outcomes, None, np.asarray(array, order="C"))
        column = array[:, 0] if array.ndim == 2 and array.shape[1] else None
        assert_read_as(outcomes, "0", None if column is None else np.asarray(column, order="C"))


@FUZZ
@given(arrays=st.dictionaries(st.sampled_from(["x", "y", "logits", "a_b", "9"]), ARRAYS,
                              min_size=1, max_size=3),
       deflated=st.booleans(), compression=st.sampled_from(COMPRESSIONS), mutations=MUTATIONS,
       outer=st.booleans())
def test_npz(tmp_path, arrays, deflated, compression, mutations, outer):
    written = save(np.savez_compressed if deflated else np.savez, **arrays)
    data = packed(written, compression, mutations, outer)
    outcomes = read_both(tmp_path, f"x.npz{compression}", data, [None, *arrays])
    if data == formats.compress(written, compression):
        assert_read_as(outcomes, None, next(iter(arrays.values())) if len(arrays) == 1 else None)
        for key, array in arrays.items():
            assert_read_as(outcomes, key, array)


# ----------------------------------------------------------------------------------------------
# text


@st.composite
def tables(draw) -> tuple[list[np.ndarray], bool]:
    """Columns of int64 or float64 (NaN where a value is missing), and whether to write a
    header; without one, at least one row."""
    header = draw(st.booleans())
    rows = draw(st.integers(0 if header else 1, 6))
    columns = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            values = draw(st.lists(st.integers(-2**63, 2**63 - 1), min_size=rows, max_size=rows))
            columns.append(np.array(values, dtype=np.int64))
        else:
            values = draw(st.lists(st.floats(width=64) | st.none(), min_size=rows, max_size=rows))
            columns.append(np.array([np.nan if v is None else v for v in values], np.float64))
    return columns, header


def write_table(columns: list[np.ndarray], header: bool, sep: str, missing: Sequence[str],
                newline: str, bom: bool, comment: bool) -> bytes:
    """The table as text: floats by repr, a NaN as one of ``missing`` in turn."""
    lines = ["# written by the fuzz test"] if comment else []
    if header:
        lines.append(sep.join(f"c{i}" for i in range(len(columns))))
    for row in range(len(columns[0])):
        fields = []
        for column in columns:
            value = column[row].item()
            if column.dtype.kind == "f" and np.isnan(value):
                fields.append(missing[row % len(missing)])
            else:
                fields.append(repr(value))
        lines.append(sep.join(fields))
    return ("\ufeff" if bom else "").encode() + newline.join(lines).encode() + newline.encode()


def expected_whole(columns: list[np.ndarray]) -> np.ndarray:
    array = np.column_stack(columns) if len(columns[0]) else np.empty((0, len(columns)))
    return array.reshape(-1) if 1 in array.shape else array


@FUZZ
@given(table=tables(), ext_sep=st.sampled_from([(".csv", ","), (".tsv", "\t"), (".txt", " "),
                                                (".txt", ";"), (".txt", "\t"), ("", ",")]),
       markers=st.lists(st.sampled_from(MARKERS), min_size=1, max_size=3),
       empty_field=st.booleans(), newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans(),
       comment=st.booleans(), compression=st.sampled_from(COMPRESSIONS), mutations=MUTATIONS,
       outer=st.booleans())
def test_text(tmp_path, table, ext_sep, markers, empty_field, newline, bom, comment,
              compression, mutations, outer):
    columns, header = table
    ext, sep = ext_sep
    # an empty field, where a line holds no more, would be a blank line: skipped, no value
    missing = [*markers, ""] if empty_field and sep != " " and len(columns) > 1 else markers
    written = write_table(columns, header, sep, missing, newline, bom, comment)
    data = packed(written, compression, mutations, outer)
    names = [f"c{i}" if header else str(i) for i in range(len(columns))]
    outcomes = read_both(tmp_path, f"x{ext}{compression}", data, [None, *names])
    if data == formats.compress(written, compression):
        assert_read_as(outcomes, None, expected_whole(columns), exact=False)
        for name, column in zip(names, columns, strict=True):
            expected = column if len(column) else np.empty(0)
            assert_read_as(outcomes, name, expected, exact=False)


# ----------------------------------------------------------------------------------------------
# Parquet and Arrow


@st.composite
def arrow_columns(draw) -> dict[str, tuple[str, list]]:
    """Column name -> (kind, values, None for a null)."""
    rows = draw(st.integers(0, 6))
    kinds = {"f": st.floats(width=64), "i": st.integers(-2**63, 2**63 - 1),
             "s": st.text(max_size=5)}
    columns = {}
    for index in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(sorted(kinds)))
        values = draw(st.lists(kinds[kind] | st.none(), min_size=rows, max_size=rows))
        columns[f"{kind}{index}"] = (kind, values)
    return columns


def arrow_expected(kind: str, values: list) -> np.ndarray:
    """What the reader makes of an Arrow column: nulls as NaN (float64), or '' for text."""
    if kind == "s":
        return np.array(["" if v is None else v for v in values], dtype=str)
    if kind == "i" and None not in values:
        return np.array(values, dtype=np.int64)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


@FUZZ
@given(columns=arrow_columns(), fmt=st.sampled_from(ARROW_FORMATS),
       compression=st.sampled_from(COMPRESSIONS), mutations=MUTATIONS, outer=st.booleans())
def test_arrow(tmp_path, columns, fmt, compression, mutations, outer):
    pa = pytest.importorskip("pyarrow")
    types = {"f": pa.float64(), "i": pa.int64(), "s": pa.string()}
    table = pa.table({name: pa.array(values, types[kind])
                      for name, (kind, values) in columns.items()})
    sink = pa.BufferOutputStream()
    if fmt == ".parquet":
        pytest.importorskip("pyarrow.parquet").write_table(table, sink)
    elif fmt in (".feather", ".arrow"):
        buffers = "lz4" if fmt == ".feather" else "uncompressed"
        pytest.importorskip("pyarrow.feather").write_feather(table, sink, compression=buffers)
    else:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    written = sink.getvalue().to_pybytes()
    data = packed(written, compression, mutations, outer)
    outcomes = read_both(tmp_path, f"x{fmt}{compression}", data, [None, *columns])
    if data == formats.compress(written, compression):
        for name, (kind, values) in columns.items():
            assert_read_as(outcomes, name, arrow_expected(kind, values), exact=False)


# ----------------------------------------------------------------------------------------------
# a pickle payload never runs


class CreatesFile:
    """Unpickled, it creates the file ``path``: the payload of a malicious object array."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickle_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    array = np.array([CreatesFile(marker), 1], dtype=object)
    npy = save(np.save, array, allow_pickle=True)
    npz = save(np.savez, x=array)
    # the payload is live: numpy, allowed to unpickle, creates the file
    np.load(io.BytesIO(npy), allow_pickle=True)[0].close()
    assert marker.exists()
    marker.unlink()
    cases = {"p.npy": npy, "p.npz": npz, "p.npy.gz": gzip.compress(npy), "p": npy,
             "p.pkl": pickle.dumps(array), "p.csv": pickle.dumps(CreatesFile(marker))}
    for name, data in cases.items():
        outcomes = read_both(tmp_path, name, data, [None, "x", "0"])
        assert all(outcome is None for outcome in outcomes.values()), (name, outcomes)
        assert not marker.exists(), name
