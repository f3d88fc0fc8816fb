"""Cached, read-only access to the store for the pages.

Each query is written once, as a function of a `StoreFile`, and decorated with `@cached`.
The cache key is the query's arguments plus the store file's state (path, and the size and
modification time of the file and of its write-ahead log), so a page refresh after new results
land shows them, while reruns over an unchanged store read nothing. Pages pass the Path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pandas as pd
import streamlit as st

from compute.facade import by_change_type, calibration_summary_by, change_distribution, change_tests
from dashboard.safe_text import escape_markdown
from store import StoreError, StoreNotFoundError, browse, queries, slices

R = TypeVar("R")


@dataclass(frozen=True)
class StoreFile:
    """A store's path; as a cache key it stands for the file's current contents."""

    path: Path

    def state(self) -> tuple:
        """(path, then (mtime_ns, size) of the file and of its .wal, None for one that is missing)."""
        return (str(self.path), *(_stat(p) for p in (self.path, self.path.with_name(self.path.name + ".wal"))))


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def cached(query: Callable[..., R]) -> Callable[..., R]:
    """`query(db: StoreFile, *args)`, cached on its arguments and the store file's state;
    call it with the database's Path (or a StoreFile)."""
    cached_query = st.cache_data(show_spinner=False, hash_funcs={StoreFile: StoreFile.state})(query)

    @functools.wraps(query)
    def call(db: Path | StoreFile, *args, **kwargs) -> R:
        return cached_query(db if isinstance(db, StoreFile) else StoreFile(Path(db)), *args, **kwargs)

    call.clear = cached_query.clear
    return call


def store_problem(db: Path, exc: StoreError) -> str:
    """One line for st.error: what is wrong with `db` (as text) and what to do."""
    what = str(exc).strip().rstrip(".") or type(exc).__name__
    if str(db) not in what:
        what = f"{db}: {what}"
    return (f"{escape_markdown(what)}. Point `--db` or `MGV_DB` at a store written by "
            "`python -m compute run`.")


@cached
def has_runs(db: StoreFile) -> bool:
    """False for a missing file too; StoreError for a file that is not a store."""
    try:
        return queries.has_runs(db.path)
    except StoreNotFoundError:
        return False


@cached
def list_runs(db: StoreFile) -> pd.DataFrame:
    return queries.list_runs(db.path)


@cached
def overview(db: StoreFile, run_id: str) -> dict:
    return queries.run_overview(db.path, run_id)


@cached
def answer_agreement(db: StoreFile, run_id: str) -> dict[str, int]:
    """n_ok, n_uncertain, n_compared, n_agree: how often the extracted answer agrees with P(yes)."""
    return queries.answer_agreement(db.path, run_id)


@cached
def conditions(db: StoreFile, run_id: str) -> list[str]:
    return queries.conditions(db.path, run_id)


@cached
def condition_counts(db: StoreFile, run_id: str, conditions: list[str] | None) -> pd.DataFrame:
    return queries.condition_counts(db.path, run_id, list(conditions) if conditions else None)


@cached
def predictions(db: StoreFile, run_id: str, conditions: list[str] | None) -> pd.DataFrame:
    return queries.predictions(db.path, run_id, list(conditions) if conditions else None)


@cached
def mapped_items(db: StoreFile, run_id: str) -> pd.DataFrame:
    return queries.mapped_items(db.path, run_id)


@cached
def item_maps(db: StoreFile, run_id: str, item_id: str) -> pd.DataFrame:
    return queries.item_maps(db.path, run_id, item_id)


@cached
def image_file(db: StoreFile, run_id: str, item_id: str) -> queries.ImageLocation | None:
    """Where the prediction's image file is, with the sha256 the run recorded."""
    return queries.image_file(db.path, run_id, item_id)


@cached
def phrasing_rows(db: StoreFile, run_id: str) -> pd.DataFrame:
    return queries.phrasing_rows(db.path, run_id)


@cached
def slice_columns(db: StoreFile, run_id: str) -> list[str]:
    return slices.slice_columns(db.path, run_id)


@cached
def probability_rows(db: StoreFile, run_id: str, slice_by: str | None) -> tuple[pd.DataFrame, int]:
    """(rows, n_without): store.slices.probability_rows."""
    return slices.probability_rows(db.path, run_id, slice_by)


@cached
def calibration_table(db: StoreFile, run_id: str, slice_by: str | None, condition: str | None,
                      by: tuple[str, ...]) -> pd.DataFrame:
    """compute.metrics.calibration.summary_by of a run's P(yes) rows (of one condition, or all), cached:
    the AUROC intervals are a bootstrap."""
    rows, _ = probability_rows(db, run_id, slice_by)  # the page's own read, from the cache
    if condition is not None:
        rows = rows[rows["condition"] == condition]
    return calibration_summary_by(rows, list(by))


@dataclass(frozen=True)
class ChangeSummary:
    """The Attention changes page's statistics over all of a run's comparisons, computed once and
    cached small (the comparisons themselves can be a million rows)."""

    n: int
    by_change_type: dict[str, dict[str, float]]  # compute.metrics.attention_change.by_change_type
    distribution: pd.DataFrame  # change_distribution: the box plot's numbers
    tests: dict[str, dict]  # change_tests


@cached
def change_summary(db: StoreFile, run_id: str) -> ChangeSummary:
    values = queries.change_statistics(db.path, run_id)
    if values.empty:
        return ChangeSummary(0, {}, pd.DataFrame(), {})
    return ChangeSummary(len(values), by_change_type(values), change_distribution(values), change_tests(values))


@cached
def change_choices(db: StoreFile, run_id: str) -> dict[str, list[str]]:
    return queries.change_choices(db.path, run_id)


@cached
def change_gallery(db: StoreFile, run_id: str, conditions: list[str], categories: list[str],
                   answer_changes: list[str], correct: list[bool], limit: int) -> tuple[int, pd.DataFrame]:
    return queries.change_gallery(db.path, run_id, conditions, categories, answer_changes, correct, limit)


@cached
def item_lesion(db: StoreFile, item_id: str) -> tuple[str | None, str | None]:
    return queries.item_lesion(db.path, item_id)


@cached
def item_map(db: StoreFile, run_id: str, item_id: str, method: str, layer: int):
    return queries.item_map(db.path, run_id, item_id, method, int(layer))


@cached
def change_difference(db: StoreFile, run_id: str, item_id: str, method: str):
    return queries.change_difference(db.path, run_id, item_id, method)


@cached
def compare_rows(db: StoreFile, run_id: str) -> pd.DataFrame:
    """A run's answered items with their image sha256, image id and question: what pairs runs."""
    return queries.compare_rows(db.path, run_id)


@cached
def summary_maps(db: StoreFile, run_id: str, method: str = "attention", item_id: str | None = None) -> pd.DataFrame:
    """Each item's summary map of `method` (mean over layers, else its lowest layer)."""
    return queries.summary_maps(db.path, run_id, method, item_id)


@cached
def method_figures(db: StoreFile, run_id: str) -> pd.DataFrame:
    """Per map method and condition: pointing game, in-lesion mass, deletion ratio, sink mass."""
    return queries.method_figures(db.path, run_id)


@cached
def item_head_maps(db: StoreFile, run_id: str, item_id: str, method: str, layer: int) -> pd.DataFrame:
    return queries.item_head_maps(db.path, run_id, item_id, method, int(layer))


@cached
def browse_items(db: StoreFile, run_id: str, filters: browse.BrowseFilter, sort: str, descending: bool,
                 limit: int, offset: int) -> tuple[int, pd.DataFrame]:
    """(how many predictions match, the page's rows): store.browse.browse_page."""
    return browse.browse_page(db.path, run_id, filters, sort, descending, int(limit), int(offset))


@cached
def browse_filter_choices(db: StoreFile, run_id: str) -> browse.BrowseChoices:
    return browse.browse_choices(db.path, run_id)
