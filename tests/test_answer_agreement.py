"""How often a run's extracted answer agrees with its P(yes) answer: the store query, the run
summary's line and the Overview page's figures, against a hand-computed store."""

import math
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from store import ImageRecord, PredictionRecord, QuestionRecord, RunRecord, StoreWriter, connect, queries

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")

# (answer, p_yes, status) per item of run "r", and what each contributes (worked out by hand):
ITEMS = [
    ("yes", 0.9, "ok"),           # compared, agrees
    ("yes", 0.2, "ok"),           # compared, disagrees
    ("no", 0.1, "ok"),            # compared, agrees
    ("no", 0.5, "ok"),            # compared, disagrees: p_yes = 0.5 is a P(yes) answer of yes
    ("yes", 0.5, "ok"),           # compared, agrees
    ("uncertain", 0.8, "ok"),     # uncertain, not compared
    ("yes", None, "ok"),          # no P(yes): not compared
    ("no", math.nan, "ok"),       # NaN P(yes): not compared
    (None, None, "failed"),       # not ok: not counted at all
]
EXPECTED = {"n_ok": 8, "n_uncertain": 1, "n_compared": 5, "n_agree": 3}


def _write_run(writer: StoreWriter, run_id: str, items) -> None:
    writer.start_run(RunRecord(run_id=run_id, study="baseline", dataset="synth", model_id="m",
                               config={"run": run_id}, package_versions={}))
    writer.write_batch(
        [ImageRecord.of(f"sha{k}", f"/data/i{k}.png") for k in range(len(items))],
        [QuestionRecord(f"q{k}", "synth", f"i{k}", "Is there x?", "yes", "edema") for k in range(len(items))],
        [PredictionRecord(run_id, f"q{k}", k + 1, status, error="model error" if status == "failed" else None,
                          answer=answer, p_yes=p, correct=answer == "yes" if status == "ok" else None)
         for k, (answer, p, status) in enumerate(items)], [])
    writer.finish_run(run_id, "completed")


@pytest.fixture(scope="module")
def agreement_db(tmp_path_factory) -> Path:
    """Run "r" holds ITEMS; run "other" (written first, so "r" is the newest) holds answers
    that must not leak into r's counts; run "all-uncertain" has nothing to compare."""
    db = tmp_path_factory.mktemp("agreement") / "a.duckdb"
    writer = StoreWriter(db)
    _write_run(writer, "other", [("yes", 0.1, "ok"), ("uncertain", 0.3, "ok")])
    _write_run(writer, "all-uncertain", [("uncertain", 0.6, "ok")])
    _write_run(writer, "r", ITEMS)
    return db


def test_hand_computed_counts(agreement_db):
    assert queries.answer_agreement(agreement_db, "r") == EXPECTED
    assert queries.answer_agreement(agreement_db, "other") == {"n_ok": 2, "n_uncertain": 1, "n_compared": 1,
                                                                "n_agree": 0}


def test_takes_an_open_connection(agreement_db):
    with connect(agreement_db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM predictions WHERE run_id = 'r' AND isnan(p_yes)").fetchone()[0] == 1
        assert queries.answer_agreement(con, "r") == EXPECTED


def test_unknown_run_counts_nothing(agreement_db):
    assert queries.answer_agreement(agreement_db, "no-such-run") == dict.fromkeys(EXPECTED, 0)


def test_summary_line():
    from compute.studies.run import RunSummary, agreement_line
    counts = {"n_ok": 307, "n_uncertain": 7, "n_compared": 300, "n_agree": 291}
    assert agreement_line(counts) == "extracted answer agrees with P(yes) on 97.0% (291/300); uncertain 2.3%"
    assert agreement_line(dict.fromkeys(counts, 0)) == "extracted answer agrees with P(yes) on n/a (0/0); uncertain n/a"
    summary = RunSummary("r", 300, 7, 0, 12.0, counts)
    assert str(summary).splitlines() == ["run r: 300 done, 7 failed, 0 skipped (already done) in 12.0 s",
                                         agreement_line(counts)]
    assert "agrees" not in str(RunSummary("r", 1, 0, 0, 1.0))  # no counts, no line


def _overview(db: Path, monkeypatch, run: str) -> AppTest:
    monkeypatch.setenv("MGV_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["run"] = run
    at.run()
    assert not at.exception
    return at


@pytest.mark.integration
def test_overview_shows_agreement_and_uncertain_share(agreement_db, monkeypatch):
    at = _overview(agreement_db, monkeypatch, "r")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Answer agrees with P(yes)"] == "60.0%"  # 3 / 5
    assert metrics["Uncertain answers"] == "12.5%"  # 1 / 8
    texts = [t.value for t in at.text]
    assert "Extracted answer agrees with P(yes) on 3 of 5 yes/no answers; 1 of 8 answers uncertain." in texts


@pytest.mark.integration
def test_overview_with_nothing_to_compare(agreement_db, monkeypatch):
    metrics = {m.label: m.value for m in _overview(agreement_db, monkeypatch, "all-uncertain").metric}
    assert metrics["Answer agrees with P(yes)"] == "–"
    assert metrics["Uncertain answers"] == "100.0%"


@pytest.mark.slow
@pytest.mark.integration
def test_cli_run_prints_the_agreement_line(tmp_path, capsys):
    """`python -m compute run` on the demo model prints the line, with the stored run's counts."""
    from compute.cli import main
    from compute.demo.synth import SynthConfig, generate_dataset
    manifest = generate_dataset(SynthConfig(n=2, seed=3, size=128), tmp_path / "synth", progress=False)
    db = tmp_path / "run.duckdb"
    assert main(["run", "--model", "models/demo", "--manifest", str(manifest), "--db", str(db), "--run", "agree",
                 "--quiet", "--no-maps"]) == 0
    printed = capsys.readouterr().out
    counts = queries.answer_agreement(db, "agree")
    assert counts["n_ok"] > 0
    line = re.search(r"^extracted answer agrees with P\(yes\) on .*$", printed, re.M)
    assert line is not None, printed
    assert f"({counts['n_agree']}/{counts['n_compared']})" in line.group()
