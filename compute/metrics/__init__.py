"""Metrics: pure functions of arrays."""

from compute.metrics.attention import BODY_METRICS, attention_metrics, compare_maps, metrics_without_body

__all__ = ["BODY_METRICS", "attention_metrics", "compare_maps", "metrics_without_body"]
