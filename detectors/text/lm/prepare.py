"""Builds the token-id file for the GPU feature job, and its parity reference (training side).

Caveats first: rows, cleaning and splits are exactly the text training's (``detectors.text.data``:
``clean_training_text``, ``split_of`` by ``pair_id``, seed 0), then each text is normalised like the
detector does (``normalise``) and cut to its first ``max_tokens`` SmolLM2 tokens. Outputs are keyed
by the staged row ``id``:

- ``<out>/tokens.npz``: ``ids`` (str), ``tokens`` (uint16, n x max_tokens, zero-padded), ``lengths``
  (uint16), ``max_tokens``; compressed.
- ``<out>/parity_ref.npz``: numpy-path features of ``--parity`` validation texts (for the GPU job's
  comparison).
- ``<meta>/meta.npz``: ``ids``, ``split``, ``label`` (1 = ai), ``domain``, ``generator`` (stays here).

Run: ``python -m detectors.text.lm.prepare --data ../shared/datasets/text --gguf FILE
--out .devdata/lm_gpu --meta .devdata/lm_meta``. ``--splits validation test`` keeps only those splits' rows
(the token file of a CPU run of ``gpu_features``, which the stacker alone needs: ~1.9 M tokens, about an hour on
2 cores, against 6.2 M for every split); ``meta.npz`` always lists every row.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
from pathlib import Path

import numpy as np

from detectors.text.data import load_rows
from detectors.text.lm.gguf import GGUFFile
from detectors.text.lm.scorer import LMScorer
from detectors.text.lm.stats import FEATURE_NAMES
from detectors.text.lm.tokenizer import build_tokenizer, encode_many
from detectors.text.normalise import normalise

logger = logging.getLogger(__name__)


def parity_sample(ids: list[str], splits: list[str], n: int) -> list[int]:
    """``n`` validation rows chosen by sha256 of their id (stable across machines)."""
    val = [i for i, s in enumerate(splits) if s == "validation"]
    val.sort(key=lambda i: hashlib.sha256(ids[i].encode()).hexdigest())
    return sorted(val[:n])


def build(data: Path, gguf: Path, out: Path, meta_dir: Path, max_tokens: int, n_parity: int,
          splits: tuple[str, ...] = ()) -> None:
    t0 = time.perf_counter()
    all_rows = load_rows(data, seed=0)
    rows = [r for r in all_rows if not splits or r.split in splits]
    texts = [normalise(r.text).text for r in rows]
    tokenizer = build_tokenizer(GGUFFile(gguf).metadata)
    encoded = [ids[:max_tokens] for ids in encode_many(tokenizer, texts)]
    tokens = np.zeros((len(rows), max_tokens), dtype=np.uint16)
    lengths = np.array([len(e) for e in encoded], dtype=np.uint16)
    for i, e in enumerate(encoded):
        tokens[i, : len(e)] = e
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError("row ids are not unique")
    out.mkdir(parents=True, exist_ok=True)
    meta_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "tokens.npz", ids=np.array(ids), tokens=tokens, lengths=lengths,
                        max_tokens=np.array(max_tokens))
    np.savez_compressed(meta_dir / "meta.npz", ids=np.array([r.id for r in all_rows]),
                        split=np.array([r.split for r in all_rows]),
                        label=np.array([r.label for r in all_rows], dtype=np.int8),
                        domain=np.array([r.domain for r in all_rows]), generator=np.array([r.generator for r in all_rows]))
    logger.info("tokens for %d texts (%d tokens) in %.1f s", len(rows), int(lengths.sum()), time.perf_counter() - t0)
    pick = parity_sample(ids, [r.split for r in rows], n_parity)
    scorer = LMScorer(gguf, max_tokens)
    feats = np.stack([scorer.features_from_ids(tokens[i, : lengths[i]].astype(np.int64)) for i in pick])
    np.savez_compressed(out / "parity_ref.npz", ids=np.array([ids[i] for i in pick]), features=feats,
                        feature_names=np.array(FEATURE_NAMES))
    logger.info("parity reference for %d texts; done in %.1f s", len(pick), time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--gguf", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--meta", type=Path, required=True)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--parity", type=int, default=64)
    parser.add_argument("--splits", nargs="*", default=[], choices=("train", "validation", "test"),
                        help="keep only these splits' texts (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    build(args.data, args.gguf, args.out, args.meta, args.max_tokens, args.parity, tuple(args.splits))


if __name__ == "__main__":
    main()
