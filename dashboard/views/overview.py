import streamlit as st

from compute.facade import overall_accuracy, study_report_html
from dashboard import data
from dashboard.downloads import file_name
from dashboard.safe_text import escape_markdown as esc
from dashboard.views.common import require_run

st.title("Overview")
selection = require_run()
if selection is not None:
    db, run_id = selection
    o = data.overview(db, run_id)
    st.subheader(esc(run_id))
    c1, c2, c3, c4 = st.columns(4)
    accuracy, interval = overall_accuracy(o["n_correct"], o["n_done"])
    c1.metric("Accuracy", "–" if accuracy is None else f"{accuracy:.1%}",
              help="Share of answered questions whose extracted answer equals the ground truth; "
                   "'uncertain' counts as wrong.")
    c2.metric("Questions answered", f"{o['n_done']:,}")
    c3.metric("Failed items", f"{o['n_failed']:,}")
    c4.metric("Images", f"{o['n_images']:,}")
    agreement = data.answer_agreement(db, run_id)
    n_ok, n_compared = agreement["n_ok"], agreement["n_compared"]
    a1, a2 = st.columns(2)
    a1.metric("Answer agrees with P(yes)", f"{agreement['n_agree'] / n_compared:.1%}" if n_compared else "–",
              help="Share of yes/no answers whose extracted answer is 'yes' exactly when P(yes) ≥ 0.5 "
                   "(answers without a recorded P(yes) are left out).")
    a2.metric("Uncertain answers", f"{agreement['n_uncertain'] / n_ok:.1%}" if n_ok else "–",
              help="Share of answered questions whose reply read as neither yes nor no.")
    st.text(f"Extracted answer agrees with P(yes) on {agreement['n_agree']:,} of {n_compared:,} yes/no answers; "
            f"{agreement['n_uncertain']:,} of {n_ok:,} answers uncertain.")
    if interval is not None:
        low, high = interval
        mass = "n/a (not recorded)" if o["mean_yes_no_mass"] is None else f"{o['mean_yes_no_mass']:.3f}"
        st.caption(f"95% Wilson interval for accuracy: {low:.1%} – {high:.1%}. "
                   f"Uncertain answers: {o['n_uncertain']}. Mean yes+no probability mass: {mass}.")
    if o.get("error"):
        st.error(f"The run failed: {esc(o['error'])}")
    st.markdown(f"**Model** {esc(o['model_id'])} · **dataset** {esc(o['dataset'])} · **study** {esc(o['study'])} · "
                f"**status** {esc(o['status'])} · **device** {esc(o['device'])} ({esc(o['dtype'])})")
    with st.expander("Prompt, configuration and provenance"):
        st.caption("Instruction")
        st.code(o["instruction"] or "", language=None, wrap_lines=True)
        st.caption("System prompt")
        st.code(o["system_prompt"] or "(none)", language=None, wrap_lines=True)
        st.json({"config": o["config"], "model_revision": o["model_revision"],
                 "weights_fingerprint": o["weights_fingerprint"], "packages": o["package_versions"],
                 "started_at": str(o["started_at"]), "finished_at": str(o["finished_at"])})
    st.download_button("Download the study report (HTML)", lambda: study_report_html(db, run_id),
                       file_name=file_name(run_id, "report", "html"), mime="text/html", on_click="ignore",
                       help="One self-contained page: accuracy by condition, calibration and ROC, the phrasing "
                            "tables and attention change, with figures; the file `python -m compute report "
                            "--format html` writes")
    st.subheader("All runs")
    runs = data.list_runs(db)
    st.dataframe(runs, hide_index=True, column_config={
        "accuracy": st.column_config.NumberColumn(format="percent")})
