"""Model registry and architectures: shapes, rebuild from hparams, validation, transfer learning."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from beatlab import BEAT_LENGTH, CLASSES
from beatlab.errors import BeatlabError
from beatlab.models import (
    BeatModel,
    create_model,
    describe,
    list_models,
    model_defaults,
)

MODELS = [name for name in list_models() if name != "gbt"]
"""The networks; the tree model `gbt` is fitted, not trained (tests/models/test_trees.py)."""

# Smaller than the defaults where the defaults are slow on CPU; the defaults get one test of
# their own (test_defaults_build_and_run).
SMALL: dict[str, dict[str, Any]] = {
    "cnn1d_gru": {"hidden": 16, "num_blocks": 2, "gru_hidden": 32},
    "cnn1d_resnet": {},
    "cnn2d_resnet": {"hidden": 16},
    "gru": {"hidden": 16, "chunk": 4},
    "transformer2d": {},
}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny batches run fastest single-threaded, and don't stall when the CPUs are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(name: str, **hparams: Any) -> BeatModel:
    torch.manual_seed(0)
    return create_model(name, **{**SMALL[name], **hparams})


def beats(batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, BEAT_LENGTH, generator=torch.Generator().manual_seed(1))


def rr_intervals(batch: int = 4) -> torch.Tensor:
    return 0.6 + 0.4 * torch.rand(batch, 3, generator=torch.Generator().manual_seed(2))


def test_expected_models_are_registered() -> None:
    assert list_models() == [
        "cnn1d_gru",
        "cnn1d_resnet",
        "cnn2d_resnet",
        "gbt",
        "gru",
        "transformer2d",
    ]
    assert set(SMALL) == set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_defaults_build_and_run(name: str) -> None:
    model = create_model(name)
    assert model.name == name
    assert model.num_classes == len(CLASSES)
    assert model.hparams == model_defaults(name)
    model.eval()
    with torch.no_grad():
        out = model(beats(2))
    assert out.shape == (2, len(CLASSES))
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS)
def test_logits_shape_train_and_eval(name: str) -> None:
    model = small(name)
    assert model(beats(4)).shape == (4, 5)
    model.eval()
    assert model(beats(1)).shape == (1, 5)


@pytest.mark.parametrize("name", MODELS)
def test_rr_intervals_are_used(name: str) -> None:
    model = small(name, use_rr=True).eval()
    x, rr = beats(4), rr_intervals(4)
    with torch.no_grad():
        out = model(x, rr)
        assert out.shape == (4, 5)
        assert not torch.allclose(out, model(x, rr + 1.0))
    with pytest.raises(BeatlabError, match="use_rr=True"):
        model(x)
    with pytest.raises(BeatlabError, match="use_rr=True"):
        model(x, rr[:, :2])


@pytest.mark.parametrize("name", MODELS)
def test_rr_is_ignored_without_use_rr(name: str) -> None:
    model = small(name).eval()
    with torch.no_grad():
        assert torch.equal(model(beats(3)), model(beats(3), rr_intervals(3)))


def test_wrong_beat_shape_is_a_clear_error() -> None:
    model = small("cnn1d_resnet")
    with pytest.raises(BeatlabError, match=r"expects beats shaped \(batch, 187\)"):
        model(torch.zeros(2, 180))
    with pytest.raises(BeatlabError, match=r"expects beats shaped"):
        model(torch.zeros(2, 1, 187))


@pytest.mark.parametrize("name", MODELS)
def test_rebuild_from_hparams(name: str) -> None:
    model = small(name, use_rr=True, num_classes=3).eval()
    hparams = json.loads(json.dumps(model.hparams))  # as stored in a checkpoint or config
    assert hparams == model.hparams
    twin = create_model(model.name, num_classes=model.num_classes, **hparams).eval()
    assert twin.hparams == model.hparams
    mine, theirs = model.state_dict(), twin.state_dict()
    assert list(mine) == list(theirs)
    assert all(mine[k].shape == theirs[k].shape for k in mine)
    twin.load_state_dict(mine)
    x, rr = beats(3), rr_intervals(3)
    with torch.no_grad():
        assert torch.equal(model(x, rr), twin(x, rr))


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_model(name: str) -> None:
    a, b = small(name).eval(), small(name).eval()
    with torch.no_grad():
        assert torch.equal(a(beats()), b(beats()))


def test_unknown_model() -> None:
    with pytest.raises(BeatlabError, match=r"unknown model 'cnn1d_gr'.*did you mean 'cnn1d_gru'"):
        create_model("cnn1d_gr")
    with pytest.raises(BeatlabError, match=r"known: cnn1d_gru, cnn1d_resnet"):
        model_defaults("resnet50")


def test_unknown_hyperparameter() -> None:
    with pytest.raises(BeatlabError) as info:
        create_model("cnn1d_gru", hiden=32)
    message = str(info.value)
    assert "unknown hyperparameter 'hiden' for model 'cnn1d_gru'" in message
    assert "did you mean 'hidden'" in message
    known = (
        "decision_weights, dropout, gru_hidden, hidden, layer_norm, num_blocks, num_layers, "
        "rr_norm, use_rr"
    )
    assert f"(known: {known})" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "hparams", "expected"),
    [
        ("cnn1d_gru", {"hidden": "64"}, "'hidden' for model 'cnn1d_gru' must be an int, got str"),
        ("cnn1d_gru", {"hidden": 64.5}, "must be an int, got float 64.5"),
        ("cnn1d_gru", {"hidden": True}, "must be an int, got bool"),
        ("cnn1d_gru", {"layer_norm": 1}, "'layer_norm' for model 'cnn1d_gru' must be a bool"),
        ("gru", {"dropout": "0.1"}, "'dropout' for model 'gru' must be a number, got str"),
        ("gru", {"dropout": False}, "must be a number, got bool"),
        ("gru", {"use_rr": "yes"}, "'use_rr' for model 'gru' must be a bool"),
        ("cnn2d_resnet", {"grid": 16}, "'grid' for model 'cnn2d_resnet' must be a list of 2 ints"),
        ("cnn2d_resnet", {"grid": [16, 12, 1]}, "must be a list of 2 ints"),
        ("transformer2d", {"patch": [4, 4.5]}, "'patch' for model 'transformer2d' must be an int"),
        ("cnn1d_resnet", {"num_blocks": None}, "must be an int, got NoneType None"),
    ],
)
def test_wrong_type(name: str, hparams: dict[str, Any], expected: str) -> None:
    with pytest.raises(BeatlabError) as info:
        create_model(name, **hparams)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("name", "hparams", "expected"),
    [
        ("cnn2d_resnet", {"grid": [10, 10]}, "grid 10x10 holds 100 samples, fewer than the 187"),
        ("transformer2d", {"patch": [5, 4]}, "patch [5, 4] must divide grid [16, 12]"),
        ("transformer2d", {"hidden": 30}, "hidden=30 must be divisible by heads=4"),
        ("cnn1d_resnet", {"num_blocks": 6}, "(at most 5)"),
        ("cnn1d_resnet", {"kernel": 4}, "kernel must be odd"),
        ("cnn1d_gru", {"dropout": 1.0}, "dropout must be in [0, 1)"),
        ("gru", {"hidden": 0}, "hidden must be at least 1"),
    ],
)
def test_bad_values(name: str, hparams: dict[str, Any], expected: str) -> None:
    with pytest.raises(BeatlabError, match=f"bad hyperparameters for model '{name}'") as info:
        create_model(name, **hparams)
    assert expected in str(info.value)


def test_num_classes_is_validated() -> None:
    with pytest.raises(BeatlabError, match="num_classes"):
        create_model("gru", num_classes=0)
    with pytest.raises(BeatlabError, match="num_classes"):
        create_model("gru", num_classes="5")  # type: ignore[arg-type]


def test_lenient_numbers_are_normalised() -> None:
    # Tuners hand out floats for integer choices, and 0 for a dropout is a fine float.
    model = create_model("cnn1d_resnet", filters=16.0, dropout=0, kernel=torch.tensor(3).item())
    assert model.hparams["filters"] == 16 and type(model.hparams["filters"]) is int
    assert model.hparams["dropout"] == 0.0 and type(model.hparams["dropout"]) is float
    grid_tuple = create_model("cnn2d_resnet", hidden=8, grid=(12, 16))
    grid_list = create_model("cnn2d_resnet", hidden=8, grid=[12, 16])
    assert grid_tuple.hparams["grid"] == grid_list.hparams["grid"] == [12, 16]


def test_decision_weights_reweight_probabilities_in_eval_mode_only() -> None:
    torch.manual_seed(0)
    plain = create_model("cnn1d_resnet", num_classes=3)
    weighted = create_model("cnn1d_resnet", num_classes=3, decision_weights=[1, 4, 0.5])
    weighted.load_state_dict(plain.state_dict())  # the weights are not in the checkpoint
    x = torch.randn(6, 187)
    plain.train(), weighted.train()
    torch.manual_seed(1)
    a = plain(x)
    torch.manual_seed(1)
    assert torch.allclose(weighted(x), a)
    plain.eval(), weighted.eval()
    expected = plain(x).softmax(1) * torch.tensor([1, 4, 0.5])
    expected /= expected.sum(1, keepdim=True)
    assert torch.allclose(weighted(x).softmax(1), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("weights", "problem"),
    [
        ([1, 2], "decision_weights holds 2 weights for 3 classes"),
        ([1, 0, 1], "decision_weights must all be above 0"),
        (2.0, "must be a list of numbers"),
    ],
)
def test_bad_decision_weights_are_one_line(weights: object, problem: str) -> None:
    with pytest.raises(BeatlabError, match=problem):
        create_model("cnn1d_resnet", num_classes=3, decision_weights=weights)


def test_model_defaults_are_copies() -> None:
    defaults = model_defaults("cnn1d_gru")
    assert defaults == {
        "use_rr": False,
        "rr_norm": False,
        "dropout": 0.4,
        "decision_weights": [],
        "hidden": 64,
        "num_blocks": 5,
        "gru_hidden": 256,
        "num_layers": 2,
        "layer_norm": True,
    }
    defaults["hidden"] = 1
    assert model_defaults("cnn1d_gru")["hidden"] == 64
    assert model_defaults("cnn2d_resnet")["grid"] == [16, 12]


@pytest.mark.parametrize("name", MODELS)
def test_reset_head_for_transfer_learning(name: str) -> None:
    model = small(name, use_rr=True)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    model.reset_head(2)
    assert model.num_classes == 2
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 2
    assert model(beats(4), rr_intervals(4)).shape == (4, 2)
    after = dict(model.named_parameters())
    assert list(after) == list(before)
    assert all(torch.equal(after[k], v) for k, v in before.items() if not k.startswith("head."))
    # A checkpoint of the new model rebuilds with its new width.
    twin = create_model(model.name, num_classes=model.num_classes, **model.hparams)
    twin.load_state_dict(model.state_dict())


@pytest.mark.parametrize("name", MODELS)
def test_backbone_parameters_exclude_head(name: str) -> None:
    model = small(name)
    backbone = list(model.backbone_parameters())
    head = list(model.head.parameters())
    assert len(backbone) + len(head) == len(list(model.parameters()))
    assert not {id(p) for p in backbone} & {id(p) for p in head}
    for p in model.backbone_parameters():
        p.requires_grad_(False)
    model(beats(4)).sum().backward()
    assert all(p.grad is None for p in backbone)
    assert all(p.grad is not None for p in head)


def test_reset_head_rejects_bad_width() -> None:
    with pytest.raises(BeatlabError, match="num_classes"):
        small("gru").reset_head(0)


@pytest.mark.parametrize("name", MODELS)
def test_describe(name: str) -> None:
    model = small(name, use_rr=True)
    model.train()
    rows = describe(model)
    assert model.training  # mode restored
    assert all(set(row) == {"name", "type", "output_shape", "params"} for row in rows)
    assert all(row["output_shape"] is not None for row in rows)
    assert sum(row["params"] for row in rows) == sum(p.numel() for p in model.parameters())
    head = next(row for row in rows if row["name"] == "head")
    assert head["type"] == "Linear" and head["output_shape"] == (1, 5)
    json.dumps(rows)


def test_describe_layer_table_of_kachuee() -> None:
    rows = {row["name"]: row for row in describe(create_model("cnn1d_resnet"))}
    assert rows["stem"]["output_shape"] == (1, 32, BEAT_LENGTH)
    assert [rows[f"blocks.{i}.pool"]["output_shape"][-1] for i in range(5)] == [92, 44, 20, 8, 2]
    assert rows["flatten"]["output_shape"] == (1, 64)


@pytest.mark.parametrize("name", MODELS)
def test_one_step_reduces_loss(name: str) -> None:
    model = small(name, dropout=0.0, use_rr=True)
    x, rr = beats(16), rr_intervals(16)
    y = torch.arange(16) % 5
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        return nn.functional.cross_entropy(model(x, rr), y)

    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        assert loss().item() < before.item()
