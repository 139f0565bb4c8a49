"""Tests of the describing commands: ``--help``, ``--version``, ``list`` and ``info``,
in-process and as real processes; none of them imports Numba.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from cli_helpers import DATA, invoke, one_line_error, run

import lossjit
from lossjit import registry

# --------------------------------------------------------------------------------------------
# help, list, info, version (in-process)


def test_help(work: Path):
    result = invoke("--help")
    assert result.exit_code == 0
    for word in ("compute", "list", "info", "--version"):
        assert word in result.stdout
    assert invoke("-h").stdout == result.stdout


def test_compute_help_lists_every_loss():
    result = invoke("compute", "--help")
    assert result.exit_code == 0
    for name in lossjit.names():
        assert name in result.stdout


def test_focal_help_lists_its_options():
    result = invoke("compute", "focal", "--help")
    assert result.exit_code == 0
    for option in ("--gamma", "--alpha", "--ignore-index", "--from-logits", "--no-from-logits",
                   "--eps", "--reduction", "--grad-out", "--no-grad", "--json"):
        assert option in result.stdout, option
    assert "--delta" not in result.stdout


def test_list_names_every_loss():
    result = invoke("list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    first_words = [line.split()[0] for line in lines if not line.startswith(" ")]
    assert first_words == lossjit.names()
    details = [line.split(":")[0].strip() for line in lines if line.startswith(" ")]
    assert details == ["inputs", "options", "reference"] * len(lossjit.names())
    hessians = [line.split()[2] for line in lines if not line.startswith(" ")]
    assert hessians.count("hessian") == sum(bool(registry.resolve(name).hessian)
                                            for name in lossjit.names())


def test_list_json():
    result = invoke("list", "--json")
    assert result.exit_code == 0
    described = json.loads(result.stdout)
    assert [d["name"] for d in described] == lossjit.names()
    ce = next(d for d in described if d["name"] == "cross_entropy")
    assert "ce" in ce["aliases"]
    assert {p["name"] for p in ce["params"]} >= {"weight", "ignore_index", "label_smoothing",
                                                 "from_logits"}


def test_list_markdown():
    result = invoke("list", "--markdown")
    assert result.exit_code == 0
    for name in lossjit.names():
        assert f"| `{name}` |" in result.stdout


def test_info_alias():
    result = invoke("info", "ce")
    assert result.exit_code == 0
    assert "cross_entropy" in result.stdout
    for option in ("--weight", "--ignore-index", "--label-smoothing", "--from-logits", "--eps"):
        assert option in result.stdout, option
    described = json.loads(invoke("info", "CE", "--json").stdout)
    assert described["name"] == "cross_entropy"


def test_info_unknown():
    result = invoke("info", "nope")
    assert result.exit_code == 1
    assert "nope" in one_line_error(result.stderr)
    assert result.stdout == ""


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"lossjit {lossjit.__version__}"


def test_process_help_list_info_version(work: Path, exe: list[str]):
    top = run([*exe, "--help"], work)
    assert top.returncode == 0 and b"compute" in top.stdout
    focal = run([*exe, "compute", "focal", "--help"], work).stdout.decode()
    for option in ("--gamma", "--alpha", "--ignore-index", "--from-logits"):
        assert option in focal
    group = run([*exe, "compute", "--help"], work)
    assert group.returncode == 0
    listed = run([*exe, "list"], work)
    assert listed.returncode == 0
    builtin = [spec.name for spec in registry.BUILTIN]  # this process may have registered more
    assert [line.split()[0] for line in listed.stdout.decode().splitlines()
            if not line.startswith(" ")] == builtin
    as_json = run([*exe, "list", "--json"], work)
    assert [d["name"] for d in json.loads(as_json.stdout)] == builtin
    info = run([*exe, "info", "ce"], work)
    assert info.returncode == 0 and b"cross_entropy" in info.stdout
    assert b"--label-smoothing" in info.stdout
    nope = run([*exe, "info", "nope"], work)
    assert nope.returncode == 1 and nope.stdout == b""
    one_line_error(nope.stderr.decode())
    version = run([*exe, "--version"], work)
    assert version.returncode == 0
    assert version.stdout.decode().strip() == f"lossjit {lossjit.__version__}"
    assert sorted(p.name for p in work.iterdir()) == ["data"]


NO_NUMBA = """
import sys
from lossjit.cli import cli
try:
    cli.main({args!r}, prog_name="lossjit", standalone_mode=False)
except SystemExit:
    pass
print()
print("numpy" in sys.modules)
print("numba" in sys.modules)
"""


@pytest.mark.parametrize("args", [["list"], ["--help"], ["list", "--json"], ["info", "ce"],
                                  ["compute", "focal", "--help"], ["compute", "--help"],
                                  ["--version"]])
def test_describing_does_not_import_numba(tmp_path: Path, args: list[str]):
    proc = run([sys.executable, "-c", NO_NUMBA.format(args=args)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    *_, numpy, numba = proc.stdout.decode().splitlines()
    assert numba == "False", proc.stdout
    if args != ["compute", "focal", "--help"]:  # a loss's own help builds its layout
        assert numpy == "False", proc.stdout


def test_list_does_not_import_numba_importtime(tmp_path: Path):
    proc = run([sys.executable, "-X", "importtime", "-m", "lossjit", "list"], tmp_path)
    assert proc.returncode == 0
    imported = [line.split("|")[-1].strip() for line in proc.stderr.decode().splitlines()
                if line.startswith("import time:")]
    assert "lossjit.cli" in imported
    assert not [m for m in imported if m == "numba" or m.startswith("numba.")]


def test_compute_does_import_numba(tmp_path: Path):
    """The check above can fail: computing a loss does load Numba."""
    shutil.copy(DATA / "preds.npy", tmp_path)
    shutil.copy(DATA / "targets.npy", tmp_path)
    code = NO_NUMBA.format(args=["compute", "mse", "preds.npy", "targets.npy", "--no-grad"])
    proc = run([sys.executable, "-c", code], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines()[-1] == "True"
