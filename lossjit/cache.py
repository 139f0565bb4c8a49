"""The compiled-kernel cache: where it is, clearing it, and warming it ahead of use.

The logic behind ``lossjit cache path|clear|warm``, and the promises the cache keeps:

- **Where.** Compiled kernels live in ``NUMBA_CACHE_DIR`` when it is set, else in a
  per-user, per-version directory (:func:`default_cache_dir`), for the library as for the CLI.
  lossjit never writes into its own installed package.
- **An unusable directory** (not writable, not creatable) does not stop lossjit: it warns once
  (a :class:`CacheWarning`) and caches in a private per-user temporary directory instead
  (:func:`fallback_cache_dir`), or, when that is unusable too, compiles without a cache.
  :func:`cache_dir` names the directory actually used.
- **A damaged entry** (truncated, empty or corrupt: every file carries a SHA-256 of its
  contents, checked when it is loaded, once per kernel and process) is never loaded: it is
  dropped and the kernel compiled again, with one warning. Files are written whole, to a
  temporary name and then renamed, so concurrent processes never read a half-written entry.
  The check guards against damage, not against someone who can write the cache directory.
- :func:`clear` removes lossjit's compiled-kernel files and nothing else: a user's
  ``NUMBA_CACHE_DIR`` may hold other projects' caches.
- :func:`warm` compiles (or loads) every loss's kernels, for float32 and float64, serial and
  parallel, through the same code path as the API, so that a later call compiles nothing.

The Numba side (the cache object of each kernel) is :mod:`lossjit.jitcache`. Importing this
module does not import Numba; :func:`warm` does.
"""

from __future__ import annotations

import json
import os
import queue
import re
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lossjit.blocking import PARALLEL_MIN


class CacheWarning(UserWarning):
    """The compiled-kernel cache could not be used as asked (a directory that cannot be
    written, a damaged entry); lossjit carried on, with a correct result."""


# --- where ----------------------------------------------------------------------------------


def default_cache_dir() -> str:
    """The per-user, per-version cache directory (used unless ``NUMBA_CACHE_DIR`` is set)."""
    from platformdirs import user_cache_dir

    from lossjit._version import __version__

    return os.path.join(user_cache_dir("lossjit"), __version__)


def preferred_cache_dir() -> str:
    """The directory asked for: ``NUMBA_CACHE_DIR`` if it is set (and not empty, as Numba
    reads it), else :func:`default_cache_dir`. Read afresh at each call."""
    return os.environ.get("NUMBA_CACHE_DIR") or default_cache_dir()


def _user() -> str:
    getuid = getattr(os, "getuid", None)
    if getuid is not None:
        return str(getuid())
    import getpass

    return getpass.getuser()


def fallback_cache_dir() -> str:
    """Where kernels are cached when :func:`preferred_cache_dir` cannot be used: a private
    (mode 0700) directory of this user's under the temporary directory, per version."""
    from lossjit._version import __version__

    return os.path.join(tempfile.gettempdir(), f"lossjit-{_user()}", __version__)


def cache_dir() -> str:
    """The directory lossjit keeps compiled kernels in (what ``lossjit cache path`` prints).

    :func:`preferred_cache_dir` when it can be used, else :func:`fallback_cache_dir`; when
    neither can (nothing is cached then), the preferred one. Once this process has used the
    cache, the directory it used; before that, what it would use, judged without creating
    anything.
    """
    preferred = preferred_cache_dir()
    if preferred in _resolved:
        return _resolved[preferred] or preferred
    if _looks_usable(preferred):
        return preferred
    fallback = fallback_cache_dir()
    return fallback if _looks_usable(fallback) else preferred


def use_cache_dir() -> str:
    """Set ``NUMBA_CACHE_DIR`` to :func:`preferred_cache_dir`, for Numba and for child
    processes, and return it. lossjit's kernels find their directory without it; the CLI
    calls it so that a user's own cached Numba functions go to the same place. The library
    itself never changes the environment."""
    path = preferred_cache_dir()
    os.environ["NUMBA_CACHE_DIR"] = path
    return path


def _looks_usable(path: str) -> bool:
    """Whether ``path`` is, or could be made, a writable directory (nothing is created)."""
    probe = os.path.abspath(path)
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return False
        probe = parent
    return os.path.isdir(probe) and os.access(probe, os.W_OK | os.X_OK)


#: The directory each preferred directory resolved to in this process (None: no cache).
_resolved: dict[str, str | None] = {}
_resolving = threading.Lock()


def resolve_cache_dir() -> str | None:
    """The directory to cache kernels in, made ready (created, proven writable), or None for
    no cache. Decided once per process for each preferred directory; the first time it
    cannot be used, one :class:`CacheWarning` says so and what is used instead."""
    preferred = preferred_cache_dir()
    with _resolving:
        if preferred not in _resolved:
            _resolved[preferred] = _resolve(preferred)
        return _resolved[preferred]


def _resolve(preferred: str) -> str | None:
    try:
        _make_writable(preferred)
        return preferred
    except OSError as exc:
        why = _why(exc)
    fallback = fallback_cache_dir()
    try:
        _make_private(fallback)
    except OSError as exc:
        warn(f"cannot write compiled kernels to {preferred} ({why}) nor to {fallback} "
              f"({_why(exc)}); kernels will not be cached")
        return None
    warn(f"cannot write compiled kernels to {preferred} ({why}); caching them in "
          f"{fallback} instead")
    return fallback


def _make_writable(path: str) -> None:
    """Create ``path`` if need be and prove it writable (OSError if not)."""
    os.makedirs(path, exist_ok=True)
    tempfile.TemporaryFile(dir=path).close()


def _make_private(path: str) -> None:
    """:func:`_make_writable` for the fallback, whose parent (``lossjit-<user>`` in the shared
    temporary directory) must be a real directory of this user's that nobody else can write
    to: cached kernels are code this process runs."""
    top = os.path.dirname(path)
    os.makedirs(top, mode=0o700, exist_ok=True)
    if os.name != "nt":
        info = os.lstat(top)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise PermissionError(f"{top} is not a directory of this user's")
        if info.st_mode & 0o077:
            os.chmod(top, 0o700)
    _make_writable(path)


def _why(exc: OSError) -> str:
    """A short reason, e.g. ``Permission denied``."""
    if isinstance(exc, FileExistsError):  # a file where a directory should be
        return "not a directory"
    if exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def warn(message: str) -> None:
    """Issue a :class:`CacheWarning`, attributed to the first caller outside lossjit and
    Numba (the line of the user's code that led to the compilation)."""
    warnings.warn(message, CacheWarning, stacklevel=_outside_stacklevel())


def _outside_stacklevel() -> int:
    """The ``stacklevel`` of the first frame (from :func:`warn`'s caller) outside lossjit's
    and Numba's packages."""
    packages = (sys.modules.get(name) for name in ("lossjit", "numba"))
    inside = tuple(os.path.dirname(p.__file__) + os.sep for p in packages
                   if getattr(p, "__file__", None))
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        frame, level = frame.f_back, level + 1
    return level


# --- clear ----------------------------------------------------------------------------------

#: The sub-directory Numba gives a source directory inside ``NUMBA_CACHE_DIR``: the directory's
#: name and the SHA-1 of its absolute path. lossjit's kernel templates live in lossjit/kernels
#: (``lossjit`` allows for a template at the package's top level).
_SUBDIR = re.compile(r"(?:kernels|lossjit)_[0-9a-f]{40}")

#: A Numba cache file of a lossjit kernel: ``<module>.<qualname>-<line>.py<ver><abiflags>``
#: then ``.nbi`` (the index) or ``.<n>.nbc`` (one compiled specialisation). The qualname is the
#: one :func:`lossjit._jit.specialise` gives: ``<name>_<serial|parallel>_<12 hex digits>``.
_FILE = re.compile(r"[A-Za-z_]\w*\.[a-z]\w*_(?:serial|parallel)_[0-9a-f]{12}"
                   r"-\d+\.py\d+[a-z]*(?:\.nbi|\.\d+\.nbc)")


def cache_files(path: str | os.PathLike[str] | None = None) -> list[Path]:
    """lossjit's compiled-kernel files under ``path`` (default :func:`cache_dir`), sorted.

    Looked for in the sub-directories Numba makes for lossjit's source directories, and in
    ``path`` itself (Numba's in-tree ``__pycache__`` layout); symbolic links are not followed.
    A missing directory has none.
    """
    root = Path(cache_dir() if path is None else path)
    found: list[Path] = []
    places = [root]
    try:
        with os.scandir(root) as entries:
            places += [Path(e.path) for e in entries
                       if _SUBDIR.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    for place in places:
        with os.scandir(place) as entries:
            found += [Path(e.path) for e in entries
                      if _FILE.fullmatch(e.name) and e.is_file(follow_symlinks=False)]
    return sorted(found)


def usage(path: str | os.PathLike[str] | None = None) -> tuple[int, int]:
    """How many lossjit kernel files ``path`` (default :func:`cache_dir`) holds, and their
    total size in bytes."""
    files = cache_files(path)
    size = 0
    for file in files:
        try:
            size += file.stat().st_size
        except FileNotFoundError:  # removed meanwhile by another process
            pass
    return len(files), size


def clear(path: str | os.PathLike[str] | None = None) -> tuple[int, int]:
    """Remove lossjit's compiled-kernel files from ``path`` (default :func:`cache_dir`).

    Returns (files removed, bytes freed). Only files named as lossjit's kernels are removed
    (see :func:`cache_files`); other projects' cache files and any other file stay, and so
    does the directory itself. A per-source sub-directory left empty is removed. A missing
    directory is fine: ``(0, 0)``. (A damaged entry needs no clearing: it is detected when
    loaded and replaced.)
    """
    removed = freed = 0
    parents: set[Path] = set()
    for file in cache_files(path):
        try:
            size = file.stat().st_size
            file.unlink()
        except FileNotFoundError:  # another process removed it first
            continue
        removed += 1
        freed += size
        parents.add(file.parent)
    root = Path(cache_dir() if path is None else path)
    for parent in parents:
        if parent != root:
            try:
                parent.rmdir()  # only if empty
            except OSError:
                pass
    return removed, freed


# --- warm -----------------------------------------------------------------------------------

#: Numbers in the small example inputs, and the width of their rows (classes, embedding size).
_SMALL = 12
_WIDTH = 4
#: Numbers asked of the large examples: examples hold about the size asked for, and these
#: must reach PARALLEL_MIN numbers, where the parallel kernels take over.
_LARGE = PARALLEL_MIN + 64 * _WIDTH


@dataclass(frozen=True)
class Warmed:
    """What :func:`warm` did for one loss.

    ``kernels``: the kernels it can dispatch to (serial and parallel names); ``compiled``
    and ``loaded``: specialisations compiled now and loaded from the cache (both 0 when they
    were already in this process); ``calls``: API calls made; ``errors``: variants that
    could not be built (a user's loss with a layout ``warm`` cannot guess).
    """

    name: str
    seconds: float
    kernels: tuple[str, ...]
    compiled: int
    loaded: int
    calls: int
    errors: tuple[str, ...] = ()


def option_sets(spec: Any) -> list[dict[str, Any]]:
    """The options ``warm`` calls a loss with, derived from its registry spec: the defaults;
    each boolean option flipped (``from_logits``, ``swap``: they can choose another kernel);
    and every array option given (``weight``, ``pos_weight``, ``alpha``: one value per class
    or per column, ``_WIDTH`` of them; one that broadcasts against the predictions, a single
    one). A required option is given in every set."""
    import numpy as np

    required = {p.name: 1.0 for p in spec.params if p.required}  # gaussian_nll's var
    arrays = {p.name: np.ones(1 if p.broadcasts else _WIDTH) for p in spec.params
              if p.kind in ("array", "float_or_array") and not p.required}
    sets: list[dict[str, Any]] = [dict(required)]
    sets += [{**required, p.name: not p.default} for p in spec.params if p.kind == "bool"]
    if arrays:
        sets.append({**required, **arrays})
    return sets


def _counts(dispatchers: Iterable[Any]) -> tuple[int, int]:
    compiled = loaded = 0
    for d in dispatchers:
        stats = getattr(d, "stats", None)
        if stats is not None:
            compiled += sum(stats.cache_misses.values())
            loaded += sum(stats.cache_hits.values())
    return compiled, loaded


def _variants(spec: Any, dtype: Any, size: int) -> list[tuple[str, Any, Any, dict[str, Any]]]:
    """(what, predictions, targets, options) for every example the loss's layout makes and
    every option set of :func:`option_sets`."""
    import numpy as np

    from lossjit.layouts import examples_for

    found = []
    for example in examples_for(spec.layout, size, dtype, width=_WIDTH):
        for options in option_sets(spec):
            chosen = {**options, **example.options}
            what = f"{example.label}, {np.dtype(dtype).name}" + "".join(
                f", {k}={'array' if isinstance(v, np.ndarray) else v}"
                for k, v in chosen.items())
            found.append((what, example.predictions, example.targets, chosen))
    return found


def _warm_one(name: str, dtypes: Sequence[Any], parallel: bool) -> Warmed:
    from lossjit import api, registry
    from lossjit.errors import LossjitError
    from lossjit.plan import make_plan

    started = time.perf_counter()
    spec = registry.resolve(name)
    sizes = [_SMALL] + ([_LARGE] if parallel else [])
    labels: dict[str, None] = {}
    dispatchers: dict[int, Any] = {}
    errors: list[str] = []
    calls = 0

    # First note which kernels the variants dispatch to (no compiling), to count their
    # compilations; then make the calls the API makes.
    todo = []
    for dtype in dtypes:
        for size in sizes:
            for what, x, y, options in _variants(spec, dtype, size):
                try:
                    plan = make_plan(spec.name, **options)
                    kernels = plan.kernel_set(plan.lay_out(x, y))
                except LossjitError as exc:
                    if size == _SMALL:
                        errors.append(f"{what}: {exc}")
                    continue
                labels.update(dict.fromkeys([kernels.name, kernels.name + "_parallel"]))
                for kernel in (kernels.serial, kernels.parallel):
                    dispatchers[id(kernel)] = kernel
                todo.append((x, y, options, kernels.hessian))
    before = _counts(dispatchers.values())
    for x, y, options, hessian in todo:
        for reduction in ("mean", "none"):
            api.value_and_grad(spec.name, x, y, reduction=reduction, **options)
            api.loss(spec.name, x, y, reduction=reduction, **options)
            calls += 2
        if hessian:
            api.grad_hess(spec.name, x, y, **options)
            calls += 1
    after = _counts(dispatchers.values())
    return Warmed(spec.name, time.perf_counter() - started, tuple(labels),
                  after[0] - before[0], after[1] - before[1], calls, tuple(errors))


def warm(names: Sequence[str] | None = None, dtypes: Sequence[Any] = ("float32", "float64"),
         parallel: bool = True, progress: Callable[[Warmed], None] | None = None,
         jobs: int = 1) -> list[Warmed]:
    """Compile (or load from the cache) the kernels of ``names`` (default: every registered
    loss) for ``dtypes``, ahead of use: for images, and before fanning out many processes.

    Each loss is called through the API as a user would call it, so exactly the
    specialisations the API uses are compiled: value and gradient, value only,
    ``reduction="none"`` and, where the loss has one, the Hessian (``grad_hess``), for every
    layout of targets it takes (class indices and probabilities) and every option that picks
    another kernel (``from_logits``), with and without its array options; with ``parallel``,
    also on an input of at least ``lossjit.blocking.PARALLEL_MIN`` numbers, which runs the parallel
    twin. ``progress`` is called with each loss's :class:`Warmed` when it is done. Kernels go
    to :func:`cache_dir`.

    Numba compiles on one core. With ``jobs`` > 1, the built-in losses are warmed in that many
    fresh worker processes (each loss's kernels are its own, so no two workers write the same
    cache entry); losses registered in this process are warmed here. The results are in the
    order of ``names`` whatever ``jobs`` is; ``progress`` sees them as they finish.
    """
    import numpy as np

    from lossjit import registry
    from lossjit.errors import LossjitError
    from lossjit.layouts import FLOATS

    chosen: list[Any] = []
    for dtype in dtypes:
        try:
            dt = np.dtype(dtype)
        except TypeError:
            dt = None
        if dt not in FLOATS:
            raise LossjitError(f"dtypes: {dtype!r} is not supported; expected float32 or "
                               "float64")
        if dt not in chosen:
            chosen.append(dt)
    if int(jobs) != jobs or jobs < 1:
        raise LossjitError(f"jobs: expected a whole number >= 1, got {jobs!r}")
    wanted = registry.names() if names is None else [registry.resolve(n).name for n in names]
    wanted = list(dict.fromkeys(wanted))
    done: dict[str, Warmed] = {}

    def finish(result: Warmed) -> None:
        done[result.name] = result
        if progress is not None:
            progress(result)

    builtin = {spec.name: spec for spec in registry.BUILTIN}
    # Only a built-in loss is known to a fresh process, with the same spec.
    elsewhere = [n for n in wanted if registry.resolve(n) is builtin.get(n)]
    if jobs > 1 and len(elsewhere) > 1:
        # Longest first: the losses with the most variants of input and options.
        elsewhere.sort(key=lambda n: -len(_variants(builtin[n], np.float64, _SMALL)))
        _warm_in_workers(elsewhere, [dt.name for dt in chosen], parallel,
                         min(int(jobs), len(elsewhere)), finish)
    for name in wanted:
        if name not in done:
            finish(_warm_one(name, chosen, parallel))
    return [done[name] for name in wanted]


_SERVE = "from lossjit.cache import _serve; _serve()"


def _serve() -> None:
    """A warm worker: ``argv`` = dtypes (comma-separated) and parallel (0/1); reads loss names
    from stdin, one a line, and answers each with one line of JSON (a :class:`Warmed`)."""
    dtypes, parallel = sys.argv[1].split(","), sys.argv[2] == "1"
    for line in sys.stdin:
        result = _warm_one(line.strip(), dtypes, parallel)
        print(json.dumps(asdict(result)), flush=True)


def _warm_in_workers(names: list[str], dtypes: list[str], parallel: bool, jobs: int,
                     finish: Callable[[Warmed], None]) -> None:
    """Warm ``names`` in ``jobs`` fresh Python processes, each taking the next loss when it is
    done with one; ``finish`` gets the results, in this thread, as they come."""
    import lossjit

    env = dict(os.environ)  # the same NUMBA_CACHE_DIR, and the same lossjit
    package_root = str(Path(lossjit.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    todo: queue.Queue[str] = queue.Queue()
    for name in names:
        todo.put(name)
    answers: queue.Queue[Warmed | BaseException] = queue.Queue()

    def work() -> None:
        with tempfile.TemporaryFile() as stderr:
            try:
                with subprocess.Popen(
                        [sys.executable, "-c", _SERVE, ",".join(dtypes), str(int(parallel))],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                        text=True, env=env) as proc:
                    assert proc.stdin is not None and proc.stdout is not None
                    while True:
                        try:
                            name = todo.get_nowait()
                        except queue.Empty:
                            break
                        proc.stdin.write(name + "\n")
                        proc.stdin.flush()
                        line = proc.stdout.readline()
                        if not line:
                            stderr.seek(0)
                            message = stderr.read().decode(errors="replace").strip()
                            raise RuntimeError(f"warming {name} in a worker process failed: "
                                               + (message.splitlines() or ["no output"])[-1])
                        fields = json.loads(line)
                        answers.put(Warmed(**{k: tuple(v) if isinstance(v, list) else v
                                              for k, v in fields.items()}))
                    proc.stdin.close()
            except BaseException as exc:  # handed to the caller's thread
                answers.put(exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(jobs)]
    for thread in threads:
        thread.start()
    failure: BaseException | None = None
    for _ in names:
        answer = answers.get()
        if isinstance(answer, BaseException):
            failure = answer
            while not todo.empty():  # the other workers stop after their current loss
                todo.get_nowait()
            break
        finish(answer)
    for thread in threads:
        thread.join()
    if failure is not None:
        raise failure
