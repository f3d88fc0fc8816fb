"""The model: loading, the session (prompts checked and tokenized), yes/no scoring, answer extraction.

Re-exported lazily: `compute.model.provenance` and `compute.model.answers` need no torch, and
importing them must not load it."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Answer": "compute.model.answers", "extract_answer": "compute.model.answers",
    "ModelNotAvailableError": "compute.model.loading", "load_model": "compute.model.loading",
    "load_model_config": "compute.model.loading",
    "PromptError": "compute.model.session", "Session": "compute.model.session",
    "build_messages": "compute.model.prompts",
    "yes_no_probabilities": "compute.model.yes_no", "yes_no_token_ids": "compute.model.yes_no",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'compute.model' has no attribute {name!r}")
