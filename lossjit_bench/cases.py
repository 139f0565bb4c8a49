"""One benchmark case: lossjit's timed calls and run_case, which times them against
the peers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lossjit_bench.inputs import Inputs, make_inputs
from lossjit_bench.peers import PEER_FACTORIES, PEERS, Skip, numpy_peer
from lossjit_bench.timing import ForeignLoad, median, time_many


def lossjit_calls(inputs: Inputs) -> dict[str, Callable[[], Any]]:
    """lossjit's timed calls: value_and_grad, with ``out=`` and value only."""
    import lossjit

    name, p, t, params = inputs.loss, inputs.predictions, inputs.targets, inputs.params
    buffer = np.empty_like(p)
    return {
        "lossjit": lambda: lossjit.value_and_grad(name, p, t, **params),
        "lossjit_out": lambda: lossjit.value_and_grad(name, p, t, out=buffer, **params),
        "lossjit_value": lambda: lossjit.loss(name, p, t, **params),
    }


def run_case(loss: str, shape: int | Sequence[int], dtype: Any = np.float64, *,
             value_only: bool = False, peers: Sequence[str] = PEERS, out: bool = True,
             repeat: int = 7, min_time: float = 0.2, max_time: float = 5.0,
             seed: int = 0, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Median seconds per value+grad call of lossjit and its peers on one case.

    ``shape`` is an element count or the predictions' shape (see :func:`shape_for`);
    ``params`` are options of the loss (default: its defaults, and what :func:`make_inputs`
    supplies where one is required, such as gaussian_nll's var).
    Returns ``{"loss", "shape", "dtype", "elements", "bytes", "times": {impl: median s},
    "samples": {impl: [s, ...]}, "skipped": {peer: why}}``. Implementations: ``lossjit``
    (allocating its gradient), ``lossjit_out`` (with ``out=``, when ``out``),
    ``lossjit_value`` and ``numpy_value`` (value only, when ``value_only``), ``numpy``,
    ``torch``, ``jax`` and ``sklearn`` (those in ``peers`` that are installed and have the
    loss). ``"foreign_load"`` is the CPU other processes used meanwhile, in cores.
    """
    inputs = make_inputs(loss, shape, dtype, seed=seed, params=params)
    calls = lossjit_calls(inputs)
    fns: dict[str, Callable[[], Any]] = {"lossjit": calls["lossjit"]}
    if out:
        fns["lossjit_out"] = calls["lossjit_out"]
    if value_only:
        fns["lossjit_value"] = calls["lossjit_value"]
    skipped: dict[str, str] = {}
    for peer in peers:
        if peer == "numpy":
            fns["numpy"] = numpy_peer(inputs)
            if value_only:
                fns["numpy_value"] = numpy_peer(inputs, grad=False)
            continue
        try:
            fns[peer] = PEER_FACTORIES[peer](inputs)
        except Skip as exc:
            skipped[peer] = str(exc)
        except KeyError:
            skipped[peer] = "unknown peer"
    with ForeignLoad() as meter:
        samples = time_many(fns, repeat=repeat, min_time=min_time, max_time=max_time)
    return {
        "loss": inputs.loss,
        "shape": list(inputs.shape),
        "dtype": np.dtype(dtype).name,
        "elements": inputs.size,
        "bytes": {"value_and_grad": inputs.nbytes(), "value": inputs.nbytes(grad=False)},
        "times": {name: median(values) for name, values in samples.items()},
        "samples": samples,
        "skipped": skipped,
        "foreign_load": meter.load,
    }
