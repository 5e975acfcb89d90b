"""Export a trained model for deployment: ONNX (for ONNX Runtime) or TorchScript (for LibTorch).

Either file takes `beats` (batch, 187) float32 in [0, 1], plus `rr` (batch, 3) R-R context when
the model uses it, and returns `logits` (batch, classes); the batch size is free. An ensemble over
several leads takes one row per lead of each: (batch, leads, 187) and (batch, leads, 3). The class
names travel inside the file (ONNX metadata `beatlab`, TorchScript extra file `beatlab.json`).
`export_int8` writes a statically quantised ONNX copy for fast CPU inference, and `OnnxRunner`
classifies beats with either file the fast way.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from google.protobuf.message import DecodeError
from scipy.special import softmax

from beatlab import BEAT_LENGTH, __version__
from beatlab.data.build import Beats
from beatlab.data.layouts import KACHUEE, BuildParams, layout_params
from beatlab.errors import BeatlabError
from beatlab.io import writing
from beatlab.models import RR_FEATURES, BeatModel
from beatlab.training.metrics import classification_metrics
from beatlab.training.runs import Run
from beatlab.training.trainer import Tensors, predict_proba

EXPORT_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
"""Export formats and the file each writes into a run directory by default."""
INT8_FILE = "model.int8.onnx"
CALIBRATION_BEATS = 2048
"""Beats whose activations set the int8 ranges: more changes the ranges by well under 1%."""

OPSET = 17
METADATA_KEY = "beatlab"


def input_names(model: BeatModel) -> list[str]:
    return ["beats", "rr"] if model.use_rr else ["beats"]


def input_shapes(model: BeatModel) -> dict[str, Any]:
    """What an export of `model` takes, as its metadata states it: the input names and one
    beat's shape, and its R-R's where it takes them."""
    return {
        "inputs": input_names(model),
        "beat_shape": list(model.beat_shape),
        "rr_shape": list(model.rr_shape) if model.use_rr else None,
    }


def example_inputs(model: BeatModel, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Inputs to trace with; random values, since only their shapes end up in the graph."""
    generator = torch.Generator().manual_seed(0)
    beats = torch.rand(batch, *model.beat_shape, generator=generator)
    if not model.use_rr:
        return (beats,)
    return beats, 0.5 + torch.rand(batch, *model.rr_shape, generator=generator)


def export_metadata(
    model: BeatModel, classes: tuple[str, ...], name: str, layout: BuildParams = KACHUEE
) -> dict[str, Any]:
    """What an exported file carries about itself, so a deployment can check what it holds:
    the beat layout too, with every parameter of it, since the same shapes in another layout
    mean other beats."""
    return {
        "model": model.name,
        "run": name,
        "classes": list(classes),
        **input_shapes(model),
        "layout": layout.name,
        "layout_params": layout_params(layout),
        "beatlab_version": __version__,
    }


def export_model(
    model: BeatModel,
    classes: tuple[str, ...],
    fmt: str,
    out: Path,
    name: str = "",
    layout: BuildParams = KACHUEE,
) -> Path:
    """Write `model` (in eval mode) as `fmt` to `out`, atomically; returns `out`."""
    if fmt not in EXPORT_FILES:
        raise BeatlabError(f"unknown export format {fmt!r} (choose from {', '.join(EXPORT_FILES)})")
    if len(classes) != model.num_classes:
        raise ValueError(f"{len(classes)} class names for a {model.num_classes}-class model")
    model.eval()
    meta = json.dumps(export_metadata(model, classes, name, layout))
    with writing(out, parents=False) as tmp:
        if fmt == "onnx":
            _export_onnx(model, tmp, meta)
        else:
            _export_torchscript(model, tmp, meta)
    return out


def check_quantizable(model: BeatModel) -> None:
    """int8 quantises a network's weights and the activations between them; a tree model has
    no weights, and quantising the features its thresholds compare would move its splits. So
    neither a tree model nor an ensemble holding one is quantised (ONNX Runtime's shape inference
    fails on their graph too)."""
    trees = [
        m
        for m in model.modules()
        if isinstance(m, BeatModel) and next(m.parameters(), None) is None
    ]
    if not trees:
        return
    holds = (
        f"model '{model.name}' has none"
        if trees[0] is model
        else f"the ensemble's {len(trees)} tree member(s) have none"
    )
    raise BeatlabError(
        f"--int8 quantises a network's weights; {holds} (export it without --int8: the fp32 "
        "file is the model itself)"
    )


def export_int8(
    model: BeatModel,
    classes: tuple[str, ...],
    out: Path,
    beats: np.ndarray,
    rr: np.ndarray,
    name: str = "",
    seed: int = 0,
    layout: BuildParams = KACHUEE,
) -> Path:
    """Write an int8 ONNX copy of `model` to `out`: int8 weights and uint8 activations (QDQ),
    the activation ranges calibrated on a seeded sample of `beats` (training beats, never test).
    On CPUs with VNNI, ONNX Runtime runs it several times faster than the fp32 export; a few
    beats in a thousand change class, so check it (`beatlab export --int8` does) before use."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    check_quantizable(model)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_model(model, classes, "onnx", Path(tmp) / "model.onnx", name, layout)
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared))
        calibration = Calibration(beats, rr, input_names(model), seed)
        with writing(out, parents=False) as target:
            quantize_static(
                str(prepared),
                str(target),
                calibration,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
            proto = onnx.load(str(target))
            meta = {**export_metadata(model, classes, name, layout), "quantized": "int8"}
            onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(meta)})
            onnx.save(proto, str(target))
    return out


def compare_int8(
    model: BeatModel, path: Path, beats: Beats, classes: tuple[str, ...]
) -> dict[str, float]:
    """How the int8 file at `path` differs from `model` on labelled `beats`: the share of beats
    given the same class, and accuracy and macro recall of each."""
    fp32 = predict_proba(model, Tensors.from_beats(beats))
    int8 = OnnxRunner(path).predict_proba(beats.x, beats.rr)
    ours, theirs = (classification_metrics(beats.y, p, classes) for p in (fp32, int8))
    return {
        "n": len(beats),
        "same_class": float((fp32.argmax(1) == int8.argmax(1)).mean()),
        "fp32_accuracy": ours["accuracy"],
        "int8_accuracy": theirs["accuracy"],
        "fp32_macro_recall": ours["macro_recall"],
        "int8_macro_recall": theirs["macro_recall"],
    }


def runner_for(run: Run, path: Path, workers: int | None = None) -> OnnxRunner:
    """An `OnnxRunner` over `path`, once its metadata shows it is an export of a model with the
    run's classes and inputs (fp32 or int8): another run's file would mislabel every beat."""
    try:
        runner = OnnxRunner(path, workers)
    except FileNotFoundError:
        raise BeatlabError("file not found", path) from None
    except (OSError, KeyError, ValueError, DecodeError):
        raise BeatlabError("not an ONNX file written by `beatlab export`", path) from None
    ours = {
        "model": run.model.name,
        "classes": list(run.classes),
        "layout": run.config.layout,
        **input_shapes(run.model),
    }
    theirs = {key: runner.metadata.get(key) for key in ours}
    theirs["layout"] = theirs["layout"] or "kachuee"  # exports before layouts existed
    theirs["beat_shape"] = theirs["beat_shape"] or [BEAT_LENGTH]  # before ensembles of leads
    if "rr_shape" not in runner.metadata and "rr" in (theirs["inputs"] or []):
        theirs["rr_shape"] = [RR_FEATURES]  # before each lead had its own R-R
    if theirs != ours:
        raise BeatlabError(f"exported from {theirs}, but run {run.path.name} is {ours}", path)
    if runner.metadata.get("layout_params", layout_params(run.layout)) != layout_params(run.layout):
        raise BeatlabError(
            f"exported with other {run.layout.name} layout parameters than run {run.path.name} "
            "reads its beats with",
            path,
        )
    return runner


class Calibration:
    """Feeds a seeded sample of beats, in batches of 256, to ONNX Runtime's static quantiser: a
    `CalibrationDataReader` by its `get_next` (ONNX Runtime checks for that method), without
    importing the quantiser, and onnx with it, into every `predict`."""

    def __init__(self, beats: np.ndarray, rr: np.ndarray, inputs: list[str], seed: int) -> None:
        n = min(CALIBRATION_BEATS, len(beats))
        pick = np.sort(np.random.default_rng(seed).choice(len(beats), n, replace=False))
        arrays = {"beats": beats, "rr": rr}
        feeds = [
            {k: np.ascontiguousarray(arrays[k][pick[i : i + 256]], np.float32) for k in inputs}
            for i in range(0, n, 256)
        ]
        self.feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def _export_onnx(model: BeatModel, path: Path, meta: str) -> None:
    import onnx

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


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS keeps one (Linux, and
    containers limited to fewer CPUs than the machine has), else every core (macOS)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


class OnnxRunner:
    """Class probabilities (columns: `classes`) from an exported ONNX file on the CPU, with one
    single-threaded ONNX Runtime session per worker, each on its own share of the beats. These
    convolutions are too small to split well across threads; running batches side by side
    scales better (int8 on 2 cores: ~1.3x one two-thread session, `benchmarks/predict.py`)."""

    def __init__(self, path: Path, workers: int | None = None, batch: int = 512) -> None:
        self.workers = workers or available_cores()
        self.batch = batch
        self.metadata = exported_metadata(path, "onnx")  # read first: not an export -> fail here
        self.classes = tuple(self.metadata["classes"])
        self.sessions = [onnx_session(path, threads=1) for _ in range(self.workers)]

    def predict_proba(self, beats: np.ndarray, rr: np.ndarray | None = None) -> np.ndarray:
        """(n, classes) probabilities of (n, 187) beats; `rr` (n, 3) when the model uses it (an
        ensemble over leads: one row per lead of each)."""
        if rr is None:
            rr = np.zeros((len(beats), RR_FEATURES), np.float32)
        bounds = np.linspace(0, len(beats), self.workers + 1).astype(int)

        def share(k: int) -> list[np.ndarray]:
            out = []
            for start in range(bounds[k], bounds[k + 1], self.batch):
                end = min(start + self.batch, bounds[k + 1])
                logits = onnx_logits(self.sessions[k], beats[start:end], rr[start:end])
                out.append(softmax(logits, axis=1))
            return out

        with ThreadPoolExecutor(self.workers) as pool:
            parts = [p for chunk in pool.map(share, range(self.workers)) for p in chunk]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.classes)), np.float32)


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
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        props = {p.key: p.value for p in proto.metadata_props}
        return dict(json.loads(props[METADATA_KEY]))
    files = {f"{METADATA_KEY}.json": ""}
    torch.jit.load(str(path), _extra_files=files)
    return dict(json.loads(files[f"{METADATA_KEY}.json"]))


def is_export(path: Path) -> bool:
    """Whether a file is a model `export` wrote (its `beatlab` metadata), which a re-export may
    replace. A TorchScript file is a zip holding `extra/beatlab.json`."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return any(n.endswith(f"/extra/{METADATA_KEY}.json") for n in archive.namelist())
        import onnx  # only for a file that is no zip: it is slow to import

        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf and zipfile raise many types: a file that does not parse
        return False  # as either is not an export
    return any(p.key == METADATA_KEY for p in proto.metadata_props)


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
