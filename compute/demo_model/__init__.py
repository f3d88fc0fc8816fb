"""A tiny Gemma-3 model with MedGemma's interfaces, built locally (no model hub)."""

from .build import build_demo_model
from .config import DemoModelConfig
from .corpus import question_corpus

__all__ = ["DemoModelConfig", "build_demo_model", "question_corpus"]
