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
from beatlab.cli.train import ensemble, evaluate, train
from beatlab.cli.tune import tune
from beatlab.cli.view import view
from beatlab.errors import BeatlabError, one_line
from beatlab.interrupts import sigterm_as_interrupt

app = typer.Typer(
    help="Build, train, hypertune, evaluate and report ECG heartbeat classifiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.add_typer(data_app, name="data")
app.command()(train)
app.command()(ensemble)
app.command()(evaluate)
app.command()(predict)
app.command(name="export")(export)
app.command()(tune)
app.command()(report)
app.command()(view)


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


INTERRUPTED, TERMINATED = 130, 143
"""Exit statuses after Ctrl+C (SIGINT) and SIGTERM, as a shell reports them (128 + signal)."""


def usage_error(err: Exception) -> int:
    """A bad option or argument as one line, not click's usage box; the exit status for it.
    Told apart by shape, since typer may bring its own copy of click's exception classes."""
    kind = type(err).__name__
    if kind == "NoArgsIsHelpError":
        return 2  # the help is already printed
    if kind == "Abort":
        return 1
    message, status = getattr(err, "format_message", None), getattr(err, "exit_code", None)
    if not callable(message) or not isinstance(status, int):
        raise err
    ctx = getattr(err, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    print(f"beatlab: error: {one_line(message())}{hint}", file=sys.stderr)
    return status


def main() -> None:
    """Entry point: user errors (bad options, values or files) become one line on stderr and
    exit status 2, never a traceback; an interrupt ends with 130 (SIGINT) or 143 (SIGTERM)."""
    with sigterm_as_interrupt() as received:
        try:
            code = app(standalone_mode=False)  # typer turns Ctrl+C into exit status 130
        except BeatlabError as err:
            print(f"beatlab: error: {one_line(str(err))}", file=sys.stderr)
            code = 2
        except OSError as err:  # the last net under the file checks: still one line
            where = f"{err.filename}: " if err.filename else ""
            print(f"beatlab: error: {where}{err.strerror or err}", file=sys.stderr)
            code = 2
        except Exception as err:  # click's (typer's own copy of click's) usage errors
            code = usage_error(err)
        except KeyboardInterrupt:
            code = INTERRUPTED
    if code == INTERRUPTED and received:
        code = TERMINATED
    sys.exit(code if isinstance(code, int) else 0)
