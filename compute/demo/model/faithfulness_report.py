"""Which map should I trust? Per map method and condition, on synthetic X-rays that show the
finding (their lesion masks known): the deletion-test ratio, the pointing game against the
lesion, the in-lesion mass ratio, the correlation with a weight-randomised model's map, and the
cost in passes and seconds per item."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from compute.config import FAITHFULNESS_METHODS
from compute.data.conditions import CONDITION_KEYS, condition
from compute.data.questions import canonical_question
from compute.demo.synth import render_case
from compute.maps import MapSpec, map_batch
from compute.maps.faithfulness import deletion_test, randomisation_check
from compute.metrics.lesion import lesion_metrics
from compute.metrics.regions import body_cells, mask_to_grid

FAITHFULNESS_SEED = 20261129  # held out from training, and from the accuracy evaluation
METHODS = tuple(str(m) for m in FAITHFULNESS_METHODS)
PASSES = {  # beyond the answer's own pass
    "attention": "0 (read in the answer's pass)",
    "gradcam": "1 forward + 1 backward",
    "relevancy": "1 forward + 1 backward (eager attention)",
    "relative": "1 forward per image (generic prompt)",
    "knockout": "1 prefix pass + (regions + 6) suffix rows",
    "logit_lens": "1 forward",
}


@dataclass(frozen=True)
class MethodFaithfulness:
    method: str
    condition: str
    n: int
    deletion_ratio: float  # median over images of the deletion test's ratio
    hit_rate: float  # pointing game: the map's peak cell on the lesion
    lesion_ratio: float  # mean of (map mass on the lesion) / (the lesion's share of the body)
    randomised_pearson: float  # Pearson r with the weight-randomised model's map (one image)
    seconds_per_item: float  # making the map (its passes), without the deletion test
    fallbacks: int  # images left out: the method fell back along the chain, or (knockout) no region supported
    passes: str


def _spec(method: str, key: str) -> MapSpec:
    return MapSpec(method=method, layers="all", term=key.replace("_", " ") if method == "logit_lens" else None)


def faithfulness_report(session, n_per_condition: int = 6, seed: int = FAITHFULNESS_SEED,
                        methods: tuple[str, ...] = METHODS, progress: bool = True) -> list[MethodFaithfulness]:
    rng = np.random.default_rng(seed)
    cases = {key: [render_case(rng, 512, [key]) for _ in range(n_per_condition)] for key in CONDITION_KEYS}
    rows = []
    for method in tqdm(methods, desc="methods", disable=not progress):
        for key, renders in cases.items():
            question = canonical_question(condition(key))
            deletions, hits, ratios, seconds, fallbacks, image = [], [], [], [], 0, None
            for case in renders:
                image = Image.fromarray(np.round(np.clip(case.image, 0, 1) * 255).astype(np.uint8))
                start = time.perf_counter()
                (result,) = map_batch(session, [image], [question], _spec(method, key))
                seconds.append(time.perf_counter() - start)
                if result.method != method or result.details.get("no_supporting_region"):
                    fallbacks += 1  # not this method's map (or a uniform one): not scored as the method's
                    continue
                lesion = mask_to_grid(case.finding(key).mask, result.grid_shape)
                body, _ = body_cells(image, result.grid_shape)
                figures = lesion_metrics(result.mean, lesion, body)
                hits.append(bool(figures["lesion_hit"]))
                ratios.append(figures["lesion_attention_ratio"])
                deletions.append(deletion_test(session, image, question, result.mean).faithfulness_ratio)
            randomised = randomisation_check(session, image, question, _spec(method, key))["pearson"]
            rows.append(MethodFaithfulness(method, key, len(deletions), _median(deletions), _mean(hits), _mean(ratios),
                                           float(randomised), float(np.mean(seconds)), fallbacks,
                                           PASSES.get(method, "")))
    return rows


def _median(values: list) -> float:
    return float(np.median(values)) if values else float("nan")


def _mean(values: list) -> float:
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summary(rows: list[MethodFaithfulness]) -> list[dict]:
    """Per method, over conditions: the medians of the deletion ratio and the means of the rest."""
    out = []
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        scored = [r for r in mine if r.n]
        out.append({"method": method, "n": sum(r.n for r in mine),
                    "deletion_ratio": _median([r.deletion_ratio for r in scored]),
                    "hit_rate": float(np.average([r.hit_rate for r in scored], weights=[r.n for r in scored]))
                    if scored else float("nan"),
                    "lesion_ratio": _mean([r.lesion_ratio for r in scored]),
                    "randomised_pearson": float(np.mean([r.randomised_pearson for r in mine])),
                    "seconds_per_item": float(np.mean([r.seconds_per_item for r in mine])),
                    "fallbacks": sum(r.fallbacks for r in mine), "passes": mine[0].passes})
    return out


def table(rows: list[MethodFaithfulness]) -> str:
    head = (f"{'method':11s} {'condition':22s} {'n':>3s} {'deletion':>8s} {'hit':>6s} {'lesion':>6s} "
            f"{'rand. r':>7s} {'s/item':>7s} {'fb':>3s}")
    lines = [head]
    for r in rows:
        lines.append(f"{r.method:11s} {r.condition:22s} {r.n:3d} {r.deletion_ratio:8.2f} {r.hit_rate:6.1%} "
                     f"{r.lesion_ratio:6.2f} {r.randomised_pearson:7.2f} {r.seconds_per_item:7.3f} {r.fallbacks:3d}")
    lines += ["", "over all conditions:", head.replace("condition             ", "passes                ")]
    for s in summary(rows):
        lines.append(f"{s['method']:11s} {s['passes'][:22]:22s} {s['n']:3d} {s['deletion_ratio']:8.2f} "
                     f"{s['hit_rate']:6.1%} {s['lesion_ratio']:6.2f} {s['randomised_pearson']:7.2f} "
                     f"{s['seconds_per_item']:7.3f} {s['fallbacks']:3d}")
    lines.append("deletion: |change in log(P(yes)/P(no))| blurring the map's top 10% of cells / blurring random "
                 "cells (median; > 1: the map's cells matter more); hit: the map's peak on the lesion; lesion: mass "
                 "on the lesion / the lesion's share of the body (> 1: more than uniform); rand. r: Pearson r with "
                 "a weight-randomised model's map (low: the map depends on the weights); fb: left out (fell back to "
                 "another method, or a knockout with no supporting region)")
    return "\n".join(lines)


def save(rows: list[MethodFaithfulness], path: Path, model: str) -> None:
    path.write_text(json.dumps({"model": model, "rows": [asdict(r) for r in rows], "summary": summary(rows)},
                               indent=1) + "\n", encoding="utf-8")
