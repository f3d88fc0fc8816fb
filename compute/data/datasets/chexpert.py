"""CheXpert v1.0: `train.csv` / `valid.csv` under the folder as downloaded.

Columns: Path, Sex, Age, Frontal/Lateral, AP/PA and the 14 labels. `Path` starts with the
download folder's name (`CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg`),
so that first part is dropped to make the path relative to --root. Sex and age are not
carried into the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from compute.data.datasets import DatasetFormat
from compute.data.datasets.build_log import BuildLog
from compute.data.datasets.label_questions import LabelPolicy, label_answers
from compute.data.datasets.readers import DatasetError, given_file, read_csv

CHEXPERT_LABELS = ("No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
                   "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
                   "Fracture", "Support Devices")
DEFAULT_FILES = ("train.csv", "valid.csv")


@dataclass(frozen=True)
class ChexpertOptions:
    labels: Path | None = field(default=None, metadata={
        "metavar": "FILE", "help": "read this label CSV instead of train.csv and valid.csv (relative to --root, "
                                   "or a path)"})
    all_views: bool = field(default=False, metadata={"help": "keep lateral views too (default: frontal only)"})
    policy: LabelPolicy = field(default_factory=LabelPolicy)


def read(root: Path, options: ChexpertOptions, log: BuildLog) -> pd.DataFrame:
    files = [given_file(root, options.labels)] if options.labels else [root / f for f in DEFAULT_FILES
                                                                          if (root / f).is_file()]
    if not files:
        raise DatasetError(f"{root}: no label file; expected {' or '.join(DEFAULT_FILES)} (is --root the "
                           "CheXpert-v1.0-small folder?), or pass --labels FILE")
    frames = []
    for path in files:
        frame = read_csv(path, ["Path", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS], log)
        frame["split"] = path.stem if path.name in DEFAULT_FILES else None
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table["image"] = _relative_paths(root, table["Path"].fillna(""))
    table["image_id"] = table["image"].str.replace(r"\.(jpg|jpeg|png)$", "", regex=True, case=False)
    frontal = table["Frontal/Lateral"].fillna("").str.strip().str.lower() == "frontal"
    table["view"] = table["AP/PA"].where(frontal, "lateral")
    if not options.all_views:
        table = log.skip_rows("lateral view (pass --all-views to keep it)", table, ~frontal,
                              lambda row: row["Path"])
    table = table[["image", "image_id", "view", "split", "source", *CHEXPERT_LABELS]]
    answers = label_answers(table, list(CHEXPERT_LABELS), options.policy, log, no_finding_column="No Finding")
    return answers.drop(columns=["label"])


def _relative_paths(root: Path, paths: pd.Series) -> pd.Series:
    """Drop the download folder's name from the front of each Path, where it is not a folder
    of the root itself."""
    parts = paths.str.split("/", n=1, expand=True).reindex(columns=[0, 1])
    first = parts[0].fillna("")
    strip = first.map({name: not (root / name).is_dir() for name in first.unique()}) & parts[1].notna()
    return parts[1].where(strip, paths)


FORMAT = DatasetFormat(
    name="chexpert", summary="CheXpert v1.0: train.csv / valid.csv and the 14 labels",
    description="--root is the folder as downloaded (CheXpert-v1.0-small/, holding train.csv, valid.csv, train/ "
                "and valid/). Frontal views only unless --all-views.",
    options=ChexpertOptions, read=read)
