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


# Architecture sizes: "tiny" for tests; "base" = the published shapes (RoBERTa-base, GPT-2 medium, ViT-base)
# with random weights, for cost measurements only.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden": 16, "layers": 2, "heads": 2, "ffn": 32, "positions": 80, "vocab": 0, "image": 32, "patch": 8},
    "base": {"hidden": 768, "layers": 12, "heads": 12, "ffn": 3072, "positions": 514, "vocab": 50265, "image": 224,
             "patch": 16},
}
LM_SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden": 16, "layers": 2, "heads": 2, "positions": 64, "vocab": 0},
    "base": {"hidden": 1024, "layers": 24, "heads": 16, "positions": 1024, "vocab": 50257},
}


def roberta_classifier(folder: Path, seed: int = 0, size: str = "tiny") -> Path:
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    tok = tokenizer(folder)
    torch.manual_seed(seed)
    z = SIZES[size]
    config = RobertaConfig(vocab_size=max(len(tok), z["vocab"]), hidden_size=z["hidden"], num_hidden_layers=z["layers"],
                           num_attention_heads=z["heads"], intermediate_size=z["ffn"],
                           max_position_embeddings=z["positions"], num_labels=2, id2label=LABELS,
                           label2id={v: k for k, v in LABELS.items()}, pad_token_id=tok.pad_token_id)
    RobertaForSequenceClassification(config).save_pretrained(folder)
    return folder


def gpt2_pair(root: Path, size: str = "tiny") -> tuple[Path, Path]:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    folders = (root / "observer", root / "performer")
    z = LM_SIZES[size]
    for seed, folder in enumerate(folders):
        tok = tokenizer(folder)
        torch.manual_seed(seed + 10)
        config = GPT2Config(vocab_size=max(len(tok), z["vocab"]), n_positions=z["positions"], n_embd=z["hidden"],
                            n_layer=z["layers"], n_head=z["heads"],
                            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        GPT2LMHeadModel(config).save_pretrained(folder)
    return folders


def vit_classifier(folder: Path, seed: int = 0, size: str = "tiny") -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    z = SIZES[size]
    config = ViTConfig(image_size=z["image"], patch_size=z["patch"], num_channels=3, hidden_size=z["hidden"],
                       num_hidden_layers=z["layers"], num_attention_heads=z["heads"], intermediate_size=z["ffn"],
                       num_labels=2, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    ViTForImageClassification(config).save_pretrained(folder)
    side = z["image"]
    processor = ViTImageProcessor(size={"height": side, "width": side}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor.save_pretrained(folder)
    return folder
