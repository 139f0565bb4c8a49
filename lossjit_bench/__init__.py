"""lossjit's benchmark harness: timing, example inputs, NumPy references, the
PyTorch/JAX/scikit-learn peers, the report table and the machine's figures.

Used by ``benchmarks/run.py`` (the full side-by-side run) and by the ``lossjit bench``
command. It is not part of the runtime package ``lossjit``. Importing it imports NumPy only:
lossjit's kernels, Numba, PyTorch, JAX and scikit-learn are imported on first use, and a peer
that is not installed is skipped with the reason ``"not installed"``.

Its modules, one job each:

- :mod:`lossjit_bench.timing`: :func:`time_call` gives per-call seconds (warm-up first; take
  the median), :func:`time_many` interleaves several implementations, :class:`ForeignLoad`
  measures the CPU other processes used meanwhile.
- :mod:`lossjit_bench.inputs`: :func:`make_inputs` builds the inputs of a loss for a total
  element count (or shape) and dtype; :func:`input_kind` and :data:`INPUT_KINDS` say how a
  loss's inputs are laid out.
- :mod:`lossjit_bench.references`: :data:`REFERENCES` are fair, vectorised NumPy
  implementations of every built-in loss, value and gradient, in stable forms (they compute
  in the input's dtype, as a NumPy user would), for reduction "mean" and "sum" (kl_div also
  "batchmean"); class-axis ones take (N, C) scores with integer class indices.
- :mod:`lossjit_bench.peers`: the PyTorch, JAX and scikit-learn peers (and NumPy's).
- :mod:`lossjit_bench.cases`: :func:`run_case` times lossjit against the references and the
  installed peers.
- :mod:`lossjit_bench.report`: the table of results, speed-ups and bandwidth figures.
- :mod:`lossjit_bench.machine`: :func:`triad_bandwidth` measures the STREAM triad
  ``a = b + s * c`` (float64, Numba) in GB/s; :func:`machine_info` the CPU and versions.

Timing conventions (also recorded by ``benchmarks/run.py`` in its JSON under ``"notes"``):

- **lossjit**: ``value_and_grad`` (a fresh gradient array each call); ``lossjit_out`` with
  ``out=`` a reused buffer; ``lossjit_value``: ``loss`` (no gradient).
- **numpy**: the NumPy reference, allocating its gradient; ``numpy_value``: value only.
- **torch**: autograd on 2 threads; the leaf's ``.grad`` is set to ``None`` before every call
  (as ``optimizer.zero_grad(set_to_none=True)``), so each backward allocates a fresh gradient;
  the tensors are made from the NumPy arrays once, outside the timed region. Losses that
  ``torch.nn.functional`` lacks (focal, sigmoid_focal, contrastive, log_cosh, pseudo_huber,
  quantile, poly1) are composed from torch ops; kl_div is ``kl_div(reduction="sum") / numel``
  (its "mean" warns on every call).
- **jax**: ``jax.jit(jax.value_and_grad(f))`` on the CPU with ``jax_enable_x64`` (so float64
  stays float64), ``block_until_ready`` on the result; arrays put on the device once
  (gaussian_nll's var is an argument of ``f``). optax is not a dependency: the losses are
  written in ``jax.numpy`` as optax writes them.
- **sklearn**: the private ``sklearn._loss`` classes, ``loss_gradient(..., loss_out=,
  gradient_out=, n_threads=2)`` into preallocated buffers, plus the sum of ``loss_out`` (it
  returns per-sample losses). Its "half" conventions differ (e.g. ``HalfSquaredError`` is
  e^2/2 with gradient e, unscaled; ``HalfPoissonLoss`` adds constants): compare speed only.
  Compare it with ``lossjit_out``.
"""

from lossjit_bench.cases import lossjit_calls, run_case
from lossjit_bench.inputs import (
    CLASSES,
    DEFAULT_CLASSES,
    ELEMENTWISE,
    EMBED_DIM,
    INPUT_KINDS,
    MULTILABEL,
    PAIRS,
    RANKS,
    SIGNED_LABELS,
    TRIPLETS,
    Inputs,
    input_kind,
    make_inputs,
    shape_for,
)
from lossjit_bench.machine import machine_info, release_triad_arrays, triad_bandwidth
from lossjit_bench.names import canonical
from lossjit_bench.peers import (
    PEER_FACTORIES,
    PEERS,
    SKLEARN_LOSSES,
    Skip,
    jax_peer,
    numpy_peer,
    peer_available,
    sklearn_peer,
    torch_peer,
)
from lossjit_bench.references import BCE_FLOOR, COSINE_EPS, REFERENCES, reference
from lossjit_bench.report import (
    TABLE_HEADER,
    add_bandwidth,
    format_ratio,
    format_shape,
    format_time,
    speedup,
    table_row,
)
from lossjit_bench.timing import ForeignLoad, median, time_call, time_many

__all__ = [
    "BCE_FLOOR", "CLASSES", "COSINE_EPS", "DEFAULT_CLASSES", "ELEMENTWISE", "EMBED_DIM",
    "INPUT_KINDS", "MULTILABEL", "PAIRS", "PEERS", "PEER_FACTORIES", "RANKS", "REFERENCES",
    "SIGNED_LABELS", "SKLEARN_LOSSES", "TABLE_HEADER", "TRIPLETS",
    "ForeignLoad", "Inputs", "Skip",
    "add_bandwidth", "canonical", "format_ratio", "format_shape", "format_time", "input_kind",
    "jax_peer", "lossjit_calls", "machine_info", "make_inputs", "median", "numpy_peer",
    "peer_available", "reference", "release_triad_arrays", "run_case", "shape_for",
    "sklearn_peer", "speedup", "table_row", "time_call", "time_many", "torch_peer",
    "triad_bandwidth",
]
