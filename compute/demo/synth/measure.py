"""Measurements on masks (pure functions)."""

from __future__ import annotations

import numpy as np


def horizontal_extent(mask: np.ndarray) -> int:
    """Number of columns between the leftmost and rightmost set pixel (0 for an empty mask)."""
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[-1] - cols[0] + 1) if len(cols) else 0


def cardiothoracic_ratio(heart: np.ndarray, right_lung: np.ndarray, left_lung: np.ndarray) -> float:
    """Maximal heart width over the internal thoracic width (lateral lung edge to lateral lung edge)."""
    thorax = horizontal_extent(right_lung | left_lung)
    return horizontal_extent(heart) / thorax if thorax else float("nan")
