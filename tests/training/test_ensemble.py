"""`beatlab ensemble`: finished runs joined into one run that every command takes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
import wfdb
from conftest import run_cli, write_record

from beatlab.errors import BeatlabError
from beatlab.models import plain_decisions
from beatlab.models.ensemble import MeanEnsemble
from beatlab.training.config import TrainConfig
from beatlab.training.ensemble import ensemble_config, members_arithmetic
from beatlab.training.runs import Run, load_run

pytestmark = pytest.mark.usefixtures("one_thread")


def train(
    capsys: pytest.CaptureFixture[str], root: Path, runs: Path, name: str, *sets: str
) -> Path:
    code, _, err = run_cli(
        capsys,
        *("train", "--data-dir", str(root), "--runs-dir", str(runs), "--name", name),
        *("--epochs", "1", "--tracking-uri", "none", "--set", "use_rr=true"),
        *(arg for s in sets for arg in ("--set", s)),
    )
    assert code == 0, err
    return runs / name


def test_ensemble_averages_its_members_and_runs_like_a_run(
    tiny_mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, runs = tiny_mitdb.parent, tmp_path / "runs"
    a = train(capsys, root, runs, "a")
    b = train(capsys, root, runs, "b", "lr=0.003", "augment_noise=0.02")
    code, out, err = run_cli(
        capsys, "ensemble", str(a), str(b), "--name", "e", "--runs-dir", str(runs)
    )
    assert code == 0, err
    assert "ensemble of 2 runs" in out
    e = runs / "e"
    members = json.loads((e / "run.json").read_text())["members"]
    assert [m["run"] for m in members] == [str(a), str(b)]
    assert [m["config"]["lr"] for m in members] == [0.001, 0.003]
    infos = [json.loads((r / "run.json").read_text()) for r in (a, b, e)]
    assert infos[2]["arithmetic"] == infos[0]["arithmetic"] == infos[1]["arithmetic"]

    beats, rr = torch.rand(8, 187), 0.5 + torch.rand(8, 3)
    with torch.no_grad():
        mean = sum(load_run(r).model(beats, rr).softmax(dim=1) for r in (a, b)) / 2
        joined = load_run(e).model(beats, rr).softmax(dim=1)
    torch.testing.assert_close(joined, mean)

    code, _, err = run_cli(capsys, "evaluate", str(e))
    assert code == 0, err
    assert "test" in json.loads((e / "metrics.json").read_text())
    code, _, err = run_cli(capsys, "evaluate", str(e), "--split", "valid")
    assert code == 2 and "not held out from all of them" in err
    out_csv = tmp_path / "p.csv"
    args = ("predict", "--run", str(e), "--record", str(tiny_mitdb / "100"), "--out", str(out_csv))
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    assert len(out_csv.read_text().splitlines()) == 26
    code, _, err = run_cli(capsys, "export", "--run", str(e), "--out", str(tmp_path / "e.onnx"))
    assert code == 0, err
    assert (tmp_path / "e.onnx").is_file()


def test_ensemble_says_on_what_arithmetic_its_members_were_drawn() -> None:
    """Members trained on other CPUs or threads: their values joined, for the report; a member
    from before runs kept its arithmetic: nothing claimed."""

    def run(**sums: Any) -> Run:
        return cast(Run, SimpleNamespace(info={"arithmetic": sums} if sums else {}))

    same = {"torch": "2.13.0+cpu", "cpu": "AVX2", "threads": 2}
    assert members_arithmetic([run(**same), run(**same)]) == {"arithmetic": same}
    other = {**same, "cpu": "AVX512", "threads": 1}
    assert members_arithmetic([run(**same), run(**other), run(**same)]) == {
        "arithmetic": {"torch": "2.13.0+cpu", "cpu": "AVX2, AVX512", "threads": "2, 1"}
    }
    assert members_arithmetic([run(**same), run()]) == {}


def test_members_weigh_in_the_mean_as_given(
    tiny_mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--member-weights 3,1`: a's probabilities count three times b's, in PyTorch, after a
    reload and in the ONNX export; a weight per run, each above 0, or one line."""
    import onnxruntime as ort

    root, runs = tiny_mitdb.parent, tmp_path / "runs"
    a = train(capsys, root, runs, "a")
    b = train(capsys, root, runs, "b", "lr=0.003", "augment_noise=0.02")
    args = ("ensemble", str(a), str(b), "--runs-dir", str(runs), "--name")
    code, out, err = run_cli(capsys, *args, "w", "--member-weights", "3,1")
    assert code == 0, err
    assert "members weighted 3, 1" in out
    w = runs / "w"
    assert json.loads((w / "run.json").read_text())["member_weights"] == [3.0, 1.0]
    beats, rr = torch.rand(8, 187), 0.5 + torch.rand(8, 3)
    with torch.no_grad():
        pa, pb = (load_run(r).model(beats, rr).softmax(dim=1) for r in (a, b))
        joined = load_run(w).model(beats, rr).softmax(dim=1)
    torch.testing.assert_close(joined, (3 * pa + pb) / 4)
    assert load_run(w).model.hparams["member_weights"] == [3.0, 1.0]
    over_leads = MeanEnsemble([load_run(r).model for r in (a, b)], (), [0, 1], [3.0, 1.0])
    assert over_leads.reading([1]).weights == [1.0]  # a record with b's lead only
    code, _, err = run_cli(capsys, "export", "--run", str(w), "--out", str(tmp_path / "w.onnx"))
    assert code == 0, err
    session = ort.InferenceSession(str(tmp_path / "w.onnx"))
    (logits,) = session.run(None, {"beats": beats.numpy(), "rr": rr.numpy()})
    torch.testing.assert_close(torch.from_numpy(logits).softmax(dim=1), joined)
    for weights, problem in [
        ("3", "--member-weights: 1 weights for 2 runs: give one above 0 per run"),
        ("1,0", "--member-weights: 2 weights for 2 runs: give one above 0 per run"),
        ("1,x", "--member-weights: expected comma-separated numbers, got '1,x'"),
    ]:
        code, _, err = run_cli(capsys, *args, "bad", "--member-weights", weights)
        assert code == 2 and problem in err and len(err.strip().splitlines()) == 1, err
        assert not (runs / "bad").exists()


def test_members_that_do_not_fit_together_are_refused(
    tiny_mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, runs = tiny_mitdb.parent, tmp_path / "runs"
    a = train(capsys, root, runs, "a")
    seed = train(capsys, root, runs, "seed", "seed=1")  # intra: another test part
    other = train(capsys, root, runs, "other", "layout=deviation")
    cases = [
        ((a, seed), "seed.*differs from a in seed"),
        ((a, other), "differs from a in layout"),
        ((a,), "needs two or more runs"),
        ((a, a), "the same run is given twice"),
        ((a, tmp_path / "none"), "no such run directory"),
    ]
    for members, problem in cases:
        code, _, err = run_cli(
            capsys, "ensemble", *map(str, members), "--name", "x", "--runs-dir", str(runs)
        )
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert re.search(problem, err), err
    assert not (runs / "x").exists()
    b = train(capsys, root, runs, "b", "lr=0.003")
    code, _, err = run_cli(
        capsys, "ensemble", str(a), str(b), "--name", "e", "--runs-dir", str(runs)
    )
    assert code == 0, err
    code, _, err = run_cli(
        capsys, "ensemble", str(runs / "e"), str(a), "--name", "y", "--runs-dir", str(runs)
    )
    assert code == 2 and "is an ensemble already" in err
    code, _, err = run_cli(
        capsys, "ensemble", str(a), str(b), "--name", "e", "--runs-dir", str(runs)
    )
    assert code == 2 and "already exists" in err
    code, _, err = run_cli(
        capsys,
        *("train", "--data-dir", str(root), "--runs-dir", str(runs), "--name", "t"),
        *("--epochs", "1", "--tracking-uri", "none", "--init-from", str(runs / "e")),
    )
    assert code == 2 and "is an ensemble; --init-from takes one of its members" in err


def test_patient_wise_members_may_differ_in_seed_and_fold() -> None:
    """With `inter` every member only ever saw DS1, so seeds and folds may differ and the
    ensemble is tested on DS2; elsewhere they fix the test part and must agree."""
    inter = TrainConfig(split="inter", layout="deviation_median_rr", hparams={"use_rr": True})
    members = [inter.updated({"seed": 1}), inter.updated({"folds": 5, "fold": 3})]
    joined = ensemble_config([inter, *members], [Path("a"), Path("b"), Path("c")])
    assert (joined.folds, joined.fold, joined.split) == (None, 0, "inter")
    intra = TrainConfig(split="intra")
    with pytest.raises(BeatlabError, match="differs from a in seed"):
        ensemble_config([intra, intra.updated({"seed": 1})], [Path("a"), Path("b")])
    with pytest.raises(BeatlabError, match="differs from a in layout"):
        ensemble_config([inter, inter.updated({"layout": "deviation"})], [Path("a"), Path("b")])


def test_ensemble_decides_with_its_own_weights_on_its_members_plain_mean(
    tiny_mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Members weighted S x3 average into an ensemble weighted S x4: the weight applies once, to
    the mean of the members' plain probabilities (what patient_cv.py --weigh --mean-of measures)."""
    root, runs = tiny_mitdb.parent, tmp_path / "runs"
    a = train(capsys, root, runs, "a", "decision_weights=[1,3,1,1,1]")
    b = train(capsys, root, runs, "b", "decision_weights=[1,3,1,1,1]", "lr=0.003")
    args = ("ensemble", str(a), str(b), "--runs-dir", str(runs), "--name")
    code, out, err = run_cli(capsys, *args, "e", "--decision-weights", "1, 4, 1, 1, 1")
    assert code == 0, err
    assert "deciding with S ×4" in out
    assert json.loads((runs / "e" / "config.json").read_text())["hparams"]["decision_weights"] == [
        1,
        4,
        1,
        1,
        1,
    ]
    beats, rr = torch.rand(8, 187), 0.5 + torch.rand(8, 3)
    members = [load_run(r).model for r in (a, b)]
    with torch.no_grad():
        plain = []
        for member in members:
            member.decide = False
            plain.append(member(beats, rr).softmax(dim=1))
        weighted = (plain[0] + plain[1]) / 2 * torch.tensor([1.0, 4.0, 1.0, 1.0, 1.0])
        joined = load_run(runs / "e").model(beats, rr).softmax(dim=1)
    torch.testing.assert_close(joined, weighted / weighted.sum(dim=1, keepdim=True))

    code, out, err = run_cli(capsys, *args, "same")
    assert code == 0, err
    assert "deciding with S ×3" in out  # by default the members' weights
    code, out, err = run_cli(capsys, *args, "plain", "--decision-weights", "")
    assert code == 0, err
    assert "deciding" not in out and "atrial fibrillation" not in out
    gates = {}
    for name, flag in (("gate", "--af-gate"), ("off", "--no-af-gate")):
        code, out, err = run_cli(capsys, *args, name, flag)
        assert code == 0, err
        gates[name] = json.loads((runs / name / "config.json").read_text())["af_gate"]
        assert ("no beat is called S in atrial fibrillation" in out) == gates[name]
    assert gates == {"gate": True, "off": False} and not load_run(runs / "plain").config.af_gate
    for given, problem in (
        ("1,4", "2 weights for 5 classes"),
        ("1,0,1,1,1", "above 0"),
        ("1,x", "expected comma-separated numbers, got '1,x'"),
    ):
        code, _, err = run_cli(capsys, *args, "bad", "--decision-weights", given)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert problem in err and "--decision-weights" in err, err
    assert not (runs / "bad").exists()


def test_members_on_different_leads_read_one_lead_each(
    tiny_mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, runs = tiny_mitdb.parent, tmp_path / "runs"
    aligned = "layout=deviation_aligned"  # moves each lead's peaks on its own: R-R per lead
    a = train(capsys, root, runs, "a", aligned)  # the database's preferred lead: MLII
    b = train(capsys, root, runs, "b", aligned, "lead=V2,V1")  # the first each record has
    code, _, err = run_cli(
        capsys, "ensemble", str(a), str(b), "--name", "e", "--runs-dir", str(runs)
    )
    assert code == 0, err
    e = runs / "e"
    assert json.loads((e / "run.json").read_text())["channels"] == [0, 1]
    assert load_run(e).config.lead == "|V2,V1"

    beats, rr = torch.rand(8, 2, 187), 0.5 + torch.rand(8, 2, 3)
    with torch.no_grad():
        models = [load_run(r).model for r in (a, b)]
        mean = sum(m(beats[:, i], rr[:, i]).softmax(dim=1) for i, m in enumerate(models)) / 2
        joined = load_run(e).model(beats, rr).softmax(dim=1)
    torch.testing.assert_close(joined, mean)

    code, _, err = run_cli(capsys, "evaluate", str(e))
    assert code == 0, err
    code, _, err = run_cli(capsys, "report", str(e), "--out", str(tmp_path / "report"))
    assert code == 0, err
    page = tmp_path / "page.html"
    code, _, err = run_cli(
        capsys, "view", "--run", str(e), "--record", str(tiny_mitdb / "100"), "--out", str(page)
    )
    assert code == 0 and "MLII|V1" in page.read_text(), err
    tables, said = {}, {}
    for run in (a, b, e):
        out_csv = tmp_path / f"{run.name}.csv"
        args = ("predict", "--run", str(run), "--record", str(tiny_mitdb / "100"))
        code, said[run.name], err = run_cli(capsys, *args, "--out", str(out_csv))
        assert code == 0, err
        tables[run.name] = pd.read_csv(out_csv)
    assert "lead V1," in said["b"] and "lead MLII|V1," in said["e"], said
    columns = [c for c in tables["e"] if c.startswith("p_")]
    expected = (tables["a"][columns] + tables["b"][columns]) / 2
    np.testing.assert_allclose(tables["e"][columns], expected, atol=1e-5)

    onnx_file = tmp_path / "e.onnx"
    code, _, err = run_cli(capsys, "export", "--run", str(e), "--out", str(onnx_file))
    assert code == 0, err
    args = ("predict", "--run", str(e), "--record", str(tiny_mitdb / "100"), "--onnx")
    code, _, err = run_cli(capsys, *args, str(onnx_file), "--out", str(tmp_path / "o.csv"))
    assert code == 0, err
    np.testing.assert_allclose(
        pd.read_csv(tmp_path / "o.csv")[columns], tables["e"][columns], atol=1e-4
    )
    code, _, err = run_cli(
        capsys,
        "predict",
        "--run",
        str(a),
        "--record",
        str(tiny_mitdb / "100"),
        "--onnx",
        str(onnx_file),
        "--out",
        str(tmp_path / "x.csv"),
    )
    assert code == 2 and "beat_shape" in err, err
    old = tmp_path / "old.onnx"  # exported before each lead had its own R-R: (batch, 3)
    proto = onnx.load(str(onnx_file))
    meta = json.loads(proto.metadata_props[0].value)
    del meta["rr_shape"]
    onnx.helper.set_model_props(proto, {"beatlab": json.dumps(meta)})
    onnx.save(proto, str(old))
    code, _, err = run_cli(capsys, *args[:5], "--onnx", str(old), "--out", str(tmp_path / "p.csv"))
    assert code == 2 and "'rr_shape': [3]" in err and "'rr_shape': [2, 3]" in err, err

    code, _, err = run_cli(capsys, *args[:5], "--lead", "MLII", "--out", str(tmp_path / "l.csv"))
    assert code == 2 and "reads 2 lead(s)" in err and "joined by '|'" in err, err
    # a record without the second lead: the members that read the first classify it
    write_record("102", tiny_mitdb, np.random.default_rng(1), leads=("MLII", "V5"))
    one_lead = ("predict", "--record", str(tiny_mitdb / "102"))
    code, said_e, err = run_cli(
        capsys, *one_lead, "--run", str(e), "--out", str(tmp_path / "m.csv")
    )
    assert code == 0, err
    assert "none of the leads V2, V1: classified by the 1 of the ensemble's 2 members" in said_e
    assert "lead MLII," in said_e
    code, _, err = run_cli(capsys, *one_lead, "--run", str(a), "--out", str(tmp_path / "a.csv"))
    assert code == 0, err
    np.testing.assert_allclose(
        pd.read_csv(tmp_path / "m.csv")[columns],
        pd.read_csv(tmp_path / "a.csv")[columns],
        atol=1e-6,
    )
    code, _, err = run_cli(
        capsys,
        *one_lead,
        "--run",
        str(e),
        "--onnx",
        str(onnx_file),
        "--out",
        str(tmp_path / "n.csv"),
    )
    assert code == 2 and "record 102 has none of the leads V2, V1" in err, err
    assert not (tmp_path / "n.csv").exists()
    # a second lead that holds no valid sample (off for the whole recording) is as good as none
    rec = wfdb.rdrecord(str(tiny_mitdb / "102"), physical=False)
    off = rec.d_signal.copy()
    off[:, 1] = -2048  # format 212's invalid sample
    wfdb.wrsamp(
        "103", 360, rec.units, ["MLII", "V1"], d_signal=off, fmt=rec.fmt,
        adc_gain=rec.adc_gain, baseline=rec.baseline, write_dir=str(tiny_mitdb),
    )  # fmt: skip
    shutil.copy(tiny_mitdb / "102.atr", tiny_mitdb / "103.atr")
    lead_off = ("predict", "--record", str(tiny_mitdb / "103"), "--run", str(e))
    code, said_off, err = run_cli(capsys, *lead_off, "--out", str(tmp_path / "off.csv"))
    assert code == 0, err
    assert "the record (lead V1 off) has none of the leads V2, V1: classified by the 1" in said_off
    np.testing.assert_allclose(
        pd.read_csv(tmp_path / "off.csv")[columns],
        pd.read_csv(tmp_path / "a.csv")[columns],
        atol=1e-6,
    )
    code, _, err = run_cli(
        capsys, *lead_off, "--onnx", str(onnx_file), "--out", str(tmp_path / "p.csv")
    )
    assert code == 2 and err.strip().endswith("103.dat: lead V1 holds no valid samples"), err
    # the second lead off for the first 8 s only: the beats there are classified by the member
    # reading MLII, as in a one-lead record, rather than left out
    off = rec.d_signal.copy()
    off[: 8 * 360, 1] = -2048
    wfdb.wrsamp(
        "104", 360, rec.units, ["MLII", "V1"], d_signal=off, fmt=rec.fmt,
        adc_gain=rec.adc_gain, baseline=rec.baseline, write_dir=str(tiny_mitdb),
    )  # fmt: skip
    shutil.copy(tiny_mitdb / "102.atr", tiny_mitdb / "104.atr")
    tables, said = {}, {}
    for name, run in (("e", e), ("a", a)):
        out_csv = tmp_path / f"104{name}.csv"
        code, said[name], err = run_cli(
            capsys, "predict", "--record", str(tiny_mitdb / "104"), "--run", str(run),
            "--out", str(out_csv),
        )  # fmt: skip
        assert code == 0 and "left out" not in said[name], err
        tables[name] = pd.read_csv(out_csv)
    assert "by the ensemble's members that read MLII (1 of 2)" in " ".join(said["e"].split())
    beats = len(wfdb.rdann(str(tiny_mitdb / "104"), "atr").sample)
    assert len(tables["e"]) == len(tables["a"]) == beats
    early = tables["e"]["sample"] < 7 * 360  # windows reaching into the first 8 s
    np.testing.assert_allclose(
        tables["e"].loc[early, columns], tables["a"].loc[early, columns], atol=1e-6
    )
    late = tables["e"]["sample"] > 9 * 360
    assert not np.allclose(tables["e"].loc[late, columns], tables["a"].loc[late, columns])
    code, _, err = run_cli(
        capsys,
        *("train", "--data-dir", str(root), "--runs-dir", str(runs), "--name", "t"),
        *("--epochs", "1", "--tracking-uri", "none", "--set", "lead=MLII|V1"),
    )
    assert code == 2 and "joins the leads of an ensemble's members" in err, err
    assert not (tmp_path / "l.csv").exists()
    assert not (runs / "t").exists()

    svdb = root / "svdb"  # SVDB names its leads ECG1 and ECG2: `--lead` picks the second
    svdb.mkdir()
    write_record("800", svdb, np.random.default_rng(2), fs=128, leads=("ECG1", "ECG2"))
    evaluate_svdb = ("evaluate", str(e), "--db", "svdb", "--data-dir", str(root))
    code, out, err = run_cli(capsys, *evaluate_svdb)  # as predict does a one-lead record
    assert code == 0, err
    note = "database svdb has none of the leads V2, V1: evaluated by the 1 of the ensemble's 2"
    assert note in " ".join(out.split()), out
    fewer = json.loads((e / "metrics.json").read_text())["db:svdb"]
    assert fewer["leads"] == {"800": "ECG1"} and fewer["note"].startswith(note)
    code, _, err = run_cli(capsys, "evaluate", str(a), "--db", "svdb", "--data-dir", str(root))
    assert code == 0, err
    alone = json.loads((a / "metrics.json").read_text())["db:svdb"]
    assert fewer["confusion_matrix"] == alone["confusion_matrix"]  # the member reading ECG1
    code, _, err = run_cli(capsys, "evaluate", str(e), "--lead", "|ECG2")
    assert code == 2 and "--lead applies to --db and --records" in err, err
    code, out, err = run_cli(capsys, *evaluate_svdb, "--lead", "|ECG2")
    assert code == 0 and "none of the leads" not in out, err
    both = json.loads((e / "metrics.json").read_text())["db:svdb"]
    assert both["leads"] == {"800": "ECG1|ECG2"} and "note" not in both
    # a lead some records have and others lack is still missing: one line naming the record
    write_record("801", svdb, np.random.default_rng(3), fs=128, leads=("ECG1", "V1"))
    code, _, err = run_cli(capsys, *evaluate_svdb)
    assert code == 2 and "record 800 has none of the leads V2, V1" in err, err


def test_members_of_different_models_are_each_rebuilt_from_their_own_config(
    tiny_mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, runs = tiny_mitdb.parent, tmp_path / "runs"
    cnn = train(capsys, root, runs, "cnn", "filters=8")
    trees = train(capsys, root, runs, "trees", "model=gbt", "rounds=4", "min_samples_leaf=2")
    args = ("ensemble", str(cnn), str(trees), "--name", "e", "--runs-dir", str(runs))
    code, _, err = run_cli(capsys, *args, "--decision-weights", "1,2,1,1,1")
    assert code == 0, err
    e = runs / "e"
    model = load_run(e).model
    assert model.hparams["member"] == ["cnn1d_resnet", "gbt"]
    assert model.config.decision_weights == (1.0, 2.0, 1.0, 1.0, 1.0)
    beats, rr = torch.rand(8, 187), 0.5 + torch.rand(8, 3)
    with torch.no_grad():
        mean = sum(load_run(r).model(beats, rr).softmax(dim=1) for r in (cnn, trees)) / 2
        with plain_decisions(model):
            torch.testing.assert_close(model(beats, rr).softmax(dim=1), mean)
    code, _, err = run_cli(capsys, "evaluate", str(e))
    assert code == 0, err
    code, _, err = run_cli(capsys, "report", str(e), "--out", str(tmp_path / "report"))
    assert code == 0, err
    assert "cnn1d_resnet, gbt" in (tmp_path / "report" / "report.md").read_text()
    onnx_file = tmp_path / "e.onnx"
    code, _, err = run_cli(capsys, "export", "--run", str(e), "--out", str(onnx_file))
    assert code == 0, err
    int8 = tmp_path / "e.int8.onnx"  # the trees' features would be quantised: refused, not crashed
    code, _, err = run_cli(capsys, "export", "--run", str(e), "--int8", "--out", str(int8))
    assert code == 2 and "the ensemble's 1 tree member(s) have none" in err and not int8.exists()
    record = ("--run", str(e), "--record", str(tiny_mitdb / "100"))
    code, _, err = run_cli(capsys, "predict", *record, "--out", str(tmp_path / "p.csv"))
    assert code == 0, err
    code, _, err = run_cli(
        capsys, "predict", *record, "--onnx", str(onnx_file), "--out", str(tmp_path / "o.csv")
    )
    assert code == 0, err
    columns = [c for c in pd.read_csv(tmp_path / "p.csv") if c.startswith("p_")]
    np.testing.assert_allclose(
        pd.read_csv(tmp_path / "o.csv")[columns],
        pd.read_csv(tmp_path / "p.csv")[columns],
        atol=1e-5,
    )
