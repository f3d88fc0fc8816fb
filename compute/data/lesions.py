"""Where a finding is on its image: radiologists' boxes and lesion masks from the manifest.

A manifest row may carry `boxes`, a list of {x_min, y_min, x_max, y_max} in the original
image's pixels (optionally with `label` and `rad_id`), and `mask`: the path of a mask image
(nonzero pixels are the lesion; relative to the image root, like `image`) or a SIIM-style
run-length string (pairs of start and length over the column-major pixels, each start
counted from the end of the previous run; "-1" means no lesion). `lesion_pixels` turns either
into a boolean mask of the image's own size. The maps' grids cover the whole image (the
processor resizes without cropping), so this mask goes onto a grid through the same
`mask_to_grid` as the body mask, and a box lands on the cells the model saw it in.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from compute.data.validate import text

RLE = re.compile(r"^\s*-?\d+(?:\s+\d+)*\s*$")
NO_LESION_RLE = "-1"
MAX_BOXES = 1000


@dataclass(frozen=True)
class Box:
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    label: str | None = None
    rad_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"x_min": self.x_min, "y_min": self.y_min, "x_max": self.x_max, "y_max": self.y_max}
        if self.label is not None:
            out["label"] = self.label
        if self.rad_id is not None:
            out["rad_id"] = self.rad_id
        return out


def parse_boxes(value: Any) -> tuple[Box, ...]:
    """Boxes from a manifest cell: a list of objects, or that list as JSON text (CSV)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise ValueError(f"boxes is not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, list):
        raise ValueError(f"boxes must be a list of {{x_min, y_min, x_max, y_max}} objects, got {type(value).__name__}")
    if len(value) > MAX_BOXES:
        raise ValueError(f"boxes holds {len(value)} boxes; at most {MAX_BOXES} are read")
    return tuple(_box(b, i) for i, b in enumerate(value, start=1))


def _box(raw: Any, number: int) -> Box:
    if not isinstance(raw, dict):
        raise ValueError(f"box {number} must be an object with x_min, y_min, x_max, y_max, got {raw!r:.60}")
    coords = {}
    for key in ("x_min", "y_min", "x_max", "y_max"):
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
            raise ValueError(f"box {number}: {key} must be a number, got {value!r:.40}")
        try:
            number_value = float(value)
        except ValueError:
            raise ValueError(f"box {number}: {key} must be a number, got {value!r:.40}") from None
        if not math.isfinite(number_value) or number_value < 0:
            raise ValueError(f"box {number}: {key} must be a finite number of pixels from 0, got {value!r:.40}")
        coords[key] = number_value
    if coords["x_max"] <= coords["x_min"] or coords["y_max"] <= coords["y_min"]:
        raise ValueError(f"box {number} is empty: x {coords['x_min']:g}-{coords['x_max']:g}, "
                         f"y {coords['y_min']:g}-{coords['y_max']:g} (x_max and y_max must exceed x_min and y_min)")
    label, rad = raw.get("label"), raw.get("rad_id")
    return Box(**coords, label=None if label is None else text(label, "box label"),
               rad_id=None if rad is None else text(rad, "box rad_id"))


def is_rle(mask: str) -> bool:
    return bool(RLE.match(mask))


def merge_rle(masks: list[str]) -> str:
    """One SIIM run-length string for the union of several (a finding in several pieces, one
    per row of train-rle.csv); "-1" when none has a run. Needs no image size: runs are merged
    as absolute pixel intervals and written back relative."""
    intervals = []
    for mask in masks:
        if not is_rle(mask):
            raise ValueError(f"not a run-length mask: {mask[:40]!r}")
        if mask.strip() == NO_LESION_RLE:
            continue
        numbers = [int(n) for n in mask.split()]
        if len(numbers) % 2:
            raise ValueError(f"the run-length mask has {len(numbers)} numbers; it needs start-length pairs")
        position = 0
        for start, length in zip(numbers[::2], numbers[1::2]):
            position += start
            intervals.append((position, position + length))
            position += length
    merged: list[list[int]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    if not merged:
        return NO_LESION_RLE
    out, previous_end = [], 0
    for start, end in merged:
        out += [start - previous_end, end - start]
        previous_end = end
    return " ".join(map(str, out))


def boxes_pixels(boxes: tuple[Box, ...], width: int, height: int) -> np.ndarray:
    """(height, width) bool: pixel (row r, column c) is inside a box when its centre
    (c + 0.5, r + 0.5) is, so a box of [10, 20) covers columns 10 to 19. Boxes reaching past
    the image are clipped to it."""
    out = np.zeros((height, width), dtype=bool)
    for b in boxes:
        c0, c1 = max(0, math.ceil(b.x_min - 0.5)), min(width, math.ceil(b.x_max - 0.5))
        r0, r1 = max(0, math.ceil(b.y_min - 0.5)), min(height, math.ceil(b.y_max - 0.5))
        if c1 > c0 and r1 > r0:
            out[r0:r1, c0:c1] = True
    return out


def rle_pixels(rle: str, width: int, height: int) -> np.ndarray:
    """A SIIM run-length string as a (height, width) bool mask (runs over column-major pixels,
    each start relative to the end of the previous run, the first counted from pixel 0)."""
    if rle.strip() == NO_LESION_RLE:
        return np.zeros((height, width), dtype=bool)
    numbers = [int(n) for n in rle.split()]
    if len(numbers) % 2:
        raise ValueError(f"the run-length mask has {len(numbers)} numbers; it needs start-length pairs")
    flat = np.zeros(width * height, dtype=bool)
    position = 0
    for start, length in zip(numbers[::2], numbers[1::2]):
        position += start
        if position + length > flat.size:
            raise ValueError(f"the run-length mask runs past the {width}x{height} image "
                             f"(to pixel {position + length:,} of {flat.size:,})")
        flat[position:position + length] = True
        position += length
    return flat.reshape((width, height)).T  # column-major: consecutive pixels run down a column


def mask_file_pixels(path: Path, width: int, height: int) -> np.ndarray:
    """A mask image's nonzero pixels, at the image's size; a mask of another shape is an error
    (it cannot be placed on the image without guessing)."""
    try:
        with Image.open(path) as mask:
            mask.load()
            pixels = np.asarray(mask.convert("L")) > 0
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the mask {path.name}: {exc}") from None
    if pixels.shape != (height, width):
        if pixels.shape[0] * width == pixels.shape[1] * height:  # same shape, other resolution
            resized = Image.fromarray(pixels).resize((width, height), Image.Resampling.NEAREST)
            return np.asarray(resized)
        raise ValueError(f"the mask {path.name} is {pixels.shape[1]}x{pixels.shape[0]} px and the image "
                         f"{width}x{height}: they do not line up")
    return pixels


BOX_SLACK_PX = 1.0  # rounding at the far edge; beyond it a box is in another image's pixels


def lesion_pixels(boxes: tuple[Box, ...], mask: str | None, width: int, height: int) -> np.ndarray | None:
    """The lesion as a (height, width) bool mask of the original image, from its boxes and
    mask together; None when the row has neither. `mask` is a run-length string or the
    resolved path of a mask image. ValueError for a box that reaches past the image: its
    coordinates are those of another size of the image (a resized copy), and clipping it
    would score the map against the wrong place."""
    if not boxes and not mask:
        return None
    for number, b in enumerate(boxes, start=1):
        if b.x_max > width + BOX_SLACK_PX or b.y_max > height + BOX_SLACK_PX:
            raise ValueError(f"box {number} reaches x {b.x_max:g}, y {b.y_max:g} on a {width}x{height} image: its "
                             "coordinates are of another size of this image (the original, before a resize?)")
    out = boxes_pixels(boxes, width, height)
    if mask:
        out |= rle_pixels(mask, width, height) if is_rle(mask) else mask_file_pixels(Path(mask), width, height)
    return out
