"""Write the small sample inputs in data/ that the README examples and the CLI tests
(tests/test_cli_*.py) use.

Rerun from the repository root with::

    python data/make_data.py

The output is deterministic (a fixed seed), so rerunning rewrites the same bytes:

- ``preds.npy`` / ``targets.npy``: regression predictions and targets, float64, shape (64,),
  and the same numbers as ``preds.csv`` / ``targets.csv`` (header ``prediction`` / ``target``,
  one number per line, written with ``repr`` so they read back to the same bits);
- ``logits.npy`` (float64, (32, 5)) and ``labels.npy`` (int64 class indices in [0, 5), (32,));
- ``pairs.npy`` (float64, (16, 2, 8)) and ``pair_labels.npy`` (int64 0/1, (16,), both present);
- ``triplets.npy`` (float64, (16, 3, 8)): anchor, positive, negative; half the triplets have a
  positive hinge d(a, p) - d(a, n) + 1 > 0 (active) and half do not;
- tables made of the same numbers, for the README's examples of selectors and files holding
  both arrays: ``results.csv`` (columns ``id,pred,target``: preds and targets),
  ``animals.csv`` (the logits as columns ``cat,dog,bird,fish,frog`` and the labels as class
  names in a column ``label``) and ``run.npz`` (keys ``predictions`` and ``targets``).

The arrays are drawn here, not taken from the layouts' examples (``spec.layout.examples`` in
:mod:`lossjit.layouts`): those are independent draws of other distributions (N(0, 1) targets
unrelated to the predictions, labels that need not cover every class, pairs and triplets
without the close members chosen here), so using them would change the committed files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SEED = 20240601
HERE = Path(__file__).resolve().parent


def _write_column_csv(path: Path, header: str, values: np.ndarray) -> None:
    lines = [header, *(repr(float(v)) for v in values)]
    path.write_text("\n".join(lines) + "\n")


def make(directory: Path = HERE) -> dict[str, np.ndarray]:
    """Build the arrays and write them into ``directory``; return them by file name."""
    rng = np.random.default_rng(SEED)

    preds = rng.normal(0.0, 1.5, size=64)
    targets = preds + rng.normal(0.0, 0.8, size=64)

    logits = rng.normal(0.0, 2.0, size=(32, 5))
    labels = rng.integers(0, 5, size=32).astype(np.int64)
    labels[:5] = np.arange(5)  # every class appears

    pairs = rng.normal(0.0, 0.5, size=(16, 2, 8))
    pair_labels = np.tile(np.array([1, 0], dtype=np.int64), 8)
    similar = pair_labels == 1  # similar pairs: the second member close to the first
    pairs[similar, 1] = pairs[similar, 0] + rng.normal(0.0, 0.1, size=(int(similar.sum()), 8))

    anchors = rng.normal(0.0, 1.0, size=(16, 8))
    positives = anchors + rng.normal(0.0, 0.2, size=(16, 8))
    # even rows: a negative near the anchor (active hinge); odd rows: far away (inactive)
    near = anchors + rng.normal(0.0, 0.2, size=(16, 8))
    far = anchors + rng.normal(0.0, 3.0, size=(16, 8)) + 4.0
    negatives = np.where((np.arange(16) % 2 == 0)[:, None], near, far)
    triplets = np.stack([anchors, positives, negatives], axis=1)

    arrays = {
        "preds.npy": preds, "targets.npy": targets,
        "logits.npy": logits, "labels.npy": labels,
        "pairs.npy": pairs, "pair_labels.npy": pair_labels,
        "triplets.npy": triplets,
    }
    _check(arrays)
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(directory / name, array, allow_pickle=False)
    _write_column_csv(directory / "preds.csv", "prediction", preds)
    _write_column_csv(directory / "targets.csv", "target", targets)
    _write_tables(directory, preds, targets, logits, labels)
    return arrays


#: The class names of animals.csv, in the order of the logits' columns.
ANIMALS = ("cat", "dog", "bird", "fish", "frog")


def _write_tables(directory: Path, preds: np.ndarray, targets: np.ndarray, logits: np.ndarray,
                  labels: np.ndarray) -> None:
    rows = [f"{i},{p!r},{t!r}" for i, (p, t) in
            enumerate(zip(preds.tolist(), targets.tolist(), strict=True))]
    (directory / "results.csv").write_text("\n".join(["id,pred,target", *rows]) + "\n")
    rows = [",".join(map(repr, row)) + f",{ANIMALS[label]}" for row, label in
            zip(logits.tolist(), labels.tolist(), strict=True)]
    (directory / "animals.csv").write_text(
        "\n".join([",".join((*ANIMALS, "label")), *rows]) + "\n")
    # zipfile with a fixed date, so rerunning writes the same bytes (np.savez stamps the time)
    import io
    import zipfile

    with zipfile.ZipFile(directory / "run.npz", "w") as archive:
        for key, array in (("predictions", preds), ("targets", targets)):
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=(2024, 6, 1, 0, 0, 0)),
                             buffer.getvalue())


def _check(arrays: dict[str, np.ndarray]) -> None:
    """The properties the tests rely on."""
    assert arrays["preds.npy"].shape == (64,) and arrays["preds.npy"].dtype == np.float64
    assert arrays["logits.npy"].shape == (32, 5)
    assert arrays["labels.npy"].dtype == np.int64 and set(arrays["labels.npy"]) == set(range(5))
    assert set(arrays["pair_labels.npy"].tolist()) == {0, 1}
    t = arrays["triplets.npy"]
    hinge = (np.linalg.norm(t[:, 0] - t[:, 1] + 1e-6, axis=1)
             - np.linalg.norm(t[:, 0] - t[:, 2] + 1e-6, axis=1) + 1.0)
    assert (hinge > 0).any() and (hinge < 0).any(), hinge


if __name__ == "__main__":
    written = make()
    for name, array in written.items():
        print(f"{name:<16} {array.dtype} {array.shape}")
    print("preds.csv        float64 (64,)")
    print("targets.csv      float64 (64,)")
    print("results.csv, animals.csv, run.npz")
