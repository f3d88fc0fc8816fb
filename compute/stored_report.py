"""The study report of a stored run, read from the store: what `python -m compute report` and the
dashboard's report download render (compute.reports.study_report)."""

from __future__ import annotations

from pathlib import Path

from compute.reports.run_report import calibration_report, run_report
from compute.reports.study_report import StudyReport


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
