"""Fine-tuned MiniLM-L6 classifier of text windows (training side: ``prepare``, ``gpu_train``, ``export``;
serving side: ``runtime``). ``torch_bert`` imports torch alone so the GPU run can load it as a plain file."""
