import altair as alt
import streamlit as st

from compute.facade import by_change_type, change_tests
from dashboard import data
from dashboard.overlay import overlay
from dashboard.run_images import run_image
from dashboard.safe_text import escape_markdown as esc
from dashboard.views.common import require_run, url_multiselect
from vocabulary import AnswerChange

CHANGES = [str(c) for c in (AnswerChange.YES_TO_NO, AnswerChange.NO_TO_YES, AnswerChange.OTHER,
                            AnswerChange.UNCHANGED)]  # the order the chart and the filter show
GALLERY_SIZE = 6


st.title("Attention changes")
selection = require_run()
if selection is not None:
    db, run_id = selection
    changes = data.attention_changes(db, run_id)
    if changes.empty:
        st.info("This run stored no attention comparisons. A phrasing run with maps stores them: "
                "`python -m compute run --study phrasing ...`.")
    else:
        st.caption("Each variant's attention map compared with its group's baseline map (same image). "
                   "JS divergence is base 2, in [0, 1].")
        summary = by_change_type(changes)
        distribution = alt.Chart(changes).mark_boxplot(extent="min-max").encode(
            x=alt.X("answer_change:N", title="Answer change", sort=CHANGES, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("js_divergence:Q", title="JS divergence from the baseline map"),
            color=alt.Color("answer_change:N", legend=None, sort=CHANGES))
        st.altair_chart(distribution, width="stretch")
        st.dataframe([{"change": k, **v} for k, v in summary.items()], hide_index=True)
        for name, test in change_tests(changes).items():
            p = "n/a (a side is empty)" if test["p_value"] is None else f"{test['p_value']:.3g}"
            st.markdown(f"Mann–Whitney U, {name}: n = {test['n_a']} vs {test['n_b']}, p = {p}")

        st.subheader("Gallery")
        left, right = st.columns(2)
        with left:
            conditions = url_multiselect("Condition", sorted(changes.condition.dropna().unique()), "condition")
            categories = url_multiselect("Strategy category", sorted(changes.strategy_category.dropna().unique()), "category")
        with right:
            kinds = url_multiselect("Answer change", [c for c in CHANGES if c in set(changes.answer_change)], "change")
            correctness = url_multiselect("Variant answer", ["correct", "wrong"], "correctness")
        shown = changes[changes.condition.isin(conditions) & changes.strategy_category.isin(categories)
                        & changes.answer_change.isin(kinds)
                        & changes.correct.map({True: "correct", False: "wrong"}).isin(correctness)]
        st.caption(f"{len(shown)} variants match; the {min(GALLERY_SIZE, len(shown))} whose attention moved most "
                   "are shown. Difference: red where the variant looks more, blue where it looks less.")
        for _, row in shown.head(GALLERY_SIZE).iterrows():
            st.markdown(f"**Variant:** {esc(row.question)} · **baseline:** {esc(row.baseline_question)}")
            st.caption(f"{esc(row.strategy)} · {esc(row.answer_change)} · answer {esc(row.answer)}, "
                       f"truth {esc(row.ground_truth)} · JS {row.js_divergence:.3f}")
            shown = run_image(db, run_id, row.item_id)
            if shown.image is None:
                st.warning(esc(shown.problem))
                continue
            if shown.note:
                st.caption(esc(shown.note))
            image = shown.image
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
