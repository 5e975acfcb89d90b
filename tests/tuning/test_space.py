"""Search-space files and the experiment's outputs, without starting Ray."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from beatlab.errors import BeatlabError
from beatlab.training.config import MONITORS, TrainConfig
from beatlab.tuning import load_space
from beatlab.tuning.experiment import TuneSettings, tune_config
from beatlab.tuning.results import config_toml, markdown, results_table
from beatlab.tuning.space import Param

SEARCH = Path(__file__).resolve().parents[2] / "configs" / "search"


def write(tmp_path: Path, text: str, name: str = "space.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_study_spaces_have_the_study_ranges() -> None:
    gru = load_space(SEARCH / "cnn1d_gru.toml", "cnn1d_gru").params
    assert gru == {
        "gru_hidden": Param("gru_hidden", "choice", (32, 64, 128, 256, 512)),
        "batch_size": Param("batch_size", "choice", (16, 32, 48, 60)),
        "num_layers": Param("num_layers", "choice", (2, 3, 4)),
        "num_blocks": Param("num_blocks", "randint", (1, 5)),
        "dropout": Param("dropout", "choice", (0.2, 0.3, 0.4)),
        "optimizer": Param("optimizer", "choice", ("adam", "adamw")),
        "balance": Param("balance", "choice", ("smote", "oversample")),
        "factor": Param("factor", "uniform", (0.1, 0.4)),
    }
    cnn2d = load_space(SEARCH / "cnn2d_resnet.toml", "cnn2d_resnet").params
    assert cnn2d == {
        "batch_size": Param("batch_size", "choice", (16, 32, 48)),
        "hidden": Param("hidden", "randint", (62, 256)),
        "num_layers": Param("num_layers", "choice", (2, 3, 4)),
        "num_blocks": Param("num_blocks", "randint", (1, 7)),
        "dropout": Param("dropout", "uniform", (0.1, 0.4)),
        "factor": Param("factor", "uniform", (0.1, 0.4)),
    }
    load_space(SEARCH / "cnn1d_resnet.toml", "cnn1d_resnet")


def test_ray_domains_and_grid(tmp_path: Path) -> None:
    space = load_space(
        write(
            tmp_path,
            "num_blocks = {randint = [2, 4]}\nbatch = {choice = [32, 64]}\nlr = 0.002\n",
        ),
        "cnn1d_resnet",
    )
    sampled = space.param_space()
    assert sampled["lr"] == 0.002
    assert {sampled["num_blocks"].sample() for _ in range(200)} == {2, 3, 4}  # both ends in
    assert space.param_space(grid=True)["num_blocks"] == {"grid_search": [2, 3, 4]}
    assert space.grid_size() == 6
    assert space.searched == ["num_blocks", "batch_size"]
    with pytest.raises(BeatlabError, match="grid search needs finite values, but 'factor'"):
        load_space(SEARCH / "cnn1d_gru.toml", "cnn1d_gru").param_space(grid=True)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("widht = {choice = [1, 2]}", "unknown hyperparameter 'widht' for model 'cnn1d_resnet'"),
        ("hidden = {choice = [8]}", "unknown hyperparameter 'hidden' for model 'cnn1d_resnet'"),
        ("batch = {choice = []}", "'batch': empty range"),
        ("dropout = {uniform = [0.3, 0.1]}", "'dropout': empty range"),
        ("num_blocks = {randint = [4, 2]}", "'num_blocks': empty range"),
        ("epochs = {choice = [1, 2]}", "'epochs' is set by `beatlab tune --max-epochs`"),
        ("filters = {uniform = [8, 32]}", "'filters' takes whole numbers or names"),
        ("dropout = {choice = [0.2, 1.5]}", "dropout must be in"),
        ("training_set = {choice = ['smote', 'adasyn']}", "unknown balancing 'adasyn'"),
        ("optimizer = {choice = ['adam', 'sgd']}", "unknown optimizer 'sgd'"),
        ("lr = {between = [0.1, 0.2]}", "'lr' must be a value or one of"),
        ("lr = 0.002", "nothing to search"),
        ("", "nothing to search"),
        ("batch = {choice = [32]}\nbatch_size = {choice = [64]}", "'batch_size' is given twice"),
    ],
)
def test_bad_space_names_file_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text + "\n")
    with pytest.raises(BeatlabError) as err:
        load_space(path, "cnn1d_resnet")
    assert err.value.path == str(path)
    assert problem in err.value.problem


def test_yaml_space_and_unknown_model(tmp_path: Path) -> None:
    path = write(tmp_path, "batch: {choice: [32, 64]}\n", "space.yaml")
    assert load_space(path, "cnn1d_resnet").params["batch_size"].values == (32, 64)
    with pytest.raises(BeatlabError, match="unknown model 'cnn1d_resnt'"):
        load_space(path, "cnn1d_resnt")


def test_best_config_toml_round_trips() -> None:
    config = TrainConfig(model="cnn2d_resnet", limit=300, data_dir="/data").updated(
        {"lr": 1e-05, "balance": "smote", "hparams": {"grid": [16, 12], "dropout": 0.25}}
    )
    text = config_toml(config.to_dict(), "best trial x\nrerun: beatlab train --config y")
    assert text.startswith("# best trial x\n# rerun:")
    assert TrainConfig.from_dict(tomllib.loads(text)) == config


def test_results_table_columns_and_order() -> None:
    class Result:  # the parts of ray.tune.Result the table reads
        def __init__(self, trial: str, recall: float | None, epochs: int, **params: object):
            self.config = {"model": "cnn1d_gru", **params}
            self.metrics = (
                {"trial_id": trial, "epoch": epochs, "val_macro_recall": recall}
                if recall is not None
                else {}
            )
            self.path = f"/x/{trial}"

    grid = [
        Result("a", 0.5, 1, batch_size=16, balance="smote", optimizer="adamw"),
        Result("b", None, 0, batch_size=32, balance="oversample", optimizer="adam"),
        Result("c", 0.9, 3, batch_size=48, balance="smote", optimizer="adam"),
    ]
    searched = ["batch_size", "balance", "optimizer"]
    table = results_table(grid, "val_macro_recall", "max", searched)  # type: ignore[arg-type]
    assert list(table.columns) == [
        "trial",
        "iterations",
        "best epoch",
        "accuracy",
        "recall macro",
        "batch",
        "hidden",
        "dropout",
        "num_layers",
        "num_blocks",
        "factor",
        "gru_hidden",
        "training set",
        "optimizer",
    ]
    assert list(table["trial"]) == ["c", "a", "b"]  # best first, a failed trial last
    assert table.loc[0, "gru_hidden"] == 256  # the model's default where not searched
    lines = markdown(table).splitlines()
    assert lines[0].startswith(
        "| trial | iterations | best epoch | accuracy | recall macro | batch |"
    )
    assert lines[2].startswith("| c | 3 | 3 |  | 0.9000 | 48 | 64 | 0.4000 |")


def test_results_table_ranks_by_any_monitor_with_its_column() -> None:
    class Result:
        def __init__(self, trial: str, recall: float, measured: float) -> None:
            self.config = {"model": "cnn1d_resnet"}
            self.metrics = {
                "trial_id": trial,
                "epoch": 2,
                "val_macro_recall": recall,
                "val_measured_recall": measured,
            }
            self.path = f"/x/{trial}"

    grid = [Result("a", 0.9, 0.6), Result("b", 0.7, 0.8)]
    table = results_table(grid, "val_measured_recall", "max", [])  # type: ignore[arg-type]
    assert list(table["trial"]) == ["b", "a"]  # by the measured recall, not the macro recall
    assert list(table.columns[3:6]) == ["accuracy", "recall macro", "measured recall"]
    for metric in MONITORS:  # every metric a run can monitor, tune can search on
        settings = TuneSettings(model="cnn1d_resnet", space_file="s.toml", metric=metric)
        settings.check()
        assert settings.mode == MONITORS[metric]


def test_results_table_leaves_a_tree_models_gradient_settings_blank() -> None:
    class Result:
        config = {"model": "gbt", "batch_size": 64, "factor": 0.5, "min_samples_leaf": 40}
        metrics = {"trial_id": "t", "epoch": 9, "epochs_run": 150, "val_loss": 0.3}
        path = "/x/t"

    table = results_table([Result()], "val_loss", "min", ["min_samples_leaf"])  # type: ignore[list-item]
    row = table.iloc[0]
    assert row[["batch", "factor", "hidden", "dropout"]].isna().all()  # unused or none
    assert (row["iterations"], row["best epoch"], row["min_samples_leaf"]) == (150, 9, 40)
    assert row["training set"] == "none"


def test_concurrency_limits_random_search_too() -> None:
    """Tune ignores `max_concurrent_trials` (with a warning) for a search generator: random
    search must limit itself, or `--concurrency` does nothing."""
    for search in ("random", "grid", "hyperopt"):
        settings = TuneSettings(model="gbt", space_file="s.toml", search=search, concurrency=1)
        config = tune_config(settings)
        if search == "hyperopt":
            assert config.max_concurrent_trials == 1
        else:
            assert config.max_concurrent_trials is None
            assert config.search_alg.max_concurrent == 1


def test_class_weights_and_augmentation_are_searchable(tmp_path: Path) -> None:
    path = tmp_path / "space.toml"
    path.write_text(
        "class_weight_power = {uniform = [0.25, 1.0]}\naugment_jitter = {choice = [0, 4, 8]}\n"
    )
    space = load_space(path, "cnn1d_resnet")
    assert space.searched == ["class_weight_power", "augment_jitter"]
