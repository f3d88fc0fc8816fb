"""One renderer per study condition, keyed by the condition's key."""

from __future__ import annotations

from compute.data.conditions import CONDITION_KEYS
from compute.demo.synth.findings import airspace, pleural, volume
from compute.demo.synth.findings.base import FindingRenderer, Lesion, Placement

RENDERERS: dict[str, FindingRenderer] = {r.key: r for r in (*airspace.RENDERERS, *pleural.RENDERERS, *volume.RENDERERS)}

_missing = set(CONDITION_KEYS) ^ set(RENDERERS)
if _missing:
    raise RuntimeError(f"finding renderers and condition lexicon disagree on: {', '.join(sorted(_missing))}")

__all__ = ["RENDERERS", "FindingRenderer", "Lesion", "Placement"]
