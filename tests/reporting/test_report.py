"""`beatlab report`: the tables and figures of a tiny real run and tiny experiments, as HTML and
Markdown, and the HTML as a browser shows it."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from fake_experiments import TRIALS, TUNED, make_experiment
from matplotlib.image import imread

import beatlab.data
from beatlab.reporting import write_report
from beatlab.reporting.sources import show
from beatlab.training.config import TrainConfig
from beatlab.training.data import dataset_for
from beatlab.training.ensemble import build_ensemble
from beatlab.training.run import evaluate_run, train_run

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
PNG = b"\x89PNG\r\n\x1a\n"
STUDY_HEADER = (
    "| input | model | iterations | accuracy | recall macro | batch | hidden | dropout | "
    "num_layers | num_blocks | factor | gru_hidden | training set |"
)
RUN_FIGURES = 2 + 5  # confusion matrices, learning curves, typical beats of each class


@pytest.fixture(scope="session")
def tiny_run(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch on 400 beats, evaluated on 2,000 test beats: a complete run directory."""
    config = TrainConfig(model="cnn1d_resnet", epochs=1, limit=400, data_dir=str(real_data_dir))
    ds = dataset_for(config)
    ds.test = ds.test.take(np.sort(np.random.default_rng(0).choice(len(ds.test), 2000, False)))
    runs = tmp_path_factory.mktemp("runs")
    run_dir = train_run(config, runs, name="tiny", tracking_uri="none", progress=False, dataset=ds)
    evaluate_run(run_dir, "test", dataset=ds, tracking_uri="none")
    return run_dir


@pytest.fixture(scope="session")
def report_dir(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the tiny run and of an experiment whose best run is (a copy of) it."""
    root = tmp_path_factory.mktemp("reported")
    experiment = make_experiment(root / "exp", best_run=tiny_run)
    write_report([tiny_run, experiment], root / "report")
    return root / "report"


def images(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', html)


def linked_figures(markdown: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)


def test_report_has_the_studys_tables_and_figures(report_dir: Path) -> None:
    html = (report_dir / "report.html").read_text()
    md = (report_dir / "report.md").read_text()
    for title in (
        "Best configurations",
        "Test results",
        "Run tiny",
        "Architecture",
        "Per-class metrics (test)",
        "Confusion matrix (test)",
        "Typical and misclassified beats (test)",
        "Learning curves",
        "Experiment exp",
        "Search space",
        "Trials",
        "recall macro versus each tuned hyperparameter",
        "Parallel coordinates",
        "Architecture of the best configuration",
        "Provenance",
        "Database",
        "Data",
        "Package versions",
    ):
        assert re.search(rf"<h[23][^>]*>{re.escape(title)}</h[23]>", html), title
        assert re.search(rf"^##+ {re.escape(title)}$", md, re.MULTILINE), title

    # the architecture table comes from the model object, the best configuration from the trials
    assert "| stem | Conv1d | 1 × 32 × 187 | 192 |" in md
    assert "| total |  |  | 55,013 |" in md
    assert STUDY_HEADER in md
    assert md.count("| class | Se | +P | F1 | Sp | support |") == 2  # the run, the best of exp
    assert "| gru_hidden | choice | 32, 64, 128, 256, 512 |" in md
    assert "| factor | uniform | 0.1 – 0.4 |" in md
    assert "| num_blocks | randint | 1 – 5 |" in md
    assert "| hidden | fixed | 64 |" in md
    assert f"best {TRIALS} of {TRIALS} trials by recall macro" in md

    # every figure: a PNG inlined in the HTML and a file linked from the Markdown
    expected = RUN_FIGURES + len(TUNED) + 1 + RUN_FIGURES
    sources = images(html)
    assert len(sources) == expected
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    assert "<link" not in html and "<script" not in html
    files = linked_figures(md)
    assert len(files) == len(set(files)) == expected
    assert all((report_dir / f).read_bytes()[:8] == PNG for f in files)

    # provenance: the database and its checksums, the split, the packages
    shipped = Path(beatlab.data.__file__).parent / "mitdb_sha256sums.txt"
    digest = hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert "MIT-BIH Arrhythmia Database v1.0.0" in md
    assert f"| SHA-256 of the checksum list | {digest} |" in md
    assert "| used by | tiny, exp |" in md  # exp's best run shares the tiny run's cache
    assert "| source files | 144 |" in md
    assert f"| SHA-256 of their checksums | {digest} |" in md
    assert "| matches the checksum list | yes |" in md
    assert "| tiny | mitdb | intra | – | – | none | 0 | 400 |" in md
    assert f"| torch | {torch.__version__} | {torch.__version__} |" in md
    cpu = torch.backends.cpu.get_cpu_capability()  # what a seed's sums depend on, beside torch
    assert f"| CPU kernels (torch) | {cpu} | {cpu} |" in md


def test_experiment_in_ray_tune_names_without_best_run(tmp_path: Path) -> None:
    """Tolerant reading: Ray's column names, no best_run/; the architecture is built from
    best_config, the per-class table comes from the summary's test metrics. Same input, same
    report, byte for byte."""
    experiment = make_experiment(tmp_path / "ray", best_run=None, ray_names=True)
    write_report([experiment], tmp_path / "a")
    write_report([experiment], tmp_path / "b")
    md = (tmp_path / "a" / "report.md").read_text()

    assert STUDY_HEADER in md
    header = next(line for line in md.splitlines() if line.startswith("| rank |"))
    assert header.startswith("| rank | trial_id | iterations | accuracy | recall macro | batch |")
    assert "optimizer" in header
    recall = header.split(" | ").index("recall macro")
    recalls = [
        float(line.split(" | ")[recall]) for line in md.splitlines() if re.match(r"\| \d+ \|", line)
    ]
    assert len(recalls) == TRIALS and recalls == sorted(recalls, reverse=True)
    assert "| gru | GRU |" in md
    assert md.count("| class | Se | +P | F1 | Sp | support |") == 1
    assert len(linked_figures(md)) == len(TUNED) + 1 + 1  # + parallel + confusion
    assert (tmp_path / "a" / "report.html").read_bytes() == (
        tmp_path / "b" / "report.html"
    ).read_bytes()


def test_cli_writes_the_report_and_prints_its_path(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "report", str(tiny_run), "--out", str(out))
    assert code == 0, err
    assert f"report: {out / 'report.html'}" in stdout
    assert len(images((out / "report.html").read_text())) == RUN_FIGURES
    assert len(linked_figures((out / "report.md").read_text())) == RUN_FIGURES


def test_an_ensemble_is_reported_with_its_members_best_epochs_and_beats(
    tiny_run: Path, tmp_path: Path
) -> None:
    """An ensemble trained no epochs itself: its run line gives each member's best epoch and
    beats, in the members' order (members of other folds train on other patients), not "best
    epoch – of –"."""
    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    info = json.loads((other / "run.json").read_text())
    first = (info["train_beats"], info["valid_beats"])
    (other / "run.json").write_text(
        json.dumps({**info, "best_epoch": 7, "train_beats": 1234, "valid_beats": 56})
    )
    ensemble = build_ensemble([tiny_run, other], tmp_path / "runs", "ens")
    write_report([ensemble], tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "cnn1d_resnet, ensemble of 2 runs (best epochs 1, 7), trained in" in md
    assert f"on {first[0]:,} / 1,234 beats (validation: {first[1]:,} / 56)" in md
    assert "best epoch –" not in md
    # a row per member, and their shared architecture's layers once, not once per member
    assert "| member | model | lead | parameters | settings |" in md
    assert re.search(r"^\| 1 \| cnn1d_resnet \| 1 \| 55,013 \| use_rr=False", md, re.MULTILINE)
    assert "*members 0, 1 (cnn1d_resnet): output shapes for a batch of one beat*" in md
    assert md.count("| stem | Conv1d | 1 × 32 × 187 | 192 |") == 1
    assert "members.1." not in md


def test_what_evaluation_said_of_the_classification_is_in_the_report(
    tiny_run: Path, tmp_path: Path
) -> None:
    """A test part classified through the AF gate: the report says how many beats it moved,
    beside the figures it changed, as `evaluate` printed it."""
    run = tmp_path / "gated"
    shutil.copytree(tiny_run, run)
    metrics = json.loads((run / "metrics.json").read_text())
    note = "12 beats in atrial fibrillation by their R-R intervals: their S probability given to N"
    metrics["test"]["note"] = note
    (run / "metrics.json").write_text(json.dumps(metrics))
    write_report([run], tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    figures = r"beats: accuracy [\d.]+, recall macro [\d.]+, f1 macro [\d.]+\. "
    assert re.search(figures + re.escape(f"{note}."), md)


def test_an_ensembles_best_configuration_row_gives_each_members_value_where_they_differ(
    tiny_run: Path, tmp_path: Path
) -> None:
    """The ensemble's own config is its first member's: the study's columns show a value the
    members share once, and each member's where they differ, not the first member's alone."""
    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    config = json.loads((other / "config.json").read_text())
    config["hparams"]["dropout"] = 0.5
    (other / "config.json").write_text(json.dumps(config))
    ensemble = build_ensemble([tiny_run, other], tmp_path / "runs", "ens")
    write_report([ensemble], tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    lines = md.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("| input | model |"))
    header, row = lines[at], lines[at + 2]
    cells = dict(zip(header.split("|"), row.split("|"), strict=True))
    first = json.loads((tiny_run / "config.json").read_text())
    assert cells[" dropout "].strip() == f"{show(first['hparams']['dropout'])}, 0.5"
    assert cells[" batch "].strip() == str(first["batch_size"])


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        (None, "no such directory"),
        ({}, "neither a run (config.json, run.json) nor an experiment (results.csv)"),
        ({"results.csv": ""}, "unreadable results table"),
        ({"results.csv": "batch,hidden\n16,64\n"}, "no metric column (recall macro, accuracy)"),
        ({"results.csv": "accuracy\n0.9\n", "space.toml": "x = ["}, "does not parse"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    files: dict[str, str] | None,
    problem: str,
) -> None:
    source = tmp_path / "src"
    if files is not None:
        source.mkdir()
        for name, text in files.items():
            (source / name).write_text(text)
    code, _, err = run_cli(capsys, "report", str(source), "--out", str(tmp_path / "out"))
    assert code == 2
    assert err.startswith("beatlab: error: ") and problem in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


CHECK_IMAGES = """<script>
addEventListener("load", () => {
  const shown = [...document.querySelectorAll("figure img")];
  const ok = shown.filter((img) => img.complete && img.naturalWidth > 0).length;
  const control = document.getElementById("broken").naturalWidth > 0 ? "loaded" : "broken";
  document.title = `images ${ok}/${shown.length} loaded; control ${control}`;
});
</script><img id="broken" src="data:image/png;base64,AAAA">"""
"""Appended to a copy of the page: reports in the title how many figures decoded; the control
image, which cannot decode, shows that a failure would be seen."""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    return subprocess.run(
        [str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=90, check=True
    )


def test_report_opens_in_chromium(report_dir: Path, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        setup = subprocess.run(
            ["bash", str(ROOT / "scripts" / "ensure-chromium.sh")], capture_output=True, text=True
        )
        if not CHROMIUM.exists():
            pytest.skip(f"no {CHROMIUM}, and it could not be installed: {setup.stderr.strip()}")
    html = (report_dir / "report.html").read_text()
    expected = len(images(html))
    page = tmp_path / "check.html"
    page.write_text(html.replace("</body>", CHECK_IMAGES + "</body>"))
    dom = chromium(
        tmp_path,
        "--run-all-compositor-stages-before-draw",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    ).stdout
    title = re.search(r"<title>(.*?)</title>", dom)
    assert title is not None
    assert title.group(1) == f"images {expected}/{expected} loaded; control broken"

    shot = tmp_path / "report.png"
    chromium(
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1280,1600",
        "--hide-scrollbars",
        (report_dir / "report.html").as_uri(),
    )
    pixels = imread(shot)
    assert pixels.shape[:2] == (1600, 1280)
    assert np.std(pixels[..., :3]) > 0.05  # a rendered page, not a blank one
