"""The `pool` output of MSD-MusiCNN: the published pooled features, rebuilt from audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.cli.main import main
from models.embedders.musicnn.pool import POOL_DIM, patch_pool_vectors, pool_blocks
from tests.helpers.data import shared_path, synth_music
from utils.tables import PUBLISHED_POOL_META, TableError, load_table


def published_recipe(mean_pool: np.ndarray, max_pool: np.ndarray) -> np.ndarray:
    """The shared README's steps, written out independently: concat, zero-pad to even, 2 x 2 block mean."""
    feats = np.concatenate([mean_pool, max_pool], axis=1)  # (P, 1506)
    if len(feats) % 2:
        feats = np.concatenate([feats, np.zeros((1, feats.shape[1]), feats.dtype)])
    p, c = feats.shape
    blocks = feats.reshape(p // 2, 2, c // 2, 2).mean(axis=(1, 3))
    return blocks[: len(mean_pool) // 2]  # the half-empty block of an odd count is dropped


@pytest.mark.parametrize("patches", [2, 9, 10])
def test_per_patch_pair_mean_then_patch_pairs_is_the_published_recipe(patches: int) -> None:
    rng = np.random.default_rng(patches)
    mean_pool, max_pool = rng.random((patches, 753), np.float32), rng.random((patches, 753), np.float32)
    ours = pool_blocks(patch_pool_vectors(torch.from_numpy(mean_pool), torch.from_numpy(max_pool)).numpy())
    assert ours.shape == (patches // 2, POOL_DIM)
    np.testing.assert_allclose(ours, published_recipe(mean_pool, max_pool), rtol=1e-6)


def test_wrong_pool_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="753"):
        patch_pool_vectors(torch.zeros(3, 200), torch.zeros(3, 200))


@pytest.fixture(scope="module")
def embedder():
    pytest.importorskip("musicnn", reason="needs the musicnn wheel's weights (pip install --no-deps musicnn==0.1.0)")
    from models.embedders.base import build_embedder

    return build_embedder("musicnn-msd", output="pool")


def test_pool_embedder_slices_and_track_grid(embedder) -> None:
    assert embedder.id == "musicnn-msd/pool/v1" and embedder.dim == 753
    y = synth_music(5.0, sr=16000)
    assert embedder.embed(np.stack([y, y])).shape == (2, 3, 753)  # three 61-frame-hop patches per 5 s slice
    vectors, starts = embedder.track_frames(synth_music(30.0, sr=16000))
    assert vectors.shape == (5, 753)
    np.testing.assert_allclose(starts, np.arange(5) * 5.984, atol=1e-6)
    assert embedder.track_frame_seconds == pytest.approx(5.984)


def test_published_pooled_rows_are_reproduced_from_audio(embedder) -> None:
    """The README of gtzan_musicnn_pool states a per-track correlation of 0.998-0.9997 (median 0.9996)."""
    from utils.audio import load_audio

    mini = shared_path("data", "gtzan_mini")
    published = {}
    for part in ("train", "valid"):  # never the test split: this checks features, but stays out of it anyway
        published.update({t.track_id: t for t in load_table(shared_path("data", "gtzan_musicnn_pool",
                                                                        f"{part}.npz")).tracks()})
    clips = [p for p in sorted(mini.glob("*/*.flac")) if p.stem in published][::6]  # one in six: ~15 clips
    assert len(clips) >= 10
    cors = []
    for clip in clips:
        vectors, starts = embedder.track_frames(load_audio(clip, 16000, pad_to_s=None).samples)
        ref = published[clip.stem]
        assert vectors.shape == ref.vectors.shape
        np.testing.assert_allclose(starts, ref.frame_start_s, atol=1e-3)
        cors.append(np.corrcoef(vectors.ravel(), ref.vectors.ravel())[0, 1])
    assert np.median(cors) >= 0.999 and min(cors) >= 0.997


def test_embed_command_writes_a_table_on_the_published_grid(embedder, tmp_path: Path) -> None:
    mini = shared_path("data", "gtzan_mini")
    published = load_table(shared_path("data", "gtzan_musicnn_pool", "valid.npz"))
    wanted = set(published.track_ids())
    source = tmp_path / "audio"
    for clip in [p for p in sorted(mini.glob("*/*.flac")) if p.stem in wanted][:2]:
        (source / clip.parent.name).mkdir(parents=True, exist_ok=True)
        (source / clip.parent.name / clip.name).symlink_to(clip)
    out = tmp_path / "pool.npz"
    assert main(["embed", str(source), "--musicnn-output", "pool", "--out", str(out), "--device", "cpu"]) == 0
    table = load_table(out)
    assert table.embedder_id == "musicnn-msd/pool/v1" and table.dim == 753
    assert table.frame_seconds == pytest.approx(PUBLISHED_POOL_META["frame_seconds"])
    for track in table.tracks():
        ref = next(t for t in published.subset({track.track_id}).tracks())
        assert track.vectors.shape == ref.vectors.shape and track.genre == ref.genre
        assert np.corrcoef(track.vectors.ravel(), ref.vectors.ravel())[0, 1] > 0.997


def test_tables_without_meta_are_told_apart_by_dimension(tmp_path: Path) -> None:
    def write(dim: int) -> Path:
        path = tmp_path / f"t{dim}.npz"
        np.savez(path, vectors=np.zeros((5, dim), np.float32), track_id=np.array(["blues.00001"] * 5),
                 genre=np.array(["blues"] * 5), frame_start_s=(np.arange(5) * 5.984).astype(np.float32))
        return path

    assert load_table(write(753)).embedder_id == "musicnn-msd/pool/v1"
    assert load_table(write(50)).embedder_id == "musicnn-msd/taggram/v1"
    with pytest.raises(TableError, match="17-dimensional"):
        load_table(write(17))


def test_a_table_whose_vectors_contradict_its_meta_is_refused(tmp_path: Path) -> None:
    import json

    path = tmp_path / "lying.npz"
    np.savez(path, vectors=np.zeros((5, 50), np.float32), track_id=np.array(["blues.00001"] * 5),
             genre=np.array(["blues"] * 5), frame_start_s=np.zeros(5, np.float32),
             meta=json.dumps(PUBLISHED_POOL_META))
    with pytest.raises(TableError, match="50-dimensional vectors, but its embedder musicnn-msd/pool/v1 makes 753"):
        load_table(path)
