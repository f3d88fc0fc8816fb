"""`dataset vindr-cxr` on a fixture with VinDr-CXR's exact train.csv columns and DICOM images."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from compute.cli import main
from compute.demo.dicom_writer import write_dicom
from tests.dataset_support import manifest_rows, run_study_and_page, write_image

HEADER = ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"]
A, B, C, D, E = ("9a5094b2563a1ef3ff50dc5c7ff71345", "051132a778e61a86eb147c7c6f564dfe",
                 "1c32170b4af4ce1a3030eb8167753b06", "47ed17dcb2cbeec15182ed335a8b5a9e",
                 "0c7a38f293d5f5e4846aa4ca6db4daf1")
ROWS = [
    [A, "Pleural effusion", "10", "R1", "10", "20", "50", "60"],
    [A, "Pleural effusion", "10", "R2", "12.5", "22", "52", "62"],
    [A, "Aortic enlargement", "0", "R1", "60", "10", "90", "40"],
    [A, "No finding", "14", "R3", "", "", "", ""],
    [A, "Pleural effusion", "10", "R1", "10", "20", "50", "60"],  # row 5: repeats row 1
    [B, "No finding", "14", "R1", "", "", "", ""],
    [B, "No finding", "14", "R2", "", "", "", ""],
    [B, "No finding", "14", "R3", "", "", "", ""],
    [B, "Pleural effusion", "3", "R2", "1", "1", "9", "9"],  # row 9: class_id of Cardiomegaly
    [C, "Pleural thickening", "11", "R4", "5", "5", "30", "30"],
    [C, "Lung Opacity", "7", "R5", "40", "40", "40", "80"],  # row 11: empty box, label kept
    [C, "Nodule/Mass", "8", "R6", "abc", "5", "20", "20"],  # row 12: not numbers, label kept
    [C, "???", "", "R6", "5", "5", "20", "20"],  # row 13: not a label name
    [D, "No finding", "14", "R1", "", "", "", ""],
    [D, "Cardiomegaly", "3", "R2", "30", "70", "100", "110"],
    [D, "No finding", "14", "R3", "", "", "", ""],
    [E, "Pleural effusion", "10", "R1", "1", "2", "3", "4"],  # row 17: no image file
]
CONDITIONS = ("pleural_effusion", "aortic_enlargement", "pleural_abnormality", "lung_opacity", "nodule_mass",
              "cardiomegaly")


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def _dicom(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dicom(pixels.astype(np.uint16) * 16, path, photometric="MONOCHROME2", window=(2048.0, 4096.0))


@pytest.fixture
def vindr_root(tmp_path, xray_pixels) -> Path:
    root = tmp_path / "vinbigdata"
    _write_csv(root / "train.csv", HEADER, ROWS)
    for i, image_id in enumerate((A, B, C)):
        _dicom(root / "train" / f"{image_id}.dicom", xray_pixels[i])
    _dicom(root / "train" / f"{D}.dcm", xray_pixels[3])  # the other suffix
    return root


def _build(root: Path, *extra: str) -> list[dict]:
    out = root / "manifest.jsonl"
    assert main(["dataset", "vindr-cxr", "--root", str(root), "--out", str(out), "--quiet", *extra]) == 0
    return manifest_rows(out)


def test_vindr_labels_from_every_radiologist(vindr_root, capsys):
    rows = _build(vindr_root, "--unbalanced")
    answers = {(r["image_id"], r["condition"]): r["answer"] for r in rows}
    expected_yes = {(A, "pleural_effusion"), (A, "aortic_enlargement"), (C, "pleural_abnormality"),
                    (C, "lung_opacity"), (C, "nodule_mass"), (D, "cardiomegaly")}
    # every image with rows is a no for each class none of its readers named; E has no image file.
    # A skipped row makes no negative: B's row 9 (Pleural effusion with Cardiomegaly's class_id) leaves B
    # without a no for either class; C's row 13 (class '???', unknown) leaves C without any no.
    withheld = {(B, "pleural_effusion"), (B, "cardiomegaly")} | {(C, c) for c in CONDITIONS}
    expected = {(i, c): "yes" if (i, c) in expected_yes else "no" for i in (A, B, C, D) for c in CONDITIONS
                if (i, c) in expected_yes or (i, c) not in withheld}
    # no "no pleural abnormality" beside A's pleural effusion: an effusion is a pleural abnormality
    assert (A, "pleural_effusion") in expected_yes
    assert answers == {k: v for k, v in expected.items() if k != (A, "pleural_abnormality")}
    by_key = {(r["image_id"], r["condition"]): r for r in rows}
    assert by_key[(A, "pleural_effusion")]["boxes"] == [
        {"x_min": 10.0, "y_min": 20.0, "x_max": 50.0, "y_max": 60.0, "label": "Pleural effusion", "rad_id": "R1"},
        {"x_min": 12.5, "y_min": 22.0, "x_max": 52.0, "y_max": 62.0, "label": "Pleural effusion", "rad_id": "R2"}]
    assert by_key[(A, "aortic_enlargement")]["boxes"] == [
        {"x_min": 60.0, "y_min": 10.0, "x_max": 90.0, "y_max": 40.0, "label": "Aortic enlargement", "rad_id": "R1"}]
    assert by_key[(C, "pleural_abnormality")]["boxes"][0]["label"] == "Pleural thickening"
    assert "boxes" not in by_key[(C, "lung_opacity")] and "boxes" not in by_key[(C, "nodule_mass")]
    assert all("boxes" not in r for r in rows if r["answer"] == "no")
    assert by_key[(D, "cardiomegaly")]["image"] == f"train/{D}.dcm"
    assert by_key[(A, "pleural_effusion")]["image"] == f"train/{A}.dicom"
    assert {r["split"] for r in rows} == {"train"}
    assert by_key[(A, "pleural_effusion")]["source"] == "train.csv row 1"
    assert by_key[(B, "aortic_enlargement")]["source"] == "train.csv row 6"  # a no: the image's first row
    assert all(r["question"].endswith("?") for r in rows)
    summary = capsys.readouterr().out
    for reason, example in (("class_name is not a label name", "train.csv row 13: '???'"),
                            ("class_id does not match class_name", "train.csv row 9: class_id '3'"),
                            ("duplicated row", "train.csv row 5: repeats train.csv row 1"),
                            ("empty box: x_max <= x_min", "train.csv row 11"),
                            ("box coordinates blank or not numbers", "train.csv row 12: x_min='abc'"),
                            ("image file missing", f"train/{E}.dicom"),
                            ("a radiologist's row for this finding was skipped; no 'no' answer from the others",
                             f"train.csv row 9: skipped, so no 'no' for {B} "),
                            ("a radiologist's row for this image was skipped and its finding cannot be known",
                             f"train.csv row 13: skipped, so no 'no' for {C} ")):
        assert reason in summary and example in summary, (reason, summary)
    assert "aortic_enlargement" in summary and "outside the nine" in summary


def test_vindr_balanced_by_default(vindr_root):
    rows = _build(vindr_root)
    for condition in CONDITIONS:
        answers = [r["answer"] for r in rows if r["condition"] == condition]
        assert sorted(answers) == ["no", "yes"], (condition, answers)


def test_vindr_min_radiologists(vindr_root, capsys):
    rows = _build(vindr_root, "--unbalanced", "--min-radiologists", "2")
    answers = {(r["image_id"], r["condition"]): r["answer"] for r in rows}
    assert answers[(A, "pleural_effusion")] == "yes"  # R1 and R2
    assert (A, "aortic_enlargement") not in answers and (D, "cardiomegaly") not in answers  # one reader each
    assert answers[(B, "aortic_enlargement")] == "no"
    assert "named by fewer than 2 radiologists" in capsys.readouterr().out
    answers = {(r["image_id"], r["condition"]): r["answer"]
               for r in _build(vindr_root, "--unbalanced", "--min-radiologists", "2", "--uncertain", "no")}
    assert answers[(A, "aortic_enlargement")] == "no"


def test_vindr_skipped_row_makes_no_negative(tmp_path, xray_pixels, capsys):
    """A radiologist's row skipped for a bad class (or no reader) never turns its image into a no
    for that class because another radiologist's row exists."""
    root = tmp_path / "vindr"
    _write_csv(root / "train.csv", HEADER, [
        [A, "Pleural effusion", "3", "R1", "10", "10", "20", "20"],  # row 1: Cardiomegaly's class_id
        [A, "No finding", "14", "R2", "", "", "", ""],
        [B, "No finding", "14", "R1", "", "", "", ""],
        [C, "Pleural effusion", "10", "R1", "10", "10", "20", "20"],
        [C, "Cardiomegaly", "3", "R1", "5", "5", "40", "40"],
        [D, "Cardiomegaly", "3", "", "5", "5", "40", "40"],  # row 6: no rad_id
        [D, "No finding", "14", "R2", "", "", "", ""],
        [E, "No finding", "3", "R1", "", "", "", ""],  # row 8: "No finding" with Cardiomegaly's class_id
        [E, "No finding", "14", "R2", "", "", "", ""],
    ])
    for i, image_id in enumerate((A, B, C, D, E)):
        _dicom(root / "train" / f"{image_id}.dicom", xray_pixels[i % len(xray_pixels)])
    answers = {(r["image_id"], r["condition"]): r["answer"] for r in _build(root, "--unbalanced")}
    # A: row 1 is Pleural effusion or Cardiomegaly; D: row 6 has no reader; E: row 8 is No finding or Cardiomegaly
    assert answers == {(B, "pleural_effusion"): "no", (B, "cardiomegaly"): "no",
                       (C, "pleural_effusion"): "yes", (C, "cardiomegaly"): "yes",
                       (D, "pleural_effusion"): "no", (E, "pleural_effusion"): "no"}
    summary = capsys.readouterr().out
    reason = "a radiologist's row for this finding was skipped; no 'no' answer from the others"
    assert reason in summary and f"train.csv row 1: skipped, so no 'no' for {A} " in summary, summary


def test_vindr_boxes_only_on_the_dicom(tmp_path, xray_pixels, capsys):
    """The boxes are in the DICOM's pixels: on a .png (Kaggle's resized sets) they are dropped
    and the labels kept; on a .dicom they stay."""
    root = tmp_path / "vindr"
    _write_csv(root / "train.csv", HEADER, [
        [A, "Pleural effusion", "10", "R1", "1000", "1000", "1500", "1500"],
        [A, "Pleural effusion", "10", "R2", "1010", "1000", "1500", "1500"],
        [B, "No finding", "14", "R1", "", "", "", ""],
        [C, "Pleural effusion", "10", "R1", "10", "20", "50", "60"],
        [D, "No finding", "14", "R1", "", "", "", ""],
    ])
    write_image(root / "train" / f"{A}.png", xray_pixels[0])
    write_image(root / "train" / f"{B}.jpg", xray_pixels[1])
    _dicom(root / "train" / f"{C}.dicom", xray_pixels[2])
    _dicom(root / "train" / f"{D}.dicom", xray_pixels[3])
    by_key = {(r["image_id"], r["condition"]): r for r in _build(root, "--unbalanced")}
    assert by_key[(A, "pleural_effusion")]["answer"] == "yes" and "boxes" not in by_key[(A, "pleural_effusion")]
    assert by_key[(A, "pleural_effusion")]["image"] == f"train/{A}.png"
    assert by_key[(C, "pleural_effusion")]["boxes"] == [
        {"x_min": 10.0, "y_min": 20.0, "x_max": 50.0, "y_max": 60.0, "label": "Pleural effusion", "rad_id": "R1"}]
    assert by_key[(B, "pleural_effusion")]["answer"] == "no"
    summary = capsys.readouterr().out
    reason = "box dropped (label kept): the boxes are in the DICOM's pixels and this image file is not the DICOM"
    assert f"         2  {reason}" in summary, summary
    assert f"train.csv row 1: train/{A}.png (Pleural effusion box by R1)" in summary, summary


def test_vindr_physionet_layout_and_options(tmp_path, xray_pixels):
    root = tmp_path / "vindr"
    _write_csv(root / "annotations" / "annotations_test.csv", HEADER,
               [[A, "Pleural effusion", "10", "R8", "1", "2", "30", "40"], [B, "No finding", "14", "R8", "", "", "", ""]])
    _dicom(root / "test" / f"{A}.dicom", xray_pixels[0])
    _dicom(root / "test" / f"{B}.dicom", xray_pixels[1])
    rows = _build(root)
    assert {(r["image"], r["answer"], r["split"]) for r in rows} == {
        (f"test/{A}.dicom", "yes", "test"), (f"test/{B}.dicom", "no", "test")}
    # the same images under another folder, named with --labels and --images
    _write_csv(root / "boxes.csv", HEADER, [[A, "Pleural effusion", "10", "R8", "1", "2", "30", "40"],
                                            [B, "No finding", "14", "R8", "", "", "", ""]])
    (root / "test").rename(root / "dicoms")
    rows = _build(root, "--labels", "boxes.csv", "--images", "dicoms")
    assert {r["image"] for r in rows} == {f"dicoms/{A}.dicom", f"dicoms/{B}.dicom"}
    assert all("split" not in r for r in rows)


def test_vindr_missing_file_and_column(tmp_path, capsys):
    root = tmp_path / "vindr"
    root.mkdir()
    assert main(["dataset", "vindr-cxr", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]) == 2
    assert "no box file; expected train.csv" in capsys.readouterr().err
    _write_csv(root / "train.csv", ["image_id", "class_name", "rad_id"], [[A, "No finding", "R1"]])
    assert main(["dataset", "vindr-cxr", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "train.csv: missing columns x_min, y_min, x_max, y_max" in err and "found image_id, class_name, rad_id" in err


@pytest.mark.integration
def test_vindr_end_to_end(vindr_root, tmp_path, monkeypatch):
    out = vindr_root / "manifest.jsonl"
    assert main(["dataset", "vindr-cxr", "--root", str(vindr_root), "--out", str(out), "--quiet"]) == 0
    run_study_and_page(out, tmp_path / "results.duckdb", monkeypatch, maps=True)
