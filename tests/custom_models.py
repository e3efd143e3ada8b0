"""Tiny random transformers models built offline in a test's tmp folder (no download, seconds on CPU).

A 2-layer RoBERTa classifier with a WordLevel tokenizer trained on a few sentences, two tiny GPT-2s
sharing that tokenizer, and a tiny ViT classifier with a ViTImageProcessor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SENTENCES = [
    "The council met on Tuesday to discuss the new budget for the city library.",
    "Residents said the road had been closed for weeks after the storm.",
    "In this article we delve into the rich tapestry of innovative solutions.",
    "It is important to note that the landscape is constantly evolving.",
    "Our reporter spoke to the mayor, who declined to comment on the plan.",
    "Furthermore, this comprehensive overview highlights the key insights.",
]
LABELS = {0: "human", 1: "ai"}


def tokenizer(folder: Path) -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    raw.normalizer = normalizers.Lowercase()
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[BOS]", "[EOS]"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]",
                                   eos_token="[EOS]")
    fast.save_pretrained(folder)
    return fast


def roberta_classifier(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    tok = tokenizer(folder)
    torch.manual_seed(seed)
    config = RobertaConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=80, num_labels=2, id2label=LABELS,
                           label2id={v: k for k, v in LABELS.items()}, pad_token_id=tok.pad_token_id)
    RobertaForSequenceClassification(config).save_pretrained(folder)
    return folder


def gpt2_pair(root: Path) -> tuple[Path, Path]:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    folders = (root / "observer", root / "performer")
    for seed, folder in enumerate(folders):
        tok = tokenizer(folder)
        torch.manual_seed(seed + 10)
        config = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=16, n_layer=2, n_head=2,
                            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        GPT2LMHeadModel(config).save_pretrained(folder)
    return folders


def vit_classifier(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    config = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=16, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=32, num_labels=2, id2label=LABELS,
                       label2id={v: k for k, v in LABELS.items()})
    ViTForImageClassification(config).save_pretrained(folder)
    processor = ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor.save_pretrained(folder)
    return folder
