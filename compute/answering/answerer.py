"""The one interface every answering strategy offers, and what it returns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from compute.maps.spec import MapResult
from compute.model.answers import Answer

ImageSource = str | Path | Image.Image  # a path to PNG/JPEG/DICOM, or a decoded image


@dataclass(frozen=True)
class AskResult:
    text: str  # the reply, special tokens removed (its first token only, unless full replies were asked for)
    answer: Answer  # extract_answer(text)
    p_yes: float  # yes / (yes + no) mass at the answer position
    yes_no_mass: float  # yes + no mass at the answer position
    latency_s: float  # wall time of the batch divided by its size
    map: MapResult | None = None  # where the model looked, when maps were asked for

    @property
    def maps(self) -> dict[int, np.ndarray] | None:
        """Layer index -> (rows, columns) grid summing to 1 (see MapResult)."""
        return self.map.maps if self.map else None

    @property
    def grid_shape(self) -> tuple[int, int] | None:
        return self.map.grid_shape if self.map else None


@dataclass(frozen=True)
class Group:
    """One image and the questions asked about it."""

    image: ImageSource
    questions: Sequence[str]


class Answerer(Protocol):
    """Answers (and maps, when it was made with a MapSpec) for every question of every group,
    in order. The strategies differ in speed, never in the answers (a test compares them)."""

    batch_items: int  # questions a caller should pass per call at most (and a study writes per transaction)
    batch_images: int | None  # images a caller should pass per call at most (None: no limit)

    def ask_groups(self, groups: Sequence[Group]) -> list[list[AskResult]]: ...


GenerateText = Callable[[Sequence[ImageSource], Sequence[str]], list[str]]  # greedy replies, in order
