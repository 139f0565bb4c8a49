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

Every bad input raises :class:`lossjit.errors.LossjitError` with a one-line message that names
the argument, the file (``stdin`` for standard input), what was found and what was expected.

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

import csv
import functools
import io
import lzma
import os
import re
import stat
import sys
import tokenize
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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

_NPY_MAGIC = b"\x93NUMPY"
_BOM = "\ufeff".encode()
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
_EXPECTED_NUMBER = "expected a number such as 3, -2.5, 1e-3, nan or inf"
_EXPECTED_DTYPE = "expected float or integer numbers"
_EXPECTED_FILE = "expected .npy, .npz, Parquet/Arrow or UTF-8 text (CSV, TSV, numbers)"
# What np.load raises for a damaged .npy/.npz (a bad header, truncated data, a broken zip).
_LOAD_ERRORS = (ValueError, EOFError, OSError, KeyError, zipfile.BadZipFile, zlib.error,
                NotImplementedError, RuntimeError, SyntaxError, TypeError, tokenize.TokenError)
_DECOMPRESS_ERRORS = (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error)


# --------------------------------------------------------------------------------------------
# message helpers


def _where(what: str, path: str) -> str:
    return f"{what}: {'stdin' if path == '-' else show(path, 200)}"


def _count(n: int, noun: str = "value") -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _listing(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(show(name, 40)[1:-1] if name else "''" for name in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


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
    """An .npz archive: arrays by key, each loaded (and checked) when first asked for."""

    def __init__(self, archive: Any, label: str) -> None:
        self.archive = archive
        self.keys = tuple(archive.files)
        self.label = label
        self.loaded: dict[int, np.ndarray] = {}

    def names(self) -> tuple[str, ...]:
        return self.keys

    def member(self, index: int, what: str) -> np.ndarray:
        if index not in self.loaded:
            try:
                array = self.archive[self.keys[index]]
            except _LOAD_ERRORS as exc:
                raise _load_error(exc, what, self.label, ".npz archive") from None
            self.loaded[index] = _check_loaded(array, what, self.label)
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
                    f"{_where(what, label)}: column {self._name(index)} holds text labels such "
                    f"as {show(array[0], 40)}, not numbers; pick numeric columns with a "
                    f"selector{hint}"
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
        return np.ascontiguousarray(arrays[0]), names
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
    """Reads each file, and standard input, at most once; then hands out arrays from it.

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
            array, names_ = _select(content, [_Item(name)], what, path)
            pairs.append(Selected(array, names_, Source(path, name)))
        return pairs[0], pairs[1]

    # ----------------------------------------------------------------------------------------

    def _content(self, path: str, what: str) -> _Content:
        path = os.fspath(path)
        if path not in self._contents:
            if path == "-":
                content = _from_bytes(self._stdin_bytes(what), "", "", what, path, self._header)
                self._stdin_data = None  # parsed: the bytes are no longer needed
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
        except OSError as exc:
            raise LossjitError(f"{what}: stdin: cannot read: {one_line(exc)}") from None
        if isinstance(data, str):  # a text stream was passed; accept it
            data = data.encode("utf-8")
        if not data:
            raise LossjitError(f"{what}: stdin: no data; {_EXPECTED_FILE}")
        self._stdin_data = data
        return data


# --------------------------------------------------------------------------------------------
# reading bytes and telling formats apart


def _read_file(path: str, what: str, header: bool | None) -> _Content:
    """Read a file whole, once; a regular, uncompressed .npy file is loaded straight from disk."""
    where = _where(what, path)
    if path == "":
        raise LossjitError(f"{what}: empty path; expected a file path or - for stdin")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise LossjitError(f"{where}: file not found; expected an existing file") from None
    except OSError as exc:
        raise LossjitError(f"{where}: cannot read file: {exc.strerror or one_line(exc)}") from None
    except ValueError as exc:  # an embedded NUL byte, for one
        raise LossjitError(f"{where}: not a valid path: {one_line(exc)}") from None
    if stat.S_ISDIR(mode):
        raise LossjitError(f"{where}: is a directory; expected a file")
    ext, compression = formats.split_name(path)
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(mode):  # a pipe or a device: read it whole once, never seek
                data = f.read()
            elif f.read(len(_NPY_MAGIC)) == _NPY_MAGIC and not compression:
                f.seek(0)
                return _Array(_load_npy(f, what, path))
            else:
                f.seek(0)
                data = f.read()
    except OSError as exc:
        raise LossjitError(f"{where}: cannot read file: {exc.strerror or one_line(exc)}") from None
    if not data:
        raise LossjitError(f"{where}: file is empty; {_EXPECTED_FILE}")
    return _from_bytes(data, ext, compression, what, path, header)


def _from_bytes(data: bytes, ext: str, compression: str, what: str, label: str,
                header: bool | None) -> _Content:
    """Parse a file's bytes: decompress, then tell the format by magic bytes, then by ``ext``."""
    data = _decompressed(data, compression, what, label)
    fmt = formats.format_of(data[:8])
    if fmt == ".npy":
        return _Array(_load_npy(io.BytesIO(data), what, label))
    if fmt == ".npz":
        return _load_npz(data, what, label)
    if fmt:
        return _arrow_table(data, fmt, what, label)
    if ext in _NOT_FORMAT:
        raise LossjitError(f"{_where(what, label)}: not {_NOT_FORMAT[ext]}")
    return _parse_text(data, {".csv": ",", ".tsv": "\t"}.get(ext), header, what, label)


def _decompressed(data: bytes, compression: str, what: str, label: str) -> bytes:
    """``data`` uncompressed when its magic bytes say so; an extension without them is an error."""
    where = _where(what, label)
    found = formats.compression_of(data[:8])
    if not found:
        if compression:
            tool = _COMPRESSORS[compression]
            raise LossjitError(
                f"{where}: not {compression} data (no {tool} header); expected a file "
                f"compressed with {tool}"
            )
        return data
    try:
        out = formats.decompress(data, found)
    except LossjitError as exc:  # zstandard is not installed
        raise LossjitError(f"{where}: {exc}") from None
    except (*_DECOMPRESS_ERRORS, *_zstd_errors()) as exc:
        raise LossjitError(
            f"{where}: damaged {_COMPRESSORS[found]} data (truncated?): {one_line(exc)}"
        ) from None
    if not out:
        raise LossjitError(f"{where}: no data after {_COMPRESSORS[found]} decompression; "
                           f"{_EXPECTED_FILE}")
    return out


def _zstd_errors() -> tuple[type[Exception], ...]:
    zstandard = sys.modules.get("zstandard")
    return (zstandard.ZstdError,) if zstandard is not None else ()


# --------------------------------------------------------------------------------------------
# .npy and .npz


def _check_loaded(array: np.ndarray, what: str, path: str) -> np.ndarray:
    kind = array.dtype.kind
    if kind == "c":
        raise LossjitError(
            f"{_where(what, path)}: complex dtype {array.dtype} is not supported; {_EXPECTED_DTYPE}"
        )
    if kind not in "biuf":
        raise LossjitError(
            f"{_where(what, path)}: dtype {array.dtype} is not numeric; {_EXPECTED_DTYPE}"
        )
    if array.size == 0:
        raise LossjitError(
            f"{_where(what, path)}: array is empty (shape {array.shape}); "
            "expected at least one value"
        )
    return array


def _load_error(exc: Exception, what: str, path: str, kind: str) -> LossjitError:
    message = one_line(exc)
    if "pickle" in message.lower():
        return LossjitError(
            f"{_where(what, path)}: holds an object (pickled) array, which lossjit does not load; "
            f"{_EXPECTED_DTYPE}"
        )
    return LossjitError(f"{_where(what, path)}: not a valid {kind} (truncated?): {message}")


def _load_npy(f: BinaryIO, what: str, path: str) -> np.ndarray:
    try:
        array = np.load(f, allow_pickle=False)
    except _LOAD_ERRORS as exc:
        raise _load_error(exc, what, path, ".npy file") from None
    return _check_loaded(array, what, path)


def _load_npz(data: bytes, what: str, path: str) -> _Archive:
    try:
        return _Archive(np.load(io.BytesIO(data), allow_pickle=False), path)
    except _LOAD_ERRORS as exc:
        raise _load_error(exc, what, path, ".npz archive") from None


# --------------------------------------------------------------------------------------------
# Parquet and Arrow


def _arrow_table(data: bytes, fmt: str, what: str, label: str) -> _Table:
    where = _where(what, label)
    kinds = {".parquet": "Parquet file", ".arrows": "Arrow IPC stream"}
    kind = kinds.get(fmt, "Arrow/Feather file")
    try:
        pa = formats.optional("pyarrow", f"reading a {kind}")
        if fmt == ".parquet":
            table = formats.optional("pyarrow.parquet", "reading Parquet").read_table(
                pa.BufferReader(data))
        elif fmt == ".arrows":
            table = pa.ipc.open_stream(pa.BufferReader(data)).read_all()
        else:
            table = formats.optional("pyarrow.feather", "reading Feather").read_table(
                pa.BufferReader(data))
        names = tuple(map(str, table.column_names))
    except LossjitError as exc:
        raise LossjitError(f"{where}: {exc}") from None
    except (pa.ArrowException, OSError, ValueError, EOFError) as exc:
        raise LossjitError(f"{where}: not a valid {kind} (truncated?): {one_line(exc)}") from None
    if table.num_columns == 0 or table.num_rows == 0:
        raise LossjitError(
            f"{where}: the table is empty ({_count(table.num_rows, 'row')}, "
            f"{_count(table.num_columns, 'column')}); expected at least one value"
        )

    def load(index: int, what: str) -> np.ndarray:
        try:
            return _arrow_column(pa, table.column(index), names[index], what, label)
        except LossjitError:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
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
            column = column.cast(pa.float64())
        return column.to_numpy()
    if types.is_string(kind) or types.is_large_string(kind) or types.is_string_view(kind):
        texts = formats.optional("pyarrow.compute", "reading Arrow").fill_null(column, "")
        return np.asarray(texts.to_numpy(zero_copy_only=False), dtype=str)
    raise LossjitError(
        f"{_where(what, label)}: column {show(name)} has Arrow type {kind}; expected numbers "
        "or text labels"
    )


# --------------------------------------------------------------------------------------------
# text: lossjit finds the layout (delimiter, header, column kinds); np.loadtxt reads the numbers


@dataclass(frozen=True)
class _Layout:
    delimiter: str | None  # None: runs of whitespace
    names: tuple[str, ...] | None  # the header's fields, None without a header
    kinds: tuple[str, ...]  # per field of a line: "int", "float", "label" or "skip"
    first: int  # 1-based number of the first data line
    width: int  # fields on the first data line


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
    if '"' in line:
        fields = next(csv.reader([line], delimiter=delimiter, skipinitialspace=True))
    else:
        fields = line.split(delimiter)
    return [field.strip() for field in fields]


def _lines(data: bytes, where: str, delimiter: str | None = None) -> Iterator[tuple[int, str]]:
    """``(line number, text before any #)`` of each line that holds more than spaces."""
    blank = " \t\r\n\f\v"
    blank = blank.replace(delimiter, "") if delimiter else blank
    start, number = 0, 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        number += 1
        try:
            line = data[start:end].decode("utf-8")
        except UnicodeDecodeError:
            raise LossjitError(
                f"{where}: neither a binary array file nor UTF-8 text (line {number} is not "
                f"UTF-8); {_EXPECTED_FILE}"
            ) from None
        start = end + 1
        line = line.partition("#")[0].rstrip("\r")
        if line.strip(blank):
            yield number, line


def _layout(data: bytes, delimiter: str | None, header: bool | None, where: str) -> _Layout:
    lines = _lines(data, where)
    first = next(lines, None)
    if first is None:
        raise LossjitError(
            f"{where}: no numbers found (only blank lines or comments); expected at least one value"
        )
    number, line = first
    delimiter = delimiter or _sniff(line)
    fields = _split(line, delimiter)
    names = None
    if _is_header(fields) if header is None else header:
        names = tuple(fields)
        data_line = next(lines, None)
        if data_line is None:
            how = "is the header" if header else "looks like a header"
            raise LossjitError(
                f"{where}: line {number} {how} and no numbers follow; expected at least one row "
                "of numbers"
            )
        if len(_split(data_line[1], delimiter)) != len(names):
            raise _ragged(where, data_line[0], len(_split(data_line[1], delimiter)),
                          f"the header (line {number})", len(names), delimiter)
        number, line = data_line
        fields = _split(line, delimiter)
    kinds = ["label" if _is_name(f) else "int" if _INT_RE.fullmatch(f) else "float"
             for f in fields]
    if (delimiter is not None and len(fields) > 1 and fields[-1] == ""
            and (names is None or names[-1] == "") and _ends_with(data, delimiter)):
        kinds[-1] = "skip"
        names = names[:-1] if names is not None else None
    return _Layout(delimiter, names, tuple(kinds), number, len(fields))


def _pad(delimiter: str | None) -> bytes:
    """The characters padding a field: spaces and tabs, less the delimiter."""
    return b" \t".replace((delimiter or "").encode(), b"")


def _ends_with(data: bytes, delimiter: str) -> bool:
    """Whether every line (comments aside) ends with ``delimiter``."""
    if b"#" in data:
        data = re.sub(rb"#[^\r\n]*", b"", data)
    d = re.escape(delimiter.encode())
    pattern = rb"[^" + d + rb"\s][" + _pad(delimiter) + rb"]*\r?$"
    return re.search(pattern, data, re.MULTILINE) is None


def _ragged(where: str, number: int, count: int, other: str, expected: int,
            delimiter: str | None) -> LossjitError:
    sep = {",": "comma", "\t": "tab", ";": "semicolon"}.get(delimiter or "", "whitespace")
    return LossjitError(
        f"{where}: line {number} has {_count(count)} but {other} has {expected}; expected the "
        f"same number of {sep}-separated values on every line"
    )


@functools.lru_cache(maxsize=8)
def _missing_patterns(delimiter: str | None) -> tuple[tuple[re.Pattern[bytes], bytes], ...]:
    """Byte-level substitutions that turn missing values into ``nan`` for np.loadtxt.

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


def _fill_missing(data: bytes, delimiter: str | None, *, markers: bool = True) -> bytes:
    """Missing values as ``nan`` and blank lines empty (only blank lines: ``markers=False``)."""
    patterns = _missing_patterns(delimiter)[: None if markers else 1]
    for pattern, replacement in patterns:
        data = pattern.sub(replacement, data)
    # the patterns that look for a line's start find it after a "\n": the first line has none
    end = data.find(b"\n")
    end = len(data) if end < 0 else end
    first = fixed = b"\n" + data[:end]
    for pattern, replacement in patterns:
        fixed = pattern.sub(replacement, fixed)
    return data if fixed == first else fixed[1:] + data[end:]


def _loadtxt(data: bytes, layout: _Layout, kinds: Sequence[str],
             usecols: Sequence[int] | None = None) -> list[np.ndarray] | np.ndarray:
    """The columns (or, for columns of one kind, the 2-D array) np.loadtxt reads."""
    dtypes = {"int": "i8", "float": "f8", "label": "O", "skip": "U1"}
    plain = usecols is None and len(set(kinds)) == 1 and kinds[0] in ("int", "float")
    dtype: Any = dtypes[kinds[0]] if plain else [(f"c{i}", dtypes[k]) for i, k in enumerate(kinds)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "input contained no data": an error below
        array = np.loadtxt(
            io.BytesIO(data), dtype=dtype, delimiter=layout.delimiter, comments="#",
            skiprows=layout.first - 1, usecols=usecols, ndmin=2 if plain else 1,
            encoding="utf-8", quotechar='"' if layout.delimiter else None,
        )
    if len(array) == 0:
        raise ValueError("np.loadtxt found no rows")
    return array if plain else [array[f"c{i}"] for i in range(len(kinds))]


def _parse_text(data: bytes, delimiter: str | None, header: bool | None, what: str,
                label: str) -> _Table:
    """A text table, its numbers read by np.loadtxt; Python only looks at lines on a failure."""
    where = _where(what, label)
    data = data[len(_BOM):] if data.startswith(_BOM) else data  # decoding utf-8-sig is slower
    layout = _layout(data, delimiter, header, where)
    kinds = list(layout.kinds)
    text, cleaned, guessed = data, False, [i for i, k in enumerate(kinds) if k == "int"]
    while True:
        try:
            parsed = _loadtxt(text, layout, kinds)
            break
        except UnicodeDecodeError:
            for _ in _lines(data, where):  # raises the error that names the line
                pass
            raise LossjitError(f"{where}: not UTF-8 text; {_EXPECTED_FILE}") from None
        except ValueError as exc:
            if "int" in kinds:  # an int column holds something else: read them all as floats
                kinds = ["float" if k == "int" else k for k in kinds]
            elif not cleaned:
                text, cleaned = _fill_missing(data, layout.delimiter), True
            else:
                raise _locate(data, layout, exc, where) from None
    block = parsed if isinstance(parsed, np.ndarray) else None
    columns = list(parsed.T) if block is not None else parsed
    demoted = [i for i in guessed if kinds[i] == "float"]
    if demoted and _restore_ints(text, layout, columns, demoted):
        block = None
    labels = [i for i, k in enumerate(kinds) if k == "label"]
    if cleaned and labels:  # labels as written, not with their NA turned into nan
        raw = _fill_missing(data, layout.delimiter, markers=False)
        for i, column in zip(labels, _loadtxt(raw, layout, ["label"] * len(labels), labels),
                             strict=True):
            columns[i] = column
    for i in labels:
        columns[i] = np.char.strip(columns[i].astype(str))
    kept = [column for column, kind in zip(columns, kinds, strict=True) if kind != "skip"]
    if block is not None and "skip" in kinds:
        block = None
    return _Table(layout.names, len(kept), lambda i, what: kept[i], block)


def _restore_ints(text: bytes, layout: _Layout, columns: list[np.ndarray],
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
        except ValueError:  # "2.0", or beyond int64: these stay float64
            continue
        for i, column in zip(attempt, ints, strict=True):
            columns[i] = column
    return any(columns[i].dtype.kind == "i" for i in whole)


def _locate(data: bytes, layout: _Layout, exc: ValueError, where: str) -> LossjitError:
    """The line and column of what np.loadtxt could not read, for the message."""
    delimiter = layout.delimiter
    for number, line in _lines(data, where, delimiter):
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
                f"{_where(what, source.path)}: holds text labels such as "
                f"{show(selected.array.flat[0], 40)}; expected numbers"
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
            f"{what}: unknown label {show(labels.ravel()[position])} at position {position} "
            f"(0-based); expected one of the classes {_listing(names) or '(none given)'}"
        )
    return indices.reshape(labels.shape)
