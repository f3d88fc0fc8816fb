"""The one-file HTML study report: the run report's headline tables (accuracy by condition with
intervals, calibration, the phrasing tables, attention change, maps by method) and figures as
inline SVG. Everything the store holds is escaped: user text is shown as text. No scripts, no
links, nothing fetched: the file opens offline and is safe to mail."""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any

import altair as alt
import pandas as pd
import vl_convert

from compute.metrics.calibration import curves_by
from compute.reports.accuracy import with_accuracy
from compute.reports.figures import accuracy_chart, reliability_chart, roc_chart, spec_json

FIGURE_WIDTH = 560
MAX_CURVES = 8

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; white-space: pre-wrap; }
th { background: #f3f3f3; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 0.5rem 1rem 0.5rem 0; } figcaption { font-size: 0.85rem; color: #555; }
.note { color: #555; font-size: 0.9rem; }
"""


def _text(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _cell(value: Any, form: str | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<td class="number">n/a</td>'
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"<td>{_text(value)}</td>"
    return f'<td class="number">{_text(format(value, form) if form else value)}</td>'


def _table(rows: list[dict[str, Any]], columns: dict[str, tuple[str, str | None]]) -> str:
    """`rows` under the headings of `columns` ({key: (heading, number format)})."""
    if not rows:
        return '<p class="note">None.</p>'
    head = "".join(f"<th>{_text(h)}</th>" for h, _ in columns.values())
    body = "".join("<tr>" + "".join(_cell(r.get(k), f) for k, (_, f) in columns.items()) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _labelled(table: dict[str, dict[str, Any]], label: str) -> list[dict[str, Any]]:
    return [{label: name, **values} for name, values in table.items()]


def _figure(chart: alt.TopLevelMixin, caption: str) -> str:
    drawing = vl_convert.vegalite_to_svg(spec_json(chart, FIGURE_WIDTH))
    return f"<figure>{drawing}<figcaption>{_text(caption)}</figcaption></figure>"


_ACCURACY = {"accuracy": ("accuracy", ".1%"), "ci_low": ("95% CI low", ".1%"), "ci_high": ("95% CI high", ".1%"),
             "n": ("n", None)}
_CALIBRATION = {"condition": ("condition", None), "n": ("n", None), "n_yes": ("truth yes", None),
                "ece": ("ECE", ".3f"), "brier": ("Brier", ".3f"), "auroc": ("AUROC", ".3f"),
                "auroc_low": ("95% CI low", ".3f"), "auroc_high": ("95% CI high", ".3f")}


def _accuracy_section(report: dict[str, Any], counts: pd.DataFrame) -> str:
    split = with_accuracy(counts[counts["ground_truth"] != "all"])
    parts = ["<h2>Accuracy by condition</h2>",
             _table(_labelled(report["accuracy_by_condition"], "condition"),
                    {"condition": ("condition", None), **_ACCURACY})]
    if not split.empty:
        parts.append(_figure(accuracy_chart(split), "Accuracy per condition by ground truth; whiskers: 95% Wilson "
                                                    "intervals; labels: n."))
    return "".join(parts)


def _calibration_section(report: dict[str, Any], probabilities: pd.DataFrame) -> str:
    calibration = report.get("calibration") or {}
    parts = ["<h2>Calibration and ROC</h2>"]
    if not calibration.get("by_condition"):
        why = ("the run stored no P(yes) (its answers were imported as text)" if calibration.get("n_without_p_yes")
               else "no yes/no question with a ground truth")
        return "".join([*parts, f'<p class="note">Not available: {_text(why)}.</p>'])
    parts.append('<p class="note">ECE over ten equal-width P(yes) bins; Brier: mean squared error of P(yes); '
                 "AUROC with its 95% stratified bootstrap interval (1,000 resamples).</p>")
    overall = {"condition": "(all)", **calibration["overall"]}
    parts.append(_table([overall, *_labelled(calibration["by_condition"], "condition")], _CALIBRATION))
    if calibration.get("n_without_p_yes"):
        parts.append(f'<p class="note">{calibration["n_without_p_yes"]} answered questions without a P(yes) are '
                     "left out.</p>")
    largest = probabilities["condition"].value_counts().index[:MAX_CURVES]
    bins, corners = curves_by(probabilities[probabilities["condition"].isin(largest)].assign(
        curve=lambda f: f["condition"].astype(str)), "curve")
    parts.append(_figure(reliability_chart(bins), "Reliability diagram per condition (point size: items in the bin)"))
    parts.append(_figure(roc_chart(corners), "ROC curve per condition"))
    return "".join(parts)


def _phrasing_section(report: dict[str, Any]) -> str:
    pct = ".1%"
    summary = [{"figure": "groups", "value": report["groups"]}, {"figure": "variants", "value": report["variants"]},
               {"figure": "baseline accuracy", "value": report["baseline_accuracy"]},
               {"figure": "mean group consistency", "value": report["consistency_mean"]},
               {"figure": "fully consistent groups", "value": report["fully_consistent_groups"]},
               {"figure": "groups with changes", "value": report["groups_with_changes"]},
               {"figure": "mean flip rate", "value": report["flip_rate_mean"]}]
    parts = ["<h2>Phrasing sensitivity</h2>", _table(summary, {"figure": ("", None), "value": ("", ".3g")}),
             "<h3>Accuracy by strategy</h3>",
             _table(_labelled(report["accuracy_by_strategy"], "strategy"), {"strategy": ("strategy", None),
                                                                            **_ACCURACY}),
             "<h3>Accuracy by category</h3>",
             _table(_labelled(report["accuracy_by_category"], "category"), {"category": ("category", None),
                                                                            **_ACCURACY}),
             "<h3>Each category against the baseline (exact McNemar, Holm-adjusted)</h3>",
             _table(report["mcnemar_vs_baseline"], {
                 "category": ("category", None), "n_pairs": ("pairs", None),
                 "baseline_right_variant_wrong": ("baseline right, variant wrong", None),
                 "baseline_wrong_variant_right": ("baseline wrong, variant right", None),
                 "p_value": ("p", ".3g"), "p_holm": ("p (Holm)", ".3g")}),
             "<h3>Most sensitive groups</h3>",
             _table(report["most_sensitive_groups"], {"group_id": ("group", None), "condition": ("condition", None),
                                                      "consistency": ("consistency", ".2f"),
                                                      "flip_rate": ("flip rate", pct), "n": ("n", None)})]
    if report.get("attention_change"):
        parts += ["<h2>Attention change against the baseline map</h2>",
                  _table(_labelled(report["attention_change"], "change"), {
                      "change": ("answer change", None), "n": ("n", None),
                      "js_divergence_mean": ("JS divergence, mean", ".3f"), "js_divergence_std": ("SD", ".3f"),
                      "pearson_mean": ("Pearson, mean", ".3f"), "cosine_mean": ("cosine, mean", ".3f")}),
                  "<p class=\"note\">Mann–Whitney U on the JS divergence (two-sided).</p>",
                  _table(_labelled(report["attention_change_tests"], "test"), {
                      "test": ("test", None), "n_a": ("n (a)", None), "n_b": ("n (b)", None),
                      "p_value": ("p", ".3g")})]
    return "".join(parts)


def _methods_section(report: dict[str, Any]) -> str:
    if not report.get("maps_by_method"):
        return ""
    return "<h2>Maps by method</h2>" + _table(report["maps_by_method"], {
        "method": ("method", None), "condition": ("condition", None), "n": ("n", None),
        "n_lesion": ("with lesion", None), "hit_rate": ("pointing game", ".0%"),
        "lesion_ratio": ("in-lesion mass", ".2f"), "deletion_ratio": ("deletion ratio", ".2f"),
        "sink_mass": ("sink mass", ".3f")})


def html_report(report: dict[str, Any], counts: pd.DataFrame, probabilities: pd.DataFrame,
                overview: dict[str, Any] | None = None) -> str:
    """The report page. `report`: compute.reports.run_report with its `calibration` key
    (calibration_report); `counts`: store.queries.condition_counts; `probabilities`:
    store.slices.probability_rows; `overview`: store.queries.run_overview, for the model and dates."""
    overview = overview or {}

    def pct(x):
        return "n/a" if x is None else f"{x:.1%}"

    facts = [("run", report["run"]), ("study", report.get("study")), ("model", overview.get("model_id")),
             ("answered", report["n"]), ("failed", report.get("n_failed")),
             ("accuracy", f"{pct(report['accuracy'])} (95% CI {pct(report['ci_low'])} – {pct(report['ci_high'])})")]
    head = "".join(f"<tr><th>{_text(k)}</th><td>{_text(v)}</td></tr>" for k, v in facts if v is not None)
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"<h1>Study report: {_text(report['run'])}</h1>", f"<table>{head}</table>",
            f'<p class="note">Written by MedGemma Visualizer on {made}.</p>',
            _accuracy_section(report, counts), _calibration_section(report, probabilities)]
    if "groups" in report:
        body.append(_phrasing_section(report))
    body.append(_methods_section(report))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">"
            f"<title>Study report: {_text(report['run'])}</title><style>{_STYLE}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")
