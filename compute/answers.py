"""Turn a model's free-text reply into "yes", "no" or "uncertain".

Order of evidence:
1. a leading yes/no ("Yes, there is ...", "No.");
2. hedges that refuse to commit ("cannot be determined", "unable to assess");
3. the earliest clause-level cue, negative cues tried before positive ones at the same
   position, so "there is no clear evidence of ..." reads as "no" and not as "there is";
4. otherwise "uncertain".
"""

from __future__ import annotations

import re
from typing import Literal

Answer = Literal["yes", "no", "uncertain"]

_LEADING = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)

_HEDGES = re.compile(
    r"\b(cannot be (determined|assessed|excluded|ruled out)|can ?not (determine|assess|tell|say)"
    r"|unable to (determine|assess|tell|say|evaluate)|not possible to (determine|assess|tell)"
    r"|indeterminate|equivocal|uncertain|unclear whether|difficult to (determine|assess|say))\b",
    re.IGNORECASE,
)

_NEGATIVE = (
    r"no (clear |definite |obvious |significant |convincing |radiographic |visible |apparent )*"
    r"(evidence|signs?|findings?|indication)"
    r"|there (is|are|was|were) no\b|there (isn't|aren't|is not|are not)"
    r"|without (evidence|signs?)|negative for|free of|rules? out"
    r"|(is|are|was|were) (not|absent)\b|(isn't|aren't|wasn't|weren't)\b"
    r"|(does|do|did) not (show|demonstrate|reveal|appear|suggest|have)|(doesn't|don't|didn't)\b"
    r"|not (seen|present|visible|identified|evident|detected|demonstrated|noted|appreciated)"
    r"|no (pleural|focal|acute|pneumothorax|effusion|consolidation|cardiomegaly|edema|oedema"
    r"|pneumonia|atelectasis|opacity|abnormality)"
    r"|absent|unremarkable|within normal limits|normal (heart|cardiac|lungs?|chest)"
    r"|the answer is:? no\b"
)

_POSITIVE = (
    r"there (is|are|was|were|appears to be|seems to be)\b"
    r"|(evidence|signs?) of|consistent with|suggestive of|compatible with|positive for"
    r"|(is|are) (present|seen|visible|noted|identified|evident|enlarged|demonstrated)"
    r"|(shows|demonstrates|reveals|indicates)\b|present\b"
    r"|the answer is:? yes\b"
)

# One alternation so that the *earliest* cue wins; at equal position the negative
# branch is tried first because it is listed first.
_CUES = re.compile(rf"(?P<neg>{_NEGATIVE})|(?P<pos>{_POSITIVE})", re.IGNORECASE)


def extract_answer(text: str | None) -> Answer:
    """Classify a reply as "yes", "no" or "uncertain".

    >>> extract_answer("Yes.")
    'yes'
    >>> extract_answer("Based on the chest X-ray provided, there is no clear evidence of a significant pleural effusion.")
    'no'
    """
    if not text or not text.strip():
        return "uncertain"
    leading = _LEADING.match(text)
    if leading:
        return leading.group(1).lower()  # type: ignore[return-value]
    if _HEDGES.search(text):
        return "uncertain"
    cue = _CUES.search(text)
    if cue is None:
        return "uncertain"
    return "no" if cue.group("neg") else "yes"
