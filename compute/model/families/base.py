"""What a model family tells the rest of the code: only what differs between families.

Everything else (capture, the engine, maps, metrics, studies) asks the session's family, which
is picked from the checkpoint's `model_type` (compute.model.families.family_for). The defaults
here fit a chat-template model with one whole-image grid of image tokens and a vision tower
whose encoder layers are `...vision_tower...encoder.layers.N`; a family overrides what it
does otherwise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import nn

from compute.model.layout import ImageLayout, Tile, single_grid


class Family:
    name: str = ""  # the tiny-model family name ("gemma3"); also what the README lists
    model_types: tuple[str, ...] = ()  # config.model_type values this family loads
    # Image tokens attend to each other both ways (their hidden states mix patches), not causally.
    bidirectional_image: bool = False
    # The image's tokens also attend to the question (PaliGemma's prefix-LM): the image block's
    # cache then depends on the question, so it cannot be shared across questions (no engine).
    image_sees_question: bool = False
    vision_layer_pattern: str = r".*vision_tower.*encoder\.layers?\.(\d+)"
    leading_vision_tokens: int = 0  # tokens before the patches in the vision layer's output (CLIP's CLS)

    # What the image processor must be asked for the processor to expand the image placeholder
    # (Idefics3's tile rows and columns).
    image_processor_kwargs: dict = {}

    def load_processor(self, name_or_path: str, **kwargs):
        """The checkpoint's processor (AutoProcessor), with the loading options `kwargs`."""
        from transformers import AutoProcessor
        return AutoProcessor.from_pretrained(name_or_path, **kwargs)

    def load_image_only_processor(self, name_or_path: str, build, **kwargs):
        """The checkpoint's processor; where it cannot be built because its video processor needs
        torchvision (Qwen2.5-VL and InternVL in transformers 5.24, which the project keeps out),
        `build(image_processor, tokenizer, processor_dict)` makes the same image path without one."""
        try:
            return Family.load_processor(self, name_or_path, **kwargs)
        except (OSError, ImportError, AttributeError, ValueError) as exc:
            failure = exc
        from transformers import AutoImageProcessor, AutoTokenizer
        from transformers.processing_utils import ProcessorMixin
        try:
            processor_dict, _ = ProcessorMixin.get_processor_dict(name_or_path, **kwargs)
            return build(AutoImageProcessor.from_pretrained(name_or_path, **kwargs),
                         AutoTokenizer.from_pretrained(name_or_path, **kwargs), processor_dict)
        except Exception:  # noqa: BLE001 - the processor's own failure is the one to report
            raise failure from None

    def image_kwargs(self, processor) -> dict:
        """What the processor passes its image processor when it is called (its defaults can
        differ from the image processor's own settings: InternVL's turn tiling on), plus what this
        family must ask for; the engine and the prompt expansion call the image processor with them."""
        try:
            merged = processor._merge_kwargs(tokenizer_init_kwargs=processor.tokenizer.init_kwargs)["images_kwargs"]
        except (AttributeError, KeyError, TypeError):  # a processor without transformers' kwargs machinery
            merged = {}
        return {**merged, **self.image_processor_kwargs}

    # --- the image tokens in the sequence --------------------------------------------------------
    def image_token_id(self, config) -> int:
        return int(config.image_token_id)

    def image_positions(self, input_ids: torch.Tensor, config) -> torch.Tensor:
        """(batch, seq) bool: where the image tokens sit."""
        return input_ids == self.image_token_id(config)

    def layouts(self, inputs: dict, processor, counts: Sequence[int],
                image_sizes: Sequence[tuple[int, int]]) -> list[ImageLayout]:
        """Per sequence, how its `counts[b]` image tokens lie over its image, whose original
        (height, width) is `image_sizes[b]`. One image per sequence."""
        size = self.input_size(processor, inputs)
        return [single_grid(n, size) for n in counts]

    def input_size(self, processor, inputs: dict, b: int = 0) -> tuple[int, int]:
        """(height, width) in px of the image as the model saw it."""
        size = processor.image_processor.size
        if "height" in size:
            return int(size["height"]), int(size["width"])
        pixels = inputs["pixel_values"]
        return int(pixels.shape[-2]), int(pixels.shape[-1])

    # --- the vision side, for Grad-CAM and activation norm ----------------------------------------
    def vision_layer(self, model) -> tuple[int, nn.Module]:
        """(index, module) of the vision encoder layer whose output feeds the decoder, found by
        walking the modules (paths move between transformers versions)."""
        found = sorted((int(m.group(1)), module) for name, module in model.named_modules()
                       if (m := re.fullmatch(self.vision_layer_pattern, name)))
        if not found:
            raise LookupError(f"{type(model).__name__}: no module matching {self.vision_layer_pattern!r} "
                              "to take vision features from")
        return found[self.feeding_layer(model)]

    def feeding_layer(self, model) -> int:
        """Which encoder layer's output feeds the decoder, counted as a list index (-1: the last)."""
        return -1

    def vision_units(self, features: torch.Tensor, grads: torch.Tensor, layouts: Sequence[ImageLayout],
                     inputs: dict | None = None, model=None):
        """The vision layer's output (and its gradient, same shape), (tiles, tokens, hidden) with one
        row per tile of every sequence in order, split per sequence into its tiles' patches
        (patches, hidden), with the patch layouts that stitch a sequence's per-patch values back onto
        its image: the token `layouts`' tiles at patch resolution.
        Returns (features per sequence, grads per sequence, patch layouts)."""
        lead = self.leading_vision_tokens
        side = math.isqrt(features.shape[1] - lead)
        if side * side != features.shape[1] - lead:
            raise ValueError(f"{features.shape[1] - lead} vision patches per tile do not form a square grid")
        counts = [len(layout.tiles) for layout in layouts]
        if sum(counts) != features.shape[0]:
            raise ValueError(f"the vision layer ran on {features.shape[0]} tiles; the prompts hold {sum(counts)}")
        feats, grad, patch_layouts, start = [], [], [], 0
        for layout, k in zip(layouts, counts):
            feats.append([f[lead:] for f in features[start:start + k]])
            grad.append([g[lead:] for g in grads[start:start + k]])
            start += k
            patch_layouts.append(ImageLayout(tuple(Tile(side, side, t.box) for t in layout.tiles), layout.size))
        return feats, grad, patch_layouts

    # --- prompts and passes -----------------------------------------------------------------------
    def tokenize(self, processor, conversations: list[list[dict]], *, offsets: bool = False):
        """Model inputs for these chats, left-padded; with `offsets`, an `offset_mapping` too."""
        return processor.apply_chat_template(
            conversations, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
            processor_kwargs={"padding": True, "return_offsets_mapping": offsets})

    def render(self, processor, conversations: list[list[dict]]) -> list[str]:
        """Each prompt's text before the image placeholders are expanded."""
        return processor.apply_chat_template(conversations, add_generation_prompt=True, tokenize=False)

    def prefix_inputs(self, prefix_ids: torch.Tensor, config) -> dict:
        """Extra inputs of the engine's prefix pass (Gemma-3: token_type_ids marking the image)."""
        return {}

    def suffix_positions(self, model, prefix: dict, n: int, width: int) -> torch.Tensor:
        """Position ids of the engine's suffix pass, (width,) or what the model takes: the suffix
        continues after the `n` prefix positions."""
        return n + torch.arange(width)
