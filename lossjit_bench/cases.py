"""One benchmark case: lossjit's timed calls and run_case, which times them against
the peers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lossjit_bench.inputs import Inputs, make_inputs
from lossjit_bench.peers import PEER_FACTORIES, PEERS, Disagree, Skip, check_peer, numpy_peer
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

    Before anything is timed, each peer's value and gradient are compared with lossjit's
    (:func:`lossjit_bench.peers.check_peer`); a peer that disagrees is left out of the
    timings and listed under ``"disagreed"`` (and ``"skipped"``) with what differed. Where a
    peer has several idiomatic forms, the fastest that agrees is timed: ``"forms"`` gives, per
    peer, the one kept and every agreeing form's brief median (``{"kept", "times"}``).
    """
    inputs = make_inputs(loss, shape, dtype, seed=seed, params=params)
    calls = lossjit_calls(inputs)
    fns: dict[str, Callable[[], Any]] = {"lossjit": calls["lossjit"]}
    if out:
        fns["lossjit_out"] = calls["lossjit_out"]
    if value_only:
        fns["lossjit_value"] = calls["lossjit_value"]
    skipped: dict[str, str] = {}
    disagreed: dict[str, str] = {}
    forms: dict[str, dict[str, Any]] = {}
    expected = calls["lossjit"]()
    for peer in peers:
        try:
            if peer == "numpy":
                run = numpy_peer(inputs)
            elif peer in PEER_FACTORIES:
                run = PEER_FACTORIES[peer](inputs, expected=expected)
            else:
                skipped[peer] = "unknown peer"
                continue
        except Disagree as exc:
            disagreed[peer] = skipped[peer] = f"disagrees with lossjit: {exc}"
            continue
        except Skip as exc:
            skipped[peer] = str(exc)
            continue
        if not getattr(run, "checked", False):
            why = check_peer(run, expected, inputs.predictions.dtype)
            if why is not None:
                disagreed[peer] = skipped[peer] = f"disagrees with lossjit: {why}"
                continue
        fns[peer] = run
        if getattr(run, "form", None) is not None:
            forms[peer] = {"kept": run.form, "times": getattr(run, "form_times", {}),
                           "disagreed": getattr(run, "form_disagreed", {})}
        if peer == "numpy" and value_only:
            fns["numpy_value"] = numpy_peer(inputs, grad=False)
    del expected
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
        "disagreed": disagreed,
        "forms": forms,
        "foreign_load": meter.load,
    }
