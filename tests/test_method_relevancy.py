"""Relevancy propagation (compute.maps.methods.relevancy) against a straightforward float64 reference: full
R = I, R ← R + Ā R over every layer per sequence, on a separately loaded eager model; on the trained demo
model (Gemma-3) and on a 2-layer tiny LLaVA. Then: the map depends on the answer's target, it does not survive
weight randomisation, the deletion test runs with it, and it works on every tiny family."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from compute.demo.tiny import TINY_FAMILIES
from compute.maps.faithfulness import deletion_test, randomised_copy
from compute.maps.methods import relevancy
from compute.maps.spec import MapSpec
from compute.model.loading import load_model
from tests.conftest import DEMO_MODEL, prompts_for

QUESTIONS = ["Is there pleural effusion?", "Is there evidence of cardiomegaly in this chest film?"]




def reference_rows(eager, session, prompts, target_ids=None):
    """The map by the definition, in float64 from `eager`, a separately loaded eager copy: per sequence, over its
    unpadded positions only, R = I and R = R + Ā R for every layer in order; the last row at the image columns.
    Target: yes-minus-no log-odds (log-sum-exp over the spellings), or the logit of `target_ids`' one token."""
    inputs = prompts.inputs
    with torch.enable_grad():
        output = eager.model(**inputs, output_attentions=True)
        logits = output.logits[:, -1].double()
        if target_ids is None:
            target = logits[:, session.yes_ids].logsumexp(-1) - logits[:, session.no_ids].logsumexp(-1)
        else:
            target = logits[:, target_ids[0]]
        grads = torch.autograd.grad(target.sum(), output.attentions)
    where = session.family.image_positions(inputs["input_ids"], session.model.config)
    rows = []
    for b in range(len(where)):
        valid = inputs["attention_mask"][b].bool()
        n = int(valid.sum())
        r = torch.eye(n, dtype=torch.float64)
        for a, g in zip(output.attentions, grads):
            full = (g[b].double() * a[b].detach().double()).clamp(min=0).mean(0)
            r = r + full[valid][:, valid] @ r
        rows.append(r[-1][where[b][valid]].numpy())
    return rows


def normalised(x):
    x = np.asarray(x, dtype=np.float64)
    return x / x.sum()


def single_token(session, ids):
    tokenizer = session.processor.tokenizer
    for i in ids:
        text = tokenizer.decode([i])
        if tokenizer.encode(text, add_special_tokens=False) == [i]:
            return text, i
    raise AssertionError("no spelling encodes as one token")


@pytest.mark.parametrize("model", ["demo", "llava"])
def test_matches_the_full_matrix_reference(demo_session, tiny_checkpoints, xray, textures, model):
    if model == "demo":
        session, path, images = demo_session, DEMO_MODEL, [xray, xray]
    else:
        path = tiny_checkpoints["llava"]
        session, images = load_model(str(path)), textures
        assert session.model.config.get_text_config().num_hidden_layers == 2
    prompts = prompts_for(session, images, QUESTIONS)
    assert prompts.inputs["attention_mask"].min() == 0  # the shorter prompt is left-padded
    before = session.model.config.get_text_config()._attn_implementation
    out = relevancy.weights(session, prompts, MapSpec(method="relevancy"))
    assert session.model.config.get_text_config()._attn_implementation == before  # restored
    layers = session.model.config.get_text_config().num_hidden_layers
    assert set(out.weights) == {layers - 1} and out.layers == tuple(range(layers))
    assert out.details == [{"target": "yes-no log-odds", "rule": "chefer2021"}] * 2
    eager = load_model(str(path), attn_implementation="eager")
    for got, expected in zip(out.weights[layers - 1], reference_rows(eager, session, prompts)):
        assert got.shape == expected.shape and (got >= 0).all()
        np.testing.assert_allclose(normalised(got), normalised(expected), atol=1e-5, rtol=0)
    text, token = single_token(session, session.no_ids)
    out = relevancy.weights(session, prompts, MapSpec(method="relevancy", gradcam_token=text))
    assert out.details[0]["target"] == text
    for got, expected in zip(out.weights[layers - 1], reference_rows(eager, session, prompts, [token])):
        np.testing.assert_allclose(normalised(got), normalised(expected), atol=1e-5, rtol=0)


def test_padding_gets_no_relevance():
    torch.manual_seed(0)
    seq, valid = 6, torch.tensor([[False, False, True, True, True, True], [True] * 6])
    attentions = [torch.rand(2, 3, seq, seq) for _ in range(2)]
    grads = [torch.randn(2, 3, seq, seq) for _ in range(2)]
    row = relevancy.answer_row(attentions, grads, valid)
    assert (row[0, :2] == 0).all() and (row[0, 2:] > 0).any() and row[1, -1] >= 1


def test_the_map_is_answer_specific(demo_session, xray):
    prompts = prompts_for(demo_session, [xray], QUESTIONS[:1])
    maps = {}
    for name, ids in (("yes", demo_session.yes_ids), ("no", demo_session.no_ids)):
        text, _ = single_token(demo_session, ids)
        (w,) = relevancy.weights(demo_session, prompts, MapSpec(gradcam_token=text)).weights[3]
        maps[name] = normalised(w)
    assert np.abs(maps["yes"] - maps["no"]).max() > 1e-3


def test_randomised_model_and_deletion(demo_session, xray):
    question = QUESTIONS[0]
    prompts = prompts_for(demo_session, [xray], [question])
    (trained,) = relevancy.weights(demo_session, prompts, MapSpec()).weights[3]
    randomised = copy.copy(demo_session)  # the shared session keeps its model
    randomised.model = randomised_copy(demo_session.model)
    (other,) = relevancy.weights(randomised, prompts, MapSpec()).weights[3]
    assert torch.isfinite(other).all() and other.sum() > 0
    pearson = np.corrcoef(trained.numpy(), other.numpy())[0, 1]
    assert pearson < 0.9, pearson
    (layout,) = demo_session.family.layouts(prompts.inputs, demo_session.processor, [len(trained)],
                                            prompts.image_sizes)
    result = deletion_test(demo_session, xray, question, layout.to_map(trained.numpy()), fraction=0.1, n_random=3)
    figures = [result.log_odds, result.deletion_delta, result.random_delta, result.faithfulness_ratio]
    assert np.isfinite(figures).all(), result


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_every_family(tiny_checkpoints, textures, family):
    session = load_model(str(tiny_checkpoints[family]))
    prompts = prompts_for(session, textures, QUESTIONS)
    out = relevancy.weights(session, prompts, MapSpec(method="relevancy"))
    counts = session.family.image_positions(prompts.inputs["input_ids"], session.model.config).sum(1).tolist()
    (key,) = out.weights
    assert [len(w) for w in out.weights[key]] == counts and len(out.details) == 2
    for w in out.weights[key]:
        assert torch.isfinite(w).all() and (w >= 0).all() and w.sum() > 0
