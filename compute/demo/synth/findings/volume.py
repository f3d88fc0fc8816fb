"""Findings that change the anatomy's size: cardiomegaly and atelectasis (volume loss)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from compute.demo.synth.anatomy import Scene
from compute.demo.synth.grid import SIDE_SIGN, soft_inside
from compute.demo.synth.patient import ENLARGED_CTR, Thorax
from compute.demo.synth.findings.base import FindingRenderer, Lesion, Placement, box_around, full_like, point_in_zone


def enlarge_heart(thorax: Thorax, placement: Placement, rng: np.random.Generator) -> Thorax:
    """A larger, more globular heart: the cardiothoracic ratio well above 0.5."""
    heart = replace(thorax.heart, ctr=rng.uniform(*ENLARGED_CTR),
                    half_height=thorax.heart.half_height * rng.uniform(1.1, 1.3))
    return replace(thorax, heart=heart)


def draw_cardiomegaly(scene: Scene, placement: Placement, rng: np.random.Generator) -> Lesion:
    """The enlarged heart is drawn with the anatomy; the lesion is the cardiac silhouette."""
    return Lesion(mask=scene.heart > 0.5)


def lose_volume(thorax: Thorax, placement: Placement, rng: np.random.Generator) -> Thorax:
    """Elevate the hemidiaphragm on the collapsed side and pull the mediastinum toward it."""
    for side in placement.sides:
        hemi = thorax.side(side)
        lift = rng.uniform(0.1, 0.17)  # clearly higher than the other side, even at 224 px
        thorax = thorax.with_side(side, replace(hemi, dome_v=hemi.dome_v - lift,
                                                costophrenic_v=hemi.costophrenic_v - 0.5 * lift))
    if placement.side in ("right", "left"):
        shift = SIDE_SIGN[placement.side] * rng.uniform(0.03, 0.055)
        thorax = replace(thorax, mediastinal_shift=thorax.mediastinal_shift + shift)
    return thorax


def draw_atelectasis(scene: Scene, placement: Placement, rng: np.random.Generator) -> Lesion:
    """Plate-like (discoid) opacities: dense bands, roughly horizontal, thick along most of their
    length and tapering only at the ends, with a faint haze around them: 0.26-0.48 patient units
    long and 0.04-0.07 thick, so even the thinnest is about 4 pixels thick at 224 px."""
    grid = scene.grid
    density = full_like(grid)
    for side in placement.sides:
        for _ in range(int(rng.integers(1, 3))):
            centre = point_in_zone(scene.thorax, side, placement.zone, rng, margin=0.08)
            half_length, half_width = rng.uniform(0.13, 0.24), max(rng.uniform(0.02, 0.034), grid.px(2.0))
            tilt = np.deg2rad(rng.uniform(-8, 20)) * -SIDE_SIGN[side]  # laterally slightly higher, as a rule
            rows, cols = grid.crop(*box_around(centre, half_length + 0.06))
            du, dv = grid.u[rows, cols] - np.float32(centre[0]), grid.v[rows, cols] - np.float32(centre[1])
            along = du * np.float32(np.cos(tilt)) + dv * np.float32(np.sin(tilt))
            across = -du * np.float32(np.sin(tilt)) + dv * np.float32(np.cos(tilt))
            profile = np.clip(1.0 - (along / np.float32(half_length)) ** 2, 0.0, 1.0) ** 0.4  # blunt lens
            plate = soft_inside(np.abs(across) - np.float32(half_width) * profile, grid.px(1.5))
            haze = np.exp(-(across / np.float32(half_width * 3.5)) ** 2) * profile
            lesion = (np.float32(rng.uniform(0.28, 0.4)) * plate + 0.1 * haze) * scene.lungs[side][rows, cols]
            density[rows, cols] = np.maximum(density[rows, cols], lesion)
    return Lesion(mask=density > 0.11, density=density)


RENDERERS = (
    FindingRenderer("cardiomegaly", draw_cardiomegaly, adjust=enlarge_heart),
    FindingRenderer("atelectasis", draw_atelectasis, adjust=lose_volume),
)
