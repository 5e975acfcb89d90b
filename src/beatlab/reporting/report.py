"""The report of runs and experiments: the study's tables and figures, as HTML and Markdown.

OUT/report.html   self-contained (figures inlined as data URIs): open it anywhere
OUT/report.md     the same content, linking the PNG figures written beside it in OUT

The content depends only on the inputs (no timestamps), so a report can be regenerated and
compared.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pandas as pd

from beatlab import CLASSES
from beatlab.errors import BeatlabError
from beatlab.io import head_holds, refuse_foreign, writing
from beatlab.models import BeatModel, create_model, describe
from beatlab.models.ensemble import MeanEnsemble
from beatlab.reporting.document import (
    Block,
    Document,
    Figure,
    Heading,
    Table,
    Text,
    to_html,
    to_markdown,
)
from beatlab.reporting.figures import plot_metric_vs, plot_parallel
from beatlab.reporting.gallery import beat_gallery
from beatlab.reporting.provenance import provenance
from beatlab.reporting.sources import STUDY_COLUMNS, Experiment, load_source, plain, show
from beatlab.training.config import TrainConfig
from beatlab.training.crossdb import false_detections
from beatlab.training.metrics import per_class_rows
from beatlab.training.plots import plot_confusion, plot_history
from beatlab.training.runs import HISTORY, RUN, Run, is_ensemble

HTML, MARKDOWN = "report.html", "report.md"
MAX_TRIALS = 20
"""Trials listed per experiment (best first); the figures show all of them."""

Source = Run | Experiment


def write_report(paths: Sequence[Path], out_dir: Path) -> tuple[Path, Path]:
    """Write OUT/report.html and OUT/report.md (+ figures); returns their paths. Every input is
    read before anything is written, and the report is made in a hidden folder inside OUT and
    moved into place only when complete, so a bad input or a failed write (no permission, disk
    full) leaves OUT as it was: one line naming the file, no half a report."""
    if not paths:
        raise BeatlabError("give at least one run or experiment directory")
    if out_dir.exists() and not out_dir.is_dir():
        raise BeatlabError("--out must name a directory, and this is a file", out_dir)
    for name in (HTML, MARKDOWN):
        refuse_foreign(out_dir / name, _ours, "a report")
    sources = [load_source(Path(p)) for p in paths]
    created = [d for d in (out_dir, *out_dir.parents) if not d.exists()]
    try:
        _write_into(out_dir, sources)
    except BaseException:
        for folder in created:  # only the folders made here, and only when left empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return out_dir / HTML, out_dir / MARKDOWN


def _ours(path: Path) -> bool:
    """A report file beatlab wrote, or a figure beside one: what a new report may replace."""
    marks = (b"<title>beatlab report</title>", b"# beatlab report")
    if path.name in (HTML, MARKDOWN):
        return head_holds(path, marks)
    return any(head_holds(path.parent / name, marks) for name in (HTML, MARKDOWN))


def _write_into(out_dir: Path, sources: list[Source]) -> None:
    """Make the report in a hidden folder inside `out_dir`, then move its files into place."""
    staging: Path | None = None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".report-", dir=out_dir))
        doc = build_document(sources, staging)
        with writing(staging / MARKDOWN) as tmp:
            tmp.write_text(to_markdown(doc))
        with writing(staging / HTML) as tmp:
            tmp.write_text(to_html(doc, staging))
        made = sorted(staging.iterdir())
        for path in made:  # a figure may replace one of an earlier report here, nothing else
            refuse_foreign(out_dir / path.name, _ours, "part of a report")
        for path in made:
            os.replace(path, out_dir / path.name)
    except OSError as err:  # named by the folder the user gave, not our hidden one
        raise BeatlabError(f"cannot write the report: {err.strerror or err}", out_dir) from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)  # our own hidden folder


@dataclass
class _Figures:
    """Unique PNG paths in the output directory, named after what they show."""

    out_dir: Path
    used: set[str] = field(default_factory=set)

    def new(self, stem: str) -> Path:
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "figure"
        name, n = f"{base}.png", 2
        while name in self.used:
            name, n = f"{base}-{n}.png", n + 1
        self.used.add(name)
        return self.out_dir / name


def build_document(sources: list[Source], out_dir: Path) -> Document:
    """All sections; figures are written to `out_dir` as they are made."""
    labels = _labels(sources)
    figures = _Figures(out_dir)
    doc = Document("beatlab report")
    doc.add(
        Table(
            ["input", "kind", "model", "directory"],
            [
                [label, _kind(source), _model_name(source), str(source.path)]
                for label, source in zip(labels, sources, strict=True)
            ],
            caption="inputs",
        ),
        Heading("Best configurations"),
        Text(
            "The study's columns. Accuracy and recall macro are on the validation part, where "
            "the search chose; iterations are training epochs. Test results follow."
        ),
        Table(
            ["input", "model", *STUDY_COLUMNS],
            [
                [label, _model_name(source), *_study_cells(_best_values(source))]
                for label, source in zip(labels, sources, strict=True)
            ],
        ),
        *_test_results(labels, sources),
    )
    for label, source in zip(labels, sources, strict=True):
        if isinstance(source, Run):
            _run_section(doc, figures, label, source)
        else:
            _experiment_section(doc, figures, label, source)
    doc.add(*provenance(list(zip(labels, sources, strict=True))))
    return doc


def _labels(sources: list[Source]) -> list[str]:
    """Directory names, made unique."""
    labels: list[str] = []
    for source in sources:
        label, n = source.path.name, 2
        while label in labels:
            label, n = f"{source.path.name} ({n})", n + 1
        labels.append(label)
    return labels


def _kind(source: Source) -> str:
    return "run" if isinstance(source, Run) else f"experiment, {len(source.trials)} trials"


def _config(source: Source) -> TrainConfig | None:
    if isinstance(source, Run):
        return source.config
    return source.best_run.config if source.best_run is not None else source.best_config


def _model_name(source: Source) -> str:
    """The model's name; an ensemble's members' models, each once."""
    if isinstance(source, Run) and is_ensemble(source.info):
        return ", ".join(dict.fromkeys(m["config"]["model"] for m in source.info["members"]))
    config = _config(source)
    if config is not None:
        return config.model
    model = source.best_trial.get("model") if isinstance(source, Experiment) else None
    return show(model)


def _config_values(config: TrainConfig) -> dict[str, Any]:
    return {
        "batch": config.batch_size,
        "factor": config.factor,
        "training set": config.balance,
        **config.hparams,
    }


def _members_values(run: Run) -> dict[str, Any]:
    """An ensemble's study columns: a value its members share, else each member's in order (its
    own config is its first member's, which would speak for the others)."""
    each = [
        _config_values(TrainConfig.from_dict(m["config"], run.path / RUN))
        for m in run.info["members"]
    ]
    keys = dict.fromkeys(k for values in each for k in values)
    columns = {k: [values.get(k) for values in each] for k in keys}
    return {k: v[0] if v.count(v[0]) == len(v) else v for k, v in columns.items()}


def _best_values(source: Source) -> dict[str, Any]:
    """The study's columns of a run, or of an experiment's best trial (filled from its config)."""
    config = _config(source)
    values: dict[str, Any] = {}
    if isinstance(source, Run) and is_ensemble(source.info):
        values = _members_values(source)
    elif config is not None:
        values = _config_values(config)
    if isinstance(source, Experiment):
        return {**values, **source.best_trial}
    valid = source.metrics.get("valid", {})
    return {
        **values,
        "iterations": source.info.get("epochs_run"),
        "accuracy": valid.get("accuracy"),
        "recall macro": valid.get("macro_recall"),
    }


def _study_cells(values: dict[str, Any]) -> list[str]:
    return [
        _score(values.get(c)) if c in ("accuracy", "recall macro") else show(values.get(c))
        for c in STUDY_COLUMNS
    ]


def _score(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{float(value):.4f}"


def _test_metrics(source: Source) -> dict[str, Any] | None:
    if isinstance(source, Run):
        return source.metrics.get("test")
    return source.test_metrics


def _test_results(labels: list[str], sources: list[Source]) -> list[Block]:
    """Overall test metrics, one row per input evaluated on test (an experiment's best)."""
    extras = ("roc_auc", "sensitivity", "specificity")
    rows, missing = [], []
    tested = [(label, _test_metrics(source)) for label, source in zip(labels, sources, strict=True)]
    shown = [k for k in extras if any(m and m.get(k) is not None for _, m in tested)]
    for label, metrics in tested:
        if metrics is None:
            missing.append(label)
            continue
        rows.append(
            [
                label,
                f"{metrics['n']:,}" if "n" in metrics else "–",
                *(_score(metrics.get(k)) for k in ("accuracy", "macro_recall", "macro_f1")),
                *(_score(metrics.get(k)) for k in shown),
            ]
        )
    blocks: list[Block] = [Heading("Test results")]
    if rows:
        blocks.append(
            Table(["input", "beats", "accuracy", "recall macro", "f1 macro", *shown], rows)
        )
    if missing:
        blocks.append(
            Text("No test metrics (for a run: `beatlab evaluate RUN`): " + ", ".join(missing))
        )
    return blocks


def _run_section(doc: Document, figures: _Figures, label: str, run: Run) -> None:
    info = run.info
    doc.add(
        Heading(f"Run {label}"),
        Text(
            f"{run.path}: {_model_name(run)}, {_epochs(info)}, trained in "
            f"{info.get('train_seconds', '–')} s on {_counts(info.get('train_beats', 0))} beats "
            f"(validation: {_counts(info.get('valid_beats', 0))})."
        ),
    )
    _architecture(doc, run.model, "Architecture")
    metrics = run.metrics
    part = "test" if "test" in metrics else "valid"
    if metrics.get(part):  # a run with no validation part has no validation metrics
        _classification(doc, figures, label, metrics[part], part)
        _per_record(doc, metrics[part])
    if part == "test":
        doc.add(*beat_gallery(run, label, figures.new))
    for key in sorted(k for k in metrics if k.startswith(("db:", "records:"))):
        _cross_database(doc, figures, label, metrics[key], key)
    _learning_curves(doc, figures, label, run.path)


def _counts(value: int | list[int]) -> str:
    """Beat counts of a run, or of each member of an ensemble (members of other folds train on
    other patients)."""
    return " / ".join(f"{v:,}" for v in (value if isinstance(value, list) else [value]))


def _epochs(info: dict[str, Any]) -> str:
    """Which epoch's weights a run kept. An ensemble trained no epochs itself: its members' best
    epochs (from its run.json) are what say how far each was trained."""
    if not is_ensemble(info):
        return f"best epoch {info.get('best_epoch', '–')} of {info.get('epochs_run', '–')}"
    members = info["members"]
    best = [m.get("best_epoch") if isinstance(m, dict) else None for m in members]
    epochs = ", ".join("–" if b is None else str(b) for b in best)
    return f"ensemble of {len(members)} runs (best epochs {epochs})"


def _cross_database(
    doc: Document, figures: _Figures, label: str, metrics: dict[str, Any], part: str
) -> None:
    """A run on another database (`beatlab evaluate RUN --db DB`, or `--records DIR`): gross
    AAMI figures and the per-record table of S and V."""
    doc.add(
        Heading(f"Cross-database: {metrics.get('database', part)}", 3),
        Text(
            f"Every annotated beat of {metrics.get('records', '–')} records the model never saw; "
            "gross statistics over beats."
        ),
    )
    found = metrics.get("detection")
    if found:
        doc.add(
            Text(
                f"Beats found by the QRS detector: Se {_score(found['Se'])} of "
                f"{found['annotated']:,} annotated beats, +P {_score(found['+P'])} of "
                f"{found['detected']:,} detections; classes scored on the detections that found "
                f"an annotated beat."
                + (f" The {false_detections(found)}." if "false_called" in found else "")
            )
        )
    _classification(doc, figures, label, metrics, part)
    _per_record(doc, metrics)


def _per_record(doc: Document, metrics: dict[str, Any]) -> None:
    """The table of records, where the metrics have one: on patients a model never saw, its
    misses gather in a few of them."""
    rows = metrics.get("per_record") or []
    if rows:
        columns = list(rows[0])
        doc.add(
            Table(
                columns,
                [
                    [_score(r[c]) if "Se" in c or "+P" in c else str(r[c]) for c in columns]
                    for r in rows
                ],
                caption="per record: reference beats, Se and +P of S and V (– where none)",
            )
        )


def _experiment_section(doc: Document, figures: _Figures, label: str, exp: Experiment) -> None:
    trials, metric = exp.trials, exp.metric
    doc.add(
        Heading(f"Experiment {label}"),
        Text(f"{exp.path}: {len(trials)} trials, ranked by {metric} on the validation part."),
        Heading("Search space", 3),
    )
    if exp.space:
        doc.add(
            Table(
                ["hyperparameter", "distribution", "values"],
                [[p.name, p.kind, p.values] for p in exp.space],
            )
        )
    else:
        doc.add(Text("No search-space file (search_space.toml or space.toml) in the experiment."))
    tuned = exp.tuned
    ids = [c for c in ("trial", "trial_id") if c in trials][:1]
    columns = list(dict.fromkeys(c for c in (*ids, *STUDY_COLUMNS, metric, *tuned) if c in trials))
    top = trials.head(MAX_TRIALS)
    doc.add(
        Heading("Trials", 3),
        Table(
            ["rank", *columns],
            [
                [str(rank), *_trial_cells(row, columns, metric)]
                for rank, (_, row) in enumerate(top.iterrows(), 1)
            ],
            caption=f"best {len(top)} of {len(trials)} trials by {metric}",
        ),
    )
    if tuned:
        log = {p.name for p in exp.space if "log" in p.kind}
        doc.add(Heading(f"{metric} versus each tuned hyperparameter", 3))
        for param in tuned:
            path = figures.new(f"{label}-{metric}-vs-{param}")
            plot_metric_vs(trials, param, metric, path, log=param in log)
            doc.add(Figure(path.name, f"{metric} of every trial against {param}; best as a star"))
        path = figures.new(f"{label}-parallel-coordinates")
        plot_parallel(trials, tuned, metric, path)
        doc.add(
            Heading("Parallel coordinates", 3),
            Figure(
                path.name, f"every trial across the tuned hyperparameters, coloured by {metric}"
            ),
        )
    _best_of_experiment(doc, figures, label, exp)


def _trial_cells(row: pd.Series, columns: list[str], metric: str) -> list[str]:
    scores = {"accuracy", "recall macro", "f1 macro", metric}
    return [_score(row[c]) if c in scores else show(plain(row[c])) for c in columns]


def _best_of_experiment(doc: Document, figures: _Figures, label: str, exp: Experiment) -> None:
    """The best configuration's architecture and, where evaluated, its test results."""
    test = exp.test_metrics
    if exp.best_run is not None:
        model: BeatModel | None = exp.best_run.model
    elif exp.best_config is not None:
        classes = test.get("classes", CLASSES) if test else CLASSES
        model = create_model(
            exp.best_config.model, num_classes=len(classes), **exp.best_config.hparams
        )
    else:
        model = None
    if model is not None:
        _architecture(doc, model, "Architecture of the best configuration")
    if test is not None and "per_class" in test:
        _classification(doc, figures, f"{label}-best", test, "test")
    if exp.best_run is not None and "test" in exp.best_run.metrics:
        doc.add(*beat_gallery(exp.best_run, f"{label}-best", figures.new))
    if exp.best_run is not None:
        _learning_curves(doc, figures, f"{label}-best", exp.best_run.path)


def _architecture(doc: Document, model: BeatModel, title: str) -> None:
    """The layer table of the model object itself (a dummy forward gives the output shapes); for
    an ensemble, a row per member and one layer table per architecture its members share."""
    total = sum(p.numel() for p in model.parameters())
    if not isinstance(model, MeanEnsemble):
        doc.add(
            Heading(title, 3),
            Text(f"{model.name}: {total:,} parameters; {_settings(model.hparams)}."),
            _layers(model, "output shapes for a batch of one beat"),
        )
        return
    members: list[BeatModel] = [cast(BeatModel, m) for m in model.members]
    own = {k: v for k, v in model.hparams.items() if k not in ("members", "member", "channels")}
    doc.add(
        Heading(title, 3),
        Text(f"{model.name} of {len(members)} runs: {total:,} parameters; {_settings(own)}."),
        Table(
            ["member", "model", "lead", "parameters", "settings"],
            [
                [
                    str(i),
                    m.name,
                    str(model.channels[i] + 1) if model.channels is not None else "1",
                    f"{n:,}" if (n := sum(p.numel() for p in m.parameters())) else "–",
                    _settings({k: v for k, v in m.hparams.items() if k != "decision_weights"}),
                ]
                for i, m in enumerate(members)
            ],
            caption="its members (lead: which of the run's leads each reads; the ensemble, not "
            "they, decides with the decision weights)",
        ),
    )
    shared: dict[str, list[int]] = {}
    for i, m in enumerate(members):
        if any(p.numel() for p in m.parameters()):  # trees hold no layers to show
            shared.setdefault(f"{m.name} {m.hparams}", []).append(i)
    for same in shared.values():
        which = f"member{'s' if len(same) > 1 else ''} {', '.join(map(str, same))}"
        first = members[same[0]]
        doc.add(_layers(first, f"{which} ({first.name}): output shapes for a batch of one beat"))


def _settings(hparams: dict[str, Any]) -> str:
    return ", ".join(f"{k}={show(v)}" for k, v in hparams.items())


def _layers(model: BeatModel, caption: str) -> Table:
    rows = describe(model)
    total = sum(r["params"] for r in rows)
    return Table(
        ["layer", "type", "output shape", "parameters"],
        [[r["name"], r["type"], _shape(r["output_shape"]), f"{r['params']:,}"] for r in rows]
        + [["total", "", "", f"{total:,}"]],
        caption=caption,
    )


def _shape(shape: tuple[int, ...] | None) -> str:
    return "–" if shape is None else " × ".join(str(n) for n in shape)


def _note(metrics: dict[str, Any]) -> str:
    """What evaluation said of how the beats were classified (the AF gate's beats, beats left
    out), as `evaluate` printed it: the figures depend on it."""
    note = metrics.get("note")
    return f" {note[:1].upper()}{note[1:]}." if note else ""


def _classification(
    doc: Document, figures: _Figures, label: str, metrics: dict[str, Any], part: str
) -> None:
    """Per-class Se / +P / F1 and the confusion matrix, counts and row-normalised."""
    name = {"test": "test", "valid": "validation"}.get(part, part)
    doc.add(
        Heading(f"Per-class metrics ({name})", 3),
        Text(
            f"{metrics.get('n', 0):,} beats: accuracy {_score(metrics.get('accuracy'))}, "
            f"recall macro {_score(metrics.get('macro_recall'))}, "
            f"f1 macro {_score(metrics.get('macro_f1'))}.{_note(metrics)}"
        ),
        Table(
            ["class", "Se", "+P", "F1", "Sp", "support"],
            [
                [r["class"], *(_score(r[k]) for k in ("Se", "+P", "F1", "Sp")), f"{r['support']:,}"]
                for r in per_class_rows(metrics)
            ],
            caption="Se: sensitivity (recall), +P: positive predictive value (precision), "
            "Sp: specificity",
        ),
    )
    path = figures.new(f"{label}-confusion-{part}")
    plot_confusion(metrics, path, title=f"{label} ({name})")
    doc.add(
        Heading(f"Confusion matrix ({name})", 3),
        Figure(
            path.name,
            "counts (shaded on a log scale) and row-normalised (sensitivity on the diagonal)",
        ),
    )


def _learning_curves(doc: Document, figures: _Figures, label: str, run_dir: Path) -> None:
    history = run_dir / HISTORY
    if not history.is_file():
        return
    try:
        rows = [
            {str(k): float(v) for k, v in row.items()}
            for row in pd.read_csv(history).to_dict("records")
        ]
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise BeatlabError(
            f"unreadable history: {' '.join(str(err).split())[:200]}", history
        ) from None
    except OSError as err:
        raise BeatlabError(f"cannot read: {err.strerror or err}", history) from None
    needed = {"epoch", "train_loss", "val_loss", "val_accuracy", "val_macro_recall"}
    if rows and not needed <= set(rows[0]):
        raise BeatlabError(f"history lacks columns {sorted(needed - set(rows[0]))}", history)
    if not rows:
        return
    path = figures.new(f"{label}-learning-curves")
    plot_history(rows, path)
    doc.add(
        Heading("Learning curves", 3),
        Figure(path.name, "loss, validation accuracy and recall macro per epoch"),
    )
