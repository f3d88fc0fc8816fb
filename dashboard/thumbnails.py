"""Small pictures of stored predictions with their summary map over the image, for the Browse grid;
cached, so a page whose items have been seen is drawn from memory."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from dashboard import data
from dashboard.data import StoreFile, _stat
from dashboard.overlay import overlay
from dashboard.run_images import run_image
from store import queries

MAX_CACHED = 2000  # thumbnails kept (some 50 kB each): browsing a whole large run must not fill the memory

@dataclass(frozen=True)
class BrowseThumbnail:
    """A prediction's image, shown square, with its summary map over it, as PNG bytes."""

    png: bytes | None  # None: not shown, and `problem` says why
    problem: str | None = None
    note: str | None = None  # shown beside it: why it may not be the image the model saw, or has no map drawn
    has_map: bool = False


def browse_thumbnail(db: Path | StoreFile, run_id: str, item_id: str, method: str | None,
                     size: int) -> BrowseThumbnail:
    """The item's image with its summary map of `method` (None: the plain image), `size` pixels square;
    cached on the store file's state, the item, method and size, and the image file's size and
    modification time (a replaced file is read and checked again)."""
    store = db if isinstance(db, StoreFile) else StoreFile(Path(db))
    location = data.image_file(store, run_id, item_id)
    image_state = None if location is None else (str(location.path), _stat(location.path))
    return _browse_thumbnail(store, run_id, item_id, method, int(size), image_state)


@st.cache_data(show_spinner=False, max_entries=MAX_CACHED, hash_funcs={StoreFile: StoreFile.state})
def _browse_thumbnail(db: StoreFile, run_id: str, item_id: str, method: str | None, size: int,
                      image_state: tuple | None) -> BrowseThumbnail:
    shown = run_image(db.path, run_id, item_id)
    if shown.image is None:
        return BrowseThumbnail(None, shown.problem)
    maps = queries.summary_maps(db.path, run_id, method, item_id) if method else pd.DataFrame()
    note, picture = shown.note, None
    if not maps.empty:
        row = maps.iloc[0]
        values = np.asarray(row.grid, dtype=np.float64)
        if values.size == int(row.grid_rows) * int(row.grid_cols):
            picture = overlay(shown.image, values.reshape(int(row.grid_rows), int(row.grid_cols)), size=size)
        else:
            note = (f"Its stored {method} map has {values.size} values, not {row.grid_rows}x{row.grid_cols}: "
                    "the plain image is shown.")
    drawn = picture is not None
    if picture is None:  # the plain image, square as the model saw it (and as overlay shows it)
        picture = shown.image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return BrowseThumbnail(buffer.getvalue(), None, note, drawn)
