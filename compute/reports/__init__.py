"""Reports: headline figures and tables from the store's counts and rows (pure DataFrame functions)."""

from compute.reports.accuracy import overall_accuracy, with_accuracy
from compute.reports.phrasing import ReportError, phrasing_report, to_markdown
from compute.reports.run_report import accuracy_report, report_markdown, run_report

__all__ = ["ReportError", "accuracy_report", "overall_accuracy", "phrasing_report", "report_markdown", "run_report",
           "to_markdown", "with_accuracy"]
