"""Loading the staged text data, cleaning it and splitting it by ``pair_id`` (training side).

Caveats first: texts sharing a ``pair_id`` always land in the same split (the data README's
warning); rows with a null ``pair_id`` (Reuters) are split by their ``id``. The split is a pure
function of the seed and the group key (sha256), so it is identical on every machine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from detectors.text.cleaning import clean_training_text
from detectors.text.normalise import word_count

DATA_FILES = ("l2r.jsonl", "fastdetect_glimpse.jsonl", "reuters21578_news.jsonl", "llmfake_news.jsonl")
SPLIT_FRACTIONS = {"train": 0.70, "validation": 0.15, "test": 0.15}
MIN_TRAIN_WORDS = 5

GENERATOR_FAMILIES = {
    "gpt2-xl": "open-2020-22 (gpt2/opt/neo/j/neox)",
    "opt-2.7b": "open-2020-22 (gpt2/opt/neo/j/neox)",
    "gpt-neo-2.7B": "open-2020-22 (gpt2/opt/neo/j/neox)",
    "gpt-j-6B": "open-2020-22 (gpt2/opt/neo/j/neox)",
    "gpt-neox-20b": "open-2020-22 (gpt2/opt/neo/j/neox)",
    "davinci": "davinci",
    "gpt-3.5-turbo": "gpt-3.5-turbo",
    "gpt-4": "gpt-4/gpt-4o",
    "gpt-4o": "gpt-4/gpt-4o",
    "claude-3-opus-20240229": "claude-3",
    "claude-3-sonnet-20240229": "claude-3",
    "gemini-1.5-pro": "gemini-1.5-pro",
    "llama-3-70b-instruct": "llama-3-70b",
    "llama-2-7b-chat": "llama-2-chat",
    "llama-2-13b-chat": "llama-2-chat",
    "llama-2-70b-chat": "llama-2-chat",
    "vicuna-7b-v1.3": "vicuna",
    "vicuna-13b-v1.3": "vicuna",
    "vicuna-33b-v1.3": "vicuna",
}

L2R_GROUPS = {
    **dict.fromkeys(("AcademicResearch", "TechnicalWriting", "Code", "MedicalText", "Environmental"), "science/tech"),
    **dict.fromkeys(("Business", "Finance", "LegalDocument", "GovernmentPublic"), "business/legal/government"),
    **dict.fromkeys(("ArtCulture", "Entertainment", "FoodCusine", "Sports", "Religious"), "culture/leisure"),
    **dict.fromkeys(
        ("OnlineContent", "PersonalCommunication", "LiteratureCreativeWriting", "EducationMaterial"),
        "personal/creative/education",
    ),
}


@dataclass(frozen=True)
class Row:
    """One cleaned row. ``text`` is cleaned; ``raw_text`` as staged."""

    id: str
    text: str
    raw_text: str
    label: int  # 1 = ai
    domain: str
    generator: str
    group: str
    split: str
    source_file: str

    @property
    def domain_group(self) -> str:
        if self.domain.startswith("news"):
            return "news (Reuters + LLMFake)"
        if self.domain in ("writing", "squad", "pubmed"):
            return self.domain
        return "L2R " + L2R_GROUPS.get(self.domain, self.domain)

    @property
    def family(self) -> str:
        return GENERATOR_FAMILIES.get(self.generator, self.generator)

    def as_eval_row(self) -> dict[str, str]:
        return {"text": self.text, "label": "ai" if self.label else "human", "domain": self.domain,
                "generator": self.generator, "pair_id": self.group}


def split_of(group: str, seed: int) -> str:
    """Deterministic split of a group key: sha256(seed:key) mapped to [0, 1)."""
    u = int.from_bytes(hashlib.sha256(f"{seed}:{group}".encode()).digest()[:8], "big") / 2.0**64
    if u < SPLIT_FRACTIONS["train"]:
        return "train"
    return "validation" if u < SPLIT_FRACTIONS["train"] + SPLIT_FRACTIONS["validation"] else "test"


def load_rows(data_dir: Path, seed: int) -> list[Row]:
    """All staged rows, cleaned, with their split; rows under ``MIN_TRAIN_WORDS`` words dropped."""
    rows: list[Row] = []
    for name in DATA_FILES:
        with (data_dir / name).open(encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                text = clean_training_text(rec["text"], rec["domain"])
                if word_count(text) < MIN_TRAIN_WORDS:
                    continue
                group = rec["pair_id"] or rec["id"]
                rows.append(Row(rec["id"], text, rec["text"], int(rec["label"] == "ai"), rec["domain"],
                                rec["generator"] or "", group, split_of(group, seed), name))
    return rows
