"""Images that users upload: size-capped, then read by content (never by the file's name)."""

from __future__ import annotations

from PIL import Image

from compute.data.images import ImageLoadError, decode_image_bytes
from compute.data.limits import DEFAULT_IMAGE_LIMITS, ImageLimits

MAX_UPLOAD_BYTES = 50 * 2**20  # a large DICOM is tens of MB


def load_upload(
    data: bytes,
    name: str,
    max_bytes: int = MAX_UPLOAD_BYTES,
    limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
) -> Image.Image:
    """The uploaded bytes as an RGB image, if they are a PNG, JPEG or DICOM of at most
    `max_bytes` (and within `limits`); otherwise ImageLoadError naming the upload and the problem."""
    if len(data) > max_bytes:
        raise ImageLoadError(name, f"{len(data) / 2**20:.1f} MiB is over the {max_bytes / 2**20:.0f} MiB upload limit")
    try:
        image, _ = decode_image_bytes(bytes(data), name, limits)  # decoded in memory, no temporary file
    except ImageLoadError:
        raise
    except Exception as exc:  # decode_image_bytes already turns failures into ImageLoadError; belt and braces
        raise ImageLoadError(name, f"cannot read this upload ({type(exc).__name__})") from exc
    return image
