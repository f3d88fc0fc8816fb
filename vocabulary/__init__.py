"""The names every layer shares, defined once: map methods, query kinds, heads aggregation,
studies, answerers, answer and correctness changes, metric names, and the layer number of the
mean-over-layers map. compute, store and dashboard all import them; this imports nothing.

The string enums compare equal to their values, so a name read back from the store is the
member itself: `Method("gradcam") is Method.GRADCAM`, and `Method.GRADCAM == "gradcam"`.
"""

from __future__ import annotations

from enum import StrEnum


class Method(StrEnum):
    """How a map is made."""

    ATTENTION = "attention"  # decoder self-attention from the query rows onto the image tokens
    TOKEN = "token"  # attention from the tokens of a term in the question
    GRADCAM = "gradcam"  # Grad-CAM on the vision tower
    ACTIVATION = "activation"  # vision activation norm: the last resort of the fallback chain
    RELEVANCY = "relevancy"  # gradient-weighted attention propagated through the layers (Chefer et al., 2021)
    RELATIVE = "relative"  # answer attention over the attention under a generic prompt (Zhang et al., 2025)
    KNOCKOUT = "knockout"  # change in the answer's log-odds when attention to a region is blocked (causal)
    LOGIT_LENS = "logit_lens"  # P(term) from each image token's hidden state through the final norm and head


class Query(StrEnum):
    """Which attention rows a map is read from."""

    ANSWER = "answer"  # the answer position (the last prompt position)
    QUESTION = "question"  # every token of the question
    GENERATED = "generated"  # the generated reply's tokens
    TERM = "term"  # the tokens of a term (method token)


MAP_QUERIES = (Query.ANSWER, Query.QUESTION, Query.GENERATED)  # the ones a run's --query can ask for


class Heads(StrEnum):
    """How attention heads are combined."""

    MEAN = "mean"
    MAX = "max"
    ALL = "all"  # the map is the mean over heads, and every head's map is stored beside it


class Study(StrEnum):
    BASELINE = "baseline"  # every manifest question asked once
    PHRASING = "phrasing"  # each question plus its meaning-preserving rewrites, then attention change


class AnswererName(StrEnum):
    AUTO = "auto"  # prefix-shared where the maps allow it, else generate
    GENERATE = "generate"  # one batched generate call per batch
    PREFIX_SHARED = "prefix-shared"  # each image's prompt prefix once, its questions against its cache


class AnswerChange(StrEnum):
    """How a variant's answer differs from its group's baseline answer."""

    YES_TO_NO = "yes→no"
    NO_TO_YES = "no→yes"
    UNCHANGED = "unchanged"
    OTHER = "other"  # an uncertain answer on one side


class CorrectnessChange(StrEnum):
    CORRECT_TO_WRONG = "correct→wrong"
    WRONG_TO_CORRECT = "wrong→correct"
    UNCHANGED = "unchanged"


MEAN_LAYER = -1  # the `layer` of the mean-over-layers map (stored beside each decoder layer's map)

MAP_METRICS = (  # of one normalised map (compute.metrics.attention_metrics), in the store's column order
    "inside_body_ratio", "border_fraction", "attention_entropy", "normalized_entropy", "focus_score",
    "peak_to_average", "sparsity", "right_lung_fraction", "left_lung_fraction", "apical_fraction",
    "middle_fraction", "basal_fraction",
)
BODY_METRICS = ("inside_body_ratio", "right_lung_fraction", "left_lung_fraction", "apical_fraction",
                "middle_fraction", "basal_fraction")  # defined only where the image has a body mask
COMPARISON_METRICS = ("js_divergence", "pearson", "l2", "cosine")  # of two maps (compute.metrics.compare_maps)
FAITHFULNESS_METRICS = ("deletion_delta", "random_delta", "faithfulness_ratio")  # of the deletion test
LESION_METRICS = ("lesion_hit", "lesion_attention_ratio")  # against the item's boxes or mask (compute.metrics.lesion)

__all__ = ["BODY_METRICS", "COMPARISON_METRICS", "FAITHFULNESS_METRICS", "LESION_METRICS", "MAP_METRICS", "MAP_QUERIES",
           "MEAN_LAYER", "AnswerChange", "AnswererName", "CorrectnessChange", "Heads", "Method", "Query", "Study"]
