"""Benchmarks: commands that print measured figures. `protocol` is the original study's
one-variant-at-a-time protocol, kept only as the reference the engine is measured against."""
