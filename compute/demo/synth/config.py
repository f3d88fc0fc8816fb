"""Settings of a synthetic dataset."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from compute.data.conditions import CONDITION_KEYS


@dataclass(frozen=True)
class SynthConfig:
    n: int = 60  # number of images
    seed: int = 0  # master seed: the same config writes the same bytes
    size: int = 512  # image side, pixels
    dicom_fraction: float = 0.2  # share of images written as DICOM instead of PNG
    monochrome1_fraction: float = 0.5  # share of the DICOMs stored inverted (MONOCHROME1)
    questions_per_image: int = 2  # half asked "yes" (a present finding), half "no" (an absent one); even, 2..8
    extra_finding_rate: float = 0.3  # chance of each of up to two further, unasked findings on an image
    location_rate: float = 0.3  # share of "yes" questions about a lateralised finding that name its location
    id_prefix: str = "cxr"  # image ids are f"{id_prefix}_{index:04d}"

    def __post_init__(self) -> None:
        max_questions = 2 * (len(CONDITION_KEYS) // 2)
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}")
        if self.size < 64:
            raise ValueError(f"size must be at least 64 pixels, got {self.size}")
        if self.questions_per_image % 2 or not 2 <= self.questions_per_image <= max_questions:
            raise ValueError(f"questions_per_image must be even and in 2..{max_questions}, "
                             f"got {self.questions_per_image}")
        for name in ("dicom_fraction", "monochrome1_fraction", "extra_finding_rate", "location_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
