"""How long ``lossjit`` takes to start, against ``python -c "import numba"``, and how long the
first call of each loss compiles on an empty cache.

Start-up (the default): every command runs ``--runs`` times, interleaved, each in a fresh
process; the table gives medians (wall seconds). It has

- the whole commands: ``python -c pass``, ``import numpy``, ``import numba`` (the reference),
  ``lossjit --help``, ``list``, ``info mse`` and a warm ``lossjit compute mse
  data/preds.npy data/targets.npy`` (its cache is filled by one run first), with the ratio
  of each to ``import numba``, and whether the describing commands imported NumPy or Numba;
- the warm compute broken down, measured inside one process that runs the CLI's own code:
  import numpy, import numba, import lossjit's modules, import the loss's kernel module,
  load its kernels from the cache, the first dispatch (Numba's typing of the arguments),
  read, compute, write (what is left over is Python's own start).

``--first-use``: for each loss (default: every one), one fresh process with a fresh
``NUMBA_CACHE_DIR`` makes the first call a script would (``value_and_grad`` on the loss's
small example; ``--dtype``, ``--large`` for the parallel kernel), and reports its seconds,
the seconds Numba spent compiling (``numba:compile`` events) and which dispatchers compiled.

    python benchmarks/startup.py --runs 11
    python benchmarks/startup.py --first-use cross_entropy mse --dtype float32
    python benchmarks/startup.py --python /tmp/v_nosci/bin/python    # another venv
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"

#: The probe run in a child: the CLI's compute path, stage by stage (seconds, as JSON).
PROBE = r"""
import sys, time, json
started = time.perf_counter()
marks = {}
def mark(name, since):
    now = time.perf_counter(); marks[name] = now - since; return now
t = started
import numpy
t = mark("import numpy", t)
import numba
t = mark("import numba", t)
import lossjit.cli
from lossjit.cli import _import_compute_modules
_import_compute_modules()
from lossjit import jitcache, registry
from lossjit.jobs import Job, run
t = mark("import lossjit", t)
spec = registry.resolve("mse")
spec.kernel_sets()
t = mark("kernel module", t)
loading = [0.0]
original = jitcache.KernelCache.load_overload
def timed(self, sig, ctx):
    s = time.perf_counter()
    try:
        return original(self, sig, ctx)
    finally:
        loading[0] += time.perf_counter() - s
jitcache.KernelCache.load_overload = timed
done = run(Job("mse", sys.argv[1], sys.argv[2], outputs={"grad": sys.argv[3]}))
seconds = done.seconds
marks["cache load"] = loading[0]
marks["first dispatch"] = seconds.get("compile", 0.0) - loading[0]
for step in ("read", "compute", "write"):
    marks[step] = seconds.get(step, 0.0)
marks["probe total"] = time.perf_counter() - started
marks["scipy imported"] = "scipy.linalg" in sys.modules
print(json.dumps(marks))
"""

#: Which of NumPy and Numba a describing command imported.
IMPORTS = r"""
import sys
from lossjit.cli import cli
try:
    cli.main(sys.argv[1:], prog_name="lossjit", standalone_mode=False)
except SystemExit:
    pass
sys.stdout = sys.__stdout__
print("\nMODULES:" + ",".join(m for m in ("numpy", "numba", "scipy") if m in sys.modules))
"""

#: The first call of one loss, in a fresh process and cache.
FIRST_USE = r"""
import sys, time, json
import numpy as np
import lossjit
from lossjit import registry
from lossjit.layouts import examples_for
import numba.core.event as event

name, dtype, large = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
spec = registry.resolve(name)
size = 70_000 if large else 12
example = examples_for(spec.layout, size, np.dtype(dtype), width=4)[0]
starts, compiled = {}, []

class Listener(event.Listener):
    def on_start(self, ev):
        starts[id(ev.data["dispatcher"]), str(ev.data["args"])] = time.perf_counter()
    def on_end(self, ev):
        key = id(ev.data["dispatcher"]), str(ev.data["args"])
        compiled.append((ev.data["dispatcher"].py_func.__qualname__,
                         time.perf_counter() - starts.pop(key)))

event.register("numba:compile", Listener())
started = time.perf_counter()
lossjit.value_and_grad(name, example.predictions, example.targets, **example.options)
seconds = time.perf_counter() - started
# the entry kernels (``<name>_<serial|parallel>_<hash>``), not their blocks and helpers
kernels = [q.rsplit("_", 1)[0] for q, _ in compiled
           if q.rsplit("_", 2)[-2:-1] in (["serial"], ["parallel"]) and "_block_" not in q]
print(json.dumps({"loss": name, "dtype": dtype, "seconds": seconds,
                  "compiling": sum(s for q, s in compiled if q.rsplit("_", 1)[0] in kernels),
                  "compiled": len(compiled), "kernels": kernels}))
"""


def _run(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None
         ) -> tuple[float, str]:
    import time

    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{argv} failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds, done.stdout


def startup(python: str, runs: int) -> dict[str, object]:
    """The medians of the start-up commands and of the probe's stages."""
    work = tempfile.mkdtemp(prefix="lossjit-startup-")
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", os.path.join(work, "cache"))
    grad = os.path.join(work, "g.npy")
    preds, targets = str(DATA / "preds.npy"), str(DATA / "targets.npy")
    lossjit = [python, "-m", "lossjit"]
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "import numpy": [python, "-c", "import numpy"],
        "import numba": [python, "-c", "import numba"],
        "lossjit --help": [*lossjit, "--help"],
        "lossjit list": [*lossjit, "list"],
        "lossjit info mse": [*lossjit, "info", "mse"],
        "lossjit compute mse": [*lossjit, "compute", "mse", preds, targets, "--grad-out",
                                grad],
    }
    try:
        _run(commands["lossjit compute mse"], env, work)  # fills the cache
        times: dict[str, list[float]] = {name: [] for name in commands}
        stages: list[dict[str, float]] = []
        for _ in range(runs):
            for name, argv in commands.items():
                times[name].append(_run(argv, env, work)[0])
            stages.append(json.loads(_run([python, "-c", PROBE, preds, targets, grad], env,
                                          work)[1]))
        imported = {}
        for args in (["--help"], ["list"], ["info", "mse"]):
            out = _run([python, "-c", IMPORTS, *args], env, work)[1]
            imported["lossjit " + " ".join(args)] = out.rsplit("MODULES:", 1)[1].strip()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {name: statistics.median(t) for name, t in times.items()}
    stage_medians = {key: statistics.median(s[key] for s in stages)
                     for key in stages[0] if key != "scipy imported"}
    return {"python": python, "runs": runs, "commands": medians, "stages": stage_medians,
            "scipy imported by compute": stages[0]["scipy imported"],
            "describing commands imported": imported,
            "ratio": medians["lossjit compute mse"] / medians["import numba"]}


def first_use(python: str, names: list[str], dtype: str, large: bool) -> list[dict]:
    results = []
    for name in names:
        cache = tempfile.mkdtemp(prefix="lossjit-first-use-")
        try:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            result = json.loads(_run([python, "-c", FIRST_USE, name, dtype,
                                      "1" if large else "0"], env)[1])
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        results.append(result)
        print(f"{name:<24} {result['seconds']:6.2f} s  {result['compiled']:3d} compiled  "
              f"kernels: {', '.join(result['kernels'])}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (medians)")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter (of the venv) to measure")
    parser.add_argument("--first-use", action="store_true",
                        help="time each loss's first call on an empty cache instead")
    parser.add_argument("losses", nargs="*", help="--first-use: these losses [default: all]")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--large", action="store_true",
                        help="--first-use: an input large enough for the parallel kernel")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if args.first_use:
        names = args.losses or json.loads(_run([args.python, "-c", "import json, lossjit; "
                                                "print(json.dumps(lossjit.names()))"])[1])
        results = first_use(args.python, names, args.dtype, args.large)
        if args.json:
            print(json.dumps(results))
        return
    result = startup(args.python, args.runs)
    if args.json:
        print(json.dumps(result))
        return
    reference = result["commands"]["import numba"]
    print(f"{result['python']}: medians of {result['runs']} runs (wall seconds)")
    for name, seconds in result["commands"].items():
        print(f"  {name:<22} {seconds:6.3f}  {seconds / reference:5.2f}x import numba")
    print("  warm compute, inside one process:")
    for name, seconds in result["stages"].items():
        print(f"    {name:<20} {seconds:6.3f}")
    print(f"  scipy.linalg imported by compute: {result['scipy imported by compute']}")
    for name, modules in result["describing commands imported"].items():
        print(f"  {name} imported: {modules or 'neither NumPy nor Numba'}")
    print(f"  ratio compute / import numba: {result['ratio']:.2f}")


if __name__ == "__main__":
    main()
