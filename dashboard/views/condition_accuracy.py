import streamlit as st

from compute.facade import accuracy_chart, with_accuracy
from dashboard import data
from dashboard.charts import show_chart
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
        show_chart(accuracy_chart(split, chosen), run_id, "condition_accuracy")
        st.dataframe(table, hide_index=True, column_config={
            c: st.column_config.NumberColumn(format="percent") for c in ("accuracy", "ci_low", "ci_high")})
        csv_button("Download per-condition accuracy (CSV)", table, run_id, "condition_accuracy")
        csv_button("Download all predictions (CSV)", data.predictions(db, run_id, chosen or None), run_id,
                   "predictions")
