"""Map methods beyond raw attention, each a small module behind one interface: given a tokenized
batch (compute.maps.extract.Prompts) it returns, per key (a decoder layer, or the one layer its
map stands for) and per sequence, non-negative weights over that sequence's image tokens in
sequence order, which the family's layout lays over the image like attention's. Each method's
figures and parameters go in `details`, stored as the map's provenance.

| method     | passes per item (beyond the answer's)                           |
|------------|-----------------------------------------------------------------|
| relevancy  | 1 forward + 1 backward, eager attention on every layer          |
| relative   | 1 forward under the generic prompt, shared by an image's questions |
| knockout   | 1 prefix pass (the image and its blank control), then regions + 6 suffix rows |
| logit_lens | 1 forward (hooks on the chosen layers), then the head per image token |
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class MethodOutput:
    """weights[key][b]: (image_tokens,) non-negative weights of sequence b; `layers`: the keys' meaning
    for provenance; details[b]: the method's figures and parameters for sequence b."""

    weights: dict[int, list[torch.Tensor]]
    layers: tuple[int, ...]
    details: list[dict] = field(default_factory=list)
