"""Where beatlab's messages go: progress bars."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import spy_on_bars

from beatlab.models import create_model
from beatlab.training.trainer import Tensors, predict_proba


def test_the_bar_counts_every_beat_once_and_changes_no_probability(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(0)
    model = create_model("cnn1d_resnet", use_rr=True)
    rng = np.random.default_rng(0)
    data = Tensors(
        torch.from_numpy(rng.random((1300, 187), dtype=np.float32)),
        torch.zeros(1300, dtype=torch.int64),
        torch.from_numpy(rng.random((1300, 3), dtype=np.float32)),
    )
    bars = spy_on_bars(monkeypatch)
    shown = predict_proba(model, data, batch=512, progress=True)
    quiet = predict_proba(model, data, batch=512)
    assert np.array_equal(shown, quiet)
    assert bars == [
        ("classifying beats", 1300, False, [512, 512, 276]),
        ("classifying beats", 1300, True, [512, 512, 276]),
    ]
