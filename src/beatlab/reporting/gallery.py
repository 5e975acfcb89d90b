"""The beat gallery of a run's report: what a typical beat of each class looks like, and what the
model got wrong, drawn beside the typical beat of the class it was mistaken for.

A confusion matrix says how often S beats are taken for N; only the beats show whether those S
beats look like N beats (a labelling or segmentation question) or not (a model question). The test
beats are rebuilt from the run's config (the test part depends on split and seed alone, so
balancing is skipped) and classified again, only for runs evaluated on test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from beatlab.data.build import Beats  # noqa: E402
from beatlab.data.layouts import KACHUEE, BuildParams, r_index  # noqa: E402
from beatlab.errors import BeatlabError  # noqa: E402
from beatlab.reporting.document import Block, Figure, Heading, Text  # noqa: E402
from beatlab.reporting.figures import _save  # noqa: E402
from beatlab.reporting.view import class_colors  # noqa: E402
from beatlab.training.runs import Run  # noqa: E402

ERRORS_SHOWN = 4
"""Misclassified beats drawn per class."""
SEARCHED = 1000
"""Test beats per class classified again to find misclassified ones."""
BAND = (10, 50, 90)
"""Percentiles drawn: the band's edges and the typical (median) beat."""


def test_beats(run: Run) -> tuple[Beats, Beats, np.ndarray]:
    """The run's test beats; a seeded sample of them, at most SEARCHED per class; and the run's
    class probabilities for that sample, where the errors are looked for (classifying every test
    beat again would cost more than the rest of the report)."""
    from beatlab.training.data import dataset_for
    from beatlab.training.trainer import Tensors, predict_proba

    ds = dataset_for(run.config.updated({"limit": None, "balance": "none"}), run.layout)
    if ds.classes != run.classes:
        raise BeatlabError(f"the run's test beats have classes {ds.classes}", run.path)
    beats = ds.test
    if run.model.use_rr and not beats.rr.any():
        raise BeatlabError("the run's model needs R-R intervals, which its test beats lack")
    rng = np.random.default_rng(run.config.seed)
    chosen = [
        rng.choice(members, min(len(members), SEARCHED), replace=False)
        for members in (np.flatnonzero(beats.y == k) for k in range(len(run.classes)))
    ]
    searched = beats.take(np.sort(np.concatenate(chosen)))
    proba = predict_proba(run.model, Tensors.from_beats(searched))
    if beats.x.ndim == 3:  # an ensemble over several leads: the gallery draws the first
        beats, searched = replace(beats, x=beats.x[:, 0]), replace(searched, x=searched.x[:, 0])
    return beats, searched, proba


def beat_time(length: int, params: BuildParams) -> np.ndarray:
    """Seconds from the R peak of each sample of a beat in a layout."""
    return (np.arange(length) - r_index(params)) / params.fs


def typical(x: np.ndarray) -> tuple[np.ndarray, int] | None:
    """(3, length) 10th, 50th and 90th percentiles at each sample, and the number of beats;
    None without beats."""
    return (np.percentile(x, BAND, axis=0), len(x)) if len(x) else None


def pick_errors(y: np.ndarray, proba: np.ndarray, k: int, count: int) -> np.ndarray:
    """Up to `count` misclassified beats of class k, the ones the model was surest of first,
    taking one per mistaken-for class before a second of any."""
    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero((y == k) & (pred != k))
    wrong = wrong[np.argsort(-proba[wrong, pred[wrong]], kind="stable")]
    first, seen = np.zeros(len(wrong), dtype=bool), set()
    for i, index in enumerate(wrong):
        if int(pred[index]) not in seen:
            first[i] = True
            seen.add(int(pred[index]))
    return np.concatenate([wrong[first], wrong[~first]])[:count]


def plot_class(
    searched: Beats,
    proba: np.ndarray,
    classes: tuple[str, ...],
    k: int,
    typicals: list[tuple[np.ndarray, int] | None],
    path: Path,
    layout: BuildParams = KACHUEE,
) -> int:
    """One class: its typical beat and band, then its errors (among the `searched` beats, with
    their probabilities) each over the typical beat of the class taken instead. Returns how many
    errors it shows."""
    colors = class_colors(classes)
    errors = pick_errors(searched.y, proba, k, ERRORS_SHOWN)
    pred = proba.argmax(axis=1)
    t = beat_time(searched.x.shape[1], layout)
    panels = 1 + len(errors)
    fig, axes = plt.subplots(
        1, panels, figsize=(2.9 * panels + 0.4, 2.5), sharey=True, squeeze=False
    )
    ax = axes[0, 0]
    own = typicals[k]
    if own is not None:
        band, count = own
        ax.fill_between(t, band[0], band[2], color=colors[k], alpha=0.25, lw=0, label="10–90 %")
        ax.plot(t, band[1], color=colors[k], lw=1.8, label="median")
        ax.set_title(f"typical {classes[k]} ({count:,} beats)", fontsize=9)
    ax.set_ylabel("normalised amplitude")
    ax.legend(fontsize=7, loc="upper right", frameon=False)
    for ax, index in zip(axes[0, 1:], errors, strict=True):
        j = int(pred[index])
        other = typicals[j]
        if other is not None:
            band = other[0]
            ax.fill_between(t, band[0], band[2], color=colors[j], alpha=0.18, lw=0)
            ax.plot(t, band[1], color=colors[j], lw=1.4, ls="--", label=f"typical {classes[j]}")
        ax.plot(t, searched.x[index], color="#222", lw=1.2, label=f"this {classes[k]} beat")
        record = str(searched.record[index])
        ax.set_title(
            f"{classes[k]} taken for {classes[j]} (p {proba[index, j]:.2f})\n"
            + (f"record {record}, sample {int(searched.sample[index])}" if record else ""),
            fontsize=8,
        )
        ax.legend(fontsize=7, loc="upper right", frameon=False)
    if not len(errors):
        ax.text(0.02, 0.02, "no misclassified test beats", transform=ax.transAxes, fontsize=8)
    for ax in axes[0]:
        ax.set_xlabel("time from R peak (s)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    fig.tight_layout()
    _save(fig, path)
    return len(errors)


def beat_gallery(run: Run, label: str, new_figure: Callable[[str], Path]) -> list[Block]:
    """The gallery section of a run evaluated on test; a one-line note instead when its test
    beats cannot be rebuilt here (e.g. the data is not on this machine)."""
    blocks: list[Block] = [Heading("Typical and misclassified beats (test)", 3)]
    try:
        beats, searched, proba = test_beats(run)
    except BeatlabError as err:
        return [*blocks, Text(f"No beat gallery: the test beats could not be rebuilt ({err}).")]
    classes = run.classes
    typicals = [typical(beats.x[beats.y == k]) for k in range(len(classes))]
    blocks.append(
        Text(
            f"The run's {len(beats):,} test beats. Per class, the median beat (line) and the "
            "10–90 % band of its beats; beside it, misclassified beats, each drawn over the "
            "typical beat of the class it was taken for (dashed): those the model was surest "
            f"of, one per mistaken-for class first, among up to {SEARCHED:,} beats per class "
            "(a seeded sample) classified again."
        )
    )
    for k, name in enumerate(classes):
        if typicals[k] is None:
            continue
        path = new_figure(f"{label}-beats-{name}")
        shown = plot_class(searched, proba, classes, k, typicals, path, run.layout)
        blocks.append(
            Figure(path.name, f"class {name}: typical beat and {shown} misclassified beats")
        )
    return blocks
