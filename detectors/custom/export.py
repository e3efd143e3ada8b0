"""Export a local transformers classifier to ONNX (``torch.onnx.export``), so inference needs no torch.

Caveats first: uses the TorchScript exporter (``dynamo=False``; the dynamo exporter needs
``onnxscript``, which is not a dependency) and silences its deprecation warning; opset 17 with
dynamic batch and sequence axes. Classifiers export their logits; a zero-shot LM detector exports
each LM's full-vocabulary logits (``observer.onnx``, ``performer.onnx``; the statistic is then
computed in numpy). The exported folder gets a manifest for kind ``onnx`` whose ``extra.io`` is the
declared input/output spec; the calibration of the source (if any) is copied, because both compute
the same raw score; re-run ``bylinecheck calibrate`` to be exact.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from detectors.contract import DetectorError, Modality, ScoreDirection
from detectors.custom.calibrated import ManifestDraft, write_manifest
from detectors.custom.spec import CustomKind, CustomSpec, ZeroShotMethod, import_transformers
from detectors.custom.textclass import resolve_label
from detectors.manifest import MANIFEST_NAME

OPSET = 17


class _Logits:  # wraps a transformers model so that the graph returns only the logits
    def __init__(self, model: Any) -> None:
        self.model = model

    def module(self, torch: Any) -> Any:
        model = self.model

        class Wrapped(torch.nn.Module):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__()
                self.inner = model

            def forward(self, *args: Any) -> Any:
                names = ("input_ids", "attention_mask") if len(args) == 2 else ("pixel_values",)
                return self.inner(**dict(zip(names, args, strict=True))).logits

        return Wrapped().eval()


def _export(torch: Any, model: Any, args: tuple[Any, ...], path: Path, inputs: list[str],
            per_token: bool = False) -> None:
    axes = {name: {0: "batch", 1: "sequence"} if name != "pixel_values" else {0: "batch"} for name in inputs}
    axes["logits"] = {0: "batch", 1: "sequence"} if per_token else {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Logits(model).module(torch), args, str(path), input_names=inputs, output_names=["logits"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def _source_calibration(spec: CustomSpec) -> dict[str, Any]:
    path = spec.calibration_dir / MANIFEST_NAME
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def export_onnx(spec: CustomSpec, out: Path) -> dict[str, Any]:
    """Write ``out/model.onnx`` (+ ``tokenizer.json`` for text) and ``out/manifest.json``; returns the manifest."""
    transformers = import_transformers()
    import torch

    out.mkdir(parents=True, exist_ok=True)
    path = str(spec.path)
    if spec.kind is CustomKind.HF_SEQUENCE_CLASSIFIER:
        io, files = _export_text(torch, transformers, path, out, spec)
    elif spec.kind is CustomKind.HF_IMAGE_CLASSIFIER:
        io, files = _export_image(torch, transformers, path, out, spec)
    elif spec.kind is CustomKind.ZERO_SHOT_LM:
        io, files = _export_lms(torch, transformers, out, spec)
    else:
        raise DetectorError(f"{spec.name}: only the transformers kinds export to ONNX")
    source = _source_calibration(spec)
    draft = ManifestDraft(
        name=f"{spec.name}-onnx", modality=spec.modality,
        direction=ScoreDirection(source.get("score_direction", _direction(spec).value)),
        evidence_unit="tokens" if spec.modality is Modality.TEXT else "pixels",
        min_evidence=float(source.get("min_evidence") or spec.min_evidence or 0.0),
        calibration=source.get("calibration"), thresholds=source.get("thresholds"),
        provenance={**source.get("threshold_provenance", {}), "exported_from": path,
                    "calibration_copied_from_source": source.get("calibration") is not None},
        extra={"kind": CustomKind.ONNX.value, "io": io, "opset": OPSET},
    )
    return write_manifest(out, draft, files)


def _export_text(torch: Any, transformers: Any, path: str, out: Path, spec: CustomSpec) -> tuple[dict[str, Any], list[Path]]:
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True).eval()
    enc = tokenizer(["a sample sentence for the export", "another"], padding=True, return_tensors="pt")
    _export(torch, model, (enc["input_ids"], enc["attention_mask"]), out / "model.onnx", ["input_ids", "attention_mask"])
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    io = {"model": "model.onnx", "output": "logits", "tokenizer": "tokenizer.json", "pad_id": int(pad or 0),
          "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask"},
          "ai_index": resolve_label(spec.ai_label, dict(model.config.id2label), int(model.config.num_labels))}
    return io, [out / "model.onnx", out / "tokenizer.json"]


def _direction(spec: CustomSpec) -> ScoreDirection:
    if spec.kind is CustomKind.ZERO_SHOT_LM and spec.zero_shot_method is ZeroShotMethod.BINOCULARS:
        return ScoreDirection.LOWER_IS_AI
    return ScoreDirection.HIGHER_IS_AI


def _export_lms(torch: Any, transformers: Any, out: Path, spec: CustomSpec) -> tuple[dict[str, Any], list[Path]]:
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(spec.path), local_files_only=True)
    enc = tokenizer(["a sample sentence for the export", "another"], padding=True, return_tensors="pt")
    files = []
    for role, folder in (("observer", spec.path), ("performer", spec.performer_path)):
        if folder is None:
            continue
        model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True).eval()
        model.config.use_cache = False
        _export(torch, model, (enc["input_ids"], enc["attention_mask"]), out / f"{role}.onnx",
                ["input_ids", "attention_mask"], per_token=True)
        files.append(out / f"{role}.onnx")
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    io = {"task": "zero-shot-lm", "method": spec.zero_shot_method.value, "observer": "observer.onnx",
          "performer": "performer.onnx" if spec.performer_path else None, "tokenizer": "tokenizer.json",
          "pad_id": int(pad or 0), "bos_id": tokenizer.bos_token_id}
    return io, [*files, out / "tokenizer.json"]


def _export_image(torch: Any, transformers: Any, path: str, out: Path, spec: CustomSpec) -> tuple[dict[str, Any], list[Path]]:
    processor = transformers.AutoImageProcessor.from_pretrained(path, local_files_only=True)
    model = transformers.AutoModelForImageClassification.from_pretrained(path, local_files_only=True).eval()
    size = processor.size
    hw = [int(size["height"]), int(size["width"])] if "height" in size else [int(size["shortest_edge"])] * 2
    sample = torch.zeros((1, 3, *hw), dtype=torch.float32)
    _export(torch, model, (sample,), out / "model.onnx", ["pixel_values"])
    image = {"size": hw, "rescale": float(getattr(processor, "rescale_factor", 1 / 255)),
             "mean": [float(v) for v in processor.image_mean], "std": [float(v) for v in processor.image_std]}
    io = {"model": "model.onnx", "output": "logits", "pixel_input": "pixel_values", "image": image,
          "ai_index": resolve_label(spec.ai_label, dict(model.config.id2label), int(model.config.num_labels))}
    return io, [out / "model.onnx"]
