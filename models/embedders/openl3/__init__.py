"""OpenL3 audio embeddings (openl3 0.4.2) in PyTorch, without TensorFlow.

`network` (the conv net and the model with its front-end), `frontend` (mel front-ends), `weights`
(finding and converting the official Keras weights), `api` (openl3's own functions, so openl3 users
switch by changing an import) and `embedder` (the engine's embedder).
"""

from models.embedders.openl3.api import (
    get_audio_embedding,
    load_audio_embedding_model,
    load_audio_embedding_model_from_path,
    preprocess_audio,
)
from models.embedders.openl3.embedder import OpenL3Embedder
from models.embedders.openl3.frontend import OpenL3Error, OpenL3Warning
from models.embedders.openl3.network import OpenL3Model, OpenL3Net
from models.embedders.openl3.weights import OpenL3WeightsError

__all__ = [
    "OpenL3Embedder",
    "OpenL3Error",
    "OpenL3Model",
    "OpenL3Net",
    "OpenL3Warning",
    "OpenL3WeightsError",
    "get_audio_embedding",
    "load_audio_embedding_model",
    "load_audio_embedding_model_from_path",
    "preprocess_audio",
]
