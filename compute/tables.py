"""Read a table of rows (JSONL or CSV/TSV) with line-numbered rows, for manifests and imports.

A row that cannot be parsed is kept as a string saying why, so the caller can report it
by number and go on; a file-level problem raises the caller's error type."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Row = tuple[int, dict[str, Any] | str]  # (row number, parsed row or why it could not be parsed)


Required = Sequence[str | tuple[str, ...]]  # a tuple: any one of these columns will do


def read_rows(path: Path, required: Required, error: type[Exception], what: str = "file") -> list[Row]:
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            return _read_jsonl(path)
        if suffix in (".csv", ".tsv"):
            return _read_csv(path, "\t" if suffix == ".tsv" else ",", required, error)
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}); save the {what} as UTF-8") from None
    raise error(f"{path}: unknown {what} format {suffix!r}; use .jsonl or .csv")


def _read_jsonl(path: Path) -> list[Row]:
    """Rows are numbered by line, so "row N" is line N of the file."""
    rows: list[Row] = []
    with path.open(encoding="utf-8-sig") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                rows.append((line_number, f"invalid JSON ({exc.msg} at column {exc.colno})"))
                continue
            rows.append((line_number, row if isinstance(row, dict)
                         else f"expected a JSON object, got {type(row).__name__}"))
    return rows


def _read_csv(path: Path, delimiter: str, required: Required, error: type[Exception]) -> list[Row]:
    """Rows are numbered from 1 after the header."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        columns = reader.fieldnames or []
        missing = [c if isinstance(c, str) else " or ".join(c) for c in required
                   if not any(name in columns for name in ((c,) if isinstance(c, str) else c))]
        if missing:
            raise error(f"{path}: missing required column(s) {', '.join(missing)}; "
                        f"found {', '.join(columns) or 'no header'}")
        return [(n, {k: v for k, v in row.items() if k is not None and v not in (None, "")})
                for n, row in enumerate(reader, start=1)]
