"""``lossjit check``: a gradient against finite differences, or a gradient from elsewhere."""

import json
from pathlib import Path

import numpy as np
from cli_helpers import invoke, launcher, load, one_line_error, run


def test_check_passes_on_lossjit_s_own_gradient(work: Path):
    result = invoke("check", "focal", "data/logits.npy", "data/labels.npy", "--gamma", "1.5")
    assert result.exit_code == 0, result.stderr
    line, = result.stdout.splitlines()
    assert line.startswith("gradient: worst error ")
    assert "(160 elements)" in line  # (32, 5) logits, every element
    assert float(line.split("worst error ")[1].split()[0]) <= 1e-5


def test_check_includes_the_hessian_where_the_loss_has_one(work: Path):
    result = invoke("check", "mse", "data/preds.npy", "data/targets.npy", "--samples", "5",
                    "--json")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["what"] for r in records] == ["gradient", "hessian"]
    assert all(r["checked"] == 5 and r["ok"] for r in records)
    hessian = records[1]
    assert hessian["value"] == 2 / 64  # mse's Hessian diagonal: 2 / n
    assert abs(hessian["reference"] - 2 / 64) < 1e-8


def test_check_against_a_wrong_gradient_exits_1_and_says_where(work: Path):
    preds, targets = load("preds.npy"), load("targets.npy")
    mine = 2 * (preds - targets) / preds.size
    mine[17] += 0.5
    np.save(work / "mine.npy", mine)
    before = (work / "mine.npy").read_bytes()
    proc = run([*launcher("script"), "check", "mse", "data/preds.npy", "data/targets.npy",
                "--against", "mine.npy"], work)
    assert proc.returncode == 1
    out = proc.stdout.decode()
    assert out.startswith("gradient: worst error ") and " at (17): your gradient " in out
    assert one_line_error(proc.stderr.decode()) == "lossjit: above the tolerance 1e-05"
    assert (work / "mine.npy").read_bytes() == before  # the input is left as it was


def test_check_against_the_right_gradient_passes(work: Path):
    preds, targets = load("preds.npy"), load("targets.npy")
    np.save(work / "mine.npy", 2 * (preds - targets) / preds.size)
    result = invoke("check", "mse", "data/preds.npy", "data/targets.npy", "--against",
                    "mine.npy", "--tol", "1e-12")
    assert result.exit_code == 0, result.stderr


def test_check_refuses_bad_input_in_one_line(work: Path):
    np.save(work / "short.npy", np.zeros(3))
    proc = run([*launcher("module"), "check", "mse", "data/preds.npy", "data/targets.npy",
                "--against", "short.npy"], work)
    assert proc.returncode == 1
    assert one_line_error(proc.stderr.decode()) == (
        "Error: against: shape (3,) does not match predictions (64,); expected the gradient "
        "of the predictions")
    proc = run([*launcher("module"), "check", "nosuch", "a", "b"], work)
    assert proc.returncode == 2 and "unknown loss 'nosuch'" in proc.stderr.decode()
