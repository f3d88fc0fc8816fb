"""Any question table: a CSV, TSV or JSON lines file whose columns `--map` names.

`--file FILE` is read (relative to --root, or a path): `.csv`, `.tsv` (plain or `.gz`),
`.jsonl` / `.ndjson` (one JSON object a line; a malformed line is skipped with its number), or
`.json` (a list of objects). `--map image=ImagePath,question=question,answer=correct_answer`
says which of the file's columns holds each manifest column; a manifest column not named maps
to the file's column of the same name where there is one. The manifest columns are image,
question, answer, condition, image_id, location, group_id, variant_index, strategy, view,
split, boxes and mask; image, question and answer are needed. Other columns of the file are
not carried into the manifest (they are listed in the summary), so that nothing the
manifest was not asked for, an identifying field included, is copied.

- `image`: a path relative to --root (an absolute path inside --root is made relative);
  `image_id` defaults to it.
- `condition`: a label or short term through compute.data.label_names ("effusion" ->
  pleural_effusion, reading the question where the term is ambiguous); where the column is
  absent or blank, the condition the question names. Rows where neither gives one are skipped.
- `answer`: yes or no in any case or with a full stop; other answers are skipped by the
  framework with their count.
- `boxes`: a list of {x_min, y_min, x_max, y_max, ...} objects (JSON text in a CSV); a row whose
  boxes cannot be read is skipped with the reason. `mask`: a mask path or a SIIM run-length
  string ("-1": none), passed through. `variant_index`: a whole number.

`parse_column_map` is the `--map` parser, kept free of this module's other code so that other
commands can use it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from compute.data.datasets import DatasetFormat
from compute.data.datasets.build_log import BuildLog
from compute.data.datasets.readers import DatasetError, given_file, read_csv, read_json_records, read_text
from compute.data.label_names import condition_from_term, condition_in_text

MANIFEST_KEYS = ("image", "question", "answer", "condition", "image_id", "location", "group_id", "variant_index",
                 "strategy", "view", "split", "boxes", "mask")
NEEDED = ("image", "question", "answer")
TEXT_KEYS = tuple(k for k in MANIFEST_KEYS if k not in ("variant_index", "boxes"))


# --------------------------------------------------------------------------- --map


def parse_column_map(text: str, keys: Iterable[str] | None = MANIFEST_KEYS) -> dict[str, str]:
    """`KEY=COLUMN,KEY=COLUMN` -> {KEY: COLUMN}, in the order given.

    Pairs are separated by commas; spaces around keys and columns are dropped. A column
    whose name holds a comma or '=' is quoted with double quotes (`image="Bbox [x, y]"`, or
    the whole pair: `"image=Bbox [x, y]"`); a key is split off at its first '='. Two keys may
    name one column. ValueError, with a message naming the pair, for an empty map, a pair
    without '=', an empty key or column, an unbalanced quote, a key given twice, or a key
    outside `keys` (None: any key)."""
    allowed = None if keys is None else tuple(keys)
    if text is None or not str(text).strip():
        raise ValueError("--map is empty; give KEY=COLUMN pairs separated by commas, e.g. image=ImagePath")
    if "\n" in text or "\r" in text:
        raise ValueError("--map must be one line of KEY=COLUMN pairs")
    mapping: dict[str, str] = {}
    for piece in _split_pairs(text):
        bare = _unquote(piece.strip())
        key, equals, column = bare.partition("=")
        key, column = _unquote(key.strip()), _unquote(column.strip())
        if not equals:
            raise ValueError(f"--map: expected KEY=COLUMN, got {piece.strip()!r}")
        if not key:
            raise ValueError(f"--map: {piece.strip()!r} has no key before '='")
        if not column:
            raise ValueError(f"--map: {piece.strip()!r} names no column after '='")
        if allowed is not None and key not in allowed:
            raise ValueError(f"--map: unknown key {key!r}; the keys are {', '.join(allowed)}")
        if key in mapping:
            raise ValueError(f"--map: {key!r} is given twice ({mapping[key]!r} and {column!r})")
        mapping[key] = column
    return mapping


def _split_pairs(text: str) -> list[str]:
    pieces, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise ValueError(f"--map: unbalanced double quote in {text!r}")
    pieces.append("".join(current))
    for piece in pieces:
        if not piece.strip():
            raise ValueError(f"--map: empty pair in {text!r} (two commas in a row, or one at an end)")
    return pieces


def _unquote(text: str) -> str:
    return text[1:-1].strip() if len(text) >= 2 and text[0] == text[-1] == '"' else text


# --------------------------------------------------------------------------- the format


@dataclass(frozen=True)
class TableOptions:
    file: Path = field(metadata={
        "metavar": "FILE", "help": "the question table: .csv, .tsv (or .gz), .jsonl, .ndjson or .json; relative to "
                                   "--root, or a path"})
    column_map: str | None = field(default=None, metadata={
        "flag": "--map", "metavar": "KEY=COLUMN,...",
        "help": "which of the file's columns holds each manifest column, e.g. "
                "image=ImagePath,question=question,answer=correct_answer. Keys: " + ", ".join(MANIFEST_KEYS) +
                ". A key not given uses the column of its own name where there is one (default: none given)"})

    def __post_init__(self) -> None:
        if self.column_map is not None:
            parse_column_map(self.column_map)  # ValueError: the CLI reports it as a usage error


def read(root: Path, options: TableOptions, log: BuildLog) -> pd.DataFrame:
    path = given_file(root, options.file)
    try:
        mapping = parse_column_map(options.column_map) if options.column_map is not None else {}
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    frame = read_table(path, log)
    found = [c for c in frame.columns if c != "source"]
    if not found and frame.empty:  # no record could be read: the summary says why
        return pd.DataFrame(columns=[*NEEDED, "condition", "image_id", "source"])
    for key, column in mapping.items():
        if column not in frame.columns or column == "source":
            raise DatasetError(f"{path}: --map {key}={column}: the file has no column {column!r}; "
                               f"found {', '.join(found) or 'no columns'}")
    chosen = {key: mapping.get(key, key if key in found else None) for key in MANIFEST_KEYS}
    absent = [key for key in NEEDED if chosen[key] is None]
    if absent:
        raise DatasetError(f"{path}: no {', '.join(absent)} column; name the file's column"
                           f"{'s' if len(absent) > 1 else ''} with --map "
                           f"{','.join(f'{k}=COLUMN' for k in absent)}; found {', '.join(found) or 'no columns'}")
    unused = [c for c in found if c not in chosen.values()]
    if unused:
        log.note(f"columns not carried into the manifest: {', '.join(unused)}")
    rows = pd.DataFrame({key: frame[column] for key, column in chosen.items() if column is not None},
                        index=frame.index)
    rows["source"] = frame["source"]
    return manifest_rows(root, rows, log)


def manifest_rows(root: Path, rows: pd.DataFrame, log: BuildLog) -> pd.DataFrame:
    """Rows in the manifest's own column names, made ready for the framework's checks:
    text columns as text, image paths relative to `root`, image_id from the image where
    blank, a condition for every row (from the term or the question) and readable boxes and
    variant indexes; rows that cannot have them are skipped with the reason."""
    rows = rows.copy()
    for key in (k for k in TEXT_KEYS if k in rows.columns):
        rows[key] = _text(rows[key])
    rows["image"] = _relative_images(root, rows["image"])
    given_id = rows["image_id"] if "image_id" in rows.columns else pd.Series(np.nan, index=rows.index, dtype=object)
    rows["image_id"] = given_id.fillna(rows["image"])
    rows = _with_conditions(rows, log)
    if "variant_index" in rows.columns:
        rows = _whole_numbers(rows, log)
    if "boxes" in rows.columns:
        rows = _readable_boxes(rows, log)
    return rows


def read_table(path: Path, log: BuildLog) -> pd.DataFrame:
    """The file's rows (CSV/TSV as text, JSON values as they are) plus `source`."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return read_csv(path, [], log, what="question table")
    if name.endswith((".tsv", ".tsv.gz", ".tab")):
        return read_csv(path, [], log, what="question table", sep="\t")
    if name.endswith((".jsonl", ".ndjson")):
        return read_jsonl(path, log)
    if name.endswith(".json"):
        return read_json_records(path, log, what="question table")
    raise DatasetError(f"{path}: unknown table format; use .csv, .tsv, .jsonl, .ndjson or .json")


def read_jsonl(path: Path, log: BuildLog) -> pd.DataFrame:
    """One JSON object a line, plus `source` ("file line N"). A line that is not JSON, or not
    an object, is skipped with its number; blank lines are passed over."""
    text = read_text(path, "question table")
    records, sources = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            where = (f" (column {exc.colno}): {exc.msg}" if isinstance(exc, json.JSONDecodeError)
                     else ": nested too deep")
            log.skip("malformed JSON", f"{path.name} line {number}{where}")
            continue
        if not isinstance(record, dict):
            log.skip("record is not a JSON object", f"{path.name} line {number}: {type(record).__name__}")
            continue
        records.append(record)
        sources.append(f"{path.name} line {number}")
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    frame.columns = [str(c).strip() for c in frame.columns]
    frame["source"] = sources
    log.read(path.name, len(sources))
    return frame


def _text(values: pd.Series) -> pd.Series:
    """Text with the ends stripped, NaN where blank. JSON values that are not text: a one-item
    list is its item ("answer": ["yes"]), true/false and numbers their JSON spelling."""
    if values.dtype == object:
        values = values.map(_scalar, na_action="ignore")
    text = values.astype("str").str.strip()
    return text.where(text != "")


def _scalar(value):
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def _relative_images(root: Path, images: pd.Series) -> pd.Series:
    """Posix paths; an absolute path inside `root` made relative to it (others are left for
    the framework to refuse as outside the root)."""
    images = images.str.replace("\\", "/", regex=False)
    absolute = images.str.startswith("/", na=False) | images.str.match(r"^[A-Za-z]:/", na=False)
    if absolute.any():
        base = root.resolve()
        mapped = {}
        for path in images[absolute].unique():
            try:
                mapped[path] = Path(path).resolve().relative_to(base).as_posix()
            except (ValueError, OSError):
                mapped[path] = path
        images = images.where(~absolute, images.map(mapped))
    return images


def _with_conditions(rows: pd.DataFrame, log: BuildLog) -> pd.DataFrame:
    question = rows["question"].fillna("")
    term = rows["condition"] if "condition" in rows.columns else pd.Series(np.nan, index=rows.index, dtype=object)
    named = term.notna()
    keys = pd.DataFrame({"term": term, "question": question})
    pairs = keys[named].drop_duplicates()
    pairs["condition"] = [_from_term(t, q) for t, q in zip(pairs["term"], pairs["question"])]  # once per pair
    texts = keys.loc[~named, ["question"]].drop_duplicates()
    texts["condition"] = [condition_in_text(q) if q else None for q in texts["question"]]  # once per question
    from_term = keys.merge(pairs, on=["term", "question"], how="left")["condition"]
    from_text = keys[["question"]].merge(texts, on="question", how="left")["condition"]
    chosen = np.where(named.to_numpy(), from_term.to_numpy(dtype=object), from_text.to_numpy(dtype=object))
    condition = pd.Series(chosen, index=rows.index, dtype=object)
    condition = condition.where(condition.notna(), None)
    rows = rows.assign(condition=condition, _term=term)
    rows = log.skip_rows("condition is not a label name", rows, named & rows["condition"].isna(),
                         lambda row: repr(row["_term"]))
    rows = log.skip_rows("no condition: none given and the question names none", rows, rows["condition"].isna(),
                         lambda row: repr(row["question"]))
    return rows.drop(columns=["_term"])


def _from_term(term: str, question: str) -> str | None:
    try:
        return condition_from_term(term, question or None)
    except ValueError:
        return None


def _whole_numbers(rows: pd.DataFrame, log: BuildLog) -> pd.DataFrame:
    given = rows["variant_index"]
    blank = given.isna() | (given.astype(str).str.strip() == "")
    numbers = pd.to_numeric(given.where(~blank).astype(object).map(_scalar, na_action="ignore"), errors="coerce")
    whole = numbers.notna() & (numbers == np.floor(numbers)) & (numbers >= 0) & (numbers < 2**31)
    rows = log.skip_rows("variant_index is not a whole number from 0", rows, ~blank & ~whole,
                         lambda row: repr(row["variant_index"]))
    kept = numbers[rows.index]
    return rows.assign(variant_index=kept.where(kept.notna()).astype("Int64"))


def _readable_boxes(rows: pd.DataFrame, log: BuildLog) -> pd.DataFrame:
    from compute.data.lesions import parse_boxes

    def parsed(value):
        try:
            return [b.as_dict() for b in parse_boxes(value)] or None
        except (ValueError, TypeError) as exc:
            return ValueError(str(exc))

    values = rows["boxes"].map(parsed, na_action="ignore")
    bad = values.map(lambda v: isinstance(v, ValueError))
    rows = rows.assign(boxes=values, _why=values.map(lambda v: str(v) if isinstance(v, ValueError) else None))
    rows = log.skip_rows("boxes cannot be read", rows, bad, lambda row: row["_why"])
    return rows.drop(columns=["_why"])


FORMAT = DatasetFormat(
    name="table", summary="any CSV, TSV or JSON lines table of yes/no questions, columns named by --map",
    description="--file names the table; --map KEY=COLUMN,... says which column holds each manifest column "
                "(image, question and answer are needed; condition comes from the question where not given). "
                "Image paths are relative to --root.",
    options=TableOptions, read=read)
