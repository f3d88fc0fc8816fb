"""SLAKE (Liu et al., 2021): `train.json`, `validation.json`, `test.json` and the image folder imgs/.

Fields: img_id, img_name (xmlab384/source.jpg, relative to imgs/), question, answer, q_lang
(en | zh), location, modality (X-Ray | CT | MRI), answer_type (OPEN | CLOSED), base_type,
content_type, triple, qid. English questions on X-rays by default; CLOSED questions answered
yes or no (是 / 否 in the Chinese questions) become manifest questions, the others are counted.
SLAKE's `location` is a body region ("Lung", "Chest"), not a place in the lung, so it is kept
as `body_region`; the manifest's `location` is only the location phrase the question's text
names. The condition comes from the text, else the normalised content_type ("abnormality",
"organ", "position").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from compute.data.datasets import DatasetFormat
from compute.data.datasets.build_log import BuildLog
from compute.data.datasets.question_fields import prefixed, text_values, with_conditions
from compute.data.datasets.output import yes_no
from compute.data.datasets.readers import DatasetError, inside_root, read_json_records, require_columns

SPLITS = ("train", "validation", "test")
LANGUAGES = ("en", "zh", "all")
CHINESE_YES_NO = {"是": "yes", "否": "no"}
KEPT = ("content_type", "base_type", "modality", "qid")  # slicing columns, as written


@dataclass(frozen=True)
class SlakeOptions:
    lang: str = field(default="en", metadata={
        "choices": LANGUAGES, "help": "keep the questions in this q_lang, or all (default: {default})"})
    modality: str = field(default="X-Ray", metadata={
        "metavar": "MODALITY", "help": "keep the questions on images of this modality (X-Ray, CT or MRI, in any "
                                       "case), or all (default: {default})"})
    split: str | None = field(default=None, metadata={
        "choices": SPLITS, "help": "read only this split's file (default: every one of train.json, validation.json "
                                   "and test.json found)"})
    images: Path = field(default=Path("imgs"), metadata={
        "metavar": "DIR", "help": "the image folder inside --root that img_name is relative to (default: {default})"})


def read(root: Path, options: SlakeOptions, log: BuildLog) -> pd.DataFrame:
    names = [options.split] if options.split else list(SPLITS)
    files = [root / f"{name}.json" for name in names if (root / f"{name}.json").is_file()]
    if not files:
        raise DatasetError(f"{root}: no question file; expected {', '.join(f'{n}.json' for n in names)} (is --root "
                           "the Slake1.0 folder?)")
    images = inside_root(root, options.images, "--images")
    required = ["img_name", "question", "answer", "answer_type", *(["q_lang"] if options.lang != "all" else []),
                *(["modality"] if options.modality.lower() != "all" else [])]
    frames = []
    for path in files:
        frame = read_json_records(path, log)
        if frame.empty:  # every record malformed or not an object: already counted
            continue
        require_columns(frame, required, path)
        frames.append(frame.assign(split=path.stem))
    if not frames:
        return pd.DataFrame(columns=["image", "question", "answer", "condition", "image_id", "source"])
    table = pd.concat(frames, ignore_index=True)

    if options.lang != "all":
        lang = text_values(table["q_lang"]).str.lower()
        table = log.skip_rows(f"q_lang is not {options.lang} (--lang)", table, lang.ne(options.lang).fillna(True),
                              lambda row: f"q_lang {row['q_lang']!r}")
    if options.modality.lower() != "all":
        modality = text_values(table["modality"]).str.lower()
        table = log.skip_rows(f"modality is not {options.modality} (pass --modality all to keep every modality)",
                              table, modality.ne(options.modality.strip().lower()).fillna(True),
                              lambda row: f"modality {row['modality']!r}")
    kind = text_values(table["answer_type"]).str.upper()
    table = log.skip_rows("open question (answer_type is not CLOSED)", table, kind.ne("CLOSED").fillna(True),
                          lambda row: f"answer_type {row['answer_type']!r}")
    written = text_values(table["answer"])
    answers = yes_no(written.fillna("")).fillna(written.map(CHINESE_YES_NO))
    table = log.skip_rows("closed question whose answer is not yes or no", table, answers.isna(),
                          lambda row: f"answer {row['answer']!r}")

    name = text_values(table["img_name"]).str.replace("\\", "/", regex=False).str.lstrip("/")
    folder = name.str.extract(r"^(.+)/[^/]+$")[0]  # xmlab384/source.jpg -> xmlab384
    rows = pd.DataFrame({
        "image": prefixed(images, name), "question": text_values(table["question"]),
        "answer": answers.loc[table.index],
        "image_id": folder.fillna(name.str.replace(r"\.[A-Za-z0-9]+$", "", regex=True)),
        "split": table["split"], "source": table["source"],
        "body_region": _optional(table, "location"),
    }, index=table.index)
    for column in KEPT:
        rows[column] = _optional(table, column)
    return with_conditions(rows, rows["content_type"], "content_type", log).reset_index(drop=True)


def _optional(table: pd.DataFrame, column: str) -> pd.Series:
    if column not in table:
        return pd.Series(index=table.index, dtype=object)
    return text_values(table[column])


FORMAT = DatasetFormat(
    name="slake", summary="SLAKE: closed yes/no questions (English, X-ray by default)",
    description="--root is the Slake1.0 folder holding train.json, validation.json, test.json and imgs/. CLOSED "
                "questions answered yes or no become questions; SLAKE's location (a body region) is kept as "
                "body_region, content_type and base_type for slicing.",
    options=SlakeOptions, read=read)
