"""Maps of different models on one grid: mass-preserving, area-weighted resampling.

A stored map is a (rows, cols) grid over the image as the model saw it, row 0 at the top,
summing to 1. Each cell is read as mass spread evenly over its rectangle of the unit square;
a cell of the new grid gets the mass of the part of every old cell it covers. So the total
stays 1, a grid whose side divides the new one is replicated block by block (each old cell's
mass split evenly over its block), and any shape (23x17 from a dynamic-resolution model)
lands on the same cells as any other. Pure numpy.
"""

from __future__ import annotations

import numpy as np

from compute.model.layout import resample

# A multiple of 16 (Gemma-3, PaliGemma at 224 px) and of 24 (LLaVA-1.5): those resample exactly.
COMMON_GRID: tuple[int, int] = (48, 48)


def to_common_grid(grid: np.ndarray, shape: tuple[int, int] = COMMON_GRID) -> np.ndarray:
    """`grid` (rows, cols), non-negative with a positive sum, resampled onto `shape` by area.
    It is normalised to sum 1 first; the result sums to 1. ValueError for a grid that is not
    2-D, has negative or non-finite cells, or sums to zero."""
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 2 or g.size == 0:
        raise ValueError(f"expected a non-empty 2-D grid, got shape {g.shape}")
    if not np.isfinite(g).all() or (g < 0).any():
        raise ValueError("the grid has negative or non-finite cells")
    total = g.sum()
    if total <= 0:
        raise ValueError("the grid sums to zero")
    out = resample(g / total, (int(shape[0]), int(shape[1])))
    return out / out.sum()
