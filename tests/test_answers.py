import pytest

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
]


@pytest.mark.parametrize("text,expected", CASES)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected
