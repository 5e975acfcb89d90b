"""Layer tables for reports, like the architecture tables of the study."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from beatlab.models.base import BeatModel

ATOMIC: tuple[type[nn.Module], ...] = (nn.MultiheadAttention,)
"""Modules shown as one row: their children are not called through forward (so hooks on them
would never fire)."""


def describe(model: BeatModel) -> list[dict[str, Any]]:
    """One row per leaf module, in definition order: name, type, output shape (from a dummy
    (1, *beat_shape) forward in eval mode; None if the module was not called) and parameter
    count.

    Parameters owned directly by a container (e.g. positional embeddings) get a row of their own
    with type "Parameter" and their shape, so the `params` column sums to the model's total."""
    rows: list[dict[str, Any]] = []
    leaves: dict[str, nn.Module] = {}
    atomic: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in atomic):
            continue
        has_children = next(module.children(), None) is not None
        if isinstance(module, ATOMIC) or not has_children:
            leaves[name] = module
            rows.append(
                {
                    "name": name,
                    "type": type(module).__name__,
                    "output_shape": None,
                    "params": sum(p.numel() for p in module.parameters()),
                }
            )
            if has_children:
                atomic.append(name)
        else:
            for pname, p in module.named_parameters(recurse=False):
                rows.append(
                    {
                        "name": f"{name}.{pname}" if name else pname,
                        "type": "Parameter",
                        "output_shape": tuple(p.shape),
                        "params": p.numel(),
                    }
                )

    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name: str) -> Any:
        def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
            out = _first_tensor(output)
            if out is not None and name not in shapes:
                shapes[name] = tuple(out.shape)

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in leaves.items()]
    was_training = model.training
    try:
        model.eval()
        p = next(model.parameters(), torch.zeros(()))  # a tree model has none
        x = torch.zeros(1, *model.beat_shape, device=p.device, dtype=p.dtype)
        rr = (
            torch.zeros(1, *model.rr_shape, device=p.device, dtype=p.dtype)
            if model.use_rr
            else None
        )
        model(x, rr)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    for row in rows:
        if row["name"] in shapes:
            row["output_shape"] = shapes[row["name"]]
    return rows


def _first_tensor(output: Any) -> Tensor | None:
    """GRU and attention return tuples; the first element is the output that flows on."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, tuple | list) and output:
        return _first_tensor(output[0])
    return None
