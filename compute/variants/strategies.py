"""Meaning-preserving rewrites of a yes/no question, by strategy.

Every rewrite keeps the condition and the location, introduces no negation and keeps the
expected answer. Each returns None where it does not apply (say, a UK spelling for a term
that has none), so the generator can move on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from compute.data.conditions import LOCATION_PHRASES
from compute.data.question_parser import ParsedQuestion, bare


@dataclass(frozen=True)
class Rewrite:
    text: str
    category: str  # synonym | voice | register | clause_reordering | phrasing | combined | negation_probe
    sub_strategy: str  # e.g. "lay term", "telegraphic"
    transformation: str  # what changed, e.g. "cardiomegaly -> an enlarged heart"
    answer_inverted: bool = False  # only the opt-in negation probe inverts the expected answer


@dataclass(frozen=True)
class Parts:
    """The pieces a template fills: term (with its article, if any) and location."""

    term: str
    location: str | None

    @property
    def noun(self) -> str:
        return bare(self.term)

    @property
    def where(self) -> str:
        return location_clause(self.location)


ADJECTIVAL_LOCATIONS = ("bibasilar",)  # adjectives: "the bibasilar region", never "the bibasilar"


def location_clause(location: str | None) -> str:
    """" in the left lower lobe", " in both lung bases", " in the bibasilar region", or ""."""
    if not location:
        return ""
    if location.lower() in ADJECTIVAL_LOCATIONS:
        return f" in the {location} region"
    if location.lower().startswith(("both ", "bilateral ")):
        return f" in {location}"
    return f" in the {location}"


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def render(template: str, parts: Parts) -> str:
    return capitalise(template.format(term=parts.term, noun=parts.noun, where=parts.where,
                                      where_fronted=parts.where.strip()))


Substitution = tuple[Parts, str, str]  # (new parts, sub-strategy, transformation)
Strategy = Callable[[ParsedQuestion, Parts], list[Substitution]]


def technical_synonym(q: ParsedQuestion, parts: Parts) -> list[Substitution]:
    return [(Parts(t, parts.location), "technical synonym", f"{parts.term} -> {t}")
            for t in q.condition.synonyms if bare(t).lower() != parts.noun.lower()]


def lay_term(q: ParsedQuestion, parts: Parts) -> list[Substitution]:
    return [(Parts(t, parts.location), "lay term", f"{parts.term} -> {t}") for t in q.condition.lay_terms]


def uk_spelling(q: ParsedQuestion, parts: Parts) -> list[Substitution]:
    return [(Parts(t, parts.location), "UK spelling", f"{parts.term} -> {t}")
            for t in q.condition.uk_spellings if t.lower() != parts.noun.lower()]


def location_synonym(q: ParsedQuestion, parts: Parts) -> list[Substitution]:
    if q.side_zone is None:
        return []
    return [(Parts(parts.term, p), "location phrase", f"{parts.location} -> {p}") for p in LOCATION_PHRASES[q.side_zone]
            if p.lower() != (parts.location or "").lower() and p.lower() not in ADJECTIVAL_LOCATIONS]


SYNONYM_STRATEGIES: tuple[Strategy, ...] = (technical_synonym, lay_term, uk_spelling, location_synonym)

# (category, sub-strategy, template). {term} keeps its article, {noun} drops it.
TEMPLATES: tuple[tuple[str, str, str], ...] = (
    ("voice", "passive", "Is {term} seen{where}?"),
    ("voice", "modal", "Can {term} be seen{where}?"),
    ("voice", "active, other subject", "Does this radiograph demonstrate {term}{where}?"),
    ("register", "formal clinical", "Is there radiographic evidence of {term}{where}?"),
    ("register", "conversational", "Can you see {term}{where} on this X-ray?"),
    ("register", "telegraphic", "Any {noun}{where}?"),
    ("clause_reordering", "fronted prepositional phrase", "{where_fronted}, is there {term}?"),
    ("clause_reordering", "fronted prepositional phrase", "On this chest X-ray, is there {term}{where}?"),
    ("clause_reordering", "noun-phrase restructuring", "Is {term}{where} visible on this image?"),
    ("phrasing", "existential recast", "Is {term} identified{where}?"),
    ("phrasing", "quantifier", "Is there any {noun}{where}?"),
    ("phrasing", "determiner", "Does this image show {term}{where}?"),
    ("phrasing", "nominalisation", "Is the presence of {term}{where} confirmed on this image?"),
)

NEGATION_PROBES: dict[str, str] = {
    "cardiomegaly": "Is the heart size normal?",
    "pleural_effusion": "Are the costophrenic angles clear{where}?",
    "pneumothorax": "Is the lung fully expanded{where}?",
    "edema": "Are the lungs clear of fluid?",
}
NEGATION_FALLBACK = "Is this image free of {noun}{where}?"
