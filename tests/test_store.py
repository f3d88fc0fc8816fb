import duckdb
import numpy as np
import pytest
from scipy.stats import binomtest

from compute.reports import overall_accuracy, with_accuracy
from store import (ImageRecord, PredictionRecord, QuestionRecord, RecordError, RunConfigMismatch, RunRecord,
                   SCHEMA_VERSION, StoreWriter, connect)
from store import queries
from compute.metrics.stats import wilson_interval


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (47, 60), (500, 1000), (1, 3)])
def test_wilson_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(ci.low, abs=1e-12)
    assert high == pytest.approx(ci.high, abs=1e-12)


def test_wilson_hand_computed_and_vectorised():
    # k=8, n=10, z=1.959964: centre=(0.8+0.19208)/1.38415=0.716746, half=0.226578 (by hand)
    low, high = wilson_interval(np.array([8, 0]), np.array([10, 0]))
    assert low[0] == pytest.approx(0.4901624, abs=1e-6)
    assert high[0] == pytest.approx(0.9433178, abs=1e-6)
    assert np.isnan(low[1]) and np.isnan(high[1])


def _run(run_id="r1", **config):
    return RunRecord(run_id=run_id, study="baseline", dataset="d", model_id="m",
                     config={"model": "m", **config}, package_versions={"duckdb": duckdb.__version__}, n_items=4)


def _batch(run_id, outcomes):
    """outcomes: list of (item_id, condition, ground_truth, answer) tuples."""
    images = [ImageRecord.of(f"sha{i}", f"/data/images/img{i}.png") for i, _ in enumerate(outcomes)]
    questions = [QuestionRecord(item, "d", f"img{i}", "Is there x?", gt, cond)
                 for i, (item, cond, gt, _) in enumerate(outcomes)]
    preds = [PredictionRecord(run_id, item, i + 1, "ok", answer=ans, correct=(ans == gt), p_yes=0.5, yes_no_mass=0.9)
             for i, (item, cond, gt, ans) in enumerate(outcomes)]
    return images, questions, preds


def test_schema_created_and_versioned(tmp_path):
    db = tmp_path / "s.duckdb"
    StoreWriter(db)
    StoreWriter(db)  # reopening an up-to-date store changes nothing
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT version FROM schema_version").fetchall() == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"runs", "image_files", "questions", "predictions", "prediction_details"} <= tables


def test_writes_are_idempotent_and_resume(tmp_path):
    db = tmp_path / "s.duckdb"
    w = StoreWriter(db)
    assert w.start_run(_run()) == set()
    batch = _batch("r1", [("a", "edema", "yes", "yes"), ("b", "edema", "no", "yes")])
    w.write_batch(*batch)
    w.write_batch(*batch)  # the same batch again: replaced, not duplicated
    w.write_batch([], [], [PredictionRecord("r1", "c", 3, "failed", error="row 3: missing question")])
    assert w.start_run(_run()) == {"a", "b"}  # failed items are retried on resume
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 3
        assert con.execute("SELECT count(*) FROM questions").fetchone()[0] == 2
        assert con.execute("SELECT status FROM runs").fetchone()[0] == "running"
    w.finish_run("r1", "completed")
    runs = queries.list_runs(db)
    assert runs.loc[0, "status"] == "completed"
    assert (runs.loc[0, "n_done"], runs.loc[0, "n_failed"], runs.loc[0, "accuracy"]) == (2, 1, 0.5)


def test_resume_with_other_config_is_refused(tmp_path):
    w = StoreWriter(tmp_path / "s.duckdb")
    w.start_run(_run(batch_size=8))
    with pytest.raises(RunConfigMismatch, match=r"different configuration \(instruction changed\)"):
        w.start_run(_run(batch_size=8, instruction="Say yes."))


def test_resume_with_other_weights_is_refused(tmp_path):
    from dataclasses import replace
    w = StoreWriter(tmp_path / "s.duckdb")
    w.start_run(replace(_run(), weights_fingerprint="aaa"))
    assert w.start_run(replace(_run(), weights_fingerprint="aaa")) == set()
    with pytest.raises(RunConfigMismatch, match="different model weights"):
        w.start_run(replace(_run(), weights_fingerprint="bbb"))
    with pytest.raises(RunConfigMismatch, match="different dtype"):
        w.start_run(replace(_run(), weights_fingerprint="aaa", dtype="bfloat16"))


def test_failed_batch_writes_nothing(tmp_path):
    db = tmp_path / "s.duckdb"
    w = StoreWriter(db)
    w.start_run(_run())
    images, questions, preds = _batch("r1", [("a", "edema", "yes", "yes")])
    bad = PredictionRecord("r1", None, 1, "ok")  # NULL key violates the schema
    with pytest.raises(RecordError, match="NOT NULL constraint failed"):
        w.write_batch(images, questions, preds + [bad])
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM image_files").fetchone()[0] == 0


def test_condition_accuracy_counts_and_intervals(tmp_path):
    db = tmp_path / "s.duckdb"
    w = StoreWriter(db)
    w.start_run(_run())
    outcomes = [("a", "edema", "yes", "yes"), ("b", "edema", "yes", "no"), ("c", "edema", "no", "no"),
                ("d", "edema", "no", "uncertain"), ("e", "pneumothorax", "yes", "yes")]
    w.write_batch(*_batch("r1", outcomes))
    df = with_accuracy(queries.condition_counts(db, "r1"))
    edema = df[df.condition == "edema"].set_index("ground_truth")
    assert edema.loc["all", "n"] == 4 and edema.loc["all", "n_correct"] == 2
    assert edema.loc["yes", "accuracy"] == 0.5 and edema.loc["no", "accuracy"] == 0.5  # uncertain counts as wrong
    ci = binomtest(2, 4).proportion_ci(method="wilson")
    assert edema.loc["all", "ci_low"] == pytest.approx(ci.low)
    only = queries.condition_counts(db, "r1", conditions=["pneumothorax"])
    assert set(only.condition) == {"pneumothorax"}
    overview = queries.run_overview(db, "r1")
    assert (overview["n_done"], overview["n_correct"], overview["n_images"]) == (5, 3, 5)
    accuracy, (low, high) = overall_accuracy(overview["n_correct"], overview["n_done"])
    ci = binomtest(3, 5).proportion_ci(method="wilson")
    assert accuracy == pytest.approx(0.6) and (low, high) == pytest.approx((ci.low, ci.high))


def test_queries_take_hostile_values_as_data(tmp_path):
    db = tmp_path / "s.duckdb"
    w = StoreWriter(db)
    w.start_run(_run())
    w.write_batch(*_batch("r1", [("a", "edema", "yes", "yes")]))
    hostile = "'; DROP TABLE runs; --"
    assert queries.condition_counts(db, hostile).empty
    assert queries.condition_counts(db, "r1", conditions=[hostile]).empty
    assert len(queries.list_runs(db)) == 1


def test_read_only_open_never_creates(tmp_path):
    from store import StoreNotFoundError
    with pytest.raises(StoreNotFoundError):
        queries.list_runs(tmp_path / "absent.duckdb")
    assert not (tmp_path / "absent.duckdb").exists()


def test_schema_upgrades_in_place_and_refuses_newer(tmp_path, monkeypatch):
    from store import schema
    db = tmp_path / "s.duckdb"
    w = StoreWriter(db)
    w.start_run(_run())
    current = schema.SCHEMA_VERSION
    extra = "ALTER TABLE runs ADD COLUMN notes VARCHAR"
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS + (extra,))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
    with connect(db, read_only=False) as con:
        assert schema.ensure_schema(con) == current
        assert con.execute("SELECT run_id, notes FROM runs").fetchall() == [("r1", None)]  # data kept
        assert schema.current_version(con) == current + 1
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:current])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", current)
    with connect(db, read_only=False) as con, pytest.raises(RuntimeError, match="newer than this code"):
        schema.ensure_schema(con)


def test_version_1_store_gains_attention_maps(tmp_path, monkeypatch):
    """A store written before attention maps existed upgrades when opened, keeping its rows."""
    from store import schema
    db = tmp_path / "old.duckdb"
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 1)
    with connect(db, read_only=False) as con:  # written as version-1 code wrote it
        schema.ensure_schema(con)
        con.execute("INSERT INTO runs (run_id, study, dataset, model_id, config, package_versions, started_at, status)"
                    " VALUES ('r1', 'baseline', 'synth', 'm', '{}', '{}', current_timestamp, 'completed')")
    monkeypatch.undo()
    StoreWriter(db)
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT run_id FROM runs").fetchall() == [("r1",)]
        assert con.execute("SELECT count(*) FROM attention_maps").fetchone() == (0,)
        assert schema.current_version(con) == schema.SCHEMA_VERSION


def test_hostile_values_are_written_as_data(tmp_path):
    db = tmp_path / "s.duckdb"
    w = StoreWriter(db)
    hostile = "'; DROP TABLE runs; --"
    w.start_run(RunRecord(run_id=hostile, study="baseline", dataset=hostile, model_id=hostile,
                          config={"x": hostile}, package_versions={}, instruction=hostile))
    w.write_batch([ImageRecord(hostile, hostile, hostile)],
                  [QuestionRecord(hostile, hostile, hostile, hostile, "yes", hostile)],
                  [PredictionRecord(hostile, hostile, 1, "ok", generated_text=hostile, answer="yes", correct=True)])
    w.finish_run(hostile, "completed")
    runs = queries.list_runs(db)
    assert runs.run_id.tolist() == [hostile] and runs.n_done.tolist() == [1]
    assert queries.condition_counts(db, hostile, conditions=[hostile]).n.tolist() == [1, 1]


def test_bad_database_path_is_a_store_error(tmp_path):
    from store import StoreError
    not_duckdb = tmp_path / "notes.duckdb"
    not_duckdb.write_text("hello")
    for path, reason in ((tmp_path, "is a folder, not a database file"), (not_duckdb, "cannot open the database")):
        with pytest.raises(StoreError, match=reason):
            StoreWriter(path)


@pytest.mark.integration
def test_scale_check_builds_a_store_the_pages_can_query(tmp_path, capsys):
    """The dashboard-speed script at a small size: the store it builds is read by every page query."""
    from store import scale_check
    assert scale_check.main(["--db", str(tmp_path / "scale.duckdb"), "--predictions", "2200", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "built" in out and out.count("median") == len(scale_check.page_calls(tmp_path / "scale.duckdb"))
    assert len(queries.phrasing_rows(tmp_path / "scale.duckdb", "big")) == 2200
    assert len(queries.attention_changes(tmp_path / "scale.duckdb", "big")) == 2000


@pytest.mark.integration
def test_store_check_reports_orphans_and_dead_runs(tmp_path, capsys):
    from store.check import main as check_main
    db = tmp_path / "c.duckdb"
    w = StoreWriter(db)
    w.start_run(_run())
    w.write_batch([], [QuestionRecord("q1", "synth", "i1", "Is there x?", "yes", "edema")],
                  [PredictionRecord("r1", "q1", 1, "ok", answer="yes", correct=True),
                   PredictionRecord("r1", "ghost", 2, "ok", answer="no", correct=False)])
    with connect(db, read_only=False) as con:  # a run left 'running' by a process that no longer exists
        con.execute("UPDATE runs SET pid = 2147483646")
    assert check_main(["--db", str(db)]) == 1
    out = capsys.readouterr().out
    assert "1 predictions without a question" in out and "marked running but its process (2147483646) is gone" in out
    w.finish_run("r1", "completed")
    with connect(db, read_only=False) as con:
        con.execute("DELETE FROM predictions WHERE item_id = 'ghost'")
    assert check_main(["--db", str(db)]) == 0
    assert "consistent" in capsys.readouterr().out
