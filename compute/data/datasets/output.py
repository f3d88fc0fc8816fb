"""The last steps of every dataset build: checks that hold for every format, and the manifest.

`check_rows` takes the rows an adapter built (manifest columns, image paths relative to the
dataset root) and skips, with their reasons counted, rows whose answer is not yes/no or
whose image path leaves the root or names no file; `finish` skips duplicated rows. `write_manifest`
writes the rest as JSONL, image paths relative to the manifest's folder when the root lies
inside it, so that `python -m compute run --manifest OUT` runs it as it is.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from compute.data.datasets.build_log import BuildLog
from compute.data.label_names import asks_about_several, is_negated_question

REQUIRED = ("image", "question", "answer", "condition", "image_id")
ORDER = ("image", "question", "answer", "condition", "image_id", "location", "view", "split", "source",
         "group_id", "variant_index", "strategy", "boxes", "mask")
YES_NO = {"yes": "yes", "no": "no", "y": "yes", "n": "no", "true": "yes", "false": "no"}


@dataclass(frozen=True)
class Written:
    manifest: Path
    rows: pd.DataFrame
    image_root: Path | None  # the --image-root a run needs, None when the manifest's folder will do


def yes_no(values: pd.Series) -> pd.Series:
    """"Yes", "no.", " YES " -> yes / no; anything else NaN."""
    return values.astype(str).str.strip().str.lower().str.rstrip(".!").map(YES_NO)


def drop_duplicates(frame: pd.DataFrame, keys: list[str], log: BuildLog, what: str = "row") -> pd.DataFrame:
    """Skip later copies of a row with the same `keys`; name the first copy in the examples."""
    repeated = frame.duplicated(subset=keys, keep="first")
    if repeated.any():
        firsts = frame.drop_duplicates(subset=keys, keep="first").set_index(keys)["source"]
        frame = log.skip_rows(f"duplicated {what} (same {', '.join(keys)})", frame, repeated,
                              lambda row: f"repeats {firsts.loc[tuple(row[k] for k in keys)]}"
                              if len(keys) > 1 else f"repeats {firsts.loc[row[keys[0]]]}")
    return frame


def check_rows(rows: pd.DataFrame, root: Path, log: BuildLog) -> pd.DataFrame:
    """Skip rows without the fields every manifest row needs, whose answer is not yes or no,
    or whose image path leaves the root or names no file. Label formats run this before they
    balance yes and no, so that the balance holds for the rows written."""
    missing = [c for c in REQUIRED if c not in rows.columns and c != "question"]
    if missing:
        raise AssertionError(f"adapter rows lack {missing}")  # a bug in an adapter, not in the data
    rows = rows.reset_index(drop=True)
    for column in (c for c in REQUIRED if c in rows.columns):
        rows = log.skip_rows(f"no {column}", rows, rows[column].isna() | (rows[column].astype(str).str.strip() == ""))
    answers = yes_no(rows["answer"])
    rows = log.skip_rows("answer is not yes or no", rows, answers.isna(), lambda row: f"answer {row['answer']!r}")
    rows = rows.assign(answer=answers[answers.notna()])
    rows = rows.assign(image=_posix(rows["image"].astype(str)))
    outside = _leaves_root(rows["image"])
    rows = log.skip_rows("image path outside the dataset root", rows, outside, lambda row: repr(row["image"]))
    present = _existing(root, rows["image"])
    return log.skip_rows("image file missing", rows, ~rows["image"].isin(present), lambda row: row["image"])


def check_questions(rows: pd.DataFrame, log: BuildLog) -> pd.DataFrame:
    """Skip questions whose answer is not a label of their one condition: negated ones ("Is
    there no pneumothorax?": yes means absent) and ones about several findings at once ("both
    X and Y"). Each distinct text is judged once."""
    texts = pd.Series(rows["question"].astype(str).unique())
    negated = set(texts[texts.map(is_negated_question)])
    several = set(texts[texts.map(asks_about_several)])
    rows = log.skip_rows("negated question (its yes would mean the finding is absent)", rows,
                         rows["question"].isin(negated), lambda row: repr(row["question"]))
    return log.skip_rows("asks about several findings at once (its answer is no one finding's label)", rows,
                         rows["question"].isin(several), lambda row: repr(row["question"]))


def finish(rows: pd.DataFrame, log: BuildLog) -> pd.DataFrame:
    """Skip repeated rows, and both rows where one image and question have both answers."""
    rows = drop_duplicates(rows, ["image_id", "question", "answer"], log)
    conflict = rows.duplicated(subset=["image_id", "question"], keep=False)
    rows = log.skip_rows("one image and question with both answers", rows, conflict,
                         lambda row: f"{row['image_id']}: {row['question']!r}")
    return rows.reset_index(drop=True)


def write_manifest(rows: pd.DataFrame, root: Path, out: Path) -> Written:
    out.parent.mkdir(parents=True, exist_ok=True)
    base, image_root = out.parent.resolve(), None
    root_resolved = root.resolve()
    prefix = ""
    if root_resolved.is_relative_to(base):
        prefix = root_resolved.relative_to(base).as_posix()
    else:
        image_root = root_resolved
    if prefix and prefix != ".":
        rows = rows.assign(image=prefix + "/" + rows["image"])
    columns = [c for c in ORDER if c in rows.columns] + sorted(c for c in rows.columns if c not in ORDER)
    tmp = out.with_name(out.name + ".partial")
    # column by column to Python values, missing ones as None (left out of the record): no per-cell checks
    values = [rows[c].astype(object).where(rows[c].notna(), None).tolist() for c in columns]
    encode = json.JSONEncoder(ensure_ascii=False, default=_plain).encode
    with tmp.open("w", encoding="utf-8") as handle:
        for record in zip(*values):
            handle.write(encode({k: v for k, v in zip(columns, record) if v is not None}) + "\n")
    os.replace(tmp, out)
    return Written(out, rows, image_root)


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to the manifest")


def _posix(paths: pd.Series) -> pd.Series:
    return paths.str.replace("\\", "/", regex=False).str.strip()


def _leaves_root(paths: pd.Series) -> pd.Series:
    """Absolute, with a ".." part, or with a drive letter ("C:...")."""
    return (paths.str.startswith("/") | paths.str.contains(r"(?:^|/)\.\.(?:/|$)", regex=True)
            | (paths.str[1:2] == ":"))


def _existing(root: Path, images: pd.Series) -> set[str]:
    """The paths among `images` that name a regular file inside `root`. A link, to the file or
    to a folder on its way, counts only where it resolves inside the root. One lstat per
    distinct path and one per distinct folder on the way (cached): a layout with a folder per
    study costs about a stat per image, and nothing the rows do not name is listed."""
    base = os.fspath(root)
    root_resolved = root.resolve()
    folder_ok: dict[str, bool] = {"": True}

    def inside(folder: str) -> bool:  # `folder` relative to the root, "" for the root itself
        known = folder_ok.get(folder)
        if known is None:
            full = os.path.join(base, folder)
            try:
                mode = os.lstat(full).st_mode
            except OSError:
                known = False
            else:
                known = inside(folder.rpartition("/")[0]) and (
                    stat.S_ISDIR(mode) or stat.S_ISLNK(mode) and os.path.isdir(full)
                    and _resolves_inside(full, root_resolved))
            folder_ok[folder] = known
        return known

    found = set()
    for path in images.unique():
        if not inside(path.rpartition("/")[0]):
            continue
        full = os.path.join(base, path)
        try:
            mode = os.lstat(full).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) or (stat.S_ISLNK(mode) and os.path.isfile(full)
                                  and _resolves_inside(full, root_resolved)):
            found.add(path)
    return found


def _resolves_inside(path: str, root_resolved: Path) -> bool:
    return Path(path).resolve().is_relative_to(root_resolved)
