"""Plain rows the writer accepts. The store knows these shapes, not how they were made."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from collections.abc import Sequence
from typing import Any


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    study: str
    dataset: str
    model_id: str
    config: dict[str, Any]  # everything that determines the results; compared on resume
    package_versions: dict[str, str]
    manifest_path: str | None = None
    model_revision: str | None = None
    weights_fingerprint: str | None = None
    device: str | None = None
    dtype: str | None = None
    seed: int | None = None
    instruction: str | None = None
    system_prompt: str | None = None
    n_items: int | None = None
    image_root: str | None = None  # absolute: where the dashboard finds the run's images from any folder


def image_key(sha256: str, path: str) -> str:
    """The key of one file content at one place: the same bytes at another path, or other
    bytes at the same path, are another image."""
    return hashlib.sha256(f"{sha256}\x1f{path}".encode("utf-8", "surrogateescape")).hexdigest()[:32]


@dataclass(frozen=True)
class ImageRecord:
    """One image file as a run read it (table image_files)."""

    image_key: str
    sha256: str  # of the bytes the model was shown
    path: str  # absolute, resolved
    width: int | None = None
    height: int | None = None
    format: str | None = None

    @classmethod
    def of(cls, sha256: str, path: str, width: int | None = None, height: int | None = None,
           format: str | None = None) -> ImageRecord:
        return cls(image_key(sha256, path), sha256, path, width, height, format)


@dataclass(frozen=True)
class QuestionRecord:
    item_id: str
    dataset: str
    image_id: str | None
    question: str | None
    ground_truth: str | None
    condition: str | None
    group_id: str | None = None
    variant_index: int | None = None
    strategy: str | None = None
    location: str | None = None
    baseline_question: str | None = None
    strategy_category: str | None = None
    answer_inverted: bool | None = None
    transformation: str | None = None
    view: str | None = None
    split: str | None = None
    source: str | None = None
    attributes: str | None = None  # JSON text of an object: the row's other columns
    boxes: str | None = None  # JSON text of a list of boxes
    mask: str | None = None


@dataclass(frozen=True)
class PredictionRecord:
    run_id: str
    item_id: str
    row_number: int | None  # the item's row in this run's manifest
    status: str  # "ok" | "failed"
    error: str | None = None
    generated_text: str | None = None
    answer: str | None = None
    p_yes: float | None = None
    yes_no_mass: float | None = None
    correct: bool | None = None
    latency_s: float | None = None
    created_at: datetime = field(default_factory=datetime.now)
    image_key: str | None = None  # the image_files row it was computed on; None when no image was read


@dataclass(frozen=True)
class MapRecord:
    """One attention (or Grad-CAM / activation) grid of one prediction, with its provenance
    and metrics. `layer` -1 is the mean over `layers`."""

    run_id: str
    item_id: str
    method: str
    layer: int
    requested_method: str
    fallback_reason: str | None
    layers: list[int]
    heads: str | None
    query: str | None
    query_positions: list[int] | None
    term: str | None
    strip_border: int
    attn_implementation: str | None
    model_id: str | None
    image_height: int | None
    image_width: int | None
    grid_rows: int
    grid_cols: int
    grid: Sequence[float]  # row-major: a list, or a 1-D float array
    inside_body_ratio: float | None = None
    border_fraction: float | None = None
    attention_entropy: float | None = None
    normalized_entropy: float | None = None
    focus_score: float | None = None
    peak_to_average: float | None = None
    sparsity: float | None = None
    right_lung_fraction: float | None = None
    left_lung_fraction: float | None = None
    apical_fraction: float | None = None
    middle_fraction: float | None = None
    basal_fraction: float | None = None
    deletion_delta: float | None = None
    random_delta: float | None = None
    faithfulness_ratio: float | None = None
    metrics_note: str | None = None  # why some metrics are None (e.g. the image is too small for a body mask)
    lesion_hit: bool | None = None  # None: the item has no boxes or mask
    lesion_attention_ratio: float | None = None
    sink_mass: float | None = None  # None: sinks not looked for
    details: str | None = None  # JSON: the method's parameters and figures


@dataclass(frozen=True)
class HeadMapRecord:
    """One attention head's map of one layer of one prediction (--heads all)."""

    run_id: str
    item_id: str
    method: str
    layer: int
    head: int
    grid_rows: int
    grid_cols: int
    grid: Sequence[float]  # row-major: a list, or a 1-D float array


@dataclass(frozen=True)
class AttentionChangeRecord:
    run_id: str
    item_id: str
    baseline_item_id: str
    method: str
    layer: int
    answer_change: str
    correctness_change: str
    js_divergence: float | None
    pearson: float | None
    l2: float | None
    cosine: float | None
    grid_rows: int
    grid_cols: int
    difference: Sequence[float]  # row-major: a list, or a 1-D float array
