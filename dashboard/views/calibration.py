import pandas as pd
import streamlit as st

from compute.facade import at_threshold_by, curves_by, reliability_chart, roc_chart
from dashboard import data
from dashboard.charts import show_chart
from dashboard.downloads import csv_button
from dashboard.safe_text import escape_markdown as esc
from dashboard.safe_text import shorten
from dashboard.views.common import require_run, url_selectbox, url_slider

ALL_CONDITIONS = "(all conditions)"
NO_SLICE = "(none)"
MISSING = "(no value)"
MAX_CURVES = 8  # more curves than this are unreadable: the largest are drawn, every one is in the tables
PERCENT = ("sensitivity", "specificity", "ppv", "npv")
FIGURES = {c: st.column_config.NumberColumn(format="%.3f")
           for c in ("ece", "brier", "auroc", "auroc_low", "auroc_high")}


def _compared_runs(run_id: str, run_ids: list[str]) -> list[str]:
    """The selected run, then the runs named in ?with=… (chosen below, kept in the URL)."""
    others = [r for r in run_ids if r != run_id]
    asked = [r for r in st.query_params.get_all("with") if r in others]
    unknown = [r for r in st.query_params.get_all("with") if r not in others]
    if unknown:
        st.warning(f"Compare with runs: the link names {esc(shorten(', '.join(map(repr, unknown))))}, which this "
                   "database does not have besides the selected run; not compared.")
    chosen = st.multiselect("Compare with runs", others, default=asked, key="calibration_with",
                            help="Their curves are drawn beside the selected run's")
    st.query_params["with"] = chosen
    return [run_id, *chosen]


def _label(frame: pd.DataFrame, sliced: bool, several_runs: bool) -> pd.Series:
    values = frame["slice"].fillna(MISSING).astype(str) if sliced else None
    if values is None:
        return frame["run"]
    return frame["run"] + " · " + values if several_runs else values


def _rows(db, runs: list[str], slice_by: str | None, condition: str | None) -> pd.DataFrame:
    """Every compared run's P(yes) rows (of `condition`), saying which runs have none."""
    frames = []
    for run in runs:
        rows, n_without = data.probability_rows(db, run, slice_by)
        if n_without and rows.empty:
            st.info(f"Run {esc(shorten(repr(run)))} stored no P(yes) (its answers were imported as text), so it "
                    "has no calibration or ROC curve.")
        elif n_without:
            st.warning(f"{n_without} answered questions of run {esc(shorten(repr(run)))} have no P(yes) and are "
                       "left out.")
        frames.append(rows.assign(run=run))
    rows = pd.concat(frames, ignore_index=True)
    return rows if condition is None else rows[rows["condition"] == condition]


def _tables(db, runs: list[str], slice_by: str | None, condition: str | None) -> None:
    st.subheader("By condition")
    by_condition = pd.concat([data.calibration_table(db, r, None, None, ("condition",)).assign(run=r) for r in runs],
                             ignore_index=True)
    st.caption("ECE: expected calibration error over ten equal-width P(yes) bins. Brier: mean squared error of "
               "P(yes). AUROC with its 95% stratified bootstrap interval (1,000 resamples). Only yes/no questions "
               "with a ground truth count.")
    st.dataframe(by_condition[["run", *by_condition.columns[:-1]]], hide_index=True, column_config=FIGURES)
    csv_button("Download (CSV)", by_condition, runs[0], "calibration_by_condition")
    if slice_by:
        st.subheader(f"By {esc(slice_by)}" + (f", {esc(condition)}" if condition else ""))
        by_slice = pd.concat([data.calibration_table(db, r, slice_by, condition, ("slice",)).assign(run=r)
                              for r in runs], ignore_index=True)
        by_slice = by_slice.rename(columns={"slice": slice_by})
        st.dataframe(by_slice[["run", *by_slice.columns[:-1]]], hide_index=True, column_config=FIGURES)
        csv_button("Download (CSV)", by_slice, runs[0], "calibration_by_slice")


st.title("Calibration and ROC")
selection = require_run()
if selection is not None:
    db, run_id = selection
    runs = _compared_runs(run_id, data.list_runs(db)["run_id"].tolist())
    left, right = st.columns(2)
    with left:
        conditions = sorted({c for r in runs for c in data.conditions(db, r)})
        picked = url_selectbox("Condition", [ALL_CONDITIONS, *conditions], "condition")
        condition = None if picked == ALL_CONDITIONS else picked
    with right:
        slices = list(dict.fromkeys(c for r in runs for c in data.slice_columns(db, r)))
        picked = url_selectbox("Slice by", [NO_SLICE, *slices], "slice")
        slice_by = None if picked == NO_SLICE else picked
    rows = _rows(db, runs, slice_by, condition)
    if rows.empty:
        st.info("No yes/no question with a ground truth and a P(yes) here: nothing to calibrate.")
    else:
        rows["curve"] = _label(rows, slice_by is not None, len(runs) > 1)
        sizes = rows["curve"].value_counts()
        drawn = rows[rows["curve"].isin(sizes.index[:MAX_CURVES])]
        if len(sizes) > MAX_CURVES:
            st.caption(f"{len(sizes)} curves: the {MAX_CURVES} with the most items are drawn; the tables hold all.")
        bins, corners = curves_by(drawn, "curve")
        threshold = url_slider("Threshold: answer yes when P(yes) ≥", 0.0, 1.0, 0.5, "threshold")
        matrix = at_threshold_by(rows, "curve", threshold)
        points = matrix.assign(fpr=1 - matrix["specificity"], tpr=matrix["sensitivity"])
        chart_left, chart_right = st.columns(2)
        with chart_left:
            st.subheader("Reliability")
            show_chart(reliability_chart(bins), run_id, "reliability")
        with chart_right:
            st.subheader("ROC")
            show_chart(roc_chart(corners, points[points["curve"].isin(drawn["curve"])]), run_id, "roc")
        st.subheader(f"At the threshold {threshold:.2f}")
        st.caption("Counts of the confusion matrix (tp: truth yes, answered yes; fp: truth no, answered yes), then "
                   "sensitivity, specificity, PPV and NPV. The diamonds on the ROC curves mark this threshold.")
        st.dataframe(matrix, hide_index=True,
                     column_config={c: st.column_config.NumberColumn(format="percent") for c in PERCENT})
        csv_button("Download (CSV)", matrix, run_id, "threshold")
        _tables(db, runs, slice_by, condition)
