"""Command-line options generated from configuration dataclasses, and the dataclasses built back.

A field becomes an option when its metadata has "help"; the other keys are optional:

    flag      the option string (default: "--" + the field name with dashes)
    aliases   more option strings
    range     (low, high) for an int field: whole numbers in that range only
    choices   the allowed values
    metavar   the value's name in --help

The help text is formatted with str.format: "{default}" is the field's default, and the
other fields' defaults by their names. The option's type, default and whether it is
required follow the field: no default means required; `X | None` takes X; a bool field
gets a flag without a value, which switches it on, or off where its default is True
(`MapConfig.enabled` and `--no-maps`). Nested dataclass fields are built from their own
options, and fields without help keep their defaults.
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import MISSING, Field, fields, is_dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def bounded_int(low: int, high: int):
    """An argparse type: a whole number from low to high."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value
    return parse


def add_options(parser: argparse.ArgumentParser, cls: type, title: str,
                description: str | None = None) -> argparse._ArgumentGroup:
    """One argument group with an option per documented field of the dataclass `cls`."""
    group = parser.add_argument_group(title, description)
    hints = typing.get_type_hints(cls)
    defaults = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
    for f in fields(cls):
        meta = f.metadata
        if "help" not in meta:
            continue
        default = _default(f)
        kwargs: dict[str, Any] = {
            "dest": option_dest(f),
            "help": meta["help"].format(**defaults, default=default).replace("%", "%%"),
        }
        value_type = _without_none(hints[f.name])
        if value_type is bool:
            kwargs["action"] = "store_true"  # given: the field's default flipped (see build)
        else:
            if default is MISSING:
                kwargs["required"] = True
            else:
                kwargs["default"] = default
            if "range" in meta:
                kwargs["type"] = bounded_int(*meta["range"])
            elif value_type is not str:
                kwargs["type"] = value_type
            if "choices" in meta:  # plain strings, so that an error lists 'answer', not <Query.ANSWER: 'answer'>
                kwargs["choices"] = [str(c) if isinstance(c, str) else c for c in meta["choices"]]
            if "metavar" in meta:
                kwargs["metavar"] = meta["metavar"]
        group.add_argument(option_flag(f), *meta.get("aliases", ()), **kwargs)
    return group


def build(cls: type[T], namespace: argparse.Namespace) -> T:
    """The dataclass `cls` from the options `add_options` added for it and its nested dataclasses."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):
        if "help" in f.metadata:
            value = getattr(namespace, option_dest(f))
            if _without_none(hints[f.name]) is bool:
                value = (not f.default) if value else f.default
            values[f.name] = value
        elif is_dataclass(hints[f.name]):
            values[f.name] = build(hints[f.name], namespace)
    return cls(**values)


def option_flag(f: Field) -> str:
    return f.metadata.get("flag", "--" + f.name.replace("_", "-"))


def option_dest(f: Field) -> str:
    """The namespace attribute: the flag with underscores, as argparse names it."""
    return option_flag(f).lstrip("-").replace("-", "_")


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else MISSING


def _without_none(annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType):
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    return annotation
