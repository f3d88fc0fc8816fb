"""From a row of image-token weights to a 2-D grid."""

from __future__ import annotations

import math

import numpy as np


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
