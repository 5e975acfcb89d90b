"""Cross-database evaluation: a run's model on every annotated beat of another database.

Nothing of that database was seen in training, so there is no split: every record is a new
patient. Beats are cut in the run's own layout, from each record's preferred lead, and scored
gross over beats (AAMI EC57) and per record (Se / +P of S and V, where the record has them).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from beatlab import CLASSES
from beatlab.data.build import (
    CHANNEL_SEPARATOR,
    asked_lead,
    channel_leads,
    ensure_channel_beats,
    lead_choices,
    read_cache_metadata,
    read_header,
    record_names,
)
from beatlab.data.databases import get_database
from beatlab.data.dataset import resolve_data_dir
from beatlab.errors import BeatlabError
from beatlab.models.ensemble import members_reading, over_leads
from beatlab.training.config import TrainConfig
from beatlab.training.metrics import classification_metrics, per_record
from beatlab.training.runs import (
    METRICS,
    Run,
    gated_by_rhythm,
    load_run,
    read_json,
    write_json,
)
from beatlab.training.trainer import Tensors, predict_proba

if TYPE_CHECKING:
    from beatlab.deploy.predict import Predictions


def trained_on(config: TrainConfig, db: str) -> bool:
    """Whether a run's training beats came from database `db` (then none of it is unseen)."""
    return db in config.db.split(",") and not config.train_file


def database_leads(source: Path) -> set[str]:
    """Every lead name a record of the database at `source` has (none where it is not fetched
    yet: building its beats says so)."""
    if not source.is_dir():
        return set()
    return {str(n) for r in record_names(source) for n in read_header(source / r).sig_name or []}


def aami_run(run_dir: Path) -> Run:
    """The run, whose classes must be the AAMI ones the annotations of a database name."""
    run = load_run(run_dir)
    if run.classes != CLASSES:
        raise BeatlabError(
            f"evaluation on annotated records needs a model of the AAMI classes, not {run.classes}",
            run_dir,
        )
    return run


def evaluate_database(
    run_dir: Path,
    db: str,
    data_dir: Path | None = None,
    lead: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Metrics of a run's model on all of database `db` (stored in metrics.json as "db:<db>").
    An ensemble over leads evaluates a database without some of them with the members that
    read the others, as `predict` does a record (`note` says so). `progress` shows a bar while
    the beats are classified."""
    run = aami_run(run_dir)
    spec = get_database(db)
    if trained_on(run.config, db):
        raise BeatlabError(
            f"the run was trained on {db}; evaluate it with its own test part instead", run_dir
        )
    root, params = resolve_data_dir(data_dir), run.layout
    channels = channel_leads(asked_lead(run.config.lead, lead))
    have = database_leads(root / spec.name) if over_leads(run.model) else set()
    choices = [
        lead_choices(c) if c else (tuple(have) if params.first_lead else spec.leads)
        for c in channels
    ]
    model, kept, note = members_reading(run.model, choices, have, f"database {db}", "evaluated")
    beats, caches, leads = ensure_channel_beats(
        root,
        params,
        db=spec,
        lead=CHANNEL_SEPARATOR.join(channels[c] or "" for c in kept) or None,
    )
    proba = predict_proba(model, Tensors.from_beats(beats), progress=progress)
    proba, in_af = gated_by_rhythm(run, proba, beats)
    metrics = classification_metrics(beats.y, proba, run.classes)
    metrics["database"] = f"{spec.title} v{spec.version}"
    metrics["records"] = len(np.unique(beats.record))
    metrics["leads"] = leads
    first = read_cache_metadata(caches[0]) or {}
    left_out = sum(first.get("counts", [])) + sum(first.get("left_out", {}).values()) - len(beats)
    if left_out:  # the first lead's own, and those over invalid samples of another lead
        gap = f"left out {left_out:,} beats whose window holds invalid samples (a lead off)"
        note = f"{note}; {gap}" if note else gap
    note = "; ".join(filter(None, (note, in_af)))
    if note:
        metrics["note"] = note
    metrics["per_record"] = per_record(beats.record, beats.y, proba.argmax(axis=1), run.classes)
    store(run_dir, f"db:{db}", metrics)
    return metrics


def store(run_dir: Path, key: str, metrics: dict[str, Any]) -> None:
    """Add `metrics` to the run's metrics.json under `key`, keeping the rest."""
    stored = read_json(run_dir / METRICS) if (run_dir / METRICS).exists() else {}
    stored[key] = metrics
    write_json(run_dir / METRICS, stored)


IN_VF_SAID = (
    "detections inside annotated ventricular flutter / fibrillation are neither beats found nor "
    "false detections (EC57 scores VF apart)"
)


def false_detections(found: dict[str, Any]) -> str:
    """One sentence on the detections without an annotated beat: the classes they were given,
    and each class's +P counting them (as EC57's gross +P does); and how many were left out as
    inside annotated VF."""
    false, counted = found.get("false_called", {}), found.get("+P_counting_false", {})
    given = ", ".join(f"{c} {n:,}" for c, n in false.items())
    precise = ", ".join(f"{c} {p:.4f}" for c, p in counted.items() if p is not None)
    in_vf = found.get("in_vf", 0)
    return (
        f"false detections ({sum(false.values()):,}) called {given}; +P counting them: {precise}"
        + (f"; {in_vf:,} {IN_VF_SAID}" if in_vf else "")
    )


def evaluate_records(
    run_dir: Path,
    folder: Path,
    lead: str | None = None,
    annotator: str = "atr",
    detector: bool = False,
    jobs: int = 1,
) -> dict[str, Any]:
    """Metrics of a run's model on every annotated record of `folder`, a WFDB database beatlab
    has no spec for (stored in metrics.json as "records:<folder>"). Each record is read as
    `beatlab predict` reads a new one: its own rate and leads, the run's layout, the beats of
    its `annotator` file; records without that file are left out and named. With `detector`,
    the beats are the QRS detector's, as on a recording without annotations: the classes are
    scored on the detections that hit an annotated beat, and the detection itself by Se / +P
    ("detection"), with the classes the false detections were given and each class's +P
    counting them as EC57 does (a V called where there is no beat is a false V). Detections and
    annotated beats inside an annotated ventricular flutter / fibrillation episode count in
    neither, as in EC57 (`in_vf` says how many detections). `jobs` processes read records side
    by side (`predict_records`)."""
    from beatlab.deploy.predict import (
        check_annotator,
        notes_by_recording,
        predict_records,
    )

    check_annotator(annotator)
    run = aami_run(run_dir)
    names = record_names(folder)
    annotated = [n for n in names if (folder / f"{n}.{annotator}").exists()]
    if not annotated:
        raise BeatlabError(f"no record here has a .{annotator} annotation file", folder)
    done, _ = predict_records(
        run,
        [folder / name for name in annotated],
        lead=lead,
        annotator=annotator,
        detector=detector,
        jobs=jobs,
        keep_going=False,  # every annotated record counts: one that cannot be read is an error
    )
    parts = [(name, done[folder / name]) for name in annotated]
    notes = notes_by_recording(parts)
    without = sorted(set(names) - set(annotated))
    if without:
        notes.append(f"left out {len(without)} records without .{annotator}: {', '.join(without)}")
    metrics = records_metrics(run, parts, detector)
    metrics["database"] = f"the records of {folder}" + (
        ", beats by the QRS detector" if detector else ""
    )
    metrics["records"] = len(parts)
    metrics["leads"] = {name: r.lead for name, r in parts}
    if notes:
        metrics["note"] = "; ".join(notes)
    store(run_dir, f"records:{folder.resolve()}", metrics)
    return metrics


def records_metrics(
    run: Run, parts: list[tuple[str, Predictions]], detector: bool = False
) -> dict[str, Any]:
    """Gross metrics of the recordings' predictions `parts` (name, `predict_record`'s result)
    over their annotated beats, and per record; with `detector`, how the detections met the
    annotated beats ("detection", as `evaluate_records` describes)."""
    from beatlab.deploy.predict import UNMATCHED

    known = np.concatenate([r.known for _, r in parts])
    y = np.concatenate([r.reference for _, r in parts])[known]
    proba = np.concatenate([r.proba for _, r in parts])[known]
    records = np.concatenate([np.full(len(r), name) for name, r in parts])[known]
    metrics = classification_metrics(y, proba, run.classes)
    if detector:
        beats = sum(r.matched_against for _, r in parts)
        found, detected = int(known.sum()), sum(r.scored for _, r in parts)
        k = len(run.classes)
        called = np.bincount(proba.argmax(axis=1), minlength=k)
        hits = np.bincount(y[proba.argmax(axis=1) == y], minlength=k)
        false = np.bincount(
            np.concatenate([r.predicted[r.reference == UNMATCHED] for _, r in parts]),
            minlength=k,
        )
        metrics["detection"] = {
            "annotated": beats,
            "detected": detected,
            "in_vf": sum(len(r) - r.scored for _, r in parts),
            "Se": found / beats if beats else None,
            "+P": found / detected if detected else None,
            "false_called": dict(zip(run.classes, false.tolist(), strict=True)),
            "+P_counting_false": {
                c: int(hits[i]) / int(called[i] + false[i]) if called[i] + false[i] else None
                for i, c in enumerate(run.classes)
            },
        }
    metrics["per_record"] = per_record(records, y, proba.argmax(axis=1), run.classes)
    return metrics
