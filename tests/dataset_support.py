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
                       image_root: Path | None = None) -> AppTest:
    """A baseline run of the demo model over `manifest` into `db`, then the Condition accuracy
    page over it; asserts that every row was answered and that the page shows every condition."""
    args = ["run", "--model", str(DEMO_MODEL), "--manifest", str(manifest), "--db", str(db), "--run", run,
            "--quiet", "--no-maps", *extra]
    if image_root is not None:
        args += ["--image-root", str(image_root)]
    assert main(args) == 0
    import duckdb
    with duckdb.connect(str(db), read_only=True) as con:
        failed = con.execute("SELECT error FROM predictions WHERE run_id = ? AND status <> 'ok'", [run]).fetchall()
    assert not failed, failed
    monkeypatch.setenv("MGV_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["run"] = run
    at.run()
    at.switch_page("views/condition_accuracy.py").run()
    assert not at.exception, at.exception
    shown = set(at.dataframe[0].value.condition)
    assert shown == {r["condition"] for r in manifest_rows(manifest)}, shown
    return at
