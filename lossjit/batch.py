"""Many jobs in one process (``lossjit batch``): the kernels compile, or load, once.

A job list is NDJSON, one JSON object per line, or CSV, a header of field names and one job
per row (an empty cell is a field not given). Blank lines and lines starting with ``#`` are
skipped. A job's fields:

- ``loss`` and ``predictions`` (required), ``targets``: as on ``lossjit compute``'s command
  line, sources with selectors included (``results.csv:pred``);
- ``reduction``, ``sample_weight``, ``empty``, ``nan_policy``, ``header`` (true/false),
  ``classes`` (``"a,b,c"`` or a list);
- outputs: ``grad_out``, ``hess_out``, ``loss_out``, ``<option>_grad_out``; a job writes only
  the outputs it names (``compute`` writes the gradient by default, a batch job does not);
- the loss's own options by name (``"gamma": 1.5``, ``"weight": [1, 2, 3]`` or a file), at the
  top level or under ``"options"``.

Field names may use ``-`` for ``_`` (``grad-out``). Each job gives one NDJSON result, in the
order of the list: ``{"job": 1, "line": 1, "ok": true, "loss": ..., ...}`` (the record of
``compute --format json``), or ``{"job": 2, "line": 2, "ok": false, "error": "..."}`` with the
message ``compute`` would print. A failing job does not stop the others.

>>> [(n, job.loss, job.options) for n, _, job in parse_jobs('{"loss": "huber", "delta": 2, '
...  '"predictions": "p.npy", "targets": "t.npy"}\\n')]
[(1, 'huber', {'delta': 2})]
>>> [(n, job.outputs) for n, _, job in parse_jobs("loss,predictions,targets,grad_out\\n"
...                                              "mse,p.npy,t.npy,g.npy\\n")]
[(1, {'grad': 'g.npy'})]
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lossjit.errors import LossjitError
from lossjit.jobs import Job, run

__all__ = ["parse_jobs", "run_jobs"]

#: Job fields that are not the loss's own options.
_FIELDS = ("loss", "predictions", "targets", "reduction", "sample_weight", "empty", "header",
           "classes", "nan_policy", "options")


def _flag(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise LossjitError(f"{name}: {value!r} is not true or false")


def _text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise LossjitError(f"{name}: expected a string, got {json.dumps(value)}")


def job_from(fields: dict[str, Any]) -> Job:
    """The job a record of the job list describes."""
    fields = {str(k).replace("-", "_"): v for k, v in fields.items()
              if v is not None and v != ""}
    for name in ("loss", "predictions"):
        if name not in fields:
            raise LossjitError(f"{name}: missing; a job needs loss and predictions")
    options = dict(fields.pop("options", None) or {})
    outputs: dict[str, str] = {}
    for key in [k for k in fields if k.endswith("_out")]:
        path = _text(fields.pop(key), key)
        if path == "-":
            raise LossjitError(f"{key}: '-' is not allowed in a batch, stdout carries the "
                               "results; give a file path")
        outputs[key.removesuffix("_out")] = path
    options.update({k: v for k, v in fields.items() if k not in _FIELDS})
    classes = fields.get("classes")
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",")]
    return Job(_text(fields["loss"], "loss"), _text(fields["predictions"], "predictions"),
               _text(fields.get("targets"), "targets"),
               reduction=fields.get("reduction", "mean"), options=options,
               sample_weight=fields.get("sample_weight"), empty=fields.get("empty", "nan"),
               outputs=outputs, header=_flag(fields.get("header"), "header"),
               nan_policy=fields.get("nan_policy", "propagate"),
               classes=None if classes is None else tuple(map(str, classes)))


def _records(text: str) -> Iterator[tuple[int, dict[str, Any] | LossjitError]]:
    """(line number, fields or the error of that line) of each job in ``text``."""
    lines = text.splitlines()
    body = [(n, line) for n, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")]
    if not body:
        return
    if body[0][1].lstrip().startswith(("{", "[")):
        for n, line in body:
            try:
                fields = json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, LossjitError(f"line {n}: not a JSON object ({exc.msg} at column "
                                      f"{exc.colno})")
                continue
            yield n, fields if isinstance(fields, dict) else LossjitError(
                f"line {n}: expected a JSON object, got {type(fields).__name__}")
        return
    numbers = [n for n, _ in body]
    reader = csv.DictReader(io.StringIO("\n".join(line for _, line in body)))
    for n, row in zip(numbers[1:], reader, strict=False):
        if None in row:
            yield n, LossjitError(f"line {n}: more cells than the header's "
                                  f"{len(reader.fieldnames or [])} columns")
            continue
        yield n, {k.strip(): v.strip() if isinstance(v, str) else v for k, v in row.items()}


def parse_jobs(text: str) -> Iterator[tuple[int, int, Job | LossjitError]]:
    """(job number, line number, job or its error) of each job of a job list."""
    for number, (line, fields) in enumerate(_records(text), 1):
        if isinstance(fields, LossjitError):
            yield number, line, fields
            continue
        try:
            yield number, line, job_from(fields)
        except LossjitError as exc:
            yield number, line, exc


def _run_one(item: tuple[int, int, Job | LossjitError]) -> dict[str, Any]:
    number, line, job = item
    head = {"job": number, "line": line}
    if isinstance(job, LossjitError):
        return {**head, "ok": False, "error": str(job)}
    try:
        return {**head, "ok": True, **run(job).record()}
    except LossjitError as exc:
        return {**head, "ok": False, "name": job.loss, "predictions": job.predictions,
                "error": str(exc)}
    except Exception as exc:  # a job must not stop the others: its record says what broke
        return {**head, "ok": False, "name": job.loss, "predictions": job.predictions,
                "error": f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]}


def run_jobs(jobs: Iterable[tuple[int, int, Job | LossjitError]], *, workers: int = 1
             ) -> Iterator[dict[str, Any]]:
    """The result of each job, in order; ``workers`` > 1 runs that many at a time (reading
    and writing files overlap; the kernels themselves run one at a time)."""
    if workers <= 1:
        yield from map(_run_one, jobs)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_run_one, jobs)
