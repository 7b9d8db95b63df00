"""The genre classifier: the parallel-CNN and pooled heads, ensembles, window prediction, saliency,
and the bundle format (weights + model card) they are shipped in."""
