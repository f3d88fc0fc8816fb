"""Which strategy answers: chosen from the configuration, never from the study's name."""

from __future__ import annotations

from compute.answering.answerer import Answerer
from compute.answering.engine import PrefixSharedEngine, engine_supports
from compute.answering.generate import BatchedGenerate
from compute.config import AnswerConfig
from compute.maps import MapSpec
from compute.model.families.base import Family
from compute.model.session import Session


class AnswererChoiceError(ValueError):
    """The strategy asked for cannot make the maps asked for."""


def strategy_for(config: AnswerConfig, maps: MapSpec | None, family: Family | None = None) -> str:
    """The strategy that will answer: "auto" is the prefix-shared engine wherever it can make
    the maps (answer-position attention, or none) for this family, else the batched generate."""
    if config.strategy == "auto":
        return "prefix-shared" if engine_supports(maps, family) else "generate"
    if config.strategy == "prefix-shared" and family is not None and not engine_supports(None, family):
        raise AnswererChoiceError(f"--answerer prefix-shared: on {family.name} the image attends to the question, "
                                  "so its cache cannot be shared; use --answerer generate (or auto)")
    if config.strategy == "prefix-shared" and not engine_supports(maps):
        asked = f"--query {maps.query}" if maps.query != "answer" else "--sink-factor"
        raise AnswererChoiceError("--answerer prefix-shared reads answer-position attention only, without sink "
                                  f"detection; with {asked} use --answerer generate (or auto)")
    return config.strategy


def make_answerer(session: Session, config: AnswerConfig, maps: MapSpec | None = None) -> Answerer:
    if strategy_for(config, maps, session.family) == "generate":
        return BatchedGenerate(session, maps, max_batch=config.batch_size)
    generate = BatchedGenerate(session, max_batch=config.batch_size)
    return PrefixSharedEngine(session, maps, generate_text=generate.texts, full_replies=config.full_replies,
                              max_batch=max(config.batch_size * 8, 8))
