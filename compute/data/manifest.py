"""Read a question manifest (JSONL or CSV) into validated items.

A manifest row names an image, a yes/no question, its ground-truth answer and the
condition it is about. Rows that fail validation do not stop the read: each becomes a
`RowError` that names the row and the problem, and the study records it as a failed item.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decimal import Decimal

from compute.data.lesions import Box, is_rle, parse_boxes
from compute.data.tables import read_rows
from compute.data.validate import blank as _blank
from compute.data.validate import text as _text
from compute.data.validate import whole_number
from compute.data.question_parser import UnparseableQuestionError, parse_question

REQUIRED_COLUMNS = ("image", "question", "answer", "condition")
# A variants file in the import-results shape (study_id, baseline_question, ground_truth,
# variant_index, strategy, question) plus an image column reads as a manifest too.
CSV_REQUIRED = ("image", "question", ("answer", "ground_truth"), ("condition", "baseline_question"))
OPTIONAL_COLUMNS = ("image_id", "group_id", "variant_index", "strategy", "location")
# Columns that describe a row without changing which question it is: they are stored with the
# question but do not enter its item id, so adding them to a manifest keeps earlier results.
DESCRIPTIVE_COLUMNS = ("view", "split", "source", "boxes", "mask")
# The import-results shape's columns, read above; not slicing attributes.
_VARIANTS_SHAPE = ("study_id", "baseline_question", "ground_truth", "generated_text", "extracted_answer",
                   "is_correct")
KNOWN_COLUMNS = frozenset({*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, *DESCRIPTIVE_COLUMNS, *_VARIANTS_SHAPE})
MAX_ATTRIBUTES = 50
# Column names that may hold who the patient is: never stored as attributes, whatever the manifest says.
_IDENTIFYING_WORDS = frozenset({"patient", "name", "birth", "birthdate", "dob", "mrn", "accession", "institution",
                                "physician", "doctor", "address", "phone", "email", "ssn", "sex", "gender", "age",
                                "dateofbirth", "nhs"})
_IDENTIFYING_PARTS = ("patient", "birth", "accession", "physician", "institution", "phone", "address")


def identifying_column(name: str) -> bool:
    """Whether a column's name says it may identify a patient ("PatientName", "patient_age",
    "DOB", "MRN", "InstitutionName"); "image_name" counts too, which costs nothing."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name)).lower()
    tokens = set(re.split(r"[^0-9a-z]+", words)) - {""}
    joined = "".join(sorted(tokens))
    return bool(tokens & _IDENTIFYING_WORDS) or any(part in joined for part in _IDENTIFYING_PARTS)
ANSWER_ALIASES = {"yes": "yes", "y": "yes", "true": "yes", "1": "yes", "no": "no", "n": "no", "false": "no", "0": "no"}


class ManifestError(ValueError):
    """The manifest as a whole cannot be read (missing file, unknown format, missing column)."""


@dataclass(frozen=True)
class ManifestItem:
    item_id: str  # stable key: same row content (and occurrence) -> same id across reruns
    row_number: int  # 1-based data row (header excluded)
    image_path: Path  # absolute and resolved: with the file's sha256, what identifies the image
    image_id: str  # given, or the image path as written in the manifest
    question: str
    answer: str  # "yes" | "no"
    condition: str
    group_id: str | None = None
    variant_index: int | None = None
    strategy: str | None = None
    location: str | None = None
    baseline_question: str | None = None  # set on phrasing-study variants
    strategy_category: str | None = None
    answer_inverted: bool | None = None
    transformation: str | None = None
    view: str | None = None
    split: str | None = None
    source: str | None = None  # where the row came from in the dataset, e.g. "train.csv row 17"
    boxes: tuple[Box, ...] = ()  # the finding's boxes, original image pixels
    mask: str | None = None  # the finding's mask: a resolved mask-image path, or a run-length string
    attributes: tuple[tuple[str, str | int | float | bool], ...] = ()  # the row's other columns, for slicing

    @property
    def has_lesion(self) -> bool:
        return bool(self.boxes) or bool(self.mask)


@dataclass(frozen=True)
class RowError:
    item_id: str
    row_number: int
    message: str
    raw: dict[str, Any]

    def __str__(self) -> str:
        return f"row {self.row_number}: {self.message}"


@dataclass(frozen=True)
class Manifest:
    path: Path
    items: list[ManifestItem]
    errors: list[RowError]
    withheld: tuple[str, ...] = ()  # columns not stored because their names say they may identify a patient

    @property
    def n_rows(self) -> int:
        return len(self.items) + len(self.errors)


def read_manifest(path: str | Path, image_root: str | Path | None = None, dataset: str = "",
                  allow_outside_root: bool = False) -> Manifest:
    """Parse and validate a manifest. Image paths are resolved against `image_root`
    (default: the manifest's folder) and must stay inside it (no absolute paths, no "..",
    no symlink out) unless `allow_outside_root`. Item ids hash the dataset name with every
    field of the row, so rows from different datasets never share an id. An image_id that
    an earlier row gave to another file is a row error naming both files: rows that share an
    image_id are answered on one image. Missing image files are *not* checked here; the
    study reports them per item when it loads the image."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    root = Path(image_root) if image_root is not None else path.parent
    raw_rows = read_rows(path, CSV_REQUIRED, ManifestError, what="manifest")
    if not raw_rows:
        raise ManifestError(f"{path}: no data rows")

    items: list[ManifestItem] = []
    errors: list[RowError] = []
    occurrences: Counter[str] = Counter()
    files_by_id: dict[str, tuple[Path, int]] = {}  # image_id -> (resolved file, first row naming it)
    for row_number, raw in raw_rows:
        if isinstance(raw, str):  # a line that could not be parsed at all
            errors.append(RowError(_row_key(dataset, path, row_number, raw), row_number, raw, {}))
            continue
        try:
            fields = _validate(raw)
            if not allow_outside_root:
                _confine(root, fields["image"])
            image_path = (root / fields["image"]).resolve()
            descriptive = _descriptive(raw, root, allow_outside_root)
            first = files_by_id.setdefault(fields["image_id"], (image_path, row_number))
            if first[0] != image_path:
                raise ValueError(f"image_id {fields['image_id']!r} names {_shown(first[0], root)} (row {first[1]}) "
                                 f"and {_shown(image_path, root)} here; give each image file its own image_id")
        except (ValueError, OSError) as exc:
            errors.append(RowError(_row_key(dataset, path, row_number, raw), row_number, str(exc), raw))
            continue
        keyed = {k: v for k, v in fields.items() if v is not None or k != "baseline_question"}  # ids as before it existed
        content_key = "\x1f".join([dataset, *(str(keyed[k]) for k in sorted(keyed))])
        occurrences[content_key] += 1
        item_id = _hash(f"{content_key}\x1f{occurrences[content_key]}")
        del fields["image"]
        items.append(ManifestItem(item_id=item_id, row_number=row_number, image_path=image_path, **fields,
                                  **descriptive))
    withheld = sorted({k for _, raw in raw_rows if isinstance(raw, dict) for k in raw
                       if k not in KNOWN_COLUMNS and identifying_column(k)})
    return Manifest(path=path, items=items, errors=errors, withheld=tuple(withheld))


def _shown(path: Path, root: Path) -> str:
    """`path` as the user wrote it: relative to the image root when it lies inside."""
    try:
        return str(path.relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _confine(root: Path, image: str) -> None:
    resolved = (root / image).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ValueError(f"image path {image!r} leaves the data root {str(root)!r}; pass --allow-outside-root "
                         "to allow paths outside it")


def _descriptive(raw: dict[str, Any], root: Path, allow_outside_root: bool) -> dict[str, Any]:
    """view, split, source, boxes, mask and the other columns (as attributes) of a row."""
    mask = _text(raw.get("mask"), "mask")
    if mask is not None and not is_rle(mask):
        if not allow_outside_root:
            try:
                _confine(root, mask)
            except ValueError:
                raise ValueError(f"mask path {mask!r} leaves the data root {str(root)!r}") from None
        mask = str((root / mask).resolve())
    attributes = []
    for key in sorted(k for k in raw if k not in KNOWN_COLUMNS and not identifying_column(k)):
        value = raw[key]
        if isinstance(value, Decimal):
            value = float(value)
        if isinstance(value, (str, int, float, bool)) and not _blank(value):
            attributes.append((_text(str(key), "column name"), _text(value, key) if isinstance(value, str) else value))
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValueError(f"the row has {len(attributes)} extra columns; at most {MAX_ATTRIBUTES} are kept")
    return {
        "view": _text(raw.get("view"), "view"),
        "split": _text(raw.get("split"), "split"),
        "source": _text(raw.get("source"), "source"),
        "boxes": parse_boxes(raw.get("boxes")),
        "mask": mask,
        "attributes": tuple(attributes),
    }


def _from_variants_shape(raw: dict[str, Any]) -> dict[str, Any]:
    """Map the import-results column names onto the manifest's."""
    if _blank(raw.get("baseline_question")) and _blank(raw.get("ground_truth")):
        return raw
    row = dict(raw)
    if _blank(row.get("answer")):
        row["answer"] = row.get("ground_truth")
    baseline = _text(row.get("baseline_question"), "baseline_question")
    if _blank(row.get("image_id")) and not _blank(row.get("study_id")):
        row["image_id"] = row["study_id"]
    if baseline and _blank(row.get("group_id")):
        row["group_id"] = f"{_text(row.get('study_id'), 'study_id') or row.get('image')}: {baseline}"
    if baseline and _blank(row.get("condition")):
        try:
            row["condition"] = parse_question(baseline).condition.key
        except UnparseableQuestionError as exc:
            raise ValueError(f"no condition column, and {exc}") from None
    return row


def _validate(raw: dict[str, Any]) -> dict[str, Any]:
    raw = _from_variants_shape(raw)
    missing = [c for c in REQUIRED_COLUMNS if _blank(raw.get(c))]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    answer = ANSWER_ALIASES.get(str(raw["answer"]).strip().lower())
    if answer is None:
        raise ValueError(f"answer must be yes or no, got {raw['answer']!r}")
    image = _text(raw["image"], "image")
    return {
        "image": image,
        "image_id": _text(raw.get("image_id"), "image_id") or image,
        "question": _text(raw["question"], "question"),
        "answer": answer,
        "condition": _text(raw["condition"], "condition"),
        "group_id": _text(raw.get("group_id"), "group_id"),
        "variant_index": None if _blank(raw.get("variant_index")) else whole_number(raw["variant_index"],
                                                                                     "variant_index"),
        "strategy": _text(raw.get("strategy"), "strategy"),
        "location": _text(raw.get("location"), "location"),
        "baseline_question": _text(raw.get("baseline_question"), "baseline_question"),
    }


def _row_key(dataset: str, path: Path, row_number: int, raw: Any) -> str:
    return _hash(f"invalid\x1f{dataset}\x1f{path.name}\x1f{row_number}\x1f"
                 f"{json.dumps(raw, sort_keys=True, default=str)}")


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]
