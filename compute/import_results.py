"""Import per-variant results written elsewhere (the original study's table shape) into a run.

Columns: study_id, baseline_question, ground_truth, variant_index, strategy, question,
generated_text, extracted_answer, is_correct. `variant_index` 0 is the baseline; a group is
one study_id with one baseline_question. Rows are kept as given, repeats included. Keys
hash the file's content and the row number, so importing the same file again replaces
rows instead of adding them. A bad row becomes a failed item naming its row and problem.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store import PredictionRecord, QuestionRecord, RunRecord, StoreWriter

from .manifest import ANSWER_ALIASES
from .provenance import file_sha256, package_versions
from .tables import read_rows
from .variants import UnparseableQuestionError, parse_question
from .variants.categories import categorise

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
    if not path.is_file():
        raise ImportError_(f"{path}: file not found")
    rows = read_rows(path, REQUIRED, ImportError_, what="results file")
    if not rows:
        raise ImportError_(f"{path}: no data rows")
    source = file_sha256(path)
    dataset = dataset or path.stem
    writer = StoreWriter(db)
    writer.start_run(RunRecord(run_id=run_id, study="phrasing-import", dataset=dataset, model_id=model_id,
                               config={"study": "phrasing-import", "source_sha256": source, "dataset": dataset},
                               package_versions=package_versions(), manifest_path=str(path), n_items=len(rows)))
    questions, predictions, failures, groups = [], [], [], set()
    for row_number, raw in rows:
        item_id = hashlib.sha1(f"{dataset}\x1f{source}\x1f{row_number}".encode()).hexdigest()[:16]
        try:
            if isinstance(raw, str):
                raise ValueError(raw)
            question, prediction = _records(raw, item_id, row_number, dataset, run_id)
        except ValueError as exc:
            reason = f"row {row_number}: {exc}"
            failures.append(reason)
            questions.append(QuestionRecord(item_id, dataset, None, None, None, None))
            predictions.append(PredictionRecord(run_id, item_id, row_number, "failed", error=reason))
            continue
        groups.add(question.group_id)
        questions.append(question)
        predictions.append(prediction)
    try:
        writer.write_batch([], questions, predictions)
    except BaseException:
        writer.finish_run(run_id, "failed")
        raise
    writer.finish_run(run_id, "completed")
    for reason in failures[:5]:
        log(f"failed: {path.name} {reason}")
    if len(failures) > 5:
        log(f"... and {len(failures) - 5} more failed rows (stored with their reasons)")
    return ImportSummary(run_id, len(rows) - len(failures), len(failures), len(groups))


def _records(raw: dict[str, Any], item_id: str, row_number: int, dataset: str,
             run_id: str) -> tuple[QuestionRecord, PredictionRecord]:
    missing = [c for c in REQUIRED if raw.get(c) in (None, "")]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    truth = ANSWER_ALIASES.get(str(raw["ground_truth"]).strip().lower())
    if truth is None:
        raise ValueError(f"ground_truth must be yes or no, got {raw['ground_truth']!r}")
    answer = ANSWERS_EXTRACTED.get(str(raw.get("extracted_answer") or "").strip().lower())
    if answer is None:
        raise ValueError(f"extracted_answer must be yes, no or uncertain, got {raw['extracted_answer']!r}")
    try:
        index = int(float(raw["variant_index"]))
    except (TypeError, ValueError):
        raise ValueError(f"variant_index must be an integer, got {raw['variant_index']!r}") from None
    correct = raw.get("is_correct")
    if correct in (None, ""):
        correct = answer == truth
    elif isinstance(correct, bool):
        pass
    elif str(correct).strip().lower() in TRUTHY:
        correct = TRUTHY[str(correct).strip().lower()]
    else:
        raise ValueError(f"is_correct must be true or false, got {correct!r}")
    study_id, baseline = str(raw["study_id"]).strip(), str(raw["baseline_question"]).strip()
    try:
        condition = parse_question(baseline).condition.key
    except UnparseableQuestionError:
        condition = None
    strategy = None if raw.get("strategy") in (None, "") else str(raw["strategy"]).strip()
    question = QuestionRecord(
        item_id=item_id, dataset=dataset, image_id=study_id, question=str(raw["question"]).strip(),
        ground_truth=truth, condition=condition, group_id=f"{study_id}: {baseline}", variant_index=index,
        strategy=strategy, baseline_question=baseline, strategy_category=categorise(strategy, index))
    generated = raw.get("generated_text")
    prediction = PredictionRecord(run_id=run_id, item_id=item_id, row_number=row_number, status="ok",
                                  generated_text=None if generated is None else str(generated), answer=answer,
                                  correct=bool(correct))
    return question, prediction
