"""The beat builder, its cache, the splits and balancing, on generated and on real records."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import wfdb
from conftest import run_cli

from beatlab.data.balance import balance
from beatlab.data.build import (
    Beats,
    build_beats,
    cache_path,
    ensure_beats,
    ensure_channel_beats,
    load_beats,
    read_cache_metadata,
    read_lead,
)
from beatlab.data.dataset import load_dataset
from beatlab.data.layouts import KACHUEE, BuildParams, get_layout, segment_beats
from beatlab.data.splits import DS1, DS2, PACED, split_indices
from beatlab.errors import BeatlabError


def test_real_database_counts_exactly(real_data_dir: Path) -> None:
    beats = load_beats(cache_path(real_data_dir))
    assert len(beats) == 109_494
    assert beats.counts().tolist() == [90_631, 2_781, 7_236, 803, 8_043]
    assert beats.x.shape == (109_494, 187) and beats.x.dtype == np.float32
    assert beats.x.min() >= 0.0 and beats.x.max() <= 1.0
    assert len(np.unique(beats.record)) == 48
    assert np.isfinite(beats.rr).all() and beats.rr.min() > 0.2  # 0.25 s is the shortest R-R


def test_cache_records_params_and_sources(real_data_dir: Path) -> None:
    meta = read_cache_metadata(cache_path(real_data_dir))
    assert meta is not None
    assert meta["params"]["fs"] == 125 and meta["params"]["period_factor"] == 1.2
    assert len(meta["sources"]) == 144 and meta["counts"][0] == 90_631
    _, _, rebuilt = ensure_beats(real_data_dir)
    assert not rebuilt


def test_cache_rebuilds_when_params_or_sources_change(tiny_mitdb: Path) -> None:
    root = tiny_mitdb.parent
    assert ensure_beats(root)[2]
    assert not ensure_beats(root)[2]
    assert ensure_beats(root, BuildParams(period_factor=1.0))[2]
    with open(tiny_mitdb / "101.hea", "a") as header:
        header.write("# a comment changes the checksum, not the beats\n")
    assert ensure_beats(root, BuildParams(period_factor=1.0))[2]


def test_deviation_beats_keep_their_records_median_beat_through_the_cache(
    tiny_mitdb: Path,
) -> None:
    """What a deviation layout took from each beat is kept (for jitter that moves the R peak):
    the beat plus its record's median is the beat cut without the subtraction. A cache written
    before it was kept is built again."""
    root, params = tiny_mitdb.parent, get_layout("deviation_median_rr")
    beats, path, _ = ensure_beats(root, params)
    whole, _, _ = build_beats(tiny_mitdb, params=replace(params, deviation=False))
    assert beats.median is not None and beats.median.shape == beats.x.shape
    assert np.allclose(beats.x + beats.median, whole.x, atol=1e-6)
    first, second = (beats.median[beats.record == r] for r in ("100", "101"))
    assert (first == first[0]).all() and not np.allclose(first[0], second[0])
    again = load_beats(path)
    assert again.median is not None and np.array_equal(again.median, beats.median)
    assert np.array_equal(beats.take(np.arange(3)).median, beats.median[:3])
    assert build_beats(tiny_mitdb)[0].median is None  # the kachuee layout subtracts nothing
    meta = read_cache_metadata(path)
    assert meta is not None
    del meta["medians"]
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({"beatlab": json.dumps(meta)}), path)
    assert ensure_beats(root, params)[2]


def test_beats_start_at_r_peak_and_span_1_2_periods(tiny_mitdb: Path) -> None:
    beats, _, _ = build_beats(tiny_mitdb)
    # 20 s with a beat every 0.8 s: 25 beats per record, every 4th (i % 4 == 0) a V.
    assert len(beats) == 50 and beats.counts().tolist() == [36, 0, 14, 0, 0]
    period = round(0.8 * 125)
    span = round(1.2 * period)
    assert np.all(beats.x[:, span:] == 0.0)
    assert np.allclose(beats.x[:, 0], beats.x[:, 0].max(), atol=0.05)  # the R peak, near 1
    assert np.allclose(beats.rr[1:24, 0], 0.8)


def test_every_physionet_beat_symbol_is_a_beat(tiny_mitdb: Path) -> None:
    """INCART-style symbols MIT-BIH never uses (B, r, n, ?) are beats of their AAMI class, so
    none is dropped and no neighbour's R-R interval doubles; rhythm marks stay marks."""
    import wfdb

    peaks = wfdb.rdann(str(tiny_mitdb / "100"), "atr").sample
    symbols = ["NBrn?"[i % 5] for i in range(len(peaks))]
    samples = np.sort(np.concatenate([peaks, peaks[:3] + 90]))
    marks = [symbols.pop(0) if s in peaks else "+" for s in samples]
    wfdb.wrann("100", "atr", sample=samples, symbol=marks, write_dir=str(tiny_mitdb))
    beats, _, _ = build_beats(tiny_mitdb)
    one = beats.take(beats.record == "100")
    assert one.y.tolist() == [[0, 0, 2, 0, 4][i % 5] for i in range(len(peaks))]
    assert np.allclose(one.rr[1:-1, 0], 0.8)


def lead_off(db: Path, name: str, channel: int, seconds: slice) -> np.ndarray:
    """Mark `seconds` of one lead of a generated record invalid (format 212's -2048); returns the
    R peaks of its annotated beats that reach into the gap in the kachuee layout (R + 1.5 s)."""
    import wfdb

    rec = wfdb.rdrecord(str(db / name), physical=False)
    digital = rec.d_signal.copy()
    digital[seconds.start * 360 : seconds.stop * 360, channel] = -2048
    wfdb.wrsamp(
        name, 360, rec.units, rec.sig_name, d_signal=digital, fmt=rec.fmt,
        adc_gain=rec.adc_gain, baseline=rec.baseline, write_dir=str(db),
    )  # fmt: skip
    peaks = wfdb.rdann(str(db / name), "atr").sample
    return peaks[(peaks + 187 / 125 * 360 > seconds.start * 360) & (peaks < seconds.stop * 360)]


def test_beats_over_invalid_samples_are_not_built(
    tiny_mitdb: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    over = lead_off(tiny_mitdb, "101", 0, slice(5, 6))  # MLII off for 1 s
    beats, _, left_out = build_beats(tiny_mitdb)
    assert 0 < len(over) < 5 and len(beats) == 50 - len(over) and left_out == {"101": len(over)}
    kept = beats.sample[beats.record == "101"]
    assert len(kept) == 25 - len(over) and not np.isin(over, kept).any()
    assert np.isfinite(beats.x).all() and beats.x.max() <= 1.0  # the gap is bridged, not a spike
    code, out, _ = run_cli(capsys, "data", "build", "--data-dir", str(tiny_mitdb.parent))
    assert code == 0 and f"built: {50 - len(over)} beats" in out
    assert f"left out {len(over)} beats whose window holds invalid samples" in " ".join(out.split())


def test_a_beat_over_invalid_samples_of_one_lead_is_left_out_of_every_lead(
    tiny_mitdb: Path,
) -> None:
    over = lead_off(tiny_mitdb, "100", 1, slice(8, 9))  # V1 off for 1 s, MLII fine
    mlii, _, _ = ensure_channel_beats(tiny_mitdb.parent, KACHUEE, lead="MLII")
    both, _, leads = ensure_channel_beats(tiny_mitdb.parent, KACHUEE, lead="MLII|V1")
    assert len(mlii) == 50 and len(both) == 50 - len(over) and both.x.shape[1:] == (2, 187)
    in_100 = both.sample[both.record == "100"]
    assert not np.isin(over, in_100).any() and leads == {"100": "MLII|V1", "101": "MLII|V1"}
    kept = mlii.take((mlii.record != "100") | ~np.isin(mlii.sample, over))
    np.testing.assert_array_equal(both.x[:, 0], kept.x)
    assert both.rr.shape == (len(both), 2, 3)  # each lead's own R-R (aligning layouts differ)
    np.testing.assert_array_equal(both.rr[:, 0], kept.rr)


@pytest.mark.parametrize(
    ("fmt", "swing", "kind"),
    [("212", 2000, np.int16), ("16", 30_000, np.int16), ("32", 100_000, np.int32)],
)
def test_a_lead_is_held_in_the_narrowest_integers_that_hold_it(
    tmp_path: Path, fmt: str, swing: int, kind: type[np.integer]
) -> None:
    """wfdb reads digital samples as int64: four times the memory of a 16-bit lead, 250 MB
    rather than 62 for a 24-hour Holter lead at 360 Hz, held while its beats are classified."""
    digital = np.rint(swing * np.sin(np.arange(3000) / 30.0)).astype(np.int64)[:, None]
    wfdb.wrsamp(
        "r", fs=360, units=["mV"], sig_name=["MLII"], d_signal=digital, fmt=[fmt],
        adc_gain=[200.0], baseline=[0], write_dir=str(tmp_path),
    )  # fmt: skip
    signal, name, invalid = read_lead(tmp_path / "r", wfdb.rdheader(str(tmp_path / "r")), ("MLII",))
    assert signal.dtype == kind and name == "MLII" and not invalid.any()
    np.testing.assert_array_equal(signal, digital[:, 0])


def test_segment_beats_pads_at_record_end() -> None:
    signal = np.sin(np.linspace(0, 60, 3600))
    x, rr = segment_beats(signal, 360.0, np.array([100, 1000, 3590]))
    assert x.shape == (3, 187) and rr.shape == (3, 3)
    assert np.all(x[2, 5:] == 0.0)


def test_inter_split_keeps_patients_apart(real_data_dir: Path) -> None:
    beats = load_beats(cache_path(real_data_dir))
    parts = split_indices(beats, "inter", seed=3)
    train = set(beats.record[parts["train"]]) | set(beats.record[parts["valid"]])
    test = set(beats.record[parts["test"]])
    assert train == set(DS1) and test == set(DS2) and not train & test
    assert not (train | test) & set(PACED)


def test_folds_group_records(real_data_dir: Path) -> None:
    beats = load_beats(cache_path(real_data_dir))
    tests = []
    for fold in range(4):
        parts = split_indices(beats, folds=4, fold=fold, seed=1)
        rest = set(beats.record[np.concatenate([parts["train"], parts["valid"]])])
        test = set(beats.record[parts["test"]])
        assert not rest & test
        tests.append(test)
    assert set().union(*tests) == set(np.unique(beats.record))


def test_inter_folds_cross_validate_ds1_patients_only(real_data_dir: Path) -> None:
    """`--split inter --folds K`: every DS1 record is tested exactly once, no DS2 record is ever
    in any part, and the training and validation parts hold other patients than the test."""
    beats = load_beats(cache_path(real_data_dir))
    tested: list[str] = []
    for fold in range(5):
        parts = split_indices(beats, "inter", folds=5, fold=fold)
        used = set(beats.record[np.concatenate(list(parts.values()))])
        rest = set(beats.record[np.concatenate([parts["train"], parts["valid"]])])
        test = set(beats.record[parts["test"]])
        assert used <= set(DS1) and not rest & test
        tested += sorted(test)
    assert sorted(tested) == sorted(DS1)


def test_valid_folds_hold_out_every_training_patient_once_whatever_the_seed(
    real_data_dir: Path,
) -> None:
    """`valid_fold` k carves fold k of one fixed patient 5-fold of DS1, so members of several
    seeds with valid_fold 0..4 validate on disjoint patients and, together, on all of them; their
    cross-validation folds are the same too."""
    beats = load_beats(cache_path(real_data_dir))
    held: list[str] = []
    for k in range(5):
        parts = split_indices(beats, "inter", seed=k, valid_frac=0.2, valid_fold=k)
        again = split_indices(beats, "inter", seed=k + 10, valid_frac=0.2, valid_fold=k)
        assert np.array_equal(parts["valid"], again["valid"])  # the seed does not move it
        train, valid = set(beats.record[parts["train"]]), set(beats.record[parts["valid"]])
        assert not train & valid and train | valid == set(DS1)
        held += sorted(valid)
    assert sorted(held) == sorted(DS1)
    cv = [split_indices(beats, "inter", folds=5, fold=2, seed=s, valid_fold=1) for s in (3, 4)]
    assert np.array_equal(cv[0]["test"], cv[1]["test"])  # cross-validation folds too
    with pytest.raises(BeatlabError, match="valid_fold needs patient-wise validation"):
        split_indices(beats, "intra", valid_fold=0)
    two_patients = (beats.record == "101").astype(int)  # DS1 as two patients: two folds
    with pytest.raises(BeatlabError, match="valid_fold must be below 2"):
        split_indices(beats, "inter", valid_fold=2, patients=two_patients)


def test_without_validation_what_would_validate_trains_too(real_data_dir: Path) -> None:
    beats = load_beats(cache_path(real_data_dir))
    for split, folds in (("inter", None), ("inter", 5), ("intra", None)):
        held = split_indices(beats, split, folds=folds, fold=1, valid_frac=0.2)
        every = split_indices(beats, split, folds=folds, fold=1, valid_frac=0.2, validate=False)
        assert len(every["valid"]) == 0 and np.array_equal(every["test"], held["test"])
        assert np.array_equal(every["train"], np.union1d(held["train"], held["valid"]))


def test_same_seed_same_test_set(real_data_dir: Path) -> None:
    beats = load_beats(cache_path(real_data_dir))
    a, b = split_indices(beats, seed=7), split_indices(beats, seed=7)
    c = split_indices(beats, seed=8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])
    sizes = [len(a[k]) / len(beats) for k in ("train", "valid", "test")]
    assert sizes == pytest.approx([0.72, 0.08, 0.20], abs=0.002)
    assert not set(a["train"]) & set(a["test"]) and not set(a["valid"]) & set(a["test"])


@pytest.mark.parametrize("method", ["none", "weights", "oversample", "smote"])
def test_balancing_touches_train_only(real_data_dir: Path, method: str) -> None:
    plain = load_dataset(real_data_dir, seed=2)
    ds = load_dataset(real_data_dir, balance=method, seed=2)
    assert np.array_equal(ds.test.x, plain.test.x) and np.array_equal(ds.valid.y, plain.valid.y)
    assert ds.meta["balance"] == method and ds.meta["balance_seed"] == 2
    counts = ds.train.counts()
    if method in ("oversample", "smote"):
        assert np.all(counts == counts.max())
    else:
        assert np.array_equal(counts, plain.train.counts())
    if method == "weights":
        weights = np.array(ds.meta["class_weights"])
        assert weights[3] > weights[1] > weights[0]  # F rarest, N most common
    if method == "smote":
        synthetic = ds.train.sample == -1
        assert synthetic.sum() == len(ds.train) - len(plain.train)
        assert ds.train.x.dtype == np.float32


def test_balancing_is_seeded(tiny_mitdb: Path) -> None:
    beats, _, _ = build_beats(tiny_mitdb)
    a, _ = balance(beats, "smote", 5, 5)
    b, _ = balance(beats, "smote", 5, 5)
    assert np.array_equal(a.x, b.x)


@pytest.mark.parametrize("method", ["oversample", "smote"])
def test_beats_of_several_leads_are_balanced_as_one_row_each(tiny_mitdb: Path, method: str) -> None:
    beats, _, _ = build_beats(tiny_mitdb)
    one, _ = balance(beats, method, 5, 5)
    stacked = Beats(
        np.stack([beats.x, -beats.x], axis=1), beats.y, beats.rr, beats.record, beats.sample
    )
    two, _ = balance(stacked, method, 5, 5)
    assert two.x.shape == (len(one), 2, beats.x.shape[1])
    assert np.array_equal(two.counts(), one.counts())
    np.testing.assert_allclose(two.x[:, 1], -two.x[:, 0], atol=1e-6)  # the leads stay paired


def test_cli_build_and_info(tiny_mitdb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(tiny_mitdb.parent)
    code, out, _ = run_cli(capsys, "data", "build", "--data-dir", root)
    assert code == 0 and "built: 50 beats" in out
    code, out, _ = run_cli(capsys, "data", "info", "--data-dir", root, "--balance", "oversample")
    assert code == 0 and "balance oversample" in out and "mitdb-kachuee.parquet" in out


def _assert_one_line_error(code: int, err: str, name: str) -> None:
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err and name in err


def _assert_no_cache(root: Path) -> None:
    assert [p.name for p in root.iterdir()] == ["mitdb"]


def test_bad_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "data", "build", "--data-dir", str(tmp_path / "nowhere"))
    _assert_one_line_error(code, err, "nowhere")


def test_bad_record_without_atr(tiny_mitdb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tiny_mitdb / "101.atr").unlink()
    code, _, err = run_cli(capsys, "data", "build", "--data-dir", str(tiny_mitdb.parent))
    _assert_one_line_error(code, err, "101.atr")
    _assert_no_cache(tiny_mitdb.parent)


def test_bad_truncated_dat(tiny_mitdb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dat = tiny_mitdb / "101.dat"
    dat.write_bytes(dat.read_bytes()[:1000])
    code, _, err = run_cli(capsys, "data", "build", "--data-dir", str(tiny_mitdb.parent))
    _assert_one_line_error(code, err, "101.dat")
    assert "truncated" in err
    _assert_no_cache(tiny_mitdb.parent)


def test_bad_malformed_header(tiny_mitdb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tiny_mitdb / "100.hea").write_text("this is not a header\n")
    code, _, err = run_cli(capsys, "data", "build", "--data-dir", str(tiny_mitdb.parent))
    _assert_one_line_error(code, err, "100.hea")
    _assert_no_cache(tiny_mitdb.parent)


def test_bad_multi_segment_record(tiny_mitdb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(tiny_mitdb / "100.dat", tiny_mitdb / "100_0001.dat")
    header = (tiny_mitdb / "100.hea").read_text().replace("100.dat", "100_0001.dat")
    (tiny_mitdb / "100_0001.hea").write_text(header.replace("100 ", "100_0001 ", 1))
    (tiny_mitdb / "100.hea").write_text("100/1 2 360 7200\n100_0001 7200\n")
    code, _, err = run_cli(capsys, "data", "build", "--data-dir", str(tiny_mitdb.parent))
    _assert_one_line_error(code, err, "100.hea")
    assert "a multi-segment record (1 segments): join its segments" in err
    _assert_no_cache(tiny_mitdb.parent)


def _formats_case(real_formats: Path, tmp_path: Path, case: str) -> Path:
    lines = (real_formats / "ptbdb_normal_sample.csv").read_text().splitlines()[:20]
    if case == "columns":
        lines = [line + ",0.0" for line in lines]
    elif case == "nan":
        cells = lines[3].split(",")
        cells[10] = "nan"
        lines[3] = ",".join(cells)
    elif case == "labels":
        lines[5] = lines[5].rsplit(",", 1)[0] + ",7.0"
    path = tmp_path / f"bad_{case}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("case", "problem"),
    [("columns", "expected 188 columns"), ("nan", "NaN"), ("labels", "labels must be")],
)
def test_bad_csv(
    real_formats: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, problem: str
) -> None:
    path = _formats_case(real_formats, tmp_path, case)
    code, _, err = run_cli(capsys, "data", "info", str(path))
    _assert_one_line_error(code, err, path.name)
    assert problem in err


def test_bad_parquet_without_target(
    real_formats: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    path = tmp_path / "no_target.parq"
    pd.read_parquet(real_formats / "heart_test.parq").drop(columns="target").to_parquet(path)
    code, _, err = run_cli(capsys, "data", "info", str(path))
    _assert_one_line_error(code, err, "no_target.parq")
    assert "target" in err


def test_export_round_trips(
    tiny_mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from beatlab.data.formats import read_beats

    root = str(tiny_mitdb.parent)
    for fmt, name in (("kaggle-csv", "mitbih_test.csv"), ("mads-parquet", "heart_big_test.parq")):
        out = tmp_path / fmt
        code, _, _ = run_cli(
            capsys, "data", "export", "--data-dir", root, "--format", fmt, "--out", str(out)
        )
        assert code == 0
        x, y = read_beats(out / name)
        ds = load_dataset(tiny_mitdb.parent)
        assert np.array_equal(x, ds.test.x) and np.array_equal(y, ds.test.y)
    shutil.rmtree(tmp_path / "kaggle-csv")
