"""Which database and run the dashboard shows.

The database comes from `streamlit run dashboard/app.py -- --db DB`, else the MGV_DB
environment variable, else data/demo.duckdb. The run and filters live in the URL's
query parameters, so a copied link reproduces the view.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import streamlit as st

from dashboard.safe_text import escape_markdown, shorten

DEFAULT_DB = Path("data/demo.duckdb")


def db_path() -> Path:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db", type=Path, default=None)
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.db or Path(os.environ.get("MGV_DB", DEFAULT_DB))


def how_to_make_one(db: Path) -> str:
    """The shell command that writes a first run into `db` (show it with st.code)."""
    return ("python -m compute run --model models/demo --manifest data/demo_synth/manifest.jsonl "
            f"--db {shlex.quote(str(db))} --run my-run")


def selected_run(run_ids: list[str]) -> str:
    """The run named in ?run=…, else the newest (with a warning if ?run= names no run);
    the picker writes the choice back to the URL."""
    wanted = st.query_params.get("run")
    index = run_ids.index(wanted) if wanted in run_ids else 0
    run_id = st.sidebar.selectbox("Run", run_ids, index=index, key="run_picker")
    if wanted is not None and wanted not in run_ids:
        st.warning(f"This database has no run named {escape_markdown(shorten(repr(wanted)))}; "
                   f"showing {escape_markdown(repr(run_id))} instead.")
    st.query_params["run"] = run_id
    return run_id


def list_param(name: str) -> list[str] | None:
    values = st.query_params.get_all(name)
    return values or None
