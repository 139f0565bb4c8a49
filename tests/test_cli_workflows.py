"""The CLI in real workflows, through the real ``lossjit`` executable: selectors, one file
holding both arrays, pipes both ways, compression, Parquet, text labels, record formats,
per-term outputs, ``batch``, completion, ``plot`` and help examples.

Expected values come from the formulas in NumPy on the data each test writes.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import SCRIPT, bits_equal, launcher, one_line_error, run


def lossjit(*args: str, cwd: Path, input: bytes | None = None) -> subprocess.CompletedProcess:
    return run([*launcher("script"), *args], cwd, input=input)


def out(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def error_of(proc: subprocess.CompletedProcess, code: int = 1) -> str:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert proc.stdout == b""
    return one_line_error(proc.stderr.decode())


def mse(p: np.ndarray, t: np.ndarray) -> float:
    return float(np.mean((p - t) ** 2))


def bce_with_logits(z: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean(logp[np.arange(len(labels)), labels]))


@pytest.fixture
def table(tmp_path: Path) -> dict:
    """results.csv with columns id,pred,label (binary labels) and logits.csv with class
    columns cat,dog,bird plus labels.csv holding text labels."""
    rng = np.random.default_rng(7)
    n = 40
    pred = np.round(rng.standard_normal(n), 6)
    label = rng.integers(0, 2, n)
    rows = enumerate(zip(pred.tolist(), label.tolist(), strict=True))
    lines = ["id,pred,label", *(f"{i},{p!r},{y}" for i, (p, y) in rows)]
    (tmp_path / "results.csv").write_text("\n".join(lines) + "\n")
    logits = np.round(rng.standard_normal((n, 3)), 6)
    names = np.array(["cat", "dog", "bird"])
    classes = rng.integers(0, 3, n)
    (tmp_path / "logits.csv").write_text(
        "cat,dog,bird\n" + "".join(",".join(map(repr, row)) + "\n" for row in logits.tolist()))
    (tmp_path / "labels.csv").write_text("animal\n" + "".join(f"{names[c]}\n" for c in classes))
    return {"dir": tmp_path, "pred": pred, "label": label, "logits": logits,
            "classes": classes}


# --- selectors and one file with both arrays ----------------------------------------------


def test_columns_of_one_csv_feed_both_sides(table):
    d = table["dir"]
    text = out(lossjit("compute", "mse", "results.csv:pred", "results.csv:label",
                       "--grad-out", "g.csv", cwd=d))
    p, y = table["pred"], table["label"].astype(float)
    assert float(text) == pytest.approx(mse(p, y), rel=1e-12)
    lines = (d / "g.csv").read_text().splitlines()
    assert lines[0] == "pred"  # the gradient keeps the input's column name
    np.testing.assert_allclose([float(v) for v in lines[1:]], 2 * (p - y) / p.size,
                               rtol=1e-12)


def test_columns_by_index_and_the_same_data_twice_is_refused(table):
    d = table["dir"]
    by_name = out(lossjit("compute", "mse", "results.csv:pred", "results.csv:label",
                          "--no-grad", cwd=d))
    by_index = out(lossjit("compute", "mse", "results.csv:1", "results.csv:2", "--no-grad",
                           cwd=d))
    assert by_name == by_index
    message = error_of(lossjit("compute", "mse", "results.csv", "results.csv", cwd=d))
    assert "same data as the predictions" in message
    assert not list(d.glob("*.grad.*"))


def test_several_columns_make_the_logits_and_text_labels_map_through_their_names(table):
    d = table["dir"]
    expected = cross_entropy(table["logits"], table["classes"])
    whole = out(lossjit("compute", "cross_entropy", "logits.csv", "labels.csv", "--no-grad",
                        cwd=d))
    listed = out(lossjit("compute", "cross_entropy", "logits.csv:cat,dog,bird", "labels.csv",
                         "--no-grad", cwd=d))
    ranged = out(lossjit("compute", "cross_entropy", "logits.csv:cat..bird", "labels.csv",
                         "--no-grad", cwd=d))
    assert float(whole) == pytest.approx(expected, rel=1e-12)
    assert whole == listed == ranged


def test_text_labels_through_classes_and_unknown_labels(table):
    d = table["dir"]
    np.save(d / "logits.npy", table["logits"])
    expected = cross_entropy(table["logits"], table["classes"])
    text = out(lossjit("compute", "cross_entropy", "logits.npy", "labels.csv",
                       "--classes", "cat,dog,bird", "--no-grad", cwd=d))
    assert float(text) == pytest.approx(expected, rel=1e-12)
    message = error_of(lossjit("compute", "cross_entropy", "logits.npy", "labels.csv",
                               "--no-grad", cwd=d))
    assert "--classes" in message
    message = error_of(lossjit("compute", "cross_entropy", "logits.npy", "labels.csv",
                               "--classes", "cat,dog,cow", "--no-grad", cwd=d))
    assert "bird" in message and "cow" in message


def test_whole_number_float_labels_are_class_indices(table):
    d = table["dir"]
    np.savetxt(d / "float_labels.csv", table["classes"].astype(float), fmt="%.1f")
    text = out(lossjit("compute", "cross_entropy", "logits.csv", "float_labels.csv",
                       "--no-grad", cwd=d))
    assert float(text) == pytest.approx(cross_entropy(table["logits"], table["classes"]),
                                        rel=1e-12)
    (d / "half.csv").write_text("0.5\n" + "1.0\n" * 39)
    message = error_of(lossjit("compute", "cross_entropy", "logits.csv", "half.csv",
                               "--no-grad", cwd=d))
    assert "whole numbers" in message and "0.5" in message


@pytest.mark.parametrize("keys", [("predictions", "targets"), ("y_pred", "y_true"),
                                  ("logits", "labels")])
def test_one_npz_holding_both_arrays(tmp_path, keys):
    rng = np.random.default_rng(1)
    p, t = rng.standard_normal(30), rng.standard_normal(30)
    np.savez(tmp_path / "run.npz", **{keys[0]: p, keys[1]: t})
    text = out(lossjit("compute", "mse", "run.npz", "--grad-out", "g.npy", cwd=tmp_path))
    assert float(text) == pytest.approx(mse(p, t), rel=1e-12)
    np.testing.assert_allclose(np.load(tmp_path / "g.npy"), 2 * (p - t) / p.size, rtol=1e-12)
    keyed = out(lossjit("compute", "mse", f"run.npz:{keys[0]}", f"run.npz:{keys[1]}",
                        "--no-grad", cwd=tmp_path))
    assert keyed == text


def test_an_npz_that_cannot_decide_lists_its_keys(tmp_path):
    np.savez(tmp_path / "run.npz", a=np.zeros(3), b=np.ones(3))
    message = error_of(lossjit("compute", "mse", "run.npz", cwd=tmp_path))
    assert "'a'" in message or " a" in message
    assert "b" in message


def test_one_csv_holding_both_columns(table):
    d = table["dir"]
    (d / "pt.csv").write_text("preds,targets\n" + "".join(
        f"{p!r},{y}\n" for p, y in zip(table["pred"].tolist(), table["label"].tolist(),
                                       strict=True)))
    text = out(lossjit("compute", "mse", "pt.csv", "--no-grad", cwd=d))
    assert float(text) == pytest.approx(mse(table["pred"], table["label"]), rel=1e-12)


# --- pipes, stdin and stdout --------------------------------------------------------------


def test_one_stdin_feeds_both_sides_through_selectors(table):
    d = table["dir"]
    data = (d / "results.csv").read_bytes()
    text = out(lossjit("compute", "bce_with_logits", "-:pred", "-:label", "--no-grad",
                       cwd=d, input=data))
    assert float(text) == pytest.approx(bce_with_logits(table["pred"], table["label"]),
                                        rel=1e-12)


def test_process_substitution_and_a_named_pipe(table):
    d = table["dir"]
    expected = mse(table["pred"], table["label"])
    proc = subprocess.run(
        ["bash", "-c", f"'{SCRIPT}' compute mse <(cut -d, -f2 results.csv) "
                       "<(cut -d, -f3 results.csv) --no-grad"],
        cwd=d, capture_output=True, timeout=120, env=dict(os.environ))
    assert float(out(proc)) == pytest.approx(expected, rel=1e-12)

    fifo = d / "labels.fifo"
    os.mkfifo(fifo)
    labels = "".join(f"{y}\n" for y in table["label"]).encode()

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(labels)

    writer = threading.Thread(target=feed)
    writer.start()
    proc = lossjit("compute", "mse", "results.csv:pred", "labels.fifo", "--no-grad", cwd=d)
    writer.join(timeout=60)
    assert float(out(proc)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("fmt", ["csv", "npy"])
def test_gradient_on_stdout_and_the_record_on_stderr(table, fmt):
    d = table["dir"]
    proc = lossjit("compute", "mse", "results.csv:pred", "results.csv:label", "--grad-out",
                   "-", "--grad-format", fmt, "--json", cwd=d)
    assert proc.returncode == 0, proc.stderr
    p, y = table["pred"], table["label"]
    expected = 2 * (p - y) / p.size
    if fmt == "npy":
        grad = np.load(io.BytesIO(proc.stdout))
    else:
        lines = proc.stdout.decode().splitlines()
        assert lines[0] == "pred"
        grad = np.array([float(v) for v in lines[1:]])
    np.testing.assert_allclose(grad, expected, rtol=1e-12)
    records = [json.loads(line) for line in proc.stderr.decode().splitlines()
               if line.startswith("{")]
    assert records and records[0]["loss"] == pytest.approx(mse(p, y), rel=1e-12)


def test_at_most_one_output_on_stdout(tmp_path):
    np.save(tmp_path / "p.npy", np.ones(3))
    np.save(tmp_path / "t.npy", np.zeros(3))
    message = error_of(lossjit("compute", "mse", "p.npy", "t.npy", "--grad-out", "-",
                               "--hess-out", "-", cwd=tmp_path))
    assert "--hess-out" in message and "only one output" in message


# --- compression and Parquet --------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".npy.gz", ".csv.gz", ".csv.bz2", ".npy.xz", ".csv.zst"])
def test_compressed_inputs_by_extension_and_on_stdin(tmp_path, suffix):
    from lossjit.formats import compress

    rng = np.random.default_rng(3)
    p, t = rng.standard_normal(25), rng.standard_normal(25)
    inner, codec = os.path.splitext(suffix)
    if codec == ".zst":
        pytest.importorskip("zstandard")

    def encoded(a: np.ndarray) -> bytes:
        if inner == ".npy":
            buffer = io.BytesIO()
            np.save(buffer, a)
            return compress(buffer.getvalue(), codec)
        return compress("".join(f"{v!r}\n" for v in a.tolist()).encode(), codec)

    (tmp_path / f"p{suffix}").write_bytes(encoded(p))
    (tmp_path / f"t{suffix}").write_bytes(encoded(t))
    text = out(lossjit("compute", "mse", f"p{suffix}", f"t{suffix}", "--no-grad",
                       cwd=tmp_path))
    assert float(text) == pytest.approx(mse(p, t), rel=1e-12)
    piped = out(lossjit("compute", "mse", "-", f"t{suffix}", "--no-grad", cwd=tmp_path,
                        input=encoded(p)))
    assert piped == text


def test_parquet_columns(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(5)
    p, y = rng.standard_normal(50), rng.integers(0, 2, 50).astype(np.float64)
    pq.write_table(pa.table({"score": p, "clicked": y}), tmp_path / "r.parquet")
    text = out(lossjit("compute", "bce_with_logits", "r.parquet:score", "r.parquet:clicked",
                       "--grad-out", "g.parquet", cwd=tmp_path))
    assert float(text) == pytest.approx(bce_with_logits(p, y), rel=1e-12)
    grad = pq.read_table(tmp_path / "g.parquet")
    assert grad.column_names == ["score"]
    sig = 1 / (1 + np.exp(-p))
    np.testing.assert_allclose(grad.column("score").to_numpy(), (sig - y) / p.size,
                               rtol=1e-10)


# --- records and per-term outputs ---------------------------------------------------------


def test_reduction_none_keeps_the_shape_and_loss_out_writes_the_terms(tmp_path):
    rng = np.random.default_rng(9)
    p, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    np.savetxt(tmp_path / "p.csv", p, delimiter=",", fmt="%.17g")
    np.savetxt(tmp_path / "t.csv", t, delimiter=",", fmt="%.17g")
    text = out(lossjit("compute", "mse", "p.csv", "t.csv", "--reduction", "none",
                       "--no-grad", cwd=tmp_path))
    rows = [[float(v) for v in line.split(",")] for line in text.splitlines()]
    np.testing.assert_allclose(rows, (p - t) ** 2, rtol=1e-12)
    text = out(lossjit("compute", "mse", "p.csv", "t.csv", "--loss-out", "terms.npy",
                       "--no-grad", cwd=tmp_path))
    assert float(text) == pytest.approx(mse(p, t), rel=1e-12)
    np.testing.assert_allclose(np.load(tmp_path / "terms.npy"), (p - t) ** 2, rtol=1e-12)


def test_record_formats(tmp_path):
    np.save(tmp_path / "p.npy", np.array([1.0, 2.0, 4.0], dtype=np.float32))
    np.save(tmp_path / "t.npy", np.zeros(3))
    record = json.loads(out(lossjit("compute", "mse", "p.npy", "t.npy", "--format", "json",
                                    "--no-grad", cwd=tmp_path)))
    assert record["loss"] == pytest.approx(7.0) and record["dtype"] == "float32"
    assert {"read_seconds", "compile_seconds", "compute_seconds", "seconds"} <= set(record)
    lines = out(lossjit("compute", "mse", "p.npy", "t.npy", "--format", "csv", "--no-grad",
                        cwd=tmp_path)).splitlines()
    header, row = lines[0].split(","), lines[1].split(",")
    assert len(lines) == 2 and header[:2] == ["loss", "name"]
    assert float(row[0]) == pytest.approx(7.0) and row[1] == "mse"
    terms = [json.loads(line) for line in out(lossjit(
        "compute", "mse", "p.npy", "t.npy", "--format", "ndjson", "--reduction", "none",
        "--no-grad", cwd=tmp_path)).splitlines()]
    assert [(r["index"], r["loss"]) for r in terms] == [([0], 1.0), ([1], 4.0), ([2], 16.0)]


# --- batch --------------------------------------------------------------------------------


def test_batch_runs_every_job_in_order_and_a_failure_does_not_stop_the_others(tmp_path):
    rng = np.random.default_rng(11)
    pairs = []
    for i in range(5):
        p, t = rng.standard_normal(20), rng.standard_normal(20)
        np.save(tmp_path / f"p{i}.npy", p)
        np.save(tmp_path / f"t{i}.npy", t)
        pairs.append((p, t))
    jobs = [json.dumps({"loss": "mse", "predictions": f"p{i}.npy", "targets": f"t{i}.npy",
                        **({"grad_out": "g1.npy"} if i == 1 else {})}) for i in range(5)]
    jobs[2] = json.dumps({"loss": "mse", "predictions": "missing.npy", "targets": "t2.npy"})
    jobs.insert(3, json.dumps({"loss": "huber", "delta": 0.5, "predictions": "p3.npy",
                               "targets": "t3.npy"}))
    (tmp_path / "jobs.ndjson").write_text("\n".join(jobs) + "\n")
    proc = lossjit("batch", "jobs.ndjson", cwd=tmp_path)
    assert proc.returncode == 1
    results = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["job"] for r in results] == [1, 2, 3, 4, 5, 6]
    assert [r["ok"] for r in results] == [True, True, False, True, True, True]
    assert "missing.npy" in results[2]["error"] and "not found" in results[2]["error"]
    for r, (p, t) in zip([results[0], results[1], results[4], results[5]],
                         [pairs[0], pairs[1], pairs[3], pairs[4]], strict=True):
        assert r["loss"] == pytest.approx(mse(p, t), rel=1e-12)
    e = pairs[3][0] - pairs[3][1]
    huber = np.where(np.abs(e) < 0.5, 0.5 * e**2, 0.5 * (np.abs(e) - 0.25))
    assert results[3]["loss"] == pytest.approx(float(np.mean(huber)), rel=1e-12)
    np.testing.assert_allclose(np.load(tmp_path / "g1.npy"),
                               2 * (pairs[1][0] - pairs[1][1]) / 20, rtol=1e-12)
    assert sorted(p.name for p in tmp_path.glob("g*.npy")) == ["g1.npy"]
    assert "1 job failed" in proc.stderr.decode()


def test_batch_from_csv_on_stdin_with_workers(tmp_path):
    rng = np.random.default_rng(12)
    rows = ["loss,predictions,targets,reduction"]
    expected = []
    for i in range(6):
        p, t = rng.standard_normal(10), rng.standard_normal(10)
        np.save(tmp_path / f"p{i}.npy", p)
        np.save(tmp_path / f"t{i}.npy", t)
        rows.append(f"mse,p{i}.npy,t{i}.npy,sum")
        expected.append(float(np.sum((p - t) ** 2)))
    proc = lossjit("batch", "--jobs", "2", cwd=tmp_path, input="\n".join(rows).encode())
    results = [json.loads(line) for line in out(proc).splitlines()]
    assert [r["loss"] for r in results] == pytest.approx(expected, rel=1e-12)


def test_compute_points_extra_arguments_to_batch(tmp_path):
    proc = lossjit("compute", "mse", "a.npy", "b.npy", "c.npy", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == b""
    assert "lossjit batch" in proc.stderr.decode().splitlines()[-1]


# --- completion, plot, help ---------------------------------------------------------------


def complete(words: str, cwd: Path) -> list[str]:
    env = {**os.environ, "_LOSSJIT_COMPLETE": "bash_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    proc = subprocess.run([SCRIPT], cwd=cwd, env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().splitlines()


def test_completion_of_loss_names_and_files(tmp_path):
    if SCRIPT is None:
        pytest.skip("the lossjit console script is not installed")
    names = complete("lossjit compute cross", tmp_path)
    assert "plain,cross_entropy" in names
    (tmp_path / "preds.npy").write_bytes(b"")
    files = complete("lossjit compute mse pr", tmp_path)
    assert files == ["file,pr"]  # bash completes the file names itself
    choices = complete("lossjit compute mse p.npy t.npy --reduction s", tmp_path)
    assert "plain,sum" in choices


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out(lossjit("plot", "mse", "huber", "--range", "-2", "2", "-o", "f.png", cwd=tmp_path))
    data = (tmp_path / "f.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 200 and height > 100
    import matplotlib.image

    pixels = matplotlib.image.imread(tmp_path / "f.png")
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 10


@pytest.mark.parametrize("command", [["compute"], ["compute", "mse"], ["check"],
                                     ["check", "focal"], ["batch"], ["plot"], ["list"],
                                     ["info"], ["bench"], ["cache", "warm"]])
def test_every_help_has_an_example(tmp_path, command):
    from cli_helpers import invoke

    text = invoke(*command, "--help").stdout
    assert "Example" in text and "lossjit " in text.split("Example")[1]


def test_gradient_written_for_a_csv_selector_by_default(table):
    d = table["dir"]
    import lossjit as api

    out(lossjit("compute", "mse", "results.csv:pred", "results.csv:label", cwd=d))
    grad = np.loadtxt(d / "results.grad.csv", skiprows=1)  # the text round trip is exact
    assert bits_equal(grad, api.grad("mse", table["pred"], table["label"]))
    np.testing.assert_allclose(grad, 2 * (table["pred"] - table["label"]) / 40, rtol=1e-14)


def test_gzip_gradient_output(tmp_path):
    np.save(tmp_path / "p.npy", np.array([1.0, 3.0]))
    np.save(tmp_path / "t.npy", np.zeros(2))
    out(lossjit("compute", "mse", "p.npy", "t.npy", "--grad-out", "g.csv.gz", cwd=tmp_path))
    assert gzip.decompress((tmp_path / "g.csv.gz").read_bytes()).split() == [b"1.0", b"3.0"]


def test_plot_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    from cli_helpers import invoke

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    monkeypatch.chdir(tmp_path)
    result = invoke("plot", "mse", "-o", "f.png")
    assert result.exit_code == 1 and "lossjit[plot]" in result.stderr
    assert not (tmp_path / "f.png").exists()
