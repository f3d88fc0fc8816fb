"""The headline figures as Altair charts, built from the report's tables: the dashboard shows them
and the HTML report embeds them. Pure: DataFrames in, chart specs out."""

from __future__ import annotations

import json
import math

import altair as alt
import pandas as pd

EXPORT_WIDTH = 640  # pixels, for charts whose width follows the page


def spec_json(chart: alt.TopLevelMixin, width: int = EXPORT_WIDTH) -> str:
    """The chart's Vega-Lite spec as strict JSON (NaN and infinities as null, which Altair would
    write as bare NaN), with a fixed `width` where it had none (concatenations keep theirs): what
    vl-convert renders to SVG and PNG."""
    if isinstance(chart, alt.Chart | alt.LayerChart) and chart.width is alt.Undefined:
        chart = chart.properties(width=width)
    return json.dumps(_finite(chart.to_dict()), allow_nan=False)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def accuracy_chart(split: pd.DataFrame, order: list[str] | None = None) -> alt.LayerChart:
    """Accuracy per condition split by ground truth, with 95% Wilson whiskers and n on top; `split`
    is compute.reports.with_accuracy of store.queries.condition_counts without the "all" rows."""
    base = alt.Chart(split).encode(
        x=alt.X("condition:N", title=None, sort=order,
                axis=alt.Axis(labelAngle=-30, labelLimit=200, labelOverlap=False)),
        xOffset=alt.XOffset("ground_truth:N", sort=["yes", "no"]),
        color=alt.Color("ground_truth:N", title="Ground truth", sort=["yes", "no"]),
        tooltip=["condition", "ground_truth", "n", "n_correct", alt.Tooltip("accuracy:Q", format=".1%"),
                 alt.Tooltip("ci_low:Q", format=".1%"), alt.Tooltip("ci_high:Q", format=".1%")],
    )
    bars = base.mark_bar().encode(y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"),
                                          title="Accuracy"))
    whiskers = base.mark_rule(color="black").encode(y="ci_low:Q", y2="ci_high:Q")
    labels = base.mark_text(dy=-6, baseline="bottom").encode(y="ci_high:Q", text="n:Q")
    return bars + whiskers + labels


CURVE_COLOURS = alt.Scale(scheme="tableau10")  # distinct hues: curves are told apart by colour alone
_DIAGONAL = pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]})


def _diagonal() -> alt.Chart:
    return alt.Chart(_DIAGONAL).mark_line(color="gray", strokeDash=[4, 4]).encode(x="x:Q", y="y:Q")


def reliability_chart(bins: pd.DataFrame) -> alt.LayerChart:
    """The reliability diagram: per curve, each non-empty bin's mean P(yes) against its observed
    share of "yes" (point size: n), over the diagonal of perfect calibration. `bins`: columns
    curve, mean_p_yes, observed_yes, n, lower, upper (compute.metrics.calibration.reliability_bins)."""
    filled = bins[bins["n"] > 0]
    unit = alt.Scale(domain=[0, 1])
    curves = alt.Chart(filled).mark_line(point=True).encode(
        x=alt.X("mean_p_yes:Q", scale=unit, title="Mean P(yes) in the bin"),
        y=alt.Y("observed_yes:Q", scale=unit, title="Share whose truth is yes"),
        color=alt.Color("curve:N", title=None, scale=CURVE_COLOURS),
        tooltip=["curve", "lower", "upper", "n", alt.Tooltip("mean_p_yes:Q", format=".3f"),
                 alt.Tooltip("observed_yes:Q", format=".3f")])
    sized = alt.Chart(filled).mark_circle().encode(
        x="mean_p_yes:Q", y="observed_yes:Q", color=alt.Color("curve:N", scale=CURVE_COLOURS),
        size=alt.Size("n:Q", title="Items in the bin"))
    return (_diagonal() + curves + sized).properties(height=360)


def roc_chart(curves: pd.DataFrame, points: pd.DataFrame | None = None) -> alt.LayerChart:
    """ROC curves (columns curve, fpr, tpr, threshold) over the chance diagonal, with optional
    `points` (curve, fpr, tpr): where a chosen threshold puts each curve."""
    unit = alt.Scale(domain=[0, 1])
    shown = curves.assign(threshold=curves["threshold"].where(curves["threshold"] <= 1))  # +inf: no threshold
    lines = alt.Chart(shown).mark_line(interpolate="linear").encode(
        x=alt.X("fpr:Q", scale=unit, title="False-positive rate (1 - specificity)"),
        y=alt.Y("tpr:Q", scale=unit, title="True-positive rate (sensitivity)"),
        color=alt.Color("curve:N", title=None, scale=CURVE_COLOURS), order="order:Q",
        tooltip=["curve", alt.Tooltip("threshold:Q", format=".3f"), alt.Tooltip("fpr:Q", format=".3f"),
                 alt.Tooltip("tpr:Q", format=".3f")]).transform_window(order="row_number()", groupby=["curve"])
    chart = _diagonal() + lines
    if points is not None and not points.empty:
        chart += alt.Chart(points).mark_point(size=120, filled=True, shape="diamond").encode(
            x="fpr:Q", y="tpr:Q", color=alt.Color("curve:N", scale=CURVE_COLOURS), tooltip=["curve", "fpr", "tpr"])
    return chart.properties(height=360)
