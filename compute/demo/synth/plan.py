"""Which conditions each image is asked about, balanced so every condition gets as many
"yes" as "no" questions (within one) over the dataset. Pure: no randomness, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from compute.data.conditions import CONDITION_KEYS


@dataclass(frozen=True)
class ImagePlan:
    present: tuple[str, ...]  # conditions drawn on the image and asked "yes"
    absent: tuple[str, ...]  # conditions kept off the image and asked "no"


def plan_questions(n_images: int, pairs_per_image: int, keys: tuple[str, ...] = CONDITION_KEYS) -> list[ImagePlan]:
    """Deal conditions round-robin: image i is asked "yes" about the next `pairs_per_image`
    conditions in the cycle and "no" about the same run shifted by s.

    The shift s is fixed within each block of len(keys) images (so a full block gives every
    condition exactly `pairs_per_image` yes and no questions) and changes from block to block
    (so each condition meets different partners). s stays in [p, len(keys) - p], which keeps the
    yes and no sets of an image disjoint. Over any prefix of images both the yes and the no
    questions are a consecutive run of the same length through the cycle, so per condition
    their counts differ by at most one.
    """
    k, p = len(keys), pairs_per_image
    if not 1 <= p <= k // 2:
        raise ValueError(f"pairs_per_image must be in 1..{k // 2} for {k} conditions, got {p}")
    shifts = list(range(p, k - p + 1))
    plans = []
    for i in range(n_images):
        s = shifts[(i // k) % len(shifts)]
        start = i * p
        plans.append(ImagePlan(present=tuple(keys[(start + j) % k] for j in range(p)),
                               absent=tuple(keys[(start + j + s) % k] for j in range(p))))
    return plans
