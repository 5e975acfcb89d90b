"""MLflow tracking: every run (and every tuning trial) logged to a local SQLite store by default.

The store is `sqlite:///<runs_dir>/mlflow.db` unless `--tracking-uri` (or MLFLOW_TRACKING_URI)
names another, e.g. a tracking server; `none` switches tracking off. Browse it with
`mlflow ui --backend-store-uri sqlite:///runs/mlflow.db`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def resolve_uri(uri: str | None, runs_dir: Path) -> str | None:
    """The tracking URI to use, or None when tracking is off."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri and uri.lower() == "none":
        return None
    if uri:
        return uri
    runs_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(runs_dir / 'mlflow.db').resolve()}"


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> flat MLflow params (hparams.hidden=64)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class Tracker:
    """A thin, optional wrapper so training code never depends on MLflow being reachable."""

    def __init__(self, uri: str | None, runs_dir: Path, experiment: str) -> None:
        self.uri = resolve_uri(uri, runs_dir)
        self.experiment = experiment
        self.active = False

    @contextlib.contextmanager
    def _mlflow(self) -> Iterator[Any]:
        """MLflow pointed at this tracker's store, for the block only: mlflow.set_tracking_uri
        also sets $MLFLOW_TRACKING_URI, which would otherwise leak into later runs and trials."""
        import mlflow

        assert self.uri is not None
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        before = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(self.uri)
        try:
            if self.uri.startswith("sqlite:///") and not mlflow.get_experiment_by_name(
                self.experiment
            ):  # keep artifacts beside the local store, not in ./mlruns of the caller
                store = Path(self.uri.removeprefix("sqlite:///"))
                mlflow.create_experiment(
                    self.experiment, artifact_location=(store.parent / "mlartifacts").as_uri()
                )
            mlflow.set_experiment(self.experiment)
            yield mlflow
        finally:
            mlflow.set_tracking_uri(before or "")
            if before is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)

    @contextlib.contextmanager
    def run(
        self,
        name: str,
        params: dict[str, Any],
        tags: dict[str, str] | None = None,
        *,
        resume: bool = False,
    ) -> Iterator[None]:
        """An MLflow run for the block: FINISHED if it completes, KILLED on Ctrl+C or SIGTERM,
        FAILED on an error. `resume` reopens the latest run of that name (an interrupted
        training continued), so that its metrics stay one series."""
        if self.uri is None:
            yield
            return
        with self._mlflow() as mlflow:
            found = self._latest(mlflow, name) if resume else None
            with mlflow.start_run(run_id=found, run_name=None if found else name, tags=tags):
                if found is None:
                    mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})
                self.active = True
                try:
                    yield
                except KeyboardInterrupt:
                    mlflow.end_run("KILLED")
                    raise
                finally:
                    self.active = False

    @staticmethod
    def _latest(mlflow: Any, name: str) -> str | None:
        """The id of the newest run called `name` in the current experiment, if any."""
        found = mlflow.search_runs(
            filter_string=f"attributes.run_name = '{name}'",
            max_results=1,
            output_format="list",
            order_by=["attributes.start_time DESC"],
        )
        return str(found[0].info.run_id) if found else None

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.active:
            import mlflow

            known = {k: float(v) for k, v in metrics.items() if v == v}  # NaN: not measured
            mlflow.log_metrics(known, step=step)

    def log_artifacts(self, path: Path) -> None:
        if self.active:
            import mlflow

            mlflow.log_artifacts(str(path))

    def log_to_existing(self, name: str, metrics: dict[str, float]) -> None:
        """Add metrics (e.g. test results from `evaluate`) to the latest run of that name."""
        if self.uri is None:
            return
        with self._mlflow() as mlflow:
            found = mlflow.search_runs(
                filter_string=f"attributes.run_name = '{name}'", max_results=1, output_format="list"
            )
            if found:
                with mlflow.start_run(run_id=found[0].info.run_id):
                    mlflow.log_metrics(metrics)
