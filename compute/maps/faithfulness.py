"""Does the map point at what the answer depends on?

- deletion test: blur the top-k% cells of the map in the image and measure the
  change in the answer's log-odds, log(P(yes)/P(no)), against blurring random cells of the
  same area; the ratio of the two is the map's faithfulness (above 1: the map's cells
  matter more than random ones). Log-odds, because P(yes) of a confident model saturates
  and a ratio of two near-zero probability changes means nothing;
- model randomisation (Adebayo et al., 2018): maps of a model with re-drawn weights should
  differ from the trained model's; a map that does not change explains nothing;
- pointing game: the map's peak cell lies on the lesion.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from compute.data.images import load_image

from compute.maps.extract import map_batch
from compute.maps.spec import MapSpec
from compute.metrics import compare_maps


def top_cells(grid: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the ceil(fraction * N) highest cells (ties broken by position)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    count = math.ceil(fraction * grid.size)
    order = np.argsort(-grid.ravel(), kind="stable")[:count]
    mask = np.zeros(grid.size, dtype=bool)
    mask[order] = True
    return mask.reshape(grid.shape)


def random_cells(shape: tuple[int, int], count: int, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros(shape[0] * shape[1], dtype=bool)
    mask[rng.choice(mask.size, count, replace=False)] = True
    return mask.reshape(shape)


def cells_to_pixels(cells: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Grid cells -> (H, W) pixel mask, cells split as evenly as the size allows."""
    rows = np.array_split(np.arange(size[0]), cells.shape[0])
    cols = np.array_split(np.arange(size[1]), cells.shape[1])
    row_of = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)])
    col_of = np.concatenate([np.full(len(c), j) for j, c in enumerate(cols)])
    return cells[row_of[:, None], col_of[None, :]]


def blur_cells(pixels: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """`pixels` (H, W, channels) with the chosen cells of a grid over the image replaced by a heavy
    Gaussian blur (sigma one cell), so the content goes but the overall brightness stays."""
    array = np.asarray(pixels, dtype=np.float64)
    sigma = (array.shape[0] / cells.shape[0], array.shape[1] / cells.shape[1])
    blurred = np.stack([ndimage.gaussian_filter(array[..., c], sigma) for c in range(array.shape[2])], -1)
    where = cells_to_pixels(cells, array.shape[:2])[..., None]
    return np.where(where, blurred, array)


def lesion_hit(grid: np.ndarray, lesion_cells: np.ndarray) -> bool:
    """Pointing game: the peak cell of `grid` overlaps the lesion (cell coverage > 0)."""
    if grid.shape != lesion_cells.shape:
        raise ValueError(f"grid {grid.shape} and lesion {lesion_cells.shape} differ in shape")
    return bool(lesion_cells.ravel()[int(np.argmax(grid))] > 0)


@dataclass(frozen=True)
class Deletion:
    log_odds: float  # log(P(yes)/P(no)) on the intact image
    deletion_delta: float  # |log-odds change| with the map's top cells blurred
    random_delta: float  # mean |log-odds change| over random cells of the same area
    faithfulness_ratio: float  # deletion_delta / random_delta (inf when random cells change nothing)


@torch.no_grad()
def deletion_test(session, image, question: str, grid: np.ndarray, fraction: float = 0.1, n_random: int = 4,
                  seed: int = 0) -> Deletion:
    """One forward over the intact image, the map-guided deletion and `n_random` random deletions.
    The cells are blurred in the image itself (the map is a grid over the image), and each variant
    goes through the processor as the image did, so this holds for every family: one input
    image, tiles or a dynamic patch grid."""
    picture = load_image(image).convert("RGB")
    pixels = np.asarray(picture, dtype=np.float64)
    rng = np.random.default_rng(seed)
    chosen = top_cells(grid, fraction)
    masks = [chosen] + [random_cells(grid.shape, int(chosen.sum()), rng) for _ in range(n_random)]
    variants = [picture] + [Image.fromarray(np.clip(np.rint(blur_cells(pixels, m)), 0, 255).astype(np.uint8))
                            for m in masks]
    odds = session.yes_log_odds(session.encode(variants, [question] * len(variants))).cpu().numpy()  # (variants,)
    deletion, random = abs(odds[1] - odds[0]), float(np.mean(np.abs(odds[2:] - odds[0])))
    ratio = deletion / random if random > 0 else (float("inf") if deletion > 0 else 1.0)
    return Deletion(float(odds[0]), float(deletion), random, float(ratio))


def randomised_copy(model, seed: int = 0, std: float = 0.02):
    """A copy of `model` with every weight matrix re-drawn from N(0, std) (norm and bias
    vectors kept): the cascading-randomisation end point of Adebayo et al."""
    clone = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in clone.parameters():
            if parameter.dim() >= 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    return clone.eval()


def randomisation_check(session, image, question: str, spec: MapSpec = MapSpec()) -> dict[str, float]:
    """compare_maps(trained map, randomised-model map) for one image and question, the maps
    from one forward pass each (compute.maps.map_batch)."""
    with session.lock:  # the session's model is swapped for the randomised copy meanwhile
        (trained,) = map_batch(session, [image], [question], spec)
        original = session.model
        session.model = randomised_copy(original)
        try:
            (randomised,) = map_batch(session, [image], [question], spec)
        finally:
            session.model = original
    trained, randomised = trained.mean, randomised.mean
    return {k: v for k, v in compare_maps(trained, randomised).items() if k != "difference"}
