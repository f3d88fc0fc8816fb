"""Read a question manifest (JSONL or CSV) into validated items.

A manifest row names an image, a yes/no question, its ground-truth answer and the
condition it is about. Rows that fail validation do not stop the read: each becomes a
`RowError` that names the row and the problem, and the study records it as a failed item.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REQUIRED_COLUMNS = ("image", "question", "answer", "condition")
OPTIONAL_COLUMNS = ("image_id", "group_id", "variant_index", "strategy", "location")
ANSWER_ALIASES = {"yes": "yes", "y": "yes", "true": "yes", "1": "yes", "no": "no", "n": "no", "false": "no", "0": "no"}


class ManifestError(ValueError):
    """The manifest as a whole cannot be read (missing file, unknown format, missing column)."""


@dataclass(frozen=True)
class ManifestItem:
    item_id: str  # stable key: same row content (and occurrence) -> same id across reruns
    row_number: int  # 1-based data row (header excluded)
    image_path: Path  # resolved on disk
    image_id: str  # given, or the image path as written in the manifest
    question: str
    answer: str  # "yes" | "no"
    condition: str
    group_id: str | None = None
    variant_index: int | None = None
    strategy: str | None = None
    location: str | None = None


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

    @property
    def n_rows(self) -> int:
        return len(self.items) + len(self.errors)


def read_manifest(path: str | Path, image_root: str | Path | None = None) -> Manifest:
    """Parse and validate a manifest. Image paths are resolved against `image_root`
    (default: the manifest's folder). Missing image files are *not* checked here; the
    study reports them per item when it loads the image."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    root = Path(image_root) if image_root is not None else path.parent
    raw_rows = _read_rows(path)

    items: list[ManifestItem] = []
    errors: list[RowError] = []
    occurrences: Counter[str] = Counter()
    for row_number, raw in enumerate(raw_rows, start=1):
        if isinstance(raw, str):  # a line that could not be parsed at all
            errors.append(RowError(_row_key(path, row_number, raw), row_number, raw, {}))
            continue
        try:
            fields = _validate(raw)
        except ValueError as exc:
            errors.append(RowError(_row_key(path, row_number, raw), row_number, str(exc), raw))
            continue
        content_key = "\x1f".join(str(fields[k]) for k in ("image_id", "question", "answer", "condition",
                                                              "group_id", "variant_index"))
        occurrences[content_key] += 1
        item_id = _hash(f"{content_key}\x1f{occurrences[content_key]}")
        items.append(ManifestItem(item_id=item_id, row_number=row_number,
                                  image_path=root / fields.pop("image"), **fields))
    return Manifest(path=path, items=items, errors=errors)


def _read_rows(path: Path) -> list[dict[str, Any] | str]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path)
    if suffix in (".csv", ".tsv"):
        return _read_csv(path, delimiter="\t" if suffix == ".tsv" else ",")
    raise ManifestError(f"{path}: unknown manifest format {suffix!r}; use .jsonl or .csv")


def _read_jsonl(path: Path) -> list[dict[str, Any] | str]:
    rows: list[dict[str, Any] | str] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                rows.append(f"invalid JSON ({exc.msg} at column {exc.colno})")
                continue
            rows.append(row if isinstance(row, dict) else f"expected a JSON object, got {type(row).__name__}")
    return rows


def _read_csv(path: Path, delimiter: str) -> list[dict[str, Any] | str]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        columns = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ManifestError(f"{path}: missing required column(s) {', '.join(missing)}; "
                                f"found {', '.join(columns) or 'no header'}")
        return [{k: v for k, v in row.items() if k is not None and v not in (None, "")} for row in reader]


def _validate(raw: dict[str, Any]) -> dict[str, Any]:
    missing = [c for c in REQUIRED_COLUMNS if _blank(raw.get(c))]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    answer = ANSWER_ALIASES.get(str(raw["answer"]).strip().lower())
    if answer is None:
        raise ValueError(f"answer must be yes or no, got {raw['answer']!r}")
    variant_index = raw.get("variant_index")
    if not _blank(variant_index):
        try:
            variant_index = int(variant_index)
        except (TypeError, ValueError):
            raise ValueError(f"variant_index must be an integer, got {variant_index!r}") from None
    else:
        variant_index = None
    image = str(raw["image"]).strip()
    return {
        "image": image,
        "image_id": _text(raw.get("image_id")) or image,
        "question": str(raw["question"]).strip(),
        "answer": answer,
        "condition": str(raw["condition"]).strip(),
        "group_id": _text(raw.get("group_id")),
        "variant_index": variant_index,
        "strategy": _text(raw.get("strategy")),
        "location": _text(raw.get("location")),
    }


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str | None:
    return None if _blank(value) else str(value).strip()


def _row_key(path: Path, row_number: int, raw: Any) -> str:
    return _hash(f"invalid\x1f{path.name}\x1f{row_number}\x1f{json.dumps(raw, sort_keys=True, default=str)}")


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
