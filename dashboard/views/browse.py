"""Browse a run's predictions as a paginated grid of thumbnails, each with its attention map over
the image, filtered and sorted in the store (store.browse: only the page shown is read). The
filters, the sort and the page live in the URL, so a copied link reproduces the view; a click on
an item opens it on the Attention page."""

import math

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.safe_text import escape_markdown as esc
from dashboard.safe_text import shorten
from dashboard.thumbnails import browse_thumbnail
from dashboard.views.common import require_run, url_multiselect, url_range, url_selectbox
from store.browse import FLIPS, MAX_VALUES, BrowseChoices, BrowseFilter
from vocabulary import Method

ALL = "all"
PAGE_SIZES = [24, 48, 96]  # the first is the default
PER_ROW = 4
THUMBNAIL = 224  # pixels
COLUMN_PARAM = "col."  # ?col.view=PA: the dataset column `view` filtered to PA
SORT_LABELS = {"manifest": "manifest order", "p_yes": "P(yes)", "confidence": "confidence",
               "js_divergence": "JS divergence from the baseline's map"}
FLIP_LABELS = {ALL: "all", "flipped": "flipped: its answer differs from its group's baseline answer",
               "unflipped": "not flipped: its answer equals its group's baseline answer",
               "group_flipped": "its group has a flipped variant (baseline included)",
               "group_unflipped": "its group has no flipped variant"}
OUTCOMES = [ALL, "correct", "wrong"]


def _all_or(chosen: list[str], options: tuple[str, ...]) -> tuple[str, ...] | None:
    """None (no filter) when every option is chosen, else the chosen ones."""
    return None if list(chosen) == list(options) else tuple(chosen)


def _multi(label: str, options: tuple[str, ...], param: str) -> tuple[str, ...] | None:
    return _all_or(url_multiselect(label, list(options), param), options) if options else None


def _p_yes(choices: BrowseChoices) -> tuple[float, float] | None:
    if not choices.n_p_yes:
        st.info("This run stored no P(yes) (its answers were imported as text): the P(yes) range filter and the "
                "P(yes) and confidence sorts do not apply.")
        if st.query_params.get_all("p_yes"):
            st.warning("The link's P(yes) range does not apply to this run; showing every prediction.")
            st.query_params["p_yes"] = []
        return None
    low, high = url_range("P(yes) range", 0.0, 1.0, "p_yes")
    if choices.n_p_yes < choices.n_items:
        st.caption(f"{choices.n_items - choices.n_p_yes:,} predictions have no P(yes): a range leaves them out, "
                   "and the P(yes) and confidence sorts put them last.")
    return None if (low, high) == (0.0, 1.0) else (low, high)


def _flipped(choices: BrowseChoices) -> str | None:
    if not choices.n_grouped:
        if st.query_params.get("flipped") not in (None, ALL):
            st.warning("The link filters by answer flips, but this run has no variant groups with an answered "
                       "baseline (a phrasing study makes them); showing every prediction.")
            st.query_params["flipped"] = []
        return None
    flipped = url_selectbox("Answer under rephrasing", [ALL, *FLIPS], "flipped", format_func=FLIP_LABELS.get)
    st.caption("Flipped: the item's answer (yes, no or uncertain) differs from its variant group's baseline "
               "answer (variant 0). Items outside a group with an answered baseline match no flip filter.")
    return None if flipped == ALL else flipped


def _unknown_columns(choices: BrowseChoices) -> None:
    """A warning for each ?col.NAME= that names no column offered, and the parameter dropped."""
    unknown = [p[len(COLUMN_PARAM):] for p in st.query_params
               if p.startswith(COLUMN_PARAM) and p[len(COLUMN_PARAM):] not in choices.columns]
    if unknown:
        st.warning(f"The link filters by {esc(shorten(', '.join(map(repr, unknown))))}, which this run's predictions "
                   "do not have as a column with few enough values to filter by; not filtered by them.")
        for name in unknown:
            st.query_params[COLUMN_PARAM + name] = []


def _dataset_columns(choices: BrowseChoices) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The dataset columns' filters, in the URL as ?col.NAME=VALUE; the chosen subsets."""
    if choices.too_many:
        named = esc(shorten(", ".join(choices.too_many)))
        st.caption(f"Not offered, with more than {MAX_VALUES} values each: {named}.")
    chosen = []
    for name, values in choices.columns.items():
        picked = _multi(esc(name), values, COLUMN_PARAM + name)
        if picked is not None:
            chosen.append((name, picked))
    return tuple(chosen)


def _filters(choices: BrowseChoices) -> BrowseFilter:
    """The filters' widgets, each kept in the URL."""
    left, middle, right = st.columns(3)
    with left:
        conditions = _multi("Condition", choices.conditions, "condition")
        truths = _multi("Ground truth", choices.ground_truths, "truth")
        answers = _multi("Answer", choices.answers, "answer")
    with middle:
        outcome = url_selectbox("Correct or wrong", OUTCOMES, "correct")
        p_yes = _p_yes(choices)
    with right:
        flipped = _flipped(choices)
        strategies = _multi("Strategy", choices.strategies, "strategy")
    columns = ()
    _unknown_columns(choices)
    if choices.columns or choices.too_many:
        with st.expander("Dataset columns"):
            columns = _dataset_columns(choices)
    return BrowseFilter(conditions=conditions, ground_truths=truths, answers=answers,
                        correct=None if outcome == ALL else outcome == "correct", p_yes=p_yes, flipped=flipped,
                        strategies=strategies, columns=columns)


def _sort(choices: BrowseChoices) -> tuple[str, bool]:
    sorts = ["manifest", *(["p_yes", "confidence"] if choices.n_p_yes else []),
             *(["js_divergence"] if choices.n_compared else [])]
    left, right = st.columns(2)
    with left:
        sort = url_selectbox("Sort by", sorts, "sort", format_func=SORT_LABELS.get)
    with right:
        order = url_selectbox("Order", ["ascending", "descending"], "order")
    notes = {"confidence": "Confidence = |P(yes) − 0.5| × 2: 0 at P(yes) 0.5, 1 at P(yes) 0 or 1.",
             "js_divergence": "JS divergence (base 2, in [0, 1]) of the item's attention map, mean over layers, "
                              "from its group's baseline map; items without a comparison (baselines) come last."}
    if sort in notes:
        st.caption(notes[sort])
    return sort, order == "descending"


def _asked_page() -> int:
    """The page ?page= names: 1 when missing, and when not a whole number from 1 on (with a warning)."""
    wanted = st.query_params.get("page")
    if wanted is None:
        return 1
    try:
        page = int(wanted)
    except ValueError:
        page = 0
    if page < 1:
        st.warning(f"Page: the link names {esc(shorten(repr(wanted)))}, not a page number; showing page 1.")
        return 1
    return page


def _page(db, run_id: str, filters: BrowseFilter, sort: str, descending: bool,
          size: int) -> tuple[int, int, pd.DataFrame]:
    """(matching predictions, page number, its rows): the page the picker or the link names, page 1
    after the filters change, the last page (with a warning) for one past the end."""
    view = (filters, sort, descending, size)
    changed = st.session_state.get("browse_view") not in (None, view)
    st.session_state["browse_view"] = view
    page = 1 if changed else int(st.session_state.get("browse_page_number") or _asked_page())
    total, rows = data.browse_items(db, run_id, filters, sort, descending, size, (page - 1) * size)
    pages = max(1, math.ceil(total / size))
    if page > pages:
        if total:
            st.warning(f"Page {page} is past the last page of these predictions, {pages}; showing that.")
        page = pages
        total, rows = data.browse_items(db, run_id, filters, sort, descending, size, (page - 1) * size)
    st.session_state["browse_page_number"] = page
    st.query_params["page"] = [] if page == 1 else str(page)
    return total, page, rows


def _label(row) -> str:
    mark = "✓" if row.correct is True else "✗" if row.correct is False else "·"
    return f"{mark} {shorten(row.question if isinstance(row.question, str) else '(no question)', 90)}"


def _number(value, digits: int) -> str | None:
    return None if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _details(row) -> str:
    """One line of the item's values (user text among them: escape it)."""
    parts = [str(row.condition), f"truth {row.ground_truth}", f"answer {row.answer}"]
    for name, value in (("P(yes)", _number(row.p_yes, 3)), ("confidence", _number(row.confidence, 2)),
                        ("JS", _number(row.js_divergence, 3))):
        if value is not None:
            parts.append(f"{name} {value}")
    if isinstance(row.strategy, str):
        parts.append(row.strategy)
    if row.flipped is True:
        parts.append("flipped")
    return " · ".join(parts)


def _card(db, run_id: str, row, method: str | None) -> None:
    picture = browse_thumbnail(db, run_id, row.item_id, method, THUMBNAIL)
    if picture.png is None:
        st.warning(esc(shorten(picture.problem or "No image.", 300)))
    else:
        st.image(picture.png)
        if method and not picture.has_map:
            st.caption(f"No {esc(method)} map: the plain image.")
    if picture.note:
        st.caption(esc(shorten(picture.note, 300)))
    if row.has_maps:
        st.page_link("views/attention.py", label=esc(_label(row)), query_params={"run": run_id, "item": row.item_id})
    else:
        st.markdown(esc(_label(row)))
    st.caption(esc(_details(row)))


def _grid(db, run_id: str, rows: pd.DataFrame, method: str | None) -> None:
    for start in range(0, len(rows), PER_ROW):
        for column, row in zip(st.columns(PER_ROW), rows.iloc[start:start + PER_ROW].itertuples(), strict=False):
            with column:
                _card(db, run_id, row, method)


def _method(choices: BrowseChoices) -> str | None:
    order = list(Method)
    methods = sorted(choices.methods, key=lambda m: (order.index(m) if m in order else len(order), m))
    if not methods:
        st.caption("This run stored no maps: the thumbnails are the plain images.")
        return None
    return url_selectbox("Map drawn", methods, "method")


st.title("Browse")
selection = require_run()
if selection is not None:
    db, run_id = selection
    choices = data.browse_filter_choices(db, run_id)
    if not choices.n_items:
        st.info("This run has no answered predictions to browse yet.")
    else:
        with st.expander("Filters", expanded=True):
            filters = _filters(choices)
        top = st.columns([3, 1, 1])
        with top[0]:
            sort, descending = _sort(choices)
        with top[1]:
            size = url_selectbox("Per page", PAGE_SIZES, "size")
        with top[2]:
            method = _method(choices)
        total, page, rows = _page(db, run_id, filters, sort, descending, size)
        if not total:
            st.info("No prediction of this run matches these filters.")
        else:
            pages = max(1, math.ceil(total / size))
            first = (page - 1) * size
            st.caption(f"{total:,} of {choices.n_items:,} predictions match; {first + 1:,}–{first + len(rows):,} "
                       f"shown, page {page:,} of {pages:,}. A click on an item with maps opens it on the Attention "
                       "page. ✓ correct, ✗ wrong.")
            _grid(db, run_id, rows, method)
            if pages > 1:
                st.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, step=1,
                                key="browse_page_number")
