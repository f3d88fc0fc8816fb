"""Everything the dashboard uses from compute, and nothing else; importing it does not import torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from compute.data.images import ImageFile, ImageLoadError, read_image
from compute.data.lesions import lesion_pixels, parse_boxes
from compute.data.uploads import MAX_UPLOAD_BYTES, load_upload
from compute.metrics.attention import attention_metrics, metrics_without_body
from compute.metrics.calibration import at_threshold_by, curves_by
from compute.metrics.calibration import summary_by as calibration_summary_by
from compute.metrics.attention_change import by_change_type, change_distribution, change_tests
from compute.metrics.phrasing import accuracy_by
from compute.metrics.regions import body_cells
from compute.reports import ReportError, overall_accuracy, phrasing_report, with_accuracy
from compute.reports.figures import accuracy_chart, reliability_chart, roc_chart, spec_json
from compute.reports.compare import CompareError, RunTables, align, compare_report, map_similarity

if TYPE_CHECKING:  # these need torch: imported inside the functions below, when a model is used
    from PIL import Image

    from compute.answering import AskResult
    from compute.model.session import Session

__all__ = [
    "CompareError", "RunTables", "align", "compare_report", "map_similarity",
    # calibration and ROC, and the headline figures (pure)
    "at_threshold_by", "calibration_summary_by", "curves_by", "accuracy_chart", "reliability_chart", "roc_chart",
    "spec_json",
    # reports over a stored run (pure)
    "ReportError", "accuracy_by", "by_change_type", "change_distribution", "change_tests", "overall_accuracy",
    "phrasing_report", "study_report_html",
    "with_accuracy",
    # a stored run's images, and their findings' boxes and masks
    "ImageFile", "ImageLoadError", "read_image", "stored_lesion",
    # the Live page
    "InferenceError", "MAX_UPLOAD_BYTES", "ask", "question_term", "attention_metrics", "body_cells", "load_session", "load_upload",
    "metrics_without_body",
]


def study_report_html(db, run_id: str) -> str:
    """The one-file HTML study report of a stored run (what `python -m compute report --format html` writes)."""
    from compute.reports.study_report import render
    from compute.stored_report import gather
    return render(gather(db, run_id), "html")


def stored_lesion(boxes_json: str | None, mask: str | None, width: int, height: int):
    """A stored item's lesion as a (height, width) bool mask of its image, or None when it has
    no boxes or mask; ValueError (saying why) when they cannot be placed on it."""
    return lesion_pixels(parse_boxes(boxes_json), mask, width, height)


def question_term(question: str) -> str | None:
    """The words of a question that name its condition ("pleural effusion"), or None."""
    from compute.data.question_parser import UnparseableQuestionError, parse_question
    try:
        return parse_question(question).term
    except UnparseableQuestionError:
        return None


class InferenceError(RuntimeError):
    """The model cannot be loaded, or cannot answer this question about this image; the
    message says why (the original exception is its __cause__)."""


def load_session(model: str) -> Session:
    """The model (a local folder or a hub id) loaded on the default device. One Session may be
    shared between threads: `ask` takes turns on it."""
    from compute.model.loading import ModelNotAvailableError, load_model

    try:
        return load_model(model)
    except (ModelNotAvailableError, OSError, ValueError) as exc:  # e.g. a bad ?model=
        raise InferenceError(str(exc)) from exc


def ask(session: Session, image: Image.Image, question: str, *, method: str = "attention",
        layers: str | None = "all", term: str | None = None) -> AskResult:
    """compute.answering.ask, holding `session.lock` for the whole call (prompt checks,
    tokenizing, generation, maps, decoding), so the users of a shared Session take turns:
    attention capture and Grad-CAM switch the shared model's attention implementation and hooks."""
    from compute.answering import ask as ask_model
    from compute.maps import MapUnavailableError

    try:
        with session.lock:
            return ask_model(session, image, question, method=method, layers=layers, term=term)
    except (OSError, ValueError, MapUnavailableError) as exc:
        raise InferenceError(str(exc)) from exc
