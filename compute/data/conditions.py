"""The nine study conditions and the words used for them.

One lexicon serves the synthetic data (question text), the demo tokenizer's corpus
and, later, the phrasing-variant generator, so every part of the project names a
condition the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Condition:
    key: str  # stable identifier stored in the database, e.g. "pleural_effusion"
    term: str  # canonical radiology term used in training questions
    synonyms: tuple[str, ...] = ()  # other technical terms with the same meaning
    lay_terms: tuple[str, ...] = ()  # plain-language equivalents
    uk_spellings: tuple[str, ...] = ()  # British spellings of the term
    lateral: bool = True  # whether the finding has a side (left / right / bilateral)
    zones: tuple[str, ...] = field(default=("upper", "middle", "lower"))  # lung zones it can occupy


CONDITIONS: tuple[Condition, ...] = (
    Condition(
        key="atelectasis",
        term="atelectasis",
        synonyms=("lung collapse", "volume loss", "subsegmental atelectasis"),
        lay_terms=("a partially collapsed lung",),
    ),
    Condition(
        key="cardiomegaly",
        term="cardiomegaly",
        synonyms=("cardiac enlargement", "an enlarged cardiac silhouette"),
        lay_terms=("an enlarged heart", "a big heart"),
        lateral=False,
        zones=(),
    ),
    Condition(
        key="consolidation",
        term="consolidation",
        synonyms=("airspace consolidation", "airspace disease"),
        lay_terms=("a solid area in the lung",),
    ),
    Condition(
        key="edema",
        term="edema",
        synonyms=("pulmonary edema", "interstitial edema", "pulmonary vascular congestion"),
        lay_terms=("fluid in the lungs",),
        uk_spellings=("oedema", "pulmonary oedema"),
        lateral=False,
        zones=(),
    ),
    Condition(
        key="pleural_effusion",
        term="pleural effusion",
        synonyms=("an effusion", "pleural fluid"),
        lay_terms=("fluid around the lung",),
        zones=("lower",),
    ),
    Condition(
        key="pneumonia",
        term="pneumonia",
        synonyms=("an infectious infiltrate", "a pneumonic process"),
        lay_terms=("a chest infection", "a lung infection"),
        uk_spellings=("pneumonia",),
    ),
    Condition(
        key="pneumothorax",
        term="pneumothorax",
        synonyms=("a pleural air collection", "a visceral pleural line"),
        lay_terms=("a collapsed lung with air around it", "air around the lung"),
        zones=("upper",),
    ),
    Condition(
        key="lung_opacity",
        term="lung opacity",
        synonyms=("a pulmonary opacity", "an opacification", "a focal opacity"),
        lay_terms=("a shadow on the lung", "a white area in the lung"),
        uk_spellings=("lung opacification",),
    ),
    Condition(
        key="pleural_abnormality",
        term="pleural abnormality",
        synonyms=("pleural thickening", "a pleural abnormality"),
        lay_terms=("a thickened lung lining",),
    ),
)

CONDITION_KEYS: tuple[str, ...] = tuple(c.key for c in CONDITIONS)
_BY_KEY = {c.key: c for c in CONDITIONS}

# Locations as radiologists write them, and plain equivalents. Keys are (side, zone).
LOCATION_PHRASES: dict[tuple[str, str], tuple[str, ...]] = {
    ("left", "lower"): ("left lower lobe", "left lung base", "left base"),
    ("right", "lower"): ("right lower lobe", "right lung base", "right base"),
    ("left", "upper"): ("left upper lobe", "left apex", "left upper zone"),
    ("right", "upper"): ("right upper lobe", "right apex", "right upper zone"),
    ("left", "middle"): ("left mid zone", "lingula", "left middle zone"),
    ("right", "middle"): ("right middle lobe", "right mid zone", "right middle zone"),
    ("bilateral", "lower"): ("bibasilar", "both lung bases", "bilateral lower lobes"),
    ("bilateral", "upper"): ("both apices", "bilateral upper lobes", "both upper zones"),
    ("bilateral", "middle"): ("both mid zones", "bilateral mid zones", "both middle zones"),
}


def condition(key: str) -> Condition:
    """Look up a condition by key, with an error that lists the valid keys."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown condition {key!r}; known: {', '.join(CONDITION_KEYS)}") from None


def all_terms(c: Condition) -> tuple[str, ...]:
    """Every phrase that names the condition: canonical, synonyms, lay terms, UK spellings."""
    return (c.term, *c.synonyms, *c.lay_terms, *c.uk_spellings)
