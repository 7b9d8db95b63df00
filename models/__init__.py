"""PyTorch models: embedders (MSD-MusiCNN, OpenL3), the genre classifier and checkpoint bundles."""
