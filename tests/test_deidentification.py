"""Nothing identifying is stored: DICOM files carrying a patient's name, IDs, birth date,
accession number, institution and referring physician go through `dataset dicom` and a study
with attention maps, and none of those values (nor their obvious variants) turns up in the
manifest, the DuckDB store (its bytes and every value its tables hold), any other file the
commands wrote, or anything they printed."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import duckdb
import numpy as np
import pydicom
import pytest

from compute.cli import main
from compute.demo.dicom_writer import write_dicom
from tests.dataset_support import DEMO_MODEL, manifest_rows

IDENTIFYING = {
    "PatientName": "Zebulon^Quartermaine",
    "PatientID": "PID-7731-XQ",
    "PatientBirthDate": "19430217",
    "AccessionNumber": "ACC-55901-QZ",
    "InstitutionName": "St Ignatius Infirmary",
    "ReferringPhysicianName": "Dr^Wilhelmina^Okonkwo",
}
LABELS = {  # file -> (Pleural Effusion, Edema)
    "archive/a/image1.dcm": ("1", "0"),
    "archive/a/image2.dcm": ("0", "1"),
    "archive/b/image3.dcm": ("1", "1"),
    "archive/b/image4.dcm": ("0", "0"),
}
BROKEN = "archive/b/image5.dcm"  # a header that reads, pixels that do not: the run's error path


def variants(value: str) -> set[str]:
    """The value as written, with spaces for '^', its name parts, and a date's ISO form."""
    out = {value, value.replace("^", " "), value.replace("^", ", ")}
    out |= {part for part in re.split(r"[\^ ]", value) if len(part) >= 4}  # not "Dr" or "St"
    if re.fullmatch(r"\d{8}", value):
        out.add(f"{value[:4]}-{value[4:6]}-{value[6:]}")
    return out


NEEDLES = sorted({v for value in IDENTIFYING.values() for v in variants(value)})


def _dicom_with_identifiers(path: Path, pixels: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dicom(pixels.astype(np.uint16) * 16, path, photometric="MONOCHROME2", window=(2048.0, 4096.0))
    ds = pydicom.dcmread(path)  # the writer sets fixed placeholders only: add the real-looking values
    for keyword, value in IDENTIFYING.items():
        setattr(ds, keyword, value)
    ds.ViewPosition = "PA"
    ds.save_as(path)
    return str(ds.SOPInstanceUID)


def _found(haystack: bytes | str, needles=NEEDLES) -> list[str]:
    """The needles in `haystack`, any case."""
    if isinstance(haystack, bytes):
        return [n for n in needles if n.lower().encode("utf-8") in haystack.lower()]
    return [n for n in needles if n.lower() in haystack.lower()]


def test_variants_cover_the_obvious_forms():
    assert {"Zebulon^Quartermaine", "Zebulon Quartermaine", "Zebulon", "Quartermaine", "1943-02-17",
            "Wilhelmina", "Okonkwo", "Ignatius", "Infirmary"} <= set(NEEDLES)
    assert _found(b"...zebulon quartermaine...") and not _found("nothing here")


@pytest.mark.integration
def test_no_identifying_value_reaches_the_manifest_store_or_log(tmp_path, xray_pixels, capfd):
    root = tmp_path / "dicoms"
    uids = {}
    for i, rel in enumerate([*LABELS, BROKEN]):
        uids[rel] = _dicom_with_identifiers(root / rel, np.roll(xray_pixels[i % len(xray_pixels)], i, axis=0))
    ds = pydicom.dcmread(root / BROKEN)
    ds.PixelData = ds.PixelData[:100]  # too short for 128 x 128 pixels
    ds.save_as(root / BROKEN)
    # the inputs do carry the values (else the test would prove nothing)
    assert all(_found((root / rel).read_bytes(), ["Zebulon^Quartermaine", "St Ignatius Infirmary"])
               for rel in uids)
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as f:
        csv.writer(f).writerows([["SOPInstanceUID", "Pleural Effusion", "Edema"],
                                 *([uids[rel], *codes] for rel, codes in LABELS.items()),
                                 [uids[BROKEN], "1", "0"]])
    manifest = tmp_path / "manifest.jsonl"
    assert main(["dataset", "dicom", "--root", str(root), "--out", str(manifest), "--labels", str(labels),
                 "--unbalanced"]) == 0
    rows = manifest_rows(manifest)
    assert len(rows) == 10 and {r["view"] for r in rows} == {"PA"}
    db = tmp_path / "results.duckdb"
    main(["run", "--model", str(DEMO_MODEL), "--manifest", str(manifest), "--db", str(db), "--run", "deid",
          "--max-failure-share", "1"])  # attention maps on (the default)
    printed = capfd.readouterr()

    with duckdb.connect(str(db)) as con:
        ok, failed = con.execute("SELECT count(*) FILTER (WHERE status = 'ok'), count(*) FILTER "
                                 "(WHERE status <> 'ok') FROM predictions WHERE run_id = 'deid'").fetchone()
        maps = con.execute("SELECT count(*) FROM attention_maps").fetchone()[0]
        stored = _every_stored_value(con)
        con.execute("CHECKPOINT")
    assert (ok, failed) == (8, 2) and maps >= 8  # the study ran, maps included, and the broken file failed

    leaks = {}
    for name, content in (("stdout", printed.out), ("stderr", printed.err), ("manifest", manifest.read_bytes()),
                          ("the store's values", stored)):
        if _found(content):
            leaks[name] = _found(content)
    for path in sorted(p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(root)):
        if _found(path.read_bytes()):  # the .duckdb file and its .wal, the manifest, anything else written
            leaks[str(path.relative_to(tmp_path))] = _found(path.read_bytes())
    assert not leaks, leaks
    # the SOPInstanceUID joins the labels but is never written
    for uid in uids.values():
        assert uid not in manifest.read_text() and uid not in printed.out + printed.err


def _every_stored_value(con) -> str:
    """Every value of every table, as text: DuckDB compresses strings on disk, so a search of
    the file's bytes alone could miss one."""
    parts = []
    for (table,) in con.execute("SELECT table_name FROM information_schema.tables "
                                "WHERE table_type = 'BASE TABLE'").fetchall():
        for row in con.execute(f'SELECT * FROM "{table}"').fetchall():
            parts.append(" ".join(map(str, row)))
    return "\n".join(parts)
