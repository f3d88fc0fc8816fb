"""`dataset vqa-rad` on a fixture with the exact file names and fields of VQA-RAD's public JSON,
its human paraphrases as phrasing groups, and the phrasing pages over them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compute.cli import main
from tests.dataset_support import manifest_rows, run_study_and_page, write_image

IMAGES = "VQA_RAD Image Folder"


def _record(qid: int, image: str, question: str, answer, phrase: str = "freeform", link: str = "NULL",
            organ: str = "CHEST", kind: str = "PRES", answer_type: str = "CLOSED", rephrase: str = "NULL") -> dict:
    return {"qid": qid, "phrase_type": phrase, "qid_linked_id": link,
            "image_case_url": "https://medpix.nlm.nih.gov/case?id=0", "image_name": f"{image}.jpg",
            "image_organ": organ, "evaluation": "not evaluated", "question": question, "question_rephrase": rephrase,
            "question_relation": "NULL", "question_frame": "NULL", "question_type": kind, "answer": answer,
            "answer_type": answer_type}


RECORDS = [
    _record(1, "synpic100", "Is there a pleural effusion?", "Yes", link="L1"),  # record 1
    _record(2, "synpic100", "Is there fluid in the pleural space?", "yes", phrase="para", link="L1"),
    _record(3, "synpic100", "Is the heart enlarged?", "No", link="L3", kind="SIZE",
            rephrase="Is the heart size increased?"),  # its rephrase repeats the para record 14
    _record(4, "synpic200", "Is there a pneumothorax?", "Yes", link="L4"),
    _record(5, "synpic200", "Is air present around the lung?", "No", phrase="para", link="L4"),  # disagrees
    _record(6, "synpic300", "Is there consolidation in the right lower lobe?", "No"),  # record 6
    _record(7, "synpic300", "Is the right lower lobe consolidated?", "No", phrase="para", link="6"),  # links to qid 6
    _record(8, "synpic300", "Where is the lesion?", "right lower lobe", link="L8", kind="POS", answer_type="OPEN"),
    _record(9, "synpic300", "Which lung is affected?", "Left", link="L9", kind="POS"),  # closed, not yes/no
    _record(10, "synpic54610", "Are regions of the brain infarcted?", "Yes", organ="HEAD", link="L10"),
    _record(11, "synpic200", "Is there cardiomegaly?", "No", phrase="test_freeform", link="L11"),  # record 11
    _record(12, "synpic999", "Is there edema?", "Yes", link="L12"),  # no image file
    _record(13, "synpic200", "Is there cardiomegaly?", "No", link="L13"),  # repeats record 11
    _record(14, "synpic100", "Is the heart size increased?", "No", phrase="para", link="L3", kind="SIZE"),
    42,  # record 15: not an object
]
NOT_READ = _record(16, "synpic100", "Is there atelectasis?", "No", link="L16")


@pytest.fixture
def rad_root(tmp_path, xray_pixels) -> Path:
    root = tmp_path / "VQA-RAD"
    root.mkdir()
    text = ",\n".join(json.dumps(r) for r in RECORDS)
    # a syntax error after the good records: they are kept, the one after it is not read
    (root / "VQA_RAD Dataset Public.json").write_text(
        "[\n" + text + ',\n{"qid": 99, "question": "broken",,},\n' + json.dumps(NOT_READ) + "\n]")
    for i, image in enumerate(("synpic100", "synpic200", "synpic300", "synpic54610")):
        write_image(root / IMAGES / f"{image}.jpg", xray_pixels[i])
    return root


def test_closed_questions_and_paraphrase_groups(rad_root, capsys):
    out = rad_root / "manifest.jsonl"
    assert main(["dataset", "vqa-rad", "--root", str(rad_root), "--out", str(out), "--quiet"]) == 0
    rows = {r["source"]: r for r in manifest_rows(out)}
    record = "VQA_RAD Dataset Public.json record "
    assert set(rows) == {record + n for n in ("1", "2", "3", "14", "6", "7", "11")}
    assert rows[record + "1"] == {
        "image": f"{IMAGES}/synpic100.jpg", "question": "Is there a pleural effusion?", "answer": "yes",
        "condition": "pleural_effusion", "image_id": "synpic100", "split": "train", "source": record + "1",
        "group_id": "synpic100:1", "variant_index": 0, "strategy": "baseline",
        "baseline_question": "Is there a pleural effusion?", "image_organ": "CHEST", "phrase_type": "freeform",
        "qid": "1", "question_type": "PRES"}
    para = rows[record + "2"]  # names no condition itself: its group's
    assert (para["group_id"], para["variant_index"], para["strategy"], para["condition"], para["baseline_question"]) \
        == ("synpic100:1", 1, "human paraphrase", "pleural_effusion", "Is there a pleural effusion?")
    size = [rows[record + "3"], rows[record + "14"]]  # no condition in either text: the question_type
    assert [(r["group_id"], r["variant_index"], r["condition"], r["answer"]) for r in size] == [
        ("synpic100:3", 0, "size", "no"), ("synpic100:3", 1, "size", "no")]
    # the other way of linking: the paraphrase's qid_linked_id is the original's qid
    consolidation = [rows[record + "6"], rows[record + "7"]]
    assert [(r["group_id"], r["variant_index"], r["strategy"], r["location"]) for r in consolidation] == [
        ("synpic300:6", 0, "baseline", "right lower lobe"), ("synpic300:6", 1, "human paraphrase", "right lower lobe")]
    single = rows[record + "11"]
    assert (single["condition"], single["split"]) == ("cardiomegaly", "test")
    assert not {"group_id", "variant_index", "strategy"} & set(single)
    summary = capsys.readouterr().out
    assert "linked paraphrases on one image disagree on the answer" in summary and "qid 4, 5" in summary
    assert "open question (answer_type is not CLOSED)" in summary and "record 8: answer_type 'OPEN'" in summary
    assert "closed question whose answer is not yes or no" in summary and "record 9: answer 'Left'" in summary
    assert "image_organ is not CHEST" in summary and "record 10: image_organ 'HEAD'" in summary
    assert "image file missing" in summary and f"{IMAGES}/synpic999.jpg" in summary
    assert "duplicated row" in summary and "record 13: repeats " + record + "11" in summary
    assert "question repeats another of its phrasing group" in summary and "record 3 (question_rephrase)" in summary
    assert "record is not a JSON object" in summary and "record 15: int" in summary
    assert "malformed JSON" in summary and "record 16 (line" in summary
    assert "size" in summary and "outside the nine" in summary


def test_all_organs_and_no_rephrase(rad_root):
    out = rad_root / "manifest.jsonl"
    assert main(["dataset", "vqa-rad", "--root", str(rad_root), "--out", str(out), "--quiet", "--organ", "all",
                 "--no-rephrase"]) == 0
    rows = {r["qid"]: r for r in manifest_rows(out)}
    assert rows["10"]["image_id"] == "synpic54610" and rows["10"]["condition"] == "pres"
    assert "question_rephrase" not in {r["phrase_type"] for r in rows.values()}


def test_answers_disagreeing_within_the_rephrase(tmp_path, xray_pixels):
    root = tmp_path / "rad"
    write_image(root / "images" / "synpic1.jpg", xray_pixels[0])
    (root / "VQA_RAD Dataset Public.json").write_text(json.dumps([
        _record(1, "synpic1", "Is there a pneumothorax?", "no", rephrase="Is a pneumothorax present?")]))
    out = root / "manifest.jsonl"
    assert main(["dataset", "vqa-rad", "--root", str(root), "--out", str(out), "--quiet"]) == 0
    rows = manifest_rows(out)
    assert [(r["image"], r["variant_index"], r["question"], r["source"]) for r in rows] == [
        ("images/synpic1.jpg", 0, "Is there a pneumothorax?", "VQA_RAD Dataset Public.json record 1"),
        ("images/synpic1.jpg", 1, "Is a pneumothorax present?", "VQA_RAD Dataset Public.json record 1 "
                                                                   "(question_rephrase)")]


def test_missing_field_and_missing_file(tmp_path, capsys):
    root = tmp_path / "rad"
    root.mkdir()
    assert main(["dataset", "vqa-rad", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]) == 2
    assert "no question file; expected 'VQA_RAD Dataset Public.json'" in capsys.readouterr().err
    (root / "VQA_RAD Dataset Public.json").write_text(json.dumps([{"qid": 1, "image_name": "a.jpg", "question": "q?",
                                                                   "answer": "yes"}]))
    assert main(["dataset", "vqa-rad", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "missing columns answer_type, image_organ" in err and "found qid, image_name, question, answer" in err


@pytest.mark.integration
def test_vqa_rad_end_to_end_with_phrasing_pages(rad_root, tmp_path, monkeypatch):
    out = rad_root / "manifest.jsonl"
    assert main(["dataset", "vqa-rad", "--root", str(rad_root), "--out", str(out), "--quiet"]) == 0
    at = run_study_and_page(out, tmp_path / "results.duckdb", monkeypatch, "--study", "baseline")
    at.switch_page("views/phrasing.py").run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Groups"] == "3"
    strategies = at.dataframe[0].value
    assert set(strategies.strategy) == {"baseline", "human paraphrase"}
    assert set(strategies.strategy_category) == {"baseline", "phrasing"}
    group = at.dataframe[1].value  # the least consistent group first
    assert group.variant_index.tolist() == [0, 1]
    assert group.strategy.tolist() == ["baseline", "human paraphrase"]
