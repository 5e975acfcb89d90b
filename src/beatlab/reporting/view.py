"""One record, every classified beat, on one self-contained HTML page (`beatlab view`).

People judge a beat classifier by looking at the trace: where the ectopic beats are, which ones
the model got wrong. The page shows the lead the beats were classified on, a marker at every beat
coloured by its predicted class, a strip of predicted / reference / disagreement ticks under it,
buttons that jump to the next disagreement or the next beat of a class, and a summary table.

It works offline: Plotly's own bundle is inlined, the signal travels as base64 int16 codes and
the page decodes it. Plotly never sees the whole record: a small handler draws a min/max
decimation of the visible span (a few thousand points, which keeps the envelope exact at screen
resolution) and swaps in every sample once the span is a minute or less, so zooming and panning a
30-minute record stay smooth.
"""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from beatlab.data.build import CHANNEL_SEPARATOR
from beatlab.errors import BeatlabError
from beatlab.io import head_holds, refuse_foreign, writing

if TYPE_CHECKING:
    from beatlab.deploy.predict import Predictions

SUFFIXES = (".html", ".htm")
MISSING = -32768
"""int16 code of a sample the record marks invalid; the page draws a gap there."""
FULL_RESOLUTION_S = 60.0
"""Spans this short or shorter are drawn with every sample; longer ones are min/max decimated."""
COLORS = {"N": "#4a7fc1", "S": "#f28e2b", "V": "#d62728", "F": "#9467bd", "Q": "#2ca02c"}
OTHER_COLORS = ("#4a7fc1", "#d62728", "#f28e2b", "#2ca02c", "#9467bd", "#8c564b", "#17becf")
DISAGREE = "#e6007e"


@dataclass
class Trace:
    """A lead as compact integer codes: the value of sample i is codes[i] * step (in `units`)."""

    codes: np.ndarray  # (n,) int16, MISSING where the record has no valid value
    step: float
    units: str


PAGE_MARK = b"<title>beatlab view: "
"""What every page `view` writes holds near its top, so a re-run may replace it."""


def check_output(path: Path) -> None:
    """Fail before any work on an output that cannot become the page."""
    if path.suffix.lower() not in SUFFIXES:
        raise BeatlabError("the page must end in .html or .htm", path)
    if path.is_dir():
        raise BeatlabError("is a directory; name the .html file to write", path)
    folder = next((p for p in path.absolute().parents if p.exists()), None)
    if folder is not None and (not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK)):
        raise BeatlabError(f"cannot write: {folder} is not a writable folder", path)
    refuse_foreign(path, lambda page: head_holds(page, (PAGE_MARK,)), "a page")


def quantise(signal: np.ndarray, gain: float | None) -> tuple[np.ndarray, float]:
    """int16 codes and their step. A step of 1/ADC gain gives back the recorded digital values
    exactly; a lead whose range would not fit in int16 that way gets a coarser step."""
    signal = np.asarray(signal, dtype=np.float64)
    finite = np.isfinite(signal)
    peak = float(np.abs(signal[finite]).max()) if finite.any() else 0.0
    step = 1.0 / gain if gain is not None and gain > 0 else 0.0
    if step <= 0 or peak / step > 32767:
        step = peak / 32767 if peak > 0 else 1.0
    codes = np.full(len(signal), MISSING, dtype=np.int16)
    codes[finite] = np.clip(np.round(signal[finite] / step), -32767, 32767).astype(np.int16)
    return codes, step


def read_trace(path: Path, lead: str) -> Trace:
    """The named lead of the record at `path`, in physical units."""
    import wfdb

    from beatlab.data.recordings import record_base

    base = record_base(path)
    try:
        header = wfdb.rdheader(str(base))
        channel = header.sig_name.index(lead)
        record = wfdb.rdrecord(str(base), channels=[channel])
    except Exception as err:  # wfdb raises many types for a bad record
        raise BeatlabError(f"unreadable record: {err}", base) from None
    gains = header.adc_gain or []
    gain = float(gains[channel]) if channel < len(gains) else None
    codes, step = quantise(record.p_signal[:, 0], gain)
    units = (header.units or [""] * (channel + 1))[channel] or ""
    return Trace(codes, step, str(units))


def class_colors(classes: tuple[str, ...]) -> list[str]:
    """The AAMI classes keep fixed colours (V red, S orange, ...); other class sets cycle."""
    if all(c in COLORS for c in classes):
        return [COLORS[c] for c in classes]
    return [OTHER_COLORS[i % len(OTHER_COLORS)] for i in range(len(classes))]


def class_rows(
    classes: tuple[str, ...], predicted: np.ndarray, reference: np.ndarray
) -> list[dict[str, Any]]:
    """Beats per class, predicted and in the reference, and Se / +P over the beats with a
    reference. None marks what cannot be computed: Se of a class with no reference beats, +P of
    a class never predicted where the reference is known."""
    known = reference >= 0
    rows = []
    for i, name in enumerate(classes):
        ref_i = int((reference == i).sum())
        pred_known = int((predicted[known] == i).sum())
        hits = int(((predicted == i) & (reference == i)).sum())
        rows.append(
            {
                "class": name,
                "predicted": int((predicted == i).sum()),
                "reference": ref_i,
                "Se": hits / ref_i if ref_i else None,
                "+P": hits / pred_known if pred_known else None,
            }
        )
    return rows


def _b64(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes}:{rest:04.1f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def summary_html(
    classes: tuple[str, ...],
    predicted: np.ndarray,
    reference: np.ndarray,
    colors: list[str],
) -> str:
    """The table on top of the page: predicted vs reference beats per class, Se and +P."""
    esc = html.escape
    has_reference = bool((reference >= 0).any())
    head = ["class", "predicted"] + (["reference", "Se", "+P"] if has_reference else [])
    body = []
    for row, color in zip(class_rows(classes, predicted, reference), colors, strict=True):
        cells = [
            f'<td><span class="chip" style="background:{color}"></span>{esc(row["class"])}</td>',
            f'<td class="num">{row["predicted"]:,}</td>',
        ]
        if has_reference:
            cells += [
                f'<td class="num">{row["reference"]:,}</td>',
                f'<td class="num">{_ratio(row["Se"])}</td>',
                f'<td class="num">{_ratio(row["+P"])}</td>',
            ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    total = [f'<td class="num">{len(predicted):,}</td>']
    if has_reference:
        total += [f'<td class="num">{int((reference >= 0).sum()):,}</td>', "<td></td><td></td>"]
    body.append("<tr class='total'><td>all</td>" + "".join(total) + "</tr>")
    return (
        '<table class="summary"><thead><tr>'
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )


def build_page(
    *,
    record: str,
    run_name: str,
    classes: tuple[str, ...],
    proba: np.ndarray,
    reference: np.ndarray,
    sample: np.ndarray,
    fs: float,
    lead: str,
    source: str,
    trace: Trace,
    matched_against: int = 0,
) -> str:
    """The whole page as one string: no external resource, no timestamp (same input, same
    page)."""
    from plotly.offline import get_plotlyjs

    from beatlab.deploy.predict import MATCH_WINDOW_S

    esc = html.escape
    predicted = proba.argmax(axis=1)
    known = reference >= 0
    colors = class_colors(classes)
    n_known, n_agree = int(known.sum()), int((predicted[known] == reference[known]).sum())
    found = {"annotations": "the reference annotations", "detector": "the QRS detector"}
    facts = [
        f"lead {esc(lead)} at {fs:g} Hz, {_clock(len(trace.codes) / fs)} long",
        f"{len(predicted):,} beats found by {found.get(source, source)}",
        f"classified by run <b>{esc(run_name)}</b>",
    ]
    if matched_against:
        facts.append(
            f"{n_known:,} of {matched_against:,} annotated beats matched within "
            f"{MATCH_WINDOW_S * 1000:.0f} ms"
        )
    if n_known:
        facts.append(
            f"agreement with the reference {n_agree:,} of {n_known:,} beats "
            f"({n_agree / n_known:.2%}); <b>{n_known - n_agree:,} disagreements</b>"
        )
    else:
        facts.append("no reference labels: predicted classes only")
    data = {
        "record": record,
        "fs": fs,
        "step": trace.step,
        "units": trace.units,
        "lead": lead,
        "classes": list(classes),
        "colors": colors,
        "disagree": DISAGREE,
        "fullResolutionS": FULL_RESOLUTION_S,
        "signal": _b64(trace.codes, "<i2"),
        "sample": _b64(sample, "<i4"),
        "predicted": _b64(predicted, "u1"),
        "reference": _b64(reference, "i1"),
        "proba": _b64(np.rint(np.clip(proba, 0, 1) * 100), "u1"),
    }
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    options = "".join(
        f'<option value="p{i}">predicted {esc(c)}</option>' for i, c in enumerate(classes)
    ) + (
        "".join(f'<option value="r{i}">reference {esc(c)}</option>' for i, c in enumerate(classes))
        if n_known
        else ""
    )
    disabled = "" if n_known else " disabled"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"{PAGE_MARK.decode()}{esc(record)}</title><style>{STYLE}</style>",
            f'<script charset="utf-8">{get_plotlyjs()}</script></head>',
            "<body><header>",
            f"<h1>{esc(record)}</h1>",
            f'<p class="facts">{" · ".join(facts)}</p>',
            summary_html(classes, predicted, reference, colors),
            "</header>",
            '<div class="controls">',
            f'<span class="group"><button id="prev-dis"{disabled}>&#9664;</button>'
            f'<span>disagreement</span><button id="next-dis"{disabled}>&#9654;</button></span>',
            '<span class="group"><select id="which" aria-label="beats to step through">'
            f'{options}</select><button id="prev-cls">&#9664;</button><span>beat</span>'
            '<button id="next-cls">&#9654;</button></span>',
            '<span class="group">window <button data-span="10">10 s</button>'
            '<button data-span="60">1 min</button><button data-span="0">all</button></span>',
            '<span id="status" aria-live="polite"></span>',
            "</div>",
            '<div id="ecg"></div>',
            '<p class="help">Drag to zoom in time, scroll to zoom, shift-drag or the pan tool to '
            "move, double-click for the whole record; click a beat to centre 10 s on it. Keys: "
            "n / p next / previous disagreement; open the page as page.html#t=600-610 to start "
            "at 10:00–10:10. The full signal is drawn once the window is "
            f"{FULL_RESOLUTION_S:g} s or shorter (a min/max envelope before).</p>",
            f'<script type="application/json" id="beatlab-data">{payload}</script>',
            f"<script>{SCRIPT}</script>",
            "</body></html>",
        ]
    )


def page_for(predictions: Predictions, path: Path, run_name: str) -> str:
    """The page of a record's predictions (`beatlab.deploy.predict.predict_record`), with the
    lead they were made on read from the record at `path`."""
    from beatlab.data.recordings import record_base

    if predictions.sample is None or predictions.fs is None or predictions.lead is None:
        raise BeatlabError("the page shows beats of a WFDB record, not of a beat file", path)
    base = record_base(path)
    return build_page(
        record=f"{base.parent.name}/{base.name}" if base.parent.name else base.name,
        run_name=run_name,
        classes=predictions.classes,
        proba=predictions.proba,
        reference=predictions.reference,
        sample=predictions.sample,
        fs=predictions.fs,
        lead=predictions.lead,
        source=predictions.source,
        trace=read_trace(path, predictions.lead.split(CHANNEL_SEPARATOR)[0]),  # the first lead
        matched_against=predictions.matched_against,
    )


def write_page(page: str, out: Path) -> None:
    """Write atomically: a failed write leaves no half-written page (and any old one intact)."""
    with writing(out) as tmp:
        tmp.write_text(page, encoding="utf-8")


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; color: #222; margin: 0; background: #fff; }
header { padding: .6em 1.2em 0; }
h1 { font-size: 20px; margin: .2em 0; }
.facts { margin: .2em 0 .5em; color: #444; }
table.summary { border-collapse: collapse; font-size: 13px; margin-bottom: .4em; }
table.summary th, table.summary td { border: 1px solid #d5d8de; padding: .15em .6em; }
table.summary th { background: #eef1f5; }
table.summary td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.summary tr.total td { font-weight: 600; }
.chip { display: inline-block; width: .8em; height: .8em; border-radius: 50%;
        margin-right: .4em; vertical-align: -1px; }
.controls { display: flex; flex-wrap: wrap; gap: .4em 1.2em; align-items: center;
            padding: .4em 1.2em; border-top: 1px solid #e3e5e9; border-bottom: 1px solid #e3e5e9;
            background: #f7f8fa; }
.controls .group { display: inline-flex; gap: .3em; align-items: center; }
.controls button, .controls select { font: inherit; padding: .1em .5em; }
#status { color: #333; font-variant-numeric: tabular-nums; }
#ecg { width: 100%; height: 560px; }
.help { color: #666; font-size: 12px; padding: 0 1.2em; }
"""

SCRIPT = r"""
(() => {
  "use strict";
  const D = JSON.parse(document.getElementById("beatlab-data").textContent);
  const gd = document.getElementById("ecg");
  const status = document.getElementById("status");
  const raw = (b64) => {
    const s = atob(b64), out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out.buffer;
  };
  const codes = new Int16Array(raw(D.signal));
  const n = codes.length, fs = D.fs, duration = n / fs;
  const sig = new Float32Array(n);
  for (let i = 0; i < n; i++) sig[i] = codes[i] === -32768 ? NaN : codes[i] * D.step;
  const sample = new Int32Array(raw(D.sample));
  const pred = new Uint8Array(raw(D.predicted));
  const ref = new Int8Array(raw(D.reference));
  const proba = new Uint8Array(raw(D.proba));
  const K = D.classes.length, B = sample.length;
  const time = Float64Array.from(sample, (s) => s / fs);
  const amp = Float32Array.from(sample, (s) => {
    const v = sig[Math.min(Math.max(s, 0), n - 1)];
    return Number.isFinite(v) ? v : 0;
  });
  const clock = (t) => {
    const m = Math.floor(t / 60), s = t - 60 * m;
    return `${m}:${s.toFixed(2).padStart(5, "0")}`;
  };
  const describe = (b) => {
    const p = pred[b], r = ref[b];
    let text = `${clock(time[b])} · predicted ${D.classes[p]} (${proba[b * K + p]} %)`;
    if (r >= 0) text += ` · reference ${D.classes[r]}` + (r === p ? "" : " ✗");
    return text;
  };
  const all = [], disagreements = [];
  for (let b = 0; b < B; b++) {
    all.push(b);
    if (ref[b] >= 0 && ref[b] !== pred[b]) disagreements.push(b);
  }
  const byPred = D.classes.map((_, k) => all.filter((b) => pred[b] === k));
  const byRef = D.classes.map((_, k) => all.filter((b) => ref[b] === k));
  const hasRef = all.some((b) => ref[b] >= 0);

  // the trace for the span [t0, t1], with one span of margin each side for panning: every
  // sample up to FULL s, else per bin the min and max in their order (the exact envelope)
  const BINS = 2000;
  function lod(t0, t1) {
    const span = Math.max(t1 - t0, 1 / fs);
    const i0 = Math.max(0, Math.floor((t0 - span) * fs));
    const i1 = Math.min(n, Math.ceil((t1 + span) * fs) + 1);
    const count = Math.max(i1 - i0, 0);
    if (span <= D.fullResolutionS) {
      const x = new Float64Array(count);
      for (let i = 0; i < count; i++) x[i] = (i0 + i) / fs;
      return { x, y: sig.slice(i0, i1), full: true };
    }
    const bins = Math.min(3 * BINS, count), per = count / bins;
    const x = new Float64Array(2 * bins), y = new Float32Array(2 * bins);
    for (let b = 0, m = 0; b < bins; b++, m += 2) {
      const a = i0 + Math.floor(b * per), e = Math.min(i1, i0 + Math.floor((b + 1) * per));
      let lo = Infinity, hi = -Infinity, ilo = -1, ihi = -1;
      for (let i = a; i < e; i++) {
        const v = sig[i];
        if (v < lo) { lo = v; ilo = i; }
        if (v > hi) { hi = v; ihi = i; }
      }
      if (ilo < 0) { x[m] = x[m + 1] = a / fs; y[m] = y[m + 1] = NaN; continue; }
      const first = Math.min(ilo, ihi), second = Math.max(ilo, ihi);
      x[m] = first / fs; y[m] = sig[first]; x[m + 1] = second / fs; y[m + 1] = sig[second];
    }
    return { x, y, full: false };
  }
  function yRange(t0, t1) {
    const i0 = Math.max(0, Math.floor(t0 * fs)), i1 = Math.min(n, Math.ceil(t1 * fs) + 1);
    let lo = Infinity, hi = -Infinity;
    for (let i = i0; i < i1; i++) {
      const v = sig[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!(hi >= lo)) return [-1, 1];
    const pad = Math.max((hi - lo) * 0.12, 0.05);
    return [lo - pad, hi + 1.6 * pad];
  }
  const firstAfter = (list, t) => {  // index of the first beat of `list` later than t
    let lo = 0, hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (time[list[mid]] > t) hi = mid; else lo = mid + 1;
    }
    return lo;
  };
  function labels(t0, t1, yr) {  // class letters over the beats, for short spans only
    const x = [], y = [], text = [], color = [];
    if (t1 - t0 <= D.fullResolutionS) {
      const lift = (yr[1] - yr[0]) * 0.05;
      for (let j = firstAfter(all, t0 - (t1 - t0)); j < B && time[j] <= t1 + (t1 - t0); j++) {
        const wrong = ref[j] >= 0 && ref[j] !== pred[j];
        x.push(time[j]); y.push(amp[j] + lift);
        text.push(D.classes[pred[j]] + (wrong ? ` (ref ${D.classes[ref[j]]})` : ""));
        color.push(wrong ? D.disagree : D.colors[pred[j]]);
      }
    }
    return { x, y, text, color };
  }

  const at = (list) => ({ x: list.map((b) => time[b]), text: list.map(describe) });
  const traces = [{
    type: "scattergl", mode: "lines", name: `${D.lead} (${D.units})`, x: [], y: [],
    line: { color: "#2b2b2b", width: 1 }, hoverinfo: "skip", showlegend: false,
  }];
  D.classes.forEach((c, k) => {
    const list = byPred[k], p = at(list);
    traces.push({
      type: "scattergl", mode: "markers", name: `${c} · ${list.length}`, legendgroup: c,
      meta: "beats", x: p.x, y: list.map((b) => amp[b]), text: p.text,
      hovertemplate: "%{text}<extra></extra>",
      marker: { color: D.colors[k], size: 7, line: { width: 0.5, color: "#fff" } },
    });
  });
  const dis = at(disagreements);
  const DIS = traces.length;
  traces.push({
    type: "scattergl", mode: "markers", name: `disagreement · ${disagreements.length}`,
    legendgroup: "disagree", x: dis.x, y: disagreements.map((b) => amp[b]), text: dis.text,
    hovertemplate: "%{text}<extra></extra>", visible: hasRef ? true : "legendonly",
    marker: { color: D.disagree, size: 16, symbol: "circle-open", line: { width: 2.5 } },
  });
  const strip = (list, row, k, group) => ({
    type: "scattergl", mode: "markers", yaxis: "y2", legendgroup: group, showlegend: false,
    x: list.map((b) => time[b]), y: list.map(() => row), text: list.map(describe),
    hovertemplate: "%{text}<extra></extra>",
    marker: { color: k < 0 ? D.disagree : D.colors[k], size: 9, symbol: "line-ns-open",
              line: { width: 2, color: k < 0 ? D.disagree : D.colors[k] } },
  });
  D.classes.forEach((c, k) => traces.push(strip(byPred[k], 2, k, c)));
  D.classes.forEach((c, k) => traces.push(strip(byRef[k], 1, k, c)));
  traces.push(strip(disagreements, 0, -1, "disagree"));
  const LABELS = traces.length;
  traces.push({
    type: "scatter", mode: "text", x: [], y: [], text: [], hoverinfo: "skip",
    showlegend: false, textposition: "top center", textfont: { size: 11, color: [] },
  });
  const highlight = (t) => [{
    type: "rect", xref: "x", yref: "paper", x0: t - 0.15, x1: t + 0.15, y0: 0, y1: 1,
    fillcolor: "rgba(230, 0, 126, 0.10)", line: { width: 0 }, layer: "below",
  }];
  const layout = {
    margin: { l: 60, r: 16, t: 8, b: 40 },
    dragmode: "zoom", hovermode: "closest", uirevision: "keep",
    legend: { orientation: "h", x: 0, y: 1.0, yanchor: "bottom", title: { text: "predicted" } },
    xaxis: { title: { text: "time (s)" }, range: [0, duration], anchor: "y2",
             minallowed: 0, maxallowed: duration, showspikes: false, zeroline: false },
    yaxis: { title: { text: `${D.lead} (${D.units})` }, domain: [0.2, 1], fixedrange: true,
             zeroline: false },
    yaxis2: { domain: [0, 0.15], range: [-0.7, 2.7], fixedrange: true, zeroline: false,
              tickvals: [0, 1, 2], ticktext: ["disagree", "reference", "predicted"],
              showgrid: false },
    shapes: [],
  };
  let shown = null;  // the x range the trace was last drawn for
  function refresh(range) {
    const t0 = +range[0], t1 = +range[1];
    if (shown && Math.abs(shown[0] - t0) < 1e-9 && Math.abs(shown[1] - t1) < 1e-9) return;
    shown = [t0, t1];
    const d = lod(t0, t1), yr = yRange(t0, t1), lab = labels(t0, t1, yr);
    gd.dataset.full = d.full ? "1" : "0";
    const ring = d.full ? [16, 2.5] : [10, 1.5];  // small rings over the whole record
    return Plotly.update(
      gd,
      { x: [d.x, lab.x], y: [d.y, lab.y], text: [[], lab.text], "textfont.color": [[], lab.color] },
      { "yaxis.range": yr, "xaxis.range": [t0, t1] },
      [0, LABELS],
    ).then(() => gd.data[DIS].marker.size === ring[0] ? gd
      : Plotly.restyle(gd, { "marker.size": ring[0], "marker.line.width": ring[1] }, [DIS]));
  }
  function onRelayout(ev) {
    if (ev["xaxis.autorange"] || ev["autosize"]) return refresh([0, duration]);
    if (ev["xaxis.range[0]"] !== undefined) {
      return refresh([ev["xaxis.range[0]"], ev["xaxis.range[1]"]]);
    }
    if (Array.isArray(ev["xaxis.range"])) return refresh(ev["xaxis.range"]);
  }
  const current = () => gd.layout.xaxis.range.map(Number);
  let cursor = null;  // the beat last jumped to: stepping goes on from it while it is in view
  function show(b, what, list, j) {
    const [t0, t1] = current();
    const span = t1 - t0 <= D.fullResolutionS ? t1 - t0 : 10;
    const t = time[b];
    cursor = t;
    status.textContent = `${what} ${j + 1} of ${list.length}: ${describe(b)}`;
    return Plotly.relayout(gd, { "xaxis.range": [t - span / 2, t + span / 2],
                                 shapes: highlight(t) });
  }
  function step(list, dir, what) {
    if (!list.length) { status.textContent = `no ${what}`; return; }
    // from the beat last jumped to while it is in view; else from the middle of a short
    // window, or from the edge of a wide one (the whole record: the first one)
    const [t0, t1] = current(), wide = t1 - t0 > D.fullResolutionS;
    const c = cursor !== null && cursor >= t0 && cursor <= t1 ? cursor
      : wide ? (dir > 0 ? t0 - 1 : t1 + 1) : (t0 + t1) / 2;
    const j = dir > 0 ? firstAfter(list, c + 1e-6) : firstAfter(list, c - 1e-6) - 1;
    if (j < 0 || j >= list.length) {
      status.textContent = `no ${what} ${dir > 0 ? "after" : "before"} ${clock(c)}`;
      return;
    }
    return show(list[j], what, list, j);
  }
  const chosen = () => {
    const v = document.getElementById("which").value, k = +v.slice(1);
    return v[0] === "p"
      ? [byPred[k], `predicted ${D.classes[k]} beat`]
      : [byRef[k], `reference ${D.classes[k]} beat`];
  };
  document.getElementById("next-dis").onclick = () => step(disagreements, 1, "disagreement");
  document.getElementById("prev-dis").onclick = () => step(disagreements, -1, "disagreement");
  document.getElementById("next-cls").onclick = () => step(chosen()[0], 1, chosen()[1]);
  document.getElementById("prev-cls").onclick = () => step(chosen()[0], -1, chosen()[1]);
  document.querySelectorAll("button[data-span]").forEach((button) => {
    button.onclick = () => {
      const span = +button.dataset.span, [t0, t1] = current(), c = (t0 + t1) / 2;
      const range = span ? [Math.max(0, c - span / 2), Math.max(0, c - span / 2) + span]
                         : [0, duration];
      return Plotly.relayout(gd, { "xaxis.range": range });
    };
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.target instanceof HTMLSelectElement || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "n") step(disagreements, 1, "disagreement");
    if (ev.key === "p") step(disagreements, -1, "disagreement");
  });
  const config = { responsive: true, displaylogo: false, scrollZoom: true,
                   modeBarButtonsToRemove: ["select2d", "lasso2d", "toImage"] };
  Plotly.newPlot(gd, traces, layout, config).then(() => {
    gd.on("plotly_relayout", onRelayout);
    gd.on("plotly_click", (ev) => {
      const point = ev.points && ev.points[0];
      if (!point || point.data.meta !== "beats") return;
      const t = point.x;
      cursor = t;
      return Plotly.relayout(gd, { "xaxis.range": [t - 5, t + 5], shapes: highlight(t) });
    });
    const start = /t=([0-9.]+)(?:-([0-9.]+))?/.exec(location.hash);  // page.html#t=600-610
    if (!start) return refresh([0, duration]);
    const t0 = +start[1], t1 = start[2] ? +start[2] : t0 + 10;
    return Plotly.relayout(gd, { "xaxis.range": [t0, t1] });
  }).then(() => {
    status.textContent = hasRef
      ? `${disagreements.length} disagreements: use ▶ to step through them`
      : "no reference labels";
    gd.dataset.ready = "1";
  });
})();
"""
