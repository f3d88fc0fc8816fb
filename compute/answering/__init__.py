"""Answering: one Answerer interface, two strategies (batched generate, prefix-shared engine)."""

from compute.answering.answerer import Answerer, AskResult, GenerateText, Group, ImageSource
from compute.answering.choose import AnswererChoiceError, make_answerer, strategy_for
from compute.answering.engine import PrefixSharedEngine, engine_supports
from compute.answering.generate import BatchedGenerate, ask

__all__ = ["Answerer", "AnswererChoiceError", "AskResult", "BatchedGenerate", "GenerateText", "Group", "ImageSource",
           "PrefixSharedEngine", "ask", "engine_supports", "make_answerer", "strategy_for"]
