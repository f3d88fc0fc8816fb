"""Yes/no questions from per-image label tables, the way the original study built them.

A label table has one row per image (or study) and one column per finding, coded as in
CheXpert: 1 present, 0 absent, -1 uncertain, blank not mentioned. `label_answers` turns it
into one row per (image, condition) with a yes or no answer under the label policy, and
`balanced_questions` picks, for each condition, as many "no" rows as "yes" rows and words
each as a canonical question. Everything is done on whole columns; only the chosen
questions' text is formatted row by row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from compute.data.conditions import condition as study_condition
from compute.data.datasets.build_log import BuildLog
from compute.data.label_names import NO_FINDING, condition_key, condition_term, is_study_condition
from compute.data.questions import TRAINING_TEMPLATES, possible_locations
from compute.data.validate import INT32_MAX

UNCERTAIN_CHOICES = ("skip", "yes", "no")


@dataclass(frozen=True)
class LabelPolicy:
    """How label codes become answers, and how many questions each condition gets."""

    uncertain: str = field(default="skip", metadata={
        "choices": UNCERTAIN_CHOICES, "help": "what an uncertain label (-1) becomes: skip it, or answer yes "
                                              "or no (default: {default})"})
    blank_as_no: bool = field(default=False, metadata={
        "help": "read a blank label (not mentioned) as no; by default it is skipped"})
    no_finding_as_no: bool = field(default=False, metadata={
        "help": "where 'No Finding' is 1, read the image's blank labels as no"})
    per_condition: int | None = field(default=None, metadata={
        "range": (2, INT32_MAX), "metavar": "N",
        "help": "at most N questions per condition, half yes and half no (default: as many as the "
                "smaller side allows)"})
    unbalanced: bool = field(default=False, metadata={
        "help": "keep every labelled row instead of as many no as yes questions per condition"})
    seed: int = field(default=0, metadata={"range": (0, INT32_MAX), "help": "seed for sampling rows and "
                                                                            "question templates (default: {default})"})

    def __post_init__(self) -> None:
        if self.uncertain not in UNCERTAIN_CHOICES:
            raise ValueError(f"uncertain must be one of {', '.join(UNCERTAIN_CHOICES)}, got {self.uncertain!r}")


_CODES = {"1": "yes", "1.0": "yes", "0": "no", "0.0": "no", "-1": "uncertain", "-1.0": "uncertain"}


def label_answers(wide: pd.DataFrame, label_columns: list[str], policy: LabelPolicy, log: BuildLog,
                  no_finding_column: str | None = None) -> pd.DataFrame:
    """One row per (row of `wide`, label column) that the policy answers: the other columns
    of `wide`, plus `condition` (the label's study condition or own normalised name), `label`
    (the column name) and `answer` (yes | no). Rows the policy leaves out are counted."""
    keep = [c for c in wide.columns if c not in label_columns and c != no_finding_column]
    frame = wide.copy()
    if no_finding_column is not None and no_finding_column in wide.columns:
        nothing_found = wide[no_finding_column].fillna("").str.strip().map(_CODES) == "yes"
    else:
        nothing_found = pd.Series(False, index=wide.index)
    frame["_nothing_found"] = nothing_found
    columns = [c for c in label_columns if condition_key(c) != NO_FINDING]
    long = frame.melt(id_vars=[*keep, "_nothing_found"], value_vars=columns, var_name="label", value_name="code")
    code = long["code"].fillna("").str.strip()
    long["answer"] = code.map(_CODES)
    long.loc[code == "", "answer"] = "blank"
    long = log.skip_rows("label is not 1, 0, -1 or blank", long, long["answer"].isna(),
                         lambda row: f"{row['label']} = {row['code']!r}")
    if policy.no_finding_as_no:
        long.loc[(long["answer"] == "blank") & long["_nothing_found"], "answer"] = "no"
    if policy.blank_as_no:
        long.loc[long["answer"] == "blank", "answer"] = "no"
    long = log.skip_rows("label blank (not mentioned)", long, long["answer"] == "blank",
                         lambda row: f"{row['label']} blank")
    if policy.uncertain == "skip":
        long = log.skip_rows("label uncertain (-1), --uncertain skip", long, long["answer"] == "uncertain",
                             lambda row: f"{row['label']} = -1")
    else:
        long.loc[long["answer"] == "uncertain", "answer"] = policy.uncertain
    names = {c: condition_key(c) for c in columns}
    long["condition"] = long["label"].map(names)
    return long.drop(columns=["code", "_nothing_found"]).reset_index(drop=True)


# A yes for the first is a yes for each of the second: the broader term's "no" on that image is wrong.
KINDS_OF: dict[str, tuple[str, ...]] = {
    "pleural_effusion": ("pleural_abnormality",),
    "pneumothorax": ("pleural_abnormality",),
    "consolidation": ("lung_opacity",),
    "edema": ("lung_opacity",),
    "pneumonia": ("lung_opacity",),
    "atelectasis": ("lung_opacity",),
    "lung_lesion": ("lung_opacity",),
    "cardiomegaly": ("enlarged_cardiomediastinum",),
}


def reconcile_labels(long: pd.DataFrame, log: BuildLog) -> pd.DataFrame:
    """One answer per image and condition before the questions are worded: a repeated label is
    kept once; an image labelled both yes and no for one condition (two rows, or two columns
    that name it) is skipped; and a "no" for a broader condition where the image is yes for a
    kind of it ("no pleural abnormality" beside a pleural effusion) is skipped."""
    long = long.reset_index(drop=True)
    repeated = long.duplicated(subset=["image_id", "condition", "answer"], keep="first")
    long = log.skip_rows("repeated label (same image, finding and answer)", long, repeated,
                         lambda row: f"{row['image_id']}: {row['condition']}")
    both = long.groupby(["image_id", "condition"])["answer"].transform("nunique") > 1
    long = log.skip_rows("one image labelled both yes and no for this finding", long, both,
                         lambda row: f"{row['image_id']}: {row['condition']}")
    implied = pd.DataFrame([(narrow, broad) for narrow, broads in KINDS_OF.items() for broad in broads],
                           columns=["narrow", "condition"])
    positive = long.loc[long["answer"] == "yes", ["image_id", "condition"]].rename(columns={"condition": "narrow"})
    contradicted = positive.merge(implied, on="narrow")[["image_id", "condition"]].drop_duplicates()
    flagged = long.merge(contradicted.assign(_contradicted=True), on=["image_id", "condition"], how="left")
    wrong_no = (flagged["_contradicted"].fillna(False).astype(bool) & (flagged["answer"] == "no")).to_numpy()
    return log.skip_rows("no for a broader finding where the image has a kind of it (e.g. pleural abnormality "
                         "beside a pleural effusion)", long, pd.Series(wrong_no, index=long.index),
                         lambda row: f"{row['image_id']}: {row['condition']}")


def balanced_questions(long: pd.DataFrame, policy: LabelPolicy, log: BuildLog) -> pd.DataFrame:
    """Per condition, as many "no" rows as "yes" rows (capped by --per-condition), each worded
    with a canonical template. A `location` column, where a row has one (from boxes), is
    named in its yes question; the no side names a possible location of the condition as
    often, so that the location says nothing about the answer."""
    rng = np.random.default_rng(policy.seed)
    chosen = []
    for key, group in long.groupby("condition", sort=True):
        yes, no = group[group["answer"] == "yes"], group[group["answer"] == "no"]
        if policy.unbalanced:
            n_yes, n_no = len(yes), len(no)
            if policy.per_condition:
                n_yes = min(n_yes, policy.per_condition // 2)
                n_no = min(n_no, policy.per_condition - n_yes)
        else:
            n_yes = n_no = min(len(yes), len(no), (policy.per_condition or INT32_MAX) // 2)
        picked = [side.iloc[np.sort(rng.choice(len(side), size=n, replace=False))] for side, n in
                  ((yes, n_yes), (no, n_no))]
        left_out = len(group) - n_yes - n_no
        if left_out:
            why = "--per-condition" if policy.per_condition else "as many no as yes questions"
            log.skip(f"left out to balance the sample ({why})", f"{key}: {len(yes):,} yes, {len(no):,} no labelled; "
                                                               f"{n_yes:,} yes and {n_no:,} no kept", left_out)
        chosen += picked
    if not chosen:
        return long.iloc[0:0].assign(question=pd.Series(dtype=str), group_id=pd.Series(dtype=str))
    out = pd.concat(chosen, ignore_index=True)
    out["location"] = _balanced_locations(out, rng)
    templates = rng.integers(len(TRAINING_TEMPLATES), size=len(out))
    out["question"] = [_question(key, t, loc) for key, t, loc in
                       zip(out["condition"], templates, out["location"])]
    out["group_id"] = out["image_id"].astype(str) + ":" + out["condition"]
    return out


def _balanced_locations(frame: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
    locations = frame["location"] if "location" in frame.columns else pd.Series(None, index=frame.index,
                                                                                 dtype=object)
    locations = locations.where(frame["answer"] == "yes")
    for key, group in frame.groupby("condition"):
        yes = group["answer"] == "yes"
        named = locations[group.index][yes].notna().mean() if yes.any() else 0.0
        choices = possible_locations(study_condition(key)) if is_study_condition(key) else []
        no_rows = group.index[~yes]
        if not choices or not named or not len(no_rows):
            continue
        named_rows = rng.choice(no_rows, size=round(named * len(no_rows)), replace=False)
        locations.loc[named_rows] = rng.choice(choices, size=len(named_rows))
    return locations.astype(object).where(locations.notna(), None)


def _question(key: str, template: int, location: str | None) -> str:
    question = TRAINING_TEMPLATES[template].format(term=condition_term(key))
    return question[:-1] + f" in the {location}?" if location else question
