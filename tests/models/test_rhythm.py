"""The AF rule: Dash et al.'s detector on R-R intervals, and S given to N where it flags AF."""

from __future__ import annotations

import numpy as np
import pytest

from beatlab import CLASSES
from beatlab.models.rhythm import af_flags, beat_flags, gate_af, gate_records

N, S, V = (CLASSES.index(c) for c in "NSV")


def test_af_is_an_irregular_rhythm_not_ectopy() -> None:
    """Dash et al. 2009's detector, their thresholds: sinus rhythm is not AF, intervals with no
    two alike are, too few intervals say nothing, and ventricular beats among AF leave it AF
    on the normal-to-normal intervals."""
    rng = np.random.default_rng(0)
    sinus = 0.8 + 0.02 * rng.standard_normal(400)
    assert not af_flags(sinus).any()
    assert af_flags(rng.uniform(0.4, 1.2, 400)).all()
    assert not af_flags(sinus[:100]).any()
    peaks = np.cumsum(rng.uniform(0.4, 1.2, 400) * 360).astype(np.int64)
    ventricular = rng.random(len(peaks)) < 0.1
    assert beat_flags(peaks, ventricular).all()
    assert not beat_flags(peaks, np.ones(len(peaks), bool)).any()
    # ratios only: the same intervals at another sampling rate give the same flags
    np.testing.assert_array_equal(
        beat_flags(peaks * 3, ventricular), beat_flags(peaks, ventricular)
    )


def test_the_inside_window_stops_the_flag_at_the_episode_edge() -> None:
    """An AF episode between two stretches of sinus rhythm: the centred window (Dash et al.'s)
    flags intervals of sinus rhythm next to it; the inside one (the gate's) flags none of them,
    only AF well inside."""
    rng = np.random.default_rng(2)
    rr = np.r_[0.8 + 0.02 * rng.standard_normal(300), rng.uniform(0.4, 1.2, 600), np.full(300, 0.8)]
    episode = np.zeros(len(rr), dtype=bool)
    episode[300:900] = True
    centred, inside = af_flags(rr, edges="centred"), af_flags(rr)
    assert (centred & ~episode).sum() > 10
    assert not (inside & ~episode).any()
    assert inside[400:750].all()
    assert (inside <= centred).all()
    for short in (rr, rr[:10]):  # a misspelt window is refused, however few the intervals
        with pytest.raises(ValueError, match="unknown edges"):
            af_flags(short, edges="centered")


def rhythm(rng: np.random.Generator) -> np.ndarray:
    """R peaks at 360 Hz: 400 beats of sinus rhythm, then 400 of AF."""
    intervals = np.r_[0.8 + 0.02 * rng.standard_normal(400), rng.uniform(0.4, 1.2, 400)]
    return np.cumsum(intervals * 360).astype(np.int64)


def test_in_af_the_s_probability_goes_to_n_and_elsewhere_nothing_moves() -> None:
    rng = np.random.default_rng(1)
    peaks = rhythm(rng)
    proba = rng.dirichlet(np.ones(len(CLASSES)), len(peaks)).astype(np.float32)
    gated, flag = gate_af(proba, peaks, CLASSES)
    assert flag[550:].all() and not flag[:400].any()
    np.testing.assert_array_equal(gated[~flag], proba[~flag])
    assert (gated[flag, S] == 0).all()
    np.testing.assert_allclose(gated[flag, N], proba[flag, N] + proba[flag, S])
    np.testing.assert_allclose(gated.sum(axis=1), proba.sum(axis=1), rtol=1e-6)
    # a task without S, or a lone beat, has nothing to gate
    assert not gate_af(proba[:, [N, V]], peaks, ("N", "V"))[1].any()
    assert not gate_af(proba[:1], peaks[:1], CLASSES)[1].any()


def test_ventricular_calls_are_by_plain_argmax_whatever_the_decision_weights() -> None:
    """Every beat's plain argmax is V, so no interval is normal-to-normal and nothing is
    flagged; weighting S ×4 makes S the decided argmax, which must not count."""
    peaks = rhythm(np.random.default_rng(2))
    plain = np.tile(np.float32([0.05, 0.2, 0.6, 0.1, 0.05]), (len(peaks), 1))
    weights = (1.0, 4.0, 1.0, 1.0, 1.0)
    decided = plain * np.float32(weights)
    decided /= decided.sum(axis=1, keepdims=True)
    assert (decided.argmax(axis=1) == S).all()
    assert not gate_af(decided, peaks, CLASSES, weights)[1].any()
    assert gate_af(decided, peaks, CLASSES)[1].any()  # by the weighted argmax it would gate


def test_records_are_gated_apart_whatever_the_order_of_their_rows() -> None:
    rng = np.random.default_rng(3)
    a, b = rhythm(rng), rhythm(rng)[::-1][:500][::-1]
    proba = rng.dirichlet(np.ones(len(CLASSES)), len(a) + len(b)).astype(np.float32)
    record = np.r_[np.full(len(a), "a"), np.full(len(b), "b")]
    sample = np.r_[a, b]
    order = rng.permutation(len(record))
    gated, flagged = gate_records(proba[order], record[order], sample[order], CLASSES)
    alone = [gate_af(proba[record == r], sample[record == r], CLASSES) for r in ("a", "b")]
    np.testing.assert_array_equal(gated[np.argsort(order)], np.r_[alone[0][0], alone[1][0]])
    assert flagged == alone[0][1].sum() + alone[1][1].sum() > 0
