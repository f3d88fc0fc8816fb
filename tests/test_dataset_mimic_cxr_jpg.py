"""`dataset mimic-cxr-jpg` on a fixture with MIMIC-CXR-JPG's exact file names, columns and layout.

Five studies of three subjects (A..E) and one label row without images (F):

    A  p10000032/s50414267  PA a_pa, LATERAL a_lat      Pleural Effusion 1.0, Edema 0.0, Cardiomegaly -1.0
    B  p10000032/s53189527  AP b_ap                     Pleural Effusion 0.0, Edema 1.0, Pneumonia 2.0 (bad),
                                                        Support Devices 0.0
    C  p10000764/s57375967  AP c_ap, PA c_pa1, PA c_pa2  Support Devices 1.0, No Finding 1.0
    D  p10000898/s50771383  PA d_pa                     no label row
    E  p10001122/s51234567  PA e_pa (no image file)     Edema 1.0
    F  p10002000/s59999999  no image in the metadata    Edema 0.0

plus a repeated label row (A), a repeated metadata row (a_pa) and a metadata row whose
subject_id is not a number. By default (PA,AP, one image per study, uncertain skipped) that
leaves six questions, as many yes as no for each condition, so the balance keeps them all.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from compute.cli import main
from compute.data.datasets.chexpert import CHEXPERT_LABELS
from tests.dataset_support import manifest_rows, run_study_and_page, write_image

A, B, C, D, E, F = (("10000032", "50414267"), ("10000032", "53189527"), ("10000764", "57375967"),
                    ("10000898", "50771383"), ("10001122", "51234567"), ("10002000", "59999999"))
A_PA = "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"
A_LAT = "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962"
B_AP = "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab"
C_AP = "096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4"  # the smallest of C's ids, but AP
C_PA1 = "5e3b2b4e-6fd7b6e2-4b1f0a3c-2d9e8f7a-11aa22bb"  # the smaller PA: the one asked about
C_PA2 = "9c42d877-dfa63a03-a1f2eb8c-127c60c3-b20b7e01"
D_PA = "3ca3c7a1-3c1c0c64-6a1bd8b1-8d9f0c1e-55cc66dd"
E_PA = "4b0c2c8e-8a3b6f37-9a5d4e3c-7e6f5a4b-77ee88ff"
BAD_ID = "7f7f7f7f-7f7f7f7f-7f7f7f7f-7f7f7f7f-7f7f7f7f"

METADATA_HEADER = ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows",
                   "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
                   "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning"]
IMAGES = [(A_PA, A, "PA", "train"), (A_LAT, A, "LATERAL", "train"), (B_AP, B, "AP", "train"),
          (C_AP, C, "AP", "test"), (C_PA1, C, "PA", "test"), (C_PA2, C, "PA", "test"), (D_PA, D, "PA", "test"),
          (E_PA, E, "PA", "test")]
LABELS = [
    (A, {"Pleural Effusion": "1.0", "Edema": "0.0", "Cardiomegaly": "-1.0"}),
    (B, {"Pleural Effusion": "0.0", "Edema": "1.0", "Pneumonia": "2.0", "Support Devices": "0.0"}),
    (C, {"Support Devices": "1.0", "No Finding": "1.0"}),
    (E, {"Edema": "1.0"}),
    (F, {"Edema": "0.0"}),
    (A, {"Pleural Effusion": "1.0", "Edema": "0.0", "Cardiomegaly": "-1.0"}),  # the same study again
]
NEGBIO = [(A, {"Edema": "1.0"}), (B, {"Edema": "0.0"}), (C, {})]
# which files are written .gz: both name forms are found (readers.find_file)
LAYOUTS = {"labels-gz": {"chexpert", "negbio", "split"}, "metadata-gz": {"metadata"}}


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


def _name(kind: str, gz: set[str]) -> str:
    return f"mimic-cxr-2.0.0-{kind}.csv" + (".gz" if kind in gz else "")


def _label_rows(rows, header=("subject_id", "study_id", *CHEXPERT_LABELS)) -> list[list[str]]:
    out = [list(header)]
    for (subject, study), values in rows:
        ids = {"subject_id": subject, "study_id": study}
        out.append([ids.get(c, values.get(c, "")) for c in header])
    return out


def _image_path(root: Path, dicom_id: str, ids: tuple[str, str]) -> Path:
    subject, study = ids
    return root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom_id}.jpg"


@pytest.fixture(params=sorted(LAYOUTS))
def mimic_root(request, tmp_path, xray_pixels) -> tuple[Path, set[str]]:
    gz = LAYOUTS[request.param]
    root = tmp_path / "mimic-cxr-jpg" / "2.0.0"
    metadata = [METADATA_HEADER]
    for dicom_id, (subject, study), view, _ in IMAGES:
        metadata.append([dicom_id, subject, study, "CHEST (PA AND LAT)", view, "3056", "2544", "21800506",
                         "213014.531", "CHEST (PA AND LAT)", "postero-anterior", "Erect"])
    metadata.append(metadata[1])  # a_pa again
    metadata.append([BAD_ID, "abc", "50414267", "", "PA", "", "", "", "", "", "", ""])
    _write_csv(root / _name("metadata", gz), metadata)
    _write_csv(root / _name("split", gz), [["dicom_id", "study_id", "subject_id", "split"],
                                           *([d, ids[1], ids[0], split] for d, ids, _, split in IMAGES)])
    _write_csv(root / _name("chexpert", gz), _label_rows(LABELS))
    _write_csv(root / _name("negbio", gz), _label_rows(NEGBIO))
    for i, (dicom_id, ids, _, _) in enumerate(IMAGES):
        if dicom_id != E_PA:
            write_image(_image_path(root, dicom_id, ids), xray_pixels[i % len(xray_pixels)])
    return root, gz


def _build(root: Path, *options: str) -> list[dict]:
    out = root / "manifest.jsonl"
    assert main(["dataset", "mimic-cxr-jpg", "--root", str(root), "--out", str(out), "--quiet", *options]) == 0
    return manifest_rows(out)


def _answers(rows: list[dict]) -> dict[tuple[str, str], str]:
    return {(r["image_id"], r["condition"]): r["answer"] for r in rows}


def test_one_frontal_image_per_study_with_its_labels(mimic_root, capsys):
    root, gz = mimic_root
    rows = _build(root)
    assert _answers(rows) == {
        (A_PA, "pleural_effusion"): "yes", (A_PA, "edema"): "no",
        (B_AP, "pleural_effusion"): "no", (B_AP, "edema"): "yes", (B_AP, "support_devices"): "no",
        (C_PA1, "support_devices"): "yes",
    }
    assert len(rows) == 6
    by_image = {r["image_id"]: r for r in rows}
    assert by_image[A_PA]["image"] == f"files/p10/p10000032/s50414267/{A_PA}.jpg"
    assert {i: r["view"] for i, r in by_image.items()} == {A_PA: "PA", B_AP: "AP", C_PA1: "PA"}
    assert {i: r["split"] for i, r in by_image.items()} == {A_PA: "train", B_AP: "train", C_PA1: "test"}
    assert {i: (r["subject_id"], r["study_id"]) for i, r in by_image.items()} == {A_PA: A, B_AP: B, C_PA1: C}
    labels = _name("chexpert", gz)
    assert by_image[A_PA]["source"] == f"{labels} row 1" and by_image[C_PA1]["source"] == f"{labels} row 3"
    assert all(r["question"].endswith("?") for r in rows)
    for row in rows:  # nothing of the metadata beyond the ids and the view
        assert not {"StudyDate", "StudyTime", "PerformedProcedureStepDescription"} & set(row)

    summary = capsys.readouterr().out
    metadata = _name("metadata", gz)
    assert f"view not in --views PA,AP\n            e.g. {metadata} row 2: {A_LAT} view LATERAL" in summary
    assert "another image of the study is asked about" in summary
    assert f"{C_AP} (AP); chosen {C_PA1}" in summary and f"{C_PA2} (PA); chosen {C_PA1}" in summary
    assert f"study has no row in {labels}\n            e.g. {metadata} row 7: subject 10000898 study 50771383" \
           in summary
    assert f"study in {labels} has no image in the metadata\n            e.g. {labels} row 5: subject 10002000 " \
           "study 59999999" in summary
    assert f"duplicated label row (same subject_id, study_id)\n            e.g. {labels} row 6: repeats {labels} " \
           "row 1" in summary
    assert f"duplicated metadata row (same dicom_id)\n            e.g. {metadata} row 9: repeats {metadata} row 1" \
           in summary
    assert f"subject_id or study_id is not a whole number\n            e.g. {metadata} row 10: subject_id 'abc'" \
           in summary
    assert f"label is not 1, 0, -1 or blank\n            e.g. {labels} row 2: Pneumonia = '2.0'" in summary
    assert f"label uncertain (-1), --uncertain skip\n            e.g. {labels} row 1: Cardiomegaly = -1" in summary
    assert f"image file missing\n            e.g. {labels} row 4: files/p10/p10001122/s51234567/{E_PA}.jpg" in summary
    assert "support_devices" in summary and "outside the nine" in summary


def test_all_images_and_all_views(mimic_root):
    root, _ = mimic_root
    rows = _build(root, "--all-images", "--unbalanced")
    support = {r["image_id"]: (r["answer"], r["view"]) for r in rows if r["condition"] == "support_devices"}
    assert support == {C_AP: ("yes", "AP"), C_PA1: ("yes", "PA"), C_PA2: ("yes", "PA"), B_AP: ("no", "AP")}
    assert A_LAT not in {r["image_id"] for r in rows}
    rows = _build(root, "--views", "all", "--all-images", "--unbalanced")
    assert _answers(rows)[(A_LAT, "pleural_effusion")] == "yes"
    assert {r["view"] for r in rows if r["image_id"] == A_LAT} == {"LATERAL"}
    rows = _build(root, "--views", "lateral,pa", "--unbalanced")  # order picks the image: A's lateral
    assert {r["image_id"] for r in rows} == {A_LAT, C_PA1}


def test_split_labeler_and_label_file(mimic_root, capsys):
    root, gz = mimic_root
    rows = _build(root, "--split", "test", "--unbalanced")
    assert _answers(rows) == {(C_PA1, "support_devices"): "yes"}
    assert rows[0]["split"] == "test"
    assert "split is not test (--split)" in capsys.readouterr().out

    rows = _build(root, "--labeler", "negbio")
    assert _answers(rows) == {(A_PA, "edema"): "yes", (B_AP, "edema"): "no"}
    assert rows[0]["source"].startswith(_name("negbio", gz) + " row ")

    # the radiologists' test-set labels: study_id and the labels, no subject_id
    _write_csv(root / "mimic-cxr-2.1.0-test-set-labeled.csv",
               _label_rows([(C, {"Pleural Effusion": "1.0"}), (B, {"Pleural Effusion": "0.0"})],
                           header=("study_id", *sorted(CHEXPERT_LABELS))))
    capsys.readouterr()
    rows = _build(root, "--labels", "mimic-cxr-2.1.0-test-set-labeled.csv")
    assert _answers(rows) == {(C_PA1, "pleural_effusion"): "yes", (B_AP, "pleural_effusion"): "no"}
    assert "has no subject_id: its rows join the images on study_id alone" in capsys.readouterr().out


def test_errors_name_the_file_and_problem(mimic_root, tmp_path, capsys):
    root, gz = mimic_root
    out = str(tmp_path / "m.jsonl")
    assert main(["dataset", "mimic-cxr-jpg", "--root", str(root), "--out", out, "--split", "val"]) == 2
    assert "no split 'val' (--split); its splits are test, train" in capsys.readouterr().err

    header = ["subject_id", "study_id", *(c for c in CHEXPERT_LABELS if c != "Edema")]
    _write_csv(root / _name("chexpert", gz), [header, ["10000032", "50414267", *[""] * (len(header) - 2)]])
    assert main(["dataset", "mimic-cxr-jpg", "--root", str(root), "--out", out]) == 2
    err = capsys.readouterr().err
    assert f"{_name('chexpert', gz)}: missing column Edema; found subject_id, study_id, No Finding" in err

    (root / _name("metadata", gz)).unlink()
    assert main(["dataset", "mimic-cxr-jpg", "--root", str(root), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "no image metadata" in err and "mimic-cxr-2.0.0-metadata.csv.gz, mimic-cxr-2.0.0-metadata.csv" in err

    for name in (_name("chexpert", gz), _name("negbio", gz)):
        (root / name).unlink()
    assert main(["dataset", "mimic-cxr-jpg", "--root", str(root), "--out", out]) == 2
    assert "looked for mimic-cxr-2.0.0-chexpert.csv.gz, mimic-cxr-2.0.0-chexpert.csv" in capsys.readouterr().err


def test_help_lists_options_and_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["dataset", "mimic-cxr-jpg", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for text in ("--labeler {chexpert,negbio}", "(default: chexpert;", "--views VIEWS", "(default: PA,AP",
                 "--split NAME", "--all-images", "--uncertain", "--labels FILE"):
        assert text in shown, text


@pytest.mark.integration
def test_mimic_cxr_jpg_end_to_end(mimic_root, tmp_path, monkeypatch):
    root, _ = mimic_root
    _build(root)
    run_study_and_page(root / "manifest.jsonl", tmp_path / "results.duckdb", monkeypatch)
