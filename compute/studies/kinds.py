"""What makes each study itself: how its items come from the manifest's, and what runs over
its stored results afterwards. Everything else is the one loop in compute.studies.run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from compute.config import RunConfig
from compute.data.manifest import ManifestItem
from compute.studies.attention_change import run_attention_change
from compute.studies.phrasing import expand_items
from vocabulary import Study


@dataclass(frozen=True)
class StudyKind:
    name: str
    # (manifest items, config) -> (the items to answer, notes for the user)
    items: Callable[[list[ManifestItem], RunConfig], tuple[list[ManifestItem], list[str]]]
    # (store, run id, config, log) -> None: runs once every item is answered
    after: Callable[[Path, str, RunConfig, Callable[[str], None]], None] | None = None


def _as_asked(items: list[ManifestItem], config: RunConfig) -> tuple[list[ManifestItem], list[str]]:
    return items, []


def _with_variants(items: list[ManifestItem], config: RunConfig) -> tuple[list[ManifestItem], list[str]]:
    return expand_items(items, config.variants)


def _attention_change(db: Path, run_id: str, config: RunConfig, log: Callable[[str], None]) -> None:
    if config.maps.enabled:
        compared = run_attention_change(db, run_id)
        log(f"attention change: {compared} variant maps compared with their baseline's")


STUDY_KINDS: dict[str, StudyKind] = {
    Study.BASELINE: StudyKind(Study.BASELINE, _as_asked),  # every manifest question asked once
    Study.PHRASING: StudyKind(Study.PHRASING, _with_variants, _attention_change),  # each question plus its rewrites
}
