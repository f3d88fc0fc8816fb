"""Relative attention: the answer's attention onto the image under the question divided by the
attention under a generic prompt, checked against eager output_attentions of both prompts; the
generic pass is shared by an image's questions; randomisation and deletion run on its maps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from compute.demo.synth import render_case
from compute.maps import MapSpec
from compute.maps.extract import map_batch
from compute.maps.faithfulness import deletion_test, randomisation_check
from compute.maps.methods.relative import EPSILON
from compute.model.loading import load_model

QUESTIONS = ["Is there pleural effusion?", "Is there evidence of cardiomegaly on this film?"]


@pytest.fixture
def session(demo_session):
    return demo_session


@pytest.fixture(scope="module")
def image():
    case = render_case(np.random.default_rng(4), 224, ["pleural_effusion"])
    return Image.fromarray((np.clip(case.image, 0, 1) * 255).astype(np.uint8))


def _eager_rows(eager, session, images, questions, prompt=None):
    inputs = session.encode(images, questions, prompt=prompt)
    with torch.no_grad():
        attentions = eager.model(**inputs, output_attentions=True).attentions
    where = session.family.image_positions(inputs["input_ids"], session.model.config)
    return [{layer: a[b, :, -1].mean(0)[where[b]].double().numpy() for layer, a in enumerate(attentions)}
            for b in range(len(questions))]


def test_relative_equals_the_ratio_of_eager_attentions(session, image):
    eager = load_model("models/demo", attn_implementation="eager")
    results = map_batch(session, [image, image], QUESTIONS, MapSpec(method="relative", layers="all"))
    asked = _eager_rows(eager, session, [image, image], QUESTIONS)
    (generic,) = _eager_rows(eager, session, [image], ["Describe the image."], replace(session.prompt, instruction=""))
    for result, rows in zip(results, asked):
        assert result.method == "relative" and result.fallback_reason is None
        assert result.details["forward_passes"] == 1.5  # the generic pass is shared by the two questions
        for layer, row in rows.items():
            ratio = row / (generic[layer] + EPSILON * generic[layer].mean())
            np.testing.assert_allclose(result.maps[layer], (ratio / ratio.sum()).reshape(16, 16), atol=1e-5, rtol=0)


def test_relative_differs_from_raw_attention_and_changes_with_the_generic_prompt(session, image):
    raw = map_batch(session, [image], QUESTIONS[:1], MapSpec(layers="all"))[0].mean
    relative = map_batch(session, [image], QUESTIONS[:1], MapSpec(method="relative", layers="all"))[0].mean
    other = map_batch(session, [image], QUESTIONS[:1],
                      MapSpec(method="relative", layers="all", relative_prompt="What is shown?"))[0].mean
    assert np.abs(raw - relative).max() > 1e-4 and np.abs(relative - other).max() > 1e-6


def test_relative_maps_pass_randomisation_and_deletion(session, image):
    spec = MapSpec(method="relative", layers="all")
    check = randomisation_check(session, image, QUESTIONS[0], spec)
    assert check["pearson"] < 0.9, check
    (result,) = map_batch(session, [image], QUESTIONS[:1], spec)
    deletion = deletion_test(session, image, QUESTIONS[0], result.mean)
    assert np.isfinite([deletion.log_odds, deletion.deletion_delta, deletion.random_delta]).all()
