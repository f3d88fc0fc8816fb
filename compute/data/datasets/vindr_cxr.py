"""VinDr-CXR: the radiologists' boxes (`train.csv`) and the DICOM images, as downloaded.

`train.csv` has one row per box per radiologist: `image_id, class_name, class_id, rad_id,
x_min, y_min, x_max, y_max` (`rad_id` R1...R17; a "No finding" row has empty coordinates).
Each training image was read by three radiologists independently.

Image labels come from the boxes. A class is **yes** for an image when at least
`--min-radiologists N` (default 1: any) of the radiologists who read it named it, and **no**
when none did: every image with rows is a negative for each class that none of its readers
named (the dataset's own negatives). A class named by some readers but fewer than N is
uncertain, and `--uncertain` decides it (skip by default). A skipped row never makes a
negative: where a row is skipped (class_id contradicting class_name, no rad_id), its image
gets no "no" for the class its class_name names, nor for the class its class_id names; where
a skipped row's class cannot be known (no class_name, or one that is not a label name), its
image gets no "no" at all. Classes become conditions through
compute.data.label_names ("Pleural effusion" -> pleural_effusion, "Pleural thickening" ->
pleural_abnormality, "Lung Opacity" -> lung_opacity; "Aortic enlargement", "Nodule/Mass"...
keep their normalised names). The rows go to the framework without a question, so that it
balances yes and no per condition and words them.

Every radiologist's box is kept: each (image, condition) row carries in `boxes` all the boxes
of that image whose class maps to its condition, `{x_min, y_min, x_max, y_max, label, rad_id}`
in original pixels. A box whose coordinates are blank or not finite numbers from 0, or that
is empty (x_max <= x_min or y_max <= y_min), is dropped with a reason; the radiologist's label
is kept. The boxes are in the DICOM's pixels: where the image chosen is a .png or .jpg (Kaggle's
resized sets), its rows' boxes are dropped with a reason and the labels kept.

Files: `train.csv` with images in `train/` (the Kaggle layout DATASETS.md describes); when it is
absent, `annotations/annotations_train.csv` and `annotations/annotations_test.csv` with images
in `train/` and `test/` (PhysioNet's layout; not verified against a download). `--labels FILE`
reads one file instead (images in `test/` when its name says test, else `train/`), `--images
DIR` names the image folder. An image is `<folder>/<image_id>.dicom`, or `.dcm`, `.png`,
`.jpg` when that file exists instead. The image_id is VinDr's own (already an anonymous
hash); `split` is train or test from the label file's name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from compute.data.datasets import DatasetFormat
from compute.data.datasets.build_log import BuildLog
from compute.data.datasets.label_questions import LabelPolicy
from compute.data.datasets.output import drop_duplicates
from compute.data.datasets.readers import DatasetError, given_file, read_csv
from compute.data.label_names import NO_FINDING, condition_key, normalise_label

REQUIRED = ("image_id", "class_name", "x_min", "y_min", "x_max", "y_max")
COORDINATES = ("x_min", "y_min", "x_max", "y_max")
KAGGLE_FILE = ("train.csv", "train", "train")  # (labels, split, image folder)
PHYSIONET_FILES = (("annotations/annotations_train.csv", "train", "train"),
                   ("annotations/annotations_test.csv", "test", "test"))
IMAGE_SUFFIXES = (".dicom", ".dcm", ".png", ".jpg")
DICOM_SUFFIXES = (".dicom", ".dcm")
# The class ids of the Kaggle train.csv, to catch rows whose class_id and class_name disagree.
KAGGLE_CLASS_IDS = {
    "aortic_enlargement": "0", "atelectasis": "1", "calcification": "2", "cardiomegaly": "3",
    "consolidation": "4", "ild": "5", "infiltration": "6", "lung_opacity": "7", "nodule_mass": "8",
    "other_lesion": "9", "pleural_effusion": "10", "pleural_thickening": "11", "pneumothorax": "12",
    "pulmonary_fibrosis": "13", "no_finding": "14",
}
# class_id -> its condition, for a row whose class_id and class_name disagree
KAGGLE_ID_CONDITIONS = {class_id: condition_key(name) for name, class_id in KAGGLE_CLASS_IDS.items()}
MAX_RADIOLOGISTS = 17
NO_READER = "-"  # rad_id where the file has none


@dataclass(frozen=True)
class VindrOptions:
    labels: Path | None = field(default=None, metadata={
        "metavar": "FILE", "help": "read this box CSV instead of train.csv (or PhysioNet's "
                                   "annotations/annotations_train.csv and _test.csv); relative to --root, or a path"})
    images: Path | None = field(default=None, metadata={
        "metavar": "DIR", "help": "the folder of <image_id>.dicom files, relative to --root (default: train/, "
                                  "or test/ for a test label file)"})
    min_radiologists: int = field(default=1, metadata={
        "range": (1, MAX_RADIOLOGISTS), "metavar": "N",
        "help": "a class is yes for an image when at least N of its radiologists named it, no when none did; "
                "named by fewer than N it is uncertain and --uncertain decides (default: {default}, any "
                "radiologist)"})
    policy: LabelPolicy = field(default_factory=LabelPolicy)


def read(root: Path, options: VindrOptions, log: BuildLog) -> pd.DataFrame:
    frames = []
    for path, split, folder in _label_files(root, options):
        frame = read_csv(path, REQUIRED, log, what="box file")
        frame["split"] = split
        frame["_folder"] = _image_folder(root, options.images) if options.images else folder
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    for column in ("image_id", "class_name", "rad_id", "class_id", *COORDINATES):
        if column not in table.columns:
            table[column] = pd.NA
        table[column] = table[column].fillna("").astype(str).str.strip()
    if (table["rad_id"] == "").all() and len(table):
        log.note("no rad_id given: each image's rows count as one reader")
        table["rad_id"] = NO_READER
    table, withheld = _valid_rows(table, log)
    table = _checked_boxes(table, log)
    labels = _image_labels(table, options, log)
    labels = _without_withheld_negatives(labels, withheld, log)
    return _boxes_on_dicoms_only(_with_images(root, labels), log)


def _label_files(root: Path, options: VindrOptions) -> list[tuple[Path, str | None, str]]:
    if options.labels:
        given = options.labels
        path = given_file(root, given)
        stem = path.name.lower()
        split = "test" if "test" in stem else "train" if "train" in stem else None
        return [(path, split, "test" if split == "test" else "train")]
    if (root / KAGGLE_FILE[0]).is_file():
        return [(root / KAGGLE_FILE[0], KAGGLE_FILE[1], KAGGLE_FILE[2])]
    found = [(root / name, split, folder) for name, split, folder in PHYSIONET_FILES if (root / name).is_file()]
    if not found:
        raise DatasetError(f"{root}: no box file; expected train.csv (or "
                           f"{' and '.join(n for n, _, _ in PHYSIONET_FILES)}); is --root the VinDr-CXR folder? "
                           "Or pass --labels FILE")
    return found


def _image_folder(root: Path, given: Path) -> str:
    """--images as a posix path relative to the root."""
    if given.is_absolute():
        try:
            given = given.resolve().relative_to(root.resolve())
        except ValueError:
            raise DatasetError(f"{given}: --images must be a folder inside --root {root}") from None
    text = given.as_posix().strip("/")
    if text.startswith("..") or "/../" in f"/{text}/":
        raise DatasetError(f"{given}: --images must be a folder inside --root {root}")
    return "" if text == "." else text


def _valid_rows(table: pd.DataFrame, log: BuildLog) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows that name an image, a class and a reader, once each; and what the skipped rows
    withhold (see `_withheld`)."""
    table = log.skip_rows("no image_id", table, table["image_id"] == "")
    skipped = []
    unnamed = table["class_name"] == ""
    skipped.append(table[unnamed].assign(condition=None, id_condition=None))
    table = log.skip_rows("no class_name", table, unnamed)
    names = table["class_name"].drop_duplicates()
    keys = dict(zip(names, names.map(_condition_or_none)))
    ids = dict(zip(names, names.map(lambda n: KAGGLE_CLASS_IDS.get(normalise_label(n)))))
    table = table.assign(condition=table["class_name"].map(keys))
    unknown = table["condition"].isna()
    skipped.append(table[unknown].assign(id_condition=None))
    table = log.skip_rows("class_name is not a label name", table, unknown, lambda row: repr(row["class_name"]))
    expected = table["class_name"].map(ids)
    given = table["class_id"].str.replace(r"\.0$", "", regex=True)
    mismatch = expected.notna() & (given != "") & (given != expected)
    # the row is the class its name says or the class its id says: neither may get a no from it
    skipped.append(table[mismatch].assign(id_condition=given[mismatch].map(KAGGLE_ID_CONDITIONS)))
    table = log.skip_rows("class_id does not match class_name", table, mismatch,
                          lambda row: f"class_id {row['class_id']!r} with class_name {row['class_name']!r}")
    no_reader = table["rad_id"] == ""
    skipped.append(table[no_reader].assign(id_condition=None))
    table = log.skip_rows("no rad_id", table, no_reader)
    table = drop_duplicates(table, ["image_id", "rad_id", "class_name", *COORDINATES], log)
    return table, _withheld(pd.concat(skipped, ignore_index=True))


def _withheld(skipped: pd.DataFrame) -> pd.DataFrame:
    """What the skipped rows (with an image_id) keep from being a no: one row per (image_id,
    condition, source) for each condition a skipped row may name (its class_name's, and its
    class_id's where they disagree), and condition None for an image with a skipped row whose
    class cannot be known, so that the image gets no negatives at all."""
    pairs = pd.concat([skipped[["image_id", "condition", "source"]],
                       skipped.loc[skipped["id_condition"].notna(), ["image_id", "id_condition", "source"]]
                       .rename(columns={"id_condition": "condition"})], ignore_index=True)
    pairs = pairs[pairs["condition"] != NO_FINDING]  # a "No finding" row withholds nothing of its own
    return pairs.astype(object).reset_index(drop=True)


def _checked_boxes(table: pd.DataFrame, log: BuildLog) -> pd.DataFrame:
    """Number columns for the boxes of the finding rows, and `has_box` where they make a box."""
    numbers = table[list(COORDINATES)].apply(pd.to_numeric, errors="coerce").astype(float)
    finding = table["condition"] != NO_FINDING
    not_numbers = finding & ~(np.isfinite(numbers) & (numbers >= 0)).all(axis=1)
    log.skip_rows("box coordinates blank or not numbers from 0 (box dropped, label kept)", table, not_numbers,
                  lambda row: ", ".join(f"{c}={row[c]!r}" for c in COORDINATES))
    empty = finding & ~not_numbers & ((numbers["x_max"] <= numbers["x_min"]) | (numbers["y_max"] <= numbers["y_min"]))
    log.skip_rows("empty box: x_max <= x_min or y_max <= y_min (box dropped, label kept)", table, empty,
                  lambda row: ", ".join(f"{c}={row[c]}" for c in COORDINATES))
    out = table.drop(columns=list(COORDINATES)).join(numbers)
    out["has_box"] = finding & ~not_numbers & ~empty
    return out


def _image_labels(table: pd.DataFrame, options: VindrOptions, log: BuildLog) -> pd.DataFrame:
    """One row per (image, condition named in the file) with its answer, source and boxes."""
    findings = table[table["condition"] != NO_FINDING]
    images = table.groupby("image_id", sort=True).agg(split=("split", "first"), _folder=("_folder", "first"),
                                                      image_source=("source", "first")).reset_index()
    conditions = pd.DataFrame({"condition": pd.Series(sorted(findings["condition"].unique()), dtype=object)})
    grid = images.merge(conditions, how="cross")
    named = (findings.groupby(["image_id", "condition"])
             .agg(readers=("rad_id", "nunique"), named_source=("source", "first")).reset_index())
    grid = grid.merge(named, on=["image_id", "condition"], how="left")
    grid["readers"] = grid["readers"].fillna(0).astype(int)
    grid["source"] = grid["named_source"].fillna(grid["image_source"])
    grid["answer"] = np.select([grid["readers"] >= options.min_radiologists, grid["readers"] == 0],
                               ["yes", "no"], "uncertain")
    uncertain = grid["answer"] == "uncertain"
    n = options.min_radiologists
    if options.policy.uncertain == "skip":
        grid = log.skip_rows(f"named by fewer than {n} radiologists (--min-radiologists {n}), --uncertain skip",
                             grid, uncertain, lambda row: f"{row['image_id']} {row['condition']}: "
                                                          f"{row['readers']} of them")
    else:
        grid.loc[uncertain, "answer"] = options.policy.uncertain
    boxed = findings[findings["has_box"]]
    fields = [*COORDINATES, "label"] + (["rad_id"] if (boxed["rad_id"] != NO_READER).any() else [])
    boxes = pd.Series(boxed.rename(columns={"class_name": "label"})[fields].to_dict(orient="records"),
                      index=boxed.index, dtype=object)
    by_condition = (boxed.assign(box=boxes).groupby(["image_id", "condition"])["box"].agg(list)
                    .rename("boxes").reset_index())
    grid = grid.merge(by_condition, on=["image_id", "condition"], how="left")
    return grid[["image_id", "condition", "answer", "split", "_folder", "source", "boxes"]]


def _without_withheld_negatives(labels: pd.DataFrame, withheld: pd.DataFrame, log: BuildLog) -> pd.DataFrame:
    """Skip the no answers that a skipped row might contradict: an (image, condition) that a
    skipped row may have named, and every no of an image with a skipped row of unknown class.
    A skipped row never makes a negative."""
    if withheld.empty or labels.empty:
        return labels
    named = withheld[withheld["condition"].notna()].drop_duplicates(["image_id", "condition"])
    unknown = withheld[withheld["condition"].isna()].drop_duplicates("image_id")
    for reason, by, skipped in (
            ("a radiologist's row for this finding was skipped; no 'no' answer from the others",
             ["image_id", "condition"], named),
            ("a radiologist's row for this image was skipped and its finding cannot be known; no 'no' answers "
             "for this image", ["image_id"], unknown)):
        if skipped.empty:
            continue
        found = labels[by].merge(skipped[[*by, "source"]], on=by, how="left")["source"].set_axis(labels.index)
        mask = (labels["answer"] == "no") & found.notna()
        labels = log.skip_rows(reason, labels.assign(source=labels["source"].where(~mask, found)), mask,
                               lambda row: f"skipped, so no 'no' for {row['image_id']} {row['condition']}")
    return labels


def _boxes_on_dicoms_only(labels: pd.DataFrame, log: BuildLog) -> pd.DataFrame:
    """Drop the boxes (keep the labels) of rows whose image is not the DICOM: VinDr's boxes are
    in the DICOM's pixels, and a .png or .jpg of the image (Kaggle's resized sets) may have
    other dimensions. Counted per box."""
    if labels.empty:
        return labels
    has_boxes = labels["boxes"].map(lambda b: isinstance(b, list) and len(b) > 0)
    other = has_boxes & ~labels["image"].str.lower().str.endswith(DICOM_SUFFIXES)
    if other.any():
        log.skip_rows("box dropped (label kept): the boxes are in the DICOM's pixels and this image file is not "
                      "the DICOM (a .png or .jpg may be resized)", labels[other].explode("boxes"), None,
                      lambda row: f"{row['image']} ({row['boxes']['label']} box"
                      + (f" by {row['boxes']['rad_id']})" if "rad_id" in row["boxes"] else ")"))
        labels = labels.assign(boxes=labels["boxes"].where(~other, None))
    return labels


def _with_images(root: Path, labels: pd.DataFrame) -> pd.DataFrame:
    """`image`: the folder's <image_id> file with the first suffix that exists (.dicom if none)."""
    present: set[str] = set()
    for folder in labels["_folder"].unique():
        directory = root / folder if folder else root
        try:
            present |= {f"{folder}/{e.name}" if folder else e.name for e in os.scandir(directory) if e.is_file()}
        except OSError:
            continue  # every image of that folder is then reported missing
    stem = labels["_folder"].where(labels["_folder"] == "", labels["_folder"] + "/") + labels["image_id"]
    candidates = [stem + suffix for suffix in IMAGE_SUFFIXES]
    labels["image"] = np.select([c.isin(present) for c in candidates], candidates, stem + IMAGE_SUFFIXES[0])
    return labels.drop(columns=["_folder"])


def _condition_or_none(name: str) -> str | None:
    try:
        return condition_key(name)
    except ValueError:
        return None


FORMAT = DatasetFormat(
    name="vindr-cxr", summary="VinDr-CXR: train.csv radiologists' boxes and the DICOM images",
    description="--root is the folder as downloaded (train.csv and train/<image_id>.dicom). A class is yes where at "
                "least --min-radiologists of an image's readers named it and no where none did; every box is kept "
                "on its condition's row. --blank-as-no and --no-finding-as-no change nothing here (a box file has "
                "no blank labels).",
    options=VindrOptions, read=read)
