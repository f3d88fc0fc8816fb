"""Attention knockout (compute.maps.methods.knockout) against a reference: full forwards (no cache) of
an eager model where the blocking is written into explicit 4D attention masks, handed to the model
(transformers 5.24 takes a 4D float mask as is, and on Gemma-3 a {layer type: mask} dict, which
also carries the bidirectional image block) and, in the window's layers, swapped in by a forward
pre-hook on the decoder layer: a code path that shares nothing with the module's attention hook or
its prefix cache. Also: the blank-image control, the randomisation check, the deletion test with
the method's own map, and every tiny family (prefix cache equal to full forwards)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from compute.demo.synth import render_case
from compute.demo.tiny import TINY_FAMILIES
from compute.maps.faithfulness import deletion_test, randomised_copy
from compute.maps.methods import knockout
from compute.maps.positions import query_positions
from compute.maps.spec import MapSpec
from compute.metrics import compare_maps
from compute.model.loading import load_model
from compute.model.yes_no import yes_no_log_odds
from tests.conftest import DEMO_MODEL, prompts_for

FAMILIES = ("gemma3", "paligemma", "qwen2_5_vl", "llava", "idefics3", "internvl")
TOL = 1e-4


def _case(seed: int, condition: str | None) -> Image.Image:
    case = render_case(np.random.default_rng(seed), 224, [condition] if condition else [])
    return Image.fromarray((np.clip(case.image, 0, 1) * 255).astype(np.uint8)).convert("RGB")


@pytest.fixture(scope="module")
def tiny(tiny_checkpoints):
    return tiny_checkpoints.__getitem__


def _reference(eager, prompts, window, block: int, picks, question: bool) -> dict[str, float]:
    """Log-odds of the intact prompt, of the regions `picks` (row-major blocks of the square token
    grid) and of every image token blocked, from one eager forward without cache whose rows carry
    explicit (rows, 1, L, L) additive masks; the blocked masks replace the intact one in `window`."""
    model, config = eager.model, eager.model.config
    ids = prompts.inputs["input_ids"][0]
    length, lowest = len(ids), torch.finfo(torch.float32).min
    assert prompts.inputs["attention_mask"].all()  # one sequence: no padding
    image = (ids == config.image_token_id).nonzero().flatten()
    side = math.isqrt(len(image))
    assert side * side == len(image)
    at, to = torch.arange(length)[:, None], torch.arange(length)[None]
    visible = to <= at
    if eager.family.bidirectional_image:  # Gemma-3: the image block attends to itself both ways
        is_image = ids == config.image_token_id
        visible = visible | (is_image[:, None] & is_image[None, :])
    text = config.get_text_config()
    assert length < (getattr(text, "sliding_window", None) or length + 1)  # one mask serves both layer types
    intact = torch.where(visible, 0.0, lowest)
    queries = torch.zeros(length, dtype=torch.bool)
    queries[-1] = True
    if question:
        queries[query_positions("question", prompts.offsets, prompts.texts, prompts.questions)[0]] = True
    grid = image.reshape(side, side)
    per_side = -(-side // block)
    blocked_keys = [grid[(k // per_side) * block:(k // per_side + 1) * block,
                         (k % per_side) * block:(k % per_side + 1) * block].flatten() for k in picks] + [image]
    rows = [intact]
    for keys in blocked_keys:
        mask = intact.clone()
        mask[queries.nonzero().flatten()[:, None], keys[None, :]] = lowest
        rows.append(mask)
    intact_rows = intact[None, None].expand(len(rows), 1, length, length)
    blocked_rows = torch.stack(rows)[:, None]
    fired = []

    def swap(module, args, kwargs):
        assert "attention_mask" in kwargs
        fired.append(module)
        return args, {**kwargs, "attention_mask": blocked_rows}

    layers = model.model.language_model.layers
    handles = [layers[i].register_forward_pre_hook(swap, with_kwargs=True) for i in window]
    mask = {kind: intact_rows for kind in set(text.layer_types)} if eager.family.name == "gemma3" else intact_rows
    try:
        with torch.no_grad():
            logits = model(input_ids=ids[None].expand(len(rows), -1),
                           pixel_values=prompts.inputs["pixel_values"].expand(len(rows), -1, -1, -1),
                           attention_mask=mask, logits_to_keep=1).logits
    finally:
        for h in handles:
            h.remove()
    assert len(fired) == len(window)
    odds = yes_no_log_odds(logits[:, -1], eager.yes_ids, eager.no_ids).tolist()
    return {"intact": odds[0], "regions": odds[1:-1], "all": odds[-1]}


@pytest.mark.parametrize("family, layers, question", [("gemma3", "1,2", False), ("gemma3", "all", True),
                                                      ("llava", "1", False), ("llava", "all", True)])
def test_knockout_equals_an_explicit_4d_mask_forward(demo_session, tiny, family, layers, question):
    path = DEMO_MODEL if family == "gemma3" else tiny("llava")
    session = demo_session if family == "gemma3" else load_model(str(path))
    eager = load_model(str(path), attn_implementation="eager")
    block, picks = (4, [0, 5, 9, 10, 15]) if family == "gemma3" else (2, [0, 1, 2, 3])
    prompts = prompts_for(session, [_case(5, "pleural_effusion")], ["Is there pleural effusion?"])
    spec = MapSpec(method="knockout", layers=layers, knockout_block=block, knockout_question=question)
    out = knockout.weights(session, prompts, spec)
    (details,) = out.details
    assert details["passes"].startswith("prefix cache")
    reference = _reference(eager, prompts, out.layers, block, picks, question)
    effects = np.abs(np.array(reference["regions"] + [reference["all"]]) - reference["intact"])
    assert effects.max() > 10 * TOL  # the blocking matters, so agreeing to TOL means something
    assert abs(reference["intact"] - session.yes_log_odds(prompts.inputs).item()) <= TOL  # the mask is the model's
    assert abs(details["log_odds"] - reference["intact"]) <= TOL
    assert abs(details["all_image_log_odds"] - reference["all"]) <= TOL
    np.testing.assert_allclose([details["region_log_odds"][k] for k in picks], reference["regions"], atol=TOL, rtol=0)
    sign = math.copysign(1, details["log_odds"])
    for k, delta in enumerate(details["deltas"]):
        assert delta == pytest.approx((details["log_odds"] - details["region_log_odds"][k]) * sign)
    (w,) = out.weights[out.layers[-1]]
    regions = knockout.regions(session.family.layouts(prompts.inputs, session.processor, [len(w)],
                                                      prompts.image_sizes)[0], block)
    assert sum(len(r) for r in regions) == len(w) and len(regions) == details["regions"]
    for r, delta in zip(regions, details["deltas"]):
        assert float(w[r].sum()) == pytest.approx(max(delta, 0.0), abs=1e-6)  # a region's mass is its support


def test_the_blank_image_control_on_the_demo_model(demo_session):
    """Cutting the image off from every later position leaves the language prior, the same on the
    image and on the blank. On pneumothorax the answer rests on the image and hardly on a blank;
    the demo model reads uniform gray as an effusion (it answers yes on the blank), so there the
    two figures are only checked to be finite and reported."""
    questions = ["Is there pneumothorax?", "Is there pneumothorax?", "Is there pleural effusion?"]
    images = [_case(5, "pneumothorax"), _case(8, "pneumothorax"), _case(5, "pleural_effusion")]
    out = knockout.weights(demo_session, prompts_for(demo_session, images, questions), MapSpec(method="knockout"))
    for d in out.details:
        figures = [d[k] for k in ("image_reliance", "blank_image_reliance", "image_reliance_all_text",
                                  "blank_image_reliance_all_text")]
        assert np.isfinite(figures).all()
        assert abs(d["prior_log_odds"] - d["blank_prior_log_odds"]) <= TOL
    for d in out.details[:2]:
        assert d["image_reliance"] > 4 * abs(d["blank_image_reliance"])


def test_randomisation_and_deletion_with_the_knockout_map(demo_session):
    image, question = _case(5, "pleural_effusion"), "Is there pleural effusion?"
    prompts = prompts_for(demo_session, [image], [question])
    spec = MapSpec(method="knockout")
    layout = demo_session.family.layouts(prompts.inputs, demo_session.processor, [256], prompts.image_sizes)[0]

    def grid() -> np.ndarray:
        out = knockout.weights(demo_session, prompts, spec)
        return layout.to_map(out.weights[out.layers[-1]][0].numpy())

    trained = grid()
    assert trained.sum() > 0
    with demo_session.lock:
        original = demo_session.model
        demo_session.model = randomised_copy(original)
        try:
            randomised = grid()
        finally:
            demo_session.model = original
    assert np.isfinite(randomised).all() and (randomised >= 0).all()
    if randomised.sum() > 0:  # an all-zero map differs from the trained one anyway
        comparison = compare_maps(trained, randomised)
        assert comparison["js_divergence"] > 0.05 and not comparison["pearson"] > 0.9
    result = deletion_test(demo_session, image, question, trained, fraction=0.1, n_random=2)
    assert np.isfinite([result.log_odds, result.deletion_delta, result.random_delta]).all()
    assert result.faithfulness_ratio >= 0


@pytest.mark.parametrize("family", FAMILIES)
def test_every_tiny_family(tiny, family):
    session = load_model(str(tiny(family)))
    rng = np.random.default_rng(3)
    sizes = ((64, 64), (60, 120)) if family in ("qwen2_5_vl", "idefics3", "internvl") else ((64, 64), (64, 64))
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]
    prompts = prompts_for(session, images, ["Is there a pleural effusion?", "Edema?"])
    spec = MapSpec(method="knockout", knockout_block=2, knockout_question=True)
    out = knockout.weights(session, prompts, spec)
    counts = session.family.image_positions(prompts.inputs["input_ids"], session.model.config).sum(1).tolist()
    layouts = session.family.layouts(prompts.inputs, session.processor, counts, prompts.image_sizes)
    for w, d, count, layout in zip(out.weights[out.layers[-1]], out.details, counts, layouts):
        assert w.shape == (count,) and layout.n_tokens == count
        assert torch.isfinite(w).all() and (w >= 0).all()
        assert d["regions"] == len(knockout.regions(layout, 2)) and len(d["deltas"]) == d["regions"]
        assert np.isfinite([d["log_odds"], d["image_reliance"], d["blank_image_reliance"]]).all()
        assert d["passes"].startswith("full forward" if session.family.image_sees_question else "prefix cache")
        assert layout.to_map(w.numpy()).shape == layout.grid
    if not session.family.image_sees_question:  # the shared prefix is exact: it equals full forwards
        full = knockout.weights(session, prompts, spec, shared_prefix=False)
        keys = ("log_odds", "all_image_log_odds", "prior_log_odds", "blank_log_odds", "blank_all_image_log_odds")
        for d, f in zip(out.details, full.details):
            assert f["passes"].startswith("full forward")
            np.testing.assert_allclose([d[k] for k in keys] + d["region_log_odds"],
                                       [f[k] for k in keys] + f["region_log_odds"], atol=TOL, rtol=0)


def test_every_tiny_family_is_tested():
    assert set(FAMILIES) == set(TINY_FAMILIES)
