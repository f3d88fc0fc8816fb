"""Pleural findings: effusion, pneumothorax, pleural thickening.

Each is evaluated inside the affected lung's box only (see `lung_crop`).
"""

from __future__ import annotations

import numpy as np

from compute.demo.synth.anatomy import Scene
from compute.demo.synth.grid import SIDE_SIGN, smoothstep, soft_inside
from compute.demo.synth.shapes import lung_outline_sd, zone_bounds
from compute.demo.synth.findings.base import FindingRenderer, Lesion, Placement, full_like, lung_crop


def draw_pleural_effusion(scene: Scene, placement: Placement, rng: np.random.Generator) -> Lesion:
    """Dependent fluid at the lung base: its upper surface is a meniscus (higher at the chest
    wall), it fills the costophrenic angle and hides the hemidiaphragm."""
    grid = scene.grid
    density, mask = full_like(grid), np.zeros(grid.u.shape, dtype=bool)
    for side in placement.sides:
        hemi = scene.thorax.side(side)
        rows, cols, u, v = lung_crop(scene, side)
        lung, air = scene.lungs[side][rows, cols], scene.air[side][rows, cols]
        level = hemi.dome_v - rng.uniform(-0.04, 0.32)  # fluid surface at the medial end
        rise = rng.uniform(0.1, 0.22)  # meniscus: how much higher the fluid climbs laterally
        across = np.clip((u * np.float32(SIDE_SIGN[side]) - hemi.medial_u) / (hemi.lateral_u - hemi.medial_u), 0.0, 1.0)
        surface = np.float32(level) - np.float32(rise) * across ** 2
        depth = v - surface  # positive below the fluid surface
        fill = smoothstep(0.0, 0.06, depth) * (0.9 + 0.1 * smoothstep(0.0, 0.25, depth))
        density[rows, cols] += np.float32(rng.uniform(0.9, 1.0)) * fill * air + 0.03 * fill * lung
        mask[rows, cols] |= (depth > grid.px(1.0)) & (lung > 0.5)
    return Lesion(mask=mask, density=density)


def draw_pneumothorax(scene: Scene, placement: Placement, rng: np.random.Generator) -> Lesion:
    """Air between the chest wall and a lung that has come away from it: a thin visceral pleural
    line with no lung markings beyond it, widest at the apex and upper lateral chest."""
    grid = scene.grid
    density, keep = full_like(grid), np.ones(grid.u.shape, dtype=np.float32)
    mask = np.zeros(grid.u.shape, dtype=bool)
    for side in placement.sides:
        hemi = scene.thorax.side(side)
        rows, cols, u, v = lung_crop(scene, side)
        lung = scene.lungs[side][rows, cols]
        depth = rng.uniform(0.05, 0.15)  # gap at the apex and upper lateral chest
        reach = rng.uniform(0.45, 0.85)  # how far down the lateral chest wall the gap extends
        h = (v - np.float32(hemi.apex_v)) / np.float32(hemi.costophrenic_v - hemi.apex_v)
        inset = np.float32(depth) * np.clip(1.0 - h / np.float32(reach), 0.0, 1.0) ** 0.6
        collapsed = lung_outline_sd(u, v, hemi, side, lateral_inset=inset, apex_drop=0.7 * depth)
        gap = collapsed - scene.lung_outline_sd[side][rows, cols]  # zero where the lung still touches the wall
        air = lung * soft_inside(-collapsed, grid.px(1.0)) * smoothstep(0.0, grid.px(1.0), gap)
        # The visceral pleura: a thin line just inside the collapsed lung's edge, drawn only
        # where that edge has really come away from the chest wall.
        line = soft_inside(np.abs(collapsed + np.float32(grid.px(1.2))) - np.float32(grid.px(0.9)), grid.px(0.8))
        density[rows, cols] += 0.16 * line * smoothstep(grid.px(1.5), grid.px(3.0), gap) * lung - 0.09 * air
        keep[rows, cols] *= 1.0 - air
        mask[rows, cols] |= air > 0.5
    return Lesion(mask=mask, density=density, markings_keep=keep)


def draw_pleural_thickening(scene: Scene, placement: Placement, rng: np.random.Generator) -> Lesion:
    """Soft-tissue band along the inner lateral chest wall (an apical cap in the upper zone),
    lobulated like pleural plaques; at its thickest it is about 4-16% of the image width."""
    grid = scene.grid
    density, keep = full_like(grid), np.ones(grid.u.shape, dtype=np.float32)
    mask = np.zeros(grid.u.shape, dtype=bool)
    for side in placement.sides:
        hemi = scene.thorax.side(side)
        rows, cols, u, v = lung_crop(scene, side)
        v0, v1 = zone_bounds(hemi, placement.zone or "middle")
        thickness = max(rng.uniform(0.07, 0.11), grid.px(4.0))  # at least a few pixels at small sizes
        phase, wavelength = rng.uniform(0, 2 * np.pi), rng.uniform(0.12, 0.22)  # rounded lobules, not teeth
        lumps = (0.65 + 0.25 * np.sin(v * np.float32(2 * np.pi / wavelength) + np.float32(phase))
                 + 0.1 * np.sin(v * np.float32(2 * np.pi / (0.43 * wavelength)) + np.float32(2 * phase)))
        extent = smoothstep(v0 - 0.03, v0 + 0.04, v) * smoothstep(v1 + 0.03, v1 - 0.04, v)
        inset = np.float32(thickness) * lumps * extent
        apical_cap = 0.8 * thickness if placement.zone == "upper" else 0.0
        inner = lung_outline_sd(u, v, hemi, side, lateral_inset=inset, apex_drop=apical_cap)
        gap = inner - scene.lung_outline_sd[side][rows, cols]  # band thickness; zero without thickening
        band = (scene.lungs[side][rows, cols] * soft_inside(-inner, grid.px(2.0))
                * smoothstep(grid.px(0.5), grid.px(2.0), gap) * extent)
        density[rows, cols] += np.float32(rng.uniform(0.45, 0.6)) * band
        keep[rows, cols] *= 1.0 - band
        mask[rows, cols] |= band > 0.5
    return Lesion(mask=mask, density=density, markings_keep=keep)


RENDERERS = (
    FindingRenderer("pleural_effusion", draw_pleural_effusion),
    FindingRenderer("pneumothorax", draw_pneumothorax, bilateral=False),
    FindingRenderer("pleural_abnormality", draw_pleural_thickening),
)
