"""InternVL (`internvl`, the `-hf` checkpoints): per image `<img>` + 256 x `<IMG_CONTEXT>` per
tile + `</img>` (16x16 tokens a tile after pixel shuffle). With tiling, the image is resized to
the cols x rows canvas of tiles whose aspect ratio is closest to its own and cut row-major, then a
thumbnail of the whole image follows when there is more than one tile; maps are stitched back
onto the image. Causal attention; the vision layer is `vision_tower.encoder.layer[-1]`, CLS first."""

from __future__ import annotations

import math

from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas

from compute.model.families.base import Family
from compute.model.families.idefics3 import tiled_layout
from compute.model.layout import ImageLayout, Tile


class InternVL(Family):
    name = "internvl"
    model_types = ("internvl",)
    leading_vision_tokens = 1  # CLS
    vision_layer_pattern = r".*vision_tower.*encoder\.layer\.(\d+)"

    def load_processor(self, name_or_path: str, **kwargs):
        from transformers import QianfanOCRProcessor  # InternVL's image path: <img> + tiles x N context + </img>

        return self.load_image_only_processor(
            name_or_path, lambda image, tokenizer, d: QianfanOCRProcessor(
                image_processor=image, tokenizer=tokenizer, chat_template=d.get("chat_template"),
                image_seq_length=int(d.get("image_seq_length", 256)),
                image_placeholder_token=tokenizer.context_image_token), **kwargs)

    def layouts(self, inputs, processor, counts, image_sizes):
        per_tile = int(processor.image_seq_length)
        side = math.isqrt(per_tile)
        tile = Tile(side, side)
        ip = processor.image_processor
        asked = self.image_kwargs(processor)  # the processor's call turns tiling on whatever the image processor says
        crop = asked.get("crop_to_patches", getattr(ip, "crop_to_patches", False))
        low, high = asked.get("min_patches", ip.min_patches), asked.get("max_patches", ip.max_patches)
        px = int(ip.size["height"]), int(ip.size["width"])
        out = []
        for n, original in zip(counts, image_sizes):
            tiles = n // per_tile
            cols, rows = get_optimal_tiled_canvas(original, px, low, high) if crop else (1, 1)
            if tiles == 1 and rows * cols == 1:
                layout = ImageLayout((tile,), px)
            else:
                layout = tiled_layout(rows, cols, tile, (rows * px[0], cols * px[1]), whole_last=rows * cols > 1)
            if layout.n_tokens != n:
                raise ValueError(f"{n} image tokens do not fit {rows}x{cols} tiles of {per_tile} (and a thumbnail)")
            out.append(layout)
        return out


FAMILY = InternVL()
