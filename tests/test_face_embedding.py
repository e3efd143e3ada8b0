"""dlib's face-descriptor network, rebuilt for ONNX Runtime and in numpy, gives dlib's own descriptors.

Stored descriptors stay comparable only while both evaluations agree with ``dlib.face_recognition_model_v1`` to
~1e-4 (the reuse threshold is 0.35 euclidean), on real face chips cut by dlib as the service cuts them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detectors.face.embedding import (
    CHECK_TOLERANCE,
    CHIP_SIZE,
    GRID_DIM,
    STAGE_CHANNELS,
    STAGES_DIM,
    SUMMARY_DIM,
    FaceNetFormatError,
    FaceNetMismatchError,
    NumpyFaceNet,
    OnnxFaceNet,
    grid_features,
    load_face_net,
    onnx_model,
    stage_features,
)
from detectors.face.finding import EMBEDDING_FILE, FaceEmbedder, FaceFinder, dlib_model_path

FACES = Path(__file__).parents[1].parent / "shared" / "datasets" / "faces"
# FFHQ (256 px, aligned), CIPLAB (600 px frontal) and Stable Diffusion 2.1 (768 px) faces
REAL_FACE_FILES = ("real/00000.jpg", "real/00001.jpg", "real/00002.jpg", "real_ciplab/real_00001.jpg",
                   "real_ciplab/real_00002.jpg", "diffusion_sd21/anB-128_12.jpg")


@pytest.fixture(scope="module")
def numpy_net() -> NumpyFaceNet:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")  # as load_face_net does: more BLAS threads spin on a busy machine
    return NumpyFaceNet.load(dlib_model_path(EMBEDDING_FILE))


@pytest.fixture(scope="module")
def onnx_net(numpy_net: NumpyFaceNet) -> OnnxFaceNet:
    return OnnxFaceNet.build(numpy_net)


@pytest.fixture(scope="module")
def dlib_net() -> Any:
    import dlib

    return dlib.face_recognition_model_v1(str(dlib_model_path(EMBEDDING_FILE)))


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    embedder = FaceEmbedder()
    embedder.load()
    return embedder


def _chip(seed: int) -> np.ndarray:
    """A face-like chip: smooth shading plus grain (the network's input is any 150 x 150 RGB image)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(60, 200, CHIP_SIZE)
    base = np.stack([ramp[None, :].repeat(CHIP_SIZE, 0), ramp[:, None].repeat(CHIP_SIZE, 1),
                     np.full((CHIP_SIZE, CHIP_SIZE), 110.0)], -1)
    return np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8)


def _real_chips(embedder: FaceEmbedder) -> list[np.ndarray]:
    import cv2

    if not FACES.is_dir():
        pytest.skip("face dataset not staged at ../shared/datasets/faces")
    finder = FaceFinder()
    finder.load()
    chips = []
    for name in REAL_FACE_FILES:
        pixels = cv2.cvtColor(cv2.imread(str(FACES / name)), cv2.COLOR_BGR2RGB)
        faces = finder.find(pixels)
        assert faces, f"no face found in {name}"
        chips.append(embedder.chip(pixels, faces[0].landmarks))
    return chips


def test_descriptors_of_real_faces_match_dlib_and_numpy(
        embedder: FaceEmbedder, onnx_net: OnnxFaceNet, numpy_net: NumpyFaceNet, dlib_net: Any) -> None:
    chips = _real_chips(embedder)
    fast = np.stack([onnx_net.descriptor(chip) for chip in chips])
    expected = np.stack([np.asarray(dlib_net.compute_face_descriptor(chip)) for chip in chips])
    assert fast.shape == (len(REAL_FACE_FILES), 128)
    assert np.abs(fast - expected).max() <= 1e-4
    assert np.abs(fast - np.stack([numpy_net.descriptor(chip) for chip in chips])).max() <= 1e-4
    # different people stay apart (the descriptors are not all alike, e.g. all zero)
    distances = np.linalg.norm(fast[:, None] - fast[None], axis=-1)[np.triu_indices(len(chips), 1)]
    assert distances.min() > 0.35


def test_stage_statistics_of_real_faces_agree_between_onnx_and_numpy(
        embedder: FaceEmbedder, onnx_net: OnnxFaceNet, numpy_net: NumpyFaceNet) -> None:
    """The stacker reads the network's summary (2.5.0's stage statistics, 2.6.0's grid): ONNX Runtime (the service)
    and numpy (the fallback) must give the same ones, from the same pass as the descriptor."""
    for chip in _real_chips(embedder):
        descriptor, stages = onnx_net.describe(chip)
        reference_descriptor, reference_stages = numpy_net.describe(chip)
        np.testing.assert_array_equal(descriptor, onnx_net.descriptor(chip))
        assert np.abs(descriptor - reference_descriptor).max() <= 1e-4
        assert stages.shape == reference_stages.shape == (SUMMARY_DIM,) == (STAGES_DIM + GRID_DIM,)
        assert np.all(np.isfinite(stages))
        assert np.all(stages[STAGE_CHANNELS:STAGES_DIM] >= 0)  # means, then standard deviations
        assert (np.abs(stages - reference_stages) / np.maximum(np.abs(reference_stages), 1.0)).max() <= 1e-4
        assert np.ptp(stages[STAGE_CHANNELS:STAGES_DIM]) > 0  # the spreads are not all alike (e.g. all zero)
        # the grid: the whole map's mean is the mean of its cells' means weighted by their sizes (35 x 35 first map)
        first = stages[STAGES_DIM:].reshape(-1)[: 2 * 4 * 32].reshape(4, 2, 32)
        sizes = np.array([17 * 17, 17 * 18, 18 * 17, 18 * 18], dtype=np.float64)[:, None]
        np.testing.assert_allclose((first[:, 0] * sizes).sum(axis=0) / sizes.sum(), stages[:32], rtol=1e-4, atol=1e-5)
        assert np.all(first[:, 1] >= 0)


def test_stage_statistics_are_the_stage_maps_moments() -> None:
    means, squares = np.array([1.0, 2.0, 0.5]), np.array([2.0, 4.0, 0.2])  # the last one rounded below its mean's square
    np.testing.assert_allclose(stage_features(means, squares), [1.0, 2.0, 0.5, 1.0, 0.0, 0.0], atol=1e-7)


def test_grid_statistics_interleave_each_cells_means_and_spreads() -> None:
    """In: per stage, four cells of channel means (and variances); out: per stage and cell, the means then the
    standard deviations."""
    cells = 4 * STAGE_CHANNELS
    means = np.arange(cells, dtype=np.float64)
    variances = np.full(cells, 4.0)
    variances[0] = -1e-9  # rounding below zero reads as no spread
    out = grid_features(means, variances)
    assert out.shape == (GRID_DIM,)
    np.testing.assert_array_equal(out[:32], means[:32])  # stage 1 (32 channels), top-left cell: means
    np.testing.assert_array_equal(out[32:64], [0.0] + [2.0] * 31)  # then its standard deviations
    np.testing.assert_array_equal(out[64:96], means[32:64])  # stage 1, top-right cell
    np.testing.assert_array_equal(out[8 * 32 : 8 * 32 + 64], means[128:192])  # stage 2 (64 channels), top-left


def test_descriptors_of_synthetic_chips_match_dlib(onnx_net: OnnxFaceNet, numpy_net: NumpyFaceNet, dlib_net: Any) -> None:
    for seed in range(3):
        chip = _chip(seed)
        expected = np.asarray(dlib_net.compute_face_descriptor(chip))
        assert np.abs(onnx_net.descriptor(chip) - expected).max() <= 1e-4
        assert np.abs(numpy_net.descriptor(chip) - expected).max() <= 1e-4


def test_concurrent_descriptors_equal_serial_ones(onnx_net: OnnxFaceNet) -> None:
    """The service calls one session from several worker threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    chips = [_chip(seed) for seed in range(8)]
    serial = [onnx_net.descriptor(chip) for chip in chips]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(onnx_net.descriptor, chips * 3))
    for index, descriptor in enumerate(concurrent):
        np.testing.assert_array_equal(descriptor, serial[index % len(chips)])


def test_wrong_chips_are_refused(onnx_net: OnnxFaceNet, numpy_net: NumpyFaceNet) -> None:
    for net in (onnx_net, numpy_net):
        with pytest.raises(ValueError, match="150x150"):
            net.descriptor(np.zeros((96, 96, 3), np.uint8))
        with pytest.raises(ValueError, match="150x150"):
            net.descriptor(np.zeros((CHIP_SIZE, CHIP_SIZE), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        onnx_net.descriptor(_chip(0).astype(np.float32))


def test_graph_is_valid_onnx_and_folds_every_affine(numpy_net: NumpyFaceNet) -> None:
    import onnx

    model = onnx_model(numpy_net._convs, numpy_net._affines, numpy_net._fc)
    onnx.checker.check_model(model, full_check=True)
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("Conv") == 29
    assert ops.count("Add") == 14  # one per residual block (3 + 4 + 3 + 3 + 1)
    assert ops.count("Pad") == 5  # skip channels at 64, 128, 256; inner rows at the last two stages
    assert "BatchNormalization" not in ops
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [1, 128]
    assert len(model.graph.output) == 1
    with_stages = onnx_model(numpy_net._convs, numpy_net._affines, numpy_net._fc, stage_statistics=True)
    onnx.checker.check_model(with_stages, full_check=True)
    assert [(o.name, [d.dim_value for d in o.type.tensor_type.shape.dim]) for o in with_stages.graph.output] == [
        ("descriptor", [1, 128]), ("stage_mean", [1, STAGE_CHANNELS]), ("stage_square", [1, STAGE_CHANNELS]),
        ("grid_mean", [1, 4 * STAGE_CHANNELS]), ("grid_variance", [1, 4 * STAGE_CHANNELS])]


def test_another_dlib_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.dat"
    path.write_bytes(b"\x01\x01\x01\x0dloss_metric_2" + bytes(64))
    with pytest.raises(FaceNetFormatError):
        NumpyFaceNet.load(path)
    with pytest.raises(FaceNetFormatError):
        load_face_net(path)


def test_load_check_rejects_a_disagreeing_net(onnx_net: OnnxFaceNet, numpy_net: NumpyFaceNet) -> None:
    assert onnx_net.check_against(numpy_net) <= CHECK_TOLERANCE

    class Shifted:
        """The numpy net with its descriptor, or its stage statistics (relative to their scale), moved."""

        def __init__(self, descriptor_shift: float, stage_factor: float) -> None:
            self.descriptor_shift, self.stage_factor = descriptor_shift, stage_factor

        def descriptor(self, chip: np.ndarray) -> np.ndarray:
            return self.describe(chip)[0]

        def describe(self, chip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            descriptor, stages = numpy_net.describe(chip)
            return descriptor + np.float32(self.descriptor_shift), stages * np.float32(self.stage_factor)

    for shifted in (Shifted(3 * CHECK_TOLERANCE, 1.0), Shifted(0.0, 1.0 + 3 * CHECK_TOLERANCE)):
        with pytest.raises(FaceNetMismatchError):
            onnx_net.check_against(shifted)
    assert onnx_net.check_against(Shifted(0.0, 1.0)) <= CHECK_TOLERANCE


def test_service_uses_onnx_and_falls_back_to_numpy_on_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    path = dlib_model_path(EMBEDDING_FILE)
    threadpool_limits(limits=2, user_api="blas")
    assert isinstance(load_face_net(path), OnnxFaceNet)
    blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas
    assert set(blas) == {1}  # the process's BLAS is back to one thread (numpy check and fallback)
    real = OnnxFaceNet.describe

    def disagreeing(self: OnnxFaceNet, chip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        descriptor, stages = real(self, chip)
        return descriptor * np.float32(1.01), stages

    monkeypatch.setattr(OnnxFaceNet, "describe", disagreeing)
    assert isinstance(load_face_net(path), NumpyFaceNet)


def test_embedder_uses_landmarks_in_the_given_image(embedder: FaceEmbedder) -> None:
    """Landmarks scaled with the image give nearly the same descriptor (the chip is re-cut from either size)."""
    import cv2

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8), (0, 0), 3)
    points = np.array([(150 + 100 * np.cos(a), 200 + 100 * np.sin(a)) for a in np.linspace(0, 6.0, 68)], np.float32)
    assert isinstance(embedder._net, OnnxFaceNet)
    full = np.asarray(embedder.embed(image, points))
    half = np.asarray(embedder.embed(cv2.resize(image, (200, 200), interpolation=cv2.INTER_AREA), points / 2))
    assert full.shape == (128,)
    assert np.linalg.norm(full - half) < 0.35


def test_finder_lends_each_concurrent_call_a_detector_made_at_load() -> None:
    """Making a HOG detector costs ~0.8 s of CPU: load() makes one per worker, and find() only borrows them."""
    from concurrent.futures import ThreadPoolExecutor

    finder = FaceFinder()
    finder.load(copies=2)
    image = np.full((300, 300, 3), 128, np.uint8)
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert all(found == [] for found in pool.map(finder.find, [image] * 6))
    assert finder._free.qsize() == 2
