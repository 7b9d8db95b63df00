"""OpenL3 through the whole product: `embed --embedder openl3` writes a table, the engine analyses with it.

Uses the seeded random weights of ../shared/golden/openl3 (the official ones cannot be downloaded
here): this checks the plumbing, not the quality of OpenL3 features.
"""

import numpy as np
import pytest
import soundfile as sf

from app.cli.main import main
from app.engine import Engine
from models.classifier.bundle import ModelCard, save_bundle
from models.classifier.parallel_cnn import ClassifierConfig, ParallelCNN
from models.embedders.base import build_embedder
from tests.helpers.data import shared_path, synth_music, wav_bytes
from utils.constants import GENRES
from utils.tables import load_table

pytestmark = [pytest.mark.shared, pytest.mark.slow]


@pytest.fixture(scope="module")
def weights():
    return shared_path("golden", "openl3", "fake_openl3_audio_mel256_music.h5")


def test_embed_command_writes_an_openl3_table(tmp_path, weights, capsys):
    for genre, seed in (("jazz", 1), ("rock", 2)):
        (tmp_path / "audio" / genre).mkdir(parents=True)
        sf.write(tmp_path / "audio" / genre / f"{genre}.00001.wav", synth_music(6.0, seed=seed), 22050)
    (tmp_path / "audio" / "rock" / "broken.wav").write_bytes(b"RIFF....nonsense")
    out = tmp_path / "table.npz"
    args = ["embed", str(tmp_path / "audio"), "--out", str(out), "--embedder", "openl3",
            "--openl3-input-repr", "mel128", "--openl3-hop", "0.5", "--openl3-weights", str(weights)]
    assert main(args) == 0
    table = load_table(out)
    assert table.dim == 512 and table.meta["embedder"]["name"] == "openl3"
    assert sorted(table.track_ids()) == ["jazz.00001", "rock.00001"]
    assert np.allclose(np.diff(table.frame_start_s[table.track_id == "jazz.00001"]), 0.5)
    assert "1 failed" in capsys.readouterr().out
    assert main(args) == 0  # resumable: the second run embeds nothing new
    assert "0 embedded, 2 already" in capsys.readouterr().out


def test_engine_analyses_with_an_openl3_bundle(tmp_path, weights):
    emb = build_embedder("openl3", input_repr="mel128", hop_seconds=0.5, weights=str(weights))
    card = ModelCard("openl3-test", list(GENRES), {"name": "openl3", "id": emb.id, "options": emb.options}, {})
    save_bundle(ParallelCNN(ClassifierConfig(input_dim=512, channels=8, hidden=16)), card, tmp_path)
    engine = Engine(checkpoint=tmp_path / "openl3-test", device="cpu", embedder=emb)
    a = engine.analyze(wav_bytes(synth_music(15.0, seed=3), 22050))
    assert a.slice_embeddings.shape == (3, 9, 512)  # 1 s frames every 0.5 s inside each 5 s slice
    assert len(a.windows) == 1 and a.model["embedder"] == emb.id
