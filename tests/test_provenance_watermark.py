"""The DWT-DCT watermark reader against images watermarked by the reference encoder (invisible-watermark).

invisible-watermark's package ``__init__`` imports its RivaGAN backend, which imports torch (seconds, and absent
outside the ``train`` extra). The ``dwtDct`` method lives in ``imwatermark/maxDct.py``, which needs only OpenCV and
PyWavelets, so that file is loaded on its own; ``EmbedMaxDct`` is what ``WatermarkEncoder.encode(img, "dwtDct")``
and ``WatermarkDecoder.decode(img, "dwtDct")`` call.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from PIL import Image

from detectors.provenance import FindingKind, Strength, read_provenance, reader
from detectors.provenance.watermark import SDXL_MESSAGE, block_bits, decode_bits, pattern_distances, read_watermark


def _load_max_dct() -> ModuleType:
    pytest.importorskip("pywt")
    package = importlib.util.find_spec("imwatermark")  # locates the package without running its __init__
    if package is None or package.origin is None:
        pytest.skip("invisible-watermark is not installed")
    spec = importlib.util.spec_from_file_location("imwatermark_maxdct", Path(package.origin).parent / "maxDct.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


max_dct = _load_max_dct()


def _bits(payload: bytes) -> list[int]:
    return [int(bit) for bit in np.unpackbits(np.frombuffer(payload, dtype=np.uint8))]


PAYLOADS: dict[str, list[int]] = {
    "StableDiffusionV1": _bits(b"StableDiffusionV1"),  # set_watermark("bytes", b"StableDiffusionV1")
    "SDV2": _bits(b"SDV2"),
    "SDXL": [int(bit) for bit in bin(SDXL_MESSAGE)[2:]],  # set_watermark("bits", WATERMARK_BITS)
}


def textured(seed: int, size: int = 512) -> np.ndarray:
    """A photo-like RGB image: smooth colour gradients plus grain (the encoder fails on flat areas)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 200, size)
    base = np.stack([ramp[None, :].repeat(size, 0), ramp[:, None].repeat(size, 1), np.full((size, size), 120.0)], -1)
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


def watermarked(rgb: np.ndarray, name: str) -> np.ndarray:
    """What Stable Diffusion's scripts do: BGR in, ``encode(img, "dwtDct")``, BGR out."""
    bits = PAYLOADS[name]
    encoder = max_dct.EmbedMaxDct(watermarks=bits, wmLen=len(bits))
    return cv2.cvtColor(encoder.encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)), cv2.COLOR_BGR2RGB)


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_watermarked_png_suggests_ai(name: str) -> None:
    data = png_bytes(watermarked(textured(1), name))

    [finding] = read_provenance(data)

    assert (finding.kind, finding.value, finding.strength) == (FindingKind.INVISIBLE_WATERMARK, name, Strength.SUGGESTS_AI)
    assert int(finding.detail["hamming_distance"]) <= 2


def test_unmarked_image_gives_no_finding() -> None:
    assert read_provenance(png_bytes(textured(2))) == []


def test_decoder_is_bit_identical_to_the_reference() -> None:
    rgb = watermarked(textured(3, size=384), "SDV2")
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    raw = block_bits(rgb)
    for length in (32, 48, 136):
        reference = max_dct.EmbedMaxDct(watermarks=[], wmLen=length).decode(bgr)
        assert np.array_equal(decode_bits(raw, length), reference)


def _reference_block_bits(rgb: np.ndarray) -> np.ndarray:
    """The reference's per-block reading (PyWavelets' Haar band, then each 4x4 block's argmax), in a plain loop."""
    import pywt

    rows, cols = rgb.shape[0] // 4 * 4, rgb.shape[1] // 4 * 4
    u = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)[:rows, :cols, 1].astype(np.float64)
    band = pywt.dwt2(u, "haar")[0]
    bits = []
    for r in range(band.shape[0] // 4):
        for c in range(band.shape[1] // 4):
            block = band[4 * r : 4 * r + 4, 4 * c : 4 * c + 4].flatten()
            bits.append(abs(block[int(np.argmax(np.abs(block[1:]))) + 1]) % 36 > 18)
    return np.array(bits)


@pytest.mark.parametrize(("seed", "height", "width", "step"), [(5, 384, 384, 1), (6, 301, 517, 1), (7, 260, 300, 9)])
def test_block_bits_equal_the_reference_per_block(seed: int, height: int, width: int, step: int) -> None:
    # step 9: pixel values on a coarse grid, so that many band values sit exactly on the 18 (mod 36) boundary
    rgb = (np.random.default_rng(seed).integers(0, 256, (height, width, 3)) // step * step).astype(np.uint8)

    assert np.array_equal(block_bits(rgb), _reference_block_bits(rgb))


@pytest.mark.parametrize("step", [18, 36])
def test_blocks_on_the_bit_boundary_are_read_as_the_reference_reads_them(step: int) -> None:
    # U values on multiples of 9: four-pixel sums on multiples of 36, so many blocks' largest band value sits
    # exactly on 0 or 18 (mod 36), where only the float band's last bit decides the block's bit
    rng = np.random.default_rng(step)
    yuv = np.full((264, 264, 3), 128, dtype=np.uint8)
    yuv[:, :, 1] = (rng.integers(0, 256 // step, (264, 264)) * step).clip(0, 255)
    flat = np.full((264, 264, 3), 128, dtype=np.uint8)
    flat[:, :, 1] = 9 * (step // 9)
    for rgb in (cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB), cv2.cvtColor(flat, cv2.COLOR_YUV2RGB)):
        assert np.array_equal(block_bits(rgb), _reference_block_bits(rgb))


def test_small_images_are_not_decoded() -> None:
    assert read_watermark(textured(4, size=200)) == []
    with pytest.raises(ValueError, match="256x256"):
        block_bits(textured(4, size=200))


def test_distances_to_every_pattern_are_reported() -> None:
    distances = pattern_distances(watermarked(textured(5), "SDXL"))

    assert set(distances) == set(PAYLOADS)
    assert distances["SDXL"] == 0
    assert distances["SDV2"] > 4


def jpeg_bytes(rgb: np.ndarray, quality: int, subsampling: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    return buf.getvalue()


def test_watermark_in_a_4_4_4_jpeg_is_still_decoded() -> None:
    """Without chroma subsampling the watermark survives JPEG (benchmarks/watermark_survival.py), so it is read."""
    data = jpeg_bytes(watermarked(textured(1), "SDXL"), quality=80, subsampling=0)

    assert not reader._watermark_cannot_survive(data)
    assert [f.value for f in read_provenance(data) if f.kind is FindingKind.INVISIBLE_WATERMARK] == ["SDXL"]


def test_subsampled_jpeg_below_the_measured_quality_is_not_decoded() -> None:
    rgb = watermarked(textured(1), "SDXL")
    low = jpeg_bytes(rgb, quality=75, subsampling=2)
    high = jpeg_bytes(rgb, quality=95, subsampling=2)

    assert reader.jpeg_quality(low) == pytest.approx(75, abs=1)
    assert reader._watermark_cannot_survive(low)
    assert not reader._watermark_cannot_survive(high)
    assert not reader._watermark_cannot_survive(png_bytes(rgb))
    assert read_provenance(low) == []


def test_bgr_pixels_give_the_same_bits_as_rgb() -> None:
    rgb = watermarked(textured(6, size=320), "SDV2")

    assert np.array_equal(block_bits(rgb), block_bits(np.ascontiguousarray(rgb[:, :, ::-1]), channels="BGR"))


@pytest.mark.parametrize(("subsampling", "progressive"), [(0, False), (2, False), (0, True), (1, True)])
def test_colour_jpegs_decode_to_pillows_pixels(subsampling: int, progressive: bool) -> None:
    """The watermark reader decodes colour JPEGs with OpenCV (faster); its pixels must be Pillow's, bit for bit."""
    rgb = textured(7, size=300)
    if progressive:  # Pillow's progressive encoder needs a larger buffer than this noisy image's; OpenCV encodes it
        factors = {0: cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444, 1: cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422}[subsampling]
        ok, encoded = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92, cv2.IMWRITE_JPEG_PROGRESSIVE, 1,
                                                             cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factors])
        assert ok
        data = encoded.tobytes()
    else:
        data = jpeg_bytes(rgb, quality=92, subsampling=subsampling)
    with Image.open(io.BytesIO(data)) as image:
        bgr = reader._colour_jpeg_bgr(data, image)
        pillow = np.asarray(image.convert("RGB"))

    assert bgr is not None
    assert np.array_equal(bgr[:, :, ::-1], pillow)


def test_other_images_are_left_to_pillow() -> None:
    grey = io.BytesIO()
    Image.fromarray(textured(8, size=300)[:, :, 0]).save(grey, "JPEG", quality=90)
    with Image.open(io.BytesIO(grey.getvalue())) as image:
        assert reader._colour_jpeg_bgr(grey.getvalue(), image) is None
    png = png_bytes(textured(8, size=300))
    with Image.open(io.BytesIO(png)) as image:
        assert reader._colour_jpeg_bgr(png, image) is None


def test_watermark_in_a_high_quality_jpeg_is_found_through_the_opencv_decode() -> None:
    data = jpeg_bytes(watermarked(textured(1), "SDXL"), quality=95, subsampling=0)

    assert [f.value for f in read_provenance(data) if f.kind is FindingKind.INVISIBLE_WATERMARK] == ["SDXL"]


def test_watermark_read_from_pixels_handed_over_equals_its_own_decode() -> None:
    """``read_provenance(data, bgr=watermark_pixels(data))`` is ``read_provenance(data)``: the service decodes a
    1024 px JPEG once and hands the full-size pixels to the reader."""
    marked = jpeg_bytes(watermarked(textured(1, size=1024), "SDXL"), quality=95, subsampling=0)
    plain = jpeg_bytes(textured(2, size=1024), quality=95, subsampling=0)
    for data in (marked, plain):
        bgr = reader.watermark_pixels(data)
        assert bgr is not None
        assert bgr.shape == (1024, 1024, 3)
        assert read_provenance(data, bgr=bgr) == read_provenance(data)
    assert [f.value for f in read_provenance(marked, bgr=reader.watermark_pixels(marked))
            if f.kind is FindingKind.INVISIBLE_WATERMARK] == ["SDXL"]


def test_watermark_pixels_are_only_decoded_where_the_reader_would_decode_them() -> None:
    rgb = textured(3, size=600)
    low = jpeg_bytes(rgb, quality=75, subsampling=2)  # 4:2:0 below the quality a watermark survives
    high = jpeg_bytes(rgb, quality=90, subsampling=2)
    grey = io.BytesIO()
    Image.fromarray(rgb[:, :, 0]).save(grey, "JPEG", quality=95)
    assert reader.watermark_pixels(low) is None
    assert reader.watermark_pixels(png_bytes(rgb)) is None
    assert reader.watermark_pixels(grey.getvalue()) is None
    assert reader.watermark_pixels(high[: len(high) // 2]) is None  # truncated: OpenCV refuses it
    assert reader.watermark_pixels(b"\xff\xd8\xff\xe0 not a jpeg") is None
    pixels = reader.watermark_pixels(high)
    assert pixels is not None
    with Image.open(io.BytesIO(high)) as image:
        assert np.array_equal(pixels[:, :, ::-1], np.asarray(image.convert("RGB")))
