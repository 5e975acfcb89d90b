"""An atrial fibrillation gate on held-out DS1 patients: would calling no beat S during AF help?

    python benchmarks/af_gate.py --mean-of mr_s0 mr_s1 mr_s2 gbt_l1 gbt_l2 [--intervals nn]
        [--give-to N] [--edges inside] [--grid 1 2 3 4 5 6] [--precision 0.45] [--out reports/cv]
        [--data-dir DIR]

In AF there is no organised atrial activity, so MIT-BIH labels no atrial premature beats there,
yet on DS1 most of the shipped ensemble's false S sit in the two AF patients. This reads the
tags' saved cross-validation probabilities (`patient_cv.py`), flags AF beat by beat from the
record's R-R intervals with the detector of Dash et al. 2009 (Ann Biomed Eng 37:1701) and its
published thresholds, nothing fitted here, sets a flagged beat's S probability to 0 (`--give-to
N`: adds it to the N probability, as MIT-BIH labels AF's beats N), and prints the pooled EC57
table at each S weight, beside the ungated one. It also prints how the flags agree with the
records' rhythm annotations (AFIB, AFL). With `--precision P`, it then prints the gated table
with the S weight chosen nested (`patient_cv.chosen_per_fold`): per fold, the largest weight
keeping N Se >= 0.95 and S +P >= P on the other folds.

The detector is `beatlab.models.rhythm`'s, which `af_gate = true` in a run's config applies in
`predict` and `evaluate` with `--intervals nn --give-to N --edges inside`: every interval that
begins or ends at a beat the ungated ensemble calls V or F (plain argmax) is dropped first, a
flagged beat's S probability goes to N, and a beat is flagged only where the 128 intervals that
end at it and the 128 that start at it are both AF (`--edges centred`, the default here so the
older commands give their tables again: the 128 centred on it, Dash et al.'s reading).

Measured (docs/new_patients.md): the gate doubles S precision; with the centred window it loses
S sensitivity, since premature atrial beats start paroxysmal AF and sit inside the window
(twice not shipped); the inside window keeps most of them, and `make demo`'s ensemble applies it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb
from patient_cv import chosen_per_fold, ec57, held_out_folds, same_beats  # beside this script

from beatlab import CLASSES
from beatlab.data.build import read_annotations
from beatlab.data.dataset import resolve_data_dir
from beatlab.errors import BeatlabError, script
from beatlab.models.rhythm import beat_flags

N, S, V, F = (CLASSES.index(c) for c in "NSVF")


def rhythm_af(base: Path, peaks: np.ndarray) -> np.ndarray:
    """Whether the record's rhythm annotation at each beat is AFIB or AFL."""
    ann = wfdb.rdann(str(base), "atr")
    notes = np.asarray(ann.aux_note, dtype=str)
    marks = np.flatnonzero(np.char.startswith(notes, "("))
    at = np.searchsorted(np.asarray(ann.sample)[marks], peaks, side="right") - 1
    return (at >= 0) & np.char.startswith(notes[marks][np.maximum(at, 0)], "(AF")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mean-of", nargs="+", required=True, help="patient_cv.py tags")
    parser.add_argument("--intervals", choices=("all", "nn"), default="all")
    parser.add_argument("--give-to", choices=("nothing", "N"), default="nothing")
    parser.add_argument("--edges", choices=("centred", "inside"), default="centred")
    parser.add_argument("--grid", nargs="+", type=float, default=[1, 1.5, 2, 2.5, 3, 4, 5, 6])
    parser.add_argument("--precision", type=float, default=None, help="S +P the rule keeps")
    parser.add_argument("--out", type=Path, default=Path("reports/cv"))
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    tables = same_beats(args.out, args.mean_of)
    y, _, record = tables[0]
    proba = np.mean([t[1] for t in tables], axis=0)
    calls = proba.argmax(axis=1)
    db = resolve_data_dir(args.data_dir) / "mitdb"
    flag, in_af = np.zeros(len(y), dtype=bool), np.zeros(len(y), dtype=bool)
    for name in np.unique(record):
        mine = record == name
        peaks, labels = read_annotations(db / name)
        if not np.array_equal(labels, y[mine]):
            raise BeatlabError("the saved beats are not its annotated beats", db / name)
        nn = args.intervals == "nn"
        skip = np.isin(calls[mine], [V, F]) if nn else np.zeros(len(peaks), dtype=bool)
        flag[mine] = beat_flags(peaks, skip, args.edges)
        in_af[mine] = rhythm_af(db / name, peaks)
    by_record = pd.Series(record[flag]).value_counts()
    print(
        f"flagged {flag.sum():,} of {len(y):,} beats; {(flag & in_af).sum():,} of the "
        f"{in_af.sum():,} in AF or flutter; by record: {by_record.to_dict()}"
    )
    flagged_s = flag & (y == S)
    print(
        f"S beats flagged: {flagged_s.sum()} of {(y == S).sum()} ({(flagged_s & in_af).sum()} in "
        f"AF or flutter); by record: {pd.Series(record[flagged_s]).value_counts().to_dict()}"
    )

    def gated(weight: float) -> np.ndarray:
        scale = np.ones(len(CLASSES))
        scale[S] = weight
        p = proba * scale
        if args.give_to == "N":
            p[flag, N] += p[flag, S]
        p[flag, S] = 0.0
        return p

    rows = []
    for weight in args.grid:
        scale = np.ones(len(CLASSES))
        scale[S] = weight
        for name, p in (("ungated", proba * scale), ("gated", gated(weight))):
            rows.append({"S weight": weight, "": name, **ec57(y, p)})
    print(pd.DataFrame(rows).drop(columns="beats").to_markdown(index=False))
    if args.precision is not None:
        floor = args.precision
        table = chosen_per_fold(
            y,
            held_out_folds(args.out, args.mean_of[0], record),
            args.grid,
            gated,
            lambda m: m["per_class"]["N"]["Se"] >= 0.95 and m["per_class"]["S"]["+P"] >= floor,
            "S weight",
        )
        print(f"gated, the S weight chosen on the other folds (N Se >= 0.95, S +P >= {floor})")
        print(table.to_markdown(index=False))


if __name__ == "__main__":
    script(main)
