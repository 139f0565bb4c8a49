"""The compiled-kernel cache under faults (lossjit.cache, lossjit.jitcache).

Where kernels go (never into the package), a cache directory that cannot be written, damaged
cache files (and a fuzzer of them), concurrent first starts. Each case runs in fresh
processes, so that a crash is a failed test and not a dead pytest: through the API
(``python -c``) and through the real executable (``python -m lossjit`` and the ``lossjit``
script), each with its own NUMBA_CACHE_DIR, TMPDIR and XDG_CACHE_HOME. They run a copy of the
package, which must end the test with no compiled-kernel file in it.

``LOSSJIT_FUZZ_EXAMPLES=N`` runs the fuzzer on N examples (default: a few, for CI).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lossjit
from lossjit import _jit, cache, jitcache

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
SCRIPT = Path(sys.executable).with_name("lossjit")
CLI_ARGS = ["compute", "mse", "data/preds.npy", "data/targets.npy", "--no-grad"]
# The API's run: the loss of the sample data, then the cache directory it used.
API = ("import numpy as np, lossjit\n"
       "from lossjit import cache\n"
       "x, y = np.load('data/preds.npy'), np.load('data/targets.npy')\n"
       "print(repr(lossjit.loss('mse', x, y)))\n"
       "print(cache.cache_dir())\n")
FUZZ_EXAMPLES = int(os.environ.get("LOSSJIT_FUZZ_EXAMPLES", "5"))

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX permissions and signals")


def expected_mse() -> float:
    p, t = np.load(DATA / "preds.npy"), np.load(DATA / "targets.npy")
    return float(np.mean((p - t) ** 2))


def kernel_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".nbi", ".nbc"))


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """A copy of the lossjit package, without __pycache__: what PYTHONPATH points at."""
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(REPO / "lossjit", root / "lossjit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


class Place:
    """A test's world: a directory with data/, its own cache, temporary and XDG dirs."""

    def __init__(self, root: Path, package: Path):
        self.root, self.package = root, package
        (root / "data").mkdir(parents=True)
        for name in ("preds.npy", "targets.npy"):
            shutil.copy(DATA / name, root / "data" / name)
        self.cache = root / "cache"
        self.tmp = root / "tmp"
        self.tmp.mkdir()
        self.fallback = self.tmp / f"lossjit-{os.getuid()}" / lossjit.__version__
        self.xdg = root / "xdg"
        self.env = dict(os.environ, NUMBA_CACHE_DIR=str(self.cache), TMPDIR=str(self.tmp),
                        XDG_CACHE_HOME=str(self.xdg), PYTHONPATH=str(package))

    def run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=self.root, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def api(self) -> subprocess.CompletedProcess:
        return self.run([sys.executable, "-c", API])

    def cli(self, launcher: str, *args: str) -> subprocess.CompletedProcess:
        return self.run(command(launcher) + list(args or CLI_ARGS))


def command(launcher: str) -> list[str]:
    if launcher == "module":
        return [sys.executable, "-m", "lossjit"]
    if not SCRIPT.exists():
        pytest.skip("no lossjit console script next to sys.executable")
    return [str(SCRIPT)]


@pytest.fixture
def place(tmp_path, package) -> Path:
    world = Place(tmp_path, package)
    yield world
    assert kernel_files(package) == [], "compiled kernels were written into the package"


def succeeded(result: subprocess.CompletedProcess) -> str:
    """The stdout of a run that must have exited 0 (a signal is reported as a crash)."""
    if result.returncode < 0:
        pytest.fail(f"crashed with {signal.Signals(-result.returncode).name}:\n"
                    f"{result.stderr[-3000:]}")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def loss_of(stdout: str) -> float:
    value = float(stdout.splitlines()[0])
    assert value == pytest.approx(expected_mse(), rel=1e-12)
    return value


def warning_lines(stderr: str) -> list[str]:
    """The cache warnings of a run: ``...: CacheWarning: ...`` (API) or ``lossjit: warning:``
    (CLI); the API's second line (the source line) is not counted."""
    return [line for line in stderr.splitlines()
            if "CacheWarning: " in line or line.startswith("lossjit: warning: ")]


def other_output(stderr: str) -> list[str]:
    """What stderr says besides cache warnings (and the source lines Python shows with
    them)."""
    warned = warning_lines(stderr)
    return [line for line in stderr.splitlines()
            if line.strip() and line not in warned and not line.startswith("  ")]


def all_sealed(root: Path) -> None:
    """Every cache file under ``root`` is whole and intact."""
    for path in kernel_files(root):
        jitcache.unseal(path.read_bytes(), str(path))


# --- where ----------------------------------------------------------------------------------


def test_without_numba_cache_dir_the_library_uses_the_per_user_directory(place):
    del place.env["NUMBA_CACHE_DIR"]
    used = place.xdg / "lossjit" / lossjit.__version__
    out = succeeded(place.api())
    loss_of(out)
    assert out.splitlines()[1] == str(used)
    files = kernel_files(used)
    assert files and all(p.parent.parent == used and p.parent.name.startswith("kernels_")
                         for p in files)
    listed = place.cli("module", "cache", "path")
    assert succeeded(listed).strip() == str(used)
    assert f"{len(files)} kernel files" in listed.stderr


# --- a cache directory that cannot be used --------------------------------------------------


@pytest.mark.parametrize("launcher", ["api", "module", "script"])
def test_an_unwritable_cache_dir_falls_back_to_a_private_temporary_one(place, launcher):
    (place.root / "a-file").write_text("not a directory")
    place.env["NUMBA_CACHE_DIR"] = str(place.root / "a-file" / "cache")
    result = place.api() if launcher == "api" else place.cli(launcher)
    out = succeeded(result)
    loss_of(out)
    assert len(warning_lines(result.stderr)) == 1 and other_output(result.stderr) == []
    assert (f"cannot write compiled kernels to {place.root / 'a-file' / 'cache'} (Not a "
            f"directory); caching them in {place.fallback} instead") in result.stderr
    assert kernel_files(place.fallback)
    assert (place.fallback.parent.stat().st_mode & 0o777) == 0o700
    if launcher == "api":
        assert out.splitlines()[1] == str(place.fallback)
    else:
        assert succeeded(place.cli(launcher, "cache", "path")).strip() == str(place.fallback)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes a read-only directory")
def test_a_read_only_cache_dir_falls_back(place):
    place.cache.mkdir()
    place.cache.chmod(0o500)
    try:
        result = place.api()
        loss_of(succeeded(result))
        assert "(Permission denied); caching them in" in result.stderr
    finally:
        place.cache.chmod(0o700)
    assert kernel_files(place.cache) == [] and kernel_files(place.fallback)


@pytest.mark.parametrize("launcher", ["api", "module"])
def test_with_no_usable_directory_at_all_nothing_is_cached(place, launcher):
    (place.root / "a-file").write_text("not a directory")
    place.env["NUMBA_CACHE_DIR"] = str(place.root / "a-file" / "cache")
    place.fallback.parent.write_text("someone else's")  # lossjit-<uid> is not a directory
    result = place.api() if launcher == "api" else place.cli(launcher)
    loss_of(succeeded(result))
    [line] = warning_lines(result.stderr)
    assert line.endswith(f"nor to {place.fallback} (not a directory); kernels will not be "
                         "cached")
    assert kernel_files(place.root) == []


# --- damaged files --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, package) -> Path:
    """A cache directory holding the kernel of the API's run, compiled by another process."""
    world = Place(tmp_path_factory.mktemp("pristine"), package)
    loss_of(succeeded(world.api()))
    assert len(kernel_files(world.cache)) == 2  # one index, one data file
    return world.cache


def cached(place: Place, pristine: Path, suffix: str) -> Path:
    """Copy ``pristine`` into the place's cache; its file ending in ``suffix``."""
    shutil.copytree(pristine, place.cache)
    [path] = [p for p in kernel_files(place.cache) if p.name.endswith(suffix)]
    return path


def flip(data: bytes, *where: float) -> bytes:
    """``data`` with runs of bits flipped at relative positions (for a data file, places in
    the object code where, unchecked, they crashed the process with SIGSEGV)."""
    spoilt = bytearray(data)
    for at in (int(len(data) * w) for w in where):
        spoilt[at:at + 16] = bytes(b ^ 0x5A for b in spoilt[at:at + 16])
    return bytes(spoilt)


DAMAGE = {
    "flipped": (lambda data: flip(data, 0.025, 0.05, 0.225), "checksum mismatch"),
    "truncated": (lambda data: data[:len(data) // 3], "truncated"),
    "empty": (lambda data: b"", "empty file"),
    "garbage": (lambda data: b"\x80\x04garbage" * 40, "not a whole lossjit cache file"),
}


@pytest.mark.parametrize(("launcher", "suffix", "damage"), [
    ("api", ".nbc", "flipped"), ("api", ".nbc", "truncated"), ("api", ".nbi", "empty"),
    ("api", ".nbi", "garbage"), ("module", ".nbc", "flipped"), ("script", ".nbi", "flipped"),
])
def test_a_damaged_cache_file_is_dropped_and_the_kernel_compiled_again(
        place, pristine, launcher, suffix, damage):
    path = cached(place, pristine, suffix)
    spoil, why = DAMAGE[damage]
    path.write_bytes(spoil(path.read_bytes()))
    result = place.api() if launcher == "api" else place.cli(launcher)
    loss_of(succeeded(result))
    [line] = warning_lines(result.stderr)
    assert f"dropped a damaged cache file and compiled its kernel again: {path} ({why}" in line
    assert other_output(result.stderr) == []
    assert len(kernel_files(place.cache)) == 2
    all_sealed(place.cache)  # healed: replaced by a whole, intact file


@given(data=st.data())
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
          derandomize="LOSSJIT_FUZZ_EXAMPLES" not in os.environ,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_fuzz_the_cache_loader(tmp_path_factory, package, pristine, data):
    """Whatever happens to the cached files, a fresh process gives the right answer, with
    at most one warning (exactly one when a file changed), and does not crash."""
    place = Place(tmp_path_factory.mktemp("fuzz"), package)
    shutil.copytree(pristine, place.cache)
    files = kernel_files(place.cache)
    changed = False
    for path in data.draw(st.lists(st.sampled_from(files), min_size=1, max_size=2,
                                   unique=True), label="files"):
        before = path.read_bytes()
        after = damage(data, before)
        path.write_bytes(after)
        changed |= after != before
    result = place.api()
    loss_of(succeeded(result))
    assert len(warning_lines(result.stderr)) == int(changed), result.stderr
    assert other_output(result.stderr) == [], result.stderr
    all_sealed(place.cache)


def damage(data: st.DataObject, blob: bytes) -> bytes:
    kind = data.draw(st.sampled_from(["truncate", "flip", "empty", "garbage", "append"]),
                     label="damage")
    if kind == "truncate":
        return blob[:data.draw(st.integers(0, len(blob) - 1), label="at")]
    if kind == "flip":
        spoilt = bytearray(blob)
        for at in data.draw(st.lists(st.integers(0, len(blob) - 1), min_size=1, max_size=8),
                            label="at"):
            spoilt[at] ^= data.draw(st.integers(1, 255), label="xor")
        return bytes(spoilt)
    if kind == "empty":
        return b""
    if kind == "append":
        return blob + data.draw(st.binary(min_size=1, max_size=64), label="tail")
    return data.draw(st.binary(min_size=1, max_size=4096), label="garbage")


# --- concurrent starts ----------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2])
def test_eight_processes_starting_at_once_on_an_empty_cache(place, attempt):
    procs = [subprocess.Popen(command("module") + CLI_ARGS, cwd=place.root, env=place.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    outputs = [succeeded(result) for result in results]
    assert len(set(outputs)) == 1, outputs
    loss_of(outputs[0])
    assert all(result.stderr == "" for result in results), [r.stderr for r in results]
    assert len(kernel_files(place.cache)) == 2
    all_sealed(place.cache)


# --- in this process: the mechanics ---------------------------------------------------------


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No directory resolved, no warning given yet, TMPDIR in the test's directory."""
    monkeypatch.setattr(cache, "_resolved", {})
    monkeypatch.setattr(jitcache, "_warned", set())
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    return tmp_path


def plus_one(x):
    return x + 1.0


def test_seal_and_unseal():
    blob = jitcache.seal(b"payload")
    assert jitcache.unseal(blob) == b"payload"
    for spoilt, why in [(b"", "empty file"), (blob[:10], "not a whole"),
                        (blob[:-1], "truncated (6 of 7 bytes)"),
                        (blob + b"x", "longer than written"),
                        (blob[:-1] + b"P", "checksum mismatch")]:
        with pytest.raises(jitcache.DamagedEntry, match=why.replace("(", r"\(").replace(
                ")", r"\)")):
            jitcache.unseal(spoilt, "f.nbc")


def test_cache_dir_tells_the_fallback_without_creating_anything(fresh, monkeypatch):
    (fresh / "a-file").write_text("x")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(fresh / "a-file" / "cache"))
    assert cache.preferred_cache_dir() == str(fresh / "a-file" / "cache")
    assert cache.cache_dir() == cache.fallback_cache_dir()
    assert cache.fallback_cache_dir().startswith(str(fresh / "tmp"))
    assert list((fresh / "tmp").iterdir()) == []  # nothing created
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(fresh / "fine"))
    assert cache.cache_dir() == str(fresh / "fine") and not (fresh / "fine").exists()


def test_a_kernel_without_any_usable_directory_compiles_and_warns_once(fresh, monkeypatch):
    """(The case of the old ``_cache_ok`` fallback: Numba found no locator.)"""
    (fresh / "a-file").write_text("x")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(fresh / "a-file" / "cache"))
    (fresh / "tmp" / f"lossjit-{os.getuid()}").write_text("x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = _jit._compile(plus_one, cache=True)
        again = _jit._compile(plus_one, cache=True)
        assert compiled(1.0) == 2.0 and again(2.0) == 3.0
        assert compiled.stats.cache_path is None
    [warning] = caught
    assert warning.category is cache.CacheWarning
    assert "will not be cached" in str(warning.message)
    assert warning.filename == __file__  # attributed to the caller, not to lossjit or Numba


def test_a_cache_that_cannot_be_saved_to_warns_once_and_still_computes(fresh, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(fresh / "cache"))
    (fresh / "cache").mkdir()
    (fresh / "cache" / jitcache._subdir(__file__)).write_text("a file in the way")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _jit._compile(plus_one, cache=True)(1.0) == 2.0
        assert _jit._compile(plus_one, cache=True)(1.0) == 2.0
    [warning] = caught
    assert str(warning.message).startswith(f"cannot save compiled kernels to {fresh / 'cache'}")


def test_a_loaded_kernel_reads_the_cache_once_not_per_call(fresh, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(fresh / "cache"))
    _jit._compile(plus_one, cache=True)(1.0)  # compiled and saved
    kernel = _jit._compile(plus_one, cache=True)
    asked = []
    where = jitcache.KernelCache._where
    monkeypatch.setattr(jitcache.KernelCache, "_where",
                        lambda self: asked.append(self) or where(self))
    assert kernel(1.0) == 2.0
    loaded = len(asked)
    assert loaded >= 1
    for _ in range(1000):
        kernel(1.0)
    assert len(asked) == loaded
    assert sum(kernel.stats.cache_hits.values()) == 1


def test_an_entry_of_another_signature_in_the_data_file_is_not_used(fresh, monkeypatch):
    """Two processes that chose the same data file: the file names the signature it holds."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(fresh / "cache"))
    _jit._compile(plus_one, cache=True)(1.0)  # float64
    _jit._compile(plus_one, cache=True)(1)  # int64
    [index] = [p for p in kernel_files(fresh / "cache") if p.suffix == ".nbi"]
    data = sorted(p for p in kernel_files(fresh / "cache") if p.suffix == ".nbc")
    assert len(data) == 2
    data[0].write_bytes(data[1].read_bytes())  # both now hold the same signature
    kernel = _jit._compile(plus_one, cache=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernel(1.0) == 2.0 and kernel(1) == 2
    assert sum(kernel.stats.cache_hits.values()) == 1
    assert sum(kernel.stats.cache_misses.values()) == 1
    assert index.exists()
