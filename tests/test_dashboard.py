"""Every dashboard page rendered by Streamlit's AppTest, on a real store."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from store import ImageRecord, PredictionRecord, QuestionRecord, RunRecord, StoreWriter

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGES = ["views/overview.py", "views/condition_accuracy.py"]


def _app(db: Path, monkeypatch, **params) -> AppTest:
    monkeypatch.setenv("MGV_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    return at


def _param(at: AppTest, name: str) -> list[str]:
    value = at.query_params.get(name, [])
    return [value] if isinstance(value, str) else list(value)


@pytest.fixture(scope="module")
def populated_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("dash") / "d.duckdb"
    w = StoreWriter(db)
    for run_id, answers in (("older", ["no", "no", "no", "no"]), ("newer", ["yes", "no", "yes", "yes"])):
        w.start_run(RunRecord(run_id=run_id, study="baseline", dataset="synth", model_id="models/demo",
                              config={"run": run_id}, package_versions={}, instruction="Answer yes or no."))
        gts = ["yes", "no", "no", "yes"]
        conds = ["edema", "edema", "pneumothorax", "pneumothorax"]
        w.write_batch(
            [ImageRecord("synth", f"i{k}", f"images/i{k}.png") for k in range(4)],
            [QuestionRecord(f"q{k}", "synth", f"i{k}", "Is there x?", gts[k], conds[k]) for k in range(4)],
            [PredictionRecord(run_id, f"q{k}", k + 1, "ok", answer=a, correct=a == gts[k], p_yes=0.7, yes_no_mass=0.9)
             for k, a in enumerate(answers)])
        w.finish_run(run_id, "completed")
    return db


@pytest.mark.parametrize("page", PAGES)
def test_pages_without_database_say_how_to_make_one(tmp_path, monkeypatch, page):
    at = _app(tmp_path / "missing.duckdb", monkeypatch)
    at.run()
    at.switch_page(page).run()
    assert not at.exception
    assert any("No database" in i.value for i in at.info)
    assert any("python -m compute run" in m.value for m in at.markdown)
    assert not (tmp_path / "missing.duckdb").exists()  # the dashboard never creates it


def test_pages_with_empty_database(tmp_path, monkeypatch):
    StoreWriter(tmp_path / "empty.duckdb")
    at = _app(tmp_path / "empty.duckdb", monkeypatch)
    at.run()
    assert not at.exception
    assert any("holds no runs" in i.value for i in at.info)


def test_overview_shows_newest_run_and_headline(populated_db, monkeypatch):
    at = _app(populated_db, monkeypatch)
    at.run()
    assert not at.exception
    assert at.sidebar.selectbox[0].value == "newer"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Accuracy"] == "75.0%"
    assert metrics["Questions answered"] == "4"
    assert _param(at, "run") == ["newer"]


def test_run_from_url_is_selected(populated_db, monkeypatch):
    at = _app(populated_db, monkeypatch, run="older")
    at.run()
    assert at.sidebar.selectbox[0].value == "older"
    assert {m.label: m.value for m in at.metric}["Accuracy"] == "50.0%"


def test_condition_accuracy_page_table_and_filter(populated_db, monkeypatch):
    at = _app(populated_db, monkeypatch, run="newer")
    at.run()
    at.switch_page("views/condition_accuracy.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    edema = table[table.condition == "edema"].set_index("ground_truth")
    assert edema.loc["all", "n"] == 2 and edema.loc["all", "accuracy"] == 1.0
    pneumothorax = table[table.condition == "pneumothorax"].set_index("ground_truth")
    assert pneumothorax.loc["no", "accuracy"] == 0.0
    at.multiselect[0].set_value(["pneumothorax"]).run()
    assert not at.exception
    assert set(at.dataframe[0].value.condition) == {"pneumothorax"}
    assert _param(at, "condition") == ["pneumothorax"]


def test_hostile_filter_values_from_url_leave_store_intact(populated_db, monkeypatch):
    hostile = "'; DROP TABLE runs; --"
    at = _app(populated_db, monkeypatch, run=hostile, condition=hostile)
    at.run()
    at.switch_page("views/condition_accuracy.py").run()
    assert not at.exception
    from store import queries
    assert set(queries.list_runs(populated_db).run_id) == {"older", "newer"}
