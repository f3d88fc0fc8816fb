"""From density to a radiograph: exposure, detector blur, display window, noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from compute.demo.synth.grid import Grid
from compute.demo.synth.patient import Acquisition

_REFERENCE_DENSITY = 1.3  # density that maps to full brightness before windowing


def expose(density: np.ndarray, grid: Grid, acquisition: Acquisition, rng: np.random.Generator) -> np.ndarray:
    """Float32 image in [0, 1], bright = dense."""
    k = np.float32(acquisition.attenuation)
    signal = (1.0 - np.exp(-k * np.maximum(density, 0.0))) / np.float32(1.0 - np.exp(-k * _REFERENCE_DENSITY))
    signal *= 1.0 + np.float32(acquisition.heel) * grid.v
    blur = acquisition.blur_px * grid.size / 512
    if blur > 0.3:
        signal = ndimage.gaussian_filter(signal, blur, truncate=2.5)
    low, high = np.float32(acquisition.window_low), np.float32(acquisition.window_high)
    image = (signal - low) * np.float32(1.0 / (high - low))
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(acquisition.noise_sd)
    return np.clip(image, 0.0, 1.0).astype(np.float32)
