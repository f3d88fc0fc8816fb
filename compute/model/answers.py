"""Turn a model's free-text reply into "yes", "no" or "uncertain".

The reply is cut into clauses (at sentence ends, semicolons and contrast words such as
"but" or "although"); the first clause that says anything decides:
1. a hedge that refuses to commit ("cannot be ruled out", "unable to assess") -> uncertain;
2. a leading yes/no word, after an optional "Answer:" ("Yes, there is ...", "**Answer:** No");
3. any negation in the clause ("shows no", "is not present", "without", "unremarkable") -> no,
   so "there is no clear evidence of ..." is not read as "there is";
4. an assertion ("there is", "consistent with", "is present", "shows") -> yes.
A reply in which no clause says anything is uncertain.
"""

from __future__ import annotations

import re
from typing import Literal

Answer = Literal["yes", "no", "uncertain"]

_CLAUSE_BREAK = re.compile(r"[.;!?\n]+|\b(?:but|however|although|though|whereas)\b")
_MARKUP = re.compile(r"[*_`#>\u00a0]")

_YES_WORDS = ("yes", "yeah", "yep", "correct", "affirmative", "positive")
_NO_WORDS = ("no", "nope", "negative")
_LEADING = re.compile(
    r"^\W*(?:(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*[:\-]?\s*)?"
    rf"({'|'.join(_YES_WORDS + _NO_WORDS)})\b(?!\s+doubt)"
)

_HEDGE = re.compile(
    r"\b(?:cannot|can ?not|can't|unable to|not possible to|difficult to|hard to)\s+(?:be\s+)?"
    r"(?:determined?|assess(?:ed)?|tell|say|excluded?|rule[ds]? out|evaluated?)"
    r"|\b(?:indeterminate|equivocal|uncertain|unclear|possibl[ey]|may or may not|not sure|yes and no)\b"
)

_NEGATIVE = re.compile(
    r"\bno\b(?!\s+doubt)|\bnot\b|n't\b|\bnone\b|\bwithout\b|\babsent\b|\bnegative\b|\bunremarkable\b"
    r"|\bwithin normal limits\b|\bnormal (?:heart|cardiac|lungs?|chest|study|radiograph|x-ray)"
    r"|\b(?:lungs?|lung fields|chest) (?:are|is) clear\b|\bclear lungs\b|\bunlikely\b|\bfree of\b"
    r"|\bresolved\b|\brules? out\b|\bexcluded\b"
)

_POSITIVE = re.compile(
    r"\bthere(?:'s|\s+(?:is|are|was|were|appears|seems))\b|\b(?:evidence|signs?|findings?) of\b"
    r"|\b(?:consistent|compatible) with\b|\bsuggestive of\b|\bpositive\b"
    r"|\b(?:present|seen|visible|noted|identified|evident|enlarged)\b"
    r"|\b(?:shows?|demonstrates?|reveals?|indicates?)\b|\bi (?:can )?see\b|\bcorrect\b|\baffirmative\b"
)


def extract_answer(text: str | None) -> Answer:
    """Classify a reply as "yes", "no" or "uncertain".

    >>> extract_answer("Yes.")
    'yes'
    >>> extract_answer("Based on the chest X-ray provided, there is no clear evidence of a significant pleural effusion.")
    'no'
    """
    if not text:
        return "uncertain"
    for clause in _CLAUSE_BREAK.split(_MARKUP.sub(" ", text).lower()):
        verdict = _clause_verdict(clause)
        if verdict is not None:
            return verdict
    return "uncertain"


def _clause_verdict(clause: str) -> Answer | None:
    if _HEDGE.search(clause):
        return "uncertain"
    leading = _LEADING.match(clause)
    if leading:
        return "yes" if leading.group(1) in _YES_WORDS else "no"
    if _NEGATIVE.search(clause):
        return "no"
    if _POSITIVE.search(clause):
        return "yes"
    return None
