"""`python -m compute bench`: the same phrasing workload through the straightforward path
and through the prefix-sharing engine, timed in one run, with both rates and their ratio.

The straightforward path is the original study's protocol: per variant, one `generate` and
one more eager forward with `output_attentions`, from which the answer-position attention is
read. The engine runs each image's prefix once and all its variants against it, reading
P(yes) and the attention rows from that pass (compute.answering.engine).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from compute.maps import MapSpec
from compute.data.conditions import CONDITION_KEYS, condition
from compute.answering import Group, PrefixSharedEngine
from compute.benchmarks.protocol import straightforward
from compute.data.questions import canonical_question
from compute.demo.synth import render_case
from compute.variants import generate_variants


@dataclass(frozen=True)
class BenchResult:
    images: int
    variants: int  # questions asked per path (baselines included)
    straightforward_s: float
    engine_s: float
    same_answers: float  # share of variants where both paths give the same answer

    @property
    def straightforward_rate(self) -> float:
        return self.variants / self.straightforward_s

    @property
    def engine_rate(self) -> float:
        return self.variants / self.engine_s

    def table(self) -> str:
        return (f"workload: {self.images} images x {self.variants // self.images} questions "
                f"(baseline + rewrites), answer-position attention from every layer\n"
                f"straightforward (generate + eager output_attentions per variant): {self.straightforward_rate:8.1f} "
                f"variants/s ({self.straightforward_s:.1f} s)\n"
                f"engine (prefix once per image, suffixes batched, rows captured): {self.engine_rate:8.1f} "
                f"variants/s ({self.engine_s:.1f} s)\n"
                f"speed-up: {self.straightforward_s / self.engine_s:.1f}x   same answers: {self.same_answers:.1%}")


def workload(n_images: int, n_variants: int, seed: int = 0, size: int = 512) -> list[Group]:
    """Synthetic images, one question each (conditions in turn, present on even images),
    with `n_variants` rewrites."""
    rng = np.random.default_rng(seed)
    groups = []
    for i in range(n_images):
        key = CONDITION_KEYS[i % len(CONDITION_KEYS)]
        case = render_case(rng, size, [key] if i % 2 == 0 else [])
        image = Image.fromarray(np.round(np.clip(case.image, 0, 1) * 255).astype(np.uint8))
        question = canonical_question(condition(key))
        groups.append(Group(image, [question] + [v.text for v in generate_variants(question, key, n_variants, seed)]))
    return groups


def run_bench(model: str, n_images: int = 20, n_variants: int = 10, seed: int = 0) -> BenchResult:
    from compute.model.answers import extract_answer
    from compute.model.loading import load_model
    session = load_model(model)
    groups = workload(n_images, n_variants, seed)
    engine = PrefixSharedEngine(session, MapSpec(layers="all"))
    engine.ask_groups(groups[:engine.images_per_pass])  # warm-up, both paths
    straightforward(session, groups[:1])
    start = time.perf_counter()
    slow = [extract_answer(t) for t in straightforward(session, groups)[0]]
    slow_s = time.perf_counter() - start
    start = time.perf_counter()
    fast = [r.answer for results in engine.ask_groups(groups) for r in results]
    fast_s = time.perf_counter() - start
    same = float(np.mean([a == b for a, b in zip(slow, fast)]))
    return BenchResult(n_images, len(fast), slow_s, fast_s, same)
