"""MIMIC-CXR-JPG 2.x (PhysioNet): the JPEG images and the report labellers' per-study labels.

--root is the folder as downloaded (`mimic-cxr-jpg/2.0.0/` or `2.1.0/`), holding `files/` and
the CSV files, each found under its plain or its .gz name:

- `mimic-cxr-2.0.0-chexpert.csv(.gz)` or `mimic-cxr-2.0.0-negbio.csv(.gz)` (`--labeler`):
  one row per study, `subject_id, study_id` and the 14 CheXpert labels (1.0 present, 0.0
  absent, -1.0 uncertain, blank not mentioned). `--labels FILE` reads another label CSV of
  that shape instead, such as the radiologists' `mimic-cxr-2.1.0-test-set-labeled.csv`; a file
  without `subject_id` is joined on `study_id` alone (MIMIC's study ids are unique).
- `mimic-cxr-2.0.0-metadata.csv(.gz)`: one row per image, `dicom_id, subject_id, study_id,
  ViewPosition, ...`: how images join their study's labels.
- `mimic-cxr-2.0.0-split.csv(.gz)`: `dicom_id, ..., split` (train | validate | test); read when
  present, needed for `--split`.

An image is `files/p{subject_id[:2]}/p{subject_id}/s{study_id}/{dicom_id}.jpg`; its image_id is
its dicom_id, `view` its ViewPosition and `split` its row in the split file. `subject_id` and
`study_id` stay as columns (PhysioNet de-identified them); nothing else of the metadata (dates,
times, procedure names) is carried. Only the views in `--views` are kept (PA and AP, the
frontal views, by default), and one image per study unless `--all-images`: the first view in
the order `--views` names them, then the smallest dicom_id. Images whose study has no label
row, label rows whose study has no image in the metadata, ids that are not whole numbers and
repeated rows are skipped with their reasons; the label codes then go through the label policy
as CheXpert's do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from compute.data.datasets import DatasetFormat
from compute.data.datasets.build_log import BuildLog
from compute.data.datasets.chexpert import CHEXPERT_LABELS
from compute.data.datasets.label_questions import LabelPolicy, label_answers
from compute.data.datasets.output import drop_duplicates
from compute.data.datasets.readers import DatasetError, find_file, given_file, read_csv

LABELERS = ("chexpert", "negbio")
VERSION = "mimic-cxr-2.0.0"
METADATA_COLUMNS = ("dicom_id", "subject_id", "study_id", "ViewPosition")
ALL_VIEWS = "all"


def _names(kind: str) -> tuple[str, str]:
    return f"{VERSION}-{kind}.csv.gz", f"{VERSION}-{kind}.csv"


@dataclass(frozen=True)
class MimicCxrJpgOptions:
    labeler: str = field(default="chexpert", metadata={
        "choices": LABELERS, "help": "whose report labels to read: mimic-cxr-2.0.0-chexpert.csv(.gz) or "
                                     "mimic-cxr-2.0.0-negbio.csv(.gz) (default: {default}; not used with --labels)"})
    labels: Path | None = field(default=None, metadata={
        "metavar": "FILE", "help": "read this per-study label CSV instead (subject_id, study_id and CheXpert's "
                                   "label columns), e.g. the radiologists' mimic-cxr-2.1.0-test-set-labeled.csv; "
                                   "relative to --root, or a path"})
    views: str = field(default="PA,AP", metadata={
        "metavar": "VIEWS", "help": "the ViewPosition values to keep, comma-separated, in the order that picks a "
                                    "study's image (default: {default}, the frontal views; 'all' keeps every view)"})
    split: str | None = field(default=None, metadata={
        "metavar": "NAME", "help": "only the images of this split in mimic-cxr-2.0.0-split.csv(.gz): train, "
                                   "validate or test (default: every image, whatever its split)"})
    all_images: bool = field(default=False, metadata={
        "help": "ask about every image of a study that --views keeps (default: one per study, the first view "
                "in --views order, then the smallest dicom_id)"})
    policy: LabelPolicy = field(default_factory=LabelPolicy)

    def __post_init__(self) -> None:
        if self.labeler not in LABELERS:
            raise ValueError(f"labeler must be one of {', '.join(LABELERS)}, got {self.labeler!r}")
        if not self.view_list and self.views.strip().lower() != ALL_VIEWS:
            raise ValueError(f"--views names no view: {self.views!r}")

    @property
    def view_list(self) -> list[str]:
        """The views to keep, upper case, in order; empty for 'all'."""
        if self.views.strip().lower() == ALL_VIEWS:
            return []
        return list(dict.fromkeys(v.strip().upper() for v in self.views.split(",") if v.strip()))


def read(root: Path, options: MimicCxrJpgOptions, log: BuildLog) -> pd.DataFrame:
    label_path = _label_file(root, options)
    metadata_path = find_file(root, _names("metadata"), "image metadata (needed to join images to their study)")
    labels, label_columns, keys = _read_labels(label_path, options, log)
    images = _read_metadata(metadata_path, log)
    images = _with_split(root, images, options, log)
    _skip_unmatched_labels(labels, images, keys, label_path.name, log)
    images = _chosen_views(images, options, log)
    table = images.merge(labels.rename(columns={"source": "label_source"}), on=keys, how="left", indicator=True)
    what = "image's study" if options.all_images else "study"
    table = log.skip_rows(f"{what} has no row in {label_path.name}", table, table["_merge"] == "left_only",
                          lambda row: f"subject {row['subject_id']} study {row['study_id']} ({row['dicom_id']})")
    table["source"] = table["label_source"]
    table["image"] = ("files/p" + table["subject_id"].str[:2] + "/p" + table["subject_id"] + "/s"
                      + table["study_id"] + "/" + table["dicom_id"] + ".jpg")
    table["image_id"] = table["dicom_id"]
    table = table[["image", "image_id", "view", "split", "subject_id", "study_id", "source", *label_columns]]
    no_finding = "No Finding" if "No Finding" in label_columns else None
    return label_answers(table, label_columns, options.policy, log, no_finding_column=no_finding).drop(
        columns=["label"])


def _label_file(root: Path, options: MimicCxrJpgOptions) -> Path:
    if options.labels is None:
        return find_file(root, _names(options.labeler), f"{options.labeler} label file (or pass --labels FILE)")
    return given_file(root, options.labels, "--labels", "label file")


def _ids(values: pd.Series) -> pd.Series:
    """Ids as written, less spaces and a ".0" that a spreadsheet added."""
    return values.fillna("").astype(str).str.strip().str.replace(r"\.0+$", "", regex=True)


def _skip_bad_ids(frame: pd.DataFrame, columns: list[str], log: BuildLog) -> pd.DataFrame:
    for column in columns:
        frame[column] = _ids(frame[column])
    bad = ~np.logical_and.reduce([frame[c].str.fullmatch(r"\d+") for c in columns])
    return log.skip_rows(f"{' or '.join(columns)} is not a whole number", frame, pd.Series(bad, index=frame.index),
                         lambda row: ", ".join(f"{c} {row[c]!r}" for c in columns))


def _read_labels(path: Path, options: MimicCxrJpgOptions, log: BuildLog) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The label rows, their label columns, and the columns they join images on."""
    if options.labels is None:
        frame = read_csv(path, ["subject_id", "study_id", *CHEXPERT_LABELS], log)
    else:
        frame = read_csv(path, ["study_id"], log)
    label_columns = [c for c in CHEXPERT_LABELS if c in frame.columns]
    if not label_columns:
        found = ", ".join(c for c in frame.columns if c != "source")
        raise DatasetError(f"{path}: none of the 14 CheXpert label columns ({', '.join(CHEXPERT_LABELS)}); "
                           f"found {found}")
    keys = ["subject_id", "study_id"] if "subject_id" in frame.columns else ["study_id"]
    if keys == ["study_id"]:
        log.note(f"{path.name} has no subject_id: its rows join the images on study_id alone")
    others = [c for c in frame.columns if c not in (*keys, *label_columns, "source")]
    if others:
        log.note(f"{path.name}: columns not read as labels: {', '.join(others)}")
    frame = _skip_bad_ids(frame[[*keys, *label_columns, "source"]].copy(), keys, log)
    frame = drop_duplicates(frame, keys, log, what="label row")
    return frame, label_columns, keys


def _read_metadata(path: Path, log: BuildLog) -> pd.DataFrame:
    frame = read_csv(path, METADATA_COLUMNS, log, what="metadata file")
    frame = frame[[*METADATA_COLUMNS, "source"]].copy()
    frame["dicom_id"] = frame["dicom_id"].fillna("").str.strip()
    frame = log.skip_rows("no dicom_id", frame, frame["dicom_id"] == "")
    frame = log.skip_rows("dicom_id is not a file name", frame, frame["dicom_id"].str.contains(r"[/\\]|^\.+$"),
                          lambda row: repr(row["dicom_id"]))
    frame = _skip_bad_ids(frame, ["subject_id", "study_id"], log)
    frame = drop_duplicates(frame, ["dicom_id"], log, what="metadata row")
    frame["view"] = frame["ViewPosition"].fillna("").str.strip()
    return frame.drop(columns=["ViewPosition"])


def _with_split(root: Path, images: pd.DataFrame, options: MimicCxrJpgOptions, log: BuildLog) -> pd.DataFrame:
    """`split` from the split file where there is one; only the --split images when given."""
    names = _names("split")
    if options.split is None and not any((root / n).is_file() for n in names):
        images["split"] = None
        return images
    path = find_file(root, names, "split file (needed for --split)")
    splits = read_csv(path, ["dicom_id", "split"], log, what="split file")
    splits["dicom_id"] = splits["dicom_id"].fillna("").str.strip()
    splits["split"] = splits["split"].fillna("").str.strip()
    splits = drop_duplicates(splits, ["dicom_id"], log, what="split row")
    split = images["dicom_id"].map(splits.set_index("dicom_id")["split"])
    images["split"] = split.where(split.notna() & (split != ""), None)
    if options.split is None:
        return images
    known = sorted(s for s in splits["split"].unique() if s)
    if options.split not in known:
        raise DatasetError(f"{path}: no split {options.split!r} (--split); its splits are {', '.join(known) or 'none'}")
    images = log.skip_rows(f"not in {path.name}", images, images["split"].isna(), lambda row: row["dicom_id"])
    return log.skip_rows(f"split is not {options.split} (--split)", images, images["split"] != options.split,
                         lambda row: f"{row['dicom_id']} in {row['split']}")


def _skip_unmatched_labels(labels: pd.DataFrame, images: pd.DataFrame, keys: list[str], name: str,
                           log: BuildLog) -> None:
    """Count the label rows whose study has no image at all in the metadata (before views and
    splits are chosen: a study left out by those is counted by its images)."""
    known = pd.MultiIndex.from_frame(images[keys].drop_duplicates())
    orphan = ~pd.MultiIndex.from_frame(labels[keys]).isin(known)
    log.skip_rows(f"study in {name} has no image in the metadata", labels, pd.Series(orphan, index=labels.index),
                  lambda row: " ".join(f"{k.split('_')[0]} {row[k]}" for k in keys))


def _chosen_views(images: pd.DataFrame, options: MimicCxrJpgOptions, log: BuildLog) -> pd.DataFrame:
    """The images of the --views, and unless --all-images the first of each study's: by view in
    --views order, then by dicom_id."""
    views = options.view_list
    upper = images["view"].str.upper()
    if views:
        images = log.skip_rows(f"view not in --views {','.join(views)}", images, ~upper.isin(views),
                               lambda row: f"{row['dicom_id']} view {row['view'] or 'blank'}")
        rank = images["view"].str.upper().map({v: i for i, v in enumerate(views)})
    else:  # every view: frontal ones first, then any other by name, blank last
        named = images["view"].str.upper()
        rank = named.map({"PA": 0, "AP": 1}).fillna(2).where(named != "", 3)
    if options.all_images:
        return images
    ordered = images.assign(_rank=rank.to_numpy()).sort_values(["subject_id", "study_id", "_rank", "dicom_id"],
                                                              kind="stable")
    other = ordered.duplicated(subset=["subject_id", "study_id"], keep="first")
    chosen = ordered.drop_duplicates(subset=["subject_id", "study_id"], keep="first").set_index(
        ["subject_id", "study_id"])["dicom_id"]
    ordered = log.skip_rows("another image of the study is asked about (one per study; --all-images keeps every "
                            "image)", ordered, other,
                            lambda row: f"{row['dicom_id']} ({row['view'] or 'blank'}); chosen "
                                        f"{chosen.loc[(row['subject_id'], row['study_id'])]}")
    return ordered.drop(columns=["_rank"])


FORMAT = DatasetFormat(
    name="mimic-cxr-jpg", summary="MIMIC-CXR-JPG 2.x: files/p../s../*.jpg and the per-study CheXpert or NegBio labels",
    description="--root is the folder as downloaded (mimic-cxr-jpg/2.0.0/ or 2.1.0/: files/ and the "
                "mimic-cxr-2.0.0-*.csv(.gz) files). Labels are per study and reach the images through the "
                "metadata; frontal views only and one image per study unless --views / --all-images.",
    options=MimicCxrJpgOptions, read=read)
