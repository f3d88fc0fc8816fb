"""Meaning-preserving rewrites of yes/no questions, for the phrasing-sensitivity study."""

from .generate import CATEGORIES, Variant, generate_variants
from .parse import ParsedQuestion, UnparseableQuestionError, parse_question

__all__ = ["CATEGORIES", "ParsedQuestion", "UnparseableQuestionError", "Variant", "generate_variants",
           "parse_question"]
