"""What map to make (MapSpec) and what was made (MapResult, with its provenance)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vocabulary import MAP_QUERIES as QUERIES
from vocabulary import Heads, Method, Query

METHODS = tuple(Method)
HEAD_AGGREGATIONS = tuple(Heads)


@dataclass(frozen=True)
class MapSpec:
    method: str = Method.ATTENTION  # one of vocabulary.Method: attention, token, gradcam, relevancy, knockout, ...
    layers: str | tuple[int, ...] = "all"  # decoder layers: "2,7,12", "all", "last:4", "full"
    query: str = Query.ANSWER  # attention rows: answer position, question tokens, or generated answer tokens
    heads: str = Heads.MEAN  # how heads are combined: mean or max
    term: str | None = None  # method "token": a term of the question; "logit_lens": the term whose P is mapped
    strip_border: int = 0  # outer token rings zeroed before renormalising; 0 keeps the whole grid
    gradcam_full_resolution: bool = False  # Grad-CAM on the vision patch grid instead of the token grid
    gradcam_token: str | None = None  # Grad-CAM target: this token's logit at the answer position; None: yes minus no
    fallback: bool = True  # attention -> gradcam -> activation norm when a method fails
    relative_prompt: str = "Describe the image."  # method relative: the generic, condition-free question
    knockout_block: int = 4  # method knockout: regions of block x block image tokens
    knockout_question: bool = False  # method knockout: also block the question's tokens' attention to the region
    sink_factor: float = 0.0  # attention sinks: image tokens whose hidden-state norm > this x the median; 0: off
    mask_sinks: bool = False  # zero the sink tokens before renormalising (off: they are only reported)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r}: expected one of {', '.join(METHODS)}")
        if self.query not in QUERIES:
            raise ValueError(f"query {self.query!r}: expected one of {', '.join(QUERIES)}")
        if self.heads not in HEAD_AGGREGATIONS:
            raise ValueError(f"heads {self.heads!r}: expected mean, max or all")
        if self.method == Method.LOGIT_LENS and not (self.term and self.term.strip()):
            raise ValueError("method 'logit_lens' needs term=..., the word whose probability is mapped")
        if self.method == "token" and not (self.term and self.term.strip()):
            raise ValueError("method 'token' needs term=..., a word or phrase of the question")
        if self.strip_border < 0:
            raise ValueError(f"strip_border must be >= 0, got {self.strip_border}")
        if self.knockout_block < 1:
            raise ValueError(f"knockout_block must be >= 1, got {self.knockout_block}")
        if self.sink_factor < 0 or (self.mask_sinks and not self.sink_factor):
            raise ValueError("mask_sinks needs sink_factor > 0 (the norm ratio that makes a token a sink)")
        if self.method == Method.RELATIVE and not self.relative_prompt.strip():
            raise ValueError("method 'relative' needs a generic prompt (relative_prompt)")


@dataclass
class MapResult:
    """Maps for one prediction: `maps[layer]` is a (rows, columns) grid summing to 1. For
    attention, one per decoder layer plus `mean` over them; for Grad-CAM and activation
    norm, one keyed by the vision encoder layer used."""

    maps: dict[int, np.ndarray]
    mean: np.ndarray  # the map the metrics describe: mean of `maps` over layers
    grid_shape: tuple[int, int]
    method: str  # the method that produced the maps
    requested_method: str
    fallback_reason: str | None  # why earlier methods in the chain failed, if they did
    layers: tuple[int, ...]
    heads: str
    query: str
    query_positions: list[int]  # positions in this sequence's (padded) prompt
    term: str | None
    strip_border: int
    attn_implementation: str  # how the rows were computed
    image_size: tuple[int, int]  # (height, width) of the model input
    unstripped: dict[int, np.ndarray] | None = None  # `maps` before border stripping (when strip_border > 0)
    details: dict = field(default_factory=dict)  # the method's parameters and figures (image reliance, sinks, ...)
    head_maps: dict[int, np.ndarray] | None = None  # heads "all": per layer (heads, rows, columns), each summing to 1

    @property
    def raw_maps(self) -> dict[int, np.ndarray]:
        """The maps as the model gave them, before any stripping: what the metrics describe."""
        return self.maps if self.unstripped is None else self.unstripped

    @property
    def raw_mean(self) -> np.ndarray:
        return np.mean(list(self.raw_maps.values()), axis=0)
