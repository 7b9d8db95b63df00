"""Engines with random weights, for tests that need inference but not a trained model."""

from __future__ import annotations

import pytest
import torch

from app.engine import Engine
from models.classifier.bundle import ModelCard, save_bundle
from models.classifier.parallel_cnn import ClassifierConfig, ParallelCNN
from models.embedders.base import build_embedder
from utils.constants import GENRES


@pytest.fixture(scope="module")
def random_engine(tmp_path_factory):
    pytest.importorskip("musicnn", reason="needs the musicnn wheel's weights (pip install --no-deps musicnn==0.1.0)")
    root = tmp_path_factory.mktemp("bundles")
    embedder = build_embedder("musicnn-msd")
    torch.manual_seed(0)
    card = ModelCard(version="random-test", labels=list(GENRES), classifier={},
                     embedder={"name": "musicnn-msd", "id": embedder.id, "options": {"output": "taggram"}})
    save_bundle(ParallelCNN(ClassifierConfig(input_dim=embedder.dim)), card, root)
    return Engine(checkpoint=root / "random-test", device="cpu", embedder=embedder)
