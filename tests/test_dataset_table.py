"""`dataset table`: any CSV or JSON lines question table, its columns named with --map."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from compute.cli import main
from compute.data.datasets.table import MANIFEST_KEYS, parse_column_map
from tests.dataset_support import manifest_rows, run_study_and_page, write_image

CSV_HEADER = ["ImagePath", "question_text", "correct_answer", "finding", "rle", "PatientName"]
CSV_MAP = "image=ImagePath,question=question_text,answer=correct_answer,condition=finding,mask=rle"


# --------------------------------------------------------------------------- the --map parser


def test_parse_column_map_pairs_spaces_and_quotes():
    assert parse_column_map("image=ImagePath,question=question,answer=correct_answer") == {
        "image": "ImagePath", "question": "question", "answer": "correct_answer"}
    assert parse_column_map(" image = Image Path , answer=gt ") == {"image": "Image Path", "answer": "gt"}
    assert parse_column_map('image="Bbox [x, y]",answer=a') == {"image": "Bbox [x, y]", "answer": "a"}
    assert parse_column_map('"image=Bbox [x, y]", answer=a') == {"image": "Bbox [x, y]", "answer": "a"}
    assert parse_column_map("image=a=b") == {"image": "a=b"}  # split at the first '='
    assert parse_column_map("image=path,image_id=path") == {"image": "path", "image_id": "path"}
    assert parse_column_map("anything=col", keys=None) == {"anything": "col"}
    assert parse_column_map("ground_truth=gt", keys=("ground_truth",)) == {"ground_truth": "gt"}
    assert list(parse_column_map("mask=m,boxes=b,view=v,split=s")) == ["mask", "boxes", "view", "split"]
    assert set(MANIFEST_KEYS) >= {"image", "question", "answer", "condition", "image_id", "location", "group_id",
                                  "variant_index", "strategy", "view", "split", "boxes", "mask"}


@pytest.mark.parametrize(("text", "message"), [
    ("", "--map is empty"),
    ("   ", "--map is empty"),
    ("image", "expected KEY=COLUMN, got 'image'"),
    ("=ImagePath", "has no key before '='"),
    ("image=", "names no column after '='"),
    ("image=a,,answer=b", "empty pair"),
    ("image=a,", "empty pair"),
    ('image="a,b', "unbalanced double quote"),
    ("picture=a", "unknown key 'picture'; the keys are image, question, answer"),
    ("image=a,image=b", "'image' is given twice ('a' and 'b')"),
    ("image=a\nanswer=b", "one line"),
])
def test_parse_column_map_errors(text, message):
    with pytest.raises(ValueError, match=None) as error:
        parse_column_map(text)
    assert message in str(error.value)


# --------------------------------------------------------------------------- CSV


@pytest.fixture
def table_root(tmp_path, xray_pixels) -> Path:
    root = tmp_path / "study"
    for i, name in enumerate("abcd"):
        write_image(root / "images" / f"{name}.png", xray_pixels[i])
    rows = [
        ["images/a.png", "Is there pleural effusion?", "Yes.", "effusion", "-1", "Zebulon^Quartermaine"],
        ["images/b.png", "Is there a pneumothorax?", "no", "", "1 2 3 4", "Zebulon^Quartermaine"],
        ["images/c.png", "Is the heart enlarged?", "maybe", "cardiomegaly", "", ""],  # row 3: not yes/no
        ["images/missing.png", "Is there edema?", "yes", "", "", ""],  # row 4: no image file
        ["images/a.png", "Is there pleural effusion?", "Yes.", "effusion", "-1", ""],  # row 5: repeats row 1
        ["images/c.png", "Is the sky blue?", "yes", "", "", ""],  # row 6: no condition anywhere
        ["images/d.png", "Is there a nodule?", "yes", "nodule", "", ""],  # outside the nine
        ["images/d.png", "Is there pleural thickening?", "no", "pleural", "", ""],  # short term, read with the question
        [str((root / "images" / "b.png").resolve()), "Is there consolidation?", "NO", "consolidation", "", ""],
        ["../outside.png", "Is there edema?", "no", "edema", "", ""],  # row 10: leaves the root
        ["images/c.png", "Is there atelectasis?", "yes", "!!!", "", ""],  # row 11: not a label name
    ]
    with (root / "questions.csv").open("w", newline="") as f:
        csv.writer(f).writerows([CSV_HEADER, *rows])
    return root


def _build(root: Path, *extra: str) -> list[dict]:
    out = root / "manifest.jsonl"
    assert main(["dataset", "table", "--root", str(root), "--out", str(out), "--quiet", *extra]) == 0
    return manifest_rows(out)


def test_table_csv_with_a_map(table_root, capsys):
    rows = _build(table_root, "--file", "questions.csv", "--map", CSV_MAP)
    got = [(r["image"], r["question"], r["answer"], r["condition"], r["image_id"], r.get("mask")) for r in rows]
    assert got == [
        ("images/a.png", "Is there pleural effusion?", "yes", "pleural_effusion", "images/a.png", "-1"),
        ("images/b.png", "Is there a pneumothorax?", "no", "pneumothorax", "images/b.png", "1 2 3 4"),
        ("images/d.png", "Is there a nodule?", "yes", "nodule", "images/d.png", None),
        ("images/d.png", "Is there pleural thickening?", "no", "pleural_abnormality", "images/d.png", None),
        ("images/b.png", "Is there consolidation?", "no", "consolidation", "images/b.png", None),
    ]
    assert [r["source"] for r in rows] == [f"questions.csv row {n}" for n in (1, 2, 7, 8, 9)]
    assert "Zebulon" not in (table_root / "manifest.jsonl").read_text()  # an unmapped column is not carried
    summary = capsys.readouterr().out
    for reason, example in (("answer is not yes or no", "questions.csv row 3: answer 'maybe'"),
                            ("image file missing", "images/missing.png"),
                            ("duplicated row", "questions.csv row 5: repeats questions.csv row 1"),
                            ("no condition: none given and the question names none",
                             "questions.csv row 6: 'Is the sky blue?'"),
                            ("image path outside the dataset root", "questions.csv row 10"),
                            ("condition is not a label name", "questions.csv row 11: '!!!'")):
        assert reason in summary and example in summary, (reason, summary)
    assert "columns not carried into the manifest: PatientName" in summary
    assert "nodule" in summary and "outside the nine" in summary


def test_table_same_name_columns_need_no_map(tmp_path, xray_pixels):
    root = tmp_path / "t"
    write_image(root / "x.png", xray_pixels[0])
    (root / "q.tsv").write_text("image\tquestion\tanswer\tview\tsplit\timage_id\n"
                                "x.png\tIs there edema?\tyes\tPA\ttest\tpatient-free-id\n")
    rows = _build(root, "--file", str(root / "q.tsv"))  # a path, not relative to the root
    assert rows == [{"image": "x.png", "question": "Is there edema?", "answer": "yes", "condition": "edema",
                     "image_id": "patient-free-id", "view": "PA", "split": "test", "source": "q.tsv row 1"}]


# --------------------------------------------------------------------------- JSON lines


def test_table_jsonl_records(tmp_path, xray_pixels, capsys):
    root = tmp_path / "j"
    write_image(root / "img" / "1.png", xray_pixels[0])
    write_image(root / "img" / "2.png", xray_pixels[1])
    box = {"x_min": 1, "y_min": 2, "x_max": 30, "y_max": 40, "label": "Effusion"}
    lines = [
        json.dumps({"img": "img/1.png", "question": "Is there pleural effusion?", "answer": ["yes"],
                    "condition": "Pleural Effusion", "group_id": "g1", "variant_index": 0, "strategy": "original",
                    "boxes": [box], "location": "left lower lung"}),
        json.dumps({"img": "img/1.png", "question": "Is there fluid in the pleural space?", "answer": True,
                    "condition": "effusion", "group_id": "g1", "variant_index": "1", "strategy": "synonym"}),
        '{"img": "img/2.png", "question": "Is there edema?", "answer": "no"',  # line 3: malformed
        "",
        json.dumps(["not", "an", "object"]),  # line 5
        json.dumps({"img": "img/2.png", "question": "Is there edema?", "answer": "no", "variant_index": "x"}),
        json.dumps({"img": "img/2.png", "question": "Is there edema?", "answer": "no",
                    "boxes": [{"x_min": 5, "y_min": 5, "x_max": 5, "y_max": 9}]}),  # line 7: empty box
        json.dumps({"img": "img/2.png", "question": "Is there cardiomegaly?", "answer": "No."}),
    ]
    (root / "items.jsonl").write_text("\n".join(lines) + "\n")
    rows = _build(root, "--file", "items.jsonl", "--map", "image=img")
    assert rows[0] == {"image": "img/1.png", "question": "Is there pleural effusion?", "answer": "yes",
                       "condition": "pleural_effusion", "image_id": "img/1.png", "location": "left lower lung",
                       "source": "items.jsonl line 1", "group_id": "g1", "variant_index": 0, "strategy": "original",
                       "boxes": [{"x_min": 1.0, "y_min": 2.0, "x_max": 30.0, "y_max": 40.0, "label": "Effusion"}]}
    assert (rows[1]["answer"], rows[1]["condition"], rows[1]["variant_index"]) == ("yes", "pleural_effusion", 1)
    assert (rows[2]["condition"], rows[2]["answer"], rows[2]["source"]) == ("cardiomegaly", "no", "items.jsonl line 8")
    assert len(rows) == 3
    summary = capsys.readouterr().out
    for reason, example in (("malformed JSON", "items.jsonl line 3"),
                            ("record is not a JSON object", "items.jsonl line 5: list"),
                            ("variant_index is not a whole number", "items.jsonl line 6: 'x'"),
                            ("boxes cannot be read", "items.jsonl line 7: box 1 is empty")):
        assert reason in summary and example in summary, (reason, summary)


# --------------------------------------------------------------------------- errors


def test_table_errors_name_the_problem(table_root, capsys):
    out = str(table_root / "m.jsonl")
    base = ["dataset", "table", "--root", str(table_root), "--out", out]
    assert main([*base, "--file", "questions.csv", "--map", "picture=ImagePath"]) == 2
    assert "unknown key 'picture'" in capsys.readouterr().err
    assert main([*base, "--file", "questions.csv", "--map", CSV_MAP.replace("=finding", "=Finding")]) == 2
    err = capsys.readouterr().err
    assert "questions.csv: --map condition=Finding: the file has no column 'Finding'" in err
    assert "found ImagePath, question_text, correct_answer, finding, rle, PatientName" in err
    assert main([*base, "--file", "questions.csv", "--map", "image=ImagePath,question=question_text"]) == 2
    err = capsys.readouterr().err
    assert "no answer column; name the file's column with --map answer=COLUMN" in err and "found ImagePath" in err
    assert main([*base, "--file", "absent.csv"]) == 2
    assert "absent.csv: question table not found" in capsys.readouterr().err
    (table_root / "bad.jsonl").write_text('{"image": "images/a.png",\n')
    assert main([*base, "--file", "bad.jsonl"]) == 1  # nothing readable: the summary says why
    captured = capsys.readouterr()
    assert "malformed JSON" in captured.out and "bad.jsonl line 1" in captured.out
    assert "no questions written" in captured.err
    (table_root / "q.xlsx").write_text("x")
    assert main([*base, "--file", "q.xlsx"]) == 2
    assert "unknown table format" in capsys.readouterr().err


@pytest.mark.integration
def test_table_end_to_end(table_root, tmp_path, monkeypatch):
    out = table_root / "manifest.jsonl"
    assert main(["dataset", "table", "--root", str(table_root), "--out", str(out), "--quiet",
                 "--file", "questions.csv", "--map", CSV_MAP]) == 0
    run_study_and_page(out, tmp_path / "results.duckdb", monkeypatch)
