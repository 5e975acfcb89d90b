"""Epochs drawn from the balanced distribution (`sampler="balanced"`), on generated beats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from imblearn.over_sampling import SMOTE

from beatlab.data.build import Beats
from beatlab.errors import BeatlabError
from beatlab.models import create_model
from beatlab.training.config import TrainConfig
from beatlab.training.data import dataset_for
from beatlab.training.sampler import BalancedSampler
from beatlab.training.trainer import fit

CLASSES = ("N", "S", "V", "F", "Q")


def beats(counts: tuple[int, ...] = (600, 40, 120, 20, 0), seed: int = 0) -> Beats:
    """Beats whose samples say their class (a level per class) plus noise, for the counts."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(counts)), counts)
    x = (y[:, None] / 10 + 0.05 * rng.random((len(y), 187))).astype(np.float32)
    rr = rng.uniform(0.5, 1.0, (len(y), 3)).astype(np.float32)
    return Beats(x, y, rr, np.full(len(y), "r"), np.arange(len(y)))


def test_oversample_draws_every_present_class_equally_from_real_beats() -> None:
    train = beats()
    sampler = BalancedSampler(train, "oversample")
    assert sampler.beats == 4 * 600  # the oversampled set's size: an epoch means the same
    x, y, rr, _ = sampler(torch.Generator().manual_seed(0))
    assert x.shape == (2400, 187) and rr.shape == (2400, 3)
    share = np.bincount(y.numpy(), minlength=5) / len(y)
    np.testing.assert_allclose(share[:4], 0.25, atol=0.04)
    assert share[4] == 0  # an absent class stays absent
    rows = {row.tobytes() for row in train.x}
    assert all(row.tobytes() in rows for row in x.numpy())
    again = sampler(torch.Generator().manual_seed(0))
    assert (
        torch.equal(again[0], x)
        and len(BalancedSampler(train, "oversample", 256)(torch.Generator())[0]) == 256
    )


def test_smote_draws_smotes_share_of_interpolations_between_smotes_neighbours() -> None:
    train = beats()
    sampler = BalancedSampler(train, "smote", 20_000)
    x, y, rr, _ = sampler(torch.Generator().manual_seed(1))
    originals = {row.tobytes() for row in train.x}
    synthetic = np.array([row.tobytes() not in originals for row in x.numpy()])
    for c, n in zip(range(4), (600, 40, 120, 20), strict=True):
        assert synthetic[y.numpy() == c].mean() == pytest.approx(1 - n / 600, abs=0.03)
    # each synthetic beat lies between two beats of its class, in samples and R-R alike
    features = np.concatenate([x.numpy(), rr.numpy()], axis=1)
    own = np.concatenate([train.x, train.rr], axis=1)
    for c in range(4):
        drawn, members = features[y.numpy() == c], own[train.y == c]
        assert np.all(drawn >= members.min(0) - 1e-6) and np.all(drawn <= members.max(0) + 1e-6)
    # SMOTE's own set has the same class mix and value range
    fx, fy = SMOTE(random_state=0, k_neighbors=5).fit_resample(own, train.y)
    assert np.bincount(fy).tolist() == [600] * 4
    assert x.numpy().min() >= fx[:, :187].min() - 1e-6 and x.numpy().max() <= fx.max() + 1e-6


def test_sampler_settings_are_checked() -> None:
    with pytest.raises(BeatlabError, match="oversample or smote"):
        TrainConfig(sampler="balanced", balance="weights").check()
    with pytest.raises(BeatlabError, match="needs sampler 'balanced'"):
        TrainConfig(epoch_beats=1000).check()
    with pytest.raises(BeatlabError, match="unknown sampler"):
        TrainConfig(sampler="balance").check()
    with pytest.raises(BeatlabError, match="at least 1"):
        TrainConfig(threads=0).check()
    TrainConfig(sampler="balanced", balance="smote", epoch_beats=5000, threads=1).check()


def test_fit_with_the_sampler_is_deterministic_and_visits_epoch_beats() -> None:
    train, valid = beats(), beats((60, 8, 12, 4, 0), seed=1)
    config = TrainConfig(
        model="cnn1d_resnet",
        epochs=2,
        batch_size=64,
        sampler="balanced",
        balance="smote",
        epoch_beats=320,
        early_stopping=0,
        threads=1,
    )
    runs, threads = [], []
    before = torch.get_num_threads()
    for _ in range(2):
        torch.manual_seed(0)
        model = create_model("cnn1d_resnet", num_classes=5, filters=8, num_blocks=1)
        on_epoch = lambda *_: threads.append(torch.get_num_threads())  # noqa: E731
        runs.append(fit(model, train, valid, config, CLASSES, progress=False, on_epoch=on_epoch))
    a, b = (
        [{k: v for k, v in row.items() if "seconds" not in k} for row in r.history] for r in runs
    )
    assert a == b and len(a) == 2
    assert threads == [1] * 4 and torch.get_num_threads() == before  # set while fitting only


def test_the_dataset_is_not_balanced_when_the_sampler_draws(tiny_mitdb: Path) -> None:
    config = TrainConfig(data_dir=str(tiny_mitdb.parent), balance="oversample")
    built = dataset_for(config)
    drawn = dataset_for(config.updated({"sampler": "balanced"}))
    assert built.train.counts()[2] == built.train.counts()[0] > drawn.train.counts()[2]
    assert len(drawn.train) < len(built.train)
