"""Typed configuration for model loading, prompting, decoding and runs."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from compute.data.limits import ImageLimits
from compute.data.image_bytes import file_sha256
from compute.data.questions import DEFAULT_INSTRUCTION
from compute.data.validate import INT32_MAX, run_name, utf8
from vocabulary import MAP_QUERIES, AnswererName, Heads, Method, Study


@dataclass(frozen=True)
class ModelSpec:
    name_or_path: str = field(metadata={
        "flag": "--model", "metavar": "M",
        "help": "hub id (e.g. google/medgemma-4b-it) or a local model folder (e.g. models/demo)"})
    device: str | None = field(default=None, metadata={
        "help": "torch device such as cuda, cuda:1 or cpu (default: cuda when available, else cpu)"})
    dtype: str | None = field(default=None, metadata={
        "choices": ("bf16", "fp16", "fp32"),  # compute.model.loading.DTYPE_CHOICES, which imports torch
        "help": "weight and activation dtype (default: bf16 on CUDA, fp32 on CPU)"})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "allow model code from the checkpoint to run (off by default; no supported family needs it)"})
    device_map: str | None = field(default=None, metadata={
        "choices": ("auto",),
        "help": "auto: spread the model over this machine's GPUs through accelerate (a model bigger than one "
                "GPU, such as MedGemma 27B in bf16); instead of --device"})


@dataclass(frozen=True)
class PromptConfig:
    instruction: str = field(default=DEFAULT_INSTRUCTION, metadata={
        "help": "text appended to every question in the user turn (default: {default!r})"})
    system_prompt: str | None = field(default=None, metadata={
        "help": "optional system prompt; Gemma-3's template folds it into the user turn"})


@dataclass(frozen=True)
class DecodeConfig:
    max_new_tokens: int = field(default=32, metadata={  # enough for "No, there is no evidence of ..." replies
        "range": (1, INT32_MAX), "help": "greedy reply length cap (default: {default})"})

    def __post_init__(self) -> None:
        _require_positive("max_new_tokens", self.max_new_tokens)


HEAD_AGGREGATIONS = tuple(Heads)


EXTRA_METHODS = (Method.TOKEN, Method.RELEVANCY, Method.RELATIVE, Method.KNOCKOUT, Method.LOGIT_LENS)  # --methods
FAITHFULNESS_METHODS = (Method.ATTENTION, Method.GRADCAM, *EXTRA_METHODS[1:])  # what demo-faithfulness compares
_LATER_MAP_FIELDS = ("methods", "relative_prompt", "knockout_blocks", "knockout_question", "sink_factor", "mask_sinks")


@dataclass(frozen=True)
class MapConfig:
    """Which maps the studies store for every prediction (see compute.maps)."""

    enabled: bool = field(default=True, metadata={  # attention maps and their metrics for every prediction
        "flag": "--no-maps", "help": "store answers only, no attention maps"})
    layers: str = field(default="all", metadata={
        "help": "decoder layers to read attention from: '2,7,12,17', 'all', 'last:4' or 'full' "
                "(the full-attention layers) (default: {default})"})
    query: str = field(default="answer", metadata={
        "choices": MAP_QUERIES,
        "help": "attention rows: the answer position (the last prompt token, which predicts yes/no), "
                "the question's tokens, or the generated answer's tokens (default: {default})"})
    heads: str = field(default="mean", metadata={
        "choices": HEAD_AGGREGATIONS,
        "help": "how attention heads are combined: mean, max, or all (the mean, plus every head's map of every "
                "chosen layer, for the Attention page's head browser) (default: {default})"})
    strip_border: int = field(default=0, metadata={  # the metrics still see the raw map
        "range": (0, 1000), "metavar": "RINGS",
        "help": "zero this many outer token rings before renormalising the stored map (default: {default})"})
    gradcam: bool = field(default=False, metadata={
        "help": "also store Grad-CAM on the vision tower's last layer (one backward pass per batch)"})
    deletion: bool = field(default=False, metadata={  # a forward pass over 2 + deletion_random images per map
        "help": "also run the deletion test per map: blur the top 10% of cells vs random cells "
                "({deletion_random} more forward passes per prediction)"})
    methods: str = field(default="", metadata={
        "metavar": "LIST",
        "help": "also store maps of these methods, comma-separated: token (attention from the words of the question "
                "that name the condition; a question that names none gets no token map), relevancy (1 forward + "
                "1 backward), relative "
                "(1 more forward per image), knockout (1 prefix pass + 2 + regions suffix rows, and the blank-image "
                "control), logit_lens (1 forward; the condition's name is the term) (default: none)"})
    relative_prompt: str = field(default="Describe the image.", metadata={
        "help": "relative: the generic, condition-free prompt the question's attention is divided by "
                "(default: {default!r})"})
    knockout_blocks: int = field(default=4, metadata={
        "range": (1, 64), "metavar": "N",
        "help": "knockout: regions of N x N image tokens, one forward row each (default: {default})"})
    knockout_question: bool = field(default=False, metadata={
        "help": "knockout: also block the question's tokens' attention to the region, not only the answer's"})
    sink_factor: float = field(default=0.0, metadata={
        "help": "attention sinks: image tokens whose hidden-state norm exceeds this times the median are sinks; "
                "their share of each map is stored (sink_mass); 0 turns detection off (default: {default})"})
    mask_sinks: bool = field(default=False, metadata={
        "help": "zero the sink tokens of attention maps before renormalising (needs --sink-factor)"})
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
        unknown = [m for m in self.extra_methods if m not in EXTRA_METHODS]
        if unknown:
            raise ValueError(f"--methods: {', '.join(map(repr, unknown))} not known; "
                             f"choose from {', '.join(EXTRA_METHODS)}")
        if self.sink_factor < 0 or not math.isfinite(self.sink_factor):
            raise ValueError(f"--sink-factor must be 0 (off) or positive, got {self.sink_factor}")
        if self.mask_sinks and not self.sink_factor:
            raise ValueError("--mask-sinks needs --sink-factor (the norm ratio that makes a token a sink)")
        if not self.relative_prompt.strip():
            raise ValueError("--relative-prompt must not be empty")

    def identity(self) -> dict[str, Any]:
        """The fields that determine the maps, for a run's identity. Fields added later count only
        when they differ from their default, so that runs stored before them still resume."""
        later = {f.name: f.default for f in fields(self) if f.name in _LATER_MAP_FIELDS}
        identity = {k: v for k, v in asdict(self).items() if k not in later or v != later[k]}
        if "methods" in identity:  # the order of --methods changes nothing
            identity["methods"] = ",".join(sorted(self.extra_methods))
        return identity

    @property
    def extra_methods(self) -> tuple[str, ...]:
        """The --methods list, in order, without repeats."""
        return tuple(dict.fromkeys(m.strip() for m in self.methods.split(",") if m.strip()))


STUDIES = tuple(Study)
ANSWERERS = tuple(AnswererName)


@dataclass(frozen=True)
class AnswerConfig:
    """Which strategy answers (see compute.answering); the answers are the same either way."""

    strategy: str = field(default="auto", metadata={
        "flag": "--answerer", "choices": ANSWERERS,
        "help": "how questions are answered (the answers are the same): prefix-shared runs each image's "
                "prompt prefix once and all its questions against it; generate runs one generate call per "
                "batch; auto: prefix-shared unless --query needs the generated reply (default: {default})"})
    batch_size: int = field(default=8, metadata={  # the prefix-shared engine takes 8x as many suffix rows
        "range": (1, 4096),
        "help": "questions per forward pass, at most 4096; the batched generate also writes this many at a time, "
                "the prefix-shared engine (8x as many suffix rows a pass) one prefix pass's 8 images' questions "
                "(default: {default})"})
    full_replies: bool = field(default=False, metadata={
        "help": "prefix-shared answerer: generate every reply in full; by default it reads P(yes) and the "
                "answer from the first token and generates text only where that token is not yes or no"})

    def __post_init__(self) -> None:
        if self.strategy not in ANSWERERS:
            raise ValueError(f"answerer must be one of {', '.join(ANSWERERS)}, got {self.strategy!r}")


@dataclass(frozen=True)
class VariantConfig:
    """How the phrasing study rewrites each manifest question (see compute.variants)."""

    n: int = field(default=10, metadata={  # besides the baseline itself
        "flag": "--variants", "range": (1, INT32_MAX),
        "help": "rewrites per question in the phrasing study (default: {default})"})
    seed: int = field(default=0, metadata={
        "flag": "--variant-seed", "range": (0, INT32_MAX), "help": "seed of the rewrite choice (default: {default})"})
    negation_probe: bool = field(default=False, metadata={
        "help": "phrasing study: add one opposite question per group, its expected answer inverted"})

    def __post_init__(self) -> None:
        _require_positive("variants", self.n)
        if not 0 <= self.seed <= INT32_MAX:
            raise ValueError(f"variant seed must be from 0 to {INT32_MAX}, got {self.seed}")


@dataclass(frozen=True)
class RunConfig:
    run_name: str = field(metadata={
        "flag": "--run", "aliases": ("--run-name",), "metavar": "NAME",
        "help": "run name; reusing a name resumes that run (its configuration must match)"})
    manifest: Path = field(metadata={
        "help": "JSONL or CSV with columns image, question, answer (yes/no), condition; optional "
                "image_id, group_id, variant_index, strategy, location"})
    db: Path = field(metadata={"help": "DuckDB file to write (created if missing)"})
    model: ModelSpec
    prompt: PromptConfig = field(default_factory=PromptConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    maps: MapConfig = field(default_factory=MapConfig)
    variants: VariantConfig = field(default_factory=VariantConfig)  # phrasing study only
    answering: AnswerConfig = field(default_factory=AnswerConfig)
    shard: tuple[int, int] | None = None  # (rank, world): this process takes every world-th manifest row
    max_failure_share: float = field(default=0.5, metadata={
        "metavar": "SHARE",
        "help": "stop the run once more than this share of the items tried (at least 20) failed; the "
                "results so far are kept (default: {default})"})
    allow_outside_root: bool = field(default=False, metadata={
        "help": "allow manifest image paths outside the image root (absolute paths, '..', links out); "
                "off by default so a manifest cannot point the run at arbitrary files"})
    image_limits: ImageLimits = field(default_factory=ImageLimits)  # checked from each file's header before decoding
    study: str = field(default="baseline", metadata={
        "choices": STUDIES,
        "help": "baseline: every question once; phrasing: every question plus --variants meaning-preserving "
                "rewrites of it (compute.variants), on the same image (default: {default})"})
    dataset: str | None = field(default=None, metadata={
        "help": "dataset label (default: the manifest's folder name)"})
    image_root: Path | None = field(default=None, metadata={
        "help": "folder that relative image paths start from (default: the manifest's folder)"})
    limit: int | None = field(default=None, metadata={
        "range": (1, INT32_MAX), "metavar": "N", "help": "only the first N manifest rows"})
    seed: int = field(default=0, metadata={
        "range": (0, INT32_MAX), "help": "random seed recorded with the run (default: {default})"})

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
            "maps": self.maps.identity(),
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
