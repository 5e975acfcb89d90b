"""Figures of an experiment: the metric against each tuned hyperparameter, and all of them at once
(parallel coordinates), written as PNG. Run figures come from `beatlab.training.plots`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402

from beatlab.io import writing  # noqa: E402
from beatlab.reporting.sources import show  # noqa: E402


def _save(fig: Any, path: Path) -> None:
    with writing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _positions(values: pd.Series) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Numbers stay numbers; anything else (training set, optimizer) becomes category codes,
    returned with their tick labels."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=float), []
    categories = sorted(values.dropna().astype(str).unique())
    codes = {c: float(i) for i, c in enumerate(categories)}
    x = np.array([codes[str(v)] if pd.notna(v) else np.nan for v in values])
    return x, [(codes[c], c) for c in categories]


def plot_metric_vs(
    trials: pd.DataFrame, param: str, metric: str, path: Path, *, log: bool = False
) -> None:
    """One point per trial; the best trial (the first row) as a red star."""
    x, ticks = _positions(trials[param])
    y = trials[metric].to_numpy(dtype=float)
    if ticks:  # spread tied categories a little, deterministically, so points stay visible
        x = x + np.random.default_rng(0).uniform(-0.08, 0.08, len(x))
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    ax.scatter(x, y, s=26, alpha=0.7, color="tab:blue", label="trial")
    ax.scatter(x[:1], y[:1], s=120, marker="*", color="tab:red", label="best", zorder=3)
    if ticks:
        ax.set_xticks([pos for pos, _ in ticks], [label for _, label in ticks])
    elif log and np.nanmin(x) > 0:
        ax.set_xscale("log")
    ax.set_xlabel(param)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs {param}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_parallel(trials: pd.DataFrame, params: list[str], metric: str, path: Path) -> None:
    """Every trial as a line through one vertical axis per hyperparameter and the metric,
    coloured by the metric; each axis is scaled to its own range, labelled at its ends."""
    columns = [*params, metric]
    scaled, labels = [], []
    for column in columns:
        x, ticks = _positions(trials[column])
        low, high = np.nanmin(x), np.nanmax(x)
        span = high - low if high > low else 1.0
        scaled.append((x - low) / span if high > low else np.full_like(x, 0.5))
        ends = ticks or [(low, show(float(low))), (high, show(float(high)))]
        labels.append([((pos - low) / span if high > low else 0.5, text) for pos, text in ends])
    lines = np.stack(scaled, axis=1)
    y = trials[metric].to_numpy(dtype=float)
    norm, cmap = Normalize(np.nanmin(y), np.nanmax(y)), plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(columns)), 4.2))
    for i in reversed(range(len(lines))):  # the best (first) trial is drawn last, on top
        ax.plot(
            range(len(columns)),
            lines[i],
            color="tab:red" if i == 0 else cmap(norm(y[i])),
            lw=2.6 if i == 0 else 1.3,
            alpha=0.9,
            zorder=3 if i == 0 else 2,
        )
    for j, axis_labels in enumerate(labels):
        ax.axvline(j, color="#444", lw=0.8, zorder=1)
        for pos, text in axis_labels:
            ax.text(j + 0.04, pos, text, fontsize=7, va="center", zorder=4)
    ax.set_xticks(range(len(columns)), columns, rotation=20)
    ax.set_yticks([])
    ax.set_ylim(-0.05, 1.05)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_title("trials in parallel coordinates (best in red)")
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=metric)
    _save(fig, path)
