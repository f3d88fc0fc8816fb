"""Read a table of rows (JSONL or CSV/TSV) with line-numbered rows, for manifests and imports.

A row that cannot be parsed is kept as a string saying why, so the caller can report it
by number and go on; a file-level problem raises the caller's error type. Nothing is
dropped silently: JSON numbers with a fraction or exponent are read exactly (as Decimal,
never rounded through a float), and a JSON value the format does not allow (NaN, a repeated
key, an unpaired surrogate), a CSV row with more or fewer fields than the header, and a quoted field that
runs over several lines (an unbalanced quote) are each a row error, and reading resumes
on the next line. A quoted field that holds line breaks and closes is a row error too (manifest
fields are one line), unless the caller opts in with `multiline=True` (results tables, whose
replies span lines): then it is one row, its line breaks kept.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

Row = tuple[int, dict[str, Any] | str]  # (row number, parsed row or why it could not be parsed)


Required = Sequence[str | tuple[str, ...]]  # a tuple: any one of these columns will do


class _RowProblem(ValueError):
    pass


def read_rows(path: Path, required: Required, error: type[Exception], what: str = "file", *,
              multiline: bool = False) -> list[Row]:
    """The file's rows, numbered. With `multiline`, a CSV quoted field that holds line breaks
    and whose quotes close by the rules is one row, its line breaks kept (results tables quote
    multi-line replies); without it (manifests) such a row is a row error. An unbalanced quote
    is a row error either way."""
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".csv", ".tsv"):
        raise error(f"{path}: unknown {what} format {suffix!r}; use .jsonl or .csv")
    text = _read_text(path, error, what)
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(text)
    return _read_csv(path, text, "\t" if suffix == ".tsv" else ",", required, error, multiline)


def _read_text(path: Path, error: type[Exception], what: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # offsets count from the start of the file, BOM included
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"{path}: not UTF-8 text (line {line}, byte {exc.start} of the file: "
                    f"{data[exc.start:exc.start + 1]!r}); save the {what} as UTF-8") from None


# --------------------------------------------------------------------------- JSONL


def _read_jsonl(text: str) -> list[Row]:
    """Rows are numbered by line, so "row N" is line N of the file."""
    rows: list[Row] = []
    for line_number, line in enumerate(io.StringIO(text), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_refuse_constant, parse_float=Decimal,
                             object_pairs_hook=_unique_keys)
            _check_strings(row)
        except json.JSONDecodeError as exc:
            rows.append((line_number, f"invalid JSON ({exc.msg} at column {exc.colno})"))
            continue
        except (_RowProblem, ValueError) as exc:  # ValueError: e.g. an integer of over 4300 digits
            rows.append((line_number, f"invalid JSON ({exc})"))
            continue
        rows.append((line_number, row if isinstance(row, dict)
                     else f"expected a JSON object, got {type(row).__name__}"))
    return rows


def _refuse_constant(name: str) -> float:
    raise _RowProblem(f"{name} is not a number JSON allows")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _RowProblem(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _check_strings(value: Any) -> None:
    """Strings must be encodable as UTF-8: JSON's \\ud800 escapes can make lone surrogates."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _RowProblem(f"the text {value[:40]!r} holds an unpaired surrogate "
                              f"(\\u{ord(value[exc.start]):04x}), which is not a character") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_strings(k)
            _check_strings(v)
    elif isinstance(value, list):
        for v in value:
            _check_strings(v)


# --------------------------------------------------------------------------- CSV


def _read_csv(path: Path, text: str, delimiter: str, required: Required, error: type[Exception],
              multiline: bool = False) -> list[Row]:
    """Rows are numbered from 1 after the header; blank lines are skipped. Messages also give
    the line, since a row and a line differ after a multi-line field."""
    lines = io.StringIO(text, newline="").readlines()
    header, start = _header(path, lines, delimiter, error)
    missing = [c if isinstance(c, str) else " or ".join(c) for c in required
               if not any(name in header for name in ((c,) if isinstance(c, str) else c))]
    if missing:
        raise error(f"{path}: missing required column(s) {', '.join(missing)}; "
                    f"found {', '.join(header) or 'no header'}")
    rows: list[Row] = []
    for n, (first, last, record) in enumerate(_records(lines, start, delimiter, len(header), multiline), start=1):
        closed = last > first and not isinstance(record, str) and _closed_in_place(
            record, first, last, len(header), lines, delimiter, multiline)
        if isinstance(record, str):
            rows.append((n, f"line {first}: {record}"))
        elif closed and multiline:
            rows.append((n, {k: v for k, v in zip(header, record) if k and v != ""}))
        elif closed:
            rows.append((n, f"lines {first}-{last} hold one row whose quoted field spans {last - first + 1} lines; "
                            f"fields cannot hold line breaks; reading went on from line {last + 1}"))
        elif last > first:
            rows.append((n, f"lines {first}-{last} were read as one row: a quoted field runs over "
                            f"{last - first + 1} lines{' (to the end of the file)' if last == len(lines) else ''}. "
                            f"Is a quote (\") on line {first} unbalanced? "
                            f"{'' if multiline else 'Fields cannot hold line breaks; '}"
                            f"reading went on from line {first + 1}"))
        elif multiline and last == len(lines) and not _quotes_close(lines[first - 1:last], delimiter):
            rows.append((n, f"line {first}: a quoted field runs to the end of the file. Is a quote (\") on line "
                            f"{first} unbalanced?"))
        elif len(record) != len(header):
            rows.append((n, f"line {first} has {len(record)} fields, the header has {len(header)} "
                            "(a separator inside an unquoted field, or a missing one?)"))
        else:
            rows.append((n, {k: v for k, v in zip(header, record) if k and v != ""}))
    return rows


def _header(path: Path, lines: list[str], delimiter: str, error: type[Exception]) -> tuple[list[str], int]:
    """The header's column names and the index of the line after it."""
    index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if index is None:
        return [], len(lines)
    first, last, header = next(_records(lines, index, delimiter, None))
    if isinstance(header, str) or last > first:
        raise error(f"{path}: the header on line {first} cannot be read "
                    f"({header if isinstance(header, str) else 'a quote is unbalanced'})")
    header = [name.strip() for name in header]
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name and name in seen:
            raise error(f"{path}: the column {name!r} appears twice in the header (columns {seen[name]} and "
                        f"{position}); give each column its own name")
        seen[name] = position
    return header, last


def _closed_in_place(record: list[str], first: int, last: int, width: int | None, lines: list[str],
                     delimiter: str, multiline: bool = False) -> bool:
    """Whether a record that spans lines `first`-`last` (from 1) is one row with a line break
    inside a quoted field (its quote closes before the end of the file and it has the header's
    width), rather than an unbalanced quote that swallowed the rows after it. With `multiline`,
    the test is that its quotes close by the rules (a strict parse of its lines succeeds), so
    that a properly quoted last row counts too and two stray quotes that pair up do not."""
    if width is None or len(record) != width:
        return False
    if multiline:
        return _quotes_close(lines[first - 1:last], delimiter)
    return last < len(lines)


def _quotes_close(lines: list[str], delimiter: str) -> bool:
    try:
        next(csv.reader(lines, delimiter=delimiter, strict=True))
    except csv.Error:  # strict: the end of the data inside a quoted field is an error
        return False
    return True


def _records(lines: list[str], start: int, delimiter: str, width: int | None,
             multiline: bool = False) -> Iterator[tuple[int, int, list[str] | str]]:
    """(first line, last line, fields or why not) per record from line index `start` on.
    After a record that spans lines, parsing resumes on the line after its first (an
    unbalanced quote costs one row, not the rest of the file), or after its last when it is
    one row whose quoted field holds a line break (see _closed_in_place)."""
    i = start
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        reader = csv.reader((lines[k] for k in range(i, len(lines))), delimiter=delimiter)
        try:
            record: list[str] | str = next(reader)
        except csv.Error as exc:
            record = f"cannot be parsed as CSV ({exc})"
        consumed = max(1, reader.line_num)
        yield i + 1, i + consumed, record
        spans = consumed > 1 and not isinstance(record, str)
        i += consumed if not spans or _closed_in_place(record, i + 1, i + consumed, width, lines, delimiter,
                                                       multiline) else 1
