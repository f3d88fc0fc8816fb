import os

import pandas as pd
import streamlit as st

from compute.facade import (MAX_UPLOAD_BYTES, ImageLoadError, InferenceError, ask, attention_metrics, body_cells,
                            load_session, load_upload, metrics_without_body, question_term)
from dashboard import data
from dashboard.overlay import COLORMAPS, overlay
from dashboard.run_images import run_image
from dashboard.safe_text import escape_markdown as esc
from dashboard.safe_text import shorten
from dashboard.views.common import show_error

MAP_METHODS = ["attention", "gradcam", "token", "relevancy", "relative", "knockout", "logit_lens"]
LAYERED = ("attention", "token", "relative", "knockout", "logit_lens")  # the ones read from chosen decoder layers

DEFAULT_MODEL = "models/demo"


@st.cache_resource(show_spinner="Loading the model ...")
def _session(model: str):
    """One Session per model for every browser session; facade.ask makes its users take turns."""
    return load_session(model)


st.title("Live inference")
model = st.query_params.get("model") or os.environ.get("MGV_MODEL", DEFAULT_MODEL)
st.caption(f"Model: {esc(shorten(model, 200))} (set `?model=` in the URL or MGV_MODEL). "
           "Nothing here is written to the store.")

source = st.radio("Image", ["Upload", "From the selected run"], horizontal=True)
image = None
if source == "Upload":
    upload = st.file_uploader(f"PNG, JPEG or DICOM, up to {MAX_UPLOAD_BYTES // 2**20} MiB (judged by content)",
                              max_upload_size=MAX_UPLOAD_BYTES // 2**20)  # the browser refuses larger files first
    if upload is not None:
        try:
            image = load_upload(upload.getvalue(), upload.name)
        except (ImageLoadError, ValueError) as exc:  # a reader's ValueError too (a DICOM's bad window, say)
            show_error(exc)
else:
    db, run_id = st.session_state["db"], st.session_state.get("run_id")
    items = data.mapped_items(db, run_id) if run_id else pd.DataFrame()
    if items.empty:
        st.info("The selected run has no images to pick from.")
    else:
        first = items.drop_duplicates("image_key" if items.image_key.notna().all() else "image_id")
        labels = dict(zip(first.item_id, first.image_id))  # one prediction per image file stands for it
        item_id = st.selectbox("Image of the run", sorted(labels, key=labels.get), format_func=labels.get)
        shown = run_image(db, run_id, item_id)
        image = shown.image
        if shown.problem:
            show_error(shown.problem)
        if shown.note:
            st.warning(esc(shown.note))

question = st.text_input("Question", "Is there pleural effusion?")
left, middle, right = st.columns(3)
method = left.selectbox("Map", MAP_METHODS, help="relevancy, knockout and the logit lens cost more passes; see the "
                        "Methods page for which to trust")
layers = middle.text_input("Decoder layers", "all", help="'2,7,12', 'all', 'last:4' or 'full'")
colormap = right.selectbox("Colormap", COLORMAPS)
term = None
if method in ("token", "logit_lens"):
    term = st.text_input("Term", question_term(question) or "", help="token: words of the question to read attention "
                         "from; logit lens: the word whose probability is mapped")

if image is not None and question.strip() and st.button("Ask", type="primary"):
    try:
        with st.spinner("Asking the model (other users' questions go first) ...", show_time=True):
            result = ask(_session(model), image, question, method=method,
                         layers=layers if method in LAYERED else None, term=term or None)
    except InferenceError as exc:  # e.g. a bad ?model=, a bad layer list, no map to be had
        show_error(exc)
    else:
        a, b, c = st.columns(3)
        a.metric("Answer", esc(result.answer))
        b.metric("P(yes)", f"{result.p_yes:.3f}")
        c.metric("Reply", esc(result.text) or "(empty)")
        shape = result.grid_shape
        st.image(overlay(image, result.map.mean, colormap=colormap, size=512),
                 caption=f"{esc(result.map.method)}, layers {esc(list(result.map.layers))}; the patient's right is "
                         "on the image's left")
        if result.map.fallback_reason:
            st.warning(f"Fell back to {esc(result.map.method)}: {esc(result.map.fallback_reason)}")
        body, why_not = body_cells(image, shape)
        metrics = attention_metrics(result.map.mean, body) if body is not None else metrics_without_body(result.map.mean)
        if why_not:
            st.caption(esc(why_not))
        st.dataframe(pd.DataFrame({"metric": list(metrics), "value": list(metrics.values())}), hide_index=True)
