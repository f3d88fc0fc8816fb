"""How a map meets a finding's annotated lesion: the pointing game and the in-lesion ratio.

Both take the lesion as each grid cell's coverage in [0, 1] (compute.metrics.regions.
mask_to_grid of the lesion's pixel mask), so a box counts on the cells it covers, in part
where it covers part of one.
- lesion_hit: the map's peak cell overlaps the lesion (the pointing game).
- lesion_attention_ratio: the map's mass on the lesion (each cell weighted by its coverage)
  divided by the lesion's share of the body (of the whole image when there is no body
  mask): 1 is no preference for the lesion, above 1 is attention drawn to it.
"""

from __future__ import annotations

import numpy as np

from compute.metrics.attention import normalise

NO_LESION = {"lesion_hit": None, "lesion_attention_ratio": None}


def lesion_metrics(grid: np.ndarray, lesion_cells: np.ndarray | None,
                   body_cells: np.ndarray | None = None) -> dict[str, bool | float | None]:
    if lesion_cells is None or not (lesion_cells > 0).any():
        return dict(NO_LESION)
    if lesion_cells.shape != grid.shape:
        raise ValueError(f"lesion {lesion_cells.shape} and map {grid.shape} differ in shape")
    p = normalise(grid)
    area = float(body_cells.sum()) if body_cells is not None and body_cells.sum() > 0 else float(p.size)
    share = float(lesion_cells.sum()) / area
    return {"lesion_hit": bool(lesion_cells.ravel()[int(np.argmax(p))] > 0),
            "lesion_attention_ratio": float((p * lesion_cells).sum()) / share}
