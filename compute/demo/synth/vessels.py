"""Lung vascular markings: branching vessel trees grown from each hilum, splatted as tubes.

Trees grow level by level (vectorised over branches) and stop at the lung outline; each
segment is drawn as a filled tube of sample points whose weight follows a cylinder's
projected thickness, so vessels taper and branch like real pulmonary markings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from compute.demo.synth.grid import SIDE_SIGN, Grid
from compute.demo.synth.patient import Thorax
from compute.demo.synth.shapes import lung_outline_sd

_LEVELS = 7  # branching generations
_TRUNKS = (7, 10)  # primary vessels per lung (min, max)
_TRUNK_HALF_WIDTH = 0.013  # patient units


@dataclass(frozen=True)
class Segments:
    starts: np.ndarray  # (n, 2) as (u, v)
    ends: np.ndarray  # (n, 2)
    half_widths: np.ndarray  # (n,) patient units
    weights: np.ndarray  # (n,) relative density


def grow_vessel_tree(thorax: Thorax, side: str, rng: np.random.Generator) -> Segments:
    """Primary vessels fan out of the hilum; every generation forks in two, shorter, thinner and
    fainter, until a branch would leave the lung."""
    sign = SIDE_SIGN[side]
    hemi = thorax.side(side)
    hilum = np.array([thorax.mediastinal_shift + sign * thorax.hilum_u, thorax.hilum_v], dtype=np.float32)
    n = int(rng.integers(*_TRUNKS, endpoint=True))
    # Angles from straight up (-90 deg) through lateral (0) to straight down (+90), in the side's frame.
    spread = np.linspace(-75.0, 80.0, n) + rng.uniform(-8.0, 8.0, n)
    angles = np.deg2rad(spread)
    lengths = rng.uniform(0.12, 0.18, n).astype(np.float32)
    starts = hilum[None] + rng.normal(0.0, 0.015, (n, 2)).astype(np.float32)  # (n, 2)
    half_widths = np.full(n, _TRUNK_HALF_WIDTH, dtype=np.float32)
    weights = np.ones(n, dtype=np.float32)

    out: list[tuple[np.ndarray, ...]] = []
    for _ in range(_LEVELS):
        direction = np.stack([sign * np.cos(angles), np.sin(angles)], -1).astype(np.float32)  # (k, 2)
        ends = starts + direction * lengths[:, None]
        inside = lung_outline_sd(ends[:, 0], ends[:, 1], hemi, side) < -0.01
        out.append((starts, ends, half_widths, weights))
        starts, angles = ends[inside], angles[inside]
        lengths, half_widths, weights = lengths[inside], half_widths[inside], weights[inside]
        if not len(starts):
            break
        k = len(starts)
        turn = np.deg2rad(rng.uniform(10.0, 35.0, (k, 2))) * np.array([-1.0, 1.0])  # (k, 2)
        starts = np.repeat(starts, 2, 0)
        angles = (angles[:, None] + turn + np.deg2rad(rng.normal(0, 9, (k, 2)))).reshape(-1)
        lengths = np.repeat(lengths, 2) * rng.uniform(0.75, 0.98, 2 * k).astype(np.float32)
        half_widths = np.repeat(half_widths, 2) * np.float32(0.72)
        weights = np.repeat(weights, 2) * np.float32(0.93)
    segments = Segments(*(np.concatenate(parts).astype(np.float32) for parts in zip(*out)))
    # Peripheral vessels are fainter than central ones of the same generation.
    distance = np.sqrt((((segments.starts + segments.ends) / 2 - hilum) ** 2).sum(1))
    return replace(segments, weights=segments.weights * (0.6 + 0.4 * np.exp(-distance / np.float32(0.3))))


def splat_segments(grid: Grid, segments: Segments) -> np.ndarray:
    """Draw segments as filled tubes of sample points (a little over one per pixel each way).

    Thin tubes are drawn first, so a trunk overwrites the fainter branches that cross it (a
    cheap max-composite). Points off the image are clamped to its border, which the callers
    mask away (vessels live inside the lungs).
    """
    size = grid.size
    image = np.zeros(size * size, dtype=np.float32)
    step = np.float32(grid.px(0.9))
    delta = segments.ends - segments.starts  # (n, 2)
    length = np.sqrt((delta ** 2).sum(1)) + np.float32(1e-6)  # (n,)
    along = delta / length[:, None]
    normal = np.stack([-along[:, 1], along[:, 0]], -1)
    half_width = np.maximum(segments.half_widths, np.float32(grid.px(0.65)))
    n_along = np.ceil(length / step).astype(np.int64) + 1
    n_across = np.ceil(2 * half_width / step).astype(np.int64) + 1
    for m in np.unique(n_across):  # one batch per tube width in samples, thinnest first
        idx = np.flatnonzero(n_across == m)
        a_max = int(n_along[idx].max())
        t = np.minimum(np.arange(a_max, dtype=np.float32)[None] / (n_along[idx, None] - 1), 1.0)  # (k, a)
        o = np.linspace(-1.0, 1.0, int(m), dtype=np.float32)  # (m,)
        base = segments.starts[idx, None] + along[idx, None] * (t * length[idx, None])[..., None]  # (k, a, 2)
        offset = normal[idx, None] * (o[None, :] * half_width[idx, None])[..., None]  # (k, m, 2)
        points = base[:, :, None] + offset[:, None]  # (k, a, m, 2)
        # Projected thickness of a cylinder, scaled (gently) by its diameter.
        profile = np.sqrt(1.0 - o * o * 0.95)[None]  # (1, m)
        value = segments.weights[idx, None] * profile * (half_width[idx, None] / _TRUNK_HALF_WIDTH) ** 0.25  # (k, m)
        rows, cols = grid.to_pixels(points[..., 0].ravel(), points[..., 1].ravel())
        rows = np.clip(np.rint(rows), 0, size - 1).astype(np.intp)
        cols = np.clip(np.rint(cols), 0, size - 1).astype(np.intp)
        image[rows * size + cols] = np.broadcast_to(value[:, None, :], points.shape[:3]).ravel()
    return image.reshape(size, size)
