"""MSD MusiCNN in PyTorch: front-end, network, weights from the musicnn wheel's TF checkpoint,
the engine's embedder, the pooled-feature output, a drop-in `extractor`, and an opt-in int8 CPU path
(`int8`, calibrated by `int8_calibrate`)."""
