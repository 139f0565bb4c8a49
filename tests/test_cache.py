"""The compiled-kernel cache: ``lossjit.cache.cache_dir``, ``clear`` and ``warm``.

The proof that ``warm`` works runs in real processes with a fresh ``NUMBA_CACHE_DIR``: one
warms the cache, the next calls every loss in every form the API offers (both dtypes, value
and gradient, value only, ``reduction="none"``, inputs large enough for the parallel kernels,
other shapes than warm's) and finds, in every kernel's Numba statistics, nothing compiled.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import platformdirs
import pytest

import lossjit
from lossjit import cache, registry
from lossjit.blocking import PARALLEL_MIN
from lossjit.errors import LossjitError, UnknownLossError
from lossjit.layouts import examples_for
from lossjit.plan import make_plan

REPO = Path(__file__).resolve().parent.parent


def python(code: str, cache_path: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (this lossjit) with ``NUMBA_CACHE_DIR=cache_path``."""
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(cache_path)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)


def run_python(code: str, cache_path: Path) -> str:
    """The stdout of ``code`` run by :func:`python`, which must succeed."""
    result = python(code, cache_path)
    assert result.returncode == 0, result.stderr
    return result.stdout


def numba_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".nbi", ".nbc"))


# --- cache_dir ------------------------------------------------------------------------------


def test_cache_dir_is_numba_cache_dir_when_set(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert cache.cache_dir() == str(tmp_path / "mine")
    assert cache.use_cache_dir() == str(tmp_path / "mine")
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "mine")
    assert not (tmp_path / "mine").exists()  # nothing is created


@pytest.mark.parametrize("unset", ["absent", "empty"])
def test_cache_dir_is_per_user_and_per_version_by_default(monkeypatch, unset):
    if unset == "absent":
        monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    else:
        monkeypatch.setenv("NUMBA_CACHE_DIR", "")  # Numba reads an empty value as unset
    expected = os.path.join(platformdirs.user_cache_dir("lossjit"), lossjit.__version__)
    assert cache.cache_dir() == expected == cache.default_cache_dir()
    assert cache.use_cache_dir() == expected
    assert os.environ["NUMBA_CACHE_DIR"] == expected


# --- clear ----------------------------------------------------------------------------------

COMPUTE = textwrap.dedent("""
    import numpy as np, lossjit
    lossjit.value_and_grad("mse", np.ones(3), np.zeros(3))
    lossjit.value_and_grad("l1", np.ones(3, np.float32), np.zeros(3, np.float32))
""")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """A cache directory holding the files of a few kernels, compiled by another process."""
    root = tmp_path_factory.mktemp("compiled") / "cache"
    run_python(COMPUTE, root)
    return root


@pytest.fixture
def root(compiled, tmp_path):
    """A copy of ``compiled`` of the test's own."""
    shutil.copytree(compiled, tmp_path / "cache")
    return tmp_path / "cache"


def test_clear_removes_lossjit_kernel_files_and_nothing_else(root):
    ours = numba_files(root)
    assert ours and all(p.parent.name.startswith("kernels_") for p in ours)
    kernels_dir = ours[0].parent

    # What else a shared NUMBA_CACHE_DIR may hold: other projects' Numba caches (one of them
    # in a directory also called kernels), and files that are not Numba's.
    others = {
        root / ("other_" + "a" * 40) / "model.step-12.py311.nbi": b"index",
        root / ("other_" + "a" * 40) / "model.step-12.py311.1.nbc": b"code",
        root / ("kernels_" + "b" * 40) / "physics.force-7.py311.nbi": b"index",
        root / ("kernels_" + "b" * 40) / "physics.force_serial-7.py311.1.nbc": b"code",
        kernels_dir / "helpers.dot-3.py311.nbi": b"index",
        kernels_dir / "notes.txt": b"notes",
        root / "README": b"readme",
        root / "_blocks.mse_serial_0123456789ab-82.py311.nbi.bak": b"backup",
    }
    for path, data in others.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    assert cache.cache_files(root) == ours
    size = sum(p.stat().st_size for p in ours)
    assert cache.usage(root) == (len(ours), size)
    assert cache.clear(root) == (len(ours), size)
    assert not any(p.exists() for p in ours)
    for path, data in others.items():
        assert path.read_bytes() == data, path
    assert kernels_dir.is_dir()  # it still holds other files
    assert cache.clear(root) == (0, 0)


def test_clear_removes_an_emptied_source_directory_but_keeps_the_cache_directory(root):
    removed, freed = cache.clear(root)
    assert removed >= 4 and freed > 0
    assert root.is_dir() and list(root.iterdir()) == []


def test_clear_is_safe_without_a_directory(tmp_path, monkeypatch):
    assert cache.clear(tmp_path / "missing") == (0, 0)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "also-missing"))
    assert cache.clear() == (0, 0) and cache.usage() == (0, 0)
    (tmp_path / "a-file").write_text("x")
    assert cache.clear(tmp_path / "a-file") == (0, 0)
    assert (tmp_path / "a-file").read_text() == "x"


def test_clear_defaults_to_cache_dir(root, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(root))
    count = len(numba_files(root))
    assert cache.usage()[0] == count
    assert cache.clear()[0] == count
    assert numba_files(root) == []


@pytest.mark.parametrize("cut", ["empty", "half"])
def test_a_truncated_cache_file_heals_and_clear_still_removes_it(root, cut):
    """A truncated file is dropped and its kernel compiled again, with one CacheWarning (the
    rest of the damage cases are in test_cache_faults.py); clear() removes what is left."""
    for path in numba_files(root):
        data = path.read_bytes()
        path.write_bytes(b"" if cut == "empty" else data[:len(data) // 2])
    healed = python(COMPUTE + "print('ok')", root)
    assert healed.returncode == 0, healed.stderr
    assert healed.stdout.strip() == "ok"
    assert healed.stderr.count("CacheWarning: dropped a damaged cache file") == 1
    again = python(COMPUTE + "print('ok')", root)
    assert again.returncode == 0 and "Warning" not in again.stderr, again.stderr
    assert cache.clear(root)[0] > 0 and numba_files(root) == []


# --- warm -----------------------------------------------------------------------------------

# One dtype, to keep the suite quick: warm's dtypes are a loop over the same calls (its inputs in
# both dtypes are checked by test_warm_inputs_come_from_the_layout_and_reach_every_kernel_set).
WARM = textwrap.dedent("""
    import json
    from dataclasses import asdict
    from lossjit import cache
    print(json.dumps([asdict(r) for r in cache.warm(dtypes=("float64",), jobs=2)]))
""")

# Every loss as a user calls it, written independently of warm's own inputs: other shapes,
# other target dtypes, options set, and both sizes (serial and parallel kernels).
USE = textwrap.dedent("""
    import json
    import numpy as np
    import lossjit
    from lossjit import kernels, registry
    from lossjit.blocking import PARALLEL_MIN
    from lossjit.layouts import examples_for

    rng = np.random.default_rng(1)
    used = set()
    for dt in (np.float64,):
        for n in (7, PARALLEL_MIN):
            def normal(*shape):
                return rng.normal(size=shape).astype(dt)

            def unit(*shape):
                return rng.uniform(0.02, 0.98, size=shape).astype(dt)

            def softmax(*shape):
                e = np.exp(rng.normal(size=shape))
                return (e / e.sum(axis=1, keepdims=True)).astype(dt)

            def use(name, x, y=None, **options):
                used.add(registry.resolve(name).name)
                lossjit.value_and_grad(name, x, y, **options)
                lossjit.loss(name, x, y, **options)
                lossjit.value_and_grad(name, x, y, reduction="none", **options)
                lossjit.loss(name, x, y, reduction="none", **options)
                lossjit.grad(name, x, y, reduction="sum", **options)
                terms = np.shape(lossjit.loss(name, x, y, reduction="none", **options))
                lossjit.value_and_grad(name, x, y, sample_weight=np.ones(terms), **options)

            def use_hessian(name, x, y=None, **options):
                use(name, x, y, **options)
                lossjit.grad_hess(name, x, y, **options)
                lossjit.grad_hess(name, x, y, reduction="none", **options)

            def signs(*shape):
                return rng.choice([-1.0, 1.0], size=shape).astype(dt)

            use_hessian("mse", normal(n), normal(n))
            use_hessian("mae", normal(n, 2), normal(n, 2))
            use_hessian("huber", normal(n), normal(n), delta=0.5)
            use_hessian("smooth_l1", normal(n, 1, 1), normal(n, 1, 1), beta=0.2)
            use_hessian("log_cosh", normal(n), normal(n))
            use_hessian("pseudo_huber", normal(n, 2), normal(n, 2), delta=2.0)
            use_hessian("pinball", normal(n), normal(n), quantile=0.9)
            use_hessian("poisson_nll", normal(n), unit(n) * 4)
            use_hessian("poisson_nll", unit(n), unit(n) * 4, log_input=False, full=True)
            use_hessian("tweedie", normal(n, 2), unit(n, 2).round() * 3, power=1.2)
            use_hessian("gamma_nll", normal(n), unit(n) * 5)
            use_hessian("gaussian_nll", normal(n, 2), normal(n, 2), var=unit(n, 1))
            lossjit.value_and_grad("gaussian_nll", normal(n), normal(n), var=0.5,
                                   wrt=("predictions", "var"))
            use_hessian("sigmoid_focal", normal(n), unit(n).round(), alpha=-1.0, gamma=1.0)
            use_hessian("bce", unit(n), unit(n).round())
            use_hessian("binary_cross_entropy", unit(n, 3), unit(n, 3),
                        weight=np.array([1.0, 2, 3]))
            use_hessian("bce_with_logits", normal(n), unit(n))
            use_hessian("bce_with_logits", normal(n, 3), unit(n, 3),
                        weight=np.array([1.0, 2, 3]), pos_weight=np.array([2.0]))
            use_hessian("bce_with_logits", normal(n, 3), unit(n, 3),
                        pos_weight=np.array([1.0, 2, 3]))
            use_hessian("kl_div", normal(n), unit(n))
            use_hessian("kl_div", normal(n, 3), normal(n, 3), log_target=True)
            lossjit.value_and_grad("kl_div", normal(n, 3), unit(n, 3), reduction="batchmean")
            use_hessian("hinge_embedding", normal(n), signs(n), margin=0.5)
            use_hessian("soft_margin", normal(n, 2), signs(n, 2))
            use("multilabel_soft_margin", normal(n, 3), unit(n, 3).round(),
                weight=np.array([1.0, 2, 3]))
            c = 5
            labels = rng.integers(0, c, n).astype(np.int32)
            labels[0] = -100
            one_hot = np.eye(c, dtype=dt)[rng.integers(0, c, n)]
            for name in ("ce", "focal"):
                use(name, normal(n, c), labels)
                use(name, normal(c), np.array(2))
                use(name, normal(n, c, 2), rng.integers(0, c, (n, 2)))
                use(name, normal(n, c), one_hot)
                use(name, softmax(n, c), labels, from_logits=False)
                use(name, softmax(n, c), one_hot, from_logits=False)
            use("ce", normal(n, c), softmax(n, c), label_smoothing=0.1, weight=np.ones(c))
            use_hessian("ce", normal(n, c), labels, weight=np.ones(c))
            use_hessian("ce", normal(n, c, 2), softmax(n, c, 2))
            use("poly1", normal(n, c), labels, epsilon=2.0)
            use("poly1", normal(n, c), softmax(n, c))
            use("nll", normal(n, c), labels, weight=np.ones(c))
            use("multi_margin", normal(n, c), np.maximum(labels, 0), p=2, weight=np.ones(c))
            use("focal", normal(n, c), labels, alpha=0.25, gamma=1.5)
            use("focal", softmax(n, c), one_hot, alpha=np.ones(c), from_logits=False)
            use("contrastive", normal(n, 2, 3), rng.integers(0, 2, n), margin=2.0)
            use("triplet", normal(n, 3, 3))
            use("triplet", normal(n, 3, 3), swap=True, p=1.0)
            use("cosine_embedding", normal(n, 2, 3), signs(n), margin=0.2)
            use("margin_ranking", normal(n, 2), signs(n, 1))
            # A loss added to the catalogue after this script was written: its layout's
            # examples, in other sizes and widths than warm's.
            for name in registry.names():
                if name not in used:
                    for example in examples_for(registry.resolve(name).layout, n + 5, dt,
                                                seed=3, width=3):
                        use(name, example.predictions, example.targets, **example.options)
    stats = {}
    for name in kernels.__all__:
        s = getattr(kernels, name).stats
        stats[name] = [sum(s.cache_misses.values()), sum(s.cache_hits.values())]
    print(json.dumps(stats))
""")


def test_warm_compiles_everything_the_api_uses(tmp_path):
    root = tmp_path / "cache"
    warmed = json.loads(run_python(WARM, root).strip().splitlines()[-1])
    assert [w["name"] for w in warmed] == lossjit.names()
    for w in warmed:
        assert w["errors"] == [] and w["compiled"] > 0 and w["loaded"] == 0, w
    from lossjit import kernels

    assert sorted(k for w in warmed for k in w["kernels"]) == sorted(kernels.__all__)
    # serial and parallel, one dtype: two specialisations per kernel pair
    assert sum(w["compiled"] for w in warmed) == len(kernels.__all__)

    stats = json.loads(run_python(USE, root).strip().splitlines()[-1])
    compiled = {name: misses for name, (misses, hits) in stats.items() if misses}
    assert not compiled, f"compiled after warm: {compiled}"
    unused = [name for name, (misses, hits) in stats.items() if not hits]
    assert not unused, f"the test does not use {unused}"

    # warm again: everything loads; and every file it made is one clear() knows
    again = json.loads(run_python(WARM, root).strip().splitlines()[-1])
    assert all(w["compiled"] == 0 and w["loaded"] > 0 for w in again), again
    assert cache.clear(root)[0] > 0
    assert numba_files(root) == []


@pytest.fixture
def cube_loss():
    from numba import njit

    @njit
    def cube(x, y):
        e = x - y
        return e * e * e, 3.0 * e * e

    yield lossjit.register("warm_test_cube", pointwise=cube, replace=True)
    registry._specs.pop("warm_test_cube", None)
    registry._aliases.pop("warm_test_cube", None)


def test_warm_in_process_with_a_registered_loss_and_progress(cube_loss):
    seen = []
    results = cache.warm(["mse", "warm_test_cube", "mean_squared_error"], dtypes=["float64"],
                         parallel=False, progress=seen.append, jobs=2)
    assert [r.name for r in results] == ["mse", "warm_test_cube"] == [r.name for r in seen]
    mse, cube_result = results
    # mse's one kernel set writes the Hessian too: grad_hess runs the same two kernels
    mse_kernels = registry.resolve("mse").kernel_set()
    assert mse.kernels == ("mse", "mse_parallel") and mse_kernels.hessian
    cube_kernels = cube_loss.kernel_set()
    assert cube_result.kernels == (cube_kernels.name, cube_kernels.name + "_parallel")
    assert cube_kernels.serial.py_func.__qualname__.startswith("user_warm_test_cube_serial_")
    assert cube_kernels.parallel.py_func.__qualname__.startswith(
        "user_warm_test_cube_parallel_")
    assert not cube_kernels.hessian  # a user's loss has no Hessian: no grad_hess call
    # value_and_grad and loss for "mean" and "none", then grad_hess where there is a Hessian
    assert mse.calls == 5 and cube_result.calls == 4 and not mse.errors
    assert mse.seconds >= 0


def test_warm_rejects_bad_arguments():
    with pytest.raises(LossjitError, match="dtypes"):
        cache.warm(["mse"], dtypes=["int32"])
    with pytest.raises(LossjitError, match="jobs"):
        cache.warm(["mse"], jobs=0)
    with pytest.raises(UnknownLossError):
        cache.warm(["no_such_loss"])


def test_option_sets_come_from_the_registry():
    sets = cache.option_sets(registry.resolve("cross_entropy"))
    assert sets[0] == {} and {"from_logits": False} in sets
    assert set(sets[-1]) == {"weight"}
    assert cache.option_sets(registry.resolve("mse")) == [{}]
    assert isinstance(sets[-1]["weight"], np.ndarray)
    # a required option is in every set (gaussian_nll's var)
    assert all("var" in options for options in cache.option_sets(registry.resolve("gaussian_nll")))
    assert {"swap": True} in cache.option_sets(registry.resolve("triplet"))


@pytest.mark.parametrize("name", [spec.name for spec in registry.BUILTIN])
def test_warm_inputs_come_from_the_layout_and_reach_every_kernel_set(name):
    """What warm calls a loss with is its layout's examples (``spec.layout.examples``) under
    each of its option sets: every one is valid, together they run every kernel set of the
    loss (every variant its layout can choose), and the large ones its parallel kernels."""
    spec = registry.resolve(name)
    for dtype in (np.float32, np.float64):
        examples = examples_for(spec.layout, cache._SMALL, dtype, width=cache._WIDTH)
        assert examples and all(ex.predictions.dtype == dtype for ex in examples)
        sets = cache.option_sets(spec)
        variants = cache._variants(spec, dtype, cache._SMALL)
        assert len(variants) == len(examples) * len(sets)
        for i, (_, x, _, options) in enumerate(variants):
            ex = examples[i // len(sets)]
            assert np.array_equal(x, ex.predictions)
            assert all(np.array_equal(options[key], value) for key, value in ex.options.items())
        reached = set()
        for what, x, y, options in variants:
            plan = make_plan(name, **options)
            try:
                inputs = plan.lay_out(x, y)
            except LossjitError as exc:
                pytest.fail(f"warm's input {what!r} is refused: {exc}")
            reached.add(plan.kernel_set(inputs).name)
        assert reached == {kernels.name for kernels in spec.kernel_sets()}
        # the large inputs (warm's parallel=True) run the parallel twins
        for what, x, y, options in cache._variants(spec, dtype, cache._LARGE):
            plan = make_plan(name, **options)
            inputs = plan.lay_out(x, y)
            kernels = plan.kernel_set(inputs)
            runs_parallel = kernels.pick(inputs.x.size) is kernels.parallel
            assert runs_parallel, (
                f"warm's large input {what!r} has {inputs.x.size} numbers, fewer than "
                f"PARALLEL_MIN = {PARALLEL_MIN}: it runs the serial kernel")


def test_warm_reports_a_failed_worker(monkeypatch):
    monkeypatch.setattr(cache, "_SERVE", "import sys; sys.exit('boom: no compiler')")
    with pytest.raises(RuntimeError, match="worker process failed: boom: no compiler"):
        cache.warm(["mse", "l1", "huber"], jobs=2)
