"""Reports: headline figures and tables from the store's counts and rows (pure DataFrame functions)."""

from compute.reports.accuracy import overall_accuracy, with_accuracy
from compute.reports.phrasing import ReportError, phrasing_report, to_markdown

__all__ = ["ReportError", "overall_accuracy", "phrasing_report", "to_markdown", "with_accuracy"]
