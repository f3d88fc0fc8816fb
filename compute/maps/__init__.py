"""Maps: where the model looks. Decoder attention onto the image tokens, token-conditioned
attention, Grad-CAM on the vision tower, and activation norm as the last resort."""

from compute.maps.capture import capture_rows
from compute.maps.extract import MapUnavailableError, Prompts, attention_grids, make_maps, map_batch
from compute.maps.grid import grid_shape, to_grid
from compute.maps.layers import LayerSpecError, parse_layers
from compute.maps.positions import TermNotFoundError
from compute.maps.spec import MapResult, MapSpec

__all__ = ["LayerSpecError", "MapResult", "MapSpec", "MapUnavailableError", "Prompts", "TermNotFoundError",
           "attention_grids", "capture_rows", "grid_shape", "make_maps", "map_batch", "parse_layers", "to_grid"]
