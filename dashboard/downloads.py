"""CSV downloads that a spreadsheet opens as data, never as formulas.

A text cell starting with =, +, -, @, a tab or a carriage return is run as a formula by
Excel, LibreOffice and Google Sheets (`=HYPERLINK(...)` from a manifest question, say).
OWASP's advice: prefix such cells with a single quote, which spreadsheets show as text.
Only text is touched: numbers, booleans and missing values stay as they are.
"""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _neutral(value: object) -> object:
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells (and column names) cannot start a formula."""
    out = frame.copy()
    out.columns = [_neutral(c) for c in out.columns]
    for column in range(out.shape[1]):
        values = out.iloc[:, column]
        if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
                or pd.api.types.is_datetime64_any_dtype(values)):
            out.isetitem(column, values.map(_neutral))
    return out


def csv_text(frame: pd.DataFrame) -> str:
    return neutralise_formulas(frame).to_csv(index=False)


def file_name(run_id: str, what: str, extension: str = "csv") -> str:
    """`{run}_{what}.{extension}` with the run name reduced to characters safe in any file system."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._-")[:80] or "run"
    return f"{stem}_{what}.{extension}"


def csv_button(label: str, frame: pd.DataFrame, run_id: str, what: str) -> None:
    st.download_button(label, csv_text(frame), file_name=file_name(run_id, what), mime="text/csv")
