"""Export a trained model for deployment: ONNX (for ONNX Runtime) or TorchScript (for LibTorch).

Either file takes `beats` (batch, 187) float32 in [0, 1], plus `rr` (batch, 3) R-R seconds when
the model uses them, and returns `logits` (batch, classes); the batch size is free. The class
names travel inside the file (ONNX metadata `beatlab`, TorchScript extra file `beatlab.json`).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from beatlab import BEAT_LENGTH, __version__
from beatlab.errors import BeatlabError
from beatlab.io import writing
from beatlab.models import RR_FEATURES, BeatModel

EXPORT_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
"""Export formats and the file each writes into a run directory by default."""

OPSET = 17
METADATA_KEY = "beatlab"


def input_names(model: BeatModel) -> list[str]:
    return ["beats", "rr"] if model.use_rr else ["beats"]


def example_inputs(model: BeatModel, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Inputs to trace with; random values, since only their shapes end up in the graph."""
    generator = torch.Generator().manual_seed(0)
    beats = torch.rand(batch, BEAT_LENGTH, generator=generator)
    if not model.use_rr:
        return (beats,)
    return beats, 0.5 + torch.rand(batch, RR_FEATURES, generator=generator)


def export_model(
    model: BeatModel, classes: tuple[str, ...], fmt: str, out: Path, name: str = ""
) -> Path:
    """Write `model` (in eval mode) as `fmt` to `out`, atomically; returns `out`."""
    if fmt not in EXPORT_FILES:
        raise BeatlabError(f"unknown export format {fmt!r} (choose from {', '.join(EXPORT_FILES)})")
    if len(classes) != model.num_classes:
        raise ValueError(f"{len(classes)} class names for a {model.num_classes}-class model")
    model.eval()
    meta = json.dumps(
        {
            "model": model.name,
            "run": name,
            "classes": list(classes),
            "inputs": input_names(model),
            "beatlab_version": __version__,
        }
    )
    with writing(out) as tmp:
        if fmt == "onnx":
            _export_onnx(model, tmp, meta)
        else:
            _export_torchscript(model, tmp, meta)
    return out


def _export_onnx(model: BeatModel, path: Path, meta: str) -> None:
    names = input_names(model)
    with warnings.catch_warnings():  # the TorchScript-based exporter announces its deprecation
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            example_inputs(model),
            str(path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={n: {0: "batch"} for n in [*names, "logits"]},
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {METADATA_KEY: meta})
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _export_torchscript(model: BeatModel, path: Path, meta: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example_inputs(model))
    torch.jit.save(traced, str(path), _extra_files={f"{METADATA_KEY}.json": meta})


def onnx_session(path: Path, threads: int | None = None) -> ort.InferenceSession:
    """An ONNX Runtime session on the CPU; `threads` caps its intra-op thread pool."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_logits(session: ort.InferenceSession, beats: np.ndarray, rr: np.ndarray) -> np.ndarray:
    """Logits from an exported model; `rr` is passed only when the model takes it."""
    names = [i.name for i in session.get_inputs()]
    feed: dict[str, Any] = {"beats": np.ascontiguousarray(beats, dtype=np.float32)}
    if "rr" in names:
        feed["rr"] = np.ascontiguousarray(rr, dtype=np.float32)
    return np.asarray(session.run(["logits"], feed)[0])


def exported_metadata(path: Path, fmt: str) -> dict[str, Any]:
    """The model name, run, classes and inputs stored in an exported file."""
    if fmt == "onnx":
        proto = onnx.load(str(path), load_external_data=False)
        props = {p.key: p.value for p in proto.metadata_props}
        return dict(json.loads(props[METADATA_KEY]))
    files = {f"{METADATA_KEY}.json": ""}
    torch.jit.load(str(path), _extra_files=files)
    return dict(json.loads(files[f"{METADATA_KEY}.json"]))


def max_difference(model: BeatModel, path: Path, fmt: str, batch: int = 256) -> float:
    """Largest |logit| difference between the exported file and `model` on random beats: a
    quick check that the export runs and agrees (the tests check real beats)."""
    inputs = example_inputs(model, batch)
    with torch.inference_mode():
        expected = model(*inputs).numpy()
    if fmt == "onnx":
        rr = inputs[1].numpy() if model.use_rr else np.zeros((batch, RR_FEATURES), np.float32)
        got = onnx_logits(onnx_session(path), inputs[0].numpy(), rr)
    else:
        with torch.inference_mode():
            got = torch.jit.load(str(path))(*inputs).numpy()
    return float(np.abs(got - expected).max())
