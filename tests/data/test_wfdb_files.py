"""WFDB records written from physical samples (`beatlab.data.wfdb_files`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from beatlab.data.wfdb_files import write_physical


@pytest.mark.parametrize("fmt", ["16", "24", "32"])
def test_the_same_files_as_wrsamp_writes(tmp_path: Path, fmt: str) -> None:
    """Header and samples byte for byte as `wfdb.wrsamp`'s, negative samples and invalid ones
    (NaN, a lead off) included: wfdb reads them back as it reads its own."""
    rng = np.random.default_rng(int(fmt))
    signal = np.column_stack([rng.normal(0, 1, 5000), rng.normal(-3, 0.2, 5000)])
    signal[100:300, 1] = np.nan
    units, names = ["mV", "uV"], ["MLII", "V1"]
    wfdb.wrsamp("r", 360.0, units, names, p_signal=signal.copy(), fmt=[fmt] * 2,
                write_dir=str(tmp_path))  # fmt: skip
    ours = tmp_path / "ours"
    ours.mkdir()
    base = write_physical(ours, "r", 360.0, units, names, signal.copy(), fmt)
    assert base == ours / "r"
    assert (ours / "r.hea").read_text() == (tmp_path / "r.hea").read_text()
    assert (ours / "r.dat").read_bytes() == (tmp_path / "r.dat").read_bytes()
    back = wfdb.rdrecord(str(base)).p_signal
    np.testing.assert_array_equal(np.isnan(back), np.isnan(signal))
