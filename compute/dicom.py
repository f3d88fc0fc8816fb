"""Write synthetic DICOM files and read DICOM files into display-ready 8-bit grayscale.

Patient-identifying tags are written only as fixed synthetic placeholders and are never
returned by the reader: `DicomImage` carries technical metadata only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, UID, generate_uid
from pydicom.valuerep import DSfloat

from compute.images import ImageLoadError

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
_FIXED_DATE = "20000101"
_FIXED_TIME = "000000"
_UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's root, for non-registered synthetic UIDs


@dataclass(frozen=True)
class DicomImage:
    """Display-ready pixels (uint8, 2-D, bright = dense) plus non-identifying metadata."""

    pixels: np.ndarray
    modality: str
    photometric: str
    bits_stored: int
    rows: int
    columns: int
    frames: int
    voi_applied: bool


# --------------------------------------------------------------------------- writing


def write_dicom(
    pixels: np.ndarray,
    path: Path,
    *,
    photometric: str = "MONOCHROME2",
    rescale_slope: float = 1.0,
    rescale_intercept: float = 0.0,
    window: tuple[float, float] | None = None,
) -> None:
    """Write stored values as an Explicit VR Little Endian Secondary Capture DICOM (modality DX).

    `pixels` is a 2-D uint8/uint16 array for MONOCHROME1/2 ((frames, rows, cols) gives a
    multi-frame file), or (rows, cols, 3) uint8 for RGB. The output bytes depend only on
    the inputs: UIDs are hashed from the pixel data and parameters, dates are fixed.
    """
    arr = _validated_pixels(pixels, photometric)
    digest = _content_digest(arr, photometric, rescale_slope, rescale_intercept, window)

    ds = _base_dataset(Path(path), digest)
    ds.set_pixel_data(arr, photometric, _bits_stored(arr), generate_instance_uid=False)
    if (rescale_slope, rescale_intercept) != (1.0, 0.0):
        ds.RescaleSlope = _ds(rescale_slope)
        ds.RescaleIntercept = _ds(rescale_intercept)
        ds.RescaleType = "US"
    if window is not None:
        center, width = window
        ds.WindowCenter = _ds(center)
        ds.WindowWidth = _ds(width)
    ds.save_as(Path(path), enforce_file_format=True)


def _validated_pixels(pixels: np.ndarray, photometric: str) -> np.ndarray:
    arr = np.ascontiguousarray(pixels)
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"pixels must be uint8 or uint16, got {arr.dtype}")
    if photometric == "RGB":
        if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"RGB pixels must be (rows, cols, 3) uint8, got {arr.shape} {arr.dtype}")
    elif photometric in MONOCHROME:
        if arr.ndim not in (2, 3):
            raise ValueError(f"grayscale pixels must be 2-D (or 3-D multi-frame), got {arr.shape}")
    else:
        raise ValueError(f"unsupported photometric interpretation {photometric!r}")
    return arr


def _bits_stored(arr: np.ndarray) -> int:
    if arr.dtype == np.uint8:
        return 8
    peak = int(arr.max()) if arr.size else 0
    return next(bits for bits in (8, 10, 12, 16) if peak < 2**bits)


def _content_digest(arr: np.ndarray, *params: object) -> str:
    h = hashlib.sha256(arr.tobytes())
    h.update(repr((arr.shape, str(arr.dtype), params)).encode())
    return h.hexdigest()


def _uid(digest: str, role: str) -> UID:
    return generate_uid(prefix=_UID_PREFIX, entropy_srcs=[digest, role])


def _ds(value: float) -> DSfloat:
    return DSfloat(value, auto_format=True)


def _base_dataset(path: Path, digest: str) -> FileDataset:
    sop_instance = _uid(digest, "sop-instance")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = FileDataset(str(path), Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = _uid(digest, "study")
    ds.SeriesInstanceUID = _uid(digest, "series")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = _FIXED_DATE
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = _FIXED_TIME
    ds.Modality = "DX"
    ds.ConversionType = "SYN"
    ds.Manufacturer = "synthetic"
    ds.PatientName = "SYNTHETIC^PATIENT"
    ds.PatientID = "SYNTH"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    return ds


# --------------------------------------------------------------------------- reading


def read_dicom(path: str | Path) -> DicomImage:
    """Read a DICOM file into display-ready uint8 grayscale (modality LUT, VOI LUT, MONOCHROME1 inverted)."""
    ds = _read_dataset(path)
    _check_decodable(ds, path)
    raw = _first_frame(_pixel_array(ds, path), ds)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()

    if int(ds.get("SamplesPerPixel", 1)) > 1 or photometric == "PALETTE COLOR":
        pixels, voi_applied = _color_to_gray(raw, ds, photometric), False
    else:
        pixels, voi_applied = _grayscale_to_display(raw, ds)
        if photometric == "MONOCHROME1":
            pixels = 255 - pixels

    return DicomImage(
        pixels=pixels,
        modality=str(ds.get("Modality", "")),
        photometric=photometric,
        bits_stored=int(ds.get("BitsStored", 8)),
        rows=int(pixels.shape[0]),
        columns=int(pixels.shape[1]),
        frames=int(ds.get("NumberOfFrames", 1) or 1),
        voi_applied=voi_applied,
    )


def _read_dataset(path: str | Path) -> Dataset:
    try:
        ds = pydicom.dcmread(path)
    except FileNotFoundError:
        raise ImageLoadError(path, "file not found") from None
    except InvalidDicomError:
        ds = _read_without_preamble(path)
    except Exception as exc:
        raise ImageLoadError(path, "truncated or corrupt DICOM file") from exc
    if "PixelData" not in ds:
        raise ImageLoadError(path, "DICOM file has no pixel data")
    return ds


def _read_without_preamble(path: str | Path) -> Dataset:
    """Files without the 128-byte preamble and 'DICM' marker; accepted only if they look like images."""
    if not looks_like_bare_dicom(path):
        raise ImageLoadError(path, "not a DICOM file")
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        is_implicit_vr, is_little_endian = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian
            if is_implicit_vr
            else ExplicitVRLittleEndian if is_little_endian else pydicom.uid.ExplicitVRBigEndian
        )
    return ds


def looks_like_bare_dicom(path: str | Path) -> bool:
    """A preamble-less DICOM data set: starts with a group 0002/0008 tag and parses to an image."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        if head not in (b"\x02\x00", b"\x08\x00"):
            return False
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        return "Rows" in ds and "Columns" in ds
    except Exception:
        return False


def _check_decodable(ds: Dataset, path: str | Path) -> None:
    tsyntax = ds.file_meta.get("TransferSyntaxUID")
    if tsyntax is None or not tsyntax.is_compressed:
        return
    try:
        available = get_decoder(tsyntax).is_available
    except NotImplementedError:
        available = False
    if not available:
        raise ImageLoadError(path, f"compressed transfer syntax '{tsyntax.name}' has no available decoder")


def _pixel_array(ds: Dataset, path: str | Path) -> np.ndarray:
    try:
        return ds.pixel_array
    except Exception as exc:
        raise ImageLoadError(path, "truncated or corrupt DICOM pixel data") from exc


def _first_frame(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return arr[0] if frames > 1 else arr


def _grayscale_to_display(raw: np.ndarray, ds: Dataset) -> tuple[np.ndarray, bool]:
    values = apply_modality_lut(raw, ds)
    if "VOILUTSequence" in ds:
        lut_data = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float64)
        out = apply_voi_lut(values, ds, prefer_lut=True)
        return _scale_to_uint8(out, lut_data.min(), lut_data.max()), True
    if "WindowCenter" in ds and "WindowWidth" in ds:
        out = apply_voi_lut(values, ds, prefer_lut=False)
        low, high = _windowing_output_range(ds)
        return _scale_to_uint8(out, low, high), True
    return _scale_to_uint8(values, float(np.min(values)), float(np.max(values))), False


def _windowing_output_range(ds: Dataset) -> tuple[float, float]:
    """The (y_min, y_max) that pydicom's apply_windowing maps the window onto."""
    if "ModalityLUTSequence" in ds:
        low, high = 0.0, float(2 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1)
    elif int(ds.get("PixelRepresentation", 0)) == 0:
        low, high = 0.0, float(2 ** int(ds.BitsStored) - 1)
    else:
        low, high = float(-(2 ** (int(ds.BitsStored) - 1))), float(2 ** (int(ds.BitsStored) - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        low, high = low * float(slope) + float(intercept), high * float(slope) + float(intercept)
    return low, high


def _scale_to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if high == low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - low) / (high - low) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _color_to_gray(raw: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    rgb = apply_color_lut(raw, ds) if photometric == "PALETTE COLOR" else raw
    bits = 16 if photometric == "PALETTE COLOR" and rgb.dtype == np.uint16 else int(ds.get("BitsStored", 8))
    luma = rgb[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return _scale_to_uint8(luma, 0.0, float(2**bits - 1))

