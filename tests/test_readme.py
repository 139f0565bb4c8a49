"""The README's console examples, run as written through the real ``lossjit`` executable.

Each ```console block is a shell session: ``$ `` lines are commands, the lines after them
what they print (stdout and stderr together). Every block runs in a fresh directory holding
a copy of data/; the seconds of a JSON record vary and are compared as placeholders. A block
preceded by ``<!-- untested: ... -->`` is skipped (timings); one preceded by
``<!-- needs: MODULE -->`` skips when that optional module is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import DATA, DATA_FILES, REPO

README = REPO / "README.md"
_SECONDS = re.compile(r'("\w*seconds": )[-+0-9.eE]+')
_MARK = "@@lossjit-readme-rc "


def console_blocks() -> list[tuple[int, str, list[tuple[str, list[str]]]]]:
    """(line number, the module it needs or '', [(command, expected lines)]) of every tested
    console block."""
    lines = README.read_text().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```console":
            before = next((line for line in reversed(lines[:i]) if line.strip()), "")
            start, i = i + 1, i + 1
            session: list[tuple[str, list[str]]] = []
            while lines[i].strip() != "```":
                if lines[i].startswith("$ "):
                    session.append((lines[i][2:], []))
                else:
                    session[-1][1].append(lines[i])
                i += 1
            needs = before.removeprefix("<!-- needs:").removesuffix("-->").strip() \
                if before.startswith("<!-- needs:") else ""
            if not before.startswith("<!-- untested"):
                blocks.append((start, needs, session))
        i += 1
    return blocks


def normalise(text: str) -> str:
    return _SECONDS.sub(r"\1<seconds>", text)


@pytest.mark.parametrize("start,needs,session", console_blocks(),
                         ids=lambda v: f"line {v}" if isinstance(v, int) else "")
def test_readme_console_block(tmp_path: Path, start: int, needs: str, session):
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    if needs:
        pytest.importorskip(needs)
    (tmp_path / "data").mkdir()
    for name in DATA_FILES:
        shutil.copy(DATA / name, tmp_path / "data" / name)
    script = ["exec 2>&1"]
    for command, _ in session:
        script += [command, f"__rc=$?; printf '\\n{_MARK}%d\\n' $__rc; (exit $__rc)"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                                 f"{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env,
                          capture_output=True, timeout=300)
    outputs = re.split(rf"\n?{_MARK}\d+\n", proc.stdout.decode())[:-1]
    assert len(outputs) == len(session), proc.stdout.decode()
    for (command, expected), got in zip(session, outputs, strict=True):
        assert normalise(got).splitlines() == [normalise(line) for line in expected], command
