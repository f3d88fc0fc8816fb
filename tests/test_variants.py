"""The variant generator: expected rewrites, coverage of the six categories, determinism,
no negation, and the opt-in negation probe."""

import re

import pytest

from compute.data.questions import TRAINING_TEMPLATES
from compute.data import UnparseableQuestionError, parse_question
from compute.variants import CATEGORIES, generate_variants

NEGATION = re.compile(r"\b(no|not|never|without|absent|absence|free of|normal|clear)\b", re.IGNORECASE)


def test_parse_finds_condition_term_and_location():
    q = parse_question("Is there consolidation in the left lower lobe?")
    assert (q.condition.key, q.term, q.location, q.side_zone) == ("consolidation", "consolidation",
                                                                 "left lower lobe", ("left", "lower"))
    q = parse_question("Does the patient have an enlarged heart?")
    assert (q.condition.key, q.term, q.location) == ("cardiomegaly", "an enlarged heart", None)
    assert parse_question("Is there pulmonary oedema?").condition.key == "edema"
    with pytest.raises(UnparseableQuestionError, match="cannot find a term for any of the nine conditions"):
        parse_question("Is the patient rotated?")


def test_expected_rewrites_of_a_located_question():
    texts = {v.text: (v.category, v.sub_strategy) for v in generate_variants(
        "Is there consolidation in the left lower lobe?", n=40)}
    expected = {
        "Is there airspace consolidation in the left lower lobe?": ("synonym", "technical synonym"),
        "Is there a solid area in the lung in the left lower lobe?": ("synonym", "lay term"),
        "Is consolidation seen in the left lower lobe?": ("voice", "passive"),
        "Can consolidation be seen in the left lower lobe?": ("voice", "modal"),
        "Any consolidation in the left lower lobe?": ("register", "telegraphic"),
        "Is there radiographic evidence of consolidation in the left lower lobe?": ("register", "formal clinical"),
        "In the left lower lobe, is there consolidation?": ("clause_reordering", "fronted prepositional phrase"),
        "Is there any consolidation in the left lower lobe?": ("phrasing", "quantifier"),
        "Is the presence of consolidation in the left lower lobe confirmed on this image?":
            ("phrasing", "nominalisation"),
    }
    for text, label in expected.items():
        assert texts.get(text) == label, text
    assert any(t.startswith("Is there consolidation in the left") and c == "synonym"
               for t, (c, s) in texts.items() if s == "location phrase")


def test_expected_rewrites_of_spelling_and_register():
    texts = {v.text for v in generate_variants("Is there edema?", n=40)}
    assert {"Is there oedema?", "Is there fluid in the lungs?", "Any edema?", "Can edema be seen?",
            "Can you see edema on this X-ray?"} <= texts
    texts = {v.text for v in generate_variants("Is there cardiomegaly?", n=40)}
    assert {"Is there an enlarged heart?", "Is there cardiac enlargement?", "Is an enlarged heart seen?"} <= texts


@pytest.mark.parametrize("question", [
    "Is there cardiomegaly?", "Is there consolidation in the left lower lobe?", "Is there evidence of edema?",
    "Does the image show pleural effusion in the bibasilar?", "Is pneumothorax present in the right apex?",
    "Is there atelectasis in both lung bases?", "Is lung opacity present?", "Is there pleural abnormality?",
    "Is there evidence of pneumonia in the right middle lobe?",
])
def test_ten_variants_cover_the_categories_keep_meaning_and_add_no_negation(question):
    variants = generate_variants(question, n=10, seed=3)
    assert len(variants) == 10 and [v.index for v in variants] == list(range(1, 11))
    assert {v.category for v in variants} == set(CATEGORIES)
    texts = [v.text for v in variants]
    assert len(set(texts)) == 10 and question not in texts
    parsed = parse_question(question)
    for v in variants:
        assert v.text[0].isupper() and v.text.endswith("?") and "  " not in v.text
        assert not NEGATION.search(v.text), v.text
        assert not re.search(r"\bin the (both|bilateral|bibasilar)\b(?! region)", v.text), v.text
        again = parse_question(v.text)
        assert again.condition.key == parsed.condition.key, v.text  # same finding
        assert (again.side_zone is None) == (parsed.side_zone is None), v.text
        assert again.side_zone in (None, parsed.side_zone), v.text  # same place
        assert not v.answer_inverted and v.transformation
    training = {t.format(term=parsed.term) for t in TRAINING_TEMPLATES}
    assert not training & set(texts)


def test_same_seed_same_variants_and_another_seed_differs():
    a = generate_variants("Is there pleural effusion?", seed=1)
    assert a == generate_variants("Is there pleural effusion?", seed=1)
    assert [v.text for v in a] != [v.text for v in generate_variants("Is there pleural effusion?", seed=2)]


def test_negation_probe_is_opt_in_and_inverts_the_answer():
    plain = generate_variants("Is there cardiomegaly?", n=10)
    assert not any(v.answer_inverted for v in plain)
    probed = generate_variants("Is there cardiomegaly?", n=10, negation_probe=True)
    assert len(probed) == 11
    probe = probed[-1]
    assert (probe.text, probe.category, probe.answer_inverted) == ("Is the heart size normal?", "negation_probe", True)
    located = generate_variants("Is there consolidation in the left lower lobe?", negation_probe=True)[-1]
    assert located.text == "Is this image free of consolidation in the left lower lobe?" and located.answer_inverted
