"""`beatlab predict` and `beatlab export` with a tiny run trained once on the real beats."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
import wfdb
from conftest import FS, run_cli, write_segments
from scipy.signal import resample_poly
from wfdb import processing

from beatlab import CLASSES
from beatlab.data.build import (
    Beats,
    cache_path,
    load_beats,
    read_annotation_marks,
    read_annotations,
    within,
)
from beatlab.data.databases import AAMI
from beatlab.data.formats import write_beats
from beatlab.data.layouts import KACHUEE, over_invalid, segment_clear
from beatlab.deploy import (
    OnnxRunner,
    classify,
    export_model,
    onnx_logits,
    onnx_session,
    predict_file,
)
from beatlab.deploy.export import available_cores, example_inputs, exported_metadata
from beatlab.deploy.predict import (
    DETECTOR_SWING_MV,
    _first_failure,
    classify_leads,
    detect_beats,
    detector_signal,
    folder_records,
    gqrs,
    lowpassed,
    match_reference,
    predict_records,
)
from beatlab.errors import BeatlabError
from beatlab.models import create_model, list_models
from beatlab.models.ensemble import MeanEnsemble
from beatlab.output import RecordingBars
from beatlab.training.config import TrainConfig
from beatlab.training.run import train_run
from beatlab.training.runs import CHECKPOINT, Run, load_run

# TorchScript is deprecated upstream but still what LibTorch deployments load
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated")


@pytest.fixture(scope="module")
def tiny_run(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = TrainConfig(model="cnn1d_resnet", epochs=1, limit=500, data_dir=str(real_data_dir))
    runs = tmp_path_factory.mktemp("runs")
    return train_run(config, runs, name="tiny", tracking_uri="none", progress=False)


@pytest.fixture(scope="module")
def real_beats(real_data_dir: Path) -> Beats:
    return load_beats(cache_path(real_data_dir))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`beatlab ARGS`, with rich's line wrapping undone in what it prints."""
    code, out, err = run_cli(capsys, *args)
    return code, " ".join(out.split()), err.strip()


def predict(
    capsys: pytest.CaptureFixture[str], run: Path, out: Path | str, *args: str
) -> tuple[int, str, str]:
    """`beatlab predict --run RUN --out OUT ARGS`."""
    return cli(capsys, "predict", "--run", str(run), "--out", str(out), *args)


def sample_beats(beats: Beats, n: int, seed: int = 0) -> Beats:
    rng = np.random.default_rng(seed)
    return beats.take(np.sort(rng.choice(len(beats), n, replace=False)))


# --- predict: WFDB records ---------------------------------------------------------------------


def test_record_with_annotations_matches_the_built_beats(
    capsys: pytest.CaptureFixture[str],
    tiny_run: Path,
    real_mitdb: Path,
    real_beats: Beats,
    tmp_path: Path,
) -> None:
    out = tmp_path / "208.csv"
    code, printed, err = predict(capsys, tiny_run, out, "--record", str(real_mitdb / "208"))
    assert code == 0, err
    assert "2,955 beats from the reference annotations, lead MLII" in printed
    assert "agreement with the reference: accuracy" in printed
    assert "│ S │ 0 │ 2 │ 0.0000 │ n/a │" in printed  # none said S: no +P, not 0
    table = pd.read_csv(out)
    probabilities = [f"p_{c}" for c in CLASSES]
    assert list(table.columns) == ["sample", "time_s", "predicted", *probabilities, "reference"]
    built = real_beats.take(np.flatnonzero(real_beats.record == "208"))
    assert table["sample"].tolist() == built.sample.tolist()
    assert np.allclose(table["time_s"], built.sample / FS)
    assert table["reference"].tolist() == [CLASSES[y] for y in built.y]
    # the same beats as the builder's, so the same probabilities as on the dataset
    expected = classify(load_run(tiny_run).model, built.x, built.rr)
    assert np.allclose(table[probabilities].to_numpy(), expected, atol=1e-6)
    assert (table["predicted"] == [CLASSES[i] for i in expected.argmax(1)]).all()


def test_record_classified_with_an_onnx_export(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    run = load_run(tiny_run)
    exported = export_model(run.model, run.classes, "onnx", tmp_path / "m.onnx", name="tiny")
    record = str(real_mitdb / "208")
    code, _, err = predict(capsys, tiny_run, tmp_path / "torch.csv", "--record", record)
    assert code == 0, err
    args = ("--record", record, "--onnx", str(exported))
    code, printed, err = predict(capsys, tiny_run, tmp_path / "onnx.csv", *args)
    assert code == 0, err
    assert "2,955 beats from the reference annotations" in printed
    torch_table, onnx_table = (pd.read_csv(tmp_path / f) for f in ("torch.csv", "onnx.csv"))
    probabilities = [f"p_{c}" for c in CLASSES]
    assert np.abs(onnx_table[probabilities] - torch_table[probabilities]).to_numpy().max() < 1e-5
    assert onnx_table.drop(columns=probabilities).equals(torch_table.drop(columns=probabilities))


def test_predicting_with_pytorch_imports_no_onnx() -> None:
    """onnx and ONNX Runtime's quantiser take over a second to import: only `export` and
    `--onnx` need them, not every `predict`, `view` or `evaluate --db`."""
    code = "import sys, beatlab.deploy.predict, beatlab.cli.predict; print(sorted(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "'onnx'" not in loaded and "'onnxruntime.quantization'" not in loaded


def test_onnx_export_of_another_model_is_refused(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    other = create_model("cnn1d_resnet", use_rr=True).eval()
    exported = export_model(other, CLASSES, "onnx", tmp_path / "other.onnx")
    record = str(real_mitdb / "208")
    code, _, err = predict(
        capsys, tiny_run, tmp_path / "p.csv", "--record", record, "--onnx", str(exported)
    )
    assert code == 2 and err.startswith(f"beatlab: error: {exported}: exported from")
    assert "'inputs': ['beats', 'rr']" in err and not (tmp_path / "p.csv").exists()
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    code, _, err = predict(
        capsys, tiny_run, tmp_path / "p.csv", "--record", record, "--onnx", str(junk)
    )
    assert err == f"beatlab: error: {junk}: not an ONNX file written by `beatlab export`"


def test_record_without_annotations_uses_the_detector(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    for ext in ("hea", "dat"):
        shutil.copy(real_mitdb / f"208.{ext}", tmp_path / f"208.{ext}")
    out = tmp_path / "208.parquet"
    code, printed, err = predict(capsys, tiny_run, out, "--record", str(tmp_path / "208.hea"))
    assert code == 0, err
    assert "from the QRS detector" in printed and "agreement" not in printed
    table = pd.read_parquet(out)
    assert "reference" not in table.columns
    assert abs(len(table) - 2955) < 0.02 * 2955  # the detector finds (nearly) every beat
    assert table["sample"].is_monotonic_increasing
    assert np.allclose(table[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1.0, atol=1e-5)


def test_a_run_with_the_af_gate_calls_no_beat_s_in_atrial_fibrillation(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    """Record 203 is mostly AF: with `af_gate` in the run's config, the beats there have their S
    probability given to N and the command says how many; every other beat is as without it.
    The intra split's test part holds some beats of each record, no rhythm: not applied."""
    gated_run = tmp_path / "gated"
    shutil.copytree(tiny_run, gated_run)
    config = json.loads((gated_run / "config.json").read_text())
    (gated_run / "config.json").write_text(json.dumps({**config, "af_gate": True}))
    tables, said = {}, {}
    for name, run in (("plain", tiny_run), ("gated", gated_run)):
        out = tmp_path / f"{name}.csv"
        code, said[name], err = predict(capsys, run, out, "--record", str(real_mitdb / "203"))
        assert code == 0, err
        tables[name] = pd.read_csv(out)
    moved = tables["gated"]["p_S"].to_numpy() != tables["plain"]["p_S"].to_numpy()
    counted = re.search(
        r"([\d,]+) beats in atrial fibrillation by their R-R intervals", said["gated"]
    )
    assert counted and int(counted.group(1).replace(",", "")) >= moved.sum() > 1000, said
    assert "atrial fibrillation" not in said["plain"]
    assert (tables["gated"].loc[moved, "p_S"] == 0).all()
    np.testing.assert_allclose(
        tables["gated"].loc[moved, "p_N"],
        tables["plain"].loc[moved, "p_N"] + tables["plain"].loc[moved, "p_S"],
        atol=1e-5,
    )
    assert tables["gated"][~moved].equals(tables["plain"][~moved])
    code, printed, err = cli(capsys, "evaluate", str(gated_run))
    assert code == 0 and "af_gate not applied" in printed, err


def test_record_of_another_lead_is_classified_when_named(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    signal = wfdb.rdrecord(str(real_mitdb / "208"), channels=[0], sampto=20 * 360).p_signal
    wfdb.wrsamp("chest", 360, ["mV"], ["V1"], p_signal=signal, fmt=["16"], write_dir=str(tmp_path))
    record, out = str(tmp_path / "chest"), tmp_path / "chest.csv"
    code, _, err = predict(capsys, tiny_run, out, "--record", record)
    assert code == 2 and "has none of the leads" in err and "name one with --lead" in err
    code, printed, err = predict(capsys, tiny_run, out, "--record", record, "--lead", "V1")
    assert code == 0, err
    assert "lead V1" in printed and len(pd.read_csv(out)) > 15
    code, _, err = predict(capsys, tiny_run, out, "--csv", "beats.csv", "--lead", "V1")
    assert code == 2 and "--lead applies to --record and --records only" in err


def test_one_lead_record_whose_name_is_no_view_is_read_and_said(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    """A wearable's or Holter's only lead, `ECG`, is read in MLII's place, as `--lead ECG`
    would, with a line saying so; `V1` above is another view and stays refused."""
    signal = wfdb.rdrecord(str(real_mitdb / "208"), channels=[0], sampto=20 * 360).p_signal
    wfdb.wrsamp("band", 360, ["mV"], ["ECG"], p_signal=signal, fmt=["16"], write_dir=str(tmp_path))
    record = str(tmp_path / "band")
    code, printed, err = predict(capsys, tiny_run, tmp_path / "a.csv", "--record", record)
    assert code == 0, err
    assert "the record's one lead, ECG, is none the model reads: read in place of MLII" in printed
    code, printed, err = predict(
        capsys, tiny_run, tmp_path / "b.csv", "--record", record, "--lead", "ECG"
    )
    assert code == 0 and "read in place" not in printed, err
    named = pd.read_csv(tmp_path / "b.csv")
    assert len(named) > 15
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), named)


def write_edf(real_mitdb: Path, path: Path, record: str = "201") -> Path:
    """Minute 2 of `record` as a Holter or sleep lab would export it: EDF+ labels (`ECG MLII`),
    microvolts, 16 bits (24 for .bdf), beside an EEG signal at another rate, no annotations."""
    import pyedflib

    rec = wfdb.rdrecord(str(real_mitdb / record), sampfrom=60 * FS, sampto=120 * FS)
    bits = 2 ** (23 if path.suffix == ".bdf" else 15)
    ecg = dict(dimension="uV", sample_frequency=FS, physical_min=-8000, physical_max=8000)
    headers = [dict(ecg, label=f"ECG {name}") for name in rec.sig_name]
    headers.append(dict(ecg, label="EEG Fpz-Cz", sample_frequency=100))
    signals = [np.ascontiguousarray(1000 * lead) for lead in rec.p_signal.T] + [np.zeros(6000)]
    for header in headers:
        header.update(digital_min=-bits, digital_max=bits - 1)
    pyedflib.highlevel.write_edf(str(path), signals, headers)
    return path


@pytest.mark.parametrize("suffix", [".edf", ".bdf"])
def test_an_edf_file_is_classified_like_the_wfdb_record_it_holds(
    capsys: pytest.CaptureFixture[str],
    tiny_run: Path,
    real_mitdb: Path,
    tmp_path: Path,
    suffix: str,
) -> None:
    """An EDF/BDF file's ECG signals are read as a WFDB record of the same leads (`ECG MLII` is
    MLII), in its units, and its beats found by the detector: the same beats and classes as the
    record's own samples give, and no temporary copy left behind."""
    edf = write_edf(real_mitdb, tmp_path / f"holter{suffix}")
    rec = wfdb.rdrecord(str(real_mitdb / "201"), sampfrom=60 * FS, sampto=120 * FS, physical=False)
    record = write_digital(rec, tmp_path, "201")
    code, printed, err = predict(capsys, tiny_run, tmp_path / "e.csv", "--record", str(edf))
    assert code == 0, err
    assert f"holter{suffix}: " in printed and "from the QRS detector, lead MLII, 360 Hz" in printed
    code, _, err = predict(
        capsys, tiny_run, tmp_path / "w.csv", "--record", str(record), "--detector"
    )
    assert code == 0, err
    from_edf, from_wfdb = pd.read_csv(tmp_path / "e.csv"), pd.read_csv(tmp_path / "w.csv")
    assert 60 <= len(from_edf) <= 110
    pd.testing.assert_frame_equal(from_edf, from_wfdb, rtol=0, atol=1e-5)  # EDF quantises
    page = tmp_path / "p.html"
    code, printed, err = cli(
        capsys, "view", "--run", str(tiny_run), "--record", str(edf), "--out", str(page)
    )
    assert code == 0 and f"{len(from_edf)} beats" in printed, err
    assert f"beatlab view: {tmp_path.name}/holter" in page.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["201.dat", "201.hea", "e.csv", f"holter{suffix}", "p.html", "w.csv"]
    )


def test_a_multi_segment_record_is_classified_like_the_one_record_it_joins(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    """A multi-segment WFDB record (long-term and ICU databases store them) with its .atr:
    the same beats, classes and probabilities as its samples written as one record."""
    write_segments(real_mitdb / "208", tmp_path, "ms", [(0, 9000, [0, 1]), (9000, 21600, [0, 1])])
    one = wfdb.rdrecord(str(real_mitdb / "208"), sampto=21600, physical=False)
    write_digital(one, tmp_path, "one")
    ann = wfdb.rdann(str(real_mitdb / "208"), "atr", sampto=21600)
    for name in ("ms", "one"):
        wfdb.wrann(name, "atr", ann.sample, ann.symbol, write_dir=str(tmp_path))
    tables = {}
    for name in ("ms", "one"):
        out = tmp_path / f"{name}.csv"
        code, printed, err = predict(capsys, tiny_run, out, "--record", str(tmp_path / name))
        assert code == 0 and "from the reference annotations" in printed, err
        tables[name] = pd.read_csv(out)
    assert len(tables["ms"]) > 70
    pd.testing.assert_frame_equal(tables["ms"], tables["one"], atol=1e-5)


def test_a_file_named_edf_that_is_none_is_one_line(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, tmp_path: Path
) -> None:
    edf = tmp_path / "holter.EDF"
    edf.write_bytes(b"0       ")
    for path, problem in ((edf, "unreadable EDF/BDF file"), (tmp_path / "no.edf", "no such file")):
        code, _, err = predict(capsys, tiny_run, tmp_path / "h.csv", "--record", str(path))
        assert code == 2 and len(err.splitlines()) == 1, err
        assert f"{path}: {problem}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["holter.EDF"]


def test_a_folder_of_recordings_is_classified_into_one_table(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    """`--records DIR`: each WFDB record and EDF file as `--record` classifies it, in one table
    led by a record column; a file that cannot be read is one line and left out (exit 1), and
    a re-run may replace the table it wrote."""
    folder = tmp_path / "holters"
    folder.mkdir()
    for name in ("100", "208"):
        rec = wfdb.rdrecord(str(real_mitdb / name), sampto=30 * FS, physical=False)
        ann = wfdb.rdann(str(real_mitdb / name), "atr", sampto=30 * FS)
        write_digital(rec, folder, name)
        wfdb.wrann(name, "atr", ann.sample, ann.symbol, write_dir=str(folder))
    write_edf(real_mitdb, folder / "night.edf")
    (folder / "broken.edf").write_bytes(b"0       ")
    out = tmp_path / "all.csv"
    code, printed, err = predict(capsys, tiny_run, out, "--records", str(folder))
    assert code == 1, err
    assert err.splitlines() == [
        f"beatlab: error: {folder / 'broken.edf'}: unreadable EDF/BDF file: a read error occurred"
    ]
    assert "beats of 3 recordings, from 2 at their annotations and 1 by the QRS detector" in printed
    assert "left out 1 recording that could not be read" in printed
    table = pd.read_csv(out, dtype={"record": str})
    assert list(table["record"].unique()) == ["100", "208", "night.edf"]

    def printed_row(name: str) -> list[str]:  # the table of recordings, as printed
        after = printed.split(f"│ {name} │", 1)[1]
        return [cell.strip() for cell in after.split("│")[:7]]

    for name, part in table.groupby("record"):
        counts = part["predicted"].value_counts()
        expected = [f"{len(part):,}", *(f"{counts.get(c, 0):,}" for c in CLASSES)]
        assert printed_row(name)[:6] == expected, name  # beats, predicted beats per class
    assert printed_row("night.edf")[6] == "n/a" and float(printed_row("100")[6]) > 0  # accuracy
    for name in ("100", "208", "night.edf"):
        one = tmp_path / f"{name}.csv"
        code, _, err = predict(capsys, tiny_run, one, "--record", str(folder / name))
        assert code == 0, err
        alone = pd.read_csv(one)
        part = table[table["record"] == name].drop(columns="record").reset_index(drop=True)
        pd.testing.assert_frame_equal(part[alone.columns], alone)
    side = tmp_path / "side.csv"  # two processes side by side: the same table, the same error
    code, _, side_err = predict(capsys, tiny_run, side, "--records", str(folder), "--jobs", "2")
    assert code == 1 and side_err.startswith(f"beatlab: error: {folder / 'broken.edf'}: unread")
    pd.testing.assert_frame_equal(pd.read_csv(side, dtype={"record": str}), table)
    (folder / "broken.edf").unlink()
    code, _, err = predict(capsys, tiny_run, out, "--records", str(folder))
    assert code == 0 and not err, err


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states in /proc")
def test_ctrl_c_ends_the_jobs_of_a_folder_at_once(
    tiny_run: Path, real_mitdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl+C once the first of six whole records is classified by two `--jobs` processes:
    KeyboardInterrupt comes at once and no worker goes on reading the others (they would each
    finish a recording first, and the command would wait for them on its way out)."""
    for name in ("100", "101", "103", "105", "106", "108"):
        for ext in ("hea", "dat"):
            (tmp_path / f"{name}.{ext}").symlink_to(real_mitdb / f"{name}.{ext}")
    run = load_run(tiny_run)
    pressed: list[float] = []
    workers: list[int] = []

    def press(bars: RecordingBars) -> None:
        if not pressed:
            workers.extend(child.pid for child in multiprocessing.active_children() if child.pid)
            pressed.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(RecordingBars, "advance", press)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            predict_records(run, folder_records(tmp_path), jobs=2, progress=False)
        ended = time.perf_counter()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert pressed and ended - pressed[0] < 3.0
    for _ in range(20):  # a killed process takes a moment to go
        if not any(running(pid) for pid in workers):
            break
        time.sleep(0.1)
    assert len(workers) == 2 and not any(running(pid) for pid in workers)


def test_jobs_stop_at_the_error_one_recording_at_a_time_would_give() -> None:
    """Without keep_going, `--jobs` raises the first failed recording in order, once those before
    it are done, not whichever process failed first: the same line as one job."""
    ok, slow, first, later = (Future[object]() for _ in range(4))
    ok.set_result(None)
    later.set_exception(BeatlabError("later failed"))
    assert _first_failure([ok, slow, later]) is None  # slow may fail too: wait
    first.set_exception(BeatlabError("first failed"))
    assert str(_first_failure([ok, first, later])) == "first failed"
    slow.set_result(None)
    assert str(_first_failure([ok, slow, later])) == "later failed"
    crash = Future[object]()
    crash.set_exception(RuntimeError("not a user error"))
    assert _first_failure([crash, later]) is None  # the loop raises it as it is


def test_a_jobs_process_that_dies_is_one_line_and_ends_the_others(
    capsys: pytest.CaptureFixture[str],
    tiny_run: Path,
    real_mitdb: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker killed from outside (what the OOM killer does to a Holter too many) once the
    first of six records is classified: one line saying so and what to try, exit 2, no table
    written and no worker left reading."""
    folder = tmp_path / "records"
    folder.mkdir()
    for name in ("100", "101", "103", "105", "106", "108"):
        for ext in ("hea", "dat"):
            (folder / f"{name}.{ext}").symlink_to(real_mitdb / f"{name}.{ext}")
    workers: list[int] = []

    def kill_one(bars: RecordingBars) -> None:
        if not workers:
            workers.extend(child.pid for child in multiprocessing.active_children() if child.pid)
            os.kill(workers[0], signal.SIGKILL)

    monkeypatch.setattr(RecordingBars, "advance", kill_one)
    out = tmp_path / "beats.parquet"
    code, printed, err = predict(capsys, tiny_run, out, "--records", str(folder), "--jobs", "2")
    assert code == 2 and not out.exists(), printed + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "a --jobs process ended abruptly" in lines[0], err
    assert "try fewer --jobs" in lines[0] and "Traceback" not in err
    for _ in range(20):  # a killed process takes a moment to go
        if not any(running(pid) for pid in workers):
            break
        time.sleep(0.1)
    assert len(workers) == 2 and not any(running(pid) for pid in workers)


HALF_SENT = """
import os, struct, sys, time
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from beatlab.deploy.predict import _stop


def half_sent(ready: str) -> None:
    \"\"\"Write the start of a result into the executor's results pipe, then wait to be killed:
    a worker killed while it sends a long recording's table.\"\"\"
    frame = sys._getframe()
    while "result_queue" not in frame.f_locals:
        frame = frame.f_back
    writer = frame.f_locals["result_queue"]._writer
    os.write(writer.fileno(), struct.pack("!i", 1 << 20) + b"the first bytes of a table")
    Path(ready).touch()
    time.sleep(120)


if __name__ == "__main__":
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    pool.submit(half_sent, sys.argv[1])
    while not Path(sys.argv[1]).exists():
        time.sleep(0.05)
    time.sleep(0.5)  # the executor's thread is reading the message by now
    _stop(pool)
    print("stopped", flush=True)
"""


def test_a_worker_killed_while_it_sends_its_result_does_not_hold_the_exit(tmp_path: Path) -> None:
    """The executor's thread reads a message the killed worker never finished: without `_stop`
    closing the pipe's last write end, it waits for the rest for ever and the interpreter's
    exit waits for it (a Ctrl+C that never returns; seen once in CI)."""
    script = tmp_path / "half_sent.py"
    script.write_text(HALF_SENT)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "ready")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip() == "stopped", done.stderr


def running(pid: int | None) -> bool:
    """Whether a process runs, by the OS (/proc): multiprocessing's own view races with the
    executor's thread that reaps the workers."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_folder_lists_its_records_in_subfolders_as_physionet_does(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    """PhysioNet's RECORDS file may name records in subfolders (PTB-XL's records100/00000/...):
    each is read there and named by that path."""
    (tmp_path / "records100" / "00000").mkdir(parents=True)
    rec = wfdb.rdrecord(str(real_mitdb / "100"), sampto=10 * FS, physical=False)
    write_digital(rec, tmp_path / "records100" / "00000", "00001_lr")
    (tmp_path / "RECORDS").write_text("records100/00000/00001_lr\n")
    out = tmp_path / "all.parquet"
    code, printed, err = predict(capsys, tiny_run, out, "--records", str(tmp_path))
    assert code == 0 and "beats of 1 recording, from 1 by the QRS detector" in printed, err
    table = pd.read_parquet(out)
    assert set(table["record"]) == {"records100/00000/00001_lr"} and len(table) >= 10


def test_a_folder_with_no_readable_recording_is_an_error(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "all.csv"
    code, _, err = predict(capsys, tiny_run, out, "--records", str(tmp_path))
    assert (
        code == 2
        and err == f"beatlab: error: {tmp_path}: no WFDB records (.hea) and no EDF/BDF files"
    )
    (tmp_path / "a.edf").write_bytes(b"0       ")
    code, _, err = predict(capsys, tiny_run, out, "--records", str(tmp_path))
    assert code == 2 and "a.edf: unreadable EDF/BDF file" in err
    code, _, err = predict(capsys, tiny_run, out, "--records", str(tmp_path), "--csv", "x.csv")
    assert code == 2 and "give exactly one of --record, --records, --csv or --parquet" in err
    code, _, err = predict(capsys, tiny_run, out, "--records", str(tmp_path), "--jobs", "0")
    assert code == 2 and "--jobs takes a number of processes, 1 or more, not 0" in err
    code, _, err = predict(capsys, tiny_run, out, "--record", str(tmp_path / "a"), "-j", "2")
    assert code == 2 and "--jobs applies to --records only" in err
    assert not out.exists()


def test_twelve_lead_record_is_read_from_lead_ii(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    """MIT-BIH's MLII is lead II of a 12-lead ECG: a run trained on it reads II, not V5."""
    mlii, v1 = wfdb.rdrecord(str(real_mitdb / "208"), sampto=20 * FS).p_signal.T
    leads = np.stack([0.5 * mlii, mlii, v1, -v1], axis=1)
    names = ["I", "II", "V1", "V5"]
    wfdb.wrsamp(
        "i01", FS, ["mV"] * 4, names, p_signal=leads, fmt=["16"] * 4, write_dir=str(tmp_path)
    )
    code, printed, err = predict(
        capsys, tiny_run, tmp_path / "i01.csv", "--record", str(tmp_path / "i01")
    )
    assert code == 0, err
    assert "lead II," in printed
    # PTB writes its leads in lower case: the same leads, found whatever their case
    wfdb.wrsamp(
        "s0010", FS, ["mV"] * 4, [n.lower() for n in names], p_signal=leads, fmt=["16"] * 4,
        write_dir=str(tmp_path),
    )  # fmt: skip
    code, again, err = predict(
        capsys, tiny_run, tmp_path / "s0010.csv", "--record", str(tmp_path / "s0010")
    )
    assert code == 0, err
    assert "lead ii," in again
    assert (tmp_path / "s0010.csv").read_text() == (tmp_path / "i01.csv").read_text()


def write_digital(
    rec: wfdb.Record,
    out: Path,
    name: str,
    digital: np.ndarray | None = None,
    units: str | None = None,
    per_mv: float = 1.0,
) -> Path:
    """`rec`'s samples (or `digital` in their place) as record `name` in `out`, format 16, with
    its gain and baseline; `units` and `per_mv` of them to a millivolt relabel the same samples
    (3 in mV is a lead of three times the amplitude)."""
    wfdb.wrsamp(
        name, rec.fs, [units] * rec.n_sig if units else rec.units, rec.sig_name,
        d_signal=rec.d_signal if digital is None else digital, fmt=["16"] * rec.n_sig,
        adc_gain=[g / per_mv for g in rec.adc_gain], baseline=rec.baseline, write_dir=str(out),
    )  # fmt: skip
    return out / name


def write_with_gap(real_mitdb: Path, out: Path, gap: slice | None) -> Path:
    """The first minute of record 208, with MLII invalid (WFDB's missing-value marker) over
    `gap`, and its annotations."""
    source = str(real_mitdb / "208")
    rec = wfdb.rdrecord(source, sampto=60 * FS, physical=False)
    digital = rec.d_signal.astype(np.int16)
    if gap is not None:
        digital[gap, 0] = -32768  # format 16's invalid sample
    name = "gap" if gap is not None else "clean"
    write_digital(rec, out, name, digital)
    ann = wfdb.rdann(source, "atr", sampto=60 * FS)
    wfdb.wrann(name, "atr", ann.sample, ann.symbol, write_dir=str(out))
    return out / name


def test_beats_over_invalid_samples_are_left_out_and_the_rest_kept(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    start, end = 20 * FS, 25 * FS
    clean = write_with_gap(real_mitdb, tmp_path, None)
    gap = write_with_gap(real_mitdb, tmp_path, slice(start, end))
    peaks, _ = read_annotations(clean)
    over = (peaks + 187 / 125 * FS > start) & (peaks < end)  # a kachuee beat: R + 1.5 s
    assert 4 < over.sum() < 20
    code, printed, err = predict(capsys, tiny_run, tmp_path / "clean.csv", "--record", str(clean))
    assert code == 0, err
    assert "left out" not in printed
    code, printed, err = predict(capsys, tiny_run, tmp_path / "gap.csv", "--record", str(gap))
    assert code == 0, err
    assert f"left out {over.sum()} beats whose window holds invalid samples" in printed
    table, whole = pd.read_csv(tmp_path / "gap.csv"), pd.read_csv(tmp_path / "clean.csv")
    assert table["sample"].tolist() == peaks[~over].tolist()
    # beats of other 10 s windows (kachuee's min-max) are untouched by the bridged gap
    far = whole["sample"].isin(table["sample"]) & ~whole["sample"].between(19 * FS, 31 * FS)
    probabilities = [f"p_{c}" for c in CLASSES]
    np.testing.assert_allclose(
        table.set_index("sample").loc[whole["sample"][far], probabilities].to_numpy(),
        whole[far][probabilities].to_numpy(),
        atol=1e-6,
    )
    # the detector finds no beat in the gap either, and every valid annotated beat is counted
    code, printed, err = predict(
        capsys, tiny_run, tmp_path / "d.csv", "--record", str(gap), "--detector"
    )
    assert code == 0, err
    found = pd.read_csv(tmp_path / "d.csv")["sample"]
    assert not found.between(start - 187 / 125 * FS, end).any()
    assert f"of {(~over).sum()} annotated beats found" in printed


def test_beats_of_an_ensemble_over_three_leads_are_classified_by_every_lead_valid_there(
    real_mitdb: Path,
) -> None:
    """Three one-lead members; in turn each lead is off for a while, then all three: the beats
    there are classified by the members of the two leads still valid, each reading its lead as
    alone, and only those over all three gaps are left out."""
    rec = wfdb.rdrecord(str(real_mitdb / "100"), sampto=40 * FS)
    ann = wfdb.rdann(str(real_mitdb / "100"), "atr", sampto=40 * FS)
    peaks = ann.sample[(ann.sample > FS) & (ann.sample < 39 * FS)]
    signals = [rec.p_signal[:, 0], rec.p_signal[:, 1], 0.8 * rec.p_signal[:, 0]]
    gaps = [np.zeros(len(signals[0]), dtype=bool) for _ in signals]
    for lead, (start, end) in enumerate([(20, 24), (4, 8), (12, 16)]):
        gaps[lead][start * FS : end * FS] = True
    for lead in range(3):
        gaps[lead][32 * FS : 36 * FS] = True
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        members.append(create_model("cnn1d_resnet", use_rr=True, filters=8, num_blocks=1).eval())
    model = MeanEnsemble(members, channels=[0, 1, 2])
    leads = list(zip(signals, ["MLII", "V5", "X"], gaps, strict=True))
    run = cast(Run, SimpleNamespace(classes=CLASSES))
    proba, scored, said = classify_leads(run, model, None, leads, FS, peaks, KACHUEE, None)

    over = [over_invalid(peaks, g, KACHUEE, FS) for g in gaps]
    assert not scored[over[0] & over[1] & over[2]].any()
    assert scored[~(over[0] & over[1] & over[2])].all()
    for valid in ([0, 1], [0, 2], [1, 2]):
        (off,) = set(range(3)) - set(valid)
        here = over[off] & ~over[valid[0]] & ~over[valid[1]]
        assert here.sum() >= 3
        both = gaps[valid[0]] | gaps[valid[1]]
        each = []
        for c in valid:
            x, rr, clear = segment_clear([signals[c]], FS, peaks, KACHUEE, None, both)
            each.append(classify(members[c], x[here[clear]], rr[here[clear]]))
        np.testing.assert_allclose(proba[here], (each[0] + each[1]) / 2, atol=1e-6)
        names = ", ".join(leads[c][1] for c in valid)
        assert f"{here.sum()} beats whose other leads' windows hold invalid samples by the " \
            f"ensemble's members that read {names} (2 of 3)" in said  # fmt: skip
    assert said.index("MLII, V5") < said.index("MLII, X") < said.index("V5, X")


def test_lead_without_a_valid_sample_is_one_line(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    record = write_with_gap(real_mitdb, tmp_path, slice(None))
    out = tmp_path / "off.csv"
    code, _, err = predict(capsys, tiny_run, out, "--record", str(record))
    assert code == 2 and err == f"beatlab: error: {record}.dat: lead MLII holds no valid samples"
    assert not out.exists()
    record = write_with_gap(real_mitdb, tmp_path, slice(FS, None))  # valid for its first second
    code, _, err = predict(capsys, tiny_run, out, "--record", str(record))
    assert code == 2 and not out.exists()
    assert (
        err == f"beatlab: error: {record}: every beat's window holds invalid samples (a lead off?)"
    )


@pytest.mark.parametrize("flag", ["--detector", "--no-annotations"])
def test_detector_against_annotations_gives_the_reference(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, tiny_mitdb: Path, tmp_path: Path, flag: str
) -> None:
    out, record = tmp_path / "100.csv", str(tiny_mitdb / "100")
    code, printed, err = predict(capsys, tiny_run, out, "--record", record, flag)
    assert code == 0, err
    assert "detector vs annotations: 25 of 25 annotated beats found" in printed
    table = pd.read_csv(out)
    annotated = wfdb.rdann(record, "atr")
    assert np.abs(table["sample"] - annotated.sample).max() <= 2  # where the annotators put them
    assert table["reference"].tolist() == annotated.symbol  # generated records use N and V only


def write_207_in_vf(real_mitdb: Path, out: Path, marks: bool) -> Path:
    """Seconds 10-65 of record 207, holding two episodes of ventricular flutter (its waves are
    annotated `!`, no beat), with its annotations; without the episodes' `[` and `]` if not
    `marks`."""
    source, start, end = str(real_mitdb / "207"), 10 * FS, 65 * FS
    write_digital(wfdb.rdrecord(source, sampfrom=start, sampto=end, physical=False), out, "207")
    ann = wfdb.rdann(source, "atr", sampfrom=start, sampto=end - 1)
    keep = np.array([marks or s not in "[]" for s in ann.symbol])
    symbols = np.array(ann.symbol)[keep].tolist()
    wfdb.wrann("207", "atr", ann.sample[keep] - start, symbols, write_dir=str(out))
    return out / "207"


def test_detections_in_annotated_ventricular_flutter_are_scored_apart(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    """EC57 scores VF apart: the detector's hits on flutter waves (record 207) are neither beats
    found nor false detections, in `predict` and `evaluate --records` alike."""
    tables, said, found = {}, {}, {}
    for marks in (True, False):
        folder = tmp_path / f"marks_{marks}"
        folder.mkdir()
        record = write_207_in_vf(real_mitdb, folder, marks)
        out = tmp_path / f"{marks}.csv"
        code, said[marks], err = predict(
            capsys, tiny_run, out, "--record", str(record), "--detector"
        )
        assert code == 0, err
        tables[marks] = pd.read_csv(out)
        code, _, err = cli(
            capsys, "evaluate", str(tiny_run), "--records", str(folder), "--detector"
        )
        assert code == 0, err
        stored = json.loads((tiny_run / "metrics.json").read_text())
        found[marks] = stored[f"records:{folder.resolve()}"]["detection"]
    episodes = read_annotation_marks(
        tmp_path / "marks_True" / "207", length=55 * FS, annotator="atr"
    )[3]
    assert episodes.tolist() == [
        [14665 - 10 * FS, 18350 - 10 * FS],
        [19715 - 10 * FS, 21731 - 10 * FS],
    ]
    table = tables[True]
    in_vf = within(table["sample"].to_numpy(), episodes)
    assert in_vf.sum() > 20  # the detector fires on flutter waves
    assert table["sample"].tolist() == tables[False]["sample"].tolist()  # the same detections
    assert table["reference"][in_vf].isna().all()
    with_marks, without = found[True], found[False]
    assert with_marks["in_vf"] == in_vf.sum() and without["in_vf"] == 0
    assert with_marks["detected"] == len(table) - in_vf.sum() and without["detected"] == len(table)
    assert with_marks["annotated"] == without["annotated"]  # no beat is annotated in VF
    false_with, false_without = (sum(f["false_called"].values()) for f in (with_marks, without))
    assert false_without - false_with == in_vf.sum()
    assert with_marks["+P"] > without["+P"]
    assert f"{in_vf.sum()} detections inside annotated ventricular flutter" in said[True]
    assert "ventricular flutter" not in said[False]


def write_scaled(real_mitdb: Path, out: Path, record: str, units: str, per_mv: float) -> Path:
    """Minute 2 of `record` with the same samples, its gain saying they are in `units` (`per_mv`
    of them to a millivolt: 3 in mV is a lead of three times the amplitude), without annotations:
    the detector finds the beats."""
    rec = wfdb.rdrecord(str(real_mitdb / record), sampfrom=60 * FS, sampto=120 * FS, physical=False)
    return write_digital(rec, out, record, units=units, per_mv=per_mv)


def test_the_detector_reads_a_record_in_microvolts_as_in_millivolts(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    """GQRS's thresholds are in microvolts: the same samples stored in uV (as EDF exports often
    are) or V give the same beats and classes; units it cannot convert are read as mV, and said."""
    tables, said = {}, {}
    for units, per_mv in (("mV", 1.0), ("uV", 1000.0), ("V", 0.001), ("NU", 1.0)):
        folder = tmp_path / units
        folder.mkdir()
        out = tmp_path / f"{units}.csv"
        record = write_scaled(real_mitdb, folder, "201", units, per_mv)
        code, said[units], err = predict(capsys, tiny_run, out, "--record", str(record))
        assert code == 0, err
        tables[units] = pd.read_csv(out)
    assert 60 <= len(tables["mV"]) <= 100  # a minute of beats
    for units in ("uV", "V"):
        pd.testing.assert_frame_equal(tables[units], tables["mV"])
        assert "units" not in said[units]
    assert "units 'NU' are not a voltage the QRS detector knows" in said["NU"]
    pd.testing.assert_frame_equal(tables["NU"], tables["mV"])


def test_the_detector_finds_the_same_beats_on_a_lead_of_three_times_the_amplitude(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    """GQRS as it is takes record 119's T waves for beats when its lead is three times as large
    (a high-gain chest lead); the detector path brings the lead into its range first."""
    signal = wfdb.rdrecord(
        str(real_mitdb / "119"), channels=[0], sampfrom=60 * FS, sampto=120 * FS
    ).p_signal[:, 0]
    assert len(detect_beats(3 * signal, FS)) > len(detect_beats(signal, FS)) + 20
    tables = {}
    for gain in (1.0, 3.0):
        folder = tmp_path / f"x{gain:g}"
        folder.mkdir()
        out = tmp_path / f"x{gain:g}.csv"
        record = write_scaled(real_mitdb, folder, "119", "mV", gain)
        code, _, err = predict(capsys, tiny_run, out, "--record", str(record))
        assert code == 0, err
        tables[gain] = pd.read_csv(out)
    assert 55 <= len(tables[1.0]) <= 75
    pd.testing.assert_frame_equal(tables[3.0], tables[1.0])


def test_a_low_passed_lead_for_gqrs_keeps_the_beats_and_their_peaks(real_mitdb: Path) -> None:
    """`detect_beats(lowpass_hz=…)`: GQRS reads the lead low-passed (its power above the cut-off
    gone), the peaks are still placed on the lead itself, and on a clean minute of record 100 it
    finds the same beats; off (None) or above 0.45 of the rate, the lead is read as it is."""
    signal = wfdb.rdrecord(
        str(real_mitdb / "100"), channels=[0], sampfrom=60 * FS, sampto=120 * FS
    ).p_signal[:, 0]
    assert lowpassed(signal, FS, None) is signal and lowpassed(signal, FS, 170.0) is signal
    white = np.random.default_rng(0).standard_normal(len(signal))
    spectrum = np.abs(np.fft.rfft(lowpassed(white, FS, 25.0))) ** 2
    freq = np.fft.rfftfreq(len(white), 1 / FS)
    assert spectrum[freq > 50].sum() < 0.01 * spectrum.sum()
    np.testing.assert_array_equal(
        detect_beats(signal, FS, lowpass_hz=25.0), detect_beats(signal, FS, lowpass_hz=None)
    )


def test_the_detector_keeps_a_short_recordings_first_and_last_beats(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    """GQRS as it is misses the first and last beats of seconds 300-310 of record 100 (its
    thresholds settle, and it waits for what follows a beat); padded, it finds all 13."""
    start, end = 300 * FS, 310 * FS
    rec = wfdb.rdrecord(str(real_mitdb / "100"), sampfrom=start, sampto=end, physical=False)
    write_digital(rec, tmp_path, "100")
    ann = wfdb.rdann(str(real_mitdb / "100"), "atr", sampfrom=start, sampto=end - 1)
    wfdb.wrann("100", "atr", ann.sample - start, ann.symbol, write_dir=str(tmp_path))
    beats = read_annotations(tmp_path / "100")[0]
    as_is = detect_beats(wfdb.rdrecord(str(tmp_path / "100"), channels=[0]).p_signal[:, 0], FS, 0)
    assert len(beats) == 13 and len(as_is) == 11
    assert abs(as_is[0] - beats[0]) > 54 and abs(as_is[-1] - beats[-1]) > 54
    out = tmp_path / "100.csv"
    code, printed, err = predict(
        capsys, tiny_run, out, "--record", str(tmp_path / "100"), "--detector"
    )
    assert code == 0, err
    assert "13 of 13 annotated beats found" in printed and len(pd.read_csv(out)) == 13


def test_the_detector_tells_how_far_it_has_read_and_finds_what_gqrs_finds(
    real_mitdb: Path,
) -> None:
    """`gqrs` writes out gqrs_detect's settings to watch it read; it must find the same beats,
    with or without a watcher, and tell a share that only grows, up to 1. What it holds grows
    by a copy or two of the lead, not by wfdb's two debug lists of a Python int a sample (12
    times the lead, 2.5 GB of a 24-hour Holter lead)."""
    lead = wfdb.rdrecord(str(real_mitdb / "201"), channels=[0], sampto=8 * 60 * FS).p_signal[:, 0]
    short = lead[: 2 * 60 * FS]
    shares: list[float] = []
    found = gqrs(short, FS, shares.append)
    np.testing.assert_array_equal(found, processing.gqrs_detect(sig=short, fs=FS))
    assert shares and shares[-1] == 1.0 and all(np.diff(shares) >= 0)
    peaks = []
    for part in (short, lead):
        tracemalloc.start()
        try:
            gqrs(part, FS)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] - peaks[0] < 3 * (lead.nbytes - short.nbytes), np.diff(peaks) / lead.nbytes


def test_the_detector_keeps_no_copy_of_the_lead_once_done(real_mitdb: Path) -> None:
    """wfdb's detection loop leaves a reference cycle to the detector behind. Had the detector
    kept its digitised lead, that would outlive `gqrs` until the garbage collector's next full
    pass: a 24-hour Holter lead's 250 MB, while its beats are cut and classified."""
    lead = wfdb.rdrecord(str(real_mitdb / "100"), channels=[0], sampto=10 * 60 * FS).p_signal[:, 0]
    half = lead[: len(lead) // 2]
    kept = []
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        for part in (half, lead):
            before = tracemalloc.get_traced_memory()[0]
            assert len(gqrs(part, FS)) > 300
            kept.append(tracemalloc.get_traced_memory()[0] - before)  # buffers of fixed size
    finally:
        tracemalloc.stop()
        gc.enable()
    assert kept[1] - kept[0] < (lead.nbytes - half.nbytes) / 8, np.diff(kept) / half.nbytes


def test_a_lead_in_millivolts_within_the_swing_goes_to_the_detector_as_it_is() -> None:
    """`detector_signal` copies a lead only to change it (a 24-hour Holter lead is 250 MB), and
    never changes the caller's array."""
    lead = np.sin(np.arange(10 * FS) / 20.0)  # 2 mV peak to peak: within DETECTOR_SWING_MV
    as_is, said = detector_signal(lead, FS, "mV")
    assert as_is is lead and said == ""
    tall = 3 * lead
    scaled, said = detector_signal(tall, FS, "mV")
    assert said == "" and np.ptp(scaled) == pytest.approx(DETECTOR_SWING_MV[1], rel=1e-3)
    np.testing.assert_array_equal(tall, 3 * lead)
    in_uv, said = detector_signal(1000 * lead, FS, "uV")
    np.testing.assert_allclose(in_uv, lead)
    assert in_uv is not lead and said == ""


@pytest.mark.parametrize("fs", [100, 128, 257, 360, 500, 1000])
def test_gqrs_with_its_filter_by_numpy_finds_what_wfdbs_finds(real_mitdb: Path, fs: int) -> None:
    """`gqrs` computes GQRS's filter a block at a time and keeps wfdb's detection loop. Its
    beats must be wfdb's, at every rate (the filter's width, 1 sample at 100 Hz, 17 at 1000),
    for recordings too short for a beat, a few seconds long, or past a filter block (65,536
    samples), and for a flat lead and noise, whose ends wfdb reads in its own way."""
    lead = wfdb.rdrecord(str(real_mitdb / "201"), channels=[0], sampto=300 * FS).p_signal[:, 0]
    lead = resample_poly(lead, fs, FS) if fs != FS else lead
    noise = np.random.default_rng(fs).normal(size=20 * fs)
    cases = [lead[:n] for n in (1, 2, fs // 2, 3 * fs, 9 * fs, 70_000)] + [
        np.zeros(10 * fs),
        noise,
        -lead[: 80 * fs],
    ]
    for case in cases:
        np.testing.assert_array_equal(gqrs(case, fs), processing.gqrs_detect(sig=case, fs=fs))


def test_gqrs_takes_wfdbs_own_filter_steps_should_wfdb_filter_while_learning(
    real_mitdb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wfdb's GQRS learns for a minute before it detects, but its port never filters then (a
    sample is not yet valid), which `gqrs`'s filter by numpy counts on. A wfdb that did would
    leave its buffers and running sum set for the detecting pass: the beats stay wfdb's."""
    lead = wfdb.rdrecord(str(real_mitdb / "201"), channels=[0], sampto=90 * FS).p_signal[:, 0]
    steps = processing.qrs.GQRS.gqrs

    def learning_filters(self: processing.qrs.GQRS, start: int, end: int) -> None:
        if self.state == "LEARNING":
            self.sample_valid = True
        steps(self, start, end)

    monkeypatch.setattr(processing.qrs.GQRS, "gqrs", learning_filters)
    learnt = processing.gqrs_detect(sig=lead, fs=FS)
    monkeypatch.undo()
    assert not np.array_equal(learnt, processing.gqrs_detect(sig=lead, fs=FS))
    monkeypatch.setattr(processing.qrs.GQRS, "gqrs", learning_filters)
    np.testing.assert_array_equal(gqrs(lead, FS), learnt)


def test_an_error_in_the_detectors_thread_reaches_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("inside GQRS")

    monkeypatch.setattr(processing.qrs.GQRS, "detect", fail)
    with pytest.raises(RuntimeError, match="inside GQRS"):
        gqrs(np.sin(np.arange(10 * FS) / 50), FS, lambda share: None)


def test_vf_episodes_open_and_close_at_the_record_ends(tmp_path: Path) -> None:
    wfdb.wrann(
        "a", "atr", np.array([10, 50, 60, 90]), ["]", "N", "[", "N"], write_dir=str(tmp_path)
    )
    assert read_annotation_marks(tmp_path / "a", length=100, annotator="atr")[3].tolist() == [
        [0, 10],
        [60, 99],
    ]
    wfdb.wrann("b", "atr", np.array([10, 20, 30]), ["N", "]", "N"], write_dir=str(tmp_path))
    assert read_annotation_marks(tmp_path / "b", length=100, annotator="atr")[3].tolist() == [
        [0, 20]
    ]
    assert within(np.array([0, 5, 20, 21]), np.array([[5, 20]])).tolist() == [
        False,
        True,
        True,
        False,
    ]
    assert not within(np.array([3]), np.zeros((0, 2), np.int64)).any()


def test_match_reference_pairs_each_annotation_once() -> None:
    ref = np.array([100, 400, 700])
    labels = np.array([0, 2, 0])
    peaks = np.array([5, 98, 103, 395, 1000])  # 98 and 103 both near 100; 700 missed
    assert match_reference(peaks, ref, labels, window=54).tolist() == [-1, 0, -1, 2, -1]
    assert match_reference(peaks, ref[:0], labels[:0], window=54).tolist() == [-1] * 5


# --- predict: beat files -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_beat_file_rows_are_classified(
    capsys: pytest.CaptureFixture[str],
    tiny_run: Path,
    real_beats: Beats,
    tmp_path: Path,
    suffix: str,
) -> None:
    beats = sample_beats(real_beats, 300)
    source, out = tmp_path / f"beats.{suffix}", tmp_path / "out.csv"
    write_beats(source, beats.x, beats.y)
    code, printed, err = predict(capsys, tiny_run, out, f"--{suffix}", str(source))
    assert code == 0, err
    assert "300 beats (one per row)" in printed and "accuracy" in printed
    table = pd.read_csv(out)
    assert table["row"].tolist() == list(range(300))
    assert table["reference"].tolist() == [CLASSES[y] for y in beats.y]
    expected = classify(load_run(tiny_run).model, beats.x, np.zeros((300, 3), np.float32))
    assert np.allclose(table[[f"p_{c}" for c in CLASSES]].to_numpy(), expected, atol=1e-6)


# --- predict: bad input ------------------------------------------------------------------------


def test_flat_record_has_no_beats(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, tmp_path: Path
) -> None:
    flat = np.zeros((10 * FS, 1))
    wfdb.wrsamp("flat", FS, ["mV"], ["MLII"], p_signal=flat, fmt=["212"], write_dir=str(tmp_path))
    record, out = tmp_path / "flat", tmp_path / "flat.csv"
    code, _, err = predict(capsys, tiny_run, out, "--record", str(record))
    assert code == 2
    assert err == f"beatlab: error: {record}: no beats detected (flat or empty signal?)"
    assert not out.exists()


def test_rhythm_only_annotations_point_to_the_detector(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_mitdb: Path, tmp_path: Path
) -> None:
    """Like the MIT-BIH AF Database, whose .atr holds rhythm changes and its beats are in .qrs."""
    signal = wfdb.rdrecord(str(real_mitdb / "208"), sampto=30 * FS).p_signal
    wfdb.wrsamp("af", FS, ["mV"] * 2, ["MLII", "V1"], p_signal=signal, fmt=["16"] * 2,
                write_dir=str(tmp_path))  # fmt: skip
    wfdb.wrann("af", "atr", np.array([0, 5000]), ["+", "+"], aux_note=["(AFIB", "(N"],
               write_dir=str(tmp_path))  # fmt: skip
    record, out = tmp_path / "af", tmp_path / "af.csv"
    code, _, err = predict(capsys, tiny_run, out, "--record", str(record))
    assert code == 2 and not out.exists()
    assert err == (
        f"beatlab: error: {record}.atr: the annotations mark no beats (rhythm marks only?): "
        "name the file of its beats with --annotator (the MIT-BIH AF Database's: qrs), or find "
        "them with --detector"
    )
    code, printed, err = predict(capsys, tiny_run, out, "--record", str(record), "--detector")
    assert code == 0, err
    assert "from the QRS detector" in printed and len(pd.read_csv(out)) > 30
    beats = wfdb.rdann(str(real_mitdb / "208"), "atr", sampto=30 * FS)
    wfdb.wrann("af", "qrs", beats.sample, beats.symbol, write_dir=str(tmp_path))
    code, printed, err = predict(
        capsys, tiny_run, out, "--record", str(record), "--annotator", "qrs"
    )
    assert code == 0, err
    assert "from the reference annotations (.qrs), lead MLII" in " ".join(printed.split())
    beat = np.isin(beats.symbol, list(AAMI))  # not rhythm or noise marks
    assert pd.read_csv(out)["sample"].tolist() == beats.sample[beat].tolist()
    code, printed, err = cli(
        capsys, "view", "--run", str(tiny_run), "--record", str(record), "--annotator", "qrs",
        "--out", str(tmp_path / "af.html"),
    )  # fmt: skip
    assert code == 0 and f"{beat.sum()} beats" in printed, err
    for annotator, problem in [
        ("ann", f"{record}.ann: no .ann annotation file beside the record"),
        ("../x", "--annotator takes the annotation file's extension (atr, qrs), not '../x'"),
    ]:
        code, _, err = predict(
            capsys, tiny_run, out, "--record", str(record), "--annotator", annotator
        )
        assert code == 2 and err == f"beatlab: error: {problem}", err
    code, _, err = predict(capsys, tiny_run, out, "--csv", str(out), "--annotator", "qrs")
    assert code == 2 and err == "beatlab: error: --annotator applies to --record and --records only"


def test_run_without_checkpoint(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, tiny_mitdb: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    (broken / CHECKPOINT).unlink()
    code, _, err = predict(capsys, broken, tmp_path / "o.csv", "--record", str(tiny_mitdb / "100"))
    assert code == 2
    assert err == f"beatlab: error: {broken}: run has no checkpoint ({CHECKPOINT})"


def test_row_of_the_wrong_length(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, tmp_path: Path
) -> None:
    source = tmp_path / "beats.csv"
    good = ",".join(["0.5"] * 187 + ["0.0"])
    source.write_text(f"{good}\n{','.join(['0.5'] * 150 + ['0.0'])}\n")
    code, _, err = predict(capsys, tiny_run, tmp_path / "o.csv", "--csv", str(source))
    assert code == 2
    problem = "expected 188 columns (187 samples + label), found a row with 151"
    assert err == f"beatlab: error: {source}: {problem}"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ([], "give exactly one of --record, --records, --csv or --parquet"),
        (
            ["--csv", "a.csv", "--parquet", "b.parquet"],
            "give exactly one of --record, --records, --csv or --parquet",
        ),
        (["--csv", "a.parquet"], "a.parquet: --csv needs a .csv file"),
        (["--csv", "a.csv", "--detector"], "--detector applies to --record and --records only"),
    ],
)
def test_bad_arguments(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, args: list[str], problem: str
) -> None:
    code, _, err = predict(capsys, tiny_run, "o.csv", *args)
    assert code == 2
    assert err == f"beatlab: error: {problem}"


def test_bad_output_suffix(capsys: pytest.CaptureFixture[str], tiny_run: Path) -> None:
    code, _, err = predict(capsys, tiny_run, "o.txt", "--csv", "a.csv")
    assert code == 2
    assert err == "beatlab: error: o.txt: output must end in .csv, .parquet or .parq"


def test_rr_model_refuses_beat_files(tmp_path: Path) -> None:
    model = create_model("cnn1d_resnet", use_rr=True).eval()
    run = Run(tmp_path, TrainConfig(hparams={"use_rr": True}), CLASSES, model, {})
    with pytest.raises(BeatlabError, match="uses R-R intervals"):
        predict_file(run, tmp_path / "beats.csv")


# --- export ------------------------------------------------------------------------------------


def test_onnx_matches_pytorch_on_real_beats(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_beats: Beats
) -> None:
    code, printed, err = cli(capsys, "export", "--run", str(tiny_run), "--format", "onnx")
    assert code == 0, err
    path = tiny_run / "model.onnx"
    assert f"wrote {path}" in printed
    beats = sample_beats(real_beats, 2000, seed=1)
    model = load_run(tiny_run).model
    with torch.inference_mode():
        expected = model(torch.from_numpy(beats.x)).numpy()
    session = onnx_session(path, threads=2)
    assert np.abs(onnx_logits(session, beats.x, beats.rr) - expected).max() < 1e-4
    one = onnx_logits(session, beats.x[:1], beats.rr[:1])  # the batch size is free
    assert np.abs(one - expected[:1]).max() < 1e-4
    meta = exported_metadata(path, "onnx")
    assert meta["classes"] == list(CLASSES) and meta["model"] == "cnn1d_resnet"
    assert meta["run"] == "tiny" and meta["inputs"] == ["beats"]


def test_torchscript_matches_pytorch_on_real_beats(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_beats: Beats, tmp_path: Path
) -> None:
    path = tmp_path / "deploy" / "beats.pt"
    path.parent.mkdir()  # --out names a file in a folder that exists (a typo is no new tree)
    code, _, err = cli(
        capsys, "export", "--run", str(tiny_run), "--format", "torchscript", "--out", str(path)
    )
    assert code == 0, err
    beats = sample_beats(real_beats, 1000, seed=2)
    x = torch.from_numpy(beats.x)
    with torch.inference_mode():
        expected = load_run(tiny_run).model(x)
        got = torch.jit.load(str(path))(x)
    assert torch.allclose(got, expected, atol=1e-5)
    assert exported_metadata(path, "torchscript")["classes"] == list(CLASSES)


def test_int8_export_agrees_with_pytorch_on_real_beats(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, real_beats: Beats
) -> None:
    code, printed, err = cli(capsys, "export", "--run", str(tiny_run), "--int8")
    assert code == 0, err
    path = tiny_run / "model.int8.onnx"
    assert f"wrote {path}" in printed and "validation beats it gives PyTorch's class to" in printed
    session = onnx_session(path, threads=2)
    assert any("QuantizeLinear" in node.op_type for node in onnx.load(str(path)).graph.node)
    beats = sample_beats(real_beats, 2000, seed=3)
    with torch.inference_mode():
        expected = load_run(tiny_run).model(torch.from_numpy(beats.x)).argmax(1).numpy()
    got = onnx_logits(session, beats.x, beats.rr).argmax(1)
    assert (got == expected).mean() > 0.97
    meta = exported_metadata(path, "onnx")
    assert meta["quantized"] == "int8" and meta["classes"] == list(CLASSES)


def test_cores_are_counted_where_the_os_keeps_no_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS has no `os.sched_getaffinity`: `--jobs` and `OnnxRunner` count every core there."""
    assert 1 <= available_cores() <= (os.cpu_count() or 1)
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert available_cores() == (os.cpu_count() or 1)


def test_onnx_runner_keeps_the_order_of_the_beats(
    tiny_run: Path, real_beats: Beats, tmp_path: Path
) -> None:
    run = load_run(tiny_run)
    path = export_model(run.model, run.classes, "onnx", tmp_path / "m.onnx")
    beats = sample_beats(real_beats, 45, seed=4)
    expected = classify(run.model, beats.x, beats.rr)
    runner = OnnxRunner(path, workers=2, batch=7)  # uneven shares and a short last batch
    assert runner.classes == run.classes
    got = runner.predict_proba(beats.x, beats.rr)
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-5
    assert runner.predict_proba(beats.x[:0]).shape == (0, len(CLASSES))


def test_int8_needs_onnx(capsys: pytest.CaptureFixture[str], tiny_run: Path) -> None:
    args = ("export", "--run", str(tiny_run), "--int8", "--format", "torchscript")
    code, _, err = cli(capsys, *args)
    assert code == 2 and err == "beatlab: error: --int8 needs --format onnx"


def test_unknown_export_format(capsys: pytest.CaptureFixture[str], tiny_run: Path) -> None:
    code, _, err = cli(capsys, "export", "--run", str(tiny_run), "--format", "tflite")
    assert code == 2
    assert err == "beatlab: error: unknown export format 'tflite' (choose from onnx, torchscript)"


@pytest.mark.parametrize(
    ("name", "hparams"),
    [(name, {}) for name in list_models()] + [("cnn1d_resnet", {"use_rr": True})],
)
def test_every_model_exports_to_onnx_with_a_free_batch(
    tmp_path: Path, name: str, hparams: dict[str, bool]
) -> None:
    torch.manual_seed(0)
    model = create_model(name, **hparams).eval()
    path = export_model(model, CLASSES, "onnx", tmp_path / "m.onnx")
    beats, *rr = example_inputs(model, batch=7)  # traced with 2
    with torch.inference_mode():
        expected = model(beats, *rr).numpy()
    rr_in = rr[0].numpy() if rr else np.zeros((7, 3), np.float32)
    got = onnx_logits(onnx_session(path), beats.numpy(), rr_in)
    assert np.abs(got - expected).max() < 1e-4


def test_onnx_export_decides_with_the_decision_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("cnn1d_resnet", use_rr=True, decision_weights=[1, 3, 1, 1, 1]).eval()
    path = export_model(model, CLASSES, "onnx", tmp_path / "m.onnx")
    x, rr = torch.randn(64, 187), torch.rand(64, 3) + 0.5
    with torch.inference_mode():
        expected = model(x, rr).numpy()
    got = onnx_logits(onnx_session(path, threads=1), x.numpy(), rr.numpy())
    assert np.abs(got - expected).max() < 1e-4
    plain = create_model("cnn1d_resnet", use_rr=True).eval()
    plain.load_state_dict(model.state_dict())
    with torch.inference_mode():
        shift = expected - plain(x, rr).numpy()
    assert np.allclose(shift, np.log([1, 3, 1, 1, 1]), atol=1e-5)
