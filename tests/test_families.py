"""Every supported model family, on its tiny random-weight checkpoint (`compute tiny-model`):
the maps equal eager `output_attentions` (fp32, padded batches), the prefix-sharing engine
equals the batched generate (different image sizes included on dynamic-resolution families),
Grad-CAM and activation norm make maps through the family's vision layer, and a short phrasing
study runs with maps from the command line. A new family adds its name to FAMILIES."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
import torch
from PIL import Image

from compute.answering import BatchedGenerate, Group, PrefixSharedEngine, engine_supports
from compute.cli import main
from compute.demo.tiny import TINY_FAMILIES
from compute.maps import MapSpec
from compute.model.loading import load_model

FAMILIES = ("gemma3", "paligemma", "qwen2_5_vl", "llava", "idefics3", "internvl")
QUESTIONS = ["Is there a pleural effusion?", "Is there evidence of cardiomegaly in this chest film?", "Edema?"]


def test_every_tiny_family_is_tested():
    assert set(FAMILIES) == set(TINY_FAMILIES)




@pytest.fixture(scope="module")
def images():
    """Random-texture images of three sizes: the square one and two that tile or resize differently."""
    rng = np.random.default_rng(3)
    sizes = ((64, 64), (60, 120), (90, 70))
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


def _eager_maps(path, session, images, questions):
    """Per sequence and layer, the answer position's head-mean attention onto the image tokens,
    from a separately loaded eager model's output_attentions, laid over the image by the family."""
    eager = load_model(str(path), attn_implementation="eager")
    inputs = session.encode(images, questions)
    with torch.no_grad():
        attentions = eager.model(**inputs, output_attentions=True).attentions
    where = session.family.image_positions(inputs["input_ids"], session.model.config)
    layouts = session.family.layouts(inputs, session.processor, where.sum(1).tolist(),
                                     [(i.height, i.width) for i in images])
    out = []
    for b, layout in enumerate(layouts):
        per_layer = {}
        for layer, a in enumerate(attentions):
            grid = layout.to_map(a[b, :, -1].mean(0)[where[b]].double().numpy())
            per_layer[layer] = grid / grid.sum()
        out.append(per_layer)
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_maps_equal_eager_output_attentions(tiny_checkpoints, images, family):
    session = load_model(str(tiny_checkpoints[family]))
    assert session.family.name == family
    batch_images = [images[0], images[1] if family in ("qwen2_5_vl", "idefics3", "internvl") else images[0]]
    questions = QUESTIONS[:2]  # different lengths: the shorter prompt is left-padded
    results = BatchedGenerate(session).ask_batch(batch_images, questions, maps=MapSpec(layers="all"),
                                                 max_new_tokens=1)
    reference = _eager_maps(tiny_checkpoints[family], session, batch_images, questions)
    assert session.encode(batch_images, questions)["attention_mask"].min() == 0  # padding happened
    for result, expected in zip(results, reference):
        assert result.map.method == "attention" and set(result.map.maps) == set(expected)
        for layer, grid in expected.items():
            np.testing.assert_allclose(result.map.maps[layer], grid, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_engine_equals_the_batched_generate(tiny_checkpoints, images, family):
    session = load_model(str(tiny_checkpoints[family]))
    spec = MapSpec(layers="all")
    groups = [Group(image, QUESTIONS) for image in images]
    if session.family.image_sees_question:  # PaliGemma: the image attends to the question
        assert not engine_supports(spec, session.family)
        with pytest.raises(ValueError, match="attends to the question"):
            PrefixSharedEngine(session, spec)
        return
    reference = BatchedGenerate(session, spec).ask_groups(groups)
    answered = PrefixSharedEngine(session, spec, images_per_pass=3).ask_groups(groups)
    for ref_group, group in zip(reference, answered):
        for ref, got in zip(ref_group, group):
            assert got.answer == ref.answer
            assert abs(got.p_yes - ref.p_yes) <= 1e-4
            assert got.map.grid_shape == ref.map.grid_shape
            for layer in ref.map.maps:
                np.testing.assert_allclose(got.map.maps[layer], ref.map.maps[layer], atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["gradcam", "activation"])
def test_vision_maps_through_the_family_layer(tiny_checkpoints, images, family, method):
    session = load_model(str(tiny_checkpoints[family]))
    results = BatchedGenerate(session).ask_batch(images[:2], QUESTIONS[:2], max_new_tokens=1,
                                                 maps=MapSpec(method=method, fallback=False))
    index, _ = session.family.vision_layer(session.model)
    attention = BatchedGenerate(session).ask_batch(images[:2], QUESTIONS[:2], maps=MapSpec(layers="last:1"),
                                                   max_new_tokens=1)
    for result, reference in zip(results, attention):
        assert result.map.method == method and result.map.layers == (index,)
        assert result.map.grid_shape == reference.map.grid_shape  # pooled onto the token grid
        grid = result.map.maps[index]
        assert np.isfinite(grid).all() and abs(grid.sum() - 1) < 1e-9


@pytest.mark.integration
@pytest.mark.parametrize("family", FAMILIES)
def test_a_short_phrasing_study_runs_with_maps(tmp_path, family):
    from compute.demo.synth import SynthConfig, generate_dataset
    model = tmp_path / "model"
    assert main(["tiny-model", "--family", family, "--out", str(model)]) == 0
    manifest = generate_dataset(SynthConfig(n=2, seed=5, size=96, dicom_fraction=0.0), tmp_path / "synth",
                                progress=False)
    db = tmp_path / "s.duckdb"
    assert main(["run", "--model", str(model), "--manifest", str(manifest), "--study", "phrasing", "--variants", "3",
                 "--db", str(db), "--run", family, "--quiet"]) == 0
    with duckdb.connect(str(db), read_only=True) as con:
        status = con.execute("SELECT status, count(*) FROM predictions WHERE run_id = ? GROUP BY 1",
                             [family]).fetchall()
        maps = con.execute("SELECT count(*), min(method), max(method) FROM attention_maps WHERE run_id = ?",
                           [family]).fetchone()
        changes = con.execute("SELECT count(*) FROM attention_changes WHERE run_id = ?", [family]).fetchone()[0]
    assert dict(status).keys() == {"ok"} and dict(status)["ok"] > 2
    assert maps[0] > 0 and maps[1] == maps[2] == "attention"
    assert changes > 0


def test_a_border_wider_than_the_grid_moves_down_the_chain_and_says_why(tiny_checkpoints, images):
    session = load_model(str(tiny_checkpoints["llava"]))  # a 4x4 token grid
    (result,) = BatchedGenerate(session).ask_batch(images[:1], QUESTIONS[:1], maps=MapSpec(strip_border=2),
                                                   max_new_tokens=1)
    assert result.map.method == "gradcam"
    assert "cannot strip 2 border rings from a 4x4 grid" in result.map.fallback_reason
