"""Turn a model's free-text reply into "yes", "no" or "uncertain".

Real models (MedGemma, LLaVA-Med, GPT-style assistants) answer at length: markdown headers and
bullets, a restated question, "Based on the image, ...", a disclaimer, hedges. The reading
follows what a radiologist would take the model to have answered: the first committed
statement decides, and a hedge in place of a commitment is "uncertain". In order:

1. The reply is normalised: lower case, plain quotes, markdown emphasis, headers, quote marks
   and bullet or list numbers removed. An echoed prompt is dropped: in a transcript the reply
   is what follows the last "model:" or "assistant:" turn marker ("user: Is there edema?
   Answer yes or no.\nmodel: Yes"), and an instruction to answer yes or no ("Answer yes or
   no.", the project's default) is removed wherever it stands, so it never counts as an answer.
2. An explicit answer anywhere decides: "Answer: No", "**Final answer:** Yes", "the answer
   is yes", "my answer would be no", "To answer your question: no", "Conclusion: yes";
   "Answer: indeterminate" or "Answer: cannot be determined" is uncertain.
3. Otherwise the sentences are read in order (a sentence ends at . ! ? or a line break).
   Questions are skipped: a restated question says nothing. In each sentence:
   a. A leading yes/no word decides ("Yes, there is ...", "No.", "Negative"), after an
      optional lead-in ("Based on the image, no", "Without a lateral view, ..."), unless it
      is "yes and no" or what follows it at once is a hedge ("No, I cannot determine that",
      "Yes, possibly"): uncertain.
   b. A "field: value" sentence, a short label rather than a clause before a colon ("Pleural
      effusion present: No", "Evidence of pneumothorax: none", "Cardiomegaly (enlarged
      heart): No", "Is a pneumothorax present: No"), or a label before a comma or dash with
      a bare value after it ("Pleural effusion, no", "Effusion - none", "Effusion, present"),
      is decided by the value, not by the wording of the label: where the label itself says
      yes or no, by the value's first piece, else by the value read as a sentence (3c-3d).
      Where the value says nothing, the label is read; a hedged label is uncertain ("Possible
      effusion: yes"); a label with no value is a heading and asserts nothing ("Evidence of
      effusion:"). "Effusion present: no. Cardiomegaly present: yes." is "no", as the first
      field decides.
   c. Otherwise the sentence is cut into pieces at commas, colons, semicolons, contrast words
      (but, however, although, ...) and before a trailing denial ("with no", "without",
      "and no"), and the first piece that says something decides:
      1. a refusal to look at the image ("I am not able to interpret medical images"):
         uncertain;
      2. a disclaimer says nothing ("I am not a doctor", "I cannot provide a diagnosis",
         "please consult a radiologist");
      3. a hedge: uncertain ("cannot be excluded", "I would not rule out", "does not exclude",
         "difficult to determine", "may represent", "equivocal", "possible", "questionable",
         "not seen because of ...", "not applicable");
      4. talk about the reply or the image itself says nothing ("This is a PA chest
         radiograph", "Here is what I see", "You asked whether ...", rotation, inspiration),
         though what follows "I can tell you that" is read;
      5. a yes/no word opening the piece;
      6. a denial: no ("no", "not", "without", "nothing to suggest", "there is an absence /
         a lack of", "fails to demonstrate", "zero evidence", "unremarkable", "lungs are
         clear", "unlikely", "within normal limits"; but absent or lacking lung markings,
         a sign of pneumothorax, deny nothing);
      7. an assertion: yes ("there is", "consistent with", "is present", "shows", "likely",
         "suggests"), unless what comes next only interprets it with a hedge, in the next
         piece of the sentence or in a next sentence that refers back to it ("There is an
         opacity, which may represent pneumonia", "... opacity. This could be pneumonia."):
         uncertain.
      Words that only strengthen what follows are no denial: "no doubt", "without a doubt",
      "without question", "not much doubt that", "I do not doubt", "not only".
   d. A sentence that only names a finding, as a report's impression does ("Cardiomegaly.",
      "Small left pleural effusion, no pneumothorax.", "Impression: Large right pleural
      effusion."), asserts it, as in 3c7; a heading ("Pleural effusion assessment") or a
      differential ("Differential: pneumonia.") does not.
4. A reply in which nothing decides is uncertain.

Hedges after the deciding statement do not count: "There is no effusion. A small nodule
may be present." is "no", and a closing "Please consult a radiologist" changes nothing.
The reply is read without the question, so a reply that first commits about something
other than the question is read by that first commitment.
"""

from __future__ import annotations

import re
from typing import Literal

Answer = Literal["yes", "no", "uncertain"]

_YES_WORDS = ("yes", "yeah", "yep", "correct", "affirmative", "positive")
_NO_WORDS = ("no", "nope", "negative")

# --- 1. normalising ---------------------------------------------------------------------------
# Runs of white space become one space or one line break, which keeps every later pattern linear.
_SPACES = re.compile(r"[^\S\n]+")
_LINE_BREAKS = re.compile(r" ?\n\s*")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})
_EMPHASIS = re.compile(r"[*_`]+")
_LINE_MARKUP = re.compile(r"^[ \t]*(?:#{1,6}[ \t]*|>[ \t]*|(?:[-+\u2022\u25aa\u25e6]|\d{1,2}[.)])[ \t]+)+", re.M)
_DASH = re.compile(r"\s+[\u2014\u2013-]+\s+")  # "Yes — there is" reads as "yes, there is"
# An echoed chat transcript: the text after the last model turn marker is the reply
# ("user: Is there edema?\nmodel: Yes", "... ASSISTANT: Yes", Gemma's "<start_of_turn>model").
_TURN = re.compile(r"(?:^|(?<=[.?!])[ \t]+)(?:<start_of_turn>[ \t]*)?(?:model|assistant)[ \t]*(?::|$)", re.M)
_TURN_TOKEN = re.compile(r"<(?:start|end)_of_turn>|</?s>")
# An echoed instruction ("Answer yes or no.", the project's default) opening a sentence is no answer.
_INSTRUCTION = re.compile(
    r"(?:^|(?<=[.?!:>]))[ \t]*(?:please\s+)?(?:answer|respond|reply)"
    r"(?:\s+(?:only|just|simply))?(?:\s+(?:with|using|in))?"
    r"(?:\s+(?:a\s+)?(?:single|one)[ -]word)?(?:\s*[:,(])?\s*[\"'(]?yes[\"')]?\s*(?:or|/)\s*[\"'(]?no\b[\"')]?"
    r"(?:\s+only\b)?[ \t)]*[.!]?", re.M
)

# --- 2. an explicit answer --------------------------------------------------------------------
_ANSWER_WORD = rf"(?:{'|'.join(_YES_WORDS + _NO_WORDS)})\b"
_UNCERTAIN_WORD = (r"(?:uncertain|indeterminate|unclear|undetermined|inconclusive|equivocal|unknown|not sure"
                   r"|cannot be determined|can't be determined|not possible to (?:say|determine|tell)"
                   r"|possibly|maybe|perhaps|both yes and no)\b")
_ANSWER_LABEL = re.compile(
    r"(?:\b(?:final|short|my|overall|the)\s+)?\banswer(?:\s+to\s+(?:your|the|this)\s+question)?"
    r"(?:\s*:|\s+(?:is|would be|will be)\s*:?|\s*[-\u2013]|[ \t]*\n)\s*"
    r"|\bto answer (?:your|the|this) question\b[^.:\n]{0,80}[:,]\s*"
    r"|\b(?:conclusion|verdict|in short|in summary|in conclusion|bottom line|to summari[sz]e)\s*[:,]\s*"
    rf"(?=(?:{_ANSWER_WORD}|{_UNCERTAIN_WORD}))"
)
_UNCERTAIN_ANSWER = re.compile(_UNCERTAIN_WORD)

# --- 3. sentences and pieces ------------------------------------------------------------------
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")
_PIECE_BREAK = re.compile(
    r"\s*[;:,]\s+|\s*[;:,]\s*$"
    r"|\b(?:but|however|although|though|whereas|while)\b"
    r"|(?<!consistent )(?<!compatible )(?=\b(?:with no|without|and no|and there is no)\b)"
)
_LEAD_IN = re.compile(
    r"^(?:(?:based on|looking at|from|on|upon|after|in|having)\b[^,]{0,60}?"
    r"\b(?:image|x-?ray|radiograph|film|study|analysis|review|evaluation|examination|cxr)\b[^,]{0,20}"
    r"|that said|with that (?:said|caveat)|overall|so|therefore|thus|honestly|okay|ok|well|sure|certainly"
    r"|regarding (?:your|the) question[^:,]*|as an ai(?: language model| assistant| model)?"
    r"|(?:without|lacking|in the absence of|(?:given|despite|with) the (?:lack|absence) of) [^,]{0,40}"
    r"\b(?:views?|comparison|priors?|clinical|history|context|information|imaging|films?|studies|images?)\b"
    r"[^,]{0,20})\s*[,:!]\s*"
)
_REPORTING = re.compile(r"^(?:i can (?:tell you|say|confirm|report|note)|i would say|i can see)\s+that\s+")
_LEADING = re.compile(rf"^\W*({_ANSWER_WORD})(?!\s+(?:doubt|question|comment)\b)")
# Words that only strengthen what follows: "no doubt", "without question", "not only".
_ASSURANCE = re.compile(
    r"\b(?:(?:without|beyond)(?:\s+(?:a|any))?(?:\s+(?:reasonable|shadow of a))?|no|little|hardly any"
    r"|not(?:\s+(?:much|any|a|the slightest|the least|a shred of))?)\s+(?:doubt|question)\b(?:\s+(?:about it|that))?"
    r"|\b(?:do not|don't|cannot|can't)\s+doubt\b|\bnot only\b|\bundoubtedly\b|\bunquestionably\b|\bdoubtless\b"
)
_BOTH_ANSWERS = re.compile(r"^\W*(?:and|or|&|/)\s*(?:yes|no)\b")

# 3c1. The model says it cannot look at the image at all.
_IMAGE_NOUN = r"(?:images?|x-?rays?|radiographs?|pictures?|scans?|films?|imaging)\b"
_REFUSAL = re.compile(
    r"(?:cannot|can ?not|can't|unable to|not able to|(?:do not|don't) have the (?:ability|capability|capacity) to"
    r"|not (?:capable of|equipped to|designed to))\s+(?:\w+\s+){0,2}?"
    r"(?:view|see|interpret|analy[sz]e|read|access|examine|look at|process|open"
    r"|help (?:you )?with (?:interpreting|reading|analy[sz]ing))(?:ing)?\s+(?:or \w+\s+)?"
    rf"(?:(?:the|this|these|that|your|any|medical|uploaded|attached|provided|actual|chest|such)\s+)*{_IMAGE_NOUN}"
    rf"|\b(?:do not|don't) have access to (?:the|this|your|any) {_IMAGE_NOUN}"
    r"|(?:cannot|can't|unable to|not able to)\s+(?:provide|give|offer)\s+(?:an?\s+)?(?:interpretation|reading|analysis)"
    rf" of (?:this|the|your|medical) {_IMAGE_NOUN}"
)

# 3c2. Says nothing about the image: who the model is, what it cannot give, whom to ask.
_DISCLAIMER = re.compile(
    r"\bas an ai\b|\bi(?:'m| am) (?:just |only )?an ai\b"
    r"|\bi(?:'m| am) not (?:a |an )?(?:doctor|physician|radiologist|medical|licensed|qualified|healthcare|clinician)"
    r"|\b(?:cannot|can't|unable to|not able to|not qualified to)\s+(?:provide|give|make|offer|render)\s+"
    r"(?:a |any )?(?:\w+\s+)?(?:diagnos[ie]s|medical advice)"
    r"|\b(?:cannot|can't|unable to|not able to)\s+(?:\w+\s+)?diagnose\b"
    r"|\bnot (?:a |an )?(?:substitute|replacement|diagnosis)\b|\bnot intended\b|\bmedical advice\b"
    r"|\bconsult\b|\bseek\b|\b(?:healthcare|health care|medical) (?:professional|provider)s?\b"
    r"|\bqualified\b|\bradiologist\b|\bphysician\b|\byour doctor\b|\bclinical (?:correlation|context)\b"
    r"|\b(?:informational|educational) purposes\b|\brecommend(?:ed|s)?\b|\badvis(?:ed|able)\b"
)

# 3c3. A hedge in place of an answer.
_CANNOT_TELL = re.compile(
    r"\b(?:cannot|can ?not|can't|could not|couldn't|unable to|not able to|not possible to|impossible to"
    r"|difficult to|hard to|challenging to|no way to)"
    r"(?:\s+(?:be|definitively|definitely|confidently|accurately|reliably|clearly|fully|entirely|completely"
    r"|conclusively|with certainty|with confidence)){0,3}"
    r"\s+(?:determin\w*|assess\w*|tell|say|sure|certain|exclud\w*|rul\w* out|evaluat\w*|confirm\w*"
    r"|distinguish\w*|differentiat\w*|conclud\w*|comment|know|judge|characteri[sz]\w*|interpret\w*|made|answer)\b"
)
_NOT_EXCLUDED = re.compile(r"\bnot (?:\w+ )?(?:ruled out|excluded)\b(?! from)"
                           r"|(?:\bnot|n't)\s+(?:\w+\s+)?(?:rul(?:e|es|ing)\s+out|exclud(?:e|es|ing))\b")
_HEDGE_WORD = re.compile(
    r"\b(?:possibl[ey]|possibility|perhaps|maybe|potential(?:ly)?|questionabl[ey]|equivocal|indeterminate"
    r"|inconclusive|uncertain|unclear|unsure|not (?:sure|certain)|borderline|non-?specific|doubtful"
    r"|may or may not|yes and no|not (?:entirely |completely |fully )?clear (?:whether|if)"
    r"|not (?:definitive|conclusive)|if present|versus|vs|not (?:so |that )?(?:straightforward|simple|clear-cut)"
    r"|nuanced|not applicable|no comment)\b"
)
_MODAL_HEDGE = re.compile(
    r"\b(?:may|might|could)\s+(?:also\s+|possibly\s+|potentially\s+)?"
    r"(?:represent|indicate|reflect|suggest|correspond|signify"
    r"|be(?!\s+(?:due|caused|related|secondary|helpful|useful|needed|required|necessary|considered|warranted"
    r"|recommended|obtained|performed|difficult|hard|missed|seen with|seen in)\b))\b"
)
_LIMITED_VIEW = re.compile(
    r"\bnot (?:\w+ )?(?:seen|visuali[sz]ed|visible|assessable|evaluable)\b.{0,120}?"
    r"\b(?:because|due to|owing to|as a result"
    r"|obscured by|limited by)\b"
    r"|\b(?:evaluation|assessment|visuali[sz]ation)\b.{0,120}?\blimited\b|\blimited (?:evaluation|assessment)\b"
    r"|\bcut off\b|\bexcluded from the (?:field|image|film|view)\b|\bnot (?:fully )?included\b"
    r"|\bwould (?:be )?(?:need(?:ed)?|required?|necessary)\b"
)
_HEDGES = (_CANNOT_TELL, _NOT_EXCLUDED, _HEDGE_WORD, _MODAL_HEDGE, _LIMITED_VIEW)

# 3c4. Talk about the reply, the question or the image as a picture.
_IMAGE_TYPE = r"(?:view|projection|radiograph|x-?ray|image|film|study|cxr)\b"
_META = re.compile(
    rf"^(?:this|it)\s+(?:is|appears to be|seems to be|looks like)\s+an?\s+[^,]{{0,80}}?\b{_IMAGE_TYPE}"
    r"|^(?:the|this)\s+(?:\w+\s+){0,3}?(?:image|x-?ray|radiograph|film|study|cxr)\s+(?:provided\s+)?"
    r"(?:is|shows|depicts|appears to be|seems to be|demonstrates|represents)\s+an?\s+"
    rf"(?:[\w()/-]+\s+){{0,5}}?{_IMAGE_TYPE}"
    r"(?:\s+(?:of|taken|obtained|that|in|with (?:adequate|good|poor|fair|satisfactory|suboptimal|low))\b.*)?$"
    rf"|^i (?:can )?see an?\s+(?:[\w()/-]+\s+){{0,3}}?{_IMAGE_TYPE}\s*$"
    r"|\b(?:let me|let's|let us|i will|i'll|i would like to|i'd like to|i can|i am going to|i'm going to)\s+"
    r"(?:\w+\s+)?(?:describe|tell|explain|share|outline|go through|analy[sz]e|look|take a look|review|walk|evaluate"
    r"|assess|check|break|know)\b"
    r"|\bhere(?:'s| is| are)\b|\bwhat i (?:can )?(?:see|found|observe|notice)\b|\bobservations\b"
    r"|\bthe question\b|\byou(?:'re| are)? (?:ask|asking|asked)\b|\byour question\b|\bwhether\b"
    r"|\bthanks?\b|\bthank you\b|\bi hope this helps\b|\bgreat question\b"
    r"|\bi(?:'ve| have) (?:reviewed|looked at|analy[sz]ed|examined)\b"
)
_TECHNIQUE = re.compile(r"\b(?:rotat(?:ed|ion)|inspirat\w*|\w*penetrat\w*|exposure|positioning|image quality"
                        r"|technique|technical\w*)\b")

# 3c6. A denial.
_DENIAL = re.compile(
    r"\bno\b(?!\s+doubt)|\bnot\b|n't\b|\bcannot\b|\bnone\b|\bnor\b|\bneither\b|\bwithout\b"
    r"|\bnegative\b|\bunremarkable\b|\bwithin normal limits\b|\bunlikely\b|\bless likely\b|\bfree of\b"
    r"|\bresolved\b|\brul(?:es|ed)? out\b|\bexcluded\b|\bintact\b|\bnothing\b|\bnil\b|\bzero\b"
    r"|\bdevoid of\b|\bfail(?:s|ed|ing)? to (?:show|demonstrate|reveal|depict|identify|detect|visuali[sz]e|see)\b"
    # absent lung markings are a sign of pneumothorax, not a denial
    r"|\b(?:absent|absence|lack(?:s|ing)?)\b(?!(?:\s+of)?(?:\s+(?:any|the))?(?:\s+[\w-]+)?\s+markings\b)"
    r"|\b(?:is|are|appears?|looks?|seems?|remains?)\s+(?:\w+\s+)?normal\b"
    r"|\bnormal\s+(?:in\s+)?(?:size|heart|cardiac|lungs?|chest|study|radiograph|x-?ray|appearance|findings?"
    r"|examination|caliber|contours?)\b"
    r"|\b(?:lungs?|lung fields|chest)\s+(?:are|is|appears?|looks?|remains?)\s+(?:\w+\s+){0,3}?clear\b|\bclear lungs\b"
    r"|^(?:clear(?: bilaterally)?|normal)$"  # "Lungs: clear", "Heart size: normal"
)

# 3c7. An assertion, and what takes it back.
_ASSERTION = re.compile(
    r"\bthere(?:'s|\s+(?:is|are|was|were|appears?|seems?))\b"
    r"|\b(?:evidence|signs?|findings?|features?) (?:of|suggest\w*|consistent)\b|\b(?:consistent|compatible) with\b"
    r"|\b(?:suggestive|indicative|characteristic|diagnostic|concerning|suspicious) (?:of|for)\b|\bsuggests?\b"
    r"|\bpositive\b|\blikely\b|\bprobabl[ey]\b"
    r"|\b(?:present|seen|visible|visuali[sz]ed|noted|identified|evident|apparent|observed|enlarged|in place)\b"
    r"|\b(?:shows?|demonstrates?|reveals?|indicates?|depicts?|represents?|reflects?)\b"
    r"|\bi (?:can |do )?(?:see|observe|notice)\b|\bcorrect\b|\baffirmative\b"
)
# A finding named alone, as a report's impression names it: "Cardiomegaly.", "Small left pleural effusion."
_FINDING = (r"(?:effusions?|pneumothora(?:x|ces)|cardiomegaly|consolidations?|atelectasis|o?edema|pneumonia"
            r"|opacit(?:y|ies)|nodules?|mass(?:es)?|fractures?|infiltrates?|collapse|hernia|emphysema|fibrosis"
            r"|granulomas?)")
_NAMED_FINDING = re.compile(rf"^(?:[\w-]+\s+){{0,4}}{_FINDING}(?:\s+[\w-]+){{0,3}}$")
_HEADING_WORD = re.compile(r"\b(?:assessment|evaluation|analysis|findings|impression|overview|summary|question"
                           r"|differential|observations?|recommendations?|notes?)\b")
# "Field: value" ("Pleural effusion present: No"): a short label, not a clause, before a colon.
_FIELD = re.compile(r"([^:;,.]{1,80}?)\s*:\s*")
_LABEL = re.compile(r"[\w()/'-]+(?:\s+[\w()/'-]+){0,6}")
_QUESTION_OPENING = re.compile(r"^(?:is|are|was|were|does|do|did|has|have)\s+(?:there\s+)?")
_CLAUSE_WORD = re.compile(r"\b(?:is|are|was|were|has|have|had|there|i|it|we|you|this|these|they|which|that)\b")
# Labels whose value names no finding of this image ("Differential: pneumonia.").
_NOT_A_FINDING_LABEL = re.compile(r"\b(?:differential|ddx|causes?|considerations?|possibilities|indications?|history"
                                  r"|reason|question|request|comparison|technique|recommendations?|next steps?)\b")
# A bare value after a comma or dash: "Pleural effusion, no", "Effusion - none".
_BARE_VALUE = re.compile(r"(?:yes|yeah|yep|no|nope|negative|positive|none(?: seen)?|nil|absent|present|seen|identified"
                         r"|noted|detected|visible|not (?:present|seen|identified|noted|detected|visible))")
_ANOTHER_FINDING = re.compile(r"\b(?:also|additionally|in addition)\b")
_BACK_REFERENCE = re.compile(r"^(?:this|these|it|they|which|such|the (?:finding|opacity|opacities|density|abnormality"
                             r"|appearance|lesion|shadow|change)s?)\b")

_ASSERTED = "asserted"  # "yes" by an assertion, which a hedge that follows can take back


def extract_answer(text: str | None) -> Answer:
    """Classify a reply as "yes", "no" or "uncertain" (rules in the module docstring).

    >>> extract_answer("Yes.")
    'yes'
    >>> extract_answer("Based on the X-ray provided, there is no clear evidence of a significant pleural effusion.")
    'no'
    >>> extract_answer("It is difficult to definitively determine the presence of pneumonia. Observations:\\n- opacity")
    'uncertain'
    >>> extract_answer("Pleural effusion present: No")
    'no'
    >>> extract_answer("user: Is there edema? Answer yes or no.\\nmodel: Yes")
    'yes'
    """
    if not text or not text.strip():
        return "uncertain"
    reply = _normalise(text)
    labelled = _labelled_answer(reply)
    if labelled is not None:
        return labelled
    sentences = [s for s in _SENTENCE_BREAK.split(reply) if s.strip() and not s.rstrip().endswith("?")]
    for k, sentence in enumerate(sentences):
        verdict = _sentence_verdict(sentence)
        if verdict == _ASSERTED:
            following = sentences[k + 1] if k + 1 < len(sentences) else ""
            return "uncertain" if _takes_back(following, referring=True) else "yes"
        if verdict is not None:
            return verdict
    return "uncertain"


def _normalise(text: str) -> str:
    text = _EMPHASIS.sub("", _LINE_MARKUP.sub("", _SPACES.sub(" ", text.translate(_QUOTES))))
    text = _DASH.sub(", ", _LINE_BREAKS.sub("\n", _SPACES.sub(" ", text))).lower()
    last_turn = None
    for last_turn in _TURN.finditer(text):
        pass
    if last_turn is not None:
        text = text[last_turn.end():]
    return _INSTRUCTION.sub(" ", _TURN_TOKEN.sub(" ", text))


def _labelled_answer(reply: str) -> Answer | None:
    """The answer after an explicit label ("Answer: no"), or None if the reply has none."""
    label = _ANSWER_LABEL.search(reply)
    if label is None:
        return None
    rest = _SENTENCE_BREAK.split(reply[label.end():], maxsplit=1)[0]
    if _UNCERTAIN_ANSWER.match(rest):
        return "uncertain"
    return _leading_answer(rest)


def _leading_answer(sentence: str) -> Answer | None:
    """The yes/no word opening `sentence`; uncertain for "yes and no" or a yes/no that a
    hedge follows at once ("No, I cannot tell"); None when no yes/no word opens it."""
    leading = _LEADING.match(sentence)
    if leading is None:
        return None
    rest = sentence[leading.end():]
    if _BOTH_ANSWERS.match(rest):
        return "uncertain"
    first_piece = next((p for p in _PIECE_BREAK.split(rest) if p and p.strip()), "")
    if _REFUSAL.search(first_piece) or any(h.search(first_piece) for h in _HEDGES):
        return "uncertain"
    return "yes" if leading.group(1) in _YES_WORDS else "no"


def _sentence_verdict(sentence: str, named_alone: bool | None = None, depth: int = 0) -> str | None:
    """A sentence's answer, _ASSERTED for a "yes" by assertion as its last word, or None.
    `named_alone` and `depth` carry over to the value of a "field: value" sentence."""
    if named_alone is None:
        named_alone = sentence.rstrip().endswith(".")  # a heading names a finding without committing to it
    sentence = _LEAD_IN.sub("", sentence.strip().rstrip(".!"))
    leading = _leading_answer(sentence)
    if leading is not None:
        return leading
    field = _field(sentence) if depth < 3 else None
    if field is not None:
        label, value = field
        label_verdict = _piece_verdict(label)
        if label_verdict == "uncertain" or not value:  # a hedged label stands; a heading asserts nothing
            return None if label_verdict == _ASSERTED else label_verdict
        if label_verdict is not None:  # "Effusion present: no": the value's first words decide, else the label
            value = next((p for p in _PIECE_BREAK.split(value) if p and p.strip()), "")
        named_alone = named_alone and not _NOT_A_FINDING_LABEL.search(label)
        verdict = _sentence_verdict(value, named_alone, depth + 1)
        return verdict if verdict is not None else label_verdict
    pieces = [p.strip() for p in _PIECE_BREAK.split(sentence) if p and p.strip()]
    if named_alone and _names_a_finding(sentence):
        return "uncertain" if len(pieces) > 1 and _takes_back(pieces[1], referring=False) else _ASSERTED
    for k, piece in enumerate(pieces):
        verdict = _piece_verdict(_REPORTING.sub("", _LEAD_IN.sub("", piece)))
        if verdict == _ASSERTED and k + 1 < len(pieces):
            return "uncertain" if _takes_back(pieces[k + 1], referring=False) else "yes"
        if verdict is not None:
            return verdict
    return None


def _field(sentence: str) -> tuple[str, str] | None:
    """(label, value) when `sentence` is "label: value" or "label, <bare value>" with a short
    label rather than a clause ("Evidence of pneumothorax: none", "Pleural effusion, no"),
    else None; the value is "" for a heading ("Key findings:")."""
    colon = _FIELD.match(sentence)
    if colon is not None:
        label, value = colon.group(1).strip(), sentence[colon.end():].strip()
    else:
        label, comma, value = sentence.partition(",")
        label, value = label.strip(), value.strip()
        if not comma or len(label) > 80 or not _BARE_VALUE.fullmatch(value):
            return None
    words = _QUESTION_OPENING.sub("", label)
    if not _LABEL.fullmatch(label) or not words or _CLAUSE_WORD.search(words):
        return None
    return label, value


def _names_a_finding(sentence: str) -> bool:
    """Whether `sentence` opens by naming a finding alone, up to its end or a comma
    ("Cardiomegaly", "Cardiomegaly, no effusion"; not "Pleural effusion: none")."""
    first = re.match(r"[^,:;]+(?=,\s|$)", sentence)
    return (first is not None and bool(_NAMED_FINDING.match(first.group().strip()))
            and not _HEADING_WORD.search(first.group()) and _piece_verdict(first.group().strip()) is None)


def _piece_verdict(piece: str) -> str | None:
    piece = _ASSURANCE.sub(" ", piece).strip()
    if not piece:
        return None
    if _REFUSAL.search(piece):
        return "uncertain"
    if _DISCLAIMER.search(piece):
        return None
    if any(h.search(piece) for h in _HEDGES):
        return "uncertain"
    if _META.search(piece) or _TECHNIQUE.search(piece):
        return None
    leading = _leading_answer(piece)
    if leading is not None:
        return leading
    if _DENIAL.search(piece):
        return "no"
    if _ASSERTION.search(piece):
        return _ASSERTED
    return None


def _takes_back(following: str, *, referring: bool) -> bool:
    """Whether `following` only interprets the assertion before it with a hedge ("which may
    represent ..."); a next sentence must refer back to it ("This could be ...")."""
    following = following.strip()
    if referring and not _BACK_REFERENCE.match(following):
        return False
    return bool(_MODAL_HEDGE.search(following)) and not _ANOTHER_FINDING.search(following)
