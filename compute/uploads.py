"""Images that users upload: size-capped, then read by content (never by the file's name)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image

from .images import ImageLoadError, load_image

MAX_UPLOAD_BYTES = 50 * 2**20  # a large DICOM is tens of MB


def load_upload(data: bytes, name: str, max_bytes: int = MAX_UPLOAD_BYTES) -> Image.Image:
    """The uploaded bytes as an RGB image, if they are a PNG, JPEG or DICOM of at most
    `max_bytes`; otherwise ImageLoadError naming the upload and the problem."""
    if len(data) > max_bytes:
        raise ImageLoadError(name, f"{len(data) / 2**20:.1f} MiB is over the {max_bytes / 2**20:.0f} MiB upload limit")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload"  # no extension: the content decides
        path.write_bytes(data)
        try:
            return load_image(path)
        except ImageLoadError as exc:
            raise ImageLoadError(name, exc.reason) from None
