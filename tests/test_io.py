"""The shared file helpers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from beatlab.errors import BeatlabError
from beatlab.io import atomic_path, writing
from beatlab.models import create_model
from beatlab.training.runs import save_checkpoint


def test_written_files_get_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("a")
        torch.manual_seed(0)
        save_checkpoint(tmp_path / "m.safetensors", create_model("gru"))  # safetensors' own file
    finally:
        os.umask(umask)
    for name in ("a.txt", "m.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "m.safetensors"]


def test_failed_write_leaves_nothing_and_names_the_file(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    with pytest.raises(BeatlabError, match="cannot write") as caught, writing(target) as tmp:
        raise OSError(28, "No space left on device", str(tmp))
    assert str(target) in str(caught.value)
    assert list(tmp_path.iterdir()) == []
