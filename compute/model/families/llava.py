"""LLaVA-1.5 and the converted LLaVA-Med checkpoints (`llava`): one `<image>` expanded to 576
tokens, a fixed 24x24 grid (CLIP-L/14 at 336 px), features from the vision layer before the
last without its CLS token, causal attention throughout, and a `USER: ... ASSISTANT:` template.
llava-hf's processor resizes the shortest edge and crops the centre: the token grid covers only
that part of the image, and the map over the image is zero where the model saw nothing."""

from __future__ import annotations

from compute.model.families.base import Family
from compute.model.layout import ImageLayout, Tile, single_grid


def centre_crop_box(resized: tuple[int, int], crop: tuple[int, int]) -> tuple[float, float, float, float]:
    """(top, left, bottom, right) fractions of the image that a centre crop of `crop` px keeps
    from the image resized to `resized` px (both (height, width))."""
    (rh, rw), (ch, cw) = resized, crop
    keep_h, keep_w = min(1.0, ch / rh), min(1.0, cw / rw)
    return ((1 - keep_h) / 2, (1 - keep_w) / 2, (1 + keep_h) / 2, (1 + keep_w) / 2)


def shortest_edge_size(original: tuple[int, int], shortest: int) -> tuple[int, int]:
    """(height, width) after resizing the shortest edge to `shortest`, keeping the aspect ratio."""
    h, w = original
    scale = shortest / min(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


class Llava(Family):
    name = "llava"
    model_types = ("llava",)
    leading_vision_tokens = 1  # CLS

    def image_positions(self, input_ids, config):
        where = super().image_positions(input_ids, config)
        if getattr(config, "vision_feature_select_strategy", "default") == "full":  # CLS is the first image token
            first = where.int().argmax(dim=-1, keepdim=True)
            where = where.scatter(-1, first, False)
        return where

    def layouts(self, inputs, processor, counts, image_sizes):
        ip = processor.image_processor
        if not getattr(ip, "do_center_crop", False):
            return super().layouts(inputs, processor, counts, image_sizes)
        crop = int(ip.crop_size["height"]), int(ip.crop_size["width"])
        out = []
        for n, original in zip(counts, image_sizes):
            grid = single_grid(n, crop).tiles[0]
            if ip.size.get("shortest_edge"):
                resized = shortest_edge_size(original, int(ip.size["shortest_edge"]))
            else:
                resized = int(ip.size["height"]), int(ip.size["width"])
            out.append(ImageLayout((Tile(grid.rows, grid.cols, centre_crop_box(resized, crop)),), resized))
        return out

    def feeding_layer(self, model) -> int:
        layer = getattr(model.config, "vision_feature_layer", -1)
        if not isinstance(layer, int):
            raise LookupError(f"vision_feature_layer {layer!r}: Grad-CAM needs the one layer the features come from")
        # hidden_states[k] is the output of encoder layer k - 1 (index 0 is the embeddings)
        return layer if layer < 0 else layer - 1


FAMILY = Llava()
