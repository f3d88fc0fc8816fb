"""Shared page pieces."""

from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from dashboard import context
from dashboard.safe_text import escape_markdown, shorten


def require_run() -> tuple[Path, str] | None:
    """The database and selected run, or None after telling the user how to make one."""
    db: Path = st.session_state["db"]
    run_id = st.session_state.get("run_id")
    if run_id is None:
        if not db.exists():
            st.info(f"No database at {escape_markdown(db)} yet.")
        else:
            st.info(f"{escape_markdown(db)} holds no runs yet.")
        st.markdown("Create one with the demo (`make demo`), or run a study with `python -m compute run`:")
        st.code(context.how_to_make_one(db), language="bash")
        return None
    return db, run_id


def show_error(exc: BaseException | str) -> None:
    """An exception's message as text: its first line in st.error, any further lines below as code."""
    first, _, rest = str(exc).strip().partition("\n")
    st.error(escape_markdown(shorten(first, 500) or type(exc).__name__))
    if rest.strip():
        st.code(rest.rstrip(), language=None, wrap_lines=True)


def url_multiselect(label: str, options: list[str], param: str) -> list[str]:
    """A multiselect whose choice lives in the URL as ?param=…&param=… (all options: no parameter).
    Values the URL names that are not options are ignored, with a warning."""
    asked = st.query_params.get_all(param)
    wanted = [o for o in asked if o in options]
    unknown = [o for o in asked if o not in options]
    if unknown:
        st.warning(f"{label}: the link names {escape_markdown(shorten(', '.join(map(repr, unknown))))}, which "
                   "this run does not have; "
                   + ("showing the others it names." if wanted else "showing all."))
    chosen = st.multiselect(label, options, default=wanted or options, key=f"filter_{param}")
    st.query_params[param] = chosen if chosen != options else []
    return chosen


def url_selectbox(label: str, options: list, param: str, format_func=str):
    """A selectbox whose choice lives in the URL as ?param=… A value the URL names that is
    not an option gets a warning naming what is shown instead."""
    wanted = st.query_params.get(param)
    index = next((i for i, o in enumerate(options) if str(o) == wanted), None)
    choice = st.selectbox(label, options, index=index or 0, format_func=format_func, key=f"pick_{param}")
    if wanted is not None and index is None:
        st.warning(f"{label}: the link names {escape_markdown(shorten(repr(wanted)))}, which this run does not "
                   f"have; showing {escape_markdown(format_func(choice))}.")
    st.query_params[param] = str(choice)
    return choice


def url_range(label: str, low: float, high: float, param: str, step: float = 0.01) -> tuple[float, float]:
    """A range slider whose choice lives in the URL as ?param=FROM&param=TO (the whole range: no
    parameter). A link whose values are not two numbers with low <= FROM <= TO <= high gets a
    warning and the whole range."""
    asked = st.query_params.get_all(param)
    start = (low, high)
    if asked:
        try:
            values = tuple(float(v) for v in asked)
        except ValueError:
            values = ()
        if len(values) == 2 and low <= values[0] <= values[1] <= high:  # NaN fails every comparison
            start = values
        else:
            st.warning(f"{label}: the link names {escape_markdown(shorten(', '.join(map(repr, asked))))}, not two "
                       f"numbers from {low:g} to {high:g} in order; showing the whole range.")
    chosen = tuple(st.slider(label, low, high, start, step, key=f"range_{param}"))
    st.query_params[param] = [] if chosen == (low, high) else [f"{round(v, 6):g}" for v in chosen]
    return chosen


def url_slider(label: str, low: float, high: float, default: float, param: str, step: float = 0.01) -> float:
    """A slider whose value lives in the URL as ?param=…; a link whose value is not a number from low
    to high gets a warning and the default."""
    wanted = st.query_params.get(param)
    start = default
    if wanted is not None:
        try:
            start = float(wanted)
        except ValueError:
            start = math.nan
        if not low <= start <= high:  # NaN fails every comparison
            st.warning(f"{label}: the link names {escape_markdown(shorten(repr(wanted)))}, not a number from "
                       f"{low:g} to {high:g}; showing {default:g}.")
            start = default
    value = st.slider(label, low, high, start, step, key=f"slider_{param}")
    st.query_params[param] = f"{value:g}"
    return value
