"""Map methods at their edges: a knockout where no region supports the answer, a method that falls
back onto Grad-CAM beside a stored Grad-CAM map, head maps dropped with their items on resume.
Each was a silent loss or a wrong map found in review."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
from PIL import Image

from compute.cli import main
from compute.demo.synth import SynthConfig, generate_dataset
from compute.demo.tiny import build_tiny
from compute.maps.extract import map_batch, map_prompts
from compute.maps.methods import knockout
from compute.maps.spec import MapSpec
from compute.model.loading import load_model


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    return load_model(str(build_tiny("qwen2_5_vl", tmp_path_factory.mktemp("tiny") / "q")), device="cpu")


def test_an_all_zero_knockout_map_is_kept_not_replaced_by_gradcam(qwen):
    """Was: knockout.py's docstring says 'all zero (no region supports the answer) is a valid result', but
    make_maps' _usable() rejects an all-zero map ('the map is all zero or not finite') and to_grid() refuses to
    normalise it, so the item silently gets a Grad-CAM map (requested_method knockout, method gradcam) and the
    knockout's image_reliance / blank control are thrown away. With fallback=False it raises instead."""
    rng = np.random.default_rng(0)
    spec = MapSpec(method="knockout", knockout_block=8)
    question = "Is there effusion?"
    for _ in range(8):
        image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        conversations = qwen.conversations([image], [question])
        prompts = map_prompts(qwen, conversations, qwen.tokenize(conversations, offsets=True), [question])
        made = knockout.weights(qwen, prompts, spec)
        if float(next(iter(made.weights.values()))[0].sum()) == 0.0:
            break
    else:
        pytest.skip("no image with an all-zero knockout map found")
    (result,) = map_batch(qwen, [image], [question], spec)
    assert result.method == "knockout", f"fell back: {result.fallback_reason}"
    assert "image_reliance" in result.details and result.details["no_supporting_region"] is True
    np.testing.assert_allclose(result.mean, np.full(result.grid_shape, 1 / result.mean.size))  # uniform, flagged


@pytest.fixture(scope="module")
def gradcam_and_knockout(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    manifest = generate_dataset(SynthConfig(n=4, seed=12, size=128, dicom_fraction=0.0), root / "synth",
                                progress=False)
    db = root / "r.duckdb"
    assert main(["run", "--model", "models/demo", "--manifest", str(manifest), "--db", str(db), "--run", "r",
                 "--limit", "8", "--layers", "last:2", "--gradcam", "--methods", "knockout", "--heads", "all",
                 "--quiet"]) == 0
    return db


def test_a_method_falling_back_to_gradcam_does_not_overwrite_the_gradcam_map(gradcam_and_knockout):
    """Was: attention_maps' key is (run, item, method, layer) and the writer does INSERT OR REPLACE, so when a
    --methods map falls back to Grad-CAM (here a knockout in the last 2 layers that no region supports) its row
    silently replaces the item's own --gradcam row: the item loses its requested Grad-CAM map and the run's
    figures count one map for two requests."""
    with duckdb.connect(str(gradcam_and_knockout), read_only=True) as con:
        rows = con.execute("SELECT item_id, requested_method, method FROM attention_maps WHERE run_id = 'r'").fetchall()
    items = {r[0] for r in rows}
    with_gradcam = {r[0] for r in rows if r[1] == "gradcam"}  # (Grad-CAM itself may fall back to activation)
    assert with_gradcam == items, f"items that lost their --gradcam map: {sorted(items - with_gradcam)}"
    assert {r[0] for r in rows if r[1] == "knockout" and r[2] == "knockout"} == items  # kept, even with no region


def test_dropping_items_on_resume_also_drops_their_head_maps(gradcam_and_knockout, tmp_path):
    """Was: StoreWriter.drop_other_items (resume after the manifest reader refuses rows) deletes the dropped
    items' attention_changes, attention_maps and predictions but not their head_maps (schema 6), leaving orphan
    per-head grids; store/check.py's ORPHANS has no check for head maps either."""
    import shutil

    from store import StoreWriter
    db = tmp_path / "copy.duckdb"
    shutil.copy(gradcam_and_knockout, db)
    with duckdb.connect(str(db), read_only=True) as con:
        items = sorted(r[0] for r in con.execute("SELECT DISTINCT item_id FROM head_maps").fetchall())
    assert len(items) > 1
    StoreWriter(db).drop_other_items("r", {items[0]})
    with duckdb.connect(str(db), read_only=True) as con:
        left = con.execute("SELECT count(*) FROM head_maps h LEFT JOIN attention_maps m "
                           "USING (run_id, item_id, method, layer) WHERE m.item_id IS NULL").fetchone()[0]
    assert left == 0, f"{left} head maps without their map"
