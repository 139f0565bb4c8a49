"""Streaming (:mod:`lossjit.streaming`): a call run piece by piece from memory-mapped files
gives the in-memory call's loss, gradient, Hessian diagonal and per-term losses, to the bit.

1. For every built-in loss, in float32 and float64, on the pieces tests' cases (sample weights,
   class weights, ignored targets, variances, extra axes; :mod:`test_pieces`), streamed in the
   smallest pieces the layout allows (one cut each) and in pieces of several cuts, for each
   reduction: the same bits as :func:`lossjit.plan.run`.
2. From ``.npy`` files mapped read-only into ``.npy`` outputs mapped for writing: the files
   hold the in-memory gradient; nan_policy "raise" and "omit" behave as in memory.
3. Sizes (``parse_memory``), pieces that fit the memory given, and what cannot be streamed.
4. The command line: ``--stream`` gives the in-memory run's loss and output bytes, inputs
   larger than ``--memory`` stream by default, bad streamed runs say what to do and write
   nothing, an interrupted one leaves no file, and its progress bar shows on a terminal only.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from cli_helpers import invoke, launcher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli_safety import _default_signals
from test_pieces import assert_same_array, assert_same_value, draw_choices, sized_case

from lossjit import streaming
from lossjit.errors import LossjitError
from lossjit.plan import make_plan, run
from lossjit.registry import BUILTIN

SETTINGS = settings(max_examples=4, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def check_stream(spec, x, y, options, sw, rows):
    """Streamed == in memory for each reduction, with and without the Hessian."""
    plan = make_plan(spec.name, **options)
    has_hessian = plan.kernel_set(plan.lay_out(x, y)).hessian
    for reduction in spec.reductions:
        for hessian in (False, True) if has_hessian else (False,):
            plan = make_plan(spec.name, reduction=reduction, hessian=hessian, **options)
            whole = run(plan, x, y, sample_weight=sw)
            grad = np.full_like(x, 7.0)
            hess = np.full_like(x, 7.0) if hessian else None
            terms = None
            if reduction == "none":
                terms = np.full(whole.value.shape, 7.0, whole.value.dtype)
            value = streaming.stream(plan, x, y, sample_weight=sw, grad=grad, hess=hess,
                                     losses=terms, rows=rows)
            what = (spec.name, reduction, hessian, x.dtype.name, x.shape, rows)
            if reduction == "none":
                assert value is None
                assert_same_array(terms, whole.value, (*what, "terms"))
            else:
                assert_same_value(value, whole.value, (*what, "value"))
            assert_same_array(grad, whole.grads["predictions"], (*what, "grad"))
            if hessian:
                assert_same_array(hess, whole.hess, (*what, "hess"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spec", BUILTIN, ids=[s.name for s in BUILTIN])
@SETTINGS
@given(data=st.data())
def test_streamed_is_the_whole_call_to_the_bit(spec, dtype, data):
    choices = draw_choices(data, spec)
    m = data.draw(st.integers(3, 5), label="multiples")
    rest = data.draw(st.sampled_from([0, 1]), label="remainder")
    x, y, options, sw, multiple = sized_case(spec, dtype, choices, m, rest)
    check_stream(spec, x, y, options, sw, rows=multiple)
    check_stream(spec, x, y, options, sw, rows=2 * multiple)


def _files(tmp_path, x, y):
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return streaming.open_npy(str(tmp_path / "x.npy")), streaming.open_npy(str(tmp_path / "y.npy"))


@pytest.mark.parametrize("name,make", [
    ("mse", lambda rng: (rng.standard_normal(50_000).astype(np.float32),
                         rng.standard_normal(50_000).astype(np.float32))),
    ("bce_with_logits", lambda rng: (rng.standard_normal((30_000, 3)),
                                     (rng.random((30_000, 3)) < 0.5) * 1.0)),
    ("cross_entropy", lambda rng: (rng.standard_normal((20_000, 7)).astype(np.float32),
                                   np.where(rng.random(20_000) < 0.1, -100,
                                            rng.integers(0, 7, 20_000)))),
])
def test_mapped_files_in_mapped_files_out(tmp_path, name, make):
    x, y = make(np.random.default_rng(3))
    mx, my = _files(tmp_path, x, y)
    plan = make_plan(name)
    grad = streaming.create_npy(str(tmp_path / "g.npy"), x.shape, x.dtype)
    done = []
    value = streaming.stream(plan, mx, my, grad=grad, memory=200_000, progress=done.append)
    del grad
    whole = run(plan, x, y)
    assert_same_value(value, whole.value, name)
    assert_same_array(np.load(tmp_path / "g.npy"), whole.grads["predictions"], name)
    assert len(done) > 3 and done == sorted(done) and done[-1] == x.shape[0]


@pytest.mark.parametrize("read_ahead", [True, False], ids=["read-ahead", "one-slot"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_mapped_files_are_read_and_written_through_their_descriptors(tmp_path, monkeypatch,
                                                                     order, read_ahead):
    """C-ordered mapped files go through preadv/pwritev (no pages mapped); a Fortran-ordered
    input (not C-contiguous) is sliced instead; both give the in-memory bits, with the next
    piece read (and the last one written) by a second thread or not."""
    monkeypatch.setattr(streaming, "_READ_AHEAD", read_ahead)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((20_000, 5)).astype(np.float32)
    y = rng.integers(0, 5, 20_000)
    np.save(tmp_path / "x.npy", np.asfortranarray(x) if order == "F" else x)
    np.save(tmp_path / "y.npy", y)
    calls = {"preadv": 0, "pwritev": 0}
    for name in calls:
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda *a, real=real, name=name: calls.__setitem__(
            name, calls[name] + 1) or real(*a))
    mx, my = streaming.open_npy(str(tmp_path / "x.npy")), streaming.open_npy(
        str(tmp_path / "y.npy"))
    plan = make_plan("cross_entropy", hessian=True)
    grad = streaming.create_npy(str(tmp_path / "g.npy"), x.shape, x.dtype)
    hess = streaming.create_npy(str(tmp_path / "h.npy"), x.shape, x.dtype)
    value = streaming.stream(plan, mx, my, grad=grad, hess=hess, rows=2048)
    del grad, hess
    whole = run(plan, x, y)
    assert_same_value(value, whole.value, order)
    assert_same_array(np.load(tmp_path / "g.npy"), whole.grads["predictions"], order)
    assert_same_array(np.load(tmp_path / "h.npy"), whole.hess, order)
    pieces = -(-20_000 // streaming.stream_rows(plan, mx, my, outputs=2, rows=2048))
    assert pieces > 5
    assert calls["pwritev"] == 2 * pieces
    # the targets in the count's pass and the run's, the predictions in the run's (C only);
    # each once more for the terms' shape
    assert calls["preadv"] == (2 * pieces + 1) + (0 if order == "F" else pieces + 1)


def test_nan_policies_stream_as_in_memory(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(40_000)
    y = rng.standard_normal(40_000)
    x[[5, 20_000, 39_999]] = np.nan
    mx, my = _files(tmp_path, x, y)
    for policy in ("propagate", "omit"):
        plan = make_plan("huber", nan_policy=policy)
        grad = np.empty_like(x)
        value = streaming.stream(plan, mx, my, grad=grad, rows=8192)
        whole = run(plan, x, y)
        assert_same_value(value, whole.value, policy)
        assert_same_array(grad, whole.grads["predictions"], policy)
    with pytest.raises(LossjitError, match="predictions: NaN at position"):
        streaming.stream(make_plan("huber", nan_policy="raise"), mx, my,
                         grad=np.empty_like(x), rows=8192)


def test_pieces_fit_the_memory_given():
    plan = make_plan("mse")
    shape = (10_000_000,)
    rows = streaming.piece_rows(plan, shape, [np.float32] * 3, 256 * 2**20)
    assert rows % 8192 == 0 and 3 * rows * 12 <= 256 * 2**20 < 3 * (rows + 8192) * 12
    assert streaming.piece_rows(plan, shape, [np.float32] * 3, 1) == 8192  # at least one cut
    assert streaming.piece_rows(plan, shape, [np.float32], 1, rows=10_000) == 8192


def test_memory_sizes():
    assert streaming.parse_memory("256MiB") == 256 * 2**20
    assert streaming.parse_memory("2G") == 2 * 2**30
    assert streaming.parse_memory("1.5GB") == 1_500_000_000
    assert streaming.parse_memory("4096") == 4096
    for bad in ("lots", "-1M", "0", "12 parsecs"):
        with pytest.raises(LossjitError, match="memory: expected a size"):
            streaming.parse_memory(bad)


def test_what_cannot_be_streamed_says_so():
    with pytest.raises(LossjitError, match="cannot be cut into pieces"):
        streaming.stream(make_plan("cross_entropy"), np.zeros(5), np.array(1),
                         grad=np.empty(5))
    with pytest.raises(LossjitError, match="needs an output"):
        streaming.stream(make_plan("mse"), np.zeros(5), np.zeros(5))
    with pytest.raises(LossjitError, match="cannot map"):
        streaming.open_npy("/nonexistent/x.npy")


# --- 4. the command line ----------------------------------------------------------------------


def _big(tmp_path, n=300_000, dtype=np.float32):
    rng = np.random.default_rng(5)
    np.save(tmp_path / "x.npy", rng.standard_normal(n).astype(dtype))
    np.save(tmp_path / "y.npy", rng.standard_normal(n).astype(dtype))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_streams_to_the_same_bits(in_tmp):
    _big(in_tmp)
    streamed = invoke("compute", "mse", "x.npy", "y.npy", "--stream", "--memory", "1MiB",
                      "--grad-out", "gs.npy", "--hess-out", "hs.npy", "--format", "json")
    whole = invoke("compute", "mse", "x.npy", "y.npy", "--no-stream", "--grad-out", "g.npy",
                   "--hess-out", "h.npy", "--format", "json")
    assert streamed.exit_code == 0 and whole.exit_code == 0, streamed.stderr + whole.stderr
    assert json.loads(streamed.stdout)["loss"] == json.loads(whole.stdout)["loss"]
    assert (in_tmp / "gs.npy").read_bytes() == (in_tmp / "g.npy").read_bytes()
    assert (in_tmp / "hs.npy").read_bytes() == (in_tmp / "h.npy").read_bytes()
    assert sorted(p.name for p in in_tmp.iterdir()) == ["g.npy", "gs.npy", "h.npy", "hs.npy",
                                                        "x.npy", "y.npy"]


def test_cli_streams_inputs_larger_than_memory_by_default(in_tmp, monkeypatch):
    _big(in_tmp)
    seen = []
    real = streaming.stream
    monkeypatch.setattr(streaming, "stream", lambda *a, **k: seen.append(k) or real(*a, **k))
    small = invoke("compute", "mse", "x.npy", "y.npy", "--no-grad")
    assert small.exit_code == 0 and not seen  # 2.4 MB of inputs: in memory
    big = invoke("compute", "mse", "x.npy", "y.npy", "--memory", "1MiB", "--no-grad")
    assert big.exit_code == 0 and len(seen) == 1 and seen[0]["memory"] == 2**20
    assert big.stdout == small.stdout


def test_cli_per_term_losses_stream(in_tmp):
    _big(in_tmp, 50_000, np.float64)
    args = ("compute", "huber", "x.npy", "y.npy", "--no-grad", "--memory", "256KiB")
    assert invoke(*args, "--stream", "--loss-out", "ls.npy").exit_code == 0
    assert invoke(*args, "--no-stream", "--loss-out", "l.npy").exit_code == 0
    assert (in_tmp / "ls.npy").read_bytes() == (in_tmp / "l.npy").read_bytes()
    none = invoke(*args, "--stream", "--reduction", "none", "--loss-out", "lsn.npy")
    assert none.exit_code == 0 and (in_tmp / "lsn.npy").read_bytes() == (
        in_tmp / "l.npy").read_bytes()
    refused = invoke(*args, "--stream", "--reduction", "none")
    assert refused.exit_code == 1 and "add --loss-out FILE.npy" in refused.stderr


@pytest.mark.parametrize("args,message", [
    (("x.csv", "y.npy", "--stream"), "streaming reads whole .npy files and Zarr arrays"),
    (("x.npy:0", "y.npy", "--stream"), "streaming reads whole .npy files"),
    (("x.npy", "y.npy", "--stream", "--grad-out", "g.csv"), "is a .npy file"),
    (("x.npy", "y.npy", "--stream", "--grad-out", "-"), "to .npy files and .zarr stores only"),
    (("x.npy", "y.npy", "--stream", "--memory", "lots"), "memory: expected a size"),
])
def test_cli_stream_errors_say_what_to_do(in_tmp, args, message):
    _big(in_tmp, 1000)
    np.savetxt(in_tmp / "x.csv", np.zeros(1000))
    done = invoke("compute", "mse", *args)
    assert done.exit_code != 0 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in in_tmp.iterdir()) == ["x.csv", "x.npy", "y.npy"]


@pytest.mark.parametrize("signum,code,out", [(signal.SIGTERM, 143, "g.npy"),
                                             (signal.SIGINT, 130, "g.npy"),
                                             (signal.SIGTERM, 143, "g.zarr")])
def test_an_interrupted_stream_leaves_nothing(tmp_path, signum, code, out):
    if out.endswith(".zarr"):
        pytest.importorskip("zarr", reason="the dask extra (zarr) is not installed")
    n = 40_000_000  # long enough to be interrupted mid-way
    for name in ("x.npy", "y.npy"):
        np.lib.format.open_memmap(tmp_path / name, "w+", np.float32, (n,))[:] = 0.5
    proc = subprocess.Popen([*launcher("module"), "compute", "sigmoid_focal", "x.npy",
                             "y.npy", "--stream", "--memory", "8MiB", "--grad-out", out],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ), preexec_fn=_default_signals)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        temporaries = [p for p in tmp_path.iterdir() if p.name.startswith(".lossjit-")]
        if temporaries and temporaries[0].stat().st_size > 0:
            break
        time.sleep(0.01)
    time.sleep(0.3)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy", "y.npy"]


_PTY_RUN = """
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
"""


def test_a_progress_bar_on_a_terminal_never_in_a_pipe(tmp_path, monkeypatch):
    monkeypatch.setenv("LOSSJIT_PROGRESS_AFTER", "0")  # at once, however quick the run
    n = 3_000_000
    for name in ("x.npy", "y.npy"):
        np.lib.format.open_memmap(tmp_path / name, "w+", np.float32, (n,))[:] = 0.25
    args = [*launcher("module"), "compute", "sigmoid_focal", "x.npy", "y.npy", "--stream",
            "--memory", "1MiB", "--no-grad"]
    on_tty = subprocess.run([sys.executable, "-c", _PTY_RUN, *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert "sigmoid_focal" in on_tty.stdout and "rows/s" in on_tty.stdout, on_tty.stdout
    piped = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           env=dict(os.environ))
    assert piped.returncode == 0 and piped.stderr == "" and "\x1b" not in piped.stdout
    quiet = subprocess.run([sys.executable, "-c", _PTY_RUN, *args, "--quiet"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert "rows/s" not in quiet.stdout


def test_without_the_dask_extra_lossjit_dask_and_dask_runs_name_it(monkeypatch, in_tmp):
    import lossjit.dask as ldask

    monkeypatch.setitem(sys.modules, "dask", None)  # importing it raises ImportError
    with pytest.raises(LossjitError, match=r"lossjit\[dask\]"):
        ldask.loss("mse", np.zeros(3), np.zeros(3))
    _big(in_tmp, 100)
    done = invoke("compute", "mse", "x.npy", "y.npy", "--dask")
    assert done.exit_code == 1 and "lossjit[dask]" in done.stderr, done.stderr


def test_zarr_arrays_stream_in_and_out(tmp_path):
    zarr = pytest.importorskip("zarr", reason="the dask extra (zarr) is not installed")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((30_000, 4)).astype(np.float32)
    y = rng.integers(0, 4, 30_000)
    zx = zarr.open_array(str(tmp_path / "x.zarr"), mode="w", shape=x.shape, dtype=x.dtype,
                         chunks=(5_000, 4))
    zx[:] = x
    zy = zarr.open_array(str(tmp_path / "y.zarr"), mode="w", shape=y.shape, dtype=y.dtype,
                         chunks=(5_000,))
    zy[:] = y
    zg = zarr.open_array(str(tmp_path / "g.zarr"), mode="w", shape=x.shape, dtype=x.dtype,
                         chunks=(5_000, 4))
    plan = make_plan("cross_entropy", label_smoothing=0.1)
    value = streaming.stream(plan, zx, zy, grad=zg, memory=300_000)
    whole = run(plan, x, y)
    assert_same_value(value, whole.value, "zarr")
    assert_same_array(zarr.open_array(str(tmp_path / "g.zarr"), mode="r")[:],
                      whole.grads["predictions"], "zarr grad")


def _zarr_inputs(directory):
    """x.npy and y.npy, and the same as x.zarr and the array targets of the group run.zarr."""
    zarr = pytest.importorskip("zarr", reason="the dask extra (zarr) is not installed")
    _big(directory, 100_000)
    x, y = np.load(directory / "x.npy"), np.load(directory / "y.npy")
    zarr.open_array(str(directory / "x.zarr"), mode="w", shape=x.shape, dtype=x.dtype,
                    chunks=(30_000,))[:] = x
    group = zarr.open_group(str(directory / "run.zarr"), mode="w")
    group.create_array("targets", shape=y.shape, dtype=y.dtype, chunks=(7_000,))[:] = y
    return zarr


def test_cli_streams_zarr_inputs(in_tmp):
    _zarr_inputs(in_tmp)
    from_zarr = invoke("compute", "mse", "x.zarr", "run.zarr:targets", "--grad-out", "gz.npy")
    from_npy = invoke("compute", "mse", "x.npy", "y.npy", "--grad-out", "g.npy")
    assert from_zarr.exit_code == 0, from_zarr.stderr
    assert from_zarr.stdout == from_npy.stdout
    assert (in_tmp / "gz.npy").read_bytes() == (in_tmp / "g.npy").read_bytes()
    group_only = invoke("compute", "mse", "x.zarr", "run.zarr", "--no-grad")
    assert group_only.exit_code == 1 and "name one of its arrays" in group_only.stderr
    assert "targets" in group_only.stderr


def test_cli_streams_into_zarr_outputs(in_tmp):
    zarr = _zarr_inputs(in_tmp)
    args = ("compute", "huber", "x.zarr", "run.zarr:targets", "--memory", "256KiB")
    into = invoke(*args, "--grad-out", "run.zarr:grad", "--hess-out", "h.zarr",
                  "--loss-out", "terms.zarr:loss")
    whole = invoke("compute", "huber", "x.npy", "y.npy", "--grad-out", "g.npy", "--hess-out",
                   "h.npy", "--loss-out", "l.npy")
    assert into.exit_code == 0, into.stderr
    assert into.stdout == whole.stdout
    group = zarr.open_group(str(in_tmp / "run.zarr"), mode="r")
    assert sorted(group.array_keys()) == ["grad", "targets"]
    grad = group["grad"]
    assert grad.chunks[0] < 100_000  # one piece a chunk
    assert_same_array(grad[:], np.load(in_tmp / "g.npy"), "zarr grad")
    assert_same_array(zarr.open_array(str(in_tmp / "h.zarr"), mode="r")[:],
                      np.load(in_tmp / "h.npy"), "zarr hess")
    assert_same_array(zarr.open_group(str(in_tmp / "terms.zarr"), mode="r")["loss"][:],
                      np.load(in_tmp / "l.npy"), "zarr losses")
    default = invoke("compute", "huber", "x.zarr", "run.zarr:targets")
    assert default.exit_code == 0 and "x.grad.zarr" in default.stderr, default.stderr
    assert_same_array(zarr.open_array(str(in_tmp / "x.grad.zarr"), mode="r")[:],
                      np.load(in_tmp / "g.npy"), "default zarr grad")
    refused = invoke(*args, "--grad-out", "run.zarr:targets")
    assert refused.exit_code == 1 and "refusing to overwrite input" in refused.stderr
    assert not [p for p in in_tmp.rglob(".lossjit-*")]


def test_pieces_take_whole_zarr_chunks_where_they_fit():
    zarr = pytest.importorskip("zarr", reason="the dask extra (zarr) is not installed")
    plan = make_plan("mse")
    cut = plan.spec.layout.cut((10**6,), plan.options)
    for chunk, memory, whole_chunks in ((3 * cut, 64 * cut * 12, True),
                                        (cut + 1, 64 * cut * 12, False)):
        x = zarr.create_array(store={}, shape=(10**6,), dtype="f4", chunks=(chunk,))
        rows = streaming.stream_rows(plan, x, x, memory=memory)
        assert rows % cut == 0 and rows * 12 * 3 <= memory
        assert (rows % chunk == 0) is whole_chunks, (chunk, rows)


def test_a_signal_inside_deferred_stops_the_run_once_the_block_is_done(monkeypatch):
    from lossjit import errors

    monkeypatch.setattr(errors, "received", None)
    done = []
    with pytest.raises(errors.Interrupted), errors.deferred():
        errors.interrupt(signal.SIGTERM, None)
        done.append("the block ran on")
    assert done == ["the block ran on"]
    monkeypatch.setattr(errors, "received", None)
    with pytest.raises(errors.Interrupted):  # outside, at once
        errors.interrupt(signal.SIGTERM, None)
