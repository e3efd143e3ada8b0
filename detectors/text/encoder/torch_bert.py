"""A 6-layer BERT (MiniLM-L6-H384, uncased) with a mean-pooled logistic head, in plain torch.

Imports torch alone: ``gpu_train.py`` loads this file by path on a machine with nothing but torch and numpy,
and ``export`` traces the same module to ONNX. Parameter names follow the Hugging Face ``BertModel`` checkpoint
(``embeddings.word_embeddings.weight``, ``encoder.layer.N.attention.self.query.weight``, ...), so the packaged
all-MiniLM-L6-v2 safetensors load with ``load_state_dict``. The word-embedding table is held as int8 rows with
one float scale per row (``word_q``, ``word_scale``) and is frozen in fine-tuning: the table the GPU trained
against is then bit-for-bit the one the service ships.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

HIDDEN = 384
LAYERS = 6
HEADS = 12
FFN = 1536
VOCAB = 30522
MAX_POSITIONS = 512
EPS = 1e-12


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fused = True
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)
        self.attn_out = nn.Linear(HIDDEN, HIDDEN)
        self.attn_norm = nn.LayerNorm(HIDDEN, eps=EPS)
        self.ffn_in = nn.Linear(HIDDEN, FFN)
        self.ffn_out = nn.Linear(FFN, HIDDEN)
        self.ffn_norm = nn.LayerNorm(HIDDEN, eps=EPS)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, dropout: float) -> torch.Tensor:
        n, t, _ = x.shape

        def heads(h: torch.Tensor) -> torch.Tensor:
            return h.view(n, t, HEADS, HIDDEN // HEADS).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        if self.fused:  # training and GPU scoring; the ONNX export traces the explicit form below (same maths)
            ctx = functional.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                                 dropout_p=dropout if self.training else 0.0)
        else:
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HIDDEN // HEADS) + bias, dim=-1)
            ctx = att @ v
        ctx = ctx.transpose(1, 2).reshape(n, t, HIDDEN)
        x = self.attn_norm(x + functional.dropout(self.attn_out(ctx), dropout, self.training))
        h = self.ffn_out(functional.gelu(self.ffn_in(x)))
        out: torch.Tensor = self.ffn_norm(x + functional.dropout(h, dropout, self.training))
        return out


class WindowClassifier(nn.Module):
    """Logit that a window of wordpieces ([CLS] ... [SEP], padded with 0) is machine-written."""

    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = dropout
        self.register_buffer("word_q", torch.zeros(VOCAB, HIDDEN, dtype=torch.int8))
        self.register_buffer("word_scale", torch.ones(VOCAB, 1))
        self.position = nn.Embedding(MAX_POSITIONS, HIDDEN)
        self.token_type = nn.Embedding(2, HIDDEN)
        self.embed_norm = nn.LayerNorm(HIDDEN, eps=EPS)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.head = nn.Linear(HIDDEN, 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        t = input_ids.shape[1]
        word_q: torch.Tensor = self.word_q  # type: ignore[assignment]
        word_scale: torch.Tensor = self.word_scale  # type: ignore[assignment]
        words = word_q[input_ids].to(torch.float32) * word_scale[input_ids]
        pos = self.position.weight[:t].unsqueeze(0)
        x = self.embed_norm(words + pos + self.token_type.weight[0])
        x = functional.dropout(x, self.dropout, self.training)
        mask = attention_mask.to(x.dtype)
        bias = ((1.0 - mask) * -1e4)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias, self.dropout)
        pooled = (x * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        logits: torch.Tensor = self.head(functional.dropout(pooled, self.dropout, self.training)).squeeze(-1)
        return logits

    def set_fused(self, fused: bool) -> None:
        for layer in self.layers:
            layer.fused = fused  # type: ignore[assignment]


HF_NAMES = {
    "embeddings.position_embeddings.weight": "position.weight",
    "embeddings.token_type_embeddings.weight": "token_type.weight",
    "embeddings.LayerNorm.weight": "embed_norm.weight",
    "embeddings.LayerNorm.bias": "embed_norm.bias",
}
HF_LAYER_NAMES = {
    "attention.self.query": "query", "attention.self.key": "key", "attention.self.value": "value",
    "attention.output.dense": "attn_out", "attention.output.LayerNorm": "attn_norm",
    "intermediate.dense": "ffn_in", "output.dense": "ffn_out", "output.LayerNorm": "ffn_norm",
}


def rename_hf(name: str) -> str | None:
    """This module's name for a ``BertModel`` parameter (None for the word table and the unused pooler)."""
    if name in HF_NAMES:
        return HF_NAMES[name]
    if name.startswith("encoder.layer."):
        _, _, idx, rest = name.split(".", 3)
        for hf, ours in HF_LAYER_NAMES.items():
            if rest.startswith(hf + "."):
                return f"layers.{idx}.{ours}.{rest[len(hf) + 1:]}"
    return None


def quantise_rows(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row: (int8 table, float32 scale column)."""
    scale = table.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127.0
    return torch.round(table / scale).clamp(-127, 127).to(torch.int8), scale.to(torch.float32)
