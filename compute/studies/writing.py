"""Writing a batch so that a value the store refuses fails only the item that holds it."""

from __future__ import annotations

from dataclasses import replace

from store import ImageRecord, MapRecord, PredictionRecord, QuestionRecord, RecordError, StoreWriter


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
        return write_each(writer, images, questions, predictions, maps, dataset)


def write_each(writer: StoreWriter, images: list[ImageRecord], questions: list[QuestionRecord],
               predictions: list[PredictionRecord], maps: list[MapRecord], dataset: str) -> list[PredictionRecord]:
    """Each item in a transaction of its own; an item the store refuses is stored as failed, with why."""
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
