"""Read and write the arrays lossjit works on: .npy, .npz, CSV, TSV, plain text and stdin/stdout.

This module only moves numbers between files and NumPy arrays; it knows nothing about losses.
It imports only NumPy and the standard library, so the CLI can use it without loading Numba.

Reading (``read_array``) picks the format from the file's content first and its extension
second:

* content starting with ``\\x93NUMPY`` is a ``.npy`` array (loaded with ``allow_pickle=False``);
* content starting with a zip header is a ``.npz`` archive, which must hold exactly one array;
* anything else is text: ``.csv`` splits on commas, ``.tsv`` on tabs, and ``.txt``, unknown
  extensions and stdin sniff the first data line (a comma means CSV, a tab means TSV, otherwise
  any run of whitespace separates values).

Text rules: empty lines and ``#`` comments are ignored; a first row with any non-numeric
(non-empty) field is a header and is skipped; one column or one row gives a 1-D array,
otherwise 2-D; text holding only integers gives ``int64`` (class labels stay integers),
anything with a ``.``, an exponent, ``nan`` or ``inf`` gives ``float64``.

Writing (``write_array``) picks the format from the extension, writes a temporary file in the
destination directory, fsyncs it and renames it over the destination, so a failed write never
leaves a partial file behind. Float text is written in the shortest form that reads back to the
same bits.

Every bad input raises :class:`lossjit.errors.LossjitError` with a one-line message naming the
argument, the path and what was expected.

>>> import os, tempfile
>>> import numpy as np
>>> d = tempfile.mkdtemp()
>>> path = os.path.join(d, "grad.csv")
>>> write_array(path, np.array([[0.1, -2.0], [3.5, 7.0]]))
>>> print(open(path).read(), end="")
0.1,-2.0
3.5,7.0
>>> read_array(path, what="targets")
array([[ 0.1, -2. ],
       [ 3.5,  7. ]])
>>> parse_array_option("1,2,3", what="--weight")
array([1, 2, 3])
>>> default_grad_path("data/logits.npy")
'logits.grad.npy'
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from typing import BinaryIO

import numpy as np

from lossjit.errors import LossjitError

__all__ = ["default_grad_path", "parse_array_option", "read_array", "write_array"]

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members / an empty zip

#: Extensions ``write_array`` can write, in the order error messages list them.
WRITE_FORMATS = (".npy", ".npz", ".csv", ".tsv", ".txt")

_INT_RE = re.compile(r"[+-]?[0-9]+")
_NUM_RE = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)",
    re.IGNORECASE,
)
_EXPECTED_NUMBER = "expected a number such as 3, -2.5, 1e-3, nan or inf"
_EXPECTED_DTYPE = "expected float or integer numbers"
_SUPPORTED_READ = ".npy, .npz, or numbers as .csv, .tsv or .txt text"
# What np.load raises for a damaged .npy/.npz (a bad header, truncated data, a broken zip).
_LOAD_ERRORS = (ValueError, EOFError, OSError, KeyError, zipfile.BadZipFile, zlib.error)


# --------------------------------------------------------------------------------------------
# message helpers


def _show(text: str, limit: int = 60) -> str:
    """Quote a path or token for a one-line message (control characters escaped, long ones cut)."""
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


def _where(what: str, path: str) -> str:
    return f"{what}: {'stdin' if path == '-' else _show(path, 200)}"


def _count(n: int) -> str:
    return f"{n} value" if n == 1 else f"{n} values"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --------------------------------------------------------------------------------------------
# reading


def read_array(path: str, *, what: str = "input", stdin: BinaryIO | None = None) -> np.ndarray:
    """Read one array from ``path`` (``"-"`` for stdin) as .npy, .npz, CSV, TSV or text.

    ``what`` names the argument in error messages (``"predictions"``, ``"--weight"``).
    ``stdin`` replaces ``sys.stdin.buffer`` when ``path`` is ``"-"``.

    Returns the array as stored: .npy/.npz keep their dtype (bool stays bool, float32 stays
    float32); text gives int64 when every value is an integer and float64 otherwise.

    >>> import io
    >>> read_array("-", stdin=io.BytesIO(b"label\\n1\\n0\\n2\\n"))
    array([1, 0, 2])
    >>> read_array("-", stdin=io.BytesIO(b"0.5\\t1\\n2\\tnan\\n"))
    array([[0.5, 1. ],
           [2. , nan]])
    """
    path = os.fspath(path)
    if path == "-":
        return _read_stdin(what, stdin)
    if path == "":
        raise LossjitError(f"{what}: empty path; expected a file path or - for stdin")
    ext = os.path.splitext(path)[1].lower()
    if os.path.isdir(path):
        raise LossjitError(f"{_where(what, path)}: is a directory; expected a file")
    try:
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
            if not head:
                raise LossjitError(f"{_where(what, path)}: file is empty; expected numbers")
            f.seek(0)
            if head.startswith(NPY_MAGIC):
                return _load_npy(f, what, path)
            if head.startswith(ZIP_MAGICS) and ext in (".npz", ".zip"):
                return _load_npz(f, what, path)
            if ext in (".npy", ".npz"):
                kind = "an .npy array" if ext == ".npy" else "an .npz archive"
                raise LossjitError(
                    f"{_where(what, path)}: not {kind} (no {ext} header); "
                    f"expected a file written by numpy.{'save' if ext == '.npy' else 'savez'}"
                )
            data = f.read()
    except FileNotFoundError:
        raise LossjitError(
            f"{_where(what, path)}: file not found; expected an existing file"
        ) from None
    except OSError as exc:
        reason = exc.strerror or _one_line(exc)
        raise LossjitError(f"{_where(what, path)}: cannot read file: {reason}") from None
    delimiter = {".csv": ",", ".tsv": "\t"}.get(ext)
    return _parse_text(data, what, path, delimiter)


def _read_stdin(what: str, stdin: BinaryIO | None) -> np.ndarray:
    if stdin is None:
        if sys.stdin is None:
            raise LossjitError(f"{what}: no stdin to read from; give a file path instead of -")
        stdin = getattr(sys.stdin, "buffer", sys.stdin)
        isatty = getattr(stdin, "isatty", None)
        if isatty is not None and isatty():
            raise LossjitError(
                f"{what}: stdin is a terminal; pipe data in (e.g. < file.npy) or give a file path"
            )
    try:
        data = stdin.read()
    except OSError as exc:
        raise LossjitError(f"{what}: stdin: cannot read: {_one_line(exc)}") from None
    if isinstance(data, str):  # a text stream was passed; accept it
        data = data.encode("utf-8")
    if not data:
        raise LossjitError(f"{what}: stdin: no data; expected .npy bytes or numbers as text")
    if data.startswith(NPY_MAGIC):
        return _load_npy(io.BytesIO(data), what, "-")
    if data.startswith(ZIP_MAGICS):
        return _load_npz(io.BytesIO(data), what, "-")
    return _parse_text(data, what, "-", None)


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
    message = _one_line(exc)
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


def _load_npz(f: BinaryIO, what: str, path: str) -> np.ndarray:
    try:
        with np.load(f, allow_pickle=False) as archive:
            keys = list(archive.files)
            if len(keys) != 1:
                found = ", ".join(keys) if keys else "none"
                raise LossjitError(
                    f"{_where(what, path)}: .npz holds {len(keys)} arrays (keys: {found}); "
                    "expected exactly one"
                )
            array = archive[keys[0]]
    except LossjitError:
        raise
    except _LOAD_ERRORS as exc:
        raise _load_error(exc, what, path, ".npz archive") from None
    return _check_loaded(array, what, path)


def _parse_text(data: bytes, what: str, path: str, delimiter: str | None) -> np.ndarray:
    """Parse numbers from text; ``delimiter`` None sniffs comma, tab or whitespace."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LossjitError(
            f"{_where(what, path)}: neither a .npy/.npz file nor UTF-8 text; "
            f"expected {_SUPPORTED_READ}"
        ) from None

    rows: list[list[str]] = []
    linenos: list[int] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if "#" in line:
            line = line.partition("#")[0]
        line = line.strip()
        if not line:
            continue
        if delimiter is None:
            delimiter = "," if "," in line else "\t" if "\t" in line else ""
        if delimiter:
            fields = [field.strip() for field in line.split(delimiter)]
        else:
            fields = line.split()
        rows.append(fields)
        linenos.append(lineno)

    if not rows:
        raise LossjitError(
            f"{_where(what, path)}: no numbers found (only blank lines or comments); "
            "expected at least one value"
        )
    # A header has a non-numeric field; empty fields alone do not make one (",a,b" is a header,
    # "1,,3" is a data row with a missing value).
    header = any(field and not _NUM_RE.fullmatch(field) for field in rows[0])
    if header:
        if len(rows) == 1:
            raise LossjitError(
                f"{_where(what, path)}: line {linenos[0]} looks like a header and no numbers "
                "follow; expected at least one row of numbers"
            )
        rows, linenos = rows[1:], linenos[1:]

    width = len(rows[0])
    for fields, lineno in zip(rows, linenos, strict=True):
        if len(fields) != width:
            sep = {",": "comma", "\t": "tab"}.get(delimiter or "", "whitespace")
            raise LossjitError(
                f"{_where(what, path)}: line {lineno} has {_count(len(fields))} but line "
                f"{linenos[0]} has {width}; expected the same number of {sep}-separated "
                "values on every line"
            )
    flat = [field for fields in rows for field in fields]

    if not all(map(_NUM_RE.fullmatch, flat)):
        for fields, lineno in zip(rows, linenos, strict=True):
            for column, token in enumerate(fields, 1):
                if not _NUM_RE.fullmatch(token):
                    shown = "empty value" if token == "" else f"bad value {_show(token)}"
                    where = f", column {column}" if width > 1 else ""
                    raise LossjitError(
                        f"{_where(what, path)}: line {lineno}{where}: {shown}; {_EXPECTED_NUMBER}"
                    )
    array = _to_array(flat)
    if len(rows) > 1 and width > 1:
        array = array.reshape(len(rows), width)
    return array


def _to_array(tokens: list[str]) -> np.ndarray:
    """Tokens already validated as numbers -> int64 if all integers (and fit), else float64."""
    if all(map(_INT_RE.fullmatch, tokens)):
        try:
            return np.fromiter(map(int, tokens), dtype=np.int64, count=len(tokens))
        except OverflowError:
            pass  # integers beyond int64: read them as float64
    return np.fromiter(map(float, tokens), dtype=np.float64, count=len(tokens))


# --------------------------------------------------------------------------------------------
# CLI array options


def parse_array_option(value: str, *, what: str) -> np.ndarray:
    """Turn a CLI array option into an array: a file path or comma-separated numbers.

    An existing file is read with :func:`read_array`; otherwise ``value`` must be numbers
    separated by commas. The result is 1-D, int64 when every number is an integer and float64
    otherwise.

    >>> parse_array_option("1, 2, 0.5", what="--weight")
    array([1. , 2. , 0.5])
    >>> parse_array_option("wieghts.npy", what="--weight")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lossjit.errors.LossjitError: --weight: 'wieghts.npy' is neither an existing file nor a ...
    """
    value = os.fspath(value)
    if value and os.path.exists(value):
        return read_array(value, what=what)
    tokens = [token.strip() for token in value.split(",")]
    for token in tokens:
        if not _NUM_RE.fullmatch(token):
            if len(tokens) == 1:
                problem = "is neither an existing file nor a number"
            elif token == "":
                problem = "is not an existing file and has an empty item"
            else:
                problem = f"is not an existing file and {_show(token)} is not a number"
            raise LossjitError(
                f"{what}: {_show(value, 200)} {problem}; "
                "expected a file path or comma-separated numbers like 0.5,1,2"
            )
    return _to_array(tokens)


# --------------------------------------------------------------------------------------------
# writing


def default_grad_path(predictions_path: str) -> str:
    """Where ``--grad-out`` goes by default: ``<stem>.grad<ext>`` in the current directory.

    Extensions ``write_array`` cannot write (and no extension) give ``.grad.npy`` appended to
    the file name; stdin gives ``stdin.grad.npy``.

    >>> default_grad_path("data/logits.npy"), default_grad_path("x.csv"), default_grad_path("-")
    ('logits.grad.npy', 'x.grad.csv', 'stdin.grad.npy')
    >>> default_grad_path("preds"), default_grad_path("preds.dat")
    ('preds.grad.npy', 'preds.dat.grad.npy')
    """
    predictions_path = os.fspath(predictions_path)
    if predictions_path == "-":
        return "stdin.grad.npy"
    name = os.path.basename(os.path.normpath(predictions_path)) if predictions_path else ""
    if name in ("", ".", "..", os.sep):
        name = "predictions"
    stem, ext = os.path.splitext(name)
    if ext.lower() in WRITE_FORMATS:
        return f"{stem}.grad{ext}"
    return f"{name}.grad.npy"


def _same_file(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        try:
            return os.path.samefile(a, b)
        except OSError:
            pass
    return os.path.realpath(a) == os.path.realpath(b)


def _text_lines(array: np.ndarray, sep: str) -> str:
    """Shortest text that reads back to the same bits (float32: after casting to float32)."""
    array = np.atleast_1d(array)
    if array.dtype.kind in "biu" or array.dtype == np.float64:
        # Python's int/float repr on .tolist() is exact and twice as fast as numpy's str cast.
        values = (array.astype(np.int64) if array.dtype.kind == "b" else array).tolist()
        to_text = repr
    else:  # float16/float32 need numpy's per-dtype shortest form
        values = array.astype(str).tolist()
        to_text = str
    if array.ndim == 1:
        return "\n".join(map(to_text, values)) + "\n"
    return "\n".join(sep.join(map(to_text, row)) for row in values) + "\n"


def _writer(ext: str, array: np.ndarray, what: str, path: str) -> Callable[[BinaryIO], None]:
    if ext == ".npy":
        return lambda f: np.save(f, array, allow_pickle=False)
    if ext == ".npz":
        return lambda f: np.savez(f, grad=array)
    sep = {".csv": ",", ".tsv": "\t", ".txt": " "}[ext]
    if array.ndim > 2:
        raise LossjitError(
            f"{_where(what, path)}: a {array.ndim}-D array (shape {array.shape}) cannot be "
            f"written as {ext} text; use .npy or .npz"
        )
    if array.dtype.kind not in "biuf":
        raise LossjitError(
            f"{_where(what, path)}: cannot write dtype {array.dtype} as {ext} text; "
            "expected float, integer or bool values (or use .npy)"
        )
    return lambda f: f.write(_text_lines(array, sep).encode("ascii"))


def write_array(
    path: str,
    array: np.ndarray,
    *,
    protect: Iterable[str] = (),
    what: str = "--grad-out",
    stdout: BinaryIO | None = None,
) -> None:
    """Write ``array`` atomically to ``path`` in the format its extension names.

    ``.npy`` (``np.save``), ``.npz`` (``np.savez`` under the key ``"grad"``), ``.csv``
    (commas), ``.tsv`` (tabs), ``.txt`` (spaces); text holds 1-D arrays one value per line and
    2-D arrays one row per line. ``"-"`` writes .npy bytes to ``stdout`` (default
    ``sys.stdout.buffer``). Paths in ``protect`` (the inputs) are never overwritten. ``what``
    names the option in error messages. A symlinked destination is written through.

    >>> import os, tempfile
    >>> import numpy as np
    >>> p = os.path.join(tempfile.mkdtemp(), "g.tsv")
    >>> write_array(p, np.array([[1, 2], [3, 4]], dtype=np.int32))
    >>> open(p).read()
    '1\\t2\\n3\\t4\\n'
    >>> write_array(p, np.zeros(2), protect=[p])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lossjit.errors.LossjitError: --grad-out: refusing to overwrite input file ...; choose ...
    """
    array = np.asanyarray(array)
    path = os.fspath(path)
    if path == "-":
        out = stdout if stdout is not None else getattr(sys.stdout, "buffer", sys.stdout)
        np.save(out, array, allow_pickle=False)
        out.flush()
        return
    if path == "":
        raise LossjitError(f"{what}: empty path; expected a file path or - for stdout")

    ext = os.path.splitext(path)[1].lower()
    if ext not in WRITE_FORMATS:
        got = f"extension {ext!r} is not a format lossjit writes" if ext else "has no extension"
        raise LossjitError(
            f"{_where(what, path)}: {got}; "
            f"use one of {', '.join(WRITE_FORMATS)} (or - for .npy on stdout)"
        )
    for protected in protect:
        protected = os.fspath(protected)
        if protected not in ("-", "") and _same_file(path, protected):
            raise LossjitError(
                f"{what}: refusing to overwrite input file {_show(path, 200)}; "
                f"choose another {what}"
            )
    if array.dtype.hasobject:
        raise LossjitError(
            f"{_where(what, path)}: cannot write an object array; expected numeric values"
        )
    write = _writer(ext, array, what, path)

    target = os.path.realpath(path)  # write through a symlink instead of replacing it
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        shown = _show(os.path.dirname(path) or directory, 200)
        raise LossjitError(
            f"{_where(what, path)}: directory {shown} does not exist; create it first"
        )
    if os.path.isdir(target):
        raise LossjitError(f"{_where(what, path)}: is a directory; expected a file path")
    try:
        mode = os.stat(target).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask

    try:
        # delete=False: the file must outlive its handle so it can be renamed into place.
        tmp = tempfile.NamedTemporaryFile(
            dir=directory, prefix=f".{os.path.basename(target)}.", suffix=".tmp", delete=False
        )
    except OSError as exc:
        reason = exc.strerror or _one_line(exc)
        raise LossjitError(f"{_where(what, path)}: cannot write: {reason}") from None
    try:
        with tmp:
            write(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp.name, mode)
        os.replace(tmp.name, target)
    except BaseException as exc:
        try:
            os.unlink(tmp.name)
        except OSError:
            pass
        if isinstance(exc, OSError):
            reason = exc.strerror or _one_line(exc)
            raise LossjitError(f"{_where(what, path)}: cannot write: {reason}") from None
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename durable; best effort (not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
