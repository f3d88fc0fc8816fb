"""`dataset medical-cxr-vqa` on a fixture with the exact columns of Hu et al.'s question CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from compute.cli import main
from compute.data.datasets.medical_cxr_vqa import COLUMNS
from tests.dataset_support import manifest_rows, run_study_and_page, write_image

SUBJECT, STUDY = "10000032", "50414267"
FOLDER = f"files/p10/p{SUBJECT}/s{STUDY}"


def _row(dicom: str, question: str, kind: str, answer: str, split: str = "train", path: str | None = None) -> list:
    return [dicom, SUBJECT, STUDY, question, kind, answer, split, f"{FOLDER}/{dicom}.jpg" if path is None else path]


ROWS = [
    _row("d1", "is there pleural effusion?", "presence", "yes"),  # row 1
    _row("d2", "is there atelectasis in the left lower lobe?", "presence", "No"),  # row 2
    _row("d1", "is there any abnormality?", "abnormality", "yes"),  # row 3: no condition -> "abnormality"
    _row("d2", "what abnormalities are seen in this image?", "abnormality", "pleural effusion"),  # row 4: open
    _row("d1", "which view is this image taken?", "view", "PA"),  # row 5: not yes/no
    _row("d9", "is there edema?", "presence", "yes"),  # row 6: no image file
    _row("d1", "is there pleural effusion?", "presence", "yes"),  # row 7: repeats row 1
    _row("d2", "what has changed compared to the reference image?", "difference", "nothing"),  # row 8
    _row("d2", "is there cardiomegaly?", "presence", "no.", path=f"/physionet/mimic-cxr-jpg/2.0.0/{FOLDER}/d2.jpg"),
    _row("d4", "is there pneumothorax?", "presence", "Yes", split="test", path=""),  # row 10: path from the ids
    _row("d4", "is there edema?", "presence", "maybe", split="test"),  # row 11: not yes/no
]


@pytest.fixture
def cxr_vqa_root(tmp_path, xray_pixels) -> Path:
    root = tmp_path / "mimic-cxr-jpg"
    root.mkdir()
    with (root / "medical_cxr_vqa_questions.csv").open("w", newline="") as f:
        csv.writer(f).writerows([COLUMNS, *ROWS])
    # Medical-Diff-VQA's pair file next to it: not in this shape, so it is not the one chosen
    (root / "mimic_pair_questions.csv").write_text("study_id,subject_id,ref_id,question_type,question,answer\n"
                                                   f"{STUDY},{SUBJECT},5,difference,what has changed?,nothing\n")
    for i, dicom in enumerate(("d1", "d2", "d4")):
        write_image(root / FOLDER / f"{dicom}.jpg", xray_pixels[i])
    return root


def test_yes_no_rows_become_questions(cxr_vqa_root, capsys):
    out = cxr_vqa_root / "manifest.jsonl"
    assert main(["dataset", "medical-cxr-vqa", "--root", str(cxr_vqa_root), "--out", str(out), "--quiet"]) == 0
    rows = {(r["image_id"], r["question"]): r for r in manifest_rows(out)}
    assert set(rows) == {("d1", "is there pleural effusion?"), ("d2", "is there atelectasis in the left lower lobe?"),
                         ("d1", "is there any abnormality?"), ("d2", "is there cardiomegaly?"),
                         ("d4", "is there pneumothorax?")}
    effusion = rows[("d1", "is there pleural effusion?")]
    assert effusion == {"image": f"{FOLDER}/d1.jpg", "question": "is there pleural effusion?", "answer": "yes",
                        "condition": "pleural_effusion", "image_id": "d1", "split": "train",
                        "source": "medical_cxr_vqa_questions.csv row 1", "question_type": "presence",
                        "study_id": STUDY, "subject_id": SUBJECT}
    atelectasis = rows[("d2", "is there atelectasis in the left lower lobe?")]
    assert (atelectasis["answer"], atelectasis["condition"], atelectasis["location"]) == ("no", "atelectasis",
                                                                                          "left lower lobe")
    assert rows[("d1", "is there any abnormality?")]["condition"] == "abnormality"
    cardiomegaly = rows[("d2", "is there cardiomegaly?")]  # an absolute path, read from its files/ part
    assert (cardiomegaly["image"], cardiomegaly["answer"], cardiomegaly["condition"]) == (f"{FOLDER}/d2.jpg", "no",
                                                                                          "cardiomegaly")
    pneumothorax = rows[("d4", "is there pneumothorax?")]  # no image_path: the MIMIC-CXR-JPG path of the dicom
    assert (pneumothorax["image"], pneumothorax["split"], pneumothorax["answer"]) == (f"{FOLDER}/d4.jpg", "test", "yes")
    summary = capsys.readouterr().out
    assert "not a yes/no question (question_type abnormality)" in summary and "answer 'pleural effusion'" in summary
    assert "not a yes/no question (question_type view)" in summary and "row 5: answer 'PA'" in summary
    assert "not a yes/no question (question_type presence)" in summary and "row 11: answer 'maybe'" in summary
    assert "question_type 'difference' compares two studies" in summary
    assert "image file missing" in summary and f"{FOLDER}/d9.jpg" in summary
    assert "duplicated row" in summary and "row 7: repeats medical_cxr_vqa_questions.csv row 1" in summary
    assert "abnormality" in summary and "outside the nine" in summary
    assert "kept under its question_type: abnormality 1" in summary


def test_split_and_file_options(cxr_vqa_root, capsys):
    out = cxr_vqa_root / "manifest.jsonl"
    assert main(["dataset", "medical-cxr-vqa", "--root", str(cxr_vqa_root), "--out", str(out), "--quiet",
                 "--file", "medical_cxr_vqa_questions.csv", "--split", "test"]) == 0
    assert [(r["image_id"], r["condition"]) for r in manifest_rows(out)] == [("d4", "pneumothorax")]
    assert "split is not test (--split)" in capsys.readouterr().out


def test_missing_column_and_missing_file(tmp_path, capsys):
    root = tmp_path / "cxr"
    root.mkdir()
    assert main(["dataset", "medical-cxr-vqa", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]) == 2
    assert "no question CSV" in capsys.readouterr().err
    (root / "questions.csv").write_text("dicom_id,question,answer\nd1,is there edema?,yes\n")
    assert main(["dataset", "medical-cxr-vqa", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "questions.csv: missing columns subject_id, study_id" in err and "found dicom_id, question, answer" in err
    (root / "other.csv").write_text("a,b\n1,2\n")
    assert main(["dataset", "medical-cxr-vqa", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]) == 2
    assert "no CSV has the columns" in capsys.readouterr().err


@pytest.mark.integration
def test_medical_cxr_vqa_end_to_end(cxr_vqa_root, tmp_path, monkeypatch):
    out = cxr_vqa_root / "manifest.jsonl"
    assert main(["dataset", "medical-cxr-vqa", "--root", str(cxr_vqa_root), "--out", str(out), "--quiet"]) == 0
    run_study_and_page(out, tmp_path / "results.duckdb", monkeypatch)
