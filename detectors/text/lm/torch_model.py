"""The same Llama forward pass in torch, batched (the GPU feature-extraction path).

Caveats first: torch is imported inside (the service path must not need it). Sequences are
right-padded; with causal attention, padding only affects positions after a sequence's end, which
callers ignore. ``dtype`` is the body's compute dtype (bf16/fp16 on a GPU); the final norm and the
logits are computed in float32 (``head_dtype``) because log-probs of close candidates need the
precision.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.text.lm.stats import CONTEXT_ID, TokenStats
from detectors.text.lm.weights import LlamaWeights, rope_tables


class TorchLlama:
    """``logits(ids)``: ``(B, T)`` int64 tensor -> ``(B, T, vocab)`` float32 tensor."""

    def __init__(self, weights: LlamaWeights, device: str, dtype: str = "float32", head_dtype: str = "float32") -> None:
        import torch

        self.torch = torch
        self.config = weights.config
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        self.head_dtype = getattr(torch, head_dtype)

        def put(a: Any, dt: Any = None) -> Any:
            return torch.from_numpy(a).to(self.device, dt or self.dtype).contiguous()

        self.embedding = put(weights.embedding)
        self.output = put(weights.output, self.head_dtype)
        self.output_norm = put(weights.output_norm, self.head_dtype)
        names = ("attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w_gate", "w_up", "w_down")
        self.layers = [{name: put(getattr(layer, name)) for name in names} for layer in weights.layers]
        self._rope_len = 0
        self._cos: Any = None
        self._sin: Any = None

    def _rope(self, n: int) -> tuple[Any, Any]:
        if self._rope_len < n:
            cos, sin = rope_tables(self.config, max(n, 512))
            self._cos = self.torch.from_numpy(cos).to(self.device, self.torch.float32)
            self._sin = self.torch.from_numpy(sin).to(self.device, self.torch.float32)
            self._rope_len = cos.shape[0]
        return self._cos[:n], self._sin[:n]

    def _norm(self, x: Any, weight: Any) -> Any:
        xf = x.float()
        xf = xf * self.torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.config.rms_eps)
        return (xf * weight.float()).to(weight.dtype)

    def _apply_rope(self, x: Any, cos: Any, sin: Any) -> Any:
        """x: (B, heads, T, head_dim); rotate adjacent pairs, in float32."""
        xf = x.float()
        even, odd = xf[..., 0::2], xf[..., 1::2]
        out = self.torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
        return out.flatten(-2).to(x.dtype)

    def _attention(self, h: Any, w: dict[str, Any], cos: Any, sin: Any) -> Any:
        cfg = self.config
        b, t, _ = h.shape
        q = (h @ w["wq"]).view(b, t, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        k = (h @ w["wk"]).view(b, t, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        v = (h @ w["wv"]).view(b, t, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        q, k = self._apply_rope(q, cos, sin), self._apply_rope(k, cos, sin)
        group = cfg.n_heads // cfg.n_kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        out = self.torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return out.transpose(1, 2).reshape(b, t, cfg.d_model) @ w["wo"]

    def hidden(self, ids: Any) -> Any:
        """Final-normed hidden states ``(B, T, d_model)`` in ``head_dtype``."""
        torch = self.torch
        with torch.inference_mode():
            x = self.embedding[ids]
            cos, sin = self._rope(ids.shape[1])
            for w in self.layers:
                x = x + self._attention(self._norm(x, w["attn_norm"]), w, cos, sin)
                h = self._norm(x, w["ffn_norm"])
                x = x + (torch.nn.functional.silu(h @ w["w_gate"]) * (h @ w["w_up"])) @ w["w_down"]
            return self._norm(x.to(self.head_dtype), self.output_norm)

    def logits(self, ids: Any) -> Any:
        with self.torch.inference_mode():
            return self.hidden(ids) @ self.output


def torch_token_stats(model: TorchLlama, tokens: np.ndarray, lengths: np.ndarray) -> list[TokenStats]:
    """Per-token statistics for a batch of texts (tokens: B x max_len, zero-padded)."""
    torch = model.torch
    b, width = len(lengths), int(lengths.max())
    ids = np.full((b, width + 1), CONTEXT_ID, dtype=np.int64)
    ids[:, 1:] = tokens[:, :width]
    x = torch.from_numpy(ids).to(model.device)
    with torch.inference_mode():
        logits = model.logits(x[:, :-1]).float()  # (B, width, V) predicting x[:, 1:]
        targets = x[:, 1:]
        observed = logits.gather(-1, targets[..., None])
        rank = 1 + (logits > observed).sum(-1)
        logp = torch.log_softmax(logits, dim=-1)
        del logits
        ll = logp.gather(-1, targets[..., None])[..., 0]
        p = logp.exp()
        entropy = -(p * logp).sum(-1)
        second = (p * logp * logp).sum(-1)
        del p, logp
        var = (second - entropy * entropy).clamp_min(0.0)
        arrays = [a.double().cpu().numpy() for a in (ll, entropy, var, rank)]
    return [TokenStats(*(a[i, : lengths[i]] for a in arrays)) for i in range(b)]
