"""The image a stored prediction was computed on, shown only if it is still those pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from PIL import Image

from compute.facade import ImageFile, ImageLoadError, read_image
from dashboard import data


@dataclass(frozen=True)
class RunImage:
    image: Image.Image | None  # None: not shown, and `problem` says why
    problem: str | None = None
    note: str | None = None  # shown beside the image: why it may not be the one the model saw


def run_image(db: Path, run_id: str, item_id: str) -> RunImage:
    """The file the store records for this prediction, if it still has the sha256 the run
    recorded: a file replaced since the run is not shown as if the model had seen it."""
    location = data.image_file(db, run_id, item_id)
    if location is None:
        return RunImage(None, "The store has no image file for this prediction.")
    try:
        file = _read(location.path)
    except ImageLoadError as exc:
        return RunImage(None, f"Cannot show the image: {exc}")
    if location.sha256 and file.sha256 != location.sha256:
        return RunImage(None, f"{location.path} has changed since the run read it (sha256 {location.sha256[:12]}… "
                              f"then, {file.sha256[:12]}… now): it is not the image the model saw, so it is not "
                              "shown.")
    note = None if location.exact else (
        "This run was stored before schema 4, when image records were keyed by dataset and image id and runs "
        "of the same dataset name could overwrite each other's: this may not be the image the model saw.")
    return RunImage(file.image, None, note)


def _read(path: Path) -> ImageFile:
    """read_image, cached while the file's size and modification time stay the same: the
    pages rerun on every slider move, and a changed file is read (and hashed) again."""
    try:
        info = path.stat()
    except OSError:
        return read_image(path)  # it says why
    return _read_cached(str(path), info.st_mtime_ns, info.st_size)


@st.cache_data(show_spinner=False, max_entries=64)
def _read_cached(path: str, mtime_ns: int, size: int) -> ImageFile:
    return read_image(path)
