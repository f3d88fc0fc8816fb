import altair as alt
import streamlit as st

from compute.facade import with_accuracy
from dashboard import data
from dashboard.downloads import csv_button
from dashboard.views.common import require_run, url_multiselect

st.title("Condition accuracy")
selection = require_run()
if selection is not None:
    db, run_id = selection
    chosen = url_multiselect("Conditions", data.conditions(db, run_id), "condition")
    table = with_accuracy(data.condition_counts(db, run_id, chosen or None))
    split = table[table.ground_truth != "all"]
    if split.empty:
        st.info("No answered questions for these conditions in this run.")
    else:
        st.caption("Bars: accuracy per condition, split by the ground-truth answer. Whiskers: 95% Wilson "
                   "intervals. Labels: number of questions.")
        base = alt.Chart(split).encode(
            x=alt.X("condition:N", title=None, sort=chosen, axis=alt.Axis(labelAngle=-30, labelLimit=200, labelOverlap=False)),
            xOffset=alt.XOffset("ground_truth:N", sort=["yes", "no"]),
            color=alt.Color("ground_truth:N", title="Ground truth", sort=["yes", "no"]),
            tooltip=["condition", "ground_truth", "n", "n_correct",
                     alt.Tooltip("accuracy:Q", format=".1%"), alt.Tooltip("ci_low:Q", format=".1%"),
                     alt.Tooltip("ci_high:Q", format=".1%")],
        )
        bars = base.mark_bar().encode(y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]),
                                              axis=alt.Axis(format="%"), title="Accuracy"))
        whiskers = base.mark_rule(color="black").encode(y="ci_low:Q", y2="ci_high:Q")
        labels = base.mark_text(dy=-6, baseline="bottom").encode(y="ci_high:Q", text="n:Q")
        st.altair_chart(bars + whiskers + labels, width="stretch")
        st.dataframe(table, hide_index=True, column_config={
            c: st.column_config.NumberColumn(format="percent") for c in ("accuracy", "ci_low", "ci_high")})
        csv_button("Download per-condition accuracy (CSV)", table, run_id, "condition_accuracy")
        csv_button("Download all predictions (CSV)", data.predictions(db, run_id, chosen or None), run_id,
                   "predictions")
