"""Importing per-variant results, the phrasing statistics (hand-computed and scipy), and the report."""

import csv
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from compute.cli import main
from compute.metrics.phrasing import accuracy_by, group_table, mcnemar_by_category
from compute.metrics.stats import holm
from compute.reports import phrasing_report, to_markdown
from store import queries
from compute.variants.categories import categorise
from compute.answering import BatchedGenerate

COLUMNS = ["study_id", "baseline_question", "ground_truth", "variant_index", "strategy", "question",
           "generated_text", "extracted_answer", "is_correct"]


@pytest.mark.parametrize("label, index, category", [
    ("Synonym replacement (bibasilar→bilateral lung bases)", 1, "synonym"),
    ("Voice changes; Register shifts", 2, "combined"),
    ("Register shifts (formal → conversational)", 3, "register"),
    ("Clause reordering", 4, "clause_reordering"),
    ("Phrasing variation (quantifier)", 5, "phrasing"),
    ("Combined strategies", 6, "combined"),
    ("Baseline", 0, "baseline"),
    ("something else", 7, "other"),
    ("", 8, "other"),
])
def test_strategy_labels_map_to_categories(label, index, category):
    assert categorise(label, index) == category


def _report(db, run_id):
    """The report as `python -m compute report` makes it: from the store's tables."""
    return phrasing_report(queries.phrasing_rows(db, run_id), queries.attention_changes(db, run_id), run_id)


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]).tolist() == pytest.approx([1.0, 1.0])


def _rows():
    # group A: baseline right (yes); 3 variants, one flips to no (wrong); repeated baseline row kept
    # group B: baseline wrong (no, truth yes); 2 variants, one right
    data = [
        ("A", 0, "baseline", "yes", True), ("A", 0, "baseline", "yes", True),
        ("A", 1, "synonym", "yes", True), ("A", 2, "synonym", "no", False), ("A", 3, "voice", "yes", True),
        ("B", 0, "baseline", "no", False), ("B", 1, "synonym", "yes", True), ("B", 2, "voice", "no", False),
    ]
    return pd.DataFrame(data, columns=["group_id", "variant_index", "strategy_category", "answer", "correct"]).assign(
        strategy=lambda d: d.strategy_category, condition="edema")


def test_group_statistics_by_hand():
    g = group_table(_rows()).set_index("group_id")
    assert g.loc["A", "consistency"] == pytest.approx(4 / 5) and g.loc["A", "flip_rate"] == pytest.approx(1 / 3)
    assert g.loc["B", "consistency"] == pytest.approx(2 / 3) and g.loc["B", "flip_rate"] == pytest.approx(1 / 2)
    assert g.loc["A", "n"] == 5  # the repeated baseline counts


def test_mcnemar_by_hand_and_against_scipy():
    table = mcnemar_by_category(_rows()).set_index("category")
    # synonym pairs: A1 (right, right), A2 (right, wrong), B1 (wrong, right) -> b = 1, c = 1
    assert table.loc["synonym", ["baseline_right_variant_wrong", "baseline_wrong_variant_right"]].tolist() == [1, 1]
    assert table.loc["synonym", "p_value"] == pytest.approx(1.0)
    assert table.loc["voice", "n_pairs"] == 2
    rows = pd.DataFrame({"group_id": [f"g{i}" for i in range(6) for _ in (0, 1)],
                         "variant_index": [0, 1] * 6, "strategy_category": ["baseline", "synonym"] * 6,
                         "answer": "yes", "correct": [True, False] * 5 + [False, True]})
    (p,) = mcnemar_by_category(rows)["p_value"]
    assert p == pytest.approx(binomtest(5, 6, 0.5).pvalue) == pytest.approx(14 / 64)


def test_accuracy_by_label_with_wilson():
    table = accuracy_by(_rows(), "strategy_category").set_index("strategy_category")
    assert table.loc["synonym", "n"] == 3 and table.loc["synonym", "accuracy"] == pytest.approx(2 / 3)
    ci = binomtest(2, 3).proportion_ci(method="wilson")
    assert (table.loc["synonym", "ci_low"], table.loc["synonym", "ci_high"]) == pytest.approx((ci.low, ci.high))


def _write_csv(path, rows):
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return path


ORIGINAL_SHAPE = [
    ("s1", "Is there bibasilar atelectasis?", "yes", 0, "", "Is there bibasilar atelectasis?", "Yes.", "yes", "True"),
    ("s1", "Is there bibasilar atelectasis?", "yes", 0, "", "Is there bibasilar atelectasis?", "Yes.", "yes", "True"),
    ("s1", "Is there bibasilar atelectasis?", "yes", 1, "Synonym replacement (bibasilar→bilateral lung bases)",
     "Is there atelectasis in both lung bases?", "No.", "no", "False"),
    ("s1", "Is there bibasilar atelectasis?", "yes", 2, "Voice changes; Register shifts",
     "Can atelectasis be seen at the bases?", "Yes", "yes", "True"),
    ("s2", "Is there cardiomegaly?", "no", 0, "", "Is there cardiomegaly?", "No", "no", "True"),
    ("s2", "Is there cardiomegaly?", "no", 1, "Register shifts", "Any cardiomegaly?", "No", "no", "True"),
    ("s2", "Is there cardiomegaly?", "maybe", 2, "Register shifts", "Big heart?", "No", "no", "True"),
]


@pytest.mark.integration
def test_import_is_idempotent_and_bad_rows_are_named(tmp_path, capsys):
    source = _write_csv(tmp_path / "original.csv", ORIGINAL_SHAPE)
    db = tmp_path / "p.duckdb"
    assert main(["import-results", str(source), "--db", str(db), "--run", "orig"]) == 0
    err = capsys.readouterr().err
    assert "row 7: ground_truth must be yes or no, got 'maybe'" in err
    assert main(["import-results", str(source), "--db", str(db), "--run", "orig"]) == 0
    con = duckdb.connect(str(db), read_only=True)
    counts = con.execute("SELECT status, count(*) FROM predictions GROUP BY status ORDER BY status").fetchall()
    categories = con.execute("SELECT strategy, strategy_category, condition FROM questions WHERE variant_index = 1 "
                             "ORDER BY item_id").fetchall()
    con.close()
    assert counts == [("failed", 1), ("ok", 6)]  # twice imported, nothing duplicated; the repeat row is kept
    assert ("Synonym replacement (bibasilar→bilateral lung bases)", "synonym", "atelectasis") in categories
    other = _write_csv(tmp_path / "other.csv", ORIGINAL_SHAPE[:3])
    assert main(["import-results", str(other), "--db", str(db), "--run", "orig"]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.integration
def test_report_json_and_markdown(tmp_path, capsys):
    source = _write_csv(tmp_path / "original.csv", ORIGINAL_SHAPE)
    db = tmp_path / "p.duckdb"
    assert main(["import-results", str(source), "--db", str(db), "--run", "orig"]) == 0
    assert "6 rows imported (2 groups), 1 failed" in capsys.readouterr().out
    report = _report(db, "orig")
    assert (report["groups"], report["variants"]) == (2, 3)
    assert report["baseline_accuracy"] == 1.0  # three baseline rows, all right
    # s1: answers yes, yes, no, yes -> 3/4; s2: no, no -> 1
    assert report["consistency_mean"] == pytest.approx((0.75 + 1.0) / 2)
    assert report["consistency_std"] == pytest.approx(0.125)  # population SD of (0.75, 1.0)
    assert (report["fully_consistent_groups"], report["groups_with_changes"]) == (1, 1)
    assert report["accuracy_by_category"]["synonym"] == pytest.approx(
        {"accuracy": 0.0, "n": 1, "ci_low": 0.0, "ci_high": binomtest(0, 1).proportion_ci(method="wilson").high})
    assert set(report["accuracy_by_strategy"]) >= {"Voice changes; Register shifts", "Register shifts"}
    assert report["most_sensitive_groups"][0]["group_id"].startswith("s1")
    assert main(["report", "--db", str(db), "--run", "orig", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["groups"] == 2
    markdown = to_markdown(report)
    assert "| synonym | 0.0% |" in markdown and "exact McNemar" in markdown
    assert main(["report", "--db", str(db), "--run", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no run named 'nope'" in err and "its runs: 'orig'" in err


@pytest.fixture(scope="module")
def phrasing_run(tmp_path_factory):
    from compute.demo.synth import SynthConfig, generate_dataset
    base = tmp_path_factory.mktemp("phrasing_study")
    manifest = generate_dataset(SynthConfig(n=3, seed=2, size=128, dicom_fraction=0.0), base / "synth", progress=False)
    db = base / "p.duckdb"
    assert main(["run", "--model", "models/demo", "--manifest", str(manifest), "--db", str(db), "--run", "ph",
                 "--study", "phrasing", "--variants", "4", "--negation-probe", "--quiet"]) == 0
    # A baseline run of the same manifest into the same store must leave the groups intact.
    assert main(["run", "--model", "models/demo", "--manifest", str(manifest), "--db", str(db), "--run", "base",
                 "--no-maps", "--quiet"]) == 0
    return db


@pytest.mark.integration
def test_phrasing_study_asks_each_question_and_its_rewrites(phrasing_run):
    con = duckdb.connect(str(phrasing_run), read_only=True)
    rows = con.execute("SELECT group_id, variant_index, strategy_category, question, baseline_question, ground_truth,"
                       " answer_inverted, transformation, status FROM prediction_details WHERE run_id = 'ph'"
                       " ORDER BY row_number, variant_index").fetchall()
    maps = con.execute("SELECT count(DISTINCT item_id) FROM attention_maps WHERE run_id = 'ph'").fetchone()[0]
    con.close()
    groups = {}
    for group, index, category, question, baseline, truth, inverted, transformation, status in rows:
        groups.setdefault(group, []).append((index, category, question, baseline, truth, inverted, transformation))
        assert status == "ok"
    assert len(groups) == 6 and maps == len(rows)  # 3 images x 2 questions; every prediction has its maps
    for members in groups.values():
        assert [m[0] for m in members] == [0, 1, 2, 3, 4, 5]  # baseline, 4 rewrites, the negation probe
        baseline_truth = members[0][4]
        assert members[0][1] == "baseline" and all(m[3] == members[0][2] for m in members)
        for index, category, question, _, truth, inverted, transformation in members[1:]:
            assert inverted == (category == "negation_probe") and transformation
            assert truth == ({"yes": "no", "no": "yes"}[baseline_truth] if inverted else baseline_truth)
    report = _report(phrasing_run, "ph")
    assert report["groups"] == 6 and report["variants"] == 30
    con = duckdb.connect(str(phrasing_run), read_only=True)
    (n_right,), = con.execute("SELECT count(*) FILTER (correct) FROM prediction_details WHERE run_id = 'ph' "
                              "AND variant_index = 0 AND status = 'ok'").fetchall()
    con.close()
    assert report["baseline_accuracy"] == pytest.approx(n_right / 6)  # the 6 baseline questions
    assert "baseline" in report["accuracy_by_category"]
    assert set(report["accuracy_by_category"]) <= {"baseline", "synonym", "voice", "register", "clause_reordering",
                                                   "phrasing", "combined", "negation_probe"}


def test_change_types_by_hand():
    from compute.metrics.attention_change import answer_change, correctness_change
    assert [answer_change("yes", "no"), answer_change("no", "yes"), answer_change("yes", "yes"),
            answer_change("yes", "uncertain")] == ["yes→no", "no→yes", "unchanged", "other"]
    assert [correctness_change(True, False), correctness_change(False, True), correctness_change(True, True)] == [
        "correct→wrong", "wrong→correct", "unchanged"]


def test_change_records_compare_each_variant_with_its_baseline():
    from compute.metrics import compare_maps
    from compute.studies.attention_change import change_records
    base = [0.25, 0.25, 0.25, 0.25]
    moved = [0.7, 0.1, 0.1, 0.1]
    maps = pd.DataFrame({
        "item_id": ["b", "v1", "v2"], "group_id": "g", "variant_index": [0, 1, 2], "answer": ["yes", "no", "yes"],
        "correct": [True, False, True], "layer": -1, "grid_rows": 2, "grid_cols": 2, "grid": [base, moved, base]})
    v1, v2 = change_records(maps, "r")
    expected = compare_maps(np.reshape(base, (2, 2)), np.reshape(moved, (2, 2)))
    assert (v1.baseline_item_id, v1.answer_change, v1.correctness_change) == ("b", "yes→no", "correct→wrong")
    assert v1.js_divergence == pytest.approx(expected["js_divergence"]) and v1.l2 == pytest.approx(expected["l2"])
    assert v1.difference == pytest.approx([0.45, -0.15, -0.15, -0.15])
    assert (v2.answer_change, v2.js_divergence, v2.pearson) == ("unchanged", pytest.approx(0.0), None)  # flat maps


def test_change_summaries_by_hand_and_against_scipy():
    from scipy.stats import mannwhitneyu

    from compute.metrics.attention_change import by_change_type, change_tests
    changes = pd.DataFrame({
        "answer_change": ["yes→no", "yes→no", "unchanged", "unchanged", "no→yes"],
        "correctness_change": ["correct→wrong", "correct→wrong", "unchanged", "unchanged", "wrong→correct"],
        "js_divergence": [0.2, 0.4, 0.01, 0.03, 0.1], "pearson": [0.1, 0.3, 0.9, 0.95, 0.5],
        "cosine": [0.5, 0.6, 0.99, 0.98, 0.8]})
    summary = by_change_type(changes)
    assert summary["yes→no"]["n"] == 2 and summary["yes→no"]["js_divergence_mean"] == pytest.approx(0.3)
    assert summary["yes→no"]["js_divergence_std"] == pytest.approx(0.1)  # population SD
    assert summary["unchanged"]["cosine_mean"] == pytest.approx(0.985)
    tests = change_tests(changes)
    expected = mannwhitneyu([0.2, 0.4, 0.1], [0.01, 0.03], alternative="two-sided")
    assert tests["changed vs unchanged"]["p_value"] == pytest.approx(expected.pvalue)
    assert tests["correct→wrong vs wrong→correct"]["n_a"] == 2


def test_change_distribution_by_hand():
    from compute.metrics.attention_change import change_distribution
    changes = pd.DataFrame({"answer_change": ["yes→no", "unchanged", "yes→no", "unchanged", "unchanged", "other"],
                            "js_divergence": [0.4, 0.03, 0.2, None, 0.01, None]})
    box = change_distribution(changes).set_index("answer_change")
    assert list(box.index) == ["unchanged", "yes→no"]  # "other" has no value: no box
    assert box.loc["yes→no"].tolist() == pytest.approx([2, 0.2, 0.25, 0.3, 0.35, 0.4])  # linear quartiles
    assert box.loc["unchanged"].tolist() == pytest.approx([2, 0.01, 0.015, 0.02, 0.025, 0.03])  # None left out
    assert change_distribution(changes.iloc[:0]).empty


@pytest.mark.integration
def test_phrasing_run_stores_attention_changes_and_reports_them(phrasing_run, change_counts):
    con = duckdb.connect(str(phrasing_run), read_only=True)
    n_variants = con.execute("SELECT count(*) FROM prediction_details WHERE run_id = 'ph' AND variant_index > 0"
                             ).fetchone()[0]
    rows = con.execute("SELECT answer_change, js_divergence, len(difference), grid_rows * grid_cols "
                       "FROM attention_changes").fetchall()
    con.close()
    assert len(rows) == n_variants
    for change, js, cells, expected_cells in rows:
        assert change in ("yes→no", "no→yes", "unchanged", "other") and 0 <= js <= 1 and cells == expected_cells
    report = _report(phrasing_run, "ph")
    expected = change_counts(phrasing_run, "ph")
    assert sum(expected[k] for k in ("yes→no", "no→yes", "unchanged", "other")) == n_variants
    assert {k: v["n"] for k, v in report["attention_change"].items()} == {
        k: expected[k] for k in ("yes→no", "no→yes", "correct→wrong", "wrong→correct", "unchanged")}
    assert "changed vs unchanged" in report["attention_change_tests"]
    assert "Attention change against the baseline map" in to_markdown(report)


@pytest.mark.integration
def test_a_variants_file_without_answers_runs_as_a_manifest(tmp_path):
    """The import-results columns minus the answers, plus where each image is, is a study input."""
    from compute.demo.synth import SynthConfig, generate_dataset
    manifest = generate_dataset(SynthConfig(n=1, seed=8, size=128, dicom_fraction=0.0), tmp_path / "synth",
                                progress=False)
    first = json.loads(manifest.read_text().splitlines()[0])
    variants = tmp_path / "synth" / "variants.csv"
    with variants.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["study_id", "image", "baseline_question", "ground_truth", "variant_index", "strategy", "question"])
        writer.writerow(["s1", first["image"], "Is there cardiomegaly?", "no", 0, "", "Is there cardiomegaly?"])
        writer.writerow(["s1", first["image"], "Is there cardiomegaly?", "no", 1, "Register shifts", "Any cardiomegaly?"])
        writer.writerow(["s1", first["image"], "Is there cardiomegaly?", "no", 2, "Synonym replacement",
                         "Is there an enlarged heart?"])
        writer.writerow(["s1", first["image"], "Is the patient rotated?", "no", 0, "", "Is the patient rotated?"])
    db = tmp_path / "v.duckdb"
    assert main(["run", "--model", "models/demo", "--manifest", str(variants), "--db", str(db), "--run", "v",
                 "--no-maps", "--quiet"]) == 0
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT status, error, condition, strategy_category, group_id, image_id FROM prediction_details "
                       "ORDER BY row_number").fetchall()
    con.close()
    assert [r[0] for r in rows[:3]] == ["ok"] * 3 and [r[3] for r in rows[:3]] == ["baseline", "register", "synonym"]
    assert {r[2] for r in rows[:3]} == {"cardiomegaly"} and rows[0][4] == "s1: Is there cardiomegaly?"
    assert rows[0][5] == "s1"
    assert rows[3][0] == "failed" and "cannot find a term" in rows[3][1]  # no condition to be found: a named row error
    report = _report(db, "v")
    assert (report["groups"], report["variants"]) == (1, 2)


@pytest.mark.integration
def test_phrasing_study_answers_through_the_engine_equal_the_plain_path(phrasing_run, demo_session):
    from compute.maps import MapSpec
    from store import queries
    rows = queries.phrasing_rows(phrasing_run, "ph")
    group = rows[rows.group_id == rows.group_id.iloc[0]].sort_values("variant_index")
    stored_maps = [queries.item_map(phrasing_run, "ph", i, "attention", -1) for i in group.item_id]
    image = queries.image_file(phrasing_run, "ph", group.item_id.iloc[0]).path
    reference = BatchedGenerate(demo_session).ask_batch([image] * len(group), group.question.tolist(), maps=MapSpec(layers="all"))
    for stored_p, stored_answer, stored_map, r in zip(group.p_yes, group.answer, stored_maps, reference):
        assert stored_answer == r.answer and abs(stored_p - r.p_yes) <= 1e-4
        assert np.abs(stored_map - r.map.mean).max() <= 1e-4


def test_phrasing_chunks_pack_whole_images():
    from types import SimpleNamespace

    from compute.studies.answer_items import image_runs as _image_runs
    items = [SimpleNamespace(image_path=Path(i)) for i in "aaabbccccdddddddd"]
    chunks = ["".join(item.image_path.name for item in chunk) for chunk in _image_runs(items, 6)]
    # a, b fit together; c alone (adding d would pass 6); d's 8 questions split at the cap
    assert chunks == ["aaabb", "cccc", "dddddd", "dd"]
    # at most two images a chunk (the engine's images per prefix pass), however few their questions
    items = [SimpleNamespace(image_path=Path(i)) for i in "abbcdeeef"]
    assert ["".join(i.image_path.name for i in c) for c in _image_runs(items, 100, 2)] == ["abb", "cd", "eeef"]


@pytest.mark.integration
def test_the_phrasing_study_takes_ready_made_groups_as_they_are(tmp_path):
    """A manifest whose rows carry their own variant_index (human paraphrases, say): the
    phrasing study asks exactly those rows, generates nothing, and compares their maps."""
    from compute.demo.synth import SynthConfig, generate_dataset
    manifest = generate_dataset(SynthConfig(n=1, seed=8, size=128, dicom_fraction=0.0), tmp_path / "synth",
                                progress=False)
    first = json.loads(manifest.read_text().splitlines()[0])
    grouped = tmp_path / "synth" / "grouped.jsonl"
    base = {"image": first["image"], "answer": "no", "condition": "cardiomegaly", "group_id": "g1"}
    rows = [{**base, "question": "Is there cardiomegaly?", "variant_index": 0, "strategy": "baseline"},
            {**base, "question": "Is the heart enlarged?", "variant_index": 1, "strategy": "human paraphrase"}]
    grouped.write_text("".join(json.dumps(r) + "\n" for r in rows))
    db = tmp_path / "g.duckdb"
    assert main(["run", "--model", "models/demo", "--manifest", str(grouped), "--db", str(db), "--run", "g",
                 "--study", "phrasing", "--layers", "last:1", "--quiet"]) == 0
    con = duckdb.connect(str(db), read_only=True)
    asked = con.execute("SELECT question, variant_index, baseline_question, strategy FROM prediction_details "
                        "WHERE run_id = 'g' AND status = 'ok' ORDER BY variant_index").fetchall()
    changes = con.execute("SELECT count(*) FROM attention_changes WHERE run_id = 'g'").fetchone()[0]
    con.close()
    assert asked == [("Is there cardiomegaly?", 0, "Is there cardiomegaly?", "baseline"),
                     ("Is the heart enlarged?", 1, "Is there cardiomegaly?", "human paraphrase")]
    assert changes >= 1
