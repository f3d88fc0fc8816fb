"""A run's study report as the CLI's `report` and the dashboard's download write it: JSON,
Markdown or the one-file HTML page. Pure: compute.stored_report gathers it from the store."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from compute.reports.run_report import report_markdown

FORMATS = ("md", "json", "html")


@dataclass(frozen=True)
class StudyReport:
    report: dict[str, Any]  # run_report's keys, and `calibration` (calibration_report)
    counts: pd.DataFrame  # store.queries.condition_counts
    probabilities: pd.DataFrame  # store.slices.probability_rows
    overview: dict[str, Any]  # store.queries.run_overview


def render(study: StudyReport, form: str) -> str:
    """The report as text in `form` (one of FORMATS)."""
    if form == "json":
        return json.dumps(study.report, indent=1) + "\n"
    if form == "html":
        from compute.reports.html_report import html_report
        return html_report(study.report, study.counts, study.probabilities, study.overview)
    if form == "md":
        return report_markdown(study.report)
    raise ValueError(f"unknown report format {form!r}; one of {', '.join(FORMATS)}")
