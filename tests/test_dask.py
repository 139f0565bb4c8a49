"""lossjit.dask: Dask arrays give the NumPy call's loss to the bit, and its gradient, whatever
the chunking (aligned with the kernels' blocks or not), the scheduler (threads, a
``distributed`` cluster of processes) and the number of workers.

1. For every built-in loss, in float32 and float64, on the pieces tests' cases (sample weights,
   class weights, ignored targets, variances, extra axes; :mod:`test_pieces`), in random
   chunkings of axis 0 and of the other axes, with the threaded scheduler: the loss, gradient,
   Hessian diagonal and per-term losses are the bits of :func:`lossjit.plan.run`.
2. On a LocalCluster of two worker processes, and with one worker: the same bits.
3. Options (label smoothing, ignore_index, weights, sample_weight, empty inputs); the
   gradient keeps the predictions' chunks; bad input is refused before any task runs.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_pieces import assert_same_array, assert_same_value, draw_choices, sized_case

from lossjit.errors import LossjitError
from lossjit.plan import make_plan, run
from lossjit.registry import BUILTIN

da = pytest.importorskip("dask.array", reason="the dask extra is not installed")
dask = pytest.importorskip("dask")
ldask = pytest.importorskip("lossjit.dask")

SETTINGS = settings(max_examples=3, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _chunks(data, n, label):
    """Random chunk sizes adding up to ``n`` (some empty-free, aligned or not)."""
    if n == 0:
        return (0,)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, n - 1)), max_size=4),
                                label=label)))
    edges = [0, *[c for c in cuts if 0 < c < n], n]
    return tuple(b - a for a, b in zip(edges, edges[1:], strict=False))


def _compare(spec, x, y, options, sw, xd, yd, swd, scheduler="threads"):
    plan = make_plan(spec.name, **options)
    has_hessian = plan.kernel_set(plan.lay_out(x, y)).hessian
    for reduction in spec.reductions:
        whole = run(make_plan(spec.name, reduction=reduction, **options), x, y,
                    sample_weight=sw)
        value, grad = ldask.value_and_grad(spec.name, xd, yd, reduction=reduction,
                                           sample_weight=swd, **options)
        value, grad = dask.compute(value, grad, scheduler=scheduler)
        what = (spec.name, reduction, x.dtype.name, x.shape, xd.chunks)
        assert_same_value(value if reduction == "none" else float(value), whole.value,
                          (*what, "value"))
        assert_same_array(grad, whole.grads["predictions"], (*what, "grad"))
        if has_hessian and reduction == "mean":
            full = run(make_plan(spec.name, hessian=True, **options), x, y, sample_weight=sw)
            g, h = dask.compute(*ldask.grad_hess(spec.name, xd, yd, sample_weight=swd,
                                                 **options), scheduler=scheduler)
            assert_same_array(g, full.grads["predictions"], (*what, "grad_hess grad"))
            assert_same_array(h, full.hess, (*what, "grad_hess hess"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spec", BUILTIN, ids=[s.name for s in BUILTIN])
@SETTINGS
@given(data=st.data())
def test_any_chunking_gives_the_numpy_bits(spec, dtype, data):
    choices = draw_choices(data, spec)
    m = data.draw(st.integers(2, 4), label="multiples")
    x, y, options, sw, multiple = sized_case(spec, dtype, choices, m, 1)
    chunks = _chunks(data, x.shape[0], "chunks")
    xd = da.from_array(x, chunks=(chunks, *[data.draw(st.sampled_from([1, n]), label="axis")
                                            for n in x.shape[1:]]))
    yd = None if y is None else da.from_array(np.asarray(y), chunks=(chunks, *np.shape(y)[1:]))
    swd = None if sw is None else da.from_array(np.asarray(sw))
    _compare(spec, x, y, options, sw, xd, yd, swd)


def test_chunks_split_into_whole_blocks_and_shared_ends():
    assert ldask.split(0, 8192, 16384, 8192) == (0, 8192)
    assert ldask.split(100, 20100, 30000, 8192) == (8192, 16384)
    assert ldask.split(20100, 30000, 30000, 8192) == (24576, 30000)  # the last block ends at n
    assert ldask.split(10, 20, 30000, 8192) == (20, 20)  # inside one block: all shared
    assert ldask.split(0, 0, 0, 8192) == (0, 0)


def test_the_gradient_keeps_the_predictions_chunks_and_one_graph():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(50_000)
    y = rng.standard_normal(50_000)
    xd, yd = da.from_array(x, chunks=7_000), da.from_array(y, chunks=7_000)
    value, grad = ldask.value_and_grad("huber", xd, yd, delta=0.5)
    assert grad.chunks == xd.chunks and value.shape == ()
    value, grad = dask.compute(value, grad)
    whole = run(make_plan("huber", delta=0.5), x, y)
    assert_same_value(float(value), whole.value, "huber")
    assert_same_array(grad, whole.grads["predictions"], "huber grad")
    assert_same_value(float(ldask.loss("huber", xd, yd, delta=0.5).compute()), whole.value,
                      "loss")
    assert_same_array(ldask.grad("huber", xd, yd, delta=0.5).compute(),
                      whole.grads["predictions"], "grad")


def test_class_options_and_empty_inputs():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30_000, 5)).astype(np.float32)
    y = rng.integers(0, 5, 30_000)
    y[rng.random(30_000) < 0.2] = -100
    weight = rng.uniform(0.5, 2.0, 5)
    sw = rng.uniform(0, 1, 30_000)
    xd = da.from_array(x, chunks=(4_000, 2))
    yd = da.from_array(y, chunks=4_000)
    for options in ({"label_smoothing": 0.1}, {"weight": weight},
                    {"ignore_index": -100, "weight": weight, "label_smoothing": 0.05}):
        whole = run(make_plan("cross_entropy", **options), x, y, sample_weight=sw)
        value, grad = dask.compute(*ldask.value_and_grad("cross_entropy", xd, yd,
                                                         sample_weight=sw, **options))
        assert_same_value(float(value), whole.value, options)
        assert_same_array(grad, whole.grads["predictions"], options)
    empty = ldask.loss("mse", da.zeros(0, chunks=1), da.zeros(0, chunks=1)).compute()
    assert np.isnan(empty)
    zero = ldask.loss("mse", da.zeros(0, chunks=1), da.zeros(0, chunks=1), empty="zero")
    assert float(zero.compute()) == 0.0


def test_bad_input_is_refused_before_any_task():
    xd = da.zeros(10, chunks=5)
    with pytest.raises(LossjitError, match="delta"):
        ldask.loss("huber", xd, xd, delta=-1.0)
    with pytest.raises(LossjitError, match="targets: missing"):
        ldask.loss("mse", xd)
    with pytest.raises(LossjitError, match="does not match predictions"):
        ldask.loss("mse", xd, da.zeros(11, chunks=5))


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local, \
            distributed.Client(local) as client:
        yield client


@pytest.mark.parametrize("name,make", [
    ("mse", lambda rng: (rng.standard_normal(100_000).astype(np.float32),
                         rng.standard_normal(100_000).astype(np.float32))),
    ("cross_entropy", lambda rng: (rng.standard_normal((20_000, 10)),
                                   rng.integers(0, 10, 20_000))),
    ("bce_with_logits", lambda rng: (rng.standard_normal((40_000, 2)),
                                     (rng.random((40_000, 2)) < 0.5) * 1.0)),
])
def test_a_cluster_of_processes_gives_the_same_bits(cluster, name, make):
    x, y = make(np.random.default_rng(4))
    whole = run(make_plan(name), x, y)
    for chunks in (9_999, 8_192, 33_333):
        xd = da.from_array(x, chunks=(chunks, *x.shape[1:])).persist()
        yd = da.from_array(np.asarray(y), chunks=(chunks, *np.shape(y)[1:])).persist()
        value, grad = ldask.value_and_grad(name, xd, yd)
        value, grad = cluster.compute([value, grad], sync=True)
        assert_same_value(float(value), whole.value, (name, chunks))
        assert_same_array(grad, whole.grads["predictions"], (name, chunks))


def test_one_worker_and_the_process_scheduler_agree(cluster):
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal(60_000), rng.standard_normal(60_000)
    xd, yd = da.from_array(x, chunks=11_000), da.from_array(y, chunks=11_000)
    value = ldask.loss("log_cosh", xd, yd)
    expected = run(make_plan("log_cosh", want_grad=False), x, y).value
    assert_same_value(float(value.compute(scheduler="synchronous")), expected, "synchronous")
    assert_same_value(float(value.compute(scheduler="processes", num_workers=2)), expected,
                      "processes")
    assert_same_value(float(cluster.compute(value, sync=True, workers=[
        next(iter(cluster.scheduler_info()["workers"]))])), expected, "one worker")


# --- the command line ---------------------------------------------------------------------


def test_compute_on_a_local_cluster_gives_the_same_bits(tmp_path):
    import subprocess
    import sys

    rng = np.random.default_rng(8)
    np.save(tmp_path / "x.npy", rng.standard_normal(300_000).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.standard_normal(300_000).astype(np.float32))
    lossjit = [sys.executable, "-m", "lossjit", "compute", "huber", "x.npy", "y.npy"]
    on_dask = subprocess.run([*lossjit, "--dask", "--workers", "2", "--memory", "1MiB",
                              "--grad-out", "gd.npy", "--hess-out", "hd.npy"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    alone = subprocess.run([*lossjit, "--grad-out", "g.npy", "--hess-out", "h.npy"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert on_dask.returncode == 0 and alone.returncode == 0, on_dask.stderr[-2000:]
    assert on_dask.stdout == alone.stdout
    assert (tmp_path / "gd.npy").read_bytes() == (tmp_path / "g.npy").read_bytes()
    assert (tmp_path / "hd.npy").read_bytes() == (tmp_path / "h.npy").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.npy", "gd.npy", "h.npy",
                                                           "hd.npy", "x.npy", "y.npy"]


def test_compute_dask_refuses_what_the_workers_cannot_read(tmp_path, monkeypatch):
    from cli_helpers import invoke

    monkeypatch.chdir(tmp_path)
    np.savetxt(tmp_path / "x.csv", np.zeros(10))
    np.save(tmp_path / "y.npy", np.zeros(10))
    done = invoke("compute", "mse", "x.csv", "y.npy", "--dask")
    assert done.exit_code == 1 and "whole .npy files and Zarr arrays by path" in done.stderr
    np.save(tmp_path / "x.npy", np.zeros(10))
    done = invoke("compute", "mse", "x.npy", "y.npy", "--dask", "--grad-out", "g.csv")
    assert done.exit_code == 1 and "is a .npy file" in done.stderr, done.stderr
    done = invoke("compute", "mse", "x.npy", "y.npy", "--dask", "--loss-out", "l.npy")
    assert done.exit_code == 1 and "gradient and the Hessian diagonal" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv", "x.npy", "y.npy"]


def test_from_zarr_to_zarr(tmp_path):
    zarr = pytest.importorskip("zarr")
    rng = np.random.default_rng(10)
    x = rng.standard_normal(40_000)
    y = rng.standard_normal(40_000)
    for name, data in (("x", x), ("y", y)):
        z = zarr.open_array(str(tmp_path / f"{name}.zarr"), mode="w", shape=data.shape,
                            dtype=data.dtype, chunks=(8_192,))
        z[:] = data
    xd, yd = da.from_zarr(str(tmp_path / "x.zarr")), da.from_zarr(str(tmp_path / "y.zarr"))
    value, grad = ldask.value_and_grad("smooth_l1", xd, yd, beta=0.5)
    stored = grad.to_zarr(str(tmp_path / "g.zarr"), compute=False)
    value, _ = dask.compute(value, stored)
    whole = run(make_plan("smooth_l1", beta=0.5), x, y)
    assert_same_value(float(value), whole.value, "zarr")
    assert_same_array(zarr.open_array(str(tmp_path / "g.zarr"), mode="r")[:],
                      whole.grads["predictions"], "zarr grad")


def test_compute_on_a_local_cluster_reads_zarr(tmp_path):
    import subprocess
    import sys

    zarr = pytest.importorskip("zarr")
    rng = np.random.default_rng(11)
    x = rng.standard_normal((50_000, 3))
    y = (rng.random((50_000, 3)) < 0.5) * 1.0
    for name, data in (("x", x), ("y", y)):
        zarr.open_array(str(tmp_path / f"{name}.zarr"), mode="w", shape=data.shape,
                        dtype=data.dtype, chunks=(9_000, 3))[:] = data
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    lossjit = [sys.executable, "-m", "lossjit", "compute", "bce_with_logits"]
    on_dask = subprocess.run([*lossjit, "x.zarr", "y.zarr", "--dask", "--workers", "1",
                              "--grad-out", "gd.zarr", "--hess-out", "out.zarr:hess"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    alone = subprocess.run([*lossjit, "x.npy", "y.npy", "--grad-out", "g.npy", "--hess-out",
                            "h.npy"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert on_dask.returncode == 0, on_dask.stderr[-2000:]
    assert on_dask.stdout == alone.stdout
    grad = zarr.open_array(str(tmp_path / "gd.zarr"), mode="r")
    assert grad.chunks == (9_000, 3)  # the predictions' chunks
    assert_same_array(grad[:], np.load(tmp_path / "g.npy"), "zarr grad")
    hess = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["hess"]
    assert_same_array(hess[:], np.load(tmp_path / "h.npy"), "zarr hess")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lossjit-")]


def test_a_task_takes_the_threads_the_worker_gives_it(monkeypatch):
    """distributed's workers set OMP_NUM_THREADS=1 (their threads run tasks side by side): a
    task's kernels then use one thread, and the caller's setting comes back after."""
    import numba

    probe = ldask._task(numba.get_num_threads)
    before = numba.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert probe() == 1
    assert numba.get_num_threads() == before
    monkeypatch.setenv("OMP_NUM_THREADS", str(10 * numba.config.NUMBA_NUM_THREADS))
    assert probe() == numba.config.NUMBA_NUM_THREADS
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert probe() == before
