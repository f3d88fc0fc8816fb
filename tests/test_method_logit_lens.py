"""The logit lens on image tokens (compute.maps.methods.logit_lens) against a manual projection: the decoder's
hidden states from output_hidden_states, the final RMSNorm written out (Gemma-3: (1 + weight) scaling; Llama:
weight scaling), the head as a matmul with its weight, a float64 softmax; on the trained demo model (Gemma-3)
and on the tiny LLaVA. transformers 5.24 returns the LAST hidden state already normed, so the last layer is
projected without the norm (and checked against the model's own logits). Then: the randomisation check, the
deletion test with the method's map, and every tiny family against its own output_hidden_states."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from compute.demo.tiny import TINY_FAMILIES
from compute.maps.faithfulness import deletion_test, randomised_copy
from compute.maps.methods import logit_lens
from compute.maps.spec import MapSpec
from compute.model.loading import load_model
from tests.conftest import prompts_for

QUESTIONS = ["Is there pleural effusion?", "Is there evidence of cardiomegaly in this chest film?"]
TERM = "effusion"




def rms_norm(x, weight, eps, gemma):
    x = x.double()
    scaled = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return scaled * (1 + weight.double()) if gemma else weight.double() * scaled


@torch.no_grad()
def manual_maps(session, prompts, ids, gemma):
    """{layer: [per sequence (image tokens,) P(term)]} by hand; also checks that the last hidden state is the
    normed one (the head on it gives the model's logits)."""
    model = session.model
    text = model.config.get_text_config()
    assert getattr(text, "final_logit_softcapping", None) is None
    output = model(**prompts.inputs, output_hidden_states=True)
    states = output.hidden_states
    assert len(states) == text.num_hidden_layers + 1
    head = model.lm_head.weight.double()  # (vocab, hidden)
    if gemma:
        assert model.lm_head.weight is model.get_input_embeddings().weight  # tied
    norm = model.model.language_model.norm.weight
    np.testing.assert_allclose((states[-1][:, -1].double() @ head.T).numpy(), output.logits[:, -1].double().numpy(),
                               atol=1e-4, rtol=0)  # the last entry is already normed
    where = session.family.image_positions(prompts.inputs["input_ids"], model.config)
    maps = {}
    for layer in range(text.num_hidden_layers):
        h = states[layer + 1]
        if layer < text.num_hidden_layers - 1:
            h = rms_norm(h, norm, text.rms_norm_eps, gemma)
        probs = torch.softmax(h.double() @ head.T, dim=-1)[..., ids].sum(-1)  # (batch, seq)
        maps[layer] = [probs[b][where[b]].numpy() for b in range(len(where))]
    return maps


def expected_ids(tokenizer):
    ids = []
    for text in (" " + TERM, TERM):
        ids += [i for i in tokenizer.encode(text, add_special_tokens=False) if i not in ids]
    return ids


@pytest.mark.parametrize("model", ["demo", "llava"])
def test_matches_the_manual_projection(demo_session, tiny_checkpoints, xray, textures, model):
    if model == "demo":
        session, images, gemma = demo_session, [xray, xray], True
    else:
        session, images, gemma = load_model(str(tiny_checkpoints["llava"])), textures, False
    prompts = prompts_for(session, images, QUESTIONS)
    assert prompts.inputs["attention_mask"].min() == 0  # padded batch
    ids = expected_ids(session.processor.tokenizer)
    out = logit_lens.weights(session, prompts, MapSpec(layers="all", term=f" {TERM} "))
    n = session.model.config.get_text_config().num_hidden_layers
    assert out.layers == tuple(range(n)) and set(out.weights) == set(range(n))
    assert out.details == [{"term": TERM, "term_token_ids": ids}] * 2
    for layer, expected in manual_maps(session, prompts, ids, gemma).items():
        for got, want in zip(out.weights[layer], expected):
            assert got.shape == want.shape
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-9)
            np.testing.assert_allclose(got.numpy() / got.sum().item(), want / want.sum(), atol=1e-5, rtol=0)


def test_layers_and_term_handling(demo_session, xray):
    prompts = prompts_for(demo_session, [xray], QUESTIONS[:1])
    out = logit_lens.weights(demo_session, prompts, MapSpec(layers="last:2", term=TERM))
    assert out.layers == (2, 3) and set(out.weights) == {2, 3}
    for term in (None, "  "):
        with pytest.raises(ValueError, match="needs term="):
            logit_lens.weights(demo_session, prompts, MapSpec(term=term))
    assert logit_lens.term_token_ids(demo_session.processor.tokenizer, "effusion") == [619, 394, 618]


def test_randomised_model_and_deletion(demo_session, xray):
    question = QUESTIONS[0]
    prompts = prompts_for(demo_session, [xray], [question])
    spec = MapSpec(layers="all", term=TERM)
    trained = logit_lens.weights(demo_session, prompts, spec).weights
    randomised = copy.copy(demo_session)  # the shared session keeps its model
    randomised.model = randomised_copy(demo_session.model)
    other = logit_lens.weights(randomised, prompts, spec).weights
    mean, other_mean = (torch.stack([w[0] for w in m.values()]).mean(0).numpy() for m in (trained, other))
    assert np.isfinite(other_mean).all() and other_mean.sum() > 0
    pearson = np.corrcoef(mean, other_mean)[0, 1]
    assert pearson < 0.9, pearson
    (layout,) = demo_session.family.layouts(prompts.inputs, demo_session.processor, [len(mean)], prompts.image_sizes)
    result = deletion_test(demo_session, xray, question, layout.to_map(mean), fraction=0.1, n_random=3)
    figures = [result.log_odds, result.deletion_delta, result.random_delta, result.faithfulness_ratio]
    assert np.isfinite(figures).all(), result


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_every_family(tiny_checkpoints, textures, family, monkeypatch):
    """Finite, non-negative maps of the right length, equal to the family's output_hidden_states projected
    through the final norm (not for the last, already normed, entry), the head and the soft-capping. The
    decoder is found by get_decoder, and by walking the modules where get_decoder does not give it."""
    session = load_model(str(tiny_checkpoints[family]))
    model = session.model
    prompts = prompts_for(session, textures, QUESTIONS)
    out = logit_lens.weights(session, prompts, MapSpec(layers="all", term=TERM))
    layers, norm = logit_lens.decoder_stack(model)
    n = model.config.get_text_config().num_hidden_layers
    assert len(layers) == n and out.layers == tuple(range(n))
    monkeypatch.setattr(model, "get_decoder", lambda: model)  # no `layers` of its own: the walk finds them
    assert logit_lens.decoder_stack(model) == (layers, norm)
    monkeypatch.undo()
    where = session.family.image_positions(prompts.inputs["input_ids"], model.config)
    with torch.no_grad():
        states = model(**prompts.inputs, output_hidden_states=True).hidden_states
        cap = logit_lens.final_softcap(model)
        assert (cap is not None) == (family == "paligemma")  # Gemma-2's decoder
        for layer in range(n):
            h = states[layer + 1] if layer == n - 1 else norm(states[layer + 1])
            logits = model.get_output_embeddings()(h).double()
            logits = torch.tanh(logits / cap) * cap if cap else logits
            probs = torch.softmax(logits, -1)[..., out.details[0]["term_token_ids"]].sum(-1)
            assert [len(w) for w in out.weights[layer]] == where.sum(1).tolist()
            for b, w in enumerate(out.weights[layer]):
                assert torch.isfinite(w).all() and (w >= 0).all() and w.sum() > 0
                np.testing.assert_allclose(w.numpy(), probs[b][where[b]].numpy(), rtol=1e-5, atol=1e-9)
