"""Fields that the question formats (medical-cxr-vqa, mimic-cxr-vqa, vqa-rad, slake) read
alike: text cells, the condition and location a question names, the fallback label of a
question that names no known condition, and folders given as options."""

from __future__ import annotations

import re

import pandas as pd

from compute.data.conditions import LOCATION_PHRASES
from compute.data.datasets.build_log import BuildLog
from compute.data.label_names import condition_in_text, normalise_label
from compute.data.question_parser import UnparseableQuestionError, parse_question


def text_values(values: pd.Series, blanks: tuple[str, ...] = ()) -> pd.Series:
    """Values read from CSV or JSON as stripped text; missing, blank and any of `blanks`
    (compared case-insensitively, e.g. VQA-RAD's "NULL") as NaN."""
    text = values.astype(str).str.strip()
    empty = text.isna() | (text == "") | text.str.lower().isin([b.lower() for b in blanks])
    return text.where(~empty)


def question_conditions(questions: pd.Series) -> pd.DataFrame:
    """Per question, `condition`: the study condition parse_question finds, else a table label
    that condition_in_text finds as whole words ("effusion"), else NaN; and `location`: the
    location phrase as written, where parse_question finds one. Each distinct text is parsed once."""
    distinct = pd.Series(questions.dropna().astype(str).unique(), dtype=object)
    parsed = pd.DataFrame(distinct.map(_parse).tolist(), columns=["condition", "location"], index=distinct,
                          dtype=object)
    keys = questions.astype(object)
    return pd.DataFrame({"condition": keys.map(parsed["condition"]), "location": keys.map(parsed["location"])},
                        index=questions.index)


def _parse(question: str) -> tuple[str | None, str | None]:
    named = condition_in_text(question)  # a qualified finding ("pericardial effusion") before the nine's terms
    try:
        parsed = parse_question(question)
    except UnparseableQuestionError:
        return named, _location(question)
    return named, parsed.location


def _location(question: str) -> str | None:
    """The longest location phrase the text names as whole words, as written, where
    parse_question finds no condition ("Is the right lower lobe consolidated?")."""
    found = [match.group(0) for phrases in LOCATION_PHRASES.values() for phrase in phrases
             if (match := re.search(rf"\b{re.escape(phrase)}\b", question, re.IGNORECASE))]
    return max(found, key=len) if found else None


def fallback_key(values: pd.Series, default: str = "other") -> pd.Series:
    """A normalised label ("Abnormality" -> "abnormality", "PRES, POS" -> "pres_pos") for
    questions that name no condition we know; `default` where the value is blank."""
    text = text_values(values).fillna("")
    keys = text.map({v: normalise_label(v) for v in text.unique()})
    return keys.where(keys != "", default)


def note_fallbacks(log: BuildLog, rows: pd.DataFrame, fallback: pd.Series, what: str) -> None:
    """A summary line counting the questions kept under their `what` instead of a condition."""
    if fallback.any():
        counts = rows.loc[fallback, "condition"].value_counts()
        n = int(fallback.sum())
        log.note(f"{n:,} {'question names' if n == 1 else 'questions name'} no condition we know; kept under "
                 f"{'its' if n == 1 else 'their'} {what}: " + ", ".join(f"{k} {c:,}" for k, c in counts.items()))


def prefixed(prefix: str, paths: pd.Series) -> pd.Series:
    return paths if not prefix else prefix + "/" + paths


def with_conditions(rows: pd.DataFrame, kind: pd.Series, what: str, log: BuildLog) -> pd.DataFrame:
    """`rows` with `condition` (from the question's text, else the normalised `kind`, the
    dataset's own question type, counted in a note) and `location` (from the text) inserted
    after `answer`."""
    parsed = question_conditions(rows["question"])
    fallback = parsed["condition"].isna()
    rows.insert(3, "condition", parsed["condition"].fillna(fallback_key(kind)))
    rows.insert(5, "location", parsed["location"])
    note_fallbacks(log, rows, fallback & rows["question"].notna(), what)
    return rows
