"""Declared detectors end to end: tiny random transformers models built here, saved to tmp folders,
loaded from disk, calibrated with the CLI, exported to ONNX, and run through the API and the audit
CLI with the real batcher, energy meter and store. Only the shipped text/face detectors' forward
pass is faked (tests.fakes), unless the shipped text weights exist.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.api import create_app
from service.cli import app as cli
from service.config import REPO_ROOT, Settings
from service.domain import Scope
from tests import custom_models
from tests.fakes import FakeFaceDetector, FakeTextDetector, jpeg_bytes

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be downloaded
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
pytest.importorskip("torch")
pytest.importorskip("transformers")

SHIPPED_TEXT = REPO_ROOT / "weights" / "text" / "manifest.json"
HUMAN = custom_models.SENTENCES[0::2]
AI = custom_models.SENTENCES[1::2]


def _text(parts: list[str], i: int) -> str:
    return " ".join(parts[(i + k) % len(parts)] for k in range(3))


@dataclass
class Models:
    root: Path
    detectors: list[dict[str, Any]]
    calibration: Path
    env: dict[str, str]

    def settings(self, db: Path, **extra: Any) -> Settings:
        values: dict[str, Any] = {"environment": "test", "database_url": f"sqlite:///{db}", "bootstrap_api_key": False,
                                  "energy_backend": "cpu-time", "max_wait_s": 0.02,
                                  "custom_detectors": self.detectors, **extra}
        return Settings(**values)


def _calibration_rows(root: Path) -> Path:
    rows = []
    for i in range(8):
        rows.append({"text": _text(HUMAN, i), "label": "human"})
        rows.append({"text": _text(AI, i), "label": "ai"})
    for i in range(6):
        for label, base in (("human", (60, 90, 120)), ("ai", (200, 60, 60))):
            name = f"{label}{i}.jpg"
            (root / name).write_bytes(jpeg_bytes(tuple(c + 5 * i for c in base), size=(72, 72)))  # type: ignore[arg-type]
            rows.append({"image": name, "label": label})
    path = root / "calibration.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _invoke(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """Build the tiny models, export two to ONNX and calibrate all of them, through the CLI."""
    root = tmp_path_factory.mktemp("byo")
    custom_models.roberta_classifier(root / "roberta")
    observer, performer = custom_models.gpt2_pair(root / "lm")
    custom_models.vit_classifier(root / "vit")
    text = {"role": "text", "max_length": 32, "max_batch_size": 4}
    detectors: list[dict[str, Any]] = [
        {"name": "roberta", "kind": "hf-sequence-classifier", "path": str(root / "roberta"), "ai_label": "ai", **text},
        {"name": "binoculars", "kind": "zero-shot-lm", "path": str(observer), "performer_path": str(performer), **text},
        {"name": "fast-detectgpt", "kind": "zero-shot-lm", "path": str(observer), **text},
        {"name": "vit", "kind": "hf-image-classifier", "path": str(root / "vit"), "ai_label": "ai", "role": "image"},
    ]
    env = {"BYLINECHECK_ENVIRONMENT": "test", "BYLINECHECK_DATABASE_URL": f"sqlite:///{root / 'cli.sqlite3'}",
           "BYLINECHECK_ENERGY_BACKEND": "cpu-time", "BYLINECHECK_WEIGHTS_DIR": str(root / "no-weights"),
           "BYLINECHECK_CUSTOM_DETECTORS": json.dumps(detectors)}
    for name in ("roberta", "vit", "binoculars"):
        exported = _invoke(env, "models", "export", name)
        detectors.append({**exported["declare"], **({"max_length": 32} if name != "vit" else {})})
    env["BYLINECHECK_CUSTOM_DETECTORS"] = json.dumps(detectors)
    calibration = _calibration_rows(root)
    for spec in detectors:
        result = _invoke(env, "calibrate", "--detector", spec["name"], "--input", str(calibration))
        assert result["provenance"]["fpr_reached"] <= 0.01
    return Models(root, detectors, calibration, env)


@pytest.fixture
def api(models: Models, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = models.settings(tmp_path / "api.sqlite3")
    application = create_app(settings, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    with TestClient(application) as client:
        token = application.state.store.create_api_key("byo", [Scope.CHECK])
        yield client, {"Authorization": f"Bearer {token}"}


def _check(client: TestClient, auth: dict[str, str], text: str, image: bytes | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"text": text, "byline": "Jo Smith"}
    if image is not None:
        body["headshots"] = [{"data": base64.b64encode(image).decode()}]
    response = client.post("/v1/checks", json=body, headers=auth)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def test_calibrate_writes_manifest_with_how_thresholds_were_chosen(models: Models) -> None:
    manifest = json.loads((models.root / "roberta" / ".bylinecheck" / "roberta" / "manifest.json").read_text())
    provenance = manifest["threshold_provenance"]
    assert manifest["calibration"]["method"] == "platt"
    assert provenance["data"] == str(models.calibration)
    assert len(provenance["data_sha256"]) == 64
    assert provenance["n"] == 16
    assert provenance["n_human"] == 8
    assert "FPR <= 0.01" in provenance["objective"]
    assert manifest["thresholds"]["likely_human"] <= manifest["thresholds"]["likely_ai"]
    assert {"../../model.safetensors", "../../tokenizer.json", "../../config.json"} <= set(manifest["files"])
    calibrated = models.root / "lm" / "observer" / ".bylinecheck"
    binoculars = json.loads((calibrated / "binoculars" / "manifest.json").read_text())
    assert binoculars["score_direction"] == "lower_is_ai"
    assert any(p.startswith("../../../performer/") for p in binoculars["files"])
    assert json.loads((calibrated / "fast-detectgpt" / "manifest.json").read_text())["score_direction"] == "higher_is_ai"


def test_every_kind_scores_calibrated_through_the_api_with_energy(api: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = api
    ready = client.get("/readyz").json()
    assert all(ready["detectors"][d] == "ready" for d in ("roberta", "binoculars", "fast-detectgpt", "vit",
                                                          "roberta-onnx", "vit-onnx", "binoculars-onnx")), ready
    report = _check(client, auth, " ".join(custom_models.SENTENCES * 4), jpeg_bytes(size=(96, 96)))
    text = {d["name"]: d for d in report["text"]["detectors"]}
    assert set(text) == {"text", "roberta", "binoculars", "fast-detectgpt", "roberta-onnx", "binoculars-onnx"}
    for name in ("roberta", "binoculars", "fast-detectgpt", "roberta-onnx", "binoculars-onnx"):
        assert text[name]["calibrated"], text[name]
        assert 0.0 <= text[name]["ai_probability"] <= 1.0
        assert text[name]["energy_j"] > 0
        assert text[name]["sentences"]
        assert text[name]["verdict"] in ("likely_ai", "uncertain", "likely_human")
    assert text["binoculars"]["score_direction"] == "lower_is_ai"
    assert text["roberta-onnx"]["raw_score"] == pytest.approx(text["roberta"]["raw_score"], abs=1e-4)
    assert text["binoculars-onnx"]["raw_score"] == pytest.approx(text["binoculars"]["raw_score"], abs=1e-4)
    assert text["binoculars-onnx"]["score_direction"] == "lower_is_ai"
    image = {d["name"]: d for d in report["headshots"][0]["detectors"]}
    assert set(image) == {"face", "vit", "vit-onnx"}
    assert image["vit-onnx"]["raw_score"] == pytest.approx(image["vit"]["raw_score"], abs=1e-4)
    assert image["vit"]["ai_probability"] is not None
    assert image["vit"]["evidence_unit"] == "pixels"
    parts = {p["detector"].split("@")[0] for p in report["energy"]["parts"]}
    assert {"roberta", "binoculars", "fast-detectgpt", "roberta-onnx", "binoculars-onnx", "vit", "vit-onnx",
            "fake-text"} <= parts
    assert report["energy"]["joules"] == pytest.approx(sum(p["joules"] for p in report["energy"]["parts"]))
    assert report["text"]["model"] == "fake-text@0"  # no ensemble: the shipped detector stays the main one


def test_concurrent_checks_are_batched_per_detector(api: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = api
    import concurrent.futures

    texts = [_text(custom_models.SENTENCES, i) * 2 for i in range(6)]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        reports = list(pool.map(lambda t: _check(client, auth, t), texts))
    roberta = [next(d for d in r["text"]["detectors"] if d["name"] == "roberta") for r in reports]
    assert all(d["energy_j"] > 0 for d in roberta)
    sizes = [p["batch_size"] for r in reports for p in r["energy"]["parts"] if p["detector"].startswith("roberta@")]
    assert max(sizes) > 1


def test_uncalibrated_detector_abstains_and_missing_folder_is_named(models: Models, tmp_path: Path) -> None:
    fresh = tmp_path / "roberta-uncalibrated"
    shutil.copytree(models.root / "roberta", fresh, ignore=shutil.ignore_patterns(".bylinecheck"))
    declared = [{"name": "raw", "kind": "hf-sequence-classifier", "path": str(fresh), "ai_label": "ai", "max_length": 32},
                {"name": "ghost", "kind": "zero-shot-lm", "path": str(tmp_path / "not-downloaded")}]
    ensembles = [{"role": "text", "members": ["text", "raw"], "manifest": str(tmp_path / "not-fitted.json")}]
    settings = Settings(environment="test", database_url=f"sqlite:///{tmp_path / 'u.sqlite3'}", bootstrap_api_key=False,
                        energy_backend="cpu-time", max_wait_s=0.02, custom_detectors=declared, ensembles=ensembles)
    application = create_app(settings, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    with TestClient(application) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "not-downloaded" in ready.json()["detectors"]["ghost"]
        assert ready.json()["detectors"]["raw"] == "ready"
        assert "calibrate --ensemble text" in ready.json()["detectors"]["ensemble:text"]
        token = application.state.store.create_api_key("u", [Scope.CHECK])
        report = _check(client, {"Authorization": f"Bearer {token}"}, " ".join(custom_models.SENTENCES))
    scores = {d["name"]: d for d in report["text"]["detectors"]}
    assert scores["raw"]["verdict"] == "abstain"
    assert scores["raw"]["abstain_reason"] == "uncalibrated"
    assert scores["raw"]["ai_probability"] is None
    assert scores["raw"]["raw_score"] is not None
    assert scores["raw"]["energy_j"] > 0
    assert not scores["raw"]["calibrated"]
    assert scores["ghost"]["abstain_reason"] == "detector_unavailable"
    assert report["text"]["ensemble"] is None  # no fitted stacker: the shipped detector stays the main one
    assert report["text"]["model"] == "fake-text@0"


def test_models_eval_reports_metrics_like_ours(models: Models) -> None:
    for name in ("roberta", "vit-onnx"):
        result = _invoke(models.env, "models", "eval", name, "--input", str(models.calibration))
        assert result["coverage"] == 1.0
        assert 0.0 <= result["auroc_raw"] <= 1.0
        assert result["fpr_at_threshold"] == 0.0  # in-sample: the threshold was chosen on these rows
        assert 0.0 <= result["ece"] <= 1.0


def test_models_list_shows_calibration_without_loading(models: Models) -> None:
    result = CliRunner().invoke(cli, ["models", "list"], env=models.env, catch_exceptions=False)
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["binoculars"]["calibrated"]
    assert rows["binoculars"]["version"].startswith("sha-")
    assert rows["vit-onnx"]["present"]


def test_commands_refuse_clearly(models: Models, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["models", "export", "roberta-onnx"], env=models.env)
    assert result.exit_code == 2
    assert "only the transformers kinds export" in " ".join(result.output.split())
    result = CliRunner().invoke(cli, ["calibrate", "--detector", "nope", "--input", str(models.calibration)], env=models.env)
    assert result.exit_code == 2
    assert "no custom detector named 'nope'" in " ".join(result.output.split())


def test_ensemble_of_shipped_text_detector_and_zero_shot_lm(models: Models, tmp_path: Path) -> None:
    from service.model_admin import calibrate_ensemble

    stacker = tmp_path / "ensemble-text.json"
    ensembles = [{"role": "text", "members": ["text", "binoculars"], "manifest": str(stacker)}]
    shipped = SHIPPED_TEXT.is_file()
    extra: dict[str, Any] = {"ensembles": ensembles}
    if shipped:
        extra["weights_dir"] = SHIPPED_TEXT.parent.parent
    settings = models.settings(tmp_path / "e.sqlite3", **extra)
    provided = None if shipped else {"text": FakeTextDetector()}
    rows = tmp_path / "stack.jsonl"
    rows.write_text("".join(json.dumps({"text": _text(HUMAN if i % 2 else AI, i) * 2 + (" delve" * (i % 2 == 0) * 3),
                                        "label": "human" if i % 2 else "ai"}) + "\n" for i in range(12)))
    fitted = calibrate_ensemble(settings, "text", rows, provided=provided)
    assert fitted["stacker"]["members"] == ["text", "binoculars"]
    assert fitted["provenance"]["n"] == 12
    detectors: dict[str, Any] = {"face": FakeFaceDetector(), "text": FakeTextDetector()}
    if shipped:  # our real shipped text detector, from its weights
        from detectors.text import build_text_detector

        detectors["text"] = build_text_detector(SHIPPED_TEXT.parent)
    application = create_app(settings, detectors=detectors)
    with TestClient(application) as client:
        assert client.get("/readyz").json()["detectors"]["ensemble:text"] == "ready"
        token = application.state.store.create_api_key("e", [Scope.CHECK])
        report = _check(client, {"Authorization": f"Bearer {token}"}, _text(AI, 1) * 2 + " We delve, delve, delve.")
    text = report["text"]
    assert text["model"].startswith("ensemble-text@")
    assert text["ensemble"]["used"] == ["text", "binoculars"]
    assert 0.0 <= text["ai_probability"] <= 1.0
    assert text["threshold"] == fitted["thresholds"]["likely_ai"]
    members = {d["name"]: d for d in text["detectors"]}
    assert members["text"]["energy_j"] > 0
    assert members["binoculars"]["energy_j"] > 0
    assert members["binoculars"]["raw_score"] is not None


def test_audit_cli_reports_declared_detectors(models: Models, tmp_path: Path) -> None:
    archive = tmp_path / "archive.jsonl"
    archive.write_text("".join(json.dumps({"id": f"a{i}", "text": _text(custom_models.SENTENCES, i) * 2,
                                           "byline": "Jo Smith"}) + "\n" for i in range(3)))
    out = tmp_path / "out" / "reports.jsonl"
    env = {**models.env, "BYLINECHECK_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.sqlite3'}"}
    result = CliRunner().invoke(cli, ["audit", str(archive), "--out", str(out)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    reports = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert len(reports) == 3
    for report in reports:
        scores = {d["name"]: d for d in report["text"]["detectors"]}
        assert scores["roberta"]["ai_probability"] is not None
        assert scores["roberta"]["energy_j"] > 0
        assert scores["text"]["abstain_reason"] == "detector_unavailable"  # no shipped weights in this folder


def test_face_crop_abstains_when_no_face_is_found(models: Models, tmp_path: Path) -> None:
    import numpy as np

    from detectors.contract import Device, ImageItem, Modality
    from detectors.custom import CustomKind, CustomSpec, build_custom_detector
    from detectors.custom.spec import Crop

    spec = CustomSpec("vit-face", CustomKind.HF_IMAGE_CLASSIFIER, models.root / "vit", modality=Modality.IMAGE,
                      ai_label="ai", crop=Crop.FACE, manifest_dir=tmp_path)
    detector = build_custom_detector(spec)
    detector.load(Device())
    prepared = [detector.preprocess(ImageItem(np.full((128, 128, 3), 120, dtype=np.uint8)))]
    (out,) = detector.postprocess(prepared, detector.forward(prepared))
    assert out.abstain_reason == "no_face"
    assert out.raw_score is None


def test_thresholds_meet_the_target_fpr_and_the_stacker_learns_directions() -> None:
    import numpy as np

    from detectors.custom.stacking import choose_thresholds, fit_platt_smoothed, fit_stacker

    human, ai = np.linspace(0.0, 0.6, 200), np.linspace(0.4, 1.0, 200)
    choice = choose_thresholds([*human, *ai], [0] * 200 + [1] * 200, target_fpr=0.01)
    assert choice.fpr <= 0.01
    assert np.mean(human >= choice.likely_ai) <= 0.01 < np.mean(human >= choice.likely_ai - 0.01)
    assert choice.likely_human <= choice.likely_ai
    separable = fit_platt_smoothed([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0], [0, 0, 0, 1, 1, 1])
    probs = [separable(x) for x in (-3.0, -2.0, -1.0, 1.0, 2.0, 3.0)]
    assert 0.0 < probs[0] < 0.5 < probs[-1] < 1.0
    assert choose_thresholds(probs, [0, 0, 0, 1, 1, 1]).fpr == 0.0
    rng = np.random.default_rng(0)
    labels = [0] * 100 + [1] * 100
    rows = [{"up": float(y + rng.normal(0, 0.5)), "down": float(-y + rng.normal(0, 0.5))} for y in labels]
    rows[0]["up"] = None  # type: ignore[assignment]
    stacker = fit_stacker(["up", "down"], rows, labels)
    assert stacker.weights[0] > 0 > stacker.weights[1]
    assert stacker.probability({"up": 1.5, "down": -1.5}) > 0.9 > 0.1 > stacker.probability({"up": -0.5, "down": 0.5})


def test_image_ensemble_stacks_the_face_detector_with_an_image_classifier(models: Models, tmp_path: Path) -> None:
    from service.model_admin import calibrate_ensemble

    ensembles = [{"role": "image", "members": ["face", "vit"], "manifest": str(tmp_path / "ensemble-image.json")}]
    settings = models.settings(tmp_path / "i.sqlite3", ensembles=ensembles)
    fitted = calibrate_ensemble(settings, "image", models.calibration, provided={"face": FakeFaceDetector()})
    assert fitted["provenance"]["n"] == 12
    application = create_app(settings, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    with TestClient(application) as client:
        token = application.state.store.create_api_key("i", [Scope.CHECK])
        report = _check(client, {"Authorization": f"Bearer {token}"}, " ".join(AI), jpeg_bytes((200, 60, 60), (96, 96)))
    headshot = report["headshots"][0]
    assert headshot["model"].startswith("ensemble-image@")
    assert headshot["ensemble"]["used"] == ["face", "vit"]
    assert 0.0 <= headshot["synthetic_probability"] <= 1.0
    assert {d["name"] for d in headshot["detectors"]} == {"face", "vit", "vit-onnx"}
    assert all(d["energy_j"] > 0 for d in headshot["detectors"])
