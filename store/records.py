"""Plain rows the writer accepts. The store knows these shapes, not how they were made."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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


@dataclass(frozen=True)
class ImageRecord:
    dataset: str
    image_id: str
    path: str
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None


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
