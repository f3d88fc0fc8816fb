"""`compute compare`: the common grid, Cohen's kappa, and the report over a real store of demo-model
runs (two baselines with maps, two phrasing runs) and imported results, checked against figures
recomputed here from the stored rows."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import binomtest, pearsonr

from compute.cli_compare import add_compare_parser, run_compare
from compute.metrics.common_grid import COMMON_GRID, to_common_grid
from compute.model.layout import overlap_weights
from compute.reports.compare import cohen_kappa, p_yes_correlation

ROOT = Path(__file__).resolve().parents[1]
FLIPPED = {"yes": "no", "no": "yes"}
IMPORT_FLIPS = (2, 5, 6)  # rows of run "a" whose answer the imported run turns round; row 0 it answers "uncertain"


def build_compare_store(base: Path) -> Path:
    """Runs of the committed demo model over 4 synthetic X-rays (8 questions): "a" and "b"
    (baselines with maps, b with another instruction), "p1" and "p2" (phrasing, 2 rewrites
    each, p2 with another instruction); "imp", run a's table imported with rows turned round
    (IMPORT_FLIPS) and row 0 uncertain; "stranger", an import about other images."""
    from compute.config import MapConfig, ModelSpec, PromptConfig, RunConfig, VariantConfig
    from compute.demo.synth import SynthConfig, generate_dataset
    from compute.studies.import_results import import_results
    from compute.studies.run import run_study

    manifest = generate_dataset(SynthConfig(n=4, seed=3, size=128, dicom_fraction=0.0), base / "synth", progress=False)
    db = base / "compare.duckdb"
    other = PromptConfig(instruction="Reply with one word.")
    runs = {"a": {"maps": MapConfig(layers="last:1")},
            "b": {"maps": MapConfig(layers="last:1"), "prompt": other},
            "p1": {"maps": MapConfig(enabled=False), "study": "phrasing", "variants": VariantConfig(n=2)},
            "p2": {"maps": MapConfig(enabled=False), "study": "phrasing", "variants": VariantConfig(n=2),
                   "prompt": other}}
    for name, options in runs.items():
        run_study(RunConfig(run_name=name, manifest=manifest, db=db, model=ModelSpec(str(ROOT / "models" / "demo")),
                            **options), progress=False, log=lambda _: None)
    rows = _rows(db, "SELECT image_id, question, ground_truth, answer FROM prediction_details WHERE run_id = 'a'"
                     " ORDER BY row_number")
    for name, table in (("imp", [(i, q, t, "uncertain" if k == 0 else FLIPPED[a] if k in IMPORT_FLIPS else a)
                                 for k, (i, q, t, a) in enumerate(rows)]),
                        ("stranger", [(f"elsewhere-{k}", q, t, a) for k, (_, q, t, a) in enumerate(rows)])):
        path = base / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["study_id", "question", "ground_truth", "extracted_answer"])
            writer.writerows(table)
        import_results(path, db, name, model_id="other-tool", log=lambda _: None)
    return db


def _rows(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return build_compare_store(tmp_path_factory.mktemp("compare"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m compute")
    add_compare_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def _compare(db: Path, runs: str, *extra: str) -> tuple[int, str, str]:
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_compare(_parser().parse_args(["compare", "--db", str(db), "--runs", runs, *extra]))
    return code, out.getvalue(), err.getvalue()


def _report(db: Path, runs: str) -> dict:
    code, out, err = _compare(db, runs, "--format", "json")
    assert code == 0, err
    return json.loads(out)


# --- the common grid ---------------------------------------------------------------------------------------------

def test_common_grid_replicates_16_and_24_blocks_exactly():
    rng = np.random.default_rng(0)
    for side in (16, 24):
        grid = rng.random((side, side))
        grid /= grid.sum()
        k = COMMON_GRID[0] // side
        expected = np.kron(grid, np.ones((k, k))) / k**2  # each cell's mass split evenly over its block
        np.testing.assert_allclose(to_common_grid(grid), expected, rtol=0, atol=1e-15)


def test_common_grid_preserves_mass_for_odd_shapes():
    rng = np.random.default_rng(1)
    for shape in ((23, 17), (22, 17), (7, 5), (6, 5), (1, 3), (97, 61)):
        grid = rng.random(shape)
        out = to_common_grid(grid / grid.sum())
        assert out.shape == COMMON_GRID and out.min() >= 0
        assert out.sum() == pytest.approx(1.0, abs=1e-12)
        if shape[0] % 2 == 0:  # the top half's mass stays in the top half
            assert out[:24].sum() == pytest.approx(grid[: shape[0] // 2].sum() / grid.sum(), abs=1e-12)
    weights = overlap_weights(23, 48)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0)  # every source row fully shared out


def test_common_grid_two_by_two_onto_three_by_three_by_hand():
    # Rows [0, 1/2), [1/2, 1) onto thirds: the top third is 2/3 of the top row, the middle third 1/3 of each row.
    grid = np.array([[0.4, 0.1], [0.2, 0.3]])
    w = np.array([[2 / 3, 0], [1 / 3, 1 / 3], [0, 2 / 3]])
    np.testing.assert_allclose(overlap_weights(2, 3), w)
    expected = np.array([
        [4 / 9 * 0.4, 2 / 9 * 0.4 + 2 / 9 * 0.1, 4 / 9 * 0.1],
        [2 / 9 * 0.4 + 2 / 9 * 0.2, (0.4 + 0.1 + 0.2 + 0.3) / 9, 2 / 9 * 0.1 + 2 / 9 * 0.3],
        [4 / 9 * 0.2, 2 / 9 * 0.2 + 2 / 9 * 0.3, 4 / 9 * 0.3],
    ])
    np.testing.assert_allclose(to_common_grid(grid, (3, 3)), expected, atol=1e-15)
    assert expected.sum() == pytest.approx(1.0)


def test_common_grid_normalises_and_rejects_bad_grids():
    np.testing.assert_allclose(to_common_grid(np.full((4, 4), 5.0), (2, 2)), np.full((2, 2), 0.25))
    for bad in (np.zeros((4, 4)), np.array([[1.0, -1.0]]), np.array([[np.nan, 1.0]]), np.ones(4)):
        with pytest.raises(ValueError):
            to_common_grid(bad)


# --- agreement ---------------------------------------------------------------------------------------------------

def test_cohen_kappa_hand_computed():
    # 50 items: both yes 20, A yes B no 5, A no B yes 10, both no 15. p_o = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(["yes", "no"], ["yes", "no"]) == pytest.approx(1.0)
    assert cohen_kappa(["yes", "yes"], ["yes", "yes"]) is None  # chance agreement 1: undefined
    assert cohen_kappa([], []) is None


def test_cohen_kappa_matches_the_confusion_matrix_definition():
    rng = np.random.default_rng(2)
    labels = np.array(["yes", "no", "uncertain"])
    for _ in range(20):
        a, b = labels[rng.integers(0, 3, 40)], labels[rng.integers(0, 3, 40)]
        table = np.array([[np.sum((a == x) & (b == y)) for y in labels] for x in labels], dtype=float)
        n = table.sum()
        p_o = np.trace(table) / n
        p_e = (table.sum(axis=1) @ table.sum(axis=0)) / n**2
        assert cohen_kappa(a, b) == pytest.approx((p_o - p_e) / (1 - p_e))


def test_p_yes_correlation_says_why_it_has_none():
    names = ("x", "y")
    assert p_yes_correlation(np.array([0.1, 0.2]), np.array([0.3, 0.4]), names)["pearson_note"].startswith(
        "fewer than 3")
    assert "'y'" in p_yes_correlation(np.array([0.1, 0.2, 0.3]), np.array([0.5] * 3), names)["pearson_note"]
    both = p_yes_correlation(np.array([0.1, np.nan, 0.3, 0.9]), np.array([0.2, 0.5, 0.1, 0.8]), names)
    assert both["n_p_yes"] == 3
    assert both["pearson_p_yes"] == pytest.approx(pearsonr([0.1, 0.3, 0.9], [0.2, 0.1, 0.8]).statistic)


def _tables(run_id: str, rows: list[tuple], study: str = "baseline"):
    """RunTables from (image_sha256, image_id, question, ground_truth, answer) rows."""
    import pandas as pd

    from compute.reports.compare import RunTables
    frame = pd.DataFrame(rows, columns=["image_sha256", "image_id", "question", "ground_truth", "answer"])
    frame["item_id"] = [f"{run_id}-{k}" for k in range(len(rows))]
    frame["condition"], frame["p_yes"] = "edema", float("nan")
    frame["correct"] = frame["answer"] == frame["ground_truth"]
    frame["group_id"] = frame["variant_index"] = None
    return RunTables(run_id, study, None, frame)


def test_align_pairs_repeats_in_order_and_leaves_out_conflicting_truths():
    from compute.reports.compare import align
    x = _tables("x", [("s1", "i1", "Q?", "yes", "yes"), ("s1", "i1", "Q?", "yes", "no"), ("s2", "i2", "Q?", "no", "no"),
                      ("s3", "i3", "Q?", "yes", "yes")])
    y = _tables("y", [("s2", "i2", "Q?", "yes", "yes"), ("s1", "i1", "Q?", "yes", "no"),
                      ("s1", "x1", "Q?", "yes", "no")])
    aligned = align([x, y])
    assert aligned.basis == "image_sha256"  # s1 under another image id is the same image
    assert aligned.per_run["x"]["item_id"].tolist() == ["x-0", "x-1"]  # first with first, second with second
    assert aligned.per_run["y"]["item_id"].tolist() == ["y-1", "y-2"]
    assert aligned.truth_conflicts == 1 and aligned.unshared == {"x": 2, "y": 1}  # s2: yes in one, no in the other
    y_without_sha = _tables("y", [(None, "i1", "Q?", "yes", "no")], study="baseline-import")
    by_id = align([x, y_without_sha])
    assert by_id.basis == "image_id" and by_id.per_run["x"]["item_id"].tolist() == ["x-0"]


# --- the report on a real store -----------------------------------------------------------------------------------

@pytest.mark.integration
def test_baseline_against_imported_recomputed_from_the_rows(store):
    report = _report(store, "a,imp")
    assert report["shared"]["paired_on"] == "image id + question text"  # the import read no image
    assert [r["run"] for r in report["runs"]] == ["a", "imp"] and len(report["pairs"]) == 1
    # The pairs, joined here on image id and question text straight from the stored rows.
    pairs = _rows(store, """
        SELECT x.condition, x.correct, y.correct, x.answer, y.answer, x.p_yes, y.p_yes
        FROM prediction_details x JOIN prediction_details y ON x.image_id = y.image_id AND x.question = y.question
        WHERE x.run_id = 'a' AND y.run_id = 'imp' AND x.status = 'ok' AND y.status = 'ok'""")
    assert len(pairs) == report["shared"]["n_items"] == 8
    right_a, right_imp = sum(p[1] for p in pairs), sum(p[2] for p in pairs)
    only_a = sum(1 for p in pairs if p[1] and not p[2])
    only_imp = sum(1 for p in pairs if p[2] and not p[1])
    run_a, run_imp = report["runs"]
    assert run_a["overall"]["n_correct"] == right_a and run_imp["overall"]["n_correct"] == right_imp
    assert run_imp["n_uncertain"] == 1
    ci = binomtest(right_imp, 8).proportion_ci(method="wilson")
    assert (run_imp["overall"]["ci_low"], run_imp["overall"]["ci_high"]) == pytest.approx((ci.low, ci.high))
    overall = report["pairs"][0]["overall"]
    assert overall["right_only"] == {"a": only_a, "imp": only_imp}
    assert only_a + only_imp >= len(IMPORT_FLIPS)
    assert overall["difference"] == pytest.approx((right_a - right_imp) / 8)
    assert overall["mcnemar_p"] == pytest.approx(binomtest(only_a, only_a + only_imp, 0.5).pvalue)
    # kappa over yes / no / uncertain, from the 3x3 table of the two runs' answers
    labels = ["yes", "no", "uncertain"]
    table = np.array([[sum(1 for p in pairs if p[3] == x and p[4] == y) for y in labels] for x in labels], float)
    p_o, p_e = np.trace(table) / 8, table.sum(axis=1) @ table.sum(axis=0) / 64
    assert overall["kappa"] == pytest.approx((p_o - p_e) / (1 - p_e))
    assert overall["n_decided"] == 7  # the uncertain one is left out of kappa_decided
    assert overall["pearson_p_yes"] is None and "fewer than 3" in overall["pearson_note"]  # no P(yes) imported
    assert "imported" in report["pairs"][0]["maps"]["note"]
    # per condition: Holm over this pair's conditions
    from compute.metrics.stats import holm
    blocks = report["pairs"][0]["by_condition"]
    np.testing.assert_allclose([b["mcnemar_p_holm"] for b in blocks.values()], holm([b["mcnemar_p"] for b in
                                                                                    blocks.values()]))
    assert "conditions" in report["pairs"][0]["mcnemar_p_holm_family"]
    for condition, block in run_a["by_condition"].items():
        assert block["n"] == sum(1 for p in pairs if p[0] == condition)


@pytest.mark.integration
def test_two_runs_with_maps_paired_on_image_content(store):
    report = _report(store, "a,b")
    assert report["shared"]["paired_on"] == "image sha256 + question text"
    maps = report["pairs"][0]["maps"]
    assert maps["n"] == 8 and maps["grids"] == {"a": ["16x16"], "b": ["16x16"]} and maps["common_grid"] == [48, 48]
    # every item's maps, resampled here by block replication (16 -> 48), compared with scipy
    grids = _rows(store, """
        SELECT x.grid, y.grid FROM attention_maps x
        JOIN attention_maps y ON y.item_id = x.item_id AND y.run_id = 'b' AND y.method = x.method AND y.layer = x.layer
        WHERE x.run_id = 'a' AND x.method = 'attention'""")  # one layer each (last:1): no mean map
    assert len(grids) == 8

    def common(g):
        return np.kron(np.asarray(g, float).reshape(16, 16), np.ones((3, 3)))

    js = [jensenshannon(common(x).ravel(), common(y).ravel(), base=2) ** 2 for x, y in grids]
    assert maps["js_divergence_mean"] == pytest.approx(np.mean(js), rel=1e-6)
    assert 0 <= maps["js_divergence_mean"] <= 1
    p_yes = _rows(store, """SELECT x.p_yes, y.p_yes FROM prediction_details x JOIN prediction_details y
                            ON y.item_id = x.item_id AND y.run_id = 'b' WHERE x.run_id = 'a'""")
    overall = report["pairs"][0]["overall"]
    assert overall["n_p_yes"] == 8
    assert overall["pearson_p_yes"] == pytest.approx(pearsonr(*zip(*p_yes)).statistic)


@pytest.mark.integration
def test_phrasing_runs_side_by_side_on_the_shared_groups(store):
    report = _report(store, "p1,p2")
    shared = report["shared"]["n_items"]
    assert shared >= 8  # every baseline question, and the rewrites both runs asked
    rows = _rows(store, """SELECT x.group_id, x.answer FROM prediction_details x WHERE x.run_id = 'p1'
                           AND EXISTS (SELECT 1 FROM prediction_details y WHERE y.run_id = 'p2'
                                       AND y.question = x.question AND y.image_key = x.image_key)""")
    groups: dict[str, list[str]] = {}
    for group, answer in rows:
        groups.setdefault(group, []).append(answer)
    consistency = [max(a.count(v) for v in set(a)) / len(a) for a in groups.values()]
    p1 = report["runs"][0]["phrasing"]
    assert p1["groups"] == len(groups)
    assert p1["consistency_mean"] == pytest.approx(np.mean(consistency))
    assert p1["fully_consistent_groups"] == sum(c == 1 for c in consistency)
    assert report["runs"][1]["phrasing"]["groups"] == len(groups)
    assert report["pairs"][0]["maps"] == {"method": "attention", "n": 0,
                                          "note": "no shared item has a map of this method in both runs"}
    # a phrasing run against a baseline shares the baseline questions only: groups without variants
    mixed = _report(store, "a,p1")
    assert mixed["shared"]["n_items"] == 8
    assert mixed["runs"][0]["phrasing"] is None and mixed["runs"][1]["phrasing"]["variants"] == 0


@pytest.mark.integration
def test_three_runs_and_markdown_tables(store):
    report = _report(store, "a,b,imp")
    assert [p["runs"] for p in report["pairs"]] == [["a", "b"], ["a", "imp"], ["b", "imp"]]
    assert report["pairs"][0]["maps"]["n"] == 8  # a and b still have maps, paired on image id here
    code, text, _ = _compare(store, "a,b,imp")
    assert code == 0
    for heading in ("## Accuracy on the shared items", "## a vs b", "## a vs imp", "## b vs imp",
                    "## Map similarity on the common grid", "| condition | n | a | b | imp |"):
        assert heading in text
    code, text, _ = _compare(store, "p1,p2", "--format", "md")
    assert "## Phrasing, on the shared groups" in text and "| fully consistent groups |" in text


@pytest.mark.integration
@pytest.mark.parametrize(("runs", "message"), [
    ("a,nope", "no run named 'nope'"),
    ("a", "2 or 3 runs, got 1"),
    ("a,b,p1,p2", "2 or 3 runs, got 4"),
    ("a,a", "run 'a' is named twice"),
    ("a,stranger", "share no answered item"),
])
def test_clear_errors(store, runs, message):
    code, out, err = _compare(store, runs)
    assert code == 2 and out == ""
    assert message in err, err
    if "nope" in runs:
        assert "'a'" in err  # the store's runs are listed


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["compare", "--help"])
    text = capsys.readouterr().out
    for option in ("--db", "--runs", "--format", "--method", "--out", "Wilson", "McNemar", "kappa", "48x48"):
        assert option in text
