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
