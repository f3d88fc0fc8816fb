"""`dataset dicom`: a folder tree of DICOM files with a labels CSV keyed by SOPInstanceUID or file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest

from compute.cli import main
from compute.data.datasets.dicom_folder import read_header
from compute.demo.dicom_writer import write_dicom
from tests.dataset_support import manifest_rows, run_study_and_page

FILES = {  # path under the root -> ViewPosition ("" : none)
    "studies/s1/IM0001.dcm": "PA",
    "studies/s1/IM0002.dcm": "LL",
    "studies/s2/IM0001.dcm": "AP",  # the same file name as s1's
    "studies/s3/scan": "",  # no suffix, and no preamble
    "extra/IM0009.dcm": "PA",  # no row in the labels
}
LABEL_HEADER = ["SOPInstanceUID", "PatientName", "No Finding", "Cardiomegaly", "Edema", "Pleural Effusion"]


def _write(path: Path, pixels: np.ndarray, view: str, *, preamble: bool = True) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dicom(pixels.astype(np.uint16) * 16, path, photometric="MONOCHROME2", window=(2048.0, 4096.0))
    ds = pydicom.dcmread(path)
    if view:
        ds.ViewPosition = view
    if not preamble:
        ds.preamble = None
    ds.save_as(path, enforce_file_format=preamble)
    return str(ds.SOPInstanceUID)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


@pytest.fixture
def dicom_root(tmp_path, xray_pixels) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "exports"
    uids = {}
    for i, (rel, view) in enumerate(FILES.items()):
        pixels = np.roll(xray_pixels[i % len(xray_pixels)], i, axis=1)  # distinct pixels, distinct UIDs
        uids[rel] = _write(root / rel, pixels, view, preamble=rel != "studies/s3/scan")
    (root / "notes.txt").write_text("exported from the archive\n")
    no_image = root / "studies" / "s1" / "report.dcm"  # a DICOM file without Rows/Columns
    ds = pydicom.dcmread(root / "studies/s1/IM0001.dcm")
    del ds.PixelData, ds.Rows, ds.Columns
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1111"
    ds.save_as(no_image)
    (root / ".hidden.dcm").write_bytes(b"ignored")
    u = uids
    _write_csv(root / "labels.csv", LABEL_HEADER, [
        [u["studies/s1/IM0001.dcm"], "Quimby^Jane", "", "", "0", "1"],
        [u["studies/s1/IM0002.dcm"], "Quimby^Jane", "", "", "1", "0"],
        [u["studies/s2/IM0001.dcm"], "", "", "2", "0", "-1"],  # row 3: a bad code and an uncertain label
        [u["studies/s3/scan"], "", "1", "", "", ""],  # row 4: no finding, the rest blank
        ["1.2.826.0.1.3680043.8.498.999", "", "", "", "1", ""],  # row 5: no such file
        [u["studies/s1/IM0001.dcm"], "Quimby^Jane", "", "", "0", "1"],  # row 6: repeats row 1
        ["1.2.826.0.1.3680043.8.498.1111", "", "", "", "1", ""],  # row 7: its file holds no image
    ])
    return root, uids


def _build(root: Path, *extra: str) -> list[dict]:
    out = root.parent / "manifest.jsonl"
    assert main(["dataset", "dicom", "--root", str(root), "--out", str(out), "--quiet", "--labels", "labels.csv",
                 *extra]) == 0
    return manifest_rows(out)


def test_dicom_wide_labels_by_uid(dicom_root, capsys):
    root, uids = dicom_root
    rows = _build(root, "--unbalanced")
    got = {(r["image_id"], r["condition"]): (r["answer"], r.get("view")) for r in rows}
    assert got == {
        ("studies/s1/IM0001", "pleural_effusion"): ("yes", "PA"), ("studies/s1/IM0001", "edema"): ("no", "PA"),
        ("studies/s1/IM0002", "pleural_effusion"): ("no", "LL"), ("studies/s1/IM0002", "edema"): ("yes", "LL"),
        ("studies/s2/IM0001", "edema"): ("no", "AP"),
    }
    assert {r["image"] for r in rows} == {"exports/studies/s1/IM0001.dcm", "exports/studies/s1/IM0002.dcm",
                                          "exports/studies/s2/IM0001.dcm"}  # relative to the manifest's folder
    assert all(r["modality"] == "DX" and r["source"].startswith("labels.csv row ") for r in rows)
    text = (root.parent / "manifest.jsonl").read_text()
    assert "Quimby" not in text and not any(uid in text for uid in uids.values())  # neither names nor UIDs
    summary = capsys.readouterr().out
    for reason, example in (("not a DICOM file (file skipped)", "notes.txt"),
                            ("not a DICOM image (no Rows and Columns) (file skipped)", "studies/s1/report.dcm"),
                            ("no DICOM image under --root has this SOPInstanceUID", "labels.csv row 5"),
                            ("duplicated row", "labels.csv row 6: repeats labels.csv row 1"),
                            ("label is not 1, 0, -1 or blank", "labels.csv row 3: Cardiomegaly = '2'"),
                            ("label uncertain (-1)", "labels.csv row 3"),
                            ("label blank (not mentioned)", "labels.csv row 4")):
        assert reason in summary and example in summary, (reason, summary)
    assert "labels.csv row 7" in summary  # the row of the file that holds no image
    assert "1 DICOM image under --root has no row in labels.csv" in summary
    assert "columns not read from labels.csv: PatientName" in summary
    assert "Quimby" not in summary and not any(uid in summary for uid in uids.values())
    assert ".hidden" not in summary


def test_dicom_no_finding_as_no_and_balance(dicom_root):
    root, _ = dicom_root
    answers = {(r["image_id"], r["condition"]): r["answer"] for r in _build(root, "--unbalanced", "--no-finding-as-no")}
    assert answers[("studies/s3/scan", "edema")] == "no"  # the preamble-less file, read as DICOM
    assert answers[("studies/s3/scan", "pleural_effusion")] == "no"
    rows = _build(root)
    for condition in ("edema", "pleural_effusion"):
        assert sorted(r["answer"] for r in rows if r["condition"] == condition) == ["no", "yes"]


def test_dicom_questions_by_file_name(dicom_root, capsys):
    root, _ = dicom_root
    _write_csv(root / "questions.csv", ["filename", "question", "answer", "PatientID"], [
        ["IM0002", "Is there pleural effusion?", "no", "PID-1"],  # the bare stem of one file
        ["studies/s2/IM0001.dcm", "Is there edema?", "Yes", "PID-2"],  # the path
        ["IM0001.dcm", "Is there edema?", "no", "PID-3"],  # row 3: two files have this name
        ["studies\\s3\\scan", "Is there cardiomegaly?", "yes", ""],  # backslashes
        ["notes.txt", "Is there edema?", "no", ""],  # row 5: not DICOM
        ["absent.dcm", "Is there edema?", "no", ""],  # row 6
        ["studies/s1/IM0001", "Is the sky blue?", "no", ""],  # row 7: no condition
    ])
    out = root.parent / "q.jsonl"
    assert main(["dataset", "dicom", "--root", str(root), "--out", str(out), "--quiet",
                 "--labels", "questions.csv"]) == 0
    rows = manifest_rows(out)
    assert [(r["image_id"], r["question"], r["answer"], r["condition"], r.get("view")) for r in rows] == [
        ("studies/s1/IM0002", "Is there pleural effusion?", "no", "pleural_effusion", "LL"),
        ("studies/s2/IM0001", "Is there edema?", "yes", "edema", "AP"),
        ("studies/s3/scan", "Is there cardiomegaly?", "yes", "cardiomegaly", None),
    ]
    assert "PID-" not in out.read_text()
    summary = capsys.readouterr().out
    for reason, example in (("file name matches several files under --root", "questions.csv row 3: 'IM0001.dcm'"),
                            ("not a DICOM file (its row skipped)", "questions.csv row 5: notes.txt"),
                            ("no file under --root by this name", "questions.csv row 6: 'absent.dcm'"),
                            ("no condition", "questions.csv row 7")):
        assert reason in summary and example in summary, (reason, summary)


def test_dicom_one_image_with_two_label_rows(dicom_root, capsys):
    root, _ = dicom_root
    _write_csv(root / "conflict.csv", ["file", "Edema"], [
        ["IM0002", "1"], ["studies/s1/IM0002.dcm", "0"],  # one file, two spellings, two labels
        ["studies/s2/IM0001", "1"], ["studies/s2/IM0001.dcm", "1"],  # one file twice, the same label
        ["extra/IM0009.dcm", "0"]])
    answers = {(r["image_id"], r["condition"]): (r["answer"], r["source"])
               for r in _build(root, "--unbalanced", "--labels", "conflict.csv")}
    assert answers == {("studies/s2/IM0001", "edema"): ("yes", "conflict.csv row 3"),
                       ("extra/IM0009", "edema"): ("no", "conflict.csv row 5")}
    summary = capsys.readouterr().out
    assert "one image on several rows with different labels" in summary and "studies/s1/IM0002.dcm" in summary
    assert "duplicated row (same image and labels)" in summary and "conflict.csv row 4: repeats conflict.csv row 3" \
        in summary


def test_read_header_reads_technical_tags_only(dicom_root):
    root, uids = dicom_root
    values, reason = read_header(root / "studies/s1/IM0002.dcm")
    assert reason is None
    assert values == {"sop": uids["studies/s1/IM0002.dcm"], "modality": "DX", "header_view": "LL", "rows": 128,
                      "columns": 128, "photometric": "MONOCHROME2"}
    assert read_header(root / "notes.txt") == (None, "not a DICOM file")
    (root / "empty.dcm").write_bytes(b"")
    assert read_header(root / "empty.dcm") == (None, "not a DICOM file")


def test_dicom_errors_name_the_problem(dicom_root, tmp_path, capsys):
    root, _ = dicom_root
    base = ["dataset", "dicom", "--root", str(root), "--out", str(tmp_path / "m.jsonl")]
    assert main([*base, "--labels", "absent.csv"]) == 2
    assert "absent.csv: labels file not found" in capsys.readouterr().err
    _write_csv(root / "bad.csv", ["id", "Edema"], [["x", "1"]])
    assert main([*base, "--labels", "bad.csv"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv: missing a SOPInstanceUID or file column" in err and "found id, Edema" in err
    assert main([*base, "--labels", "bad.csv", "--key", "sop"]) == 2
    assert "missing column SOPInstanceUID (--key sop); found id, Edema" in capsys.readouterr().err
    _write_csv(root / "nolabels.csv", ["file", "note"], [["IM0002", "x"]])
    assert main([*base, "--labels", "nolabels.csv"]) == 2
    err = capsys.readouterr().err
    assert "no label columns" in err and "found file, note" in err
    assert main([*base, "--labels", "nolabels.csv", "--label-columns", "Nodule"]) == 2
    assert "--label-columns names Nodule, not in the file" in capsys.readouterr().err
    # a column whose name has no letters or digits names no condition: a usage error, not a crash
    _write_csv(root / "marks.csv", ["file", "Edema", "???"], [["IM0002", "1", "1"]])
    assert main([*base, "--labels", "marks.csv", "--label-columns", "???"]) == 2
    err = capsys.readouterr().err
    assert "marks.csv: --label-columns names '???': a label column needs letters or digits" in err, err
    assert "unexpected" not in err


@pytest.mark.integration
def test_dicom_end_to_end(dicom_root, tmp_path, monkeypatch):
    root, _ = dicom_root
    out = root.parent / "manifest.jsonl"
    assert main(["dataset", "dicom", "--root", str(root), "--out", str(out), "--quiet",
                 "--labels", "labels.csv"]) == 0
    run_study_and_page(out, tmp_path / "results.duckdb", monkeypatch)


def test_merge_rle_unions_pieces_without_an_image_size():
    from compute.data.lesions import merge_rle, rle_pixels
    a, b = "2 3 10 1", "4 3"  # pixels 2-4 and 15; pixels 4-6
    merged = merge_rle([a, b])
    assert merged == "2 5 8 1"  # pixels 2-6 and 15
    np.testing.assert_array_equal(rle_pixels(merged, 4, 4), rle_pixels(a, 4, 4) | rle_pixels(b, 4, 4))
    assert merge_rle(["-1"]) == "-1"


def test_siim_masks_that_merge_rle_cannot_read_are_skipped(tmp_path, xray_pixels, capsys):
    """An odd count of numbers, a negative number (only a lone -1 means no mask) or runs of no
    pixels skip the row with the reason, and the image's other rows with it, instead of ending
    the build."""
    root = tmp_path / "siim"
    uids = [_write(root / f"{i}.dcm", np.roll(xray_pixels[i % len(xray_pixels)], i, axis=1), "PA")
            for i in range(7)]
    (root / "train-rle.csv").write_text(
        "ImageId, EncodedPixels\n"
        f"{uids[0]}, 5\n"  # row 1: an odd count
        f"{uids[1]}, -5 10\n"  # row 2: a negative start
        f"{uids[2]}, 3 0\n"  # row 3: no pixel
        f"{uids[3]}, 3 4\n"  # row 4: kept, yes
        f"{uids[4]}, -1\n"  # row 5: kept, no
        f"{uids[5]}, 1 2 3\n"  # row 6: an odd count ...
        f"{uids[5]}, -1\n"  # row 7: ... so this -1 is no negative
        f"{uids[6]}, -1 4\n"  # row 8: -1 is only a mask alone
        f"{uids[6]}, 2 2\n")  # row 9: skipped with it
    out = tmp_path / "siim.jsonl"
    assert main(["dataset", "dicom", "--root", str(root), "--out", str(out), "--quiet",
                 "--labels", "train-rle.csv", "--unbalanced"]) == 0
    rows = {r["image_id"]: r for r in manifest_rows(out)}
    assert {i: r["answer"] for i, r in rows.items()} == {"3": "yes", "4": "no"}
    assert rows["3"]["mask"] == "3 4"
    summary = capsys.readouterr().out
    for reason, example in (
            ("EncodedPixels has an odd count of numbers (it needs start-length pairs)", "train-rle.csv row 1: '5'"),
            ("EncodedPixels has an odd count of numbers (it needs start-length pairs)", "train-rle.csv row 6: '1 2 3'"),
            ("EncodedPixels has a negative number (only a lone -1 means no mask)", "train-rle.csv row 2: '-5 10'"),
            ("EncodedPixels has a negative number (only a lone -1 means no mask)", "train-rle.csv row 8: '-1 4'"),
            ("EncodedPixels marks no pixel (every run has length 0)", "train-rle.csv row 3: '3 0'"),
            ("another EncodedPixels row of this image was skipped", "train-rle.csv row 7: 5.dcm"),
            ("another EncodedPixels row of this image was skipped", "train-rle.csv row 9: 6.dcm")):
        assert reason in summary and example in summary, (reason, example, summary)


@pytest.mark.integration
def test_siim_run_length_masks_give_pneumothorax_rows_with_their_mask(tmp_path, xray_pixels, capsys, monkeypatch):
    """SIIM-ACR's train-rle.csv, its exact header (a space before EncodedPixels) and values:
    -1 for no pneumothorax, one row per piece of a mask otherwise."""
    root = tmp_path / "siim"
    uids = [_write(root / f"dicom-images-train/{i}/{i}/{i}.dcm", np.roll(xray_pixels[i], i, axis=1), "PA")
            for i in range(4)]
    (root / "train-rle.csv").write_text(
        "ImageId, EncodedPixels\n"
        f"{uids[0]}, -1\n"
        f"{uids[1]}, 0 128 1000 64\n"  # the first column, then 64 pixels further on
        f"{uids[1]}, 300 10\n"  # a second piece of the same image
        f"{uids[2]}, -1\n"
        f"{uids[2]}, 5 5\n"  # both -1 and a mask: skipped
        f"{uids[3]}, 1 x\n")  # not run-length pairs: skipped
    out = tmp_path / "siim.jsonl"
    assert main(["dataset", "dicom", "--root", str(root), "--out", str(out), "--quiet",
                 "--labels", "train-rle.csv"]) == 0
    rows = manifest_rows(out)
    found = [(r["image_id"].split("/")[-1], r["condition"], r["answer"]) for r in sorted(rows, key=lambda r: r["image"])]
    assert found == [("0", "pneumothorax", "no"), ("1", "pneumothorax", "yes")]
    yes = next(r for r in rows if r["answer"] == "yes")
    assert yes["mask"] == "0 128 172 10 818 64"  # the two pieces merged: pixels 0-127, 300-309, 1128-1191
    summary = capsys.readouterr().out
    assert "one image with both -1 and a mask" in summary and "EncodedPixels is not -1 or start-length pairs" in summary
    assert not any(uid in out.read_text() for uid in uids)  # the SOPInstanceUID is never written
    from tests.dataset_support import run_study_and_page
    run_study_and_page(out, tmp_path / "siim.duckdb", monkeypatch)
