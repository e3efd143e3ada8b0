"""SmolLM2's byte-level BPE rebuilt from the GGUF vocabulary and merges with ``tokenizers``.

Caveats first: the pre-tokenizer is SmolLM2's own (each digit alone, then GPT-2's byte-level regex;
llama.cpp calls it ``smollm``), which Hugging Face's GGUF loader does not reproduce (it keeps digit
runs together). Control tokens such as ``<|endoftext|>`` are NOT matched in submitted text: a text
that contains them is tokenised as the plain characters it is. No BOS/EOS is added.
"""

from __future__ import annotations

from typing import Any

SUPPORTED_PRE = ("smollm",)


def build_tokenizer(metadata: dict[str, Any]) -> Any:
    """A ``tokenizers.Tokenizer`` for a GGUF file's ``metadata``. Raises ValueError for other tokenizers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    if metadata.get("tokenizer.ggml.model") != "gpt2" or metadata.get("tokenizer.ggml.pre") not in SUPPORTED_PRE:
        raise ValueError("only SmolLM2's byte-level BPE (tokenizer.ggml.model gpt2, pre smollm) is supported")
    tokens: list[str] = list(metadata["tokenizer.ggml.tokens"])
    merges = [tuple(m.split(" ", 1)) for m in metadata["tokenizer.ggml.merges"]]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def encode_many(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of each text (no special tokens added)."""
    return [list(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
