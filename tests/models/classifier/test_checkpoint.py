"""Checkpoint bundles: round trip, sha256 guard, versions and CURRENT."""

import pytest
import torch

from models.classifier.bundle import (
    CheckpointError,
    ModelCard,
    current_version,
    list_versions,
    load_bundle,
    resolve_bundle,
    save_bundle,
    set_current,
)
from models.classifier.parallel_cnn import ClassifierConfig, ParallelCNN
from utils.constants import GENRES


def _card(version: str) -> ModelCard:
    return ModelCard(version=version, labels=list(GENRES), embedder={"name": "x", "id": "x/1"}, classifier={})


def test_round_trip_gives_identical_outputs(tmp_path):
    model = ParallelCNN(ClassifierConfig(input_dim=12, channels=16, hidden=32)).eval()
    model.temperature.fill_(1.7)
    folder = save_bundle(model, _card("v1"), tmp_path)
    loaded, card = load_bundle(folder)
    x = torch.randn(3, 3, 3, 12)
    assert torch.equal(model(x).logits, loaded(x).logits)
    assert card.classifier["channels"] == 16 and len(card.weights_sha256) == 64


def test_tampered_weights_are_refused(tmp_path):
    folder = save_bundle(ParallelCNN(ClassifierConfig(input_dim=4)), _card("v1"), tmp_path)
    data = bytearray((folder / "model.pt").read_bytes())
    data[-20] ^= 0xFF
    (folder / "model.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match"):
        load_bundle(folder)


def test_versions_current_and_resolve(tmp_path):
    with pytest.raises(CheckpointError, match="No trained model"):
        resolve_bundle(None, tmp_path)
    for v in ("a", "b"):
        save_bundle(ParallelCNN(ClassifierConfig(input_dim=4)), _card(v), tmp_path)
    assert set(list_versions(tmp_path)) == {"a", "b"}
    set_current("a", tmp_path)
    assert current_version(tmp_path) == "a"
    assert resolve_bundle(None, tmp_path) == tmp_path / "a"
    assert resolve_bundle("b", tmp_path) == tmp_path / "b"
    assert resolve_bundle(tmp_path / "b" / "model.pt", tmp_path) == tmp_path / "b"
    with pytest.raises(CheckpointError):
        set_current("nope", tmp_path)
    with pytest.raises(CheckpointError):
        resolve_bundle(tmp_path / "missing", tmp_path)


def test_sweep_removes_only_stale_staging_folders(tmp_path):
    """A hard-killed retrain's staging folder goes after hours; a live one, a bundle or a stray file stays."""
    import os
    import time

    from models.classifier.bundle import STALE_STAGING_S, staging_dir, sweep_staging

    stale, live = staging_dir(tmp_path, "v-r1"), staging_dir(tmp_path, "v-r2")
    for folder in (stale, live, tmp_path / "v"):
        folder.mkdir()
        (folder / "model.pt").write_bytes(b"x")
    (tmp_path / ".notes.partial").write_text("a file, not a folder")
    old = time.time() - STALE_STAGING_S - 60
    for path in (stale, stale / "model.pt", tmp_path / "v", tmp_path / "v" / "model.pt"):
        os.utime(path, (old, old))
    assert sweep_staging(tmp_path) == [".v-r1.partial"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.partial", ".v-r2.partial", "v"]


@pytest.mark.parametrize("content", [b"", b"\xff\x00random bytes" * 50, b"PK\x03\x04truncated zip"])
def test_damaged_weights_with_a_matching_hash_are_one_checkpoint_error(tmp_path, content):
    """An empty model.pt (card re-hashed) gave an EOFError traceback; random bytes 'do not fit ... utf-8 codec'."""
    from models.classifier.bundle import sha256_file, update_card

    folder = save_bundle(ParallelCNN(ClassifierConfig(input_dim=4)), _card("v1"), tmp_path)
    (folder / "model.pt").write_bytes(content)
    update_card(folder, lambda card: setattr(card, "weights_sha256", sha256_file(folder / "model.pt")))
    with pytest.raises(CheckpointError, match=r"The weights file .*model\.pt is damaged") as caught:
        load_bundle(folder)
    assert "do not fit" not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("content", "why"), [
    (b"../outside/obundle\n", "is not a version name"), (b"/abs/obundle", "is not a version name"),
    (b"..", "is not a version name"), (b"\xff\xfe", "is not UTF-8 text"), (b"", "is empty"),
    (b"gone\n", "there is no bundle named 'gone'"), (None, "it is a folder"),
])
def test_a_bad_current_is_logged_and_never_followed_out_of_the_root(tmp_path, caplog, content, why):
    """CURRENT = ../outside/obundle was followed; bad bytes were a codec error; a missing name fell back silently."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    save_bundle(ParallelCNN(ClassifierConfig(input_dim=4)), _card("obundle"), outside)
    save_bundle(ParallelCNN(ClassifierConfig(input_dim=4)), _card("a"), root)
    if content is None:
        (root / "CURRENT").mkdir()
    else:
        (root / "CURRENT").write_bytes(content.replace(b"/abs", str(tmp_path / "outside").encode()))
    with caplog.at_level("WARNING", logger="genre_lens.bundle"):
        assert current_version(root) == "a" and resolve_bundle(None, root) == root / "a"
        assert current_version(root, fallback=False) is None
    lines = [r.getMessage() for r in caplog.records]
    assert lines and all(line.startswith(f"ignoring {root / 'CURRENT'}: ") and why in line for line in lines)
    assert "using the newest bundle instead" in lines[0]
