"""The synthetic DICOM writer: stored values as a deterministic Secondary Capture file (modality
DX), for the demo data and the reader's tests. Reading real DICOM is compute.data.dicom's job."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from pydicom.valuerep import DSfloat

from compute.data.dicom import MONOCHROME

_FIXED_DATE = "20000101"
_FIXED_TIME = "000000"
_UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's root, for non-registered synthetic UIDs


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
