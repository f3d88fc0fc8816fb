"""Held-out evaluation of a (demo) model on synthetic X-rays asked with the training phrasings.

Each held-out image is rendered at 512 px, quantised to 8 bits and asked through the same
Session.ask_batch the studies use: one question about a condition it shows ("yes") and one
about a condition it lacks ("no"), dealt so every condition gets as many of each. For
every "yes" question the answer-position attention map (compute.maps: heads averaged,
each layer renormalised over the image tokens, then averaged over layers) is compared with
the lesion: the mass inside the lesion divided by the lesion's share of the body area, and
whether the map's peak cell lies on the lesion (pointing game).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from compute.maps import MapSpec
from compute.maps.faithfulness import lesion_hit
from compute.data.conditions import CONDITION_KEYS
from compute.data.questions import location_phrase
from compute.demo.synth import plan_questions, render_case
from compute.demo.model.training_data import cell_fractions, training_question
from compute.answering import BatchedGenerate

HELD_OUT_SEED = 20261128  # never used for training
SMALL_SET = 40  # the first images of the held-out set, re-evaluated by the test suite


@dataclass
class EvalReport:
    n_images: int
    n_questions: int
    accuracy: float
    well_formed: float  # share of replies that are exactly one yes/no word
    per_condition: dict[str, dict[str, float]]  # accuracy, yes accuracy, no accuracy, n
    attention_ratio_mean: float  # mean over "yes" questions of lesion attention mass / lesion body share
    attention_ratio_median: float
    per_condition_attention_ratio: dict[str, float] = field(default_factory=dict)
    lesion_hit_rate: float | None = None  # pointing game over "yes" questions: the map's peak is on the lesion
    small_set_accuracy: float | None = None  # on the first SMALL_SET images (a prefix of the same held-out set)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def table(self) -> str:
        lines = [f"{'condition':22s} {'acc':>6s} {'yes':>6s} {'no':>6s} {'attn':>6s}   n"]
        for key, row in self.per_condition.items():
            lines.append(f"{key:22s} {row['accuracy']:6.1%} {row['yes_accuracy']:6.1%} {row['no_accuracy']:6.1%} "
                         f"{self.per_condition_attention_ratio.get(key, float('nan')):5.2f}x {row['n']:4d}")
        lines.append(f"{'overall':22s} {self.accuracy:6.1%}   well-formed {self.well_formed:.1%}   "
                     f"attention ratio mean {self.attention_ratio_mean:.2f}x median {self.attention_ratio_median:.2f}x"
                     + (f"   lesion hit rate {self.lesion_hit_rate:.1%}" if self.lesion_hit_rate is not None else ""))
        return "\n".join(lines)


def evaluate(session, n_images: int = 300, seed: int = HELD_OUT_SEED, batch: int = 8,
             progress: bool = True) -> EvalReport:
    rng = np.random.default_rng(seed)
    plans = plan_questions(n_images, 1)
    grid = int(math.isqrt(session.model.config.mm_tokens_per_image))
    outcomes: dict[str, list[tuple[bool, bool]]] = {k: [] for k in CONDITION_KEYS}
    ratios: dict[str, list[float]] = {k: [] for k in CONDITION_KEYS}
    well_formed = 0
    in_order: list[bool] = []
    hits: list[bool] = []
    for start in tqdm(range(0, n_images, batch), desc="held-out evaluation", disable=not progress):
        images, questions, truths, keys, lesions, bodies = [], [], [], [], [], []
        for plan in plans[start:start + batch]:
            case = render_case(rng, 512, plan.present)
            image = Image.fromarray(np.round(np.clip(case.image, 0, 1) * 255).astype(np.uint8))
            for key, truth in ((plan.present[0], True), (plan.absent[0], False)):
                finding = case.finding(key)
                location = location_phrase(finding.side, finding.zone) if finding is not None else None
                questions.append(training_question(rng, key, truth, location, 0.3))
                images.append(image)
                truths.append(truth)
                keys.append(key)
                lesions.append(finding.mask if finding is not None else None)
                bodies.append(case.anatomy["body"])
        results = BatchedGenerate(session).ask_batch(images, questions, max_new_tokens=4, maps=MapSpec(layers="all"))
        for r, truth, key, lesion, body in zip(results, truths, keys, lesions, bodies):
            att = r.map.mean
            outcomes[key].append((r.answer == ("yes" if truth else "no"), truth))
            in_order.append(outcomes[key][-1][0])
            well_formed += r.text.strip().rstrip(".").lower() in ("yes", "no")
            if truth and lesion is not None and lesion.any():
                share = lesion.sum() / max(1, body.sum())
                cells = cell_fractions(lesion, grid)
                ratios[key].append(float((att * cells).sum() / share))
                hits.append(lesion_hit(att, cells))
    report = _report(n_images, outcomes, ratios, well_formed)
    report.lesion_hit_rate = float(np.mean(hits)) if hits else None
    if n_images >= SMALL_SET:
        report.small_set_accuracy = float(np.mean(in_order[:2 * SMALL_SET]))
    return report


def _report(n_images: int, outcomes: dict[str, list[tuple[bool, bool]]], ratios: dict[str, list[float]],
            well_formed: int) -> EvalReport:
    per_condition = {}
    for key, rows in outcomes.items():
        yes = [c for c, t in rows if t]
        no = [c for c, t in rows if not t]
        per_condition[key] = {"accuracy": float(np.mean([c for c, _ in rows])) if rows else float("nan"),
                              "yes_accuracy": float(np.mean(yes)) if yes else float("nan"),
                              "no_accuracy": float(np.mean(no)) if no else float("nan"),
                              "n": len(rows)}
    all_rows = [c for rows in outcomes.values() for c, _ in rows]
    all_ratios = [r for rs in ratios.values() for r in rs]
    return EvalReport(
        n_images=n_images, n_questions=len(all_rows), accuracy=float(np.mean(all_rows)),
        well_formed=well_formed / len(all_rows), per_condition=per_condition,
        attention_ratio_mean=float(np.mean(all_ratios)) if all_ratios else float("nan"),
        attention_ratio_median=float(np.median(all_ratios)) if all_ratios else float("nan"),
        per_condition_attention_ratio={k: float(np.mean(v)) for k, v in ratios.items() if v},
    )


def save_report(report: EvalReport, out_dir: Path) -> None:
    (Path(out_dir) / "evaluation.json").write_text(report.to_json())
