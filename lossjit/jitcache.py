"""The on-disk cache of lossjit's compiled kernels: the Numba side of :mod:`lossjit.cache`.

Each cached kernel (``specialise(..., cache=True)``) gets a :class:`KernelCache` as its
dispatcher's cache object, in place of Numba's own: it answers for lossjit's kernels only, so
a user's own cached Numba functions keep Numba's behaviour. What it promises:

- **Its own place, never the package.** Entries go to :func:`lossjit.cache.resolve_cache_dir`
  (``NUMBA_CACHE_DIR``, else the per-user, per-version directory; a private temporary one,
  or no cache, with one warning, when that cannot be written), never to Numba's other
  locations such as the package's ``__pycache__``. The layout is Numba's: a sub-directory
  ``<dir name>_<sha1 of the source directory>`` holding ``<module>.<qualname>-<line>.pyXY.nbi``
  (the index: signature -> data file) and ``....<n>.nbc`` (one compiled specialisation).
- **Sealed entries.** Every file is ``MAGIC``, the payload's length and its SHA-256, then the
  payload; nothing is unpickled, let alone run, before the length and digest match. A
  truncated, empty or corrupt file is dropped and the kernel compiled again, with one
  :class:`lossjit.cache.CacheWarning` per process. A data file also names the signature and
  source it was compiled from, and is used only for those.
- **Whole files only.** A file is written under a temporary name and renamed into place, so
  a concurrent process sees the old file or the new one; the data file is written before the
  index that points to it. Two processes adding entries at the same moment may lose one
  index entry: that kernel is then compiled again later, never served wrong.
- **No cost to a warm call.** The cache is read when a signature is first compiled in a
  process (once per kernel and signature), never on a call of a compiled kernel.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import io
import os
import pickle
import struct
import sys
import uuid
from typing import Any

import numba
from numba.core import compiler
from numba.core.caching import _Cache
from numba.core.serialize import dumps

from lossjit.cache import resolve_cache_dir, warn

#: The first bytes of every file lossjit's cache writes (the digit: the format's version).
MAGIC = b"lossjit-kernel-cache 1\n"
_HEADER = struct.Struct("<Q32s")  # the payload's length, its SHA-256
#: What an index must have been written by to be read: this Numba and this file format.
_VERSION = (numba.__version__, MAGIC)


class DamagedEntry(Exception):
    """A cache file that cannot be what lossjit wrote: truncated, empty or corrupt."""

    def __init__(self, path: str, why: str, seen: os.stat_result | None = None):
        super().__init__(f"{path}: {why}")
        self.path, self.why, self.seen = path, why, seen


# --- sealed files ---------------------------------------------------------------------------


def seal(payload: bytes) -> bytes:
    """``payload`` behind a header of its length and SHA-256."""
    return MAGIC + _HEADER.pack(len(payload), hashlib.sha256(payload).digest()) + payload


def unseal(blob: bytes, path: str = "") -> bytes:
    """The payload of a sealed ``blob``; :class:`DamagedEntry` unless it is whole and intact.

    >>> unseal(seal(b"kernel"))
    b'kernel'
    >>> unseal(seal(b"kernel")[:-1], "k.nbc")
    Traceback (most recent call last):
    ...
    lossjit.jitcache.DamagedEntry: k.nbc: truncated (5 of 6 bytes)
    """
    start = len(MAGIC) + _HEADER.size
    if not blob:
        raise DamagedEntry(path, "empty file")
    if not blob.startswith(MAGIC) or len(blob) < start:
        raise DamagedEntry(path, "not a whole lossjit cache file")
    length, digest = _HEADER.unpack_from(blob, len(MAGIC))
    payload = blob[start:]
    if len(payload) != length:
        raise DamagedEntry(path, f"truncated ({len(payload)} of {length} bytes)"
                           if len(payload) < length else "longer than written")
    if hashlib.sha256(payload).digest() != digest:
        raise DamagedEntry(path, "checksum mismatch")
    return payload


def _read(path: str) -> tuple[bytes, os.stat_result] | None:
    """A file's bytes and what it was when read; None when there is no such file."""
    try:
        with open(path, "rb") as f:
            return f.read(), os.fstat(f.fileno())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:  # a directory, unreadable: not what lossjit wrote
        raise DamagedEntry(path, exc.strerror or type(exc).__name__) from None


def _read_sealed(path: str) -> tuple[bytes, os.stat_result] | None:
    """The payload of the sealed file ``path`` and what the file was when read; None when
    there is no such file; :class:`DamagedEntry` when it is damaged."""
    found = _read(path)
    if found is None:
        return None
    blob, seen = found
    try:
        return unseal(blob, path), seen
    except DamagedEntry as damaged:
        damaged.seen = seen
        raise


def _write(path: str, blob: bytes) -> None:
    """Write ``blob`` to ``path`` whole: to a temporary name, then renamed into place."""
    temporary = f"{path}.tmp.{uuid.uuid4().hex[:16]}"
    try:
        with open(temporary, "wb") as f:
            f.write(blob)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _drop(damaged: DamagedEntry) -> None:
    """Remove a damaged file, unless another process has replaced it since it was read."""
    seen = damaged.seen
    if seen is None:  # not a file that was read: left for the next save to replace
        return
    with contextlib.suppress(OSError):
        now = os.stat(damaged.path)
        if (now.st_ino, now.st_size, now.st_mtime_ns) == (
                seen.st_ino, seen.st_size, seen.st_mtime_ns):
            os.unlink(damaged.path)


def _unpickle(payload: bytes, path: str, seen: os.stat_result) -> Any:
    try:
        return pickle.loads(payload)
    except Exception as exc:  # intact but unreadable: written by something else
        raise DamagedEntry(path, f"unreadable ({type(exc).__name__})", seen) from None


# --- one kernel's files in one directory ----------------------------------------------------


class _Files:
    """The index and data files of one kernel in one cache directory."""

    def __init__(self, directory: str, base: str, stamp: bytes):
        self.directory, self.base, self.stamp = directory, base, stamp
        self.index = os.path.join(directory, base + ".nbi")

    def _data(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def load_index(self) -> dict[Any, str]:
        """signature key -> data file name; empty when missing or stale (another Numba,
        another source); :class:`DamagedEntry` when damaged."""
        found = _read_sealed(self.index)
        if found is None:
            return {}
        payload, seen = found
        stream = io.BytesIO(payload)
        try:
            if pickle.load(stream) != _VERSION:
                return {}
            stamp, overloads = pickle.loads(stream.read())
        except Exception as exc:
            raise DamagedEntry(self.index, f"unreadable ({type(exc).__name__})", seen) from None
        return overloads if stamp == self.stamp else {}

    def load(self, key: Any) -> tuple[Any, str] | None:
        """The reduced compile result stored for ``key`` and its file, or None."""
        name = self.load_index().get(key)
        path = None if name is None else self._data(name)
        found = None if path is None else _read_sealed(path)
        if path is None or found is None:  # not cached, or removed since the index was written
            return None
        payload, seen = found
        stamp, stored_key, reduced = _unpickle(payload, path, seen)
        if stamp != self.stamp or stored_key != key:  # overwritten by another entry
            return None
        return reduced, path

    def _index_or_empty(self) -> dict[Any, str]:
        try:
            return self.load_index()
        except DamagedEntry:  # replaced by the index written next
            return {}

    def save(self, key: Any, reduced: Any) -> None:
        """Store ``reduced`` for ``key``: the data file, then the index entry."""
        os.makedirs(self.directory, exist_ok=True)
        name = self._index_or_empty().get(key) or f"{self.base}.{_slot(key)}.nbc"
        _write(self._data(name), seal(dumps((self.stamp, key, reduced))))
        overloads = self._index_or_empty()  # again: other processes may have added entries
        if overloads.get(key) != name:
            overloads[key] = name
            self.save_index(overloads)

    def save_index(self, overloads: dict[Any, str]) -> None:
        payload = pickle.dumps(_VERSION, protocol=-1) + dumps((self.stamp, overloads))
        _write(self.index, seal(payload))


def _slot(key: Any) -> int:
    """The number of a new data file: from the key, so that processes adding different
    signatures at once do not pick the same file."""
    return 1 + int(hashlib.sha256(repr(key).encode()).hexdigest()[:7], 16)


# --- the cache object -----------------------------------------------------------------------

_warned: set[str] = set()


def _warn_once(kind: str, message: str) -> None:
    if kind not in _warned:
        _warned.add(kind)
        warn(message)


@functools.cache
def _source_stamp(path: str, mtime_ns: int, size: int) -> bytes:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).digest()


def _filename_base(py_func: Any, source: str) -> str:
    """Numba's: ``<module>.<qualname>-<first line>.py<major><minor><abiflags>``."""
    module = os.path.splitext(os.path.basename(source))[0]
    qualname = py_func.__qualname__.replace("<", "").replace(">", "")
    return (f"{module}.{qualname}-{py_func.__code__.co_firstlineno}"
            f".py{sys.version_info[0]}{sys.version_info[1]}{getattr(sys, 'abiflags', '')}")


def _subdir(source: str) -> str:
    """Numba's sub-directory of a source directory: its name and the SHA-1 of its path."""
    where = os.path.dirname(os.path.abspath(source))
    return f"{os.path.basename(where)}_{hashlib.sha1(where.encode()).hexdigest()}"


class KernelCache(_Cache):
    """The cache object of one lossjit kernel (a Numba dispatcher's ``_cache``).

    Nothing is touched on disk before the kernel's first compilation.
    """

    def __init__(self, py_func: Any):
        self._py_func = py_func
        self._source = inspect.getfile(py_func)
        self._base = _filename_base(py_func, self._source)
        self._files: dict[str, _Files] = {}
        self._enabled = True

    def __repr__(self) -> str:
        return f"<KernelCache {self._base}>"

    @property
    def cache_path(self) -> str | None:
        files = self._where()
        return None if files is None else files.directory

    def enable(self) -> None:
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def flush(self) -> None:
        files = self._where()
        if files is not None:
            with contextlib.suppress(OSError):
                files.save_index({})

    def _where(self) -> _Files | None:
        """This kernel's files in the cache directory in use; None: no cache."""
        directory = resolve_cache_dir()
        if directory is None:
            return None
        if directory not in self._files:
            try:
                info = os.stat(self._source)
            except OSError:  # no source file to vouch for an entry: no cache
                return None
            stamp = _source_stamp(self._source, info.st_mtime_ns, info.st_size)
            self._files[directory] = _Files(
                os.path.join(directory, _subdir(self._source)), self._base, stamp)
        return self._files[directory]

    def _index_key(self, sig: Any, codegen: Any) -> tuple[Any, ...]:
        """Numba's: the signature, the target machine, and hashes of the bytecode and of
        the closure's values."""
        closure = self._py_func.__closure__
        cells = dumps(tuple(c.cell_contents for c in closure)) if closure else b""
        code = self._py_func.__code__.co_code
        return (sig, codegen.magic_tuple(),
                (hashlib.sha256(code).hexdigest(), hashlib.sha256(cells).hexdigest()))

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        """The compile result cached for ``sig``, or None (compile it); a damaged entry is
        dropped, with one warning per process."""
        files = self._where() if self._enabled else None
        if files is None:
            return None
        _runtime_ready(target_context)
        key = self._index_key(sig, target_context.codegen())
        try:
            found = files.load(key)
            if found is None:
                return None
            reduced, path = found
            try:
                return compiler.CompileResult._rebuild(target_context, *reduced)
            except Exception as exc:  # intact, yet not loadable here: replaced when saved
                raise DamagedEntry(path, f"cannot be loaded ({type(exc).__name__})") from exc
        except DamagedEntry as damaged:
            _drop(damaged)
            _warn_once("damaged", "dropped a damaged cache file and compiled its kernel "
                                  f"again: {damaged.path} ({damaged.why})")
            return None

    def save_overload(self, sig: Any, cres: Any) -> None:
        """Cache ``cres`` for ``sig``; a directory that cannot be written is said once."""
        files = self._where() if self._enabled else None
        if files is None or not _cachable(cres):
            return
        try:
            files.save(self._index_key(sig, cres.codegen), cres._reduce())
        except OSError as exc:
            _warn_once("unsaved", f"cannot save compiled kernels to {files.directory} "
                                  f"({exc.strerror or exc}); they will be compiled again by "
                                  "the next process")


def _runtime_ready(target_context: Any) -> None:
    """Make ready what a kernel loaded from the cache needs of Numba's CPU target: its runtime
    (NRT: allocation, reference counts), which the loaded machine code calls.

    Numba's own cache calls ``target_context.refresh()`` here, which loads every lowering
    registry Numba has (NumPy, linear algebra, which imports SciPy's BLAS when SciPy is
    installed, random generators, typed containers, ...): about half a second, and needed only
    to compile. Compiling refreshes the context itself (every Numba pipeline does), so a
    kernel compiled later in the process finds everything as before; a parallel kernel's
    threading layer is started by the loaded entry's own ``reload_init``.
    """
    from numba.core.runtime import rtsys

    rtsys.initialize(target_context)


def _cachable(cres: Any) -> bool:
    """Numba's rule: no lifted loops that cannot be cached, no dynamic globals."""
    return (all(lifted.can_cache for lifted in cres.lifted)
            and not cres.library.has_dynamic_globals)


def attach(dispatcher: Any) -> Any:
    """Give ``dispatcher`` (compiled without Numba's cache) a :class:`KernelCache`."""
    dispatcher._cache = KernelCache(dispatcher.py_func)
    return dispatcher
