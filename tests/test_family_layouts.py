"""Where each family's image tokens lie over the image, checked against the processor's own
pixels: the tile a layout places at a box shows that box of the image (Idefics3, InternVL),
and Qwen2.5-VL's window-ordered vision patches come back in raster order. The stitching of
tiles into one map is checked by hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from compute.demo.tiny import build_tiny
from compute.model.layout import WHOLE, ImageLayout, Tile, resample, single_grid
from compute.model.loading import load_model


def gradient_image(height: int, width: int) -> Image.Image:
    """Red grows left to right, green top to bottom: a region's mean colour says where it is."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, np.full_like(x, 128)], -1).astype(np.uint8))


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-layouts")
    return {f: load_model(str(build_tiny(f, root / f))) for f in ("idefics3", "internvl", "qwen2_5_vl")}


def _unnormalise(pixels: torch.Tensor, processor) -> np.ndarray:
    mean = np.asarray(processor.image_processor.image_mean)[:, None, None]
    std = np.asarray(processor.image_processor.image_std)[:, None, None]
    return pixels.double().numpy() * std + mean  # (3, H, W) in [0, 1]


@pytest.mark.parametrize("family", ["idefics3", "internvl"])
@pytest.mark.parametrize("size", [(60, 120), (90, 70), (300, 200)])
def test_each_tile_shows_the_box_its_layout_gives_it(sessions, family, size):
    session = sessions[family]
    image = gradient_image(*size)
    inputs = session.encode([image], ["Is there edema?"])
    count = int(session.family.image_positions(inputs["input_ids"], session.model.config).sum())
    (layout,) = session.family.layouts(inputs, session.processor, [count], [size])
    tiles = inputs["pixel_values"].reshape(-1, *inputs["pixel_values"].shape[-3:])  # (tiles, 3, H, W)
    assert len(layout.tiles) == len(tiles) > 1
    for tile, pixels in zip(layout.tiles, tiles):
        rgb = _unnormalise(pixels, session.processor)
        top, left, bottom, right = tile.box
        assert rgb[0].mean() == pytest.approx((left + right) / 2, abs=0.04), tile  # red: horizontal centre
        assert rgb[1].mean() == pytest.approx((top + bottom) / 2, abs=0.04), tile  # green: vertical centre
    assert layout.tiles[-1].box == WHOLE  # the whole-image view comes last


def test_qwen_vision_patches_come_back_in_raster_order(sessions):
    from transformers.vision_utils import get_vision_window_index
    session = sessions["qwen2_5_vl"]
    image = gradient_image(120, 180)
    inputs = session.encode([image], ["Is there edema?"])
    visual, thw = session.model.model.visual, inputs["image_grid_thw"]
    patches = inputs["pixel_values"]  # (h*w, 3*2*14*14), merge unit by merge unit
    window_index, _ = get_vision_window_index(thw, spatial_merge_size=visual.spatial_merge_size,
                                              window_size=visual.window_size, patch_size=visual.patch_size)
    windowed = patches.reshape(-1, 4, patches.shape[-1])[window_index].reshape(patches.shape)  # as the blocks see it
    (units,), _, (layout,) = session.family.vision_units(windowed, windowed, [], inputs, session.model)
    (_, h, w), = thw.tolist()
    assert layout.grid == (h, w)
    red = units[0].reshape(h, w, 3, -1)[:, :, 0].mean(-1).double().numpy()  # per patch, normalised red
    green = units[0].reshape(h, w, 3, -1)[:, :, 1].mean(-1).double().numpy()
    assert (np.diff(red, axis=1) > 0).all() and (np.abs(np.diff(red, axis=0)) < 1e-6).all()
    assert (np.diff(green, axis=0) > 0).all() and (np.abs(np.diff(green, axis=1)) < 1e-6).all()


def test_a_single_grid_is_a_reshape():
    layout = single_grid(6, (30, 20), (3, 2))
    np.testing.assert_array_equal(layout.to_map(np.arange(6.0)), np.arange(6.0).reshape(3, 2))


def test_tiles_are_stitched_by_hand():
    # 1 x 2 local tiles of 1 x 1 token over a 10 x 20 image, then the whole image as one token.
    layout = ImageLayout((Tile(1, 1, (0, 0, 1, 0.5)), Tile(1, 1, (0, 0.5, 1, 1)), Tile(1, 1)), (10, 20))
    assert layout.grid == (1, 2)
    # the whole-image token's mass is spread evenly over both cells
    np.testing.assert_allclose(layout.to_map(np.array([0.2, 0.4, 0.4])), [[0.4, 0.6]])
    with pytest.raises(ValueError, match="3 image-token weights"):
        ImageLayout((Tile(2, 2),), (4, 4)).to_map(np.ones(3))


def test_resample_shares_each_cell_by_area():
    grid = np.array([[0.0, 1.0], [2.0, 3.0]])
    expected = np.array([[0, 2, 4], [4, 6, 8], [8, 10, 12]]) / 9
    np.testing.assert_allclose(resample(grid, (3, 3)), expected, atol=1e-15)
    odd = np.random.default_rng(0).random((5, 7))
    assert resample(odd, (48, 48)).sum() == pytest.approx(odd.sum())
