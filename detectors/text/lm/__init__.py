"""SmolLM2 likelihood features for the text detector (numpy service path, torch GPU feature path).

Caveats first: nothing here is wired into the shipped detector yet (phase 1: features and the GPU
extraction job). ``gguf`` reads the model file (own code, no ``gguf`` package); ``weights`` turns
it into float32 numpy arrays shared by ``numpy_model`` (service path: numpy only) and
``torch_model`` (feature extraction: imports torch inside); ``tokenizer`` rebuilds the byte-level
BPE with the ``tokenizers`` library; ``stats`` turns next-token logits into per-text features.
"""
