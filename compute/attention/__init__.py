"""Where the model looks: decoder attention onto the image tokens, token-conditioned
attention, Grad-CAM on the vision tower, and activation norm as the last resort."""

from .capture import capture_rows
from .extract import MapUnavailableError, Prompts, attention_grids, make_maps
from .grid import grid_shape, to_grid
from .layers import LayerSpecError, parse_layers
from .positions import TermNotFoundError
from .spec import MapResult, MapSpec

__all__ = ["LayerSpecError", "MapResult", "MapSpec", "MapUnavailableError", "Prompts", "TermNotFoundError",
           "attention_grids", "capture_rows", "grid_shape", "make_maps", "parse_layers", "to_grid"]
