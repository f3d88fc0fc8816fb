"""Smooth random fields (mottling of patchy opacities, unevenness of haze)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def smooth_noise(shape: tuple[int, int], rng: np.random.Generator, feature_px: float) -> np.ndarray:
    """(h, w) random field in [0, 1] with blobs about `feature_px` pixels across: uniform noise
    on a coarse lattice, bilinearly upsampled."""
    h, w = shape
    step = max(feature_px, 1.0)
    coarse = rng.random((int(np.ceil(h / step)) + 2, int(np.ceil(w / step)) + 2)).astype(np.float32)
    fine = ndimage.zoom(coarse, step, order=1)[:h, :w]
    if fine.shape != (h, w):  # zoom rounds the output size down
        fine = np.pad(fine, ((0, h - fine.shape[0]), (0, w - fine.shape[1])), mode="edge")
    lo, hi = float(fine.min()), float(fine.max())
    return (fine - lo) / np.float32(max(hi - lo, 1e-6))
