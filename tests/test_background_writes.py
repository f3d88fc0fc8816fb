"""The background writer: jobs in order, at most `depth` pending, a job's error raised in the caller,
and batches written through Arrow as they were given (lists or float arrays, the last of a key winning)."""

from __future__ import annotations

import threading
import time

import duckdb
import numpy as np
import pytest

from store import MapRecord, PredictionRecord, QuestionRecord, RunRecord, StoreWriter
from store.background import BackgroundWrites


def test_jobs_run_in_order_and_results_come_back_in_order():
    seen = []
    with BackgroundWrites(depth=2) as writes:
        results = []
        for k in range(10):
            results += writes.submit(lambda k=k: seen.append(k) or k * k)
        results += writes.drain()
    assert seen == list(range(10)) and results == [k * k for k in range(10)]


def test_at_most_depth_jobs_pending():
    gate, running = threading.Event(), []

    def job(k):
        running.append(k)
        gate.wait(5)
        return k

    writes = BackgroundWrites(depth=2)
    writes.submit(job, 0)
    writes.submit(job, 1)
    returned = []
    blocked = threading.Thread(target=lambda: returned.extend(writes.submit(job, 2)))
    blocked.start()
    time.sleep(0.2)
    assert blocked.is_alive()  # the third waits while two are pending
    gate.set()
    blocked.join(5)
    assert not blocked.is_alive()
    assert returned[:1] == [0] and returned + writes.drain() == [0, 1, 2]
    writes.close()


def test_a_job_error_is_raised_at_the_next_submit_which_queues_nothing():
    done = []

    def failing():
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with BackgroundWrites(depth=3) as writes:
            writes.submit(failing)
            time.sleep(0.2)
            writes.submit(lambda: done.append("after"))
    assert done == []


def test_a_job_error_is_raised_at_drain():
    writes = BackgroundWrites(depth=2)
    writes.submit(lambda: 1)
    writes.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        writes.drain()
    writes.close()


def test_leaving_on_an_error_waits_for_the_queued_writes():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with BackgroundWrites(depth=2) as writes:
            writes.submit(lambda: time.sleep(0.2) or done.append(1))
            raise KeyboardInterrupt
    assert done == [1]


def _map(item_id: str, grid) -> MapRecord:
    return MapRecord(run_id="r", item_id=item_id, method="attention", layer=-1, requested_method="attention",
                     fallback_reason=None, layers=[0, 1], heads="mean", query="answer", query_positions=[7],
                     term=None, strip_border=0, attn_implementation="eager", model_id="m", image_height=2,
                     image_width=2, grid_rows=2, grid_cols=2, grid=grid, attention_entropy=1.0)


def test_grids_as_lists_or_arrays_are_stored_as_float32_and_the_last_of_a_key_wins(tmp_path):
    db = tmp_path / "s.duckdb"
    writer = StoreWriter(db)
    writer.start_run(RunRecord(run_id="r", study="baseline", dataset="d", model_id="m", config={},
                               package_versions={}))
    questions = [QuestionRecord(i, "d", "img", "Is there edema?", "yes", "edema") for i in ("a", "b")]
    predictions = [PredictionRecord("r", i, k + 1, "ok", answer="yes", p_yes=0.9, correct=True)
                   for k, i in enumerate(("a", "b"))]
    grid = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float64)
    writer.write_batch([], questions, predictions,
                       [_map("a", grid.tolist()), _map("b", np.zeros(4)), _map("b", grid.astype(np.float32))])
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT item_id, grid, layers, query_positions FROM attention_maps ORDER BY item_id").fetchall()
    assert [r[0] for r in rows] == ["a", "b"]
    for _, stored, layers, positions in rows:
        assert stored == pytest.approx(grid.astype(np.float32).tolist(), abs=0) and layers == [0, 1] and positions == [7]


def test_rewriting_stored_keys_replaces_them(tmp_path):
    """The writer tries a plain INSERT first: a batch that meets stored keys (a resumed run's retried
    items) is written again, replacing, all of it or none."""
    db = tmp_path / "s.duckdb"
    writer = StoreWriter(db)
    writer.start_run(RunRecord(run_id="r", study="baseline", dataset="d", model_id="m", config={},
                               package_versions={}))
    questions = [QuestionRecord(i, "d", "img", "Is there edema?", "yes", "edema") for i in ("a", "b")]
    first = [PredictionRecord("r", "a", 1, "failed", error="boom")]
    writer.write_batch([], questions[:1], first, [_map("a", np.full(4, 0.25))])
    again = [PredictionRecord("r", i, k + 1, "ok", answer="yes", p_yes=0.9, correct=True)
             for k, i in enumerate(("a", "b"))]
    writer.write_batch([], questions, again, [_map("a", [0.1, 0.2, 0.3, 0.4]), _map("b", [0.4, 0.3, 0.2, 0.1])])
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT item_id, status FROM predictions ORDER BY 1").fetchall() == [("a", "ok"), ("b", "ok")]
        grids = con.execute("SELECT grid FROM attention_maps ORDER BY item_id").fetchall()
    assert grids[0][0] == pytest.approx([0.1, 0.2, 0.3, 0.4]) and len(grids) == 2


@pytest.mark.parametrize("grid", [None, [None, 0.5, 0.25, 0.25], [1e39, 0.0, 0.0, 0.0]],
                         ids=["no grid", "a cell without value", "beyond float32"])
def test_a_grid_the_store_cannot_hold_is_refused_not_cast(tmp_path, grid):
    from store import RecordError
    writer = StoreWriter(tmp_path / "s.duckdb")
    writer.start_run(RunRecord(run_id="r", study="baseline", dataset="d", model_id="m", config={},
                               package_versions={}))
    with pytest.raises(RecordError, match="could not be stored"):
        writer.write_batch([], [QuestionRecord("a", "d", "img", "Is there edema?", "yes", "edema")],
                           [PredictionRecord("r", "a", 1, "ok")], [_map("a", grid)])


def test_held_blocks_overlap_across_threads_and_the_last_one_closes(tmp_path):
    from store.connection import _held, connect, held
    db = tmp_path / "s.duckdb"
    StoreWriter(db)
    inside, errors = threading.Barrier(2), []

    def block():
        try:
            with held(db):
                inside.wait(5)
                with connect(db, read_only=True) as con:
                    assert con.execute("SELECT 1").fetchall() == [(1,)]
                inside.wait(5)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=block) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == [] and _held == {}
    with duckdb.connect(str(db)) as con:  # the file is free again
        assert con.execute("SELECT count(*) FROM runs").fetchall() == [(0,)]
