"""The one place that decides how lossjit compiles its kernels.

- ``jit``: ``@njit`` with lossjit's fixed options: ``cache=True`` (falling back to no cache, with
  one warning, when no cache directory is writable), ``error_model="numpy"`` and the fast-math
  flags below. Never ``fastmath=True``: it would compile ``isnan`` away.
- ``strict_jit``: the same without fast-math flags, so arithmetic happens in source order: for
  the in-order sum of block partials (what makes every loss bit-identical whatever the thread
  count) and for row kernels, whose value must not depend on whether a gradient is written.
- ``specialise``: binds a kernel template to the helper functions it calls and compiles it
  under its own name, serial or parallel. One template serves every loss of a family, and the
  serial twin of a parallel kernel is compiled from the very same source.

Nothing here compiles anything: compilation happens on a kernel's first call (or is loaded from
the cache).
"""

from __future__ import annotations

import hashlib
import types
import warnings
from collections.abc import Callable
from typing import Any

from numba import njit

#: Fast-math flags for kernels: everything but "nnan"/"ninf" (which would drop NaN and inf
#: handling). "reassoc" lets LLVM vectorise the sums inside a block.
FLAGS = frozenset({"nsz", "arcp", "afn", "reassoc"})

_cache_ok = True


def _compile(fn: Callable[..., Any], *, parallel: bool, fastmath: Any) -> Any:
    """Wrap ``fn`` in a Numba dispatcher, caching when a cache directory is writable."""
    global _cache_ok
    options = dict(error_model="numpy", fastmath=fastmath, parallel=parallel)
    if _cache_ok:
        try:
            return njit(cache=True, **options)(fn)
        except RuntimeError as exc:  # Numba: "cannot cache function ...: no locator available"
            _cache_ok = False
            warnings.warn(
                f"lossjit: kernels will not be cached ({exc}); set NUMBA_CACHE_DIR to a "
                "writable directory to keep compiled kernels between runs",
                RuntimeWarning,
                stacklevel=3,
            )
    return njit(cache=False, **options)(fn)


def jit(fn: Callable[..., Any]) -> Any:
    """Compile ``fn`` with lossjit's options (serial, cached, fast-math flags)."""
    return _compile(fn, parallel=False, fastmath=set(FLAGS))


def strict_jit(fn: Callable[..., Any]) -> Any:
    """Compile ``fn`` with no fast-math flags, so its arithmetic happens in source order."""
    return _compile(fn, parallel=False, fastmath=False)


def _fingerprint(bindings: dict[str, Any]) -> str:
    """A short hash of the bound functions' code: a changed helper gets a fresh cache entry."""
    digest = hashlib.sha1()
    for key in sorted(bindings):
        func = getattr(bindings[key], "py_func", bindings[key])
        code = getattr(func, "__code__", None)
        digest.update(key.encode())
        if hasattr(bindings[key], "lossjit_fingerprint"):  # itself a specialisation
            digest.update(bindings[key].lossjit_fingerprint.encode())
        elif code is not None:
            digest.update(code.co_code)
            digest.update(repr(code.co_consts).encode())
        else:
            digest.update(repr(func).encode())
    return digest.hexdigest()[:10]


def specialise(template: Callable[..., Any], name: str, *, parallel: bool = False,
               **bindings: Any) -> Any:
    """Compile ``template`` under ``name``, with its free names bound to ``bindings``.

    The template is an ordinary module-level function whose body calls helpers by global
    names (for example ``pointwise`` or ``block``). Each specialisation is a copy of the
    function with those globals replaced, compiled as its own dispatcher. Its qualified name
    (``name`` plus a hash of the bound code) keeps its cache entry apart from every other
    specialisation of the same template.

    >>> import numpy as np
    >>> from lossjit.kernels import _blocks
    >>> from lossjit.kernels.regression import mse_pointwise
    >>> block = specialise(_blocks.elementwise_template, "demo_block", pointwise=mse_pointwise)
    >>> kernel = specialise(_blocks.rows_template, "demo", block=block)
    >>> none = np.empty(0)
    >>> kernel(np.array([1.0, 2.0]), np.zeros(2), none, none, none, 1.0)
    5.0
    """
    namespace = dict(template.__globals__)
    namespace.update(bindings)
    qualname = f"{name}_{'parallel' if parallel else 'serial'}_{_fingerprint(bindings)}"
    fn = types.FunctionType(template.__code__, namespace, qualname, template.__defaults__,
                            template.__closure__)
    fn.__qualname__ = qualname
    fn.__module__ = template.__module__
    fn.__doc__ = template.__doc__
    dispatcher = _compile(fn, parallel=parallel, fastmath=set(FLAGS))
    dispatcher.lossjit_fingerprint = qualname
    return dispatcher
