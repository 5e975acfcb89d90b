"""Beat layouts: how one lead of a record becomes fixed-size beats, one declared spec each.

`kachuee` is the layout of Kachuee et al. 2018 and of the Kaggle / course files: 125 Hz, 10 s
windows min-max normalised, each beat starting at its R peak and spanning 1.2 median R-R,
zero-padded; R-R context in seconds. It stays the default for the study's configs.

`kaggle` is the same idea as the Kaggle release (the study's course files) actually built it,
found by matching all 500 rows of a sample of `mitbih_train.csv` exactly to the raw records:
each record's first signal (V5 in 102, 104 and 114), every third raw sample from the annotated R
peak (so 120 Hz, not the stated 125 Hz, and no anti-alias filter), each beat min-max normalised
on its own, and a beat running from its R peak to 20 % into the interval after the next
annotation of any kind (rhythm changes and noise marks included), cut or zero-padded to 187.

`centred` is made for patients the model has never seen: the lead is band-passed (baseline
wander and high-frequency noise out, and every database reduced to the band they all record),
resampled to 250 Hz and cut into a 0.75 s window from 0.25 s before the R peak, so the P wave and
the T wave are in it; amplitude is normalised per record by the median QRS amplitude, not per 10 s
window; the R-R context is relative to the patient's own rhythm. Beats whose window runs past the
start or end of the record are zero-padded (the band-passed baseline is zero), never dropped.
`deviation` subtracts the record's median beat; `deviation_median_rr` takes the patient's usual
R-R as a median; `deviation_aligned` first moves each R peak to where its QRS matches the record's
median QRS, so a peak a detector misplaced is cut where the true one would have been.

In every layout, a beat whose window holds an invalid sample (WFDB's missing-value marker, a
lead off) is left out: the reader bridges the gap so filters do not ring, but the beat itself
would be made up (`over_invalid`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import butter, resample_poly, sosfiltfilt

from beatlab import BEAT_LENGTH
from beatlab.errors import BeatlabError, unknown

_RESAMPLE_PADS = ("edge", "constant")


@dataclass(frozen=True)
class BuildParams:
    """Everything that changes the built beats; stored in the cache so a change forces a rebuild.

    `method` picks the segmenter; the other fields are its parameters (a field a method does not
    use keeps its default)."""

    name: str = "kachuee"
    method: str = "kachuee"
    fs: int = 125
    length: int = BEAT_LENGTH
    rr_local_beats: int = 10
    # kachuee
    window_s: float = 10.0
    period_factor: float = 1.2
    first_lead: bool = False
    """Use each record's first signal, whatever its name, instead of the database's preferred
    leads."""
    resample: str = "poly"
    """poly: polyphase resampling to `fs`; pick: every (record rate / fs)-th raw sample counted
    from each R peak, unfiltered (the rate must be a multiple of `fs`)."""
    resample_pad: str = "constant"
    """What polyphase resampling takes to lie past a lead's ends: edge (its end values) or
    constant (zero, as runs built before this field read). Zero drags a lead's first and last
    samples towards 0, by as much as the recorder's offset, so a window normalised per 10 s
    changes with that offset: every beat of a 10-second recording. Centred layouts band-pass
    the lead first, which takes the offset away, so they keep zero."""
    normalise: str = "window"
    """window: min-max over each `window_s` window; beat: min-max over each beat's own span."""
    beat_end: str = "period"
    """period: a beat spans `period_factor` times its window's median R-R; next_mark: it ends
    (period_factor - 1) into the interval that follows the next annotation of any kind."""
    # centred
    before_s: float = 0.0
    band_low_hz: float = 0.0
    band_high_hz: float = 0.0
    qrs_s: float = 0.05
    deviation: bool = False
    """centred: subtract the record's median beat, keeping how a beat differs from the patient's
    usual one (what generalises across patients) rather than the patient's own shape."""
    rr_stat: str = "mean"
    """centred: how the patient's usual R-R is taken, locally and over the record: mean, or median
    (not pulled by pauses and runs of premature beats, so a premature beat stands out more)."""
    align_s: float = 0.0
    """centred: how far each beat's R peak may move (seconds) to where the beat's QRS, within
    align_s of its peak, best matches the record's median beat (cross-correlation), before the
    beat is cut and its R-R taken; 0 keeps the given peaks. A detector that misplaces one peak
    would otherwise cut a beat off the median it is compared with, and the model reads the
    difference as another class."""
    rr_edge: str = "neighbour"
    """The interval a record's first beat (previous) and last beat (next) lack: neighbour reuses
    their one interval (Kachuee's reading); median takes the record's median R-R, so that in a
    10-second recording the first beat does not look premature when its next beat is."""


Segmenter = Callable[
    [np.ndarray, float, np.ndarray, BuildParams, np.ndarray | None, np.ndarray | None],
    tuple[np.ndarray, np.ndarray],
]
"""(signal, fs, R peaks, params, marks, valid) -> ((n, length) beats, (n, 3) R-R context);
`marks` are the samples of every annotation of the record (beats and others), None where there
are none; `valid` flags the beats whose window holds no invalid sample (None: all), the only ones
a record-wide statistic may come from."""


def rr_intervals(
    peaks: np.ndarray, fs: float, n: int, edge: str = "neighbour"
) -> tuple[np.ndarray, np.ndarray]:
    """Previous and next R-R interval of each beat in seconds; the first beat's previous and the
    last beat's next interval are taken as `edge` says (`BuildParams.rr_edge`); a lone beat gets
    0."""
    rr_s = np.diff(np.asarray(peaks, dtype=np.float64)) / fs
    if len(rr_s) == 0:
        rr_s = np.zeros(1)
    if edge == "neighbour":
        first, last = rr_s[:1], rr_s[-1:]
    elif edge == "median":
        first = last = np.median(rr_s, keepdims=True)
    else:
        raise BeatlabError(f"unknown rr_edge {edge!r} (neighbour or median)")
    prev = np.concatenate([first, rr_s])[:n]
    nxt = np.concatenate([rr_s, last])[:n]
    return prev, nxt


def resample(signal: np.ndarray, fs: float, to: int, pad: str = "constant") -> np.ndarray:
    """`signal` at `to` Hz; `pad` is `BuildParams.resample_pad`."""
    if pad not in _RESAMPLE_PADS:
        raise BeatlabError(f"unknown resample_pad {pad!r} ({' or '.join(_RESAMPLE_PADS)})")
    ratio = Fraction(to / fs).limit_denominator(1000)
    return resample_poly(
        np.asarray(signal, dtype=np.float32), ratio.numerator, ratio.denominator, padtype=pad
    )


def _source(
    signal: np.ndarray, fs: float, peaks: np.ndarray, params: BuildParams
) -> tuple[np.ndarray, float, np.ndarray, int]:
    """The samples beats are read from, their rate, each R peak's index there, and the stride
    between a beat's samples: the resampled lead (stride 1), or the raw lead read every
    fs/params.fs-th sample from each R peak (`resample="pick"`)."""
    if params.resample == "poly":
        sig = resample(signal, fs, params.fs, params.resample_pad)
        r = np.minimum(np.rint(np.asarray(peaks) * params.fs / fs).astype(np.int64), len(sig) - 1)
        return sig, float(params.fs), r, 1
    stride = fs / params.fs
    if params.resample != "pick" or stride != round(stride):
        raise BeatlabError(
            f"layout {params.name!r}: resample={params.resample!r} cannot take {params.fs} Hz "
            f"from {fs:g} Hz (pick needs a whole multiple)"
        )
    raw = np.asarray(signal, dtype=np.float64)
    return raw, fs, np.minimum(np.asarray(peaks, dtype=np.int64), len(raw) - 1), int(stride)


def _period_lengths(
    r: np.ndarray, n_src: int, fs_src: float, stride: int, params: BuildParams
) -> np.ndarray:
    """Samples per beat: period_factor times the median R-R of consecutive beats in the beat's
    window; windows with fewer than two beats fall back to the record's median R-R."""
    win = int(round(params.window_s * fs_src))
    w_r = r // win
    rr_samples = np.diff(r)
    same = w_r[1:] == w_r[:-1]
    fallback = (
        float(np.median(rr_samples))
        if len(rr_samples)
        else params.length * stride / params.period_factor
    )
    period = np.full(len(range(0, n_src, win)), fallback)
    if same.any():
        medians = pd.Series(rr_samples[same]).groupby(w_r[1:][same]).median()
        period[medians.index.to_numpy()] = medians.to_numpy()
    return np.rint(params.period_factor * period[w_r] / stride).astype(np.int64)


def _mark_lengths(
    peaks: np.ndarray,
    marks: np.ndarray,
    fs: float,
    r: np.ndarray,
    fs_src: float,
    stride: int,
    params: BuildParams,
) -> np.ndarray:
    """Samples per beat when a beat ends (period_factor - 1) into the interval after the next
    mark: the Kaggle release's rule. Past the last marks, marks go on at the last interval."""
    m = np.sort(np.asarray(marks, dtype=np.float64))
    gap = m[-1] - m[-2] if len(m) > 1 else params.length * fs / params.fs
    ext = np.concatenate([m, m[-1] + gap * np.arange(1, 3)])
    k = np.searchsorted(m, np.asarray(peaks), side="right")
    first, second = ext[k], ext[k + 1]
    # rounded first: 1.2 - 1 is 0.19999999999999996, and the release truncates 0.2 * interval
    tail = np.floor(np.round((params.period_factor - 1) * (second - first), 9))
    end = (first + tail) * fs_src / fs
    return np.ceil((end - r) / stride).astype(np.int64)


def _window_normalised(src: np.ndarray, fs_src: float, params: BuildParams) -> np.ndarray:
    """The whole lead min-max normalised per `window_s` window."""
    win = int(round(params.window_s * fs_src))
    starts = np.arange(0, len(src), win)
    lo = np.minimum.reduceat(src, starts)
    span = np.maximum.reduceat(src, starts) - lo
    span[span == 0] = 1.0
    w_sig = np.arange(len(src)) // win
    return ((src - lo[w_sig]) / span[w_sig]).astype(np.float32)


def _beat_range(
    src: np.ndarray, r: np.ndarray, n: np.ndarray, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each beat's minimum and span over all its samples (also those past `length`)."""
    n = np.maximum(n, 1)
    starts = np.cumsum(n) - n
    within = np.arange(int(n.sum())) - np.repeat(starts, n)
    values = src[np.repeat(r, n) + stride * within]
    lo = np.minimum.reduceat(values, starts)
    span = np.maximum.reduceat(values, starts) - lo
    span[span == 0] = 1.0
    return lo, span


def segment_kachuee(
    signal: np.ndarray,
    fs: float,
    peaks: np.ndarray,
    params: BuildParams,
    marks: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Kachuee et al. 2018: a beat from R over 1.2 T, min-max normalised, zero-padded; the
    options of `BuildParams` choose between the paper's reading and the Kaggle release's (no
    record-wide statistic, so `valid` is not needed)."""
    src, fs_src, r, stride = _source(signal, fs, peaks, params)
    if params.beat_end == "period":
        n = _period_lengths(r, len(src), fs_src, stride, params)
    elif params.beat_end == "next_mark":
        given = peaks if marks is None or len(marks) == 0 else marks
        n = _mark_lengths(peaks, given, fs, r, fs_src, stride, params)
    else:
        raise BeatlabError(f"layout {params.name!r}: unknown beat_end {params.beat_end!r}")
    n = np.minimum(n, (len(src) - 1 - r) // stride + 1)  # not past the end of the record

    offsets = np.arange(params.length)
    idx = np.minimum(r[:, None] + stride * offsets[None, :], len(src) - 1)
    keep = offsets[None, :] < n[:, None]
    if params.normalise == "window":
        values = _window_normalised(src, fs_src, params)[idx]
    elif params.normalise == "beat":
        lo, span = _beat_range(src, r, n, stride)
        values = (src[idx] - lo[:, None]) / span[:, None]
    else:
        raise BeatlabError(f"layout {params.name!r}: unknown normalise {params.normalise!r}")
    x = np.where(keep, values, np.float32(0.0))

    prev, nxt = rr_intervals(peaks, fs, len(r), params.rr_edge)
    local = pd.Series(prev).rolling(params.rr_local_beats, min_periods=1).mean().to_numpy()
    rr = np.stack([prev, nxt, local], axis=1).astype(np.float32)
    return x.astype(np.float32), rr


def _lags(
    padded: np.ndarray, at: np.ndarray, params: BuildParams, valid: np.ndarray | None
) -> np.ndarray:
    """How many samples each peak at `at` (indices into `padded`) moves for `align_s`: the shift
    within +-reach whose QRS (+-reach around the peak) best matches the record's median QRS;
    zeros when the layout does not align.

    The median is taken twice, from the `valid` beats: first at the given peaks (blurred where
    they are misplaced), then at the peaks found with it, centred on its energy so that where the
    beats are cut does not depend on where the given peaks sat."""
    reach = int(round(params.align_s * params.fs))
    pick = np.ones(len(at), dtype=bool) if valid is None else valid
    if reach == 0 or not pick.any():
        return np.zeros(len(at), dtype=np.int64)
    span = 2 * reach + 1
    wide = padded[(at - 2 * reach)[:, None] + np.arange(span + 2 * reach)[None, :]]
    windows = sliding_window_view(wide, span, axis=1)  # window k: the peak moved k - reach
    lag = np.argmax(windows @ np.median(wide[pick][:, reach:-reach], axis=0), axis=1)
    template = np.median(windows[np.arange(len(at)), lag][pick], axis=0)
    energy = template**2
    off = int(round(float(energy @ np.arange(span) / max(energy.sum(), 1e-12)))) - reach
    template = np.roll(template, -off)
    template[max(0, span - off) :] = 0.0  # what the roll brought round from the other end
    template[: max(0, -off)] = 0.0
    return np.argmax(windows @ template, axis=1).astype(np.int64) - reach


def segment_centred(
    signal: np.ndarray,
    fs: float,
    peaks: np.ndarray,
    params: BuildParams,
    marks: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A window around R on the band-passed lead, per-record amplitude and median beat from the
    `valid` beats, relative R-R (`marks` are not needed: the window does not depend on other
    annotations)."""
    sos = butter(2, [params.band_low_hz, params.band_high_hz], btype="band", fs=fs, output="sos")
    sig = resample(
        sosfiltfilt(sos, np.asarray(signal, dtype=np.float64)), fs, params.fs, params.resample_pad
    )
    r = np.rint(np.asarray(peaks) * params.fs / fs).astype(np.int64)
    before, n = r_index(params), params.length
    padded = np.concatenate([np.zeros(n, np.float32), sig.astype(np.float32), np.zeros(n)])
    del sig
    lag = _lags(padded, r + n, params, valid)
    x = padded[(r + lag + n - before)[:, None] + np.arange(n)[None, :]]  # new: in place below
    del padded

    half = max(1, int(round(params.qrs_s * params.fs)))
    qrs = (x if valid is None else x[valid])[:, max(0, before - half) : before + half + 1]
    scale = float(np.median(qrs.max(axis=1) - qrs.min(axis=1))) if len(qrs) else 1.0
    x /= scale if scale > 0 else 1.0
    if params.deviation and len(qrs):
        x -= np.median(x if valid is None else x[valid], axis=0)

    # aligned: the peaks where the beats were cut, so a misplaced peak found again has its R-R too
    moved = (r + lag) * (fs / params.fs) if params.align_s else peaks
    prev, nxt = rr_intervals(moved, fs, len(r), params.rr_edge)
    if params.rr_stat not in ("mean", "median"):
        raise BeatlabError(f"layout {params.name!r}: unknown rr_stat {params.rr_stat!r}")
    window = pd.Series(prev).rolling(params.rr_local_beats, center=True, min_periods=1)
    local = getattr(window, params.rr_stat)().to_numpy()
    usual = float(getattr(np, params.rr_stat)(prev)) if len(prev) else 0.0
    eps = 1e-3
    rr = np.stack(
        [prev / np.maximum(local, eps), nxt / np.maximum(local, eps), local / max(usual, eps)],
        axis=1,
    )
    return x.astype(np.float32), rr.astype(np.float32)


SEGMENTERS: dict[str, Segmenter] = {"kachuee": segment_kachuee, "centred": segment_centred}
RR_MEANING = {
    "kachuee": "previous, next and local mean R-R in seconds",
    "centred": "previous and next R-R over the local mean (or median, per the layout's rr_stat), "
    "local over the record's",
}
"""What the three R-R features of each segmentation method hold."""

_LAYOUTS: dict[str, BuildParams] = {}


def register_layout(params: BuildParams) -> BuildParams:
    if params.name in _LAYOUTS or params.method not in SEGMENTERS:
        raise ValueError(f"layout {params.name!r}: taken name or unknown method {params.method!r}")
    _LAYOUTS[params.name] = params
    return params


def list_layouts() -> list[str]:
    return sorted(_LAYOUTS)


def get_layout(name: str) -> BuildParams:
    if name not in _LAYOUTS:
        raise unknown("beat layout", name, list_layouts())
    return _LAYOUTS[name]


def layout_params(params: BuildParams) -> dict[str, Any]:
    """A layout's parameters as a run stores them (run.json's dataset "layout_params")."""
    return asdict(params)


def stored_layout(stored: Any, name: str, source: Path | str | None = None) -> BuildParams:
    """The layout a run was trained on, from the parameters it stored, so that it reads new
    records as it read its training beats even after the registered layout changes (a field a
    later beatlab adds defaults to the earlier reading). A run from before runs stored them
    (`stored` None) reads the layout as registered now."""
    if stored is None:
        return get_layout(name)
    kinds = {f.name: type(getattr(BuildParams(), f.name)) for f in fields(BuildParams)}
    bad = (
        [f"not a table of the {name} layout's parameters"]
        if not isinstance(stored, dict) or stored.get("name") != name
        else [
            key
            for key, value in stored.items()
            if key not in kinds
            or type(value) is not kinds[key]
            and not (kinds[key] is float and type(value) is int)
        ]
    )
    if bad:
        raise BeatlabError(f"'layout_params': {', '.join(map(str, bad))}", source)
    params = BuildParams(**stored)
    if params.method not in SEGMENTERS:
        raise BeatlabError(f"'layout_params': unknown method {params.method!r}", source)
    if params.align_s < 0:
        raise BeatlabError(
            f"'layout_params': align_s must be 0 or more, got {params.align_s}", source
        )
    return params


def r_index(params: BuildParams) -> int:
    """Which sample of a beat in this layout is its R peak: `before_s` into a centred window,
    the first of a kachuee one (it starts at R)."""
    return round(params.before_s * params.fs) if params.method == "centred" else 0


def beat_span(params: BuildParams, fs: float) -> tuple[int, int]:
    """Samples at `fs` a beat's window reaches before and after its R peak (an aligning layout's
    window may move by `align_s` either way)."""
    before = params.before_s if params.method == "centred" else 0.0
    reach = params.align_s if params.method == "centred" else 0.0
    after = params.length / params.fs - before
    return math.ceil((before + reach) * fs), math.ceil((after + reach) * fs)


def over_invalid(
    peaks: np.ndarray, invalid: np.ndarray, params: BuildParams, fs: float
) -> np.ndarray:
    """Which beats' windows hold an invalid sample of the lead (`invalid`, one flag a sample)."""
    if not invalid.any():
        return np.zeros(len(peaks), dtype=bool)
    before, after = beat_span(params, fs)
    seen = np.concatenate([[0], np.cumsum(invalid)])
    lo = np.clip(np.asarray(peaks) - before, 0, len(invalid))
    hi = np.clip(np.asarray(peaks) + after, 0, len(invalid))
    return np.asarray(seen[hi] - seen[lo] > 0)


def segment_beats(
    signal: np.ndarray,
    fs: float,
    peaks: np.ndarray,
    params: BuildParams | None = None,
    marks: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut one lead into beats at the given R peaks (sample indices at `fs`), per `params`;
    `marks` are every annotation's sample (None: the peaks are all there is), `valid` the beats
    clear of invalid samples (None: all; see `over_invalid`).

    Shared by the dataset builder and `beatlab predict`, so a new recording is segmented exactly
    like the training data."""
    params = params or KACHUEE
    return SEGMENTERS[params.method](signal, fs, peaks, params, marks, valid)


def segment_leads(
    signals: list[np.ndarray],
    fs: float,
    peaks: np.ndarray,
    params: BuildParams,
    marks: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`segment_beats` of each of a record's leads at the same R peaks: (n, length) beats and
    (n, 3) R-R for one lead, (n, leads, length) and (n, leads, 3) for several (an ensemble whose
    members read different leads). Each lead has its own R-R, since an aligning layout moves
    each lead's peaks on its own."""
    cut = [segment_beats(signal, fs, peaks, params, marks, valid) for signal in signals]
    if len(cut) == 1:
        return cut[0]
    return np.stack([x for x, _ in cut], axis=1), np.stack([rr for _, rr in cut], axis=1)


def segment_clear(
    signals: list[np.ndarray],
    fs: float,
    peaks: np.ndarray,
    params: BuildParams,
    marks: np.ndarray | None,
    invalid: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`segment_leads` of the beats whose window holds no invalid sample (`invalid`: of any of
    the leads), and which of `peaks` those are. The record-wide statistics come from them alone,
    and the R-R context still counts every beat. Shared by the builder and `beatlab predict`."""
    kept = ~over_invalid(peaks, invalid, params, fs)
    x, rr = segment_leads(signals, fs, peaks, params, marks, kept)
    return (x, rr, kept) if kept.all() else (x[kept], rr[kept], kept)


KACHUEE = register_layout(BuildParams(resample_pad="edge"))
FILE_LAYOUTS = ("kachuee", "kaggle")
"""Layouts whose beats are shaped like the Kaggle CSV / course Parquet files (`kaggle` exactly):
models trained on them may read those files."""
CENTRED = register_layout(
    replace(
        KACHUEE,
        name="centred",
        method="centred",
        fs=250,
        before_s=0.25,
        band_low_hz=0.5,
        band_high_hz=40.0,
        rr_edge="median",
        resample_pad="constant",
    )
)
DEVIATION = register_layout(replace(CENTRED, name="deviation", deviation=True))
DEVIATION_MEDIAN_RR = register_layout(
    replace(DEVIATION, name="deviation_median_rr", rr_stat="median")
)
DEVIATION_ALIGNED = register_layout(
    replace(DEVIATION_MEDIAN_RR, name="deviation_aligned", align_s=0.1)
)
KAGGLE = register_layout(
    replace(
        KACHUEE,
        name="kaggle",
        fs=120,
        first_lead=True,
        resample="pick",
        normalise="beat",
        beat_end="next_mark",
    )
)
