"""Classify every beat of the 48 MIT-BIH records with PyTorch eager and with ONNX Runtime, the
latter both as one multi-threaded session and as `OnnxRunner` (one single-threaded session per
worker).

    python benchmarks/predict.py [--run RUN] [--data-dir DIR] [--threads 2] [--batch 1024]

The beats are the built dataset's (`beatlab data build`; --data-dir, else $BEATLAB_DATA_DIR, else
./data), R-R context included. Without --run the model of configs/demo.toml (the default model)
is used untrained: throughput does not depend on the weights. Every engine gets the same beats,
the same batch size and `--threads` threads; each time is the best of `--repeat` passes after a
warm-up, softmax included. The script prints beats/s side by side, the ratio to PyTorch, the CPU
seconds each pass cost (all threads; on a shared machine wall time alone overstates the cost),
and how far each engine's classes and probabilities are from PyTorch's. `--int8` adds the int8
copy that `beatlab export --int8` writes (calibrated here on 2,048 of the beats).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.special import softmax

from beatlab import CLASSES
from beatlab.data.build import ensure_beats
from beatlab.data.dataset import resolve_data_dir
from beatlab.deploy import (
    OnnxRunner,
    classify,
    export_int8,
    export_model,
    onnx_logits,
    onnx_session,
)
from beatlab.errors import script
from beatlab.models import create_model
from beatlab.training.config import load_config
from beatlab.training.runs import load_run

DEMO_CONFIG = Path(__file__).parent.parent / "configs" / "demo.toml"
TARGET = 50_000  # beats/s for the default model, from the issue
WIDTHS = (15, 9, 10, 10, 8, 12, 10)  # columns of the results table


def row(*cells: str) -> str:
    """One line of the results table: the engine left-aligned, the numbers right-aligned."""
    first, *rest = cells
    return f"{first:<{WIDTHS[0]}}" + "".join(
        f"{c:>{w}}" for c, w in zip(rest, WIDTHS[1:], strict=True)
    )


def best_time(work: Callable[[], np.ndarray], repeat: int) -> tuple[float, float, np.ndarray]:
    """Wall and CPU seconds of the fastest of `repeat` calls after a warm-up, and its result.

    CPU seconds (all threads) tell what the work costs when other jobs share the cores."""
    result = work()
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return *best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, help="run directory (default: untrained demo model)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads per engine")
    parser.add_argument("--batch", type=int, default=1024, help="beats per forward pass")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--int8", action="store_true", help="also time a quantised ONNX model")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    data_dir = resolve_data_dir(args.data_dir)
    beats, _, _ = ensure_beats(data_dir)
    if args.run:
        run = load_run(args.run)
        model, classes = run.model, run.classes
    else:
        demo = load_config(DEMO_CONFIG)
        model, classes = create_model(demo.model, **demo.hparams).eval(), CLASSES
    x, rr = beats.x, beats.rr
    batches = [slice(i, i + args.batch) for i in range(0, len(x), args.batch)]

    def eager() -> np.ndarray:
        return np.concatenate([classify(model, x[b], rr[b]) for b in batches])

    def one_session(path: Path) -> Callable[[], np.ndarray]:
        session = onnx_session(path, args.threads)
        return lambda: np.concatenate(
            [softmax(onnx_logits(session, x[b], rr[b]), axis=1) for b in batches]
        )

    def runner(path: Path) -> Callable[[], np.ndarray]:
        onnx = OnnxRunner(path, workers=args.threads, batch=args.batch)
        return lambda: onnx.predict_proba(x, rr)

    results = {"PyTorch eager": best_time(eager, args.repeat)}
    with tempfile.TemporaryDirectory() as tmp:
        files = {"fp32": export_model(model, classes, "onnx", Path(tmp) / "model.onnx")}
        if args.int8:
            files["int8"] = export_int8(model, classes, Path(tmp) / "int8.onnx", x, rr)
        for kind, path in files.items():
            results[f"ORT {kind} 1x{args.threads}"] = best_time(one_session(path), args.repeat)
            results[f"ORT {kind} {args.threads}x1"] = best_time(runner(path), args.repeat)

    n = len(x)
    print(f"beats:  {n:,} from {len(np.unique(beats.record))} records ({data_dir})")
    size = sum(p.numel() for p in model.parameters())
    print(f"model:  {model.name} ({args.run or 'untrained'}), {size:,} parameters")
    print(
        f"setup:  {args.threads} threads (ORT 1xN: one session, N intra-op threads; Nx1: "
        f"OnnxRunner, N one-thread sessions), batch {args.batch:,}, best of {args.repeat}"
    )
    torch_s, _, torch_p = results["PyTorch eager"]
    print(row("engine", "seconds", "beats/s", "vs eager", "CPU s", "same class", "max |dp|"))
    for name, (seconds, cpu, proba) in results.items():
        same = (proba.argmax(1) == torch_p.argmax(1)).mean()
        gap = np.abs(proba - torch_p).max()
        speed, ratio = f"{n / seconds:,.0f}", f"{torch_s / seconds:.2f}x"
        print(row(name, f"{seconds:.2f}", speed, ratio, f"{cpu:.2f}", f"{same:.2%}", f"{gap:.1e}"))
    best = n / min(seconds for seconds, _, _ in results.values())
    print(f"target {TARGET:,} beats/s: {'met' if best >= TARGET else 'not met'} (best {best:,.0f})")


if __name__ == "__main__":
    script(main)
