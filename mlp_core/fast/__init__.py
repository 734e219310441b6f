"""The speed path: the training step captured as a CUDA graph."""
