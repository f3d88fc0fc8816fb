"""Gemma-3 and MedGemma 4B / 27B (`gemma3`): `\\n\\n<start_of_image>` + 256 soft tokens +
`<end_of_image>\\n\\n` in a chat template; a fixed 16x16 token grid (SigLIP's 64x64 patches
average-pooled 4x4); image tokens attend to each other both ways, marked by token_type_ids."""

from __future__ import annotations

import torch

from compute.model.families.base import Family


class Gemma3(Family):
    name = "gemma3"
    model_types = ("gemma3",)
    bidirectional_image = True

    def prefix_inputs(self, prefix_ids: torch.Tensor, config) -> dict:
        return {"token_type_ids": (prefix_ids == self.image_token_id(config)).long()}


FAMILY = Gemma3()
