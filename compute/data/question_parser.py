"""Find the condition term and the location phrase in a yes/no question."""

from __future__ import annotations

import re
from dataclasses import dataclass

from compute.data.conditions import CONDITIONS, LOCATION_PHRASES, Condition, all_terms, condition

ARTICLE = re.compile(r"^(a|an|the)\s+", re.IGNORECASE)


class UnparseableQuestionError(ValueError):
    pass


@dataclass(frozen=True)
class ParsedQuestion:
    question: str
    condition: Condition
    term: str  # the condition phrase as written in the question
    location: str | None  # the location phrase as written, e.g. "left lower lobe"
    side_zone: tuple[str, str] | None  # its (side, zone) key in LOCATION_PHRASES


def bare(phrase: str) -> str:
    """The phrase without a leading article: "an enlarged heart" -> "enlarged heart"."""
    return ARTICLE.sub("", phrase)


def _find(text: str, phrases) -> tuple[str, int] | None:
    """The longest phrase found in `text` as whole words (article-free forms count too)."""
    lowered = text.lower()
    best = None
    for phrase in phrases:
        for form in {phrase, bare(phrase)}:
            match = re.search(rf"\b{re.escape(form.lower())}\b", lowered)
            if match and (best is None or len(form) > len(best[0])):
                best = (text[match.start():match.end()], match.start())
    return best


def parse_question(question: str, condition_key: str | None = None) -> ParsedQuestion:
    """Parse a baseline question. `condition_key` narrows the search (and is required
    when the question names no known condition)."""
    candidates = [condition(condition_key)] if condition_key else list(CONDITIONS)
    found = [(c, hit) for c in candidates if (hit := _find(question, all_terms(c)))]
    if not found:
        known = condition_key or "any of the nine conditions"
        raise UnparseableQuestionError(f"cannot find a term for {known} in {question!r}")
    chosen, (term, _) = max(found, key=lambda pair: len(pair[1][0]))
    location, side_zone = None, None
    for key, phrases in LOCATION_PHRASES.items():
        hit = _find(question, phrases)
        if hit and (location is None or len(hit[0]) > len(location)):
            location, side_zone = hit[0], key
    return ParsedQuestion(question=question, condition=chosen, term=term, location=location, side_zone=side_zone)
