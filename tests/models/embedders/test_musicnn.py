"""MSD-MusiCNN port: checkpoint reader, golden activations, audio front-end, published taggrams, embedder."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from models.embedders.base import EmbedderError, build_embedder
from models.embedders.musicnn.embedder import MusiCNNEmbedder
from models.embedders.musicnn.extractor import extractor
from models.embedders.musicnn.frontend import logmel
from models.embedders.musicnn.network import MSD_LABELS
from models.embedders.musicnn.tf_checkpoint import read_checkpoint
from models.embedders.musicnn.weights import checkpoint_prefix, load_msd_musicnn
from tests.helpers.data import shared_path

GOLDEN = ("golden", "musicnn")
REAL_CLIPS = ("blues.00000", "metal.00002", "pop.00005", "classical.00003", "reggae.00007")


@pytest.fixture(scope="module")
def ckpt_dir() -> Path:
    """The wheel's MSD_musicnn checkpoint directory; skip when the wheel is not installed."""
    try:
        return checkpoint_prefix()
    except EmbedderError as exc:
        pytest.skip(f"musicnn wheel not installed ({exc})")


@pytest.fixture(scope="module")
def model(ckpt_dir: Path) -> torch.nn.Module:
    return load_msd_musicnn("cpu")


@pytest.fixture(scope="module")
def embedder(ckpt_dir: Path) -> MusiCNNEmbedder:
    return MusiCNNEmbedder("cpu")


def _clip_path(track_id: str) -> Path:
    return shared_path("data", "gtzan_mini", track_id.split(".")[0], f"{track_id}.flac")


# ----------------------------------------------------------------------------------- checkpoint reader
@pytest.mark.shared
def test_checkpoint_has_every_mapped_variable_with_its_shape(ckpt_dir: Path) -> None:
    mapping = shared_path(*GOLDEN, "weight_mapping.txt").read_text()
    expected = {
        name: tuple(int(d) for d in dims.split(",") if d.strip())
        for name, dims in re.findall(r"->\s+(\S+)\s+\(([\d, ]+)\)", mapping)
    }
    assert len(expected) == 64
    tensors = read_checkpoint(str(ckpt_dir) + "/")
    assert {name: t.shape for name, t in tensors.items()} == expected
    assert all(t.dtype == np.float32 for t in tensors.values())


def test_checkpoint_data_crc_verifies(ckpt_dir: Path) -> None:
    tensors = read_checkpoint(str(ckpt_dir) + "/", verify_data=True)
    assert len(tensors) == 64 and not any("Adam" in name or "power" in name for name in tensors)


def _copy_checkpoint(ckpt_dir: Path, tmp_path: Path) -> tuple[str, bytearray]:
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(ckpt_dir / suffix, tmp_path / f"ckpt{suffix}")
    return str(tmp_path / "ckpt"), bytearray((tmp_path / "ckpt.index").read_bytes())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-7], "magic"),  # truncated: footer gone
        (lambda b: b[:20], "too short"),
        (lambda b: b[:100] + b"\x55" * 40 + b[140:], "crc32c|malformed|varint"),  # garbled data block
        (lambda b: b[:4867] + b"\x7f" * 30 + b[4897:], "outside|crc32c|varint|compressed"),  # garbled handles
    ],
)
def test_damaged_index_raises_value_error(ckpt_dir: Path, tmp_path: Path, damage, message: str) -> None:
    prefix, index = _copy_checkpoint(ckpt_dir, tmp_path)
    Path(prefix + ".index").write_bytes(bytes(damage(index)))
    with pytest.raises(ValueError, match=message):
        read_checkpoint(prefix)


def test_compressed_block_is_refused(ckpt_dir: Path, tmp_path: Path) -> None:
    prefix, index = _copy_checkpoint(ckpt_dir, tmp_path)
    index[4880 + 15] = 1  # compression byte after the index block (handle in the golden format notes)
    Path(prefix + ".index").write_bytes(bytes(index))
    with pytest.raises(ValueError, match="compressed"):
        read_checkpoint(prefix)


def test_truncated_data_file_is_refused(ckpt_dir: Path, tmp_path: Path) -> None:
    prefix, _ = _copy_checkpoint(ckpt_dir, tmp_path)
    data = Path(prefix + ".data-00000-of-00001")
    data.write_bytes(data.read_bytes()[:1_000_000])
    with pytest.raises(ValueError, match="do not fit"):
        read_checkpoint(prefix)


def test_missing_wheel_gives_actionable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(EmbedderError, match=r"pip install --no-deps musicnn==0\.1\.0"):
        checkpoint_prefix()


# -------------------------------------------------------------------------------------------- golden
@pytest.mark.shared
def test_network_reproduces_reference_activations(model: torch.nn.Module) -> None:
    patches = np.load(shared_path(*GOLDEN, "synthetic_inputs.npz"))["patches"]
    ref = np.load(shared_path(*GOLDEN, "msd_musicnn_reference_outputs.npz"))
    with torch.inference_mode():
        out = model.features(torch.from_numpy(patches))
    pairs = (("taggram", "taggram"), ("penultimate", "penultimate"), ("max_mean_pool", "maxmeanpool"))
    for ours, theirs in pairs:  # float32 rounding grows with the value (pooled features reach ~30), and the CPU's
        # kernels (AVX2 vs AVX-512) change the summation order: 1e-4 plus 1e-5 of the value, far below a port bug
        np.testing.assert_allclose(out[ours].numpy(), ref[f"synthetic_{theirs}"], rtol=1e-5, atol=1e-4, err_msg=ours)
    assert torch.equal(model(torch.from_numpy(patches)), out["taggram"])


@pytest.mark.shared
def test_logmel_matches_reference() -> None:
    audio, sr = sf.read(shared_path(*GOLDEN, "synthetic_10s_16k.wav"), dtype="float32")
    assert sr == 16000
    ref = np.load(shared_path(*GOLDEN, "synthetic_inputs.npz"))["logmel"]
    ours = logmel(audio)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    assert np.abs(ours - ref).max() <= 1e-4


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.parametrize("track_id", REAL_CLIPS)
def test_taggram_from_audio_matches_reference(ckpt_dir: Path, track_id: str) -> None:
    ref = np.load(shared_path(*GOLDEN, "msd_musicnn_reference_outputs.npz"))[f"{track_id}_taggram"]
    taggram, _ = extractor(_clip_path(track_id), "MSD_musicnn", input_overlap=1, extract_features=False)
    assert taggram.shape == ref.shape
    assert np.abs(taggram - ref).mean() <= 0.01
    assert np.corrcoef(taggram.ravel(), ref.ravel())[0, 1] >= 0.99


@pytest.mark.shared
@pytest.mark.slow
def test_published_taggrams_are_reproduced(embedder: MusiCNNEmbedder) -> None:
    """The shipped training data (made with the original package) is what this port computes."""
    folder = ("data", "gtzan_ff_msd_musicnn")
    wanted = set()
    for split in ("train", "test"):
        listing = shared_path(*folder, f"{split}_filtered.txt").read_text()
        wanted |= {Path(line).stem for line in listing.split()}
    published: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        data = np.load(shared_path(*folder, f"{split}.npz"))
        ids, taggram = data["track_id"], data["taggram"]
        for track_id in wanted.intersection(np.unique(ids)):
            published[track_id] = taggram[ids == track_id]
    clips = sorted(p for p in shared_path("data", "gtzan_mini").glob("*/*.flac") if p.stem in published)
    assert len(clips) == 44

    correlations = []
    for clip in clips:  # whole track as one slice: patches every 61 frames, one batched forward
        audio, _ = librosa.load(clip, sr=16000)
        ours = embedder.embed(audio[None])[0]
        theirs = published[clip.stem]
        n = min(len(ours), len(theirs))
        correlations.append(np.corrcoef(ours[:n].ravel(), theirs[:n].ravel())[0, 1])
    assert np.mean(correlations) >= 0.97, f"mean per-track Pearson {np.mean(correlations):.4f}"


def test_sliding_features_equal_cut_out_patches(model: torch.nn.Module) -> None:
    """Sharing the timbral convs between overlapping patches, and chunking, must not change a number."""
    from models.embedders.musicnn.embedder import _run_sliding

    rng = np.random.default_rng(2)
    mel = torch.from_numpy(logmel((0.1 * rng.standard_normal(8 * 16000)).astype(np.float32)))[None]

    def cut(m: torch.Tensor) -> torch.Tensor:
        return m.unfold(1, 187, 61).transpose(2, 3).reshape(-1, 187, 96)

    with torch.inference_mode():
        expected = model.features(cut(mel))
        shared = model.sliding_features(mel)
        flipped = model(cut(mel.flip(1)))
    for key, value in expected.items():
        torch.testing.assert_close(shared[key], value, atol=1e-5, rtol=1e-5, msg=key)
    # runs of 4 + 2 patches within one log-mel; different batch shapes pick different conv kernels,
    # hence float32 rounding (cnn3 values are ~10)
    chunked = _run_sliding(model, mel, ("taggram", "cnn3"), max_patches=4)
    torch.testing.assert_close(chunked["taggram"], expected["taggram"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunked["cnn3"], expected["cnn3"], atol=5e-4, rtol=1e-4)
    two = torch.cat([mel, mel.flip(1)])  # one slice per forward
    separate = _run_sliding(model, two, ("taggram",), max_patches=6)["taggram"]
    torch.testing.assert_close(separate[:6], expected["taggram"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(separate[6:], flipped, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------ embedder
def test_embedder_shapes_and_frame_geometry(embedder: MusiCNNEmbedder) -> None:
    slices = np.random.default_rng(0).standard_normal((2, 80000)).astype(np.float32) * 0.1
    out = embedder.embed(slices)
    assert out.shape == (2, 3, 50) and out.dtype == np.float32
    assert ((out >= 0) & (out <= 1)).all()
    assert embedder.n_frames(80000) == 3 and embedder.dim == 50
    assert embedder.id == "musicnn-msd/taggram/v1" and embedder.sample_rate == 16000
    assert embedder.frame_seconds == pytest.approx(187 * 256 / 16000)
    assert embedder.hop_seconds == pytest.approx(61 * 256 / 16000)
    np.testing.assert_allclose(embedder.frame_starts(80000), [0.0, 0.976, 1.952])
    # each slice is embedded on its own: batching must not change a row
    np.testing.assert_allclose(embedder.embed(slices[1:]), out[1:], atol=1e-5)


@pytest.mark.parametrize("n_samples", [8000, 47616, 63232, 63231, 95000])
def test_n_frames_matches_embed(embedder: MusiCNNEmbedder, n_samples: int) -> None:
    out = embedder.embed(np.zeros((1, n_samples), dtype=np.float32))
    assert out.shape[1] == embedder.n_frames(n_samples) >= 1


def test_penultimate_output_and_registry(ckpt_dir: Path) -> None:
    emb = build_embedder("musicnn-msd", output="penultimate")
    slices = np.random.default_rng(1).standard_normal((2, 80000)).astype(np.float32) * 0.1
    out = emb.embed(slices)
    assert out.shape == (2, 3, 200) and emb.dim == 200
    assert emb.id == "musicnn-msd/penultimate/v1" and emb.settings["output"] == "penultimate"
    assert (out >= 0).all()  # relu output, before the batch norm
    with pytest.raises(EmbedderError, match="taggram"):
        build_embedder("musicnn-msd", output="logits")


def test_extractor_is_a_drop_in(ckpt_dir: Path, music_wav: Path) -> None:
    taggram, tags, features = extractor(str(music_wav), model="MSD_musicnn")
    n = (1 + 20 * 16000 // 256 - 187) // 187 + 1  # back-to-back 187-frame patches over 20 s
    assert taggram.shape == (n, 50)
    assert tags == list(MSD_LABELS)
    assert features["max_pool"].shape == features["mean_pool"].shape == (n, 753)
    assert features["penultimate"].shape == (n, 200)
    assert features["timbral"].shape == (n * 187, 408) and features["cnn3"].shape == (n * 187, 64)
    assert {"temporal", "cnn1", "cnn2"} <= features.keys()
    short, _ = extractor(str(music_wav), "MSD_musicnn", input_overlap=1, extract_features=False)
    assert short.shape == ((1 + 20 * 16000 // 256 - 187) // 61 + 1, 50)
    np.testing.assert_allclose(short[0], taggram[0], atol=1e-6)  # both start at frame 0
    with pytest.raises(ValueError, match="MSD_musicnn"):
        extractor(str(music_wav), model="MTT_musicnn")


def test_labels_match_the_wheel(ckpt_dir: Path) -> None:
    configuration = pytest.importorskip("musicnn.configuration")
    assert list(MSD_LABELS) == configuration.MSD_LABELS
