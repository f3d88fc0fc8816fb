"""Dataset files read in bulk, with errors that name the file, the record and the problem.

CSV files (plain or .gz) are read with pandas, every column as text, so that a label file
of 200,000 rows is read in one call and no code loops over its rows. JSON lists are read
one record at a time, so that a syntax error names the record where it happens and the
records before it are kept.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from compute.data.datasets.build_log import BuildLog


class DatasetError(ValueError):
    """The build cannot go on: a required file is missing or unreadable, or lacks a column."""


def find_file(root: Path, names: Sequence[str], what: str) -> Path:
    """The first of `names` (relative to `root`) that exists; DatasetError listing them all."""
    for name in names:
        path = root / name
        if path.is_file():
            return path
    raise DatasetError(f"{root}: no {what} found; looked for {', '.join(names)}")


def inside_root(root: Path, folder: Path | None, option: str) -> str:
    """`folder` (relative to root, or absolute inside it) as a posix prefix relative to root
    ("" for the root itself); DatasetError when it lies outside the root or is missing."""
    if folder is None:
        return ""
    full = folder if folder.is_absolute() else root / folder
    if not full.is_dir():
        raise DatasetError(f"{full}: {option} folder not found")
    try:
        relative = full.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise DatasetError(f"{full}: the {option} folder must lie inside --root ({root}), so that the manifest's "
                           "image paths stay inside it; pass a --root that holds both") from None
    return "" if relative == "." else relative


def given_file(root: Path, given: Path, flag: str | None = None, what: str = "file") -> Path:
    """An option's file: relative to --root, or a path as given. With `flag` (e.g. "--labels"),
    DatasetError naming it when there is no such file."""
    path = given if given.is_absolute() or (given.is_file() and not (root / given).is_file()) else root / given
    if flag is not None and not path.is_file():
        raise DatasetError(f"{path}: {what} not found ({flag})")
    return path


def read_csv(path: Path, required: Iterable[str], log: BuildLog, *, what: str = "label file",
             sep: str = ",") -> pd.DataFrame:
    """Every column as text (blank cells are NaN), plus `source` ("file row N", N counting
    data rows from 1). DatasetError for a missing or unreadable file, or missing columns."""
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], sep=sep,
                            compression="infer", encoding="utf-8-sig", skipinitialspace=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, EOFError,
            gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path}: cannot read the {what} ({_first_line(exc)})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    require_columns(frame, required, path)
    frame["source"] = f"{path.name} row " + pd.Series(range(1, len(frame) + 1), index=frame.index).astype(str)
    log.read(path.name, len(frame))
    return frame


def require_columns(frame: pd.DataFrame, required: Iterable[str], path: Path | str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        found = [c for c in frame.columns if c != "source"]
        raise DatasetError(f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                           f"found {', '.join(found) or 'no columns'}")


def read_text(path: Path, what: str) -> str:
    """A UTF-8 file's text (a byte-order mark dropped); DatasetError naming the file when it is
    missing, unreadable or not UTF-8."""
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the {what} ({_first_line(exc)})") from None


def read_json_records(path: Path, log: BuildLog, *, what: str = "question file") -> pd.DataFrame:
    """A JSON list of objects as a DataFrame, plus `source` ("file record N", from 1).
    A record that is not an object is skipped with its number; a syntax error names the
    record and line where it happens, keeps the records before it, and skips the rest."""
    text = read_text(path, what)
    records, sources = [], []
    for number, record in _list_items(path, text, log):
        if not isinstance(record, dict):
            log.skip("record is not a JSON object", f"{path.name} record {number}: {type(record).__name__}")
            continue
        records.append(record)
        sources.append(f"{path.name} record {number}")
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    frame["source"] = sources
    log.read(path.name, len(sources))
    return frame


def _list_items(path: Path, text: str, log: BuildLog):
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    if position >= len(text) or text[position] != "[":
        raise DatasetError(f"{path}: expected a JSON list of records, found "
                           f"{repr(text[position:position + 20]) if position < len(text) else 'an empty file'}")
    position = _skip_space(text, position + 1)
    number = 0
    while position < len(text) and text[position] != "]":
        number += 1
        try:
            record, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            log.skip("malformed JSON", f"{path.name} record {number} (line {exc.lineno}, column {exc.colno}): "
                                       f"{exc.msg}; the records after it were not read")
            return
        yield number, record
        position = _skip_space(text, position)
        if position < len(text) and text[position] == ",":
            position = _skip_space(text, position + 1)
        elif position < len(text) and text[position] != "]":
            line = text.count("\n", 0, position) + 1
            log.skip("malformed JSON", f"{path.name} after record {number} (line {line}): expected ',' or ']'; "
                                       "the records after it were not read")
            return


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
