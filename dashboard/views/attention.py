import numpy as np
import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.overlay import COLORMAPS, outline, overlay
from dashboard.run_images import run_image
from dashboard.safe_text import escape_markdown as esc
from dashboard.views.common import require_run, url_selectbox
from compute.facade import stored_lesion
from vocabulary import FAITHFULNESS_METRICS, LESION_METRICS, MAP_METRICS, MEAN_LAYER, Method

METRICS = [*MAP_METRICS, *FAITHFULNESS_METRICS, *LESION_METRICS]
PROVENANCE = ["method", "requested_method", "fallback_reason", "layers", "heads", "query", "query_positions",
              "term", "strip_border", "attn_implementation", "model_id", "image_height", "image_width",
              "grid_rows", "grid_cols"]


def _label(row: pd.Series) -> str:
    mark = "✓" if row.correct else "✗"
    return f"{mark} {row.question}  ({row.condition}, truth {row.ground_truth}, answer {row.answer})"


def _method_order(method: str) -> int:
    order = list(Method)  # attention, token, gradcam, activation
    return order.index(method) if method in order else len(order)


def _layer_name(layer: int) -> str:
    return "mean over layers" if layer == MEAN_LAYER else f"layer {layer}"


st.title("Attention")
selection = require_run()
if selection is not None:
    db, run_id = selection
    items = data.mapped_items(db, run_id)
    if items.empty:
        st.info("This run stored no maps. Run the study without `--no-maps` to get attention maps per prediction.")
    else:
        labels = dict(zip(items.item_id, (_label(r) for r in items.itertuples())))
        item_id = url_selectbox("Prediction", list(items.item_id), "item", format_func=labels.get)
        item = items.set_index("item_id").loc[item_id]
        maps = data.item_maps(db, run_id, item_id)
        left, right = st.columns([3, 2])
        with right:
            method = url_selectbox("Method", sorted(maps.method.unique(), key=_method_order), "method")
            of_method = maps[maps.method == method]
            layers = sorted(of_method.layer.unique(), key=lambda v: (v != MEAN_LAYER, v))
            layer = url_selectbox("Layer", layers, "layer", format_func=_layer_name)
            opacity = st.slider("Opacity", 0.0, 1.0, 0.5, 0.05)
            threshold = st.slider("Hide cells below this share of the peak", 0.0, 1.0, 0.0, 0.05)
            colormap = st.selectbox("Colormap", COLORMAPS)
        row = of_method[of_method.layer == layer].iloc[0]
        grid = np.asarray(row.grid, dtype=np.float64).reshape(int(row.grid_rows), int(row.grid_cols))
        with left:
            shown = run_image(db, run_id, item_id)
            if shown.image is not None:
                picture = overlay(shown.image, grid, opacity=opacity, threshold=threshold, colormap=colormap,
                                  size=512)
                caption = f"{esc(method)}, {_layer_name(layer)}. The patient's right is on the image's left."
                boxes, mask = data.item_lesion(db, item_id)
                try:
                    lesion = stored_lesion(boxes, mask, *shown.image.size)
                except ValueError as exc:
                    lesion = None
                    st.caption(f"The finding's outline cannot be drawn: {esc(str(exc))}")
                if lesion is not None and lesion.any():
                    picture = outline(picture, lesion)
                    caption += " Cyan: the finding's annotated boxes or mask."
                st.image(picture, caption=caption)
            else:
                st.warning(esc(shown.problem))
            if shown.note:
                st.warning(esc(shown.note))
            st.caption(f"P(yes) {item.p_yes:.3f} · truth {esc(item.ground_truth)} · answer {esc(item.answer)}")
        with right:
            if isinstance(row.fallback_reason, str) and row.fallback_reason:
                st.warning(f"Asked for {esc(row.requested_method)}; fell back to {esc(row.method)}: "
                           f"{esc(row.fallback_reason)}")
            metrics = pd.DataFrame({"metric": METRICS, "value": [row[m] for m in METRICS]}).dropna()
            st.dataframe(metrics, hide_index=True)
            if isinstance(row.get("metrics_note"), str) and row.metrics_note:
                st.caption(esc(row.metrics_note))
        with st.expander("Provenance"):
            st.json({k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row[PROVENANCE].items()})
