"""Settings the real checkpoints ship that the tiny models do not: InternVL's tiling turned on
by the processor, Qwen2.5-VL grids of one token count, LLaVA's centre crop, the deletion test on
tiles and dynamic grids. Each was a silent wrong answer or a crash found in review.

Every test builds the tiny random-weight checkpoint of its family (compute.demo.tiny); some edit
its saved processor_config.json to the settings the real checkpoints ship."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from compute.answering import BatchedGenerate, Group, PrefixSharedEngine
from compute.demo.tiny import build_tiny
from compute.maps import MapSpec
from compute.maps.extract import map_batch
from compute.maps.faithfulness import deletion_test
from compute.model.loading import load_model
from test_family_layouts import gradient_image

QUESTIONS = ["Is there edema?", "Is there a mass in the left lung?"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("review-tiny")


def _checkpoint(root: Path, family: str, edit=None, name: str | None = None) -> Path:
    path = root / (name or family)
    if not path.exists():
        build_tiny(family, path)
        if edit:
            config_file = path / "processor_config.json"
            config = json.loads(config_file.read_text())
            edit(config["image_processor"])
            config_file.write_text(json.dumps(config))
    return path


def _noise(height: int, width: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _crop_off(image_processor: dict) -> None:
    image_processor["crop_to_patches"] = False  # as OpenGVLab/InternVL3-*-hf ship it; the processor turns it on


def test_internvl_engine_answers_the_tiles_the_processor_makes(root):
    """Was: InternVL checkpoints ship `"crop_to_patches": false` in the image processor's config and
    rely on InternVLProcessor's (and QianfanOCRProcessor's) images_kwargs default crop_to_patches=True.
    The batched path goes through the processor and tiles the image; the engine (`_pixels`) and
    `image_replacements` call `processor.image_processor` directly and get ONE tile, so the engine
    answers a different, low-resolution input and its P(yes) silently differs from the batched one."""
    session = load_model(str(_checkpoint(root, "internvl", _crop_off, "internvl-crop-off")))
    image = _noise(60, 120)
    groups = [Group(image, QUESTIONS)]
    reference = BatchedGenerate(session).ask_groups(groups)[0]
    answered = PrefixSharedEngine(session).ask_groups(groups)[0]
    for ref, got in zip(reference, answered):
        assert abs(got.p_yes - ref.p_yes) <= 1e-4


def test_internvl_maps_when_the_image_processor_has_crop_off(root):
    """Was: InternVL.layouts reads `image_processor.crop_to_patches` (False on the real checkpoints)
    although the processor tiled the image (its default crop_to_patches=True), so the layout expects
    one tile, raises "12 image tokens do not fit 1x1 tiles", attention falls back, and Grad-CAM's
    layout raises the same ValueError uncaught: a map request on a real InternVL crashes."""
    session = load_model(str(_checkpoint(root, "internvl", _crop_off, "internvl-crop-off")))
    (result,) = map_batch(session, [_noise(60, 120)], QUESTIONS[:1], MapSpec(layers="all"))
    assert result.method == "attention"
    assert len(result.grid_shape) == 2 and result.grid_shape != (2, 2)  # the stitched grid of 1x2 tiles


def test_qwen_engine_positions_for_images_of_one_token_count_but_other_grids(root):
    """Was: PrefixSharedEngine._ask_alike groups images by their placeholder's replacement text,
    which on Qwen2.5-VL is only `<|image_pad|>` x count: a 56x56 image (2x2 tokens) and a 112x28 one
    (1x4 tokens) share a prefix pass, and Qwen2_5_VL.suffix_positions takes the mRoPE start of row 0
    only, so the second image's question tokens get wrong positions: P(yes) and maps differ from the
    batched generate (and from the engine with one image per pass), silently."""
    session = load_model(str(_checkpoint(root, "qwen2_5_vl")))
    images = [_noise(56, 56), _noise(28, 112, seed=1)]
    grids = [session.processor.image_processor(images=[i], return_tensors="pt")["image_grid_thw"].tolist()
             for i in images]
    assert grids == [[[1, 4, 4]], [[1, 2, 8]]]  # same token count (4), different grids
    spec = MapSpec(layers="all")
    groups = [Group(image, QUESTIONS) for image in images]
    reference = BatchedGenerate(session, spec).ask_groups(groups)
    answered = PrefixSharedEngine(session, spec, images_per_pass=2).ask_groups(groups)
    for ref_group, group in zip(reference, answered):
        for ref, got in zip(ref_group, group):
            np.testing.assert_allclose(got.map.mean, ref.map.mean, atol=1e-4, rtol=0)  # off by ~1e-3
            assert abs(got.p_yes - ref.p_yes) <= 1e-5  # off by ~4e-5


@pytest.mark.parametrize("family", ["idefics3", "internvl", "qwen2_5_vl"])
def test_deletion_test_on_tiled_and_dynamic_families(root, family):
    """Was: compute.maps.faithfulness.deletion_test (run by `--deletion` in every study) assumes
    pixel_values[0] is one (C, H, W) image covering the map's grid. Idefics3 (1, tiles, C, H, W),
    InternVL (tiles, C, H, W) and Qwen2.5-VL (patches, C*T*14*14) crash: a broadcast ValueError,
    "Image features and image tokens do not match", an IndexError."""
    session = load_model(str(_checkpoint(root, family)))
    image = _noise(60, 120)
    (result,) = map_batch(session, [image], QUESTIONS[:1], MapSpec())
    deletion = deletion_test(session, image, QUESTIONS[0], result.mean)
    assert np.isfinite(deletion.log_odds)


def _clip_like(image_processor: dict) -> None:
    # llava-hf/llava-1.5-7b-hf: resize the shortest edge to 336, then crop the centre 336 x 336
    side = image_processor["size"]["height"]
    image_processor.update(size={"shortest_edge": side}, do_center_crop=True, crop_size={"height": side, "width": side})


def test_llava_layout_covers_what_the_centre_crop_shows(root):
    """Was: llava-1.5-hf's processor resizes the shortest edge and crops the centre square
    (the tiny model turns the crop off, so no test sees it). Llava uses the base layout, one grid
    over the WHOLE image, and overlay, body and lesion metrics and the compare page lay that grid
    over the whole original image: on a non-square X-ray the map is stretched over parts the model
    never saw. The layout's box should be the crop's part of the image."""
    session = load_model(str(_checkpoint(root, "llava", _clip_like, "llava-clip")))
    image = gradient_image(56, 112)  # twice as wide as tall: the crop keeps the middle half of the width
    inputs = session.encode([image], QUESTIONS[:1])
    count = int(session.family.image_positions(inputs["input_ids"], session.model.config).sum())
    (layout,) = session.family.layouts(inputs, session.processor, [count], [(image.height, image.width)])
    ip = session.processor.image_processor
    pixels = inputs["pixel_values"][0].double().numpy()
    red = pixels[0] * ip.image_std[0] + ip.image_mean[0]  # 0 at the image's left edge, 1 at its right
    (tile,) = layout.tiles
    _, left, _, right = tile.box
    assert red[:, 0].mean() == pytest.approx(left, abs=0.05)
    assert red[:, -1].mean() == pytest.approx(right, abs=0.05)


def test_llava_with_cls_among_the_image_tokens_maps_the_patches_only(root, tmp_path):
    """vision_feature_select_strategy "full" keeps CLIP's CLS as the first of the image tokens; the
    map is of the patches, so the CLS position is not an image cell."""
    path = _checkpoint(root, "llava")
    full = tmp_path / "llava-full"
    shutil.copytree(path, full)
    for name in ("config.json", "processor_config.json"):
        data = json.loads((full / name).read_text())
        data["vision_feature_select_strategy"] = "full"
        (full / name).write_text(json.dumps(data))
    session = load_model(str(full))
    image = _noise(64, 64)
    inputs = session.encode([image], QUESTIONS[:1])
    tokens = int((inputs["input_ids"] == session.model.config.image_token_id).sum())
    where = session.family.image_positions(inputs["input_ids"], session.model.config)
    assert tokens == 17 and int(where.sum()) == 16
    (result,) = map_batch(session, [image], QUESTIONS[:1], MapSpec(layers="all"))
    eager = load_model(str(full), attn_implementation="eager")
    with torch.no_grad():
        attentions = eager.model(**inputs, output_attentions=True).attentions
    for layer, a in enumerate(attentions):
        row = a[0, :, -1].mean(0)[where[0]].double().numpy()
        np.testing.assert_allclose(result.maps[layer], (row / row.sum()).reshape(4, 4), atol=1e-5)
