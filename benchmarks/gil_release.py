"""Do the preprocessing libraries release the GIL? Two measurements per job.

Caveats first: (1) the wall-time speed-up of N jobs on two threads over one thread is what a pool gains, but it
needs idle cores: on a machine shared with other jobs it says little (the load average is printed). (2) The
GIL-free share is robust to load: a probe thread counts in pure Python while the jobs run on the main thread;
its counting rate, relative to its rate while the main thread sleeps, is the share of the jobs' time spent
outside the GIL (1.0: the library releases it throughout; 0: it holds it). Jobs: dlib's HOG scan, the whole
face finding (HOG + landmarks + OpenCV resize), the face embedding (dlib chip + numpy BLAS), and decoding a
1024 px JPEG with Pillow.

    .venv/bin/python -m benchmarks.gil_release [--n 8]
"""

from __future__ import annotations

import argparse
import io
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from PIL import Image

from benchmarks.workload import distinct_headshots
from detectors.face.finding import FaceEmbedder, FaceFinder
from service.config import Settings
from service.inputs import decode_image


def speedup(job: Callable[[int], object], n: int) -> tuple[float, float]:
    started = time.perf_counter()
    for i in range(n):
        job(i)
    serial = time.perf_counter() - started
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(job, range(n)))
    return serial, time.perf_counter() - started


def gil_free_share(job: Callable[[int], object], n: int) -> float:
    """Probe thread's counting rate while ``job`` runs n times, over its rate while this thread sleeps."""

    def rate(work: Callable[[], object]) -> float:
        stop, count = threading.Event(), [0]

        def probe() -> None:
            while not stop.is_set():
                count[0] += 1

        thread = threading.Thread(target=probe)
        thread.start()
        started = time.perf_counter()
        work()
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join()
        return count[0] / elapsed

    busy = rate(lambda: [job(i) for i in range(n)])
    idle = rate(lambda: time.sleep(0.5))
    return busy / idle


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=8)
    args = parser.parse_args(argv)
    settings = Settings()
    finder, embedder = FaceFinder(), FaceEmbedder()
    finder.load(copies=2)
    embedder.load()
    jpegs, images, faces = [], [], []
    for data in distinct_headshots(2 * args.n):  # keep the first n with a face
        pixels = decode_image(data, settings, settings.headshot_decode_min_side).pixels
        found = finder.find(pixels)
        if found and len(jpegs) < args.n:
            jpegs.append(data)
            images.append(pixels)
            faces.append(found[0])
    grays = [cv2.resize(cv2.cvtColor(p, cv2.COLOR_RGB2GRAY), (448, 448), interpolation=cv2.INTER_AREA) for p in images]

    def hog(i: int) -> object:
        detector = finder._borrow()
        try:
            return detector.run(grays[i], 0, -0.2)
        finally:
            finder._free.put(detector)

    jobs: dict[str, Callable[[int], object]] = {
        "dlib HOG scan": hog,
        "face finding": lambda i: finder.find(images[i]),
        "face embedding": lambda i: embedder.embed(images[i], faces[i].landmarks),
        "JPEG decode (Pillow)": lambda i: np.asarray(Image.open(io.BytesIO(jpegs[i])).convert("RGB")),
    }
    for name, job in jobs.items():
        serial, threaded = speedup(job, args.n)
        share = gil_free_share(job, args.n)
        print(f"{name:<22} GIL-free share {share:4.2f}  1 thread {serial:6.3f} s  2 threads {threaded:6.3f} s  "
              f"speed-up {serial / threaded:4.2f}x  load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
