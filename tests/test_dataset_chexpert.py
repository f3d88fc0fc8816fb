"""`dataset chexpert` on a fixture with CheXpert's exact files and columns."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from compute.cli import main
from compute.data.datasets.chexpert import CHEXPERT_LABELS
from tests.dataset_support import manifest_rows, run_study_and_page, write_image

HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS]


def _row(path: str, frontal: bool = True, **labels: str) -> list[str]:
    values = {name: "" for name in CHEXPERT_LABELS}
    values.update({k.replace("_", " "): v for k, v in labels.items()})
    return [path, "Female", "68", "Frontal" if frontal else "Lateral", "AP" if frontal else "", *values.values()]


@pytest.fixture
def chexpert_root(tmp_path, xray_pixels) -> Path:
    root = tmp_path / "CheXpert-v1.0-small"
    train = [
        _row("CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg", Pleural_Effusion="1.0", Edema="0.0"),
        _row("CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg", Pleural_Effusion="0.0", Edema="1.0"),
        _row("CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg", Pleural_Effusion="-1.0",
             Support_Devices="1.0"),
        _row("CheXpert-v1.0-small/train/patient00003/study1/view2_lateral.jpg", frontal=False, Edema="1.0"),
        _row("CheXpert-v1.0-small/train/patient00004/study1/view1_frontal.jpg", **{"No_Finding": "1.0"}),
        _row("CheXpert-v1.0-small/train/patient00005/study1/view1_frontal.jpg", Edema="0.0"),  # no image file
    ]
    valid = [_row("CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg", Support_Devices="0.0",
                  Cardiomegaly="2")]
    for name, rows in (("train.csv", train), ("valid.csv", valid)):
        root.mkdir(exist_ok=True)
        with (root / name).open("w", newline="") as f:
            csv.writer(f).writerows([HEADER, *rows])
    for i, row in enumerate(train[:5] + valid):
        write_image(root / row[0].split("/", 1)[1], xray_pixels[i % len(xray_pixels)])
    return root


def test_chexpert_questions_follow_the_label_policy(chexpert_root, capsys):
    out = chexpert_root / "manifest.jsonl"
    assert main(["dataset", "chexpert", "--root", str(chexpert_root), "--out", str(out), "--quiet"]) == 0
    rows = manifest_rows(out)
    answers = {(r["image_id"], r["condition"]): r["answer"] for r in rows}
    # effusion: 1 yes (patient1), 1 no (patient2), uncertain skipped; edema: 1 yes, 2 no -> one no left out
    assert answers[("train/patient00001/study1/view1_frontal", "pleural_effusion")] == "yes"
    assert answers[("train/patient00002/study1/view1_frontal", "pleural_effusion")] == "no"
    assert sum(1 for (_, c), a in answers.items() if c == "edema") == 2
    assert ("train/patient00002/study1/view1_frontal", "edema") in answers  # the only edema yes
    # support devices is kept under its own name, outside the nine
    assert answers[("train/patient00003/study1/view1_frontal", "support_devices")] == "yes"
    assert answers[("valid/patient64541/study1/view1_frontal", "support_devices")] == "no"
    assert all(r["view"] == "AP" for r in rows)
    assert {r["split"] for r in rows} == {"train", "valid"}
    assert all(r["image"].startswith("train/") or r["image"].startswith("valid/") for r in rows)
    assert all(r["source"].startswith(("train.csv row ", "valid.csv row ")) for r in rows)
    summary = capsys.readouterr().out
    assert "label uncertain (-1)" in summary and "lateral view" in summary
    assert "label is not 1, 0, -1 or blank" in summary and "Cardiomegaly = '2'" in summary
    assert "support_devices" in summary and "outside the nine" in summary


def test_chexpert_uncertain_and_blank_policies(chexpert_root):
    out = chexpert_root / "manifest.jsonl"
    assert main(["dataset", "chexpert", "--root", str(chexpert_root), "--out", str(out), "--quiet",
                 "--uncertain", "yes", "--blank-as-no", "--unbalanced"]) == 0
    answers = {(r["image_id"], r["condition"]): r["answer"] for r in manifest_rows(out)}
    assert answers[("train/patient00003/study1/view1_frontal", "pleural_effusion")] == "yes"
    assert answers[("train/patient00001/study1/view1_frontal", "cardiomegaly")] == "no"  # blank read as no


def test_missing_column_names_it_and_lists_found(tmp_path, capsys):
    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir()
    (root / "train.csv").write_text("Path,Sex\nCheXpert-v1.0-small/train/a.jpg,Male\n")
    assert main(["dataset", "chexpert", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "train.csv: missing columns Frontal/Lateral" in err and "found Path, Sex" in err


@pytest.mark.integration
def test_chexpert_end_to_end(chexpert_root, tmp_path, monkeypatch):
    out = chexpert_root / "manifest.jsonl"
    assert main(["dataset", "chexpert", "--root", str(chexpert_root), "--out", str(out), "--quiet"]) == 0
    run_study_and_page(out, tmp_path / "results.duckdb", monkeypatch)
