"""Reading a file's bytes safely (and hashing them), and what can be learnt from them before decoding:
the format's magic bytes and the size its header declares. The one error of the readers,
ImageLoadError, is defined here so that every format's reader can raise it."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

from compute.data.limits import DEFAULT_IMAGE_LIMITS, ImageLimits, file_bytes_reason

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"

class ImageLoadError(ValueError):
    """An image file could not be loaded; `reason` is one short sentence."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def read_file_bytes(path: str | Path, limits: ImageLimits = DEFAULT_IMAGE_LIMITS) -> bytes:
    """The whole file, read once; refused from `stat` (before reading) when over limits.max_file_bytes."""
    p = Path(path)
    try:
        info = p.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise ImageLoadError(path, "file not found") from None
    except (OSError, ValueError) as exc:
        raise ImageLoadError(path, f"cannot read file ({os_reason(exc)})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ImageLoadError(path, "not a regular file")
    if info.st_size > limits.max_file_bytes:
        raise ImageLoadError(path, file_bytes_reason(f"file is {info.st_size:,} bytes", limits))
    try:
        with p.open("rb") as f:
            # read(n) allocates n bytes up front: ask for what stat says, then look for more.
            data = f.read(info.st_size)
            if f.read(1):  # it grew after stat (or stat could not tell)
                raise ImageLoadError(path, "file changed while it was read")
    except OSError as exc:
        raise ImageLoadError(path, f"cannot read file ({os_reason(exc)})") from None
    if not data:
        raise ImageLoadError(path, "empty file")
    return data


def describe_exception(exc: BaseException) -> str:
    """'TypeName: first line of the message' (at most 200 characters of message)."""
    lines = str(exc).strip().splitlines()
    first = lines[0].strip()[:200] if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def os_reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None."""
    if not data.startswith(PNG_MAGIC) or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first start-of-frame marker of a JPEG stream, or None."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        if marker in _JPEG_SOF:
            if pos + 9 > end:
                return None
            return int.from_bytes(data[pos + 7 : pos + 9], "big"), int.from_bytes(data[pos + 5 : pos + 7], "big")
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def j2k_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG 2000 codestream's SIZ marker (raw or inside a JP2 box), or None."""
    at = data.find(b"\xff\x4f\xff\x51", 0, 1 << 16)
    if at < 0 or at + 24 > len(data):
        return None
    x, y, x0, y0 = (int.from_bytes(data[at + i : at + i + 4], "big") for i in (8, 12, 16, 20))
    return x - x0, y - y0


def file_sha256(path: str | Path) -> str:
    """The hex sha256 of a whole file, read in 1 MiB chunks (for manifests and weights)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
