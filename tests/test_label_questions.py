"""The label policy and the balanced questions built from label tables, by hand."""

from __future__ import annotations

import pandas as pd

from compute.data.datasets.build_log import BuildLog
from compute.data.datasets.label_questions import LabelPolicy, balanced_questions, label_answers
from compute.data.questions import TRAINING_TEMPLATES, possible_locations
from compute.data.conditions import condition


def _wide() -> pd.DataFrame:
    return pd.DataFrame({
        "image_id": ["a", "b", "c", "d"], "source": [f"t.csv row {i}" for i in range(1, 5)],
        "No Finding": [None, None, "1.0", None],
        "Edema": ["1.0", "0.0", None, "-1.0"],
        "Fracture": ["1", None, None, "0"],
    })


def test_label_policy_by_hand():
    log = BuildLog(log=lambda line: None)
    long = label_answers(_wide(), ["No Finding", "Edema", "Fracture"], LabelPolicy(), log, "No Finding")
    assert sorted(zip(long.image_id, long.condition, long.answer)) == [
        ("a", "edema", "yes"), ("a", "fracture", "yes"), ("b", "edema", "no"), ("d", "fracture", "no")]
    assert log.skipped["label blank (not mentioned)"] == 3 and log.skipped["label uncertain (-1), --uncertain skip"] == 1
    long = label_answers(_wide(), ["No Finding", "Edema", "Fracture"],
                         LabelPolicy(uncertain="no", no_finding_as_no=True), BuildLog(log=lambda line: None),
                         "No Finding")
    answers = {(i, c): a for i, c, a in zip(long.image_id, long.condition, long.answer)}
    assert answers[("c", "edema")] == "no" and answers[("c", "fracture")] == "no"  # No Finding == 1
    assert answers[("d", "edema")] == "no" and ("b", "fracture") not in answers  # blank without No Finding


def test_balanced_questions_pair_each_yes_with_a_no_and_name_locations_as_often():
    n_yes, n_no = 8, 20
    long = pd.DataFrame({
        "image_id": [f"i{k}" for k in range(n_yes + n_no)], "condition": "pleural_effusion",
        "answer": ["yes"] * n_yes + ["no"] * n_no,
        "location": ["left lung base"] * 4 + [None] * 4 + [None] * n_no,  # half the yes rows know where
    })
    log = BuildLog(log=lambda line: None)
    out = balanced_questions(long, LabelPolicy(seed=3), log)
    assert (out.answer == "yes").sum() == (out.answer == "no").sum() == n_yes
    assert log.skipped["left out to balance the sample (as many no as yes questions)"] == n_no - n_yes
    no = out[out.answer == "no"]
    assert no.location.notna().sum() == 4  # as often as the yes side
    assert set(no.location.dropna()) <= set(possible_locations(condition("pleural_effusion")))
    forms = {t.format(term="pleural effusion") for t in TRAINING_TEMPLATES}
    for question, location in zip(out.question, out.location):
        expected = forms if location is None else {f[:-1] + f" in the {location}?" for f in forms}
        assert question in expected
    assert list(out.group_id) == [f"{i}:pleural_effusion" for i in out.image_id]
    capped = balanced_questions(long, LabelPolicy(per_condition=4), BuildLog(log=lambda line: None))
    assert len(capped) == 4 and (capped.answer == "yes").sum() == 2


def test_labels_are_reconciled_per_image_and_finding_before_questions():
    from compute.data.datasets.label_questions import reconcile_labels
    long = pd.DataFrame({
        "image_id": ["a", "a", "b", "b", "c", "c", "c", "d"],
        "condition": ["edema", "edema", "edema", "edema", "pleural_effusion", "pleural_abnormality", "lung_opacity",
                      "pleural_abnormality"],
        "answer": ["yes", "yes", "yes", "no", "yes", "no", "no", "no"],
        "source": [f"t.csv row {i}" for i in range(1, 9)],
    })
    log = BuildLog(log=lambda line: None)
    kept = reconcile_labels(long, log)
    assert sorted(zip(kept.image_id, kept.condition, kept.answer)) == [
        ("a", "edema", "yes"), ("c", "lung_opacity", "no"), ("c", "pleural_effusion", "yes"),
        ("d", "pleural_abnormality", "no")]
    assert log.skipped["repeated label (same image, finding and answer)"] == 1
    assert log.skipped["one image labelled both yes and no for this finding"] == 2
    assert sum(n for reason, n in log.skipped.items() if reason.startswith("no for a broader finding")) == 1


def test_questions_that_are_no_single_findings_label_are_skipped():
    from compute.data.datasets.output import check_questions
    rows = pd.DataFrame({"question": [
        "Is there pneumothorax?", "Is there no evidence of pneumothorax?", "Is the left lung free of effusion?",
        "Are there signs of both pleural effusion and lung cancer in the left lower lung zone?",
        "Is there consolidation or atelectasis?", "Is there a pericardial effusion?"], "source": list("abcdef")})
    log = BuildLog(log=lambda line: None)
    kept = check_questions(rows, log)
    assert list(kept.question) == ["Is there pneumothorax?", "Is there a pericardial effusion?"]
    assert log.skipped["negated question (its yes would mean the finding is absent)"] == 2
    from compute.data.label_names import condition_in_text
    assert condition_in_text("Is there a pericardial effusion?") == "pericardial_effusion"


def test_blank_like_terms_name_no_condition():
    from compute.data.label_names import condition_from_term
    assert condition_from_term("nan", "Is there edema?") == "edema"
    assert condition_from_term("NULL") is None and condition_from_term("N/A") is None
    assert condition_from_term("pleural", "Is there pleural effusion?") == "pleural_effusion"
