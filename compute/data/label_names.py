"""Dataset label names onto the study's condition keys: one table for every dataset.

Each dataset names findings its own way ("Pleural Effusion", "Effusion", "Pleural_Thickening",
"pleural effusion"). `condition_key` maps a name onto one of the nine study conditions
through LABEL_TABLE, matching case, spaces and underscores loosely. A name outside the table
keeps its own normalised form ("Support Devices" -> "support_devices"), so that no label is
ever dropped silently; `is_study_condition` tells the two apart.
"""

from __future__ import annotations

import re

from compute.data.conditions import CONDITION_KEYS, all_terms
from compute.data.conditions import condition as _condition
from compute.data.question_parser import UnparseableQuestionError, parse_question

NO_FINDING = "no_finding"

# normalised dataset label -> study condition. The datasets each row comes from:
# C CheXpert and MIMIC-CXR-JPG (CheXpert/NegBio labellers), N NIH ChestX-ray14, V VinDr-CXR,
# and short terms that results tables written by other tools use.
LABEL_TABLE: dict[str, str] = {
    "atelectasis": "atelectasis",  # C N V
    "cardiomegaly": "cardiomegaly",  # C N V
    "consolidation": "consolidation",  # C N V
    "edema": "edema",  # C N V
    "oedema": "edema",
    "pleural_effusion": "pleural_effusion",  # C V
    "effusion": "pleural_effusion",  # N, short term
    "pneumonia": "pneumonia",  # C N V
    "pneumothorax": "pneumothorax",  # C N V
    "lung_opacity": "lung_opacity",  # C V
    "opacity": "lung_opacity",  # short term
    "pleural_other": "pleural_abnormality",  # C
    "pleural_thickening": "pleural_abnormality",  # N V
    "pleural_abnormality": "pleural_abnormality",
    "no_finding": NO_FINDING,  # C N V ("No finding"): not a condition, see --no-finding-as-no
}


# Findings whose name holds a study condition's word without being that condition: read first,
# so that "pericardial effusion" is not taken for a pleural effusion.
QUALIFIED_FINDINGS: dict[str, str] = {
    "pericardial effusion": "pericardial_effusion",
    "joint effusion": "joint_effusion",
    "subcutaneous edema": "subcutaneous_edema",
    "soft tissue edema": "soft_tissue_edema",
    "subcutaneous emphysema": "subcutaneous_emphysema",
    "mediastinal emphysema": "pneumomediastinum",
}
BLANK_TERMS = frozenset({"nan", "null", "none", "na", "n_a", "nil"})  # what spreadsheets write for nothing

_NEGATED = re.compile(r"^\W*(?:is|are|was|were|does|do|did|has|have|can)\s+(?:there\s+|the\s+\w+\s+)?(?:no|not)\b"
                      r"|\bfree of\b|\bno (?:evidence|sign|signs) of\b|\babsence of\b|\bwithout\b|\bruled? out\b"
                      r"|\bn't\b", re.IGNORECASE)


def normalise_label(name: str) -> str:
    """Lower case, runs of anything but letters and digits as one "_": "Pleural_Thickening" and
    "pleural thickening" -> "pleural_thickening"."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


def condition_key(name: str) -> str:
    """The study condition for a dataset label, else the label's normalised name."""
    key = normalise_label(name)
    if not key:
        raise ValueError(f"the label {name!r} has no letters or digits")
    return LABEL_TABLE.get(key, key)


def is_study_condition(key: str) -> bool:
    return key in CONDITION_KEYS


def condition_term(key: str) -> str:
    """The words a question uses for a condition: the canonical term for the nine, the key
    with spaces for others ("support_devices" -> "support devices")."""
    return _condition(key).term if is_study_condition(key) else key.replace("_", " ")


def is_blank_term(term: str) -> bool:
    """"nan", "NULL", "None", "N/A", "" and the like: no condition named."""
    return not str(term).strip() or normalise_label(term) in BLANK_TERMS


def condition_from_term(term: str, question: str | None = None) -> str | None:
    """The condition that a short term names (a results table's "effusion" or "pleural").
    When the question is given and names one of the nine conditions with a term that holds
    this word ("pleural" in "pleural effusion"), that condition wins; otherwise the table
    decides, then the normalised term itself. A blank-like term ("nan", "NULL") names nothing:
    the question's condition, or None."""
    if is_blank_term(term):
        return condition_in_text(question) if question else None
    word = normalise_label(term)
    if question:
        try:
            parsed = parse_question(question)
        except UnparseableQuestionError:
            parsed = None
        if parsed is not None and any(word in normalise_label(t).split("_") or word == normalise_label(t)
                                      for t in all_terms(parsed.condition)):
            return parsed.condition.key
    return condition_key(term)


def condition_in_text(text: str) -> str | None:
    """The finding a question's text names: a qualified finding first ("pericardial effusion"),
    else the study condition, else a table label named as whole words (e.g. "effusion"), else
    None."""
    lowered = text.lower()
    for phrase, key in QUALIFIED_FINDINGS.items():
        if re.search(rf"\b{re.escape(phrase)}\b", lowered):
            return key
    try:
        return parse_question(text).condition.key
    except UnparseableQuestionError:
        pass
    lowered = normalise_label(text)
    for label, key in sorted(LABEL_TABLE.items(), key=lambda kv: -len(kv[0])):
        if key != NO_FINDING and re.search(rf"(^|_){re.escape(label)}(_|$)", lowered):
            return key
    return None


_SEVERAL = re.compile(r"\bboth\b.*\band\b|\beither\b.*\bor\b|\bneither\b.*\bnor\b", re.IGNORECASE)


def asks_about_several(question: str) -> bool:
    """Whether a question's answer is about several findings at once ("both X and Y", "either
    X or Y", or two study conditions named): its answer is no single finding's label."""
    return bool(_SEVERAL.search(question)) or len(conditions_named(question)) > 1


def conditions_named(text: str) -> list[str]:
    """Every study condition the text names (a term of each found as whole words), in the
    nine's order."""
    found = []
    for key in CONDITION_KEYS:
        try:
            parse_question(text, key)
        except UnparseableQuestionError:
            continue
        found.append(key)
    return found


def is_negated_question(question: str) -> bool:
    """Whether a yes answer means the finding is absent: "Is there no pneumothorax?", "Is the
    lung free of effusion?", "Does the image not show ...?"."""
    return bool(_NEGATED.search(question))
