"""Compare two or three runs on the items they share: accuracy per condition, the pairs'
tests and agreement, the items they answer differently (each with both runs' maps), and the
phrasing figures side by side. The runs (?runs=A&runs=B) and the item (?item=) live in the URL."""

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from compute.facade import CompareError, RunTables, align, compare_report, map_similarity
from dashboard import data
from dashboard.charts import show_chart
from dashboard.overlay import overlay
from dashboard.run_images import run_image
from dashboard.safe_text import escape_markdown as esc
from dashboard.safe_text import shorten
from dashboard.views.common import require_run, show_error

METHOD = "attention"  # the maps shown and compared: each item's mean over layers, else its lowest layer
PERCENT = ("accuracy", "ci_low", "ci_high", "difference", "agreement")


def pick_runs(run_ids: list[str]) -> list[str]:
    """Two or three runs, from ?runs=… (else the two newest); the choice goes back to the URL."""
    asked = st.query_params.get_all("runs")
    wanted = [r for r in dict.fromkeys(asked) if r in run_ids][:3]
    unknown = [r for r in asked if r not in run_ids]
    if unknown:
        st.warning(f"The link names {esc(shorten(', '.join(map(repr, unknown))))}, which this database does "
                   "not hold.")
    chosen = st.multiselect("Runs to compare (two or three)", run_ids, default=wanted or run_ids[:2],
                            max_selections=3, key="compare_runs")
    st.query_params["runs"] = chosen
    return chosen


def accuracy_table(report: dict) -> pd.DataFrame:
    rows = []
    for run in report["runs"]:
        for condition, block in [("overall", run["overall"]), *run["by_condition"].items()]:
            rows.append({"condition": condition, "run": run["run"], **block})
    return pd.DataFrame(rows)


def pair_table(report: dict) -> pd.DataFrame:
    rows = []
    for pair in report["pairs"]:
        first, second = pair["runs"]
        for condition, b in [("overall", pair["overall"]), *pair["by_condition"].items()]:
            rows.append({"first": first, "second": second, "condition": condition, "n": b["n"],
                         "difference": b["difference"], "right only in first": b["right_only"][first],
                         "right only in second": b["right_only"][second], "McNemar p": b["mcnemar_p"],
                         "p (Holm)": b.get("mcnemar_p_holm"), "agreement": b["agreement"], "kappa": b["kappa"],
                         "kappa (yes/no)": b["kappa_decided"], "Pearson P(yes)": b["pearson_p_yes"],
                         "n P(yes)": b["n_p_yes"]})
    return pd.DataFrame(rows)


def item_table(aligned, runs: list[str]) -> pd.DataFrame:
    """One row per shared item, keyed by the first run's item id; `differ`: the answers differ."""
    table = aligned.items[["condition", "question", "ground_truth"]].copy()
    table.insert(0, "item", aligned.per_run[runs[0]]["item_id"].to_numpy())
    for run in runs:
        rows = aligned.per_run[run]
        table[f"answer · {run}"] = rows["answer"].to_numpy()
        table[f"P(yes) · {run}"] = rows["p_yes"].to_numpy(dtype=float)
    answers = table[[f"answer · {r}" for r in runs]]
    table["differ"] = answers.nunique(axis=1) > 1
    return table


def accuracy_chart(table: pd.DataFrame, runs: list[str]) -> alt.LayerChart:
    order = ["overall", *sorted(set(table.condition) - {"overall"})]
    base = alt.Chart(table).encode(
        x=alt.X("condition:N", title=None, sort=order, axis=alt.Axis(labelAngle=-30, labelLimit=200,
                                                                      labelOverlap=False)),
        xOffset=alt.XOffset("run:N", sort=runs), color=alt.Color("run:N", title="Run", sort=runs),
        tooltip=["run", "condition", "n", "n_correct", alt.Tooltip("accuracy:Q", format=".1%"),
                 alt.Tooltip("ci_low:Q", format=".1%"), alt.Tooltip("ci_high:Q", format=".1%")])
    bars = base.mark_bar().encode(y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"),
                                          title="Accuracy"))
    whiskers = base.mark_rule(color="black").encode(y="ci_low:Q", y2="ci_high:Q")
    return bars + whiskers


def pick_item(table: pd.DataFrame, runs: list[str]) -> str | None:
    """The item picked in the disagreement table, else the one ?item= names; back to the URL.
    Unpicking the row closes the item; one picked for other runs earlier is dropped silently."""
    key = "disagreements|" + "|".join(runs)
    shown = table[table["differ"]].drop(columns="differ")
    picked = []
    if not shown.empty:
        event = st.dataframe(shown, hide_index=True, on_select="rerun", selection_mode="single-row", key=key,
                             column_config={c: st.column_config.NumberColumn(format="%.3f")
                                            for c in shown.columns if c.startswith("P(yes)")})
        picked = event.selection.rows
    wanted = st.query_params.get("item")
    deselected = not picked and st.session_state.get("compare_picked") == key
    st.session_state["compare_picked"] = key if picked else None
    if picked:
        item = shown["item"].iloc[picked[0]]
    elif deselected:
        item = None
    elif wanted in set(table["item"]):
        item = wanted
    else:
        if wanted is not None and st.session_state.get("compare_item_runs") in (None, runs):
            st.warning(f"The link names the item {esc(shorten(repr(wanted)))}, which these runs do not share.")
        item = None
    if item is None:
        st.query_params.pop("item", None)
    else:
        st.query_params["item"] = item
        st.session_state["compare_item_runs"] = runs
    return item


def show_item(db, tables: list[RunTables], aligned, position: int) -> None:
    item = aligned.items.iloc[position]
    st.markdown(f"**{esc(item.question)}** · {esc(item.condition)} · truth {esc(item.ground_truth)}")
    grids = {}
    for column, run in zip(st.columns(len(tables)), tables, strict=True):
        row = aligned.per_run[run.run_id].iloc[position]
        with column:
            p_yes = "n/a" if pd.isna(row.p_yes) else f"{row.p_yes:.3f}"
            st.markdown(f"**{esc(run.run_id)}**: answer {esc(row.answer)} ({'right' if row.correct else 'wrong'}), "
                        f"P(yes) {p_yes}")
            if run.imported:
                st.info("Imported from another tool: no maps.")
                continue
            maps = data.summary_maps(db, run.run_id, METHOD, row.item_id)
            if maps.empty:
                st.info("This run stored no map for this item.")
                continue
            m = maps.iloc[0]
            grid = np.asarray(m.grid, dtype=np.float64).reshape(int(m.grid_rows), int(m.grid_cols))
            grids[run.run_id] = grid
            shown = run_image(db, run.run_id, row.item_id)
            if shown.image is None:
                st.warning(esc(shown.problem))
            else:
                layer = "mean over layers" if int(m.layer) == -1 else f"layer {int(m.layer)}"
                st.image(overlay(shown.image, grid, size=384),
                         caption=f"{METHOD}, {layer}, {int(m.grid_rows)}x{int(m.grid_cols)} grid")
            if shown.note:
                st.caption(esc(shown.note))
    names = list(grids)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            s = map_similarity(grids[a], grids[b])
            r = "n/a" if s["pearson"] is None else f"{s['pearson']:.3f}"
            st.caption(f"{esc(a)} vs {esc(b)} on the common grid: JS divergence {s['js_divergence']:.3f}, "
                       f"Pearson {r}")
    if grids:
        st.caption("The patient's right is on the image's left.")


def phrasing_table(report: dict) -> pd.DataFrame | None:
    runs = [r for r in report["runs"] if r["phrasing"] is not None]
    if not runs:
        return None
    figures = list(dict.fromkeys(k for r in runs for k in r["phrasing"]))
    return pd.DataFrame({"figure": figures, **{r["run"]: [_text(r["phrasing"].get(f), f) for f in figures]
                                               for r in runs}})


def _text(value, figure: str) -> str:
    if value is None:
        return "n/a"
    if figure in ("baseline_accuracy", "flip_rate_mean"):
        return f"{value:.1%}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


st.title("Compare runs")
if require_run() is not None:
    db = st.session_state["db"]
    listed = data.list_runs(db)
    chosen = pick_runs(listed["run_id"].tolist())
    if len(listed) < 2:
        st.info("This database holds one run; comparing needs two or three.")
    elif len(chosen) < 2:
        st.info("Pick two or three runs.")
    else:
        info = listed.set_index("run_id")
        tables = [RunTables(r, str(info.loc[r, "study"]), str(info.loc[r, "model_id"]), data.compare_rows(db, r))
                  for r in chosen]
        try:
            aligned = align(tables)
            report = compare_report(tables)
        except CompareError as exc:
            show_error(exc)
        else:
            shared = report["shared"]
            st.caption(f"{shared['n_items']} items answered by every run, paired on {esc(shared['paired_on'])}. "
                       f"Left out because their ground truths differ: {shared['left_out_ground_truth_differs']}. "
                       "Answered but not shared: "
                       + ", ".join(f"{esc(k)} {v}" for k, v in shared["not_shared"].items()) + ".")
            st.subheader("Accuracy on the shared items")
            st.caption("Whiskers: 95% Wilson intervals. 'uncertain' answers count as wrong.")
            accuracy = accuracy_table(report)
            show_chart(accuracy_chart(accuracy, chosen), "_vs_".join(chosen), "compare_accuracy")
            st.dataframe(accuracy, hide_index=True, column_config={
                c: st.column_config.NumberColumn(format="percent") for c in ("accuracy", "ci_low", "ci_high")})

            st.subheader("Pairs")
            st.caption("Difference: the first run's accuracy minus the second's. Exact McNemar p on the items only "
                       "one run got right, Holm-adjusted across each pair's conditions. Kappa over yes / no / "
                       "uncertain; kappa (yes/no) on the items both runs answered yes or no.")
            st.dataframe(pair_table(report), hide_index=True, column_config={
                **{c: st.column_config.NumberColumn(format="percent") for c in ("difference", "agreement")},
                **{c: st.column_config.NumberColumn(format="%.2e") for c in ("McNemar p", "p (Holm)")},
                **{c: st.column_config.NumberColumn(format="%.3f")
                   for c in ("kappa", "kappa (yes/no)", "Pearson P(yes)")}})

            st.subheader("Where the answers differ")
            items = item_table(aligned, chosen)
            if not items["differ"].any():
                st.info("The runs give the same answer to every shared item.")
            else:
                st.caption(f"{int(items['differ'].sum())} of {len(items)} shared items. Pick a row to see the item "
                           "with each run's map.")
            item = pick_item(items, chosen)
            if item is not None:
                show_item(db, tables, aligned, int(np.flatnonzero(items["item"].to_numpy() == item)[0]))

            phrasing = phrasing_table(report)
            if phrasing is not None:
                st.subheader("Phrasing, on the shared groups")
                st.caption("Group consistency: the share of a group's answers equal to its majority answer; flip "
                           "rate: the share of its variants answered unlike its baseline.")
                st.dataframe(phrasing, hide_index=True)
