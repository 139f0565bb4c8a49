"""The record of a run as ``lossjit compute --format`` prints it: text, json, ndjson or csv.

- ``text``: the loss; with ``--reduction none`` the per-term losses keeping their shape, one
  row per line, columns separated as in the predictions' file (comma, tab or space);
- ``json``: one JSON object on one line: loss, name, sources, reduction, params, shape, dtype
  (its name), output paths, and the seconds spent reading, compiling (or loading compiled
  kernels), computing and writing;
- ``ndjson``: the same object; with ``--reduction none``, one object per term instead
  (``{"name": ..., "index": [i, j], "loss": ...}``), for tools that read records line by line;
- ``csv``: a header line and one row of the record's fields (params as JSON); with
  ``--reduction none``, one row per term: its index (one column per axis) and its loss.

>>> print(csv_text([{"name": "mse", "loss": 0.5}]), end="")
name,loss
mse,0.5
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

__all__ = ["FORMATS", "csv_text", "render"]

#: The formats of ``--format``.
FORMATS = ("text", "json", "ndjson", "csv")


def csv_text(rows: Iterable[dict[str, Any]]) -> str:
    """Rows as CSV text under a header of the first row's keys; lists, dicts and booleans as
    JSON, None as an empty cell."""
    out = io.StringIO()
    writer: csv.DictWriter | None = None
    for row in rows:
        if writer is None:
            writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\n")
            writer.writeheader()
        writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict, bool)) else
                         "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def _terms(value: Any) -> Iterable[tuple[list[int], float]]:
    """Each per-term loss with its index."""
    import numpy as np

    terms = np.asarray(value)
    for index in np.ndindex(terms.shape):
        yield [int(i) for i in index], float(terms[index])


def render(done: Any, fmt: str) -> str:
    """The record of ``done`` (a :class:`lossjit.jobs.Done`) in ``fmt``, ending in a newline."""
    import numpy as np

    from lossjit.jobs import json_safe
    from lossjit.writers import text_lines

    per_term = done.job.reduction == "none"
    if fmt == "text":
        if per_term:
            return text_lines(np.asarray(done.value, dtype=np.float64), done.separator)
        return repr(float(done.value)) + "\n"
    if fmt == "json" or (fmt == "ndjson" and not per_term):
        return json.dumps(done.record()) + "\n"
    if fmt == "ndjson":
        return "".join(json.dumps({"name": done.spec.name, "index": index,
                                   "loss": json_safe(loss)}) + "\n"
                       for index, loss in _terms(done.value))
    if fmt == "csv":
        if per_term:
            return csv_text({**{f"i{axis}": i for axis, i in enumerate(index)}, "loss": loss}
                            for index, loss in _terms(done.value))
        return csv_text([done.record()])
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
