"""MSD MusiCNN in PyTorch: front-end, network, weights from the musicnn wheel's TF checkpoint,
the engine's embedder, the pooled-feature output, and a drop-in `extractor`."""
