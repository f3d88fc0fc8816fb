"""Write synthetic DICOM files and read DICOM files into display-ready 8-bit grayscale.

Patient-identifying tags are written only as fixed synthetic placeholders and are never
returned by the reader: `DicomImage` carries technical metadata only.
"""

from __future__ import annotations

import io
import math
import re
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder, pixel_array
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
)
from pydicom.valuerep import VR

from compute.data.image_bytes import ImageLoadError, describe_exception, j2k_size, jpeg_size, read_file_bytes
from compute.data.limits import DEFAULT_IMAGE_LIMITS, ImageLimits, file_bytes_reason, pixel_limit_reason

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


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


# --------------------------------------------------------------------------- reading
#
# Every header tag that drives decoding or display is checked, with a one-sentence reason naming
# the tag, its number and the offending value, before pydicom's decoders and LUT functions run;
# the pixel cap is checked from the header before any pixel is decoded; anything else that goes
# wrong becomes "cannot interpret this DICOM file (...)". Patient-identifying elements are never
# read, and any reason that happened to contain one of their values is scrubbed.

_PHOTOMETRIC_SAMPLES = {
    "MONOCHROME1": 1,
    "MONOCHROME2": 1,
    "PALETTE COLOR": 1,
    "RGB": 3,
    "YBR_FULL": 3,
    "YBR_FULL_422": 3,
    "YBR_PARTIAL_420": 3,
    "YBR_ICT": 3,
    "YBR_RCT": 3,
}
_VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
_RLE_SLACK = 1 << 20          # decoded bytes past a plane that are tolerated (non-conformant padding)
_SEGMENTED_LUT_MAX = 1 << 17  # entries; a palette LUT indexes at most 65,536
_SEGMENTED_LUT_STEPS = 2_000_000
_PHI_KEYWORDS = frozenset({
    "AccessionNumber", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
    "ReferringPhysicianName", "ReferringPhysicianAddress", "PhysiciansOfRecord", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "OperatorsName", "RequestingPhysician", "StudyDescription",
    "SeriesDescription", "StudyID", "StationName", "DeviceSerialNumber", "RequestedProcedureDescription",
    "PerformedProcedureStepDescription", "AdmittingDiagnosesDescription", "ImageComments",
})


class _Refused(Exception):
    """A one-sentence reason to refuse the file; becomes ImageLoadError(path, reason)."""


@dataclass(frozen=True)
class _Geometry:
    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    frames: int


def read_dicom(source: str | Path | bytes, limits: ImageLimits = DEFAULT_IMAGE_LIMITS) -> DicomImage:
    """Read a DICOM file (a path, or the file's bytes) into display-ready uint8 grayscale
    (modality LUT, VOI LUT, MONOCHROME1 inverted). Only the first frame is decoded.

    Every failure is ImageLoadError naming the path ("<bytes>" for bytes) and the problem.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_dicom_bytes(bytes(source), "<bytes>", limits)
    return decode_dicom_bytes(read_file_bytes(source, limits), source, limits)


def decode_dicom_bytes(data: bytes, name: str | Path, limits: ImageLimits = DEFAULT_IMAGE_LIMITS) -> DicomImage:
    """`read_dicom` on a whole file's bytes; errors are ImageLoadError naming `name`."""
    reader = _Reader(data, limits)
    try:
        return reader.read()
    except ImageLoadError:
        raise
    except _Refused as refusal:
        raise ImageLoadError(name, reader.scrub(str(refusal))) from refusal.__cause__
    except Exception as exc:  # the last line of defence: one bad file must never stop a run
        reason = f"cannot interpret this DICOM file ({describe_exception(exc)})"
        raise ImageLoadError(name, reader.scrub(reason)) from exc


class _Reader:
    def __init__(self, data: bytes, limits: ImageLimits) -> None:
        self.data = data
        self.limits = limits
        self.ds: Dataset | None = None

    def read(self) -> DicomImage:
        _check_inflated_size(self.data, self.limits)
        ds = self.ds = _read_dataset(self.data)
        if "PixelData" not in ds:
            raise _Refused("DICOM file has no pixel data")
        tsyntax = _checked_transfer_syntax(ds)
        geo = _checked_geometry(ds)
        _check_pixel_cap(geo, self.limits)
        if tsyntax.is_compressed:
            _check_encapsulated(ds, tsyntax, geo)

        lut_range = None
        if geo.photometric == "PALETTE COLOR":
            _check_palette(ds)
        elif geo.samples == 1:
            _check_modality_lut(ds)
            lut_range = _check_voi(ds)

        raw = _decode_first_frame(ds)
        if geo.samples > 1 or geo.photometric == "PALETTE COLOR":
            pixels, voi_applied = _color_to_gray(raw, ds, geo.photometric), False
        else:
            pixels, voi_applied = _grayscale_to_display(raw, ds, lut_range)
            if geo.photometric == "MONOCHROME1":
                pixels = 255 - pixels

        return DicomImage(
            pixels=pixels,
            modality=str(ds.get("Modality", "")),
            photometric=geo.photometric,
            bits_stored=geo.bits_stored,
            rows=int(pixels.shape[0]),
            columns=int(pixels.shape[1]),
            frames=geo.frames,
            voi_applied=voi_applied,
        )

    def scrub(self, reason: str) -> str:
        """`reason` with any patient-identifying value of the data set replaced."""
        for text in _phi_texts(self.ds):
            reason = reason.replace(text, "<redacted>")
        return reason


# ------------------------------------------------------------ reading: the data set


def _read_dataset(data: bytes) -> Dataset:
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError:
        ds = _read_without_preamble(data)
    except Exception as exc:
        raise _Refused("truncated or corrupt DICOM file") from exc
    if "TransferSyntaxUID" not in ds.file_meta:
        is_implicit_vr, is_little_endian = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian
            if is_implicit_vr
            else ExplicitVRLittleEndian if is_little_endian else pydicom.uid.ExplicitVRBigEndian
        )
    return ds


def _read_without_preamble(data: bytes) -> Dataset:
    """Files without the 128-byte preamble and 'DICM' marker; accepted only if they look like images."""
    if not looks_like_bare_dicom(data):
        raise _Refused("not a DICOM file")
    try:
        return pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:
        raise _Refused("truncated or corrupt DICOM file") from exc


def looks_like_bare_dicom(source: str | Path | bytes) -> bool:
    """A preamble-less DICOM data set: starts with a group 0002/0008 tag and parses to an image."""
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            if data[:2] not in (b"\x02\x00", b"\x08\x00"):
                return False
            ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
        else:
            with open(source, "rb") as f:
                head = f.read(2)
            if head not in (b"\x02\x00", b"\x08\x00"):
                return False
            ds = pydicom.dcmread(source, force=True, stop_before_pixels=True)
        return "Rows" in ds and "Columns" in ds
    except Exception:
        return False


def _check_inflated_size(data: bytes, limits: ImageLimits) -> None:
    """A deflated data set is inflated whole by pydicom: refuse one that inflates past the byte cap."""
    if data[128:132] != b"DICM":
        return
    try:
        from pydicom.filereader import _read_file_meta_info, read_preamble

        fp = io.BytesIO(data)
        read_preamble(fp, False)
        meta = _read_file_meta_info(fp)
        if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
            return
        start = fp.tell()
    except Exception:
        return  # pydicom's own reading reports what is wrong
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    view, pos, total = memoryview(data), start, 0
    try:
        while not inflater.eof:
            if inflater.unconsumed_tail:
                piece = inflater.unconsumed_tail
            elif pos < len(view):
                piece, pos = view[pos : pos + (1 << 20)], pos + (1 << 20)
            else:
                break
            total += len(inflater.decompress(piece, 1 << 22))
            if total > limits.max_file_bytes:
                what = (
                    f"the deflated data set (TransferSyntaxUID (0002,0010) {DeflatedExplicitVRLittleEndian}) "
                    f"inflates to more than {limits.max_file_bytes:,} bytes"
                )
                raise _Refused(file_bytes_reason(what, limits))
    except zlib.error:
        return  # reported by pydicom's own reading


def _checked_transfer_syntax(ds: Dataset) -> UID:
    tsyntax = ds.file_meta.get("TransferSyntaxUID")
    if tsyntax not in pydicom.uid.AllTransferSyntaxes:
        raise _Refused(
            f"{_name('TransferSyntaxUID')} is {_shown(tsyntax)}, which is not a transfer syntax this reader knows"
        )
    tsyntax = UID(tsyntax)
    if tsyntax.is_compressed:
        try:
            available = get_decoder(tsyntax).is_available
        except NotImplementedError:
            available = False
        if not available:
            raise _Refused(f"compressed transfer syntax '{tsyntax.name}' has no available decoder")
    return tsyntax


# ------------------------------------------------------------ reading: header values


def _name(keyword: str) -> str:
    """'Rows (0028,0010)'."""
    tag = Tag(tag_for_keyword(keyword))
    return f"{keyword} ({tag.group:04X},{tag.element:04X})"


def _shown(value: object) -> str:
    """A header value as a message shows it: numbers bare, text quoted, at most 64 characters."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, float)) and not isinstance(value, str):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value[:128]).decode("latin-1")
    elif isinstance(value, (list, tuple, MultiValue)):
        text = "\\".join(str(v) for v in list(value)[:16])
    else:
        text = str(value)
    text = "".join(c if c.isprintable() else "?" for c in text.strip(" \x00"))
    return "'" + (text[:61] + "..." if len(text) > 64 else text) + "'"


def _raw(container: Dataset, keyword: str) -> str:
    """The element's value as shown in a message, from the converted value or else the raw bytes."""
    try:
        return _shown(container[keyword].value)
    except Exception:
        try:
            return _shown(container.get_item(keyword).value)
        except Exception:
            return "unreadable"


def _numbers(container: Dataset, keyword: str, *, integer: bool = False, where: str = "") -> list | None:
    """The element's values as numbers; None when absent or empty; _Refused when not numbers."""
    if keyword not in container:
        return None
    label = _name(keyword) + where
    try:
        value = container[keyword].value
    except Exception as exc:
        raise _Refused(f"{label} is {_raw(container, keyword)}, which cannot be read as a number") from exc
    if value is None or value == "" or (isinstance(value, (list, MultiValue)) and len(value) == 0):
        return None
    items = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    out: list = []
    for item in items:
        if isinstance(item, (bytes, bytearray)):
            raise _Refused(f"{label} is {_raw(container, keyword)}, which is not a number")
        try:
            number = float(item)
        except (TypeError, ValueError):
            raise _Refused(f"{label} is {_raw(container, keyword)}, which is not a number") from None
        if not math.isfinite(number):
            raise _Refused(f"{label} is {_raw(container, keyword)}, which is not a finite number")
        if integer:
            if number != int(number):
                raise _Refused(f"{label} is {_raw(container, keyword)}, which is not a whole number")
            out.append(int(number))
        else:
            out.append(number)
    return out


def _single_int(ds: Dataset, keyword: str) -> int:
    values = _numbers(ds, keyword, integer=True)
    if values is None:
        raise _Refused(f"{_name(keyword)} is {'empty' if keyword in ds else 'missing'}")
    if len(values) != 1:
        raise _Refused(f"{_name(keyword)} is {_raw(ds, keyword)}, but it must be a single number")
    return values[0]


def _single_text(ds: Dataset, keyword: str) -> str:
    if keyword not in ds:
        raise _Refused(f"{_name(keyword)} is missing")
    try:
        value = ds[keyword].value
    except Exception as exc:
        raise _Refused(f"{_name(keyword)} is {_raw(ds, keyword)}, which cannot be read") from exc
    if value is None or value == "":
        raise _Refused(f"{_name(keyword)} is empty")
    if not isinstance(value, str):
        raise _Refused(f"{_name(keyword)} is {_raw(ds, keyword)}, but it must be a single value")
    return value.strip().upper()


def _checked_geometry(ds: Dataset) -> _Geometry:
    rows = _single_int(ds, "Rows")
    columns = _single_int(ds, "Columns")
    for keyword, value in (("Rows", rows), ("Columns", columns)):
        if value < 1:
            raise _Refused(f"{_name(keyword)} is {value}, but it must be at least 1")
    samples = _single_int(ds, "SamplesPerPixel")
    if samples not in (1, 3):
        raise _Refused(f"{_name('SamplesPerPixel')} is {samples}, but it must be 1 or 3")
    bits_allocated = _single_int(ds, "BitsAllocated")
    if bits_allocated not in (1, 8, 16, 32):
        raise _Refused(f"{_name('BitsAllocated')} is {bits_allocated}, but it must be 1, 8, 16 or 32")
    bits_stored = _single_int(ds, "BitsStored")
    if bits_stored > bits_allocated:
        raise _Refused(
            f"{_name('BitsStored')} is {bits_stored}, more than {_name('BitsAllocated')} {bits_allocated}"
        )
    if bits_stored < 1:
        raise _Refused(f"{_name('BitsStored')} is {bits_stored}, but it must be at least 1")
    pixel_representation = _single_int(ds, "PixelRepresentation")
    if pixel_representation not in (0, 1):
        raise _Refused(f"{_name('PixelRepresentation')} is {pixel_representation}, but it must be 0 or 1")

    photometric = _single_text(ds, "PhotometricInterpretation")
    if photometric not in _PHOTOMETRIC_SAMPLES:
        raise _Refused(
            f"{_name('PhotometricInterpretation')} is {_raw(ds, 'PhotometricInterpretation')}, "
            "which this reader does not support"
        )
    if _PHOTOMETRIC_SAMPLES[photometric] != samples:
        raise _Refused(
            f"{_name('PhotometricInterpretation')} is {_shown(photometric)}, which needs "
            f"{_name('SamplesPerPixel')} {_PHOTOMETRIC_SAMPLES[photometric]}, not {samples}"
        )
    if ds.PhotometricInterpretation != photometric:
        ds.PhotometricInterpretation = photometric  # pydicom compares it exactly
    if samples > 1:
        planar = _single_int(ds, "PlanarConfiguration")
        if planar not in (0, 1):
            raise _Refused(f"{_name('PlanarConfiguration')} is {planar}, but it must be 0 or 1")

    frames = _numbers(ds, "NumberOfFrames", integer=True)
    if frames is None:
        frames = [1]  # absent or empty: one frame, as pydicom reads it
    if len(frames) != 1:
        raise _Refused(f"{_name('NumberOfFrames')} is {_raw(ds, 'NumberOfFrames')}, but it must be a single number")
    if frames[0] < 1:
        raise _Refused(f"{_name('NumberOfFrames')} is {frames[0]}, but it must be at least 1")
    return _Geometry(rows, columns, samples, bits_allocated, bits_stored, pixel_representation, photometric, frames[0])


def _check_pixel_cap(geo: _Geometry, limits: ImageLimits) -> None:
    pixels = geo.rows * geo.columns * geo.samples
    if pixels > limits.max_pixels:
        what = f"DICOM header says {_name('Rows')} {geo.rows} x {_name('Columns')} {geo.columns}"
        if geo.samples > 1:
            what += f" x {_name('SamplesPerPixel')} {geo.samples}"
        raise _Refused(pixel_limit_reason(what, pixels, limits))


# ------------------------------------------------------------ reading: compressed pixel data


def _check_encapsulated(ds: Dataset, tsyntax: UID, geo: _Geometry) -> None:
    """The first frame's own header must agree with Rows/Columns, and RLE must not over-expand."""
    pixel_data = ds.PixelData
    if not isinstance(pixel_data, (bytes, bytearray)):
        raise _Refused("truncated or corrupt DICOM pixel data")
    if geo.frames > len(pixel_data) // 8:
        raise _Refused(
            f"{_name('NumberOfFrames')} is {geo.frames:,}, more frames than the {len(pixel_data):,} bytes of "
            f"encapsulated {_name('PixelData')} can hold"
        )
    try:
        extended = None
        if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
            extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        frame = get_frame(pixel_data, 0, extended_offsets=extended, number_of_frames=geo.frames)
    except Exception as exc:
        raise _Refused("truncated or corrupt DICOM pixel data") from exc

    size = None
    if tsyntax in pydicom.uid.JPEGTransferSyntaxes or tsyntax in (pydicom.uid.JPEGLossless, pydicom.uid.JPEGLosslessSV1):
        size = jpeg_size(frame)
    elif tsyntax in pydicom.uid.JPEG2000TransferSyntaxes:
        size = j2k_size(frame)
    if size is not None and size != (geo.columns, geo.rows):
        raise _Refused(
            f"the compressed first frame is {size[0]} x {size[1]} pixels, but {_name('Columns')} {geo.columns} "
            f"x {_name('Rows')} {geo.rows} say otherwise"
        )
    if tsyntax == pydicom.uid.RLELossless:
        _check_rle_frame(frame, geo)


def _check_rle_frame(frame: bytes, geo: _Geometry) -> None:
    """pydicom decodes each RLE segment whole before checking its length: bound that from the codes."""
    if len(frame) < 64:
        return  # pydicom reports the broken header
    count = int.from_bytes(frame[:4], "little")
    if not 1 <= count <= 15:
        return
    offsets = [int.from_bytes(frame[4 + 4 * i : 8 + 4 * i], "little") for i in range(count)] + [len(frame)]
    plane = geo.rows * geo.columns
    budget = plane + _RLE_SLACK
    for i in range(count):
        start, stop = offsets[i], min(offsets[i + 1], len(frame))
        if stop - start <= 0 or 64 * (stop - start) + 128 <= budget:
            continue  # cannot expand past the budget
        if _rle_decoded_length(frame, start, stop, budget) > budget:
            raise _Refused(
                f"RLE segment {i + 1} of the first frame in {_name('PixelData')} decodes to more than "
                f"{budget:,} bytes, but {_name('Rows')} {geo.rows} x {_name('Columns')} {geo.columns} "
                f"need only {plane:,}"
            )


def _rle_decoded_length(src: bytes, pos: int, end: int, stop_after: int) -> int:
    """How many bytes PackBits data src[pos:end] decodes to (counting stops past `stop_after`)."""
    out = 0
    while pos < end and out <= stop_after:
        header = src[pos]
        if header < 128:
            out += min(header + 1, max(end - pos - 1, 0))
            pos += header + 2
        elif header > 128:
            out += 257 - header if pos + 1 < end else 0
            pos += 2
        else:
            pos += 1
    return out


def _decode_first_frame(ds: Dataset) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # Pillow decodes JPEG frames; its warning-level size cap becomes a refusal here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return pixel_array(ds, index=0)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _Refused("the compressed first frame is too large to decode safely") from exc
    except Exception as exc:
        raise _Refused("truncated or corrupt DICOM pixel data") from exc


# ------------------------------------------------------------ reading: display tags


def _first_item(ds: Dataset, keyword: str) -> Dataset:
    try:
        seq = ds[keyword].value
    except Exception as exc:
        raise _Refused(f"{_name(keyword)} cannot be read as a sequence") from exc
    if not isinstance(seq, (list, Sequence)):
        raise _Refused(f"{_name(keyword)} is {_raw(ds, keyword)}, but it must be a sequence")
    if len(seq) == 0:
        raise _Refused(f"{_name(keyword)} has no items, but it needs at least one")
    return seq[0]


def _lut_descriptor(item: Dataset, keyword: str, seq: str) -> tuple[int, int, int]:
    """(entries, first mapped value, bits per entry) of a LUT descriptor."""
    where = f" in {_name(seq)}" if seq else ""
    if keyword not in item:
        owner = f"{_name(seq)} has an item without" if seq else "the data set has no"
        raise _Refused(f"{owner} {_name(keyword)}")
    values = _numbers(item, keyword, integer=True, where=where)
    if values is None or len(values) != 3:
        shown = "empty" if values is None else _raw(item, keyword)
        raise _Refused(f"{_name(keyword)}{where} is {shown}, but it must be 3 numbers")
    if values[0] < 0 or values[0] > 65535:
        raise _Refused(f"{_name(keyword)}{where} is {_raw(item, keyword)}, but its entry count must be 0 to 65535")
    return values[0] or 65536, values[1], values[2]


def _lut_data(item: Dataset, ds: Dataset, seq: str, entries: int, bits: int, *, exact: bool) -> np.ndarray:
    """A sequence item's LUTData as pydicom will read it (US values, or OW bytes of `entries` words)."""
    label = f"{_name('LUTData')} in {_name(seq)}"
    if "LUTData" not in item:
        raise _Refused(f"{_name(seq)} has an item without {_name('LUTData')}")
    try:
        elem = item["LUTData"]
        value = elem.value
    except Exception as exc:
        raise _Refused(f"{label} cannot be read") from exc
    top = 255 if bits == 8 else 65535
    if elem.VR == VR.OW:
        if not isinstance(value, (bytes, bytearray)):
            raise _Refused(f"{label} is not binary LUT data")
        need = 2 * entries
        if len(value) < need or (exact and len(value) != need):
            raise _Refused(
                f"{label} has {len(value):,} bytes, but {_name('LUTDescriptor')} gives {entries:,} entries of 2 bytes"
            )
        little = ds.file_meta.TransferSyntaxUID.is_little_endian
        values = np.frombuffer(bytes(value[:need]), dtype="<u2" if little else ">u2").astype(np.int64)
    elif value is None or value == b"" or value == "":
        raise _Refused(f"{label} is empty")
    elif isinstance(value, (list, tuple, MultiValue)):
        if not all(isinstance(v, int) for v in value):
            raise _Refused(f"{label} is {_raw(item, 'LUTData')}, which is not a table of whole numbers")
        if len(value) < entries:
            raise _Refused(
                f"{label} has {len(value):,} values, fewer than the {entries:,} entries "
                f"{_name('LUTDescriptor')} gives"
            )
        values = np.asarray(list(value), dtype=np.int64)
    else:
        raise _Refused(f"{label} is {_raw(item, 'LUTData')}, a single value rather than a table")
    if values.size and (int(values.min()) < 0 or int(values.max()) > top):
        raise _Refused(f"{label} has values outside 0 to {top}, the range of {bits}-bit entries")
    return values


def _check_modality_lut(ds: Dataset) -> None:
    if "ModalityLUTSequence" in ds:
        item = _first_item(ds, "ModalityLUTSequence")
        entries, _, bits = _lut_descriptor(item, "LUTDescriptor", "ModalityLUTSequence")
        if bits not in (8, 16):
            raise _Refused(
                f"{_name('LUTDescriptor')} in {_name('ModalityLUTSequence')} is {_raw(item, 'LUTDescriptor')}, "
                "but its bits per entry must be 8 or 16"
            )
        _lut_data(item, ds, "ModalityLUTSequence", entries, bits, exact=True)
    elif "RescaleSlope" in ds and "RescaleIntercept" in ds:
        for keyword in ("RescaleSlope", "RescaleIntercept"):
            values = _numbers(ds, keyword)
            if values is None:
                raise _Refused(f"{_name(keyword)} is empty")
            if len(values) != 1:
                raise _Refused(f"{_name(keyword)} is {_raw(ds, keyword)}, but it must be a single number")


def _check_voi(ds: Dataset) -> tuple[float, float] | None:
    """Validate the VOI tags that will be used; the VOI LUT's output range when one is used."""
    if "VOILUTSequence" in ds:
        item = _first_item(ds, "VOILUTSequence")
        entries, _, bits = _lut_descriptor(item, "LUTDescriptor", "VOILUTSequence")
        if bits != 8 and not 10 <= bits <= 16:
            raise _Refused(
                f"{_name('LUTDescriptor')} in {_name('VOILUTSequence')} is {_raw(item, 'LUTDescriptor')}, "
                "but its bits per entry must be 8 or 10 to 16"
            )
        values = _lut_data(item, ds, "VOILUTSequence", entries, bits, exact=False)
        return float(values.min()), float(values.max())
    if "WindowCenter" in ds and "WindowWidth" in ds:
        centers, widths = _numbers(ds, "WindowCenter"), _numbers(ds, "WindowWidth")
        if centers is None or widths is None:
            return None  # pydicom does not window with an empty value
        if len(centers) != len(widths):
            raise _Refused(
                f"{_name('WindowCenter')} has {len(centers)} values but {_name('WindowWidth')} has {len(widths)}"
            )
        function = _checked_voi_function(ds)
        for width in widths:
            if function == "LINEAR" and width < 1:
                raise _Refused(f"{_name('WindowWidth')} is {width:g}, but it must be at least 1 for LINEAR windowing")
            if width <= 0:
                raise _Refused(
                    f"{_name('WindowWidth')} is {width:g}, but it must be greater than 0 for {function} windowing"
                )
    return None


def _checked_voi_function(ds: Dataset) -> str:
    if "VOILUTFunction" not in ds:
        return "LINEAR"
    try:
        value = ds["VOILUTFunction"].value
    except Exception as exc:
        raise _Refused(f"{_name('VOILUTFunction')} is {_raw(ds, 'VOILUTFunction')}, which cannot be read") from exc
    if value is None or value == "":
        del ds.VOILUTFunction  # empty: the default, LINEAR
        return "LINEAR"
    if not isinstance(value, str):
        raise _Refused(f"{_name('VOILUTFunction')} is {_raw(ds, 'VOILUTFunction')}, but it must be a single value")
    function = value.strip().upper()
    if function not in _VOI_FUNCTIONS:
        raise _Refused(
            f"{_name('VOILUTFunction')} is {_raw(ds, 'VOILUTFunction')}, but it must be LINEAR, LINEAR_EXACT or SIGMOID"
        )
    ds.VOILUTFunction = function
    return function


def _check_palette(ds: Dataset) -> None:
    colors = ("Red", "Green", "Blue")
    missing_reason = f"{_name('PhotometricInterpretation')} is 'PALETTE COLOR', but {{}} is missing"
    descriptors = []
    for color in colors:
        keyword = f"{color}PaletteColorLookupTableDescriptor"
        if keyword not in ds:
            raise _Refused(missing_reason.format(_name(keyword)))
        entries, _, bits = _lut_descriptor(ds, keyword, "")
        if bits not in (8, 16):
            raise _Refused(f"{_name(keyword)} is {_raw(ds, keyword)}, but its bits per entry must be 8 or 16")
        descriptors.append((entries, bits))
    entries, bits = descriptors[0]

    direct = [f"{color}PaletteColorLookupTableData" for color in colors]
    segmented = [f"Segmented{color}PaletteColorLookupTableData" for color in colors]
    if direct[0] in ds or segmented[0] not in ds:
        tables = [_binary(ds, keyword, missing_reason) for keyword in direct]
        depth = len(tables[0]) / entries * 8
        if f"{depth:.0f}" not in ("8", "16"):
            raise _Refused(
                f"{_name(direct[0])} has {len(tables[0]):,} bytes, which does not fit the {entries:,} entries "
                f"{_name('RedPaletteColorLookupTableDescriptor')} gives"
            )
        for keyword, table in zip(direct, tables):
            if len(table) != len(tables[0]) or len(table) % (int(f"{depth:.0f}") // 8):
                raise _Refused(f"{_name(keyword)} has {len(table):,} bytes, but {_name(direct[0])} has {len(tables[0]):,}")
    else:
        little = ds.file_meta.TransferSyntaxUID.is_little_endian
        for keyword in segmented:
            table = _binary(ds, keyword, missing_reason)
            _check_segmented_lut(table, keyword, bits, little)


def _binary(ds: Dataset, keyword: str, missing_reason: str) -> bytes:
    if keyword not in ds:
        raise _Refused(missing_reason.format(_name(keyword)))
    try:
        value = ds[keyword].value
    except Exception as exc:
        raise _Refused(f"{_name(keyword)} cannot be read") from exc
    if not isinstance(value, (bytes, bytearray)):
        raise _Refused(f"{_name(keyword)} is {_raw(ds, keyword)}, which is not binary (OW) LUT data")
    if not value:
        raise _Refused(f"{_name(keyword)} is empty")
    return bytes(value)


def _check_segmented_lut(table: bytes, keyword: str, bits: int, little: bool) -> None:
    """Indirect segments can expand a few bytes exponentially: walk the lengths before pydicom expands."""
    width = bits // 8
    if len(table) % width:
        raise _Refused(f"{_name(keyword)} has {len(table):,} bytes, not a whole number of {bits}-bit entries")
    data = struct.unpack(f"{'<' if little else '>'}{len(table) // width}{'B' if width == 1 else 'H'}", table)
    order = [3, 2, 1, 0] if little else [2, 3, 0, 1]
    done: dict[tuple[int, int | None], int | None] = {}
    steps = [0]

    def walk(start: int, count: int | None, depth: int) -> int:
        key = (start, count)
        if key in done or depth > 64:
            if done.get(key) is None:
                raise _Refused(f"{_name(keyword)} has an indirect segment that refers back to itself")
            return done[key]  # type: ignore[return-value]
        done[key] = None
        offset, total, read = start, 0, 0
        while offset + 1 < len(data):
            steps[0] += 1
            if steps[0] > _SEGMENTED_LUT_STEPS:
                raise _Refused(f"{_name(keyword)} is too complex to expand")
            opcode, length = data[offset], data[offset + 1]
            offset += 2
            if opcode == 0:
                total, offset = total + length, offset + length
            elif opcode == 1:
                total, offset = total + length, offset + 1
            elif opcode == 2:
                if width == 1:
                    b = [data[offset + i] if offset + i < len(data) else 0 for i in order]
                    target = (b[0] << 8 | b[1]) << 16 | (b[2] << 8 | b[3])
                    offset += 4
                else:
                    target = (data[offset + 1] if offset + 1 < len(data) else 0) << 16 | (
                        data[offset] if offset < len(data) else 0
                    )
                    offset += 2
                total += walk(target, length, depth + 1)
            else:
                break  # pydicom reports the unknown segment type
            if total > _SEGMENTED_LUT_MAX:
                raise _Refused(f"{_name(keyword)} expands to more than {_SEGMENTED_LUT_MAX:,} entries")
            read += 1
            if read == count:
                break
        done[key] = total
        return total

    walk(0, None, 0)


# ------------------------------------------------------------ reading: to display pixels


def _grayscale_to_display(
    raw: np.ndarray, ds: Dataset, lut_range: tuple[float, float] | None
) -> tuple[np.ndarray, bool]:
    with np.errstate(over="ignore", invalid="ignore"):
        values = apply_modality_lut(raw, ds)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise _Refused(_non_finite_reason(ds, "pixel values"))
    if lut_range is not None:
        out = apply_voi_lut(values, ds, prefer_lut=True)
        return _scale_to_uint8(out, lut_range[0], lut_range[1], ds), True
    if "WindowCenter" in ds and "WindowWidth" in ds:
        out = apply_voi_lut(values, ds, prefer_lut=False)
        low, high = _windowing_output_range(ds)
        if not (math.isfinite(low) and math.isfinite(high) and math.isfinite(high - low)):
            raise _Refused(_non_finite_reason(ds, "a display range"))
        return _scale_to_uint8(out, low, high, ds), True
    return _scale_to_uint8(values, float(np.min(values)), float(np.max(values)), ds), False


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


def _non_finite_reason(ds: Dataset, what: str) -> str:
    parts = [f"{_name(k)} {_raw(ds, k)}" for k in ("RescaleSlope", "RescaleIntercept") if k in ds]
    if parts:
        return f"{' and '.join(parts)} give non-finite {what}"
    return f"the display transform gives non-finite {what}"


def _scale_to_uint8(values: np.ndarray, low: float, high: float, ds: Dataset) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if high == low:
        return np.zeros(values.shape, dtype=np.uint8)
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (values - low) / (high - low) * 255.0
    if not np.isfinite(scaled).all():
        raise _Refused(_non_finite_reason(ds, "display values"))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _color_to_gray(raw: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    rgb = apply_color_lut(raw, ds) if photometric == "PALETTE COLOR" else raw
    bits = 16 if photometric == "PALETTE COLOR" and rgb.dtype == np.uint16 else int(ds.get("BitsStored", 8))
    luma = rgb[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return _scale_to_uint8(luma, 0.0, float(2**bits - 1), ds)


def _phi_texts(ds: Dataset | None) -> list[str]:
    """Values of the data set's patient-identifying elements (group 0010 and the named keywords), raw."""
    if ds is None:
        return []
    found: set[str] = set()
    try:
        tags = list(ds.keys())
    except Exception:
        return []
    for tag in tags:
        try:
            if tag.group != 0x0010 and keyword_for_tag(tag) not in _PHI_KEYWORDS:
                continue
            value = ds.get_item(tag).value
        except Exception:
            continue
        if isinstance(value, (bytes, bytearray)):
            text = bytes(value).decode("latin-1", "replace")
        elif isinstance(value, (str, int, float)) or value is None:
            text = "" if value is None else str(value)
        else:
            continue  # sequences are never read
        text = text.strip(" \x00")
        pieces = [text, *re.split(r"[\\^=]", text)]
        found.update(p.strip(" \x00") for p in pieces if len(p.strip(" \x00")) >= 3)
    return sorted(found, key=len, reverse=True)
