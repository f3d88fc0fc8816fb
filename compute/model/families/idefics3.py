"""Idefics3 and SmolVLM (`idefics3`, `smolvlm`): the image is resized and cut into rows x cols
tiles, row-major, each `<fake_token_around_image><row_i_col_j>` + image_seq_len x `<image>`
(169 = 13x13 on Idefics3 after the 2x pixel shuffle), then a `<global-img>` tile of the whole
image. Maps are stitched back onto the image (compute.model.layout). Causal attention; the
vision layer is `vision_model.encoder.layers[-1]`, one row of patches per tile."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from compute.model.families.base import Family
from compute.model.layout import WHOLE, ImageLayout, Tile

_ROW_COL = re.compile(r"<row_(\d+)_col_(\d+)>")


def tile_grid(tile_tokens: Sequence[str]) -> tuple[int, int]:
    """(rows, cols) of the local tiles, from the `<row_i_col_j>` tokens of one sequence; (0, 0) for none."""
    found = [tuple(map(int, m.groups())) for t in tile_tokens if (m := _ROW_COL.fullmatch(t))]
    return (max(r for r, _ in found), max(c for _, c in found)) if found else (0, 0)


def tiled_layout(rows: int, cols: int, tile: Tile, size: tuple[int, int], whole_last: bool) -> ImageLayout:
    """rows x cols local tiles, row-major, each `tile`'s token grid, plus (if `whole_last`) one of the whole image."""
    local = tuple(Tile(tile.rows, tile.cols, (i / rows, j / cols, (i + 1) / rows, (j + 1) / cols))
                  for i in range(rows) for j in range(cols))
    return ImageLayout(local + ((Tile(tile.rows, tile.cols, WHOLE),) if whole_last else ()), size)


class Idefics3(Family):
    name = "idefics3"
    model_types = ("idefics3", "smolvlm")
    vision_layer_pattern = r".*vision_model\.encoder\.layers\.(\d+)"
    image_processor_kwargs = {"return_row_col_info": True}

    def _tile(self, processor) -> Tile:
        side = math.isqrt(int(processor.image_seq_len))
        return Tile(side, side)

    def _tile_px(self, processor) -> int:
        return int(processor.image_processor.max_image_size["longest_edge"])

    def _grids(self, inputs: dict, processor) -> list[tuple[int, int]]:
        tokenizer = processor.tokenizer
        return [tile_grid(tokenizer.convert_ids_to_tokens(ids.tolist())) for ids in inputs["input_ids"]]

    def layouts(self, inputs, processor, counts, image_sizes):
        tile, px = self._tile(processor), self._tile_px(processor)
        out = []
        for (rows, cols), n in zip(self._grids(inputs, processor), counts):
            layout = (ImageLayout((tile,), (px, px)) if rows == 0
                      else tiled_layout(rows, cols, tile, (rows * px, cols * px), whole_last=True))
            if layout.n_tokens != n:
                raise ValueError(f"{n} image tokens do not fit {rows}x{cols} tiles of {tile.n_tokens} "
                                 "plus the global one")
            out.append(layout)
        return out


FAMILY = Idefics3()
