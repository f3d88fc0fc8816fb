"""Qwen2.5-VL (`qwen2_5_vl`): `<|vision_start|>` + `<|image_pad|>` x (h/2)(w/2) + `<|vision_end|>`
in a ChatML template. Dynamic resolution: the processor resizes each image to sides that are
multiples of 28 px (within min_pixels and max_pixels) and reports its (t, h, w) grid of 14-px
patches in `image_grid_thw`; a 2x2 merge makes the token grid (h/2)x(w/2), row-major. Causal
attention with mRoPE: text after the image continues from the image's largest position, not
from the sequence index, so the engine's suffix positions come from the model's rope index.
Grad-CAM reads the last vision block, whose patches run in window order; they are put back
in raster order here."""

from __future__ import annotations

import torch
from transformers.vision_utils import get_vision_window_index

from compute.model.families.base import Family
from compute.model.layout import ImageLayout, Tile, single_grid

PATCH_PX = 14


class Qwen2_5_VL(Family):
    name = "qwen2_5_vl"
    model_types = ("qwen2_5_vl",)
    vision_layer_pattern = r".*visual\.blocks\.(\d+)"

    def load_processor(self, name_or_path: str, **kwargs):
        from transformers import PaddleOCRVLProcessor  # Qwen's image path: <|image_pad|> x grid_thw.prod() / merge²

        return self.load_image_only_processor(
            name_or_path, lambda image, tokenizer, d: PaddleOCRVLProcessor(
                image_processor=image, tokenizer=tokenizer, chat_template=d.get("chat_template")), **kwargs)

    def _merge(self, processor) -> int:
        return int(processor.image_processor.merge_size)

    def layouts(self, inputs, processor, counts, image_sizes):
        merge = self._merge(processor)
        out = []
        for (t, h, w), n in zip(inputs["image_grid_thw"].tolist(), counts):
            if t * h * w // merge**2 != n:
                raise ValueError(f"{n} image tokens for a {t}x{h}x{w} patch grid merged {merge}x{merge}")
            out.append(single_grid(n, (h * PATCH_PX, w * PATCH_PX), (t * h // merge, w // merge)))
        return out

    def vision_units(self, features, grads, layouts, inputs=None, model=None):
        """Block outputs are (all patches, hidden) in window order, merge unit by merge unit; each
        sequence's patches come back as one raster (h, w) grid."""
        visual = model.model.visual
        thw = inputs["image_grid_thw"]
        merge = int(visual.spatial_merge_size)
        window_index, _ = get_vision_window_index(thw, spatial_merge_size=merge, window_size=visual.window_size,
                                                  patch_size=visual.patch_size, kwargs={})
        back = torch.argsort(window_index.to(features.device))

        def raster(values: torch.Tensor) -> list[torch.Tensor]:
            units = values.reshape(-1, merge * merge, values.shape[-1])[back]  # (merge units, merge², hidden)
            out, start = [], 0
            for t, h, w in thw.tolist():
                k = t * (h // merge) * (w // merge)
                block = units[start:start + k].reshape(t * h // merge, w // merge, merge, merge, -1)
                out.append([block.permute(0, 2, 1, 3, 4).reshape(t * h * w, -1)])  # row-major patches
                start += k
            return out

        layouts = [ImageLayout((Tile(t * h, w),), (h * PATCH_PX, w * PATCH_PX)) for t, h, w in thw.tolist()]
        return raster(features), raster(grads), layouts

    def prefix_inputs(self, prefix_ids: torch.Tensor, config) -> dict:
        return {"mm_token_type_ids": (prefix_ids == self.image_token_id(config)).int()}

    def suffix_positions(self, model, prefix: dict, n: int, width: int) -> torch.Tensor:
        positions, _ = model.model.get_rope_index(prefix["input_ids"][:1], prefix["mm_token_type_ids"][:1],
                                                  image_grid_thw=prefix["image_grid_thw"][:1],
                                                  attention_mask=prefix["attention_mask"][:1])
        start = positions[:, 0].max() + 1  # every image of a prefix pass has the same grid
        return (start + torch.arange(width, device=start.device))[None].expand(3, -1).cpu()


FAMILY = Qwen2_5_VL()
