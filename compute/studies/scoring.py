"""Storing an answered batch in two halves: the Python half (scoring its maps, building its Arrow
tables) on the model's thread, and DuckDB's transaction, which a background thread can run."""

from __future__ import annotations

from dataclasses import dataclass, replace

from store import ImageRecord, MapRecord, PredictionRecord, QuestionRecord, RecordError, StoreWriter
from store.writer import PreparedBatch

from compute.studies import records
from compute.studies.maps import BodyCells, ItemMaps, map_rows
from compute.studies.writing import write_each


def score(writer: StoreWriter, bodies: BodyCells, run_id: str, model_id: str, predictions: list[PredictionRecord],
          made: list[ItemMaps], batch: tuple[list[ImageRecord], list[QuestionRecord]]) -> PendingWrite:
    """The Python half of storing a batch, on the model's thread: its maps' rows and metrics (an
    item whose maps cannot be scored is stored as failed, with the reason) and the Arrow tables.
    The other half (`write`: DuckDB's transaction) can then run on a background thread without
    holding the interpreter: a thread busy in Python makes each of the model's operations wait for
    it to let go."""
    rows, problems = map_rows(run_id, model_id, made, bodies)
    predictions = [replace(records.failed(p.run_id, p.item_id, p.row_number, f"row {p.row_number}: "
                                          f"{problems[p.item_id]}"), image_key=p.image_key)  # the image it failed on
                   if p.item_id in problems else p for p in predictions]
    images, questions = batch
    try:
        prepared = writer.prepare_batch(images, questions, predictions, rows)
    except RecordError:
        prepared = None  # written item by item, so that only the item holding the value fails
    return PendingWrite(images, questions, predictions, rows, prepared)


@dataclass(frozen=True)
class PendingWrite:
    images: list[ImageRecord]
    questions: list[QuestionRecord]
    predictions: list[PredictionRecord]
    maps: list[MapRecord]
    prepared: PreparedBatch | None  # None: a value Arrow cannot hold; written item by item


def write(writer: StoreWriter, pending: PendingWrite, dataset: str) -> list[PredictionRecord]:
    """Store a scored batch in one transaction (else item by item, see write_or_fail_items); returns
    the predictions as stored."""
    if pending.prepared is not None:
        try:
            writer.write_prepared(pending.prepared)
            return pending.predictions
        except RecordError:
            pass
    return write_each(writer, pending.images, pending.questions, pending.predictions, pending.maps, dataset)
