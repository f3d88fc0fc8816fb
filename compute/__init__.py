"""Run MedGemma-style models over chest X-ray questions and record what they do.

The data path, one subpackage per stage: `data` (manifests, images) -> `variants` (rewrites)
-> `model` (loading, prompts, yes/no scoring) -> `answering` (batched generate or the
prefix-shared engine) -> `maps` (where the model looked) -> `metrics` (pure) -> `studies`
(runs into the store) -> `reports`. `demo` holds the synthetic X-rays and the demo model,
`benchmarks` the measured comparisons. Nothing here imports torch until a model is loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

from compute.config import DecodeConfig, ModelSpec, PromptConfig, RunConfig

_LAZY = {  # name -> module that defines it; imported on first use (they need torch)
    "ModelNotAvailableError": "compute.model.loading",
    "load_model": "compute.model.loading",
    "Session": "compute.model.session",
    "AskResult": "compute.answering.answerer",
    "ask": "compute.answering.generate",
    "BatchedGenerate": "compute.answering.generate",
    "PrefixSharedEngine": "compute.answering.engine",
    "run_study": "compute.studies.run",
}

__all__ = ["AskResult", "BatchedGenerate", "DecodeConfig", "ModelNotAvailableError", "ModelSpec",
           "PrefixSharedEngine", "PromptConfig", "RunConfig", "Session", "ask", "load_model", "run_study"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'compute' has no attribute {name!r}")
