"""Classify every beat of a new recording, or of a file of prepared beats, with a trained run.

A WFDB record is segmented exactly like the training data (`segment_clear`), at the R peaks of
its reference annotations when it has them, else at the peaks a QRS detector finds. When a record
has annotations and the detector is forced anyway, each detected beat takes the label of the
annotated beat it hits, so the agreement figure covers detection and classification together.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from signal import SIG_IGN, SIGINT
from signal import signal as set_handler
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import wfdb
from scipy.signal import butter, sosfiltfilt
from wfdb import processing
from wfdb.processing.qrs import GQRS

from beatlab import CLASSES
from beatlab.data.build import (
    CHANNEL_SEPARATOR,
    LeadOff,
    asked_lead,
    channel_leads,
    lead_choices,
    read_annotation_marks,
    read_header,
    read_lead,
    record_names,
    within,
)
from beatlab.data.databases import (
    SAME_VIEW,
    find_lead,
    get_database,
    list_databases,
    parse_databases,
)
from beatlab.data.edf import is_edf
from beatlab.data.formats import NO_RR, detect_format, read_beats
from beatlab.data.layouts import FILE_LAYOUTS, BuildParams, over_invalid, segment_clear
from beatlab.data.recordings import as_wfdb, is_copied, per_millivolt, record_base
from beatlab.deploy.export import available_cores, runner_for
from beatlab.errors import BeatlabError
from beatlab.io import writing
from beatlab.models import RR_FEATURES, BeatModel
from beatlab.models.ensemble import MeanEnsemble, members_reading, over_leads
from beatlab.models.rhythm import AF_NOT_APPLIED, AF_NOTE, gate_af
from beatlab.output import RecordingBars
from beatlab.training.data import check_float32, warn_outside
from beatlab.training.metrics import classification_metrics
from beatlab.training.runs import Run, load_run
from beatlab.training.trainer import Tensors, predict_proba

MATCH_WINDOW_S = 0.15
"""A detection and an annotated beat are the same beat when this close (AAMI EC57's window)."""
UNMATCHED, IN_VF = -1, -2
"""`reference` of a detection that hits no annotated beat (a false detection), and of one inside
an annotated ventricular flutter / fibrillation episode: EC57 scores VF apart, so that one is
neither a beat found nor a false detection."""

PAD_S = 2.0
"""Seconds of padding before and after the ends of a lead for GQRS (`detect_beats`)."""
_EDGE_S = 5.0  # the stretch at each end of a lead that GQRS runs on again, padded
_MIN_RR_S = 0.28  # GQRS's own shortest R-R: an edge beat closer to the lead's first or last is one
_SEARCH_RADIUS_S = 0.05  # how far a detection may move to that deflection
_SMOOTH_WINDOW_S = 0.15  # baseline removal before looking for that extremum
_TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".parq": "parquet"}
_VIEWS = {"i", "ii", "iii", "avr", "avl", "avf", "mli", "mlii", "mliii"} | {
    f"v{i}" for i in range(1, 7)
}  # lead names that say which view of the heart a lead is
DETECTOR_SWING_MV = (1.1, 3.0)
"""GQRS finds beats best where a second of the lead spans this much, peak to peak, in mV (DS1's
records span 1.2-4.0 on MLII): it misses beats below and takes T waves for beats above. A lead
outside is scaled to the nearer end (`benchmarks/detector.py` measures it)."""
DETECTOR_LOWPASS_HZ: float | None = None
"""Where the lead GQRS reads is low-passed (None: not at all); the R peak is still placed on the
lead itself (docs/new_patients.md, thirty-second session)."""


@dataclass
class Predictions:
    """Every beat of one input, classified.

    `reference` holds the known class (an index into `classes`), or where it is unknown -1
    (`UNMATCHED`: on the detector path, a false detection) or -2 (`IN_VF`).
    `sample` is the R-peak sample index at `fs` for a record, None for a file of beats.
    """

    classes: tuple[str, ...]
    proba: np.ndarray  # (n, len(classes)) float32
    reference: np.ndarray  # (n,) int64
    source: str  # what found the beats: "annotations", "detector" or "file"
    sample: np.ndarray | None = None
    fs: float | None = None
    lead: str | None = None
    matched_against: int = 0  # annotated beats the detections were matched with (detector path)
    note: str = ""  # how the beats were classified, where not as usual (a lead missing)

    def __len__(self) -> int:
        return len(self.proba)

    @property
    def predicted(self) -> np.ndarray:
        return self.proba.argmax(axis=1)

    @property
    def known(self) -> np.ndarray:
        return self.reference >= 0

    @property
    def scored(self) -> int:
        """Detections the detection's +P counts: all but those inside annotated VF."""
        return int((self.reference != IN_VF).sum())

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Beats per class: predicted, and in the reference (where known)."""
        k = len(self.classes)
        return (
            np.bincount(self.predicted, minlength=k),
            np.bincount(self.reference[self.known], minlength=k),
        )

    def agreement(self) -> dict[str, Any] | None:
        """Accuracy, per-class Se / +P and the confusion matrix on the beats with a reference."""
        if not self.known.any():
            return None
        return classification_metrics(
            self.reference[self.known], self.proba[self.known], self.classes
        )

    def table(self) -> pd.DataFrame:
        """One row per beat: where it is, the predicted class, every probability, the reference."""
        names = np.asarray(self.classes, dtype=object)
        columns: dict[str, Any] = (
            {"row": np.arange(len(self))}
            if self.sample is None or self.fs is None
            else {"sample": self.sample, "time_s": self.sample / self.fs}
        )
        columns["predicted"] = names[self.predicted]
        columns.update({f"p_{c}": self.proba[:, i] for i, c in enumerate(self.classes)})
        if self.known.any():
            labels = pd.Series(names[np.maximum(self.reference, 0)], dtype="string")
            columns["reference"] = labels.where(self.known)  # <NA>: an unmatched detection
        return pd.DataFrame(columns)


def classify(model: BeatModel, x: np.ndarray, rr: np.ndarray) -> np.ndarray:
    """Class probabilities of (n, 187) beats with their (n, 3) R-R context."""
    data = Tensors(  # labels are not used for prediction; torch wants writable arrays
        torch.from_numpy(np.require(x, np.float32, ["C", "W"])),
        torch.zeros(len(x), dtype=torch.int64),
        torch.from_numpy(np.require(rr, np.float32, ["C", "W"])),
    )
    return predict_proba(model, data)


Progress = Callable[[float], None]
"""Told the share of a lead the QRS detector has read, from 0 to 1, as it reads it."""
_POLL_S = 0.25  # how often the detector's progress is read


class _FilteredGQRS(GQRS):
    """wfdb's GQRS with its QRS filter computed by numpy, a block of samples at a time. wfdb runs
    the filter (`sm`, a trapezoid smoothing, then `qf`, a matched filter) one Python step a
    sample, most of GQRS's time, and appends both outputs to two lists nothing reads
    (`SIG_SMOOTH`, `SIG_QRS`: ten times the lead's memory). The detection loop is wfdb's own and
    reads the same filter values, so the beats are the same, about 4 times as fast
    (`benchmarks/gqrs_speed.py`).

    Written against wfdb's port as it runs: its learning pass never reaches `qf` (a sample is
    not yet valid), so the detecting pass starts from empty buffers, and `qf` is called once a
    sample, in order, until the smoothing reads past the lead's end. Should a later wfdb filter
    while learning, its own steps run instead, for the whole lead."""

    _BLOCK = 1 << 16  # samples a filter block: 0.5 MB a block, whatever the lead's length

    def detect(self, x: np.ndarray, conf: GQRS.Conf, adc_zero: int) -> list[Any]:
        self._x = np.asarray(x, dtype=np.int64)
        self._x = self._x - adc_zero if adc_zero else self._x
        self._q = np.zeros(0, dtype=np.int64)
        self._from = self._to = self._v1 = 0
        self._wfdbs = False  # wfdb's own filter steps, once it filters while learning
        self._mask = conf._BUFLN - 1
        n = len(self._x)  # `sm` reads past the end once the smoothed sample is past n + dt
        self._valid_before = (1 if conf.dt == 1 and n == 1 else n + conf.dt + 1) - conf.dt4
        try:
            return super().detect(x, conf, adc_zero)
        finally:  # wfdb's detection loop leaves closures that refer back to the detector: a
            # reference cycle, freed only by the garbage collector's next full pass, would keep
            # the lead (250 MB a 24-hour Holter lead) and its beats past this call
            self.x = self._x = self._q = np.zeros(0, dtype=np.int64)
            self.annotations: list[Any] = []

    def qf(self) -> None:
        if self._wfdbs or self.state == "LEARNING":
            self._wfdbs = True
            return super().qf()
        t = self.t
        if not self._from <= t < self._to:
            self._filter(t)
        self.qfv[t & self._mask] = self._q[t - self._from]
        self.sample_valid = t < self._valid_before

    def qfv_at(self, t: int) -> Any:
        """wfdb's, with the buffer's mask kept: it is read three times a sample."""
        return self.qfv[t & self._mask]

    def _filter(self, start: int) -> None:
        """`qf`'s output for the samples from `start` on, as wfdb's steps give it: the smoothing
        reads the lead's first and last samples beyond its ends and 0 at times before 1, and the
        matched filter's running sum `v1` carries over from the block before."""
        dt, dt4, n = self.c.dt, self.c.dt4, len(self._x)
        size = max(1, min(self._BLOCK, n + 1 - start))
        first = start - dt4  # the first smoothed sample read
        span = np.arange(first - dt, start + size + dt4 + dt)
        kernel = np.r_[1, np.full(2 * dt - 1, 2), 1]
        smv = np.convolve(self._x[np.clip(span, 0, n - 1)], kernel, mode="valid")
        if dt == 1:  # wfdb never writes the first smoothed sample then, and sums from 0
            smv -= int(np.dot(self._x[np.clip(np.arange(3), 0, n - 1)], kernel))
        smv[np.arange(first, first + len(smv)) < 1] = 0

        def around(offset: int) -> np.ndarray:
            return smv[dt4 + offset : dt4 + offset + size]

        dv = (
            10 * (around(dt) - around(-dt))
            - 4 * (around(2 * dt) - around(-2 * dt))
            - 2 * (around(3 * dt) - around(-3 * dt))
            + (around(dt4) - around(-dt4))
        )
        v1 = self._v1 + np.cumsum(dv)
        self._v1 = int(v1[-1])
        v0 = np.trunc(v1 / self.c.v1norm).astype(np.int64)  # as int(v1 / v1norm) on exact ints
        self._q = v0 * v0
        self._from, self._to = start, start + size


def gqrs(signal: np.ndarray, fs: float, progress: Progress | None = None) -> np.ndarray:
    """`processing.gqrs_detect(sig=signal, fs=fs)`, its default settings written out, telling
    `progress` how far it has read: its detection is a Python loop over every sample (about
    1.2 s an hour of ECG at 360 Hz here, half a minute a 24-hour Holter lead), more than a
    spinner should cover. The same beats as wfdb's, with its filter by numpy (`_FilteredGQRS`).
    With `progress` it reads in a thread while this one polls the detector's position; the
    thread is a daemon, so Ctrl+C is not held until GQRS is done."""
    record = wfdb.Record(p_signal=signal.reshape(-1, 1), fmt=["24"])
    record.set_d_features(do_adc=True)  # as gqrs_detect digitises a physical signal
    conf = GQRS.Conf(
        fs=fs, adc_gain=record.adc_gain[0], hr=75, RRdelta=0.2, RRmin=0.28, RRmax=2.4, QS=0.07,
        QT=0.35, RTmin=0.25, RTmax=0.33, QRSa=750, QRSamin=130, thresh=1.0,
    )  # fmt: skip
    detector = _FilteredGQRS()
    found: list[int] = []
    failed: list[BaseException] = []

    def read() -> None:
        try:
            found.extend(
                a.time for a in detector.detect(x=record.d_signal[:, 0], conf=conf, adc_zero=0)
            )
        except BaseException as err:  # raised again in the caller's thread
            failed.append(err)

    if progress is None:
        read()
    else:
        thread = threading.Thread(target=read, name="gqrs", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(_POLL_S)
            if getattr(detector, "state", None) == "RUNNING":  # after a minute's learning
                progress(min(max(detector.t, 0) / len(signal), 1.0))
        progress(1.0)
    if failed:
        raise failed[0]
    return np.asarray(found, dtype=np.int64)


def lowpassed(signal: np.ndarray, fs: float, cutoff_hz: float | None) -> np.ndarray:
    """`signal` through a 2nd-order Butterworth low-pass at `cutoff_hz`, forward and backward
    (no delay); as it is where there is no cut-off or the rate is too low for it."""
    if cutoff_hz is None or cutoff_hz >= 0.45 * fs or len(signal) < 16:
        return signal
    return np.asarray(sosfiltfilt(butter(2, cutoff_hz, fs=fs, output="sos"), signal))


def detect_beats(
    signal: np.ndarray,
    fs: float,
    pad_s: float = PAD_S,
    progress: Progress | None = None,
    lowpass_hz: float | None = DETECTOR_LOWPASS_HZ,
) -> np.ndarray:
    """R peaks by GQRS, each moved to the largest deflection from the local baseline nearby:
    that is where MIT-BIH's annotators put the peak, for upright and inverted (often ectopic)
    QRS alike, and so where the training beats start. Two detections of one beat become one.
    GQRS misses a recording's first beat (its thresholds still settling) and its last (it waits
    for what follows a beat), which in a 10-second recording is a beat in ten. So it runs again
    on the first and last `_EDGE_S` of the lead, held at its first value for `pad_s` before and
    mirrored for `pad_s` after, and the beats it finds there beyond the whole lead's first and
    last are added (padding the whole lead instead changes GQRS's course through it). GQRS reads
    the lead low-passed at `lowpass_hz` (`lowpassed`). `progress` is told how far GQRS has read
    the whole lead."""
    signal = np.asarray(signal, dtype=np.float64)
    if len(signal) == 0:
        return np.zeros(0, dtype=np.int64)
    read = lowpassed(signal, fs, lowpass_hz)
    found = gqrs(read, fs, progress)
    if pad_s > 0 and len(signal) > 1:
        k = min(round(_EDGE_S * fs), len(signal))
        n = min(round(pad_s * fs), k - 1)
        head = gqrs(np.r_[np.full(n, read[0]), read[:k]], fs) - n
        tail = gqrs(np.r_[read[-k:], read[-2 : -n - 2 : -1]], fs)
        tail = tail + len(signal) - k
        gap = round(_MIN_RR_S * fs)
        first, last = (found[0], found[-1]) if len(found) else (len(signal) + gap, -gap - 1)
        found = np.r_[
            head[(head >= 0) & (head < first - gap)],
            found,
            tail[(tail > last + gap) & (tail < len(signal))],
        ]
    if len(found) == 0:
        return np.zeros(0, dtype=np.int64)
    peaks = processing.correct_peaks(
        signal,
        found.astype(np.int64),
        search_radius=round(_SEARCH_RADIUS_S * fs),
        smooth_window_size=round(_SMOOTH_WINDOW_S * fs),
        peak_dir="both",
    )
    return np.unique(np.asarray(peaks, dtype=np.int64))


def detect_lead(
    header: wfdb.Record, signal: np.ndarray, lead: str, progress: Progress | None = None
) -> tuple[np.ndarray, str]:
    """`detect_beats` on the digital `signal` of the record's `lead`, in millivolts and within
    `DETECTOR_SWING_MV`, and `detector_signal`'s line. Its copies of the lead (in millivolts, and
    GQRS's digitised one: 250 MB each for a 24-hour Holter lead) are gone once it returns, before
    the beats are cut and classified."""
    channel = header.sig_name.index(lead)
    physical = np.subtract(signal, header.baseline[channel], dtype=np.float64)
    physical /= header.adc_gain[channel]  # in place: a copy is 250 MB a day at 360 Hz
    units = header.units[channel] if header.units else None
    signal_mv, unknown_units = detector_signal(physical, float(header.fs), units)
    return detect_beats(signal_mv, float(header.fs), progress=progress), unknown_units


def detector_signal(signal: np.ndarray, fs: float, units: str | None) -> tuple[np.ndarray, str]:
    """A lead as GQRS needs it, and a line where its units were unknown. GQRS's thresholds are in
    microvolts, so the lead is put in millivolts first (a record stored in uV, as EDF exports
    often are, would otherwise look a thousand times too large); units other than a voltage are
    read as mV. Then a lead whose median one-second swing lies outside `DETECTOR_SWING_MV` (a
    high-gain chest lead, a low-gain recorder) is scaled to the nearer end. A lead in mV within
    that swing is returned as it is, not copied."""
    per_mv = per_millivolt(units)
    said = (
        ""
        if per_mv
        else f"units {units!r} are not a voltage the QRS detector knows (mV, uV, V, nV): read as mV"
    )
    mv = signal * per_mv if per_mv and per_mv != 1.0 else signal  # no copy of a lead in mV
    n = max(int(fs), 1)
    seconds = mv[: len(mv) // n * n].reshape(-1, n)
    swing = float(np.median(np.ptp(seconds, axis=1))) if len(seconds) else 0.0
    within = float(np.clip(swing, *DETECTOR_SWING_MV))
    if swing > 0 and within != swing:
        mv = mv * (within / swing)
    return mv, said


def match_reference(
    peaks: np.ndarray, ref_peaks: np.ndarray, ref_labels: np.ndarray, window: float
) -> np.ndarray:
    """The label of the annotated beat within `window` samples of each peak, else `UNMATCHED`;
    an annotated beat labels only the closest of the peaks near it."""
    if len(peaks) == 0 or len(ref_peaks) == 0:
        return np.full(len(peaks), UNMATCHED, dtype=np.int64)
    right = np.clip(np.searchsorted(ref_peaks, peaks), 0, len(ref_peaks) - 1)
    left = np.maximum(right - 1, 0)
    nearest = np.where(
        np.abs(ref_peaks[right] - peaks) < np.abs(ref_peaks[left] - peaks), right, left
    )
    distance = np.abs(ref_peaks[nearest] - peaks)
    order = np.lexsort((distance, nearest))
    closest = np.zeros(len(peaks), dtype=bool)
    closest[order[np.r_[True, nearest[order][1:] != nearest[order][:-1]]]] = True
    matched = closest & (distance <= window)
    return np.where(matched, ref_labels[nearest], UNMATCHED).astype(np.int64)


Engine = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(n, 187) beats and (n, 3) R-R -> (n, classes) probabilities: the run's PyTorch model, or an
exported file of it (`beatlab.deploy.OnnxRunner.predict_proba`)."""


def record_leads(run: Run, lead: str | None = None) -> list[tuple[str, ...]]:
    """The leads to look for in a new record, one set of choices per channel the run reads:
    those asked for, else those the run was trained on, else the preferred leads of the run's
    own database(s), each followed by its other name (MLII, II), then those of every other
    registered database: a 12-lead record is read from II, not from V5."""
    own = [name for spec in parse_databases(run.config.db) for name in spec.leads]
    others = [name for db in list_databases() for name in get_database(db).leads]
    preferred = tuple(
        dict.fromkeys(n for name in own + others for n in (name, *SAME_VIEW.get(name, ())))
    )
    chosen = channel_leads(asked_lead(run.config.lead, lead))
    return [lead_choices(choice) if choice else preferred for choice in chosen]


def readable_leads(
    run: Run, base: Path, header: wfdb.Record, choices: list[tuple[str, ...]], fewer: bool
) -> tuple[BeatModel, str, list[tuple[np.ndarray, str, np.ndarray]]]:
    """The model to classify a record with, a line saying how where not as usual, and the leads
    that model reads, read. With `fewer` (not an exported graph, which reads every lead), an
    ensemble over leads leaves out the members whose lead the record lacks, or holds no valid
    sample of (a lead off for the whole recording), as it does for a one-lead record."""
    off: list[str] = []
    while True:
        usable = [name for name in header.sig_name if name not in off]
        where = f"the record (lead {', '.join(off)} off)" if off else "the record"
        model, kept, note = run.model, list(range(len(choices))), ""
        if fewer:
            model, kept, note = members_reading(run.model, choices, usable, where, "classified")
        try:
            wanted = [
                tuple(n for n in choices[c] if find_lead([n], usable)) or choices[c] for c in kept
            ]
            return model, note, [read_lead(base, header, w) for w in wanted]
        except LeadOff as err:
            if not (fewer and over_leads(run.model)) or err.lead in off:
                raise
            off.append(err.lead)


def only_lead(header: wfdb.Record, choices: list[tuple[str, ...]]) -> str:
    """A one-lead record's lead where no channel of `choices` names it and its name is no view of
    the heart, else "": a wearable's or Holter's `ECG` is the lead there is to classify, so it is
    read in the first channel's place (and said) rather than refused until `--lead` names it;
    a lead named for another view (V1) is refused, as its beats look otherwise."""
    names = [str(name) for name in header.sig_name or []]
    if len(names) != 1 or any(find_lead(wanted, names) for wanted in choices):
        return ""
    return "" if names[0].casefold() in _VIEWS else names[0]


def check_annotator(annotator: str) -> None:
    """An annotator is named by its file's extension (atr, qrs), never a path."""
    if not annotator.isalnum():
        raise BeatlabError(
            f"--annotator takes the annotation file's extension (atr, qrs), not {annotator!r}"
        )


def predict_record(
    run: Run,
    path: Path,
    *,
    detector: bool = False,
    engine: Engine | None = None,
    lead: str | None = None,
    annotator: str = "atr",
    progress: Progress | None = None,
) -> Predictions:
    """Classify every beat of the WFDB record at `path` with `engine` (default: the run's model),
    cut in the run's beat layout, at the beats of its `annotator` file; `detector` ignores them
    for finding beats (they still give the reference). Without a .atr file the detector finds
    the beats; without another annotator's file the record is refused. An EDF/BDF file (its
    beats found by the detector) and a multi-segment record are read through a one-segment
    copy (`beatlab.data.recordings`). `progress` is told how far the detector has read."""
    if is_copied(path):
        with as_wfdb(path) as base:
            return predict_record(
                run,
                base,
                detector=detector,
                engine=engine,
                lead=lead,
                annotator=annotator,
                progress=progress,
            )
    base = record_base(path)
    header = read_header(base)
    check_annotator(annotator)
    annotations = base.with_suffix(f".{annotator}")
    if annotator != "atr" and not annotations.exists():
        raise BeatlabError(f"no .{annotator} annotation file beside the record", annotations)
    params = run.layout
    choices = record_leads(run, lead)
    if params.first_lead and not lead:
        choices[0] = tuple(header.sig_name[:1])
    only = "" if lead else only_lead(header, choices)
    instead = choices[0][0]
    if only:
        choices[0] = (only,)
    model, note, leads = readable_leads(run, base, header, choices, engine is None)
    if only:
        said = f"the record's one lead, {only}, is none the model reads: read in place of {instead}"
        note = "; ".join(filter(None, (said, note)))
    signal, used, _ = leads[0]
    invalid = np.logical_or.reduce([gaps for _, _, gaps in leads])
    fs = float(header.fs)
    if params.band_high_hz and fs <= 2 * params.band_high_hz:
        raise BeatlabError(
            f"sampled at {fs:g} Hz: the {params.name} layout keeps up to {params.band_high_hz:g} "
            f"Hz, which needs a rate above {2 * params.band_high_hz:g} Hz",
            base.with_suffix(".hea"),
        )
    if len(signal) < params.length * fs / params.fs:
        raise BeatlabError(
            f"record too short: {len(signal) / fs:.2f} s, a beat of the {params.name} layout "
            f"spans {params.length / params.fs:.2f} s",
            base.with_suffix(".hea"),
        )
    has_atr = annotations.exists()
    ref_peaks, ref_labels, marks, vf = (
        read_annotation_marks(base, length=len(signal), annotator=annotator)
        if has_atr
        else (np.zeros(0, np.int64),) * 3 + (np.zeros((0, 2), np.int64),)
    )
    if has_atr and not detector:
        peaks, reference, source = ref_peaks, ref_labels, "annotations"
    else:
        peaks, unknown_units = detect_lead(header, signal, used, progress)
        note = "; ".join(filter(None, (note, unknown_units)))
        beat = ~within(ref_peaks, vf)
        ref_peaks, ref_labels = ref_peaks[beat], ref_labels[beat]
        reference = match_reference(peaks, ref_peaks, ref_labels, MATCH_WINDOW_S * fs)
        reference[within(peaks, vf)] = IN_VF
        source = "detector"
    if len(peaks) == 0 and source == "detector":
        raise BeatlabError("no beats detected (flat or empty signal?)", path)
    if len(peaks) == 0:
        raise BeatlabError(
            "the annotations mark no beats (rhythm marks only?): name the file of its beats "
            "with --annotator (the MIT-BIH AF Database's: qrs), or find them with --detector",
            annotations,
        )
    if run.classes != CLASSES:  # the annotations name AAMI classes, which this run does not use
        reference, ref_peaks = np.full(len(peaks), -1, dtype=np.int64), ref_peaks[:0]
    given = marks if source == "annotations" else None
    proba, scored, said = classify_leads(run, model, engine, leads, fs, peaks, params, given)
    if not scored.any():
        raise BeatlabError("every beat's window holds invalid samples (a lead off?)", path)
    note = "; ".join(filter(None, (note, said)))
    if not scored.all():
        peaks, reference, proba = peaks[scored], reference[scored], proba[scored]
        blocked = over_invalid(ref_peaks, invalid, params, fs)
        for c in readers(model, engine, leads):  # an annotated beat one of them could classify
            blocked &= over_invalid(ref_peaks, leads[c][2], params, fs)
        ref_peaks = ref_peaks[~blocked]
        left = f"left out {int((~scored).sum()):,} beats whose window holds invalid samples"
        left += " (a lead off)"
        note = f"{note}; {left}" if note else left
    if run.config.af_gate:
        proba, flag = gate_af(proba, peaks, run.classes, run.model.config.decision_weights)
        if flag.any():
            in_af = AF_NOTE.format(int(flag.sum()))
            note = f"{note}; {in_af}" if note else in_af
    return Predictions(
        classes=run.classes,
        proba=proba,
        reference=reference,
        source=source,
        sample=np.asarray(peaks, dtype=np.int64),
        fs=fs,
        lead=CHANNEL_SEPARATOR.join(name for _, name, _ in leads),
        matched_against=len(ref_peaks) if source == "detector" else 0,
        note=note,
    )


def readers(
    model: BeatModel, engine: Engine | None, leads: list[tuple[np.ndarray, str, np.ndarray]]
) -> list[int]:
    """The leads whose members can classify a beat alone where another lead's window holds
    invalid samples: every lead some member reads, for an ensemble over leads run by PyTorch
    (an exported graph reads every lead at once)."""
    if engine is not None or not over_leads(model) or model.channels is None:
        return []
    return [c for c in range(len(leads)) if c in model.channels]


def classify_leads(
    run: Run,
    model: BeatModel,
    engine: Engine | None,
    leads: list[tuple[np.ndarray, str, np.ndarray]],
    fs: float,
    peaks: np.ndarray,
    params: BuildParams,
    marks: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Class probabilities of the beats at `peaks`, which of them were classified, and a line
    saying how where not by every lead. A beat whose window holds invalid samples of a lead (a
    lead off for a while, a segment without it) is classified, for an ensemble over leads, by
    the members reading the leads that are valid there, rather than left out: a Holter's chest
    lead falling off should not cost the beats its limb lead still shows."""
    invalid = np.logical_or.reduce([gaps for _, _, gaps in leads])
    x, rr, scored = segment_clear([s for s, _, _ in leads], fs, peaks, params, marks, invalid)
    proba = np.zeros((len(peaks), len(run.classes)), dtype=np.float32)
    if scored.any():
        proba[scored] = (engine or partial(classify, model))(x, rr)
    some = readers(model, engine, leads)
    if scored.all() or not some:
        return proba, scored, ""
    valid = np.array([~over_invalid(peaks, leads[c][2], params, fs) for c in some])
    said = []
    for pattern in np.unique(valid[:, ~scored], axis=1).T[::-1]:  # the first leads' members first
        subset = [c for c, ok in zip(some, pattern, strict=True) if ok]
        if not subset:
            continue
        new = ~scored & (valid == pattern[:, None]).all(axis=0)
        gaps = np.logical_or.reduce([leads[c][2] for c in subset])
        x, rr, clear = segment_clear([leads[c][0] for c in subset], fs, peaks, params, marks, gaps)
        assert isinstance(model, MeanEnsemble)
        fewer = model.reading(subset)
        proba[new] = classify(fewer, x[new[clear]], rr[new[clear]])
        scored = scored | new
        names = ", ".join(leads[c][1] for c in subset)
        said.append(
            f"classified {int(new.sum()):,} beats whose other leads' windows hold invalid "
            f"samples by the ensemble's members that read {names} ({len(fewer.members)} of "
            f"{len(model.members)})"
        )
    return proba, scored, "; ".join(said)


def folder_records(folder: Path) -> list[Path]:
    """The recordings `predict --records` classifies: the folder's WFDB records (those its
    RECORDS file lists, as PhysioNet's do, else every header) and its EDF/BDF files."""
    if not folder.is_dir():
        raise BeatlabError("no such directory", folder)
    edf = sorted(p for p in folder.iterdir() if is_edf(p) and p.is_file())
    has_wfdb = (folder / "RECORDS").exists() or any(folder.glob("*.hea"))
    records = [folder / name for name in record_names(folder)] if has_wfdb else []
    if not records and not edf:
        raise BeatlabError("no WFDB records (.hea) and no EDF/BDF files", folder)
    return records + edf


def predict_records(
    run: Run,
    paths: list[Path],
    *,
    detector: bool = False,
    onnx: Path | None = None,
    lead: str | None = None,
    annotator: str = "atr",
    jobs: int = 1,
    progress: bool = True,
    keep_going: bool = True,
) -> tuple[dict[Path, Predictions], dict[Path, BeatlabError]]:
    """Classify each recording as `predict_record` does, with the run (or its ONNX export
    `onnx`) loaded once, not once per recording; a recording that cannot be read is kept with
    its error, and the others go on, so one bad file in a thousand costs that file only. With
    `jobs` above 1, that many processes classify recordings side by side, each loading the run
    once and using its share of the cores: GQRS reads one lead on one core, so a folder of
    long recordings gains nearly a core per job. Results come back in `paths`' order. Without
    `keep_going`, the first recording that cannot be read raises its error, and the rest are
    not read."""
    if jobs < 1:
        raise BeatlabError(f"--jobs takes a number of processes, 1 or more, not {jobs}")
    engine = runner_for(run, onnx).predict_proba if onnx else None  # a bad file fails first
    done: dict[Path, Predictions] = {}
    failed: dict[Path, BeatlabError] = {}
    options: dict[str, Any] = {"detector": detector, "lead": lead, "annotator": annotator}
    with RecordingBars("classifying", len(paths), disable=not progress) as bars:
        if jobs == 1 or len(paths) < 2:
            for path in paths:
                try:
                    done[path] = predict_record(
                        run, path, engine=engine, progress=bars.detector, **options
                    )
                except BeatlabError as err:
                    if not keep_going:
                        raise
                    failed[path] = err
                bars.advance()
        else:
            jobs = min(jobs, len(paths))
            threads = max(1, available_cores() // jobs)
            pool = ProcessPoolExecutor(
                jobs,
                mp_context=multiprocessing.get_context("spawn"),  # fork would copy torch's threads
                initializer=_start_worker,
                initargs=(run.path, onnx, threads),
            )
            try:
                futures = {pool.submit(_predict_in_worker, path, options): path for path in paths}
                in_order = list(futures)
                for future in as_completed(futures):
                    try:
                        done[futures[future]] = future.result()
                    except BeatlabError as err:
                        failed[futures[future]] = err
                    bars.advance()
                    if not keep_going and (first := _first_failure(in_order)):
                        raise first
            except BaseException as err:
                _stop(pool)
                if isinstance(err, BrokenProcessPool):
                    raise BeatlabError(
                        "a --jobs process ended abruptly (out of memory? try fewer --jobs)"
                    ) from None
                raise
            pool.shutdown()
    order = {path: k for k, path in enumerate(paths)}
    return (
        dict(sorted(done.items(), key=lambda item: order[item[0]])),
        dict(sorted(failed.items(), key=lambda item: order[item[0]])),
    )


def _first_failure(futures: list[Future[Predictions]]) -> BeatlabError | None:
    """The error one recording at a time would have stopped at: the first failed recording in
    order once every one before it is done, whichever process finished first."""
    for future in futures:
        if not future.done():
            return None
        if (err := future.exception()) is not None:  # any other error, the loop raises
            return err if isinstance(err, BeatlabError) else None
    return None


_worker: dict[str, Any] = {}
"""A `predict_records` worker process's run and engine, loaded once by `_start_worker`."""


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the recordings not yet started and end the workers now, on Ctrl+C or an error:
    each would otherwise first finish its recording (minutes for a Holter), and the command
    would hang until then. They only read, so they are killed outright (one was seen to hold
    SIGTERM back for over a second). Python 3.14 has `kill_workers` for it; before, the
    processes are the executor's `_processes`. A worker killed while it sends a result leaves
    part of a message in the results pipe, and the executor's thread would wait for the rest
    for ever, holding the interpreter's exit: with the workers gone and this process's write
    end closed, it reads an end of file instead and ends."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown drops them
    results = getattr(pool, "_result_queue", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()
    for process in processes:
        process.join()
    if results is not None:
        results._writer.close()


def _start_worker(run_dir: Path, onnx: Path | None, threads: int) -> None:
    """Load the run once per worker. Ctrl+C reaches every process of the terminal's group: the
    workers ignore it, and the main process, which gets it too, ends them (`_stop`)."""
    set_handler(SIGINT, SIG_IGN)
    torch.set_num_threads(threads)
    run = load_run(run_dir)
    _worker["run"] = run
    _worker["engine"] = runner_for(run, onnx, threads).predict_proba if onnx else None


def _predict_in_worker(path: Path, options: dict[str, Any]) -> Predictions:
    return predict_record(_worker["run"], path, engine=_worker["engine"], **options)


def records_table(done: dict[Path, Predictions], folder: Path) -> pd.DataFrame:
    """The per-beat tables of several recordings as one, each row led by its recording's name
    (its path within `folder`)."""
    tables = [
        result.table().assign(record=path.relative_to(folder).as_posix())
        for path, result in done.items()
    ]
    table = pd.concat(tables, ignore_index=True)
    if "reference" in table:
        table["reference"] = table["reference"].astype("string")
    return table[["record", *(c for c in table.columns if c != "record")]]


def notes_by_recording(results: Iterable[tuple[str, Predictions]]) -> list[str]:
    """Each note of several recordings once, led by the recordings it is about ("201, 203:
    ..."), so that a folder's summary does not repeat one line per recording."""
    said: dict[str, list[str]] = {}
    for name, result in results:
        if result.note:
            said.setdefault(result.note, []).append(name)
    return [f"{', '.join(which)}: {note}" for note, which in said.items()]


def per_recording(results: Iterable[tuple[str, Predictions]]) -> list[dict[str, Any]]:
    """A row per recording: its beats, how many the model put in each class, and where its
    beats have a reference, how many of them it got right. A folder of Holters is read to find
    the few recordings with many ectopic beats, which totals over the folder hide."""
    rows = []
    for name, result in results:
        predicted, _ = result.counts()
        row: dict[str, Any] = {"recording": name, "beats": len(result)}
        row.update({c: int(n) for c, n in zip(result.classes, predicted, strict=True)})
        metrics = result.agreement()
        row["accuracy"] = metrics["accuracy"] if metrics is not None else None
        rows.append(row)
    if all(row["accuracy"] is None for row in rows):
        for row in rows:
            del row["accuracy"]
    return rows


def pooled(done: dict[Path, Predictions]) -> Predictions:
    """Several recordings' predictions as one, for counting beats per class over them all."""
    parts = list(done.values())
    return Predictions(
        classes=parts[0].classes,
        proba=np.concatenate([p.proba for p in parts]),
        reference=np.concatenate([p.reference for p in parts]),
        source="records",
        matched_against=sum(p.matched_against for p in parts),
    )


def predict_file(run: Run, path: Path, *, engine: Engine | None = None) -> Predictions:
    """Classify every row of a Kaggle CSV or course Parquet file with `engine` (default: the
    run's model); its label is the reference."""
    if run.model.use_rr:
        raise BeatlabError(f"{NO_RR}; classify a WFDB record instead", path)
    if run.config.layout not in FILE_LAYOUTS:
        raise BeatlabError(
            f"beat files hold beats in the kaggle layout, but run {run.path.name} was trained "
            f"on the {run.config.layout} layout; classify a WFDB record instead",
            path,
        )
    with np.errstate(over="ignore"):  # the cast's overflow is what check_float32 reports
        x, y = read_beats(path, classes=len(run.classes))
    check_float32(x, path)  # 1e39 is finite in the file and inf as float32
    warn_outside(x, run.info.get("train_range"), path)
    rr = np.zeros((len(x), RR_FEATURES), dtype=np.float32)
    proba = (engine or partial(classify, run.model))(x, rr)
    note = AF_NOT_APPLIED if run.config.af_gate else ""
    return Predictions(run.classes, proba, y, "file", note=note)


def check_beat_file(path: Path, fmt: str) -> None:
    """`--csv` must name a .csv file and `--parquet` a .parquet/.parq one."""
    wanted = {"csv": "kaggle-csv", "parquet": "mads-parquet"}[fmt]
    if detect_format(path) != wanted:
        raise BeatlabError(f"--{fmt} needs a {'.csv' if fmt == 'csv' else '.parquet'} file", path)


def table_format(path: Path) -> str:
    """csv or parquet, from the output file's suffix."""
    fmt = _TABLE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise BeatlabError("output must end in .csv, .parquet or .parq", path)
    return fmt


def is_prediction_table(path: Path) -> bool:
    """Whether a file is a per-beat table `predict` wrote (its first columns say so), which a
    re-run may replace; a beat file, say the input itself, is not."""
    if table_format(path) == "parquet":
        try:
            names = pq.read_schema(path).names
        except (OSError, pa.ArrowException):
            return False
    else:
        names = head_line(path).split(",")
    if names[:1] == ["record"]:  # `predict --records`
        names = names[1:]
    return names[:3] == ["sample", "time_s", "predicted"] or names[:2] == ["row", "predicted"]


def head_line(path: Path) -> str:
    """A text file's first line ('' where it cannot be read)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline(4096).strip()
    except OSError:
        return ""


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write the per-beat table as CSV or Parquet (by suffix), atomically."""
    fmt = table_format(path)
    with writing(path, parents=False) as tmp:  # a mistyped folder is an error, not a new tree
        if fmt == "csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
