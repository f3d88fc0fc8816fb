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
from scipy.spatial.distance import jensenshannon
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




def metrics_without_body(grid: np.ndarray) -> dict[str, float | None]:
    """attention_metrics for an image with no body mask: the body-based metrics are None,
    never taken over the whole grid (which would make inside_body_ratio 1 by construction)."""
    return {k: None if k in BODY_METRICS else v for k, v in attention_metrics(grid).items()}


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
        "js_divergence": float(jensenshannon(flat_a, flat_b, base=2) ** 2),
        "pearson": float("nan") if constant else float(pearsonr(flat_a, flat_b).statistic),
        "l2": float(np.linalg.norm(flat_a - flat_b)),
        "cosine": float(flat_a @ flat_b / (np.linalg.norm(flat_a) * np.linalg.norm(flat_b))),
        "difference": b - a,
    }
