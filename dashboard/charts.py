"""Charts on a page, each with PNG and SVG downloads for papers.

The files are rendered from the chart's Vega-Lite spec by vl-convert (no browser), only when a
download is clicked. A chart that stretches to the page's width gets a fixed width in the files.
"""

from __future__ import annotations

import altair as alt
import streamlit as st
import vl_convert

from compute.facade import spec_json
from dashboard.downloads import file_name

PNG_SCALE = 2  # twice the pixels: sharp when printed


def svg(chart: alt.TopLevelMixin) -> str:
    return vl_convert.vegalite_to_svg(spec_json(chart))


def png(chart: alt.TopLevelMixin) -> bytes:
    return vl_convert.vegalite_to_png(spec_json(chart), scale=PNG_SCALE)


def show_chart(chart: alt.TopLevelMixin, run_id: str, what: str) -> None:
    """`chart` across the page, then its PNG and SVG downloads (named after the run and `what`)."""
    st.altair_chart(chart, width="stretch")
    row = st.container(horizontal=True)
    row.download_button("Download PNG", lambda: png(chart), file_name=file_name(run_id, what, "png"),
                        mime="image/png", on_click="ignore", key=f"png_{what}")
    row.download_button("Download SVG", lambda: svg(chart), file_name=file_name(run_id, what, "svg"),
                        mime="image/svg+xml", on_click="ignore", key=f"svg_{what}")
