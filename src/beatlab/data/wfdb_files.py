"""A WFDB record written from physical samples, as `wfdb.wrsamp` writes it, in less memory.

wfdb's writer splits every sample into bytes held as int64s before it writes them: ten times the
samples' size (1.1 GB for 12 hours of three leads at 125 Hz, several GB for a day-long EDF).
beatlab writes its temporary copies of EDF/BDF files and multi-segment records through
`write_physical` instead: wfdb's own steps for the header and the digital values, then the
samples as WFDB's formats 16, 24 and 32 define them (little-endian two's complement, interleaved
by sample), the same bytes (`tests/data/test_wfdb_files.py` checks them against `wrsamp`'s).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import wfdb

_BYTES = {"16": 2, "24": 3, "32": 4}
"""The formats written, by the bytes a sample takes."""


def write_physical(
    folder: Path,
    name: str,
    fs: float,
    units: list[str],
    sig_name: list[str],
    signal: np.ndarray,
    fmt: str,
) -> Path:
    """Write the (samples, signals) physical `signal` as record `name` in `folder`, every signal
    in format `fmt`, and return the record's base path. The ADC runs in place: on `signal`
    itself where it is float64 already (both callers pass an array they are done with), else on
    a float64 copy."""
    record = wfdb.Record(
        record_name=name,
        fs=fs,
        fmt=[fmt] * signal.shape[1],
        units=units,
        sig_name=sig_name,
        p_signal=np.asarray(signal, dtype=np.float64),
    )
    record.adc_gain, record.baseline = record.calc_adc_params()  # as wrsamp sets them
    record.adc(inplace=True)
    record.set_d_features()
    record.set_defaults()
    record.wrheader(write_dir=str(folder))
    size = _BYTES[fmt]
    samples = record.d_signal.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :size]
    samples.tofile(folder / record.file_name[0])
    return folder / name
