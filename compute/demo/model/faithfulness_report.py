"""Are the maps of a model faithful on synthetic X-rays? Per condition, on images that
show the finding: the deletion-test ratio of attention and Grad-CAM maps, the pointing
game, and how much the attention map survives randomising the model's weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from compute.maps import MapSpec, grid_shape
from compute.maps.faithfulness import deletion_test, lesion_hit, randomisation_check
from compute.data.conditions import CONDITION_KEYS, condition
from compute.data.questions import canonical_question
from compute.demo.synth import render_case
from compute.metrics.regions import mask_to_grid
from compute.maps import map_batch
from compute.answering import ask

FAITHFULNESS_SEED = 20261129  # held out from training, and from the accuracy evaluation


@dataclass(frozen=True)
class ConditionFaithfulness:
    condition: str
    n: int
    attention_deletion_ratio: float  # median over images
    gradcam_deletion_ratio: float
    gradcam_fallbacks: int  # images where Grad-CAM fell back to activation norm
    attention_hit_rate: float  # pointing game
    randomised_pearson: float  # correlation of trained and randomised-model attention maps (one image)


def faithfulness_report(session, n_per_condition: int = 6, seed: int = FAITHFULNESS_SEED,
                        progress: bool = True) -> list[ConditionFaithfulness]:
    rng = np.random.default_rng(seed)
    size = session.processor.image_processor.size
    shape = grid_shape(session.model.config.mm_tokens_per_image, size["width"] / size["height"])
    rows = []
    for key in tqdm(CONDITION_KEYS, desc="faithfulness", disable=not progress):
        question = canonical_question(condition(key))
        attention, gradcam, hits, fallbacks, image = [], [], [], 0, None
        for _ in range(n_per_condition):
            case = render_case(rng, 512, [key])
            image = Image.fromarray(np.round(np.clip(case.image, 0, 1) * 255).astype(np.uint8))
            attention_map = ask(session, image, question, layers="all").map.mean
            (gradcam_result,) = map_batch(session, [image], [question], MapSpec(method="gradcam"))
            fallbacks += gradcam_result.method != "gradcam"
            attention.append(deletion_test(session, image, question, attention_map).faithfulness_ratio)
            gradcam.append(deletion_test(session, image, question, gradcam_result.mean).faithfulness_ratio)
            hits.append(lesion_hit(attention_map, mask_to_grid(case.finding(key).mask, shape)))
        randomised = randomisation_check(session, image, question)
        rows.append(ConditionFaithfulness(key, n_per_condition, float(np.median(attention)), float(np.median(gradcam)),
                                          int(fallbacks), float(np.mean(hits)), randomised["pearson"]))
    return rows


def table(rows: list[ConditionFaithfulness]) -> str:
    lines = [f"{'condition':22s} {'n':>3s} {'attn del.':>9s} {'cam del.':>9s} {'cam fb':>6s} {'hit':>6s} "
             f"{'rand. r':>7s}"]
    for r in rows:
        lines.append(f"{r.condition:22s} {r.n:3d} {r.attention_deletion_ratio:9.2f} {r.gradcam_deletion_ratio:9.2f} "
                     f"{r.gradcam_fallbacks:6d} {r.attention_hit_rate:6.1%} {r.randomised_pearson:7.2f}")
    lines.append("deletion ratio: |change in log(P(yes)/P(no))| blurring the map's top 10% of cells / blurring "
                 "random cells (median); "
                 "cam fb: Grad-CAM fell back to activation norm; hit: the attention peak lies on the lesion; "
                 "rand. r: Pearson r of the attention map with a weight-randomised model's")
    return "\n".join(lines)
