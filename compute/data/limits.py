"""Resource limits for reading image files, checked from the header before any pixel is decoded."""

from __future__ import annotations

from dataclasses import dataclass, field

# The command-line options that raise the limits; named in every refusal so a user knows the way out.
MAX_PIXELS_OPTION = "--max-image-pixels"
MAX_FILE_BYTES_OPTION = "--max-image-bytes"


@dataclass(frozen=True)
class ImageLimits:
    """Resource limits checked from an image file's header before any pixel is decoded."""

    max_pixels: int = field(default=50_000_000, metadata={  # DICOM: of the frame decoded, times samples per pixel
        "flag": MAX_PIXELS_OPTION, "range": (1, 1 << 40), "metavar": "N",
        "help": "refuse (as a failed item) any image whose header declares more pixels than this, before "
                "decoding it (default: {default:,})"})
    max_file_bytes: int = field(default=1 << 30, metadata={
        "flag": MAX_FILE_BYTES_OPTION, "range": (1, 1 << 40), "metavar": "N",
        "help": "refuse (as a failed item) any image file larger than this many bytes; each file is read "
                "into memory once, hashed and decoded (default: {default:,})"})

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_file_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ImageLimits.{name} must be an integer of at least 1, got {value!r}")


DEFAULT_IMAGE_LIMITS = ImageLimits()


def pixel_limit_reason(what: str, pixels: int, limits: ImageLimits) -> str:
    """One sentence refusing an image whose header gives `what` (e.g. "12000 x 12000") = `pixels` pixels."""
    return (
        f"{what} = {pixels:,} pixels, over the limit of {limits.max_pixels:,} "
        f"(raise it with {MAX_PIXELS_OPTION})"
    )


def file_bytes_reason(what: str, limits: ImageLimits) -> str:
    """One sentence refusing a file (or an inflated data set) described by `what` as too large."""
    return f"{what}, over the limit of {limits.max_file_bytes:,} bytes (raise it with {MAX_FILE_BYTES_OPTION})"
