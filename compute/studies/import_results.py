"""Import per-row results written elsewhere into a run: a baseline table (one answer per
question) or a phrasing table (each baseline question with its rewrites).

The file's columns are named per key by `columns` (the CLI's `--map key=COLUMN,…`; see KEYS).
A key the map leaves out uses the column of its default name when the file has one (the
original study's shape: study_id, baseline_question, ground_truth, variant_index, strategy,
question, generated_text, extracted_answer, is_correct), so that file imports with no map.
A key with no column is derived where it can be: the answer from the reply with the
project's extractor, correctness from the answer and the ground truth ("uncertain" is never
correct), the condition from the baseline question (or the question). A condition column may
hold short terms ("effusion", "pleural"): they go through the vocabulary's label table.

With variant_index and baseline_question the import is a phrasing import (study
"phrasing-import"): `variant_index` 0 is the baseline, and a group is one image id with one
baseline question, or the baseline question alone when there is no image id. Without them it
is a baseline import (study "baseline-import"). Rows are kept as given, repeats included.
Keys hash the file's content and the row number (and the map, when one is given), so
importing the same file again replaces rows instead of adding them. A bad row becomes a
failed item naming its row and problem: a ground truth that is not yes or no, a
variant_index that is not a whole number in range, a correctness that contradicts the
answers. An import that fails partway leaves its run "failed", with the reason.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store import PredictionRecord, QuestionRecord, RunRecord, StoreWriter

from compute.data.image_bytes import file_sha256
from compute.data.label_names import condition_from_term, condition_in_text
from compute.data.manifest import ANSWER_ALIASES
from compute.data.tables import read_rows
from compute.data.validate import blank, run_name, text, utf8, whole_number
from compute.model.answers import extract_answer  # no torch: compute.model re-exports lazily
from compute.model.provenance import package_versions
from compute.studies.writing import write_or_fail_items
from compute.variants.categories import categorise

# key -> (its column in the original study's shape, what it holds)
KEYS: dict[str, tuple[str, str]] = {
    "image_id": ("study_id", "image or study id"),
    "question": ("question", "the question asked"),
    "ground_truth": ("ground_truth", "the ground truth: yes or no (also y/n, true/false, 1/0)"),
    "reply": ("generated_text", "the model's reply text"),
    "answer": ("extracted_answer", "the extracted answer: yes, no or uncertain"),
    "correct": ("is_correct", "correctness: true or false"),
    "condition": ("condition", "condition or term (\"effusion\", \"Pleural Effusion\")"),
    "baseline_question": ("baseline_question", "the baseline question of the row's group"),
    "variant_index": ("variant_index", "the variant index (0 = the baseline)"),
    "strategy": ("strategy", "the rewrite strategy (free text)"),
}
COLUMNS = ("study_id", "baseline_question", "ground_truth", "variant_index", "strategy", "question",
           "generated_text", "extracted_answer", "is_correct")  # the original study's shape
BASELINE_IMPORT, PHRASING_IMPORT = "baseline-import", "phrasing-import"  # the runs' study names
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
    study: str = PHRASING_IMPORT

    def __str__(self) -> str:
        kind = f"{self.groups} groups" if self.study == PHRASING_IMPORT else "a baseline import"
        return f"run {self.run_id}: {self.imported} rows imported ({kind}), {self.failed} failed"


def parse_map(spec: str) -> dict[str, str]:
    """`key=COLUMN,key=COLUMN` as {key: column}. ImportError_ for an unknown or repeated key,
    or an entry that is not key=COLUMN."""
    entries = [e for e in (spec or "").split(",")]
    if not any(e.strip() for e in entries):
        raise ImportError_(f"--map is empty; give key=COLUMN pairs separated by commas, e.g. {EXAMPLE_MAP}")
    out: dict[str, str] = {}
    for entry in entries:
        key, sep, column = (part.strip() for part in entry.partition("="))
        if not sep or not key or not column:
            raise ImportError_(f"--map entry {entry.strip()!r} is not key=COLUMN (e.g. question=q); "
                               f"--map takes key=COLUMN pairs separated by commas")
        if key not in KEYS:
            raise ImportError_(f"--map names the unknown key {key!r}; the keys are {', '.join(KEYS)}")
        if key in out:
            raise ImportError_(f"--map names the key {key!r} twice (columns {out[key]!r} and {column!r})")
        out[key] = column
    return out


EXAMPLE_MAP = "image_id=ImagePath,question=q,ground_truth=gt,reply=model_output"


@dataclass(frozen=True)
class _Columns:
    """Each key's column in the file (None: none, derive it) and the study it makes."""

    of: dict[str, str | None]

    @property
    def phrasing(self) -> bool:
        return self.of["variant_index"] is not None

    def value(self, raw: Mapping[str, Any], key: str) -> Any:
        column = self.of[key]
        return None if column is None else raw.get(column)

    def label(self, key: str) -> str:
        """The key's column as messages name it: "gt (ground_truth)" where the name alone
        would not say which key it is."""
        column = self.of[key] or key
        return column if column in (key, KEYS[key][0]) else f"{column} ({key})"

    def describe(self) -> str:
        given = ", ".join(f"{k}={c}" for k, c in self.of.items() if c is not None)
        derived = [f"{k} ({how})" for k, how in (
            ("answer", "extracted from reply"), ("correct", "from answer and ground_truth"),
            ("condition", "parsed from " + ("baseline_question" if self.phrasing else "question")))
            if self.of[k] is None]
        return f"columns {given}" + (f"; derived: {', '.join(derived)}" if derived else "")


def import_results(path: str | Path, db: str | Path, run_id: str, *, dataset: str | None = None,
                   model_id: str = "imported", columns: str | Mapping[str, str] | None = None,
                   log: Callable[[str], None] = print) -> ImportSummary:
    """Import the results table at `path` into run `run_id` of the store `db`. `columns`
    maps keys (KEYS) onto the file's column names: a dict, or the text `key=COLUMN,…`."""
    path = Path(path)
    explicit = parse_map(columns) if isinstance(columns, str) else dict(columns or {})
    unknown = [k for k in explicit if k not in KEYS]
    if unknown:
        raise ImportError_(f"unknown column key(s) {', '.join(map(repr, unknown))}; the keys are {', '.join(KEYS)}")
    try:
        run_name(run_id)
        utf8(path, "results file path")
        utf8(model_id, "model")
        for key, column in explicit.items():
            utf8(column, f"--map column for {key}")
        dataset = utf8(dataset or path.stem, "dataset name", "pass --dataset with a name of its own")
    except ValueError as exc:
        raise ImportError_(str(exc)) from None
    if not path.is_file():
        raise ImportError_(f"{path}: file not found")
    rows = read_rows(path, (), ImportError_, what="results file", multiline=True)
    if not rows:
        raise ImportError_(f"{path}: no data rows")
    plan = _resolve(path, rows, explicit)
    study = PHRASING_IMPORT if plan.phrasing else BASELINE_IMPORT
    source = file_sha256(path)
    # One file read two ways makes two sets of items; a map that names the default columns reads it the usual way.
    renamed = {k: c for k, c in sorted(explicit.items()) if c != KEYS[k][0]}
    salt = json.dumps(renamed) if renamed else ""
    config = {"study": study, "source_sha256": source, "dataset": dataset, **({"columns": renamed} if renamed else {})}
    writer = StoreWriter(db)
    writer.start_run(RunRecord(run_id=run_id, study=study, dataset=dataset, model_id=model_id, config=config,
                               package_versions=package_versions(), manifest_path=str(path), n_items=len(rows)))
    log(f"import {path.name} as a {study.replace('-', ' ')}: {plan.describe()}")
    try:
        failures, groups = _import_rows(writer, rows, plan, dataset, source + salt, run_id)
    except BaseException as exc:
        writer.finish_run(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    writer.finish_run(run_id, "completed")
    for reason in failures[:5]:
        log(f"failed: {path.name} {reason}")
    if len(failures) > 5:
        log(f"... and {len(failures) - 5} more failed rows (stored with their reasons)")
    return ImportSummary(run_id, len(rows) - len(failures), len(failures), groups, study)


def _resolve(path: Path, rows, explicit: dict[str, str]) -> _Columns:
    """Each key's column: the map's, else its default name's where the file has that column."""
    found = _file_columns(path, rows)
    shown = ", ".join(found) or "none"
    lacking = {k: c for k, c in explicit.items() if c not in found}
    if lacking:
        named = ", ".join(f"{c!r} (for {k})" for k, c in lacking.items())
        raise ImportError_(f"{path}: --map names column(s) {named} that the file lacks; its columns: {shown}")
    of = {k: explicit.get(k, default if default in found else None) for k, (default, _) in KEYS.items()}
    for key in ("question", "ground_truth"):
        if of[key] is None:
            raise ImportError_(f"{path}: no column for {key} (looked for {KEYS[key][0]!r}); its columns: {shown}; "
                               f"name it with --map {key}=COLUMN")
    if of["reply"] is None and of["answer"] is None:
        raise ImportError_(f"{path}: no column for the reply or the answer (looked for {KEYS['reply'][0]!r} and "
                           f"{KEYS['answer'][0]!r}); its columns: {shown}; name one with --map reply=COLUMN "
                           "(the answer is then extracted from it) or --map answer=COLUMN")
    pair = [k for k in ("variant_index", "baseline_question") if of[k] is not None]
    if len(pair) == 1:
        other = next(k for k in ("variant_index", "baseline_question") if k not in pair)
        raise ImportError_(f"{path}: a phrasing import needs both variant_index and baseline_question, but only "
                           f"{pair[0]} has a column ({of[pair[0]]!r}); its columns: {shown}; name the other with "
                           f"--map {other}=COLUMN (a baseline import has neither)")
    return _Columns(of)


def _file_columns(path: Path, rows) -> list[str]:
    """The CSV/TSV header (read_rows has checked it), or every key a JSONL row has."""
    if path.suffix.lower() in (".csv", ".tsv"):
        with path.open(encoding="utf-8-sig", newline="") as f:
            for record in csv.reader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ","):
                if any(name.strip() for name in record):
                    return [name.strip() for name in record if name.strip()]
        return []
    keys: dict[str, None] = {}
    for _, raw in rows:
        if isinstance(raw, dict):
            keys.update(dict.fromkeys(raw))
    return list(keys)


def _import_rows(writer: StoreWriter, rows, plan: _Columns, dataset: str, source: str,
                 run_id: str) -> tuple[list[str], int]:
    """Write every row, a bad one as a failed item; returns (failure reasons, groups)."""
    questions, predictions = [], []
    for row_number, raw in rows:
        item_id = hashlib.sha1(f"{dataset}\x1f{source}\x1f{row_number}".encode()).hexdigest()[:16]
        try:
            if isinstance(raw, str):
                raise ValueError(raw)
            question, prediction = _records(raw, plan, item_id, row_number, dataset, run_id)
        except ValueError as exc:
            question, prediction = _failed(item_id, row_number, dataset, run_id, f"row {row_number}: {exc}")
        questions.append(question)
        predictions.append(prediction)
    stored = write_or_fail_items(writer, [], questions, predictions, [], dataset)
    groups = {q.group_id for q, p in zip(questions, stored) if p.status == "ok" and q.group_id is not None}
    return [p.error for p in stored if p.status == "failed"], len(groups)


def _failed(item_id: str, row_number: int, dataset: str, run_id: str,
            reason: str) -> tuple[QuestionRecord, PredictionRecord]:
    return (QuestionRecord(item_id, dataset, None, None, None, None),
            PredictionRecord(run_id, item_id, row_number, "failed", error=reason))


def _records(raw: dict[str, Any], plan: _Columns, item_id: str, row_number: int, dataset: str,
             run_id: str) -> tuple[QuestionRecord, PredictionRecord]:
    col = plan.of
    needed = ["image_id", "question", "ground_truth"]
    if plan.phrasing:
        needed += ["baseline_question", "variant_index"]
    missing = [plan.label(k) for k in needed if col[k] is not None and blank(plan.value(raw, k))]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    given_truth = plan.value(raw, "ground_truth")
    truth = ANSWER_ALIASES.get(str(given_truth).strip().lower())
    if truth is None:
        raise ValueError(f"{plan.label('ground_truth')} must be yes or no, got {given_truth!r}")

    def field(key: str) -> str | None:
        return text(plan.value(raw, key), plan.label(key)) if col[key] else None

    reply = field("reply")
    if reply is not None:
        reply = reply.replace("\r\n", "\n")
    answer = _answer(plan, raw, reply)
    correct = _is_correct(plan.value(raw, "correct"), answer, truth, plan.label("correct")) if col["correct"] \
        else answer == truth
    image_id, asked, strategy, term = field("image_id"), field("question"), field("strategy"), field("condition")
    index = whole_number(plan.value(raw, "variant_index"), plan.label("variant_index")) if plan.phrasing else None
    baseline = field("baseline_question") if plan.phrasing else None
    condition = condition_from_term(term, baseline or asked) if term else condition_in_text(baseline or asked)
    group = None if not plan.phrasing else f"{image_id}: {baseline}" if image_id else baseline
    question = QuestionRecord(
        item_id=item_id, dataset=dataset, image_id=image_id, question=asked, ground_truth=truth, condition=condition,
        group_id=group, variant_index=index, strategy=strategy, baseline_question=baseline,
        strategy_category=categorise(strategy, index) if plan.phrasing else None)
    prediction = PredictionRecord(run_id=run_id, item_id=item_id, row_number=row_number, status="ok",
                                  generated_text=reply, answer=answer, correct=correct)
    return question, prediction


def _answer(plan: _Columns, raw: dict[str, Any], reply: str | None) -> str:
    """The answer column's yes/no/uncertain (blank: uncertain), else the reply's, extracted."""
    column = plan.of["answer"]
    if column is None:
        return extract_answer(reply)
    given = plan.value(raw, "answer")
    answer = ANSWERS_EXTRACTED.get(str(given if given is not None else "").strip().lower())
    if answer is None:
        hint = "" if plan.of["reply"] else f" (to extract answers from reply text, map it with --map reply={column})"
        raise ValueError(f"{plan.label('answer')} must be yes, no or uncertain, got {given!r}{hint}")
    return answer


def _is_correct(value: Any, answer: str, truth: str, column: str) -> bool:
    """The given correctness, which must agree with the answers ("uncertain" is never correct);
    computed from them when blank."""
    computed = answer == truth
    if value in (None, ""):
        return computed
    given = value if isinstance(value, bool) else TRUTHY.get(str(value).strip().lower())
    if given is None:
        raise ValueError(f"{column} must be true or false, got {value!r}")
    if given != computed:
        raise ValueError(f"{column} is {str(given).lower()}, but the extracted answer {answer!r} "
                         f"{'equals' if computed else 'differs from'} the ground truth {truth!r}")
    return given
