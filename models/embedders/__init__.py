"""Embedders: audio in, frame embeddings out. `base` holds the interface and the registry;
`musicnn/` and `openl3/` are the two ports (PyTorch, no TensorFlow)."""
