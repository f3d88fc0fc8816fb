"""The body mask's faster steps give exactly what the library calls they replace: Otsu's threshold
from a 256-value count (skimage's threshold_otsu on the float pixels), holes filled by labelling
the background (ndimage.binary_fill_holes), and grid coverage by block sums (array_split means)."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.filters import threshold_otsu

from compute.metrics.regions import _otsu_of_bytes, fill_holes, mask_to_grid


def _reference_coverage(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    rows = np.array_split(np.arange(mask.shape[0]), shape[0])
    cols = np.array_split(np.arange(mask.shape[1]), shape[1])
    return np.array([[mask.astype(np.float64)[np.ix_(r, c)].mean() for c in cols] for r in rows])


@pytest.mark.parametrize("seed", range(40))
def test_otsu_from_counts_equals_skimage_on_the_float_pixels(seed, xray):
    rng = np.random.default_rng(seed)
    low, high = int(rng.integers(0, 120)), int(rng.integers(121, 256))
    pixels = rng.integers(low, high + 1, size=(int(rng.integers(32, 300)), int(rng.integers(32, 300)))).astype(np.uint8)
    assert _otsu_of_bytes(pixels) == threshold_otsu(pixels.astype(np.float64))
    radiograph = np.asarray(xray.convert("L"))
    assert _otsu_of_bytes(radiograph) == threshold_otsu(radiograph.astype(np.float64))


@pytest.mark.parametrize("seed", range(40))
def test_fill_holes_equals_ndimage(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((int(rng.integers(1, 120)), int(rng.integers(1, 120)))) < rng.uniform(0.1, 0.9)
    assert np.array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))


def test_fill_holes_fills_a_ring_and_leaves_an_open_one():
    ring = np.zeros((9, 9), dtype=bool)
    ring[2:7, 2:7] = True
    ring[3:6, 3:6] = False
    assert fill_holes(ring)[4, 4] and fill_holes(ring).sum() == 25
    ring[4, 2] = False  # opened to the outside
    assert not fill_holes(ring)[4, 4]


@pytest.mark.parametrize("seed", range(40))
def test_grid_coverage_equals_the_array_split_means(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((int(rng.integers(40, 300)), int(rng.integers(40, 300)))) < 0.5
    shape = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
    assert np.array_equal(mask_to_grid(mask, shape), _reference_coverage(mask, shape))
    small = mask[:3, :5]  # fewer pixels than cells: repeated first
    assert mask_to_grid(small, (16, 16)).shape == (16, 16)
