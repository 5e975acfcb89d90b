"""A table of bad input and interruptions, each tried as a new user would, through the real CLI.

Every case runs in a fresh copy of one workspace (a tiny generated database with its beats built,
a trained run, good and bad beat files, an earlier output) and asserts: the exit status, one
line on stderr naming the file or option, no traceback, and that every file that was there
before is still there, unchanged, with nothing new beside it (no partial output).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, write_record

from beatlab.data.formats import write_beats
from beatlab.training.config import TrainConfig
from beatlab.training.run import train_run
from beatlab.training.runs import MARKER, RESUME

Setup = Callable[[Path, pytest.MonkeyPatch], None]


pytestmark = pytest.mark.usefixtures("one_thread")


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` with the SHA-256 of its content."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@dataclass
class Case:
    """One bad input: `args` may use {ws}, the workspace; `names` must be in the error line."""

    id: str
    args: list[str]
    names: str
    code: int = 2
    setup: Setup | None = None
    new_files: set[str] = field(default_factory=set)  # outputs a successful case may write
    warning: bool = False  # success with a warning line instead of an error line


# --- the workspace every case starts from --------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/ (two generated records, beats built), runs/trained (one epoch), runs/notes.txt,
    files/ (good and bad beat files), out/previous.csv, space.toml."""
    root = tmp_path_factory.mktemp("workspace")
    db = root / "data" / "mitdb"
    db.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("100", "101"):
        write_record(name, db, rng, seconds=30)
    runs = root / "runs"
    config = TrainConfig(data_dir=str(root / "data"), epochs=1, limit=40, batch_size=16)
    train_run(config, runs, name="trained", tracking_uri="none", progress=False)
    (runs / "notes.txt").write_text("keep me\n")
    files = root / "files"
    files.mkdir()
    x = np.random.default_rng(1).random((20, 187), dtype=np.float32)
    y = np.arange(20) % 5
    write_beats(files / "good.csv", x, y)
    write_beats(files / "good.parquet", x, y)
    good = (files / "good.csv").read_text().splitlines()
    for name, value in (("big", "1e39"), ("huge", "1e30"), ("nan", "nan")):
        cells = good[3].split(",")
        cells[5] = value
        (files / f"{name}.csv").write_text("\n".join([*good[:3], ",".join(cells), *good[4:]]))
    (files / "cols.csv").write_text("\n".join(",".join(r.split(",")[:100]) for r in good))
    (files / "labels.csv").write_text("\n".join(r.rsplit(",", 1)[0] + ",7.0" for r in good))
    (root / "out").mkdir()
    (root / "out" / "previous.csv").write_text("earlier results\n")
    (root / "space.toml").write_text("lr = {loguniform = [1e-4, 1e-2]}\n")
    return root


@pytest.fixture
def ws(base: Path, tmp_path: Path) -> Path:
    """A private copy of the workspace."""
    return Path(shutil.copytree(base, tmp_path / "ws", symlinks=True))


# --- helpers for setups ---------------------------------------------------------------------


def write(rel: str, content: str | bytes) -> Setup:
    def setup(ws: Path, _: pytest.MonkeyPatch) -> None:
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return setup


def edit_run(name: str, change: Callable[[Path], None]) -> Setup:
    """A copy of the trained run as runs/NAME, changed by `change`."""

    def setup(ws: Path, _: pytest.MonkeyPatch) -> None:
        shutil.copytree(ws / "runs" / "trained", ws / "runs" / name)
        change(ws / "runs" / name)

    return setup


def read_only(rel: str) -> Setup:
    """Make ws/REL read-only. Root ignores file modes, so there the denial is also simulated
    at the calls that create files (in-process: the CLI runs in this interpreter)."""

    def setup(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        target = ws / rel
        target.chmod(0o555)
        if os.geteuid() != 0:
            return

        def inside(path: object) -> bool:
            return Path(str(path)).resolve().is_relative_to(target.resolve())

        def deny(path: object) -> None:
            if inside(path):
                raise PermissionError(13, "Permission denied", str(path))

        real_access, real_mkstemp, real_mkdtemp = os.access, tempfile.mkstemp, tempfile.mkdtemp
        real_mkdir = Path.mkdir

        def access(path: object, mode: int, **kw: object) -> bool:
            if mode & os.W_OK and inside(path):
                return False
            return real_access(path, mode, **kw)  # type: ignore[arg-type]

        def mkstemp(*args: object, dir: object = None, **kw: object) -> tuple[int, str]:
            deny(Path(str(dir)) / "x")
            return real_mkstemp(*args, dir=dir, **kw)  # type: ignore[call-overload,no-any-return]

        def mkdtemp(*args: object, dir: object = None, **kw: object) -> str:
            deny(Path(str(dir)) / "x")
            return real_mkdtemp(*args, dir=dir, **kw)  # type: ignore[call-overload,no-any-return]

        def mkdir(self: Path, *args: object, **kw: object) -> None:
            if not self.exists():
                deny(self)
            real_mkdir(self, *args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "access", access)
        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
        monkeypatch.setattr(Path, "mkdir", mkdir)

    return setup


TRAIN = [
    "train",
    "--data-dir",
    "{ws}/data",
    "--runs-dir",
    "{ws}/runs",
    "--tracking-uri",
    "none",
    "--limit",
    "40",
    "--epochs",
    "1",
]
RUN = "{ws}/runs/trained"
PREDICT = ["predict", "--run", RUN, "--out", "{ws}/out/new.csv"]
TUNE = [
    "tune",
    "--model",
    "cnn1d_resnet",
    "--space",
    "{ws}/space.toml",
    "--experiments-dir",
    "{ws}/exp",
    "--data-dir",
    "{ws}/data",
    "--tracking-uri",
    "none",
]


def train(*args: str) -> list[str]:
    return [*TRAIN, *args]


def cli(capsys: pytest.CaptureFixture[str], ws: Path, *args: str) -> tuple[int, str, str]:
    """`run_cli` with {ws} in the arguments replaced by the workspace."""
    return run_cli(capsys, *(a.replace("{ws}", str(ws)) for a in args))


def damage(name: str, content: str | bytes) -> Callable[[Path], None]:
    def change(run: Path) -> None:
        if isinstance(content, bytes):
            (run / name).write_bytes(content)
        else:
            (run / name).write_text(content)

    return change


def interrupted(state: bytes) -> Callable[[Path], None]:
    """A run cut short: run.json not yet written, a training state (here `state`) present."""

    def change(run: Path) -> None:
        (run / "run.json").unlink()
        (run / RESUME).write_bytes(state)

    return change


def copy_record(ws: Path, _: pytest.MonkeyPatch) -> None:
    """rec/100: a record whose .atr file is random bytes."""
    (ws / "rec").mkdir()
    for ext in ("hea", "dat"):
        shutil.copy(ws / "data" / "mitdb" / f"100.{ext}", ws / "rec")
    noise = np.random.default_rng(3).integers(0, 256, 500, dtype=np.uint8)
    (ws / "rec" / "100.atr").write_bytes(noise.tobytes())


def parquet_without_target(ws: Path, _: pytest.MonkeyPatch) -> None:
    pd.DataFrame({"0": [0.1, 0.2]}).to_parquet(ws / "files" / "bad.parquet")


CASES = [
    # -- training values, each refused before any data is read (the tracebacks first)
    Case("epochs-0", train("--epochs", "0"), "--epochs"),
    Case("epochs-negative", train("--epochs", "-1"), "--epochs"),
    Case("batch-size-0", train("--batch-size", "0"), "--batch-size"),
    Case("batch-size-1", train("--batch-size", "1"), "--batch-size"),
    Case("lr-option-negative", train("--lr", "-1"), "--lr"),
    Case("set-lr-negative", train("--set", "lr=-1"), "'lr'"),
    Case("set-lr-zero", train("--set", "lr=0"), "'lr'"),
    Case("set-lr-infinite", train("--set", "lr=Infinity"), "'lr'"),
    Case("set-lr-text", train("--set", "lr=fast"), "'lr'"),
    Case("seed-negative", train("--seed", "-5"), "--seed"),
    Case("seed-too-large", train("--seed", "99999999999"), "--seed"),
    Case("factor-1.5", train("--set", "factor=1.5"), "'factor'"),
    Case("factor-0", train("--set", "factor=0"), "'factor'"),
    Case("early-stopping-negative", train("--set", "early_stopping=-1"), "'early_stopping'"),
    Case("lr-patience-negative", train("--set", "lr_patience=-2"), "'lr_patience'"),
    Case("limit-0", train("--limit", "0"), "--limit"),
    Case("limit-1", train("--limit", "1"), "--limit"),
    Case("balance-unknown", train("--balance", "adasyn"), "--balance"),
    Case("split-unknown", train("--split", "diagonal"), "--split"),
    Case("optimizer-unknown", train("--set", "optimizer=sgd"), "'sgd'"),
    Case("class-weight-power", train("--set", "class_weight_power=-1"), "'class_weight_power'"),
    Case("weight-decay", train("--set", "weight_decay=-0.1"), "'weight_decay'"),
    Case("grad-clip", train("--set", "grad_clip=-1"), "'grad_clip'"),
    Case("augment-noise", train("--set", "augment_noise=-0.1"), "'augment_noise'"),
    Case("folds-1", train("--folds", "1"), "--folds"),
    Case("fold-out-of-range", train("--folds", "3", "--fold", "3"), "'fold'"),
    Case("fold-without-folds", train("--fold", "2"), "'fold'"),
    Case("freeze-without-init", train("--freeze-backbone"), "freeze_backbone"),
    Case("monitor-unknown", train("--set", "monitor=val_f2"), "'val_f2'"),
    Case("mode-unknown", train("--set", "mode=up"), "'up'"),
    Case("epochs-fraction", train("--set", "epochs=2.5"), "'epochs'"),
    Case("unknown-key", train("--set", "bogus_key=3"), "'bogus_key'"),
    Case("mistyped-setting", train("--set", "epochz=3"), "'epochs'"),
    Case("hparams-not-a-table", train("--set", "hparams=3"), "'hparams'"),
    Case("set-without-key", train("--set", "=3"), "--set"),
    Case("set-without-equals", train("--set", "lr"), "--set"),
    Case("model-unknown", train("--model", "resnet9000"), "'resnet9000'"),
    Case("epochs-not-a-number", train("--epochs", "abc"), "'--epochs'"),
    Case("option-mistyped", train("--epoch", "3"), "--epoch"),
    Case("valid-file-alone", train("--valid-file", "{ws}/files/good.csv"), "--train-file"),
    Case("name-is-a-path", train("--name", "../elsewhere"), "--name"),
    Case("name-taken", train("--name", "trained"), "trained"),
    # -- --init-from: hyperparameters merged and checked against the source run's model
    Case("init-from-typo", train("--init-from", RUN, "--set", "bogus_key=3"), "'bogus_key'"),
    Case(
        "init-from-changes-architecture",
        train("--init-from", RUN, "--set", "filters=64"),
        "'filters'",
    ),
    Case("init-from-missing", train("--init-from", "{ws}/runs/gone"), "gone"),
    Case(
        "init-from-broken",
        train("--init-from", "{ws}/runs/broken"),
        "run.json",
        setup=edit_run("broken", damage("run.json", '{"classes": 5}')),
    ),
    # -- config files
    Case(
        "config-not-toml",
        train("--config", "{ws}/bad.toml"),
        "bad.toml",
        setup=write("bad.toml", "model = cnn1d_resnet\n"),
    ),
    Case(
        "config-bad-value",
        train("--config", "{ws}/zero.toml"),
        "zero.toml",
        setup=write("zero.toml", "epochs = 0\n"),
    ),
    Case(
        "config-binary",
        train("--config", "{ws}/binary.toml"),
        "binary.toml",
        setup=write("binary.toml", b"\xff\xfe\x00garbage"),
    ),
    Case(
        "config-yaml-list",
        train("--config", "{ws}/list.yaml"),
        "list.yaml",
        setup=write("list.yaml", "- 1\n- 2\n"),
    ),
    Case(
        "config-hparams-scalar",
        train("--config", "{ws}/h.json"),
        "h.json",
        setup=write("h.json", '{"hparams": 3}'),
    ),
    Case("config-missing", train("--config", "{ws}/nowhere.toml"), "nowhere.toml"),
    # -- beat files for training
    Case("train-file-float32", train("--train-file", "{ws}/files/big.csv"), "big.csv"),
    Case("train-file-columns", train("--train-file", "{ws}/files/cols.csv"), "cols.csv"),
    Case("train-file-nan", train("--train-file", "{ws}/files/nan.csv"), "nan.csv"),
    Case("train-file-missing", train("--train-file", "{ws}/files/none.csv"), "none.csv"),
    Case("train-file-labels", train("--train-file", "{ws}/files/labels.csv"), "labels.csv"),
    Case("no-database", train("--data-dir", "{ws}/nodata"), "nodata"),
    Case(
        "runs-dir-read-only",
        train("--runs-dir", "{ws}/runs"),
        "runs",
        setup=read_only("runs"),
    ),
    # -- resume
    Case("resume-finished", ["train", "--resume", RUN], "nothing to resume"),
    Case("resume-missing", ["train", "--resume", "{ws}/runs/gone"], "gone"),
    Case("resume-with-options", ["train", "--resume", RUN, "--epochs", "3"], "--resume"),
    Case(
        "resume-damaged-state",
        ["train", "--resume", "{ws}/runs/cut", "--tracking-uri", "none"],
        RESUME,
        setup=edit_run("cut", interrupted(b"\0" * 99)),
    ),
    # -- evaluate: run directories that are missing, damaged or read-only
    Case("evaluate-missing", ["evaluate", "{ws}/runs/gone"], "gone"),
    Case(
        "evaluate-config-garbage",
        ["evaluate", "{ws}/runs/r", "--tracking-uri", "none"],
        "config.json",
        setup=edit_run("r", damage("config.json", "{not json")),
    ),
    Case(
        "evaluate-config-list",
        ["evaluate", "{ws}/runs/r", "--tracking-uri", "none"],
        "config.json",
        setup=edit_run("r", damage("config.json", "[1, 2]")),
    ),
    Case(
        "evaluate-config-bad-hparam",
        ["evaluate", "{ws}/runs/r", "--tracking-uri", "none"],
        "config.json",
        setup=edit_run("r", damage("config.json", '{"hparams": {"bogus": 1}}')),
    ),
    Case(
        "evaluate-run-json-no-classes",
        ["evaluate", "{ws}/runs/r", "--tracking-uri", "none"],
        "run.json",
        setup=edit_run("r", damage("run.json", '{"best_epoch": 1}')),
    ),
    Case(
        "evaluate-truncated-checkpoint",
        ["evaluate", "{ws}/runs/r", "--tracking-uri", "none"],
        "model.safetensors",
        setup=edit_run("r", damage("model.safetensors", b"\x08\x00\x00")),
    ),
    Case("evaluate-unknown-part", ["evaluate", RUN, "--split", "dev"], "'dev'"),
    Case(
        "evaluate-read-only-run",
        ["evaluate", RUN, "--tracking-uri", "none"],
        "trained",
        setup=read_only("runs/trained"),
    ),
    Case(
        "evaluate-file-float32",
        ["evaluate", RUN, "--test-file", "{ws}/files/big.csv", "--tracking-uri", "none"],
        "big.csv",
    ),
    Case(
        "evaluate-interrupted-run",
        ["evaluate", "{ws}/runs/cut", "--tracking-uri", "none"],
        "--resume",
        setup=edit_run("cut", interrupted(b"x")),
    ),
    # -- predict
    Case("predict-float32", [*PREDICT, "--csv", "{ws}/files/big.csv"], "big.csv"),
    Case("predict-nan", [*PREDICT, "--csv", "{ws}/files/nan.csv"], "nan.csv"),
    Case(
        "predict-far-values-warn",
        [*PREDICT, "--csv", "{ws}/files/huge.csv"],
        "1 of 20 rows",
        code=0,
        warning=True,
        new_files={"out/new.csv"},
    ),
    Case(
        "predict-out-missing-folder",
        [
            "predict",
            "--run",
            RUN,
            "--out",
            "/nonexistent/dir/x.csv",
            "--csv",
            "{ws}/files/good.csv",
        ],
        "/nonexistent/dir",
    ),
    Case(
        "predict-out-missing-folder-in-ws",
        ["predict", "--run", RUN, "--out", "{ws}/out/a/b/x.csv", "--csv", "{ws}/files/good.csv"],
        "out/a/b",
    ),
    Case(
        "predict-out-is-a-folder",
        ["predict", "--run", RUN, "--out", "{ws}/out", "--csv", "{ws}/files/good.csv"],
        "out",
    ),
    Case(
        "predict-out-suffix",
        ["predict", "--run", RUN, "--out", "{ws}/out/x.txt", "--csv", "{ws}/files/good.csv"],
        "x.txt",
    ),
    Case(
        "predict-two-sources",
        [*PREDICT, "--csv", "{ws}/files/good.csv", "--parquet", "{ws}/files/good.parquet"],
        "--record",
    ),
    Case("predict-missing-record", [*PREDICT, "--record", "{ws}/data/mitdb/999"], "999"),
    Case(
        "predict-random-annotations",
        [*PREDICT, "--record", "{ws}/rec/100"],
        "100",
        setup=copy_record,
    ),
    Case(
        "predict-parquet-without-target",
        [*PREDICT, "--parquet", "{ws}/files/bad.parquet"],
        "bad.parquet",
        setup=parquet_without_target,
    ),
    # -- report
    Case(
        "report-out-is-a-file",
        ["report", RUN, "--out", "{ws}/out/previous.csv"],
        "previous.csv",
    ),
    Case(
        "report-read-only-out",
        ["report", RUN, "--out", "{ws}/out"],
        "out",
        setup=read_only("out"),
    ),
    Case("report-missing-run", ["report", "{ws}/runs/gone", "--out", "{ws}/rep"], "gone"),
    Case(
        "report-bad-history",
        ["report", "{ws}/runs/r", "--out", "{ws}/rep"],
        "history.csv",
        setup=edit_run("r", damage("history.csv", "epoch,train_loss\nx,\n")),
    ),
    Case(
        "report-bad-results",
        ["report", "{ws}/exp1", "--out", "{ws}/rep"],
        "results.csv",
        setup=write("exp1/results.csv", b"\xff\xfe\x00\x01"),
    ),
    # -- export
    Case(
        "export-out-missing-folder",
        ["export", "--run", RUN, "--out", "{ws}/nowhere/model.onnx"],
        "nowhere",
    ),
    Case("export-format", ["export", "--run", RUN, "--format", "tflite"], "'tflite'"),
    Case(
        "export-int8-torchscript",
        ["export", "--run", RUN, "--int8", "--format", "torchscript"],
        "--int8",
    ),
    # -- tune, refused before Ray starts
    Case("tune-seed", [*TUNE, "--seed", "-1"], "--seed"),
    Case("tune-limit", [*TUNE, "--limit", "0"], "--limit"),
    Case("tune-metric", [*TUNE, "--metric", "val_f1"], "--metric"),
    Case(
        "tune-space-lr-range",
        [*TUNE, "--space", "{ws}/neg.toml"],
        "neg.toml",
        setup=write("neg.toml", "lr = {uniform = [-1.0, 1.0]}\n"),
    ),
    Case(
        "tune-space-monitor",
        [*TUNE, "--space", "{ws}/mon.toml"],
        "--metric",
        setup=write("mon.toml", 'monitor = "val_loss"\nlr = {loguniform = [1e-4, 1e-2]}\n'),
    ),
    Case("tune-resume-missing", ["tune", "--resume", "{ws}/exp/gone"], "gone"),
]


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(
    case: Case,
    ws: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if case.setup is not None:
        case.setup(ws, monkeypatch)
    before = snapshot(ws)
    try:
        code, out, err = cli(capsys, ws, *case.args)
    finally:
        monkeypatch.undo()
        for path in (ws, *ws.rglob("*")):  # read_only's folders, writable again for cleanup
            if path.is_dir():
                path.chmod(0o755)
    lines = err.strip().splitlines()
    assert code == case.code, err
    assert "Traceback" not in out + err
    assert len(lines) == 1, err
    prefix = "beatlab: warning:" if case.warning else "beatlab: error:"
    assert lines[0].startswith(prefix), err
    assert case.names in lines[0], err
    after = snapshot(ws)
    assert {k: after.get(k) for k in before} == before  # nothing changed or removed
    assert set(after) - set(before) == case.new_files  # nothing written but the output
    assert not Path("/nonexistent").exists()


# --- interruptions --------------------------------------------------------------------------


@contextlib.contextmanager
def signal_after_first_epoch(run_dir: Path, signum: int) -> Iterator[None]:
    """Send `signum` to this process once the run has saved its first epoch (waiting up to
    10 min: on a busy machine the first epoch of even a tiny run can take over a minute)."""

    def watch() -> None:
        for _ in range(30_000):
            if (run_dir / RESUME).is_file():
                os.kill(os.getpid(), signum)
                return
            threading.Event().wait(0.02)

    # Python's own Ctrl+C handler, as in a fresh `beatlab` process: a library imported by an
    # earlier test in this process (Ray) may have left another one in place
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout=1)
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_keeps_the_finished_epochs(
    ws: Path, capsys: pytest.CaptureFixture[str], signum: int, status: int
) -> None:
    before = snapshot(ws)
    run_dir = ws / "runs" / "cut"
    with signal_after_first_epoch(run_dir, signum):
        code, out, err = cli(
            capsys,
            ws,
            *train(
                "--name", "cut", "--epochs", "999", "--batch-size", "4", "--set", "early_stopping=0"
            ),
        )
    assert code == status, err
    assert "Traceback" not in out + err
    assert err.strip().splitlines()[-1].startswith("beatlab: interrupted after ")
    assert f"beatlab train --resume {run_dir}" in err
    assert {p.name for p in run_dir.iterdir()} >= {MARKER, "config.json", "history.csv", RESUME}
    assert not (run_dir / "run.json").exists()
    after = snapshot(ws)
    assert {k: after.get(k) for k in before} == before


def test_interrupt_before_the_first_epoch_leaves_nothing(
    ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from beatlab.training import run as run_module

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "fit", interrupted)
    before = snapshot(ws)
    code, out, err = cli(capsys, ws, *train("--name", "early"))
    assert code == 130 and "Traceback" not in out + err
    assert not (ws / "runs" / "early").exists()
    assert snapshot(ws) == before
