"""Multipage Streamlit dashboard over the DuckDB store."""
