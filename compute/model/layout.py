"""Where one image's tokens lie over the image, and how their weights become one map.

Most families give one grid of tokens over the whole image (16x16 on Gemma-3, 24x24 on
LLaVA-1.5, (h/2)x(w/2) on Qwen2.5-VL). Idefics3/SmolVLM and InternVL cut the image into tiles
and add a downscaled view of the whole image; their maps are stitched back onto the image:
each tile's weights land on the part of the image it shows, the whole-image view's are spread
over the whole image, and the map is their sum, on the grid of the finest tile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


WHOLE = (0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class Tile:
    """A block of `rows` x `cols` image tokens, row-major, showing `box` of the image:
    (top, left, bottom, right) as fractions of the model-input image's height and width."""

    rows: int
    cols: int
    box: tuple[float, float, float, float] = WHOLE

    @property
    def n_tokens(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class ImageLayout:
    """One image's tokens, tile by tile in sequence order, over a (height, width) px input."""

    tiles: tuple[Tile, ...]
    size: tuple[int, int]

    @property
    def n_tokens(self) -> int:
        return sum(t.n_tokens for t in self.tiles)

    @property
    def grid(self) -> tuple[int, int]:
        """The map's (rows, columns): the finest tile's resolution carried over the whole image."""
        rows = max(t.rows / (t.box[2] - t.box[0]) for t in self.tiles)
        cols = max(t.cols / (t.box[3] - t.box[1]) for t in self.tiles)
        return round(rows), round(cols)

    def to_map(self, weights: np.ndarray) -> np.ndarray:
        """(n_tokens,) weights in sequence order -> a (rows, columns) map over the image with
        the same total. A single whole-image tile is a plain reshape."""
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (self.n_tokens,):
            raise ValueError(f"{weights.shape[0]} image-token weights for a layout of {self.n_tokens} tokens")
        if len(self.tiles) == 1 and self.tiles[0].box == WHOLE:
            return weights.reshape(self.tiles[0].rows, self.tiles[0].cols)
        rows, cols = self.grid
        out = np.zeros((rows, cols))
        start = 0
        for tile in self.tiles:
            block = weights[start:start + tile.n_tokens].reshape(tile.rows, tile.cols)
            start += tile.n_tokens
            top, left = round(tile.box[0] * rows), round(tile.box[1] * cols)
            bottom, right = round(tile.box[2] * rows), round(tile.box[3] * cols)
            out[top:bottom, left:right] += resample(block, (bottom - top, right - left))
        return out


def single_grid(n_tokens: int, size: tuple[int, int], shape: tuple[int, int] | None = None) -> ImageLayout:
    """A layout of one whole-image grid: `shape`, or the factor pair of `n_tokens` closest to the image's aspect."""
    rows, cols = shape or grid_shape(n_tokens, size[1] / size[0])
    if rows * cols != n_tokens:
        raise ValueError(f"a {rows}x{cols} grid does not hold {n_tokens} image tokens")
    return ImageLayout((Tile(rows, cols),), size)


def grid_shape(n_tokens: int, aspect: float = 1.0) -> tuple[int, int]:
    """(rows, columns) for `n_tokens` image tokens laid out row-major. A square count gives a
    square grid; otherwise the factor pair whose columns/rows ratio is closest to the image's
    width/height `aspect`."""
    if n_tokens < 1:
        raise ValueError(f"no image tokens to lay out (got {n_tokens})")
    side = math.isqrt(n_tokens)
    if side * side == n_tokens and aspect == 1.0:
        return side, side
    pairs = [(r, n_tokens // r) for r in range(1, n_tokens + 1) if n_tokens % r == 0]
    return min(pairs, key=lambda rc: abs(math.log((rc[1] / rc[0]) / aspect)))


def overlap_weights(n_from: int, n_to: int) -> np.ndarray:
    """(n_to, n_from): the share of source interval i (of [0, 1] cut into n_from) that lies in
    target interval j (of [0, 1] cut into n_to). Each column sums to 1."""
    if n_from < 1 or n_to < 1:
        raise ValueError(f"grid sides must be positive, got {n_from} -> {n_to}")
    # Exact on the integer lattice of side n_from * n_to: source i covers [i*n_to, (i+1)*n_to).
    lo_to = np.arange(n_to)[:, None] * n_from
    lo_from = np.arange(n_from)[None, :] * n_to
    covered = np.minimum(lo_to + n_from, lo_from + n_to) - np.maximum(lo_to, lo_from)
    return np.clip(covered, 0, None) / n_to


def resample(grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area-weighted, mass-preserving resampling of a (rows, columns) grid onto `shape` over the
    same region: each input cell's mass is shared among the output cells it overlaps, by area."""
    grid = np.asarray(grid, dtype=np.float64)
    if shape == grid.shape:
        return grid.copy()
    return overlap_weights(grid.shape[0], shape[0]) @ grid @ overlap_weights(grid.shape[1], shape[1]).T
