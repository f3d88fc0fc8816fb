"""The phrasing study's items: each manifest question (variant 0, the baseline) followed by
its generated rewrites, all on the same image with the same expected answer (inverted for
a negation probe). Rows that carry their own `variant_index` (a manifest of ready-made
groups, such as VQA-RAD's human paraphrases) are its variants as they are: nothing is
generated for them. Everything else is the baseline study's loop."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from compute.config import VariantConfig
from compute.data.manifest import ManifestItem
from compute.data import UnparseableQuestionError
from compute.variants import generate_variants

OPPOSITE = {"yes": "no", "no": "yes"}


def expand_items(items: list[ManifestItem], config: VariantConfig) -> tuple[list[ManifestItem], list[str]]:
    """(baseline and variant items in manifest order, a note per row that got no variants)."""
    out, notes = [], []
    baselines = {i.group_id: i.question for i in items if i.variant_index == 0 and i.group_id}
    for item in items:
        if item.variant_index is not None:
            group = item.group_id or item.item_id
            out.append(replace(item, group_id=group, answer_inverted=False,
                               baseline_question=item.baseline_question or baselines.get(group)
                               or (item.question if item.variant_index == 0 else None)))
            continue
        group = item.group_id or item.item_id
        # Own ids, also for the baseline: a question row carries its group, so it must not be
        # the row a baseline run of the same manifest writes for the same question.
        out.append(replace(item, item_id=_variant_id(item, 0, item.question), group_id=group, variant_index=0,
                           strategy=item.strategy or "baseline", strategy_category="baseline",
                           baseline_question=item.question, answer_inverted=False))
        try:
            variants = generate_variants(item.question, item.condition, config.n, config.seed, config.negation_probe)
        except (UnparseableQuestionError, KeyError) as exc:
            notes.append(f"row {item.row_number}: no variants: {exc}")
            continue
        for v in variants:
            out.append(replace(
                item, item_id=_variant_id(item, v.index, v.text), question=v.text, group_id=group, variant_index=v.index,
                strategy=v.sub_strategy, transformation=v.transformation, strategy_category=v.category,
                baseline_question=item.question, answer_inverted=v.answer_inverted,
                answer=OPPOSITE[item.answer] if v.answer_inverted else item.answer))
    return out, notes


def _variant_id(item: ManifestItem, index: int, text: str) -> str:
    return hashlib.sha1(f"phrasing\x1f{item.item_id}\x1f{index}\x1f{text}".encode()).hexdigest()[:16]
