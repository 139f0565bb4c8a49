"""lossjit's benchmark: speed against NumPy, PyTorch, JAX and scikit-learn, in one run.

    python benchmarks/run.py [--quick] [--json PATH] [--losses NAME ...] [--skip PART ...]
                             [--wait-quiet SECONDS] [--retries N]

It times value+grad (and value only, for lossjit and NumPy) of every built-in loss: the
first release's (EVERY_SIZE) at 1e3, 1e5, 1e6 and 1e7 elements, cross_entropy and focal at
(1024, 10), (65536, 10), (8192, 1000) and (1000000, 10); the later ones at 1e6 elements
(class-index losses at (65536, 10)), which keeps the run near ten minutes; a loss named with
``--losses`` runs at every size. Each case in float32 and float64; lossjit runs with and
without ``out=``. Options are the defaults, except gaussian_nll's required var (an array
of the predictions' shape; see ``lossjit_bench.make_inputs``).
In the same run it measures the STREAM-triad bandwidth (1 and 2 threads), a small call, the
peak memory of cross_entropy, the command line's start-up, determinism across thread counts
and float32 accuracy. It prints a table of medians and ratios (peer time / lossjit time, so
> 1 means lossjit is faster), checks the targets of the performance issue, and writes JSON
(default ``benchmarks/results.json`` for a complete run; a ``--quick``, ``--skip`` or
``--losses`` run writes JSON only with ``--json``). PyTorch, JAX and scikit-learn are
optional (``pip install -e '.[bench]'``); a peer that is not installed is skipped and the
run says so.

Timing conventions are in :mod:`lossjit_bench`'s docstring and in the JSON's ``notes``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import lossjit_bench as bench  # noqa: E402
from lossjit_bench import peers as bench_peers  # noqa: E402
from lossjit_bench.roofline import add_roofline  # noqa: E402

SIZES = (1_000, 100_000, 1_000_000, 10_000_000)
CLASS_SHAPES = ((1024, 10), (65536, 10), (8192, 1000), (1_000_000, 10))
DTYPES = ("float32", "float64")
FAMILY_ORDER = tuple(name for _, members in bench.INPUT_KINDS for name in members)
#: The losses the default run times at every size in SIZES / CLASS_SHAPES (the first
#: release's). The others run at FEW_SIZES / FEW_CLASS_SHAPES only, which keeps the default
#: run near ten minutes; a loss named with --losses runs at every size.
EVERY_SIZE = ("mse", "l1", "huber", "smooth_l1", "binary_cross_entropy", "bce_with_logits",
              "sigmoid_focal", "cross_entropy", "focal", "contrastive", "triplet")
FEW_SIZES = (1_000_000,)
FEW_CLASS_SHAPES = ((65536, 10),)
#: The --quick run (before a commit that touches a kernel; under 2 minutes): every kernel
#: family, each case in float32 and float64, at 1e5-1e6 numbers: plain arithmetic (mse),
#: the logistic (bce_with_logits), float64 exp/log1p (log_cosh), logs in the data's precision
#: (binary_cross_entropy), the variance layout (gaussian_nll), the class axis (cross_entropy,
#: focal with many classes, nll), multi-label, pairs, triplets and rank pairs.
QUICK_CASES = (
    ("mse", 1_000_000), ("bce_with_logits", 1_000_000), ("log_cosh", 100_000),
    ("binary_cross_entropy", 100_000), ("gaussian_nll", 100_000),
    ("cross_entropy", (65536, 10)), ("focal", (8192, 100)), ("nll", (65536, 10)),
    ("multilabel_soft_margin", 100_000), ("contrastive", 100_000),
    ("cosine_embedding", 100_000), ("triplet", 100_000), ("margin_ranking", 100_000),
)
PARTS = ("cases", "small", "memory", "cli", "determinism", "accuracy")
#: Element-wise cases of at least this many numbers get the roofline columns (below, the
#: arrays sit in the caches and the triad is not their bound).
ROOFLINE_MIN = 1_000_000
#: The issue's target: lossjit with out= at 1e7 within this share of its roofline.
ROOFLINE_TARGET = 0.7
#: A case during which other processes used more CPU than this (in cores) is "disturbed".
QUIET_LOAD = 0.2

NOTES = {
    "ratios": "peer median / lossjit median; > 1 means lossjit is faster. numpy, torch and jax "
              "are compared with lossjit.value_and_grad allocating its gradient; sklearn "
              "(preallocated buffers) with lossjit's out= call; numpy_value with lossjit.loss.",
    "lossjit": "lossjit.value_and_grad(name, p, t) (fresh gradient); lossjit_out: with out= a "
               "reused buffer; lossjit_value: lossjit.loss (no gradient). Python-side work "
               "included.",
    "numpy": "lossjit_bench's vectorised NumPy reference (value + gradient, in the input dtype, "
             "allocating its gradient); numpy_value: value only.",
    "torch": "autograd, torch.set_num_threads(2); tensors made from the NumPy arrays once "
             "outside the timed region; each call sets x.grad = None (as "
             "zero_grad(set_to_none=True)), runs the loss and backward(), so backward allocates "
             "a fresh gradient. focal, sigmoid_focal, contrastive, log_cosh, pseudo_huber, "
             "quantile and poly1 are composed from torch ops (sigmoid_focal is torchvision's "
             "code); kl_div is kl_div(reduction='sum') / numel, as its 'mean' warns each call.",
    "jax": "jax.jit(jax.value_and_grad(f)), CPU, jax_enable_x64, block_until_ready; arrays "
           "put on the device once (gaussian_nll's var is an argument of f). optax's own loss "
           "where it has one (softmax_cross_entropy_with_integer_labels, "
           "sigmoid_binary_cross_entropy, sigmoid_focal_loss, huber_loss, log_cosh, "
           "poly_loss_cross_entropy, kl_divergence, triplet_margin_loss, squared_error), and "
           "the jax.numpy forms users write (take_along_axis(log_softmax), one-hot dot, ...): "
           "every form is checked against lossjit and timed briefly, the fastest that agrees "
           "is kept (case 'forms': the kept one and every form's time).",
    "checks": "before timing, every peer's value and gradient are compared with lossjit's "
              "(value: rel 1e-3 float32, 1e-7 float64; gradient: within 1e-3 / 1e-7 of the "
              "largest entry, all but 0.1% of the entries); a peer that disagrees is excluded "
              "and listed in the case's 'disagreed', not timed.",
    "roofline": "element-wise cases >= 1e6: memory_s = bytes (as GB/s) / the 2-thread triad; "
                "compute_s = sum of exp/log/log1p/logistic/div/sqrt calls per element "
                "(lossjit_bench.roofline.WORK) x n x seconds per call measured in a parallel "
                "Numba loop of lossjit.kernels.vecmath's function over the same n (less the "
                "empty loop); fraction = max(memory_s, compute_s) / lossjit's out= time.",
    "sizes": "losses outside EVERY_SIZE (those added after the first release) run at 1e6 "
             "elements, class-index ones at (65536, 10), in the default run; options are the "
             "defaults, gaussian_nll's var an array of the predictions' shape.",
    "sklearn": "private sklearn._loss: loss_gradient(y, raw, loss_out=, gradient_out=, "
               "n_threads=2) into preallocated buffers, plus loss_out.sum(). Its 'half' "
               "conventions differ (HalfSquaredError = e^2/2): speed only. mse: "
               "HalfSquaredError, l1: AbsoluteError, huber/smooth_l1: HuberLoss(delta), "
               "bce_with_logits: HalfBinomialLoss, cross_entropy: HalfMultinomialLoss, "
               "quantile: PinballLoss(quantile), poisson_nll: HalfPoissonLoss.",
    "bandwidth": "GB/s = bytes / median time, bytes = predictions + targets + array "
                 "options (gaussian_nll's var) read + gradient written (value only: no "
                 "gradient); not given for class-index losses; triad = STREAM a = b + s c, "
                 "float64, 3 x 8 bytes per element, Numba prange; the fraction uses the 2-thread "
                 "triad measured just before the case (1e7 cases), else at the start of the "
                 "run.",
    "foreign_load": "cores' worth of CPU used by other processes during a case "
                    "(/proc/stat); above 0.2 the timings of that case are disturbed (on 2 "
                    "cores a parallel kernel then waits for its second thread). 'attempt' "
                    "says which try was kept with --retries.",
    "cache_resident": "below ~1e7 elements the arrays fit in the caches, so GB/s can exceed "
                      "the triad's (a fraction of the triad > 100%); only 1e7 cases measure "
                      "memory bandwidth.",
    "memory": "peak RSS rise (VmHWM after the call - VmRSS before, with the high-water mark "
              "reset through /proc/self/clear_refs) in a fresh process per implementation, "
              "after a warm-up on a small input; it counts every allocation that is touched "
              "(NumPy, Numba's runtime, torch's and XLA's allocators), the returned gradient "
              "included. tracemalloc (NumPy allocations only; Numba-runtime allocations inside "
              "kernels are invisible to it) is given for lossjit and numpy.",
}


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------


def say(*parts: Any) -> None:
    print(*parts, flush=True)


# ---------------------------------------------------------------------------------------------
# Speed cases
# ---------------------------------------------------------------------------------------------


def sizes_for(name: str, every: bool = False) -> tuple[Any, ...]:
    """The sizes (class losses: shapes) of ``name`` in a full run: all of them for the losses
    in EVERY_SIZE or when ``every``, else the few."""
    classes = bench.input_kind(name) == "classes"
    if every or name in EVERY_SIZE:
        return CLASS_SHAPES if classes else SIZES
    return FEW_CLASS_SHAPES if classes else FEW_SIZES


def plan(quick: bool, losses: list[str] | None) -> list[tuple[str, Any, str]]:
    """(loss, size or shape, dtype) of every case, in table order. The default set times the
    losses outside EVERY_SIZE at fewer sizes; losses named in ``losses`` get every size."""
    wanted = [bench.canonical(name) for name in losses] if losses else list(FAMILY_ORDER)
    if quick:
        chosen = [(name, size) for name, size in QUICK_CASES if name in wanted]
        if losses:
            chosen = chosen or [(w, 100_000) for w in wanted]
        return [(name, size, dtype) for name, size in chosen for dtype in DTYPES]
    cases = []
    for name in FAMILY_ORDER:
        if name not in wanted:
            continue
        for size in sizes_for(name, every=bool(losses)):
            for dtype in DTYPES:
                cases.append((name, size, dtype))
    for name in wanted:  # registered losses that have no benchmark inputs are reported
        if name not in FAMILY_ORDER:
            say(f"note: no benchmark inputs for {name}; skipped")
    return cases


def wait_quiet(limit: float, threshold: float = QUIET_LOAD) -> float:
    """Wait (up to ``limit`` seconds) until other processes use less than ``threshold`` of a
    core over half a second; returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        with bench.ForeignLoad() as meter:
            time.sleep(0.5)
        if meter.load is None or meter.load < threshold:
            break
    return time.monotonic() - start


def run_cases(args: argparse.Namespace, triad_start: float) -> list[dict[str, Any]]:
    cases = plan(args.quick, args.losses)
    repeat, min_time, max_time = ((3, 0.05, 1.0) if args.quick else
                                  (args.repeat, args.min_time, args.max_time))
    say(f"\n== speed: {len(cases)} cases, median of up to {repeat} samples; "
        "ratios = peer time / lossjit time (> 1: lossjit faster); sklearn vs lossjit +out")
    say(bench.TABLE_HEADER)
    results = []
    for name, size, dtype in cases:
        waited = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else 0.0
        near = None
        if bench.input_kind(name) != "classes" and isinstance(size, int) and size >= 10_000_000:
            near = bench.triad_bandwidth(args.triad_n, 2, repeat=7)["gbs"]
        try:
            case = None
            for attempt in range(1 + max(0, args.retries)):
                if attempt:  # the last try was disturbed: wait for a quiet moment, try again
                    waited += wait_quiet(max(args.wait_quiet, 10.0))
                trial = bench.run_case(name, size, dtype, value_only=True, peers=args.peers,
                                       out=True, repeat=repeat, min_time=min_time,
                                       max_time=max_time)
                trial["attempt"] = attempt + 1
                if case is None or (trial["foreign_load"] or 0.0) < (case["foreign_load"]
                                                                      or 0.0):
                    case = trial
                if (case["foreign_load"] or 0.0) <= QUIET_LOAD:
                    break
        except Exception as exc:  # one failing case must not lose the run
            say(f"{name} {size} {dtype}: FAILED {type(exc).__name__}: {exc}")
            results.append({"loss": name, "shape": list(np.atleast_1d(size)), "dtype": dtype,
                            "error": f"{type(exc).__name__}: {exc}"})
            continue
        bench.add_bandwidth(case, near or triad_start, "before the case" if near else "run start")
        if args.roofline and case["elements"] >= ROOFLINE_MIN:
            try:
                add_roofline(case, near or triad_start)
            except Exception as exc:  # the roofline must not lose the case
                case["roofline_error"] = f"{type(exc).__name__}: {exc}"
        case["waited_for_quiet_s"] = waited
        results.append(case)
        say(bench.table_row(case))
        for peer, why in case.get("disagreed", {}).items():
            say(f"  ! {peer} excluded: {why}")
        gc.collect()
    bench.release_triad_arrays()
    skipped = {peer: why for case in results for peer, why in case.get("skipped", {}).items()
               if why == "not installed"}
    for peer, why in skipped.items():
        say(f"note: {peer} {why}; its column is empty")
    return results


# ---------------------------------------------------------------------------------------------
# Small call
# ---------------------------------------------------------------------------------------------


def _numpy_small_mse(p: np.ndarray, t: np.ndarray) -> Any:
    """The plain NumPy form of a small MSE and its gradient."""
    n = p.size

    def call() -> Any:
        d = p - t
        return float(d @ d) / n, 2 * d / n
    return call


def _numpy_small_ce(x: np.ndarray, labels: np.ndarray) -> Any:
    """The plain NumPy form of a small softmax cross-entropy and its gradient."""
    rows = np.arange(x.shape[0])
    n = x.shape[0]

    def call() -> Any:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        s = e.sum(axis=1, keepdims=True)
        p = e / s
        value = float(-np.log(p[rows, labels]).mean())
        p[rows, labels] -= 1
        return value, p / n
    return call


def small_call(args: argparse.Namespace) -> dict[str, Any]:
    """Small calls, Python included: value_and_grad("mse") on 1e3 float32 numbers and
    value_and_grad("cross_entropy") on (64, 10) float32 logits, against their plain NumPy
    forms (values checked) and the peers."""
    import lossjit

    inputs = bench.make_inputs("mse", 1000, np.float32)
    p, t = inputs.predictions, inputs.targets
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((64, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    buffer, ce_buffer = np.empty_like(p), np.empty_like(logits)
    fns = {
        "lossjit": lambda: lossjit.value_and_grad("mse", p, t),
        "lossjit_out": lambda: lossjit.value_and_grad("mse", p, t, out=buffer),
        "numpy": _numpy_small_mse(p, t),
        "numpy_peer": bench.numpy_peer(inputs),
        "ce_lossjit": lambda: lossjit.value_and_grad("cross_entropy", logits, labels),
        "ce_lossjit_out": lambda: lossjit.value_and_grad("cross_entropy", logits, labels,
                                                         out=ce_buffer),
        "ce_numpy": _numpy_small_ce(logits, labels),
    }
    for name, peer in (("numpy", "lossjit"), ("ce_numpy", "ce_lossjit")):
        mine, theirs = fns[peer](), fns[name]()
        if not (np.isclose(mine[0], theirs[0], rtol=1e-5)
                and np.allclose(mine[1], theirs[1], rtol=1e-4, atol=1e-7)):
            raise SystemExit(f"small call: {name} disagrees with {peer}")
    skipped = {}
    for peer in ("torch", "jax"):
        if peer in args.peers:
            try:
                fns[peer] = bench.PEER_FACTORIES[peer](inputs)
            except bench.Skip as exc:
                skipped[peer] = str(exc)
    repeat, min_time = (5, 0.1) if args.quick else (15, 1.0)
    samples = bench.time_many(fns, repeat=repeat, min_time=min_time)
    times = {name: bench.median(values) for name, values in samples.items()}
    result = {"elements": 1000, "dtype": "float32", "times": times, "skipped": skipped,
              "samples": samples}
    say("\n== small calls, median incl. Python: value_and_grad('mse', p, t), 1e3 float32; "
        "ce_: value_and_grad('cross_entropy', x, labels), (64, 10) float32")
    for name, seconds in times.items():
        base = times["ce_lossjit" if name.startswith("ce_") else "lossjit"]
        extra = "" if seconds == base else f"  ({seconds / base:.2f}x lossjit)"
        say(f"  {name:<15} {seconds * 1e6:8.2f} us{extra}")
    return result


# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def memory_child(impl: str, rows: int, cols: int, dtype: str) -> None:
    """In a fresh process: peak RSS rise of one cross_entropy value+grad (printed as JSON)."""
    import tracemalloc

    def make(shape: tuple[int, int]) -> Any:
        inputs = bench.make_inputs("cross_entropy", shape, dtype)
        if impl == "lossjit":
            return bench.lossjit_calls(inputs)["lossjit"]
        if impl == "numpy":
            return bench.numpy_peer(inputs)
        return bench.PEER_FACTORIES[impl](inputs)

    # Warm up on a small input that still takes the parallel path (2^17 numbers), so that
    # loading or compiling the kernel and starting the thread pools are not measured.
    small = make((max(64, -(-(1 << 17) // cols)), cols))
    small()
    small()
    fn = make((rows, cols))
    del small
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset the peak-RSS mark to the current RSS
        reset = True
    except OSError:
        reset = False
    before = _status_kb("VmRSS")
    if impl in ("lossjit", "numpy"):
        tracemalloc.start()
    result = fn()
    peak = _status_kb("VmHWM")
    traced = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else None
    del result
    print(json.dumps({"rss_before_kb": before, "hwm_after_kb": peak, "hwm_reset": reset,
                      "delta_bytes": (peak - before) * 1024, "tracemalloc_peak": traced}))


def memory(args: argparse.Namespace) -> dict[str, Any]:
    rows, cols = (1_000_000, 10)
    dtypes = ("float32",) if args.quick else DTYPES
    impls = ["lossjit", "numpy"] + ([] if args.quick else
                                    [p for p in ("torch", "jax") if p in args.peers])
    say(f"\n== memory: cross_entropy value+grad on ({rows}, {cols}), peak RSS rise in a fresh "
        "process (gradient included); N*C = one array of the logits' size")
    results: dict[str, Any] = {"shape": [rows, cols], "runs": []}
    for dtype in dtypes:
        nc = rows * cols * np.dtype(dtype).itemsize
        for impl in impls:
            if impl in ("torch", "jax") and bench.peer_available(impl):
                continue
            proc = subprocess.run(
                [sys.executable, __file__, "--memory-child", impl, str(rows), str(cols), dtype],
                capture_output=True, text=True, env=os.environ.copy())
            if proc.returncode != 0:
                say(f"  {impl} {dtype}: failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            data = json.loads(proc.stdout.strip().splitlines()[-1])
            data.update(impl=impl, dtype=dtype, nc_bytes=nc,
                        delta_in_nc=data["delta_bytes"] / nc,
                        beyond_gradient_in_nc=(data["delta_bytes"] - nc) / nc)
            results["runs"].append(data)
            traced = data["tracemalloc_peak"]
            say(f"  {impl:<8} {dtype}: peak RSS +{data['delta_bytes'] / 2**20:7.1f} MiB = "
                f"{data['delta_in_nc']:.2f} x N*C ({nc / 2**20:.1f} MiB)"
                + ("" if traced is None else
                   f"; tracemalloc peak {traced / 2**20:.1f} MiB = {traced / nc:.2f} x N*C"))
    return results


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _wall(command: list[str], env: dict[str, str], cwd: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace').strip()[-300:]}")
    return elapsed


_IMPORT_PROBE = """
import sys
from lossjit.cli import cli
try:
    cli.main(args=sys.argv[1:], prog_name="lossjit", standalone_mode=False)
except SystemExit:
    pass
sys.stderr.write("\\n" + repr(sorted(m for m in ("numba", "numpy", "scipy") if m in sys.modules)))
"""


def cli_timings(args: argparse.Namespace) -> dict[str, Any]:
    script = shutil.which("lossjit", path=str(Path(sys.executable).parent))
    lossjit_cmd = [script] if script else [sys.executable, "-m", "lossjit"]
    runs = 2 if args.quick else 9
    colds = 1 if args.quick else 3
    preds, targets = ROOT / "data" / "preds.npy", ROOT / "data" / "targets.npy"
    say(f"\n== command line: wall time, median of {runs} runs ({' '.join(lossjit_cmd)})")
    result: dict[str, Any] = {"command": lossjit_cmd, "runs": runs}
    with tempfile.TemporaryDirectory(prefix="lossjit-bench-") as work:
        env = os.environ.copy()
        env["NUMBA_CACHE_DIR"] = os.path.join(work, "cache-warm")

        def median_wall(command: list[str]) -> float:
            return bench.median([_wall(command, env, work) for _ in range(runs)])

        import_numba = median_wall([sys.executable, "-c", "import numba"])
        result["import_numba"] = import_numba
        say(f"  python -c 'import numba'           {import_numba * 1e3:7.1f} ms")
        for label, extra in (("--help", ["--help"]), ("list", ["list"]),
                             ("info mse", ["info", "mse"])):
            seconds = median_wall(lossjit_cmd + extra)
            probe = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, *extra], env=env,
                                   cwd=work, capture_output=True, text=True)
            imported = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "?"
            result[label] = {"seconds": seconds, "imports": imported}
            say(f"  lossjit {label:<26} {seconds * 1e3:7.1f} ms  (imports of numba/numpy/"
                f"scipy: {imported})")
        if not preds.exists():
            say("  data/preds.npy not found: compute timings skipped")
            return result
        compute = lossjit_cmd + ["compute", "mse", str(preds), str(targets)]
        cold = []
        for k in range(colds):
            env["NUMBA_CACHE_DIR"] = os.path.join(work, f"cache-cold-{k}")
            cold.append(_wall(compute, env, work))
        warm = median_wall(compute)  # the cache of the last cold run is now warm
        result["compute_warm"] = {"seconds": warm, "ratio_to_import_numba": warm / import_numba}
        result["compute_cold"] = {"seconds": bench.median(cold), "samples": cold}
        say(f"  compute mse, warm cache              {warm * 1e3:7.1f} ms  = "
            f"{warm / import_numba:.2f}x import numba")
        say(f"  compute mse, empty cache (first run) {bench.median(cold) * 1e3:7.1f} ms  "
            f"(median of {colds}, each a fresh NUMBA_CACHE_DIR)")
    return result


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------

_DETERMINISM_CHILD = """
import hashlib, json, sys
sys.path.insert(0, sys.argv[2])  # the checkout, for lossjit_bench
import numpy as np
import lossjit
import lossjit_bench as bench
from lossjit import blocking
sizes = {"classes": (100_000, 10)}
names, dtypes = json.loads(sys.argv[1])
out = {}
for name in names:
    for dtype in dtypes:
        inputs = bench.make_inputs(name, sizes.get(bench.input_kind(name), 1_000_000), dtype)
        p, t, params = inputs.predictions, inputs.targets, inputs.params
        entry = {}
        for mode, threshold in (("parallel", 0), ("serial", 1 << 62)):
            blocking.PARALLEL_MIN = threshold
            value, grad = lossjit.value_and_grad(name, p, t, **params)
            alone = lossjit.loss(name, p, t, **params)
            entry[mode] = [float(value).hex(), float(alone).hex(),
                           hashlib.sha1(grad.tobytes()).hexdigest()]
        out[name + " " + dtype] = entry
print(json.dumps(out))
"""


def determinism(args: argparse.Namespace) -> dict[str, Any]:
    counts = (1, 2, 4)
    if args.quick:
        names, dtypes = ["mse", "cross_entropy"], ["float32"]
    else:
        names, dtypes = list(FAMILY_ORDER), list(DTYPES)
    say(f"\n== determinism: {len(names)} losses x {len(dtypes)} dtypes at 1e6 numbers, "
        f"NUMBA_NUM_THREADS={counts}, serial vs parallel kernel, value_and_grad vs loss")
    outputs = {}
    for count in counts:
        env = os.environ.copy()
        env["NUMBA_NUM_THREADS"] = str(count)
        proc = subprocess.run([sys.executable, "-c", _DETERMINISM_CHILD,
                               json.dumps([names, dtypes]), str(ROOT)], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            say(f"  threads={count}: failed: {proc.stderr.strip()[-300:]}")
            return {"error": proc.stderr.strip()[-1000:]}
        outputs[count] = json.loads(proc.stdout.strip().splitlines()[-1])
    problems = []
    reference = outputs[counts[0]]
    for key, entry in reference.items():
        for count in counts[1:]:
            if outputs[count][key] != entry:
                problems.append(f"{key}: threads={count} differs from threads={counts[0]}")
        if entry["parallel"] != entry["serial"]:
            problems.append(f"{key}: serial and parallel kernels differ")
        if entry["parallel"][0] != entry["parallel"][1]:
            problems.append(f"{key}: value_and_grad and loss give different values")
    for problem in problems:
        say("  " + problem)
    say(f"  {len(reference)} cases: " + ("all bit-identical" if not problems else
                                         f"{len(problems)} differences"))
    return {"threads": list(counts), "cases": len(reference), "problems": problems,
            "bit_identical": not problems}


# ---------------------------------------------------------------------------------------------
# Accuracy
# ---------------------------------------------------------------------------------------------


def _exact_terms(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-term losses in float64 from the float32 inputs (exact for mse: a float32
    difference squared is exact in float64)."""
    x = x.astype(np.float64)
    if name == "mse":
        e = x - y.astype(np.float64)
        return e * e
    if name == "l1":
        return np.abs(x - y.astype(np.float64))
    if name == "bce_with_logits":
        return np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    if name == "cross_entropy":
        top = x.max(axis=1)
        lse = top + np.log(np.exp(x - top[:, None]).sum(axis=1))
        return lse - x[np.arange(len(y)), y]
    raise KeyError(name)


def accuracy(args: argparse.Namespace) -> dict[str, Any]:
    import lossjit

    n = 1_000_000 if args.quick else 10_000_000
    say(f"\n== accuracy: float32 losses over {n:.0e} numbers vs an exact float64 + math.fsum "
        "reference (relative error)")
    results = {}
    for name in ("mse", "l1", "bce_with_logits", "cross_entropy"):
        size = (n // 10, 10) if name == "cross_entropy" else n
        inputs = bench.make_inputs(name, size, np.float32, seed=7)
        x, y = inputs.predictions, inputs.targets
        exact = math.fsum(_exact_terms(name, x, y).tolist()) / (x.shape[0] if x.ndim == 2
                                                                  else x.size)
        found = {"lossjit": lossjit.loss(name, x, y),
                 "numpy_float32": bench.reference(name, x, y, grad=False)[0]}
        if "torch" in args.peers and not bench.peer_available("torch"):
            torch_fn = bench_peers._torch_loss(name, {})
            torch = bench_peers._torch()
            with torch.no_grad():
                found["torch_float32"] = float(torch_fn(torch.from_numpy(x),
                                                        torch.from_numpy(y)))
        errors = {k: abs(v - exact) / abs(exact) for k, v in found.items()}
        results[name] = {"exact": exact, "values": found, "relative_error": errors}
        say(f"  {name:<16} " + "  ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    return {"elements": n, "losses": results}


# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------


def _case_label(case: dict[str, Any]) -> str:
    return f"{case['loss']} {bench.format_shape(case['shape'])} {case['dtype']}"


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The performance issue's targets, each met or missed, with the figures."""
    out: list[dict[str, Any]] = []
    cases = [c for c in report.get("cases", []) if "times" in c]

    def add(name: str, met: bool | None, figure: str, misses: list[str] | None = None) -> None:
        out.append({"target": name, "met": met, "figure": figure, "misses": misses or []})

    big = [c for c in cases if c["loss"] in bench.ELEMENTWISE and c["elements"] >= 10_000_000]
    if big:
        fracs = [(c["fraction_of_triad"]["lossjit_out"], _case_label(c)) for c in big]
        low = [f"{label}: {100 * f:.0f}%" for f, label in fracs if f < 0.75]
        add("element-wise 1e7 with out=: >= 75% of the 2-thread triad", not low,
            f"min {100 * min(fracs)[0]:.0f}% ({min(fracs)[1]}), max {100 * max(fracs)[0]:.0f}%",
            low)
        roofs = [(c["roofline"]["fraction"], _case_label(c)) for c in big
                 if (c.get("roofline") or {}).get("fraction") is not None]
        if roofs:
            low = [f"{label}: {100 * f:.0f}%" for f, label in roofs if f < ROOFLINE_TARGET]
            add(f"element-wise 1e7 with out=: >= {100 * ROOFLINE_TARGET:.0f}% of the roofline "
                "(max of memory and transcendental time)", not low,
                f"min {100 * min(roofs)[0]:.0f}% ({min(roofs)[1]}), "
                f"max {100 * max(roofs)[0]:.0f}%", low)
        torch_ratios = [(bench.speedup(c, "torch", "lossjit"), _case_label(c)) for c in big
                        if bench.speedup(c, "torch", "lossjit") is not None]
        if torch_ratios:
            low = [f"{label}: {r:.2f}x" for r, label in torch_ratios if r < 3]
            add("element-wise 1e7 without out=: >= 3x faster than torch autograd", not low,
                f"min {min(torch_ratios)[0]:.2f}x ({min(torch_ratios)[1]})", low)
    for peer, base in (("torch", "lossjit"), ("jax", "lossjit"), ("sklearn", "lossjit_out")):
        relevant = [c for c in cases if c["elements"] >= 100_000
                    or bench.input_kind(c["loss"]) == "classes"]
        pairs = [(bench.speedup(c, peer, base), _case_label(c)) for c in relevant
                 if bench.speedup(c, peer, base) is not None]
        if not pairs:
            continue
        slow = [f"{label}: {r:.2f}x" for r, label in pairs if r < 1]
        add(f"every family >= 1e5 (CE/focal: all four shapes): faster than {peer}", not slow,
            f"{len(pairs) - len(slow)}/{len(pairs)} cases faster; min {min(pairs)[0]:.2f}x "
            f"({min(pairs)[1]})", slow)
    ce_sk = [(bench.speedup(c, "sklearn", "lossjit_out"), _case_label(c)) for c in cases
             if c["loss"] == "cross_entropy" and bench.speedup(c, "sklearn", "lossjit_out")]
    if ce_sk:
        low = [f"{label}: {r:.2f}x" for r, label in ce_sk if r < 2]
        add("cross_entropy >= 2x ahead of sklearn _loss (within reach, not required)", not low,
            f"min {min(ce_sk)[0]:.2f}x ({min(ce_sk)[1]})", low)
    small = report.get("small_call")
    if small:
        times = small["times"]
        add("small call mse 1e3 float32: median < 8 us incl. Python", times["lossjit"] < 8e-6,
            f"{times['lossjit'] * 1e6:.2f} us")
        for mine, theirs, label in (("lossjit", "numpy", "mse 1e3 float32"),
                                    ("ce_lossjit", "ce_numpy", "cross_entropy (64, 10)")):
            if mine in times and theirs in times:
                r = times[mine] / times[theirs]
                add(f"small call {label}: at most 1.5x its plain NumPy form", r <= 1.5,
                    f"{r:.2f}x ({times[mine] * 1e6:.2f} us against {times[theirs] * 1e6:.2f} "
                    "us)")
        if "torch" in times:
            r = times["torch"] / times["lossjit"]
            add("small call: >= 2x faster than torch autograd", r >= 2, f"{r:.2f}x")
    mem = report.get("memory")
    if mem and mem.get("runs"):
        lj = [r for r in mem["runs"] if r["impl"] == "lossjit"]
        if lj:
            worst = max(r["beyond_gradient_in_nc"] for r in lj)
            add("memory: cross_entropy allocates nothing of size N*C beyond the gradient",
                worst < 0.5, f"peak RSS beyond the gradient: {worst:.2f} x N*C (worst dtype)")
    cli = report.get("cli")
    if cli:
        fast = [(cli[k]["seconds"], k) for k in ("--help", "list", "info mse") if k in cli]
        if fast:
            slow = [f"{k}: {s * 1e3:.0f} ms" for s, k in fast if s >= 0.15]
            numba = [f"{k} imports numba" for k in ("--help", "list", "info mse")
                     if k in cli and "numba" in cli[k]["imports"]]
            add("CLI --help/list/info: no numba import, < 0.15 s", not slow and not numba,
                ", ".join(f"{k} {s * 1e3:.0f} ms" for s, k in fast), slow + numba)
        if "compute_warm" in cli:
            r = cli["compute_warm"]["ratio_to_import_numba"]
            add("CLI compute mse, warm cache: <= 2.5x python -c 'import numba'", r <= 2.5,
                f"{r:.2f}x ({cli['compute_warm']['seconds'] * 1e3:.0f} ms vs "
                f"{cli['import_numba'] * 1e3:.0f} ms)")
            cold = cli["compute_cold"]["seconds"]
            add("CLI compute mse, empty cache: first run < 2 s", cold < 2, f"{cold:.2f} s")
    det = report.get("determinism")
    if det and "bit_identical" in det:
        add("determinism: bit-identical for 1/2/4 threads and serial vs parallel",
            det["bit_identical"], f"{det['cases']} cases", det["problems"])
    acc = report.get("accuracy")
    if acc and "losses" in acc:
        errors = [(v["relative_error"]["lossjit"], k) for k, v in acc["losses"].items()]
        bad = [f"{k}: {e:.1e}" for e, k in errors if e > 1e-7]
        add(f"accuracy: float32 losses over {acc['elements']:.0e} within 1e-7 relative", not bad,
            ", ".join(f"{k} {e:.1e}" for e, k in errors), bad)
    return out


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def source_state() -> dict[str, Any]:
    """The commit and the uncommitted changes to lossjit/ that the run measured."""
    def git(*words: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(ROOT), *words], capture_output=True,
                                  text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    changed = git("status", "--porcelain", "--", "lossjit")
    return {"commit": git("rev-parse", "HEAD"),
            "uncommitted": changed.splitlines() if changed else []}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small subset (smoke test)")
    parser.add_argument("--json", metavar="PATH", help="where to write the results "
                        "(default for a complete run: benchmarks/results.json)")
    parser.add_argument("--losses", nargs="+", metavar="NAME", help="only these losses")
    parser.add_argument("--peers", nargs="+", default=list(bench.PEERS),
                        choices=list(bench.PEERS), help="peers to compare with")
    parser.add_argument("--skip", nargs="+", default=[], choices=PARTS, help="parts to skip")
    parser.add_argument("--repeat", type=int, default=7, help="samples per timing")
    parser.add_argument("--min-time", type=float, default=0.25,
                        help="seconds of calls per implementation and case (split in samples)")
    parser.add_argument("--max-time", type=float, default=3.0,
                        help="fewer samples (>= 3) where this many seconds would not suffice")
    parser.add_argument("--triad-n", type=float, default=2e7, help="triad array length")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each case, wait up to this long for other processes to "
                        "use less than 0.2 of a core (a shared machine)")
    parser.add_argument("--retries", type=int, default=0, metavar="N",
                        help="time a disturbed case (other processes used > 0.2 of a core) up "
                        "to N more times, after waiting for a quiet moment; keep the quietest")
    parser.add_argument("--no-roofline", dest="roofline", action="store_false",
                        help="leave out the roofline columns (they measure vecmath's speed: "
                        "a few seconds of compiling; --quick leaves them out)")
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.quick:
        args.roofline = False
    if args.memory_child:
        impl, rows, cols, dtype = args.memory_child
        memory_child(impl, int(rows), int(cols), dtype)
        return 0
    started = time.time()
    report: dict[str, Any] = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                              "quick": args.quick, "started": time.strftime(
                                  "%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                              "notes": NOTES}
    missing = {peer: bench.peer_available(peer) for peer in args.peers}
    missing = {peer: why for peer, why in missing.items() if why}
    for peer, why in missing.items():
        say(f"note: {peer} is {why}: its columns are skipped "
            "(pip install -e '.[bench]' installs the peers)")
    report["peers_missing"] = missing
    report["source"] = source_state()

    triad_n = 2e6 if args.quick else args.triad_n
    triad = {"start": {str(k): bench.triad_bandwidth(triad_n, k) for k in (1, 2)}}
    say(f"== triad bandwidth (float64, n = {triad_n:.0e}): 1 thread "
        f"{triad['start']['1']['gbs']:.1f} GB/s, 2 threads {triad['start']['2']['gbs']:.1f} GB/s")
    report["machine"] = bench.machine_info()
    machine = report["machine"]
    say(f"machine: {machine['cpu']}, {machine['cores']} cores, load {machine['load_average']}; "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v))

    if "cases" not in args.skip:
        args.triad_n = triad_n
        report["cases"] = run_cases(args, triad["start"]["2"]["gbs"])
    parts = (("small_call", "small", small_call), ("memory", "memory", memory),
             ("cli", "cli", cli_timings), ("determinism", "determinism", determinism),
             ("accuracy", "accuracy", accuracy))
    for key, part, function in parts:
        if part in args.skip:
            continue
        try:
            report[key] = function(args)
        except Exception as exc:  # report and go on: one part must not lose the run
            say(f"{key}: FAILED {type(exc).__name__}: {exc}")
            report[key] = {"error": f"{type(exc).__name__}: {exc}"}

    triad["end"] = {str(k): bench.triad_bandwidth(triad_n, k, keep=False) for k in (1, 2)}
    report["triad"] = triad
    say(f"\n== triad bandwidth at the end: 1 thread {triad['end']['1']['gbs']:.1f} GB/s, "
        f"2 threads {triad['end']['2']['gbs']:.1f} GB/s")
    report["machine_end"] = {"load_average": bench.machine_info()["load_average"],
                             "threads": bench.machine_info()["threads"]}
    report["targets"] = targets(report)
    say("\n== targets of the performance issue")
    for item in report["targets"]:
        state = {True: "MET   ", False: "MISSED", None: "?     "}[item["met"]]
        say(f"  {state} {item['target']}: {item['figure']}")
        for miss in item["misses"][:12]:
            say(f"           - {miss}")
        if len(item["misses"]) > 12:
            say(f"           - ... and {len(item['misses']) - 12} more")
    noisy = [_case_label(c) for c in report.get("cases", [])
             if (c.get("foreign_load") or 0.0) > QUIET_LOAD]
    report["noisy_cases"] = noisy
    if noisy:
        say(f"\nwarning: {len(noisy)} of {len(report.get('cases', []))} cases ran while other "
            "processes used more than 0.2 of a core (column 'load'); their timings, and any "
            "parallel kernel's above all, are disturbed: rerun on a quiet machine")
    report["seconds"] = time.time() - started
    complete = not (args.quick or args.skip or args.losses)
    path = args.json or (str(ROOT / "benchmarks" / "results.json") if complete else None)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=1, default=str) + "\n")
        say(f"\nresults written to {path}")
    say(f"done in {report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
