"""MedGemma 4B's real dimensions with two decoder layers and one vision layer: the
session must handle 896 px images, 64x64 patches pooled 4x4 to a 16x16 grid, grouped-
query attention with head_dim 256 and a 2560-wide decoder, without special cases."""

import numpy as np
import pytest
from PIL import Image

from compute.demo.model import DemoModelConfig, build_demo_model
from compute.model.loading import load_model
from compute.answering import BatchedGenerate

pytestmark = pytest.mark.slow  # MedGemma-sized layers on 896 px images: seconds per forward pass on a CPU

MEDGEMMA_SHAPES = DemoModelConfig(
    image_size=896, patch_size=14, mm_tokens_per_image=256,
    vision_hidden_size=1152, vision_intermediate_size=4304, vision_num_layers=1, vision_num_heads=16,
    text_hidden_size=2560, text_intermediate_size=10240, layer_types=("sliding_attention", "full_attention"),
    num_attention_heads=8, num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256, sliding_window=1024,
)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    folder = build_demo_model(tmp_path_factory.mktemp("medgemma_shapes"), MEDGEMMA_SHAPES)
    return load_model(str(folder))


def test_config_matches_medgemma_geometry(session):
    config = session.model.config
    assert MEDGEMMA_SHAPES.patches_per_side == 64 and MEDGEMMA_SHAPES.pooling_kernel == 4
    assert config.vision_config.image_size == 896 and config.mm_tokens_per_image == 256
    assert session.processor.image_processor.size == {"height": 896, "width": 896}


def test_ask_runs_at_medgemma_shapes(session):
    rng = np.random.default_rng(0)
    image = Image.fromarray((rng.random((1024, 900)) * 255).astype("uint8"))
    results = BatchedGenerate(session).ask_batch([image, image], ["Is there pleural effusion?", "Is there an enlarged heart?"],
                                max_new_tokens=2)
    for r in results:
        assert 0 <= r.p_yes <= 1 and 0 < r.yes_no_mass <= 1
    inputs = session.processor.apply_chat_template(
        [[{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Is there x?"}]}]],
        add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")
    assert inputs["pixel_values"].shape[-2:] == (896, 896)
    assert int((inputs["input_ids"] == session.model.config.image_token_id).sum()) == 256


def test_engine_matches_ask_batch_at_medgemma_shapes(session):
    from compute.maps import MapSpec
    from compute.answering import Group, PrefixSharedEngine
    rng = np.random.default_rng(1)
    image = Image.fromarray((rng.random((900, 900)) * 255).astype("uint8"))
    questions = ["Is there pleural effusion?", "Any pleural effusion in the left lung base?", "Is there oedema?"]
    reference = BatchedGenerate(session).ask_batch([image] * 3, questions, maps=MapSpec(layers="all"), max_new_tokens=1)
    for e, r in zip(PrefixSharedEngine(session, MapSpec(layers="all")).ask_group(Group(image, questions)), reference):
        assert abs(e.p_yes - r.p_yes) <= 1e-4
        for layer in r.maps:
            assert np.abs(e.maps[layer] - r.maps[layer]).max() <= 1e-4
