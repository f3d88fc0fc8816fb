"""Translate manifest items and model results into the store's rows."""

from __future__ import annotations

import json
import math

from store import ImageRecord, PredictionRecord, QuestionRecord, image_key

from compute.data.images import ImageFile
from compute.data.manifest import ManifestItem, RowError
from compute.variants.categories import categorise
from compute.answering import AskResult


def question_record(item: ManifestItem, dataset: str) -> QuestionRecord:
    return QuestionRecord(item_id=item.item_id, dataset=dataset, image_id=item.image_id, question=item.question, ground_truth=item.answer, condition=item.condition,
                          group_id=item.group_id, variant_index=item.variant_index, strategy=item.strategy,
                          location=item.location, baseline_question=item.baseline_question,
                          strategy_category=item.strategy_category or _category(item),
                          answer_inverted=item.answer_inverted, transformation=item.transformation,
                          view=item.view, split=item.split, source=item.source,
                          attributes=json.dumps(dict(item.attributes), ensure_ascii=False) if item.attributes else None,
                          boxes=json.dumps([b.as_dict() for b in item.boxes]) if item.boxes else None,
                          mask=item.mask)


def _category(item: ManifestItem) -> str | None:
    """A manifest that carries its own variants gets its strategy labels categorised."""
    return None if item.variant_index is None else categorise(item.strategy, item.variant_index)


def invalid_row_records(error: RowError, dataset: str, run_id: str) -> tuple[QuestionRecord, PredictionRecord]:
    raw = error.raw
    question = QuestionRecord(item_id=error.item_id, dataset=dataset, image_id=_text(raw.get("image_id") or raw.get("image")),
                              question=_text(raw.get("question")), ground_truth=None,
                              condition=_text(raw.get("condition")))
    return question, failed(run_id, error.item_id, error.row_number, str(error))


def image_key_of(file: ImageFile) -> str:
    return image_key(file.sha256, str(file.path))


def image_record(file: ImageFile) -> ImageRecord:
    """The file as the model saw it: the sha256 of the bytes decoded, its resolved path."""
    return ImageRecord.of(file.sha256, str(file.path), file.image.width, file.image.height, file.format)


def prediction_record(run_id: str, item: ManifestItem, result: AskResult) -> PredictionRecord:
    return PredictionRecord(run_id=run_id, item_id=item.item_id, row_number=item.row_number, status="ok",
                            generated_text=result.text,
                            answer=result.answer, p_yes=None if math.isnan(result.p_yes) else result.p_yes, yes_no_mass=result.yes_no_mass,
                            correct=result.answer == item.answer, latency_s=result.latency_s)


def failed(run_id: str, item_id: str, row_number: int, reason: str) -> PredictionRecord:
    return PredictionRecord(run_id=run_id, item_id=item_id, row_number=row_number, status="failed", error=reason)


def _text(value) -> str | None:
    return None if value is None else str(value)
