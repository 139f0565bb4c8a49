"""Write the arrays lossjit computes (gradients, Hessians, losses) to files or stdout.

The output format comes from the path's extension, optionally followed by a compression
extension (``grad.csv.gz`` is gzip-compressed CSV):

* ``.npy``: ``numpy.save``; any shape and dtype, read back bit for bit with ``numpy.load``;
* ``.npz``: a ``numpy.savez`` archive holding the array under ``key`` (``"grad"`` by default);
* ``.csv``, ``.tsv``, ``.txt``: numbers as text, separated by commas, tabs or spaces; a 1-D
  array is one value per line, a 2-D array one row per line, and every float is written in the
  shortest form that reads back to the same bits (float32 and float16 after casting back);
  bools are written as 0 and 1. With ``columns`` naming each column, the first line is a header
  (left out when every name looks like a number, since a reader would take it for data);
* ``.parquet``, ``.feather``, ``.arrow``: an Arrow table (needs pyarrow, the ``parquet`` extra)
  with one column per array column, named by ``columns`` or ``"0"``, ``"1"``, ...; a 1-D array
  is one column named ``key``. Feather (version 2) and ``.arrow`` are the same Arrow IPC file;
* any of them followed by ``.gz``, ``.bz2``, ``.xz`` or ``.zst`` (``.zst`` needs zstandard,
  the ``zstd`` extra).

* ``.zarr``: a Zarr array, a directory of compressed chunks (needs zarr, the ``dask`` extra);
  ``run.zarr:name`` is the array ``name`` in the group ``run.zarr`` (created when it does not
  exist, and then holding every output named in it).

Text and Arrow hold at most two dimensions; larger arrays need ``.npy``, ``.npz`` or ``.zarr``.
The path ``-`` writes to stdout as CSV, TSV, space-separated text or ``.npy`` bytes
(``STREAM_FORMATS``).

A file is never written in place: the data goes to a temporary file
(``.lossjit-<name>.<pid>.<random>.tmp``) in the destination's directory, is flushed to disk,
gets the old file's permissions (a new file gets the umask's) and is renamed over the
destination, so a failed or interrupted write leaves the destination as it was. A Zarr
array is written the same way as a temporary directory, swapped into place in one step where
the system can (Linux), so a reader sees the old array or the new one.
:class:`OutputSet` renames several files only once all are complete. Temporaries of an
interrupted process are removed by :func:`remove_temporaries` (the CLI's signal handling);
those a killed process left are removed by a later write into the same directory, once they
are older than an hour and their process is gone (:func:`remove_stale`). A symlinked
destination is written through (the link stays).
Inputs passed as ``protect`` are never overwritten, however their path is spelled.

Every bad destination raises :class:`lossjit.errors.LossjitError` with one line naming the
option, the path, what was wrong and what is expected.

>>> import os, tempfile
>>> import numpy as np
>>> d = tempfile.mkdtemp()
>>> path = os.path.join(d, "grad.csv")
>>> write_array(path, np.array([[0.1, -2.0], [3.5, 7.0]]), columns=["a", "b"])
>>> print(open(path).read(), end="")
a,b
0.1,-2.0
3.5,7.0
>>> write_array(os.path.join(d, "grad.npy.gz"), np.arange(3.0))
>>> import gzip, io
>>> np.load(io.BytesIO(gzip.decompress(open(os.path.join(d, "grad.npy.gz"), "rb").read())))
array([0., 1., 2.])
>>> print(text_lines(np.array([True, False]), columns=["mask"]), end="")
mask
1
0
>>> default_grad_path("data/logits.npy"), default_grad_path("x.csv.gz", suffix="hess")
('logits.grad.npy', 'x.hess.csv.gz')
>>> write_array(os.path.join(d, "grad.json"), np.ones(2))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
lossjit.errors.LossjitError: --grad-out: '...grad.json': extension '.json' is not a format ...
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO, NoReturn

import numpy as np

from lossjit.errors import LossjitError, check_interrupted, deferred, one_line, show
from lossjit.formats import (
    ARROW_FORMATS,
    COMPRESSIONS,
    ZARR,
    compress,
    optional,
    split_name,
    zarr_parts,
)

__all__ = ["STREAM_FORMATS", "TEMP_PATTERN", "WRITE_FORMATS", "ZARR", "OutputSet",
           "check_destination", "default_grad_path", "remove_stale", "remove_temporaries",
           "text_lines", "write_array"]

#: What ``-`` (stdout) can carry: text with one of three separators, or .npy bytes.
STREAM_FORMATS = ("csv", "tsv", "txt", "npy")

#: Separator of each text format.
_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": " "}

# A header made only of these would read back as a row of data.
_NUMBER_RE = re.compile(
    r"\s*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)?\s*",
    re.IGNORECASE,
)

#: Writes ``array`` (already checked for the format) to a binary file.
Writer = Callable[[BinaryIO, np.ndarray, "Sequence[str] | None", str], None]


# --------------------------------------------------------------------------------------------
# messages


def _where(what: str, path: str) -> str:
    return f"{what}: {'stdout' if path == '-' else show(path, 200)}"


def _formats_list() -> str:
    compressions = ", ".join(COMPRESSIONS)
    return (f"use one of {', '.join(_WRITERS)}, optionally followed by {compressions}, or "
            f"{ZARR} (or - for stdout as {', '.join(STREAM_FORMATS)})")


# --------------------------------------------------------------------------------------------
# text


def _ncols(array: np.ndarray) -> int:
    return array.shape[-1] if array.ndim >= 2 else 1


def _names(columns: Sequence[str] | None, ncols: int) -> list[str] | None:
    """``columns`` as strings if they name exactly ``ncols`` columns, else None."""
    if columns is None or isinstance(columns, str) or len(columns) != ncols:
        return None
    return [str(name) for name in columns]


def _header(columns: Sequence[str] | None, ncols: int) -> list[str] | None:
    """The header's names if they fit ``ncols`` and would read back as a header, else None."""
    names = _names(columns, ncols)
    if names is None or all(_NUMBER_RE.fullmatch(name) for name in names):
        return None
    return names


def _quote(name: str, sep: str) -> str:
    if sep in name or any(c in name for c in '"\r\n'):
        return '"' + name.replace('"', '""').replace("\r", " ").replace("\n", " ") + '"'
    return name


def text_lines(array: Any, sep: str = ",", columns: Sequence[str] | None = None) -> str:
    """``array`` as text lines: the shortest form of each number that reads back to its bits.

    float64 values are written with ``repr``, float32 and float16 with NumPy's shortest form
    for their dtype (exact after casting back), integers as integers and bools as 0 and 1.
    A 0-d array is one value, a 1-D array one value per line, a 2-D array one row per line
    joined by ``sep``; a larger array is written as rows of its last axis, one per line
    (``shape[:-1]`` flattened in C order). ``columns`` adds a header line when it names every
    column (one name for 0-d and 1-D) and not every name looks like a number.

    >>> text_lines(np.array([[0.1, 2.0], [1e-7, -4.5]]), sep="\\t")
    '0.1\\t2.0\\n1e-07\\t-4.5\\n'
    >>> text_lines(np.array([0.1], dtype=np.float32)), text_lines(np.int64(7))
    ('0.1\\n', '7\\n')
    >>> text_lines(np.arange(8).reshape(2, 2, 2), sep=" ")
    '0 1\\n2 3\\n4 5\\n6 7\\n'
    """
    array = np.atleast_1d(np.asarray(array))
    if array.ndim > 2:
        array = array.reshape(int(np.prod(array.shape[:-1])), array.shape[-1])
    if array.dtype.kind in "biu" or array.dtype == np.float64:
        # Python's int/float repr on .tolist() is exact and twice as fast as NumPy's str cast.
        values = (array.astype(np.int64) if array.dtype.kind == "b" else array).tolist()
        to_text: Callable[[Any], str] = repr
    else:  # float16/float32 need NumPy's per-dtype shortest form
        values = array.astype(str).tolist()
        to_text = str
    if array.ndim == 1:
        lines = list(map(to_text, values))
    else:
        lines = [sep.join(map(to_text, row)) for row in values]
    names = _header(columns, _ncols(array))
    if names is not None:
        lines.insert(0, sep.join(_quote(name, sep) for name in names))
    return "".join(line + "\n" for line in lines)


# --------------------------------------------------------------------------------------------
# the writers, one per format


def _write_npy(f: BinaryIO, array: np.ndarray, columns: Sequence[str] | None, key: str) -> None:
    np.save(f, array, allow_pickle=False)


def _write_npz(f: BinaryIO, array: np.ndarray, columns: Sequence[str] | None, key: str) -> None:
    # what numpy.savez does, without its keyword arguments taking a key such as "file"
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, array, allow_pickle=False)


def _write_text(f: BinaryIO, array: np.ndarray, columns: Sequence[str] | None, key: str, *,
                sep: str) -> None:
    f.write(text_lines(array, sep, columns).encode("utf-8"))


def _arrow_table(array: np.ndarray, columns: Sequence[str] | None, key: str) -> Any:
    pa = optional("pyarrow", "writing Arrow tables")
    if array.ndim < 2:
        data = [np.atleast_1d(array)]
        default = [key]
    else:
        data = [np.ascontiguousarray(array[:, j]) for j in range(array.shape[1])]
        default = [str(j) for j in range(array.shape[1])]
    names = _names(columns, len(data)) or default
    return pa.Table.from_arrays([pa.array(column) for column in data], names=names)


def _write_parquet(f: BinaryIO, array: np.ndarray, columns: Sequence[str] | None,
                   key: str) -> None:
    parquet = optional("pyarrow.parquet", "writing .parquet")
    parquet.write_table(_arrow_table(array, columns, key), f)


def _write_ipc(f: BinaryIO, array: np.ndarray, columns: Sequence[str] | None, key: str) -> None:
    pa = optional("pyarrow", "writing .arrow/.feather")
    table = _arrow_table(array, columns, key)
    with pa.ipc.new_file(f, table.schema) as writer:
        writer.write_table(table)


#: The writer of each format extension, in the order messages list them.
_WRITERS: dict[str, Writer] = {
    ".npy": _write_npy,
    ".npz": _write_npz,
    **{ext: partial(_write_text, sep=sep) for ext, sep in _SEPARATORS.items()},
    ".parquet": _write_parquet,
    ".feather": _write_ipc,
    ".arrow": _write_ipc,
}

#: Extensions ``write_array`` writes (each file format may be followed by one of
#: ``COMPRESSIONS``; a Zarr store compresses its chunks itself).
WRITE_FORMATS: tuple[str, ...] = (*_WRITERS, ZARR)


def _check_array(array: np.ndarray, ext: str, where: str) -> None:
    """Refuse an array the format cannot hold, before any file is touched."""
    kind = array.dtype.kind
    if array.dtype.hasobject:
        raise LossjitError(f"{where}: cannot write an object array; expected numeric values")
    if ext not in _SEPARATORS and ext not in ARROW_FORMATS:
        return
    if array.ndim > 2:
        raise LossjitError(
            f"{where}: a {array.ndim}-D array (shape {array.shape}) cannot be written as {ext}, "
            "which holds at most 2 dimensions; use .npy or .npz"
        )
    arrow_float = ext not in _SEPARATORS and kind == "f" and array.dtype.itemsize > 8
    if kind not in "biuf" or arrow_float:
        raise LossjitError(
            f"{where}: cannot write dtype {array.dtype} as {ext}; expected float64, float32, "
            "float16, integer or bool values (or use .npy)"
        )


# --------------------------------------------------------------------------------------------
# destinations


@dataclass(frozen=True)
class _Destination:
    target: str  # the real path written (a symlink's target)
    directory: str  # where its temporary goes
    ext: str  # the format extension
    compression: str  # '' or one of COMPRESSIONS
    member: str | None = None  # a Zarr array's name in a group created with it
    zarr_format: int = 3  # the Zarr format a new array has (its group's)


def _same_file(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        try:
            return os.path.samefile(a, b)
        except OSError:
            pass
    return os.path.realpath(a) == os.path.realpath(b)


def _writable_directory(path: str, directory: str, where: str) -> None:
    if not os.path.isdir(directory):
        shown = show(os.path.dirname(path) or directory, 200)
        raise LossjitError(f"{where}: directory {shown} does not exist; create it first")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise LossjitError(
            f"{where}: cannot write: directory {show(directory, 200)} is not writable; "
            "choose a writable directory"
        )


def _refuse_inputs(path: str, target: str, protect: Iterable[str], what: str) -> None:
    """Refuse a destination that is an input, or (a directory) holds one."""
    for protected in protect:
        protected = os.fspath(protected)
        if protected in ("-", ""):
            continue
        inside = os.path.realpath(protected).startswith(target.rstrip(os.sep) + os.sep)
        if inside or _same_file(target, protected):
            raise LossjitError(
                f"{what}: refusing to overwrite input file {show(path, 200)}; choose another {what}"
            )


def _zarr_node(path: str) -> str | None:
    """What a directory holds: "array" or "group" (Zarr format 2 or 3), "" if it is empty,
    None if it holds something else."""
    import json

    for name, kind in ((".zarray", "array"), (".zgroup", "group")):
        if os.path.isfile(os.path.join(path, name)):
            return kind
    try:
        with open(os.path.join(path, "zarr.json"), "rb") as f:
            kind = json.load(f).get("node_type")
        return kind if kind in ("array", "group") else None
    except (OSError, ValueError, AttributeError):
        pass
    try:
        return "" if not os.listdir(path) else None
    except OSError:
        return None


def _zarr_destination(path: str, protect: Iterable[str], what: str) -> _Destination:
    """Every check of a Zarr destination (``x.zarr``, ``run.zarr:name``) that needs no array:
    an existing directory there must be a Zarr array (or group, or empty) to be replaced; an
    array named in a group goes into the group if it exists, and into a new one otherwise."""
    where = _where(what, path)
    store, name = zarr_parts(path) or (path, None)
    try:
        optional("zarr", f"writing {ZARR}")
    except LossjitError as exc:
        raise LossjitError(f"{where}: {exc}") from None
    real = os.path.realpath(store)
    directory = os.path.dirname(real)
    _writable_directory(store, directory, where)
    if os.path.lexists(real) and not os.path.isdir(real):
        raise LossjitError(f"{where}: {show(store, 200)} is a file, not a Zarr store; "
                           "choose another path")
    member, zarr_format, target = None, 3, real
    if name is not None:
        if name in ("", ".", "..") or "/" in name or name.startswith((".", "__")):
            raise LossjitError(f"{where}: {name!r} is not an array name; expected a name "
                               "such as grad (not starting with . or __, without /)")
        node = _zarr_node(real) if os.path.isdir(real) else ""
        if node == "group":
            target = os.path.join(real, name)
            zarr_format = 2 if os.path.isfile(os.path.join(real, ".zgroup")) else 3
        elif node == "":
            member = name  # a new group, holding this array (and the set's others)
        else:
            raise LossjitError(f"{where}: {show(store, 200)} is not a Zarr group; name a "
                               "group, or write the array on its own (g.zarr)")
    node = _zarr_node(target) if os.path.isdir(target) and member is None else ""
    if node == "group":
        raise LossjitError(f"{where}: {show(store, 200)} is a Zarr group; name an array in "
                           "it after a colon (run.zarr:grad), or another path")
    if node is None:
        raise LossjitError(f"{where}: {show(target, 200)} is a directory that holds no Zarr "
                           "array; choose another path")
    _refuse_inputs(path, target, protect, what)
    return _Destination(target, directory, ZARR, "", member, zarr_format)


def _destination(path: str, protect: Iterable[str], what: str) -> _Destination:
    """Every check of a destination that needs no array; the place to write."""
    if path == "":
        raise LossjitError(f"{what}: empty path; expected a file path or - for stdout")
    if zarr_parts(path) is not None:
        return _zarr_destination(path, protect, what)
    where = _where(what, path)
    ext, compression = split_name(path)
    if ext not in _WRITERS:
        if ext:
            got = f"extension {ext!r} is not a format lossjit writes"
        elif compression:
            got = f"no format extension before {compression}"
        else:
            got = "has no extension"
        raise LossjitError(f"{where}: {got}; {_formats_list()}")
    try:
        if ext in ARROW_FORMATS:
            optional("pyarrow", f"writing {ext}")
        if compression == ".zst":
            optional("zstandard", "writing .zst (Zstandard)")
    except LossjitError as exc:
        raise LossjitError(f"{where}: {exc}") from None
    target = os.path.realpath(path)  # write through a symlink instead of replacing it
    _refuse_inputs(path, target, protect, what)
    directory = os.path.dirname(target)
    _writable_directory(path, directory, where)
    if os.path.isdir(target):
        raise LossjitError(f"{where}: is a directory; expected a file path")
    return _Destination(target, directory, ext, compression)


def check_destination(path: str, *, protect: Iterable[str] = (), what: str = "--grad-out") -> None:
    """Raise the error ``write_array(path, ...)`` would raise for ``path`` itself, or nothing.

    Checks the extension, the optional package its format needs, ``protect``, that the
    directory exists and is writable and that the path is not a directory, so every output can
    be checked before anything is computed. ``"-"`` (stdout) always passes.

    >>> check_destination("-")
    >>> check_destination("no/such/dir/g.npy", what="--hess-out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lossjit.errors.LossjitError: --hess-out: 'no/such/dir/g.npy': directory 'no/such/dir' ...
    """
    path = os.fspath(path)
    if path != "-":
        _destination(path, protect, what)


def _umask_mode(base: int = 0o666) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


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


#: Temporary files lossjit writes: ``.lossjit-<name>.<pid>.<random>.tmp`` beside the destination.
TEMP_PATTERN = re.compile(r"\.lossjit-.+\.(\d+)\.[A-Za-z0-9_]+\.tmp")

#: A temporary file older than this whose process is gone is stale (seconds).
STALE_AGE = 3600.0

#: Every temporary file this process has open, removed if the process is interrupted.
_LIVE: set[str] = set()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, but belongs to someone else
        return True
    return True


def remove_stale(directory: str, *, now: float | None = None) -> list[str]:
    """Remove the temporary files (and Zarr directories) a killed lossjit process left in
    ``directory``: names that match ``TEMP_PATTERN``, older than ``STALE_AGE``, whose process
    is gone. Nothing else is touched. Returns the names removed.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> open(os.path.join(d, ".lossjit-g.npy.999999999.x1.tmp"), "w").close()
    >>> open(os.path.join(d, ".g.npy.tmp"), "w").close()  # not lossjit's: kept
    >>> remove_stale(d, now=time.time() + 2 * STALE_AGE)
    ['.lossjit-g.npy.999999999.x1.tmp']
    >>> sorted(os.listdir(d))
    ['.g.npy.tmp']
    """
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = TEMP_PATTERN.fullmatch(entry.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            kind = stat.S_IFMT(info.st_mode)
            if kind not in (stat.S_IFREG, stat.S_IFDIR) or now - info.st_mtime < STALE_AGE:
                continue
            if _process_alive(int(match.group(1))):
                continue
            if kind == stat.S_IFDIR:
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            continue
    return removed


@dataclass
class _Pending:
    """A temporary file, complete and on disk, waiting to be renamed over its destination."""

    tmp: str
    dest: _Destination
    where: str
    mapped: Any = None  # a memory-mapped array still being written, flushed at commit


def _new_temporary(dest: _Destination, where: str) -> tuple[int, str, int]:
    """A new temporary file beside the destination (known to :func:`remove_temporaries`):
    its descriptor, its path and the mode the finished file gets. For a Zarr destination, a
    new temporary directory (the descriptor is -1)."""
    directory = dest.ext == ZARR
    try:
        mode = stat.S_IMODE(os.stat(dest.target).st_mode)
    except OSError:
        mode = _umask_mode(0o777 if directory else 0o666)
    remove_stale(dest.directory)
    name = dict(dir=dest.directory, suffix=".tmp",
                prefix=f".lossjit-{os.path.basename(dest.target)}.{os.getpid()}.")
    try:
        fd, tmp = (-1, tempfile.mkdtemp(**name)) if directory else tempfile.mkstemp(**name)
    except OSError as exc:
        raise LossjitError(f"{where}: cannot write: {one_line(exc)}") from None
    _LIVE.add(tmp)
    return fd, tmp, mode


def _write_temporary(dest: _Destination, write: Callable[[BinaryIO], None],
                     where: str) -> _Pending:
    """Write the whole file beside its destination, flush it to disk, give it its mode."""
    fd, tmp, mode = _new_temporary(dest, where)
    try:
        with open(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
    except BaseException as exc:
        _abandon(tmp, exc, where)
    return _Pending(tmp, dest, where)


def _abandon(tmp: str, exc: BaseException, where: str) -> NoReturn:
    """Remove a temporary that could not be written, and say why (an OSError as a user's
    error; anything else, an interruption included, as it is)."""
    _discard(tmp)
    if isinstance(exc, OSError):
        raise LossjitError(f"{where}: cannot write: {one_line(exc)}") from None
    raise exc


def _discard(tmp: str) -> None:
    _LIVE.discard(tmp)
    if os.path.isdir(tmp) and not os.path.islink(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def remove_temporaries() -> None:
    """Remove every temporary file this process is writing (for an interrupted run)."""
    for tmp in list(_LIVE):
        _discard(tmp)


class OutputSet:
    """Files written all together or not at all: :meth:`add` writes each to a temporary file
    beside its destination; :meth:`commit` renames them all into place once all are complete;
    leaving the ``with`` block by an exception (or an interruption) removes them instead.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with OutputSet() as outputs:
    ...     outputs.add(os.path.join(d, "g.npy"), np.zeros(2))
    ...     outputs.add(os.path.join(d, "h.csv"), np.ones(2), what="--hess-out")
    ...     outputs.commit()
    >>> sorted(os.listdir(d))
    ['g.npy', 'h.csv']
    """

    def __init__(self) -> None:
        self._pending: list[_Pending] = []

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, *exc: object) -> None:
        for pending in self._pending:
            _discard(pending.tmp)
        self._pending.clear()

    def add(self, path: str, array: Any, *, columns: Sequence[str] | None = None,
            key: str = "grad", protect: Iterable[str] = (), what: str = "--grad-out") -> None:
        """Write ``array`` as ``write_array`` would, to a temporary file for now."""
        array = np.asarray(array)
        dest = _destination(os.fspath(path), protect, what)
        where = _where(what, path)
        _check_array(array, dest.ext, where)
        if dest.ext == ZARR:
            stored = self._zarr(dest, where, array.shape, array.dtype, None)
            with deferred():  # zarr's I/O thread finishes the chunks it has begun
                stored[...] = array
            return
        self._pending.append(_write_temporary(dest, _file_writer(dest, array, columns, key),
                                              where))

    def mapped(self, path: str, shape: tuple[int, ...], dtype: Any, *, rows: int | None = None,
               protect: Iterable[str] = (), what: str = "--grad-out") -> Any:
        """An output of ``shape`` and ``dtype`` to write piece by piece along axis 0 (a
        streamed output), beside ``path`` for now: a memory-mapped ``.npy`` temporary file, or
        a Zarr array in a temporary directory with ``rows`` indices of axis 0 a chunk (the
        pieces' size, so that each piece writes whole chunks). :meth:`commit` flushes it and
        renames it into place."""
        dest = _destination(os.fspath(path), protect, what)
        where = _where(what, path)
        if dest.ext == ZARR:
            return self._zarr(dest, where, shape, dtype, rows)
        if dest.ext != ".npy" or dest.compression:
            raise LossjitError(f"{where}: an output written piece by piece (--stream, "
                               f"--dask) is a .npy file or a {ZARR} store; name one, or run "
                               "in memory")
        fd, tmp, mode = _new_temporary(dest, where)
        os.close(fd)
        try:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            os.chmod(tmp, mode)
        except BaseException as exc:
            _abandon(tmp, exc, where)
        self._pending.append(_Pending(tmp, dest, where, array))
        return array

    def _zarr(self, dest: _Destination, where: str, shape: tuple[int, ...], dtype: Any,
              rows: int | None) -> Any:
        """A new Zarr array in a temporary directory (a new group's arrays share one)."""
        zarr = optional("zarr", f"writing {ZARR}")
        shared = [p for p in self._pending if dest.member and p.dest.target == dest.target]
        if shared:
            tmp = shared[0].tmp
        else:
            _, tmp, mode = _new_temporary(dest, where)
        try:
            if dest.member and not shared:
                zarr.open_group(tmp, mode="w", zarr_format=dest.zarr_format)
            store = tmp if dest.member is None else os.path.join(tmp, dest.member)
            array = zarr.create_array(store=store, shape=shape, dtype=dtype,
                                      chunks=_zarr_chunks(shape, np.dtype(dtype), rows),
                                      zarr_format=dest.zarr_format)
            if not shared:
                os.chmod(tmp, mode)
        except BaseException as exc:
            if isinstance(exc, (ValueError, TypeError)):
                exc = OSError(str(exc))
            _abandon(tmp, exc, where)
        if not shared:
            self._pending.append(_Pending(tmp, dest, where))
        return array

    def commit(self) -> None:
        """Rename every file into place (each rename is atomic), then make them durable; an
        interrupted run (:func:`lossjit.errors.check_interrupted`) renames nothing."""
        check_interrupted()
        for pending in self._pending:
            if pending.mapped is None and pending.dest.ext != ZARR:
                continue  # written whole and synced already
            try:
                if pending.mapped is not None:
                    pending.mapped.flush()
                    pending.mapped = None
                _fsync_tree(pending.tmp)
            except OSError as exc:
                raise LossjitError(f"{pending.where}: cannot write: {one_line(exc)}") from None
        for pending in self._pending:
            try:
                _put_in_place(pending.tmp, pending.dest.target)
            except OSError as exc:
                raise LossjitError(f"{pending.where}: cannot write: {one_line(exc)}") from None
            _LIVE.discard(pending.tmp)
        for directory in {os.path.dirname(p.dest.target) for p in self._pending}:
            _fsync_directory(directory)
        self._pending.clear()


def _zarr_chunks(shape: tuple[int, ...], dtype: np.dtype, rows: int | None) -> tuple[int, ...]:
    """Chunks of ``rows`` indices of axis 0 (by default about 16 MiB), whole along the
    others."""
    if not shape:
        return ()
    if rows is None:
        rows = (16 * 2**20) // max(1, dtype.itemsize * math.prod(shape[1:]))
    return (max(1, min(shape[0], rows)), *(max(1, n) for n in shape[1:]))


def _fsync_tree(path: str) -> None:
    """Flush a temporary file to disk, or every file and directory of a temporary Zarr
    store."""
    if not os.path.isdir(path):
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
        return
    for top, _, names in os.walk(path):
        for name in names:
            with open(os.path.join(top, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_directory(top)


def _exchange(a: str, b: str) -> bool:
    """Swap two paths in one step (Linux's renameat2 with RENAME_EXCHANGE); False where the
    system cannot."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    at_cwd, exchange = -100, 2
    return renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), exchange) == 0


def _put_in_place(tmp: str, target: str) -> None:
    """Rename a finished temporary over its destination: a file in one atomic rename; a
    directory swapped with the one there in one step where the system can (otherwise the old
    one is moved aside first), the old one then removed."""
    if not os.path.isdir(tmp) or not os.path.lexists(target):
        os.replace(tmp, target)
        return
    if not _exchange(tmp, target):
        aside = tmp[:-len(".tmp")] + "old.tmp"  # still a temporary's name (TEMP_PATTERN)
        os.rename(target, aside)
        os.rename(tmp, target)
        tmp = aside
    shutil.rmtree(tmp, ignore_errors=True)


def _file_writer(dest: _Destination, array: np.ndarray, columns: Sequence[str] | None,
                 key: str) -> Callable[[BinaryIO], None]:
    writer = _WRITERS[dest.ext]

    def write(f: BinaryIO) -> None:
        if not dest.compression:
            writer(f, array, columns, key)
            return
        buffer = io.BytesIO()
        writer(buffer, array, columns, key)
        f.write(compress(buffer.getvalue(), dest.compression))

    return write


# --------------------------------------------------------------------------------------------
# the entry points


def write_array(
    path: str,
    array: Any,
    *,
    columns: Sequence[str] | None = None,
    key: str = "grad",
    protect: Iterable[str] = (),
    what: str = "--grad-out",
    stdout: BinaryIO | None = None,
    stream_format: str = "csv",
) -> None:
    """Write ``array`` atomically to ``path`` in the format its extension names.

    See the module's description for the formats. ``columns`` names a text or Arrow output's
    columns (a text header is written only when it names every column); ``key`` is the
    ``.npz`` member's name and a 1-D Arrow output's column name. Paths in ``protect`` (the
    inputs) are never overwritten. ``what`` names the option in error messages.

    ``"-"`` writes to ``stdout`` (default ``sys.stdout.buffer``) in ``stream_format``, one of
    ``STREAM_FORMATS``, and flushes it; a closed pipe raises BrokenPipeError.

    >>> import io, os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "g.tsv")
    >>> write_array(p, np.array([[1, 2], [3, 4]], dtype=np.int32))
    >>> open(p).read()
    '1\\t2\\n3\\t4\\n'
    >>> write_array(p, np.zeros(2), protect=[p])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lossjit.errors.LossjitError: --grad-out: refusing to overwrite input file ...; choose ...
    >>> out = io.BytesIO()
    >>> write_array("-", np.array([0.5, 2.0]), columns=["loss"], stdout=out)
    >>> out.getvalue()
    b'loss\\n0.5\\n2.0\\n'
    """
    array = np.asarray(array)
    path = os.fspath(path)
    if path == "-":
        if stream_format not in STREAM_FORMATS:
            raise LossjitError(
                f"{what}: stdout: unknown stream format {stream_format!r}; "
                f"expected one of {', '.join(STREAM_FORMATS)}"
            )
        ext = f".{stream_format}"
        _check_array(array, ext, _where(what, path))
        out = stdout
        if out is None:
            if sys.stdout is None:
                raise LossjitError(f"{what}: no stdout to write to; give a file path instead of -")
            out = getattr(sys.stdout, "buffer", sys.stdout)
        _WRITERS[ext](out, array, columns, key)
        out.flush()
        return

    with OutputSet() as outputs:
        outputs.add(path, array, columns=columns, key=key, protect=protect, what=what)
        outputs.commit()


def default_grad_path(predictions_path: str, suffix: str = "grad") -> str:
    """Where an output goes by default: ``<stem>.<suffix><ext>`` in the current directory.

    The input's format and compression extensions are kept when lossjit writes them;
    otherwise (an unknown or no extension) ``.<suffix>.npy`` is appended to the file name.
    Stdin gives ``stdin.<suffix>.npy``.

    >>> default_grad_path("data/logits.npy"), default_grad_path("t.parquet")
    ('logits.grad.npy', 't.grad.parquet')
    >>> default_grad_path("-"), default_grad_path("preds.dat", suffix="loss")
    ('stdin.grad.npy', 'preds.dat.loss.npy')
    >>> default_grad_path("run/x.zarr/")
    'x.grad.zarr'
    """
    predictions_path = os.fspath(predictions_path)
    if predictions_path == "-":
        return f"stdin.{suffix}.npy"
    name = os.path.basename(os.path.normpath(predictions_path)) if predictions_path else ""
    if name in ("", ".", "..", os.sep):
        name = "predictions"
    ext, compression = split_name(name)
    if ext not in WRITE_FORMATS:
        return f"{name}.{suffix}.npy"
    cut = len(name) - len(ext) - len(compression)  # keep the extensions' spelling
    return f"{name[:cut]}.{suffix}{name[cut:]}"
