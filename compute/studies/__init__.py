"""The studies: each reads a manifest, answers through an Answerer, and writes to the store.

Re-exported lazily: `compute.studies.import_results` needs no torch, and importing it must
not load it."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TooManyFailuresError": "compute.studies.failures",
    "STUDY_KINDS": "compute.studies.kinds", "StudyKind": "compute.studies.kinds",
    "OptionError": "compute.studies.options", "check_options": "compute.studies.options",
    "RunSummary": "compute.studies.run", "run_study": "compute.studies.run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'compute.studies' has no attribute {name!r}")
