"""Medical-CXR-VQA (Hu et al., on MIMIC-CXR): one CSV of questions, one row per question.

Columns: dicom_id, subject_id, study_id, question, question_type, answer, split, image_path.
Medical-Diff-VQA's single-image questions come in the same shape. Rows whose answer is yes
or no (after normalising "Yes", "no.") become questions, whatever their question_type; the
others are counted as skipped per question_type, and `difference` rows (which compare two
studies) are always skipped. The condition and location come from the question's text
(`parse_question`, else a label `condition_in_text` finds); a yes/no question naming no
condition we know ("is there any abnormality?") is kept under its normalised question_type
("abnormality"), and the summary lists those among the labels outside the nine.

"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from compute.data.datasets import DatasetFormat
from compute.data.datasets.build_log import BuildLog
from compute.data.datasets.output import yes_no
from compute.data.datasets.question_fields import prefixed, text_values, with_conditions
from compute.data.datasets.readers import DatasetError, given_file, inside_root, read_csv

COLUMNS = ("dicom_id", "subject_id", "study_id", "question", "question_type", "answer", "split", "image_path")
TWO_STUDY_TYPES = ("difference",)  # Medical-Diff-VQA: compares a study with a reference study


@dataclass(frozen=True)
class MedicalCxrVqaOptions:
    file: Path | None = field(default=None, metadata={
        "metavar": "FILE", "help": "the question CSV (relative to --root, or a path); by default the one .csv or "
                                   ".csv.gz at the top of --root whose header has this format's columns"})
    images: Path | None = field(default=None, metadata={
        "metavar": "DIR", "help": "the folder inside --root that image_path is relative to (default: --root "
                                  "itself); an absolute image_path is read from its files/ part on, relative to "
                                  "--root"})
    split: str | None = field(default=None, metadata={
        "metavar": "SPLIT", "help": "keep only the rows of this split, as the split column writes it (e.g. train, "
                                    "val, test); default: every row"})


# --- the format ----------------------------------------------------------------------------------

def read(root: Path, options: MedicalCxrVqaOptions, log: BuildLog) -> pd.DataFrame:
    path = given_file(root, options.file) if options.file else _find_csv(root)
    table = read_csv(path, COLUMNS, log, what="question file")
    if options.split:
        split = text_values(table["split"]).str.lower()
        table = log.skip_rows(f"split is not {options.split} (--split)", table,
                              split.ne(options.split.strip().lower()).fillna(True),
                              lambda row: f"split {row['split']!r}")
    kind = text_values(table["question_type"]).str.lower()
    table = log.skip_rows("question_type 'difference' compares two studies (one image per question here)", table,
                          kind.isin(TWO_STUDY_TYPES))
    kind = kind.loc[table.index].fillna("blank")
    answers = yes_no(table["answer"].fillna(""))
    for name in sorted(kind[answers.isna()].unique()):
        table = log.skip_rows(f"not a yes/no question (question_type {name})", table,
                              (kind.loc[table.index] == name) & answers.loc[table.index].isna(),
                              lambda row: f"answer {row['answer']!r}")
    table = table.assign(answer=answers.loc[table.index])

    image = text_values(table["image_path"]).str.replace("\\", "/", regex=False).str.replace(r"^(\./)+", "", regex=True)
    absolute = (image.str.match(r"^(/|[A-Za-z]:/)").fillna(False)
                & image.str.contains("/files/", regex=False).fillna(False))
    from_files = image.str.replace(r"^.*/(files/.*)$", r"\1", regex=True)
    image = prefixed(inside_root(root, options.images, "--images"), image).where(~absolute, from_files)
    built = ("files/p" + table["subject_id"].str[:2] + "/p" + table["subject_id"] + "/s" + table["study_id"] + "/"
             + table["dicom_id"] + ".jpg")  # image_path blank: the MIMIC-CXR-JPG path of the dicom
    rows = pd.DataFrame({
        "image": image.fillna(built), "question": text_values(table["question"]), "answer": table["answer"],
        "image_id": text_values(table["dicom_id"]), "split": text_values(table["split"]), "source": table["source"],
        "subject_id": text_values(table["subject_id"]), "study_id": text_values(table["study_id"]),
        "question_type": text_values(table["question_type"]),
    }, index=table.index)
    return with_conditions(rows, rows["question_type"], "question_type", log).reset_index(drop=True)


def _find_csv(root: Path) -> Path:
    candidates = sorted(p for p in root.iterdir() if p.is_file() and p.name.lower().endswith((".csv", ".csv.gz")))
    if not candidates:
        raise DatasetError(f"{root}: no question CSV (.csv or .csv.gz) at the top of the folder; pass --file FILE")
    if len(candidates) == 1:
        return candidates[0]  # read_csv names any column it lacks
    headers = {p: _header(p) for p in candidates}
    matching = [p for p, columns in headers.items() if set(COLUMNS) <= set(columns)]
    if len(matching) == 1:
        return matching[0]
    if matching:
        raise DatasetError(f"{root}: several question CSVs ({', '.join(p.name for p in matching)}); pass --file FILE")
    found = "; ".join(f"{p.name}: {', '.join(c) or 'unreadable'}" for p, c in headers.items())
    raise DatasetError(f"{root}: no CSV has the columns {', '.join(COLUMNS)} (found {found}). Medical-Diff-VQA's "
                       "mimic_pair_questions.csv has no image_path; its questions need a CSV in this shape")


def _header(path: Path) -> list[str]:
    try:
        return [str(c).strip() for c in pd.read_csv(path, nrows=0, dtype=str, compression="infer",
                                                    encoding="utf-8-sig").columns]
    except Exception:  # an unreadable candidate simply does not match
        return []


FORMAT = DatasetFormat(
    name="medical-cxr-vqa", summary="Medical-CXR-VQA / Medical-Diff-VQA single-image questions (one CSV)",
    description="--root is the MIMIC-CXR-JPG folder that image_path is relative to, holding the question CSV "
                "(dicom_id, subject_id, study_id, question, question_type, answer, split, image_path) or given "
                "with --file. Yes/no rows become questions; other rows are counted per question_type. The "
                "condition comes from the question's text, else the normalised question_type.",
    options=MedicalCxrVqaOptions, read=read)
