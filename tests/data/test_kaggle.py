"""The `kaggle` layout: the Kaggle release's preprocessing, rebuilt exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb
from conftest import REAL_FORMATS, run_cli, write_record

from beatlab.data.build import ensure_beats, read_cache_metadata
from beatlab.data.formats import read_beats
from beatlab.data.layouts import CENTRED, KACHUEE, BuildParams, get_layout, segment_beats
from beatlab.errors import BeatlabError

FS = 360


def reference_beat(signal: np.ndarray, p: int, marks: np.ndarray) -> np.ndarray:
    """The release's rule written out for one beat: every 3rd raw sample from R to 20 % into
    the interval after the next annotation, min-max normalised on its own, cut/padded to 187."""
    k = int(np.searchsorted(marks, p, side="right"))
    end = marks[k] + int(0.2 * (marks[k + 1] - marks[k]))
    part = signal[p:end:3].astype(np.float64)
    part = (part - part.min()) / (part.max() - part.min())
    out = np.zeros(187)
    out[: min(len(part), 187)] = part[:187]
    return out


def test_kaggle_is_a_parameter_set_of_kachuee_and_the_others_keep_todays_options() -> None:
    kaggle = get_layout("kaggle")
    assert kaggle.method == "kachuee" and kaggle.fs == 120 and kaggle.length == 187
    assert (kaggle.first_lead, kaggle.resample, kaggle.normalise, kaggle.beat_end) == (
        True,
        "pick",
        "beat",
        "next_mark",
    )
    default = BuildParams()
    for params in (KACHUEE, CENTRED):
        assert (params.first_lead, params.resample, params.normalise, params.beat_end) == (
            default.first_lead,
            default.resample,
            default.normalise,
            default.beat_end,
        )


def test_beats_follow_the_release_rule_including_non_beat_annotations() -> None:
    rng = np.random.default_rng(1)
    signal = np.cumsum(rng.integers(-5, 6, 20 * FS)) + 1000  # integer ADC-like samples
    peaks = np.arange(200, 20 * FS - 400, 300)
    noise_mark = peaks[5] + 100  # e.g. a '~' noise annotation between two beats
    marks = np.sort(np.append(peaks, noise_mark))
    x, rr = segment_beats(signal, FS, peaks, get_layout("kaggle"), marks)
    assert x.shape == (len(peaks), 187) and x.dtype == np.float32
    for j in range(len(peaks) - 2):
        np.testing.assert_allclose(x[j], reference_beat(signal, peaks[j], marks), atol=1e-7)
    # the noise mark ends beat 5 early: 100 samples + 20 % of 200, every 3rd -> 47 samples
    assert np.count_nonzero(x[5]) <= 47 and np.all(x[5, 47:] == 0.0)
    assert np.count_nonzero(x[4][:110]) >= 100  # a plain beat spans 1.2 x 300 / 3 = 120
    # every beat is normalised on its own; the last ones continue at the last interval
    assert np.all(x.max(axis=1) == 1.0) and np.isfinite(x).all()
    np.testing.assert_allclose(rr[2:-2, 0], 300 / FS)
    # without marks the beats themselves are the marks
    x_peaks, _ = segment_beats(signal, FS, peaks, get_layout("kaggle"))
    np.testing.assert_array_equal(x_peaks[6:], x[6:])


def test_pick_needs_a_whole_multiple_of_the_rate() -> None:
    signal = np.zeros(10 * 128)
    with pytest.raises(BeatlabError, match="whole multiple"):
        segment_beats(signal, 128.0, np.array([100, 300]), get_layout("kaggle"))


def test_first_signal_whatever_its_name(tmp_path: Path) -> None:
    db = tmp_path / "mitdb"
    db.mkdir()
    write_record("114", db, np.random.default_rng(0), leads=("V5", "MLII"))
    kaggle = ensure_beats(tmp_path, get_layout("kaggle"))
    kachuee = ensure_beats(tmp_path, KACHUEE)
    metas = [read_cache_metadata(path) or {} for _, path, _ in (kaggle, kachuee)]
    assert [meta["leads"]["114"] for meta in metas] == ["V5", "MLII"]
    assert kaggle[1].name == "mitdb-kaggle.parquet" and len(kaggle[0]) == len(kachuee[0]) == 25


def test_data_build_and_train_on_the_kaggle_layout(
    tiny_mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(tiny_mitdb.parent)
    code, out, err = run_cli(capsys, "data", "build", "--data-dir", root, "--layout", "kaggle")
    assert code == 0, err
    assert "mitdb-kaggle.parquet" in out
    runs = str(tmp_path / "runs")
    code, _, err = run_cli(
        capsys,
        *("train", "--data-dir", root, "--runs-dir", runs, "--name", "k", "--epochs", "1"),
        *("--tracking-uri", "none", "--set", "layout=kaggle"),
    )
    assert code == 0, err
    if (REAL_FORMATS / "mitbih_train_sample.csv").is_file():  # its own layout: files are fine
        code, text, err = run_cli(
            capsys,
            *("predict", "--run", f"{runs}/k", "--out", str(tmp_path / "p.csv")),
            *("--csv", str(REAL_FORMATS / "mitbih_train_sample.csv")),
        )
        assert code == 0, err


def test_real_rows_are_rebuilt_exactly(real_mitdb: Path, tmp_path: Path) -> None:
    """Two records of the real database hold 62 of the 500 sample rows; 114's are on V5, its
    first signal (beatlab's default layout reads its MLII)."""
    sample = REAL_FORMATS / "mitbih_train_sample.csv"
    if not sample.is_file():
        pytest.skip(f"no {sample}")
    db = tmp_path / "mitdb"
    db.mkdir()
    for record in ("213", "114"):
        for ext in ("hea", "dat", "atr"):
            (db / f"{record}.{ext}").symlink_to(real_mitdb / f"{record}.{ext}")
    beats, _, _ = ensure_beats(tmp_path, get_layout("kaggle"))
    x, y = read_beats(sample)
    b = beats.x.astype(np.float64)
    nearest = ((b * b).sum(axis=1)[None, :] - 2 * x @ b.T).argmin(axis=1)
    exact = np.abs(b[nearest] - x).max(axis=1) < 1e-7
    assert exact.sum() == 62
    assert np.all(beats.y[nearest[exact]] == y[exact])
    assert (beats.record[nearest[exact]] == "114").sum() == 6
    assert wfdb.rdheader(str(db / "114")).sig_name[0] == "V5"
