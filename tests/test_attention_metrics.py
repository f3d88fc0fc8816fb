"""Attention metrics against hand-computed cases and scipy; body mask and regions."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import pearsonr

from compute.metrics import attention_metrics, compare_maps
from compute.metrics.regions import body_mask, grid_regions, mask_to_grid
from compute.demo.synth import render_case


def test_uniform_grid():
    m = attention_metrics(np.ones((4, 4)))
    assert m["attention_entropy"] == pytest.approx(math.log(16))
    assert m["normalized_entropy"] == pytest.approx(1.0)
    assert m["focus_score"] == pytest.approx(1 / (1 + math.log(16)))
    assert m["peak_to_average"] == pytest.approx(1.0)
    assert m["sparsity"] == 0.0  # no cell is above 1/N
    assert m["border_fraction"] == pytest.approx(12 / 16)  # 12 of 16 cells are on the outer ring
    assert m["inside_body_ratio"] == 1.0
    assert m["right_lung_fraction"] == pytest.approx(0.5) and m["left_lung_fraction"] == pytest.approx(0.5)
    # 4 rows in thirds of 4/3: row centres 0.5 | 1.5, 2.5 | 3.5 -> 1, 2 and 1 rows
    assert (m["apical_fraction"], m["middle_fraction"], m["basal_fraction"]) == pytest.approx((0.25, 0.5, 0.25))


def test_hand_computed_grid_with_body_mask():
    grid = np.zeros((4, 4))
    grid[0, 0] = 2.0  # corner: outside the body, on the border
    grid[1, 1] = 1.0  # image-left inside the body: the patient's right
    grid[2, 2] = 1.0  # image-right inside the body: the patient's left
    body = np.zeros((4, 4), dtype=bool)
    body[1:3, 1:3] = True
    m = attention_metrics(grid, body)
    assert m["inside_body_ratio"] == pytest.approx(0.5)  # taken before masking: not 1 by construction
    assert m["border_fraction"] == pytest.approx(0.5)  # taken before any stripping: not 0 by construction
    h = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert m["attention_entropy"] == pytest.approx(h)
    assert m["normalized_entropy"] == pytest.approx(h / math.log(16))
    assert m["peak_to_average"] == pytest.approx(0.5 * 16)
    assert m["sparsity"] == pytest.approx(3 / 16)
    assert m["right_lung_fraction"] == pytest.approx(0.25) and m["left_lung_fraction"] == pytest.approx(0.25)
    # body rows 1..2: thirds of 2/3 row -> row 1 apical, row 2 basal, nothing in the middle third's centre
    assert m["apical_fraction"] == pytest.approx(0.25) and m["basal_fraction"] == pytest.approx(0.25)


def test_compare_maps_against_scipy():
    rng = np.random.default_rng(0)
    p, q = rng.random((16, 16)), rng.random((16, 16))
    c = compare_maps(p, q)
    pn, qn = p / p.sum(), q / q.sum()
    assert c["js_divergence"] == pytest.approx(jensenshannon(pn.ravel(), qn.ravel(), base=2) ** 2)
    assert c["pearson"] == pytest.approx(pearsonr(pn.ravel(), qn.ravel()).statistic)
    assert c["l2"] == pytest.approx(np.linalg.norm(pn - qn))
    assert c["cosine"] == pytest.approx(pn.ravel() @ qn.ravel() / np.linalg.norm(pn) / np.linalg.norm(qn))
    np.testing.assert_allclose(c["difference"], qn - pn)


def test_js_divergence_bounds_by_hand():
    a = np.array([[1.0, 0.0]])
    b = np.array([[0.0, 1.0]])
    assert compare_maps(a, b)["js_divergence"] == pytest.approx(1.0)  # disjoint: the base-2 maximum
    assert compare_maps(a, a)["js_divergence"] == pytest.approx(0.0)
    half = np.array([[0.5, 0.5]])  # mixture M = (3/4, 1/4); JS = (KL(a||M) + KL(half||M)) / 2 in bits
    expected = 0.5 * math.log2(1 / 0.75) + 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25))
    assert compare_maps(a, half)["js_divergence"] == pytest.approx(expected)


def test_bad_grids_are_refused():
    with pytest.raises(ValueError, match="sums to zero"):
        attention_metrics(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="negative"):
        attention_metrics(np.array([[1.0, -1.0]]))
    with pytest.raises(ValueError, match="does not match the grid"):
        attention_metrics(np.ones((4, 4)), np.ones((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="differ in shape"):
        compare_maps(np.ones((2, 2)), np.ones((4, 1)))


def test_body_mask_matches_the_generators_body():
    for seed in range(4):
        case = render_case(np.random.default_rng(seed), 256, [])
        found, truth = body_mask(case.image), case.anatomy["body"]
        iou = (found & truth).sum() / (found | truth).sum()
        assert iou > 0.9, f"seed {seed}: body mask IoU {iou:.3f}"
        cells = mask_to_grid(found, (16, 16))
        assert cells.shape == (16, 16) and 0 <= cells.min() and cells.max() <= 1


def test_regions_follow_patient_sides():
    body = np.zeros((6, 8), dtype=bool)
    body[:, 2:8] = True  # body spans columns 2..7; its midline is at column 5
    r = grid_regions((6, 8), body)
    assert r.patient_right[:, 2:5].all() and not r.patient_right[:, 5:].any()  # image-left = patient's right
    assert r.patient_left[:, 5:8].all() and not r.patient_left[:, :5].any()
    assert r.apical[:2].sum() == 12 and r.middle[2:4].sum() == 12 and r.basal[4:].sum() == 12
    assert not (r.apical | r.middle | r.basal)[:, :2].any()  # regions stay inside the body
    odd = grid_regions((2, 5))  # five columns: the middle one straddles the midline
    assert odd.patient_right[0].tolist() == [True, True, False, False, False]
    assert odd.patient_left[0].tolist() == [False, False, False, True, True]


def test_near_equal_maps_have_zero_js_divergence_not_nan():
    """scipy's jensenshannon takes the square root of a sum that rounds below zero for maps equal up to
    scale, and returns NaN about half the time; a variant whose map did not move must compare as 0."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        p = rng.dirichlet(np.ones(256)).reshape(16, 16)
        assert compare_maps(p, 3 * p)["js_divergence"] == pytest.approx(0.0, abs=1e-12)
