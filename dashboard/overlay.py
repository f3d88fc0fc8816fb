"""Draw a token grid over its image. Pure: arrays and PIL images in, a PIL image out."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image
from scipy import ndimage

COLORMAPS = ("inferno", "viridis", "jet", "magma", "coolwarm")


def overlay(image: Image.Image, grid: np.ndarray, *, opacity: float = 0.5, threshold: float = 0.0,
            colormap: str = "inferno", size: int | None = None, signed: bool = False) -> Image.Image:
    """`image` (shown square, as the model saw it) with `grid` upsampled smoothly on top.

    Each pixel's opacity grows with its share of the peak (square root, so faint attention
    stays visible), up to `opacity`; below `threshold` x the peak it is left clear.
    `signed`: the grid is a difference map, coloured symmetrically around zero."""
    side = size or max(image.size)
    base = image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    values = np.asarray(grid, dtype=np.float64)
    if signed:
        peak = np.abs(values).max() or 1.0
        scaled = 0.5 + 0.5 * values / peak
        strength = np.abs(values) / peak
    else:
        peak = values.max() or 1.0
        scaled = values / peak
        strength = scaled
    smooth = _upsample(scaled, side)
    alpha = _upsample(strength, side)
    colours = colormaps[colormap](smooth)[..., :3]
    alpha = np.where(alpha >= threshold, opacity * np.sqrt(alpha), 0.0)[..., None]
    mixed = (1 - alpha) * (np.asarray(base, dtype=np.float64) / 255) + alpha * colours
    return Image.fromarray(np.round(mixed * 255).astype(np.uint8))


OUTLINE_COLOUR = (0, 255, 255)  # cyan: apart from every colormap's hot end


SINK_COLOUR = (255, 0, 255)  # magenta: attention-sink cells


def cell_mask(cells: list, grid: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """(height, width) bool of an image of `size` (width, height): the pixels of the grid cells listed."""
    marked = np.zeros(grid, dtype=bool)
    for r, c in cells:
        marked[int(r), int(c)] = True
    width, height = size
    rows = (np.arange(height) * grid[0] // height)
    cols = (np.arange(width) * grid[1] // width)
    return marked[rows[:, None], cols[None, :]]


def outline(image: Image.Image, lesion: np.ndarray, *, width: int = 2,
            colour: tuple[int, int, int] = OUTLINE_COLOUR) -> Image.Image:
    """`image` (as `overlay` returns it: the original shown square) with the edge of the
    boolean `lesion` mask (the original image's pixels) drawn on it."""
    side_w, side_h = image.size
    mask = np.asarray(Image.fromarray(lesion.astype(np.uint8) * 255).resize((side_w, side_h),
                                                                           Image.Resampling.NEAREST)) > 0
    edge = mask & ~ndimage.binary_erosion(mask, iterations=width, border_value=0)
    pixels = np.asarray(image.convert("RGB")).copy()
    pixels[edge] = colour
    return Image.fromarray(pixels)


def _upsample(values: np.ndarray, side: int) -> np.ndarray:
    img = Image.fromarray(values.astype(np.float32), mode="F")
    return np.asarray(img.resize((side, side), Image.Resampling.BILINEAR), dtype=np.float64).clip(0, 1)
