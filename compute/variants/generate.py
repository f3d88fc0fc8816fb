"""About ten meaning-preserving rewrites of a baseline yes/no question, deterministic for a seed."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from compute.data.questions import TRAINING_TEMPLATES
from compute.data.question_parser import ParsedQuestion, parse_question
from compute.variants.strategies import (NEGATION_FALLBACK, NEGATION_PROBES, SYNONYM_STRATEGIES, TEMPLATES, Parts, Rewrite,
                         capitalise, location_clause, render)

CATEGORIES = ("synonym", "voice", "register", "clause_reordering", "phrasing", "combined")


@dataclass(frozen=True)
class Variant:
    index: int  # 1.. in generation order; 0 is the baseline question itself
    text: str
    category: str
    sub_strategy: str
    transformation: str
    answer_inverted: bool = False


def _substitute(question: str, old: str, new: str) -> str:
    """`question` with the whole-word phrase `old` replaced by `new` (first occurrence)."""
    return capitalise(re.sub(rf"\b{re.escape(old)}\b", lambda _: new, question, count=1, flags=re.IGNORECASE))


def _synonym_rewrites(q: ParsedQuestion) -> list[tuple[Rewrite, Parts]]:
    out = []
    parts = Parts(q.term, q.location)
    for new_parts, sub, change in (s for strategy in SYNONYM_STRATEGIES for s in strategy(q, parts)):
        if new_parts.location != parts.location:
            text = _substitute(q.question, location_clause(parts.location).strip(),
                               location_clause(new_parts.location).strip())
        else:
            text = _substitute(q.question, parts.term, new_parts.term)
            if parts.location:  # also mend "in the bibasilar" into "in the bibasilar region"
                text = _substitute(text, f"in the {parts.location}", location_clause(parts.location).strip())
        out.append((Rewrite(text, "synonym", sub, change), new_parts))
    return out


def _template_rewrites(parts: Parts) -> list[Rewrite]:
    out = []
    for category, sub, template in TEMPLATES:
        if "{where_fronted}" in template and not parts.location:
            continue
        out.append(Rewrite(render(template, parts), category, sub, f"template: {template}"))
    return out


def _negation_probe(q: ParsedQuestion) -> Rewrite:
    parts = Parts(q.term, q.location)
    template = NEGATION_PROBES.get(q.condition.key) if not q.location else None
    text = render(template or NEGATION_FALLBACK, parts)
    return Rewrite(text, "negation_probe", "opposite question", f"asks for the absence of {q.term}",
                   answer_inverted=True)


def generate_variants(question: str, condition: str | None = None, n: int = 10, seed: int = 0,
                      negation_probe: bool = False) -> list[Variant]:
    """Up to `n` rewrites of `question`, spread over the six categories in turn, no two
    alike and none equal to the baseline or to a training template's wording. With
    `negation_probe`, one more variant asks the opposite question (answer inverted)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    q = parse_question(question, condition)
    rng = np.random.default_rng([seed, sum(map(ord, question))])
    synonyms = _synonym_rewrites(q)
    by_category: dict[str, list[Rewrite]] = {c: [] for c in CATEGORIES}
    by_category["synonym"] = [r for r, _ in synonyms]
    for rewrite in _template_rewrites(Parts(q.term, q.location)):
        by_category[rewrite.category].append(rewrite)
    for synonym, parts in synonyms:
        for rewrite in _template_rewrites(parts):
            by_category["combined"].append(Rewrite(
                rewrite.text, "combined", f"{synonym.sub_strategy} + {rewrite.sub_strategy}",
                f"{synonym.transformation}; {rewrite.transformation}"))
    for options in by_category.values():
        order = rng.permutation(len(options))
        options[:] = [options[i] for i in order]
    seen = {question.strip().lower()} | {t.format(term=q.term).lower() for t in TRAINING_TEMPLATES}
    chosen: list[Rewrite] = []
    while len(chosen) < n and any(by_category.values()):
        for category in CATEGORIES:
            options = by_category[category]
            while options:
                candidate = options.pop(0)
                if candidate.text.lower() not in seen:
                    seen.add(candidate.text.lower())
                    chosen.append(candidate)
                    break
            if len(chosen) == n:
                break
    if negation_probe:
        chosen.append(_negation_probe(q))
    return [Variant(i + 1, r.text, r.category, r.sub_strategy, r.transformation, r.answer_inverted)
            for i, r in enumerate(chosen)]
