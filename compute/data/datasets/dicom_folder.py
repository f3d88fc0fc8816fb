"""A folder tree of DICOM files, with labels from a CSV keyed by SOPInstanceUID or file name.

`--labels FILE` (relative to --root, or a path) is either

- a wide label table: one row per image, one column per finding, coded as in CheXpert (1
  present, 0 absent, -1 uncertain, blank not mentioned). The label columns are those named
  after a known finding (the CheXpert labels, the nine study conditions and the names
  compute.data.label_names knows, matched loosely: "Pleural Effusion", "pleural_effusion",
  "Effusion") plus any `--label-columns` names; other columns are not read and are listed by
  name in the summary. The rows go to the framework without a question, under the label
  policy (balanced yes and no per condition); or
- SIIM-ACR's `train-rle.csv` (`ImageId, EncodedPixels`: the ImageId is the file's
  SOPInstanceUID; `-1` no pneumothorax, else run-length pieces of its mask, one row each):
  one pneumothorax row per image, yes with the pieces merged into one mask, or no. A value
  that is not a lone -1 or pairs of numbers from 0 (an odd count, a negative number, no run
  of pixels) is skipped with the reason, and so are the image's other rows; or
- a question table: columns `question` and `answer` (and optionally condition, location,
  group_id, variant_index, strategy, split, boxes, mask), passed through as `dataset table`
  reads them (the condition from the question where not given).

The key (`--key`): `sop` joins the CSV's `SOPInstanceUID` column to each file's
SOPInstanceUID; `file` joins a column `file`, `filename`, `file_name`, `path` or `image`
(first found, any case) to each file's path relative to --root, with or without its suffix,
or to its bare file name where that names one file only. Without --key: sop when the CSV has a
SOPInstanceUID column, else file.

Reading the files: every regular, non-hidden file under --root (links are not followed; the
labels file is passed over) is opened with pydicom for the technical tags only
(SOPInstanceUID, Modality, ViewPosition, Rows, Columns, PhotometricInterpretation), with
`stop_before_pixels` and `specific_tags`, so that no patient, physician or institution element
is ever read. With --key file only the files the CSV names are opened. A file that is not DICOM,
whose header cannot be read, or that holds no image (no Rows/Columns) is skipped with the reason.

What the manifest keeps: `image` (the path relative to --root), `image_id` (that path without
a DICOM suffix, .dcm/.dicom/.dic/.ima: never the SOPInstanceUID, which can be traced to the
institution), `view` (ViewPosition, or the CSV's `view` column where given), `modality`, and
`split` where the CSV has one. Folder and file names are kept as they are: a tree whose names
hold patient names or UIDs should be renamed before it is shared.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pydicom

from compute.data.conditions import CONDITION_KEYS
from compute.data.datasets import DatasetFormat
from compute.data.datasets.build_log import BuildLog
from compute.data.datasets.chexpert import CHEXPERT_LABELS
from compute.data.datasets.label_questions import LabelPolicy, label_answers
from compute.data.datasets.readers import DatasetError, given_file, read_csv
from compute.data.datasets.table import manifest_rows
from compute.data.label_names import LABEL_TABLE, NO_FINDING, normalise_label
from compute.data.lesions import NO_LESION_RLE, is_rle, merge_rle

TECHNICAL_TAGS = ("SOPInstanceUID", "Modality", "ViewPosition", "Rows", "Columns", "PhotometricInterpretation")
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", ".ima")
SOP_COLUMN = "SOPInstanceUID"
FILE_COLUMNS = ("file", "filename", "file_name", "path", "image")
KEYS = ("sop", "file")
KNOWN_LABELS = frozenset({normalise_label(n) for n in CHEXPERT_LABELS} | set(LABEL_TABLE) | set(CONDITION_KEYS))
QUESTION_COLUMNS = ("question", "answer", "condition", "location", "group_id", "variant_index", "strategy", "split",
                    "boxes", "mask")


@dataclass(frozen=True)
class DicomFolderOptions:
    labels: Path = field(metadata={
        "metavar": "FILE", "help": "the labels CSV (relative to --root, or a path): one column per finding coded "
                                   "1/0/-1/blank, or question and answer columns; keyed by SOPInstanceUID or file"})
    key: str | None = field(default=None, metadata={
        "choices": KEYS, "help": "join the CSV to the files by its SOPInstanceUID column (sop) or by a file, "
                                 "filename, file_name, path or image column (file: the path relative to --root, "
                                 "with or without suffix, or a bare file name); default: sop when the CSV has a "
                                 "SOPInstanceUID column, else file"})
    label_columns: str | None = field(default=None, metadata={
        "metavar": "A,B,...", "help": "more columns to read as labels, besides those named after a known finding "
                                      "(default: none)"})
    policy: LabelPolicy = field(default_factory=LabelPolicy)


def read(root: Path, options: DicomFolderOptions, log: BuildLog) -> pd.DataFrame:
    path = given_file(root, options.labels)
    table = read_csv(path, [], log, what="labels file")
    table = table.fillna("")
    siim = _siim_columns(table)
    key, key_column = ("sop", siim[0]) if siim else _key(table, options.key, path)
    table[key_column] = table[key_column].str.strip()
    table = log.skip_rows(f"no {key_column}", table, table[key_column] == "")
    questions = "question" in table.columns and "answer" in table.columns
    labels = [] if questions or siim else _label_columns(table, key_column, options.label_columns, path)
    files = _candidate_files(root, {path.resolve()})
    if key == "sop":
        matched = _join_by_uid(root, table, key_column, files, log, path.name)
    else:
        matched = _join_by_file(root, table, key_column, files, log)
    matched["image_id"] = _image_ids(matched["image"])
    header_view = matched["header_view"].where(matched["header_view"] != "")
    given_view = matched["view"].where(matched["view"] != "") if "view" in matched.columns else None
    matched["view"] = header_view if given_view is None else given_view.fillna(header_view)
    kept = ["image", "image_id", "view", "modality", "source"]
    if siim:
        return _siim_rows(matched, siim[1], kept, log)
    if questions:
        rows = matched[kept + [c for c in QUESTION_COLUMNS if c in matched.columns]].replace("", np.nan)
        return manifest_rows(root, rows, log)
    if "split" in matched.columns:
        kept.append("split")
    matched = _without_repeats(matched, ["image", *labels], log)
    matched = log.skip_rows("one image on several rows with different labels", matched,
                            matched.duplicated(subset=["image"], keep=False), lambda row: row["image"])
    no_finding = next((c for c in labels if normalise_label(c) == NO_FINDING), None)
    unused = [c for c in table.columns if c not in (*labels, key_column, "source", "view", "split")]
    if unused:
        log.note(f"columns not read from {path.name}: {', '.join(unused)}")
    wide = matched[kept + labels].replace("", np.nan)
    return label_answers(wide, labels, options.policy, log, no_finding_column=no_finding).drop(columns=["label"])


# --------------------------------------------------------------------------- SIIM-ACR masks


def _siim_columns(table: pd.DataFrame) -> tuple[str, str] | None:
    """SIIM-ACR's train-rle.csv (`ImageId, EncodedPixels`, as the file writes them, a space
    included): (the id column, the mask column), else None."""
    by_name = {c.strip().lower(): c for c in table.columns}
    if "imageid" in by_name and "encodedpixels" in by_name:
        return by_name["imageid"], by_name["encodedpixels"]
    return None


def _siim_rows(matched: pd.DataFrame, mask_column: str, kept: list[str], log: BuildLog) -> pd.DataFrame:
    """One pneumothorax row per image: no where its mask is -1, yes with the union of its
    run-length pieces otherwise (SIIM gives one row per piece). The ImageId is the file's
    SOPInstanceUID, matched and then dropped like any other."""
    masks = matched[mask_column].astype(str).str.strip()
    problems = masks.map(_rle_problem)
    matched = matched.assign(_mask=masks, _problem=problems)
    spoiled = set(matched.loc[problems.notna(), "image"])
    for reason in RLE_PROBLEMS:
        matched = log.skip_rows(reason, matched, matched["_problem"] == reason, lambda row: repr(row["_mask"][:40]))
    matched = log.skip_rows("another EncodedPixels row of this image was skipped (its mask, or its -1, would be "
                            "incomplete)", matched, matched["image"].isin(spoiled), lambda row: row["image"])
    matched = matched.assign(_none=matched["_mask"] == NO_LESION_RLE)
    mixed = matched.groupby("image")["_none"].transform("nunique") > 1
    matched = log.skip_rows("one image with both -1 and a mask", matched, mixed, lambda row: row["image"])
    firsts = matched.drop_duplicates("image", keep="first").set_index("image")
    pieces = matched[~matched["_none"]].groupby("image")["_mask"].agg(list)
    rows = firsts[[c for c in kept if c != "image"]].reset_index()
    rows["condition"] = "pneumothorax"
    rows["answer"] = rows["image"].map(lambda image: "yes" if image in pieces.index else "no")
    rows["mask"] = rows["image"].map(lambda image: merge_rle(pieces[image]) if image in pieces.index else None)
    log.note(f"SIIM-ACR masks: {int((rows['answer'] == 'yes').sum()):,} images with pneumothorax "
             f"(pieces merged per image), {int((rows['answer'] == 'no').sum()):,} without")
    return rows


RLE_PROBLEMS = ("EncodedPixels is not -1 or start-length pairs",
                "EncodedPixels has a negative number (only a lone -1 means no mask)",
                "EncodedPixels has an odd count of numbers (it needs start-length pairs)",
                "EncodedPixels marks no pixel (every run has length 0)")


def _rle_problem(mask: str) -> str | None:
    """Why an EncodedPixels value is no mask that merge_rle can read (one of RLE_PROBLEMS), or
    None: a lone -1, or pairs of numbers from 0 with at least one run of pixels."""
    if mask == NO_LESION_RLE:
        return None
    if not is_rle(mask):
        return RLE_PROBLEMS[0]
    numbers = mask.split()
    if any(n.startswith("-") for n in numbers):
        return RLE_PROBLEMS[1]
    if len(numbers) % 2:
        return RLE_PROBLEMS[2]
    if not any(int(n) > 0 for n in numbers[1::2]):
        return RLE_PROBLEMS[3]
    return None


# --------------------------------------------------------------------------- DICOM headers


def read_header(path: Path) -> tuple[dict | None, str | None]:
    """The technical tags of a DICOM file, or why there are none: (values, None) or (None,
    reason). Only TECHNICAL_TAGS are read (pydicom's `specific_tags`, pixels never), so no
    identifying element's value is ever parsed; a reason never quotes the file's content."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError as exc:
        return None, f"file cannot be read ({exc.strerror or type(exc).__name__})"
    with_preamble = len(head) >= 132 and head[128:132] == b"DICM"
    if not with_preamble and head[:2] not in (b"\x02\x00", b"\x08\x00"):
        return None, "not a DICOM file"
    try:
        with warnings.catch_warnings():  # pydicom's warnings quote values from the file
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(TECHNICAL_TAGS),
                                 force=not with_preamble)
            values = {keyword: ds.get(keyword) for keyword in TECHNICAL_TAGS}
    except Exception as exc:  # one unreadable file never stops the build
        return None, f"DICOM header cannot be read ({type(exc).__name__})"
    rows, columns = values["Rows"], values["Columns"]
    if not isinstance(rows, int) or not isinstance(columns, int) or rows < 1 or columns < 1:
        return None, "not a DICOM image (no Rows and Columns)" if with_preamble else "not a DICOM file"
    return {"sop": _tag_text(values["SOPInstanceUID"]), "modality": _tag_text(values["Modality"]),
            "header_view": _tag_text(values["ViewPosition"]).upper(), "rows": rows, "columns": columns,
            "photometric": _tag_text(values["PhotometricInterpretation"])}, None


def _tag_text(value) -> str:
    return "" if value is None else str(value).strip(" \x00")


def _headers(root: Path, files: list[str]) -> pd.DataFrame:
    """One row per file: `image` (its path), the header values, and `reason` where it has none."""
    records = []
    for rel in files:
        values, reason = read_header(root / rel)
        records.append({"image": rel, "reason": reason, **(values or {})})
    columns = ["image", "reason", "sop", "modality", "header_view", "rows", "columns", "photometric"]
    return pd.DataFrame.from_records(records, columns=columns)


# --------------------------------------------------------------------------- joining


def _join_by_uid(root: Path, table: pd.DataFrame, key_column: str, files: list[str], log: BuildLog,
                 labels_name: str) -> pd.DataFrame:
    headers = _headers(root, files)
    headers["source"] = headers["image"]
    for reason in sorted(headers["reason"].dropna().unique()):
        headers = log.skip_rows(f"{reason} (file skipped)", headers, headers["reason"] == reason)
    headers = headers[headers["sop"].fillna("") != ""]
    matched = table.merge(headers[["sop", "image", "modality", "header_view"]], left_on=key_column,
                          right_on="sop", how="left")
    matched = log.skip_rows(f"no DICOM image under --root has this {SOP_COLUMN}", matched, matched["image"].isna())
    unlabelled = len(set(headers["image"]) - set(matched["image"]))
    if unlabelled:
        log.note(f"{unlabelled:,} DICOM image{'s' if unlabelled > 1 else ''} under --root "
                 f"{'have' if unlabelled > 1 else 'has'} no row in {labels_name}")
    return matched.drop(columns=["sop", key_column]).reset_index(drop=True)


def _join_by_file(root: Path, table: pd.DataFrame, key_column: str, files: list[str],
                  log: BuildLog) -> pd.DataFrame:
    """Each CSV row's file: its path relative to the root, with or without suffix, else its
    bare name where one file has it; the headers of those files only are read."""
    rel = pd.Series(files, dtype=object)
    pure = rel.map(PurePosixPath)
    names = pure.map(lambda p: p.name)
    aliases = pd.concat([pd.DataFrame({"alias": rel, "image": rel, "rank": 0}),
                         pd.DataFrame({"alias": pure.map(lambda p: str(p.with_suffix("")) if p.suffix else None),
                                       "image": rel, "rank": 1}),
                         pd.DataFrame({"alias": names, "image": rel, "rank": 2}),
                         pd.DataFrame({"alias": pure.map(lambda p: p.stem if p.suffix else None), "image": rel,
                                       "rank": 3})]).dropna(subset=["alias"])
    aliases = aliases[aliases["rank"] == aliases.groupby("alias")["rank"].transform("min")]
    aliases = aliases.drop_duplicates(["alias", "image"])
    several = aliases.groupby("alias")["image"].transform("size") > 1
    ambiguous = set(aliases.loc[several, "alias"])
    lookup = aliases[~several].set_index("alias")["image"]
    wanted = table[key_column].str.replace("\\", "/", regex=False).str.replace(r"^\./", "", regex=True)
    table = table.assign(image=wanted.map(lookup).astype(object), _wanted=wanted)
    table = log.skip_rows("file name matches several files under --root; give its path relative to --root", table,
                          table["_wanted"].isin(ambiguous), lambda row: repr(row["_wanted"]))
    table = log.skip_rows("no file under --root by this name", table, table["image"].isna(),
                          lambda row: repr(row["_wanted"]))
    headers = _headers(root, sorted(table["image"].unique())).astype({"image": object})
    table = table.merge(headers[["image", "reason", "modality", "header_view"]], on="image", how="left")
    for reason in sorted(table["reason"].dropna().unique()):
        table = log.skip_rows(f"{reason} (its row skipped)", table, table["reason"] == reason,
                              lambda row: row["image"])
    drop = ["reason", "_wanted"] + ([key_column] if key_column != "image" else [])
    return table.drop(columns=drop).reset_index(drop=True)


def _candidate_files(root: Path, exclude: set[Path]) -> list[str]:
    """Regular, non-hidden files under `root`, as posix paths relative to it, in order;
    links (to files or folders) are not followed."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(folder)
        rel = base.relative_to(root).as_posix()
        for name in sorted(names):
            full = base / name
            if name.startswith(".") or full.is_symlink() or not full.is_file() or full.resolve() in exclude:
                continue
            found.append(name if rel == "." else f"{rel}/{name}")
    return found


def _image_ids(images: pd.Series) -> pd.Series:
    pattern = "(" + "|".join(s.replace(".", r"\.") for s in DICOM_SUFFIXES) + ")$"
    return images.str.replace(pattern, "", regex=True, case=False)


# --------------------------------------------------------------------------- the CSV


def _key(table: pd.DataFrame, given: str | None, path: Path) -> tuple[str, str]:
    found = [c for c in table.columns if c != "source"]
    by_lower = {c.lower(): c for c in reversed(found)}
    sop = by_lower.get(SOP_COLUMN.lower())
    file_column = next((by_lower[c] for c in FILE_COLUMNS if c in by_lower), None)
    if given == "sop" or (given is None and sop):
        if not sop:
            raise DatasetError(f"{path}: missing column {SOP_COLUMN} (--key sop); found {', '.join(found)}")
        return "sop", sop
    if not file_column:
        what = "a file column" if given == "file" else f"a {SOP_COLUMN} or file column"
        raise DatasetError(f"{path}: missing {what} ({', '.join(FILE_COLUMNS)}) to join the labels to the DICOM "
                           f"files; found {', '.join(found) or 'no columns'}")
    return "file", file_column


def _label_columns(table: pd.DataFrame, key_column: str, extra: str | None, path: Path) -> list[str]:
    found = [c for c in table.columns if c != "source"]
    named = [c for c in found if c != key_column and normalise_label(c) in KNOWN_LABELS]
    wanted = [c.strip() for c in (extra or "").split(",") if c.strip()]
    nameless = [c for c in wanted if not normalise_label(c)]
    if nameless:
        raise DatasetError(f"{path}: --label-columns names {', '.join(repr(c) for c in nameless)}: a label column "
                           "needs letters or digits in its name, which become the condition's name; rename the "
                           "column")
    missing = [c for c in wanted if c not in found]
    if missing:
        raise DatasetError(f"{path}: --label-columns names {', '.join(missing)}, not in the file; "
                           f"found {', '.join(found)}")
    labels = named + [c for c in wanted if c not in named and c != key_column]
    if not labels:
        raise DatasetError(f"{path}: no label columns (columns named after findings, such as Pleural Effusion or "
                           f"Edema, or --label-columns) and no question and answer columns; found {', '.join(found)}")
    return labels


def _without_repeats(table: pd.DataFrame, keys: list[str], log: BuildLog) -> pd.DataFrame:
    """Skip later rows with the same image and labels, naming the first copy."""
    first = table.groupby(keys, sort=False, dropna=False)["source"].transform("first")
    return log.skip_rows("duplicated row (same image and labels)", table.assign(_first=first),
                         table.duplicated(subset=keys, keep="first"),
                         lambda row: f"repeats {row['_first']}").drop(columns=["_first"])


FORMAT = DatasetFormat(
    name="dicom", summary="a folder of DICOM files with a labels CSV keyed by SOPInstanceUID or file name "
                          "(also SIIM-ACR's train-rle.csv)",
    description="--root is the folder of DICOM files (any depth); --labels the CSV, one column per finding (1/0/-1/"
                "blank), question and answer columns, or SIIM-ACR's train-rle.csv (ImageId, EncodedPixels: one "
                "pneumothorax question per image, with its mask). Only technical header tags are read; the "
                "image_id is the file's path without its suffix, never the SOPInstanceUID.",
    options=DicomFolderOptions, read=read)
