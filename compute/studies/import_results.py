"""Import per-variant results written elsewhere (the original study's table shape) into a run.

Columns: study_id, baseline_question, ground_truth, variant_index, strategy, question,
generated_text, extracted_answer, is_correct. `variant_index` 0 is the baseline; a group is
one study_id with one baseline_question. Rows are kept as given, repeats included. Keys
hash the file's content and the row number, so importing the same file again replaces
rows instead of adding them. A bad row becomes a failed item naming its row and problem:
a variant_index that is not a whole number in range, an is_correct that contradicts the
answers. An import that fails partway leaves its run "failed", with the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store import PredictionRecord, QuestionRecord, RunRecord, StoreWriter

from compute.data.manifest import ANSWER_ALIASES
from compute.data.image_bytes import file_sha256
from compute.model.provenance import package_versions
from compute.studies.writing import write_or_fail_items
from compute.data.tables import read_rows
from compute.data.validate import blank, run_name, text, utf8, whole_number
from compute.data import UnparseableQuestionError, parse_question
from compute.variants.categories import categorise

COLUMNS = ("study_id", "baseline_question", "ground_truth", "variant_index", "strategy", "question",
           "generated_text", "extracted_answer", "is_correct")
REQUIRED = ("study_id", "baseline_question", "ground_truth", "variant_index", "question")  # the rest may be blank
ANSWERS_EXTRACTED = {**ANSWER_ALIASES, "uncertain": "uncertain", "unclear": "uncertain", "": "uncertain"}
TRUTHY = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class ImportError_(ValueError):  # noqa: N801 - "ImportError" is a builtin
    """The file as a whole cannot be imported."""


@dataclass(frozen=True)
class ImportSummary:
    run_id: str
    imported: int
    failed: int
    groups: int

    def __str__(self) -> str:
        return f"run {self.run_id}: {self.imported} rows imported ({self.groups} groups), {self.failed} failed"


def import_results(path: str | Path, db: str | Path, run_id: str, *, dataset: str | None = None,
                   model_id: str = "imported", log: Callable[[str], None] = print) -> ImportSummary:
    path = Path(path)
    try:
        run_name(run_id)
        utf8(path, "results file path")
        utf8(model_id, "model")
        dataset = utf8(dataset or path.stem, "dataset name", "pass --dataset with a name of its own")
    except ValueError as exc:
        raise ImportError_(str(exc)) from None
    if not path.is_file():
        raise ImportError_(f"{path}: file not found")
    rows = read_rows(path, REQUIRED, ImportError_, what="results file")
    if not rows:
        raise ImportError_(f"{path}: no data rows")
    source = file_sha256(path)
    writer = StoreWriter(db)
    writer.start_run(RunRecord(run_id=run_id, study="phrasing-import", dataset=dataset, model_id=model_id,
                               config={"study": "phrasing-import", "source_sha256": source, "dataset": dataset},
                               package_versions=package_versions(), manifest_path=str(path), n_items=len(rows)))
    try:
        failures, groups = _import_rows(writer, rows, dataset, source, run_id)
    except BaseException as exc:
        writer.finish_run(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    writer.finish_run(run_id, "completed")
    for reason in failures[:5]:
        log(f"failed: {path.name} {reason}")
    if len(failures) > 5:
        log(f"... and {len(failures) - 5} more failed rows (stored with their reasons)")
    return ImportSummary(run_id, len(rows) - len(failures), len(failures), groups)


def _import_rows(writer: StoreWriter, rows, dataset: str, source: str, run_id: str) -> tuple[list[str], int]:
    """Write every row, a bad one as a failed item; returns (failure reasons, groups)."""
    questions, predictions = [], []
    for row_number, raw in rows:
        item_id = hashlib.sha1(f"{dataset}\x1f{source}\x1f{row_number}".encode()).hexdigest()[:16]
        try:
            if isinstance(raw, str):
                raise ValueError(raw)
            question, prediction = _records(raw, item_id, row_number, dataset, run_id)
        except ValueError as exc:
            question, prediction = _failed(item_id, row_number, dataset, run_id, f"row {row_number}: {exc}")
        questions.append(question)
        predictions.append(prediction)
    stored = write_or_fail_items(writer, [], questions, predictions, [], dataset)
    groups = {q.group_id for q, p in zip(questions, stored) if p.status == "ok"}
    return [p.error for p in stored if p.status == "failed"], len(groups)


def _failed(item_id: str, row_number: int, dataset: str, run_id: str,
            reason: str) -> tuple[QuestionRecord, PredictionRecord]:
    return (QuestionRecord(item_id, dataset, None, None, None, None),
            PredictionRecord(run_id, item_id, row_number, "failed", error=reason))


def _records(raw: dict[str, Any], item_id: str, row_number: int, dataset: str,
             run_id: str) -> tuple[QuestionRecord, PredictionRecord]:
    missing = [c for c in REQUIRED if blank(raw.get(c))]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    truth = ANSWER_ALIASES.get(str(raw["ground_truth"]).strip().lower())
    if truth is None:
        raise ValueError(f"ground_truth must be yes or no, got {raw['ground_truth']!r}")
    answer = ANSWERS_EXTRACTED.get(str(raw.get("extracted_answer") or "").strip().lower())
    if answer is None:
        raise ValueError(f"extracted_answer must be yes, no or uncertain, got {raw['extracted_answer']!r}")
    index = whole_number(raw["variant_index"], "variant_index")
    correct = _is_correct(raw.get("is_correct"), answer, truth)
    study_id, baseline = text(raw["study_id"], "study_id"), text(raw["baseline_question"], "baseline_question")
    try:
        condition = parse_question(baseline).condition.key
    except UnparseableQuestionError:
        condition = None
    strategy = text(raw.get("strategy"), "strategy")
    question = QuestionRecord(
        item_id=item_id, dataset=dataset, image_id=study_id, question=text(raw["question"], "question"),
        ground_truth=truth, condition=condition, group_id=f"{study_id}: {baseline}", variant_index=index,
        strategy=strategy, baseline_question=baseline, strategy_category=categorise(strategy, index))
    generated = raw.get("generated_text")
    prediction = PredictionRecord(run_id=run_id, item_id=item_id, row_number=row_number, status="ok",
                                  generated_text=None if generated is None else text(generated, "generated_text"),
                                  answer=answer, correct=correct)
    return question, prediction


def _is_correct(value: Any, answer: str, truth: str) -> bool:
    """The given is_correct, which must agree with the answers ("uncertain" is never correct);
    computed from them when blank."""
    computed = answer == truth
    if value in (None, ""):
        return computed
    given = value if isinstance(value, bool) else TRUTHY.get(str(value).strip().lower())
    if given is None:
        raise ValueError(f"is_correct must be true or false, got {value!r}")
    if given != computed:
        raise ValueError(f"is_correct is {str(given).lower()}, but the extracted answer {answer!r} "
                         f"{'equals' if computed else 'differs from'} the ground truth {truth!r}")
    return given
