"""lossjit.dask on a LocalCluster: the loss and gradient of arrays persisted on the workers,
against the in-memory call and against what a Dask user writes without lossjit, with the loss
bits compared to the in-memory call.

Cases: ``mse`` on 1e8 float32 numbers (the Dask user's form: ``d = x - y``,
``(d.astype('f8') ** 2).mean()`` and ``2 * d / n``, computed together) and ``cross_entropy`` on
(4e6, 100) float32 logits (the user's form: a max-shifted log-softmax gathered at the labels,
and softmax minus one-hot over n). Each is timed ``--repeat`` times on the cluster (medians),
and the same computation in memory once per repeat. By default the gradient stays on the
workers (``client.compute``, as a pipeline that writes it out or feeds it on would; released
before the next run, so that each run computes anew); ``--gather``
brings it to the client (``dask.compute``), which then dominates both forms.

    python benchmarks/dask_cluster.py                    # 2 worker processes, 1 thread each
    python benchmarks/dask_cluster.py --workers 2 --threads 1 --cases mse --n 20000000
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _median(fn, repeat: int, release=lambda result: None) -> tuple[float, object]:
    """The median seconds of ``repeat`` calls, and the last result; each earlier result is
    released (its keys forgotten by the cluster) before the next call, which so computes
    everything anew."""
    times, result = [], None
    for _ in range(repeat):
        if result is not None:
            release(result)
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads per worker")
    parser.add_argument("--n", type=int, default=100_000_000, help="mse: numbers")
    parser.add_argument("--rows", type=int, default=4_000_000, help="cross_entropy: rows")
    parser.add_argument("--chunk", type=int, default=10_000_000, help="numbers a chunk")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cases", default="mse,ce")
    parser.add_argument("--gather", action="store_true",
                        help="bring the gradient to the client instead of keeping it on the "
                             "workers")
    args = parser.parse_args()

    import dask
    import dask.array as da
    import distributed

    import lossjit
    import lossjit.dask as ldask

    with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=args.threads,
                                  processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:

        def run(value, grad):
            if args.gather:
                return dask.compute(value, grad)
            futures = client.compute([value, grad])  # the gradient stays on the workers
            distributed.wait(futures)
            return futures[0].result(), futures

        def release(result):
            if not args.gather:
                client.cancel(result[1])
        print(f"LocalCluster: {args.workers} worker processes x {args.threads} thread(s); "
              f"dask {dask.__version__}")
        for case in args.cases.split(","):
            rng = np.random.default_rng(0)
            if case == "mse":
                n = args.n
                x = rng.standard_normal(n, dtype=np.float32)
                y = rng.standard_normal(n, dtype=np.float32)
                rows = args.chunk
                xd = da.from_array(x, chunks=rows).persist()
                yd = da.from_array(y, chunks=rows).persist()
                name, options = "mse", {}

                def user(xd=xd, yd=yd, n=n):
                    d = xd - yd
                    return run((d.astype("f8") ** 2).mean(), 2 * d / n)
            else:
                n, classes = args.rows, 100
                x = rng.standard_normal((n, classes), dtype=np.float32)
                y = rng.integers(0, classes, n)
                rows = max(1, args.chunk // classes)
                xd = da.from_array(x, chunks=(rows, classes)).persist()
                yd = da.from_array(y, chunks=rows).persist()
                name, options = "cross_entropy", {}

                def user(xd=xd, yd=yd, n=n, classes=classes):
                    shifted = xd - xd.max(axis=1, keepdims=True)
                    e = da.exp(shifted)
                    s = e.sum(axis=1, keepdims=True)
                    logp = shifted - da.log(s)
                    hot = (yd[:, None] == da.arange(classes)[None, :])
                    value = -(da.where(hot, logp, 0).sum(axis=1)).astype("f8").mean()
                    grad = (e / s - hot) / n
                    return run(value, grad)
            distributed.wait([xd, yd])

            def ours(xd=xd, yd=yd, name=name, options=options):
                return run(*ldask.value_and_grad(name, xd, yd, **options))

            release(ours())  # the workers compile or load the kernels once
            release(user())
            t_ours, (value, kept) = _median(ours, args.repeat, release)
            release((value, kept))
            t_user, (user_value, kept) = _median(user, args.repeat, release)
            release((user_value, kept))
            t_mem, (mem_value, _) = _median(
                lambda x=x, y=y, name=name: lossjit.value_and_grad(name, x, y), args.repeat)
            same = np.float64(value).tobytes() == np.float64(mem_value).tobytes()
            print(f"{name:14} {x.shape}  lossjit.dask {t_ours:6.3f} s  dask user's form "
                  f"{t_user:6.3f} s ({t_user / t_ours:4.2f}x)  in memory {t_mem:6.3f} s  "
                  f"loss bits equal to the in-memory call: {same} "
                  f"(user's form differs by {abs(float(user_value) - mem_value):.2e})",
                  flush=True)
            del xd, yd, x, y


if __name__ == "__main__":
    main()
