"""Metrics: pure functions of arrays."""

from .attention import attention_metrics, compare_maps

__all__ = ["attention_metrics", "compare_maps"]
