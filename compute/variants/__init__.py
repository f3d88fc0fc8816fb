"""Meaning-preserving rewrites of yes/no questions, for the phrasing-sensitivity study."""

from compute.variants.generate import CATEGORIES, Variant, generate_variants

__all__ = ["CATEGORIES", "Variant", "generate_variants"]
