"""Airspace findings: consolidation, pneumonia, focal lung opacity, pulmonary edema."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compute.demo.synth.anatomy import Scene
from compute.demo.synth.grid import SIDE_SIGN, smoothstep, soft_inside
from compute.demo.synth.texture import smooth_noise
from compute.demo.synth.findings.base import (FindingRenderer, Lesion, Placement, box_around, branching_tubes, full_like, irregular_ellipse_sd,
                   point_in_zone)


@dataclass(frozen=True)
class Opacity:
    centre: tuple[float, float]  # (u, v)
    radii: tuple[float, float]  # semi-axes, patient units
    strength: float  # share of the lung's air replaced by fluid or cells, 0..1
    edge: float  # width of the soft margin, patient units
    roughness: float = 0.15  # lobulation of the outline
    bronchograms: bool = False  # air-filled bronchi crossing the opacity
    fissure_v: float | None = None  # a fissure bounding the opacity: a sharp horizontal edge
    below_fissure: bool = True  # which side of the fissure the opacity fills
    mottling: float = 0.0  # 0 homogeneous .. 1 fully mottled


def draw_opacity(scene: Scene, side: str, spec: Opacity, rng: np.random.Generator) -> np.ndarray:
    """Density (H, W) of one airspace opacity, confined to the lung of `side`."""
    grid, thorax = scene.grid, scene.thorax
    out = full_like(grid)
    rows, cols = grid.crop(*box_around(spec.centre, 1.5 * max(spec.radii)))
    u, v = grid.u[rows, cols], grid.v[rows, cols]
    sd = irregular_ellipse_sd(u, v, spec.centre, spec.radii, rng.uniform(-30, 30), rng, spec.roughness)
    if spec.fissure_v is not None:
        beyond = np.float32(spec.fissure_v) - v if spec.below_fissure else v - np.float32(spec.fissure_v)
        sd = np.maximum(sd, beyond)
    shape = soft_inside(sd, max(spec.edge, grid.px(1.0)))
    if spec.mottling:
        # Blobs about 0.05 patient units across (5 px at 224): coarse enough to survive small sizes.
        noise = smooth_noise(shape.shape, rng, feature_px=max(2.5, 0.05 * grid.px_per_unit))
        shape *= (1.0 - spec.mottling) + spec.mottling * noise
    density = np.float32(spec.strength) * shape * scene.air[side][rows, cols]
    if spec.bronchograms:
        hilum = (thorax.mediastinal_shift + SIDE_SIGN[side] * thorax.hilum_u, thorax.hilum_v)
        heading = np.arctan2(spec.centre[1] - hilum[1], spec.centre[0] - hilum[0])
        reach = max(spec.radii)
        root = (spec.centre[0] - 0.6 * reach * np.cos(heading), spec.centre[1] - 0.6 * reach * np.sin(heading))
        tubes = branching_tubes(u, v, root, heading, 0.5 * reach, 0.008, rng, grid.px(1.5), levels=3)
        density *= 1.0 - 0.45 * tubes * np.clip(shape * 2.0 - 1.0, 0.0, 1.0)  # only inside the dense core
    out[rows, cols] = density
    return out


def draw_consolidation(scene: Scene, placement: Placement, rng: np.random.Generator) -> Lesion:
    """Lobar, fairly homogeneous airspace opacity with air bronchograms. On the right, the minor
    fissure gives an upper lobe opacity a sharp lower edge and a middle lobe one a sharp upper edge."""
    density = full_like(scene.grid)
    for side in placement.sides:
        centre = point_in_zone(scene.thorax, side, placement.zone, rng, margin=0.08)
        fissure_v, below = None, True
        if side == "right" and placement.zone in ("upper", "middle"):
            fissure_v, below = scene.thorax.hilum_v - 0.02, placement.zone == "middle"
            offset = rng.uniform(0.04, 0.1)
            centre = (centre[0], max(centre[1], fissure_v + offset) if below else min(centre[1], fissure_v - offset))
        spec = Opacity(centre=centre, radii=(rng.uniform(0.2, 0.32), rng.uniform(0.14, 0.24)),
                       strength=rng.uniform(0.55, 0.8), edge=rng.uniform(0.03, 0.065), bronchograms=True,
                       fissure_v=fissure_v, below_fissure=below)
        density += draw_opacity(scene, side, spec, rng)
    return Lesion(mask=density > 0.1, density=density)


def draw_pneumonia(scene: Scene, placement: Placement, rng: np.random.Generator) -> Lesion:
    """Patchy, mottled airspace opacities clustered in one zone; bronchograms in some. Each patch
    is ill defined and coarsely mottled (unlike consolidation's homogeneous lobar opacity), but
    dense and large enough to see at 224 px."""
    density = full_like(scene.grid)
    for side in placement.sides:
        centre = point_in_zone(scene.thorax, side, placement.zone, rng, margin=0.1)
        for i in range(int(rng.integers(4, 8))):
            offset = rng.normal(0.0, 0.075, 2) if i else np.zeros(2)
            spec = Opacity(centre=(centre[0] + offset[0], centre[1] + offset[1]),
                           radii=(rng.uniform(0.08, 0.14), rng.uniform(0.07, 0.12)), strength=rng.uniform(0.7, 0.95),
                           edge=rng.uniform(0.04, 0.07), roughness=0.3,
                           bronchograms=i == 0 and rng.random() < 0.5, mottling=0.5)
            density = np.maximum(density, draw_opacity(scene, side, spec, rng))
    return Lesion(mask=density > 0.08, density=density)


def draw_lung_opacity(scene: Scene, placement: Placement, rng: np.random.Generator) -> Lesion:
    """A focal opacity: a round, well-defined nodule or mass, or an ill-defined patch. Its diameter
    is about 6-15% of the image width, so even the smallest covers several 14 px patches at 224 px."""
    density = full_like(scene.grid)
    for side in placement.sides:
        centre = point_in_zone(scene.thorax, side, placement.zone, rng, margin=0.11)
        if rng.random() < 0.5:  # nodule or mass: round, dense, well defined
            r = rng.uniform(0.07, 0.12)
            spec = Opacity(centre, (r, r * rng.uniform(0.85, 1.0)), strength=rng.uniform(0.75, 0.95), edge=0.012,
                           roughness=0.06)
        else:  # patch: larger, a little fainter, ill defined
            spec = Opacity(centre, (rng.uniform(0.1, 0.15), rng.uniform(0.08, 0.12)),
                           strength=rng.uniform(0.6, 0.8), edge=rng.uniform(0.03, 0.045), roughness=0.2)
        density += draw_opacity(scene, side, spec, rng)
    return Lesion(mask=density > 0.08, density=density)


def draw_edema(scene: Scene, placement: Placement, rng: np.random.Generator) -> Lesion:
    """Bilateral perihilar haze (bat-wing) that blurs the vessels, sparing the periphery, with
    Kerley B lines at the bases in some cases."""
    grid, thorax = scene.grid, scene.thorax
    strength, spread_u, spread_v = rng.uniform(0.2, 0.32), rng.uniform(0.22, 0.3), rng.uniform(0.3, 0.4)
    haze, lines = full_like(grid), full_like(grid)
    for side in ("right", "left"):
        hilum = (thorax.mediastinal_shift + SIDE_SIGN[side] * (thorax.hilum_u - 0.03), thorax.hilum_v + 0.05)
        rows, cols = grid.crop(*box_around(hilum, 2.2 * spread_v))
        u, v = grid.u[rows, cols], grid.v[rows, cols]
        side_haze = np.exp(-((u - np.float32(hilum[0])) / np.float32(spread_u)) ** 2
                           - ((v - np.float32(hilum[1])) / np.float32(spread_v)) ** 2) * scene.lungs[side][rows, cols]
        side_haze *= 0.75 + 0.25 * smooth_noise(side_haze.shape, rng, feature_px=max(2.0, 10.0 * grid.size / 512))
        haze[rows, cols] = np.maximum(haze[rows, cols], side_haze)
        if rng.random() < 0.5:
            lines = np.maximum(lines, _kerley_lines(scene, side, rng))
    return Lesion(mask=(haze > 0.25) | (lines > 0.05), density=np.float32(strength) * haze + 0.12 * lines,
                  markings_keep=1.0 - 0.7 * haze)


def _kerley_lines(scene: Scene, side: str, rng: np.random.Generator) -> np.ndarray:
    """Short horizontal lines (0..1) reaching the lateral pleura at the lung base."""
    grid, hemi = scene.grid, scene.thorax.side(side)
    sign = SIDE_SIGN[side]
    out = full_like(grid)
    rows, cols = grid.crop(*sorted((sign * (hemi.lateral_u - 0.12), sign * hemi.lateral_u)),
                           hemi.dome_v - 0.2, hemi.costophrenic_v)
    u, v = grid.u[rows, cols], grid.v[rows, cols]
    lines = np.zeros_like(u)
    for line_v in rng.uniform(hemi.dome_v - 0.15, hemi.dome_v + 0.1, int(rng.integers(3, 7))):
        length = rng.uniform(0.03, 0.06)
        along = smoothstep(hemi.lateral_u - length - 0.01, hemi.lateral_u - length + 0.01, u * np.float32(sign))
        line = soft_inside(np.abs(v - np.float32(line_v)) - np.float32(grid.px(0.7)), grid.px(0.8))
        lines = np.maximum(lines, line * along)
    out[rows, cols] = lines * scene.lungs[side][rows, cols]
    return out


RENDERERS = (
    FindingRenderer("consolidation", draw_consolidation),
    FindingRenderer("pneumonia", draw_pneumonia),
    FindingRenderer("lung_opacity", draw_lung_opacity),
    FindingRenderer("edema", draw_edema),
)
