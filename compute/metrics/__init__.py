"""Metrics: pure functions of arrays and tables (numpy, scipy, pandas in; numbers out)."""

from compute.metrics.attention import attention_metrics, compare_maps, metrics_without_body, normalise
from compute.metrics.attention_change import answer_change, by_change_type, change_tests, correctness_change
from compute.metrics.phrasing import accuracy_by, group_table, mcnemar_by_category, most_sensitive_groups
from compute.metrics.regions import NoBodyError, body_cells, body_mask, mask_to_grid
from compute.metrics.stats import holm, mcnemar_exact, wilson_interval
from vocabulary import BODY_METRICS

__all__ = ["BODY_METRICS", "NoBodyError", "accuracy_by", "answer_change", "attention_metrics", "body_cells", "body_mask",
           "by_change_type", "change_tests", "compare_maps", "correctness_change", "group_table", "holm", "mask_to_grid",
           "mcnemar_by_category", "mcnemar_exact", "metrics_without_body", "most_sensitive_groups", "normalise",
           "wilson_interval"]
