"""Image loading by content: PNG, JPEG and DICOM, always returned as RGB PIL images.

A file is read into memory once (refused from `stat` when it is over the byte cap), hashed,
judged by its bytes, checked against the pixel cap from its header, and only then decoded
from those same bytes. Every failure is `ImageLoadError(path, reason)` with a one-sentence
reason: a hostile or broken file costs one item, never a whole run.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, JpegImagePlugin, PngImagePlugin

from compute.data.dicom import decode_dicom_bytes, looks_like_bare_dicom
from compute.data.image_bytes import (
    JPEG_MAGIC,
    PNG_MAGIC,
    ImageLoadError,
    describe_exception,
    jpeg_size,
    png_size,
    read_file_bytes,
)
from compute.data.limits import (
    DEFAULT_IMAGE_LIMITS,
    MAX_PIXELS_OPTION,
    ImageLimits,
    file_bytes_reason,
    pixel_limit_reason,
)

_FORMAT_NAMES = {"png": "PNG", "jpeg": "JPEG", "dicom": "DICOM"}


@dataclass(frozen=True)
class ImageFile:
    """A decoded image file and the identity of the exact bytes it was decoded from."""

    image: Image.Image   # 8-bit RGB, as load_image returns it
    sha256: str          # hex sha256 of exactly the bytes that were decoded
    format: str          # "png" | "jpeg" | "dicom"
    path: Path           # the resolved absolute path


def detect_format(path: str | Path, limits: ImageLimits = DEFAULT_IMAGE_LIMITS) -> str:
    """Return "png", "jpeg" or "dicom", judged by the file's content, never its name."""
    return _format_of(read_file_bytes(path, limits), path)


def read_image(path: str | Path, limits: ImageLimits = DEFAULT_IMAGE_LIMITS) -> ImageFile:
    """Read the file's bytes once (refusing files over limits.max_file_bytes from stat before reading),
    hash them, judge the format from the bytes, check the header's pixel count against limits.max_pixels,
    then decode from those same bytes. Every failure is ImageLoadError(path, reason)."""
    try:
        data = read_file_bytes(path, limits)
        digest = hashlib.sha256(data).hexdigest()
        image, fmt = decode_image_bytes(data, path, limits)
        return ImageFile(image=image, sha256=digest, format=fmt, path=Path(path).resolve())
    except ImageLoadError:
        raise
    except Exception as exc:  # the last line of defence: one bad file must never stop a run
        raise ImageLoadError(path, f"cannot read this image file ({describe_exception(exc)})") from exc


def load_image(source: str | Path | Image.Image, limits: ImageLimits = DEFAULT_IMAGE_LIMITS) -> Image.Image:
    """Load a PNG, JPEG or DICOM file (or take a PIL image) as an 8-bit RGB PIL image. The
    limits guard decoding, so an image already in memory is only converted."""
    if isinstance(source, Image.Image):
        return to_rgb(source)
    return read_image(source, limits).image


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; 16-bit and 32-bit grayscale are scaled, not clipped."""
    if img.mode == "RGB":
        return img.copy()
    if img.mode.startswith("I") or img.mode == "F":
        gray = _wide_gray_to_uint8(np.asarray(img))
        return Image.fromarray(gray).convert("RGB")
    return img.convert("RGB")


# --------------------------------------------------------------------------- bytes


def decode_image_bytes(
    data: bytes, name: str | Path, limits: ImageLimits = DEFAULT_IMAGE_LIMITS
) -> tuple[Image.Image, str]:
    """Decode a whole file's bytes (PNG, JPEG or DICOM, judged by content) as (8-bit RGB image, format).

    Errors are ImageLoadError naming `name`.
    """
    if len(data) > limits.max_file_bytes:
        raise ImageLoadError(name, file_bytes_reason(f"file is {len(data):,} bytes", limits))
    fmt = _format_of(data, name)
    try:
        if fmt == "dicom":
            return Image.fromarray(decode_dicom_bytes(data, name, limits).pixels).convert("RGB"), fmt
        return _decode_raster(data, name, fmt, limits), fmt
    except ImageLoadError:
        raise
    except Exception as exc:
        raise ImageLoadError(name, f"cannot interpret this {_FORMAT_NAMES[fmt]} file ({describe_exception(exc)})") from exc


def _format_of(data: bytes, name: str | Path) -> str:
    if not data:
        raise ImageLoadError(name, "empty file")
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    if data[128:132] == b"DICM":
        return "dicom"
    if looks_like_bare_dicom(data):
        return "dicom"
    raise ImageLoadError(name, "not a PNG, JPEG or DICOM file")


# --------------------------------------------------------------------------- PNG and JPEG


def _decode_raster(data: bytes, name: str | Path, fmt: str, limits: ImageLimits) -> Image.Image:
    label = _FORMAT_NAMES[fmt]
    try:
        with warnings.catch_warnings():
            # Our own pixel cap is checked below, before anything is decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[label])
    except Image.DecompressionBombError as exc:
        img = _open_past_pillow_cap(data, name, fmt, limits, exc)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageLoadError(name, f"truncated or corrupt {label}") from exc
    with img:
        width, height = img.size
        if width * height > limits.max_pixels:
            raise ImageLoadError(name, pixel_limit_reason(f"{label} header says {width} x {height}", width * height, limits))
        if width < 1 or height < 1:
            raise ImageLoadError(name, f"{label} header says {width} x {height}, an image without pixels")
        try:
            img.load()
            return to_rgb(img)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageLoadError(name, f"truncated or corrupt {label}") from exc


def _open_past_pillow_cap(
    data: bytes, name: str | Path, fmt: str, limits: ImageLimits, exc: Exception
) -> Image.Image:
    """Pillow refused the size inside `open`: our message, or (when our cap allows it) open it anyway."""
    label = _FORMAT_NAMES[fmt]
    size = png_size(data) if fmt == "png" else jpeg_size(data)
    if size is None:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else None
        if pixels is None or pixels > limits.max_pixels:
            shown = f"{pixels:,}" if pixels is not None else "too many"
            raise ImageLoadError(
                name, f"{label} header says {shown} pixels, over the limit of {limits.max_pixels:,} "
                f"(raise it with {MAX_PIXELS_OPTION})",
            ) from None
    elif size[0] * size[1] > limits.max_pixels:
        raise ImageLoadError(
            name, pixel_limit_reason(f"{label} header says {size[0]} x {size[1]}", size[0] * size[1], limits)
        ) from None
    # The plugin classes themselves do not apply Pillow's global decompression-bomb cap.
    try:
        if fmt == "png":
            return PngImagePlugin.PngImageFile(io.BytesIO(data))
        return JpegImagePlugin.jpeg_factory(io.BytesIO(data))
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as err:
        raise ImageLoadError(name, f"truncated or corrupt {label}") from err


def _wide_gray_to_uint8(arr: np.ndarray) -> np.ndarray:
    """16-bit data keeps its full 0..65535 scale (divide by 257); other ranges are min-max scaled."""
    values = arr.astype(np.float64)
    if values.size and values.min() >= 0 and values.max() <= 65535 and arr.dtype.kind in "ui":
        scaled = values / 257.0
    else:
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
