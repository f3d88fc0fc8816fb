import time

import pytest

from compute.data.questions import DEFAULT_INSTRUCTION
from compute.model.answers import extract_answer

CASES = [
    ("Yes", "yes"),
    ("yes.", "yes"),
    ("No", "no"),
    ("No, the heart size is normal.", "no"),
    ("  **Yes** - there is a right pleural effusion.", "yes"),
    ("Nope", "no"),
    ("Ja", "uncertain"),  # no yes/no word, no cue
    ("Based on the chest X-ray provided, there is no clear evidence of a significant pleural effusion.", "no"),
    ("Based on the image, there is a moderate left pleural effusion.", "yes"),
    ("The image shows cardiomegaly with a cardiothoracic ratio above 0.5.", "yes"),
    ("There is no pneumothorax.", "no"),
    ("No evidence of consolidation.", "no"),
    ("The lungs are clear; no focal consolidation is seen.", "no"),
    ("Pneumothorax is not seen.", "no"),
    ("The heart is not enlarged.", "no"),
    ("The cardiac silhouette is enlarged, consistent with cardiomegaly.", "yes"),
    ("Findings are suggestive of pulmonary edema.", "yes"),
    ("Signs of atelectasis at the left base.", "yes"),
    ("The chest X-ray is unremarkable.", "no"),
    ("It is not possible to determine this from a single image.", "uncertain"),
    ("I cannot determine whether there is an effusion.", "uncertain"),
    ("", "uncertain"),
    (None, "uncertain"),
    ("<unk> lobe lobe", "uncertain"),
    ("The answer is yes.", "yes"),
    ("After careful review, the answer is: no", "no"),
    ("Yesterday's study: there is no effusion.", "no"),  # 'Yesterday' must not read as a leading yes
    # negation after a verb that alone would assert
    ("The image shows no pleural effusion.", "no"),
    ("The X-ray demonstrates no evidence of pneumothorax.", "no"),
    ("There appears to be no effusion.", "no"),
    ("Signs of pneumonia are not present.", "no"),
    ("Evidence of effusion is absent.", "no"),
    ("Findings consistent with no acute disease.", "no"),
    ("I don't see any effusion.", "no"),
    ("There's a large right pleural effusion.", "yes"),
    ("There's no effusion.", "no"),
    ("The lungs are clear.", "no"),
    ("It is unlikely that there is an effusion.", "no"),
    # leading words and markup
    ("No doubt, there is a large effusion.", "yes"),
    ("**Answer:** Yes", "yes"),
    ("Answer: No", "no"),
    ("The answer is: **No**", "no"),
    ("\u00a0Yes", "yes"),
    ("Negative.", "no"),
    ("Is there an effusion? Yes.", "yes"),
    ("No. Yes.", "no"),
    # hedges count only in the clause that decides
    ("I cannot rule out a small effusion.", "uncertain"),
    ("A small effusion cannot be ruled out.", "uncertain"),
    ("Possibly.", "uncertain"),
    ("Yes and no.", "uncertain"),
    ("There is a right pleural effusion. Its cause cannot be determined.", "yes"),
    ("There is no effusion, although the heart size is difficult to assess.", "no"),
    ("Cardiomegaly is present; no effusion.", "yes"),
    ("There is a right pleural effusion, but no pneumothorax.", "yes"),
    # field: value — the value decides, not the label's wording
    ("Pleural effusion present: No", "no"),
    ("Evidence of pneumothorax: none.", "no"),
    ("Signs of pneumonia: absent", "no"),
    ("Cardiomegaly (enlarged heart): No", "no"),
    ("**Pleural effusion present:** No", "no"),
    ("Is a pneumothorax present: No", "no"),
    ("Effusion present: no. Cardiomegaly present: yes.", "no"),
    ("Pneumothorax: present", "yes"),
    ("Edema: Yes", "yes"),
    ("Heart size: normal", "no"),
    ("Pleural effusion, no.", "no"),
    ("Effusion - none.", "no"),
    ("Cardiomegaly, no effusion.", "yes"),  # a named finding, then another finding denied
    ("Impression: Large right pleural effusion.", "yes"),
    ("Pleural effusion present: small left effusion, no pneumothorax", "yes"),
    ("Possible effusion: yes", "uncertain"),
    ("Differential: pneumonia, atelectasis.", "uncertain"),
    ("Evidence of effusion:", "uncertain"),  # a heading
    # denial wordings
    ("Nothing to suggest pneumonia.", "no"),
    ("Nothing to indicate an effusion", "no"),
    ("There is an absence of pleural effusion.", "no"),
    ("There is a lack of any focal consolidation.", "no"),
    ("The image fails to demonstrate a pneumothorax.", "no"),
    ("The image fails to show an effusion.", "no"),
    ("Zero evidence of pneumothorax.", "no"),
    ("There is absence of lung markings beyond the pleural line.", "yes"),  # a sign of pneumothorax
    ("In the absence of a lateral view, there is a large effusion.", "yes"),
    # assurance is no denial
    ("Without a doubt, yes.", "yes"),
    ("Without question, there is a large effusion.", "yes"),
    ("There's not much doubt that there is an effusion.", "yes"),
    ("I do not doubt that there is an effusion.", "yes"),
    ("There is no doubt that there is no effusion.", "no"),
    ("Not only is there an effusion, there is also consolidation.", "yes"),
    # echoed prompt
    ("Answer yes or no. Yes.", "yes"),
    ("user: Is there edema? Answer yes or no.\nmodel: Yes", "yes"),
    ("USER: Is there edema? Answer yes or no. ASSISTANT: No.", "no"),
    ("Answer yes or no.", "uncertain"),
    ("I can't answer yes or no from this image.", "uncertain"),
    ("My answer would be yes.", "yes"),
    # an active "not rule out" is a hedge
    ("I would not rule out a small effusion.", "uncertain"),
    ("The findings do not exclude pneumothorax.", "uncertain"),
    ("Not applicable.", "uncertain"),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_default_instruction_is_never_an_answer():
    assert extract_answer(DEFAULT_INSTRUCTION) == "uncertain"
    assert extract_answer(f"Is there an effusion? {DEFAULT_INSTRUCTION}") == "uncertain"
    assert extract_answer(f"{DEFAULT_INSTRUCTION} Yes.") == "yes"
    assert extract_answer(f"{DEFAULT_INSTRUCTION}\nNo, there is no effusion.") == "no"
    assert extract_answer(f"user: Is there an effusion? {DEFAULT_INSTRUCTION}\nmodel: Yes") == "yes"


@pytest.mark.parametrize("unit", [" ", "*\n", "#\n", "a: ", "effusion, ", "no doubt ", "answer yes or ", "model: ",
                                  "lack of ", "a\n", "i would not rule "])
def test_long_hostile_reply_reads_quickly(unit):
    text = (unit * (50_000 // len(unit) + 1))[:50_000] + "."
    start = time.perf_counter()
    extract_answer(text)
    assert time.perf_counter() - start < 1.0
