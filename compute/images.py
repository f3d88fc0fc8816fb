"""Image loading by content: PNG, JPEG and DICOM, always returned as RGB PIL images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
_FORMAT_NAMES = {"png": "PNG", "jpeg": "JPEG"}


class ImageLoadError(ValueError):
    """An image file could not be loaded; `reason` is one short sentence."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def detect_format(path: str | Path) -> str:
    """Return "png", "jpeg" or "dicom", judged by the file's content, never its name."""
    head = _read_head(path, 132)
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if head[128:132] == b"DICM":
        return "dicom"
    # Imported here: compute.dicom imports ImageLoadError from this module.
    from compute.dicom import looks_like_bare_dicom

    if looks_like_bare_dicom(path):
        return "dicom"
    raise ImageLoadError(path, "not a PNG, JPEG or DICOM file")


def load_image(source: str | Path | Image.Image) -> Image.Image:
    """Load a PNG, JPEG or DICOM file (or take a PIL image) as an 8-bit RGB PIL image."""
    if isinstance(source, Image.Image):
        return to_rgb(source)
    fmt = detect_format(source)
    if fmt == "dicom":
        from compute.dicom import read_dicom

        return Image.fromarray(read_dicom(source).pixels).convert("RGB")
    return _load_raster(source, fmt)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; 16-bit and 32-bit grayscale are scaled, not clipped."""
    if img.mode == "RGB":
        return img.copy()
    if img.mode.startswith("I") or img.mode == "F":
        gray = _wide_gray_to_uint8(np.asarray(img))
        return Image.fromarray(gray).convert("RGB")
    return img.convert("RGB")


def _read_head(path: str | Path, size: int) -> bytes:
    p = Path(path)
    if not p.exists():
        raise ImageLoadError(path, "file not found")
    if not p.is_file():
        raise ImageLoadError(path, "not a regular file")
    try:
        with p.open("rb") as f:
            head = f.read(size)
    except OSError as exc:
        raise ImageLoadError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if not head:
        raise ImageLoadError(path, "empty file")
    return head


def _load_raster(path: str | Path, fmt: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(path, f"{_FORMAT_NAMES[fmt]} is too large to decode safely") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(path, f"truncated or corrupt {_FORMAT_NAMES[fmt]}") from exc


def _wide_gray_to_uint8(arr: np.ndarray) -> np.ndarray:
    """16-bit data keeps its full 0..65535 scale (divide by 257); other ranges are min-max scaled."""
    values = arr.astype(np.float64)
    if values.size and values.min() >= 0 and values.max() <= 65535 and arr.dtype.kind in "ui":
        scaled = values / 257.0
    else:
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
