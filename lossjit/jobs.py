"""One job: a loss on arrays read from files, its outputs written to files, and its record.

``lossjit compute`` runs one job; ``lossjit batch`` runs many in one process, sharing the
compiled kernels. A :class:`Job` names everything as text or plain values, as a command line
or a JSON line gives it; :func:`run` reads the inputs (:mod:`lossjit.readers`), computes
(:mod:`lossjit.api`), writes the outputs (:mod:`lossjit.writers`) and returns a
:class:`Done` whose :meth:`Done.record` is what ``--format json`` prints.

Every output path is checked before anything is read or computed, so a bad path fails the
job before it writes any file. Outputs are keyed ``grad`` (the gradient), ``hess`` (the
Hessian's diagonal), ``loss`` (the per-term losses) and ``<option>_grad`` (the gradient with
respect to a differentiable option); at most one of them may be ``-`` (standard output).

>>> import os, tempfile
>>> import numpy as np
>>> d = tempfile.mkdtemp()
>>> np.save(os.path.join(d, "p.npy"), np.array([1.5, 2.0]))
>>> np.save(os.path.join(d, "t.npy"), np.array([1.0, 1.0]))
>>> done = run(Job("mse", os.path.join(d, "p.npy"), os.path.join(d, "t.npy"),
...                outputs={"grad": os.path.join(d, "g.csv")}))
>>> done.value, open(os.path.join(d, "g.csv")).read().split()
(0.625, ['0.5', '1.0'])
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from lossjit import registry
from lossjit.errors import LossjitError, UsageError
from lossjit.readers import Reader, Selected, Source, label_indices, parse_array_option
from lossjit.registry import LossSpec, Param
from lossjit.writers import OutputSet, check_destination, write_array

__all__ = ["Done", "Job", "option_flag", "output_flag", "run"]

#: The choices of ``nan_policy``.
NAN_POLICIES = ("propagate", "raise", "omit")

#: What each output key holds, in messages.
_OUTPUT_WORDS = {"grad": "gradient", "hess": "Hessian diagonal", "loss": "per-term losses"}


def option_flag(name: str) -> str:
    """The flag of a loss option or job field: ``ignore_index`` -> ``--ignore-index``."""
    return "--" + name.replace("_", "-")


def output_flag(key: str) -> str:
    """The flag naming an output: ``grad`` -> ``--grad-out``, ``var_grad`` -> ``--var-grad-out``."""
    return option_flag(key) + "-out"


def output_words(key: str) -> str:
    """What an output holds, in words: ``var_grad`` -> ``gradient w.r.t. var``."""
    return _OUTPUT_WORDS.get(key) or f"gradient w.r.t. {key.removesuffix('_grad')}"


@dataclass
class Job:
    """One loss on files. ``predictions``, ``targets`` and array options are sources
    (``file[:selector]`` or ``-``); ``options`` hold the loss's options as given (text from a
    command line, numbers or lists from JSON); ``outputs`` map output keys to paths.
    ``targets`` None with a loss that needs targets reads both arrays from the predictions'
    file (:meth:`lossjit.readers.Reader.pair`)."""

    loss: str
    predictions: str
    targets: str | None = None
    reduction: str = "mean"
    options: dict[str, Any] = field(default_factory=dict)
    sample_weight: Any = None
    empty: str = "nan"
    outputs: dict[str, str] = field(default_factory=dict)
    header: bool | None = None
    classes: tuple[str, ...] | None = None
    stream_format: str = "csv"
    nan_policy: str = "propagate"
    #: stream ``.npy`` inputs piece by piece: True, False, or None (when they are larger
    #: than ``memory``)
    stream: bool | None = None
    memory: str | int = "256MiB"
    #: run on Dask: a local cluster of ``workers`` processes, or the scheduler at this
    #: address (``tcp://host:port``)
    dask: bool = False
    workers: int | None = None
    scheduler: str | None = None


@dataclass
class Done:
    """What a job gave: the loss value, what it ran on, where its outputs went, its timings."""

    spec: LossSpec
    job: Job
    value: Any
    shape: tuple[int, ...]
    dtype: str
    options: dict[str, Any]
    written: dict[str, str]
    seconds: dict[str, float]
    separator: str = " "

    def record(self) -> dict[str, Any]:
        """The job's record: loss, name, options, shape, dtype, outputs and timings, as JSON
        data (NaN and infinities as null)."""
        record = {
            "loss": json_safe(self.value),
            "name": self.spec.name,
            "predictions": self.job.predictions,
            "targets": self.job.targets,
            "reduction": self.job.reduction,
            "params": {k: json_safe(v) for k, v in self.spec.options(self.options).items()},
            "sample_weight": self.job.sample_weight is not None,
            "empty": self.job.empty,
            "nan_policy": self.job.nan_policy,
            "shape": list(self.shape),
            "dtype": self.dtype,
        }
        record["grad"] = self.written.get("grad")
        for key, path in self.written.items():
            record[key if key in ("grad", "hess") or key.endswith("_grad") else f"{key}_out"] \
                = path
        record.update({f"{k}_seconds": round(v, 6) for k, v in self.seconds.items()})
        record["seconds"] = round(sum(self.seconds.values()), 6)
        return record


def json_safe(value: Any) -> Any:
    """``value`` as JSON data: arrays become (nested) lists, NaN and infinities None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


class _Clock:
    """Seconds spent in each step of a job; ``compile`` is the time Numba held its compiler
    lock (compiling or loading kernels from the cache) during ``compute``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    @contextmanager
    def compute(self) -> Iterator[None]:
        import numba.core.event as event

        compiling = [0.0]

        def add(seconds: float) -> None:
            compiling[0] += seconds

        self.seconds.setdefault("compile", 0.0)
        with self.step("compute"), event.install_timer("numba:compiler_lock", add):
            yield
        self.seconds["compile"] += compiling[0]
        self.seconds["compute"] -= compiling[0]


# --------------------------------------------------------------------------------------------
# options


def _scalar(param: Param, value: Any, what: str) -> Any:
    """A scalar option given as text or JSON: converted to its kind; the loss checks it."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if param.kind == "bool":
            lowered = text.lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError(text)
        if param.kind == "int":
            return int(text)
        return float(text)
    except ValueError:
        kind = {"bool": "true or false", "int": "an integer"}.get(param.kind, "a number")
        raise LossjitError(f"{what}: {value!r} is not {kind}") from None


def _array_option(value: Any, what: str, reader: Reader, scalar: bool) -> Any:
    """An array option: a number (where a scalar is allowed), a list of numbers, comma-separated
    numbers, or a source."""
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    if not isinstance(value, str):
        return value
    if scalar:
        try:
            return float(value)
        except ValueError:
            pass
    return parse_array_option(value, what=what, reader=reader)


def option_values(spec: LossSpec, given: dict[str, Any], reader: Reader) -> dict[str, Any]:
    """The loss's options the job sets (None: unset), converted from text or JSON; an unknown
    option is an error that lists the loss's options."""
    known = {p.name: p for p in spec.params}
    values: dict[str, Any] = {}
    for name, value in given.items():
        if value is None:
            continue
        param = known.get(name)
        if param is None:
            listed = ", ".join(known) or "none"
            raise LossjitError(f"{option_flag(name)}: {spec.name} has no such option; its "
                               f"options: {listed}")
        what = option_flag(name)
        if param.kind in ("array", "float_or_array"):
            values[name] = _array_option(value, what, reader, param.kind == "float_or_array")
        else:
            values[name] = _scalar(param, value, what)
    return values


# --------------------------------------------------------------------------------------------
# inputs


def _same_data(a: Source, b: Source) -> bool:
    return a.path == b.path and a.selector == b.selector


def _read_inputs(spec: LossSpec, job: Job, reader: Reader) -> tuple[Selected, Selected | None]:
    """The predictions and targets as selected; targets None for a loss without targets."""
    if job.targets is None and spec.targets == "required":
        source = Source.parse(job.predictions)
        if source.selector is None and reader.names(source.path, what="predictions"):
            return reader.pair(source.path, what="predictions")
        raise UsageError(f"Missing argument 'TARGETS': {spec.name} needs targets, given as a "
                         "second file, or with the predictions in one file holding both "
                         "(keys or columns predictions/targets, y_pred/y_true, ...)")
    predictions = reader.read(job.predictions, what="predictions")
    if job.targets is None or spec.targets == "none":
        return predictions, None
    targets = reader.read(job.targets, what="targets")
    if _same_data(predictions.source, targets.source):
        shown = "stdin" if str(targets.source) == "-" else repr(str(targets.source))
        raise LossjitError(
            f"targets: {shown} is the same data as the predictions; name the columns or keys "
            "of each, e.g. results.csv:pred results.csv:label (or -:pred -:label)")
    return predictions, targets


def _numbers(selected: Selected, what: str) -> np.ndarray:
    array = selected.array
    if array.dtype.kind in "US":
        first = str(array.flat[0]) if array.size else ""
        raise LossjitError(f"{what}: {str(selected.source)!r} holds text ({first!r}); expected "
                           "numbers")
    return array


def _class_indices(spec: LossSpec, predictions: Selected, targets: Selected,
                   classes: tuple[str, ...] | None) -> np.ndarray:
    """Targets as the loss takes them: text labels mapped to class indices (through
    ``classes``, or the logits' column names), whole-number floats of the class-index shape
    as integers."""
    x, t = predictions.array, targets.array
    shape = spec.layout.class_index_shape(np.shape(x))
    if t.dtype.kind in "US":
        if shape is None:
            return _numbers(targets, "targets")
        names = classes or predictions.names
        count = spec.layout.class_count(np.shape(x))
        if not names or len(names) != count:
            got = f"; the predictions' columns are {', '.join(predictions.names)}" \
                if predictions.names else ""
            raise LossjitError(
                f"targets: {str(targets.source)!r} holds text labels ({str(t.flat[0])!r}); "
                f"name the {count} classes in order with --classes a,b,c{got}")
        return label_indices(t, names, what="targets")
    if shape is not None and t.dtype.kind == "f" and t.shape == shape and t.shape != x.shape:
        whole = np.isfinite(t) & (t == np.floor(t))
        if not whole.all():
            position = np.unravel_index(int(np.argmin(whole)), t.shape)
            raise LossjitError(
                f"targets: class indices must be whole numbers; found {float(t[position])!r} "
                f"at position {tuple(int(i) for i in position)}")
        return t.astype(np.int64)
    return t


@dataclass
class Inputs:
    """A job's arrays and options as the loss takes them."""

    predictions: Selected
    x: np.ndarray
    y: np.ndarray | None
    options: dict[str, Any]
    sample_weight: Any


def read_inputs(spec: LossSpec, job: Job, reader: Reader) -> Inputs:
    """Read a job's predictions, targets and array options; convert its other options."""
    options = option_values(spec, job.options, reader)
    weights = None if job.sample_weight is None else _array_option(
        job.sample_weight, "--sample-weight", reader, False)
    predictions, targets = _read_inputs(spec, job, reader)
    x = _numbers(predictions, "predictions")
    y = None if targets is None else _class_indices(spec, predictions, targets, job.classes)
    return Inputs(predictions, x, y, options, weights)


def non_finite(inputs: Inputs) -> str | None:
    """A one-line note on the non-finite numbers among a job's inputs (how many, and where
    the first is), or None when every number is finite."""
    count, first = 0, None
    arrays = [("predictions", inputs.x), ("targets", inputs.y),
              ("--sample-weight", inputs.sample_weight)]
    for what, array in arrays:
        if array is None or np.asarray(array).dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(np.asarray(array))
        found = int(np.count_nonzero(bad))
        if found and first is None:
            position = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))
            first = f"{what} at position {position}"
        count += found
    if not count:
        return None
    return (f"{count} non-finite input value{'s' if count > 1 else ''} (the first: {first}); "
            "they propagate to the loss and the gradient (--nan-policy raise or omit)")


def _separator(source: Source) -> str:
    """How the input separated its columns (the per-term losses are printed the same way)."""
    from lossjit.formats import split_name

    return {".csv": ",", ".tsv": "\t"}.get(split_name(source.path)[0], " ")


# --------------------------------------------------------------------------------------------
# outputs


def _input_paths(job: Job) -> list[str]:
    """The files a job reads, never written: each source's path (and a Zarr group's array's
    directory), and the file standard input is redirected from when a source is ``-``
    (compared by device and inode)."""
    import os

    sources = [job.predictions, job.targets, job.sample_weight,
               *(v for v in job.options.values() if isinstance(v, str))]
    paths = []
    for text in sources:
        if isinstance(text, str) and text:
            try:
                source = Source.parse(text)
            except LossjitError:
                continue
            paths.append(source.path)
            zarr_source = _zarr_source(text)
            if zarr_source is not None and zarr_source[1]:
                paths.append(os.path.join(*zarr_source))  # a group's array
    if "-" in paths and os.path.exists("/dev/stdin"):
        paths.append("/dev/stdin")
    return paths


def check_outputs(job: Job, protect: list[str]) -> None:
    """Refuse the outputs before anything is computed: two on stdout, two on one path, or a
    path that cannot be written."""
    import os

    seen: dict[str, str] = {}
    on_stdout = [key for key, path in job.outputs.items() if path == "-"]
    if len(on_stdout) > 1:
        raise LossjitError(f"{output_flag(on_stdout[1])}: only one output may be - (stdout); "
                           f"{output_flag(on_stdout[0])} already is")
    for key, path in job.outputs.items():
        if path == "-":
            continue
        check_destination(path, protect=protect, what=output_flag(key))
        for other, earlier in seen.items():
            if os.path.realpath(path) == os.path.realpath(other) or (
                    os.path.exists(path) and os.path.exists(other)
                    and os.path.samefile(path, other)):
                raise LossjitError(f"{output_flag(key)}: {path!r} is also "
                                   f"{output_flag(earlier)}; give each output its own path")
        seen[path] = key


def _columns(names: tuple[str, ...], array: np.ndarray) -> tuple[str, ...] | None:
    width = 1 if array.ndim <= 1 else array.shape[-1]
    return names if names and len(names) == width and array.ndim <= 2 else None


def _write_outputs(job: Job, arrays: dict[str, Any], names: tuple[str, ...],
                   stdout: BinaryIO | None, say: Callable[[str], None] | None) -> None:
    """Write every output, or none: the files go to temporaries first, then the output on
    stdout (if any), and only then are the files renamed into place."""
    protect = _input_paths(job)
    with OutputSet() as files:
        for key, path in job.outputs.items():
            array = np.asarray(arrays[key])
            columns = _columns(names if key in ("grad", "hess") else (), array)
            if path != "-":
                files.add(path, array, columns=columns, key=key, protect=protect,
                          what=output_flag(key))
        for key, path in job.outputs.items():
            if path == "-":
                array = np.asarray(arrays[key])
                columns = _columns(names if key in ("grad", "hess") else (), array)
                write_array(path, array, columns=columns, key=key, what=output_flag(key),
                            stdout=stdout, stream_format=job.stream_format)
        files.commit()
    if say is not None:
        for key, path in job.outputs.items():
            say(f"{output_words(key)} written to {'stdout' if path == '-' else path}")


def run(job: Job, *, reader: Reader | None = None, stdin: BinaryIO | None = None,
        stdout: BinaryIO | None = None, say: Callable[[str], None] | None = None,
        progress: Callable[[int, str], Callable[[int], None]] | None = None) -> Done:
    """Run one job: check its outputs, read its inputs, compute, write. ``reader`` shares
    files already read (standard input is read once); ``say`` hears where each output went.
    A streamed job (:func:`_streams`) reports its progress to ``progress(total, label)``'s
    callback, with the indices of axis 0 done."""
    from lossjit import api
    from lossjit.layouts import FLOATS

    spec = registry.resolve(job.loss)
    if job.reduction not in spec.reductions:
        raise LossjitError(f"reduction: {job.reduction!r} is not one of "
                           f"{', '.join(spec.reductions)}")
    if job.nan_policy not in NAN_POLICIES:
        raise LossjitError(f"nan_policy: {job.nan_policy!r} is not one of "
                           f"{', '.join(NAN_POLICIES)}")
    if job.empty not in registry.EMPTY_CHOICES:
        raise LossjitError(f"empty: {job.empty!r} is not one of "
                           f"{', '.join(registry.EMPTY_CHOICES)}")
    for key in job.outputs:
        if key == "hess" and not spec.hessian:
            raise LossjitError(f"--hess-out: {spec.name} has no Hessian")
        if key.endswith("_grad") and key.removesuffix("_grad") not in {
                p.name for p in spec.params if p.differentiable}:
            raise LossjitError(f"{output_flag(key)}: {spec.name} cannot be differentiated by "
                               f"{key.removesuffix('_grad')}")
    if job.targets is not None and spec.targets == "none" and say is not None:
        say(f"{spec.name} takes no targets; ignoring {job.targets}")
    clock = _Clock()
    reader = reader or Reader(header=job.header, stdin=stdin)
    check_outputs(job, _input_paths(job))
    if job.dask or job.scheduler:
        return _run_on_dask(spec, job, reader, clock, say)
    if _streams(spec, job):
        return _run_streamed(spec, job, reader, clock, say, progress)
    with clock.step("read"):
        inputs = read_inputs(spec, job, reader)
    x, y, options, weights = inputs.x, inputs.y, inputs.options, inputs.sample_weight
    if job.nan_policy == "propagate" and say is not None:
        note = non_finite(inputs)
        if note is not None:
            say(f"warning: {note}")

    wrt = ("predictions", *(k.removesuffix("_grad") for k in job.outputs if k.endswith("_grad")))
    with clock.compute():
        value, grads, hess = api.compute(
            spec.name, x, y, reduction=job.reduction, want_grad="grad" in job.outputs
            or len(wrt) > 1, sample_weight=weights, empty=job.empty, wrt=wrt,
            hessian="hess" in job.outputs, nan_policy=job.nan_policy, **options)
        terms = value
        if "loss" in job.outputs and job.reduction != "none":
            terms, _, _ = api.compute(spec.name, x, y, reduction="none", want_grad=False,
                                      sample_weight=weights, empty=job.empty,
                                      nan_policy=job.nan_policy, **options)

    arrays = {"grad": grads.get("predictions"), "hess": hess, "loss": terms,
              **{f"{k}_grad": v for k, v in grads.items() if k != "predictions"}}
    with clock.step("write"):
        _write_outputs(job, arrays, inputs.predictions.names, stdout, say)
    dtype = x.dtype if x.dtype in FLOATS else np.dtype(np.float64)
    return Done(spec, job, value, tuple(np.shape(x)), np.dtype(dtype).name, options,
                dict(job.outputs), clock.seconds, _separator(inputs.predictions.source))


# --------------------------------------------------------------------------------------------
# streaming


def _npy_path(text: str | None) -> str | None:
    """The path of a source that is a whole plain ``.npy`` file, or None."""
    from lossjit.formats import split_name

    if text is None:
        return None
    source = Source.parse(text)
    ext, compression = split_name(source.path)
    if source.path == "-" or source.selector is not None or ext != ".npy" or compression:
        return None
    return source.path


def _zarr_source(text: str | None) -> tuple[str, str | None] | None:
    """``(store, name)`` of a source that names a Zarr array (``x.zarr``, or ``x.zarr:name``
    in a group), or None."""
    from lossjit.formats import zarr_parts

    return None if text is None else zarr_parts(text)


def _open_input(text: str, what: str) -> Any:
    """A streamed input: a ``.npy`` file memory-mapped, or a Zarr array (read by chunks)."""
    from lossjit import streaming

    zarr_source = _zarr_source(text)
    if zarr_source is not None:
        return streaming.open_zarr(*zarr_source, what=what)
    return streaming.open_npy(str(_npy_path(text)))


def _streams(spec: LossSpec, job: Job) -> bool:
    """Whether the job runs streamed: its inputs are whole ``.npy`` files or Zarr arrays, and
    ``--stream`` says so, or (by default) they are Zarr arrays or ``.npy`` files larger than
    ``--memory``."""
    import os

    from lossjit.streaming import parse_memory

    if job.stream is False:
        return False
    texts = [job.predictions]
    if spec.targets != "none" and (job.targets is not None or spec.targets == "required"):
        texts.append(job.targets)
    unusable = [t for t in texts if _npy_path(t) is None and _zarr_source(t) is None]
    if unusable:
        if job.stream:
            raise LossjitError("--stream: streaming reads whole .npy files and Zarr arrays "
                               "(no selector, not compressed, not stdin); got "
                               + " and ".join(repr(t) for t in unusable))
        return False
    if job.stream or any(_zarr_source(t) is not None for t in texts):
        return True
    try:
        size = sum(os.path.getsize(str(_npy_path(t))) for t in texts)
    except OSError:
        return False  # the reader says what is wrong
    return size > parse_memory(job.memory)


def _run_streamed(spec: LossSpec, job: Job, reader: Reader, clock: _Clock,
                  say: Callable[[str], None] | None,
                  progress: Callable[[int, str], Callable[[int], None]] | None) -> Done:
    """Run a job piece by piece from ``.npy`` inputs (or Zarr arrays) into ``.npy`` outputs
    (or Zarr arrays, one piece a chunk) (:mod:`lossjit.streaming`), written all or none."""
    from lossjit import streaming
    from lossjit.layouts import FLOATS
    from lossjit.plan import make_plan

    for key, path in job.outputs.items():
        if key.endswith("_grad") or path == "-":
            raise LossjitError(f"{output_flag(key)}: a streamed run writes the gradient, the "
                               "Hessian diagonal and the per-term losses to .npy files and "
                               ".zarr stores only; add --no-stream")
    if job.reduction == "none" and "loss" not in job.outputs:
        raise LossjitError("--reduction none: a streamed run writes the per-term losses to a "
                           "file; add --loss-out FILE.npy (or --no-stream to print them)")
    memory = streaming.parse_memory(job.memory)
    with clock.step("read"):
        options = option_values(spec, job.options, reader)
        weights = None if job.sample_weight is None else _array_option(
            job.sample_weight, "--sample-weight", reader, False)
        x = _open_input(job.predictions, "predictions")
        y = None
        if spec.targets != "none" and job.targets is not None:
            y = _open_input(job.targets, "targets")
    if x.dtype.kind not in "fiub":
        raise LossjitError(f"predictions: dtype {x.dtype} is not numbers")
    dtype = x.dtype if x.dtype in FLOATS else np.dtype(np.float64)
    plan = make_plan(spec.name, reduction=job.reduction, empty=job.empty,
                     hessian="hess" in job.outputs, want_grad="grad" in job.outputs,
                     nan_policy=job.nan_policy, **options)
    protect = _input_paths(job)
    rows = streaming.stream_rows(plan, x, y, outputs=len(set(job.outputs) & {"grad", "hess"}),
                                 memory=memory)
    chunk = streaming.chunk_rows(x)  # Zarr outputs keep Zarr predictions' chunks
    chunk = chunk if chunk > 1 and rows % chunk == 0 else rows
    with OutputSet() as files:
        mapped = {key: files.mapped(path, x.shape, dtype, rows=chunk, protect=protect,
                                    what=output_flag(key))
                  for key, path in job.outputs.items() if key in ("grad", "hess")}
        terms = None
        if "loss" in job.outputs:
            terms_plan = make_plan(spec.name, reduction="none", want_grad=False,
                                   empty=job.empty, nan_policy=job.nan_policy, **options)
            shape = terms_plan.lay_out(np.asarray(x[:1]), None if y is None
                                       else np.asarray(y[:1])).terms_shape
            terms = files.mapped(job.outputs["loss"], (x.shape[0], *shape[1:]), dtype,
                                 rows=chunk, protect=protect, what=output_flag("loss"))
        report = None if progress is None else progress(x.shape[0], spec.name)
        with clock.compute():
            value = streaming.stream(plan, x, y, sample_weight=weights,
                                     grad=mapped.get("grad"), hess=mapped.get("hess"),
                                     losses=terms if job.reduction == "none" else None,
                                     memory=memory, rows=rows, progress=report)
            if terms is not None and job.reduction != "none":
                streaming.stream(terms_plan, x, y, sample_weight=weights, losses=terms,
                                 memory=memory, rows=rows)
        with clock.step("write"):
            del mapped
            files.commit()
    if say is not None:
        for key, path in job.outputs.items():
            say(f"{output_words(key)} written to {path}")
    return Done(spec, job, value, tuple(x.shape), np.dtype(dtype).name, options,
                dict(job.outputs), clock.seconds, " ")


# --------------------------------------------------------------------------------------------
# Dask


def _dask_array(path: str, rows: int) -> Any:
    """A ``.npy`` file as a Dask array of ``rows`` rows a chunk, each chunk read by the task
    that needs it (the workers must see the path)."""
    import dask
    import dask.array as da

    from lossjit import streaming

    mapped = streaming.open_npy(path)
    shape, dtype = mapped.shape, mapped.dtype
    del mapped
    if not shape:
        raise LossjitError(f"{path}: a scalar has no rows to spread over workers")

    def part(lo: int, hi: int) -> np.ndarray:
        return np.array(np.load(path, mmap_mode="r")[lo:hi])

    parts = [da.from_delayed(dask.delayed(part, pure=True)(lo, min(shape[0], lo + rows)),
                             (min(shape[0], lo + rows) - lo, *shape[1:]), dtype)
             for lo in range(0, shape[0], rows)] or [da.zeros(shape, dtype)]
    return da.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


def _dask_input(text: str, rows: int) -> Any:
    """A streamed input as a Dask array: a Zarr array in its own chunks, a ``.npy`` file in
    chunks of ``rows`` rows."""
    zarr_source = _zarr_source(text)
    if zarr_source is not None:
        import dask.array as da

        return da.from_zarr(zarr_source[0], component=zarr_source[1])
    return _dask_array(str(_npy_path(text)), rows)


def _write_part(path: str, lo: int, block: np.ndarray) -> int:
    """Write one chunk of an output into its rows of the ``.npy`` file at ``path``."""
    out = np.load(path, mmap_mode="r+")
    out[lo:lo + block.shape[0]] = block
    out.flush()
    return block.shape[0]


def _run_on_dask(spec: LossSpec, job: Job, reader: Reader, clock: _Clock,
                 say: Callable[[str], None] | None) -> Done:
    """Run a job on Dask: ``.npy`` inputs (or Zarr arrays) read by the workers chunk by chunk,
    the gradient (and Hessian) written by them into ``.npy`` (or Zarr) temporaries renamed
    when complete."""
    from lossjit import streaming
    from lossjit.formats import optional
    from lossjit.layouts import FLOATS
    from lossjit.plan import make_plan

    dask = optional("dask", "--dask")
    distributed = optional("distributed", "--dask")
    from lossjit import dask as ldask

    for key, path in job.outputs.items():
        if key not in ("grad", "hess") or path == "-":
            raise LossjitError(f"{output_flag(key)}: a Dask run writes the gradient and the "
                               "Hessian diagonal to .npy files and .zarr stores only")
    if job.reduction == "none":
        raise LossjitError("--reduction none: a Dask run gives the reduced loss; drop --dask "
                           "(or use --stream --loss-out) for per-term losses")
    texts = [job.predictions]
    if spec.targets != "none" and job.targets is not None:
        texts.append(job.targets)
    if any(_npy_path(t) is None and _zarr_source(t) is None for t in texts):
        raise LossjitError("--dask: the workers read whole .npy files and Zarr arrays by path "
                           "(no selector, not compressed, not stdin)")
    options = option_values(spec, job.options, reader)
    weights = None if job.sample_weight is None else _array_option(
        job.sample_weight, "--sample-weight", reader, False)
    first = _open_input(texts[0], "predictions")
    shape, dtype = tuple(first.shape), first.dtype
    del first
    out_dtype = dtype if dtype in FLOATS else np.dtype(np.float64)
    plan = make_plan(spec.name, reduction=job.reduction, empty=job.empty,
                     hessian="hess" in job.outputs, want_grad="grad" in job.outputs,
                     nan_policy=job.nan_policy, **options)
    rows = streaming.piece_rows(plan, shape, [dtype] * 3, streaming.parse_memory(job.memory))
    with clock.step("read"):
        x = _dask_input(texts[0], rows)
        y = _dask_input(texts[1], rows) if len(texts) > 1 else None
    protect = _input_paths(job)
    if job.scheduler:
        client = distributed.Client(job.scheduler)
    else:
        client = distributed.Client(distributed.LocalCluster(
            n_workers=job.workers or 2, threads_per_worker=1, processes=True,
            dashboard_address=None))
    try:
        with OutputSet() as files, clock.compute():
            chunk = max(x.chunks[0], default=1)
            outs = {key: files.mapped(path, tuple(shape), out_dtype, rows=chunk,
                                      protect=protect, what=output_flag(key))
                    for key, path in job.outputs.items()}
            value, grad, hess = ldask._compute(
                spec.name, x, y, reduction=job.reduction, sample_weight=weights,
                empty=job.empty, nan_policy=job.nan_policy, want_grad="grad" in job.outputs,
                hessian="hess" in job.outputs, options=options)
            writes = []
            for key, array in (("grad", grad), ("hess", hess)):
                out = outs.get(key)
                if isinstance(out, np.memmap):
                    bounds = np.cumsum((0, *array.chunks[0])).tolist()
                    writes += [dask.delayed(_write_part, pure=False)(out.filename, lo, part)
                               for lo, part in zip(bounds, array.to_delayed().reshape(-1),
                                                   strict=False)]
                elif out is not None:  # a Zarr array: each task writes whole chunks of it
                    if any(n != chunk for n in array.chunks[0][:-1]):
                        array = array.rechunk({0: chunk})
                    writes.append(array.store(out, lock=False, compute=False))
            computed = client.compute([value, *writes], sync=True)
            value = float(computed[0])
            files.commit()
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None and not job.scheduler:
            cluster.close()
    if say is not None:
        for key, path in job.outputs.items():
            say(f"{output_words(key)} written to {path}")
    return Done(spec, job, value, tuple(shape), np.dtype(out_dtype).name, options,
                dict(job.outputs), clock.seconds, " ")
