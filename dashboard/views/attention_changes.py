import altair as alt
import streamlit as st

from dashboard import data
from dashboard.charts import show_chart
from dashboard.overlay import overlay
from dashboard.run_images import run_image
from dashboard.safe_text import escape_markdown as esc
from dashboard.views.common import require_run, url_multiselect
from vocabulary import AnswerChange

CHANGES = [str(c) for c in (AnswerChange.YES_TO_NO, AnswerChange.NO_TO_YES, AnswerChange.OTHER,
                            AnswerChange.UNCHANGED)]  # the order the chart and the filter show
GALLERY_SIZE = 6


def _box_plot(distribution) -> alt.Chart:
    """Min-to-max whiskers, quartile boxes and medians of JS divergence per answer change, drawn from
    their numbers (change_distribution), not from every comparison."""
    base = alt.Chart(distribution).encode(
        x=alt.X("answer_change:N", title="Answer change", sort=CHANGES, axis=alt.Axis(labelAngle=0)),
        color=alt.Color("answer_change:N", legend=None, sort=CHANGES),
        tooltip=["answer_change", "n", *(alt.Tooltip(f"{c}:Q", format=".3f") for c in
                                         ("min", "q1", "median", "q3", "max"))])
    whiskers = base.mark_rule().encode(y=alt.Y("min:Q", title="JS divergence from the baseline map"), y2="max:Q")
    boxes = base.mark_bar(size=40).encode(y="q1:Q", y2="q3:Q")
    medians = base.mark_tick(size=40, thickness=2, color="white").encode(y="median:Q")
    return whiskers + boxes + medians


st.title("Attention changes")
selection = require_run()
if selection is not None:
    db, run_id = selection
    summary = data.change_summary(db, run_id)
    if summary.n == 0:
        st.info("This run stored no attention comparisons. A phrasing run with maps stores them: "
                "`python -m compute run --study phrasing ...`.")
    else:
        st.caption("Each variant's attention map compared with its group's baseline map (same image). "
                   "JS divergence is base 2, in [0, 1].")
        show_chart(_box_plot(summary.distribution), run_id, "attention_change_distribution")
        st.dataframe([{"change": k, **v} for k, v in summary.by_change_type.items()], hide_index=True)
        for name, test in summary.tests.items():
            p = "n/a (a side is empty)" if test["p_value"] is None else f"{test['p_value']:.3g}"
            st.markdown(f"Mann–Whitney U, {name}: n = {test['n_a']} vs {test['n_b']}, p = {p}")

        st.subheader("Gallery")
        choices = data.change_choices(db, run_id)
        left, right = st.columns(2)
        with left:
            conditions = url_multiselect("Condition", choices["condition"], "condition")
            categories = url_multiselect("Strategy category", choices["strategy_category"], "category")
        with right:
            kinds = url_multiselect("Answer change", [c for c in CHANGES if c in set(choices["answer_change"])],
                                    "change")
            correctness = url_multiselect("Variant answer", ["correct", "wrong"], "correctness")
        matched, shown = data.change_gallery(db, run_id, conditions, categories, kinds,
                                             [c == "correct" for c in correctness], GALLERY_SIZE)
        st.caption(f"{matched} variants match; the {len(shown)} whose attention moved most "
                   "are shown. Difference: red where the variant looks more, blue where it looks less.")
        for _, row in shown.iterrows():
            st.markdown(f"**Variant:** {esc(row.question)} · **baseline:** {esc(row.baseline_question)}")
            st.caption(f"{esc(row.strategy)} · {esc(row.answer_change)} · answer {esc(row.answer)}, "
                       f"truth {esc(row.ground_truth)} · JS {row.js_divergence:.3f}")
            found = run_image(db, run_id, row.item_id)
            if found.image is None:
                st.warning(esc(found.problem))
                continue
            if found.note:
                st.caption(esc(found.note))
            image = found.image
            base = data.item_map(db, run_id, row.baseline_item_id, row.method, row.layer)
            variant = data.item_map(db, run_id, row.item_id, row.method, row.layer)
            difference = data.change_difference(db, run_id, row.item_id, row.method)
            a, b, c = st.columns(3)
            if base is not None:
                a.image(overlay(image, base, size=320), caption="baseline")
            if variant is not None:
                b.image(overlay(image, variant, size=320), caption="variant")
            if difference is not None:
                c.image(overlay(image, difference, size=320, colormap="coolwarm", signed=True), caption="difference")
