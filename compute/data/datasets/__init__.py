"""Question manifests from the datasets users hold: one adapter per format.

Each adapter module defines `FORMAT`, a `DatasetFormat`: its name, a line of help, its
options (a dataclass whose documented fields become command-line options) and `read`, which
turns the files under the dataset root into manifest rows. A label-table format returns rows
without a `question` (one per image and condition, with its answer) and keeps its label
policy in `options.policy`: the questions are then worded after the checks, so that yes and
no stay balanced among the rows written. `build_dataset` runs the steps every format shares
(`output.check_rows`; the labels reconciled and the questions worded, or the given questions
checked; `output.finish`, then the manifest) and returns the
summary. Nothing here loads torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from compute.data.datasets.build_log import BuildLog
from compute.data.datasets.label_questions import balanced_questions, reconcile_labels
from compute.data.datasets.output import Written, check_questions, check_rows, finish, write_manifest
from compute.data.datasets.readers import DatasetError

# format name -> module under compute.data.datasets; --help lists them in this order
FORMAT_MODULES: dict[str, str] = {
    "mimic-cxr-jpg": "mimic_cxr_jpg",
    "chexpert": "chexpert",
    "medical-cxr-vqa": "medical_cxr_vqa",
    "mimic-cxr-vqa": "mimic_cxr_vqa",
    "vqa-rad": "vqa_rad",
    "slake": "slake",
    "nih-cxr14": "nih_cxr14",
    "vindr-cxr": "vindr_cxr",
    "dicom": "dicom_folder",
    "table": "table",
}


@dataclass(frozen=True)
class DatasetFormat:
    name: str
    summary: str  # one line for `dataset --help`
    description: str  # what it reads, for `dataset NAME --help`
    options: type  # a dataclass of the format's options
    read: Callable[[Path, Any, BuildLog], pd.DataFrame]  # (root, options, log) -> manifest rows


@dataclass(frozen=True)
class BuildResult:
    written: Written
    summary: str


def dataset_format(name: str) -> DatasetFormat:
    if name not in FORMAT_MODULES:
        raise DatasetError(f"unknown dataset format {name!r}; known: {', '.join(FORMAT_MODULES)}")
    return importlib.import_module(f"compute.data.datasets.{FORMAT_MODULES[name]}").FORMAT


def available_formats() -> list[DatasetFormat]:
    """Every format, in FORMAT_MODULES order."""
    return [dataset_format(name) for name in FORMAT_MODULES]


def build_dataset(name: str, root: str | Path, out: str | Path, options: Any,
                  log: BuildLog | None = None) -> BuildResult:
    """Read the dataset at `root` in format `name` and write the manifest `out`. DatasetError
    when the build cannot start (no root, a required file missing or lacking a column)."""
    fmt = dataset_format(name)
    log = log or BuildLog()
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root not found (or not a folder)")
    out = Path(out)
    if out.suffix.lower() not in (".jsonl", ".ndjson"):
        raise DatasetError(f"{out}: the manifest is written as JSON lines; name it .jsonl")
    rows = fmt.read(root, options, log)
    log.progress(f"checking {len(rows):,} rows and their images")
    rows = check_rows(rows, root, log)
    if "question" not in rows.columns:  # a label table: questions are worded once the rows are known good
        rows = balanced_questions(reconcile_labels(rows, log), options.policy, log)
    else:
        rows = check_questions(rows, log)
    rows = finish(rows, log)
    written = write_manifest(rows, root, out)
    return BuildResult(written, log.summary(rows))


__all__ = ["FORMAT_MODULES", "BuildLog", "BuildResult", "DatasetError", "DatasetFormat", "available_formats",
           "build_dataset", "dataset_format"]
