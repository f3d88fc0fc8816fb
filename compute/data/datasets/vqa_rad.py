"""VQA-RAD (Lau et al., 2018): one JSON list of questions on MedPix images, and an image folder.

Fields: qid, phrase_type (freeform | para | test_freeform | test_para), qid_linked_id,
image_case_url, image_name, image_organ (HEAD | CHEST | ABD), evaluation, question,
question_rephrase, question_relation, question_frame, question_type, answer, answer_type.
CLOSED questions answered yes or no become manifest questions, on CHEST images unless
--organ says otherwise; open questions and closed ones with other answers are counted.

Questions linked through `qid_linked_id` on the same image are real human paraphrases, and
become phrasing groups: the freeform original is variant 0 (strategy "baseline"), each
paraphrase (a `para` record, or the `question_rephrase` text of a record) a variant 1, 2, ...
with strategy "human paraphrase" and the original as its `baseline_question`. The link is read
both ways the files write it: records that share one qid_linked_id, or a record whose
qid_linked_id is another record's qid. A group whose answers disagree is skipped as a whole;
linked questions without their original stay plain questions. The condition comes from the
text (the original's first, then its paraphrases', so that a group shares one), else the
normalised question_type ("pres", "abn", "size").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from compute.data.datasets import DatasetFormat
from compute.data.datasets.build_log import BuildLog
from compute.data.datasets.question_fields import (fallback_key, note_fallbacks, prefixed, question_conditions,
                                                    text_values)
from compute.data.datasets.output import yes_no
from compute.data.datasets.readers import DatasetError, given_file, inside_root, read_json_records, require_columns

DEFAULT_FILES = ("VQA_RAD Dataset Public.json", "VQA_RAD Dataset.json")
IMAGE_FOLDERS = ("VQA_RAD Image Folder", "images", "VQA_RAD Images")
ORGANS = ("CHEST", "HEAD", "ABD", "all")
ORIGINALS = ("freeform", "test_freeform")
BLANKS = ("NULL", "None", "nan")  # how the published file writes an empty field
BASELINE, PARAPHRASE = "baseline", "human paraphrase"


@dataclass(frozen=True)
class VqaRadOptions:
    file: Path | None = field(default=None, metadata={
        "metavar": "FILE", "help": "the question file (relative to --root, or a path); default: 'VQA_RAD Dataset "
                                   "Public.json' under --root, else the only .json file there"})
    images: Path | None = field(default=None, metadata={
        "metavar": "DIR", "help": "the image folder inside --root (default: 'VQA_RAD Image Folder', else images/, "
                                  "else --root itself)"})
    organ: str = field(default="CHEST", metadata={
        "choices": ORGANS, "help": "keep the questions on images of this image_organ, or all (default: {default})"})
    rephrase: bool = field(default=True, metadata={
        "flag": "--no-rephrase", "help": "leave out the question_rephrase texts (by default each one is a human "
                                         "paraphrase in its record's group)"})


def read(root: Path, options: VqaRadOptions, log: BuildLog) -> pd.DataFrame:
    path = given_file(root, options.file) if options.file else _default_file(root)
    table = read_json_records(path, log)
    if table.empty:
        return pd.DataFrame(columns=["image", "question", "answer", "condition", "image_id", "source"])
    require_columns(table, ["qid", "image_name", "question", "answer", "answer_type",
                            *(["image_organ"] if options.organ != "all" else [])], path)
    if options.organ != "all":
        organ = text_values(table["image_organ"]).str.upper()
        table = log.skip_rows(f"image_organ is not {options.organ} (pass --organ all to keep every organ)", table,
                              organ.ne(options.organ).fillna(True), lambda row: f"image_organ {row['image_organ']!r}")
    kind = text_values(table["answer_type"]).str.upper()
    table = log.skip_rows("open question (answer_type is not CLOSED)", table, kind.ne("CLOSED").fillna(True),
                          lambda row: f"answer_type {row['answer_type']!r}")
    answers = yes_no(table["answer"].fillna(""))
    table = log.skip_rows("closed question whose answer is not yes or no", table, answers.isna(),
                          lambda row: f"answer {row['answer']!r}")

    image_name = text_values(table["image_name"]).str.replace("\\", "/", regex=False)
    rows = pd.DataFrame({
        "image": prefixed(_image_folder(root, options.images), image_name),
        "question": text_values(table["question"]), "answer": answers.loc[table.index],
        "image_id": image_name.str.replace(r"\.[A-Za-z0-9]+$", "", regex=True),
        "source": table["source"], "qid": text_values(table["qid"]),
        "phrase_type": _optional(table, "phrase_type").str.lower(),
        "question_type": _optional(table, "question_type"), "image_organ": _optional(table, "image_organ"),
        "link": _optional(table, "qid_linked_id", BLANKS), "derived": False,
    }, index=table.index)
    phrase = rows["phrase_type"]
    rows["split"] = pd.Series("train", index=rows.index).where(phrase.notna()).mask(
        phrase.str.startswith("test").fillna(False), "test")
    if options.rephrase and "question_rephrase" in table:
        rephrase = text_values(table["question_rephrase"], BLANKS)
        new = rephrase.notna() & rephrase.str.lower().ne(rows["question"].str.lower()).fillna(True)
        rows = pd.concat([rows, rows[new].assign(question=rephrase[new], phrase_type="question_rephrase", derived=True,
                                                 source=rows.loc[new, "source"] + " (question_rephrase)")],
                         ignore_index=True)
    rows = _groups(rows, log)
    return rows.drop(columns=["link", "derived", "key", "original"]).reset_index(drop=True)


def _groups(rows: pd.DataFrame, log: BuildLog) -> pd.DataFrame:
    """group_id, variant_index, strategy, baseline_question and condition, per linked set of
    questions on one image."""
    component = _components(rows["qid"], rows["link"])
    rows["key"] = component.fillna("row " + rows["source"]) + "\x1f" + rows["image"].fillna("")
    rows["original"] = rows["phrase_type"].isin(ORIGINALS) & ~rows["derived"]
    rows = rows.assign(_later=~rows["original"], _qnum=pd.to_numeric(rows["qid"], errors="coerce"))
    rows = rows.sort_values(["key", "_later", "derived", "_qnum", "qid"], kind="stable").drop(columns=["_later",
                                                                                                      "_qnum"])
    disagree = rows.groupby("key")["answer"].transform("nunique") > 1
    members = rows[disagree].groupby("key")["qid"].agg(lambda q: ", ".join(dict.fromkeys(q.dropna())))
    rows = log.skip_rows("linked paraphrases on one image disagree on the answer (the whole group)", rows, disagree,
                         lambda row: f"qid {members.loc[row['key']]}: answer {row['answer']}")
    repeated = rows.assign(_text=rows["question"].str.lower()).duplicated(["key", "_text"]) & rows["question"].notna()
    rows = log.skip_rows("question repeats another of its phrasing group", rows, repeated,
                         lambda row: repr(row["question"]))

    by_key = rows.groupby("key")
    size, has_original = by_key["key"].transform("size"), by_key["original"].transform("any")
    grouped = (size > 1) & has_original
    orphans = (size > 1) & ~has_original
    if orphans.any():
        log.note(f"{int(orphans.sum()):,} linked questions lack their freeform original here; kept as plain questions")
    index = by_key.cumcount()
    rows["group_id"] = (rows["image_id"] + ":" + by_key["qid"].transform("first").fillna("")).where(grouped)
    rows["variant_index"] = index.where(grouped).astype("Int64")
    rows["strategy"] = pd.Series(np.where(index == 0, BASELINE, PARAPHRASE), index=rows.index).where(grouped)
    rows["baseline_question"] = by_key["question"].transform("first").where(grouped)

    parsed = question_conditions(rows["question"])
    shared = parsed["condition"].groupby(rows["key"]).transform("first")
    fallback = shared.isna()
    rows["condition"] = shared.fillna(fallback_key(rows["question_type"]).groupby(rows["key"]).transform("first"))
    rows["location"] = parsed["location"]
    note_fallbacks(log, rows, fallback & rows["question"].notna(), "question_type")
    order = ["image", "question", "answer", "condition", "image_id", "location", "split", "source", "group_id",
             "variant_index", "strategy", "baseline_question"]
    return rows[order + [c for c in rows.columns if c not in order]]


def _components(qids: pd.Series, links: pd.Series) -> pd.Series:
    """Per row, a label shared by every row its qid_linked_id links it to, directly or
    through other rows (NaN where the row has no qid). Rows sharing a link id are linked, and
    so are a row and the row whose qid its link names. Labels spread along the links until
    they settle: a few passes over whole columns, as the groups are small."""
    q_nodes = "q " + qids
    linked = qids.notna() & links.notna()
    pointers = links[links.isin(set(qids.dropna()))].drop_duplicates()
    edges = pd.concat([pd.DataFrame({"u": q_nodes[linked], "v": "l " + links[linked]}),
                       pd.DataFrame({"u": "l " + pointers, "v": "q " + pointers})], ignore_index=True)
    edges = pd.concat([edges, edges.rename(columns={"u": "v", "v": "u"})], ignore_index=True).drop_duplicates()
    nodes = pd.Index(pd.concat([q_nodes.dropna(), edges["u"]]).unique())
    label = pd.Series(nodes, index=nodes)
    for _ in range(len(nodes)):
        proposed = edges["v"].map(label).groupby(edges["u"].to_numpy()).min()
        settled = pd.concat([label, proposed]).groupby(level=0).min().reindex(nodes)
        if settled.equals(label):
            break
        label = settled
    return q_nodes.map(label)


def _optional(table: pd.DataFrame, column: str, blanks: tuple[str, ...] = ()) -> pd.Series:
    if column not in table:
        return pd.Series(index=table.index, dtype=object)
    return text_values(table[column], blanks)


def _default_file(root: Path) -> Path:
    for name in DEFAULT_FILES:
        if (root / name).is_file():
            return root / name
    found = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".json")
    if len(found) == 1:
        return found[0]
    listed = f"; found {', '.join(p.name for p in found)}" if found else ""
    raise DatasetError(f"{root}: no question file; expected {DEFAULT_FILES[0]!r}{listed} (pass --file FILE)")


def _image_folder(root: Path, given: Path | None) -> str:
    if given is not None:
        return inside_root(root, given, "--images")
    return next((name for name in IMAGE_FOLDERS if (root / name).is_dir()), "")


FORMAT = DatasetFormat(
    name="vqa-rad", summary="VQA-RAD: closed yes/no questions, with human paraphrases as phrasing groups",
    description="--root is the folder holding 'VQA_RAD Dataset Public.json' and 'VQA_RAD Image Folder/'. CLOSED "
                "questions answered yes or no, CHEST images unless --organ; questions linked by qid_linked_id (and "
                "question_rephrase texts) on one image become phrasing groups (variant 0 the freeform original, "
                "strategy 'human paraphrase' for the others). A baseline run asks every row and the phrasing "
                "pages read its groups; --study phrasing asks the groups as they are and generates rewrites only "
                "for the questions without one.",
    options=VqaRadOptions, read=read)
