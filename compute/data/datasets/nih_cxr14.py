"""NIH ChestX-ray14: `Data_Entry_2017*.csv` and the PNG images, as downloaded.

The label file (`Data_Entry_2017_v2020.csv`, or the older `Data_Entry_2017.csv`, plain or .gz,
found at --root or one folder below it; `--labels FILE` names one) has one row per image:
`Image Index, Finding Labels, Follow-up #, Patient ID, Patient Age, Patient Gender, View
Position, ...`. `Finding Labels` lists the image's findings joined by `|`, or says `No Finding`.
The images are found wherever they lie under --root (`images/`, or `images_001/images/` ... of
the full download) by one walk of the folder, joined to the rows by file name.

Labels. The 14 findings become conditions through compute.data.label_names (Effusion ->
pleural_effusion, Pleural_Thickening -> pleural_abnormality; Mass, Nodule, Infiltration,
Emphysema, Fibrosis, Hernia keep their own names, outside the nine). A listed finding is a
yes. The labels were mined from the reports and have no uncertain or blank codes: a finding
an image does not list is the dataset's own negative, so by default it is a **no** answer
(that is how ChestX-ray14 is used), and the framework then keeps as many no as yes questions
per condition. `--listed-only` reads an unlisted finding as not mentioned instead (blank): the
only no answers are then those that `--no-finding-as-no` gives the `No Finding` images, or
all of them again with `--blank-as-no`. A label outside NIH's 15 is kept under its own name,
and a note lists it; an image that lists `No Finding` with findings is skipped.

Boxes. The optional `BBox_List_2017.csv` (found beside the label file or at --root; `--boxes
FILE`) holds radiologists' boxes: `Image Index, Finding Label, Bbox [x, y, w, h]`, whose header
is ragged (the four numbers sit in four columns under one name, and the header may carry empty
names after it), so the header is checked by its first names and the data rows are read by
position. Each box becomes `{x_min, y_min, x_max, y_max, label}` (x, y, x + w, y + h, pixels of
the 1024 x 1024 image; `label` as written, e.g. `Infiltrate`, the box file's name for
Infiltration) and is attached to the yes row of its image and condition.

Columns: image_id is the `Image Index` as written (`00000001_000.png`); `view` the View
Position (PA | AP); `split` train_val or test where `train_val_list.txt` / `test_list.txt`
lie beside the label file (`--split` keeps one); `patient_id` the Patient ID, a number NIH
assigned (the set is de-identified; left out where the file has no Patient ID column or the cell is
blank). Patient Age and Patient Gender are not carried. A label with no letters or digits (`?`)
cannot be read: in `Finding Labels` its row is skipped (the image's other findings would
otherwise be read as absent), in the box file its box is, each with the reason.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from compute.data.datasets import DatasetFormat
from compute.data.datasets.build_log import BuildLog
from compute.data.datasets.label_questions import LabelPolicy, label_answers
from compute.data.datasets.output import drop_duplicates
from compute.data.datasets.readers import DatasetError, given_file, read_csv
from compute.data.label_names import condition_key, normalise_label

NIH_FINDINGS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
                "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax")
NO_FINDING_LABEL = "No Finding"
LABEL_GLOBS = ("Data_Entry_2017*.csv", "Data_Entry_2017*.csv.gz")
BOX_FILES = ("BBox_List_2017.csv", "BBox_List_2017.csv.gz")
BOX_HEADER = ("Image Index", "Finding Label", "Bbox")
BOX_FIELDS = 12  # data fields read per box row: name, label, x, y, w, h, and room for trailing empty ones
BOX_LABEL_NAMES = {"infiltrate": "Infiltration"}  # the box file's name -> Data_Entry's, by normalised name
SPLIT_LISTS = (("train_val_list.txt", "train_val"), ("test_list.txt", "test"))


@dataclass(frozen=True)
class NihCxr14Options:
    labels: Path | None = field(default=None, metadata={
        "metavar": "FILE", "help": "the label CSV to read (default: the Data_Entry_2017*.csv found at --root or one "
                                   "folder below; the newest name when there are several); relative to --root, "
                                   "or a path"})
    boxes: Path | None = field(default=None, metadata={
        "metavar": "FILE", "help": "the box CSV (default: BBox_List_2017.csv beside the label file or at --root, "
                                   "when there is one)"})
    absent_as_no: bool = field(default=True, metadata={
        "flag": "--listed-only", "help": "read a finding an image does not list as not mentioned (blank) instead "
                                         "of no; by default it is a no answer, the dataset's own negative"})
    split: str | None = field(default=None, metadata={
        "metavar": "NAME", "help": "only the images of train_val_list.txt (train_val) or test_list.txt (test) "
                                   "(default: every image)"})
    policy: LabelPolicy = field(default_factory=LabelPolicy)


def read(root: Path, options: NihCxr14Options, log: BuildLog) -> pd.DataFrame:
    entry = _label_file(root, options, log)
    table = read_csv(entry, ["Image Index", "Finding Labels"], log)
    if "View Position" not in table.columns:
        table["View Position"] = None
    has_patient = "Patient ID" in table.columns  # without the column, rows carry no patient_id at all
    table = table.rename(columns={"Image Index": "image_id", "View Position": "view", "Patient ID": "patient_id"})
    table = table[["image_id", "Finding Labels", "view", *(["patient_id"] if has_patient else []), "source"]].copy()
    table["image_id"] = table["image_id"].fillna("").str.strip()
    table = log.skip_rows("no Image Index", table, table["image_id"] == "")
    table = log.skip_rows("Image Index is not a file name", table, table["image_id"].str.contains(r"[/\\]|^\.+$"),
                          lambda row: repr(row["image_id"]))
    table = drop_duplicates(table, ["image_id"], log, what="image row")
    view = table["view"].fillna("").str.strip()
    table["view"] = view.where(view != "", None)
    if has_patient:
        patient = table["patient_id"].fillna("").str.strip().str.replace(r"\.0+$", "", regex=True)
        table["patient_id"] = patient.where(patient != "", None)
    table = _with_split(entry.parent, root, table, options, log)
    table = _with_images(root, table, log)
    wide, label_columns = _label_table(table, options, log)
    long = label_answers(wide, label_columns, options.policy, log, no_finding_column=NO_FINDING_LABEL)
    long = long.drop(columns=["label"])
    box_file = _box_file(root, entry, options)
    if box_file is not None:
        long = _with_boxes(long, box_file, log)
    return long


def _label_file(root: Path, options: NihCxr14Options, log: BuildLog) -> Path:
    if options.labels is not None:
        given = options.labels
        return given_file(root, given, "--labels", "label file")
    for folder_glob in ("", "*/"):
        found = sorted({p for pattern in LABEL_GLOBS for p in root.glob(folder_glob + pattern) if p.is_file()})
        if found:
            if len(found) > 1:
                log.note(f"label files {', '.join(p.name for p in found)}: read {found[-1].name} "
                         "(--labels FILE reads another)")
            return found[-1]
    raise DatasetError(f"{root}: no label file; looked for {' and '.join(LABEL_GLOBS)} at the root and one folder "
                       "below (is --root the ChestX-ray14 folder?), or pass --labels FILE")


def _with_split(folder: Path, root: Path, table: pd.DataFrame, options: NihCxr14Options,
                log: BuildLog) -> pd.DataFrame:
    """`split` from train_val_list.txt and test_list.txt (beside the label file, else at the
    root) where they exist; only the --split images when given."""
    lists = []
    for name, split in SPLIT_LISTS:
        path = next((p for p in (folder / name, root / name) if p.is_file()), None)
        if path is not None:
            names = pd.Series(path.read_text(encoding="utf-8-sig").split(), dtype=object)
            lists.append(pd.DataFrame({"image_id": names, "split": split, "list": path.name}))
    if not lists:
        if options.split is not None:
            raise DatasetError(f"{folder}: --split needs {' or '.join(n for n, _ in SPLIT_LISTS)}; neither was found")
        table["split"] = None
        return table
    splits = pd.concat(lists, ignore_index=True)
    both = splits["image_id"].duplicated(keep=False) & (splits.groupby("image_id")["split"].transform("nunique") > 1)
    if both.any():
        log.note(f"{splits.loc[both, 'image_id'].nunique():,} images are in more than one split list; "
                 "each is read as the split of its first list")
    splits = splits.drop_duplicates(subset="image_id", keep="first")
    table["split"] = table["image_id"].map(splits.set_index("image_id")["split"])
    if options.split is None:
        return table
    known = [s for _, s in SPLIT_LISTS if s in set(splits["split"])]
    if options.split not in known:
        raise DatasetError(f"{folder}: no split {options.split!r} (--split); the split lists give "
                           f"{', '.join(known)}")
    names = " nor ".join(sorted(splits["list"].unique()))
    table = log.skip_rows(f"in no split list ({names})", table, table["split"].isna(), lambda row: row["image_id"])
    return log.skip_rows(f"split is not {options.split} (--split)", table, table["split"] != options.split,
                         lambda row: f"{row['image_id']} in {row['split']}")


def _with_images(root: Path, table: pd.DataFrame, log: BuildLog) -> pd.DataFrame:
    """`image`: where each Image Index lies under the root, from one walk of it (the first
    folder in name order where a name is in more than one)."""
    names: list[str] = []
    folders: list[str] = []
    base = os.fspath(root)
    for folder, dirs, files in os.walk(root):  # links to folders are not followed
        dirs.sort()
        rel = folder[len(base):].replace(os.sep, "/").strip("/")
        names.extend(files)
        folders.extend([rel] * len(files))
    found = pd.DataFrame({"image_id": pd.Series(names, dtype=object), "folder": pd.Series(folders, dtype=object)})
    found = found[found["image_id"].isin(set(table["image_id"]))].sort_values(["folder", "image_id"], kind="stable")
    copies = found["image_id"].duplicated(keep="first")
    if copies.any():
        log.note(f"{found.loc[copies, 'image_id'].nunique():,} images lie in more than one folder; the first folder "
                 f"in name order is used (e.g. {found.loc[copies, 'image_id'].iloc[0]})")
        found = found[~copies]
    paths = found["image_id"].where(found["folder"] == "", found["folder"] + "/" + found["image_id"])
    table["image"] = table["image_id"].map(pd.Series(paths.to_numpy(), index=found["image_id"].to_numpy()))
    return log.skip_rows("image file not found under the root", table, table["image"].isna(),
                         lambda row: row["image_id"])


def _label_table(table: pd.DataFrame, options: NihCxr14Options, log: BuildLog) -> tuple[pd.DataFrame, list[str]]:
    """One column per finding, coded as CheXpert codes them: 1 listed; 0 not listed (blank
    with --listed-only); No Finding 1 where the image says so."""
    labels = table["Finding Labels"].fillna("").str.strip()
    table = log.skip_rows("no Finding Labels", table, labels == "")
    listed = (table[["image_id"]].assign(label=table["Finding Labels"].str.split("|")).explode("label"))
    listed["label"] = listed["label"].str.strip()
    listed = listed[listed["label"] != ""]
    names = listed["label"].drop_duplicates()
    garbled = set(names[names.map(normalise_label) == ""])  # "?": no finding can be read from it
    unreadable = set(listed.loc[listed["label"].isin(garbled), "image_id"])
    table = log.skip_rows("Finding Labels lists a label with no letters or digits (row skipped: the image's other "
                          "findings would be read as absent)", table, table["image_id"].isin(unreadable),
                          lambda row: f"{row['image_id']}: {row['Finding Labels']!r}")
    listed = listed[~listed["image_id"].isin(unreadable)]
    columns = _label_columns(listed["label"].unique(), log, listed)
    listed = listed.assign(column=listed["label"].map(columns)).drop_duplicates(subset=["image_id", "column"])
    nothing = listed["column"] == NO_FINDING_LABEL
    mixed = set(listed.loc[nothing, "image_id"]) & set(listed.loc[~nothing, "image_id"])
    table = log.skip_rows("'No Finding' listed with findings", table, table["image_id"].isin(mixed),
                          lambda row: f"{row['image_id']}: {row['Finding Labels']}")
    listed = listed[~listed["image_id"].isin(mixed)]
    label_columns = list(dict.fromkeys([*NIH_FINDINGS, *columns.values(), NO_FINDING_LABEL]))
    present = (pd.crosstab(listed["image_id"], listed["column"]) > 0).reindex(
        index=table["image_id"], columns=label_columns, fill_value=False)
    absent = "0" if options.absent_as_no else ""
    codes = pd.DataFrame(np.where(present.to_numpy(), "1", absent), columns=label_columns, index=table.index)
    codes[NO_FINDING_LABEL] = codes[NO_FINDING_LABEL].where(codes[NO_FINDING_LABEL] == "1", "")
    carried = [c for c in ("image", "image_id", "view", "split", "patient_id", "source") if c in table.columns]
    wide = pd.concat([table[carried], codes], axis=1)
    return wide, label_columns


def _label_columns(names, log: BuildLog, listed: pd.DataFrame) -> dict[str, str]:
    """Each label as written -> its column: NIH's own spelling for the 15, and for a label
    outside them the NIH finding of the same condition, else its first spelling."""
    by_condition = {condition_key(n): n for n in (*NIH_FINDINGS, NO_FINDING_LABEL)}
    columns, others = {}, []
    for name in names:  # the distinct labels of the file: a handful
        key = condition_key(name)
        if key not in by_condition:
            by_condition[key] = name
        columns[name] = by_condition[key]
        if name not in (*NIH_FINDINGS, NO_FINDING_LABEL):
            others.append(name)
    if others:
        counts = listed[listed["label"].isin(others)].groupby("label")["image_id"].nunique()
        log.note("labels outside NIH's 15: " + ", ".join(
            f"{name!r} ({_n_images(counts[name])}, read as {columns[name]})" if columns[name] != name
            else f"{name!r} ({_n_images(counts[name])}, asked about under its own name)" for name in sorted(others)))
    return columns


def _n_images(n: int) -> str:
    return f"{n:,} image" + ("" if n == 1 else "s")


def _box_file(root: Path, entry: Path, options: NihCxr14Options) -> Path | None:
    if options.boxes is not None:
        given = options.boxes
        return given_file(root, given, "--boxes", "box file")
    return next((folder / name for folder in dict.fromkeys((entry.parent, root)) for name in BOX_FILES
                 if (folder / name).is_file()), None)


def _read_boxes(path: Path, log: BuildLog) -> pd.DataFrame:
    """The box rows by position under the ragged header: image, label, x, y, w, h."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(io.StringIO(handle.readline())), [])
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path}: cannot read the box file ({exc})") from None
    names = [h.strip() for h in header]
    if len(names) < 3 or names[0] != BOX_HEADER[0] or names[1] != BOX_HEADER[1] or not names[2].startswith("Bbox"):
        raise DatasetError(f"{path}: expected the header Image Index, Finding Label, Bbox [x,y,w,h]; "
                           f"found {', '.join(n for n in names if n) or 'no columns'}")
    try:
        frame = pd.read_csv(path, header=None, skiprows=1, names=range(BOX_FIELDS), dtype=str, keep_default_na=False,
                            na_values=[""], compression="infer", encoding="utf-8")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path}: cannot read the box file ({str(exc).strip().splitlines()[0]})") from None
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame(columns=range(BOX_FIELDS), dtype=str)
    frame = frame.rename(columns={0: "image_id", 1: "label", 2: "x", 3: "y", 4: "w", 5: "h"})
    frame["source"] = f"{path.name} row " + pd.Series(range(1, len(frame) + 1), index=frame.index).astype(str)
    log.read(path.name, len(frame))
    return frame[["image_id", "label", "x", "y", "w", "h", "source"]]


def _with_boxes(long: pd.DataFrame, path: Path, log: BuildLog) -> pd.DataFrame:
    """`boxes` on the yes rows of each box's image and condition; other boxes are counted."""
    boxes = _read_boxes(path, log)
    for column in ("image_id", "label"):
        boxes[column] = boxes[column].fillna("").str.strip()
    boxes = log.skip_rows("box without Image Index or Finding Label", boxes,
                          (boxes["image_id"] == "") | (boxes["label"] == ""))
    names = boxes["label"].drop_duplicates()
    garbled = set(names[names.map(normalise_label) == ""])
    boxes = log.skip_rows("box Finding Label has no letters or digits", boxes, boxes["label"].isin(garbled),
                          lambda row: f"{row['image_id']} {row['label']!r}")
    numbers = boxes[["x", "y", "w", "h"]].apply(pd.to_numeric, errors="coerce").astype(float)
    bad = ~np.isfinite(numbers).all(axis=1)
    boxes = log.skip_rows("box coordinates are not four numbers", boxes, bad,
                          lambda row: ", ".join(f"{c}={row[c]!r}" for c in "xywh"))
    numbers = numbers[~bad]
    bad = (numbers["x"] < 0) | (numbers["y"] < 0) | (numbers["w"] <= 0) | (numbers["h"] <= 0)
    boxes = log.skip_rows("box starts below 0 or has no width or height", boxes, bad,
                          lambda row: ", ".join(f"{c}={row[c]}" for c in "xywh"))
    numbers = numbers[~bad]
    boxes = drop_duplicates(boxes, ["image_id", "label", "x", "y", "w", "h"], log, what="box row")
    numbers = numbers.loc[boxes.index]
    names = boxes["label"].drop_duplicates()
    keys = dict(zip(names, names.map(lambda n: condition_key(BOX_LABEL_NAMES.get(normalise_label(n), n)))))
    boxes["condition"] = boxes["label"].map(keys)
    boxes = boxes.assign(x_min=numbers["x"], y_min=numbers["y"], x_max=numbers["x"] + numbers["w"],
                         y_max=numbers["y"] + numbers["h"])
    yes = long.loc[long["answer"] == "yes", ["image_id", "condition"]].drop_duplicates()
    matched = boxes.merge(yes, on=["image_id", "condition"], how="left", indicator=True)
    unmatched = matched["_merge"] == "left_only"
    asked = matched["image_id"].isin(set(long["image_id"]))
    log.skip_rows("box for an image without questions (not in the label file, or its row skipped)", matched,
                  unmatched & ~asked, lambda row: f"{row['image_id']} {row['label']}")
    log.skip_rows("box for a finding its image does not list", matched, unmatched & asked,
                  lambda row: f"{row['image_id']} {row['label']}")
    matched = matched[~unmatched]
    records = matched[["x_min", "y_min", "x_max", "y_max", "label"]].to_dict(orient="records")
    grouped = (matched.assign(box=pd.Series(records, index=matched.index, dtype=object))
               .groupby(["image_id", "condition"])["box"].agg(list).rename("boxes").reset_index())
    if grouped.empty:
        return long
    return long.merge(grouped, on=["image_id", "condition"], how="left")


FORMAT = DatasetFormat(
    name="nih-cxr14", summary="NIH ChestX-ray14: Data_Entry_2017*.csv, the PNG images and BBox_List_2017.csv",
    description="--root is the folder as downloaded (Data_Entry_2017_v2020.csv and the images/ or images_NNN/images/ "
                "folders). A finding an image does not list is a no answer unless --listed-only; radiologists' "
                "boxes from BBox_List_2017.csv ride on the yes rows of their finding.",
    options=NihCxr14Options, read=read)
