"""`beatlab.errors.script`: benchmark scripts answer bad input as the CLI does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from beatlab.errors import BeatlabError, script

ROOT = Path(__file__).resolve().parents[1]


def test_script_turns_bad_input_into_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def bad() -> None:
        raise BeatlabError("no such\nrun directory", "runs/x")

    with pytest.raises(SystemExit) as exit_:
        script(bad)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.endswith(": error: runs/x: no such run directory\n")


def test_benchmark_refuses_a_mistyped_setting_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "cv"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "patient_cv.py"), "--set", "lrr=1"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2 and not out.exists()
    assert done.stderr == "patient_cv.py: error: --set: unknown setting 'lrr'; did you mean 'lr'?\n"
