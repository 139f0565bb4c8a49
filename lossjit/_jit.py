"""The one place that decides how lossjit compiles its kernels.

- **No fast-math flags.** Every kernel's arithmetic happens in source order. With
  reassociation allowed, LLVM picks a summation order that depends on how a loop was vectorised
  and inlined, and that changes with the calling context and with what was already in the cache.
  Sums are instead made fast by explicit lanes (:func:`lossjit.kernels._blocks.lane_sum`), so a
  loss is the same to the bit for any thread count, for the serial and parallel kernels, with or
  without a gradient, and whatever the cache holds.
- **Only entry kernels are cached.** Helpers (``jit``) compile into each kernel that calls
  them, where they are always inlined: a helper loaded from the cache as machine code could not
  be. Kernels (``specialise(..., cache=True)``) are cached on disk by lossjit's own cache
  object (:mod:`lossjit.jitcache`), in lossjit's cache directory, never in the package.
- **Templates.** ``specialise`` binds a kernel template to the helpers it calls and compiles
  it under its own name, serial or parallel: one template serves every loss of a family, and
  the serial twin of a parallel kernel is compiled from the very same source.

Nothing here compiles anything: compilation happens on a kernel's first call (or the kernel is
loaded from the cache).

**Threads** (:func:`start_threads`, before the first parallel kernel runs). With the OpenMP
threading layer, idle OpenMP threads spin for milliseconds after each parallel kernel by
default (libgomp: 300,000 spins); in a program that alternates lossjit with BLAS or PyTorch
calls those spinning threads take the cores the other library's threads need, and the other way
round. So when lossjit is the one to start Numba's threads, and no OpenMP runtime is loaded in
the process yet, it starts them with ``GOMP_SPINCOUNT=10000`` (idle threads spin for some tens
of microseconds, enough for back-to-back calls, then sleep), then removes the variable again.
It never does so when the user set ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or
``KMP_BLOCKTIME``, when Numba's threads were already started, or when an OpenMP runtime is
already loaded (PyTorch imported first, for example). ``LOSSJIT_OMP_WAIT`` chooses:
``short`` (the default, as above), ``passive`` (``OMP_WAIT_POLICY=PASSIVE``: idle threads
sleep at once, which costs a wake-up on every call) or ``keep`` (the runtime's defaults). The
runtime is shared process-wide: a library that later loads the same ``libgomp.so.1``
(PyTorch's CPU build does) gets the same setting.
"""

from __future__ import annotations

import hashlib
import os
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from numba import njit

from lossjit import jitcache


def _compile(fn: Callable[..., Any], *, parallel: bool = False, cache: bool = False,
             inline: bool = False) -> Any:
    """Wrap ``fn`` in a Numba dispatcher with lossjit's options; with ``cache``, cached by
    lossjit's own cache object (Numba's ``cache=True`` would pick its own locations)."""
    options = dict(error_model="numpy", fastmath=False, parallel=parallel,
                   inline="always" if inline else "never")
    dispatcher = njit(cache=False, **options)(fn)
    return jitcache.attach(dispatcher) if cache else dispatcher


def jit(fn: Callable[..., Any] | None = None, *, inline: bool = False) -> Any:
    """Compile a helper: serial, in source order, compiled into the kernels that call it.

    ``inline=True`` inlines it at every call site before LLVM sees the code: for the small
    math helpers inside vectorised loops, which LLVM would otherwise call and not vectorise
    once the caller grows past its inlining budget.
    """
    if fn is None:
        return lambda f: _compile(f, inline=inline)
    return _compile(fn, inline=inline)


def _source_fingerprint() -> bytes:
    """The kernel sources (this file, the cache's format in jitcache.py and
    lossjit/kernels/*.py): any edit renames every cache entry, so a changed helper can never be
    served stale from the cache."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha1()
    for path in [Path(__file__).resolve(), here / "jitcache.py",
                 *sorted((here / "kernels").glob("*.py"))]:
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(path.name.encode())
    return digest.digest()


_SOURCES = _source_fingerprint()


def _fingerprint(bindings: dict[str, Any]) -> str:
    """A short hash of the kernel sources and of the bound functions' code."""
    digest = hashlib.sha1(_SOURCES)
    for key in sorted(bindings):
        bound = bindings[key]
        digest.update(key.encode())
        if hasattr(bound, "lossjit_fingerprint"):  # itself a specialisation
            digest.update(bound.lossjit_fingerprint.encode())
            continue
        code = getattr(getattr(bound, "py_func", bound), "__code__", None)
        if code is not None:
            digest.update(code.co_code)
            digest.update(repr(code.co_consts).encode())
        else:
            digest.update(repr(bound).encode())
    return digest.hexdigest()[:12]


def specialise(template: Callable[..., Any], name: str, *, parallel: bool = False,
               cache: bool = False, **bindings: Any) -> Any:
    """Compile ``template`` under ``name``, with its free names bound to ``bindings``.

    The template is an ordinary module-level function whose body calls helpers by global
    names (for example ``pointwise`` or ``block``). Each specialisation is a copy of the
    function with those globals replaced, compiled as its own dispatcher. Its qualified name
    (``name`` plus a hash of the sources and the bound code) keeps its cache entry apart from
    every other specialisation, and from any older version of the code.

    >>> import numpy as np
    >>> from lossjit.kernels import _blocks
    >>> from lossjit.kernels.regression import mse_pointwise
    >>> block = specialise(_blocks.elementwise_template, "demo_block", pointwise=mse_pointwise)
    >>> kernel = specialise(_blocks.rows_template, "demo", block=block)
    >>> none = np.empty(0)
    >>> kernel(np.array([1.0, 2.0]), np.zeros(2), none, none, none, none, none, 1.0)
    5.0
    >>> specialise(_blocks.rows_template, "demo", blok=block)
    Traceback (most recent call last):
    ...
    TypeError: specialise: rows_template has no free name 'blok' to bind (its free names: ...)
    """
    free = set(template.__code__.co_names)
    unknown = sorted(set(bindings) - free)
    if unknown:
        raise TypeError(f"specialise: {template.__name__} has no free name {unknown[0]!r} to "
                        f"bind (its free names: {', '.join(sorted(free))})")
    namespace = dict(template.__globals__)
    namespace.update(bindings)
    qualname = f"{name}_{'parallel' if parallel else 'serial'}_{_fingerprint(bindings)}"
    fn = types.FunctionType(template.__code__, namespace, qualname, template.__defaults__,
                            template.__closure__)
    fn.__qualname__ = qualname
    fn.__module__ = template.__module__
    fn.__doc__ = template.__doc__
    dispatcher = _compile(fn, parallel=parallel, cache=cache)
    dispatcher.lossjit_fingerprint = qualname
    return dispatcher


_threads_started = False


def _openmp_loaded() -> bool:
    """Whether an OpenMP runtime (libgomp, libiomp, libomp) is already mapped in."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return True  # cannot tell: leave the runtime's defaults alone
    return any(name in maps for name in ("libgomp", "libiomp", "libomp"))


#: What each LOSSJIT_OMP_WAIT setting puts in the environment while the threads start.
WAIT_SETTINGS = {"short": ("GOMP_SPINCOUNT", "10000"), "passive": ("OMP_WAIT_POLICY", "PASSIVE")}


def start_threads() -> None:
    """Start Numba's threads, with idle OpenMP threads that spin only briefly where lossjit
    owns them (see the module's docstring); called before the first parallel kernel.
    ``LOSSJIT_OMP_WAIT=keep`` leaves the runtime's defaults."""
    global _threads_started
    if _threads_started:
        return
    _threads_started = True
    setting = WAIT_SETTINGS.get(os.environ.get("LOSSJIT_OMP_WAIT", "short").lower())
    if setting is None:
        return
    if any(name in os.environ for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")):
        return
    from numba.np.ufunc import parallel

    if parallel._is_initialized or _openmp_loaded():
        return
    name, value = setting
    os.environ[name] = value
    try:
        parallel._launch_threads()
    finally:
        os.environ.pop(name, None)
