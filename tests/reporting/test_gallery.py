"""The report's beat gallery: which misclassified beats it picks, the figure of a class, and the
note that replaces it when the run's test beats cannot be rebuilt. The report test covers it on a
real run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.image import imread

from beatlab import CLASSES
from beatlab.data.build import Beats
from beatlab.models import create_model
from beatlab.reporting.document import Text
from beatlab.reporting.gallery import beat_gallery, pick_errors, plot_class, typical
from beatlab.training.config import TrainConfig
from beatlab.training.runs import Run


def one_hot(pred: list[int], sure: list[float], k: int = 3) -> np.ndarray:
    proba = np.zeros((len(pred), k))
    proba[np.arange(len(pred)), pred] = sure
    return proba


def test_errors_surest_first_one_per_mistaken_class_first() -> None:
    y = np.array([0, 0, 0, 0, 0, 1])
    proba = one_hot([1, 1, 2, 0, 1, 0], [0.9, 0.95, 0.6, 0.99, 0.7, 0.8])
    # errors of class 0: beats 0 (->1, 0.9), 1 (->1, 0.95), 2 (->2, 0.6), 4 (->1, 0.7)
    assert pick_errors(y, proba, 0, 3).tolist() == [1, 2, 0]
    assert pick_errors(y, proba, 0, 10).tolist() == [1, 2, 0, 4]
    assert pick_errors(y, proba, 1, 4).tolist() == [5]
    assert pick_errors(y, proba, 2, 4).tolist() == []


def test_class_figure(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 60
    y = np.repeat(np.arange(3), n // 3)
    x = (rng.random((n, 187)) * 0.2 + y[:, None] * 0.3).astype(np.float32)
    beats = Beats(x, y, np.zeros((n, 3), np.float32), np.full(n, "100"), np.arange(n))
    proba = np.eye(3)[y] * 0.9
    proba[[0, 1, 2], :] = [0.1, 0.8, 0.1]  # three N beats taken for S
    typicals = [typical(x[y == k]) for k in range(3)]
    path = tmp_path / "class.png"
    assert plot_class(beats, proba, ("N", "S", "V"), 0, typicals, path) == 3
    assert plot_class(beats, proba, ("N", "S", "V"), 2, typicals, tmp_path / "v.png") == 0
    wide, narrow = imread(path), imread(tmp_path / "v.png")
    assert wide.shape[1] > 2.5 * narrow.shape[1]  # the typical beat plus three errors


def test_no_data_gives_a_note_not_a_failure(tmp_path: Path) -> None:
    config = TrainConfig(model="cnn1d_resnet", data_dir=str(tmp_path / "nowhere"))
    model = create_model("cnn1d_resnet", num_classes=len(CLASSES))
    run = Run(tmp_path, config, CLASSES, model, {})
    blocks = beat_gallery(run, "x", lambda stem: tmp_path / f"{stem}.png")
    assert len(blocks) == 2 and isinstance(blocks[1], Text)
    assert blocks[1].text.startswith("No beat gallery: the test beats could not be rebuilt")
    assert not list(tmp_path.glob("*.png"))
