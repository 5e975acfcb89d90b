"""No command deletes or changes what it did not create, whatever fails and however it is named."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import pytest
from conftest import run_cli

from beatlab.training import run as run_module
from beatlab.training.runs import MARKER


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` with the SHA-256 of its content."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def precious(tmp_path: Path) -> Path:
    """A runs folder that already holds other people's files and an earlier run."""
    runs = tmp_path / "runs"
    (runs / "victim").mkdir(parents=True)
    (runs / "victim" / "thesis.tex").write_text("years of work")
    (runs / "notes.txt").write_text("keep me")
    (runs / "old").mkdir()
    (runs / "old" / "model.safetensors").write_bytes(b"weights of another run")
    return runs


def train_args(data_dir: Path, runs: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--data-dir",
        str(data_dir),
        "--runs-dir",
        str(runs),
        "--limit",
        "40",
        "--epochs",
        "1",
        "--tracking-uri",
        "none",
        *extra,
    ]


@pytest.mark.parametrize("name", [".", "..", "../outside", "victim", "a/b", "/tmp/abs"])
def test_train_refuses_names_that_are_not_new_plain_folders(
    capsys: pytest.CaptureFixture[str], tiny_mitdb: Path, precious: Path, name: str
) -> None:
    before = snapshot(precious)
    code, out, err = run_cli(capsys, *train_args(tiny_mitdb.parent, precious, "--name", name))
    assert code == 2
    assert err.startswith("beatlab: error:") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err
    assert snapshot(precious) == before


@pytest.mark.parametrize("failure", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failed_training_removes_only_its_own_run(
    capsys: pytest.CaptureFixture[str],
    tiny_mitdb: Path,
    precious: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: BaseException,
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(run_module, "fit", fail)
    before = snapshot(precious)
    with contextlib.suppress(type(failure)):  # a bug's traceback; Ctrl+C: exit status 130
        code, _, _ = run_cli(capsys, *train_args(tiny_mitdb.parent, precious, "--name", "new"))
        assert code == 130
    assert not (precious / "new").exists()
    assert snapshot(precious) == before


def test_cleanup_keeps_a_file_someone_put_into_the_run_meanwhile(
    capsys: pytest.CaptureFixture[str],
    tiny_mitdb: Path,
    precious: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        (precious / "new" / "mine.txt").write_text("not beatlab's")
        raise RuntimeError("boom")

    monkeypatch.setattr(run_module, "fit", fail)
    with pytest.raises(RuntimeError):
        run_cli(capsys, *train_args(tiny_mitdb.parent, precious, "--name", "new"))
    assert sorted(p.name for p in (precious / "new").iterdir()) == ["mine.txt"]


def test_replace_takes_only_a_beatlab_run_that_holds_nothing_else(
    capsys: pytest.CaptureFixture[str], tiny_mitdb: Path, precious: Path
) -> None:
    args = train_args(tiny_mitdb.parent, precious, "--name", "demo", "--replace")
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    assert (precious / "demo" / MARKER).is_file()
    first = (precious / "demo" / "model.safetensors").stat().st_mtime_ns
    code, _, err = run_cli(capsys, *args)  # a beatlab run: replaced
    assert code == 0, err
    assert (precious / "demo" / "model.safetensors").stat().st_mtime_ns != first

    (precious / "demo" / "my-notes.txt").write_text("mine")
    before = snapshot(precious)
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "did not write" in err
    assert snapshot(precious) == before

    for name in ("victim", "old"):  # folders that are not marked beatlab runs
        args = train_args(tiny_mitdb.parent, precious, "--name", name, "--replace")
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and "not a beatlab run directory" in err
    assert snapshot(precious) == before


@pytest.mark.parametrize("name", [".", "../x", "/tmp/abs"])
def test_tune_refuses_names_that_are_paths(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    space = tmp_path / "space.toml"
    space.write_text("lr = 0.001\n")
    code, _, err = run_cli(
        capsys,
        "tune",
        "--model",
        "cnn1d_resnet",
        "--space",
        str(space),
        "--name",
        name,
        "--experiments-dir",
        str(tmp_path / "exp"),
    )
    assert code == 2 and "plain folder name" in err
    assert not (tmp_path / "exp").exists()


def test_failed_report_leaves_the_output_folder_alone(
    capsys: pytest.CaptureFixture[str], precious: Path, tmp_path: Path
) -> None:
    before = snapshot(precious)
    code, _, err = run_cli(capsys, "report", str(tmp_path / "missing-run"), "--out", str(precious))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert snapshot(precious) == before


@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated")
def test_outputs_replace_only_what_beatlab_wrote(
    capsys: pytest.CaptureFixture[str], tiny_mitdb: Path, tmp_path: Path
) -> None:
    """predict, view, export, report and data export refuse an existing file they did not
    write (the input itself, Kaggle's own mitbih_train.csv, someone's notes), in one line and
    before any work; a re-run replaces its own output."""
    runs, out = tmp_path / "runs", tmp_path / "out"
    out.mkdir()
    code, _, err = run_cli(capsys, *train_args(tiny_mitdb.parent, runs, "--name", "m"))
    assert code == 0, err
    record, beats = str(tiny_mitdb / "100"), out / "beats.csv"
    beats.write_text("0.5," * 187 + "0\n")  # one beat in the Kaggle layout
    notes = {name: out / name for name in ("p.csv", "p.parquet", "v.html", "m.onnx", "m.pt")}
    for path in notes.values():
        path.write_text("someone's notes\n")
    refused = [
        ("predict", "--run", str(runs / "m"), "--csv", str(beats), "--out", str(beats)),
        ("predict", "--run", str(runs / "m"), "--record", record, "--out", str(notes["p.csv"])),
        ("predict", "--run", str(runs / "m"), "--record", record, "--out", str(notes["p.parquet"])),
        ("view", "--run", str(runs / "m"), "--record", record, "--out", str(notes["v.html"])),
        ("export", "--run", str(runs / "m"), "--out", str(notes["m.onnx"])),
        (
            "export",
            "--run",
            str(runs / "m"),
            "--format",
            "torchscript",
            "--out",
            str(notes["m.pt"]),
        ),
        ("report", str(runs / "m"), "--out", str(out)),  # beside someone's report.md
    ]
    (out / "report.md").write_text("# my own report\n")
    before = snapshot(out)
    for args in refused:
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and "is not" in err and "beatlab wrote" in err, (args, err)
        assert len(err.strip().splitlines()) == 1
    assert snapshot(out) == before
    kaggle = out / "kaggle"
    kaggle.mkdir()
    (kaggle / "mitbih_test.csv").write_text("Kaggle's own test split\n")
    code, _, err = run_cli(
        capsys, "data", "export", "--out", str(kaggle), "--format", "kaggle-csv",
        "--data-dir", str(tiny_mitdb.parent),
    )  # fmt: skip
    assert code == 2 and "mitbih_test.csv: exists" in err
    assert [p.name for p in kaggle.iterdir()] == ["mitbih_test.csv"]
    # what beatlab wrote, a re-run replaces
    for path in notes.values():
        path.unlink()
    (out / "report.md").unlink()
    for args in refused[1:] * 2:
        code, _, err = run_cli(capsys, *args)
        assert code == 0, (args, err)
