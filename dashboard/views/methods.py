"""Which map should I trust? The faithfulness table of every map method on the demo model
(`python -m compute demo-faithfulness --json benchmarks/faithfulness-demo.json`), the same figures
for the selected run where its items have lesion boxes or masks, and, in plain words, which
method answers which question."""

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.views.common import require_run

TABLE = Path(__file__).resolve().parents[2] / "benchmarks" / "faithfulness-demo.json"

GUIDE = """
- **Where does the answer come from?** Use **knockout**: it blocks the answer's attention to each
  region and measures the change in the answer's log-odds, so a region with weight changed the
  answer. Its *image reliance* says how much the answer rests on the image at all, and the
  blank-image figure is the control: a model whose answer moves as much on a blank image leans on
  its language prior. It costs a forward row per region.
- **Which patches push the answer toward yes?** Use **relevancy** (gradients of the yes-minus-no
  logit times attention, propagated through every layer): specific to this question and image, one
  forward and one backward pass. For a "no" answer its map shows what argued for yes; knockout is
  signed toward the answer the model gave.
- **Where does the model look for this question, beyond where it always looks?** Use **relative**:
  the question's attention divided by the attention under a generic prompt cancels the patches that
  draw attention whatever is asked (attention sinks among them).
- **Where is the finding in the image, as the model represents it?** Use the **logit lens**: the
  probability of the condition's name read from each image token's hidden state.
- **Raw attention** is cheap and read in the answer's own pass, but it is not causal, and on
  Gemma-3 and PaliGemma image tokens attend to each other, so late layers mix patches. Check it
  against one of the above before you publish it. **Grad-CAM** reads the vision tower, not the
  language model.
- Trust a method for a finding where its deletion ratio is above 1 and its correlation with the
  randomised model's map is low; the pointing game and in-lesion mass say whether it lands on the
  annotated finding.
"""

st.title("Methods")
st.markdown(GUIDE)
st.subheader("On the demo model")
if TABLE.is_file():
    report = json.loads(TABLE.read_text(encoding="utf-8"))
    st.caption("Synthetic X-rays showing the finding, with its mask. deletion: the change in log-odds blurring the "
               "map's top 10% of cells over blurring random cells (median; above 1, the map's cells matter more); "
               "hit: the map's peak on the lesion; lesion: mass on the lesion over its share of the body (above 1, "
               "more than uniform); rand. r: correlation with a weight-randomised model's map (low is good); "
               "seconds per item to make the map on 2 CPU cores. The demo model was trained on these synthetic "
               "findings, so its raw attention does look at them: how the methods rank here need not carry over "
               "to MedGemma; run the same figures on your own boxes (below).")
    st.dataframe(pd.DataFrame(report["summary"]), hide_index=True, column_config={
        "hit_rate": st.column_config.NumberColumn(format="percent")})
    with st.expander("Per condition"):
        st.dataframe(pd.DataFrame(report["rows"]), hide_index=True)
else:
    st.info("No faithfulness table yet: "
            "`python -m compute demo-faithfulness --json benchmarks/faithfulness-demo.json`.")

selection = require_run()
if selection is not None:
    db, run_id = selection
    st.subheader("On this run")
    figures = data.method_figures(db, run_id)
    if figures.empty:
        st.info("This run stored no maps of a method with these figures.")
    else:
        st.caption("Over each item's summary map. The pointing game and in-lesion mass need items with boxes or "
                   "a mask; the deletion ratio needs --deletion; the sink mass --sink-factor.")
        st.dataframe(figures, hide_index=True, column_config={
            "hit_rate": st.column_config.NumberColumn(format="percent")})
