"""One small module per model family, picked from the checkpoint's `model_type`.

Adding a family: one module here with a Family subclass (see base.py for what it can say),
its name in FAMILY_MODULES, a tiny-model builder in compute/model/tiny/, and its tests."""

from __future__ import annotations

import importlib

from compute.model.families.base import Family

FAMILY_MODULES = ("gemma3", "paligemma", "qwen2_5_vl", "llava", "idefics3", "internvl")


class UnsupportedModelError(ValueError):
    """The checkpoint's model_type is not one of the supported families."""


def families() -> list[Family]:
    found = []
    for name in FAMILY_MODULES:
        try:
            found.append(importlib.import_module(f"compute.model.families.{name}").FAMILY)
        except ModuleNotFoundError as exc:
            if exc.name != f"compute.model.families.{name}":
                raise
    return found


def supported_model_types() -> list[str]:
    return sorted(t for f in families() for t in f.model_types)


def family_for(config) -> Family:
    """The family of a model configuration, from its `model_type`."""
    model_type = getattr(config, "model_type", None)
    for family in families():
        if model_type in family.model_types:
            return family
    raise UnsupportedModelError(f"model_type {model_type!r} is not a supported model family; supported: "
                                f"{', '.join(supported_model_types())}")
