"""compute.metrics.calibration against hand-computed cases and brute-force definitions."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu

from compute.metrics import calibration as cal


def _pairwise_auroc(p, y):
    """The definition: over every (yes, no) pair, 1 when the yes item scores higher, 1/2 for a tie."""
    yes, no = p[y][:, None], p[~y][None, :]
    return float(((yes > no) + 0.5 * (yes == no)).mean())


def test_brier_and_reliability_by_hand():
    p = [0.05, 0.15, 0.15, 0.95, 1.0]
    y = np.array([False, True, False, True, True])
    assert cal.brier_score(p, y) == pytest.approx((0.05**2 + 0.85**2 + 0.15**2 + 0.05**2 + 0) / 5)
    bins = cal.reliability_bins(p, y)
    assert bins["n"].tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins.loc[1, "mean_p_yes"] == pytest.approx(0.15) and bins.loc[1, "observed_yes"] == 0.5
    assert bins.loc[9, "mean_p_yes"] == pytest.approx(0.975) and bins.loc[9, "observed_yes"] == 1.0
    assert math.isnan(bins.loc[2, "mean_p_yes"])
    # ECE: 1/5 * |0.05 - 0| + 2/5 * |0.15 - 0.5| + 2/5 * |0.975 - 1|
    assert cal.expected_calibration_error(p, y) == pytest.approx(0.01 + 0.14 + 0.01)


def test_bin_edges_are_half_open_but_the_last_is_closed():
    bins = cal.reliability_bins([0.0, 0.1, 0.2, 0.9, 1.0], np.array([True] * 5))
    assert bins["n"].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 2]


def test_perfectly_calibrated_scores_have_zero_ece():
    p = np.repeat([0.25, 0.75], 4)
    y = np.array([True, False, False, False, True, True, True, False])
    assert cal.expected_calibration_error(p, y) == pytest.approx(0.0)


def test_roc_curve_by_hand_with_a_tie():
    roc = cal.roc_curve([0.9, 0.8, 0.8, 0.1], np.array([True, False, True, False]))
    assert roc["threshold"].tolist() == [np.inf, 0.9, 0.8, 0.1]
    assert roc["fpr"].tolist() == [0.0, 0.0, 0.5, 1.0]
    assert roc["tpr"].tolist() == [0.0, 0.5, 1.0, 1.0]
    assert cal.roc_curve([0.2, 0.3], np.array([True, True])).empty


def test_auroc_is_the_pairwise_definition_and_the_area_under_the_curve():
    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.3
    p = np.round(np.clip(0.2 * y + rng.random(300) * 0.8, 0, 1), 1)  # rounded: many ties
    assert cal.auroc(p, y) == pytest.approx(_pairwise_auroc(p, y))
    u = mannwhitneyu(p[y], p[~y]).statistic
    assert cal.auroc(p, y) == pytest.approx(u / (y.sum() * (~y).sum()))
    roc = cal.roc_curve(p, y)
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(cal.auroc(p, y))
    assert math.isnan(cal.auroc(p, np.ones(300, bool)))


def test_the_bootstrap_statistic_is_the_pairwise_auroc_of_each_resample():
    rng = np.random.default_rng(5)
    yes, no = np.round(rng.random(30), 1), np.round(rng.random(20) * 0.8, 1)  # ties within and across
    statistic = cal._Auroc(yes, no)
    drawn_yes, drawn_no = rng.integers(0, 30, (7, 30)), rng.integers(0, 20, (7, 20))  # the items each draws
    expected = [_pairwise_auroc(np.r_[yes[a], no[b]], np.r_[np.ones(30, bool), np.zeros(20, bool)])
                for a, b in zip(drawn_yes, drawn_no, strict=True)]
    np.testing.assert_allclose(statistic(drawn_yes, drawn_no, axis=-1), expected)
    np.testing.assert_allclose(statistic(drawn_yes.T, drawn_no.T, axis=0), expected)


def test_auroc_interval_matches_a_brute_force_stratified_bootstrap():
    rng = np.random.default_rng(4)
    y = rng.random(160) < 0.4
    p = np.clip(0.25 * y + rng.random(160) * 0.75, 0, 1)
    low, high = cal.auroc_interval(p, y, n_resamples=2000)
    assert low < cal.auroc(p, y) < high
    yes, no = p[y], p[~y]
    draws = []
    for _ in range(2000):
        a, b = rng.choice(yes, len(yes)), rng.choice(no, len(no))
        both = np.r_[a, b]
        draws.append(_pairwise_auroc(both, np.r_[np.ones(len(a), bool), np.zeros(len(b), bool)]))
    ref_low, ref_high = np.percentile(draws, [2.5, 97.5])
    assert low == pytest.approx(ref_low, abs=0.015) and high == pytest.approx(ref_high, abs=0.015)
    assert cal.auroc_interval(p, y, n_resamples=2000) == (low, high)  # seeded: the same interval again


def test_auroc_interval_needs_two_of_each_class():
    assert cal.auroc_interval([0.9, 0.8, 0.1], np.array([True, False, False])) is None
    assert cal.auroc_interval([0.9, 0.8, 0.2, 0.1], np.array([True, True, False, False])) == (1.0, 1.0)


def test_confusion_matrix_at_a_threshold_by_hand():
    p = [0.9, 0.6, 0.5, 0.4, 0.2]
    y = np.array([True, False, True, True, False])
    m = cal.at_threshold(p, y, 0.5)  # "yes" at P(yes) >= 0.5: 0.9, 0.6, 0.5
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 1)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(1 / 2)
    assert m["ppv"] == pytest.approx(2 / 3) and m["npv"] == pytest.approx(1 / 2)
    none_said_yes = cal.at_threshold(p, y, 0.95)
    assert none_said_yes["tp"] + none_said_yes["fp"] == 0 and math.isnan(none_said_yes["ppv"])


@pytest.mark.parametrize("p, y, problem", [
    ([0.5, 1.2], [True, False], "within"),
    ([0.5, float("nan")], [True, False], "finite"),
    ([0.5], [True, False], "same length"),
    ([0.5, 0.4], [1, 0], "boolean"),
])
def test_bad_values_are_refused(p, y, problem):
    with pytest.raises(ValueError, match=problem):
        cal.brier_score(p, np.asarray(y))


def test_summary_by_groups_with_a_missing_value_group():
    frame = pd.DataFrame({"view": ["PA", "PA", "PA", "PA", None, None],
                          "p_yes": [0.9, 0.8, 0.2, 0.1, 0.7, 0.3],
                          "truth": [True, True, False, False, False, True]})
    table = cal.summary_by(frame, ["view"])
    assert table["n"].tolist() == [2, 4] or table["n"].tolist() == [4, 2]
    pa = table[table["view"] == "PA"].iloc[0]
    assert pa["auroc"] == 1.0 and pa["brier"] == pytest.approx((0.01 + 0.04 + 0.04 + 0.01) / 4)
    missing = table[table["view"].isna()].iloc[0]
    assert missing["auroc"] == 0.0 and math.isnan(missing["auroc_low"])  # one of each class: no interval
