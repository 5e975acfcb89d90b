"""Use a trained run: classify every beat of a record or beat file, export for deployment."""

from beatlab.deploy.export import (
    EXPORT_FILES,
    OnnxRunner,
    export_int8,
    export_model,
    onnx_logits,
    onnx_session,
)
from beatlab.deploy.predict import Predictions, classify, predict_file, predict_record

__all__ = [
    "EXPORT_FILES",
    "OnnxRunner",
    "Predictions",
    "classify",
    "export_int8",
    "export_model",
    "onnx_logits",
    "onnx_session",
    "predict_file",
    "predict_record",
]
