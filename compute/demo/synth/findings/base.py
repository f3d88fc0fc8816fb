"""What every finding renderer shares: placement, the lesion it returns, and shape helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from compute.data.conditions import condition
from compute.demo.synth.anatomy import Scene, lung_box
from compute.demo.synth.grid import SIDE_SIGN, Grid, segments_distance, soft_inside
from compute.demo.synth.patient import Thorax
from compute.demo.synth.shapes import lung_field_sd, lung_span_at, zone_bounds

BILATERAL_SHARE = 0.2  # chance that a finding that can be bilateral is


@dataclass(frozen=True)
class Placement:
    side: str | None  # "left" | "right" | "bilateral" | None (patient side)
    zone: str | None  # "upper" | "middle" | "lower" | None

    @property
    def sides(self) -> tuple[str, ...]:
        """The lungs involved."""
        if self.side == "bilateral":
            return ("right", "left")
        return (self.side,) if self.side else ()


@dataclass
class Lesion:
    mask: np.ndarray  # bool (H, W): where the lesion is
    density: np.ndarray | None = None  # (H, W) density added (negative for air)
    markings_keep: np.ndarray | None = None  # (H, W) factor on the lung markings (0 hides vessels)


Adjust = Callable[[Thorax, Placement, np.random.Generator], Thorax]
Draw = Callable[[Scene, Placement, np.random.Generator], Lesion]


@dataclass(frozen=True)
class FindingRenderer:
    key: str  # condition key
    draw: Draw
    adjust: Adjust | None = None  # changes the anatomy before it is drawn (heart size, volume loss)
    bilateral: bool = True  # whether "bilateral" is a possible side

    def place(self, rng: np.random.Generator) -> Placement:
        c = condition(self.key)
        side = None
        if c.lateral and self.bilateral:
            one_side = (1 - BILATERAL_SHARE) / 2
            side = str(rng.choice(("right", "left", "bilateral"), p=(one_side, one_side, BILATERAL_SHARE)))
        elif c.lateral:
            side = str(rng.choice(("right", "left")))
        zone = str(rng.choice(c.zones)) if c.zones else None
        return Placement(side=side, zone=zone)


def point_in_zone(thorax: Thorax, side: str, zone: str | None, rng: np.random.Generator,
                  margin: float = 0.05) -> tuple[float, float]:
    """A random point (u, v) inside the lung field of `side`, within `zone` when given, at least
    `margin` from the lung's edge when possible."""
    hemi = thorax.side(side)
    v0, v1 = zone_bounds(hemi, zone) if zone else (hemi.apex_v, hemi.dome_v)
    v = rng.uniform(v0, v1, 96)
    medial, lateral = lung_span_at(hemi, v)
    u = SIDE_SIGN[side] * rng.uniform(medial, lateral)
    sd = lung_field_sd(u.astype(np.float32), v.astype(np.float32), thorax, side)
    for limit in (-margin, -margin / 2, 0.0):
        ok = np.flatnonzero(sd < limit)
        if len(ok):
            return float(u[ok[0]]), float(v[ok[0]])
    best = int(np.argmin(sd))
    return float(u[best]), float(v[best])


def irregular_ellipse_sd(u: np.ndarray, v: np.ndarray, centre: tuple[float, float], radii: tuple[float, float],
                         angle_deg: float, rng: np.random.Generator, roughness: float) -> np.ndarray:
    """Signed distance to an ellipse whose radius wobbles with angle (lobulated outline)."""
    a = np.deg2rad(angle_deg)
    du, dv = u - np.float32(centre[0]), v - np.float32(centre[1])
    x = (du * np.float32(np.cos(a)) + dv * np.float32(np.sin(a))) / np.float32(radii[0])
    y = (-du * np.float32(np.sin(a)) + dv * np.float32(np.cos(a))) / np.float32(radii[1])
    q = np.sqrt(x * x + y * y)
    theta = np.arctan2(y, x)
    wobble = np.ones_like(q)
    for k in range(2, 6):  # a few low harmonics of the outline
        amplitude = np.float32(roughness * rng.uniform(0.3, 1.0) / k ** 0.5)
        wobble += amplitude * np.cos(k * theta + np.float32(rng.uniform(0, 2 * np.pi)))
    return (q - wobble) * np.float32(min(radii))


def box_around(centre: tuple[float, float], radius: float) -> tuple[float, float, float, float]:
    return centre[0] - radius, centre[0] + radius, centre[1] - radius, centre[1] + radius


def branching_tubes(u: np.ndarray, v: np.ndarray, root: tuple[float, float], heading: float, length: float,
                    half_width: float, rng: np.random.Generator, px: float, levels: int = 3) -> np.ndarray:
    """A small branching tree of tubes (0..1): air bronchograms inside an opacity."""
    starts, ends, widths = [], [], []
    frontier = [(np.array(root, dtype=np.float32), heading, length, half_width)]
    for _ in range(levels):
        grown = []
        for start, angle, ln, hw in frontier:
            end = start + ln * np.array([np.cos(angle), np.sin(angle)], dtype=np.float32)
            starts.append(start), ends.append(end), widths.append(hw)
            for turn in (-1.0, 1.0):
                grown.append((end, angle + turn * rng.uniform(0.25, 0.6), ln * rng.uniform(0.6, 0.8), hw * 0.75))
        frontier = grown
    half_widths = np.maximum(np.array(widths, dtype=np.float32), np.float32(0.6 * px))
    return soft_inside(segments_distance(u, v, np.array(starts), np.array(ends), half_widths), px)


def lung_crop(scene: Scene, side: str) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """(rows, cols, u, v) of the pixel box that holds one lung."""
    rows, cols = scene.grid.crop(*lung_box(scene.thorax, side))
    return rows, cols, scene.grid.u[rows, cols], scene.grid.v[rows, cols]


def full_like(grid: Grid) -> np.ndarray:
    return np.zeros((grid.size, grid.size), dtype=np.float32)
