"""What the CLI and the library import on start-up, and what a first call compiles (never how
long either takes: ``benchmarks/startup.py`` measures that).

- Describing (``--help``, ``list``, ``info``) and ``import lossjit`` import neither NumPy nor
  Numba.
- A compute imports the kernel module of its loss only, and no optional reader (pyarrow) or
  plotting library (matplotlib) it does not use.
- A kernel loaded from the cache does not make Numba load its compiler's registries (which
  import SciPy's BLAS); a kernel compiled afterwards in the same process still works.
- A first call compiles one kernel: the serial one for a small input, in its dtype.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import DATA

from lossjit import registry
from lossjit.registry import LossSpec


def _python(code: str, cwd: Path, cache: Path, *args: str) -> list[str]:
    """Run ``code`` in a fresh interpreter with its own kernel cache; its stdout lines."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_import_lossjit_imports_neither_numpy_nor_numba(tmp_path: Path):
    code = ("import sys, lossjit, lossjit.cli; "
            "print([m for m in ('numpy', 'numba') if m in sys.modules])")
    assert _python(code, tmp_path, tmp_path / "cache")[-1] == "[]"


def test_public_names_are_still_there():
    import lossjit

    for name in lossjit.__all__:
        assert getattr(lossjit, name) is not None, name
    assert set(lossjit.__all__) <= set(dir(lossjit))
    with pytest.raises(AttributeError):
        lossjit.no_such_name  # noqa: B018


def test_a_layout_given_as_a_function_is_built_once_on_first_use():
    spec = registry.resolve("huber")
    built = []

    def layout():
        built.append(1)
        return spec.layout

    lazy = LossSpec(name="huber_copy", family=spec.family, formula="", inputs="",
                    params=spec.params, layout=layout, kernels=spec.kernels)
    assert not built
    assert lazy.layout is spec.layout
    assert lazy.layout is spec.layout and len(built) == 1
    given = LossSpec(name="huber_copy", family=spec.family, formula="", inputs="",
                     params=spec.params, layout=spec.layout, kernels=spec.kernels)
    assert given.layout is spec.layout


COMPUTE = """
import sys
from lossjit.cli import main
sys.argv = ["lossjit", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
import numba
from lossjit.kernels import regression
stats = regression.mse.serial.stats
print(sorted(m for m in sys.modules if m.startswith(("lossjit.kernels.", "pyarrow",
                                                     "matplotlib"))))
print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
print("numba.np.arraymath" in sys.modules)
"""


def test_compute_imports_what_it_uses_and_loads_its_kernel(tmp_path: Path):
    cache = tmp_path / "cache"
    args = ["compute", "mse", str(DATA / "preds.npy"), str(DATA / "targets.npy"), "--no-grad"]
    cold = _python(COMPUTE, tmp_path, cache, *args)
    modules = ["lossjit.kernels._blocks", "lossjit.kernels.regression",
               "lossjit.kernels.vecmath"]
    assert json.loads(cold[-3].replace("'", '"')) == modules  # no other family, no pyarrow
    assert cold[-2] == "0 1"  # compiled
    warm = _python(COMPUTE, tmp_path, cache, *args)
    assert json.loads(warm[-3].replace("'", '"')) == modules
    assert warm[-2] == "1 0"  # loaded from the cache
    assert warm[-1] == "False"  # the compiler's registries (SciPy's BLAS) never loaded
    assert cold[-1] == "True"  # (as compiling does load them)
    assert warm[0] == cold[0]


LOADED_THEN_COMPILED = """
import numpy as np
import lossjit
from lossjit.blocking import PARALLEL_MIN
from numba import njit

x = np.linspace(-2.0, 3.0, PARALLEL_MIN + 5)
y = np.cos(x)
value, grad = lossjit.value_and_grad("mse", x, y)  # the parallel kernel
print(repr(value), bool(np.allclose(grad, 2 * (x - y) / x.size)))
print(repr(lossjit.loss("huber", x[:10], y[:10])))

@njit
def cubic(x, y, k):
    e = x - y
    return k * abs(e) ** 3, 3 * k * e * abs(e)

lossjit.register("cubic_startup", pointwise=cubic, params=[("k", 1.0)], replace=True)
print(repr(lossjit.loss("cubic_startup", np.array([2.0]), np.array([0.0]), k=0.5)))
"""


def test_kernels_loaded_from_the_cache_then_a_kernel_compiled(tmp_path: Path):
    """Loading skips Numba's refresh of its compiler context; compiling afterwards (a user's
    loss, in the same process) and the parallel kernel's threads still work."""
    cache = tmp_path / "cache"
    cold = _python(LOADED_THEN_COMPILED, tmp_path, cache)
    warm = _python(LOADED_THEN_COMPILED, tmp_path, cache)
    assert warm == cold
    assert warm[0].endswith("True")
    assert warm[-1] == "4.0"


FIRST_CALL = """
import sys
import numpy as np
import numba.core.event as event
import lossjit
from lossjit.layouts import examples_for

names = []
class Listener(event.Listener):
    def on_start(self, ev):
        pass
    def on_end(self, ev):
        names.append(ev.data["dispatcher"].py_func.__qualname__)

event.register("numba:compile", Listener())
spec = lossjit.registry.resolve(sys.argv[1])
example = examples_for(spec.layout, 12, np.dtype(sys.argv[2]), width=4)[0]
lossjit.value_and_grad(spec.name, example.predictions, example.targets, **example.options)
print(sorted({n.rsplit("_", 2)[-2] for n in names if "_block_" not in n
              and n.rsplit("_", 2)[-2:-1] in (["serial"], ["parallel"])}))
"""


@pytest.mark.parametrize("name,dtype", [("cross_entropy", "float32"), ("huber", "float64")])
def test_a_first_call_compiles_one_kernel(tmp_path: Path, name: str, dtype: str):
    """A small input compiles the serial kernel, not its parallel twin (nor, as the one
    signature in the cache shows, the other dtype)."""
    assert _python(FIRST_CALL, tmp_path, tmp_path / "cache", name, dtype)[-1] == "['serial']"
