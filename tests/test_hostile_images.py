"""Hostile and malformed image files: every one is an ImageLoadError with a clear reason, fast.

Every hostile file is generated here (no committed binaries). Every hostile DICOM carries the same
patient-identifying sentinels, which must never reach a message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import struct
import time
import tracemalloc
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataelem import RawDataElement
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.tag import Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    SecondaryCaptureImageStorage,
    UID,
    generate_uid,
)

import compute.data.dicom as dicom_module
from compute.data.dicom import read_dicom
from compute.demo.dicom_writer import write_dicom
from compute.data.images import ImageFile, ImageLoadError, load_image, read_image, to_rgb
from compute.data.limits import DEFAULT_IMAGE_LIMITS, ImageLimits
from compute.data.uploads import load_upload

PHI = {
    "PatientName": "PHI^SENTINEL",
    "PatientID": "PHI-ID-123456",
    "AccessionNumber": "PHI-ACC-9",
    "InstitutionName": "PHI Hospital",
}
PHI_STRINGS = ["PHI^SENTINEL", "SENTINEL", "PHI-ID-123456", "PHI-ACC-9", "PHI Hospital"]
PIXEL_CAP = "(raise it with --max-image-pixels)"

Builder = Callable[[Path], Path]


# ---------------------------------------------------------------- building DICOM files


def _dataset(
    pixels: np.ndarray | None = None,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    transfer_syntax: UID = ExplicitVRLittleEndian,
) -> Dataset:
    """A small valid DICOM image (stored values `pixels`), carrying the PHI sentinels."""
    if pixels is None:
        pixels = np.arange(256, dtype=np.uint16).reshape(16, 16) * 16
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality = "CR"
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    bits = bits_stored or (8 if pixels.dtype == np.uint8 else 12)
    ds.set_pixel_data(pixels, photometric, bits, generate_instance_uid=False)
    ds.file_meta.TransferSyntaxUID = transfer_syntax  # set_pixel_data sets a native one
    return ds


def _header_only(rows: int, columns: int, *, transfer_syntax: UID = ExplicitVRLittleEndian) -> Dataset:
    """An 8-bit MONOCHROME2 header with PHI sentinels and no pixel data yet."""
    ds = _dataset(np.zeros((2, 2), np.uint8), transfer_syntax=transfer_syntax)
    ds.Rows, ds.Columns = rows, columns
    del ds.PixelData
    return ds


def _raw(ds: Dataset, keyword: str, value: bytes) -> None:
    """Store `value` as the element's raw bytes, so that values pydicom would refuse to write go in."""
    tag = Tag(tag_for_keyword(keyword))
    if len(value) % 2:
        value += b" "
    ds[tag] = RawDataElement(tag, dictionary_VR(tag), len(value), value, 0, False, True)


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _dcm(edit: Callable[[Dataset], object], **kwargs: object) -> Builder:
    """A builder: the small valid DICOM, changed by `edit`, saved."""

    def build(tmp: Path) -> Path:
        ds = _dataset(**kwargs)  # type: ignore[arg-type]
        edit(ds)
        return _save(ds, tmp / "hostile.dcm")

    return build


def _windowed(center: bytes, width: bytes, function: bytes | None = None) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        _raw(ds, "WindowCenter", center)
        _raw(ds, "WindowWidth", width)
        if function is not None:
            _raw(ds, "VOILUTFunction", function)

    return edit


def _lut_item(descriptor: list[int] | None, data: list[int] | None) -> Dataset:
    item = Dataset()
    if descriptor is not None:
        item.add_new("LUTDescriptor", "US", descriptor)
    if data is not None:
        item.add_new("LUTData", "US", data)
    return item


def _with_voi_lut(*items: Dataset) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        ds.VOILUTSequence = list(items)

    return edit


def _with_modality_lut(*items: Dataset) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        ds.ModalityLUTSequence = list(items)

    return edit


def _set(**values: object) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        for keyword, value in values.items():
            if value is None:
                delattr(ds, keyword)
            elif isinstance(value, bytes):
                _raw(ds, keyword, value)
            else:
                setattr(ds, keyword, value)

    return edit


def _palette_descriptors(ds: Dataset, descriptor: list[int]) -> None:
    for color in ("Red", "Green", "Blue"):
        ds.add_new(f"{color}PaletteColorLookupTableDescriptor", "US", descriptor)


def _palette(ds: Dataset, *, descriptors: bool = True, data: bool = True) -> None:
    ds.PhotometricInterpretation = "PALETTE COLOR"
    if descriptors:
        _palette_descriptors(ds, [256, 0, 8])
    if data:
        ramp = bytes(range(256))
        ds.RedPaletteColorLookupTableData = ramp
        ds.GreenPaletteColorLookupTableData = ramp[::-1]
        ds.BluePaletteColorLookupTableData = bytes(128) + bytes([255] * 128)


def _segmented_bomb(ds: Dataset) -> None:
    """A discrete segment of 1 entry, then 30 indirect segments that each repeat all before them."""
    ds.PhotometricInterpretation = "PALETTE COLOR"
    _palette_descriptors(ds, [256, 0, 16])
    words = [0, 1, 0] + [w for k in range(1, 31) for w in (2, k, 0, 0)]
    table = struct.pack(f"<{len(words)}H", *words)
    for color in ("Red", "Green", "Blue"):
        ds.add_new(f"Segmented{color}PaletteColorLookupTableData", "OW", table)


def _rle_bomb(tmp: Path) -> Path:
    """3 MB of RLE that claims (and would decode to) 14080 x 14080 8-bit pixels."""
    ds = _header_only(14080, 14080, transfer_syntax=RLELossless)
    segment = b"\x81\x00" * (14080 * 14080 // 128)  # each pair: 128 zero bytes
    ds.PixelData = encapsulate([struct.pack("<16I", 1, 64, *[0] * 14) + segment])
    ds["PixelData"].VR = "OB"
    return _save(ds, tmp / "rle-bomb.dcm")


def _rle_segment_bomb(tmp: Path) -> Path:
    """A 16 x 16 RLE image whose single segment would expand to 128 MB before pydicom checks it."""
    ds = _header_only(16, 16, transfer_syntax=RLELossless)
    segment = b"\x81\x00" * (1 << 20)
    ds.PixelData = encapsulate([struct.pack("<16I", 1, 64, *[0] * 14) + segment])
    ds["PixelData"].VR = "OB"
    return _save(ds, tmp / "rle-segment.dcm")


def _native_bomb(tmp: Path) -> Path:
    ds = _header_only(20000, 20000)
    ds.PixelData = bytes(1024)
    return _save(ds, tmp / "native-bomb.dcm")


def _jpeg_frame_lies(tmp: Path) -> Path:
    """DICOM says 16 x 16; the JPEG frame inside says 20000 x 20000."""
    ds = _header_only(16, 16, transfer_syntax=JPEGBaseline8Bit)
    ds.PixelData = encapsulate([_patch_sof(_jpeg_bytes(16, 16), 20000, 20000)])
    ds["PixelData"].VR = "OB"
    return _save(ds, tmp / "jpeg-lies.dcm")


def _too_many_frames(tmp: Path) -> Path:
    ds = _header_only(16, 16, transfer_syntax=JPEGBaseline8Bit)
    ds.PixelData = encapsulate([_jpeg_bytes(16, 16)])
    ds["PixelData"].VR = "OB"
    ds.NumberOfFrames = 1_000_000
    return _save(ds, tmp / "frames.dcm")


def _deflate_bomb(tmp: Path) -> Path:
    """A few kB that inflate to 2 MB (refused under a 1 MiB byte cap)."""
    ds = _dataset(np.zeros((1448, 1448), np.uint8), transfer_syntax=DeflatedExplicitVRLittleEndian)
    path = _save(ds, tmp / "deflate.dcm")
    assert path.stat().st_size < 64 * 1024
    return path


def _short_pixel_data(tmp: Path) -> Path:
    ds = _dataset()
    ds.PixelData = ds.PixelData[:100]
    return _save(ds, tmp / "short.dcm")


def _unknown_syntax(tmp: Path) -> Path:
    ds = _dataset()
    path = _save(ds, tmp / "ts.dcm")
    data = path.read_bytes()
    old = ExplicitVRLittleEndian.encode() + b"\x00"  # "1.2.840.10008.1.2.1" padded to 20 bytes
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, b"1.2.3.4.5.6.7.8.9.0\x00"))
    return path


def _cut_in_pixel_data_header(tmp: Path) -> Path:
    data = _save(_dataset(), tmp / "full.dcm").read_bytes()
    at = data.rindex(b"\xe0\x7f\x10\x00OW")  # the (7FE0,0010) element header
    (tmp / "cut.dcm").write_bytes(data[: at + 7])
    return tmp / "cut.dcm"


def _no_pixel_data(tmp: Path) -> Path:
    ds = _dataset()
    del ds.PixelData
    return _save(ds, tmp / "nopix.dcm")


# ---------------------------------------------------------------- building PNG and JPEG files


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_bytes(width: int, height: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def _real_png_12000(tmp: Path) -> Path:
    """A complete, valid 12000 x 12000 grayscale PNG, compressed row by row (never held whole)."""
    packer = zlib.compressobj(1)
    row = bytes(12001)  # filter byte + 12000 zero pixels
    idat = b"".join(packer.compress(row) for _ in range(12000)) + packer.flush()
    path = tmp / "big.png"
    path.write_bytes(_png_bytes(12000, 12000, idat))
    return path


def _png_claims(width: int, height: int) -> Builder:
    def build(tmp: Path) -> Path:
        path = tmp / "claims.png"
        path.write_bytes(_png_bytes(width, height, zlib.compress(bytes(64))))
        return path

    return build


def _png_file(tmp: Path, name: str = "ok.png") -> Path:
    rng = np.random.default_rng(1)
    path = tmp / name
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(path, format="PNG")
    return path


def _bytes_of(make: Callable[[Path], bytes], name: str) -> Builder:
    def build(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(make(tmp))
        return path

    return build


def _truncated_png(tmp: Path) -> bytes:
    data = _png_file(tmp, "full.png").read_bytes()
    return data[: len(data) // 2]


def _bad_crc_png(tmp: Path) -> bytes:
    data = bytearray(_png_file(tmp, "full.png").read_bytes())
    at = data.index(b"IDAT") + 4 + 10
    data[at] ^= 0xFF
    return bytes(data)


def _jpeg_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    gradient = np.tile(np.arange(width, dtype=np.uint8) * 7, (height, 1))
    Image.fromarray(gradient).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _patch_sof(data: bytes, width: int, height: int) -> bytes:
    out = bytearray(data)
    pos = 2
    while out[pos + 1] != 0xC0:
        pos += 2 + int.from_bytes(out[pos + 2 : pos + 4], "big")
    out[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
    return bytes(out)


def _truncated_jpeg(tmp: Path) -> bytes:
    data = _jpeg_bytes(64, 64)
    return data[: len(data) // 2]


# ---------------------------------------------------------------- non-files


def _missing(tmp: Path) -> Path:
    return tmp / "missing.png"


def _directory(tmp: Path) -> Path:
    (tmp / "folder.png").mkdir()
    return tmp / "folder.png"


def _empty(tmp: Path) -> Path:
    (tmp / "empty.dcm").write_bytes(b"")
    return tmp / "empty.dcm"


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "pipe.png")  # reading it would block forever
    return tmp / "pipe.png"


def _dangling_link(tmp: Path) -> Path:
    (tmp / "link.png").symlink_to(tmp / "nowhere.png")
    return tmp / "link.png"


def _link_loop(tmp: Path) -> Path:
    (tmp / "a.png").symlink_to(tmp / "b.png")
    (tmp / "b.png").symlink_to(tmp / "a.png")
    return tmp / "a.png"


def _text(tmp: Path) -> Path:
    (tmp / "notes.png").write_text("hello, this is not an image\n")
    return tmp / "notes.png"


def _nul_in_name(tmp: Path) -> Path:
    return Path(str(tmp / "bad") + "\x00name.png")


# ---------------------------------------------------------------- the table

SMALL_BYTES = ImageLimits(max_file_bytes=1 << 20)
TINY_BYTES = ImageLimits(max_file_bytes=100)

CASES: list[tuple[str, Builder, str, ImageLimits | None]] = [
    # ---- DICOM: windowing
    ("window-width-zero", _dcm(_windowed(b"2048", b"0")),
     "WindowWidth (0028,1051) is 0, but it must be at least 1 for LINEAR windowing", None),
    ("window-width-negative", _dcm(_windowed(b"2048", b"-100")),
     "WindowWidth (0028,1051) is -100, but it must be at least 1 for LINEAR windowing", None),
    ("window-center-not-a-number", _dcm(_windowed(b"abc", b"400")),
     "WindowCenter (0028,1050) is 'abc', which is not a number", None),
    ("window-center-nan", _dcm(_windowed(b"nan", b"400")),
     "WindowCenter (0028,1050) is nan, which is not a finite number", None),
    ("window-counts-differ", _dcm(_windowed(b"40\\50", b"400")),
     "WindowCenter (0028,1050) has 2 values but WindowWidth (0028,1051) has 1", None),
    ("voi-function-bogus", _dcm(_windowed(b"2048", b"400", b"BOGUS")),
     "VOILUTFunction (0028,1056) is 'BOGUS', but it must be LINEAR, LINEAR_EXACT or SIGMOID", None),
    ("sigmoid-width-zero", _dcm(_windowed(b"2048", b"0", b"SIGMOID")),
     "WindowWidth (0028,1051) is 0, but it must be greater than 0 for SIGMOID windowing", None),
    # ---- DICOM: VOI LUT sequence
    ("voi-lut-no-items", _dcm(_with_voi_lut()),
     "VOILUTSequence (0028,3010) has no items, but it needs at least one", None),
    ("voi-lut-no-descriptor", _dcm(_with_voi_lut(_lut_item(None, list(range(4096))))),
     "VOILUTSequence (0028,3010) has an item without LUTDescriptor (0028,3002)", None),
    ("voi-lut-no-data", _dcm(_with_voi_lut(_lut_item([4096, 0, 12], None))),
     "VOILUTSequence (0028,3010) has an item without LUTData (0028,3006)", None),
    ("voi-lut-descriptor-two-numbers", _dcm(_with_voi_lut(_lut_item([4096, 0], list(range(4096))))),
     "LUTDescriptor (0028,3002) in VOILUTSequence (0028,3010) is '4096\\0', but it must be 3 numbers", None),
    ("voi-lut-data-short", _dcm(_with_voi_lut(_lut_item([4096, 0, 12], list(range(100))))),
     "LUTData (0028,3006) in VOILUTSequence (0028,3010) has 100 values, fewer than the 4,096 entries", None),
    ("voi-lut-nine-bits", _dcm(_with_voi_lut(_lut_item([256, 0, 9], list(range(256))))),
     "LUTDescriptor (0028,3002) in VOILUTSequence (0028,3010) is '256\\0\\9', but its bits per entry must be 8 "
     "or 10 to 16", None),
    ("voi-lut-values-over-8-bits", _dcm(_with_voi_lut(_lut_item([256, 0, 8], [300] * 256))),
     "LUTData (0028,3006) in VOILUTSequence (0028,3010) has values outside 0 to 255", None),
    # ---- DICOM: modality LUT
    ("modality-lut-no-items", _dcm(_with_modality_lut()),
     "ModalityLUTSequence (0028,3000) has no items, but it needs at least one", None),
    ("modality-lut-twelve-bits", _dcm(_with_modality_lut(_lut_item([4096, 0, 12], list(range(4096))))),
     "LUTDescriptor (0028,3002) in ModalityLUTSequence (0028,3000) is '4096\\0\\12', but its bits per entry "
     "must be 8 or 16", None),
    ("modality-lut-data-short", _dcm(_with_modality_lut(_lut_item([4096, 0, 16], list(range(10))))),
     "LUTData (0028,3006) in ModalityLUTSequence (0028,3000) has 10 values, fewer than the 4,096 entries", None),
    ("rescale-slope-not-a-number", _dcm(_set(RescaleSlope=b"abc", RescaleIntercept=b"0")),
     "RescaleSlope (0028,1053) is 'abc', which is not a number", None),
    ("rescale-intercept-infinite", _dcm(_set(RescaleSlope=b"1", RescaleIntercept=b"inf")),
     "RescaleIntercept (0028,1052) is inf, which is not a finite number", None),
    ("rescale-slope-two-values", _dcm(_set(RescaleSlope=b"1\\2", RescaleIntercept=b"0")),
     "RescaleSlope (0028,1053) is '1\\2', but it must be a single number", None),
    ("rescale-overflows", _dcm(_set(RescaleSlope=b"1e308", RescaleIntercept=b"0")),
     "RescaleSlope (0028,1053) 1e308 and RescaleIntercept (0028,1052) 0 give non-finite pixel values", None),
    # ---- DICOM: palette colour
    ("palette-without-tables", _dcm(lambda ds: _palette(ds, descriptors=False, data=False), bits_stored=8,
                                    pixels=np.zeros((4, 4), np.uint8)),
     "PhotometricInterpretation (0028,0004) is 'PALETTE COLOR', but RedPaletteColorLookupTableDescriptor "
     "(0028,1101) is missing", None),
    ("palette-without-data", _dcm(lambda ds: _palette(ds, data=False), pixels=np.zeros((4, 4), np.uint8)),
     "PhotometricInterpretation (0028,0004) is 'PALETTE COLOR', but RedPaletteColorLookupTableData "
     "(0028,1201) is missing", None),
    ("palette-tables-differ", _dcm(lambda ds: (_palette(ds), setattr(ds, "GreenPaletteColorLookupTableData",
                                                                     bytes(128))),
                                   pixels=np.zeros((4, 4), np.uint8)),
     "GreenPaletteColorLookupTableData (0028,1202) has 128 bytes, but RedPaletteColorLookupTableData "
     "(0028,1201) has 256", None),
    ("palette-segmented-bomb", _dcm(_segmented_bomb, pixels=np.zeros((4, 4), np.uint8)),
     "SegmentedRedPaletteColorLookupTableData (0028,1221) expands to more than 131,072 entries", None),
    # ---- DICOM: image pixel module
    ("rows-zero", _dcm(_set(Rows=0)), "Rows (0028,0010) is 0, but it must be at least 1", None),
    ("columns-missing", _dcm(_set(Columns=None)), "Columns (0028,0011) is missing", None),
    ("bits-stored-over-allocated", _dcm(_set(BitsStored=16, HighBit=15), pixels=np.zeros((4, 4), np.uint8)),
     "BitsStored (0028,0101) is 16, more than BitsAllocated (0028,0100) 8", None),
    ("bits-allocated-twelve", _dcm(_set(BitsAllocated=12)),
     "BitsAllocated (0028,0100) is 12, but it must be 1, 8, 16 or 32", None),
    ("samples-per-pixel-two", _dcm(_set(SamplesPerPixel=2)),
     "SamplesPerPixel (0028,0002) is 2, but it must be 1 or 3", None),
    ("pixel-representation-two", _dcm(_set(PixelRepresentation=2)),
     "PixelRepresentation (0028,0103) is 2, but it must be 0 or 1", None),
    ("photometric-unknown", _dcm(_set(PhotometricInterpretation="BOGUS")),
     "PhotometricInterpretation (0028,0004) is 'BOGUS', which this reader does not support", None),
    ("photometric-needs-three-samples", _dcm(_set(PhotometricInterpretation="RGB")),
     "PhotometricInterpretation (0028,0004) is 'RGB', which needs SamplesPerPixel (0028,0002) 3, not 1", None),
    ("rgb-without-planar-configuration",
     _dcm(_set(PlanarConfiguration=None), pixels=np.zeros((4, 4, 3), np.uint8), photometric="RGB"),
     "PlanarConfiguration (0028,0006) is missing", None),
    ("frames-zero", _dcm(_set(NumberOfFrames=b"0")), "NumberOfFrames (0028,0008) is 0, but it must be at least 1",
     None),
    ("frames-not-a-number", _dcm(_set(NumberOfFrames=b"abc")),
     "NumberOfFrames (0028,0008) is 'abc', which is not a number", None),
    ("pixel-data-short", _short_pixel_data, "truncated or corrupt DICOM pixel data", None),
    ("no-pixel-data", _no_pixel_data, "DICOM file has no pixel data", None),
    ("unknown-transfer-syntax", _unknown_syntax,
     "TransferSyntaxUID (0002,0010) is '1.2.3.4.5.6.7.8.9.0', which is not a transfer syntax this reader knows",
     None),
    ("cut-in-pixel-data-header", _cut_in_pixel_data_header, "DICOM file has no pixel data", None),
    # ---- DICOM: resource bombs
    ("rle-bomb-14080", _rle_bomb,
     "DICOM header says Rows (0028,0010) 14080 x Columns (0028,0011) 14080 = 198,246,400 pixels, over the limit "
     f"of 50,000,000 {PIXEL_CAP}", None),
    ("native-header-bomb", _native_bomb,
     "DICOM header says Rows (0028,0010) 20000 x Columns (0028,0011) 20000 = 400,000,000 pixels", None),
    ("rle-segment-bomb", _rle_segment_bomb,
     "RLE segment 1 of the first frame in PixelData (7FE0,0010) decodes to more than 1,048,832 bytes, but Rows "
     "(0028,0010) 16 x Columns (0028,0011) 16 need only 256", None),
    ("jpeg-frame-larger-than-header", _jpeg_frame_lies,
     "the compressed first frame is 20000 x 20000 pixels, but Columns (0028,0011) 16 x Rows (0028,0010) 16 say "
     "otherwise", None),
    ("frames-more-than-data", _too_many_frames,
     "NumberOfFrames (0028,0008) is 1,000,000, more frames than the", None),
    ("deflate-bomb", _deflate_bomb,
     "inflates to more than 1,048,576 bytes, over the limit of 1,048,576 bytes (raise it with --max-image-bytes)",
     SMALL_BYTES),
    # ---- PNG
    ("png-12000-square", _real_png_12000,
     f"PNG header says 12000 x 12000 = 144,000,000 pixels, over the limit of 50,000,000 {PIXEL_CAP}", None),
    ("png-header-huge-data-tiny", _png_claims(100000, 100000),
     f"PNG header says 100000 x 100000 = 10,000,000,000 pixels, over the limit of 50,000,000 {PIXEL_CAP}", None),
    ("png-header-large-data-tiny", _png_claims(4000, 4000), "truncated or corrupt PNG", None),
    ("png-zero-width", _png_claims(0, 16), "truncated or corrupt PNG", None),
    ("png-truncated", _bytes_of(_truncated_png, "cut.png"), "truncated or corrupt PNG", None),
    ("png-bad-crc", _bytes_of(_bad_crc_png, "crc.png"), "truncated or corrupt PNG", None),
    ("png-magic-only", _bytes_of(lambda _: b"\x89PNG\r\n\x1a\n", "magic.png"), "truncated or corrupt PNG", None),
    # ---- JPEG
    ("jpeg-truncated", _bytes_of(_truncated_jpeg, "cut.jpg"), "truncated or corrupt JPEG", None),
    ("jpeg-header-60000-square", _bytes_of(lambda _: _patch_sof(_jpeg_bytes(16, 16), 60000, 60000), "big.jpg"),
     f"JPEG header says 60000 x 60000 = 3,600,000,000 pixels, over the limit of 50,000,000 {PIXEL_CAP}", None),
    ("jpeg-header-10000-square", _bytes_of(lambda _: _patch_sof(_jpeg_bytes(16, 16), 10000, 10000), "mid.jpg"),
     f"JPEG header says 10000 x 10000 = 100,000,000 pixels, over the limit of 50,000,000 {PIXEL_CAP}", None),
    ("jpeg-magic-only", _bytes_of(lambda _: b"\xff\xd8\xff", "magic.jpg"), "truncated or corrupt JPEG", None),
    ("jpeg-garbage-after-magic", _bytes_of(lambda _: b"\xff\xd8\xff" + bytes(range(256)) * 4, "junk.jpg"),
     "truncated or corrupt JPEG", None),
    # ---- not image files
    ("missing-file", _missing, "file not found", None),
    ("directory", _directory, "not a regular file", None),
    ("empty-file", _empty, "empty file", None),
    ("fifo", _fifo, "not a regular file", None),
    ("dangling-symlink", _dangling_link, "file not found", None),
    ("symlink-loop", _link_loop, "cannot read file", None),
    ("nul-in-name", _nul_in_name, "cannot read file (embedded null byte)", None),
    ("text-file", _text, "not a PNG, JPEG or DICOM file", None),
    ("over-byte-cap", lambda tmp: _png_file(tmp, "cap.png"), "bytes, over the limit of 100 bytes (raise it with "
     "--max-image-bytes)", TINY_BYTES),
]


def test_the_table_has_thirty_distinct_cases() -> None:
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)) >= 30


def _is_dicom(path: Path) -> bool:
    try:
        return path.is_file() and path.read_bytes()[128:132] == b"DICM"
    except (OSError, ValueError):
        return False


def _carries_phi(path: Path) -> bool:
    """The sentinels really are in the file (read back by pydicom: some files are deflated)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return {k: str(ds.get(k, "")) for k in PHI} == PHI


@pytest.mark.parametrize(("case", "build", "fragment", "limits"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("reader", ["read_image", "load_image"])
def test_hostile_input_is_an_image_load_error(
    tmp_path: Path, case: str, build: Builder, fragment: str, limits: ImageLimits | None, reader: str
) -> None:
    path = build(tmp_path)
    limits = limits or DEFAULT_IMAGE_LIMITS
    call = read_image if reader == "read_image" else load_image
    with pytest.raises(ImageLoadError) as info:
        call(path, limits)
    error = info.value
    assert type(error) is ImageLoadError
    assert error.path == str(path)
    assert str(error) == f"{path}: {error.reason}"
    assert fragment in error.reason, error.reason
    assert "\n" not in error.reason and len(error.reason) < 400
    if _is_dicom(path):
        assert not any(phi in str(error) for phi in PHI_STRINGS), str(error)
        assert _carries_phi(path)


@pytest.mark.parametrize(
    "build", [_rle_bomb, _native_bomb, _real_png_12000, _png_claims(100000, 100000), _jpeg_frame_lies,
              _bytes_of(lambda _: _patch_sof(_jpeg_bytes(16, 16), 10000, 10000), "mid.jpg")],
    ids=["rle-bomb", "native-bomb", "png-12000", "png-100000", "jpeg-in-dicom", "jpeg-10000"],
)
def test_size_refusals_are_fast_and_decode_nothing(tmp_path: Path, build: Builder, monkeypatch) -> None:
    path = build(tmp_path)

    def must_not_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(dicom_module, "pixel_array", must_not_decode)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", must_not_decode)
    started = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(ImageLoadError) as info:
            read_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert "pixels were decoded" not in info.value.reason
    assert "pixels" in info.value.reason
    assert elapsed < 2.5, elapsed
    assert peak < 4 * path.stat().st_size + (16 << 20), peak  # the file, a few copies, no pixels


def test_rle_bomb_peak_memory_is_far_below_the_claimed_size(tmp_path: Path) -> None:
    path = _rle_bomb(tmp_path)
    assert path.stat().st_size < 4 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ImageLoadError, match="198,246,400 pixels"):
            read_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, peak  # the claimed frame alone is 198 MB (6.5 GB once rescaled)


def test_rle_segment_bomb_is_refused_before_expanding(tmp_path: Path) -> None:
    path = _rle_segment_bomb(tmp_path)
    tracemalloc.start()
    try:
        with pytest.raises(ImageLoadError, match="RLE segment 1"):
            read_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 << 20, peak  # pydicom would expand the segment to 128 MB


def test_file_over_the_byte_cap_is_not_read(tmp_path: Path, monkeypatch) -> None:
    path = _png_file(tmp_path)
    opened: list[object] = []
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: opened.append(self) or real_open(self, *a, **k))
    with pytest.raises(ImageLoadError) as info:
        read_image(path, ImageLimits(max_file_bytes=100))
    assert info.value.reason == (
        f"file is {path.stat().st_size:,} bytes, over the limit of 100 bytes (raise it with --max-image-bytes)"
    )
    assert opened == []


# ---------------------------------------------------------------- legitimate files: same pixels as before


def _legacy_dicom_gray(path: Path) -> np.ndarray:
    """The pre-hardening read_dicom pipeline, computed with pydicom directly."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    raw = arr[0] if frames > 1 else arr
    photometric = str(ds.PhotometricInterpretation).upper()

    def scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if high == low:
            return np.zeros(values.shape, dtype=np.uint8)
        return np.clip(np.rint((values - low) / (high - low) * 255.0), 0, 255).astype(np.uint8)

    if int(ds.SamplesPerPixel) > 1 or photometric == "PALETTE COLOR":
        rgb = apply_color_lut(raw, ds) if photometric == "PALETTE COLOR" else raw
        bits = 16 if photometric == "PALETTE COLOR" and rgb.dtype == np.uint16 else int(ds.BitsStored)
        return scale(rgb[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114]), 0.0, float(2**bits - 1))
    values = apply_modality_lut(raw, ds)
    if "VOILUTSequence" in ds:
        lut = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float64)
        out = scale(apply_voi_lut(values, ds, prefer_lut=True), lut.min(), lut.max())
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        windowed = apply_voi_lut(values, ds, prefer_lut=False)
        if "ModalityLUTSequence" in ds:
            low, high = 0.0, float(2 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1)
        elif int(ds.PixelRepresentation) == 0:
            low, high = 0.0, float(2 ** int(ds.BitsStored) - 1)
        else:
            low, high = float(-(2 ** (int(ds.BitsStored) - 1))), float(2 ** (int(ds.BitsStored) - 1) - 1)
        if "RescaleSlope" in ds and "RescaleIntercept" in ds:
            slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
            low, high = low * slope + intercept, high * slope + intercept
        out = scale(windowed, low, high)
    else:
        out = scale(values, float(np.min(values)), float(np.max(values)))
    return 255 - out if photometric == "MONOCHROME1" else out


def _ramp(low: int, high: int, shape: tuple[int, int] = (16, 16)) -> np.ndarray:
    return np.linspace(low, high, shape[0] * shape[1]).round().astype(np.uint16).reshape(shape)


def _legit_voi_lut(tmp: Path) -> Path:
    ds = _dataset(_ramp(0, 4095))
    ds.VOILUTSequence = [_lut_item([4096, 0, 12], [4095 - v for v in range(4096)])]
    return _save(ds, tmp / "voi.dcm")


def _legit_modality_lut(tmp: Path) -> Path:
    ds = _dataset(_ramp(0, 255), bits_stored=8)
    ds.ModalityLUTSequence = [_lut_item([256, 0, 16], [v * 200 for v in range(256)])]
    ds.WindowCenter, ds.WindowWidth = 25000, 30000
    return _save(ds, tmp / "mlut.dcm")


def _legit_palette(tmp: Path) -> Path:
    ds = _dataset(np.arange(256, dtype=np.uint8).reshape(16, 16), bits_stored=8)
    _palette(ds)
    return _save(ds, tmp / "palette.dcm")


def _legit_palette_16(tmp: Path) -> Path:
    ds = _dataset(np.arange(256, dtype=np.uint8).reshape(16, 16), bits_stored=8)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    _palette_descriptors(ds, [256, 0, 16])
    ramp = np.arange(256, dtype="<u2") * 257
    ds.RedPaletteColorLookupTableData = ramp.tobytes()
    ds.GreenPaletteColorLookupTableData = ramp[::-1].tobytes()
    ds.BluePaletteColorLookupTableData = np.full(256, 30000, "<u2").tobytes()
    return _save(ds, tmp / "palette16.dcm")


def _legit_segmented_palette(tmp: Path) -> Path:
    ds = _dataset(np.arange(256, dtype=np.uint8).reshape(16, 16), bits_stored=8)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    _palette_descriptors(ds, [256, 0, 16])
    for color, top in (("Red", 65535), ("Green", 30000), ("Blue", 1000)):
        words = [0, 1, 0, 1, 255, top]  # one discrete entry, then a linear ramp of 255
        ds.add_new(f"Segmented{color}PaletteColorLookupTableData", "OW", struct.pack("<6H", *words))
    return _save(ds, tmp / "segmented.dcm")


def _legit_rle(tmp: Path) -> Path:
    ds = _dataset(_ramp(0, 4095, (32, 24)))
    ds.compress(RLELossless, generate_instance_uid=False)
    return _save(ds, tmp / "rle.dcm")


def _legit_rle_multiframe(tmp: Path) -> Path:
    frames = np.stack([_ramp(0, 4095), _ramp(4095, 0), np.zeros((16, 16), np.uint16)])
    ds = _dataset(frames)
    ds.compress(RLELossless, generate_instance_uid=False)
    return _save(ds, tmp / "rle3.dcm")


def _legit_jpeg_dicom(tmp: Path) -> Path:
    ds = _header_only(16, 16, transfer_syntax=JPEGBaseline8Bit)
    ds.PixelData = encapsulate([_jpeg_bytes(16, 16)])
    ds["PixelData"].VR = "OB"
    return _save(ds, tmp / "jpeg.dcm")


def _legit_deflated(tmp: Path) -> Path:
    return _save(_dataset(_ramp(0, 4095), transfer_syntax=DeflatedExplicitVRLittleEndian), tmp / "deflated.dcm")


def _legit_write(pixels: np.ndarray, **kwargs: object) -> Builder:
    def build(tmp: Path) -> Path:
        write_dicom(pixels, tmp / "legit.dcm", **kwargs)  # type: ignore[arg-type]
        return tmp / "legit.dcm"

    return build


def _legit_sigmoid(tmp: Path) -> Path:
    ds = _dataset(_ramp(0, 4095))
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = 2048, 1000, "SIGMOID"
    return _save(ds, tmp / "sigmoid.dcm")


def _legit_multi_window(tmp: Path) -> Path:
    ds = _dataset(_ramp(0, 4095))
    ds.WindowCenter, ds.WindowWidth = [1000, 3000], [500, 2000]
    return _save(ds, tmp / "multiwindow.dcm")


LEGIT_DICOM: list[tuple[str, Builder]] = [
    ("twelve-bit", _legit_write(_ramp(0, 4095))),
    ("sixteen-bit", _legit_write(_ramp(0, 65535))),
    ("eight-bit", _legit_write(np.arange(256, dtype=np.uint8).reshape(16, 16))),
    ("monochrome1", _legit_write(_ramp(0, 4095), photometric="MONOCHROME1")),
    ("windowed", _legit_write(_ramp(0, 65535), window=(30000, 10000))),
    ("rescaled-windowed", _legit_write(_ramp(0, 1000), rescale_slope=2.0, rescale_intercept=-1024.0, window=(0, 200))),
    ("monochrome1-windowed", _legit_write(_ramp(0, 4095), photometric="MONOCHROME1", window=(2048, 1000))),
    ("multi-frame", _legit_write(np.stack([_ramp(0, 4095), np.zeros((16, 16), np.uint16), _ramp(4095, 0)]))),
    ("rgb", _legit_write(np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5, photometric="RGB")),
    ("voi-lut", _legit_voi_lut),
    ("modality-lut", _legit_modality_lut),
    ("palette-8-bit", _legit_palette),
    ("palette-16-bit", _legit_palette_16),
    ("palette-segmented", _legit_segmented_palette),
    ("sigmoid", _legit_sigmoid),
    ("multi-window", _legit_multi_window),
    ("rle", _legit_rle),
    ("rle-multi-frame", _legit_rle_multiframe),
    ("jpeg-baseline", _legit_jpeg_dicom),
    ("deflated", _legit_deflated),
]


@pytest.mark.parametrize(("case", "build"), LEGIT_DICOM, ids=[c[0] for c in LEGIT_DICOM])
def test_legitimate_dicom_decodes_as_before(tmp_path: Path, case: str, build: Builder) -> None:
    path = build(tmp_path)
    expected = _legacy_dicom_gray(path)
    assert expected.ndim == 2 and expected.dtype == np.uint8
    assert int(expected.max()) > int(expected.min()) or case == "never"  # a real image, not a blank

    image = np.asarray(load_image(path))
    assert image.shape == expected.shape + (3,)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], expected)
    np.testing.assert_array_equal(read_dicom(path).pixels, expected)
    np.testing.assert_array_equal(read_dicom(path.read_bytes()).pixels, expected)
    record = read_image(path)
    assert record.format == "dicom" and record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_known_values_of_a_windowed_voi_and_palette_read(tmp_path: Path) -> None:
    # Fixed numbers, independent of the legacy copy above.
    write_dicom(np.array([[0, 20000, 24999, 27500, 30000, 35001, 40000, 65535]], np.uint16),
                tmp_path / "w.dcm", window=(30000, 10000))
    assert read_dicom(tmp_path / "w.dcm").pixels.tolist() == [[0, 0, 0, 64, 128, 255, 255, 255]]
    voi = read_dicom(_legit_voi_lut(tmp_path)).pixels
    assert (voi[0, 0], voi[-1, -1]) == (255, 0)
    palette = read_dicom(_legit_palette(tmp_path)).pixels
    # index 0 -> (0, 255, 0): luma 0.587 * 255; index 255 -> (255, 0, 255): (0.299 + 0.114) * 255
    assert (palette[0, 0], palette[-1, -1]) == (150, 105)


def test_multi_frame_decodes_only_the_first_frame(tmp_path: Path, monkeypatch) -> None:
    path = _legit_rle_multiframe(tmp_path)
    calls: list[dict] = []
    real = dicom_module.pixel_array

    def spy(src: object, **kwargs: object) -> np.ndarray:
        calls.append(kwargs)
        return real(src, **kwargs)

    monkeypatch.setattr(dicom_module, "pixel_array", spy)
    image = read_dicom(path)
    assert calls == [{"index": 0}]
    assert image.frames == 3 and image.pixels.shape == (16, 16)
    assert (image.pixels[0, 0], image.pixels[-1, -1]) == (0, 255)


def test_preamble_less_dicom_from_bytes_and_path(tmp_path: Path) -> None:
    ds = _dataset(_ramp(0, 4095))
    del ds.file_meta
    path = tmp_path / "bare"
    pydicom.dcmwrite(path, ds, implicit_vr=False, little_endian=True, enforce_file_format=False)
    record = read_image(path)
    assert record.format == "dicom"
    np.testing.assert_array_equal(np.asarray(record.image)[..., 0], read_dicom(path.read_bytes()).pixels)
    assert read_dicom(path).pixels.max() == 255


def _legacy_raster(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        img.load()
        return np.asarray(to_rgb(img))


@pytest.mark.parametrize("kind", ["gray-png", "rgb-png", "sixteen-bit-png", "palette-png", "jpeg", "rgba-png"])
def test_legitimate_png_and_jpeg_decode_as_before(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "image"
    if kind == "gray-png":
        Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(path, format="PNG")
    elif kind == "rgb-png":
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(path, format="PNG")
    elif kind == "sixteen-bit-png":
        Image.fromarray(rng.integers(0, 65536, (20, 30), dtype=np.uint16)).save(path, format="PNG")
    elif kind == "palette-png":
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).convert("P").save(path, format="PNG")
    elif kind == "rgba-png":
        Image.fromarray(rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)).save(path, format="PNG")
    else:
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(path, format="JPEG")
    expected = _legacy_raster(path)
    record = read_image(path)
    assert record.image.mode == "RGB" and record.image.size == (30, 20)
    np.testing.assert_array_equal(np.asarray(record.image), expected)
    np.testing.assert_array_equal(np.asarray(load_image(path)), expected)
    assert record.format == ("jpeg" if kind == "jpeg" else "png")


def test_known_values_of_a_sixteen_bit_png(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 257 * 100, 65535]], np.uint16)).save(tmp_path / "deep.png")
    assert np.asarray(read_image(tmp_path / "deep.png").image)[..., 0].tolist() == [[0, 100, 255]]


# ---------------------------------------------------------------- ImageFile


def test_image_file_hashes_exactly_the_bytes_and_resolves_the_path(tmp_path: Path, monkeypatch) -> None:
    path = _png_file(tmp_path, "scan.dcm")  # a PNG named .dcm: the content decides
    monkeypatch.chdir(tmp_path)
    record = read_image("scan.dcm")
    assert isinstance(record, ImageFile)
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record.format == "png"
    assert record.path == path.resolve() and record.path.is_absolute()
    assert record.image.mode == "RGB" and record.image.size == (64, 64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.sha256 = "x"  # type: ignore[misc]


def test_each_format_reports_its_name(tmp_path: Path) -> None:
    Image.new("L", (4, 4), 9).save(tmp_path / "a", format="JPEG")
    write_dicom(_ramp(0, 4095), tmp_path / "b")
    assert read_image(tmp_path / "a").format == "jpeg"
    assert read_image(tmp_path / "b").format == "dicom"


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_pixels": 0}, "ImageLimits.max_pixels must be an integer of at least 1, got 0"),
        ({"max_pixels": -5}, "ImageLimits.max_pixels must be an integer of at least 1, got -5"),
        ({"max_file_bytes": 0}, "ImageLimits.max_file_bytes must be an integer of at least 1, got 0"),
        ({"max_file_bytes": 1.5}, "ImageLimits.max_file_bytes must be an integer of at least 1, got 1.5"),
        ({"max_pixels": True}, "ImageLimits.max_pixels must be an integer of at least 1, got True"),
        ({"max_pixels": "10"}, "ImageLimits.max_pixels must be an integer of at least 1, got '10'"),
    ],
)
def test_image_limits_validate_their_fields(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        ImageLimits(**kwargs)
    assert str(info.value) == message


def test_image_limits_defaults_and_frozen() -> None:
    assert (DEFAULT_IMAGE_LIMITS.max_pixels, DEFAULT_IMAGE_LIMITS.max_file_bytes) == (50_000_000, 1 << 30)
    assert ImageLimits(max_pixels=1, max_file_bytes=1) == ImageLimits(1, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_IMAGE_LIMITS.max_pixels = 5  # type: ignore[misc]


def test_pixel_cap_is_inclusive(tmp_path: Path) -> None:
    path = _png_file(tmp_path)  # 64 x 64 = 4096
    assert read_image(path, ImageLimits(max_pixels=4096)).image.size == (64, 64)
    with pytest.raises(ImageLoadError) as info:
        read_image(path, ImageLimits(max_pixels=4095))
    assert info.value.reason == f"PNG header says 64 x 64 = 4,096 pixels, over the limit of 4,095 {PIXEL_CAP}"


def test_dicom_pixel_cap_counts_samples(tmp_path: Path) -> None:
    write_dicom(np.zeros((10, 10, 3), np.uint8), tmp_path / "rgb.dcm", photometric="RGB")
    assert read_dicom(tmp_path / "rgb.dcm", ImageLimits(max_pixels=300)).pixels.shape == (10, 10)
    with pytest.raises(ImageLoadError) as info:
        read_dicom(tmp_path / "rgb.dcm", ImageLimits(max_pixels=299))
    assert info.value.reason == (
        "DICOM header says Rows (0028,0010) 10 x Columns (0028,0011) 10 x SamplesPerPixel (0028,0002) 3 = 300 "
        f"pixels, over the limit of 299 {PIXEL_CAP}"
    )


def test_raising_the_cap_past_pillows_own_still_decodes(tmp_path: Path, monkeypatch) -> None:
    path = _png_file(tmp_path)
    expected = _legacy_raster(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow itself now refuses over 200 pixels
    np.testing.assert_array_equal(np.asarray(read_image(path).image), expected)
    with pytest.raises(ImageLoadError) as info:
        read_image(path, ImageLimits(max_pixels=1000))
    assert info.value.reason == f"PNG header says 64 x 64 = 4,096 pixels, over the limit of 1,000 {PIXEL_CAP}"


def test_no_decompression_bomb_warning_escapes(tmp_path: Path, monkeypatch) -> None:
    path = _png_file(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 4096 > 3000: Pillow would warn
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert read_image(path).image.size == (64, 64)
    assert [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)] == []


def test_an_image_already_in_memory_is_not_capped_again(tmp_path: Path) -> None:
    """The cap guards decoding; an image in memory was decoded under the caller's own limits
    (a run's --max-image-pixels), and the session must not refuse it with the default ones."""
    img = Image.new("L", (100, 50))
    converted = load_image(img, ImageLimits(max_pixels=10))
    assert converted.size == (100, 50) and converted.mode == "RGB"


# ---------------------------------------------------------------- the catch-all


def test_unexpected_dicom_failure_is_an_image_load_error_without_phi(tmp_path: Path, monkeypatch) -> None:
    path = _save(_dataset(), tmp_path / "x.dcm")

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom for PHI^SENTINEL and PHI-ID-123456\nsecond line")

    monkeypatch.setattr(dicom_module, "apply_modality_lut", explode)
    with pytest.raises(ImageLoadError) as info:
        read_image(path)
    assert info.value.reason == "cannot interpret this DICOM file (RuntimeError: boom for <redacted> and <redacted>)"


def test_unexpected_raster_failure_is_an_image_load_error(tmp_path: Path, monkeypatch) -> None:
    path = _png_file(tmp_path)

    def explode(img: Image.Image) -> None:
        raise KeyError("mode")

    monkeypatch.setattr("compute.data.images.to_rgb", explode)
    with pytest.raises(ImageLoadError) as info:
        read_image(path)
    assert info.value.reason == "cannot interpret this PNG file (KeyError: 'mode')"


def test_long_exception_messages_are_cut(tmp_path: Path, monkeypatch) -> None:
    path = _save(_dataset(), tmp_path / "x.dcm")
    monkeypatch.setattr(dicom_module, "apply_modality_lut", lambda *a: (_ for _ in ()).throw(ValueError("x" * 500)))
    with pytest.raises(ImageLoadError) as info:
        read_image(path)
    assert info.value.reason == f"cannot interpret this DICOM file (ValueError: {'x' * 200})"


def test_read_dicom_bytes_names_bytes() -> None:
    with pytest.raises(ImageLoadError) as info:
        read_dicom(b"hello, not a dicom file at all")
    assert (info.value.path, info.value.reason) == ("<bytes>", "not a DICOM file")


# ---------------------------------------------------------------- uploads


def _png_upload(size: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (size, size), 200).save(buffer, format="PNG")
    return buffer.getvalue()


def test_load_upload_passes_limits_through() -> None:
    png = _png_upload()
    assert load_upload(png, "scan.png").size == (32, 32)
    assert load_upload(png, "scan.png", limits=ImageLimits(max_pixels=1024)).size == (32, 32)
    with pytest.raises(ImageLoadError) as info:
        load_upload(png, "scan.png", limits=ImageLimits(max_pixels=1023))
    assert str(info.value) == f"scan.png: PNG header says 32 x 32 = 1,024 pixels, over the limit of 1,023 {PIXEL_CAP}"
    with pytest.raises(ImageLoadError) as info:
        load_upload(png, "scan.png", limits=ImageLimits(max_file_bytes=10))
    assert str(info.value) == (
        f"scan.png: file is {len(png):,} bytes, over the limit of 10 bytes (raise it with --max-image-bytes)"
    )


def test_load_upload_keeps_its_own_cap_and_names(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match=r"^big\.png: 0\.0 MiB is over the 0 MiB upload limit$"):
        load_upload(_png_upload(), "big.png", max_bytes=10)
    rle = _rle_bomb(tmp_path).read_bytes()
    with pytest.raises(ImageLoadError) as info:
        load_upload(rle, "upload.dcm")
    assert info.value.path == "upload.dcm" and "198,246,400 pixels" in info.value.reason
    with pytest.raises(ImageLoadError, match=r"^empty\.png: empty file$"):
        load_upload(b"", "empty.png")
