"""The studies: each reads a manifest, runs a session, and writes to the store."""

from .baseline import RunSummary, run_baseline

__all__ = ["RunSummary", "run_baseline"]
