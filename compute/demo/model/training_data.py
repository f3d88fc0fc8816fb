"""Training data for the demo model: synthetic cases rendered in memory, and prompts
tokenized exactly as the studies tokenize them (the processor's chat template)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from compute.data.conditions import CONDITION_KEYS, condition
from compute.config import PromptConfig
from compute.model.prompts import build_messages
from compute.metrics.regions import mask_to_grid
from compute.data.questions import TRAINING_TEMPLATES, canonical_question, location_phrase, possible_locations
from compute.demo.synth import render_case

ANSWER_TEXT = {True: "Yes", False: "No"}


@dataclass
class CasePool:
    """Rendered training cases, ready for the vision tower."""

    pixels: torch.Tensor  # (n, 3, size, size) float32, normalised like the processor: (x - 0.5) / 0.5
    present: torch.Tensor  # (n, n_conditions) bool
    lesion_grid: torch.Tensor  # (n, n_conditions, grid, grid) float32: share of each token cell inside the lesion
    locations: list[dict[str, str | None]]  # per case: condition -> location phrase of its finding

    def __len__(self) -> int:
        return self.pixels.shape[0]


def sample_conditions(rng: np.random.Generator, rate: float) -> list[str]:
    return [k for k in CONDITION_KEYS if rng.random() < rate]


def render_pool(n: int, seed: int, size: int, grid: int, finding_rate: float, progress: bool = True) -> CasePool:
    """Render `n` cases at `size` px; lesion masks are averaged into `grid` x `grid` cells."""
    rng = np.random.default_rng(seed)
    pixels = np.empty((n, size, size), dtype=np.float32)
    present = np.zeros((n, len(CONDITION_KEYS)), dtype=bool)
    lesion_grid = np.zeros((n, len(CONDITION_KEYS), grid, grid), dtype=np.float32)
    locations = []
    for i in tqdm(range(n), desc="rendering training cases", unit="img", disable=not progress):
        case = render_case(rng, size, sample_conditions(rng, finding_rate))
        pixels[i] = _as_uint8_and_back(case.image)
        where: dict[str, str | None] = {}
        for f in case.findings:
            c = CONDITION_KEYS.index(f.condition)
            present[i, c] = True
            lesion_grid[i, c] = cell_fractions(f.mask, grid)
            where[f.condition] = location_phrase(f.side, f.zone)
        locations.append(where)
    normalised = (torch.from_numpy(pixels) - 0.5) / 0.5
    return CasePool(pixels=normalised[:, None].expand(-1, 3, -1, -1).contiguous(),
                    present=torch.from_numpy(present), lesion_grid=torch.from_numpy(lesion_grid),
                    locations=locations)


def _as_uint8_and_back(image: np.ndarray) -> np.ndarray:
    """Quantise as an 8-bit file would, so training sees what the studies load."""
    return np.round(np.clip(image, 0, 1) * 255).astype(np.float32) / 255


def cell_fractions(mask: np.ndarray, grid: int) -> np.ndarray:
    """Share of each of grid x grid cells covered by a boolean mask. (grid, grid) float32"""
    return mask_to_grid(mask, (grid, grid)).astype(np.float32)


class PromptBank:
    """Token ids of every training prompt with its answer, built once through the
    processor's chat template with the studies' instruction, so training and inference
    see identical prompts."""

    def __init__(self, processor, prompt: PromptConfig = PromptConfig()):
        self.processor = processor
        self.prompt = prompt
        self._dummy = Image.new("RGB", (8, 8))
        self._cache: dict[tuple[str, bool], tuple[torch.Tensor, torch.Tensor]] = {}
        self.answer_ids = {v: processor.tokenizer.encode(text, add_special_tokens=False)
                           for v, text in ANSWER_TEXT.items()}
        self.end_of_turn = processor.tokenizer.convert_tokens_to_ids("<end_of_turn>")

    def encode(self, question: str, answer: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, token_type_ids) of prompt + answer + <end_of_turn>, each (seq,)."""
        key = (question, answer)
        if key not in self._cache:
            inputs = self.processor.apply_chat_template(
                [build_messages(self._dummy, question, self.prompt)], add_generation_prompt=True, tokenize=True,
                return_dict=True, return_tensors="pt")
            tail = torch.tensor([*self.answer_ids[answer], self.end_of_turn])
            ids = torch.cat([inputs["input_ids"][0], tail])
            types = torch.cat([inputs["token_type_ids"][0], torch.zeros_like(tail)])
            self._cache[key] = (ids, types)
        return self._cache[key]

    @property
    def prefix_length(self) -> int:
        """Tokens every prompt shares (chat header and image block): the longest common
        prefix of two prompts whose questions start differently."""
        if not hasattr(self, "_prefix_length"):
            a, _ = self.encode("Is there edema?", True)
            b, _ = self.encode("Does the image show edema?", False)
            n = min(len(a), len(b))
            self._prefix_length = int((a[:n] != b[:n]).nonzero()[0])
        return self._prefix_length

    def split(self, question: str, answer: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(shared prefix ids, prefix token types, this prompt's suffix ids incl. the answer)."""
        ids, types = self.encode(question, answer)
        n = self.prefix_length
        return ids[:n], types[:n], ids[n:]

    @property
    def target_length(self) -> int:
        """Tokens scored at the end of each sequence: the answer word(s) and <end_of_turn>."""
        return len(self.answer_ids[True]) + 1


def training_question(rng: np.random.Generator, key: str, present: bool, location: str | None,
                      location_rate: float) -> str:
    """A question in a training phrasing. Locations are named as often for absent as for
    present findings, so the phrase alone never gives the answer away."""
    c = condition(key)
    asked = None
    if c.lateral and rng.random() < location_rate:
        asked = location if present and location else str(rng.choice(possible_locations(c)))
    return canonical_question(c, int(rng.integers(len(TRAINING_TEMPLATES))), asked)
