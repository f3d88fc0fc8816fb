"""Data in: manifests and tables, image and DICOM readers, uploads, and what a question names."""

from compute.data.conditions import CONDITION_KEYS, CONDITIONS, Condition, condition
from compute.data.image_bytes import ImageLoadError, describe_exception
from compute.data.images import ImageFile, load_image, read_image
from compute.data.limits import DEFAULT_IMAGE_LIMITS, ImageLimits
from compute.data.manifest import Manifest, ManifestError, ManifestItem, RowError, read_manifest
from compute.data.question_parser import ParsedQuestion, UnparseableQuestionError, parse_question
from compute.data.questions import DEFAULT_INSTRUCTION, canonical_question
from compute.data.uploads import load_upload

__all__ = ["CONDITIONS", "CONDITION_KEYS", "DEFAULT_IMAGE_LIMITS", "DEFAULT_INSTRUCTION", "Condition", "ImageFile",
           "ImageLimits", "ImageLoadError", "Manifest", "ManifestError", "ManifestItem", "ParsedQuestion", "RowError",
           "UnparseableQuestionError", "canonical_question", "condition", "describe_exception", "load_image",
           "load_upload", "parse_question", "read_image", "read_manifest"]
