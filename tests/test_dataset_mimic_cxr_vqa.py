"""`dataset mimic-cxr-vqa` on a fixture with the exact files and fields of Bae et al.'s JSON lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compute.cli import main
from tests.dataset_support import manifest_rows, run_study_and_page, write_image

SUBJECT, STUDY = "10000032", "50414267"
FOLDER = f"p10/p{SUBJECT}/s{STUDY}"


def _record(idx: int, image: str, question: str, answer, semantic: str = "verify", content: str = "attribute",
            template: str = "Is there ${attribute} in the ${object}?", attribute: str | None = None,
            obj: str | None = None, split: str = "train") -> dict:
    return {"split": split, "idx": idx, "subject_id": SUBJECT, "study_id": STUDY, "image_id": image,
            "image_path": f"{FOLDER}/{image}.jpg", "question": question, "semantic_type": semantic,
            "content_type": content, "template": template, "template_program": f"program_{idx % 48 + 1}",
            "template_arguments": {"object": {"0": obj} if obj else {},
                                   "attribute": {"0": attribute} if attribute else {},
                                   "category": {}, "viewpos": {}, "gender": {}},
            "answer": answer}


TRAIN = [
    _record(1, "img-a", "Is there pleural effusion in the left lower lung zone?", ["yes"], attribute="pleural effusion",
            obj="left lower lung zone"),
    _record(2, "img-b", "Is there any abnormality in the cardiac silhouette?", ["no"], content="abnormality",
            template="Is there any abnormality in the ${object}?", obj="cardiac silhouette"),
    _record(3, "img-b", "Is there vascular congestion in the left lung?", ["yes"], attribute="vascular congestion",
            obj="left lung"),
    _record(4, "img-a", "Which side has pleural effusion, left or right?", ["left"], semantic="choose"),
    _record(5, "img-a", "List all abnormalities in the right lung.", ["atelectasis", "lung opacity"], semantic="query",
            content="abnormality"),
    _record(6, "img-a", "Is there atelectasis in the right lung?", ["yes", "no"], attribute="atelectasis"),
    _record(7, "img-a", "Is there lung opacity in the left lung?", [], attribute="lung opacity"),
    _record(8, "img-a", "Is this patient male?", ["yes"], content="gender", template="Is this patient ${gender}?"),
    _record(9, "img-b", "Is there edema in the right lung?", "yes", attribute="edema"),  # not a list
    _record(10, "img-x", "Is there pneumothorax in the right lung?", ["no"], attribute="pneumothorax"),  # no image
    "not a record",  # record 11
    _record(1, "img-a", "Is there pleural effusion in the left lower lung zone?", ["yes"], attribute="pleural effusion",
            obj="left lower lung zone"),  # record 12 repeats record 1
]
VALID = [_record(20, "img-c", "Is there an enlarged cardiac silhouette?", ["Yes"], content="size", split="valid"),
         _record(21, "img-c", "Is there pneumonia?", ["no"], split="valid")]


@pytest.fixture
def vqa_root(tmp_path, xray_pixels) -> Path:
    root = tmp_path / "mimic-cxr-jpg"
    questions = root / "mimiccxrvqa" / "dataset"
    questions.mkdir(parents=True)
    (questions / "train.json").write_text(json.dumps(TRAIN, indent=4))
    # a syntax error in the middle: the first record is kept, the rest are not read
    (questions / "valid.json").write_text("[\n" + json.dumps(VALID[0], indent=4) + ",\n"
                                          '{"split": "valid", "idx": 99, "question" "broken"},\n'
                                          + json.dumps(VALID[1]) + "\n]")
    for i, image in enumerate(("img-a", "img-b", "img-c")):
        write_image(root / "files" / FOLDER / f"{image}.jpg", xray_pixels[i])
    return root


def test_verify_questions_become_questions(vqa_root, capsys):
    out = vqa_root / "manifest.jsonl"
    assert main(["dataset", "mimic-cxr-vqa", "--root", str(vqa_root), "--out", str(out), "--quiet"]) == 0
    rows = {r["source"]: r for r in manifest_rows(out)}
    assert set(rows) == {"train.json record 1", "train.json record 2", "train.json record 3", "valid.json record 1"}
    assert rows["train.json record 1"] == {
        "image": f"files/{FOLDER}/img-a.jpg", "question": "Is there pleural effusion in the left lower lung zone?",
        "answer": "yes", "condition": "pleural_effusion", "image_id": "img-a", "split": "train",
        "source": "train.json record 1", "content_type": "attribute", "semantic_type": "verify",
        "study_id": STUDY, "subject_id": SUBJECT, "template": "Is there ${attribute} in the ${object}?"}
    # no condition in the text nor an attribute: the content_type; an attribute outside the table keeps its name
    assert (rows["train.json record 2"]["condition"], rows["train.json record 2"]["answer"]) == ("abnormality", "no")
    assert rows["train.json record 3"]["condition"] == "vascular_congestion"
    valid = rows["valid.json record 1"]
    assert (valid["condition"], valid["answer"], valid["split"], valid["content_type"]) == ("cardiomegaly", "yes",
                                                                                            "valid", "size")
    summary = capsys.readouterr().out
    assert "not a verify question (semantic_type choose)" in summary and "train.json record 4" in summary
    assert "not a verify question (semantic_type query)" in summary and "train.json record 5" in summary
    assert "verify answer is not exactly one yes or no" in summary
    assert "record 6: answer ['yes', 'no']" in summary and "record 7: answer []" in summary
    assert "record 9: answer 'yes'" in summary
    assert "question about the patient's sex" in summary and "train.json record 8" in summary
    assert "image file missing" in summary and f"files/{FOLDER}/img-x.jpg" in summary
    assert "record is not a JSON object" in summary and "train.json record 11: str" in summary
    assert "duplicated row" in summary and "record 12: repeats train.json record 1" in summary
    assert "malformed JSON" in summary and "valid.json record 2 (line" in summary
    assert "the records after it were not read" in summary
    assert "kept under its template attribute: vascular_congestion 1" in summary
    assert "kept under its content_type: abnormality 1" in summary


def test_split_questions_and_images_options(vqa_root, tmp_path, capsys):
    out = tmp_path / "manifest.jsonl"
    assert main(["dataset", "mimic-cxr-vqa", "--root", str(vqa_root), "--out", str(out), "--quiet",
                 "--split", "valid", "--questions", "mimiccxrvqa/dataset", "--images", str(vqa_root / "files")]) == 0
    rows = manifest_rows(out)
    assert [(r["image_id"], r["condition"]) for r in rows] == [("img-c", "cardiomegaly")]
    assert capsys.readouterr().out.startswith("rows read: valid.json 1")
    assert main(["dataset", "mimic-cxr-vqa", "--root", str(vqa_root / "files"), "--out", str(out),
                 "--questions", str(vqa_root / "mimiccxrvqa" / "dataset"), "--images", str(vqa_root)]) == 2
    assert "must lie inside --root" in capsys.readouterr().err


def test_missing_field_and_missing_file(tmp_path, capsys):
    root = tmp_path / "mimic"
    root.mkdir()
    assert main(["dataset", "mimic-cxr-vqa", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]) == 2
    assert "no question file; expected train.json, valid.json, test.json" in capsys.readouterr().err
    (root / "test.json").write_text(json.dumps([{"image_id": "a", "image_path": "p1/a.jpg", "question": "Is there x?",
                                                 "answer": ["yes"]}]))
    assert main(["dataset", "mimic-cxr-vqa", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "test.json: missing column semantic_type" in err and "found image_id, image_path, question, answer" in err


@pytest.mark.integration
def test_mimic_cxr_vqa_end_to_end(vqa_root, tmp_path, monkeypatch):
    out = vqa_root / "manifest.jsonl"
    assert main(["dataset", "mimic-cxr-vqa", "--root", str(vqa_root), "--out", str(out), "--quiet"]) == 0
    run_study_and_page(out, tmp_path / "results.duckdb", monkeypatch)
