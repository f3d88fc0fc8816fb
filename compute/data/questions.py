"""Canonical yes/no question wording.

The templates here are the fixed, small set that the synthetic manifests and the
demo model's training use. Rewrites (synonyms, voice, register, ...) are *not* here:
they belong to the phrasing study, and keeping them out of training is what lets the
demo show real phrasing sensitivity.
"""

from __future__ import annotations

from compute.data.conditions import LOCATION_PHRASES, Condition

TRAINING_TEMPLATES: tuple[str, ...] = (
    "Is there {term}?",
    "Does the image show {term}?",
    "Is {term} present?",
    "Is there evidence of {term}?",
)

# Default instruction appended to every question in the user turn; stored with each run.
DEFAULT_INSTRUCTION = "Answer yes or no."


def location_phrase(side: str | None, zone: str | None) -> str | None:
    """The first radiology phrase for a (side, zone), or None when the finding has no location."""
    if not side or not zone:
        return None
    phrases = LOCATION_PHRASES.get((side, zone))
    return phrases[0] if phrases else None


def possible_locations(c: Condition) -> list[str]:
    """Every location phrase a question about `c` may name (none for non-lateral findings)."""
    if not c.lateral:
        return []
    return [phrase for side in ("right", "left", "bilateral") for zone in c.zones
            if (phrase := location_phrase(side, zone)) is not None]


def canonical_question(c: Condition, template_index: int = 0, location: str | None = None) -> str:
    """A training-style question about `c`, optionally anchored to a location phrase.

    >>> from compute.data.conditions import condition
    >>> canonical_question(condition("consolidation"), 0, "left lower lobe")
    'Is there consolidation in the left lower lobe?'
    """
    template = TRAINING_TEMPLATES[template_index % len(TRAINING_TEMPLATES)]
    question = template.format(term=c.term)
    if location:
        question = question[:-1] + f" in the {location}?"
    return question
