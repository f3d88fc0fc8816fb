"""The Calibration and ROC page and what it reads (store.slices), on a real run whose manifest has
views, splits and a column of its own; chart exports; an imported run without P(yes)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import open_page, write_imported_run

from compute.cli import main
from compute.demo.synth import SynthConfig, generate_dataset
from compute.metrics import calibration
from store import slices

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sliced_db(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("calibration")
    manifest = generate_dataset(SynthConfig(n=6, seed=2, size=128), base / "synth", progress=False)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    for i, row in enumerate(rows):
        row.update(view="PA" if i % 2 else "AP", split="test", content_type=["presence", "abnormality"][i % 3 == 0])
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    db = base / "c.duckdb"
    assert main(["run", "--model", "models/demo", "--manifest", str(manifest), "--db", str(db), "--run", "r",
                 "--quiet"]) == 0
    return db


def test_slice_columns_are_the_varying_columns_and_the_manifests_own(sliced_db):
    found = slices.slice_columns(sliced_db, "r")
    assert "view" in found and "attributes.content_type" in found
    assert "split" not in found  # one value only: nothing to slice


def test_probability_rows_carry_the_slice_values(sliced_db):
    rows, n_without = slices.probability_rows(sliced_db, "r", "view")
    assert n_without == 0 and set(rows["slice"]) == {"PA", "AP"}
    assert rows["truth"].dtype == bool and rows["p_yes"].between(0, 1).all()
    by_content, _ = slices.probability_rows(sliced_db, "r", "attributes.content_type")
    assert set(by_content["slice"]) == {"presence", "abnormality"}
    assert by_content[["condition", "truth", "p_yes"]].equals(rows[["condition", "truth", "p_yes"]])
    with pytest.raises(ValueError, match="cannot slice by"):
        slices.probability_rows(sliced_db, "r", "p_yes; DROP TABLE runs")


def _page(db: Path, monkeypatch, **params):
    return open_page(db, monkeypatch, "views/calibration.py", **params)


def test_the_page_shows_the_figures_of_the_run(sliced_db, monkeypatch):
    at = _page(sliced_db, monkeypatch, run="r", slice="view", threshold="0.3")
    rows, _ = slices.probability_rows(sliced_db, "r", "view")
    matrix, by_condition, by_view = (d.value for d in at.dataframe)
    expected = calibration.at_threshold_by(rows.assign(curve=rows["slice"]), "curve", 0.3)
    pd.testing.assert_frame_equal(matrix.reset_index(drop=True), expected)
    assert by_condition["n"].sum() == len(rows)
    pa = by_view[by_view["view"] == "PA"].iloc[0]
    pa_rows = rows[rows["slice"] == "PA"]
    assert pa["brier"] == pytest.approx(calibration.brier_score(pa_rows["p_yes"], pa_rows["truth"].to_numpy()))
    assert at.slider[0].value == pytest.approx(0.3)
    assert [s.value for s in at.subheader][:2] == ["Reliability", "ROC"]


def test_a_threshold_the_link_cannot_mean_gets_a_warning(sliced_db, monkeypatch):
    at = _page(sliced_db, monkeypatch, run="r", threshold="1.5")
    assert any("not a number from 0 to 1" in w.value for w in at.warning)
    assert at.query_params["threshold"] == "0.5"
    at = _page(sliced_db, monkeypatch, run="r", **{"with": "no such run"})
    assert any("no such run" in w.value and "not compared" in w.value for w in at.warning)


def test_an_imported_run_says_it_has_no_p_yes(tmp_path, monkeypatch):
    write_imported_run(tmp_path / "i.duckdb")
    assert slices.probability_rows(tmp_path / "i.duckdb", "imp")[1] == 1
    at = _page(tmp_path / "i.duckdb", monkeypatch)
    assert any("stored no P(yes)" in i.value for i in at.info)
    assert not at.subheader  # no empty charts


def test_charts_export_as_png_and_svg():
    from compute.reports.figures import roc_chart
    from dashboard.charts import png, svg
    rng = np.random.default_rng(0)
    y = rng.random(40) < 0.5
    curves = calibration.roc_curve(rng.random(40), y).assign(curve="a <b>")
    chart = roc_chart(curves)
    drawing = svg(chart)
    assert drawing.startswith("<svg") and "a &lt;b&gt;" in drawing  # the label is text in the drawing
    image = png(chart)
    assert image[:8] == b"\x89PNG\r\n\x1a\n" and len(image) > 5000


def test_charts_with_missing_values_still_export():
    from compute.reports.figures import accuracy_chart, spec_json
    from dashboard.charts import svg
    split = pd.DataFrame({"condition": ["edema", "edema"], "ground_truth": ["yes", "no"], "n": [0, 2],
                          "n_correct": [0, 1], "accuracy": [np.nan, 0.5], "ci_low": [np.nan, 0.1],
                          "ci_high": [np.nan, 0.9]})
    chart = accuracy_chart(split)
    assert "NaN" not in spec_json(chart) and json.loads(spec_json(chart))["width"] == 640
    assert svg(chart).startswith("<svg")
