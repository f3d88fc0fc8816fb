import json

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.overlay import COLORMAPS, SINK_COLOUR, cell_mask, outline, overlay
from dashboard.run_images import run_image
from dashboard.safe_text import escape_markdown as esc
from dashboard.views.common import require_run, url_selectbox
from compute.facade import stored_lesion
from vocabulary import FAITHFULNESS_METRICS, LESION_METRICS, MAP_METRICS, MEAN_LAYER, Method

METRICS = [*MAP_METRICS, *FAITHFULNESS_METRICS, *LESION_METRICS, "sink_mass"]
FIGURES = ("image_reliance", "blank_image_reliance", "log_odds", "forward_passes")  # from a map's details
PROVENANCE = ["method", "requested_method", "fallback_reason", "layers", "heads", "query", "query_positions",
              "term", "strip_border", "attn_implementation", "model_id", "image_height", "image_width",
              "grid_rows", "grid_cols"]


def _label(row: pd.Series) -> str:
    mark = "✓" if row.correct else "✗"
    return f"{mark} {row.question}  ({row.condition}, truth {row.ground_truth}, answer {row.answer})"


def _method_order(method: str) -> int:
    order = list(Method)  # attention, token, gradcam, activation, then the methods beyond attention
    return order.index(method) if method in order else len(order)


def _details(row: pd.Series) -> dict:
    """The map's details (JSON): the method's parameters and figures; {} for maps stored without them."""
    text = row.get("details")
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


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
        details = _details(row)
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
                sinks = details.get("sink_cells") or []
                if sinks:
                    picture = outline(picture, cell_mask(sinks, grid.shape, shown.image.size), colour=SINK_COLOUR)
                    caption += (f" Magenta: {len(sinks)} attention-sink cells"
                                f"{' (masked)' if details.get('sinks_masked') else ''}.")
                st.image(picture, caption=caption)
            else:
                st.warning(esc(shown.problem))
            if shown.note:
                st.warning(esc(shown.note))
            st.caption(f"P(yes) {item.p_yes:.3f} · truth {esc(item.ground_truth)} · answer {esc(item.answer)}")
        with right:
            if details.get("no_supporting_region"):
                st.info("No region supports the answer: blocking any one region moved the log-odds toward it or "
                        "not at all, so the map is uniform. See image_reliance and the blank-image control.")
            if isinstance(row.fallback_reason, str) and row.fallback_reason:
                st.warning(f"Asked for {esc(row.requested_method)}; fell back to {esc(row.method)}: "
                           f"{esc(row.fallback_reason)}")
            values = {**{m: row.get(m) for m in METRICS}, **{f: details.get(f) for f in FIGURES}}
            metrics = pd.DataFrame({"metric": list(values), "value": list(values.values())}).dropna()
            st.dataframe(metrics, hide_index=True)
            if isinstance(row.get("metrics_note"), str) and row.metrics_note:
                st.caption(esc(row.metrics_note))
        heads = data.item_head_maps(db, run_id, item_id, method, layer) if layer != MEAN_LAYER else None
        if heads is not None and not heads.empty and shown.image is not None:
            with st.expander(f"Heads of {_layer_name(layer)} ({len(heads)})"):
                columns = st.columns(4)
                for k, head in enumerate(heads.itertuples()):
                    shape = (int(head.grid_rows), int(head.grid_cols))
                    head_grid = np.asarray(head.grid, dtype=np.float64).reshape(shape)
                    columns[k % 4].image(overlay(shown.image, head_grid, opacity=opacity, colormap=colormap, size=160),
                                         caption=f"head {head.head}")
        with st.expander("Provenance"):
            st.json({**{k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row[PROVENANCE].items()},
                     "details": details})
