"""The `beatlab` command: one sub-command per stage.

The command modules import torch, Ray, MLflow and the rest inside each command, so that
`beatlab --help` and a mistyped flag answer at once."""

from __future__ import annotations

import sys

import typer

from beatlab.cli.common import print_table
from beatlab.cli.data import app as data_app
from beatlab.cli.predict import export, predict
from beatlab.cli.report import report
from beatlab.cli.train import evaluate, train
from beatlab.cli.tune import tune
from beatlab.errors import BeatlabError

app = typer.Typer(
    help="Build, train, hypertune, evaluate and report ECG heartbeat classifiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.command()(train)
app.command()(evaluate)
app.command()(predict)
app.command(name="export")(export)
app.command()(tune)
app.command()(report)


@app.command()
def models() -> None:
    """List the registered models and their default hyperparameters."""
    from beatlab.models import list_models, model_defaults

    print_table(
        [
            {
                "model": name,
                "defaults": ", ".join(f"{k}={v}" for k, v in model_defaults(name).items()),
            }
            for name in list_models()
        ]
    )


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 2, never a traceback."""
    try:
        app()  # standalone: typer reports usage errors itself, with exit status 2
    except BeatlabError as err:
        print(f"beatlab: error: {err}", file=sys.stderr)
        sys.exit(2)
