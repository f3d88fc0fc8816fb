"""From a row of image-token weights to a 2-D grid."""

from __future__ import annotations

import numpy as np

from compute.model.layout import grid_shape  # noqa: F401 - re-exported; the layout owns it


def to_grid(weights: np.ndarray, shape: tuple[int, int], strip_border: int = 0) -> np.ndarray:
    """Normalise (n_tokens,) non-negative weights to sum 1 over a (rows, columns) grid,
    after zeroing `strip_border` outer rings if asked."""
    grid = np.asarray(weights, dtype=np.float64).reshape(shape)
    if strip_border:
        if 2 * strip_border >= min(shape):
            raise ValueError(f"cannot strip {strip_border} border rings from a {shape[0]}x{shape[1]} grid")
        kept = np.zeros_like(grid)
        kept[strip_border:-strip_border, strip_border:-strip_border] = 1.0
        grid = grid * kept
    total = grid.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError("the attention onto the image tokens sums to zero; nothing to normalise")
    return grid / total
