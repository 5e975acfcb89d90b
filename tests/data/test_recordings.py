"""Multi-segment WFDB records read as one record (`beatlab.data.recordings`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb
from conftest import FS, write_segments

from beatlab.data.build import read_header, read_lead, record_names
from beatlab.data.recordings import as_wfdb, is_multi_segment
from beatlab.errors import BeatlabError


def test_a_fixed_layout_record_reads_as_its_samples_joined(
    real_mitdb: Path, tmp_path: Path
) -> None:
    base = write_segments(
        real_mitdb / "100", tmp_path, "ms", [(0, 9000, [0, 1]), (9000, 21600, [0, 1])]
    )
    assert is_multi_segment(base) and not is_multi_segment(real_mitdb / "100")
    whole = wfdb.rdrecord(str(real_mitdb / "100"), sampto=21600).p_signal
    with as_wfdb(base) as joined:
        assert joined != base and joined.name == "ms"
        record = wfdb.rdrecord(str(joined))
        assert record.sig_name == ["MLII", "V5"] and record.fs == FS
        np.testing.assert_allclose(record.p_signal, whole, atol=1e-6)
    assert not joined.exists()


def test_gaps_and_missing_leads_are_invalid_samples(real_mitdb: Path, tmp_path: Path) -> None:
    """A gap between segments, and a lead a segment lacks, read as WFDB's invalid samples (beats
    over them are left out, as over a lead that came off); annotations come along."""
    base = write_segments(
        real_mitdb / "100", tmp_path, "mv", [(0, 9000, [0, 1]), 1800, (10800, 21600, [0])]
    )
    (tmp_path / "mv.qrs").write_bytes((real_mitdb / "100.atr").read_bytes())
    with as_wfdb(base) as joined:
        header = read_header(joined)
        assert header.sig_len == 21600 and (joined.parent / "mv.qrs").is_file()
        _, lead, invalid = read_lead(joined, header, ("MLII",))
        assert lead == "MLII" and invalid[9000:10800].all() and not invalid[:9000].any()
        _, lead, invalid = read_lead(joined, header, ("V5",))
        assert lead == "V5" and invalid[9000:].all() and not invalid[:9000].any()


def test_a_lead_no_segment_has_is_dropped(real_mitdb: Path, tmp_path: Path) -> None:
    base = write_segments(real_mitdb / "100", tmp_path, "mv", [(0, 9000, [0]), 360])
    with as_wfdb(base) as joined:
        assert read_header(joined).sig_name == ["MLII"]


def test_only_the_signals_in_volts_are_read_where_there_are_others(
    real_mitdb: Path, tmp_path: Path
) -> None:
    """An ICU record holds pressures and a pleth beside its ECG, as many samples each: joined,
    it keeps the leads alone. Where no signal is in volts (an ECG stored in `NU`), all stay."""
    ecg = wfdb.rdrecord(str(real_mitdb / "208"), sampto=7200).p_signal
    signals = np.hstack([ecg, np.sin(np.arange(7200) / 40)[:, None]])
    parts: list[tuple[int, int, list[int]] | int] = [
        (0, 3600, [0, 1, 2]),
        360,
        (3960, 7200, [0, 2]),
    ]
    for name, units, kept in (("icu", ["mV", "mV", "NU"], 2), ("nu", ["NU"] * 3, 3)):
        wfdb.wrsamp(
            f"{name}_src", FS, units, ["MLII", "V1", "PLETH"], p_signal=signals, fmt=["16"] * 3,
            write_dir=str(tmp_path),
        )  # fmt: skip
        base = write_segments(tmp_path / f"{name}_src", tmp_path, name, parts)
        with as_wfdb(base) as joined:
            record = wfdb.rdrecord(str(joined))
        assert record.sig_name == ["MLII", "V1", "PLETH"][:kept], name
        np.testing.assert_allclose(record.p_signal[:3600], signals[:3600, :kept], atol=1e-3)


def test_a_folder_lists_the_record_not_its_segments(real_mitdb: Path, tmp_path: Path) -> None:
    write_segments(real_mitdb / "100", tmp_path, "mv", [(0, 3600, [0, 1]), 360, (3960, 7200, [0])])
    ecg = np.sin(np.arange(FS) / 10)[:, None]
    wfdb.wrsamp("single", FS, ["mV"], ["MLII"], p_signal=ecg, write_dir=str(tmp_path))
    assert record_names(tmp_path) == ["mv", "single"]


def test_a_record_missing_a_segment_is_one_line(real_mitdb: Path, tmp_path: Path) -> None:
    base = write_segments(
        real_mitdb / "100", tmp_path, "ms", [(0, 3600, [0, 1]), (3600, 7200, [0, 1])]
    )
    (tmp_path / "ms_2.hea").unlink()
    with pytest.raises(BeatlabError) as raised, as_wfdb(base):
        pass
    assert raised.value.path == str(tmp_path / "ms.hea")
    assert "unreadable multi-segment record:" in str(raised.value)
