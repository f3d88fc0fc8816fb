"""Values checked at the edge, before they reach the model or SQL: whole numbers in range,
text that is text, run names. Each check returns the clean value or raises ValueError with
a message that names the field and quotes the value."""

from __future__ import annotations

import math
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

INT32_MAX = 2**31 - 1  # the store's INTEGER columns
MAX_FIELD_CHARS = 20_000  # one manifest or import cell; a question is a sentence or two
MAX_RUN_NAME_CHARS = 200


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def whole_number(value: Any, name: str, low: int = 0, high: int = INT32_MAX) -> int:
    """An integer in [low, high] from an int, an integral float (3.0) or text ("3", " 3 ",
    "3.0"), never rounded or truncated: 1.7, "1.7", NaN, inf, True and 1e10 (out of range)
    are refused."""
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = int(value) if math.isfinite(value) and value.is_integer() else None
    elif isinstance(value, Decimal):  # a JSON number, read exactly
        number = _integral(value)
    elif isinstance(value, str):
        number = _integral_text(value)
    if number is None:
        raise ValueError(f"{name} must be a whole number, got {_shown(value)}")
    if not low <= number <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {_shown(value)}")
    return number


def _integral_text(value: str) -> int | None:
    if len(value) > 100:
        return None
    try:
        exact = Decimal(value.strip())
    except InvalidOperation:
        return None
    return _integral(exact)


def _integral(exact: Decimal) -> int | None:
    if not exact.is_finite() or exact != exact.to_integral_value():
        return None
    if exact.adjusted() > 18:  # out of any range we take; int() of 1e999999999 would not finish
        return int(math.copysign(10**19, exact))
    return int(exact)


def text(value: Any, name: str, max_chars: int = MAX_FIELD_CHARS) -> str | None:
    """Stripped text, or None for a blank value. Numbers become their text; lists, objects,
    booleans, non-finite numbers, NUL characters and over-long text are refused."""
    if blank(value):
        return None
    if isinstance(value, (dict, list, bool)) or (isinstance(value, (float, Decimal)) and not math.isfinite(value)):
        raise ValueError(f"{name} must be text, got {type(value).__name__} {_shown(value)}")
    out = str(value).strip()
    if "\x00" in out:
        raise ValueError(f"{name} contains a NUL character (at character {out.index(chr(0)) + 1})")
    if len(out) > max_chars:
        raise ValueError(f"{name} is {len(out):,} characters long; at most {max_chars:,} are accepted")
    return out


def utf8(value: object, name: str, remedy: str = "rename it") -> str:
    """str(value), which must be storable text: a path with bytes that are not UTF-8 comes
    from the file system as unpaired surrogates, which no database column can hold."""
    out = str(value)
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"the {name} {out!r} is not valid UTF-8 text (a name with bytes that are not UTF-8?); "
                         f"{remedy}") from None
    return out


def run_name(value: str) -> str:
    """A run name as given: printable, not blank, no surrounding spaces, at most 200 characters."""
    if value is None or not value.strip():
        raise ValueError("the run name is empty; give --run a name such as medgemma-baseline")
    if value != value.strip():
        raise ValueError(f"the run name {value!r} starts or ends with white space; remove it")
    if len(value) > MAX_RUN_NAME_CHARS:
        raise ValueError(f"the run name is {len(value)} characters long; at most {MAX_RUN_NAME_CHARS} are accepted")
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")), None)
    if bad is not None:
        raise ValueError(f"the run name {value!r} contains the control or invisible character U+{ord(bad):04X}; "
                         "use printable text")
    return value


def _shown(value: Any, limit: int = 60) -> str:
    shown = str(value) if isinstance(value, Decimal) else repr(value)
    return shown if len(shown) <= limit else shown[:limit] + "…"
