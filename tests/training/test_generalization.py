"""New patients: augmentation, the patient-wise protocol that never reads DS2 before
evaluation, the centred layout end to end, and cross-database evaluation."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import wfdb
from conftest import REAL_FORMATS, run_cli, spy_on_bars, write_record

from beatlab.data import layouts
from beatlab.data.databases import MITDB
from beatlab.deploy.export import exported_metadata
from beatlab.errors import BeatlabError
from beatlab.training.augment import augment, augment_rr
from beatlab.training.config import TrainConfig
from beatlab.training.crossdb import trained_on
from beatlab.training.data import dataset_for
from beatlab.training.run import train_run

AUGMENT = {"augment_scale": 0.2, "augment_wander": 0.1, "augment_noise": 0.02, "augment_jitter": 4}


def test_augmentation_off_passes_beats_through_without_drawing() -> None:
    x = torch.rand(8, 187)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert augment(x, TrainConfig(), generator) is x
    assert torch.equal(generator.get_state(), state)


def test_augmentation_is_seeded_and_bounded() -> None:
    x = torch.rand(64, 187)
    config = TrainConfig().updated(AUGMENT)
    a = augment(x, config, torch.Generator().manual_seed(1))
    b = augment(x, config, torch.Generator().manual_seed(1))
    c = augment(x, config, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == x.shape
    jitter = TrainConfig().updated({"augment_jitter": 3})
    ramp = torch.arange(187, dtype=torch.float32).repeat(32, 1)
    shifted = augment(ramp, jitter, torch.Generator().manual_seed(0)) - ramp
    assert shifted[:, 10:-10].abs().max() <= 3 and (shifted[:, 10:-10] != 0).any()
    scale = TrainConfig().updated({"augment_scale": 0.2})
    ratio = augment(x + 1, scale, torch.Generator().manual_seed(0)) / (x + 1)
    assert ratio.min() >= 0.8 - 1e-6 and ratio.max() <= 1.2 + 1e-6
    stretch = TrainConfig().updated({"augment_stretch": 0.1, "layout": "deviation_median_rr"})
    r = 62  # 0.25 s before R at 250 Hz
    away = augment(ramp, stretch, torch.Generator().manual_seed(0))[:, 50:80] - r
    factor = (ramp[:, 50:80] - r) / away  # each beat's own stretch, the same along it
    inner = torch.cat([factor[:, : 12 - 1], factor[:, 12 + 1 :]], dim=1)
    assert torch.equal(away[:, 12], torch.zeros(32))  # the R peak stays where it was
    assert inner.min() >= 0.9 - 1e-4 and inner.max() <= 1.1 + 1e-4 and inner.std() > 0.01
    assert torch.allclose(inner, inner[:, :1].expand_as(inner), atol=1e-4)


def test_motion_noise_lies_in_its_band_and_leaves_the_other_draws_as_they_were() -> None:
    """`augment_motion`: noise of 1-10 Hz at the layout's rate, RMS U(0, a) per beat, seeded; a
    config without it draws exactly as before (it is drawn last)."""
    x = torch.zeros(256, 187)
    config = TrainConfig().updated({"augment_motion": 0.2, "layout": "deviation_aligned"})
    a = augment(x, config, torch.Generator().manual_seed(3))
    assert torch.equal(a, augment(x, config, torch.Generator().manual_seed(3)))
    rms = a.pow(2).mean(dim=1).sqrt()
    assert rms.max() <= 0.2 + 1e-5 and rms.min() < 0.05 and rms.std() > 0.03
    spectrum = torch.fft.rfft(a, dim=1).abs().pow(2).sum(dim=0)
    freq = torch.fft.rfftfreq(187, 1 / 250)
    inside = (freq >= 1.0) & (freq <= 10.0)
    assert spectrum[~inside].sum() < 1e-6 * spectrum.sum() and inside.sum() == 7
    ramp = torch.linspace(0, 1, 187).repeat(256, 1)
    others = TrainConfig().updated({**AUGMENT, "layout": "deviation_aligned"})
    plain = augment(ramp, others, torch.Generator().manual_seed(4))
    both = others.updated({"augment_motion": 0.2})
    added = augment(ramp, both, torch.Generator().manual_seed(4)) - plain  # the motion noise alone
    spectrum = torch.fft.rfft(added, dim=1).abs().pow(2).sum(dim=0)
    assert added.abs().max() > 0.01 and spectrum[~inside].sum() < 1e-6 * spectrum.sum()


def test_jitter_at_the_peak_moves_the_beat_off_its_records_median() -> None:
    """`augment_jitter_at = "peak"` moves a deviation layout's beat with its record's median beat
    added back, as a misplaced R peak moves it: the cut itself moves, and the median stays. The
    old reading ("beat") moves the difference, so a beat like the median stays flat."""
    ramp = torch.arange(187, dtype=torch.float32).repeat(32, 1)  # the beats as cut
    median = torch.sin(ramp / 5)
    x = ramp - median
    config = TrainConfig().updated({"augment_jitter": 3, "layout": "deviation_median_rr"})
    at_peak = config.updated({"augment_jitter_at": "peak"})
    moved = augment(x, at_peak, torch.Generator().manual_seed(0), median) + median - ramp
    inner = moved[:, 10:-10]  # each beat's cut moved k samples: ramp + k
    assert torch.allclose(inner, inner[:, :1].expand_as(inner), atol=1e-4)
    assert inner.abs().max() <= 3 + 1e-4 and inner.abs().max() > 0.5
    flat = torch.zeros(32, 187)  # beats just like their record's median
    assert torch.equal(augment(flat, config, torch.Generator().manual_seed(0), median), flat)
    off = augment(flat, at_peak, torch.Generator().manual_seed(0), median)
    assert off.abs().max() > 0.1  # what a detector's misplaced peak makes of them


def test_rr_jitter_moves_the_intervals_as_misplaced_peaks_would() -> None:
    """Each peak moves at most `a` of the local R-R: the previous interval by the beat's move
    less its predecessor's, the next by the successor's less the beat's, the local one not."""
    rr = torch.tensor([[0.8, 1.1, 1.0]]).repeat(4096, 1)
    generator = torch.Generator().manual_seed(0)
    off = TrainConfig()
    assert augment_rr(rr, off, generator) is rr
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(0).get_state())
    config = TrainConfig().updated({"augment_rr_jitter": 0.05, "layout": "deviation_median_rr"})
    moved = augment_rr(rr, config, torch.Generator().manual_seed(1))
    assert torch.equal(moved, augment_rr(rr, config, torch.Generator().manual_seed(1)))
    assert torch.equal(rr[:, 0], torch.full((4096,), 0.8))  # the input is left as it was
    change = moved - rr
    assert torch.equal(change[:, 2], torch.zeros(4096))
    assert change[:, :2].abs().max() <= 0.1 + 1e-6 and change[:, :2].abs().max() > 0.09
    # the beat's own move lengthens one interval as it shortens the other
    assert torch.corrcoef(change[:, :2].T)[0, 1] < -0.3


def test_rr_jitter_is_refused_where_it_would_do_nothing_or_the_wrong_thing() -> None:
    with pytest.raises(BeatlabError, match="layout 'kachuee' does not keep"):
        TrainConfig().updated({"augment_rr_jitter": 0.04, "hparams": {"use_rr": True}}).check()
    with pytest.raises(BeatlabError, match="only with use_rr = true"):
        TrainConfig().updated({"augment_rr_jitter": 0.04, "layout": "deviation_median_rr"}).check()
    with pytest.raises(BeatlabError, match=r"from 0 up to \(not including\) 0.25, got 0.3"):
        TrainConfig().updated({"augment_rr_jitter": 0.3, "layout": "deviation_median_rr"})


def test_jitter_at_the_peak_trains_and_needs_the_median(
    tiny_mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tiny_mitdb.parent

    def train(name: str, *settings: str) -> tuple[int, str]:
        sets = [item for s in settings for item in ("--set", s)]
        code, _, err = run_cli(
            capsys,
            *("train", "--data-dir", str(root), "--runs-dir", str(tmp_path), "--name", name),
            *("--epochs", "1", "--tracking-uri", "none", "--set", "layout=deviation_median_rr"),
            *("--set", "augment_jitter=4", "--set", "augment_jitter_at=peak", *sets),
        )
        return code, err

    code, err = train("ok", "augment_rr_jitter=0.04", "use_rr=true")
    assert code == 0, err
    saved = json.loads((tmp_path / "ok" / "config.json").read_text())
    assert saved["augment_jitter_at"] == "peak" and saved["augment_rr_jitter"] == 0.04
    code, err = train("smote", "balance=smote")
    assert code == 2 and "needs each beat's record median beat" in err
    assert not (tmp_path / "smote").exists()
    code, err = train("bad", "augment_jitter_at=window")
    assert code == 2 and "augment_jitter_at" in err and "peak" in err


def inter_config(real_data_dir: Path, **values: object) -> TrainConfig:
    return TrainConfig(data_dir=str(real_data_dir)).updated(
        {
            "split": "inter",
            "layout": "centred",
            "balance": "weights",
            "limit": 600,
            "epochs": 1,
            "batch_size": 64,
            "hparams": {"use_rr": True},
            **AUGMENT,
            **values,
        }
    )


def test_inter_validation_is_held_out_ds1_patients(real_data_dir: Path) -> None:
    ds = dataset_for(inter_config(real_data_dir, limit=None))
    train, valid, test = (set(ds.part(p).record) for p in ("train", "valid", "test"))
    ds1, ds2 = set(MITDB.splits["inter"].train), set(MITDB.splits["inter"].test)
    assert train | valid <= ds1 and test == ds2
    assert not train & valid and len(valid) >= 3  # whole patients, never a share of their beats
    assert ds.meta["valid_patients"] == sorted(f"mitdb:{r}" for r in valid)


def test_training_and_selection_never_read_ds2(real_data_dir: Path, tmp_path: Path) -> None:
    """Poison the DS2 part: any use of it in training, selection or the learning-rate schedule
    would make the validation figures NaN or change them."""
    config = inter_config(real_data_dir, epochs=2)
    clean = dataset_for(config)
    poisoned = dataset_for(config)
    poisoned.test.x[:] = np.nan
    poisoned.test.rr[:] = np.nan
    poisoned.test.y[:] = 3
    a = train_run(config, tmp_path, name="a", tracking_uri="none", dataset=clean, progress=False)
    b = train_run(config, tmp_path, name="b", tracking_uri="none", dataset=poisoned, progress=False)
    va, vb = (json.loads((r / "metrics.json").read_text())["valid"] for r in (a, b))
    assert np.isfinite(va["accuracy"]) and va == vb


def test_centred_run_predicts_records_and_refuses_kachuee_files(
    tiny_mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tiny_mitdb.parent
    code, _, err = run_cli(
        capsys,
        *("train", "--data-dir", str(root), "--runs-dir", str(tmp_path / "runs"), "--name", "c"),
        *("--epochs", "1", "--tracking-uri", "none", "--set", "layout=centred"),
        *("--set", "use_rr=true", "--set", "augment_jitter=4"),
    )
    assert code == 0, err
    run = tmp_path / "runs" / "c"
    out = tmp_path / "pred.csv"
    code, text, err = run_cli(
        capsys, "predict", "--run", str(run), "--record", str(tiny_mitdb / "100"), "--out", str(out)
    )
    assert code == 0, err
    assert "25 beats" in text and len(out.read_text().splitlines()) == 26
    short = tmp_path / "short"
    short.mkdir()
    write_record("900", short, np.random.default_rng(0), seconds=1)
    half = tmp_path / "half"
    half.mkdir()
    signal = wfdb.rdrecord(str(short / "900")).p_signal[:200]
    wfdb.wrsamp(
        "900",
        fs=360,
        units=["mV", "mV"],
        sig_name=["MLII", "V1"],
        p_signal=signal,
        fmt=["212", "212"],
        write_dir=str(half),
    )
    code, _, err = run_cli(
        capsys, "predict", "--run", str(run), "--record", str(half / "900"), "--out", str(out)
    )
    assert code == 2 and "record too short: 0.56 s" in err and len(err.strip().splitlines()) == 1
    slow = tmp_path / "slow"  # a rate the layout's 40 Hz band cannot be kept at
    slow.mkdir()
    at_60 = wfdb.rdrecord(str(tiny_mitdb / "100")).p_signal[::6]
    wfdb.wrsamp("100", 60, ["mV", "mV"], ["MLII", "V1"], p_signal=at_60, write_dir=str(slow))
    slow_out = slow / "pred.csv"
    code, _, err = run_cli(
        capsys, "predict", "--run", str(run), "--record", str(slow / "100"), "--out", str(slow_out)
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "100.hea: sampled at 60 Hz: the centred layout keeps up to 40 Hz" in err
    assert not slow_out.exists()
    if REAL_FORMATS.is_dir():
        code, _, err = run_cli(
            capsys,
            *("predict", "--run", str(run), "--out", str(tmp_path / "p.csv")),
            *("--csv", str(REAL_FORMATS / "mitbih_train_sample.csv")),
        )
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "use_rr" in err or "layout" in err
        code, _, err = run_cli(
            capsys,
            *("evaluate", str(run), "--test-file", str(REAL_FORMATS / "mitbih_train_sample.csv")),
        )
        assert code == 2 and "trained on the centred layout" in err


def test_a_run_reads_records_as_it_was_trained_after_the_layout_changes(
    tiny_mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """run.json keeps every parameter of the run's layout; predict, evaluate and export read
    with them, not with whatever a later beatlab registers under the layout's name."""
    root, runs = tiny_mitdb.parent, tmp_path / "runs"
    code, _, err = run_cli(
        capsys,
        *("train", "--data-dir", str(root), "--runs-dir", str(runs), "--name", "c"),
        *("--epochs", "1", "--tracking-uri", "none", "--set", "layout=centred"),
        *("--set", "use_rr=true"),
    )
    assert code == 0, err
    info_path = runs / "c" / "run.json"
    info = json.loads(info_path.read_text())
    assert info["dataset"]["layout_params"] == asdict(layouts.CENTRED)

    def outputs(tag: str) -> tuple[str, dict[str, Any]]:
        out = tmp_path / f"{tag}.csv"
        predict = ("predict", "--run", str(runs / "c"), "--record", str(tiny_mitdb / "100"))
        code, _, err = run_cli(capsys, *predict, "--out", str(out))
        assert code == 0, err
        code, _, err = run_cli(capsys, "evaluate", str(runs / "c"), "--data-dir", str(root))
        assert code == 0, err
        return out.read_text(), json.loads((runs / "c" / "metrics.json").read_text())["test"]

    before = outputs("before")
    later = replace(layouts.CENTRED, before_s=0.1, rr_edge="neighbour")  # a later beatlab's
    monkeypatch.setitem(layouts._LAYOUTS, "centred", later)
    assert outputs("after") == before
    code, _, err = run_cli(
        capsys, "export", "--run", str(runs / "c"), "--out", str(tmp_path / "c.onnx")
    )
    assert code == 0, err
    stored = exported_metadata(tmp_path / "c.onnx", "onnx")["layout_params"]
    assert stored == asdict(layouts.CENTRED)

    twin = runs / "c2"
    shutil.copytree(runs / "c", twin)
    info["dataset"]["layout_params"]["rr_edge"] = "neighbour"
    (twin / "run.json").write_text(json.dumps(info))
    code, _, err = run_cli(
        capsys, "ensemble", str(runs / "c"), str(twin), "--runs-dir", str(runs), "--name", "e"
    )
    assert code == 2 and "reads its centred beats with other parameters" in err
    assert len(err.strip().splitlines()) == 1 and not (runs / "e").exists()

    for bad, problem in [
        ({**info["dataset"]["layout_params"], "fs": "250"}, "'layout_params': fs"),
        ({"name": "kachuee"}, "not a table of the centred layout's parameters"),
        ({**info["dataset"]["layout_params"], "rr_mean": True}, "'layout_params': rr_mean"),
    ]:
        info["dataset"]["layout_params"] = bad
        info_path.write_text(json.dumps(info))
        code, _, err = run_cli(
            capsys,
            *("predict", "--run", str(runs / "c"), "--record", str(tiny_mitdb / "100")),
            *("--out", str(tmp_path / "bad.csv")),
        )
        assert code == 2 and problem in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad.csv").exists()
    del info["dataset"]["layout_params"]  # a run from before runs stored them
    info_path.write_text(json.dumps(info))
    assert outputs("older")[0] != before[0]  # reads the layout as registered now


def test_cross_database_evaluation(
    tiny_mitdb: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tiny_mitdb.parent
    svdb = root / "svdb"
    svdb.mkdir()
    for i, name in enumerate(("800", "801", "802")):
        write_record(name, svdb, np.random.default_rng(i), fs=128, leads=("ECG1", "ECG2"))
    runs = tmp_path / "runs"
    code, _, err = run_cli(
        capsys,
        *("train", "--data-dir", str(root), "--runs-dir", str(runs), "--name", "m"),
        *("--epochs", "1", "--tracking-uri", "none"),
    )
    assert code == 0, err
    bars = spy_on_bars(monkeypatch)
    code, out, err = run_cli(
        capsys, "evaluate", str(runs / "m"), "--db", "svdb", "--data-dir", str(root)
    )
    assert code == 0, err
    assert [bar[:3] for bar in bars] == [("classifying beats", 75, False)]  # shown on a terminal
    code, _, err = run_cli(capsys, "evaluate", str(runs / "m"), "--data-dir", str(root))
    assert code == 0, err
    test = json.loads((runs / "m" / "metrics.json").read_text())["test"]
    assert bars[1][:3] == ("classifying beats", test["n"], False)  # the test part's too
    assert "3 records" in out and "per record" in out and "n/a" in out
    metrics = json.loads((runs / "m" / "metrics.json").read_text())["db:svdb"]
    assert metrics["n"] == 75 and metrics["records"] == 3
    assert [r["record"] for r in metrics["per_record"]] == ["800", "801", "802"]
    assert metrics["per_record"][0]["S Se"] is None  # no S beat in the record: no Se
    assert "note" not in metrics
    rec = wfdb.rdrecord(str(svdb / "801"), physical=False)
    digital = rec.d_signal.copy()
    digital[5 * 128 : 7 * 128, 0] = -2048  # 2 s of ECG1 off: format 212's invalid sample
    wfdb.wrsamp(
        "801", 128, rec.units, rec.sig_name, d_signal=digital, fmt=rec.fmt,
        adc_gain=rec.adc_gain, baseline=rec.baseline, write_dir=str(svdb),
    )  # fmt: skip
    code, out, err = run_cli(
        capsys, "evaluate", str(runs / "m"), "--db", "svdb", "--data-dir", str(root)
    )
    assert code == 0, err
    metrics = json.loads((runs / "m" / "metrics.json").read_text())["db:svdb"]
    left = 75 - metrics["n"]
    assert left > 0 and metrics["note"] == (
        f"left out {left} beats whose window holds invalid samples (a lead off)"
    )
    assert metrics["note"] in " ".join(out.split())
    code, _, err = run_cli(capsys, "evaluate", str(runs / "m"), "--db", "mitdb")
    assert code == 2 and "trained on mitdb" in err
    code, _, err = run_cli(capsys, "evaluate", str(runs / "m"), "--db", "nodb")
    assert code == 2 and "unknown database 'nodb'" in err
    # a folder of records of a database beatlab has no spec for: 250 Hz, leads named its own way
    edb = tmp_path / "edb"
    edb.mkdir()
    for i, name in enumerate(("e0103", "e0104", "e0105")):
        write_record(name, edb, np.random.default_rng(i), fs=250, leads=("MLIII", "V4"))
    (edb / "e0105.atr").unlink()
    evaluate_edb = ("evaluate", str(runs / "m"), "--records", str(edb))
    code, _, err = run_cli(capsys, *evaluate_edb)
    assert code == 2 and "record e0103 has none of the leads MLII, II, V5" in err, err
    code, _, jobs_err = run_cli(capsys, *evaluate_edb, "--jobs", "2")
    assert code == 2 and jobs_err == err, jobs_err
    code, out, err = run_cli(capsys, *evaluate_edb, "--lead", "MLIII")
    assert code == 0, err
    stored = json.loads((runs / "m" / "metrics.json").read_text())
    metrics = stored[f"records:{edb.resolve()}"]
    assert metrics["n"] == 50 and metrics["records"] == 2 and "db:svdb" in stored
    assert metrics["leads"] == {"e0103": "MLIII", "e0104": "MLIII"}
    assert metrics["note"] == "left out 1 records without .atr: e0105"
    assert [r["record"] for r in metrics["per_record"]] == ["e0103", "e0104"]
    assert metrics["note"] in " ".join(out.split())
    for bad, problem in [
        (("--db", "svdb"), "give one of --db, --records"),
        (("--annotator", "qrs"), "no record here has a .qrs annotation file"),
        (("--annotator", "../x"), "--annotator takes the annotation file's extension"),
    ]:
        code, _, err = run_cli(capsys, *evaluate_edb, *bad)
        assert code == 2 and problem in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_cli(capsys, "evaluate", str(runs / "m"), "--annotator", "qrs")
    assert code == 2 and "--annotator applies to --records" in err
    code, _, err = run_cli(capsys, "evaluate", str(runs / "m"), "--detector")
    assert code == 2 and "--detector applies to --records" in err
    code, _, err = run_cli(capsys, "evaluate", str(runs / "m"), "--jobs", "2")
    assert code == 2 and "--jobs applies to --records" in err
    code, _, err = run_cli(capsys, *evaluate_edb, "--lead", "MLIII", "--jobs", "2")
    assert code == 0, err  # two processes, one record each: the same figures
    again = json.loads((runs / "m" / "metrics.json").read_text())[f"records:{edb.resolve()}"]
    assert {k: again[k] for k in ("n", "confusion_matrix", "note", "per_record")} == {
        k: metrics[k] for k in ("n", "confusion_matrix", "note", "per_record")
    }
    ann = wfdb.rdann(str(edb / "e0104"), "atr")  # a beat left unannotated: a false detection
    keep = np.arange(len(ann.sample)) != 3
    wfdb.wrann(
        "e0104", "atr", ann.sample[keep], np.array(ann.symbol)[keep].tolist(), write_dir=str(edb)
    )
    code, out, err = run_cli(capsys, *evaluate_edb, "--lead", "MLIII", "--detector")
    assert code == 0, err
    found = json.loads((runs / "m" / "metrics.json").read_text())[f"records:{edb.resolve()}"]
    detection = found["detection"]
    assert detection["annotated"] == 49 and detection["Se"] > 0.9
    assert found["n"] == round(detection["Se"] * 49)  # classes: on the beats found
    false = detection["false_called"]
    assert sum(false.values()) == detection["detected"] - found["n"] >= 1
    cm = np.array(found["confusion_matrix"])
    for i, (c, precise) in enumerate(detection["+P_counting_false"].items()):  # EC57's +P
        called = cm[:, i].sum() + false[c]
        assert precise == (cm[i, i] / called if called else None)
    assert "detector vs annotations: Se" in out and "false detections (" in out
    code, _, err = run_cli(capsys, "report", str(runs / "m"), "--out", str(tmp_path / "report"))
    assert code == 0, err
    report = (tmp_path / "report" / "report.md").read_text()
    assert f"Cross-database: the records of {edb}, beats by the QRS detector" in report
    assert "The false detections (" in report and "+P counting them" in report
    assert (
        "Cross-database: MIT-BIH Supraventricular" in report and "Beats found by the QRS" in report
    )


def test_a_run_trained_on_a_database_is_not_evaluated_on_it_as_unseen() -> None:
    assert trained_on(TrainConfig(db="mitdb,svdb"), "svdb")
    assert not trained_on(TrainConfig(db="mitdb"), "svdb")
    assert not trained_on(TrainConfig(db="svdb", train_file="beats.csv"), "svdb")


def benchmark(name: str) -> Any:
    """A script of benchmarks/ as a module (it imports its neighbours by name)."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nested_weight_is_chosen_on_the_other_folds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """patient_cv.py --nested: fold 0's patients (N beats at S probability 0.3) are decided by
    the weight fold 1 allows (x6, its N beats at 0.1), and lose their N beats; fold 1 by the x2
    that fold 0 allows. Picked on both folds at once, x2 would have flattered fold 0."""
    patient_cv = benchmark("patient_cv")
    for fold, (record, s_of_n) in enumerate([("a", 0.3), ("b", 0.1)]):
        proba = np.zeros((20, 5))
        proba[:18, 0], proba[:18, 1] = 1 - s_of_n, s_of_n  # 18 N beats
        proba[18:, 0], proba[18:, 1] = 0.8, 0.2  # 2 S beats
        y = np.array([0] * 18 + [1] * 2)
        (tmp_path / "t").mkdir(exist_ok=True)
        np.savez(tmp_path / "t" / f"fold{fold}.npz", y=y, proba=proba, record=np.full(20, record))
    patient_cv.nested(tmp_path, ["t"], "S", [1.0, 2.0, 6.0], 0.95)
    rows = [r.split("|")[1:4] for r in capsys.readouterr().out.splitlines()[3:]]
    assert [[c.strip() for c in r] for r in rows] == [
        ["fold0", "6", "20"],
        ["fold1", "2", "20"],
        ["pooled", "", "40"],
    ]


def test_scoring_refuses_fold_runs_that_weighed_already(tmp_path: Path) -> None:
    """A tag trained with decision_weights saved weighted probabilities; the scripts weigh at
    scoring, so they would weigh it twice (a session's run did, once): refused, naming the file."""
    patient_cv = benchmark("patient_cv")
    for tag, weights in (("plain", []), ("weighted", [1, 4, 1, 1, 1])):
        runs = tmp_path / tag / "runs" / "fold0"
        runs.mkdir(parents=True)
        (runs / "config.json").write_text(json.dumps({"hparams": {"decision_weights": weights}}))
        y = np.zeros(4, dtype=np.int64)
        np.savez(tmp_path / tag / "fold0.npz", y=y, proba=np.eye(5)[y], record=np.full(4, "a"))
    assert len(patient_cv.same_beats(tmp_path, ["plain"])) == 1
    with pytest.raises(BeatlabError, match=r"decision_weights \[1, 4, 1, 1, 1\]: their saved"):
        patient_cv.same_beats(tmp_path, ["plain", "weighted"])


def test_record_edges_score_both_readings_of_each_excerpt(tiny_mitdb: Path, tmp_path: Path) -> None:
    """benchmarks/record_edges.py: every excerpt has one first and one last beat, each beat is
    classified under both `rr_edge` readings, and the summary compares them position by position."""
    record_edges = benchmark("record_edges")
    config = TrainConfig(
        data_dir=str(tiny_mitdb.parent), layout="centred", epochs=1, hparams={"use_rr": True}
    )
    run = train_run(config, tmp_path / "runs", name="c", tracking_uri="none", progress=False)
    from beatlab.training.runs import load_run

    beats = record_edges.excerpt_tallies(
        load_run(run), tiny_mitdb.parent, ("100", "101"), 5.0, 3, np.random.default_rng(0)
    )
    counts = beats["position"].value_counts()
    assert counts["first"] == counts["last"] == 6 and counts["middle"] > 0
    assert set(beats["neighbour"]) | set(beats["median"]) <= set(range(5))
    table = record_edges.summary(beats)
    assert list(table["position"]) == ["first", "middle", "last"]
    assert table["beats"].sum() == len(beats)
    for position, row in table.set_index("position").iterrows():
        part = beats[beats["position"] == position]
        assert row["acc, median"] == round(float((part["median"] == part["label"]).mean()), 3)


def test_missing_lead_reads_each_record_three_ways(
    tiny_mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """benchmarks/missing_lead.py: both leads as `predict` reads them, the second lead's members
    alone (what `predict` does without the first lead) and every member on the second lead."""
    missing_lead = benchmark("missing_lead")
    from beatlab.data.layouts import segment_leads
    from beatlab.deploy.predict import classify
    from beatlab.training.runs import load_run

    runs, root = tmp_path / "runs", tiny_mitdb.parent
    for name, lead in (("a", "MLII"), ("b", "V1")):
        config = TrainConfig(
            data_dir=str(root),
            layout="deviation_aligned",
            epochs=1,
            lead=lead,
            seed=1,
            hparams={"use_rr": True},
        )
        train_run(config, runs, name=name, tracking_uri="none", progress=False)
    code, _, err = run_cli(
        capsys, "ensemble", str(runs / "a"), str(runs / "b"), "--name", "e", "--runs-dir", str(runs)
    )
    assert code == 0, err
    run, second = load_run(runs / "e"), load_run(runs / "b")
    out = missing_lead.readings(run, root, ("100",))
    assert list(out) == list(missing_lead.READINGS)
    record = wfdb.rdrecord(str(tiny_mitdb / "100"))
    peaks = wfdb.rdann(str(tiny_mitdb / "100"), "atr").sample
    mlii, v1 = record.p_signal[:, 0], record.p_signal[:, 1]
    expected = {
        "each its own lead": classify(
            run.model, *segment_leads([mlii, v1], 360, peaks, run.layout)
        ),
        "the second lead's members alone": classify(
            second.model, *segment_leads([v1], 360, peaks, run.layout)
        ),
        "all on the second lead": classify(
            run.model, *segment_leads([v1, v1], 360, peaks, run.layout)
        ),
    }
    for reading, proba in expected.items():
        (y,), (got,) = out[reading]
        assert len(y) == len(peaks)
        np.testing.assert_allclose(got, proba, atol=1e-6)
    with pytest.raises(BeatlabError, match="two leads"):
        missing_lead.readings(second, root, ("100",))


def test_noise_is_added_at_the_asked_snr_and_scored_beside_the_clean_reading(
    tiny_mitdb: Path, tmp_path: Path
) -> None:
    """benchmarks/noise.py: each kind lands at the asked SNR (the NSTDB's: QRS peak-to-peak
    squared over 8, against the noise's mean square), in its band, the same draw at every SNR;
    the annotations come along; and the table scores the noisy readings beside the clean one."""
    noise = benchmark("noise")
    from beatlab.deploy.predict import predict_records
    from beatlab.training.crossdb import records_metrics
    from beatlab.training.runs import load_run

    base = tiny_mitdb / "100"
    clean = wfdb.rdrecord(str(base)).p_signal
    peaks = wfdb.rdann(str(base), "atr").sample
    bands = {"muscle": (0.0, 180.0), "motion": (0.5, 20.0), "wander": (0.0, 1.0)}  # an octave out
    for kind, (low, high) in bands.items():
        added = {}
        for snr in (6.0, 12.0):
            out = tmp_path / f"{kind}{snr:g}"
            out.mkdir()
            copy = noise.noisy_copy(base, out, kind, snr, seed=0)
            assert wfdb.rdrecord(str(copy)).sig_name == ["MLII", "V1"]
            np.testing.assert_array_equal(wfdb.rdann(str(copy), "atr").sample, peaks)
            added[snr] = wfdb.rdrecord(str(copy)).p_signal - clean
            for c in range(2):
                power = noise.qrs_power(clean[:, c], peaks, 360)
                got = 10 * np.log10(power / np.mean(added[snr][:, c] ** 2))
                assert abs(got - snr) < 0.1, (kind, c, got)
        lead = added[6.0][:, 0]
        spectrum = np.abs(np.fft.rfft(lead * np.hanning(len(lead)))) ** 2  # no leak at the ends
        freq = np.fft.rfftfreq(len(lead), 1 / 360)
        assert spectrum[(freq >= low) & (freq <= high)].sum() > 0.9 * spectrum.sum(), kind
        np.testing.assert_allclose(added[12.0], added[6.0] * 10 ** (-6 / 20), atol=1e-3)

    config = TrainConfig(
        data_dir=str(tiny_mitdb.parent), layout="centred", epochs=1, hparams={"use_rr": True}
    )
    run = load_run(train_run(config, tmp_path / "runs", name="c", tracking_uri="none"))
    paths = [tiny_mitdb / "100", tiny_mitdb / "101"]
    table = noise.measure(run, paths, ["muscle", "wander"], [80.0, -20.0])
    assert list(table["noise"]) == ["none", "muscle", "muscle", "wander", "wander"]
    done, _ = predict_records(run, paths, progress=False)
    expected = records_metrics(run, [(p.name, r) for p, r in done.items()])
    assert table.loc[0, "accuracy"] == expected["accuracy"]
    assert table.loc[0, "same class as clean"] == 1.0
    assert (table.loc[table["SNR dB"] == 80.0, "same class as clean"] == 1.0).all()
    assert table.loc[1:, "same class as clean"].between(0, 1).all()
    noise.plot(table, tmp_path / "noise.png", "title")
    assert (tmp_path / "noise.png").read_bytes()[:4] == b"\x89PNG"
    found = noise.measure(run, paths, ["motion"], [24.0], detector=True)
    assert {"beats found", "detections +P"} <= set(found.columns)
    assert "same class as clean" not in found
