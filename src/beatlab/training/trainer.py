"""The training loop: whole splits as tensors, sliced per batch; deterministic for a seed on CPU.

Adam or AdamW, ReduceLROnPlateau on validation loss, early stopping and checkpoint choice on one
validation metric, `monitor` (by default macro recall: a missed sick beat costs more than a false
alarm), optional class-weighted cross-entropy, gradient clipping and an exponential moving
average of the weights (`ema_decay`: what is validated and kept). The test part is never seen
here. After every epoch the loop hands out a `TrainState` from which `fit(resume=...)` continues
exactly as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from beatlab.data.build import Beats
from beatlab.errors import BeatlabError
from beatlab.models import BeatModel, plain_decisions
from beatlab.models.trees import BoostedTrees
from beatlab.output import counting_bar, make_console
from beatlab.training.augment import augment, augment_rr, with_needed_medians
from beatlab.training.config import TrainConfig
from beatlab.training.metrics import classification_metrics, measured_recall
from beatlab.training.sampler import epoch_sampler

EpochCallback = Callable[[int, dict[str, float]], None]
"""Called after each epoch with its number (1-based) and metrics; Ray Tune reports from here."""

EVAL_BATCH = 512
"""Beats a batch in inference (validation, `predict`, `evaluate`): on 2 cores the CNNs read
1.3-1.7 times as many beats a second as at 4,096, the shipped ensemble 1.5-2.5 times, with the
same probabilities bit for bit (`benchmarks/eval_batch.py`)."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that a run is repeatable on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to `threads` for a block (None: left as they are), then restored:
    for small batches one thread per process often beats two (benchmarks/train_budget.py)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Tensors:
    """One part of a dataset as tensors, ready to slice."""

    x: Tensor
    y: Tensor
    rr: Tensor
    median: Tensor | None = None  # each beat's record's median beat (`Beats.median`)

    @classmethod
    def from_beats(cls, beats: Beats) -> Tensors:
        """Shares the arrays' memory where it can; copies read-only ones (a cache read straight
        from Parquet), which torch must not wrap."""
        median = beats.median
        return cls(
            torch.from_numpy(np.require(beats.x, np.float32, ["C", "W"])),
            torch.from_numpy(beats.y.astype(np.int64)),
            torch.from_numpy(np.require(beats.rr, np.float32, ["C", "W"])),
            None
            if median is None
            else torch.from_numpy(np.require(median, np.float32, ["C", "W"])),
        )

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_state: dict[str, Tensor] = field(default_factory=dict)
    best_metrics: dict[str, Any] = field(default_factory=dict)
    best_score: float = math.nan
    stale: int = 0  # epochs since the best one


@dataclass
class TrainState:
    """Everything the loop needs to continue after `epoch` exactly as if it had not stopped:
    weights, optimizer and scheduler state, every random generator, and the selection so far."""

    epoch: int
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]  # torch, generator (the batch order), numpy, python
    result: FitResult
    ema: dict[str, Tensor] | None = None  # the moving average's state, with ema_decay


StateCallback = Callable[[TrainState], None]
"""Called after each epoch, before `EpochCallback`: the run directory saves it (resumable)."""


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def validation_scores(loss: float, val: dict[str, Any]) -> dict[str, float]:
    """The history's validation columns (the metrics a run can monitor), from the validation
    loss and `classification_metrics`; all NaN in a run that does not validate (`val` empty)."""
    nan = math.nan
    return {
        "val_loss": loss if val else nan,
        "val_accuracy": val.get("accuracy", nan),
        "val_macro_recall": val.get("macro_recall", nan),
        "val_macro_f1": val.get("macro_f1", nan),
        "val_measured_recall": measured_recall(val) if val else nan,
    }


def improved(score: float, best: float, direction: str) -> bool:
    """Whether `score` beats `best` (NaN: nothing yet) in `direction` ("max" or "min")."""
    if math.isnan(best):
        return not math.isnan(score)
    return score > best if direction == "max" else score < best


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    name = config.optimizer.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    raise BeatlabError(f"unknown optimizer '{config.optimizer}' (choose from adam, adamw)")


@torch.inference_mode()
def predict_proba(
    model: BeatModel, data: Tensors, batch: int = EVAL_BATCH, *, progress: bool = False
) -> np.ndarray:
    """Class probabilities for every beat, in large batches; `progress` shows a bar over them."""
    model.eval()
    out: list[Tensor] = []
    with counting_bar("classifying beats", len(data), disable=not progress) as advance:
        for i in range(0, len(data), batch):
            out.append(torch.softmax(model(data.x[i : i + batch], data.rr[i : i + batch]), dim=1))
            advance(len(out[-1]))
    return torch.cat(out).numpy() if out else np.zeros((0, model.num_classes), np.float32)


def evaluate_loss(model: BeatModel, data: Tensors, loss_fn: nn.Module) -> tuple[float, np.ndarray]:
    """Mean loss and probabilities on a part (validation during training)."""
    proba = predict_proba(model, data)
    logp = torch.log(torch.from_numpy(proba).clamp_min(1e-12))
    return float(loss_fn(logp, data.y)), proba


def moving_average(
    model: BeatModel, decay: float, resume: TrainState | None
) -> AveragedModel | None:
    """The exponential moving average of `model`'s weights and BatchNorm statistics, updated
    after every step (None when `decay` is 0), validated and kept instead of the last step's
    weights: the kept epoch then depends less on where one noisy epoch ended. (On held-out DS1
    patients it kept later epochs and found fewer premature beats: the README has the figures.)"""
    if decay == 0:
        return None
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    if resume is not None and resume.ema is not None:
        ema.load_state_dict(resume.ema)
    return ema


def fit(
    model: BeatModel,
    train: Beats,
    valid: Beats,
    config: TrainConfig,
    classes: tuple[str, ...],
    *,
    class_weights: list[float] | None = None,
    on_epoch: EpochCallback | None = None,
    on_state: StateCallback | None = None,
    resume: TrainState | None = None,
    progress: bool = True,
) -> FitResult:
    """Train `model` in place on `train`, select on `valid` by `config.monitor`; returns history
    and best weights. `resume` continues after its epoch; `on_state` gets each epoch's state.
    With `config.validate` off, `valid` is empty and the last epoch is the one kept.
    A tree model is fitted by scikit-learn instead (`beatlab.training.trees`)."""
    train, valid = with_needed_medians(config, train), replace(valid, median=None)
    if isinstance(model, BoostedTrees):
        from beatlab.training.trees import fit_trees  # it builds on this module

        return fit_trees(
            model,
            train,
            valid,
            config,
            classes,
            class_weights=class_weights,
            on_epoch=on_epoch,
            progress=progress,
        )
    if len(train) < 2 or (config.validate and len(valid) == 0):
        raise BeatlabError(
            f"training needs at least 2 training beats and 1 validation beat, got "
            f"{len(train)} and {len(valid)}"
        )
    seed_everything(config.seed)
    tr, va = Tensors.from_beats(train), Tensors.from_beats(valid)
    draw = epoch_sampler(train, config.sampler, config.balance, config.epoch_beats)
    weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    val_loss_fn = nn.NLLLoss(weight=weight)
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.factor, patience=config.lr_patience
    )
    generator = torch.Generator().manual_seed(config.seed)
    result = FitResult()
    first = 1
    if resume is not None:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        scheduler.load_state_dict(resume.scheduler)
        set_rng_state(resume.rng, generator)
        result, first = resume.result, resume.epoch + 1
        if config.early_stopping and result.stale >= config.early_stopping:
            first = config.epochs + 1  # it had stopped early: only the ending is left to do
    steps = ((len(tr) if draw is None else draw.beats) + config.batch_size - 1) // config.batch_size
    last = ""
    console = make_console()
    live = progress and console.is_terminal  # a bar only on a terminal; logs get whole lines

    columns = (
        TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} batches"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
    )
    with (
        Progress(*columns, console=console, disable=not live, transient=False) as bar,
        torch_threads(config.threads),
        plain_decisions(model),
    ):
        ema = moving_average(model, config.ema_decay, resume)  # a copy: decides plainly too
        judged = model if ema is None else cast(BeatModel, ema.module)
        task = bar.add_task("train", total=steps, epoch=0, epochs=config.epochs, metrics="")
        for epoch in range(first, config.epochs + 1):
            epoch_start = time.perf_counter()
            bar.reset(task, total=steps, epoch=epoch, epochs=config.epochs, metrics=last)
            model.train()
            part = tr if draw is None else Tensors(*draw(generator))
            order = torch.randperm(len(part), generator=generator)
            total, seen = 0.0, 0
            for step in range(steps):
                idx = order[step * config.batch_size : (step + 1) * config.batch_size]
                if len(idx) < 2 and step > 0:  # BatchNorm cannot train on a batch of one
                    continue
                median = None if part.median is None else part.median[idx]
                x = augment(part.x[idx], config, generator, median)
                logits = model(x, augment_rr(part.rr[idx], config, generator))
                loss = loss_fn(logits, part.y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(model)
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
                bar.advance(task)
            train_loss, val_start = total / max(seen, 1), time.perf_counter()
            if config.validate:
                val_loss, proba = evaluate_loss(judged, va, val_loss_fn)
                val = classification_metrics(valid.y, proba, classes)
                scores = validation_scores(val_loss, val)
                last = (
                    f"loss {train_loss:.4f} val_loss {val_loss:.4f} "
                    f"val_acc {val['accuracy']:.4f} val_recall {val['macro_recall']:.4f}"
                )
            else:  # nothing held out: the schedule follows the training loss
                val, scores = {}, validation_scores(math.nan, {})
                val_loss, last = train_loss, f"loss {train_loss:.4f}"
            scheduler.step(val_loss)
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                **scores,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - epoch_start,
                "val_seconds": time.perf_counter() - val_start,
            }
            result.history.append(row)
            bar.update(task, metrics=last)
            if progress:
                console.print(
                    f"epoch {epoch}/{config.epochs}: {last} lr {row['lr']:.2g}", soft_wrap=True
                )
            score = row[config.monitor]
            if (
                not config.validate
                or result.best_epoch == 0
                or improved(score, result.best_score, config.direction)
            ):
                result.best_score, result.stale = score, 0
                result.best_epoch = epoch
                result.best_state = copy.deepcopy(judged.state_dict())
                result.best_metrics = val
            else:
                result.stale += 1
            if on_state is not None:  # before on_epoch: a callback that stops us loses nothing
                on_state(
                    TrainState(
                        epoch,
                        model.state_dict(),
                        optimizer.state_dict(),
                        scheduler.state_dict(),
                        rng_state(generator),
                        result,
                        None if ema is None else ema.state_dict(),
                    )
                )
            if on_epoch is not None:
                on_epoch(epoch, row)
            if config.early_stopping and result.stale >= config.early_stopping:
                break
    model.load_state_dict(result.best_state)
    return result
