"""The records a synthetic case is made of."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Finding:
    condition: str  # key from compute.data.conditions, e.g. "pleural_effusion"
    side: str | None  # "left" | "right" | "bilateral" | None (patient side; patient left = image right)
    zone: str | None  # "upper" | "middle" | "lower" | None
    mask: np.ndarray  # bool (H, W): where the lesion is


@dataclass
class SynthCase:
    image: np.ndarray  # float32 (H, W) in [0, 1], bright = dense
    findings: list[Finding]
    anatomy: dict[str, np.ndarray]  # bool (H, W) masks: "body", "right_lung", "left_lung", "heart" (patient sides)
    params: dict[str, float] = field(default_factory=dict)  # patient and acquisition parameters, measured ctr

    def finding(self, condition: str) -> Finding | None:
        """The finding for `condition`, or None when the case does not have it."""
        return next((f for f in self.findings if f.condition == condition), None)

    @property
    def conditions(self) -> tuple[str, ...]:
        return tuple(f.condition for f in self.findings)
