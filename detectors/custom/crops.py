"""What an image classifier sees: the whole image, or the largest frontal face found by OpenCV's Haar
cascade (shipped inside opencv-python-headless), widened by a margin.

Caveats first: the Haar cascade is a simple frontal-face finder; a profile or a partly hidden face
is missed and the item abstains with ``no_face`` rather than being judged on the background.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.contract import Box, ImageItem, InvalidItemError
from detectors.custom.spec import Crop

NO_FACE = "no_face"
FACE_MARGIN = 0.25


@dataclass(frozen=True)
class Cropped:
    pixels: np.ndarray | None
    region: Box | None
    reason: str | None


class Cropper:
    def __init__(self, crop: Crop) -> None:
        self.crop = crop
        self._cascade: Any = None

    def load(self) -> None:
        if self.crop is Crop.FACE:
            import cv2

            self._cascade = cv2.CascadeClassifier(
                cv2.data.haarcascades + "haarcascade_frontalface_default.xml")  # type: ignore[attr-defined]

    def __call__(self, item: ImageItem) -> Cropped:
        pixels = item.pixels
        if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise InvalidItemError("invalid_image", "pixels must be an (H, W, 3) array")
        h, w = pixels.shape[:2]
        if self.crop is Crop.IMAGE:
            return Cropped(pixels, Box(0, 0, w, h), None)
        box = self._largest_face(pixels)
        if box is None:
            return Cropped(None, None, NO_FACE)
        return Cropped(pixels[box.y : box.y + box.h, box.x : box.x + box.w], box, None)

    def _largest_face(self, pixels: np.ndarray) -> Box | None:
        import cv2

        gray = cv2.cvtColor(np.ascontiguousarray(pixels, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
        faces = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
        if len(faces) == 0:
            return None
        x, y, fw, fh = max((tuple(int(v) for v in f) for f in faces), key=lambda f: f[2] * f[3])
        h, w = pixels.shape[:2]
        mx, my = int(fw * FACE_MARGIN), int(fh * FACE_MARGIN)
        x0, y0 = max(0, x - mx), max(0, y - my)
        return Box(x0, y0, min(w, x + fw + mx) - x0, min(h, y + fh + my) - y0)
