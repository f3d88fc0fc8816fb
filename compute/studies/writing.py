"""Writing a batch so that a value the store refuses fails only the item that holds it."""

from __future__ import annotations

from dataclasses import dataclass, replace

from store import ImageRecord, MapRecord, PredictionRecord, QuestionRecord, RecordError, StoreWriter
from store.writer import PreparedBatch

from compute.studies import records
from compute.studies.maps import BodyCells, ItemMaps, map_rows


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
    return _write_each(writer, pending.images, pending.questions, pending.predictions, pending.maps, dataset)


def write_or_fail_items(writer: StoreWriter, images: list[ImageRecord], questions: list[QuestionRecord],
                        predictions: list[PredictionRecord], maps: list[MapRecord], dataset: str
                        ) -> list[PredictionRecord]:
    """Write the batch in one transaction. If the store refuses a value (RecordError), write
    it item by item, and store each refused item as failed with the store's reason. Returns
    the predictions as stored."""
    try:
        writer.write_batch(images, questions, predictions, maps)
        return predictions
    except RecordError:
        return _write_each(writer, images, questions, predictions, maps, dataset)


def _write_each(writer: StoreWriter, images: list[ImageRecord], questions: list[QuestionRecord],
                predictions: list[PredictionRecord], maps: list[MapRecord], dataset: str) -> list[PredictionRecord]:
    image_of = {i.image_key: i for i in images}
    question_of = {q.item_id: q for q in questions}
    stored = []
    for p in predictions:
        question = question_of[p.item_id]
        try:
            writer.write_batch([image_of[p.image_key]] if p.image_key in image_of else [], [question], [p],
                               [m for m in maps if m.item_id == p.item_id])
            stored.append(p)
            continue
        except RecordError as exc:
            failed = PredictionRecord(p.run_id, p.item_id, p.row_number, "failed",
                                      error=f"row {p.row_number}: the result could not be stored ({exc})")
        stored.append(_write_failed(writer, question, failed, dataset))
    return stored


def _write_failed(writer: StoreWriter, question: QuestionRecord, failed: PredictionRecord,
                  dataset: str) -> PredictionRecord:
    """The failed item with its question as it is (other runs of the same manifest share the
    row); else without its row number, the one value of the prediction left; else with a
    blank question too."""
    unnumbered = replace(failed, row_number=None)
    attempts = [(question, failed), (question, unnumbered),
                (QuestionRecord(question.item_id, dataset, None, None, None, None), unnumbered)]
    for k, (q, p) in enumerate(attempts):
        try:
            writer.write_batch([], [q], [p])
            return p
        except RecordError:
            if k == len(attempts) - 1:
                raise
    raise AssertionError("unreachable")
