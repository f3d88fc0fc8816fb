"""Entry point: `streamlit run dashboard/app.py -- --db DB`. A router over the pages."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `streamlit run` from any folder

import streamlit as st  # noqa: E402

from dashboard import context, data  # noqa: E402

st.set_page_config(page_title="MedGemma Visualizer", layout="wide")

db = context.db_path()
pages = [
    st.Page("views/overview.py", title="Overview", default=True),
    st.Page("views/condition_accuracy.py", title="Condition accuracy", url_path="condition-accuracy"),
    st.Page("views/phrasing.py", title="Phrasing strategies", url_path="phrasing"),
    st.Page("views/attention.py", title="Attention", url_path="attention"),
    st.Page("views/attention_changes.py", title="Attention changes", url_path="attention-changes"),
    st.Page("views/live.py", title="Live inference", url_path="live"),
]
navigation = st.navigation(pages)
st.sidebar.caption(f"Database: `{db}`")
if data.has_runs(db):
    runs = data.list_runs(db)
    st.session_state["db"] = db
    st.session_state["run_id"] = context.selected_run(runs["run_id"].tolist())
else:
    st.session_state["db"] = db
    st.session_state["run_id"] = None
navigation.run()
