"""Figures of a run: learning curves and confusion matrices (matplotlib, written as PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from beatlab.io import writing  # noqa: E402


def _save(fig: Any, path: Path) -> None:
    with writing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_history(history: list[dict[str, float]], path: Path) -> None:
    """Loss and validation accuracy / macro recall per epoch."""
    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(epochs, [r["train_loss"] for r in history], "o-", label="train loss")
    left.plot(epochs, [r["val_loss"] for r in history], "o-", label="validation loss")
    left.set_xlabel("epoch")
    left.set_title("loss")
    left.legend()
    right.plot(epochs, [r["val_accuracy"] for r in history], "o-", label="val accuracy")
    right.plot(epochs, [r["val_macro_recall"] for r in history], "o-", label="val macro recall")
    right.set_xlabel("epoch")
    right.set_title("validation metrics")
    right.legend()
    for ax in (left, right):
        ax.grid(alpha=0.3)
    _save(fig, path)


def plot_confusion(metrics: dict[str, Any], path: Path, title: str = "") -> None:
    """Counts and row-normalised (per true class: sensitivity on the diagonal) side by side."""
    cm = np.asarray(metrics["confusion_matrix"], dtype=float)
    classes = metrics["classes"]
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, data, name, fmt in (
        (axes[0], cm, "counts", "{:.0f}"),
        (axes[1], norm, "row-normalised", "{:.3f}"),
    ):
        image = ax.imshow(data if name != "counts" else np.log1p(data), cmap="Blues")
        del image
        ax.set_xticks(range(len(classes)), classes)
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title} {name}".strip())
        high = data.max() * 0.6 if name != "counts" else np.log1p(data).max() * 0.6
        for i in range(len(classes)):
            for j in range(len(classes)):
                shade = data[i, j] if name != "counts" else np.log1p(data[i, j])
                ax.text(
                    j,
                    i,
                    fmt.format(data[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shade > high else "black",
                )
    _save(fig, path)
