"""Metrics of one attention grid, and of the difference between two. Pure functions of
numpy arrays. The definitions avoid two errors of the study this project grew from, whose
inside-body ratio was 1 and border fraction 0 by construction:

- inside_body_ratio is taken on the normalised grid before any masking (it is not 1 by
  construction); border_fraction before any border stripping (it is not 0 by construction);
- entropies use the natural log; JS divergence uses base 2, so it lies in [0, 1];
- lung sides are named by the patient's side: on a frontal radiograph the patient's right
  is on the image's left.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import entropy, pearsonr

from compute.metrics.regions import Regions, grid_regions
from vocabulary import BODY_METRICS


def normalise(grid: np.ndarray) -> np.ndarray:
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 2:
        raise ValueError(f"expected a 2-D grid, got shape {g.shape}")
    if (g < 0).any() or not np.isfinite(g).all():
        raise ValueError("attention grid has negative or non-finite cells")
    total = g.sum()
    if total <= 0:
        raise ValueError("attention grid sums to zero")
    return g / total


def attention_metrics(grid: np.ndarray, body_mask: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of `grid` (rows, columns), normalised to sum 1 first. `body_mask` is a
    boolean (or cell-coverage in [0, 1], thresholded at 0.5) mask on the same grid; without
    it the whole grid counts as body and the sides and thirds split the whole grid."""
    p = normalise(grid)
    n = p.size
    h = float(entropy(p.ravel()))  # natural log
    ring = np.ones_like(p, dtype=bool)
    ring[1:-1, 1:-1] = False
    regions: Regions = grid_regions(p.shape, body_mask)
    return {
        "inside_body_ratio": float(p[regions.body].sum()),
        "border_fraction": float(p[ring].sum()),
        "attention_entropy": h,
        "normalized_entropy": h / np.log(n) if n > 1 else 0.0,
        "focus_score": 1.0 / (1.0 + h),
        "peak_to_average": float(p.max() * n),
        "sparsity": float((p > 1.0 / n).mean()),
        "right_lung_fraction": float(p[regions.patient_right].sum()),
        "left_lung_fraction": float(p[regions.patient_left].sum()),
        "apical_fraction": float(p[regions.apical].sum()),
        "middle_fraction": float(p[regions.middle].sum()),
        "basal_fraction": float(p[regions.basal].sum()),
    }


def normalise_batch(grids: np.ndarray, of: str | None = None) -> np.ndarray:
    """`grids` (N, rows, columns) as float64, each grid normalised to sum 1. The same checks as
    normalise, one grid at a time: the ValueError names the index of the first failing grid
    (and `of`, the batch's name, where given)."""
    g = np.asarray(grids, dtype=np.float64)
    if g.ndim != 3:
        raise ValueError(f"expected a batch of 2-D grids (N, rows, columns), got shape {g.shape}")
    flat = g.reshape(len(g), g.shape[1] * g.shape[2])  # not -1: that fails on an empty batch
    invalid = (flat < 0).any(axis=1) | ~np.isfinite(flat).all(axis=1)
    with np.errstate(invalid="ignore", over="ignore"):  # the invalid grids are reported below
        totals = flat.sum(axis=1)
    failing = invalid | ~(totals > 0)
    if failing.any():
        i = int(np.argmax(failing))
        which = f"attention grid {i}" + (f" of {of}" if of else "")
        raise ValueError(f"{which} has negative or non-finite cells" if invalid[i] else f"{which} sums to zero")
    return (flat / totals[:, None]).reshape(g.shape)


def _border_ring(shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the outer ring of cells of a (rows, columns) grid."""
    ring = np.ones(shape, dtype=bool)
    ring[1:-1, 1:-1] = False
    return ring


def _entropy_rows(flat: np.ndarray) -> np.ndarray:
    """Natural-log entropy of each row of `flat` (rows summing to 1), 0 log 0 = 0 as in scipy.stats.entropy."""
    logs = np.log(flat, out=np.zeros_like(flat), where=flat > 0)
    return -(flat * logs).sum(axis=1)


def attention_metrics_batch(grids: np.ndarray, body_mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """attention_metrics of each grid of `grids` (N, rows, columns): the maps of one image on one
    grid, so one `body_mask` (and one set of regions) serves them all. Each metric is a float64
    array of length N; an empty batch gives empty arrays."""
    p = normalise_batch(grids)
    count, rows, cols = p.shape
    n = rows * cols
    regions: Regions = grid_regions((rows, cols), body_mask)
    flat = p.reshape(count, n)
    h = _entropy_rows(flat)

    def share(region: np.ndarray) -> np.ndarray:
        return flat[:, region.ravel()].sum(axis=1)

    return {
        "inside_body_ratio": share(regions.body),
        "border_fraction": share(_border_ring((rows, cols))),
        "attention_entropy": h,
        "normalized_entropy": h / np.log(n) if n > 1 else np.zeros(count),
        "focus_score": 1.0 / (1.0 + h),
        "peak_to_average": flat.max(axis=1) * n,
        "sparsity": (flat > 1.0 / n).mean(axis=1),
        "right_lung_fraction": share(regions.patient_right),
        "left_lung_fraction": share(regions.patient_left),
        "apical_fraction": share(regions.apical),
        "middle_fraction": share(regions.middle),
        "basal_fraction": share(regions.basal),
    }


def metrics_without_body(grid: np.ndarray) -> dict[str, float | None]:
    """attention_metrics for an image with no body mask: the body-based metrics are None,
    never taken over the whole grid (which would make inside_body_ratio 1 by construction)."""
    return {k: None if k in BODY_METRICS else v for k, v in attention_metrics(grid).items()}


def metrics_without_body_batch(grids: np.ndarray) -> dict[str, np.ndarray | None]:
    """metrics_without_body for a batch: attention_metrics_batch with the body-based metrics None
    (one None for the whole batch, not an array of them)."""
    return {k: None if k in BODY_METRICS else v for k, v in attention_metrics_batch(grids).items()}


def metric_rows(batch: dict[str, np.ndarray | None], n: int) -> list[dict[str, float | None]]:
    """The `n` per-map dicts of Python floats in a batch of metrics (a None metric is None in
    every row), for callers that write one record per map."""
    return [{k: None if v is None else float(v[i]) for k, v in batch.items()} for i in range(n)]


def compare_maps(p: np.ndarray, q: np.ndarray) -> dict[str, float | np.ndarray]:
    """How map `q` differs from map `p` (both normalised first): JS divergence (base 2,
    in [0, 1]), Pearson correlation, L2 distance, cosine similarity and the signed
    difference map q - p."""
    a, b = normalise(p), normalise(q)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} vs {b.shape}")
    flat_a, flat_b = a.ravel(), b.ravel()
    constant = np.ptp(flat_a) == 0 or np.ptp(flat_b) == 0
    return {
        # not scipy's jensenshannon: its square root of a sum rounded below zero is NaN for near-equal maps
        "js_divergence": float(_js_divergence_rows(flat_a[None], flat_b[None])[0]),
        "pearson": float("nan") if constant else float(pearsonr(flat_a, flat_b).statistic),
        "l2": float(np.linalg.norm(flat_a - flat_b)),
        "cosine": float(flat_a @ flat_b / (np.linalg.norm(flat_a) * np.linalg.norm(flat_b))),
        "difference": b - a,
    }


def _rel_entr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Elementwise x log(x / y) with 0 log 0 = 0, as scipy.special.rel_entr where x > 0 implies y > 0."""
    ratio = np.divide(x, y, out=np.ones(np.broadcast_shapes(x.shape, y.shape)), where=x > 0)
    return x * np.log(ratio)


def _js_divergence_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """jensenshannon(a, b, base=2) ** 2 for each row pair, by scipy's steps, except that a sum
    rounded below zero (maps equal to ~1e-8) gives 0 here where scipy's square root gives NaN."""
    m = (a + b) / 2.0
    js = (_rel_entr(a, m).sum(axis=1) + _rel_entr(b, m).sum(axis=1)) / np.log(2.0)
    return np.maximum(js / 2.0, 0.0)


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair, clipped to [-1, 1] as scipy.stats.pearsonr; NaN where
    either row is constant."""
    am = a - a.mean(axis=1, keepdims=True)
    bm = b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # constant rows: NaN, replaced below
        unit_a = am / np.linalg.norm(am, axis=1, keepdims=True)
        unit_b = bm / np.linalg.norm(bm, axis=1, keepdims=True)
        r = np.clip((unit_a * unit_b).sum(axis=1), -1.0, 1.0)
    constant = (np.ptp(a, axis=1) == 0) | (np.ptp(b, axis=1) == 0)
    return np.where(constant, np.nan, r)


def compare_maps_batch(p: np.ndarray, q: np.ndarray) -> dict[str, np.ndarray]:
    """compare_maps of each pair of maps in `p` and `q` (N, rows, columns); either may be one map
    (rows, columns) taken against every map of the other (two single maps give N = 1).
    js_divergence, pearson, l2 and cosine are float64 arrays of length N; difference is
    (N, rows, columns), normalised q - normalised p."""
    p, q = np.asarray(p), np.asarray(q)
    a = normalise_batch(p[None] if p.ndim == 2 else p, of="p")
    b = normalise_batch(q[None] if q.ndim == 2 else q, of="q")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"maps differ in shape: {a.shape[1:]} vs {b.shape[1:]}")
    if len(a) != len(b) and 1 not in (len(a), len(b)):
        raise ValueError(f"batches differ in length: {len(a)} vs {len(b)}")
    cells = a.shape[1] * a.shape[2]
    flat_a, flat_b = a.reshape(len(a), cells), b.reshape(len(b), cells)
    cosine = (flat_a * flat_b).sum(axis=1) / (np.linalg.norm(flat_a, axis=1) * np.linalg.norm(flat_b, axis=1))
    return {
        "js_divergence": _js_divergence_rows(flat_a, flat_b),
        "pearson": _pearson_rows(flat_a, flat_b),
        "l2": np.linalg.norm(flat_a - flat_b, axis=1),
        "cosine": cosine,
        "difference": b - a,
    }
