"""A tiny Gemma-3 model with MedGemma's interfaces, built locally (no model hub)."""

from compute.demo.model.build import build_demo_model
from compute.demo.model.config import DemoModelConfig
from compute.demo.model.corpus import question_corpus

__all__ = ["DemoModelConfig", "build_demo_model", "question_corpus"]
