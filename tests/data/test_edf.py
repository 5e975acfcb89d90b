"""EDF/BDF files read as WFDB records (`beatlab.data.edf`); the end-to-end checks, on real
beats, are in tests/deploy/test_deploy.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyedflib
import pytest
import wfdb
from conftest import FS

from beatlab.data.edf import ecg_signals, lead_name, write_wfdb
from beatlab.data.recordings import as_wfdb
from beatlab.errors import BeatlabError


@pytest.mark.parametrize(
    ("label", "lead"),
    [("ECG II", "II"), ("EKG V5", "V5"), ("ecg MLII", "MLII"), ("ECG", "ECG"), ("ECG1", "ECG1")]
    + [("Pleth", "Pleth"), ("EEG Fpz-Cz", "EEG Fpz-Cz"), (" ECG  aVR ", "aVR")],
)
def test_an_edf_label_names_its_lead_by_its_specification(label: str, lead: str) -> None:
    assert lead_name(label) == lead


def test_the_ecg_signals_at_the_first_ones_rate_are_read() -> None:
    labels = ["EEG Fpz-Cz", "ECG II", "Resp", "ECG V5", "EKG V1"]
    assert ecg_signals(labels, [100.0, 256.0, 25.0, 256.0, 512.0]) == [1, 3]
    assert ecg_signals(["Ch1", "Ch2", "Ch3"], [250.0, 250.0, 1.0]) == [0, 1]  # no ECG label: all


def test_a_wfdb_record_is_read_as_it_is(tmp_path: Path) -> None:
    with as_wfdb(tmp_path / "208") as base:
        assert base == tmp_path / "208"


def test_an_error_about_the_temporary_copy_names_the_edf_file(tmp_path: Path) -> None:
    """Errors raised while the copy is read name the user's file, and the copy is removed."""
    edf = tmp_path / "night.edf"
    header = dict(label="ECG II", dimension="mV", sample_frequency=FS)
    header.update(physical_min=-5, physical_max=5, digital_min=-32768, digital_max=32767)
    pyedflib.highlevel.write_edf(str(edf), [np.zeros(FS * 10)], [header])
    with pytest.raises(BeatlabError) as raised, as_wfdb(edf) as base:
        copy = base
        assert base.with_suffix(".hea").read_text().split()[2] == str(FS)
        raise BeatlabError("no beats", base.with_suffix(".hea"))
    assert str(raised.value) == f"{edf}: no beats"
    assert not copy.parent.exists()


def test_two_signals_naming_one_lead_keep_their_labels(tmp_path: Path) -> None:
    """`ECG II` and `EKG II` would both be lead II: both keep their labels, so neither is read
    for the other unasked."""
    edf = tmp_path / "two.edf"
    header = dict(dimension="uV", sample_frequency=FS, physical_min=-5000, physical_max=5000)
    header.update(digital_min=-32768, digital_max=32767)
    headers = [dict(header, label=label) for label in ("ECG II", "EKG II", "EEG C3")]
    pyedflib.highlevel.write_edf(str(edf), [np.zeros(FS * 10)] * 3, headers)
    with as_wfdb(edf) as base:
        assert wfdb.rdheader(str(base)).sig_name == ["ECG II", "EKG II"]


def test_a_discontinuous_file_is_one_line(tmp_path: Path) -> None:
    """EDF+D holds parts with gaps between them, which read as one lead would give beats R-R
    intervals across the gaps: refused, naming the file."""
    edf = tmp_path / "parts.edf"
    header = dict(label="ECG II", dimension="mV", sample_frequency=FS)
    header.update(physical_min=-5, physical_max=5, digital_min=-32768, digital_max=32767)
    pyedflib.highlevel.write_edf(str(edf), [np.zeros(FS * 10)], [header])
    data = bytearray(edf.read_bytes())
    assert data[192:197] == b"EDF+C"
    data[192:197] = b"EDF+D"
    edf.write_bytes(bytes(data))
    with pytest.raises(BeatlabError, match=r"parts.edf: an EDF\+D/BDF\+D file \(discontinuous\)"):
        write_wfdb(edf, tmp_path)


def test_an_unlabelled_signal_is_named_by_its_place(tmp_path: Path) -> None:
    """A signal with an empty label would be a WFDB lead with no name: it is `signal N`, N its
    place in the file, which --lead can name."""
    edf = tmp_path / "bare.edf"
    header = dict(label="", dimension="mV", sample_frequency=FS, physical_min=-5, physical_max=5)
    header.update(digital_min=-32768, digital_max=32767)
    pyedflib.highlevel.write_edf(str(edf), [np.zeros(FS * 10)] * 2, [header, header])
    with as_wfdb(edf) as base:
        assert wfdb.rdheader(str(base)).sig_name == ["signal 1", "signal 2"]
