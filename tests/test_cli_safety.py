"""Safety of the CLI: outputs never lost or left half-made (every path checked before
computing, all outputs of a run or none), inputs (stdin redirections included) never
overwritten, temporaries removed when a run is interrupted, stale ones of killed runs cleaned
up; errors that say what to do. Through the API (jobs, writers) and the real executable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import launcher, one_line_error, run

from lossjit import jobs, writers
from lossjit.errors import LossjitError


def lossjit(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return run([*launcher("script"), *args], cwd, **kwargs)


@pytest.fixture
def pair(tmp_path: Path) -> Path:
    np.save(tmp_path / "p.npy", np.array([1.0, 2.0, 4.0]))
    np.save(tmp_path / "t.npy", np.zeros(3))
    return tmp_path


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_a_bad_later_output_fails_the_run_before_any_file_is_written(pair):
    proc = lossjit("compute", "mse", "p.npy", "t.npy", "--grad-out", "g.npy", "--hess-out",
                   "nodir/h.npy", cwd=pair)
    assert proc.returncode == 1
    message = one_line_error(proc.stderr.decode())
    assert "--hess-out" in message and "nodir" in message
    assert listing(pair) == ["p.npy", "t.npy"]


def test_two_outputs_on_one_path_or_hard_link_are_refused(pair):
    proc = lossjit("compute", "mse", "p.npy", "t.npy", "--grad-out", "x.npy", "--hess-out",
                   "./x.npy", cwd=pair)
    assert proc.returncode == 1 and "--hess-out" in proc.stderr.decode()
    (pair / "a.npy").write_bytes(b"old")
    os.link(pair / "a.npy", pair / "b.npy")
    proc = lossjit("compute", "mse", "p.npy", "t.npy", "--grad-out", "a.npy", "--hess-out",
                   "b.npy", cwd=pair)
    assert proc.returncode == 1 and "also --grad-out" in proc.stderr.decode()
    assert (pair / "a.npy").read_bytes() == b"old"


def test_an_input_redirected_to_stdin_is_never_overwritten(pair):
    before = (pair / "p.npy").read_bytes()
    with open(pair / "p.npy", "rb") as stdin:
        proc = subprocess.run([*launcher("script"), "compute", "mse", "-", "t.npy",
                               "--grad-out", "p.npy"], cwd=pair, stdin=stdin,
                              capture_output=True, timeout=120, env=dict(os.environ))
    assert proc.returncode == 1
    assert "refusing to overwrite input file" in one_line_error(proc.stderr.decode())
    assert (pair / "p.npy").read_bytes() == before


def test_a_run_writes_all_its_outputs_or_none(pair, monkeypatch):
    calls = []
    real = writers._write_temporary

    def failing_second(dest, write, where):
        calls.append(dest.target)
        if len(calls) == 2:
            raise LossjitError(f"{where}: cannot write: disk full")
        return real(dest, write, where)

    monkeypatch.setattr(writers, "_write_temporary", failing_second)
    job = jobs.Job("mse", str(pair / "p.npy"), str(pair / "t.npy"),
                   outputs={"grad": str(pair / "g.npy"), "hess": str(pair / "h.npy")})
    with pytest.raises(LossjitError, match="disk full"):
        jobs.run(job)
    assert listing(pair) == ["p.npy", "t.npy"]  # neither output, and no temporary


def test_stale_temporaries_of_a_killed_run_are_removed_by_a_later_run(pair):
    dead = pair / ".lossjit-g.npy.999999999.abc123.tmp"  # no such process
    young = pair / ".lossjit-g.npy.999999998.def456.tmp"
    foreign = pair / ".g.npy.xyz.tmp"
    for path in (dead, young, foreign):
        path.write_bytes(b"partial")
    old = time.time() - 2 * writers.STALE_AGE
    os.utime(dead, (old, old))
    os.utime(foreign, (old, old))
    proc = lossjit("compute", "mse", "p.npy", "t.npy", "--grad-out", "g.npy", cwd=pair)
    assert proc.returncode == 0, proc.stderr
    assert not dead.exists()
    assert young.exists() and foreign.exists()  # too young; not lossjit's


def _default_signals() -> None:
    """The child's signals as a shell gives them: a test runner's worker may ignore SIGINT,
    and an ignored signal stays ignored in its children (the CLI then leaves it so)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130),
                                         (signal.SIGHUP, 129)])
def test_an_interrupted_write_leaves_no_temporary_and_exits_as_shells_expect(tmp_path, signum,
                                                                             code):
    n = 3_000_000  # a text gradient of this size takes seconds to write
    rng = np.random.default_rng(0)
    np.save(tmp_path / "p.npy", rng.standard_normal(n))
    np.save(tmp_path / "t.npy", rng.standard_normal(n))
    (tmp_path / "g.csv").write_text("the old gradient\n")
    proc = subprocess.Popen([*launcher("script"), "compute", "mse", "p.npy", "t.npy",
                             "--grad-out", "g.csv", "--hess-out", "h.npy"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ), preexec_fn=_default_signals)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if any(p.name.startswith(".lossjit-") for p in tmp_path.iterdir()):
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "interrupted" in err.decode() and "Traceback" not in err.decode()
    assert listing(tmp_path) == ["g.csv", "p.npy", "t.npy"]
    assert (tmp_path / "g.csv").read_text() == "the old gradient\n"


def test_unknown_loss_suggests_the_closest(tmp_path):
    proc = lossjit("compute", "hubber", "p.npy", "t.npy", cwd=tmp_path)
    assert proc.returncode == 2
    assert "did you mean 'huber'?" in proc.stderr.decode().splitlines()[-1]
    with pytest.raises(LossjitError, match="did you mean 'cross_entropy'"):
        jobs.run(jobs.Job("crossentropy", "p.npy", "t.npy"))


def test_debug_shows_the_traceback(tmp_path):
    plain = lossjit("compute", "mse", "nope.npy", "t.npy", cwd=tmp_path)
    assert "Traceback" not in plain.stderr.decode()
    debug = lossjit("--debug", "compute", "mse", "nope.npy", "t.npy", cwd=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr.decode()
    env = {**os.environ, "LOSSJIT_DEBUG": "1"}
    proc = subprocess.run([*launcher("script"), "compute", "mse", "nope.npy", "t.npy"],
                          cwd=tmp_path, capture_output=True, env=env, timeout=120)
    assert proc.returncode == 1 and "Traceback" in proc.stderr.decode()
    assert proc.stderr.decode().splitlines()[-1].endswith("file not found; expected an "
                                                          "existing file")


def test_option_messages_show_plain_numbers():
    import lossjit

    with pytest.raises(LossjitError) as info:
        lossjit.loss("huber", np.zeros(2), np.zeros(2), delta=np.float64(-1.0))
    assert str(info.value).endswith("got -1.0"), info.value


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("POSIX signals and links", allow_module_level=True)


def test_an_integer_option_beyond_64_bits_is_a_user_error(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    np.save(tmp_path / "y.npy", np.zeros(2, dtype=np.int64))
    proc = lossjit("compute", "cross_entropy", "x.npy", "y.npy", "--ignore-index", str(2**70),
                   cwd=tmp_path)
    assert proc.returncode == 1
    assert one_line_error(proc.stderr.decode()).endswith(
        f"option ignore_index must fit in 64 bits (a signed integer), got {2**70}")


def test_a_job_list_of_json_arrays_is_an_error_record(tmp_path):
    proc = lossjit("batch", cwd=tmp_path, input=b"[1]\n")
    assert proc.returncode == 1
    assert proc.stdout.decode().strip() == (
        '{"job": 1, "line": 1, "ok": false, "error": "line 1: expected a JSON object, got list"}')


def test_nan_policy_in_the_cli(tmp_path):
    p = np.array([1.0, np.nan, 3.0, 5.0])
    t = np.array([0.0, 0.0, 1.0, 1.0])
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "t.npy", t)
    proc = lossjit("compute", "mse", "p.npy", "t.npy", "--grad-out", "g.npy", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.decode().strip() == "nan"
    warning = [line for line in proc.stderr.decode().splitlines() if "non-finite" in line]
    assert warning == ["lossjit: warning: 1 non-finite input value (the first: predictions at "
                       "position (1,)); they propagate to the loss and the gradient "
                       "(--nan-policy raise or omit)"]
    grad = np.load(tmp_path / "g.npy")
    assert np.isnan(grad[1]) and np.isfinite(grad[[0, 2, 3]]).all()

    proc = lossjit("compute", "mse", "p.npy", "t.npy", "--nan-policy", "raise", "--no-grad",
                   cwd=tmp_path)
    assert proc.returncode == 1
    assert "position (1,)" in one_line_error(proc.stderr.decode())

    proc = lossjit("compute", "mse", "p.npy", "t.npy", "--nan-policy", "omit", "--grad-out",
                   "g2.npy", cwd=tmp_path)
    kept = ~np.isnan(p)
    assert float(proc.stdout) == pytest.approx(np.mean((p[kept] - t[kept]) ** 2), rel=1e-12)
    expected = np.where(kept, 2 * (p - t) / kept.sum(), 0.0)
    np.testing.assert_allclose(np.load(tmp_path / "g2.npy"), expected, rtol=1e-12)
    assert "non-finite" not in proc.stderr.decode()


class _Payload:
    """Unpickling it would create the file ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_payload_in_an_option_file_or_on_stdin_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = np.array([_Payload(str(marker)), 1], dtype=object)
    np.save(tmp_path / "evil.npy", payload, allow_pickle=True)
    np.save(tmp_path / "x.npy", np.zeros((2, 2)))
    np.save(tmp_path / "y.npy", np.zeros(2, dtype=np.int64))
    for args, stdin in ((["--weight", "evil.npy"], None), (["--sample-weight", "evil.npy"], None),
                        ([], (tmp_path / "evil.npy").read_bytes())):
        targets = "-" if stdin is not None else "y.npy"
        proc = lossjit("compute", "cross_entropy", "x.npy", targets, *args, "--no-grad",
                       cwd=tmp_path, input=stdin)
        assert proc.returncode == 1
        assert "pickle" in one_line_error(proc.stderr.decode())
        assert not marker.exists()


def test_big_endian_and_unsigned_inputs_through_the_executable(tmp_path):
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((6, 4))
    labels = np.array([0, 3, 1, 2, 2, 1], dtype=np.uint8)
    np.save(tmp_path / "x.npy", logits.astype(">f8"))
    np.save(tmp_path / "y.npy", labels)
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    proc = lossjit("compute", "cross_entropy", "x.npy", "y.npy", "--no-grad", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) == pytest.approx(-np.mean(logp[np.arange(6), labels]), rel=1e-12)
    labels[4] = 200
    np.save(tmp_path / "y.npy", labels)
    proc = lossjit("compute", "cross_entropy", "x.npy", "y.npy", "--no-grad", cwd=tmp_path)
    assert proc.returncode == 1
    message = one_line_error(proc.stderr.decode())
    assert "class index 200 at position (4,)" in message and "0 to 3" in message
    np.save(tmp_path / "c.npy", logits.astype(np.complex128))
    proc = lossjit("compute", "cross_entropy", "c.npy", "y.npy", "--no-grad", cwd=tmp_path)
    assert proc.returncode == 1 and "complex" in one_line_error(proc.stderr.decode())
