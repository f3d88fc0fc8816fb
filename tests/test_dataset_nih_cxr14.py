"""`dataset nih-cxr14` on a fixture with ChestX-ray14's exact file names, columns and layout.

Data_Entry rows (images in images_001/images/ and images_002/images/, as the full download):

    1 00000001_000.png  Cardiomegaly|Effusion   PA  images_001
    2 00000001_001.png  No Finding              PA  images_001
    3 00000002_000.png  Effusion|Mass           AP  images_002
    4 00000003_000.png  Infiltration            PA  no image file
    5 00000001_001.png  (row 2 again)
    6 00000004_000.png  No Finding|Mass         PA  images_002   contradictory: skipped
    7 00000005_000.png  (blank)                 PA  images_002   skipped
    8 00000006_000.png  Pleural_Thickening      PA  images_002
    9 00000007_000.png  Pneumoperitoneum        AP  images_001   outside NIH's 15: its own name
   10 00000008_000.png  Infiltration|Nodule     PA  images_002

Five kept images list findings; with the default (a finding not listed is a no) every one of
the 14 findings and pneumoperitoneum has an answer on each of the six kept images.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from compute.cli import main
from compute.data.datasets.nih_cxr14 import NIH_FINDINGS
from compute.data.label_names import condition_key
from tests.dataset_support import manifest_rows, run_study_and_page, write_image

HEADER = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
          "View Position", "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]"]
ENTRIES = [  # image, labels, patient, view, folder (None: no file)
    ("00000001_000.png", "Cardiomegaly|Effusion", "1", "PA", "images_001/images"),
    ("00000001_001.png", "No Finding", "1", "PA", "images_001/images"),
    ("00000002_000.png", "Effusion|Mass", "2", "AP", "images_002/images"),
    ("00000003_000.png", "Infiltration", "3", "PA", None),
    ("00000001_001.png", "No Finding", "1", "PA", "images_001/images"),
    ("00000004_000.png", "No Finding|Mass", "4", "PA", "images_002/images"),
    ("00000005_000.png", "", "5", "PA", "images_002/images"),
    ("00000006_000.png", "Pleural_Thickening", "6", "PA", "images_002/images"),
    ("00000007_000.png", "Pneumoperitoneum", "7", "AP", "images_001/images"),
    ("00000008_000.png", "Infiltration|Nodule", "8", "PA", "images_002/images"),
]
KEPT = {  # image -> the conditions it lists, worked by hand from ENTRIES
    "00000001_000.png": {"cardiomegaly", "pleural_effusion"},
    "00000001_001.png": set(),
    "00000002_000.png": {"pleural_effusion", "mass"},
    "00000006_000.png": {"pleural_abnormality"},
    "00000007_000.png": {"pneumoperitoneum"},
    "00000008_000.png": {"infiltration", "nodule"},
}
CONDITIONS = {condition_key(n) for n in NIH_FINDINGS} | {"pneumoperitoneum"}
BOXES = [  # image, label, x, y, w, h
    ("00000001_000.png", "Cardiomegaly", "100", "200", "300", "150"),  # row 1: on 1's cardiomegaly
    ("00000001_000.png", "Effusion", "50.5", "60", "100", "80"),  # row 2: on 1's pleural_effusion
    ("00000002_000.png", "Pneumothorax", "10", "10", "20", "20"),  # row 3: 2 does not list it
    ("00000003_000.png", "Infiltrate", "10", "10", "20", "20"),  # row 4: image without questions
    ("00000002_000.png", "Mass", "abc", "1", "2", "3"),  # row 5: not a number
    ("00000001_000.png", "Cardiomegaly", "100", "200", "300", "150"),  # row 6: row 1 again
    ("00000002_000.png", "Mass", "5", "6", "0", "10"),  # row 7: no width
    ("00000002_000.png", "Mass", "1", "2", "3", "4"),  # row 8: on 2's mass
    ("00000008_000.png", "Infiltrate", "700", "300", "120.25", "90"),  # row 9: the box file's Infiltration
]
# the box file's header as torchxrayvision ships it (the header has names to spare), or with the
# four numbers under one quoted name (fewer names than the rows have fields)
LAYOUTS = {"download": ("Data_Entry_2017_v2020.csv", "BBox_List_2017.csv",
                        "Image Index,Finding Label,Bbox [x,y,w,h],,,"),
           "gz": ("Data_Entry_2017_v2020.csv.gz", "BBox_List_2017.csv.gz",
                  'Image Index,Finding Label,"Bbox [x, y, w, h]"')}


def _open(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return (gzip.open if path.suffix == ".gz" else open)(path, "wt", newline="", encoding="utf-8")


@pytest.fixture(params=sorted(LAYOUTS))
def nih_root(request, tmp_path, xray_pixels) -> Path:
    entry_name, box_name, box_header = LAYOUTS[request.param]
    root = tmp_path / "ChestX-ray14"
    with _open(root / entry_name) as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i, (image, labels, patient, view, _) in enumerate(ENTRIES):
            writer.writerow([image, labels, "0", patient, str(40 + i), "MF"[i % 2], view, "2500", "2048", "0.168",
                             "0.168"])
    with _open(root / box_name) as handle:
        handle.write(box_header + "\r\n")
        csv.writer(handle).writerows(BOXES)
    (root / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n00000002_000.png\n")
    (root / "test_list.txt").write_text("00000003_000.png\n00000006_000.png\n00000007_000.png\n00000008_000.png\n")
    for i, (image, _, _, _, folder) in enumerate(ENTRIES):
        if folder is not None:
            write_image(root / folder / image, xray_pixels[i % len(xray_pixels)])
    return root


def _build(root: Path, *options: str) -> list[dict]:
    out = root / "manifest.jsonl"
    assert main(["dataset", "nih-cxr14", "--root", str(root), "--out", str(out), "--quiet", *options]) == 0
    return manifest_rows(out)


def _answers(rows: list[dict]) -> dict[tuple[str, str], str]:
    return {(r["image_id"], r["condition"]): r["answer"] for r in rows}


def test_every_unlisted_finding_is_a_no(nih_root, capsys):
    rows = _build(nih_root, "--unbalanced")
    expected = {(image, key): "yes" if key in listed else "no" for image, listed in KEPT.items() for key in CONDITIONS}
    # no "no pleural abnormality" beside a listed effusion: an effusion is a pleural abnormality
    broader = {(image, "pleural_abnormality") for image, listed in KEPT.items() if "pleural_effusion" in listed}
    assert broader and _answers(rows) == {k: v for k, v in expected.items() if k not in broader}
    assert len(rows) == len(_answers(rows))
    by_image = {r["image_id"]: r for r in rows}
    assert by_image["00000001_000.png"]["image"] == "images_001/images/00000001_000.png"
    assert by_image["00000008_000.png"]["image"] == "images_002/images/00000008_000.png"
    assert {i: r["view"] for i, r in by_image.items()} == {
        "00000001_000.png": "PA", "00000001_001.png": "PA", "00000002_000.png": "AP", "00000006_000.png": "PA",
        "00000007_000.png": "AP", "00000008_000.png": "PA"}
    assert {i: r["patient_id"] for i, r in by_image.items()}["00000002_000.png"] == "2"
    assert {i: r["split"] for i, r in by_image.items()} == {
        "00000001_000.png": "train_val", "00000001_001.png": "train_val", "00000002_000.png": "train_val",
        "00000006_000.png": "test", "00000007_000.png": "test", "00000008_000.png": "test"}
    entry = next(nih_root.glob("Data_Entry_2017*")).name
    assert by_image["00000002_000.png"]["source"] == f"{entry} row 3"
    for row in rows:  # nothing identifying beyond the de-identified patient number
        assert not {"Patient Age", "Patient Gender", "age", "sex", "Follow-up #"} & set(row)

    boxes = {(r["image_id"], r["condition"]): r["boxes"] for r in rows if "boxes" in r}
    assert boxes == {
        ("00000001_000.png", "cardiomegaly"): [{"x_min": 100.0, "y_min": 200.0, "x_max": 400.0, "y_max": 350.0,
                                                "label": "Cardiomegaly"}],
        ("00000001_000.png", "pleural_effusion"): [{"x_min": 50.5, "y_min": 60.0, "x_max": 150.5, "y_max": 140.0,
                                                    "label": "Effusion"}],
        ("00000002_000.png", "mass"): [{"x_min": 1.0, "y_min": 2.0, "x_max": 4.0, "y_max": 6.0, "label": "Mass"}],
        ("00000008_000.png", "infiltration"): [{"x_min": 700.0, "y_min": 300.0, "x_max": 820.25, "y_max": 390.0,
                                                "label": "Infiltrate"}],
    }

    summary = capsys.readouterr().out
    box_file = next(nih_root.glob("BBox_List_2017*")).name
    assert f"duplicated image row (same image_id)\n            e.g. {entry} row 5: repeats {entry} row 2" in summary
    assert f"'No Finding' listed with findings\n            e.g. {entry} row 6: 00000004_000.png: No Finding|Mass" \
           in summary
    assert f"no Finding Labels\n            e.g. {entry} row 7" in summary
    assert f"image file not found under the root\n            e.g. {entry} row 4: 00000003_000.png" in summary
    assert "labels outside NIH's 15: 'Pneumoperitoneum' (1 image, asked about under its own name)" in summary
    assert "pneumoperitoneum" in summary and "outside the nine" in summary
    assert f"box for a finding its image does not list\n            e.g. {box_file} row 3: 00000002_000.png " \
           "Pneumothorax" in summary
    assert f"box for an image without questions (not in the label file, or its row skipped)\n            e.g. " \
           f"{box_file} row 4: 00000003_000.png Infiltrate" in summary
    assert f"box coordinates are not four numbers\n            e.g. {box_file} row 5: x='abc'" in summary
    assert f"duplicated box row (same image_id, label, x, y, w, h)\n            e.g. {box_file} row 6: repeats " \
           f"{box_file} row 1" in summary
    assert f"box starts below 0 or has no width or height\n            e.g. {box_file} row 7" in summary


def test_balanced_by_default(nih_root):
    rows = _build(nih_root)
    yes = {(r["image_id"], r["condition"]) for r in rows if r["answer"] == "yes"}
    assert yes == {(image, key) for image, listed in KEPT.items() for key in listed}
    for key in {k for _, k in yes}:  # as many no as yes, each on an image that does not list it
        no = [r["image_id"] for r in rows if r["condition"] == key and r["answer"] == "no"]
        assert len(no) == sum(1 for _, k in yes if k == key)
        assert all(key not in KEPT[image] for image in no)
    assert {r["condition"] for r in rows} == {k for _, k in yes}  # findings nobody lists: nothing to balance
    assert not any("boxes" in r for r in rows if r["answer"] == "no")


def test_listed_only_split_and_no_finding(nih_root):
    rows = _build(nih_root, "--listed-only", "--unbalanced")
    assert _answers(rows) == {(image, key): "yes" for image, listed in KEPT.items() for key in listed}
    rows = _build(nih_root, "--listed-only", "--no-finding-as-no", "--unbalanced")
    no = {(i, k) for (i, k), a in _answers(rows).items() if a == "no"}
    assert no == {("00000001_001.png", key) for key in CONDITIONS}
    rows = _build(nih_root, "--split", "test", "--unbalanced")
    assert {r["image_id"] for r in rows} == {"00000006_000.png", "00000007_000.png", "00000008_000.png"}
    assert {r["split"] for r in rows} == {"test"}


def test_unreadable_labels_and_no_patient_column(tmp_path, xray_pixels, capsys):
    """A label with no letters or digits ("?") skips its row, or its box, with a reason naming the
    file and row, instead of ending the build; a file without a Patient ID column gives rows
    without patient_id (not an empty one)."""
    root = tmp_path / "nih"
    entries = [("a.png", "Effusion"), ("b.png", "No Finding"), ("c.png", "Cardiomegaly"), ("d.png", "Effusion|?"),
               ("e.png", "???")]
    with _open(root / "Data_Entry_2017_v2020.csv") as handle:
        csv.writer(handle).writerows([["Image Index", "Finding Labels", "View Position"],
                                      *[[image, labels, "PA"] for image, labels in entries]])
    with _open(root / "BBox_List_2017.csv") as handle:
        handle.write("Image Index,Finding Label,Bbox [x,y,w,h],,,\n")
        csv.writer(handle).writerows([("a.png", "Effusion", "1", "2", "3", "4"), ("a.png", "???", "1", "2", "3", "4")])
    for i, (image, _) in enumerate(entries):
        write_image(root / "images" / image, xray_pixels[i % len(xray_pixels)])
    rows = _build(root, "--unbalanced")
    assert {r["image_id"] for r in rows} == {"a.png", "b.png", "c.png"}
    assert all("patient_id" not in r for r in rows)
    by_key = {(r["image_id"], r["condition"]): r for r in rows}
    assert by_key[("a.png", "pleural_effusion")]["boxes"] == [
        {"x_min": 1.0, "y_min": 2.0, "x_max": 4.0, "y_max": 6.0, "label": "Effusion"}]
    summary = capsys.readouterr().out
    assert ("Finding Labels lists a label with no letters or digits (row skipped" in summary
            and "e.g. Data_Entry_2017_v2020.csv row 4: d.png: 'Effusion|?'" in summary
            and "e.g. Data_Entry_2017_v2020.csv row 5: e.png: '???'" in summary), summary
    assert "box Finding Label has no letters or digits\n            e.g. BBox_List_2017.csv row 2: a.png '???'" \
           in summary, summary


def test_errors_name_the_file_and_problem(tmp_path, nih_root, capsys):
    out = str(tmp_path / "m.jsonl")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["dataset", "nih-cxr14", "--root", str(empty), "--out", out]) == 2
    assert "no label file; looked for Data_Entry_2017*.csv and Data_Entry_2017*.csv.gz" in capsys.readouterr().err

    (empty / "Data_Entry_2017.csv").write_text("Image Index,Labels,View Position\n00000001_000.png,Mass,PA\n")
    assert main(["dataset", "nih-cxr14", "--root", str(empty), "--out", out]) == 2
    assert ("Data_Entry_2017.csv: missing column Finding Labels; found Image Index, Labels, View Position"
            in capsys.readouterr().err)

    assert main(["dataset", "nih-cxr14", "--root", str(nih_root), "--out", out, "--split", "validate"]) == 2
    assert "no split 'validate' (--split); the split lists give train_val, test" in capsys.readouterr().err

    box_file = next(nih_root.glob("BBox_List_2017*"))
    with _open(box_file) as handle:
        handle.write("Image Index,Label,x,y,w,h\n00000001_000.png,Mass,1,2,3,4\n")
    assert main(["dataset", "nih-cxr14", "--root", str(nih_root), "--out", out]) == 2
    assert (f"{box_file.name}: expected the header Image Index, Finding Label, Bbox [x,y,w,h]; found Image Index, "
            "Label, x, y, w, h") in capsys.readouterr().err


def test_help_lists_options_and_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["dataset", "nih-cxr14", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for text in ("--labels FILE", "--boxes FILE", "--listed-only", "by default it is a no answer", "--split NAME",
                 "--blank-as-no", "--per-condition N"):
        assert text in shown, text


@pytest.mark.integration
def test_nih_cxr14_end_to_end(nih_root, tmp_path, monkeypatch):
    _build(nih_root)
    run_study_and_page(nih_root / "manifest.jsonl", tmp_path / "results.duckdb", monkeypatch, maps=True)
