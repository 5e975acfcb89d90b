"""The tree model (`gbt`): scikit-learn's fitted trees, walked in torch, give scikit-learn's
probabilities; they checkpoint, export to ONNX and refuse what does not apply to them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier

from beatlab.deploy.export import OnnxRunner, check_quantizable, export_model
from beatlab.errors import BeatlabError
from beatlab.models import create_model
from beatlab.models.trees import BoostedTrees


def fitted(
    num_classes: int, y: np.ndarray, x: np.ndarray, rr: np.ndarray, rounds: int = 12
) -> tuple[BoostedTrees, HistGradientBoostingClassifier, np.ndarray]:
    model = create_model("gbt", num_classes=num_classes, rounds=rounds)
    assert isinstance(model, BoostedTrees)
    features = model.features(torch.from_numpy(x), torch.from_numpy(rr)).numpy()
    estimator = HistGradientBoostingClassifier(max_iter=rounds, early_stopping=False)
    estimator.fit(features, y)
    model.load_estimator(estimator, rounds)
    return model.eval(), estimator, features


def beats(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 187), dtype=np.float32), rng.standard_normal((n, 3)).astype(
        np.float32
    )


@pytest.mark.parametrize(
    ("num_classes", "present"),
    [(5, [0, 1, 2, 3, 4]), (5, [0, 2, 3]), (2, [0, 1]), (4, [1, 3])],
    ids=["five", "five-two-absent", "binary", "two-of-four"],
)
def test_compiled_trees_give_scikit_learns_probabilities(
    num_classes: int, present: list[int]
) -> None:
    x, rr = beats(2000)
    x[::7, 12] = np.nan  # missing values: each split sends them the way scikit-learn learned
    score = x[:, 0] + rr[:, 1] + np.nan_to_num(x[:, 12]) * x[:, 60]
    cuts = np.quantile(score, np.linspace(0, 1, len(present) + 1)[1:-1])
    y = np.asarray(present)[np.digitize(score, cuts)]
    model, estimator, features = fitted(num_classes, y, x, rr)
    test_x, test_rr = beats(500, seed=1)
    test_x[::5, 12] = np.nan
    with torch.no_grad():
        ours = model(torch.from_numpy(test_x), torch.from_numpy(test_rr)).softmax(dim=1).numpy()
    theirs = np.zeros((500, num_classes))
    test_features = model.features(torch.from_numpy(test_x), torch.from_numpy(test_rr)).numpy()
    theirs[:, estimator.classes_] = estimator.predict_proba(test_features)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert (ours.argmax(1) == estimator.predict(test_features)).all()

    again = create_model("gbt", num_classes=num_classes, rounds=12)
    again.load_state_dict(model.state_dict())  # the walk's depth comes back with the checkpoint
    with torch.no_grad():
        torch.testing.assert_close(
            again.eval()(torch.from_numpy(test_x), torch.from_numpy(test_rr)).softmax(dim=1),
            torch.from_numpy(ours),
        )


def test_fewer_rounds_kept_are_scikit_learns_staged_probabilities() -> None:
    x, rr = beats(1500)
    y = (x[:, 3] + rr[:, 0] > 0.5).astype(int) + 2 * (x[:, 90] > 1)
    model, estimator, features = fitted(4, y, x, rr, rounds=10)
    fourth = list(estimator.staged_predict_proba(features))[3]
    model.load_estimator(estimator, 4)
    with torch.no_grad():
        ours = model(torch.from_numpy(x), torch.from_numpy(rr)).softmax(dim=1).numpy()
    np.testing.assert_allclose(ours[:, estimator.classes_], fourth, atol=1e-5)


def test_trees_export_to_onnx_and_refuse_int8(tmp_path: Path) -> None:
    x, rr = beats(800)
    y = (x[:, 30] > 0).astype(int) + (rr[:, 2] > 1).astype(int)
    model, _, _ = fitted(5, y, x, rr)
    path = export_model(model, ("N", "S", "V", "F", "Q"), "onnx", tmp_path / "m.onnx")
    with torch.no_grad():
        expected = model(torch.from_numpy(x), torch.from_numpy(rr)).softmax(dim=1).numpy()
    np.testing.assert_allclose(OnnxRunner(path).predict_proba(x, rr), expected, atol=1e-5)
    with pytest.raises(BeatlabError, match="model 'gbt' has none"):
        check_quantizable(model)


def test_an_unfitted_model_calls_every_class_alike() -> None:
    model = create_model("gbt", num_classes=5).eval()
    with torch.no_grad():
        proba = model(torch.rand(3, 187), torch.rand(3, 3)).softmax(dim=1)
    torch.testing.assert_close(proba, torch.full((3, 5), 0.2))


@pytest.mark.parametrize(
    ("hparams", "problem"),
    [
        ({"dropout": 0.3}, "dropout does not apply to trees"),
        ({"rr_norm": True}, "rr_norm does not apply to trees"),
        ({"rounds": 0}, "rounds must be at least 1"),
        ({"learning_rate": 0.0}, "learning_rate must be in"),
        ({"max_leaf_nodes": 1}, "max_leaf_nodes must be at least 2"),
    ],
)
def test_bad_tree_hyperparameters(hparams: dict[str, object], problem: str) -> None:
    with pytest.raises(BeatlabError, match=problem):
        create_model("gbt", **hparams)


def test_a_tree_model_has_no_head_to_replace() -> None:
    with pytest.raises(BeatlabError, match="no head to replace"):
        create_model("gbt").reset_head(2)
