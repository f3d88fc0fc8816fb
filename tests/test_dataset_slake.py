"""`dataset slake` on a fixture with SLAKE's exact file names, fields and image folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compute.cli import main
from tests.dataset_support import manifest_rows, run_study_and_page, write_image


def _record(qid: int, image: int, question: str, answer: str, *, lang: str = "en", region: str = "Lung",
            modality: str = "X-Ray", answer_type: str = "CLOSED", content: str = "Abnormality") -> dict:
    return {"img_id": image, "img_name": f"xmlab{image}/source.jpg", "question": question, "answer": answer,
            "q_lang": lang, "location": region, "modality": modality, "answer_type": answer_type, "base_type": "vqa",
            "content_type": content, "triple": ["vhead", "_", "_"], "qid": qid}


TRAIN = [
    _record(1, 1, "Is the lung healthy?", "No"),  # record 1: no condition named -> content_type
    _record(2, 2, "Does this image show cardiomegaly?", "Yes", region="Chest"),
    _record(3, 1, "Where is the abnormality?", "Left Lung", answer_type="OPEN", content="Position"),
    _record(4, 1, "Which lung is abnormal, left or right?", "Left", content="Position"),  # closed, not yes/no
    _record(5, 1, "肺部健康吗?", "否", lang="zh"),  # record 5: Chinese
    _record(6, 3, "Does the picture contain liver?", "Yes", modality="CT", region="Abdomen", content="Organ"),
    _record(7, 9, "Is there pleural effusion in the left lower lobe?", "Yes"),  # no image file
    _record(2, 2, "Does this image show cardiomegaly?", "Yes", region="Chest"),  # record 8 repeats record 2
    ["not", "a", "record"],  # record 9
]
VALID = [_record(20, 4, "Is there atelectasis in the left lung base?", "no"),
         _record(21, 4, "Is there edema?", "yes")]
TEST = [_record(30, 4, "Is there lung opacity?", "Yes")]


@pytest.fixture
def slake_root(tmp_path, xray_pixels) -> Path:
    root = tmp_path / "Slake1.0"
    root.mkdir()
    (root / "train.json").write_text(json.dumps(TRAIN, ensure_ascii=False, indent=1), encoding="utf-8")
    (root / "validation.json").write_text("[" + json.dumps(VALID[0]) + ',\n{"qid": 99, "question": "broken"\n'
                                          + json.dumps(VALID[1]) + "]", encoding="utf-8")
    (root / "test.json").write_text(json.dumps(TEST), encoding="utf-8")
    for i, image in enumerate((1, 2, 3, 4)):
        write_image(root / "imgs" / f"xmlab{image}" / "source.jpg", xray_pixels[i])
    return root


def test_closed_english_x_ray_questions(slake_root, capsys):
    out = slake_root / "manifest.jsonl"
    assert main(["dataset", "slake", "--root", str(slake_root), "--out", str(out), "--quiet"]) == 0
    rows = {r["source"]: r for r in manifest_rows(out)}
    assert set(rows) == {"train.json record 1", "train.json record 2", "validation.json record 1",
                         "test.json record 1"}
    assert rows["train.json record 1"] == {
        "image": "imgs/xmlab1/source.jpg", "question": "Is the lung healthy?", "answer": "no",
        "condition": "abnormality", "image_id": "xmlab1", "split": "train", "source": "train.json record 1",
        "base_type": "vqa", "body_region": "Lung", "content_type": "Abnormality", "modality": "X-Ray", "qid": "1"}
    cardiomegaly = rows["train.json record 2"]
    assert (cardiomegaly["condition"], cardiomegaly["answer"], cardiomegaly["body_region"]) == ("cardiomegaly", "yes",
                                                                                                "Chest")
    assert "location" not in cardiomegaly  # SLAKE's location is a body region, not the manifest's location
    atelectasis = rows["validation.json record 1"]
    assert (atelectasis["condition"], atelectasis["location"], atelectasis["body_region"], atelectasis["split"]) == (
        "atelectasis", "left lung base", "Lung", "validation")
    assert (rows["test.json record 1"]["condition"], rows["test.json record 1"]["split"]) == ("lung_opacity", "test")
    summary = capsys.readouterr().out
    assert "open question (answer_type is not CLOSED)" in summary and "train.json record 3" in summary
    assert "closed question whose answer is not yes or no" in summary and "record 4: answer 'Left'" in summary
    assert "q_lang is not en (--lang)" in summary and "record 5: q_lang 'zh'" in summary
    assert "modality is not X-Ray" in summary and "record 6: modality 'CT'" in summary
    assert "image file missing" in summary and "imgs/xmlab9/source.jpg" in summary
    assert "duplicated row" in summary and "record 8: repeats train.json record 2" in summary
    assert "record is not a JSON object" in summary and "train.json record 9: list" in summary
    assert "malformed JSON" in summary and "validation.json record 2 (line" in summary
    assert "kept under its content_type: abnormality 1" in summary


def test_every_language_and_modality(slake_root):
    out = slake_root / "manifest.jsonl"
    assert main(["dataset", "slake", "--root", str(slake_root), "--out", str(out), "--quiet", "--lang", "all",
                 "--modality", "all", "--split", "train"]) == 0
    rows = {r["source"]: r for r in manifest_rows(out)}
    assert set(rows) == {f"train.json record {n}" for n in (1, 2, 5, 6)}
    chinese = rows["train.json record 5"]  # 否 is no; no condition in the text -> content_type
    assert (chinese["answer"], chinese["condition"], chinese["question"]) == ("no", "abnormality", "肺部健康吗?")
    assert (rows["train.json record 6"]["condition"], rows["train.json record 6"]["modality"]) == ("organ", "CT")


def test_missing_field_and_missing_file(tmp_path, capsys):
    root = tmp_path / "Slake1.0"
    (root / "imgs").mkdir(parents=True)
    assert main(["dataset", "slake", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]) == 2
    assert "no question file; expected train.json, validation.json, test.json" in capsys.readouterr().err
    (root / "test.json").write_text(json.dumps([{"img_name": "xmlab1/source.jpg", "question": "Is there x?",
                                                 "answer": "Yes", "answer_type": "CLOSED"}]))
    assert main(["dataset", "slake", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "test.json: missing columns q_lang, modality" in err and "found img_name, question, answer" in err


@pytest.mark.integration
def test_slake_end_to_end(slake_root, tmp_path, monkeypatch):
    out = slake_root / "manifest.jsonl"
    assert main(["dataset", "slake", "--root", str(slake_root), "--out", str(out), "--quiet"]) == 0
    run_study_and_page(out, tmp_path / "results.duckdb", monkeypatch)
