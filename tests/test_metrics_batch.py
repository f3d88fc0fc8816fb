"""The batch metrics (attention_metrics_batch, metrics_without_body_batch, compare_maps_batch)
against the per-map reference functions, map by map, to 1e-12."""

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from compute.metrics.attention import (attention_metrics, attention_metrics_batch, compare_maps, compare_maps_batch,
                                       metric_rows, metrics_without_body, metrics_without_body_batch)
from compute.metrics.regions import body_cells, mask_to_grid
from vocabulary import BODY_METRICS

ATOL = 1e-12
SHAPES = [(1, 1), (1, 9), (9, 1), (2, 2), (5, 7), (16, 16), (24, 24), (48, 48)]
COMPARED = ("js_divergence", "pearson", "l2", "cosine")


def grid_batch(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A batch of awkward grids of one shape: Dirichlet-like (some with exact zeros), one-hot,
    uniform at a value whose sum is inexact, tiny and huge scales."""
    size = shape[0] * shape[1]
    grids = [rng.gamma(alpha, size=shape) for alpha in (0.1, 0.5, 1.0, 5.0)]
    sparse = rng.gamma(1.0, size=shape)
    sparse[rng.random(shape) < 0.6] = 0.0
    sparse.flat[rng.integers(size)] = 1.0  # never all zero
    one_hot = np.zeros(shape)
    one_hot.flat[rng.integers(size)] = 3.0
    grids += [sparse, one_hot, np.full(shape, 0.1), np.full(shape, 1 / 3), rng.random(shape) * 1e-300,
              rng.random(shape) * 1e200]
    return np.stack(grids)


def ellipse(shape: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """Boolean ellipse filling most of a (rows, columns) array, centred."""
    r = (np.arange(shape[0])[:, None] + 0.5) / shape[0] - 0.5
    c = (np.arange(shape[1])[None, :] + 0.5) / shape[1] - 0.5
    return (r / 0.45) ** 2 + (c / 0.4) ** 2 <= scale


def body_masks(shape: tuple[int, int]) -> dict[str, np.ndarray | None]:
    """The masks attention_metrics accepts on `shape`: none, boolean, coverage from a pixel mask
    (mask_to_grid) and coverage of a synthetic radiograph's body (body_cells)."""
    boolean = ellipse(shape)
    boolean[shape[0] // 2, shape[1] // 2] = True  # at least one cell, even on 1 x N grids
    coverage = mask_to_grid(ellipse((shape[0] * 8 + 3, shape[1] * 8 + 5)), shape)
    coverage[shape[0] // 2, shape[1] // 2] = 1.0
    rng = np.random.default_rng(7)
    image = (np.where(ellipse((128, 112)), 180.0, 20.0) + rng.normal(0, 10, (128, 112))).clip(0, 255)
    cells, why = body_cells(image.astype(np.uint8), shape)
    masks = {"none": None, "boolean": boolean, "coverage": coverage}
    if cells is not None:
        masks["body_cells"] = cells
    return masks


def assert_rows_match(batch: dict, references: list[dict], keys=None) -> None:
    """Each metric of the batch equals the reference's, map by map (NaN where the reference is NaN)."""
    for key in keys or references[0].keys():
        expected = [ref[key] for ref in references]
        if expected and expected[0] is None:
            assert batch[key] is None and all(e is None for e in expected), key
            continue
        assert batch[key].dtype == np.float64 and batch[key].shape == (len(references),), key
        np.testing.assert_allclose(batch[key], expected, rtol=0, atol=ATOL, equal_nan=True, err_msg=key)


@pytest.mark.parametrize("shape", SHAPES)
def test_attention_metrics_batch_matches_the_reference(shape):
    grids = grid_batch(np.random.default_rng(shape[0] * 100 + shape[1]), shape)
    for name, mask in body_masks(shape).items():
        batch = attention_metrics_batch(grids, mask)
        assert list(batch) == list(attention_metrics(grids[0], mask)), name
        assert_rows_match(batch, [attention_metrics(g, mask) for g in grids])
        # sparsity counts cells above 1/n: exact, not merely close
        assert batch["sparsity"].tolist() == [attention_metrics(g, mask)["sparsity"] for g in grids], name


@pytest.mark.parametrize("shape", SHAPES)
def test_metrics_without_body_batch_matches_the_reference(shape):
    grids = grid_batch(np.random.default_rng(shape[1]), shape)
    batch = metrics_without_body_batch(grids)
    assert all(batch[k] is None for k in BODY_METRICS)
    assert_rows_match(batch, [metrics_without_body(g) for g in grids])


def test_metric_rows_gives_one_dict_of_python_floats_per_map():
    grids = grid_batch(np.random.default_rng(3), (5, 7))
    rows = metric_rows(metrics_without_body_batch(grids), len(grids))
    assert len(rows) == len(grids)
    for row, grid in zip(rows, grids):
        reference = metrics_without_body(grid)
        assert list(row) == list(reference)
        for key, value in row.items():
            assert (value is None) == (reference[key] is None)
            if value is not None:
                assert type(value) is float and value == pytest.approx(reference[key], abs=ATOL)


@pytest.mark.parametrize("shape", SHAPES)
def test_compare_maps_batch_matches_the_reference(shape):
    rng = np.random.default_rng(shape[0] + 7 * shape[1])
    p = grid_batch(rng, shape)
    q = grid_batch(rng, shape)[rng.permutation(len(p))]
    q[0] = p[0]  # also a map against itself
    batch = compare_maps_batch(p, q)
    references = [compare_maps(a, b) for a, b in zip(p, q)]
    assert_rows_match(batch, references, COMPARED)
    assert batch["difference"].shape == p.shape
    np.testing.assert_allclose(batch["difference"], [r["difference"] for r in references], rtol=0, atol=ATOL)
    expected_js = [jensenshannon((a / a.sum()).ravel(), (b / b.sum()).ravel(), base=2) ** 2 for a, b in zip(p, q)]
    np.testing.assert_allclose(batch["js_divergence"], expected_js, rtol=0, atol=ATOL)


@pytest.mark.parametrize("shape", [(1, 9), (5, 7), (16, 16)])
def test_compare_maps_batch_broadcasts_one_map_against_a_batch(shape):
    rng = np.random.default_rng(11)
    p, q = grid_batch(rng, shape)[1], grid_batch(rng, shape)
    for first, second in ((p, q), (q, p)):
        batch = compare_maps_batch(first, second)
        pairs = [(first, g) if first.ndim == 2 else (g, second) for g in q]
        references = [compare_maps(a, b) for a, b in pairs]
        assert_rows_match(batch, references, COMPARED)
        np.testing.assert_allclose(batch["difference"], [r["difference"] for r in references], rtol=0, atol=ATOL)


def test_compare_maps_batch_known_cases():
    one_hot = np.eye(4)[:, None, :]  # (4, 1, 4): disjoint one-hot maps
    batch = compare_maps_batch(one_hot, one_hot[::-1])
    np.testing.assert_allclose(batch["js_divergence"], 1.0, atol=ATOL)  # disjoint: the maximum, 1 in base 2
    same = compare_maps_batch(one_hot, one_hot * 7)
    np.testing.assert_array_equal(same["js_divergence"], 0.0)
    np.testing.assert_allclose(same["pearson"], 1.0, atol=ATOL)
    flat = compare_maps_batch(np.ones((2, 3, 3)), np.stack([np.ones((3, 3)), np.arange(9.0).reshape(3, 3)]))
    assert np.isnan(flat["pearson"]).all()  # a constant map has no correlation


def test_near_identical_maps_give_zero_js_divergence_not_nan():
    # The same map rescaled: equal to rounding after normalising. The true divergence is 0, but
    # scipy's sum can round below zero and its square root then gives NaN (about half of these
    # maps); the batch gives 0 there, and agrees with scipy wherever scipy gives a number.
    p = np.random.default_rng(9).random((200, 16, 16))
    q = p * 3.0
    batch = compare_maps_batch(p, q)["js_divergence"]
    with np.errstate(invalid="ignore"):
        reference = np.array([jensenshannon(a.ravel(), b.ravel(), base=2) ** 2 for a, b in zip(p, q)])
    assert np.isfinite(batch).all() and (batch >= 0).all() and (batch < 1e-15).all()
    assert np.isnan(reference).any()  # the reference's flaw this guards against
    np.testing.assert_allclose(batch[~np.isnan(reference)], reference[~np.isnan(reference)], rtol=0, atol=ATOL)


def test_a_batch_of_one():
    grid = np.random.default_rng(5).gamma(0.5, size=(16, 16))
    mask = ellipse((16, 16))
    assert_rows_match(attention_metrics_batch(grid[None], mask), [attention_metrics(grid, mask)])
    other = np.random.default_rng(6).gamma(0.5, size=(16, 16))
    assert_rows_match(compare_maps_batch(grid[None], other[None]), [compare_maps(grid, other)], COMPARED)
    assert_rows_match(compare_maps_batch(grid, other), [compare_maps(grid, other)], COMPARED)


def test_an_empty_batch_gives_empty_arrays():
    empty = np.zeros((0, 16, 16))
    for batch in (attention_metrics_batch(empty), attention_metrics_batch(empty, ellipse((16, 16))),
                  metrics_without_body_batch(empty)):
        for key, value in batch.items():
            assert value is None or (value.shape == (0,) and value.dtype == np.float64), key
    assert metric_rows(metrics_without_body_batch(empty), 0) == []
    compared = compare_maps_batch(empty, empty)
    assert all(compared[k].shape == (0,) for k in COMPARED)
    assert compared["difference"].shape == (0, 16, 16)
    assert compare_maps_batch(np.ones((16, 16)), empty)["l2"].shape == (0,)


@pytest.mark.parametrize("bad, why", [(-1.0, "negative or non-finite"), (np.nan, "negative or non-finite"),
                                      (np.inf, "negative or non-finite"), (0.0, "sums to zero")])
def test_validation_names_the_first_failing_grid(bad, why):
    grids = np.random.default_rng(8).random((6, 5, 7))
    for i in (4, 2):  # two failing grids: the first is named
        if why == "sums to zero":
            grids[i] = 0.0
        else:
            grids[i, 1, 3] = bad
    with pytest.raises(ValueError, match=f"attention grid 2 has {why}" if why != "sums to zero" else
                       "attention grid 2 sums to zero"):
        attention_metrics_batch(grids)
    with pytest.raises(ValueError, match="attention grid 2 "):
        metrics_without_body_batch(grids)
    good = np.ones((6, 5, 7))
    with pytest.raises(ValueError, match="attention grid 2 of q"):
        compare_maps_batch(good, grids)
    with pytest.raises(ValueError, match="attention grid 2 of p"):
        compare_maps_batch(grids, good)


def test_validation_of_shapes():
    with pytest.raises(ValueError, match="batch of 2-D grids"):
        attention_metrics_batch(np.ones((4, 4)))
    with pytest.raises(ValueError, match="does not match the grid"):
        attention_metrics_batch(np.ones((2, 4, 4)), np.ones((5, 5), dtype=bool))
    with pytest.raises(ValueError, match="maps differ in shape"):
        compare_maps_batch(np.ones((2, 4, 4)), np.ones((2, 4, 5)))
    with pytest.raises(ValueError, match="batches differ in length"):
        compare_maps_batch(np.ones((2, 4, 4)), np.ones((3, 4, 4)))
