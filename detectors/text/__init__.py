"""AI-text detector: hashed n-gram + stylometric linear model served with ONNX Runtime.

Inference (``detector``, ``features``, ``normalise``, ``evaluation``) needs numpy and onnxruntime
only; ``training``, ``onnx_graph``, ``report`` and ``card`` import scikit-learn / onnx inside.
"""

from detectors.text.detector import PreparedText, TextDetector, build_text_detector

__all__ = ["PreparedText", "TextDetector", "build_text_detector"]
