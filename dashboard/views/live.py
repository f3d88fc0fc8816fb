import os

import pandas as pd
import streamlit as st

from compute.attention import MapUnavailableError
from compute.images import ImageLoadError, load_image
from compute.metrics import attention_metrics
from compute.regions import body_mask, mask_to_grid
from compute.uploads import MAX_UPLOAD_BYTES, load_upload
from dashboard import data
from dashboard.overlay import COLORMAPS, overlay

DEFAULT_MODEL = "models/demo"


@st.cache_resource(show_spinner="Loading the model ...")
def _session(model: str):
    from compute.loading import load_model
    return load_model(model)


st.title("Live inference")
model = st.query_params.get("model") or os.environ.get("MGV_MODEL", DEFAULT_MODEL)
st.caption(f"Model: `{model}` (set `?model=` in the URL or MGV_MODEL). Nothing here is written to the store.")

source = st.radio("Image", ["Upload", "From the selected run"], horizontal=True)
image = None
if source == "Upload":
    upload = st.file_uploader(f"PNG, JPEG or DICOM, up to {MAX_UPLOAD_BYTES // 2**20} MiB (judged by content)")
    if upload is not None:
        try:
            image = load_upload(upload.getvalue(), upload.name)
        except ImageLoadError as exc:
            st.error(str(exc))
else:
    db, run_id = st.session_state["db"], st.session_state.get("run_id")
    items = data.mapped_items(db, run_id) if run_id else pd.DataFrame()
    if items.empty:
        st.info("The selected run has no images to pick from.")
    else:
        image_id = st.selectbox("Image of the run", sorted(items.image_id.unique()))
        path = data.image_file(db, run_id, image_id)
        try:
            image = load_image(path) if path is not None else None
        except ImageLoadError as exc:
            st.error(str(exc))

question = st.text_input("Question", "Is there pleural effusion?")
left, middle, right = st.columns(3)
method = left.selectbox("Map", ["attention", "gradcam"])
layers = middle.text_input("Decoder layers", "all", help="'2,7,12', 'all', 'last:4' or 'full'")
colormap = right.selectbox("Colormap", COLORMAPS)

if image is not None and question.strip() and st.button("Ask", type="primary"):
    session = _session(model)
    try:
        result = session.ask(image, question, method=method, layers=layers if method == "attention" else None)
    except (ValueError, MapUnavailableError) as exc:
        st.error(str(exc))
    else:
        a, b, c = st.columns(3)
        a.metric("Answer", result.answer)
        b.metric("P(yes)", f"{result.p_yes:.3f}")
        c.metric("Reply", result.text or "(empty)")
        shape = result.grid_shape
        st.image(overlay(image, result.map.mean, colormap=colormap, size=512),
                 caption=f"{result.map.method}, layers {list(result.map.layers)}; the patient's right is on the "
                         "image's left")
        if result.map.fallback_reason:
            st.warning(f"Fell back to {result.map.method}: {result.map.fallback_reason}")
        metrics = attention_metrics(result.map.mean, mask_to_grid(body_mask(image), shape))
        st.dataframe(pd.DataFrame({"metric": list(metrics), "value": list(metrics.values())}), hide_index=True)
