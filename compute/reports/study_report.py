"""A run's study report gathered from the store, as the CLI's `report` and the dashboard's
download both write it (JSON, Markdown or the one-file HTML page)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from compute.reports.run_report import calibration_report, report_markdown, run_report

FORMATS = ("md", "json", "html")


@dataclass(frozen=True)
class StudyReport:
    report: dict[str, Any]  # run_report's keys, and `calibration` (calibration_report)
    counts: pd.DataFrame  # store.queries.condition_counts
    probabilities: pd.DataFrame  # store.slices.probability_rows
    overview: dict[str, Any]  # store.queries.run_overview


def gather(db: str | Path, run_id: str) -> StudyReport:
    """Everything the report shows of `run_id`; RunNotFoundError, StoreError or ReportError when
    it cannot be read."""
    from store import queries, slices
    queries.require_run(db, run_id)
    overview = queries.run_overview(db, run_id)
    rows = queries.phrasing_rows(db, run_id)
    counts = queries.condition_counts(db, run_id)
    report = run_report(counts, rows, queries.attention_changes(db, run_id) if not rows.empty else None, run_id,
                        study=overview["study"], n_failed=overview["n_failed"],
                        agreement=queries.answer_agreement(db, run_id), methods=queries.method_figures(db, run_id))
    probabilities, n_without = slices.probability_rows(db, run_id)
    report["calibration"] = calibration_report(probabilities, n_without)
    return StudyReport(report, counts, probabilities, overview)


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
