"""Attention sinks: an image token whose hidden state is planted with a norm far above the others
is found as a sink, the raw map's mass on it is reported, and masking zeroes its cell and
renormalises the rest; with no sink planted, none is found at a high factor."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from compute.maps import MapSpec
from compute.maps.extract import map_batch
from compute.maps.sinks import decoder_layers, sink_tokens

QUESTION = "Is there pleural effusion?"
SINK = 37  # the image token planted as a sink (row 2, column 5 of the 16 x 16 grid)


@pytest.fixture
def session(demo_session):
    return demo_session


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(8)
    return Image.fromarray(rng.integers(40, 200, (224, 224, 3), dtype=np.uint8))


@contextmanager
def planted_sink(session, layer: int, scale: float = 60.0):
    """Scale one image token's hidden state entering `layer` (as massive activations do)."""
    image_token = session.model.config.image_token_id

    def hook(_module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        ids = getattr(hook, "ids", None)
        if ids is None or hidden.shape[1] != ids.shape[1]:
            return None
        where = (ids == image_token).nonzero()
        rows = where[where[:, 0] == 0][:, 1]
        hidden = hidden.clone()
        hidden[0, rows[SINK]] *= scale
        return ((hidden, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": hidden})

    handle = decoder_layers(session.model)[layer].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield hook
    finally:
        handle.remove()


def test_sink_tokens_by_norm():
    import torch
    norms = torch.tensor([1.0, 1.1, 0.9, 12.0, 1.0])
    assert sink_tokens(norms, 5.0).tolist() == [False, False, False, True, False]
    assert not sink_tokens(norms, 20.0).any()


def test_a_planted_sink_is_found_reported_and_masked(session, image):
    layer = session.model.config.get_text_config().num_hidden_layers - 1
    with planted_sink(session, layer) as hook:
        hook.ids = session.encode([image], [QUESTION])["input_ids"]
        (kept,) = map_batch(session, [image], [QUESTION], MapSpec(layers=f"{layer}", sink_factor=5.0))
        (masked,) = map_batch(session, [image], [QUESTION], MapSpec(layers=f"{layer}", sink_factor=5.0,
                                                                    mask_sinks=True))
        (plain,) = map_batch(session, [image], [QUESTION], MapSpec(layers=f"{layer}"))
    assert kept.details["sink_tokens"] == [SINK] and kept.details["sink_cells"] == [[SINK // 16, SINK % 16]]
    grid = plain.maps[layer]
    assert kept.details["sink_mass"] == pytest.approx(grid.ravel()[SINK], rel=1e-6)
    np.testing.assert_allclose(kept.maps[layer], grid, atol=1e-12)  # reported, not masked
    expected = grid.copy().ravel()
    expected[SINK] = 0
    np.testing.assert_allclose(masked.maps[layer].ravel(), expected / expected.sum(), atol=1e-9)
    assert masked.details["sinks_masked"] is True


def test_no_sink_without_one_planted(session, image):
    (result,) = map_batch(session, [image], [QUESTION], MapSpec(layers="all", sink_factor=8.0))
    assert result.details["sink_tokens"] == [] and result.details["sink_mass"] == 0.0


def test_sink_detection_keeps_the_batched_answerer(session):
    from compute.answering import engine_supports
    assert not engine_supports(MapSpec(sink_factor=5.0)) and engine_supports(MapSpec())
