"""Beat classifiers, built by name: `create_model("cnn1d_gru", num_classes=5, hidden=32)`.

Every model maps (batch, 187) float32 beats (and, with `use_rr=True`, (batch, 3) RR intervals
in seconds) to (batch, num_classes) logits. See `list_models()` and `model_defaults(name)`.
"""

from beatlab.models import cnn1d, cnn2d, rnn, transformer, trees  # noqa: F401  (register the models)
from beatlab.models.base import RR_FEATURES, BeatConfig, BeatModel, plain_decisions
from beatlab.models.registry import (
    check_model,
    create_model,
    list_models,
    model_defaults,
    register_model,
)
from beatlab.models.summary import describe

__all__ = [
    "RR_FEATURES",
    "BeatConfig",
    "BeatModel",
    "check_model",
    "create_model",
    "describe",
    "list_models",
    "model_defaults",
    "plain_decisions",
    "register_model",
]
