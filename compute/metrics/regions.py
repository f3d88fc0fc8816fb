"""The body mask of a radiograph and the named regions of a token grid.

The mask comes from the image alone: Otsu's threshold, then morphology (close, fill holes,
keep the largest component, open) with scipy.ndimage. Regions on the grid:
- patient_right / patient_left: the halves of the body's bounding box (a column on the
  midline of an odd-width box counts for neither). A frontal radiograph shows the
  patient's right on the image's left;
- apical / middle / basal: thirds of the body's bounding box, top to bottom.
All regions are restricted to body cells. `body_cells` finds the body on the image reduced
(area-averaged) to a short side of BODY_MASK_SIDE pixels: a cell of a 64 x 64 grid still spans
4 of them, and a 3000-pixel radiograph costs what a 256-pixel one does (the morphology at full
size took about 0.4 s an image). All regions are restricted to body cells. An image with no findable body (smaller than
BODY_MASK_MIN_SIDE a side, uniform, or a mask that covers no grid cell) has no regions:
`body_cells` says why, and the body-based metrics are not computed for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.filters import threshold_otsu


BODY_MASK_MIN_SIDE = 32  # px: a smaller side leaves a 16 x 16 grid under two pixels a cell
BODY_MASK_SIDE = 256  # px: the short side body_cells finds the body at


class NoBodyError(ValueError):
    """The image has no body to find: too small, or uniform."""


def body_mask(image: Image.Image | np.ndarray) -> np.ndarray:
    """Boolean (H, W) mask of the body in a radiograph (bright on dark). NoBodyError for an
    image under BODY_MASK_MIN_SIDE a side, or a uniform one (a blank image has no body)."""
    pixels = np.asarray(image.convert("L") if isinstance(image, Image.Image) else image)
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8)
    if pixels.ndim != 2:
        raise ValueError(f"expected a grayscale image, got shape {pixels.shape}")
    if min(pixels.shape) < BODY_MASK_MIN_SIDE:
        raise NoBodyError(f"the image is {pixels.shape[1]}x{pixels.shape[0]} px; a body mask needs at least "
                          f"{BODY_MASK_MIN_SIDE} px a side")
    if np.ptp(pixels) == 0:
        raise NoBodyError("the image is uniform: there is no body to find")
    threshold = _otsu_of_bytes(pixels) if pixels.dtype == np.uint8 else threshold_otsu(pixels.astype(np.float64))
    mask = pixels > threshold
    radius = max(1, round(min(pixels.shape) / 100))
    structure = ndimage.generate_binary_structure(2, 1)
    mask = ndimage.binary_closing(mask, structure, iterations=radius)
    mask = fill_holes(mask)
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum(mask, labels, index=range(1, count + 1))
        mask = labels == 1 + int(np.argmax(sizes))
    return ndimage.binary_opening(mask, structure, iterations=radius)


def reduced(image: Image.Image | np.ndarray, short_side: int) -> Image.Image | np.ndarray:
    """The image as grayscale, area-averaged down to `short_side` pixels on its short side if it is
    larger; other arrays than 8-bit ones are returned as they are."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 2:
            return image
        image = Image.fromarray(image)
    gray = image.convert("L")
    scale = short_side / min(gray.size)
    if scale >= 1:
        return gray
    return gray.resize((max(1, round(gray.width * scale)), max(1, round(gray.height * scale))), Image.Resampling.BOX)


def _otsu_of_bytes(pixels: np.ndarray) -> float:
    """threshold_otsu of a uint8 image as of its float pixels, from a 256-entry count: np.histogram
    puts each distinct value in the same bin however many pixels have it, and the pixels are not
    histogrammed one by one (5 ms for 512 x 512)."""
    counts = np.bincount(pixels.ravel(), minlength=256)
    values = np.flatnonzero(counts)
    hist, edges = np.histogram(values.astype(np.float64), bins=256, range=(float(values[0]), float(values[-1])),
                               weights=counts[values])
    return float(threshold_otsu(hist=(hist, (edges[:-1] + edges[1:]) / 2.0)))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """ndimage.binary_fill_holes(mask): background not 4-connected to the image's edge becomes
    mask, found by labelling the background once instead of growing it from the edge."""
    background, count = ndimage.label(~mask)  # 4-connected, as binary_fill_holes's default structure
    reaches_edge = np.zeros(count + 1, dtype=bool)
    reaches_edge[0] = True  # label 0: the mask itself
    reaches_edge[np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])] = True
    return mask | ~reaches_edge[background]


def mask_to_grid(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Share of each grid cell covered by `mask`: (rows, columns) in [0, 1]. A mask with fewer
    rows or columns than the grid is first repeated (nearest neighbour) so no cell is empty."""
    if mask.size == 0:
        raise ValueError("the mask is empty (no pixels)")
    reps = (-(-shape[0] // mask.shape[0]), -(-shape[1] // mask.shape[1]))  # ceiling division
    if reps != (1, 1):
        mask = np.repeat(np.repeat(mask, reps[0], axis=0), reps[1], axis=1)
    row_starts, row_sizes = _split_points(mask.shape[0], shape[0])
    col_starts, col_sizes = _split_points(mask.shape[1], shape[1])
    sums = np.add.reduceat(np.add.reduceat(mask.astype(np.float64), row_starts, axis=0), col_starts, axis=1)
    return sums / np.outer(row_sizes, col_sizes)


def _split_points(length: int, parts: int) -> tuple[np.ndarray, np.ndarray]:
    """Where np.array_split(range(length), parts) starts each part, and the parts' sizes."""
    sizes = np.full(parts, length // parts)
    sizes[:length % parts] += 1
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes


def body_cells(image: Image.Image | np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
    """(the body's coverage of each grid cell, None), or (None, why there is no body) for an
    image with no findable body or a mask that covers no cell from half on."""
    try:
        cells = mask_to_grid(body_mask(reduced(image, BODY_MASK_SIDE)), shape)
    except NoBodyError as exc:
        return None, f"no body-based metrics: {exc}"
    if not (cells >= 0.5).any():
        return None, "no body-based metrics: the body mask covers no grid cell"
    return cells, None


@dataclass(frozen=True)
class Regions:
    body: np.ndarray  # (rows, columns) bool
    patient_right: np.ndarray  # image-left half of the body's bounding box
    patient_left: np.ndarray
    apical: np.ndarray
    middle: np.ndarray
    basal: np.ndarray


def grid_regions(shape: tuple[int, int], body: np.ndarray | None = None) -> Regions:
    """Named regions of a (rows, columns) grid. `body`: bool, or cell coverage in [0, 1]
    (a cell counts as body from half coverage); None counts every cell as body."""
    if body is None:
        inside = np.ones(shape, dtype=bool)
    else:
        inside = np.asarray(body)
        if inside.shape != tuple(shape):
            raise ValueError(f"body mask shape {inside.shape} does not match the grid {tuple(shape)}")
        inside = inside >= 0.5 if inside.dtype != bool else inside
    if not inside.any():
        raise ValueError("the body mask is empty on this grid")
    rows, cols = np.nonzero(inside)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    r = np.arange(shape[0])[:, None]
    c = np.arange(shape[1])[None, :]
    mid_col = (left + right) / 2
    third = (bottom - top) / 3
    return Regions(
        body=inside,
        patient_right=inside & (c + 1 <= mid_col),  # a column straddling the midline belongs to neither side
        patient_left=inside & (c >= mid_col),
        apical=inside & (r + 0.5 < top + third),
        middle=inside & (r + 0.5 >= top + third) & (r + 0.5 < top + 2 * third),
        basal=inside & (r + 0.5 >= top + 2 * third),
    )
