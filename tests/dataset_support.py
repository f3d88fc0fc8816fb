"""Helpers for the dataset-format tests: real image files at a format's paths, and the run
from manifest to the Condition accuracy page that every format's test ends with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from compute.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "models" / "demo"
APP = str(ROOT / "dashboard" / "app.py")


def write_image(path: Path, pixels: np.ndarray) -> Path:
    """`pixels` (uint8, H x W) saved at `path`, as JPEG or PNG by its suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    image.save(path, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG", quality=95)
    return path


def manifest_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_study_and_page(manifest: Path, db: Path, monkeypatch, *extra: str, run: str = "fmt",
                       image_root: Path | None = None, maps: bool = False) -> AppTest:
    """A baseline run of the demo model over `manifest` into `db`, then the Condition accuracy
    page over it; asserts that every row was answered and that the page shows every condition.
    `maps`: with attention maps (one layer), and every item whose boxes or mask cover part of
    its image has its lesion metrics; the others have none."""
    args = ["run", "--model", str(DEMO_MODEL), "--manifest", str(manifest), "--db", str(db), "--run", run,
            "--quiet", *(["--layers", "last:1"] if maps else ["--no-maps"]), *extra]
    if image_root is not None:
        args += ["--image-root", str(image_root)]
    assert main(args) == 0
    import duckdb
    with duckdb.connect(str(db), read_only=True) as con:
        failed = con.execute("SELECT error FROM predictions WHERE run_id = ? AND status <> 'ok'", [run]).fetchall()
    assert not failed, failed
    if maps:
        _check_lesion_metrics(db, run)
    monkeypatch.setenv("MGV_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["run"] = run
    at.run()
    at.switch_page("views/condition_accuracy.py").run()
    assert not at.exception, at.exception
    shown = set(at.dataframe[0].value.condition)
    assert shown == {r["condition"] for r in manifest_rows(manifest)}, shown
    return at


def _check_lesion_metrics(db: Path, run: str) -> None:
    import duckdb

    from compute.data.lesions import lesion_pixels, parse_boxes
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT q.boxes, q.mask, f.path, m.lesion_hit, m.lesion_attention_ratio, m.metrics_note "
                           "FROM attention_maps m JOIN predictions p USING (run_id, item_id) "
                           "JOIN questions q USING (item_id) JOIN image_files f ON f.image_key = p.image_key "
                           "WHERE m.run_id = ?", [run]).fetchall()
    assert rows
    with_lesion = 0
    for boxes, mask, path, hit, ratio, note in rows:
        from compute.data.images import read_image
        image = read_image(Path(path)).image
        try:
            lesion = lesion_pixels(parse_boxes(boxes), mask, image.width, image.height)
        except ValueError as exc:  # a box past the image: not scored, and the note says why
            assert hit is None and ratio is None and str(exc) in (note or ""), (boxes, note)
            continue
        if lesion is not None and lesion.any():
            with_lesion += 1
            assert hit is not None and ratio is not None and ratio >= 0, (boxes, mask)
        else:
            assert hit is None and ratio is None
    assert with_lesion, "no item had a lesion on its image"
