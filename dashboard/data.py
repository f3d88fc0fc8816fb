"""Cached, read-only access to the store for the pages.

Caches are keyed on the database's modification time as well as the arguments, so a
page refresh after new results land shows them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.safe_text import escape_markdown
from store import StoreError, StoreNotFoundError, queries


def _mtime(db: Path) -> float:
    return db.stat().st_mtime if db.exists() else 0.0


def has_runs(db: Path) -> bool:
    try:
        return _has_runs(str(db), _mtime(db))
    except StoreNotFoundError:
        return False


def store_problem(db: Path, exc: StoreError) -> str:
    """One line for st.error: what is wrong with `db` (as text) and what to do."""
    what = str(exc).strip().rstrip(".") or type(exc).__name__
    if str(db) not in what:
        what = f"{db}: {what}"
    return (f"{escape_markdown(what)}. Point `--db` or `MGV_DB` at a store written by "
            "`python -m compute run`.")


@st.cache_data(show_spinner=False)
def _has_runs(db: str, mtime: float) -> bool:
    return queries.has_runs(db)


@st.cache_data(show_spinner=False)
def _list_runs(db: str, mtime: float) -> pd.DataFrame:
    return queries.list_runs(db)


@st.cache_data(show_spinner=False)
def _overview(db: str, mtime: float, run_id: str) -> dict:
    return queries.run_overview(db, run_id)


@st.cache_data(show_spinner=False)
def _conditions(db: str, mtime: float, run_id: str) -> list[str]:
    return queries.conditions(db, run_id)


@st.cache_data(show_spinner=False)
def _condition_accuracy(db: str, mtime: float, run_id: str, conditions: tuple[str, ...] | None) -> pd.DataFrame:
    return queries.condition_accuracy(db, run_id, list(conditions) if conditions else None)


@st.cache_data(show_spinner=False)
def _predictions(db: str, mtime: float, run_id: str, conditions: tuple[str, ...] | None) -> pd.DataFrame:
    return queries.predictions(db, run_id, list(conditions) if conditions else None)


def list_runs(db: Path) -> pd.DataFrame:
    return _list_runs(str(db), _mtime(db))


def overview(db: Path, run_id: str) -> dict:
    return _overview(str(db), _mtime(db), run_id)


def conditions(db: Path, run_id: str) -> list[str]:
    return _conditions(str(db), _mtime(db), run_id)


def condition_accuracy(db: Path, run_id: str, conditions: list[str] | None) -> pd.DataFrame:
    return _condition_accuracy(str(db), _mtime(db), run_id, tuple(conditions) if conditions else None)


def predictions(db: Path, run_id: str, conditions: list[str] | None) -> pd.DataFrame:
    return _predictions(str(db), _mtime(db), run_id, tuple(conditions) if conditions else None)


@st.cache_data(show_spinner=False)
def _mapped_items(db: str, mtime: float, run_id: str) -> pd.DataFrame:
    return queries.mapped_items(db, run_id)


@st.cache_data(show_spinner=False)
def _item_maps(db: str, mtime: float, run_id: str, item_id: str) -> pd.DataFrame:
    return queries.item_maps(db, run_id, item_id)


@st.cache_data(show_spinner=False)
def _image_file(db: str, mtime: float, run_id: str, item_id: str):
    return queries.image_file(db, run_id, item_id)


def mapped_items(db: Path, run_id: str) -> pd.DataFrame:
    return _mapped_items(str(db), _mtime(db), run_id)


def item_maps(db: Path, run_id: str, item_id: str) -> pd.DataFrame:
    return _item_maps(str(db), _mtime(db), run_id, item_id)


def image_file(db: Path, run_id: str, item_id: str) -> queries.ImageLocation | None:
    """Where the prediction's image file is, with the sha256 the run recorded."""
    return _image_file(str(db), _mtime(db), run_id, item_id)


@st.cache_data(show_spinner=False)
def _phrasing_rows(db: str, mtime: float, run_id: str) -> pd.DataFrame:
    return queries.phrasing_rows(db, run_id)


@st.cache_data(show_spinner=False)
def _attention_changes(db: str, mtime: float, run_id: str) -> pd.DataFrame:
    return queries.attention_changes(db, run_id)


@st.cache_data(show_spinner=False)
def _item_map(db: str, mtime: float, run_id: str, item_id: str, method: str, layer: int):
    return queries.item_map(db, run_id, item_id, method, layer)


def phrasing_rows(db: Path, run_id: str) -> pd.DataFrame:
    return _phrasing_rows(str(db), _mtime(db), run_id)


def attention_changes(db: Path, run_id: str) -> pd.DataFrame:
    return _attention_changes(str(db), _mtime(db), run_id)


def item_map(db: Path, run_id: str, item_id: str, method: str, layer: int):
    return _item_map(str(db), _mtime(db), run_id, item_id, method, int(layer))


@st.cache_data(show_spinner=False)
def _change_difference(db: str, mtime: float, run_id: str, item_id: str, method: str):
    return queries.change_difference(db, run_id, item_id, method)


def change_difference(db: Path, run_id: str, item_id: str, method: str):
    return _change_difference(str(db), _mtime(db), run_id, item_id, method)
