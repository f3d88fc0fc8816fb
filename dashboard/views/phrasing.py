import altair as alt
import pandas as pd
import streamlit as st

from compute.facade import accuracy_by, phrasing_report
from dashboard import data
from dashboard.charts import show_chart
from dashboard.downloads import csv_button
from dashboard.views.common import require_run, url_multiselect, url_selectbox


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


st.title("Phrasing strategies")
selection = require_run()
if selection is not None:
    db, run_id = selection
    rows = data.phrasing_rows(db, run_id)
    if rows.empty:
        st.info("This run has no variant groups. Run `python -m compute run --study phrasing ...`, or import "
                "results with `python -m compute import-results FILE --db DB --run NAME`.")
    else:
        # The report `python -m compute report` prints, without its attention-change part (the
        # Attention changes page shows that); every group in its most-sensitive list.
        report = phrasing_report(rows, pd.DataFrame(), run_id, top=len(rows))
        rows = rows.fillna({"strategy": "(none)", "strategy_category": "other", "condition": "(unknown)"})
        cols = st.columns(4)
        cols[0].metric("Groups", report["groups"])
        cols[1].metric("Baseline accuracy", _percent(report["baseline_accuracy"]))
        cols[2].metric("Mean group consistency", f"{report['consistency_mean']:.3f}")
        cols[3].metric("Mean flip rate", _percent(report["flip_rate_mean"]))

        chosen = url_multiselect("Categories", sorted(rows.strategy_category.unique()), "category")
        shown = rows[rows.strategy_category.isin(chosen)]

        st.subheader("Accuracy by strategy")
        st.caption("95% Wilson intervals. Click a column header to sort.")
        table = accuracy_by(shown, "strategy").merge(
            shown[["strategy", "strategy_category"]].drop_duplicates("strategy"), on="strategy")
        st.dataframe(table[["strategy", "strategy_category", "accuracy", "ci_low", "ci_high", "n", "n_correct"]],
                     hide_index=True, column_config={
                         c: st.column_config.NumberColumn(format="percent") for c in ("accuracy", "ci_low", "ci_high")})
        csv_button("Download (CSV)", table, run_id, "strategies")

        st.subheader("Strategy × condition")
        cells = shown.groupby(["strategy", "condition"])["correct"].agg(["mean", "size"]).reset_index()
        cells.columns = ["strategy", "condition", "accuracy", "n"]
        heatmap = alt.Chart(cells).mark_rect().encode(
            x=alt.X("condition:N", title=None, axis=alt.Axis(labelAngle=-30, labelOverlap=False)),
            y=alt.Y("strategy:N", title=None, sort=table.strategy.tolist(), axis=alt.Axis(labelLimit=300)),
            color=alt.Color("accuracy:Q", scale=alt.Scale(domain=[0, 1], scheme="redyellowgreen"), title="Accuracy"),
            tooltip=["strategy", "condition", alt.Tooltip("accuracy:Q", format=".1%"), "n"])
        show_chart(heatmap, run_id, "strategy_condition_accuracy")

        st.subheader("One group")
        labels = {g["group_id"]: f"{g['group_id']}  (consistency {g['consistency']:.2f}, "
                                 f"flip rate {g['flip_rate'] or 0:.0%})"
                  for g in report["most_sensitive_groups"]}
        group = url_selectbox("Group (least consistent first)", list(labels), "group", format_func=labels.get)
        members = rows[rows.group_id == group].sort_values("variant_index")
        st.dataframe(members[["variant_index", "strategy_category", "strategy", "question", "ground_truth", "answer",
                              "p_yes", "correct"]], hide_index=True,
                     column_config={"p_yes": st.column_config.NumberColumn("P(yes)", format="%.3f")})
