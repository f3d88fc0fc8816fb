"""Normal anatomy as a density map: body, lungs, heart, mediastinum, bones, lung markings.

Density is in soft-tissue units along the beam (about 1 through the mediastinum); air in
the lungs subtracts from it. `acquisition.expose` turns density into the image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import astuple, dataclass

import numpy as np

from compute.demo.synth.grid import SIDE_SIGN, Grid, ellipse_sd, segments_distance, smooth_union, smoothstep, soft_inside
from compute.demo.synth.patient import Thorax
from compute.demo.synth.shapes import body_sd, diaphragm_v, heart_sd, lung_outline_sd, mediastinum_sd
from compute.demo.synth.texture import smooth_noise
from compute.demo.synth.vessels import Segments, grow_vessel_tree, splat_segments

SIDES = ("right", "left")
LUNG_AIR = 0.42  # density removed by aerated lung at its edge; more toward the lung's core
MARKING_DENSITY = 0.14  # density of the central vessels
RIB_DENSITY = 0.1
CLAVICLE_DENSITY = 0.18
SPINE_DENSITY = 0.09
PARENCHYMA_DENSITY = 0.035


@dataclass
class Scene:
    grid: Grid
    thorax: Thorax
    density: np.ndarray  # (H, W) tissue density, without lung markings
    markings: np.ndarray  # (H, W) vessel and fine parenchymal texture density, confined to the lungs
    body: np.ndarray  # (H, W) soft body silhouette, 0..1
    heart: np.ndarray  # (H, W) soft heart, 0..1
    lungs: dict[str, np.ndarray]  # side -> (H, W) soft lung field, 0..1 (patient sides)
    air: dict[str, np.ndarray]  # side -> (H, W) density the aerated lung removes (what an opacity can restore)
    lung_outline_sd: dict[str, np.ndarray]  # side -> (H, W) signed distance to the lung outline (heart not cut)

    def anatomy_masks(self) -> dict[str, np.ndarray]:
        return {
            "body": self.body > 0.5,
            "right_lung": self.lungs["right"] > 0.5,
            "left_lung": self.lungs["left"] > 0.5,
            "heart": self.heart > 0.5,
        }


def build_scene(grid: Grid, thorax: Thorax, rng: np.random.Generator) -> Scene:
    u, v = grid.u, grid.v
    body = soft_inside(body_sd(u, v, thorax), grid.px(3.0))

    # Heart, mediastinum and lungs only exist inside the chest box: evaluate them there.
    rows, cols = grid.crop(*chest_box(thorax))
    cu, cv = u[rows, cols], v[rows, cols]
    heart_dist = heart_sd(cu, cv, thorax)
    central_dist = smooth_union(heart_dist, mediastinum_sd(cu, cv, thorax), 0.08)  # as shapes.central_sd
    heart = _paste(grid, rows, cols, soft_inside(heart_dist, grid.px(1.5)))
    outlines: dict[str, np.ndarray] = {}
    lungs: dict[str, np.ndarray] = {}
    air: dict[str, np.ndarray] = {}
    for side in SIDES:
        outline = lung_outline_sd(cu, cv, thorax.side(side), side)
        lung = soft_inside(np.maximum(outline, -central_dist), grid.px(2.0))
        outlines[side] = _paste(grid, rows, cols, outline, fill=1.0)
        lungs[side] = _paste(grid, rows, cols, lung)
        air[side] = _paste(grid, rows, cols, lung * (LUNG_AIR + 0.15 * np.clip(-outline / np.float32(0.2), 0.0, 1.0)))

    width = np.float32(thorax.body_half_width)
    thickness = 0.15 + 0.85 * np.sqrt(np.clip(1.0 - (u / width) ** 2, 0.0, 1.0))
    density = body * thickness - air["right"] - air["left"]
    diaphragm = diaphragm_v(cu, thorax)
    density[rows, cols] += (0.08 * heart[rows, cols] * smoothstep(diaphragm, diaphragm - 0.12, cv)
                            + 0.04 * soft_inside(central_dist, grid.px(2.0)))
    density += _airways(grid, thorax) + _gastric_bubble(grid, thorax)

    reach = max(thorax.right.lateral_u, thorax.left.lateral_u) + 0.08
    spine = _in_crop(grid, (-0.15, 0.15, -1.5, 1.5), _spine, thorax)
    ribs = _in_crop(grid, (-reach, reach, thorax.rib_start_v - 0.1, 1.5), _ribs, thorax)
    clavicles = _in_crop(grid, (-0.75, 0.75, thorax.clavicle_v - 0.15, thorax.clavicle_v + 0.08), _clavicles, thorax)
    lung_fields = lungs["right"] + lungs["left"]
    # Bones show best against aerated lung; soft tissue swamps them elsewhere.
    density += (SPINE_DENSITY * spine + (RIB_DENSITY * ribs + CLAVICLE_DENSITY * clavicles)
                * (0.55 + 0.45 * lung_fields)) * body

    markings = (_markings(grid, thorax, rng) + _parenchyma(grid, rows, cols, rng)) * lung_fields
    return Scene(grid=grid, thorax=thorax, density=density.astype(np.float32), markings=markings,
                 body=body, heart=heart, lungs=lungs, air=air, lung_outline_sd=outlines)


def chest_box(thorax: Thorax) -> tuple[float, float, float, float]:
    """(u0, u1, v0, v1) that contains both lungs and the heart."""
    top = min(thorax.right.apex_v, thorax.left.apex_v) - 0.05
    bottom = max(thorax.right.costophrenic_v, thorax.left.costophrenic_v) + 0.05
    return -thorax.right.lateral_u - 0.05, thorax.left.lateral_u + 0.05, top, bottom


def lung_box(thorax: Thorax, side: str) -> tuple[float, float, float, float]:
    """(u0, u1, v0, v1) that contains one lung."""
    hemi = thorax.side(side)
    lo, hi = sorted((0.0, SIDE_SIGN[side] * (hemi.lateral_u + 0.05)))
    return lo, hi, hemi.apex_v - 0.05, hemi.costophrenic_v + 0.05


def _paste(grid: Grid, rows: slice, cols: slice, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
    out = np.full((grid.size, grid.size), fill, dtype=np.float32)
    out[rows, cols] = values
    return out


def _airways(grid: Grid, thorax: Thorax) -> np.ndarray:
    """Trachea and main bronchi: air columns (negative density)."""
    u, v = grid.u, grid.v
    carina_v = thorax.hilum_v - 0.1
    midline = np.float32(thorax.mediastinal_shift)
    trachea = soft_inside(np.maximum(np.abs(u - midline) - 0.03, v - np.float32(carina_v)), grid.px(2.0))
    out = -0.14 * trachea
    rows, cols = grid.crop(-0.35, 0.35, carina_v - 0.02, thorax.hilum_v + 0.06)
    starts = np.array([[thorax.mediastinal_shift, carina_v]] * 2, dtype=np.float32)
    ends = np.array([[-thorax.hilum_u + 0.05, thorax.hilum_v + 0.02],
                     [thorax.hilum_u - 0.04, thorax.hilum_v + 0.05]], dtype=np.float32)
    dist = segments_distance(u[rows, cols], v[rows, cols], starts, ends)
    out[rows, cols] -= 0.1 * soft_inside(dist - 0.02, grid.px(2.0))
    return out


def _gastric_bubble(grid: Grid, thorax: Thorax) -> np.ndarray:
    """Air in the stomach fundus, under the left hemidiaphragm."""
    out = np.zeros_like(grid.u)
    if thorax.gastric_bubble:
        centre = (thorax.left.dome_u + 0.04, thorax.left.dome_v + 0.11)
        rows, cols = grid.crop(centre[0] - 0.12, centre[0] + 0.12, centre[1] - 0.08, centre[1] + 0.08)
        sd = ellipse_sd(grid.u[rows, cols], grid.v[rows, cols], *centre, 0.09, 0.045)
        out[rows, cols] = -0.22 * soft_inside(sd, grid.px(4.0))
    return out


def _in_crop(grid: Grid, box: tuple[float, float, float, float],
             draw: Callable[[np.ndarray, np.ndarray, float, Thorax], np.ndarray], thorax: Thorax) -> np.ndarray:
    """Evaluate `draw(u, v, units_per_px, thorax)` only inside the pixel crop covering `box`
    (u0, u1, v0, v1); zero elsewhere."""
    out = np.zeros_like(grid.u)
    rows, cols = grid.crop(*box)
    out[rows, cols] = draw(grid.u[rows, cols], grid.v[rows, cols], grid.px(1.0), thorax)
    return out


def _spine(u: np.ndarray, v: np.ndarray, px: float, thorax: Thorax) -> np.ndarray:
    """Vertebral column: bodies with darker disc spaces and bright pedicles."""
    centre = np.float32(thorax.mediastinal_shift * 0.3)
    du = np.abs(u - centre)
    column = soft_inside(du - 0.075, 2.0 * px)
    period = np.float32(thorax.rib_spacing * 0.95)
    phase = (v - np.float32(thorax.rib_start_v)) / period
    f = phase - np.floor(phase)
    bodies = 0.7 + 0.3 * smoothstep(0.06, 0.14, np.minimum(f, 1.0 - f))  # discs at f = 0
    pedicles = np.exp(-(((du - 0.05) / 0.016) ** 2 + ((f - 0.4) * period / 0.025) ** 2))
    return column * bodies + 0.3 * pedicles


def _ribs(u: np.ndarray, v: np.ndarray, px: float, thorax: Thorax) -> np.ndarray:
    """Posterior rib arcs (rising from the spine, curving down at the chest wall) and fainter
    anterior ribs (sloping down toward the midline)."""
    uu = np.abs(u - np.float32(thorax.mediastinal_shift))
    reach = np.float32(max(thorax.right.lateral_u, thorax.left.lateral_u) + 0.07)
    spacing = thorax.rib_spacing

    chest_wall = soft_inside(uu - reach, 6.0 * px)

    w = v - np.float32(thorax.rib_start_v) - (-0.3 * uu + 0.9 * uu * uu * uu)
    sp = np.float32(0.85 * spacing) + np.float32(0.25 * spacing) * np.maximum(w, 0.0)
    posterior = _bands(w / sp, sp, thickness=0.42, n=10, edge=1.5 * px)
    posterior *= np.clip((uu - 0.05) * 20.0, 0.0, 1.0)  # ribs start beside the spine

    wa = v - np.float32(thorax.rib_start_v + 0.12) - 0.5 * (reach - uu)
    anterior = _bands(wa / np.float32(1.15 * spacing), np.float32(1.15 * spacing), thickness=0.5, n=5,
                      edge=3.0 * px)
    anterior *= np.clip((uu - 0.22) / 0.13, 0.0, 1.0)  # costal cartilage (invisible) near the sternum
    return (posterior + 0.35 * anterior) * chest_wall


def _bands(phase: np.ndarray, spacing: np.ndarray | np.float32, thickness: float, n: int, edge: float) -> np.ndarray:
    """Rib-like bands at integer phases 0..n-1: a shaft with brighter cortical margins."""
    f = phase - np.floor(phase)
    half = np.float32(thickness / 2)
    d = np.abs(f - half) * spacing  # distance from the band's centre line
    half_width = half * spacing
    shaft = soft_inside(d - half_width, edge)
    cortex = np.maximum(1.0 - ((d - 0.8 * half_width) / (0.22 * half_width)) ** 2, 0.0)
    return (0.65 * shaft + 0.35 * cortex) * ((phase >= 0) & (phase < n))


def _clavicles(u: np.ndarray, v: np.ndarray, px: float, thorax: Thorax) -> np.ndarray:
    uu = np.abs(u - np.float32(thorax.mediastinal_shift))
    t = uu - 0.06
    centre = np.float32(thorax.clavicle_v) - 0.25 * t + 0.15 * t * t
    half_width = 0.028 + 0.006 * np.exp(-((t - 0.02) / 0.04) ** 2)  # broader sternal end
    shaft = soft_inside(np.abs(v - centre) - half_width, 1.5 * px)
    return shaft * smoothstep(0.0, 0.03, t) * smoothstep(0.64, 0.58, t + 0.06)


def _parenchyma(grid: Grid, rows: slice, cols: slice, rng: np.random.Generator) -> np.ndarray:
    """Fine mottled texture of small vessels seen end-on: what a pneumothorax lacks."""
    out = np.zeros_like(grid.u)
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    noise = smooth_noise(shape, rng, feature_px=max(1.5, 3.0 * grid.size / 512))
    out[rows, cols] = PARENCHYMA_DENSITY * smoothstep(0.45, 0.9, noise)
    return out


def _markings(grid: Grid, thorax: Thorax, rng: np.random.Generator) -> np.ndarray:
    """Vessel trees fanning out of each hilum, plus the hilar vessels themselves."""
    trees = [grow_vessel_tree(thorax, side, rng) for side in SIDES]
    out = splat_segments(grid, Segments(*(np.concatenate(parts) for parts in zip(*(astuple(t) for t in trees)))))
    hilar = np.zeros_like(grid.u)
    for sign in (-1.0, 1.0):
        hilum_u = thorax.mediastinal_shift + sign * thorax.hilum_u
        rows, cols = grid.crop(hilum_u - 0.2, hilum_u + 0.2, thorax.hilum_v - 0.3, thorax.hilum_v + 0.3)
        u, v = grid.u[rows, cols], grid.v[rows, cols]
        hilar[rows, cols] += np.exp(-(((u - np.float32(hilum_u)) / 0.05) ** 2
                                      + ((v - np.float32(thorax.hilum_v + 0.02)) / 0.1) ** 2))
    return MARKING_DENSITY * out + 0.08 * hilar
