"""Typed configuration for model loading, prompting, decoding and runs."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from compute.data.limits import ImageLimits
from compute.model.provenance import file_sha256
from compute.data.questions import DEFAULT_INSTRUCTION
from compute.data.validate import INT32_MAX, run_name, utf8
from vocabulary import MAP_QUERIES, AnswererName, Heads, Study


@dataclass(frozen=True)
class ModelSpec:
    name_or_path: str  # hub id such as "google/medgemma-4b-it", or a local folder
    device: str | None = None  # None: "cuda" when available, else "cpu"
    dtype: str | None = None  # None: bfloat16 on CUDA, float32 on CPU
    trust_remote_code: bool = False  # off unless the user asks for it


@dataclass(frozen=True)
class PromptConfig:
    instruction: str = DEFAULT_INSTRUCTION  # appended to the question in the user turn
    system_prompt: str | None = None  # Gemma-3 folds it into the first user turn


@dataclass(frozen=True)
class DecodeConfig:
    max_new_tokens: int = 32  # greedy; enough for "No, there is no evidence of ..." replies

    def __post_init__(self) -> None:
        _require_positive("max_new_tokens", self.max_new_tokens)


HEAD_AGGREGATIONS = tuple(Heads)


@dataclass(frozen=True)
class MapConfig:
    """Which maps the studies store for every prediction (see compute.maps)."""

    enabled: bool = True  # attention maps and their metrics for every prediction
    layers: str = "all"  # decoder layers: "2,7,12", "all", "last:4", "full"
    query: str = "answer"  # answer | question | generated
    heads: str = "mean"  # mean | max
    strip_border: int = 0  # outer token rings zeroed before renormalising (metrics still see the raw map)
    gradcam: bool = False  # also Grad-CAM: one backward pass per batch
    deletion: bool = False  # also the deletion test: a forward pass over 2 + deletion_random images per map
    deletion_fraction: float = 0.1  # share of cells blurred
    deletion_random: int = 4  # random deletions of the same area to compare with

    def __post_init__(self) -> None:
        if not 0 < self.deletion_fraction <= 1:
            raise ValueError(f"deletion_fraction must be in (0, 1], got {self.deletion_fraction}")
        _require_positive("deletion_random", self.deletion_random)
        if self.strip_border < 0:
            raise ValueError(f"strip_border must be >= 0, got {self.strip_border}")
        if self.query not in MAP_QUERIES or self.heads not in HEAD_AGGREGATIONS:
            raise ValueError(f"query must be one of {MAP_QUERIES} and heads one of {HEAD_AGGREGATIONS}")


STUDIES = tuple(Study)
ANSWERERS = tuple(AnswererName)


@dataclass(frozen=True)
class AnswerConfig:
    """Which strategy answers (see compute.answering); the answers are the same either way."""

    strategy: str = "auto"  # auto: prefix-shared where the maps allow it (answer-position attention), else generate
    batch_size: int = 8  # questions per generate call; the prefix-shared engine takes 8x as many suffix rows
    full_replies: bool = False  # prefix-shared: generate every reply in full, not only the non-yes/no ones

    def __post_init__(self) -> None:
        if self.strategy not in ANSWERERS:
            raise ValueError(f"answerer must be one of {', '.join(ANSWERERS)}, got {self.strategy!r}")


@dataclass(frozen=True)
class VariantConfig:
    """How the phrasing study rewrites each manifest question (see compute.variants)."""

    n: int = 10  # rewrites per question, besides the baseline itself
    seed: int = 0
    negation_probe: bool = False  # one more variant asking the opposite, its expected answer inverted

    def __post_init__(self) -> None:
        _require_positive("variants", self.n)
        if not 0 <= self.seed <= INT32_MAX:
            raise ValueError(f"variant seed must be from 0 to {INT32_MAX}, got {self.seed}")


@dataclass(frozen=True)
class RunConfig:
    run_name: str
    manifest: Path
    db: Path
    model: ModelSpec
    prompt: PromptConfig = field(default_factory=PromptConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    maps: MapConfig = field(default_factory=MapConfig)
    variants: VariantConfig = field(default_factory=VariantConfig)  # phrasing study only
    answering: AnswerConfig = field(default_factory=AnswerConfig)
    shard: tuple[int, int] | None = None  # (rank, world): this process takes every world-th manifest row
    max_failure_share: float = 0.5  # stop once more than this share of the items tried (20 at least) failed
    allow_outside_root: bool = False  # manifest image paths may leave the image root (absolute, "..", symlinks)
    image_limits: ImageLimits = field(default_factory=ImageLimits)  # checked from each file's header before decoding
    study: str = "baseline"  # baseline | phrasing
    dataset: str | None = None  # None: the manifest's folder name
    image_root: Path | None = None  # None: the manifest's folder
    limit: int | None = None  # first N manifest rows only
    seed: int = 0

    def __post_init__(self) -> None:
        run_name(self.run_name)
        for name, value in (("manifest path", self.manifest), ("--db path", self.db), ("--image-root", self.image_root),
                            ("model", self.model.name_or_path), ("instruction", self.prompt.instruction),
                            ("system prompt", self.prompt.system_prompt)):
            if value is not None:
                utf8(value, name)
        utf8(self.dataset_name, "dataset name", "pass --dataset with a name of its own")
        if not 0 <= self.seed <= INT32_MAX:
            raise ValueError(f"seed must be from 0 to {INT32_MAX}, got {self.seed}")
        if not 0 < self.max_failure_share <= 1:
            raise ValueError(f"max_failure_share must be in (0, 1], got {self.max_failure_share}")
        if self.study not in STUDIES:
            raise ValueError(f"study must be one of {', '.join(STUDIES)}, got {self.study!r}")
        if self.limit is not None:
            _require_positive("limit", self.limit)

    @property
    def dataset_name(self) -> str:
        return self.dataset or self.manifest.resolve().parent.name

    def identity(self) -> dict[str, Any]:
        """What determines the results; a resumed run must match it. The store also
        checks the weights and the resolved dtype. The device is free, so a run can
        resume on another machine that computes in the same dtype."""
        return {
            "study": self.study,
            "manifest_sha256": file_sha256(self.manifest),  # content, so a moved project still resumes
            "dataset": self.dataset_name,
            "image_root": None if self.image_root is None else os.path.normpath(self.image_root),
            "model": os.path.normpath(self.model.name_or_path) if Path(self.model.name_or_path).is_dir()
            else self.model.name_or_path,
            "prompt": asdict(self.prompt),
            "decode": asdict(self.decode),
            "maps": asdict(self.maps),
            **({"variants": asdict(self.variants), "full_replies": self.answering.full_replies}
               if self.study == "phrasing" else {"full_replies": True} if self.answering.full_replies else {}),
            **({"answerer": self.answering.strategy} if self.answering.strategy != "auto" else {}),
            "limit": self.limit,
            **({"allow_outside_root": True} if self.allow_outside_root else {}),
            "seed": self.seed,
        }


def _require_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
