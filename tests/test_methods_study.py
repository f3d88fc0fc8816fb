"""The map methods in a study, from the command line to the pages: `--methods` stores a map per
method and item with its details, the Attention page shows each with its figures, and the
Methods page shows the run's per-method table."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from compute.cli import main
from compute.demo.synth import SynthConfig, generate_dataset

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
pytestmark = pytest.mark.integration
METHODS = ("token", "relevancy", "relative", "knockout", "logit_lens")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("methods")
    manifest = generate_dataset(SynthConfig(n=2, seed=12, size=128, dicom_fraction=0.0), root / "synth",
                                progress=False)
    db = root / "m.duckdb"
    assert main(["run", "--model", "models/demo", "--manifest", str(manifest), "--db", str(db), "--run", "m",
                 "--limit", "3", "--layers", "last:2", "--methods", ",".join(METHODS), "--sink-factor", "5",
                 "--quiet"]) == 0
    return db


def test_every_method_is_stored_with_its_details(store):
    with duckdb.connect(str(store), read_only=True) as con:
        rows = con.execute("SELECT item_id, method, layer, requested_method, details, sink_mass FROM attention_maps "
                           "WHERE run_id = 'm'").fetchall()
    items = {r[0] for r in rows}
    assert len(items) == 3
    for item in items:
        assert {r[3] for r in rows if r[0] == item} == {"attention", *METHODS}
    details = {r[1]: json.loads(r[4]) for r in rows if r[4] and r[1] == r[3]}
    assert "image_reliance" in details["knockout"] and "blank_image_reliance" in details["knockout"]
    assert details["relative"]["generic_prompt"] == "Describe the image."
    assert details["logit_lens"]["term"]
    assert all(r[5] is not None for r in rows if r[1] == "attention")  # sinks looked for on attention maps


def test_the_pages_show_the_methods(store, monkeypatch):
    monkeypatch.setenv("MGV_DB", str(store))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["run"] = "m"
    at.run()
    at.switch_page("views/attention.py").run()
    assert not at.exception, at.exception
    method_box = next(s for s in at.selectbox if s.label == "Method")
    assert set(METHODS) <= set(method_box.options)
    method_box.set_value("knockout").run()
    assert not at.exception, at.exception
    shown = set(at.dataframe[0].value.metric)
    assert {"image_reliance", "blank_image_reliance"} <= shown
    at.switch_page("views/methods.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[-1].value
    assert set(METHODS) <= set(table.method)


def test_the_report_has_the_methods_figures(store, capsys):
    assert main(["report", "--db", str(store), "--run", "m", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = report["maps_by_method"]
    assert {"attention", *METHODS} <= {r["method"] for r in rows}
    with duckdb.connect(str(store), read_only=True) as con:
        maps = con.execute("SELECT count(DISTINCT item_id) FROM attention_maps "
                           "WHERE run_id = 'm' AND method = 'knockout'").fetchone()[0]
    assert sum(r["n"] for r in rows if r["method"] == "knockout") == maps
    assert all(r["hit_rate"] is None or 0 <= r["hit_rate"] <= 1 for r in rows)
