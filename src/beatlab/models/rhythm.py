"""Atrial fibrillation from a recording's R-R intervals: the decision rule that calls no beat S
in AF (`TrainConfig.af_gate`).

In AF there is no organised atrial activity, so MIT-BIH labels no premature atrial beats there
(its beats are N), yet an irregular rhythm makes normal beats look premature to a classifier of
single beats: on held-out DS1 patients most of the new-patients ensemble's false S sit in the
two AF patients. Where the detector below flags AF, the rule gives a beat's S probability to N.
One beat does not show the rhythm, so the rule is applied where a recording's beats are
classified together (`beatlab predict`, `evaluate`), after the model, and never in training or
its validation.

The detector is that of Dash et al. 2009 (Ann Biomed Eng 37:1701) with their thresholds, nothing
fitted here. A run of 128 R-R intervals, its 8 longest and 8 shortest dropped (order kept), is AF
where RMSSD over the mean > 0.1, the 16-bin Shannon entropy over ln 16 > 0.7 and the
turning-point ratio of the 128 lies in (0.54, 0.77); all three are ratios, so intervals in
samples serve at any sampling rate. A beat is flagged where both the 128 intervals that end at it
and the 128 that start at it are AF (clipped to the record's first or last 128; fewer than 128:
never flagged). Dash et al. judge the 128 centred on it, which flags beats up to 64 beats outside
an episode, where premature atrial beats start and end paroxysmal AF: on held-out DS1 patients the
centred window took 99 of the 944 S beats and this one 21 (docs/new_patients.md). Rhythm is
measured on normal-to-normal intervals, as heart-rate variability is: those that begin or end at
a beat called V or F are left out, else ventricular ectopy alone reads as AF (DS1's record 208).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

WINDOW, TRIM, BINS = 128, 8, 16
AF_NOTE = (
    "{:,} beats in atrial fibrillation by their R-R intervals: their S probability given to N "
    "(af_gate in the run's config)"
)
AF_NOT_APPLIED = "af_gate not applied: these beats are not every beat of their recordings"


def af_windows(rr: np.ndarray) -> np.ndarray:
    """For each run of 128 consecutive R-R intervals (at least 128 given), whether it passes Dash
    et al.'s three AF tests."""
    win = sliding_window_view(rr, WINDOW)
    rank = np.argsort(np.argsort(win, axis=1, kind="stable"), axis=1)
    kept = win[(rank >= TRIM) & (rank < WINDOW - TRIM)].reshape(len(win), WINDOW - 2 * TRIM)
    rmssd = np.sqrt(np.mean(np.diff(kept, axis=1) ** 2, axis=1)) / kept.mean(axis=1)
    lo, hi = kept.min(axis=1, keepdims=True), kept.max(axis=1, keepdims=True)
    bins = np.minimum(((kept - lo) / np.maximum(hi - lo, 1e-12) * BINS).astype(int), BINS - 1)
    share = np.stack([(bins == b).mean(axis=1) for b in range(BINS)], axis=1)
    logs = np.log(share, out=np.zeros_like(share), where=share > 0)
    entropy = -(share * logs).sum(axis=1) / np.log(BINS)
    mid, before, after = win[:, 1:-1], win[:, :-2], win[:, 2:]
    turns = ((mid > before) & (mid > after)) | ((mid < before) & (mid < after))
    tpr = turns.sum(axis=1) / (WINDOW - 2)
    return (rmssd > 0.1) & (entropy > 0.7) & (tpr > 0.54) & (tpr < 0.77)


def af_flags(rr: np.ndarray, edges: str = "inside") -> np.ndarray:
    """For each R-R interval, whether both the 128 that end at it and the 128 that start at it
    pass Dash et al.'s three AF tests (`edges="inside"`: the gate's), so that an interval beside
    an AF episode is not flagged for it; or (`"centred"`, their reading) the 128 around it."""
    if edges not in ("centred", "inside"):
        raise ValueError(f"unknown edges {edges!r} (centred or inside)")
    n = len(rr)
    if n < WINDOW:
        return np.zeros(n, dtype=bool)
    af, at, last = af_windows(rr), np.arange(n), n - WINDOW
    if edges == "centred":
        return af[np.clip(at - WINDOW // 2, 0, last)]
    return af[np.clip(at - WINDOW + 1, 0, last)] & af[np.clip(at, 0, last)]


def beat_flags(peaks: np.ndarray, skip: np.ndarray, edges: str = "inside") -> np.ndarray:
    """Each beat's AF flag, from the intervals that touch no `skip` beat (the one nearest it;
    `edges` as `af_flags`)."""
    rr = np.diff(peaks).astype(np.float64)
    kept = np.flatnonzero(~(skip[:-1] | skip[1:]))
    if len(kept) == 0:
        return np.zeros(len(peaks), dtype=bool)
    flags = af_flags(rr[kept], edges)
    nearest = np.clip(np.searchsorted(kept, np.arange(len(peaks)) - 1), 0, len(kept) - 1)
    return flags[nearest]


def gate_af(
    proba: np.ndarray,
    peaks: np.ndarray,
    classes: Sequence[str],
    decision_weights: Sequence[float] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """A recording's class probabilities (its beats in time order, at `peaks`) with the S
    probability of the beats in AF given to N, and which beats those are. V and F calls, whose
    intervals are left out, are by plain argmax (the probabilities over `decision_weights`)."""
    flag = np.zeros(len(peaks), dtype=bool)
    if "S" not in classes or "N" not in classes or len(peaks) < 2:
        return proba, flag
    plain = proba / np.asarray(decision_weights or [1.0] * len(classes))
    ectopic = [classes.index(c) for c in ("V", "F") if c in classes]
    flag = beat_flags(np.asarray(peaks), np.isin(plain.argmax(axis=1), ectopic))
    gated = proba.copy()
    n, s = classes.index("N"), classes.index("S")
    gated[flag, n] += gated[flag, s]
    gated[flag, s] = 0.0
    return gated, flag


def gate_records(
    proba: np.ndarray,
    record: np.ndarray,
    sample: np.ndarray,
    classes: Sequence[str],
    decision_weights: Sequence[float] = (),
) -> tuple[np.ndarray, int]:
    """`gate_af` over each record's beats of a beat set (rows in any order), and how many beats
    it flagged."""
    gated, flagged = proba.copy(), 0
    for name in np.unique(record):
        rows = np.flatnonzero(record == name)
        rows = rows[np.argsort(sample[rows], kind="stable")]
        gated[rows], flag = gate_af(proba[rows], sample[rows], classes, decision_weights)
        flagged += int(flag.sum())
    return gated, flagged
