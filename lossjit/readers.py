"""Read the arrays lossjit works on, from files or standard input, and pick parts of them.

Sources
-------
An input is a *source*: a file path, or ``-`` for standard input, optionally followed by
``:SELECTOR`` to pick part of what the file holds::

    logits.npy             the whole array
    run.npz:logits         the array stored under the key "logits" in an .npz archive
    preds.csv:pred         the column named "pred" in the header (CSV, TSV, text, Parquet, Arrow)
    preds.csv:2            the third column: a number is a 0-based index
    preds.csv:p0,p1,p2     several columns, by name or index: a 2-D array (rows x columns)
    preds.csv:p0..p2       an inclusive range of columns, by name or index: a 2-D array
    preds.csv:2..          every column from the third on (``..3``: up to the fourth)
    logits.npy:0           column 0 of a 2-D array (``logits.npy:1..3``: columns 1 to 3)
    -:label                the column "label" of the table on standard input

One name or index gives a 1-D array; a list or a range gives a 2-D array, even of one column.
A column whose name is a number (``3``) is picked by that name before any index. Names holding
``,`` or ``..`` are picked by index. The text is split at its last ``:``, unless the whole text
is an existing file; ``preds.csv:`` (an empty selector) is an error.

Formats
-------
A file's format is known from its first bytes first and its extension second:

* ``.npy`` (``numpy.save``): the array as stored, dtype kept; pickled object arrays refused.
* ``.npz`` (``numpy.savez``): any number of arrays, each picked by its key; the whole file
  (no selector) only when it holds exactly one array, whose columns may then be picked too.
* ``.parquet``, ``.arrow`` / ``.feather`` / ``.ipc`` (Arrow IPC file, Feather) and ``.arrows``
  (Arrow IPC stream), read by pyarrow (``pip install 'lossjit[parquet]'``): numeric columns
  are numbers (nulls read as NaN), string columns are text labels.
* Text, anything else: ``.csv`` is split at commas, ``.tsv`` at tabs; other names and standard
  input are sniffed from the first line: a comma, else a tab, else a semicolon, else runs of
  whitespace separate the values.
* Compression: ``.gz``, ``.bz2``, ``.xz`` or ``.zst`` after any of these (``preds.csv.gz``),
  recognised by extension and by content (so also on standard input); ``.zst`` needs the
  zstandard package (``pip install 'lossjit[zstd]'``).

Standard input is read once, whatever it holds; two selectors on ``-`` share that one read.
Named pipes and process substitution (``<(zcat preds.csv.gz)``) work like files.

Text
----
* UTF-8, with or without a byte-order mark. ``#`` starts a comment; blank lines are skipped.
  Delimited fields may be double-quoted (``"a,b"``).
* Header: the first line is a header only when every field is empty or a *name* (it has a
  letter or ``_`` and is neither a number nor a missing-value marker) and one at least is a
  name, so data is never taken for a header: ``pred,label`` and ``,pred,label`` (a pandas
  index) are headers; ``NA,1.0`` and ``id,1.5`` are data. ``Reader(header=True/False)``
  (``--header`` / ``--no-header``) decides instead.
* Missing values: ``NA``, ``N/A``, ``null``, ``NULL``, ``None``, ``nan`` and an empty field read
  as NaN; a column holding one is float64.
* A delimiter at the end of every line (header included) ends the line; otherwise a field
  after the last delimiter is an empty value, that is a missing one.
* Numbers: a column is int64 when each of its values is an integer written without ``.``, an
  exponent, ``nan`` or ``inf``, and float64 otherwise.
* Labels: a column whose first value is a word (a name, as above) holds text labels. It can be
  picked by a selector (as targets to map to classes, say) but not read as part of a whole table.
* Shape: a whole table of one column or one row is 1-D, otherwise 2-D (rows x columns).

Empty inputs
------------
Empty data is data: an ``.npy``/``.npz`` array of a zero-size shape (``(0,)``, ``(0, 3)``), a
text table of a header and no rows (each column an empty float64 array; the whole table of
shape ``(0, columns)``) and a Parquet/Arrow table of no rows are read as they are, and what a
loss makes of them is for ``--empty nan|zero|error`` to say. A file of no bytes at all, empty
standard input, compressed data that holds nothing, and text of only blank lines and comments
are errors: they are more likely cut short than meant.

Limits
------
What a file declares about itself is not believed before its bytes bear it out, and nothing
is allocated on its word alone:

* An ``.npy`` array (a file, an ``.npz`` member, standard input, compressed or not) is read only
  when the bytes after its header hold all the data the header declares (shape times item
  size): where the size of those bytes is known (a file, standard input) that is checked before
  the array is allocated; in compressed data and ``.npz`` members they are counted as they come,
  never past what the header declares. An array larger than this machine's memory is refused
  at once, as is a header longer than 65536 bytes. The header is parsed as a literal; object
  (pickled) arrays are refused unread, so a pickle inside never runs.
* Other compressed content (text, or an ``.npz`` or Parquet/Arrow file, inside ``.gz``, ``.bz2``,
  ``.xz`` or ``.zst``) may decompress to at most the larger of 256 MiB and 100 times its
  compressed size. It is decompressed once in pieces, keeping nothing, to count it before it is
  parsed, so a decompression ("zip") bomb costs a moment, not the memory.
* ``.npz`` members must be stored or deflated, as ``numpy.savez`` and ``numpy.savez_compressed``
  write them; the sizes the zip's own headers give are not trusted, the ``.npy`` header inside is.
* The environment variable ``LOSSJIT_MAX_INPUT_BYTES`` (bytes, or with a suffix: ``500M``,
  ``8G``) replaces both limits: it is then the most any compressed content may decompress to and
  the most data an ``.npy`` array may hold.

Memory: text goes to np.loadtxt line by line, from the file (or the decompressing stream) as
often as a pass needs it, so reading a regular or compressed CSV of numbers takes little more
than the array it gives; standard input is held in memory, once. Text with missing values or
text labels takes a pass or two more; the labels are Python strings.

Every bad input raises :class:`lossjit.errors.LossjitError` with a one-line message that names
the argument, the file (``stdin`` for standard input), what was found and what was expected;
so does running out of memory while reading.

Examples
--------
>>> import io
>>> reader = Reader(stdin=io.BytesIO(b"id,pred,label\\n0,0.25,cat\\n1,NA,dog\\n"))
>>> reader.read("-:pred", what="predictions").array
array([0.25,  nan])
>>> labels = reader.read("-:label", what="targets")
>>> labels.array, labels.names
(array(['cat', 'dog'], dtype='<U3'), ('label',))
>>> label_indices(labels.array, ["dog", "cat"], what="targets")
array([1, 0])
>>> reader.read("-:id..pred", what="predictions").array
array([[0.  , 0.25],
       [1.  ,  nan]])
>>> reader.read("-", what="predictions")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
lossjit.errors.LossjitError: predictions: stdin: column 'label' holds text labels such as 'cat'...
>>> import os, tempfile
>>> import numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "run.npz")
>>> np.savez(path, logits=np.eye(2), labels=np.array([0, 1]))
>>> [selected.array.tolist() for selected in Reader().pair(path)]
[[[1.0, 0.0], [0.0, 1.0]], [0, 1]]
>>> parse_array_option("1,2,0.5", what="--weight")
array([1. , 2. , 0.5])
"""

from __future__ import annotations

import ast
import contextlib
import csv
import functools
import io
import lzma
import math
import os
import re
import stat
import sys
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, BinaryIO

import numpy as np

from lossjit import formats
from lossjit.errors import LossjitError, one_line, show

__all__ = ["MARKERS", "Reader", "Selected", "Source", "label_indices", "parse_array_option"]

#: Text read as a missing value (NaN) in a numeric column, besides the empty field.
MARKERS = ("NA", "N/A", "null", "NULL", "None", "nan")
#: Names ``Reader.pair`` takes for predictions and for targets (compared case-insensitively).
PREDICTION_NAMES = ("predictions", "prediction", "preds", "pred", "y_pred", "logits", "scores",
                    "outputs")
TARGET_NAMES = ("targets", "target", "y_true", "labels", "label", "y")
#: The environment variable that replaces the limits on what an input may expand to.
LIMIT_VARIABLE = "LOSSJIT_MAX_INPUT_BYTES"
#: Without it: compressed content other than an .npy array may decompress to the larger of
#: these many bytes and this many times its compressed size.
MIN_DECOMPRESSED_LIMIT = 256 * 2**20
DECOMPRESSION_RATIO = 100
#: The longest .npy header read (numpy writes a few hundred bytes at most for numeric arrays).
MAX_NPY_HEADER = 65536

_NPY_MAGIC = b"\x93NUMPY"
_BOM = "\ufeff".encode()
_BUFFER = 1 << 20  # bytes read at a time, and the read buffer of every input stream
_TEXT_EXTS = (".csv", ".tsv", ".txt")
_BINARY_EXTS = (".npy", ".npz", *formats.ARROW_FORMATS)
_KNOWN_EXTS = (*_TEXT_EXTS, *_BINARY_EXTS, ".zip")
_NOT_FORMAT = {  # what the extension promised and how such a file is written
    ".npy": "an .npy array (no .npy header); expected a file written by numpy.save",
    ".npz": "an .npz archive (no .npz header); expected a file written by numpy.savez",
    ".parquet": "a Parquet file (no PAR1 header); expected a file written by pyarrow or pandas",
    ".arrow": "an Arrow IPC file (no ARROW1 header); expected a file written by pyarrow",
    ".feather": "a Feather file (no Feather header); expected a file written by pyarrow.feather",
    ".ipc": "an Arrow IPC file or stream (no Arrow header); expected a file written by pyarrow",
    ".arrows": "an Arrow IPC stream (no Arrow header); expected a stream written by pyarrow",
}
_COMPRESSORS = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd"}

_INT_RE = re.compile(r"[+-]?[0-9]+")
_NUM_RE = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE
)
_INDEX_RE = re.compile(r"[0-9]+")
_BYTES_RE = re.compile(r"([0-9]+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_EXPECTED_NUMBER = "expected a number such as 3, -2.5, 1e-3, nan or inf"
_EXPECTED_DTYPE = "expected float or integer numbers"
_EXPECTED_FILE = "expected .npy, .npz, Parquet/Arrow or UTF-8 text (CSV, TSV, numbers)"
# What a damaged zip raises, reading its directory or a member (zipfile, zlib).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, KeyError,
               IndexError, NotImplementedError, RuntimeError, OverflowError, zlib.error,
               lzma.LZMAError)
# What a damaged compressed stream raises (gzip, bz2, lzma, zlib; zstandard's error is added).
_DECOMPRESS_ERRORS = (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error)
# What pyarrow raises, besides its own ArrowException, for a damaged file.
_ARROW_ERRORS = (OSError, ValueError, EOFError, TypeError, KeyError, IndexError,
                 NotImplementedError)


# --------------------------------------------------------------------------------------------
# message helpers


def _where(what: str, path: str) -> str:
    return f"{what}: {'stdin' if path == '-' else show(path, 200)}"


def _count(n: int, noun: str = "value") -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _listing(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(show(name, 40)[1:-1] if name else "''" for name in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _size(n: int) -> str:
    """A number of bytes, and in KiB, MiB or GiB when it is that large."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n} bytes ({n / scale:.4g} {unit})"
    return _count(n, "byte")


def _such_as(labels: np.ndarray) -> str:
    """" such as 'cat'": the first of some text labels, for a message (none when empty)."""
    return f" such as {show(labels.flat[0], 40)}" if labels.size else ""


def _value(value: object) -> str:
    """A value for a message: a number as plain Python prints it (``-1.0``, never
    ``np.float64(-1.0)``), text quoted."""
    if isinstance(value, np.generic):
        value = value.item()
    return show(value) if isinstance(value, str) else show(value)[1:-1]


# --------------------------------------------------------------------------------------------
# public types


@dataclass(frozen=True)
class Source:
    """A file (``"-"``: standard input) and what to pick from it (None: all of it).

    >>> Source.parse("preds.csv:p0..p2")
    Source(path='preds.csv', selector='p0..p2')
    >>> str(Source.parse("-:label")), Source.parse("-")
    ('-:label', Source(path='-', selector=None))
    """

    path: str
    selector: str | None = None

    @classmethod
    def parse(cls, text: str) -> Source:
        """Split ``path[:selector]`` at its last ``:`` unless the whole text is a file."""
        text = os.fspath(text)
        if text == "-" or ":" not in text or os.path.exists(text):
            return cls(text, None)
        path, _, selector = text.rpartition(":")
        if path == "-" or os.path.exists(path) or _known_extension(path):
            return cls(path, selector)
        return cls(text, None)

    def __str__(self) -> str:
        return self.path if self.selector is None else f"{self.path}:{self.selector}"


@dataclass
class Selected:
    """An array read from a source: numbers, or a str array for a column of text labels."""

    array: np.ndarray
    names: tuple[str, ...]  # the selected columns' names or the npz key; () when unnamed
    source: Source


def _known_extension(path: str) -> bool:
    ext, compression = formats.split_name(path)
    return bool(compression) or ext in _KNOWN_EXTS


# --------------------------------------------------------------------------------------------
# what a file holds: one array, an .npz archive or a table; each offers columns to select


@dataclass
class _Columns:
    """What a selector picks from: an array's columns, a table's columns or an archive's keys."""

    names: tuple[str, ...] | None  # None: numbered only
    count: int
    get: Callable[[int], np.ndarray]
    noun: str = "column"
    indexable: bool = True  # whether a number picks by position
    shape: str = ""  # for messages about unnamed columns ("a 2-D array of shape (3, 4)")


class _Array:
    """A single .npy array."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def names(self) -> tuple[str, ...]:
        return ()

    def whole(self, what: str, label: str) -> tuple[np.ndarray, tuple[str, ...]]:
        return self.array, ()

    def columns(self, tokens: Sequence[str], what: str, label: str) -> _Columns:
        array = self.array
        if array.ndim != 2:
            raise LossjitError(
                f"{_where(what, label)}: holds a {array.ndim}-D array (shape {array.shape}); "
                "a column selector needs a 2-D array (rows x columns)"
            )
        return _Columns(None, array.shape[1], lambda i: array[:, i],
                        shape=f"a 2-D array of shape {array.shape}")


class _Archive:
    """An .npz archive: arrays by key, each read (and checked) when first asked for."""

    def __init__(self, source: _Bytes, label: str, where: str) -> None:
        self.source = source
        self.label = label
        with self._open(where) as archive:
            self.infos = tuple(archive.infolist())
        self.keys = tuple(info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                          for info in self.infos)
        self.loaded: dict[int, np.ndarray] = {}

    @contextlib.contextmanager
    def _open(self, where: str, member: str = "") -> Iterator[zipfile.ZipFile]:
        """The zip, what a broken one raises (reading it or ``member``) a LossjitError."""
        try:
            with self.source.raw(where) as stream, zipfile.ZipFile(stream) as archive:
                yield archive
        except LossjitError:
            raise
        except _ZIP_ERRORS as exc:
            raise LossjitError(f"{where}: not a valid .npz archive (truncated?): "
                               f"{member + ': ' if member else ''}{one_line(exc)}") from None

    def names(self) -> tuple[str, ...]:
        return self.keys

    def member(self, index: int, what: str) -> np.ndarray:
        if index not in self.loaded:
            where = _where(what, self.label)
            info, name = self.infos[index], f"member {show(self.keys[index])}"
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                # bzip2 and lzma members would expand unchecked in zipfile, and numpy never
                # writes them
                raise LossjitError(
                    f"{where}: {name} is compressed with zip method {info.compress_type}; "
                    "expected a stored or deflated member, as numpy.savez and "
                    "numpy.savez_compressed write them"
                )
            with self._open(where, name) as archive, archive.open(info) as stream:
                self.loaded[index] = _read_npy(stream, where, None, name)
        return self.loaded[index]

    def whole(self, what: str, label: str) -> tuple[np.ndarray, tuple[str, ...]]:
        if len(self.keys) != 1:
            example = (f"; pick one with {label}:KEY, e.g. {label}:{self.keys[0]}"
                       if self.keys else "")
            raise LossjitError(
                f"{_where(what, label)}: .npz holds {_count(len(self.keys), 'array')} "
                f"(keys: {_listing(self.keys) or 'none'}); expected exactly one{example}"
            )
        return self.member(0, what), self.keys

    def columns(self, tokens: Sequence[str], what: str, label: str) -> _Columns:
        if len(self.keys) == 1 and not all(token in self.keys for token in tokens if token):
            member = self.member(0, what)
            if member.ndim == 2:  # a lone 2-D array: pick its columns, as from a .npy
                return _Array(member).columns(tokens, what, label)
        return _Columns(self.keys, len(self.keys), lambda i: self.member(i, what), noun="key",
                        indexable=False)


class _Table:
    """Named or numbered columns of one length, from text or from pyarrow."""

    def __init__(self, names: tuple[str, ...] | None, count: int,
                 load: Callable[[int, str], np.ndarray], block: np.ndarray | None = None) -> None:
        self.header = names
        self.count = count
        self.load = load
        self.block = block  # all columns as one 2-D array, when text gave them so
        self.loaded: dict[int, np.ndarray] = {}

    def names(self) -> tuple[str, ...]:
        return self.header or ()

    def column(self, index: int, what: str) -> np.ndarray:
        if index not in self.loaded:
            self.loaded[index] = self.load(index, what)
        return self.loaded[index]

    def columns(self, tokens: Sequence[str], what: str, label: str) -> _Columns:
        shape = f"{_count(self.count, 'column')} and no header"
        return _Columns(self.header, self.count, lambda i: self.column(i, what), shape=shape)

    def whole(self, what: str, label: str) -> tuple[np.ndarray, tuple[str, ...]]:
        arrays = [self.column(i, what) for i in range(self.count)]
        if len(arrays) == 1:  # one column, labels or numbers: what the file holds
            return arrays[0].reshape(-1), self.names()
        for index, array in enumerate(arrays):
            if array.dtype.kind == "U":
                numeric = [i for i, a in enumerate(arrays) if a.dtype.kind != "U"]
                hint = f", e.g. {label}:{self._token(numeric[0])}" if numeric else ""
                raise LossjitError(
                    f"{_where(what, label)}: column {self._name(index)} holds text labels"
                    f"{_such_as(array)}, not numbers; pick numeric columns with a selector{hint}"
                )
        array = self.block if self.block is not None else np.column_stack(arrays)
        if 1 in array.shape:
            array = array.reshape(-1)
        return array, self.names()

    def _name(self, index: int) -> str:
        """A column for a message: its quoted name, or its index."""
        token = self._token(index)
        return str(index) if token == str(index) else show(token, 40)

    def _token(self, index: int) -> str:
        """What selects a column: its name when a selector can spell it, else its index."""
        name = self.header[index] if self.header is not None else ""
        usable = name and "," not in name and ".." not in name and name.strip() == name
        return name if usable else str(index)


_Content = _Array | _Archive | _Table


# --------------------------------------------------------------------------------------------
# selectors


@dataclass(frozen=True)
class _Item:
    """One comma-separated part of a selector: a name or index, or a range ``a..b``."""

    start: str
    stop: str = ""
    ranged: bool = False

    @classmethod
    def parse(cls, selector: str, what: str, label: str) -> list[_Item]:
        if not selector.strip():
            raise LossjitError(
                f"{_where(what, label)}: empty selector after ':'; expected a column name, a "
                f"0-based index or an .npz key, e.g. {label}:0"
            )
        items = []
        for part in selector.split(","):
            part = part.strip()
            if not part:
                raise LossjitError(
                    f"{_where(what, label)}: selector {show(selector)} has an empty item; "
                    "expected names or 0-based indices separated by commas"
                )
            start, dots, stop = part.partition("..")
            items.append(cls(start.strip(), stop.strip(), True) if dots else cls(part))
        return items

    def tokens(self) -> tuple[str, ...]:
        return (self.start, self.stop) if self.ranged else (self.start,)


def _index(space: _Columns, token: str, what: str, label: str) -> int:
    """The position of the column (or key) a name or 0-based index ``token`` means."""
    where = _where(what, label)
    if space.names is not None:
        hits = [i for i, name in enumerate(space.names) if name == token]
        if len(hits) > 1:
            raise LossjitError(
                f"{where}: {space.noun} name {show(token)} appears {len(hits)} times "
                f"({space.noun}s {', '.join(map(str, hits))}); pick one by 0-based index"
            )
        if hits:
            return hits[0]
    if space.indexable and _INDEX_RE.fullmatch(token):
        index = int(token)
        if index >= space.count:
            raise LossjitError(
                f"{where}: {space.noun} index {index} is out of range; expected "
                f"0..{space.count - 1} ({_count(space.count, space.noun)})"
            )
        return index
    if space.names is None:
        raise LossjitError(
            f"{where}: no {space.noun} named {show(token)}: it holds {space.shape}, so pick "
            f"{space.noun}s by 0-based index 0..{space.count - 1}"
        )
    by_index = " (or pick by 0-based index)" if space.indexable else ""
    raise LossjitError(
        f"{where}: no {space.noun} {show(token)}; the {space.noun}s are "
        f"{_listing(space.names)}{by_index}"
    )


def _indices(space: _Columns, item: _Item, what: str, label: str) -> list[int]:
    if not item.ranged:
        return [_index(space, item.start, what, label)]
    start = _index(space, item.start, what, label) if item.start else 0
    stop = _index(space, item.stop, what, label) if item.stop else space.count - 1
    if start > stop:
        raise LossjitError(
            f"{_where(what, label)}: range {show(item.start + '..' + item.stop)} is empty "
            f"({space.noun} {start} comes after {stop}); expected FIRST..LAST in file order"
        )
    return list(range(start, stop + 1))


def _select(content: _Content, items: list[_Item], what: str,
            label: str) -> tuple[np.ndarray, tuple[str, ...]]:
    tokens = [token for item in items for token in item.tokens()]
    space = content.columns(tokens, what, label)
    picked = [index for item in items for index in _indices(space, item, what, label)]
    arrays = [space.get(index) for index in picked]
    names = tuple(space.names[i] for i in picked) if space.names is not None else ()
    if len(items) == 1 and not items[0].ranged:
        return np.asarray(arrays[0], order="C"), names  # a 0-d .npz member stays 0-d
    return _stack(arrays, names or tuple(map(str, picked)), what, label), names


def _stack(arrays: list[np.ndarray], names: Sequence[str], what: str, label: str) -> np.ndarray:
    """Columns side by side: they must be 1-D, of one length, and all numbers or all labels."""
    where = _where(what, label)
    for array, name in zip(arrays, names, strict=True):
        if array.ndim != 1:
            raise LossjitError(
                f"{where}: {show(name)} is {array.ndim}-D (shape {array.shape}); a list or range "
                "of columns needs 1-D arrays"
            )
        if len(array) != len(arrays[0]):
            raise LossjitError(
                f"{where}: {show(name)} has {len(array)} rows but {show(names[0])} has "
                f"{len(arrays[0])}; expected columns of one length"
            )
        if (array.dtype.kind == "U") != (arrays[0].dtype.kind == "U"):
            raise LossjitError(
                f"{where}: cannot put text labels and numbers in one array "
                f"({show(names[0])} and {show(name)}); select them separately"
            )
    return np.column_stack(arrays)


# --------------------------------------------------------------------------------------------
# the reader


class Reader:
    """Parses each file, and reads standard input, at most once; then hands out arrays from it.

    ``header`` forces (True) or forbids (False) a header line in text; None applies the header
    rule. ``stdin`` replaces ``sys.stdin.buffer`` for the path ``"-"``.
    """

    def __init__(self, *, header: bool | None = None, stdin: BinaryIO | None = None) -> None:
        self._header = header
        self._stdin = stdin
        self._stdin_data: bytes | None = None
        self._contents: dict[str, _Content] = {}

    def read(self, source: Source | str, *, what: str) -> Selected:
        """The array ``source`` names; ``what`` names the argument in error messages."""
        if not isinstance(source, Source):
            source = Source.parse(source)
        content = self._content(source.path, what)
        with _enough_memory(what, source.path):
            if source.selector is None:
                array, names = content.whole(what, source.path)
            else:
                items = _Item.parse(source.selector, what, source.path)
                array, names = _select(content, items, what, source.path)
        return Selected(array, names, source)

    def names(self, path: str, *, what: str = "input") -> tuple[str, ...]:
        """The keys or column names ``path`` holds; () when it has none (no header, .npy)."""
        return self._content(os.fspath(path), what).names()

    def pair(self, path: str, *, what: str = "predictions") -> tuple[Selected, Selected]:
        """Predictions and targets from ONE file that holds both (npz keys or table columns)."""
        path = os.fspath(path)
        content = self._content(path, what)
        names = content.names()
        chosen = []
        for kind, wanted in (("predictions", PREDICTION_NAMES), ("targets", TARGET_NAMES)):
            found = [name for name in names if name.lower() in wanted]
            if len(found) != 1:
                problem = (f"several {kind} names ({_listing(found)})" if found
                           else f"no {kind} name ({', '.join(wanted)})")
                usage = f"{path}:{names[0]} {path}:{names[-1]}" if names else "FILE:NAME FILE:NAME"
                raise LossjitError(
                    f"{_where(what, path)}: cannot tell the predictions from the targets: "
                    f"{problem}; it holds {_listing(names) if names else 'no named arrays'}; "
                    f"name both as FILE:NAME FILE:NAME, e.g. {usage}"
                )
            chosen.append(found[0])
        pairs = []
        for name in chosen:
            with _enough_memory(what, path):
                array, names_ = _select(content, [_Item(name)], what, path)
            pairs.append(Selected(array, names_, Source(path, name)))
        return pairs[0], pairs[1]

    # ----------------------------------------------------------------------------------------

    def _content(self, path: str, what: str) -> _Content:
        path = os.fspath(path)
        if path not in self._contents:
            with _enough_memory(what, path):
                if path == "-":
                    source = _Bytes(data=self._stdin_bytes(what))
                    content = _content_of(source, "", "", what, path, self._header)
                    self._stdin_data = None  # parsed: the bytes are no longer needed here
                else:
                    content = _read_file(path, what, self._header)
            self._contents[path] = content
        return self._contents[path]

    def _stdin_bytes(self, what: str) -> bytes:
        if self._stdin_data is not None:
            return self._stdin_data
        stream = self._stdin
        if stream is None:
            if sys.stdin is None:
                raise LossjitError(f"{what}: no stdin to read from; give a file path instead of -")
            stream = getattr(sys.stdin, "buffer", sys.stdin)
        isatty = getattr(stream, "isatty", None)
        if isatty is not None and isatty():
            raise LossjitError(
                f"{what}: stdin is a terminal; pipe data in (e.g. < file.npy) or give a file path"
            )
        try:
            data = stream.read()
        except (OSError, ValueError) as exc:  # ValueError: a closed stream
            raise LossjitError(f"{what}: stdin: cannot read: {one_line(exc)}") from None
        if isinstance(data, str):  # a text stream was passed; accept it
            data = data.encode("utf-8")
        if not data:
            raise LossjitError(f"{what}: stdin: no data; {_EXPECTED_FILE}")
        self._stdin_data = data
        return data


# --------------------------------------------------------------------------------------------
# an input's bytes: read again as often as its format needs, decompressed in bounded pieces


@contextlib.contextmanager
def _enough_memory(what: str, path: str) -> Iterator[None]:
    """A MemoryError while reading ``path`` as a LossjitError naming it."""
    try:
        yield
    except MemoryError:
        raise LossjitError(
            f"{_where(what, path)}: not enough memory to read it (MemoryError)"
        ) from None


def _cannot_read(where: str, exc: Exception) -> LossjitError:
    return LossjitError(f"{where}: cannot read file: {one_line(exc)}")


def _damaged(where: str, tool: str, exc: Exception) -> LossjitError:
    return LossjitError(f"{where}: damaged {tool} data (truncated?): {one_line(exc)}")


def _needs(module: str, purpose: str, where: str) -> ModuleType:
    """An optional package, or a LossjitError naming the input and the extra to install."""
    try:
        return formats.optional(module, purpose)
    except LossjitError as exc:
        raise LossjitError(f"{where}: {exc}") from None


def _decompress_errors() -> tuple[type[Exception], ...]:
    zstandard = sys.modules.get("zstandard")
    return (*_DECOMPRESS_ERRORS, *((zstandard.ZstdError,) if zstandard is not None else ()))


def _limit_variable(where: str) -> int | None:
    """The bytes ``LOSSJIT_MAX_INPUT_BYTES`` sets (a number, or with K, M, G or T), or None."""
    text = os.environ.get(LIMIT_VARIABLE, "").strip()
    if not text:
        return None
    match = _BYTES_RE.fullmatch(text)
    if match is None:
        raise LossjitError(
            f"{where}: {LIMIT_VARIABLE}={show(text)} is not a number of bytes; expected e.g. "
            "500000000, 500M or 8G"
        )
    return int(match[1]) * 1024 ** ("", "k", "m", "g", "t").index(match[2].lower())


def _decompressed_limit(compressed: int, where: str) -> tuple[int, str]:
    """The most bytes compressed content other than an .npy array may decompress to, and why."""
    limit = _limit_variable(where)
    if limit is not None:
        return limit, f"the limit {LIMIT_VARIABLE} sets"
    limit = max(MIN_DECOMPRESSED_LIMIT, DECOMPRESSION_RATIO * compressed)
    return limit, (f"the limit for {_size(compressed)} of compressed data: the larger of "
                   f"{_size(MIN_DECOMPRESSED_LIMIT)} and {DECOMPRESSION_RATIO} times that")


@functools.lru_cache(maxsize=1)
def _memory() -> int | None:
    """This machine's memory in bytes, when the system says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _array_limit(where: str) -> tuple[int | None, str]:
    """The most data an .npy array may hold, and what sets it."""
    limit = _limit_variable(where)
    if limit is not None:
        return limit, f"{_size(limit)}, the limit {LIMIT_VARIABLE} sets"
    memory = _memory()
    return memory, f"{_size(memory or 0)}, this machine's memory"


class _Guarded(io.RawIOBase):
    """``stream``, read through: its failures become LossjitErrors naming the input (a file
    that cannot be read or, given ``tool``, damaged compressed data), and reading more than
    ``limit`` bytes is refused (``why``: what sets the limit)."""

    def __init__(self, stream: BinaryIO, where: str, tool: str = "",
                 limit: int | None = None, why: str = "") -> None:
        super().__init__()
        self._stream, self._where, self._tool = stream, where, tool
        self._limit, self._why, self._count = limit, why, 0

    def _failure(self, exc: Exception) -> LossjitError:
        return _damaged(self._where, self._tool, exc) if self._tool else \
            _cannot_read(self._where, exc)

    def _errors(self) -> tuple[type[Exception], ...]:
        return _decompress_errors() if self._tool else (OSError, ValueError)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return not self._tool and self._stream.seekable()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        try:
            return self._stream.seek(offset, whence)
        except self._errors() as exc:
            raise self._failure(exc) from None

    def tell(self) -> int:
        return self.seek(0, os.SEEK_CUR)

    def readinto(self, buffer: Any) -> int:
        try:
            count = self._stream.readinto(buffer) or 0
        except LossjitError:
            raise
        except self._errors() as exc:
            raise self._failure(exc) from None
        self._count += count
        if self._limit is not None and self._count > self._limit:
            raise LossjitError(
                f"{self._where}: the {self._tool} data decompresses to more than "
                f"{_size(self._limit)} ({self._why}), which looks like a decompression bomb; "
                f"if it is genuine, raise the limit with {LIMIT_VARIABLE}, e.g. "
                f"{LIMIT_VARIABLE}=16G"
            )
        return count


class _Bytes:
    """An input's bytes, read from the start as often as its format needs: a regular file
    (``path``), opened again each time, or bytes held in memory (``data``); with
    ``compression``, what those decompress to."""

    def __init__(self, *, path: str | None = None, data: bytes | None = None,
                 compression: str = "", size: int = 0) -> None:
        self.path, self.data, self.compression = path, data, compression
        self.size = len(data) if data is not None else size  # of the bytes as stored

    def raw(self, where: str, buffering: int = -1) -> BinaryIO:
        """The bytes as stored, seekable: the file opened, or the data in memory."""
        if self.data is not None:
            return io.BytesIO(self.data)
        try:
            return open(self.path, "rb", buffering=buffering)  # type: ignore[arg-type]
        except OSError as exc:
            raise _cannot_read(where, exc) from None

    @contextlib.contextmanager
    def open(self, where: str, *, bounded: bool = True,
             buffer: int = _BUFFER) -> Iterator[io.BufferedReader]:
        """A buffered stream of the bytes, decompressed; failures raise LossjitErrors, as does
        decompressing more than :func:`_decompressed_limit` allows when ``bounded``."""
        with contextlib.ExitStack() as stack:
            stream: Any = _Guarded(stack.enter_context(self.raw(where, 0)), where)
            if self.compression:
                tool = _COMPRESSORS[self.compression]
                if self.compression == ".zst":
                    _needs("zstandard", "reading .zst (Zstandard) data", where)
                try:
                    inner = formats.open_decompressed(stream, self.compression)
                except LossjitError:
                    raise
                except _decompress_errors() as exc:  # a zstd frame cut short
                    raise _damaged(where, tool, exc) from None
                limit, why = _decompressed_limit(self.size, where) if bounded else (None, "")
                stream = _Guarded(stack.enter_context(inner), where, tool, limit, why)
            yield io.BufferedReader(stream, buffer)

    def decompressed(self, compression: str) -> _Bytes:
        return _Bytes(path=self.path, data=self.data, compression=compression, size=self.size)

    def head(self, where: str) -> bytes:
        """The first bytes, enough to tell the format."""
        with self.open(where, bounded=False, buffer=8) as stream:
            return stream.read(8)

    def counted(self, where: str) -> None:
        """Decompress it all once, keeping nothing, so that a bomb is refused before the
        content is parsed (text is read in pieces; zip and pyarrow need the bytes whole)."""
        with self.open(where) as stream:
            while stream.read(_BUFFER):
                pass

    def in_memory(self, where: str) -> _Bytes:
        """The (decompressed) bytes, held in memory."""
        with self.open(where) as stream:
            return _Bytes(data=stream.read())


def _read_file(path: str, what: str, header: bool | None) -> _Content:
    """What the file holds. A regular file is read from disk, as often as its format needs;
    anything else (a pipe, a device) is read whole once and never seeked."""
    where = _where(what, path)
    if path == "":
        raise LossjitError(f"{what}: empty path; expected a file path or - for stdin")
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise LossjitError(f"{where}: file not found; expected an existing file") from None
    except OSError as exc:
        raise _cannot_read(where, exc) from None
    except ValueError as exc:  # an embedded NUL byte, for one
        raise LossjitError(f"{where}: not a valid path: {one_line(exc)}") from None
    if stat.S_ISDIR(status.st_mode):
        raise LossjitError(f"{where}: is a directory; expected a file")
    source = _Bytes(path=path, size=status.st_size)
    if not stat.S_ISREG(status.st_mode) or status.st_size == 0:  # /proc files claim no size
        try:
            with open(path, "rb") as f:
                source = _Bytes(data=f.read())
        except OSError as exc:
            raise _cannot_read(where, exc) from None
    if source.size == 0:
        raise LossjitError(f"{where}: file is empty; {_EXPECTED_FILE}")
    ext, compression = formats.split_name(path)
    return _content_of(source, ext, compression, what, path, header)


def _content_of(source: _Bytes, ext: str, compression: str, what: str, label: str,
                header: bool | None) -> _Content:
    """What the bytes hold: decompressed when their magic bytes say so, then told apart by
    their first bytes, then by ``ext``."""
    where = _where(what, label)
    found = formats.compression_of(source.head(where))
    if compression and not found:
        tool = _COMPRESSORS[compression]
        raise LossjitError(
            f"{where}: not {compression} data (no {tool} header); expected a file compressed "
            f"with {tool}"
        )
    if found:
        source = source.decompressed(found)
    head = source.head(where)
    if not head:
        raise LossjitError(f"{where}: no data after {_COMPRESSORS[found]} decompression; "
                           f"{_EXPECTED_FILE}")
    fmt = formats.format_of(head)
    if fmt == ".npy":  # bounded by its header instead
        with source.open(where, bounded=False) as stream:
            return _Array(_read_npy(stream, where, None if found else source.size))
    if not fmt and ext in _NOT_FORMAT:
        raise LossjitError(f"{where}: not {_NOT_FORMAT[ext]}")
    if found:
        source.counted(where)
        source = source.in_memory(where) if fmt else source
    if fmt == ".npz":
        return _Archive(source, label, where)
    if fmt:
        return _arrow_table(source, fmt, what, label)
    return _parse_text(source, {".csv": ",", ".tsv": "\t"}.get(ext), header, what, label)


# --------------------------------------------------------------------------------------------
# .npy and .npz


def _check_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.hasobject:
        raise LossjitError(
            f"{where}: holds an object (pickled) array, which lossjit does not load; "
            f"{_EXPECTED_DTYPE}"
        )
    if dtype.kind == "c":
        raise LossjitError(
            f"{where}: complex dtype {dtype} is not supported; {_EXPECTED_DTYPE}"
        )
    if dtype.kind not in "biuf" or dtype.shape:
        raise LossjitError(f"{where}: dtype {dtype} is not numeric; {_EXPECTED_DTYPE}")


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    return data if len(data) == size else b""


def _npy_header(stream: BinaryIO, bad: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, header bytes)`` from an .npy header; ``bad`` starts the
    message of what is wrong. The header is parsed as a literal, never run or unpickled."""
    prefix = _read_exact(stream, 8)
    if not prefix.startswith(_NPY_MAGIC):
        raise LossjitError(f"{bad}no .npy header")
    major, minor = prefix[6], prefix[7]
    if major not in (1, 2, 3):
        raise LossjitError(f"{bad}.npy format version {major}.{minor}; expected 1.0, 2.0 or 3.0")
    width = 2 if major == 1 else 4
    size = _read_exact(stream, width)
    length = int.from_bytes(size, "little")
    if length > MAX_NPY_HEADER:
        raise LossjitError(f"{bad}the header claims {_size(length)}, more than the "
                           f"{_size(MAX_NPY_HEADER)} lossjit reads")
    text = _read_exact(stream, length)
    if not size or len(text) != length:
        raise LossjitError(f"{bad}the header is cut short")
    try:
        fields = ast.literal_eval(text.decode("latin1" if major < 3 else "utf-8"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise LossjitError(f"{bad}the header is not a Python literal: {one_line(exc)}") from None
    if not isinstance(fields, dict) or set(fields) != {"descr", "fortran_order", "shape"}:
        raise LossjitError(f"{bad}the header is not a dict of descr, fortran_order and shape")
    shape, fortran = fields["shape"], fields["fortran_order"]
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise LossjitError(f"{bad}shape {show(shape)} is not a tuple of sizes")
    if not isinstance(fortran, bool):
        raise LossjitError(f"{bad}fortran_order {show(fortran)} is not True or False")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dtype = np.lib.format.descr_to_dtype(fields["descr"])
    except Exception as exc:  # numpy's dtype parser raises all sorts for odd literals
        raise LossjitError(
            f"{bad}descr {show(fields['descr'])} is not a dtype: {one_line(exc)}"
        ) from None
    return shape, fortran, dtype, 8 + width + length


def _read_npy(stream: BinaryIO, where: str, available: int | None, member: str = "") -> np.ndarray:
    """An .npy array from ``stream``: of ``available`` bytes when known (a file, bytes in
    memory), else (decompressed data, an .npz ``member``) what it holds. The data the header
    declares is checked against the bytes before an array is allocated; unpickling never."""
    kind = f".npz archive (truncated?): {member}: " if member else ".npy file (truncated?): "
    bad = f"{where}: not a valid {kind}"
    if member and stream.peek(len(_NPY_MAGIC))[: len(_NPY_MAGIC)] != _NPY_MAGIC:
        raise LossjitError(f"{where}: {member} is not an .npy array (no .npy header); expected "
                           "an archive written by numpy.savez")
    shape, fortran, dtype, header = _npy_header(stream, bad)
    _check_dtype(dtype, f"{where}: {member}" if member else where)
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    declared = f"its header declares shape {shape} of {dtype}, {_size(nbytes)}"
    if available is not None and nbytes > available - header:
        raise LossjitError(f"{bad}{declared}, but {_size(max(available - header, 0))} follow "
                           "the header")
    limit, why = _array_limit(where)
    if limit is not None and nbytes > limit:
        raise LossjitError(f"{where}: {member + ': ' if member else ''}{declared}, more than "
                           f"{why}; refused before reading it")
    if available is not None:  # all there: read it straight into the array
        array = np.empty(count, dtype)
        buffer, got = memoryview(array.view(np.uint8)), 0
        while got < nbytes and (n := stream.readinto(buffer[got:])):
            got += n
    else:  # counted as it comes, never past what the header declares
        data = bytearray()
        while len(data) < nbytes and (chunk := stream.read(min(nbytes - len(data), _BUFFER))):
            data += chunk
        got = len(data)
    if got < nbytes:
        raise LossjitError(f"{bad}{declared}, but {_size(got)} follow the header")
    if available is None:
        array = np.frombuffer(data, dtype)  # writable: the bytearray is its memory
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


# --------------------------------------------------------------------------------------------
# Parquet and Arrow


def _arrow_table(source: _Bytes, fmt: str, what: str, label: str) -> _Table:
    where = _where(what, label)
    kinds = {".parquet": "Parquet file", ".arrows": "Arrow IPC stream"}
    kind = kinds.get(fmt, "Arrow/Feather file")
    pa = _needs("pyarrow", f"reading a {kind}", where)
    module = {".parquet": "pyarrow.parquet", ".arrows": "pyarrow.ipc"}.get(fmt, "pyarrow.feather")
    reader = _needs(module, f"reading a {kind}", where)
    try:
        with (pa.OSFile(source.path) if source.data is None else
              pa.BufferReader(source.data)) as file:
            table = (reader.open_stream(file).read_all() if fmt == ".arrows" else
                     reader.read_table(file))
        table.validate(full=True)  # damaged offsets or indices would crash pyarrow's compute
        names = tuple(map(str, table.column_names))
    except (pa.ArrowException, *_ARROW_ERRORS) as exc:
        raise LossjitError(f"{where}: not a valid {kind} (truncated?): {one_line(exc)}") from None
    if table.num_columns == 0:
        raise LossjitError(f"{where}: the table has no columns; expected at least one")

    def load(index: int, what: str) -> np.ndarray:
        try:
            return _arrow_column(pa, table.column(index), names[index], what, label)
        except LossjitError:
            raise
        except (pa.ArrowException, *_ARROW_ERRORS) as exc:
            raise LossjitError(f"{_where(what, label)}: not a valid {kind} (truncated?): "
                               f"{one_line(exc)}") from None

    return _Table(names, table.num_columns, load)


def _arrow_column(pa: Any, column: Any, name: str, what: str, label: str) -> np.ndarray:
    """A pyarrow column as numbers (nulls as NaN) or as text labels (nulls as '')."""
    types = pa.types
    if types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    kind = column.type
    if types.is_integer(kind) or types.is_floating(kind) or types.is_boolean(kind) \
            or types.is_decimal(kind):
        if column.null_count or types.is_decimal(kind):
            column = column.cast(pa.float64(), safe=False)  # big integers round
        return column.to_numpy()
    if types.is_string(kind) or types.is_large_string(kind) or types.is_string_view(kind):
        compute = _needs("pyarrow.compute", "reading Arrow", _where(what, label))
        texts = compute.fill_null(column, "")
        return np.asarray(texts.to_numpy(zero_copy_only=False), dtype=str)
    raise LossjitError(
        f"{_where(what, label)}: column {show(name)} has Arrow type {kind}; expected numbers "
        "or text labels"
    )


# --------------------------------------------------------------------------------------------
# text: lossjit finds the layout (delimiter, header, column kinds); np.loadtxt reads the numbers,
# line by line from the file (or the decompressing stream), once per pass


@dataclass(frozen=True)
class _Layout:
    delimiter: str | None  # None: runs of whitespace
    names: tuple[str, ...] | None  # the header's fields, None without a header
    kinds: tuple[str, ...]  # per field of a line: "int", "float", "label" or "skip"
    first: int  # 1-based number of the first data line
    width: int  # fields on the first data line
    rows: bool = True  # False: a header and no rows


_Patterns = tuple[tuple[re.Pattern[bytes], bytes], ...]


class _Text:
    """A text input, read again for each pass: its bytes after any byte-order mark, and its
    lines, with the substitutions ``fill`` holds made (missing values as ``nan``)."""

    def __init__(self, source: _Bytes, where: str, fill: _Patterns = ()) -> None:
        self.source, self.where, self.fill = source, where, fill

    def filled(self, delimiter: str | None, *, markers: bool = True) -> _Text:
        """Missing values as ``nan`` and blank lines empty (only blank lines: ``markers=False``)."""
        patterns = _missing_patterns(delimiter)
        return _Text(self.source, self.where, patterns if markers else patterns[:1])

    @contextlib.contextmanager
    def open(self) -> Iterator[io.BufferedReader]:
        with self.source.open(self.where) as stream:
            if stream.peek(len(_BOM))[: len(_BOM)] == _BOM:  # decoding utf-8-sig is slower
                stream.read(len(_BOM))
            yield stream

    @contextlib.contextmanager
    def lines(self) -> Iterator[Iterable[bytes]]:
        """The lines for np.loadtxt (each with its ``\\n``)."""
        with self.open() as stream:
            yield _filled_lines(stream, self.fill) if self.fill else stream


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    """``stream`` in pieces of about ``_BUFFER`` bytes, each of whole lines."""
    parts: list[bytes] = []
    while block := stream.read(_BUFFER):
        cut = block.rfind(b"\n") + 1
        if not cut:
            parts.append(block)
            continue
        parts.append(block[:cut])
        yield b"".join(parts)
        parts = [block[cut:]]
    if any(parts):
        yield b"".join(parts)


def _filled_lines(stream: BinaryIO, patterns: _Patterns) -> Iterator[bytes]:
    for chunk in _chunks(stream):
        # the patterns that look for a line's start find it after a "\n": give the first one
        chunk = b"\n" + chunk
        for pattern, replacement in patterns:
            chunk = pattern.sub(replacement, chunk)
        yield from io.BytesIO(chunk[1:])


def _is_number(field: str) -> bool:
    return _NUM_RE.fullmatch(field) is not None


def _is_name(field: str) -> bool:
    """A header name or a label: a letter or ``_`` in it, and neither a number nor a marker."""
    return (any(c.isalpha() or c == "_" for c in field) and not _is_number(field)
            and field not in MARKERS)


def _is_header(fields: list[str]) -> bool:
    return all(not f or _is_name(f) for f in fields) and any(map(_is_name, fields))


def _sniff(line: str) -> str | None:
    return next((d for d in (",", "\t", ";") if d in line), None)


def _split(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    try:
        fields = (next(csv.reader([line], delimiter=delimiter, skipinitialspace=True), [""])
                  if '"' in line else line.split(delimiter))
    except csv.Error:  # a carriage return inside the line, for one
        fields = line.split(delimiter)
    return [field.strip() for field in fields]


def _lines(text: _Text, where: str, delimiter: str | None = None) -> Iterator[tuple[int, str]]:
    """``(line number, text before any #)`` of each line that holds more than spaces."""
    blank = " \t\r\n\f\v"
    blank = blank.replace(delimiter, "") if delimiter else blank
    with text.open() as stream:
        for number, raw in enumerate(stream, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise LossjitError(
                    f"{where}: neither a binary array file nor UTF-8 text (line {number} is not "
                    f"UTF-8); {_EXPECTED_FILE}"
                ) from None
            line = line.removesuffix("\n").partition("#")[0].rstrip("\r")
            if line.strip(blank):
                yield number, line


def _layout(text: _Text, delimiter: str | None, header: bool | None, where: str) -> _Layout:
    with contextlib.closing(_lines(text, where)) as lines:
        first = next(lines, None)
        if first is None:
            raise LossjitError(
                f"{where}: no numbers found (only blank lines or comments); expected at least "
                "one value"
            )
        number, line = first
        delimiter = delimiter or _sniff(line)
        fields: list[str] | None = _split(line, delimiter)
        names = None
        if _is_header(fields) if header is None else header:
            names, header_line = tuple(fields), number
            data_line = next(lines, None)
            if data_line is None:
                fields = None
            else:
                number, fields = data_line[0], _split(data_line[1], delimiter)
                if len(fields) != len(names):
                    raise _ragged(where, number, len(fields), f"the header (line {header_line})",
                                  len(names), delimiter)
    last = fields if fields is not None else list(names or ())
    kinds = ["label" if _is_name(f) else "int" if _INT_RE.fullmatch(f) else "float"
             for f in fields] if fields is not None else ["float"] * len(last)
    if (delimiter is not None and len(last) > 1 and last[-1] == ""
            and (names is None or names[-1] == "") and _ends_with(text, delimiter)):
        kinds[-1] = "skip"
        names = names[:-1] if names is not None else None
    return _Layout(delimiter, names, tuple(kinds), number, len(last), fields is not None)


def _pad(delimiter: str | None) -> bytes:
    """The characters padding a field: spaces and tabs, less the delimiter."""
    return b" \t".replace((delimiter or "").encode(), b"")


def _ends_with(text: _Text, delimiter: str) -> bool:
    """Whether every line (comments aside) ends with ``delimiter``."""
    d = re.escape(delimiter.encode())
    pattern = re.compile(rb"[^" + d + rb"\s][" + _pad(delimiter) + rb"]*\r?$", re.MULTILINE)
    with text.open() as stream:
        for chunk in _chunks(stream):
            if b"#" in chunk:
                chunk = re.sub(rb"#[^\r\n]*", b"", chunk)
            if pattern.search(chunk):
                return False
    return True


def _ragged(where: str, number: int, count: int, other: str, expected: int,
            delimiter: str | None) -> LossjitError:
    sep = {",": "comma", "\t": "tab", ";": "semicolon"}.get(delimiter or "", "whitespace")
    return LossjitError(
        f"{where}: line {number} has {_count(count)} but {other} has {expected}; expected the "
        f"same number of {sep}-separated values on every line"
    )


@functools.lru_cache(maxsize=8)
def _missing_patterns(delimiter: str | None) -> _Patterns:
    """Byte-level substitutions that turn missing values into ``nan`` for np.loadtxt, the
    first of them blank lines into empty ones; applied to whole lines after a ``\\n``.

    Each pattern starts with a literal, so the regex engine scans for it at C speed.
    """
    d = re.escape(delimiter.encode()) if delimiter else b""
    pad = _pad(delimiter)
    bound = b"[^" + d + b" \t\n]"
    words = b"|".join(re.escape(w) + b"(?<!" + bound + re.escape(w) + b")"
                      for w in sorted((m.encode() for m in MARKERS if m != "nan"), key=len,
                                      reverse=True))
    after = rb"(?=[" + pad + rb"]*(?:[" + d + rb"\r\n]|\Z))" if delimiter else rb"(?=\s|\Z)"
    patterns = [(re.compile(rb"\n[" + pad + rb"]+(?=#|\r?\n|\r?\Z)"), b"\n"),  # blank lines
                (re.compile(b"(?:" + words + b")" + after), b"nan")]
    if delimiter:
        patterns += [
            (re.compile(b"(" + d + b")[" + pad + rb"]*(?=[" + d + rb"\r\n]|\Z)"), rb"\1nan"),
            (re.compile(rb"(\n)[" + pad + b"]*(?=" + d + b")"), rb"\1nan"),
        ]
    return tuple(patterns)


def _loadtxt(text: _Text, layout: _Layout, kinds: Sequence[str],
             usecols: Sequence[int] | None = None) -> list[np.ndarray] | np.ndarray:
    """The columns (or, for columns of one kind, the 2-D array) np.loadtxt reads."""
    dtypes = {"int": "i8", "float": "f8", "label": "O", "skip": "U1"}
    plain = usecols is None and len(set(kinds)) == 1 and kinds[0] in ("int", "float")
    dtype: Any = dtypes[kinds[0]] if plain else [(f"c{i}", dtypes[k]) for i, k in enumerate(kinds)]
    with warnings.catch_warnings(), text.lines() as lines:
        warnings.simplefilter("ignore")  # "input contained no data": an error below
        array = np.loadtxt(
            lines, dtype=dtype, delimiter=layout.delimiter, comments="#",
            skiprows=layout.first - 1, usecols=usecols, ndmin=2 if plain else 1,
            encoding="utf-8", quotechar='"' if layout.delimiter else None,
        )
    if len(array) == 0:
        raise ValueError("np.loadtxt found no rows")
    return array if plain else [array[f"c{i}"] for i in range(len(kinds))]


def _parse_text(source: _Bytes, delimiter: str | None, header: bool | None, what: str,
                label: str) -> _Table:
    """A text table, its numbers read by np.loadtxt; Python only looks at lines on a failure."""
    where = _where(what, label)
    text = _Text(source, where)
    layout = _layout(text, delimiter, header, where)
    kinds = list(layout.kinds)
    if not layout.rows:  # a header alone: its columns hold no values
        count = len(kinds) - kinds.count("skip")
        return _Table(layout.names, count, lambda i, what: np.empty(0), np.empty((0, count)))
    current, cleaned, guessed = text, False, [i for i, k in enumerate(kinds) if k == "int"]
    while True:
        try:
            parsed = _loadtxt(current, layout, kinds)
            break
        except LossjitError:  # the file, or its compression, failed
            raise
        except UnicodeDecodeError:
            for _ in _lines(text, where):  # raises the error that names the line
                pass
            raise LossjitError(f"{where}: not UTF-8 text; {_EXPECTED_FILE}") from None
        except ValueError as exc:
            if "int" in kinds:  # an int column holds something else: read them all as floats
                kinds = ["float" if k == "int" else k for k in kinds]
            elif not cleaned:
                current, cleaned = text.filled(layout.delimiter), True
            else:
                raise _locate(text, layout, exc, where) from None
    block = parsed if isinstance(parsed, np.ndarray) else None
    columns = list(parsed.T) if block is not None else parsed
    demoted = [i for i in guessed if kinds[i] == "float"]
    if demoted and _restore_ints(current, layout, columns, demoted):
        block = None
    labels = [i for i, k in enumerate(kinds) if k == "label"]
    if cleaned and labels:  # labels as written, not with their NA turned into nan
        raw = text.filled(layout.delimiter, markers=False)
        for i, column in zip(labels, _loadtxt(raw, layout, ["label"] * len(labels), labels),
                             strict=True):
            columns[i] = column
    for i in labels:
        columns[i] = np.char.strip(columns[i].astype(str))
    kept = [column for column, kind in zip(columns, kinds, strict=True) if kind != "skip"]
    if block is not None and "skip" in kinds:
        block = None
    return _Table(layout.names, len(kept), lambda i, what: kept[i], block)


def _restore_ints(text: _Text, layout: _Layout, columns: list[np.ndarray],
                  demoted: list[int]) -> bool:
    """Read again as int64 the whole-valued columns of integers that were read as floats."""
    whole = [i for i in demoted
             if np.isfinite(columns[i]).all() and np.array_equal(columns[i], np.trunc(columns[i]))]
    attempts = [whole] + ([[i] for i in whole] if len(whole) > 1 else [])
    for attempt in attempts:
        if not attempt or any(columns[i].dtype.kind == "i" for i in attempt):
            continue
        try:
            ints = _loadtxt(text, layout, ["int"] * len(attempt), attempt)
        except LossjitError:
            raise
        except ValueError:  # "2.0", or beyond int64: these stay float64
            continue
        for i, column in zip(attempt, ints, strict=True):
            columns[i] = column
    return any(columns[i].dtype.kind == "i" for i in whole)


def _locate(text: _Text, layout: _Layout, exc: ValueError, where: str) -> LossjitError:
    """The line and column of what np.loadtxt could not read, for the message."""
    delimiter = layout.delimiter
    for number, line in _lines(text, where, delimiter):
        if number < layout.first:
            continue
        fields = _split(line, delimiter)
        if len(fields) != layout.width:
            return _ragged(where, number, len(fields), f"line {layout.first}", layout.width,
                           delimiter)
        for column, (kind, token) in enumerate(zip(layout.kinds, fields, strict=True), 1):
            if kind in ("int", "float") and not (
                _is_number(token) or token in MARKERS or (token == "" and delimiter)
            ):
                at = f", column {column}" if layout.width > 1 else ""
                return LossjitError(
                    f"{where}: line {number}{at}: bad value {show(token)}; {_EXPECTED_NUMBER}"
                )
    return LossjitError(f"{where}: cannot read the numbers: {one_line(exc)}")


# --------------------------------------------------------------------------------------------
# CLI helpers


def parse_array_option(value: str, *, what: str, reader: Reader | None = None) -> np.ndarray:
    """CLI array option: comma-separated numbers ("1,2,0.5"), or a source (file[:selector]).

    A source whose file exists (or ``-``) is read, with ``reader`` when given; otherwise
    ``value`` must be numbers separated by commas: a 1-D array, int64 when every number is an
    integer and float64 otherwise.

    >>> parse_array_option("1, 2, 0.5", what="--weight")
    array([1. , 2. , 0.5])
    >>> parse_array_option("wieghts.npy", what="--weight")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lossjit.errors.LossjitError: --weight: 'wieghts.npy' is neither an existing file nor a ...
    """
    value = os.fspath(value)
    source = Source.parse(value)
    if source.path == "-" or (source.path and os.path.exists(source.path)):
        selected = (reader or Reader()).read(source, what=what)
        if selected.array.dtype.kind == "U":
            raise LossjitError(
                f"{_where(what, source.path)}: holds text labels{_such_as(selected.array)}; "
                "expected numbers"
            )
        return selected.array
    tokens = [token.strip() for token in value.split(",")]
    for token in tokens:
        if not _is_number(token):
            if len(tokens) == 1:
                problem = "is neither an existing file nor a number"
            elif token == "":
                problem = "is not an existing file and has an empty item"
            else:
                problem = f"is not an existing file and {show(token)} is not a number"
            raise LossjitError(
                f"{what}: {show(value, 200)} {problem}; "
                "expected a file path or comma-separated numbers like 0.5,1,2"
            )
    if all(map(_INT_RE.fullmatch, tokens)):
        try:
            return np.array([int(token) for token in tokens], dtype=np.int64)
        except OverflowError:
            pass  # integers beyond int64: read them as float64
    return np.array([float(token) for token in tokens], dtype=np.float64)


def label_indices(labels: np.ndarray, classes: Sequence[str], *, what: str) -> np.ndarray:
    """Text labels as int64 indices of their class in ``classes`` (the first, if repeated).

    >>> label_indices(np.array(["b", "a", "b"]), ["a", "b"], what="targets")
    array([1, 0, 1])
    >>> label_indices(np.array(["a", "c"]), ["a", "b"], what="targets")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lossjit.errors.LossjitError: targets: unknown label 'c' at position 1 (0-based); expected ...
    """
    labels = np.asarray(labels)
    names = [str(c) for c in classes]
    lookup: dict[str, int] = {}
    for index, name in enumerate(names):
        lookup.setdefault(name, index)
    uniques, inverse = np.unique(labels.astype(str).ravel(), return_inverse=True)
    mapped = np.array([lookup.get(u, -1) for u in uniques.tolist()], dtype=np.int64)
    indices = mapped[inverse.ravel()]
    if (mapped < 0).any():
        position = int(np.flatnonzero(indices < 0)[0])
        raise LossjitError(
            f"{what}: unknown label {_value(labels.ravel()[position])} at position {position} "
            f"(0-based); expected one of the classes {_listing(names) or '(none given)'}"
        )
    return indices.reshape(labels.shape)
