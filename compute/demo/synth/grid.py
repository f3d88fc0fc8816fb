"""Patient coordinates on the pixel grid, and the soft-edge helpers every shape uses.

Patient coordinates: u runs from the image's left (-1) to its right (+1), so the patient's
LEFT side has u > 0; v runs from the top (-1) to the bottom (+1). Patient size, position
and in-plane tilt are applied by mapping pixels into these coordinates, so every shape is
evaluated analytically at any output size and no image is ever resampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIDE_SIGN = {"right": -1.0, "left": 1.0}  # patient right is image left (u < 0)


@dataclass(frozen=True)
class Pose:
    scale: float  # image half-widths per patient unit: larger = bigger patient on the film
    shift_u: float  # horizontal offset of the patient's midline, in image half-widths
    shift_v: float  # vertical offset, in image half-heights
    tilt_deg: float  # in-plane rotation of the patient, degrees


@dataclass(frozen=True)
class Grid:
    u: np.ndarray  # (H, W) float32 patient coordinate, image-left -1 .. image-right +1
    v: np.ndarray  # (H, W) float32 patient coordinate, top -1 .. bottom +1
    size: int
    px_per_unit: float  # pixels per patient unit

    def px(self, n_pixels: float) -> float:
        """A length of `n_pixels` pixels in patient units (for edge widths that track resolution)."""
        return n_pixels / self.px_per_unit

    def crop(self, u0: float, u1: float, v0: float, v1: float, pad_px: int = 2) -> tuple[slice, slice]:
        """Pixel (rows, cols) slices that cover the patient-coordinate box [u0, u1] x [v0, v1]."""
        corners_u = np.array([u0, u1, u0, u1])
        corners_v = np.array([v0, v0, v1, v1])
        rows, cols = self.to_pixels(corners_u, corners_v)
        r0 = max(int(np.floor(rows.min())) - pad_px, 0)
        r1 = min(int(np.ceil(rows.max())) + pad_px + 1, self.size)
        c0 = max(int(np.floor(cols.min())) - pad_px, 0)
        c1 = min(int(np.ceil(cols.max())) + pad_px + 1, self.size)
        return slice(r0, max(r1, r0)), slice(c0, max(c1, c0))

    def to_pixels(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols), fractional, of patient coordinates: make_grid's affine map inverted."""
        u00, v00 = float(self.u[0, 0]), float(self.v[0, 0])
        du_dc, dv_dc = float(self.u[0, 1] - u00), float(self.v[0, 1] - v00)
        du_dr, dv_dr = float(self.u[1, 0] - u00), float(self.v[1, 0] - v00)
        det = du_dc * dv_dr - du_dr * dv_dc
        cols = ((u - u00) * dv_dr - (v - v00) * du_dr) / det
        rows = (du_dc * (v - v00) - dv_dc * (u - u00)) / det
        return rows, cols


def make_grid(size: int, pose: Pose) -> Grid:
    """Map every pixel centre to patient coordinates under `pose`."""
    if size < 8:
        raise ValueError(f"image size must be at least 8 pixels, got {size}")
    centres = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0)  # (size,)
    x = centres[None, :] - np.float32(pose.shift_u)  # (1, W)
    y = centres[:, None] - np.float32(pose.shift_v)  # (H, 1)
    angle = np.deg2rad(pose.tilt_deg)
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    inv_scale = np.float32(1.0 / pose.scale)
    u = (cos * x + sin * y) * inv_scale  # (H, W)
    v = (-sin * x + cos * y) * inv_scale  # (H, W)
    return Grid(u=u.astype(np.float32), v=v.astype(np.float32), size=size, px_per_unit=size / 2.0 * pose.scale)


def soft_inside(signed_distance: np.ndarray, width: float) -> np.ndarray:
    """1 inside (negative distance), 0 outside, with a linear ramp `width` wide across the edge."""
    return np.clip(0.5 - signed_distance * np.float32(1.0 / max(width, 1e-6)), 0.0, 1.0)


def smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Union of two signed-distance shapes with their concave joins rounded over `k` units."""
    h = np.clip(0.5 + 0.5 * (b - a) / np.float32(k), 0.0, 1.0)
    return b + (a - b) * h - np.float32(k) * h * (1.0 - h)


def smoothstep(edge0: float | np.ndarray, edge1: float | np.ndarray, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def ellipse_sd(u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float, rv: float,
               angle_deg: float = 0.0) -> np.ndarray:
    """Approximate signed distance to a rotated ellipse (exact on the axes, good enough near the edge)."""
    a = np.deg2rad(angle_deg)
    du, dv = u - np.float32(cu), v - np.float32(cv)
    x = du * np.float32(np.cos(a)) + dv * np.float32(np.sin(a))
    y = -du * np.float32(np.sin(a)) + dv * np.float32(np.cos(a))
    q = np.sqrt((x / np.float32(ru)) ** 2 + (y / np.float32(rv)) ** 2)
    return (q - 1.0) * np.float32(min(ru, rv))


def segments_distance(u: np.ndarray, v: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                      half_widths: np.ndarray | None = None) -> np.ndarray:
    """Distance from every point to the nearest of n segments (to the surface of the nearest
    tube when `half_widths` (n,) are given). u, v: (h, w); starts, ends: (n, 2) as (u, v)."""
    best = np.full(u.shape, np.inf, dtype=np.float32)
    for i in range(len(starts)):
        au, av = np.float32(starts[i][0]), np.float32(starts[i][1])
        bu, bv = np.float32(ends[i][0] - starts[i][0]), np.float32(ends[i][1] - starts[i][1])
        du, dv = u - au, v - av
        t = np.clip((du * bu + dv * bv) * np.float32(1.0 / max(bu * bu + bv * bv, 1e-12)), 0.0, 1.0)
        du -= t * bu
        dv -= t * bv
        dist = np.sqrt(du * du + dv * dv)
        if half_widths is not None:
            dist -= np.float32(half_widths[i])
        np.minimum(best, dist, out=best)
    return best
