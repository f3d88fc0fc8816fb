"""Entry point: `streamlit run dashboard/app.py -- --db DB`. A router over the pages."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `streamlit run` from any folder

import streamlit as st  # noqa: E402

from dashboard import context, data  # noqa: E402
from dashboard.safe_text import escape_markdown  # noqa: E402
from store import StoreError  # noqa: E402

st.set_page_config(page_title="MedGemma Visualizer", layout="wide")

db = context.db_path()
pages = [
    st.Page("views/overview.py", title="Overview", default=True),
    st.Page("views/condition_accuracy.py", title="Condition accuracy", url_path="condition-accuracy"),
    st.Page("views/phrasing.py", title="Phrasing strategies", url_path="phrasing"),
    st.Page("views/calibration.py", title="Calibration and ROC", url_path="calibration"),
    st.Page("views/browse.py", title="Browse", url_path="browse"),
    st.Page("views/attention.py", title="Attention", url_path="attention"),
    st.Page("views/attention_changes.py", title="Attention changes", url_path="attention-changes"),
    st.Page("views/compare.py", title="Compare runs", url_path="compare"),
    st.Page("views/methods.py", title="Methods", url_path="methods"),
    st.Page("views/live.py", title="Live inference", url_path="live"),
]
navigation = st.navigation(pages)
st.sidebar.caption(f"Database: {escape_markdown(db)}")
st.session_state["db"] = db
try:
    run_ids = data.list_runs(db)["run_id"].tolist() if data.has_runs(db) else []
    st.session_state["run_id"] = context.selected_run(run_ids) if run_ids else None
    navigation.run()
except StoreError as exc:  # not a store this code can read: say so, and what to do, on every page
    st.error(data.store_problem(db, exc))
