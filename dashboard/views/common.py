"""Shared page pieces."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import context


def require_run() -> tuple[Path, str] | None:
    """The database and selected run, or None after telling the user how to make one."""
    db: Path = st.session_state["db"]
    run_id = st.session_state.get("run_id")
    if run_id is None:
        if not db.exists():
            st.info(f"No database at `{db}` yet.")
        else:
            st.info(f"`{db}` holds no runs yet.")
        st.markdown(context.how_to_make_one(db))
        return None
    return db, run_id
