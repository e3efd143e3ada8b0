"""Leave-one-out runs for the token-sequence CNN (development measurement for the model card; needs torch).

Caveats first: each run refits the CNN with ``sequence_training.fit`` (same data, hyper-parameters, seed and
early-stopping rule as the shipped one) without one generator family's AI texts, or without one domain
group's texts, in train, and scores that family's / group's validation + test texts (generators: against
all validation + test human texts) with the refitted CNN alone. About 3 minutes per run on 2 cores.
Results go to ``.devdata/sequence_holdout/<name>.json``; the card quotes them.

Run: ``python -m detectors.text.lm.sequence_holdout --generator "gpt-4/gpt-4o" --domain squad``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from detectors.text.data import Row, load_rows
from detectors.text.lm import sequence_training as st
from detectors.text.lm.sequence import ALL_VARIANTS

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
RUN_DIR = REPO / ".devdata" / "lm_features_run"
TOKENS = REPO / ".devdata" / "lm_gpu" / "tokens.npz"
OUT = REPO / ".devdata" / "sequence_holdout"


def held_out(rows: list[Row], kind: str, name: str, variant: str = "seq_cnn_stats_logit") -> dict[str, Any]:
    """Refit without the group in train; AUROC / TPR@1%FPR of the refit on the group's validation + test texts."""
    from detectors.text.evaluation import auroc, tpr_at_fpr

    def held(r: Row) -> bool:
        return (r.label == 1 and r.family == name) if kind == "generator" else r.domain_group == name

    train = [r for r in rows if r.split == "train" and not held(r)]
    evals = [r for r in rows if r.split != "train" and (held(r) or (kind == "generator" and r.label == 0))]
    inputs = st.fit_inputs(train, RUN_DIR, TOKENS, 256)
    model, log = st.fit(inputs["data"], inputs["y"], inputs["w"], inputs["fit_rows"], inputs["stop_rows"],
                        ALL_VARIANTS[variant])
    ev = st.load_token_data(RUN_DIR, TOKENS, evals, 256)
    s = st.predict_torch(model, ev, np.arange(len(evals)))
    ye = np.array([r.label for r in evals])
    human = ye == 0
    by_domain = {}
    for dom in sorted({r.domain for r in evals}):
        m = np.array([r.domain == dom for r in evals])
        by_domain[dom] = {"n": int(m.sum()), "mean_logit": float(s[m].mean()),
                          "auroc_vs_all_human": auroc(ye[m | human], s[m | human]) if ye[m].any() else None}
    return {"by_domain": by_domain, "held_out": f"{kind}: {name}", "variant": variant, "n_ai": int(ye.sum()),
            "n_human": int((1 - ye).sum()),
            "auroc": auroc(ye, s), "tpr_at_1pct_fpr": tpr_at_fpr(ye, s, 0.01),
            "best_epoch": int(np.argmax([e["stop_auroc"] for e in log]))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/text"))
    parser.add_argument("--generator", action="append", default=[], help="a generator family (data.GENERATOR_FAMILIES)")
    parser.add_argument("--domain", action="append", default=[], help="a domain group (Row.domain_group)")
    parser.add_argument("--variant", default="seq_cnn_stats_logit", choices=list(ALL_VARIANTS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rows = load_rows(args.data, 0)
    OUT.mkdir(parents=True, exist_ok=True)
    for kind, names in (("generator", args.generator), ("domain", args.domain)):
        for name in names:
            result = held_out(rows, kind, name, args.variant)
            logger.info("%s", result)
            slug = re.sub(r"[^a-z0-9]+", "-", f"{args.variant}-{kind}-{name}".lower()).strip("-")
            (OUT / f"{slug}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
