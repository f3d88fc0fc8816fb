"""MIMIC-CXR-VQA (Bae et al., 2023): `train.json`, `valid.json`, `test.json`, lists of records.

Fields: split, idx, subject_id, study_id, image_id, image_path, question, semantic_type,
content_type, template, template_program, template_arguments, answer. `answer` is a list:
verify questions answer ["yes"] or ["no"]. Only verify questions become manifest questions;
choose and query rows are counted per semantic_type, a verify answer that is not one yes or
no is counted with its value, and `gender` questions are left out (the manifest carries no
patient's sex). `image_path` (p10/p10000032/s5.../<dicom>.jpg) is relative to MIMIC-CXR-JPG's
files/ folder, which lies inside --root (--images). The condition comes from the question's
text, else from template_arguments' first attribute, else the normalised content_type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from compute.data.datasets import DatasetFormat
from compute.data.datasets.build_log import BuildLog
from compute.data.datasets.question_fields import (fallback_key, note_fallbacks, prefixed, question_conditions,
                                                    text_values)
from compute.data.datasets.output import yes_no
from compute.data.datasets.readers import DatasetError, inside_root, read_json_records, require_columns
from compute.data.label_names import condition_key, normalise_label

SPLITS = ("train", "valid", "test")
REQUIRED = ("image_id", "image_path", "question", "semantic_type", "answer")
QUESTION_FOLDERS = (".", "dataset", "mimiccxrvqa/dataset")  # as the repository's build script leaves them
LEFT_OUT_CONTENT = {"gender": "question about the patient's sex (no sex goes into the manifest)"}
SLICING = ("content_type", "semantic_type", "template")


@dataclass(frozen=True)
class MimicCxrVqaOptions:
    questions: Path | None = field(default=None, metadata={
        "metavar": "DIR", "help": "the folder holding train.json, valid.json and test.json (relative to --root, or "
                                  "a path); default: --root, else its dataset/ or mimiccxrvqa/dataset/ folder"})
    images: Path | None = field(default=None, metadata={
        "metavar": "DIR", "help": "MIMIC-CXR-JPG's files/ folder, inside --root, that image_path is relative to "
                                  "(default: files/ under --root when it exists, else --root itself)"})
    split: str | None = field(default=None, metadata={
        "choices": SPLITS, "help": "read only this split's file (default: every one of train.json, valid.json and "
                                   "test.json found)"})


def read(root: Path, options: MimicCxrVqaOptions, log: BuildLog) -> pd.DataFrame:
    folder = _question_folder(root, options.questions)
    names = [options.split] if options.split else list(SPLITS)
    files = [folder / f"{name}.json" for name in names if (folder / f"{name}.json").is_file()]
    if not files:
        raise DatasetError(f"{folder}: no question file; expected {', '.join(f'{n}.json' for n in names)} (pass "
                           "--questions DIR for the folder that holds them)")
    images = inside_root(root, options.images, "--images") if options.images else (
        "files" if (root / "files").is_dir() else "")
    frames = []
    for path in files:
        frame = read_json_records(path, log)
        if frame.empty:  # every record malformed or not an object: already counted
            continue
        require_columns(frame, REQUIRED, path)
        frame["file_split"] = path.stem
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["image", "question", "answer", "condition", "image_id", "source"])
    table = pd.concat(frames, ignore_index=True)

    semantic = text_values(table["semantic_type"]).str.lower().fillna("blank")
    for name in sorted(set(semantic.unique()) - {"verify"}):
        table = log.skip_rows(f"not a verify question (semantic_type {name})", table,
                              semantic.loc[table.index] == name)
    content = text_values(table.get("content_type", pd.Series(index=table.index, dtype=object))).str.lower()
    for name, reason in LEFT_OUT_CONTENT.items():
        table = log.skip_rows(reason, table, content.loc[table.index] == name)
    answers = _one_yes_no(table["answer"])
    table = log.skip_rows("verify answer is not exactly one yes or no", table, answers.isna(),
                          lambda row: f"answer {row['answer']!r}")

    rows = pd.DataFrame({
        "image": prefixed(images, text_values(table["image_path"]).str.replace("\\", "/", regex=False)
                          .str.replace(r"^(\./)+", "", regex=True)),
        "question": text_values(table["question"]), "answer": answers.loc[table.index],
        "image_id": text_values(table["image_id"]),
        "split": text_values(table["split"]).fillna(table["file_split"]) if "split" in table else table["file_split"],
        "source": table["source"],
    }, index=table.index)
    for column in ("subject_id", "study_id", *SLICING):
        if column in table:
            rows[column] = text_values(table[column])
    parsed = question_conditions(rows["question"])
    attribute = _first_attribute(table)
    from_attribute = parsed["condition"].isna() & attribute.notna()
    from_content = parsed["condition"].isna() & attribute.isna()
    content_key = fallback_key(rows["content_type"] if "content_type" in rows else pd.Series(index=rows.index,
                                                                                             dtype=object))
    rows.insert(3, "condition", parsed["condition"].fillna(attribute).fillna(content_key))
    rows.insert(5, "location", parsed["location"])
    note_fallbacks(log, rows, from_attribute & rows["question"].notna(), "template attribute")
    note_fallbacks(log, rows, from_content & rows["question"].notna(), "content_type")
    return rows.reset_index(drop=True)


def _question_folder(root: Path, given: Path | None) -> Path:
    if given is not None:
        folder = given if given.is_absolute() or (given.is_dir() and not (root / given).is_dir()) else root / given
        if not folder.is_dir():
            raise DatasetError(f"{folder}: --questions folder not found")
        return folder
    for name in QUESTION_FOLDERS:
        if any((root / name / f"{split}.json").is_file() for split in SPLITS):
            return root / name
    return root


def _one_yes_no(answers: pd.Series) -> pd.Series:
    """yes / no where the answer is a list of exactly one yes or no, else NaN."""
    only = answers.map(lambda value: value[0] if isinstance(value, list) and len(value) == 1 else None)
    return yes_no(only.fillna("")).where(only.notna())


def _first_attribute(table: pd.DataFrame) -> pd.Series:
    """template_arguments' first attribute ({"attribute": {"0": "pleural effusion"}}) as a
    condition key, else NaN."""
    if "template_arguments" not in table:
        return pd.Series(index=table.index, dtype=object)
    text = text_values(table["template_arguments"].map(_attribute))
    keys = {v: condition_key(v) for v in text.dropna().unique() if normalise_label(v)}
    return text.map(keys)


def _attribute(arguments) -> str | None:
    attributes = arguments.get("attribute") if isinstance(arguments, dict) else None
    first = attributes.get("0") if isinstance(attributes, dict) else None
    return first if isinstance(first, str) else None


FORMAT = DatasetFormat(
    name="mimic-cxr-vqa", summary="MIMIC-CXR-VQA (Bae et al.): train/valid/test.json verify questions",
    description="--root is the MIMIC-CXR-JPG folder (holding files/); the JSON files are found in --root, its "
                "dataset/ or mimiccxrvqa/dataset/ folder, or --questions DIR. Verify questions answered ['yes'] or "
                "['no'] become questions; content_type, semantic_type and template are kept for slicing.",
    options=MimicCxrVqaOptions, read=read)
