"""Signed-distance shapes of the thoracic anatomy (negative inside), in patient coordinates.

Distances are approximate (horizontal or axis-scaled); they are only used for soft edges,
insets (pneumothorax, pleural thickening) and masks.
"""

from __future__ import annotations

import numpy as np

from compute.demo.synth.grid import SIDE_SIGN, ellipse_sd, smooth_union
from compute.demo.synth.patient import Hemithorax, Thorax

ZONES = ("upper", "middle", "lower")


def lung_outline_sd(u: np.ndarray, v: np.ndarray, hemi: Hemithorax, side: str,
                    lateral_inset: np.ndarray | float = 0.0, apex_drop: float = 0.0) -> np.ndarray:
    """The lung's outline within the chest wall and above the diaphragm (heart not excluded).

    `lateral_inset` pulls the lateral edge toward the midline and `apex_drop` lowers the
    apex: the outline of a lung that has come away from the chest wall.
    """
    uu = u * np.float32(SIDE_SIGN[side])  # distance from the midline toward this side
    apex_v = hemi.apex_v + apex_drop
    h = (v - np.float32(apex_v)) / np.float32(hemi.costophrenic_v - apex_v)  # 0 apex .. 1 costophrenic
    medial, lateral = lung_edges(h, hemi)
    lateral = lateral - lateral_inset
    d_lateral = uu - lateral
    d_medial = medial - uu
    d_top = np.float32(apex_v) - v
    d_bottom = v - dome_v(uu, hemi)
    return np.maximum(np.maximum(d_lateral, d_medial), np.maximum(d_top, d_bottom))


def dome_v(uu: np.ndarray, hemi: Hemithorax) -> np.ndarray:
    """Height of the hemidiaphragm at distance uu from the midline: a parabola from the dome's
    top down to the costophrenic angle laterally, nearly flat toward the cardiophrenic angle."""
    k_lateral = (hemi.costophrenic_v - hemi.dome_v) / (hemi.lateral_u - hemi.dome_u) ** 2
    offset = uu - np.float32(hemi.dome_u)
    lateral, medial = np.maximum(offset, 0.0), np.minimum(offset, 0.0)
    return np.float32(hemi.dome_v) + np.float32(k_lateral) * lateral * lateral + np.float32(0.6) * medial * medial


def heart_geometry(thorax: Thorax) -> tuple[float, float, float, float, float]:
    """(centre_u, centre_v, semi_axis_a, semi_axis_b, tilt_deg) of the cardiac ellipse, sized so
    that its horizontal extent is ctr x thoracic width."""
    heart = thorax.heart
    width = heart.ctr * thorax.width
    right_reach = width * heart.right_share
    centre_u = (width - 2 * right_reach) / 2 + thorax.mediastinal_shift
    centre_v = thorax.left.dome_v - heart.centre_above_dome
    b = heart.half_height * (1.0 + 0.8 * (heart.ctr - 0.43))
    phi = np.deg2rad(heart.tilt_deg)
    half_width = width / 2
    a = np.sqrt(max(half_width**2 - (b * np.sin(phi)) ** 2, (0.5 * half_width) ** 2)) / np.cos(phi)
    return float(centre_u), float(centre_v), float(a), float(b), float(heart.tilt_deg)


def heart_sd(u: np.ndarray, v: np.ndarray, thorax: Thorax) -> np.ndarray:
    """The cardiac ellipse, sitting on the diaphragm: cut a little below it, so that no sliver
    of lung is left between the two."""
    return np.maximum(ellipse_sd(u, v, *heart_geometry(thorax)), v - diaphragm_v(u, thorax) - 0.03)


def diaphragm_v(u: np.ndarray, thorax: Thorax) -> np.ndarray:
    """Height of the diaphragm across the whole chest (each side's dome on its own side)."""
    return np.where(u > 0, dome_v(u, thorax.left), dome_v(-u, thorax.right))


def mediastinum_sd(u: np.ndarray, v: np.ndarray, thorax: Thorax) -> np.ndarray:
    """Mediastinal band from the thoracic inlet to the diaphragm, with the aortic knob on the
    patient's left."""
    centre = np.float32(thorax.mediastinal_shift)
    half_width = np.float32(thorax.mediastinum_half_width) * (0.8 + 0.2 * np.clip((v + 0.8) / 0.6, 0.0, 1.0))
    band = np.abs(u - centre) - half_width
    knob_u = thorax.mediastinal_shift + 0.75 * thorax.mediastinum_half_width
    knob = ellipse_sd(u, v, knob_u, thorax.hilum_v - 0.2, 0.075, 0.07)
    return smooth_union(band, knob, 0.05)


def central_sd(u: np.ndarray, v: np.ndarray, thorax: Thorax) -> np.ndarray:
    """The cardiomediastinal silhouette: heart and mediastinum with rounded joins."""
    return smooth_union(heart_sd(u, v, thorax), mediastinum_sd(u, v, thorax), 0.08)


def lung_field_sd(u: np.ndarray, v: np.ndarray, thorax: Thorax, side: str) -> np.ndarray:
    """The lung field as seen on the film: the outline minus the cardiomediastinal silhouette."""
    return np.maximum(lung_outline_sd(u, v, thorax.side(side), side), -central_sd(u, v, thorax))


def body_sd(u: np.ndarray, v: np.ndarray, thorax: Thorax) -> np.ndarray:
    """Trunk (flat sides, shoulders sloping down from the neck) joined to the neck."""
    w = np.float32(thorax.body_half_width)
    x2, y2 = (u / w) ** 2, ((v - 0.3) / np.float32(1.3)) ** 2
    sides = (np.sqrt(np.sqrt(x2 * x2 + y2 * y2)) - 1.0) * w  # superellipse of power 4
    shoulders = np.float32(thorax.right.apex_v - 0.22) + 0.35 * (u / w) ** 2 - v
    neck = np.maximum(np.abs(u) - 0.2, v + 0.5)
    return np.minimum(np.maximum(sides, shoulders), neck)


def zone_bounds(hemi: Hemithorax, zone: str) -> tuple[float, float]:
    """Vertical extent (v0, v1) of a lung zone: thirds between apex and dome, lower reaching
    the costophrenic angle."""
    third = (hemi.dome_v - hemi.apex_v) / 3
    index = ZONES.index(zone)
    v0 = hemi.apex_v + index * third
    v1 = hemi.costophrenic_v if zone == "lower" else v0 + third
    return float(v0), float(v1)


def lung_edges(h: np.ndarray | float, hemi: Hemithorax) -> tuple[np.ndarray, np.ndarray]:
    """(medial, lateral) distance from the midline of the lung outline at relative height h
    (0 at the apex, 1 at the costophrenic angle); the apex is rounded."""
    h = np.asarray(h, dtype=np.float32)
    lateral_growth = np.sqrt(np.sin(np.float32(np.pi / 2) * np.clip(h / 0.6, 0.0, 1.0)))
    medial_growth = np.sqrt(np.sin(np.float32(np.pi / 2) * np.clip(h / 0.3, 0.0, 1.0)))
    lateral = hemi.apex_u + (hemi.lateral_u - hemi.apex_u) * lateral_growth
    medial = hemi.apex_u - (hemi.apex_u - hemi.medial_u) * medial_growth
    return medial, lateral


def lung_span_at(hemi: Hemithorax, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(medial, lateral) distance from the midline of the lung outline at heights v."""
    return lung_edges((np.asarray(v, dtype=np.float32) - hemi.apex_v) / (hemi.costophrenic_v - hemi.apex_v), hemi)
