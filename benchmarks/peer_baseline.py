"""The peer baseline of the AI Energy Score protocol, measured on this machine at batch size 1.

* text: a distilbert-base-sized sequence classifier (6 layers, 768 wide, random weights) through
  ``transformers.pipeline("text-classification")``, on the first 512 tokens of each article;
* image: a ResNet-18 (random weights) on a 224x224 crop of each headshot. timm needs torchvision, whose
  PyPI build does not import beside the CPU torch wheel used here, so this is the torchvision/timm
  ResNet-18 architecture written out in plain torch (same layers, same FLOPs: 1.8 GFLOPs).

Random weights cost the same as trained ones. Needs the ``train`` extra (torch, transformers).
Reports checks per CPU-second and the CPU-time energy estimate with the service's power figure.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from typing import Any


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _basic_block(torch: Any, cin: int, cout: int, stride: int) -> Any:
    nn = torch.nn

    class Block(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x: Any) -> Any:
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.down(x))

    return Block()


def resnet18(torch: Any) -> Any:
    nn = torch.nn
    layers: list[Any] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [_basic_block(torch, cin, cout, stride), _basic_block(torch, cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    return nn.Sequential(*layers).eval()


def _distilbert_pipeline(texts: Sequence[str]) -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, PreTrainedTokenizerFast, pipeline

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=30522, special_tokens=specials))
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)
    config = DistilBertConfig(vocab_size=30522)
    config.num_labels = 2
    model = DistilBertForSequenceClassification(config).eval()  # type: ignore[no-untyped-call]
    return pipeline("text-classification", model=model, tokenizer=fast, device=-1, truncation=True, max_length=512)


def run_peer_baseline(texts: Sequence[str], images: Sequence[Any], core_power_w: float,
                      threads: int = 0) -> dict[str, Any]:
    """Per-item cost of the peer models at batch size 1. ``images`` are HxWx3 uint8 arrays."""
    import numpy as np
    import torch

    if threads:
        torch.set_num_threads(threads)
    classify = _distilbert_pipeline(texts)
    classify(texts[0])  # warm-up
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    for text in texts:
        classify(text)
    text_cpu, text_wall = _cpu_s() - cpu0, time.perf_counter() - wall0

    net = resnet18(torch)
    def tensor(img: Any) -> Any:
        h, w = img.shape[:2]
        side = min(h, w)
        crop = img[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2]
        from PIL import Image

        small = np.asarray(Image.fromarray(crop).resize((224, 224)), dtype=np.float32) / 255.0
        return torch.from_numpy(small.transpose(2, 0, 1)).unsqueeze(0)

    with torch.inference_mode():
        net(tensor(images[0]))
        cpu0, wall0 = _cpu_s(), time.perf_counter()
        for img in images:
            net(tensor(img))
        image_cpu, image_wall = _cpu_s() - cpu0, time.perf_counter() - wall0
    n_text, n_img = len(texts), len(images)
    per_check_cpu = text_cpu / n_text + image_cpu / n_img
    return {
        "text_model": "distilbert-base-sized (66M params, random) via transformers.pipeline, batch 1",
        "image_model": "ResNet-18 (11.7M params, random), batch 1",
        "text_ms": 1000 * text_wall / n_text,
        "image_ms": 1000 * image_wall / n_img,
        "text_cpu_s": text_cpu / n_text,
        "image_cpu_s": image_cpu / n_img,
        "checks_per_cpu_s": 1.0 / per_check_cpu,
        "energy_j_per_check_estimated": per_check_cpu * core_power_w,
    }
