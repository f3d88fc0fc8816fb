"""Image loading: DICOM windowing and LUTs, content-based format detection, and clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGLSLossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from compute.data.dicom import DicomImage, read_dicom
from compute.demo.dicom_writer import write_dicom
from compute.data.images import ImageLoadError, detect_format, load_image


def _ramp(low: int, high: int, shape: tuple[int, int] = (16, 16)) -> np.ndarray:
    return np.linspace(low, high, shape[0] * shape[1]).round().astype(np.uint16).reshape(shape)


def _gray(img: Image.Image) -> np.ndarray:
    arr = np.asarray(img)
    assert img.mode == "RGB" and arr.ndim == 3 and arr.shape[2] == 3
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    return arr[..., 0]


def _raw_dataset(pixels: np.ndarray, bits_stored: int) -> Dataset:
    """A minimal DICOM image data set built directly with pydicom, not with write_dicom."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality = "CR"
    ds.set_pixel_data(pixels, "MONOCHROME2", bits_stored, generate_instance_uid=False)
    return ds


# ---------------------------------------------------------------- write_dicom


def test_write_dicom_is_deterministic(tmp_path: Path) -> None:
    pixels = _ramp(0, 4000)
    write_dicom(pixels, tmp_path / "a.dcm", window=(2000, 4000))
    write_dicom(pixels, tmp_path / "b.dcm", window=(2000, 4000))
    assert (tmp_path / "a.dcm").read_bytes() == (tmp_path / "b.dcm").read_bytes()

    write_dicom(pixels + 1, tmp_path / "c.dcm", window=(2000, 4000))
    uid = pydicom.dcmread(tmp_path / "a.dcm").SOPInstanceUID
    assert pydicom.dcmread(tmp_path / "c.dcm").SOPInstanceUID != uid


def test_write_dicom_tags_read_back(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    write_dicom(_ramp(0, 4095), path, photometric="MONOCHROME1", rescale_slope=2.0,
                rescale_intercept=-1024.0, window=(40.0, 400.0))
    assert path.read_bytes()[128:132] == b"DICM"
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds.Modality == "DX"
    assert (ds.Rows, ds.Columns, ds.SamplesPerPixel) == (16, 16, 1)
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (2.0, -1024.0)
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (40.0, 400.0)
    assert ds.StudyDate == "20000101"
    assert str(ds.PatientName) == "SYNTHETIC^PATIENT" and ds.PatientID == "SYNTH"
    np.testing.assert_array_equal(ds.pixel_array, _ramp(0, 4095))


@pytest.mark.parametrize(("peak", "bits"), [(200, 8), (1000, 10), (4095, 12), (4096, 16), (65535, 16)])
def test_write_dicom_bits_stored_fits_max(tmp_path: Path, peak: int, bits: int) -> None:
    write_dicom(_ramp(0, peak), tmp_path / "x.dcm")
    ds = pydicom.dcmread(tmp_path / "x.dcm")
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, bits, bits - 1)


def test_write_dicom_uint8_has_no_identity_rescale(tmp_path: Path) -> None:
    write_dicom(np.full((5, 7), 9, np.uint8), tmp_path / "x.dcm")  # odd byte count is padded
    ds = pydicom.dcmread(tmp_path / "x.dcm")
    assert (ds.BitsAllocated, ds.BitsStored) == (8, 8)
    assert "RescaleSlope" not in ds and "WindowCenter" not in ds
    assert ds.pixel_array.shape == (5, 7)


def test_write_dicom_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_dicom(np.zeros((4, 4), np.float32), tmp_path / "x.dcm")
    with pytest.raises(ValueError):
        write_dicom(np.zeros((4, 4), np.uint8), tmp_path / "x.dcm", photometric="YBR_FULL")


# ---------------------------------------------------------------- read_dicom: grayscale pipeline


def test_twelve_bit_round_trip(tmp_path: Path) -> None:
    pixels = _ramp(0, 4095)
    write_dicom(pixels, tmp_path / "x.dcm")
    image = read_dicom(tmp_path / "x.dcm")
    assert image.bits_stored == 12 and image.pixels.dtype == np.uint8
    assert (image.rows, image.columns) == pixels.shape
    np.testing.assert_array_equal(image.pixels, np.rint(pixels / 4095 * 255).astype(np.uint8))


def test_no_window_is_min_max_scaled(tmp_path: Path) -> None:
    write_dicom(np.array([[1000, 2000, 3000]], np.uint16), tmp_path / "x.dcm")
    image = read_dicom(tmp_path / "x.dcm")
    assert image.voi_applied is False
    assert image.pixels.tolist() == [[0, 128, 255]]


def test_window_center_width_on_sixteen_bit_data(tmp_path: Path) -> None:
    stored = np.array([[0, 20000, 24999, 27500, 30000, 35001, 40000, 65535]], np.uint16)
    write_dicom(stored, tmp_path / "x.dcm", window=(30000, 10000))
    image = read_dicom(tmp_path / "x.dcm")
    assert image.voi_applied and image.bits_stored == 16
    out = image.pixels[0].astype(int)
    assert out[:3].tolist() == [0, 0, 0]            # below centre - width/2
    assert out[5:].tolist() == [255, 255, 255]      # above centre + width/2
    assert out[4] in (127, 128)                     # the centre
    assert abs(out[3] - 63.75) <= 1                 # linear in between


def test_rescale_is_applied_before_window(tmp_path: Path) -> None:
    # Stored 512 is 0 after rescale; the window (0, 200) is only meaningful in rescaled units.
    stored = np.array([[300, 462, 512, 562, 1000]], np.uint16)
    write_dicom(stored, tmp_path / "x.dcm", rescale_slope=2.0, rescale_intercept=-1024.0, window=(0, 200))
    out = read_dicom(tmp_path / "x.dcm").pixels[0].astype(int)
    assert out[0] == 0 and out[1] <= 1              # stored 300/462 -> -424/-100, at or below the window
    assert out[2] in (127, 128)
    assert out[3] >= 254 and out[4] == 255


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    stored = np.array([[0, 100, 4000]], np.uint16)
    write_dicom(stored, tmp_path / "x.dcm", photometric="MONOCHROME1")
    image = read_dicom(tmp_path / "x.dcm")
    assert image.photometric == "MONOCHROME1"
    assert image.pixels[0, 2] == 0 == image.pixels.min()   # largest stored value is darkest
    assert image.pixels[0, 0] == 255


def test_monochrome1_inverted_after_window(tmp_path: Path) -> None:
    stored = np.array([[0, 2048, 4095]], np.uint16)
    write_dicom(stored, tmp_path / "x.dcm", photometric="MONOCHROME1", window=(2048, 1000))
    assert read_dicom(tmp_path / "x.dcm").pixels[0, [0, 2]].tolist() == [255, 0]


def test_voi_lut_sequence_built_with_raw_pydicom(tmp_path: Path) -> None:
    stored = np.array([[0, 1024, 2048, 4095]], np.uint16)
    ds = _raw_dataset(stored, bits_stored=12)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 12]
    item.add_new("LUTData", "US", [4095 - v for v in range(4096)])  # inverting, unlike any window
    ds.VOILUTSequence = [item]
    ds.WindowCenter, ds.WindowWidth = 2048, 4096    # the LUT takes precedence
    ds.save_as(tmp_path / "lut.dcm", enforce_file_format=True)

    image = read_dicom(tmp_path / "lut.dcm")
    assert image.voi_applied
    expected = np.rint((4095 - stored) / 4095 * 255).astype(np.uint8)
    np.testing.assert_array_equal(image.pixels, expected)


def test_multi_frame_takes_first_frame(tmp_path: Path) -> None:
    frames = np.stack([_ramp(0, 4095), np.zeros((16, 16), np.uint16), _ramp(4095, 0)])
    write_dicom(frames, tmp_path / "x.dcm")
    image = read_dicom(tmp_path / "x.dcm")
    assert image.frames == 3 and image.pixels.shape == (16, 16)
    assert image.pixels[0, 0] == 0 and image.pixels[-1, -1] == 255


def test_rgb_dicom_becomes_gray(tmp_path: Path) -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[1, 0] = (255, 255, 255)
    write_dicom(rgb, tmp_path / "rgb.dcm", photometric="RGB")
    image = read_dicom(tmp_path / "rgb.dcm")
    assert image.photometric == "RGB" and image.pixels.shape == (2, 2)
    assert image.pixels.tolist() == [[76, 150], [255, 0]]
    assert _gray(load_image(tmp_path / "rgb.dcm")).tolist() == [[76, 150], [255, 0]]


def test_reader_metadata_has_no_patient_fields(tmp_path: Path) -> None:
    write_dicom(_ramp(0, 4095), tmp_path / "x.dcm")
    image = read_dicom(tmp_path / "x.dcm")
    names = {f.name for f in dataclasses.fields(DicomImage)}
    assert names == {"pixels", "modality", "photometric", "bits_stored", "rows", "columns", "frames", "voi_applied"}
    values = [str(getattr(image, n)) for n in names - {"pixels"}]
    assert not any("SYNTH" in v for v in values)


def test_preamble_less_dicom_is_read(tmp_path: Path) -> None:
    ds = _raw_dataset(_ramp(0, 4095), bits_stored=12)
    del ds.file_meta
    path = tmp_path / "bare"
    pydicom.dcmwrite(path, ds, implicit_vr=False, little_endian=True, enforce_file_format=False)
    assert path.read_bytes()[:2] == b"\x08\x00"
    assert detect_format(path) == "dicom"
    assert read_dicom(path).pixels.max() == 255


# ---------------------------------------------------------------- read_dicom: errors


def test_dicom_without_pixel_data(tmp_path: Path) -> None:
    ds = _raw_dataset(_ramp(0, 10), bits_stored=8)
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm", enforce_file_format=True)
    with pytest.raises(ImageLoadError, match=r"nopix\.dcm: .*no pixel data"):
        read_dicom(tmp_path / "nopix.dcm")


def test_compressed_without_decoder(tmp_path: Path) -> None:
    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed")
    ds = _raw_dataset(_ramp(0, 4095), bits_stored=12)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + b"\x00" * 60])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "jls.dcm", enforce_file_format=True)
    with pytest.raises(ImageLoadError, match=r"jls\.dcm: .*JPEG-LS.*no available decoder"):
        read_dicom(tmp_path / "jls.dcm")


def test_truncated_dicom_pixel_data(tmp_path: Path) -> None:
    write_dicom(_ramp(0, 4095, (64, 64)), tmp_path / "x.dcm")
    data = (tmp_path / "x.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) - 3000])
    with pytest.raises(ImageLoadError, match=r"cut\.dcm: truncated or corrupt DICOM pixel data$"):
        read_dicom(tmp_path / "cut.dcm")


def test_read_dicom_on_a_png(tmp_path: Path) -> None:
    Image.new("L", (4, 4)).save(tmp_path / "x.png")
    with pytest.raises(ImageLoadError, match="not a DICOM file"):
        read_dicom(tmp_path / "x.png")


# ---------------------------------------------------------------- load_image / detect_format


def test_dicom_named_png_loads_by_content(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    write_dicom(_ramp(0, 4095), path)
    assert detect_format(path) == "dicom"
    gray = _gray(load_image(path))
    assert gray.shape == (16, 16) and gray[0, 0] == 0 and gray[-1, -1] == 255


def test_png_named_dcm_loads_by_content(tmp_path: Path) -> None:
    path = tmp_path / "scan.dcm"
    Image.new("L", (3, 2), 77).save(path, format="PNG")
    assert detect_format(path) == "png"
    assert _gray(load_image(path)).tolist() == [[77] * 3] * 2


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("hello, this is not an image\n")
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert str(info.value) == f"{path}: not a PNG, JPEG or DICOM file"
    assert info.value.path == str(path) and isinstance(info.value, ValueError)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match=r"nope\.png: file not found"):
        load_image(tmp_path / "nope.png")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty file"):
        load_image(tmp_path / "empty.png")


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "PNG"), ("JPEG", "JPEG")])
def test_truncated_raster(tmp_path: Path, fmt: str, name: str) -> None:
    rng = np.random.default_rng(0)
    full, cut = tmp_path / "full", tmp_path / "cut"
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(full, format=fmt)
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=rf"cut: truncated or corrupt {name}"):
        load_image(cut)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 257 * 100, 65535]], np.uint16)).save(path)
    with Image.open(path) as img:
        assert img.mode == "I;16"
    assert _gray(load_image(path)).tolist() == [[0, 100, 255]]


def test_jpeg_loads_as_rgb(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    Image.new("L", (8, 8), 200).save(path, format="JPEG")
    assert detect_format(path) == "jpeg"
    assert abs(int(_gray(load_image(path)).mean()) - 200) <= 2


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "I"])
def test_pil_images_become_rgb(mode: str) -> None:
    if mode in ("I;16", "I"):
        dtype = np.uint16 if mode == "I;16" else np.int32
        img = Image.fromarray(np.array([[0, 65535]], dtype))
        assert img.mode == mode
        assert _gray(load_image(img)).tolist() == [[0, 255]]
    else:
        img = Image.new(mode, (2, 2))
        out = load_image(img)
        assert out.mode == "RGB" and out.size == (2, 2)


def test_pil_rgb_input_is_copied() -> None:
    img = Image.new("RGB", (2, 2), (1, 2, 3))
    out = load_image(img)
    assert out is not img and out.getpixel((0, 0)) == (1, 2, 3)

