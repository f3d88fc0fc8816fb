"""Attention maps read by row capture equal eager `output_attentions` (fp32, padded batches
included); term tokens are found through offsets; Grad-CAM agrees with captum's
LayerGradCam; the fallback chain records why it moved on."""

import types

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from PIL import Image
from torch import nn

from compute.maps import LayerSpecError, MapSpec, TermNotFoundError, grid_shape, parse_layers, to_grid
from compute.maps.capture import capture_rows

from compute.model.loading import load_model
from compute.model.prompts import build_messages
from compute.demo.synth import render_case
from compute.maps import map_batch
from compute.answering import ask
from compute.answering import BatchedGenerate

MODEL = "models/demo"
QUESTIONS = ["Is there pleural effusion?", "Is there a pneumothorax in the left upper zone?",
             "Does the image show an enlarged heart?"]


@pytest.fixture(scope="module")
def session(demo_session):
    return demo_session  # the shared one (conftest.py)


@pytest.fixture(scope="module")
def eager():
    # A copy of its own: another attention implementation than the shared demo_session's sdpa.
    return load_model(MODEL, attn_implementation="eager")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(11)
    cases = [render_case(rng, 256, conditions) for conditions in (["pleural_effusion"], ["pneumothorax"], [])]
    return [Image.fromarray((np.clip(c.image, 0, 1) * 255).astype(np.uint8)) for c in cases]


def _inputs(session, images, questions):
    conversations = [build_messages(i, q, session.prompt) for i, q in zip(images, questions)]
    return session.processor.apply_chat_template(conversations, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True, return_tensors="pt",
                                                 processor_kwargs={"padding": True})


def _eager_grids(eager, inputs, rows_per_seq, layer, pool="mean"):
    """Reference: eager attentions of `layer`, heads averaged, rows pooled, image tokens renormalised."""
    with torch.no_grad():
        attentions = eager.model(**inputs, output_attentions=True).attentions
    image = inputs["input_ids"] == eager.model.config.image_token_id
    grids = []
    for b, rows in enumerate(rows_per_seq):
        heads = attentions[layer][b].mean(0)[rows]  # (rows, kv)
        row = heads.mean(0) if pool == "mean" else heads.amax(0)
        grids.append(to_grid(row[image[b]].numpy(), (16, 16)))
    return grids


def test_captured_rows_equal_eager_with_padding(session, eager, images):
    inputs = _inputs(session, images, QUESTIONS)
    assert (inputs["attention_mask"] == 0).any(), "the batch must contain left padding"
    length = inputs["input_ids"].shape[1]
    rows = torch.tensor([[length - 1, length - 4, 3]] * len(QUESTIONS))
    with torch.no_grad(), capture_rows(session.model, (0, 1, 2, 3), rows, length) as capture:
        session.model(**inputs)
    with torch.no_grad():
        reference = eager.model(**inputs, output_attentions=True).attentions
    for layer, weights in capture.weights.items():
        expected = reference[layer][:, :, rows[0]]  # (batch, heads, R, kv)
        assert weights.shape == expected.shape
        assert (weights - expected).abs().max() <= 1e-5
    assert session.model.config.get_text_config()._attn_implementation == "sdpa"  # restored after the block


def test_answer_maps_equal_eager_per_layer(session, eager, images):
    results = BatchedGenerate(session).ask_batch(images, QUESTIONS, maps=MapSpec(layers="all"), max_new_tokens=2)
    inputs = _inputs(session, images, QUESTIONS)
    last = inputs["input_ids"].shape[1] - 1
    for layer in range(4):
        expected = _eager_grids(eager, inputs, [[last]] * 3, layer)
        for r, e in zip(results, expected):
            assert r.grid_shape == (16, 16) and r.maps[layer].shape == (16, 16)
            assert abs(r.maps[layer].sum() - 1) < 1e-9
            assert np.abs(r.maps[layer] - e).max() <= 1e-5


def test_question_and_term_maps_equal_eager(session, eager, images):
    inputs = _inputs(session, images, QUESTIONS)
    questions = BatchedGenerate(session).ask_batch(images, QUESTIONS, maps=MapSpec(layers="2", query="question"), max_new_tokens=2)
    tokenizer = session.processor.tokenizer
    for r, q, ids in zip(questions, QUESTIONS, inputs["input_ids"]):
        assert tokenizer.decode(ids[r.map.query_positions]).strip() == q
    expected = _eager_grids(eager, inputs, [r.map.query_positions for r in questions], 2)
    for r, e in zip(questions, expected):
        assert np.abs(r.maps[2] - e).max() <= 1e-5

    term = ask(session, images[0], "Is there pleural effusion?", method="token", term="Pleural Effusion", layers="3")
    ids = _inputs(session, images[:1], ["Is there pleural effusion?"])["input_ids"][0]
    assert tokenizer.decode(ids[term.map.query_positions]).strip() == "pleural effusion"
    assert len(term.map.query_positions) >= 2, "a multi-token term maps to all of its tokens"
    single = _inputs(session, images[:1], ["Is there pleural effusion?"])
    (expected,) = _eager_grids(eager, single, [term.map.query_positions], 3, pool="max")
    assert np.abs(term.maps[3] - expected).max() <= 1e-5
    assert term.map.method == "token" and term.map.term == "Pleural Effusion"


def test_generated_token_maps_equal_eager(session, eager, images):
    (r,) = BatchedGenerate(session).ask_batch(images[:1], QUESTIONS[:1], maps=MapSpec(layers="1", query="generated"), max_new_tokens=3)
    conversations = [build_messages(images[0], QUESTIONS[0], session.prompt)]
    prompt = session.processor.apply_chat_template(conversations, add_generation_prompt=True, tokenize=True,
                                                   return_dict=True, return_tensors="pt")
    answer = session.processor.tokenizer.encode(r.text, add_special_tokens=False)
    full = dict(prompt)
    full["input_ids"] = torch.cat([prompt["input_ids"], torch.tensor([answer])], 1)
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    full["token_type_ids"] = nn.functional.pad(prompt["token_type_ids"], (0, len(answer)))
    length = prompt["input_ids"].shape[1]
    assert r.map.query_positions == list(range(length, length + len(answer)))
    (expected,) = _eager_grids(eager, full, [r.map.query_positions], 1)
    assert np.abs(r.maps[1] - expected).max() <= 1e-5


def test_term_missing_from_question_is_a_clear_error(session, images):
    with pytest.raises(TermNotFoundError, match="'pneumothorax' does not occur in 'Is there pleural effusion\\?'"):
        ask(session, images[0], "Is there pleural effusion?", method="token", term="pneumothorax")
    with pytest.raises(ValueError, match="needs term"):
        MapSpec(method="token")


def test_layer_specs():
    kinds = ["sliding_attention"] * 5 + ["full_attention"]
    kinds = kinds * 2
    assert parse_layers("all", kinds) == tuple(range(12))
    assert parse_layers("last:4", kinds) == (8, 9, 10, 11)
    assert parse_layers("full", kinds) == (5, 11)
    assert parse_layers("2,7,-1", kinds) == (2, 7, 11)
    for bad, message in [("12", "out of range"), ("last:0", "between 1 and 12"), ("a,b", "comma-separated"),
                         ("", "no layer")]:
        with pytest.raises(LayerSpecError, match=message):
            parse_layers(bad, kinds)


def test_grid_shapes_and_border_stripping():
    assert grid_shape(256) == (16, 16)
    assert grid_shape(4096) == (64, 64)
    assert grid_shape(200, aspect=2.0) == (10, 20)  # wide image: more columns
    assert grid_shape(200, aspect=0.5) == (20, 10)
    grid = to_grid(np.ones(16), (4, 4), strip_border=1)
    assert grid.sum() == pytest.approx(1) and grid[0].sum() == 0 and grid[1, 1] == pytest.approx(0.25)
    assert to_grid(np.ones(16), (4, 4))[0, 0] == pytest.approx(1 / 16)  # off by default
    with pytest.raises(ValueError, match="sums to zero"):
        to_grid(np.zeros(4), (2, 2))


class _PatchGridView(nn.Module):
    """(batch, patches, hidden) -> (batch, hidden, side, side): the layout captum's LayerGradCam expects."""

    def forward(self, x):
        side = int(x.shape[1] ** 0.5)
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], side, side)


def test_gradcam_agrees_with_captum(session, images):
    (r,) = BatchedGenerate(session).ask_batch(images[:1], QUESTIONS[:1], maps=MapSpec(method="gradcam", gradcam_full_resolution=True),
                             max_new_tokens=1)
    assert r.map.method == "gradcam" and r.map.fallback_reason is None
    inputs = _inputs(session, images[:1], QUESTIONS[:1])
    model = session.model
    index, layer = session.family.vision_layer(model)
    assert r.map.layers == (index,)
    view = _PatchGridView()
    original = layer.forward

    def viewed(self, *args, **kwargs):  # route the layer output through the view, unchanged in value
        out = original(*args, **kwargs)
        hidden = out[0] if isinstance(out, tuple) else out
        grid = view(hidden)
        back = grid.flatten(2).transpose(1, 2)
        return (back, *out[1:]) if isinstance(out, tuple) else back

    def yes_minus_no(pixel_values):
        logits = model(**{**inputs, "pixel_values": pixel_values}).logits[:, -1].float()
        return logits[:, session.yes_ids].logsumexp(-1) - logits[:, session.no_ids].logsumexp(-1)

    layer.forward = types.MethodType(viewed, layer)
    try:
        reference = LayerGradCam(yes_minus_no, view).attribute(inputs["pixel_values"], relu_attributions=True)
    finally:
        layer.forward = original
    reference = reference[0, 0].detach().numpy()  # (side, side)
    assert reference.sum() > 0
    np.testing.assert_allclose(r.maps[index], reference / reference.sum(), atol=1e-6)


def test_fallback_to_gradcam_when_attention_cannot_be_read(images):
    """A model whose decoder computes attention inline (as remote-code models often do)
    never calls transformers' AttentionInterface: the chain falls back and says why."""
    custom = load_model(MODEL)  # a copy of its own, not demo_session: its attention layers are patched for good
    for layer in custom.model.model.language_model.layers:
        attention = layer.self_attn
        original = attention.forward

        def inline(self, hidden_states, position_embeddings=None, attention_mask=None, _original=original, **kw):
            kw.pop("output_attentions", None)
            previous = self.config._attn_implementation_internal
            self.config._attn_implementation_internal = "eager"
            try:
                return _original(hidden_states, position_embeddings, attention_mask, **kw)
            finally:
                self.config._attn_implementation_internal = previous

        attention.forward = types.MethodType(inline, attention)
    (r,) = BatchedGenerate(custom).ask_batch(images[:1], QUESTIONS[:1], maps=MapSpec(layers="all"), max_new_tokens=1)
    assert r.map.method == "gradcam" and r.map.requested_method == "attention"
    assert "did not route layers [0, 1, 2, 3]" in r.map.fallback_reason
    assert r.maps[r.map.layers[0]].sum() == pytest.approx(1)


def test_gradcam_on_a_chosen_token(session, images):
    (yes_map,) = map_batch(session, images[:1], QUESTIONS[:1], MapSpec(method="gradcam", gradcam_token="Yes",
                                                                      fallback=False))
    (no_map,) = map_batch(session, images[:1], QUESTIONS[:1], MapSpec(method="gradcam", gradcam_token="No",
                                                                     fallback=False))
    assert yes_map.method == no_map.method == "gradcam"
    assert not np.allclose(yes_map.mean, no_map.mean)
    with pytest.raises(ValueError, match="give a single token"):
        map_batch(session, images[:1], QUESTIONS[:1], MapSpec(method="gradcam", gradcam_token="pleural effusion"))
