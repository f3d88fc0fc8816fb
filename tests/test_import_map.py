"""`import-results FILE --map key=COLUMN,…` for results tables in other tools' layouts (baseline
or phrasing), and `report` for every kind of run (issue 14). Expected answers, correctness
and counts are worked out by hand in the comments; Wilson intervals come from scipy."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from scipy.stats import binomtest
from streamlit.testing.v1 import AppTest

from compute.cli import build_parser, main
from compute.data.tables import read_rows
from store import queries
from store.connection import connect

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")

# Another tool's baseline table: its own column names, replies to extract answers from, one
# reply over two lines (quoted), and a ground truth that is not yes or no.
OTHER_TOOL = [
    ("ImagePath", "q", "gt", "model_output"),
    ("images/a.png", "Is there pleural effusion?", "yes", "Yes.\nThere is a moderate left pleural effusion."),
    ("images/b.png", "Is there cardiomegaly?", "no", "Based on the image, the heart size is within normal limits."),
    ("images/c.png", "Is there pneumothorax?", "maybe", "No."),
    ("images/d.png", "Is there edema?", "no", "It cannot be determined\nfrom this view."),
    ("images/e.png", "Is there consolidation?", "Yes", "**Answer:** No, the lungs are clear."),
    ("images/f.png", "Is there atelectasis?", "n", "There is no evidence of atelectasis"),
]
OTHER_MAP = "image_id=ImagePath,question=q,ground_truth=gt,reply=model_output"
# row: (image_id, condition, ground truth, answer, correct), by hand; row 3 fails on its ground truth
EXPECTED_ROWS = {
    1: ("images/a.png", "pleural_effusion", "yes", "yes", True),  # a leading "Yes"
    2: ("images/b.png", "cardiomegaly", "no", "no", True),  # "within normal limits" is a negation
    4: ("images/d.png", "edema", "no", "uncertain", False),  # a hedge; uncertain is never correct
    5: ("images/e.png", "consolidation", "yes", "no", False),  # "**Answer:** No" (markup stripped)
    6: ("images/f.png", "atelectasis", "no", "no", True),  # "there is no evidence" negates
}


def _write_csv(path: Path, rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def _wilson(k: int, n: int) -> tuple[float, float]:
    ci = binomtest(k, n).proportion_ci(method="wilson")
    return ci.low, ci.high


def _rows(db: Path, sql: str, params=()) -> list[tuple]:
    with connect(db, read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def _report(capsys, db: Path, run: str, fmt: str = "json"):
    capsys.readouterr()
    assert main(["report", "--db", str(db), "--run", run, "--format", fmt]) == 0
    out = capsys.readouterr().out
    return json.loads(out) if fmt == "json" else out


def _check_accuracy(report: dict, by_condition: dict[str, tuple[int, int]]) -> None:
    """`report`'s accuracy, n and accuracy_by_condition against {condition: (correct, n)}."""
    k, n = sum(c for c, _ in by_condition.values()), sum(m for _, m in by_condition.values())
    assert (report["n"], report["n_correct"]) == (n, k)
    assert report["accuracy"] == pytest.approx(k / n)
    assert (report["ci_low"], report["ci_high"]) == pytest.approx(_wilson(k, n))
    assert set(report["accuracy_by_condition"]) == set(by_condition)
    for condition, (c, m) in by_condition.items():
        low, high = _wilson(c, m)
        assert report["accuracy_by_condition"][condition] == pytest.approx(
            {"accuracy": c / m, "n": m, "ci_low": low, "ci_high": high}), condition


@pytest.fixture
def other_tool(tmp_path, capsys) -> Path:
    """OTHER_TOOL imported through the CLI with --map into run "other" of a fresh store."""
    source = _write_csv(tmp_path / "other_tool.csv", OTHER_TOOL)
    db = tmp_path / "i.duckdb"
    assert main(["import-results", str(source), "--db", str(db), "--run", "other", "--map", OTHER_MAP]) == 0
    captured = capsys.readouterr()
    assert "run other: 5 rows imported (a baseline import), 1 failed" in captured.out
    assert "derived: answer (extracted from reply), correct (from answer and ground_truth)" in captured.err
    return db


@pytest.mark.integration
def test_another_tools_table_imports_row_by_row(other_tool):
    db = other_tool
    stored = queries.predictions(db, "other")
    by_row = {r[0]: r[1:] for r in _rows(db, """
        SELECT p.row_number, q.image_id, q.condition, q.ground_truth, p.answer, p.correct, p.status, p.error,
               p.generated_text, q.group_id, q.variant_index
        FROM predictions p JOIN questions q USING (item_id) WHERE p.run_id = 'other' ORDER BY p.row_number""")}
    assert set(by_row) == {1, 2, 3, 4, 5, 6} and len(stored) == 6
    for n, expected in EXPECTED_ROWS.items():
        assert by_row[n][:5] + (by_row[n][5],) == (*expected, "ok"), n
        assert by_row[n][8:] == (None, None), n  # a baseline import: no groups, no variant index
    assert by_row[1][7] == "Yes.\nThere is a moderate left pleural effusion."  # the quoted line break kept
    assert by_row[4][7] == "It cannot be determined\nfrom this view."
    assert by_row[3][5:7] == ("failed", "row 3: gt (ground_truth) must be yes or no, got 'maybe'")
    assert _rows(db, "SELECT study, status FROM runs") == [("baseline-import", "completed")]


@pytest.mark.integration
def test_a_baseline_import_shows_on_the_condition_accuracy_page_and_in_the_report(other_tool, monkeypatch, capsys):
    db = other_tool
    monkeypatch.setenv("MGV_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["run"] = "other"
    at.run()
    at.switch_page("views/condition_accuracy.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    overall = table[table.ground_truth == "all"].set_index("condition")
    assert overall["n"].to_dict() == {"atelectasis": 1, "cardiomegaly": 1, "consolidation": 1, "edema": 1,
                                      "pleural_effusion": 1}
    assert overall["accuracy"].to_dict() == {"atelectasis": 1.0, "cardiomegaly": 1.0, "consolidation": 0.0,
                                             "edema": 0.0, "pleural_effusion": 1.0}
    at.switch_page("views/phrasing.py").run()  # no variant groups: the phrasing page says so
    assert not at.exception and any("no variant groups" in i.value for i in at.info)

    report = _report(capsys, db, "other")
    assert (report["study"], report["n_failed"]) == ("baseline-import", 1)
    assert "groups" not in report  # no phrasing keys for a baseline run
    _check_accuracy(report, {"pleural_effusion": (1, 1), "cardiomegaly": (1, 1), "edema": (0, 1),
                             "consolidation": (0, 1), "atelectasis": (1, 1)})  # 3 of 5
    markdown = _report(capsys, db, "other", "md")
    assert "# Accuracy: run `other`" in markdown and "| consolidation | 0.0% |" in markdown
    assert "- accuracy: 60.0%" in markdown


# A phrasing table in its own layout, with short terms as the condition.
PHRASING = [
    ("img", "base_q", "k", "how", "text", "truth", "term", "ans"),
    ("s1", "Is there pleural effusion?", 0, "", "Is there pleural effusion?", "yes", "effusion", "yes"),
    ("s1", "Is there pleural effusion?", 1, "Synonym replacement", "Is there fluid in the pleural space?", "yes",
     "effusion", "no"),
    ("s1", "Is there pleural effusion?", 2, "Register shifts", "Any pleural effusion?", "yes", "pleural", "yes"),
    ("s2", "Is there lung opacity?", 0, "", "Is there lung opacity?", "no", "opacity", "no"),
    ("s2", "Is there lung opacity?", 1, "Voice changes", "Can an opacity be seen?", "no", "Opacity", "yes"),
]
PHRASING_MAP = ("image_id=img,baseline_question=base_q,variant_index=k,strategy=how,question=text,ground_truth=truth,"
                "condition=term,answer=ans")


@pytest.mark.integration
def test_a_phrasing_import_through_map_with_short_terms(tmp_path, monkeypatch, capsys):
    source = _write_csv(tmp_path / "phrasing.csv", PHRASING)
    db = tmp_path / "p.duckdb"
    assert main(["import-results", str(source), "--db", str(db), "--run", "ph", "--map", PHRASING_MAP]) == 0
    assert "5 rows imported (2 groups), 0 failed" in capsys.readouterr().out
    rows = _rows(db, "SELECT q.condition, q.group_id, q.variant_index, q.strategy_category, p.correct"
                     " FROM predictions p JOIN questions q USING (item_id) ORDER BY p.row_number")
    assert rows == [
        ("pleural_effusion", "s1: Is there pleural effusion?", 0, "baseline", True),
        ("pleural_effusion", "s1: Is there pleural effusion?", 1, "synonym", False),
        ("pleural_effusion", "s1: Is there pleural effusion?", 2, "register", True),  # "pleural" in its baseline
        ("lung_opacity", "s2: Is there lung opacity?", 0, "baseline", True),
        ("lung_opacity", "s2: Is there lung opacity?", 1, "voice", False),
    ]
    assert _rows(db, "SELECT study FROM runs") == [("phrasing-import",)]
    report = _report(capsys, db, "ph")
    assert (report["groups"], report["variants"], report["baseline_accuracy"]) == (2, 3, 1.0)
    assert report["consistency_mean"] == pytest.approx((2 / 3 + 1 / 2) / 2)  # s1: yes, no, yes; s2: no, yes
    _check_accuracy(report, {"pleural_effusion": (2, 3), "lung_opacity": (1, 2)})
    markdown = _report(capsys, db, "ph", "md")
    assert "# Phrasing sensitivity: run `ph`" in markdown and "| lung_opacity | 50.0% |" in markdown

    monkeypatch.setenv("MGV_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("views/phrasing.py").run()
    assert not at.exception and {m.label: m.value for m in at.metric}["Groups"] == "2"


@pytest.mark.integration
def test_without_an_image_id_groups_are_keyed_by_the_baseline_question(tmp_path, capsys):
    source = tmp_path / "groups.jsonl"
    rows = [{"base": "Is there edema?", "i": 0, "question": "Is there edema?", "ground_truth": "no", "reply": "No."},
            {"base": "Is there edema?", "i": 1, "question": "Any edema?", "ground_truth": "no",
             "reply": "There is mild interstitial edema."}]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    db = tmp_path / "g.duckdb"
    assert main(["import-results", str(source), "--db", str(db), "--run", "g",
                 "--map", "baseline_question=base,variant_index=i,reply=reply"]) == 0
    assert _rows(db, "SELECT q.group_id, p.answer, p.correct FROM predictions p JOIN questions q USING (item_id)"
                     " ORDER BY p.row_number") == [("Is there edema?", "no", True), ("Is there edema?", "yes", False)]


@pytest.mark.parametrize("spec, fragment", [
    ("question", "--map entry 'question' is not key=COLUMN"),
    ("question=q,=gt", "--map entry '=gt' is not key=COLUMN"),
    ("", "--map is empty"),
    ("colour=q", "--map names the unknown key 'colour'; the keys are image_id, question, ground_truth, reply"),
    ("question=q,question=gt", "--map names the key 'question' twice"),
    ("question=prompt,ground_truth=gt,reply=model_output",
     "--map names column(s) 'prompt' (for question) that the file lacks; its columns: ImagePath, q, gt, model_output"),
    ("question=q,ground_truth=gt", "no column for the reply or the answer"),
    ("question=q,ground_truth=gt,reply=model_output,variant_index=ImagePath",
     "a phrasing import needs both variant_index and baseline_question"),
])
@pytest.mark.integration
def test_bad_maps_are_clear_one_line_errors(tmp_path, capsys, spec, fragment):
    source = _write_csv(tmp_path / "other_tool.csv", OTHER_TOOL)
    db = tmp_path / "bad.duckdb"
    assert main(["import-results", str(source), "--db", str(db), "--run", "r", "--map", spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and err.count("\n") == 1, err
    assert not db.exists()  # refused before the store is touched


@pytest.mark.integration
def test_bad_rows_are_failed_items_with_their_reasons_and_the_rest_imports(tmp_path, capsys):
    source = _write_csv(tmp_path / "rows.csv", [
        ("q", "gt", "said", "verdict", "right"),
        ("Is there edema?", "yes", "Yes", "yes", "true"),  # fine
        ("Is there edema?", "unknown", "Yes", "yes", ""),  # not yes or no
        ("Is there edema?", "no", "Yes", "yes", "true"),  # contradicts yes vs no
        ("Is there edema?", "no", "No", "No, there is none.", ""),  # an answer column holding a sentence
    ])
    with source.open("a", encoding="utf-8", newline="") as f:
        f.write('Is there edema?,no,"No, never closed,no,\n')  # an unbalanced quote, at the end of the file
    db = tmp_path / "rows.duckdb"
    assert main(["import-results", str(source), "--db", str(db), "--run", "r",
                 "--map", "question=q,ground_truth=gt,reply=said,answer=verdict,correct=right"]) == 0
    errors = dict(_rows(db, "SELECT row_number, error FROM predictions WHERE status = 'failed'"))
    assert errors[2] == "row 2: gt (ground_truth) must be yes or no, got 'unknown'"
    assert errors[3].startswith("row 3: right (correct) is true, but the extracted answer 'yes' differs from")
    assert errors[4].startswith("row 4: verdict (answer) must be yes, no or uncertain, got 'No, there is none.'")
    assert "unbalanced" in errors[5]
    assert _rows(db, "SELECT row_number, answer, correct FROM predictions WHERE status = 'ok'") == [(1, "yes", True)]


def test_multiline_is_an_opt_in_of_read_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('a,b\n1,"two\nlines"\n2,"last\nrow"\n3,"open\n')
    assert read_rows(path, (), ValueError, multiline=True)[:2] == [(1, {"a": "1", "b": "two\nlines"}),
                                                                    (2, {"a": "2", "b": "last\nrow"})]
    assert "unbalanced" in read_rows(path, (), ValueError, multiline=True)[2][1]
    manifest = read_rows(path, (), ValueError)  # the manifest's reading is unchanged: a row error
    assert "fields cannot hold line breaks" in manifest[0][1]


def test_import_help_explains_every_map_key():
    from compute.studies.import_results import KEYS
    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices and "report" in a.choices)
    text = sub.choices["import-results"].format_help()
    assert "--map KEY=COLUMN" in text and OTHER_MAP in text
    for key, (default, _) in KEYS.items():
        assert any(line.split()[:2] == [key, default] for line in text.splitlines()), key


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory) -> Path:
    """A baseline run (no maps) and a phrasing run (maps from one layer, so attention change)
    of the committed demo model on two synthetic images."""
    from compute.demo.synth import SynthConfig, generate_dataset
    base = tmp_path_factory.mktemp("report_runs")
    manifest = generate_dataset(SynthConfig(n=2, seed=5, size=128, dicom_fraction=0.0), base / "synth", progress=False)
    db = base / "runs.duckdb"
    common = ["--model", "models/demo", "--manifest", str(manifest), "--db", str(db), "--quiet"]
    assert main(["run", *common, "--run", "base", "--no-maps"]) == 0
    assert main(["run", *common, "--run", "ph", "--study", "phrasing", "--variants", "2", "--layers", "3"]) == 0
    return db


def _counts_by_condition(db: Path, run: str) -> dict[str, tuple[int, int]]:
    return {c: (int(k), int(n)) for c, k, n in _rows(
        db, "SELECT condition, sum(correct::INTEGER), count(*) FROM prediction_details WHERE run_id = ? AND"
            " status = 'ok' GROUP BY condition", [run])}


@pytest.mark.integration
def test_report_json_on_runs_of_the_demo_model(demo_runs, capsys):
    base = _report(capsys, demo_runs, "base")
    assert base["study"] == "baseline" and "groups" not in base
    _check_accuracy(base, _counts_by_condition(demo_runs, "base"))
    assert base["n"] == 4  # two images, two questions each
    agreement = _rows(demo_runs, "SELECT count(*) FILTER (WHERE answer = 'uncertain'), count(*) FILTER (WHERE "
                                 "answer IN ('yes', 'no') AND (answer = 'yes') = (p_yes >= 0.5)) FROM predictions "
                                 "WHERE run_id = 'base' AND status = 'ok'")[0]
    assert base["answer_agreement"]["n_uncertain"] == agreement[0]
    assert base["answer_agreement"]["n_agree"] == agreement[1]
    assert base["answer_agreement"]["agreement"] == agreement[1] / base["answer_agreement"]["n_compared"]
    assert "| condition | accuracy | 95% CI | n |" in _report(capsys, demo_runs, "base", "md")

    ph = _report(capsys, demo_runs, "ph")
    _check_accuracy(ph, _counts_by_condition(demo_runs, "ph"))
    assert ph["study"] == "phrasing" and ph["groups"] == 4 and ph["attention_change"]  # maps compared
    for key in ("variants", "baseline_accuracy", "consistency_mean", "accuracy_by_strategy", "mcnemar_vs_baseline",
                "most_sensitive_groups", "attention_change_tests", "most_attention_sensitive"):
        assert key in ph, key
    markdown = _report(capsys, demo_runs, "ph", "md")
    assert "Attention change against the baseline map" in markdown and "## Accuracy" in markdown
