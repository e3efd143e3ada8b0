"""Reduced JPEG decoding (DCT scaling) for headshots: sizes stay the submitted image's, and so do face boxes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from detectors.contract import DetectorOutput, Device, ImageItem
from detectors.face import build_face_detector
from detectors.face.detector import FaceDetector
from service.config import REPO_ROOT, Settings
from service.errors import CorruptImageError
from service.inputs import decode_image
from tests.conftest import SHARED

FACES = SHARED / "faces"
needs_data = pytest.mark.skipif(not FACES.is_dir(), reason="face dataset not staged at ../shared/datasets/faces")


def _jpeg(image: Image.Image, quality: int = 90, exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return buf.getvalue()


def _gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    return Image.fromarray(np.stack([x, x[::-1], np.full_like(x, 90)], -1).astype(np.uint8))


def test_large_jpeg_is_decoded_at_half_size_with_submitted_dimensions() -> None:
    image = decode_image(_jpeg(_gradient(1024, 800)), Settings(), min_side=448)
    assert image.pixels.shape == (400, 512, 3)
    assert (image.width, image.height) == (1024, 800)
    assert image.is_reduced
    assert image.submitted_size == (1024, 800)


def test_small_jpegs_pngs_and_zero_min_side_are_decoded_at_full_size() -> None:
    settings = Settings()
    for data, min_side in ((_jpeg(_gradient(800, 600)), 448), (_jpeg(_gradient(1024, 1024)), 0)):
        image = decode_image(data, settings, min_side=min_side)
        assert (image.pixels.shape[1], image.pixels.shape[0]) == (image.width, image.height)
        assert image.submitted_size is None
    buf = io.BytesIO()
    _gradient(1200, 1200).save(buf, "PNG")
    assert not decode_image(buf.getvalue(), settings, min_side=448).is_reduced


def test_exif_rotated_jpeg_reports_the_oriented_submitted_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image = decode_image(_jpeg(_gradient(1024, 768), exif=exif.tobytes()), Settings(), min_side=300)
    assert (image.width, image.height) == (768, 1024)
    assert image.pixels.shape == (512, 384, 3)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    det = build_face_detector(REPO_ROOT / "weights" / "face", embed_faces=True)
    det.load(Device(intra_op_threads=1))
    return det


def _judge(detector: FaceDetector, data: bytes, min_side: int) -> DetectorOutput:
    image = decode_image(data, Settings(), min_side=min_side)
    prepared = [detector.preprocess(ImageItem(image.pixels, image.original, image.submitted_size))]
    return detector.postprocess(prepared, detector.forward(prepared))[0]


@needs_data
def test_face_box_stays_in_submitted_pixels(detector: FaceDetector) -> None:
    with Image.open(sorted((FACES / "real_ciplab").glob("*.jpg"))[0]) as source:
        data = _jpeg(source.resize((1024, 1024), Image.Resampling.BICUBIC))
    full, reduced = _judge(detector, data, 0), _judge(detector, data, 448)
    assert full.region is not None
    assert reduced.region is not None
    assert reduced.region.x + reduced.region.w <= 1024
    assert reduced.region.y + reduced.region.h <= 1024
    assert np.abs(np.array(full.region.as_list()) - np.array(reduced.region.as_list())).max() <= 16
    assert reduced.evidence == pytest.approx(full.evidence, rel=0.1)
    assert reduced.probability == pytest.approx(full.probability, abs=0.1)
    assert reduced.embedding is not None
    assert full.embedding is not None
    assert np.linalg.norm(np.subtract(reduced.embedding, full.embedding)) < 0.2


@needs_data
def test_small_face_in_a_large_photo_is_cropped_from_the_full_decode(detector: FaceDetector) -> None:
    """Eyes under ~60 px apart in the reduced copy: the crop and embedding come from the full-size decode."""
    canvas = Image.new("RGB", (1400, 1400), (120, 110, 100))
    with Image.open(sorted((FACES / "real_ciplab").glob("*.jpg"))[0]) as source:
        canvas.paste(source.convert("RGB").resize((300, 300)), (700, 300))  # ~42 px between the eyes at 1/2
    data = _jpeg(canvas, quality=95)
    full, reduced = _judge(detector, data, 0), _judge(detector, data, 448)
    assert reduced.abstain_reason is None
    assert reduced.region is not None
    assert full.region is not None
    assert reduced.region.x >= 700
    assert np.abs(np.array(full.region.as_list()) - np.array(reduced.region.as_list())).max() <= 20
    assert reduced.probability == pytest.approx(full.probability, abs=0.05)


def _marked(width: int, height: int) -> Image.Image:
    """A gradient with a bright block near the top-left corner, so that any turn or mirror shows."""
    pixels = np.asarray(_gradient(width, height)).copy()
    pixels[40:200, 60:300] = (250, 250, 250)
    return Image.fromarray(pixels)


def _pillow_reduced(data: bytes, min_side: int) -> np.ndarray:
    """Pillow's own DCT-scaled decode with EXIF orientation applied: the reference for the shared decode."""
    with Image.open(io.BytesIO(data)) as image:
        longest = max(image.size)
        image.draft("RGB", (-(-image.width * min_side // longest), -(-image.height * min_side // longest)))
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_jpeg_the_watermark_reader_decodes_is_decoded_once_in_every_orientation(orientation: int) -> None:
    """A q95 JPEG (its watermark is read) is decoded once at full size; the face gets an area-averaged copy of
    Pillow's reduced size, turned as Pillow turns it, and the watermark reader gets the full decode."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _jpeg(_marked(1024, 800), quality=95, exif=exif.tobytes())
    image = decode_image(data, Settings(), min_side=448)
    reference = _pillow_reduced(data, 448)
    assert image.full_bgr is not None
    assert image.full_bgr.shape == (800, 1024, 3)
    assert image.pixels.shape == reference.shape
    assert (image.width, image.height) == ((800, 1024) if orientation >= 5 else (1024, 800))
    assert np.abs(image.pixels.astype(np.int16) - reference).mean() < 2.0
    assert image.pixels.flags.c_contiguous


def test_jpegs_the_watermark_reader_skips_keep_pillows_reduced_decode() -> None:
    data = _jpeg(_marked(1024, 800), quality=75)  # 4:2:0 q75: the watermark reader does not decode it
    image = decode_image(data, Settings(), min_side=448)
    assert image.full_bgr is None
    assert np.array_equal(image.pixels, _pillow_reduced(data, 448))


def test_a_truncated_jpeg_the_watermark_reader_would_decode_is_still_refused() -> None:
    data = _jpeg(_marked(1024, 800), quality=95)
    with pytest.raises(CorruptImageError):
        decode_image(data[: len(data) * 2 // 3], Settings(), min_side=448)


def test_a_jpeg_above_the_shared_decode_size_is_not_held_in_full() -> None:
    """Beyond 2048 x 2048 the full decode is not kept with the upload (memory), and Pillow reduces it as before."""
    data = _jpeg(_marked(2100, 2048), quality=95)
    image = decode_image(data, Settings(), min_side=448)
    assert image.full_bgr is None
    assert np.array_equal(image.pixels, _pillow_reduced(data, 448))


@pytest.mark.parametrize("size", [(1001, 999), (1500, 901), (2000, 1000), (899, 1790)])
def test_the_shared_decode_has_pillows_reduced_size(size: tuple[int, int]) -> None:
    data = _jpeg(_marked(*size), quality=95)
    image = decode_image(data, Settings(), min_side=448)
    assert image.full_bgr is not None
    assert image.pixels.shape == _pillow_reduced(data, 448).shape
    assert (image.width, image.height) == size
