"""`beatlab view`: the page of one record's classified beats, written by the CLI and opened in
headless Chromium, for annotated MIT-BIH and SVDB records, a record without annotations, and bad
input."""

from __future__ import annotations

import contextlib
import html
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wfdb
from conftest import SHARED, run_cli
from matplotlib.image import imread

from beatlab.reporting.view import MISSING, class_rows, quantise
from beatlab.training.config import TrainConfig
from beatlab.training.run import train_run

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
REAL_SVDB = SHARED / "svdb"
MAX_PAGE_BYTES = 10_000_000
MAX_PAGE_SECONDS = 5.0

PROBE = """<script>
(async () => {
  const wait = (ms) => new Promise((done) => setTimeout(done, ms));
  const gd = document.getElementById("ecg");
  for (let i = 0; i < 400 && gd.dataset.ready !== "1"; i++) await wait(50);
  const range = () => gd.layout.xaxis.range.map(Number);
  const before = range(), overview = gd.data[0].x.length, full = gd.dataset.full;
  const markers = gd.data.filter((t) => t.meta === "beats").reduce((n, t) => n + t.x.length, 0);
  const next = document.getElementById("next-dis");
  next.click();
  await wait(1000);
  const after = range(), zoomed = gd.data[0].x.length, zoomedFull = gd.dataset.full;
  const status = document.getElementById("status").textContent;
  document.getElementById("which").value = "p0";  // the first beat predicted as class 0
  document.getElementById("next-cls").click();
  await wait(500);
  const classStatus = document.getElementById("status").textContent;
  await Plotly.relayout(gd, { "xaxis.autorange": true });  // a double-click
  await wait(500);
  document.title = JSON.stringify({
    ready: gd.dataset.ready === "1", markers, before, overview, overviewFull: full,
    after, zoomed, zoomedFull, status, classStatus, reset: range(), resetFull: gd.dataset.full,
    disabled: next.disabled, canvases: gd.querySelectorAll("canvas").length,
  });
})();
</script>"""
"""Appended to a copy of a page: waits for the plot, counts the beat markers, presses "next
disagreement" and reports it all in the title, as JSON."""


def cli(*args: str) -> tuple[int, str, str]:
    """`beatlab ARGS` in-process (for module fixtures, which have no capsys): status, stdout with
    rich's line wrapping undone, stderr."""
    from beatlab.cli import main

    argv, sys.argv = sys.argv, ["beatlab", *args]
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    finally:
        sys.argv = argv
    return code, " ".join(out.getvalue().split()), err.getvalue()


def view(run: Path, record: Path, out: Path, *args: str) -> str:
    """`beatlab view`, which must succeed; what it printed."""
    code, printed, err = cli(
        "view", "--run", str(run), "--record", str(record), "--out", str(out), *args
    )
    assert code == 0, err
    return printed


def beats_written(printed: str) -> int:
    match = re.search(r"\): ([\d,]+) beats", printed)
    assert match, printed
    return int(match.group(1).replace(",", ""))


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not CHROMIUM.exists():
        setup = subprocess.run(
            ["bash", str(ROOT / "scripts" / "ensure-chromium.sh")], capture_output=True, text=True
        )
        if not CHROMIUM.exists():
            pytest.skip(f"no {CHROMIUM}, and it could not be installed: {setup.stderr.strip()}")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


def probe(page: Path, tmp_path: Path) -> dict[str, object]:
    """Open a copy of the page with PROBE appended; what PROBE found."""
    copy = tmp_path / f"probe-{page.name}"
    copy.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium(
        tmp_path / "profile",
        "--virtual-time-budget=20000",
        "--run-all-compositor-stages-before-draw",
        "--dump-dom",
        copy.as_uri(),
    ).stdout
    title = re.search(r"<title>(.*?)</title>", dom, re.DOTALL)
    assert title is not None
    return dict(json.loads(html.unescape(title.group(1))))


@pytest.fixture(scope="module")
def tiny_run(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch on 400 beats: it classifies badly, so every record has disagreements."""
    config = TrainConfig(model="cnn1d_resnet", epochs=1, limit=400, data_dir=str(real_data_dir))
    runs = tmp_path_factory.mktemp("runs")
    return train_run(config, runs, name="tiny", tracking_uri="none", progress=False)


@pytest.fixture(scope="module")
def page_208(
    tiny_run: Path, real_mitdb: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """The page of record 208 (30 minutes, 2,955 annotated beats) and what the command printed."""
    out = tmp_path_factory.mktemp("view") / "208.html"
    return out, view(tiny_run, real_mitdb / "208", out)


def test_page_of_a_30_minute_record(page_208: tuple[Path, str]) -> None:
    page, printed = page_208
    assert page.stat().st_size < MAX_PAGE_BYTES
    seconds = re.search(r"page ([\d.]+) s", printed)
    assert seconds is not None and float(seconds.group(1)) <= MAX_PAGE_SECONDS
    assert beats_written(printed) == 2955
    text = page.read_text()
    # self-contained: the bundle and the data are inline, nothing is fetched
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=", text)
    assert "<link" not in text
    assert "plotly.js v" in text
    assert "<th>Se</th><th>+P</th>" in text and "mitdb/208" in text
    assert "disagreements" in printed


def test_page_renders_and_jumps_to_disagreements(
    page_208: tuple[Path, str], tmp_path: Path
) -> None:
    page, printed = page_208
    found = probe(page, tmp_path)
    assert found["ready"] and found["canvases"], found  # scattergl drew on its WebGL canvases
    assert found["markers"] == beats_written(printed)
    before, after = found["before"], found["after"]
    assert isinstance(before, list) and isinstance(after, list)
    assert before[0] == pytest.approx(0) and before[1] == pytest.approx(1805.6, abs=0.1)
    assert after != before and after[1] - after[0] == pytest.approx(10)
    assert str(found["status"]).startswith("disagreement 1 of ")
    assert str(found["classStatus"]).startswith("predicted N beat ")
    assert found["reset"] == before and found["resetFull"] == "0"
    # overview: a min/max envelope of a few thousand points; zoomed: every sample
    assert found["overviewFull"] == "0" and found["overview"] <= 12_000
    shown = min(after[1] + 10, before[1]) - max(after[0] - 10, 0)  # one window each side
    assert found["zoomedFull"] == "1" and found["zoomed"] == pytest.approx(shown * 360, abs=2)

    shot = tmp_path / "208.png"
    chromium(
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1280,900",
        "--hide-scrollbars",
        "--virtual-time-budget=10000",
        page.as_uri() + "#t=600-610",
    )
    pixels = imread(shot)[..., :3]
    plot = pixels[330:780, 80:1250]  # the ECG panel
    dark = (plot.max(axis=-1) < 0.3).mean()
    assert 0.002 < dark < 0.3  # the trace is drawn: some dark pixels, not a black panel


def test_record_without_annotations(tiny_run: Path, real_mitdb: Path, tmp_path: Path) -> None:
    """Beats from the QRS detector, predicted classes only; nothing to step through. The first
    two minutes of record 100, written without its annotations."""
    first = wfdb.rdrecord(str(real_mitdb / "100"), sampto=120 * 360, physical=False)
    first.record_name, first.file_name = "100", ["100.dat"] * first.n_sig
    first.wrsamp(write_dir=str(tmp_path))
    page = tmp_path / "100.html"
    printed = view(tiny_run, tmp_path / "100", page)
    assert "no reference" in printed
    text = page.read_text()
    assert "no reference labels: predicted classes only" in text
    assert "<th>Se</th>" not in text
    found = probe(page, tmp_path)
    assert found["markers"] == beats_written(printed) > 100
    assert found["disabled"] is True and found["after"] == found["before"]


@pytest.mark.skipif(not REAL_SVDB.is_dir(), reason=f"no SVDB at {REAL_SVDB}")
def test_record_of_another_database(tiny_run: Path, tmp_path: Path) -> None:
    """SVDB: 128 Hz, leads ECG1 / ECG2."""
    page = tmp_path / "800.html"
    printed = view(tiny_run, REAL_SVDB / "800", page, "--lead", "ECG2")
    assert beats_written(printed) == 1883
    assert page.stat().st_size < MAX_PAGE_BYTES
    text = page.read_text()
    assert "lead ECG2 at 128 Hz, 30:00.0 long" in text and "svdb/800" in text


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("no record", "has no .hea file"),
        ("truncated record", "truncated signal file"),
        ("not a run", "no such run directory"),
        ("wrong suffix", "the page must end in .html or .htm"),
        ("directory", "is a directory"),
        ("unwritable", "cannot write"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    tiny_run: Path,
    real_mitdb: Path,
    tmp_path: Path,
    case: str,
    problem: str,
) -> None:
    run, record, out = tiny_run, real_mitdb / "100", tmp_path / "out" / "page.html"
    if case == "no record":
        record = tmp_path / "nowhere" / "999"
    elif case == "truncated record":
        shutil.copy(real_mitdb / "100.hea", tmp_path / "100.hea")
        (tmp_path / "100.dat").write_bytes((real_mitdb / "100.dat").read_bytes()[:1000])
        record = tmp_path / "100"
    elif case == "not a run":
        run = tmp_path / "no-run"
    elif case == "wrong suffix":
        out = tmp_path / "out" / "page.txt"
    elif case == "directory":
        out = tmp_path / "out" / "page.html"
        out.mkdir(parents=True)
    else:  # its folder would have to be made inside a regular file
        (tmp_path / "out").write_text("a file")
        out = tmp_path / "out" / "page.html"
    args = ["view", "--run", str(run), "--record", str(record), "--out", str(out)]
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert err.startswith("beatlab: error: ") and problem in err and err.count("\n") == 1
    if case != "directory":
        assert not out.exists()
    if out.parent.is_dir():  # nothing half-written beside it either
        assert [p.name for p in out.parent.iterdir()] == (
            ["page.html"] if case == "directory" else []
        )


def test_quantise_keeps_the_recorded_values() -> None:
    """A step of 1/gain gives back MIT-BIH's digital values exactly; invalid samples become gaps;
    a range too wide for int16 at that step gets a coarser step, within half a step."""
    digital = np.array([-1024, -3, 0, 5, 1023])
    signal = np.r_[(digital - 24) / 200.0, np.nan]
    codes, step = quantise(signal, 200.0)
    assert step == pytest.approx(1 / 200)
    assert codes.dtype == np.int16 and codes.tolist() == [*(digital - 24).tolist(), MISSING]
    wide = np.linspace(-400.0, 400.0, 1001)
    codes, step = quantise(wide, 200.0)
    assert step > 1 / 200 and np.abs(codes * step - wide).max() <= step / 2 + 1e-12


def test_class_rows_say_na_where_nothing_to_count() -> None:
    """Se needs reference beats of the class, +P predicted beats with a reference."""
    classes = ("N", "S", "V")
    predicted = np.array([0, 0, 2, 2, 0])
    reference = np.array([0, 2, 2, -1, -1])
    rows = {r["class"]: r for r in class_rows(classes, predicted, reference)}
    assert rows["N"] == {"class": "N", "predicted": 3, "reference": 1, "Se": 1.0, "+P": 0.5}
    assert rows["S"]["Se"] is None and rows["S"]["+P"] is None
    assert rows["V"]["Se"] == 0.5 and rows["V"]["+P"] == 1.0
