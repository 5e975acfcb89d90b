"""How a model holds up as noise is added to new patients' recordings: each record is read again
with seeded noise at a signal-to-noise ratio, through `beatlab predict`'s own path, and scored
against its annotations beside the clean reading.

    python benchmarks/noise.py --run runs/new_patients [--db mitdb | --db svdb | --records DIR]
        [--kinds muscle motion wander] [--snr 24 12 6 0] [--detector] [--jobs 2] [--seed 0]
        [--data-dir DATA_DIR] [--out reports/noise]
    python benchmarks/noise.py --cv a_s0 a_s1 a_s2 t3_gbt_l1 t3_gbt_l2 \
        --decision-weights 1,4,1,1,1 [--cv-dir reports/cv] ...

`--db mitdb` reads DS2's 22 records (patients a DS1 model never saw), `--db svdb` every SVDB
record, `--records DIR` the annotated records of a folder; `--cv TAG ...` DS1's records, each
fold's held-out patients read by that fold's ensemble of the tags' `patient_cv.py` runs (with the
AF gate, as `make demo`'s ensemble), where a choice may be made. The noise is synthetic, Gaussian,
drawn per record, lead and kind from `--seed` and only scaled between SNRs, so each level adds
more of the same noise:

- muscle: white, over the whole band, as muscle artefact spreads;
- motion: band-passed to 1-10 Hz, where electrode motion sits, over the P and T waves and into
  the QRS: the band the layouts keep, so no filter takes it away;
- wander: low-passed to 0.5 Hz, as breathing and movement shift the baseline.

The SNR is the MIT-BIH Noise Stress Test Database's: signal power is the lead's QRS
peak-to-peak amplitude squared over 8 (the median over annotated beats, within 50 ms of R),
noise power the mean square of the noise added. Recorded noise (that database's `em`, `ma`, `bw`
records) is not used: it is not on this machine.

At the annotated beats (the default) it prints accuracy, N Se, S and V Se / +P, and the share of
beats given the class the clean reading gave them; with `--detector` the beats are the QRS
detector's on the noisy lead, as `beatlab predict` finds them without annotations, and the table
adds how many annotated beats it found (Se) and how many detections were beats (+P). It writes
the table (noise.csv, noise.md) and a plot (noise.png) to OUT. The noisy copies live in a
temporary folder, removed when the script ends. Nothing is chosen here: it measures a trained run.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import wfdb
from scipy.signal import butter, sosfiltfilt

from beatlab.data.build import read_annotations, record_names
from beatlab.data.databases import MITDB
from beatlab.data.dataset import resolve_data_dir
from beatlab.deploy.predict import Predictions, predict_records
from beatlab.errors import BeatlabError, script
from beatlab.io import atomic_path
from beatlab.training.crossdb import aami_run, records_metrics
from beatlab.training.runs import Run

KINDS: dict[str, tuple[str, float | list[float]] | None] = {
    "muscle": None,
    "motion": ("bandpass", [1.0, 10.0]),
    "wander": ("lowpass", 0.5),
}
"""Each kind of noise: the Butterworth filter shaping white noise (None: left white)."""
QRS_S = 0.05


def noise(kind: str, n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of one kind of noise at `fs`, scaled to a mean square of 1."""
    white = rng.standard_normal(n)
    shape = KINDS[kind]
    if shape is not None:
        btype, cutoff = shape
        white = sosfiltfilt(butter(2, cutoff, btype=btype, fs=fs, output="sos"), white)
    return white / np.sqrt(np.mean(white**2))


def qrs_power(lead: np.ndarray, peaks: np.ndarray, fs: float) -> float:
    """The NSTDB's signal power of a lead: the median QRS peak-to-peak amplitude within
    `QRS_S` of the annotated R peaks, squared over 8 (0 where no beat has a valid window)."""
    half = int(round(QRS_S * fs))
    inside = peaks[(peaks >= half) & (peaks < len(lead) - half)]
    windows = lead[inside[:, None] + np.arange(-half, half + 1)[None, :]]
    finite = windows[np.isfinite(windows).all(axis=1)]
    if not len(finite):
        return 0.0
    return float(np.median(finite.max(axis=1) - finite.min(axis=1))) ** 2 / 8


def noisy_copy(base: Path, out: Path, kind: str, snr: float, seed: int) -> Path:
    """Record `base` written to `out` with `kind` noise at `snr` dB added to every lead (the
    same draw at every SNR: `seed` and the record's name pick it), beside a copy of its
    annotations; its path there."""
    record = wfdb.rdrecord(str(base))
    signal = np.asarray(record.p_signal, dtype=np.float64)
    peaks, _ = read_annotations(base)
    fs = float(record.fs)
    draws = np.random.default_rng([seed, *base.name.encode(), *kind.encode()])
    for c in range(signal.shape[1]):
        scale = np.sqrt(qrs_power(signal[:, c], peaks, fs) / 10 ** (snr / 10))
        signal[:, c] += scale * noise(kind, len(signal), fs, draws)
    wfdb.wrsamp(
        base.name,
        fs=fs,
        units=list(record.units),
        sig_name=list(record.sig_name),
        p_signal=signal,
        fmt=["16"] * signal.shape[1],
        write_dir=str(out),
    )
    shutil.copyfile(base.with_suffix(".atr"), out / f"{base.name}.atr")
    return out / base.name


Readings = dict[tuple[str, float | None], dict[Path, Predictions]]
"""Each reading's predictions, by (kind, SNR) and the original record's path; ("none", None) is
the clean one."""


def readings(
    run: Run,
    paths: list[Path],
    kinds: list[str],
    snrs: list[float],
    *,
    detector: bool = False,
    seed: int = 0,
    jobs: int = 1,
) -> Readings:
    """The clean reading of `paths`, then each kind of noise at each SNR, through `predict`'s
    path (`jobs` processes, for a run on disk)."""
    options: dict[str, Any] = {"detector": detector, "jobs": jobs, "keep_going": False}
    got: Readings = {("none", None): predict_records(run, paths, **options)[0]}
    for kind in kinds:
        for snr in snrs:
            with tempfile.TemporaryDirectory(prefix="beatlab-noise-") as tmp:
                copies = [noisy_copy(p, Path(tmp), kind, snr, seed) for p in paths]
                done, _ = predict_records(run, copies, **options)
            got[kind, snr] = {path: done[copy] for path, copy in zip(paths, copies, strict=True)}
            print(f"{kind} at {snr:g} dB read", flush=True)
    return got


def scored(run: Run, got: Readings, detector: bool) -> pd.DataFrame:
    """The table: a row per reading, its figures pooled over the records, and (at the annotated
    beats) the share of beats given the class the clean reading gave them."""
    clean = got["none", None]
    rows = []
    for (kind, snr), done in got.items():
        metrics = records_metrics(run, [(p.name, r) for p, r in done.items()], detector)
        per_class = metrics["per_class"]
        row: dict[str, Any] = {"noise": kind, "SNR dB": snr, "accuracy": metrics["accuracy"]}
        row["N Se"] = per_class["N"]["Se"]
        for name in ("S", "V"):
            row[f"{name} Se"], row[f"{name} +P"] = per_class[name]["Se"], per_class[name]["+P"]
        if detector:
            row["beats found"] = metrics["detection"]["Se"]
            row["detections +P"] = metrics["detection"]["+P"]
        else:
            same = [r.predicted == clean[p].predicted for p, r in done.items()]
            row["same class as clean"] = float(np.concatenate(same).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def measure(
    run: Run,
    paths: list[Path],
    kinds: list[str],
    snrs: list[float],
    *,
    detector: bool = False,
    seed: int = 0,
    jobs: int = 1,
) -> pd.DataFrame:
    """`scored` of `readings`: the table of one run on `paths`."""
    got = readings(run, paths, kinds, snrs, detector=detector, seed=seed, jobs=jobs)
    return scored(run, got, detector)


def cross_validated(
    out: Path, tags: list[str], weights: list[float], mitdb: Path, **options: Any
) -> tuple[Run, Readings]:
    """`readings` of DS1's records, each fold's by that fold's ensemble of `tags`' runs
    (`patient_cv.py`, deciding with `weights`, the AF gate on as `make demo`'s ensemble has it),
    which never saw them: DS1's held-out patients in noise, where a choice may be made."""
    from patient_cv import fold_ensembles  # beside this script

    got: Readings = {}
    for _, records, run in fold_ensembles(out, tags, weights):
        run = replace(run, config=run.config.updated({"af_gate": True}))
        for key, done in readings(run, [mitdb / r for r in records], **options).items():
            got.setdefault(key, {}).update(done)
    return run, got


def plot(table: pd.DataFrame, path: Path, title: str) -> None:
    """One panel per kind of noise: each figure against the SNR, the clean reading dashed."""
    kinds = [k for k in table["noise"].unique() if k != "none"]
    shown = ("accuracy", "S Se", "S +P", "V Se", "V +P", "detections +P")
    figures = [c for c in shown if c in table]
    clean = table[table["noise"] == "none"].iloc[0]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.6), sharey=True)
    for ax, kind in zip(np.atleast_1d(axes), kinds, strict=True):
        part = table[table["noise"] == kind].sort_values("SNR dB")
        for k, name in enumerate(figures):
            colour = f"C{k}"
            ax.plot(part["SNR dB"], part[name], "o-", color=colour, label=name)
            ax.axhline(clean[name], color=colour, linestyle="--", linewidth=0.8)
        ax.set_title(kind)
        ax.set_xlabel("SNR (dB)")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("gross, over beats (dashed: no noise added)")
    np.atleast_1d(axes)[-1].legend(loc="lower left", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--run", type=Path, default=None)
    model.add_argument("--cv", nargs="+", default=None, help="patient_cv.py tags, on DS1")
    parser.add_argument("--cv-dir", type=Path, default=Path("reports/cv"))
    parser.add_argument("--decision-weights", default="", help="with --cv: one weight a class")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--db", choices=("mitdb", "svdb"), default="mitdb")
    where.add_argument("--records", type=Path, default=None)
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    parser.add_argument("--snr", nargs="+", type=float, default=[24, 12, 6, 0])
    parser.add_argument("--detector", action="store_true")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("reports/noise"))
    args = parser.parse_args()
    options = {"detector": args.detector, "seed": args.seed}
    if args.cv is not None:
        weights = [float(w) for w in args.decision_weights.split(",") if w.strip()]
        mitdb = resolve_data_dir(args.data_dir) / "mitdb"
        kinds, snrs = args.kinds, args.snr
        run, got = cross_validated(
            args.cv_dir, args.cv, weights, mitdb, kinds=kinds, snrs=snrs, **options
        )
        title = f"{' '.join(args.cv)} on DS1's held-out patients"
    else:
        run = aami_run(args.run)
        if args.records is not None:
            folder = args.records
            names = [n for n in record_names(folder) if (folder / f"{n}.atr").exists()]
            if not names:
                raise BeatlabError("no record here has a .atr annotation file", folder)
            if len({Path(n).name for n in names}) < len(names):  # the copies lie side by side
                raise BeatlabError("two records here share a name in different folders", folder)
        elif args.db == "mitdb":
            if run.config.split != "inter":
                raise BeatlabError(
                    "DS2 is a new-patients test only for a run trained on DS1", run.path
                )
            folder = resolve_data_dir(args.data_dir) / "mitdb"
            names = list(MITDB.splits["inter"].test)
        else:
            folder = resolve_data_dir(args.data_dir) / args.db
            names = record_names(folder)
        paths = [folder / name for name in names]
        got = readings(run, paths, args.kinds, args.snr, jobs=args.jobs, **options)
        title = f"{run.path.name} on {len(names)} records of {folder}"
    table = scored(run, got, args.detector)
    title += ", the QRS detector's beats" if args.detector else ", the annotated beats"
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "noise-detector" if args.detector else "noise"
    with atomic_path(args.out / f"{stem}.csv") as tmp:
        table.to_csv(tmp, index=False)
    markdown = table.round(3).astype(object).where(table.notna(), "–").to_markdown(index=False)
    with atomic_path(args.out / f"{stem}.md") as tmp:
        tmp.write_text(f"{title}\n\n{markdown}\n")
    plot(table, args.out / f"{stem}.png", title)
    print(f"{title}\n\n{markdown}")


if __name__ == "__main__":
    script(main)
