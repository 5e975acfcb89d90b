"""Beat layouts: how one lead of a record becomes fixed-size beats, one declared spec each.

`kachuee` is the layout of Kachuee et al. 2018 and of the Kaggle / course files: 125 Hz, 10 s
windows min-max normalised, each beat starting at its R peak and spanning 1.2 median R-R,
zero-padded; R-R context in seconds. It stays the default for the study's configs.

`centred` is made for patients the model has never seen: the lead is band-passed (baseline
wander and high-frequency noise out, and every database reduced to the band they all record),
resampled to 250 Hz and cut into a 0.75 s window from 0.25 s before the R peak, so the P wave and
the T wave are in it; amplitude is normalised per record by the median QRS amplitude, not per 10 s
window; the R-R context is relative to the patient's own rhythm. Beats whose window runs past the
start or end of the record are zero-padded (the band-passed baseline is zero), never dropped.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import pandas as pd
from scipy.signal import butter, resample_poly, sosfiltfilt

from beatlab import BEAT_LENGTH
from beatlab.errors import BeatlabError


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
    # centred
    before_s: float = 0.0
    band_low_hz: float = 0.0
    band_high_hz: float = 0.0
    qrs_s: float = 0.05


Segmenter = Callable[[np.ndarray, float, np.ndarray, BuildParams], tuple[np.ndarray, np.ndarray]]
"""(signal, fs, R peaks, params) -> ((n, length) beats, (n, 3) R-R context)."""


def rr_intervals(peaks: np.ndarray, fs: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Previous and next R-R interval of each beat in seconds (the first and last beat reuse
    their one neighbour's interval; a lone beat gets 0)."""
    rr_s = np.diff(np.asarray(peaks, dtype=np.float64)) / fs
    if len(rr_s) == 0:
        rr_s = np.zeros(1)
    prev = np.concatenate([rr_s[:1], rr_s])[:n]
    nxt = np.concatenate([rr_s, rr_s[-1:]])[:n]
    return prev, nxt


def resample(signal: np.ndarray, fs: float, to: int) -> np.ndarray:
    ratio = Fraction(to / fs).limit_denominator(1000)
    return resample_poly(np.asarray(signal, dtype=np.float32), ratio.numerator, ratio.denominator)


def segment_kachuee(
    signal: np.ndarray, fs: float, peaks: np.ndarray, params: BuildParams
) -> tuple[np.ndarray, np.ndarray]:
    """Kachuee et al. 2018: per-window min-max normalisation, beat from R over 1.2 T."""
    sig = resample(signal, fs, params.fs)
    r = np.minimum(np.rint(np.asarray(peaks) * params.fs / fs).astype(np.int64), len(sig) - 1)

    win = int(round(params.window_s * params.fs))
    starts = np.arange(0, len(sig), win)
    lo = np.minimum.reduceat(sig, starts)
    span = np.maximum.reduceat(sig, starts) - lo
    span[span == 0] = 1.0
    w_sig = np.arange(len(sig)) // win
    norm = ((sig - lo[w_sig]) / span[w_sig]).astype(np.float32)

    # Nominal period per window: median R-R of consecutive beats inside it; windows with fewer
    # than two beats fall back to the record's median R-R.
    w_r = r // win
    rr_samples = np.diff(r)
    same = w_r[1:] == w_r[:-1]
    fallback = (
        float(np.median(rr_samples)) if len(rr_samples) else params.length / params.period_factor
    )
    period = np.full(len(starts), fallback)
    if same.any():
        medians = pd.Series(rr_samples[same]).groupby(w_r[1:][same]).median()
        period[medians.index.to_numpy()] = medians.to_numpy()
    span_len = np.minimum(np.rint(params.period_factor * period[w_r]), params.length).astype(int)

    offsets = np.arange(params.length)
    idx = r[:, None] + offsets[None, :]
    keep = (offsets[None, :] < span_len[:, None]) & (idx < len(sig))
    x = np.where(keep, norm[np.minimum(idx, len(sig) - 1)], np.float32(0.0))

    prev, nxt = rr_intervals(peaks, fs, len(r))
    local = pd.Series(prev).rolling(params.rr_local_beats, min_periods=1).mean().to_numpy()
    rr = np.stack([prev, nxt, local], axis=1).astype(np.float32)
    return x.astype(np.float32), rr


def segment_centred(
    signal: np.ndarray, fs: float, peaks: np.ndarray, params: BuildParams
) -> tuple[np.ndarray, np.ndarray]:
    """A window around R on the band-passed lead, per-record amplitude, relative R-R."""
    sos = butter(2, [params.band_low_hz, params.band_high_hz], btype="band", fs=fs, output="sos")
    sig = resample(sosfiltfilt(sos, np.asarray(signal, dtype=np.float64)), fs, params.fs)
    r = np.rint(np.asarray(peaks) * params.fs / fs).astype(np.int64)
    before, n = int(round(params.before_s * params.fs)), params.length
    padded = np.concatenate([np.zeros(n, np.float32), sig.astype(np.float32), np.zeros(n)])
    x = padded[(r + n - before)[:, None] + np.arange(n)[None, :]]

    half = max(1, int(round(params.qrs_s * params.fs)))
    qrs = x[:, max(0, before - half) : before + half + 1]
    scale = float(np.median(qrs.max(axis=1) - qrs.min(axis=1))) if len(x) else 1.0
    x = x / (scale if scale > 0 else 1.0)

    prev, nxt = rr_intervals(peaks, fs, len(r))
    local = (
        pd.Series(prev).rolling(params.rr_local_beats, center=True, min_periods=1).mean().to_numpy()
    )
    mean = float(prev.mean()) if len(prev) else 0.0
    eps = 1e-3
    rr = np.stack(
        [prev / np.maximum(local, eps), nxt / np.maximum(local, eps), local / max(mean, eps)],
        axis=1,
    )
    return x.astype(np.float32), rr.astype(np.float32)


SEGMENTERS: dict[str, Segmenter] = {"kachuee": segment_kachuee, "centred": segment_centred}
RR_MEANING = {
    "kachuee": "previous, next and local mean R-R in seconds",
    "centred": "previous and next R-R over the local mean, local mean over the record's mean",
}

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
        close = difflib.get_close_matches(name, list(_LAYOUTS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise BeatlabError(
            f"unknown beat layout {name!r}{hint} (known: {', '.join(list_layouts())})"
        )
    return _LAYOUTS[name]


def segment_beats(
    signal: np.ndarray, fs: float, peaks: np.ndarray, params: BuildParams | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cut one lead into beats at the given R peaks (sample indices at `fs`), per `params`.

    Shared by the dataset builder and `beatlab predict`, so a new recording is segmented exactly
    like the training data."""
    params = params or KACHUEE
    return SEGMENTERS[params.method](signal, fs, peaks, params)


KACHUEE = register_layout(BuildParams())
CENTRED = register_layout(
    replace(
        KACHUEE,
        name="centred",
        method="centred",
        fs=250,
        before_s=0.25,
        band_low_hz=0.5,
        band_high_hz=40.0,
    )
)
