"""Map free-text strategy labels ("Synonym replacement (bibasilar→bilateral lung bases)",
"Voice changes; Register shifts") to the six categories the generator uses."""

from __future__ import annotations

import re

# Checked in this order; a label that matches several categories is "combined".
KEYWORDS: dict[str, tuple[str, ...]] = {
    "synonym": ("synonym", "lexical", "terminolog", "lay term", "spelling", "abbreviat"),
    "voice": ("voice", "passive", "active", "modal"),
    "register": ("register", "formal", "conversational", "colloquial", "telegraph", "clinical style"),
    "clause_reordering": ("clause", "reorder", "word order", "front"),
    "phrasing": ("phrasing", "paraphras", "quantifier", "determiner", "nominal", "existential", "variation"),
    "negation_probe": ("negation", "opposite"),
}


def categorise(label: str | None, variant_index: int | None = None) -> str:
    """"baseline" for variant 0, else the category the label names, "combined" when it
    names several (or says so), "other" when it names none."""
    if variant_index == 0:
        return "baseline"
    text = (label or "").lower()
    if not text.strip():
        return "other"
    if re.search(r"\bcombin", text):
        return "combined"
    # Judge the label without its parenthesised example: "(bibasilar→bilateral lung bases)".
    head = re.sub(r"\([^)]*\)", " ", text)
    found = [c for c, words in KEYWORDS.items() if any(w in head for w in words)]
    if len(found) > 1:
        return "combined"
    return found[0] if found else "other"
