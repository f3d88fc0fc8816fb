"""A random patient: thoracic geometry, pose on the film and acquisition settings.

All lengths are in patient units (see grid.py); the thorax spans roughly u in [-0.8, 0.8].
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from compute.demo.synth.grid import Pose

NORMAL_CTR = (0.38, 0.46)  # cardiothoracic ratio of a normal heart
ENLARGED_CTR = (0.56, 0.68)  # cardiomegaly


@dataclass(frozen=True)
class Hemithorax:
    apex_v: float  # top of the lung
    apex_u: float  # distance of the apex from the midline
    lateral_u: float  # widest reach of the lung from the midline (inner chest wall)
    medial_u: float  # closest reach of the lung to the midline
    costophrenic_v: float  # depth of the lateral costophrenic angle
    dome_v: float  # top of the hemidiaphragm dome
    dome_u: float  # distance of the dome's top from the midline


@dataclass(frozen=True)
class Heart:
    ctr: float  # cardiothoracic ratio: heart width / internal thoracic width
    right_share: float  # share of the heart width on the patient's right of the midline
    tilt_deg: float  # long axis tilt
    half_height: float  # vertical semi-axis before tilting
    centre_above_dome: float  # how far the heart's centre sits above the left dome


@dataclass(frozen=True)
class Thorax:
    right: Hemithorax  # patient right = image left
    left: Hemithorax
    heart: Heart
    mediastinum_half_width: float
    mediastinal_shift: float  # shift of the mediastinum toward the patient's left (u > 0)
    hilum_v: float
    hilum_u: float
    clavicle_v: float  # height of the clavicles' medial ends
    rib_start_v: float  # where the first posterior rib crosses the midline curve
    rib_spacing: float
    body_half_width: float
    gastric_bubble: bool

    def side(self, side: str) -> Hemithorax:
        return self.right if side == "right" else self.left

    def with_side(self, side: str, hemithorax: Hemithorax) -> Thorax:
        return replace(self, right=hemithorax) if side == "right" else replace(self, left=hemithorax)

    @property
    def width(self) -> float:
        """Internal thoracic width (between the lungs' lateral edges)."""
        return self.right.lateral_u + self.left.lateral_u


@dataclass(frozen=True)
class Acquisition:
    attenuation: float  # how strongly density darkens the beam (exposure / kVp)
    window_low: float  # display window over the exposed intensity
    window_high: float
    blur_px: float  # detector unsharpness at 512 px, scaled with the image size
    noise_sd: float  # additive noise on the [0, 1] image
    heel: float  # top-to-bottom exposure gradient (anode heel effect)


@dataclass(frozen=True)
class Patient:
    thorax: Thorax
    pose: Pose
    acquisition: Acquisition

    def describe(self) -> dict[str, float]:
        """Flat numbers for the findings record."""
        a, p = self.acquisition, self.pose
        return {
            "patient_scale": round(p.scale, 4),
            "shift_u": round(p.shift_u, 4),
            "shift_v": round(p.shift_v, 4),
            "rotation_deg": round(p.tilt_deg, 3),
            "exposure": round(a.attenuation, 4),
            "window_low": round(a.window_low, 4),
            "window_high": round(a.window_high, 4),
            "noise_sd": round(a.noise_sd, 5),
            "blur_px": round(a.blur_px, 3),
        }


def sample_patient(rng: np.random.Generator) -> Patient:
    return Patient(thorax=sample_thorax(rng), pose=sample_pose(rng), acquisition=sample_acquisition(rng))


def sample_thorax(rng: np.random.Generator) -> Thorax:
    u = rng.uniform
    apex_v = u(-0.74, -0.64)
    lateral = u(0.74, 0.82)
    cp_v = u(0.58, 0.70)
    right_dome = u(0.24, 0.36)
    right = Hemithorax(apex_v=apex_v, apex_u=u(0.28, 0.34), lateral_u=lateral + u(-0.015, 0.015),
                       medial_u=0.06, costophrenic_v=cp_v, dome_v=right_dome, dome_u=u(0.38, 0.48))
    left = replace(right, lateral_u=lateral + u(-0.015, 0.015), apex_v=apex_v + u(-0.02, 0.02),
                   costophrenic_v=cp_v + u(0.0, 0.04), dome_v=right_dome + u(0.04, 0.09),
                   dome_u=u(0.48, 0.56))
    heart = Heart(ctr=u(*NORMAL_CTR), right_share=u(0.28, 0.38), tilt_deg=u(18.0, 32.0),
                  half_height=u(0.22, 0.27), centre_above_dome=u(0.10, 0.15))
    return Thorax(right=right, left=left, heart=heart, mediastinum_half_width=u(0.10, 0.13),
                  mediastinal_shift=u(-0.01, 0.01), hilum_v=u(-0.18, -0.08), hilum_u=u(0.20, 0.26),
                  clavicle_v=apex_v + u(0.15, 0.23), rib_start_v=apex_v - u(0.08, 0.12),
                  rib_spacing=u(0.115, 0.135), body_half_width=lateral + u(0.08, 0.16),
                  gastric_bubble=bool(rng.random() < 0.7))


def sample_pose(rng: np.random.Generator) -> Pose:
    return Pose(scale=rng.uniform(0.86, 1.02), shift_u=rng.uniform(-0.04, 0.04),
                shift_v=rng.uniform(-0.02, 0.06), tilt_deg=rng.uniform(-3.0, 3.0))


def sample_acquisition(rng: np.random.Generator) -> Acquisition:
    low = rng.uniform(0.0, 0.12)
    return Acquisition(attenuation=rng.uniform(1.0, 1.6), window_low=low, window_high=rng.uniform(0.92, 1.05),
                       blur_px=rng.uniform(0.5, 1.3),
                       noise_sd=rng.uniform(0.003, 0.012), heel=rng.uniform(-0.06, 0.06))
