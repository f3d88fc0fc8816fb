import pytest

from compute.answers import extract_answer

CASES = [
    ("Yes", "yes"),
    ("yes.", "yes"),
    ("No", "no"),
    ("No, the heart size is normal.", "no"),
    ("  **Yes** - there is a right pleural effusion.", "yes"),
    ("Nope", "uncertain"),  # not a yes/no word, no clause cue
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
    ("Yesterday's film is not available.", "no"),  # 'Yesterday' must not read as a leading yes
]


@pytest.mark.parametrize("text,expected", CASES)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected
