"""Run MedGemma-style models over chest X-ray questions and record what they do."""

from . import answers
from .config import DecodeConfig, ModelSpec, PromptConfig, RunConfig
from .loading import ModelNotAvailableError, load_model

__all__ = ["DecodeConfig", "ModelNotAvailableError", "ModelSpec", "PromptConfig", "RunConfig", "answers",
           "load_model"]
