"""Speed and energy of the text detector on the standard 800-word article, per mode (prints numbers).

Runs the shipped detector's preprocess + forward + postprocess on distinct 800-word Reuters articles
(``workload.articles``), one article at a time, with ONNX Runtime's intra-op threads set to 1 and 2: median wall
time and process CPU time per article, the encoder's wordpieces per second, and the energy estimate at the
service's default 6.75 W per busy core (CPU seconds x 6.75 W). Modes: ``off`` (the front: n-gram + encoder),
``auto`` (the cascade; these newswire articles fall outside its SmolLM2 band, so it costs what ``off`` costs plus
the band check) and ``always`` (SmolLM2 on every text: the LM path's cost). Wall time depends on other load on the
machine; CPU time much less.

Run: ``python -m benchmarks.text_article_speed --articles 20 --threads 1 2``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks.workload import articles
from detectors.contract import Device, TextItem
from detectors.text import build_text_detector
from detectors.text.normalise import normalise

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "text"
WATTS_PER_CORE = 6.75


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", default=["off", "auto", "always"])
    args = parser.parse_args()
    texts = articles(args.articles)
    for mode in args.modes:
        for threads in args.threads:
            detector = build_text_detector(WEIGHTS, lm_mode=mode)
            detector.load(Device(intra_op_threads=threads))
            encoder = detector._encoder
            pieces = sum(len(w) for w in encoder.windows_of([normalise(texts[0]).text])[0]) if encoder else 0
            n = 3 if mode == "always" else len(texts)
            walls, cpus, lm = [], [], 0
            for k, text in enumerate([texts[0]] + texts[:n]):  # the first call warms up
                t0, c0 = time.perf_counter(), time.process_time()
                prepared = [detector.preprocess(TextItem(text))]
                (out,) = detector.postprocess(prepared, detector.forward(prepared))
                if k:
                    walls.append(time.perf_counter() - t0)
                    cpus.append(time.process_time() - c0)
                    lm += int(out.extras.get("lm_path", 0.0))
            wall, cpu = statistics.median(walls), statistics.median(cpus)
            print(f"mode={mode:6s} threads={threads} articles={n} words={len(texts[0].split())} "
                  f"median_wall_ms={1000 * wall:.1f} median_cpu_ms={1000 * cpu:.1f} lm_path={lm}/{n} "
                  f"encoder_pieces={pieces} encoder_pieces_per_s={pieces / wall:.0f} "
                  f"energy_J={cpu * WATTS_PER_CORE:.2f}", flush=True)


if __name__ == "__main__":
    main()
