"""The shared names are defined once (vocabulary) and every layer agrees with them: the store's
columns, the metrics' keys, the options' choices and the stored change types."""

from dataclasses import fields

import duckdb
import numpy as np

from compute.config import MapConfig
from compute.maps.spec import METHODS, MapSpec
from compute.metrics import attention_metrics, compare_maps
from compute.metrics.attention_change import CHANGE_TYPES, answer_change, correctness_change
from store import MapRecord, StoreWriter
from compute.metrics.lesion import lesion_metrics
from vocabulary import (BODY_METRICS, COMPARISON_METRICS, FAITHFULNESS_METRICS, LESION_METRICS, MAP_METRICS, MAP_QUERIES,
                        AnswerChange, CorrectnessChange, Method, Study)


def _columns(db, table):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                                          "ORDER BY ordinal_position", [table]).fetchall()]
    finally:
        con.close()


def test_store_columns_are_the_vocabularys_metrics(tmp_path):
    db = tmp_path / "s.duckdb"
    StoreWriter(db)  # creates the schema
    maps = _columns(db, "attention_maps")
    start = maps.index(MAP_METRICS[0])
    assert maps[start:start + len(MAP_METRICS)] == list(MAP_METRICS)
    assert maps[start + len(MAP_METRICS):start + len(MAP_METRICS) + 3] == list(FAITHFULNESS_METRICS)
    changes = _columns(db, "attention_changes")
    start = changes.index(COMPARISON_METRICS[0])
    assert changes[start:start + len(COMPARISON_METRICS)] == list(COMPARISON_METRICS)
    start = maps.index(LESION_METRICS[0])
    assert maps[start:start + len(LESION_METRICS)] == list(LESION_METRICS)
    assert maps[-2:] == ["sink_mass", "details"]  # schema 6
    record = [f.name for f in fields(MapRecord)]
    assert set(MAP_METRICS) | set(FAITHFULNESS_METRICS) | set(LESION_METRICS) <= set(record)


def test_metrics_return_the_vocabularys_names():
    grid = np.arange(1, 17, dtype=float).reshape(4, 4)
    assert tuple(attention_metrics(grid)) == MAP_METRICS
    assert tuple(lesion_metrics(grid, np.eye(4))) == LESION_METRICS
    assert set(BODY_METRICS) < set(MAP_METRICS)
    assert tuple(k for k in compare_maps(grid, grid.T) if k != "difference") == COMPARISON_METRICS


def test_options_offer_the_vocabularys_choices():
    assert METHODS == tuple(Method) and MapSpec().method is Method.ATTENTION
    for query in MAP_QUERIES:
        assert MapConfig(query=query).query == query
    assert {str(q) for q in MAP_QUERIES} == {"answer", "question", "generated"}


def test_every_study_has_its_kind():
    from compute.studies import STUDY_KINDS
    assert set(STUDY_KINDS) == set(Study) and all(STUDY_KINDS[s].name is s for s in Study)


def test_change_types_are_the_vocabularys():
    assert answer_change("yes", "no") is AnswerChange.YES_TO_NO and answer_change("no", "yes") is AnswerChange.NO_TO_YES
    assert answer_change("yes", "uncertain") is AnswerChange.OTHER and answer_change("no", "no") is AnswerChange.UNCHANGED
    assert correctness_change(True, False) is CorrectnessChange.CORRECT_TO_WRONG
    assert correctness_change(False, True) is CorrectnessChange.WRONG_TO_CORRECT
    assert set(CHANGE_TYPES) <= set(AnswerChange) | set(CorrectnessChange)
    assert AnswerChange("yes→no") == "yes→no"  # names read back from the store are the members
