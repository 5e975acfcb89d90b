"""Beat layouts: the registry, and the `centred` layout made for new patients."""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pytest

from beatlab.data.layouts import (
    CENTRED,
    DEVIATION_ALIGNED,
    DEVIATION_MEDIAN_RR,
    KACHUEE,
    get_layout,
    list_layouts,
    over_invalid,
    segment_beats,
    segment_leads,
    stored_layout,
)
from beatlab.errors import BeatlabError

FS = 360


def synthetic(
    seconds: float = 30.0, rr: float = 0.8, gain: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """A lead with a narrow R wave every `rr` s on a slow baseline wander, and its R peaks."""
    t = np.arange(int(seconds * FS)) / FS
    peaks = np.arange(int(0.5 * FS), t.size - int(0.5 * FS), int(rr * FS))
    signal = 0.8 * np.sin(2 * np.pi * 0.2 * t)  # wander, removed by the band-pass
    for p in peaks:
        signal += gain * np.exp(-(((t - p / FS) / 0.01) ** 2))
    return signal, peaks


def test_registry() -> None:
    assert list_layouts() == [
        "centred",
        "deviation",
        "deviation_aligned",
        "deviation_median_rr",
        "kachuee",
        "kaggle",
    ]
    assert get_layout("kachuee") is KACHUEE and KACHUEE.fs == 125 and KACHUEE.length == 187
    with pytest.raises(BeatlabError, match="did you mean 'centred'"):
        get_layout("centered")


def test_kachuee_beats_do_not_depend_on_the_recorders_offset() -> None:
    """The same ECG stored with another ADC baseline is the same beats, also in a 10-second
    recording, where resampling against zero past its ends moved every beat by up to 0.5."""
    signal, peaks = synthetic(seconds=10.0)
    signal = 200 * signal  # in ADC units of 5 uV, as MIT-BIH stores them
    beats, _ = segment_beats(signal, FS, peaks, KACHUEE, None)
    offset, _ = segment_beats(signal + 1024, FS, peaks, KACHUEE, None)
    np.testing.assert_allclose(offset, beats, atol=1e-3)
    zero = replace(KACHUEE, resample_pad="constant")  # runs built before resample_pad
    before, _ = segment_beats(signal + 1024, FS, peaks, zero, None)
    assert np.abs(before - beats).max() > 0.1


def test_a_run_stored_before_resample_pad_reads_as_it_was_built() -> None:
    stored = {k: v for k, v in asdict(KACHUEE).items() if k != "resample_pad"}
    assert KACHUEE.resample_pad == "edge"
    assert stored_layout(stored, "kachuee").resample_pad == "constant"
    signal, peaks = synthetic(seconds=10.0)
    with pytest.raises(BeatlabError, match="unknown resample_pad 'reflect'"):
        segment_beats(signal, FS, peaks, replace(KACHUEE, resample_pad="reflect"), None)


def test_centred_beats_hold_the_r_peak_at_a_fixed_place_and_record_scale() -> None:
    signal, peaks = synthetic()
    x, rr = segment_beats(signal, FS, peaks, CENTRED)
    assert x.shape == (len(peaks), 187) and x.dtype == np.float32
    r = round(CENTRED.before_s * CENTRED.fs)
    assert np.all(np.abs(np.argmax(x[2:-2], axis=1) - r) <= 1)
    assert np.median(x[:, r]) == pytest.approx(1.0, abs=0.15)  # median QRS amplitude ~ 1
    # the same beats at 5x the gain give the same representation: amplitude is per record
    x5, _ = segment_beats(signal * 5, FS, peaks, CENTRED)
    np.testing.assert_allclose(x5, x, atol=1e-4)
    np.testing.assert_allclose(rr[2:-2], 1.0, atol=1e-3)  # a regular rhythm: ratios of 1


def test_centred_rr_is_relative_to_the_patients_rhythm() -> None:
    signal, peaks = synthetic(rr=1.0)
    peaks = peaks.copy()
    peaks[10] -= int(0.35 * FS)  # a premature beat
    x, rr = segment_beats(signal, FS, peaks, CENTRED)
    assert rr[10, 0] < 0.75 and rr[10, 1] > 1.25  # short before, compensatory pause after
    slow, _ = synthetic(rr=1.5)
    _, rr_slow = segment_beats(slow, FS, synthetic(rr=1.5)[1], CENTRED)
    np.testing.assert_allclose(rr_slow[2:-2, :2], 1.0, atol=1e-3)  # no seconds: any heart rate


def test_median_rr_keeps_normal_beats_normal_next_to_a_pause() -> None:
    signal, peaks = synthetic(rr=1.0)
    paused = np.delete(peaks, [10, 11])  # a 3 s pause between beats 9 and 10
    _, rr_mean = segment_beats(signal, FS, paused, CENTRED)
    _, rr_median = segment_beats(signal, FS, paused, DEVIATION_MEDIAN_RR)
    assert rr_mean[12, 0] < 0.85  # the pause pulls the local mean: a normal beat looks premature
    assert rr_median[12, 0] == pytest.approx(1.0, abs=1e-3)
    assert rr_median[20, 2] == pytest.approx(1.0, abs=1e-3)  # the record's usual R-R is 1 s


def test_beats_at_the_record_edges_are_padded_not_dropped() -> None:
    signal, _ = synthetic(seconds=5)
    peaks = np.array([3, 900, len(signal) - 4])
    x, _ = segment_beats(signal, FS, peaks, CENTRED)
    assert len(x) == 3 and np.isfinite(x).all()
    assert np.all(x[0, :50] == 0.0) and np.all(x[2, -100:] == 0.0)
    kx, _ = segment_beats(signal, FS, peaks, KACHUEE)
    assert len(kx) == 3 and np.isfinite(kx).all()


def test_the_first_and_last_beat_take_the_records_usual_interval() -> None:
    """A recording starting N, S: the first beat has no previous interval, and borrowing the
    short one after it would call a normal beat premature (10-s recordings have one in ten)."""
    signal, peaks = synthetic(seconds=10, rr=1.0)
    peaks = peaks.copy()
    peaks[1] -= int(0.35 * FS)  # the second beat premature
    peaks[-1] -= int(0.35 * FS)  # and the last
    for params in (CENTRED, DEVIATION_MEDIAN_RR):
        _, rr = segment_beats(signal, FS, peaks, params)
        assert rr[0, 0] == pytest.approx(rr[4, 0], abs=0.1)  # as usual, not premature
        assert rr[1, 0] < 0.75 and rr[-1, 0] < 0.75
        assert rr[-1, 1] == pytest.approx(rr[4, 1], abs=0.1)  # no pause borrowed after it
    _, kachuee = segment_beats(signal, FS, peaks, KACHUEE)  # the study's reading, unchanged
    assert kachuee[0, 0] == kachuee[1, 0] and kachuee[-1, 1] == kachuee[-1, 0]


def test_beats_over_invalid_samples_are_found_and_set_no_record_statistic() -> None:
    signal, peaks = synthetic()
    invalid = np.zeros(len(signal), dtype=bool)
    invalid[10 * FS : 12 * FS] = True  # a lead off for 2 s
    gap = over_invalid(peaks, invalid, CENTRED, FS)
    before, after = 0.25 * FS, 0.5 * FS  # the centred window: 0.25 s before R, 0.5 s after
    near = (peaks + after > 10 * FS) & (peaks - before < 12 * FS)
    assert gap.tolist() == near.tolist() and 2 < gap.sum() < 6
    assert not over_invalid(peaks, np.zeros_like(invalid), CENTRED, FS).any()
    kachuee = over_invalid(peaks, invalid, KACHUEE, FS)  # from R on, 187 samples at 125 Hz
    assert kachuee.tolist() == ((peaks + 187 / 125 * FS > 10 * FS) & (peaks < 12 * FS)).tolist()
    # a flat stretch (what a bridged gap looks like) moves neither the scale nor the median beat
    flat = signal.copy()
    flat[invalid] = 0.0
    x, rr = segment_beats(flat, FS, peaks, DEVIATION_MEDIAN_RR, valid=~gap)
    alone, _ = segment_beats(flat, FS, peaks[~gap], DEVIATION_MEDIAN_RR)
    np.testing.assert_array_equal(x[~gap], alone)
    _, rr_all = segment_beats(flat, FS, peaks, DEVIATION_MEDIAN_RR)
    np.testing.assert_array_equal(rr, rr_all)  # R-R still counts every beat


def test_an_aligned_layout_cuts_a_misplaced_peak_where_it_cut_the_true_one() -> None:
    """A detector's error on one beat (10 samples at 360 Hz either way, its neighbours right)
    leaves that beat and its R-R as they were; without alignment the beat is cut off the median
    beat and reads as a large deviation."""
    signal, peaks = synthetic()
    t = np.arange(signal.size) / FS
    for p in peaks:  # a T wave, so the beat is not symmetric about R
        signal += 0.3 * np.exp(-(((t - p / FS - 0.25) / 0.05) ** 2))
    signal += np.random.default_rng(0).normal(0, 0.02, signal.size)
    moved = peaks.copy()
    moved[5::4] += 10
    moved[7::4] -= 10
    x, rr = segment_beats(signal, FS, peaks, DEVIATION_ALIGNED)
    x_moved, rr_moved = segment_beats(signal, FS, moved, DEVIATION_ALIGNED)
    np.testing.assert_allclose(x_moved, x, atol=0.05)
    np.testing.assert_allclose(rr_moved, rr, atol=0.01)
    plain, _ = segment_beats(signal, FS, peaks, DEVIATION_MEDIAN_RR)
    plain_moved, rr_plain = segment_beats(signal, FS, moved, DEVIATION_MEDIAN_RR)
    assert np.abs(plain_moved - plain)[5].max() > 0.5 and np.abs(rr_plain[5, 0] - 1) > 0.03
    r = round(DEVIATION_ALIGNED.before_s * DEVIATION_ALIGNED.fs)
    undone = replace(DEVIATION_ALIGNED, deviation=False)
    assert np.all(np.abs(np.argmax(segment_beats(signal, FS, moved, undone)[0], axis=1) - r) <= 1)


def test_each_lead_keeps_its_own_r_r_where_alignment_moves_its_peaks_apart() -> None:
    """Members of an ensemble over leads were each trained on their own lead's aligned R-R, so a
    record's leads are served theirs, not the first lead's."""
    first, peaks = synthetic()
    t = np.arange(first.size) / FS
    late = np.zeros(len(peaks), dtype=int)
    late[5::4] = 10  # where this lead's R wave sits after the annotated peak
    second = sum(np.exp(-(((t - r / FS) / 0.01) ** 2)) for r in peaks + late)
    x, rr = segment_leads([first, second], FS, peaks, DEVIATION_ALIGNED)
    assert x.shape == (len(peaks), 2, 187) and rr.shape == (len(peaks), 2, 3)
    for lead, signal in enumerate((first, second)):
        np.testing.assert_array_equal(
            rr[:, lead], segment_beats(signal, FS, peaks, DEVIATION_ALIGNED)[1]
        )
    assert np.abs(rr[:, 1] - rr[:, 0]).max() > 0.01
    _, plain = segment_leads([first, second], FS, peaks, DEVIATION_MEDIAN_RR)
    np.testing.assert_array_equal(plain[:, 1], plain[:, 0])  # without alignment, the same peaks


def test_an_aligned_layouts_window_reaches_further_and_older_runs_do_not_align() -> None:
    signal, peaks = synthetic()
    invalid = np.zeros(len(signal), dtype=bool)
    invalid[peaks[12] - int(0.29 * FS)] = True  # clear of both windows, within their reach
    plain = over_invalid(peaks, invalid, DEVIATION_MEDIAN_RR, FS)
    aligned = over_invalid(peaks, invalid, DEVIATION_ALIGNED, FS)
    assert not plain.any() and np.flatnonzero(aligned).tolist() == [11, 12]
    stored = {k: v for k, v in asdict(DEVIATION_MEDIAN_RR).items() if k != "align_s"}
    assert stored_layout(stored, "deviation_median_rr").align_s == 0.0
    with pytest.raises(BeatlabError, match="align_s must be 0 or more, got -0.1"):
        stored_layout({**asdict(DEVIATION_ALIGNED), "align_s": -0.1}, "deviation_aligned")
