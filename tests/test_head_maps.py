"""--heads all: every head's map of every chosen layer, checked against eager output_attentions,
stored in head_maps by a study, and shown by the Attention page's head browser."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from compute.cli import main
from compute.maps import MapSpec
from compute.maps.extract import map_batch
from compute.model.loading import load_model

QUESTIONS = ["Is there pleural effusion?", "Is there evidence of cardiomegaly?"]


@pytest.fixture
def session(demo_session):
    return demo_session


def test_each_head_equals_eager_attention(session):
    rng = np.random.default_rng(2)
    images = [Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)) for _ in QUESTIONS]
    results = map_batch(session, images, QUESTIONS, MapSpec(layers="all", heads="all"))
    eager = load_model("models/demo", attn_implementation="eager")
    inputs = session.encode(images, QUESTIONS)
    with torch.no_grad():
        attentions = eager.model(**inputs, output_attentions=True).attentions
    where = session.family.image_positions(inputs["input_ids"], session.model.config)
    for b, result in enumerate(results):
        assert set(result.head_maps) == set(result.maps)
        for layer, a in enumerate(attentions):
            rows = a[b, :, -1][:, where[b]].double().numpy()  # (heads, image tokens)
            expected = rows / rows.sum(1, keepdims=True)
            np.testing.assert_allclose(result.head_maps[layer].reshape(len(rows), -1), expected, atol=1e-5)
            mean = rows.mean(0)
            np.testing.assert_allclose(result.maps[layer].ravel(), mean / mean.sum(), atol=1e-5)  # the map: the mean


@pytest.mark.integration
def test_a_study_stores_head_maps_and_the_page_shows_them(tmp_path, monkeypatch):
    from compute.demo.synth import SynthConfig, generate_dataset
    manifest = generate_dataset(SynthConfig(n=1, seed=3, size=96, dicom_fraction=0.0), tmp_path / "s", progress=False)
    db = tmp_path / "h.duckdb"
    assert main(["run", "--model", "models/demo", "--manifest", str(manifest), "--db", str(db), "--run", "h",
                 "--limit", "2", "--layers", "last:2", "--heads", "all", "--quiet"]) == 0
    with duckdb.connect(str(db), read_only=True) as con:
        counts = con.execute("SELECT layer, count(*) FROM head_maps WHERE run_id = 'h' GROUP BY layer ORDER BY layer"
                             ).fetchall()
        item = con.execute("SELECT item_id FROM head_maps LIMIT 1").fetchone()[0]
    heads = load_model("models/demo").model.config.get_text_config().num_attention_heads
    assert [c for _, c in counts] == [2 * heads, 2 * heads]  # 2 items x the heads, for each of the 2 layers
    monkeypatch.setenv("MGV_DB", str(db))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py"), default_timeout=60)
    at.query_params.update(run="h", item=item, layer=str(counts[0][0]))
    at.run()
    at.switch_page("views/attention.py").run()
    assert not at.exception, at.exception
    assert any(e.label.startswith("Heads of layer") for e in at.expander)
