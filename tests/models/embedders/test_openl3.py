"""OpenL3 port: framing, front-ends, network, openl3-compatible API and the engine embedder.

The golden checks run the real openl3 0.4.2 outputs in ../shared/golden/openl3 (README there).
Every golden file is checked end to end with the float32 network (float64 front-end); a subset is
checked with the float64 network at atol 1e-5, because that network is ~5x slower on CPU.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from models.embedders.base import EmbedderError, build_embedder
from models.embedders.openl3 import OpenL3Error, OpenL3Warning
from models.embedders.openl3.api import get_audio_embedding, load_audio_embedding_model_from_path, preprocess_audio
from models.embedders.openl3.embedder import OpenL3Embedder
from models.embedders.openl3.frontend import (
    LibrosaFrontend,
    build_frontend,
    frame_audio,
    n_frames_for,
    prepare_audio,
    resample_kaiser_best,
)
from models.embedders.openl3.network import OpenL3Model, max_pool_same
from models.embedders.openl3.weights import LoadedWeights, convert_h5, keras_to_state_dict
from tests.helpers.data import shared_path
from tests.helpers.openl3 import random_layers, write_keras_h5

EMB_FILES = (
    [
        f"emb_{inp}_{rep}_{fe}_hop{hop}.npz"
        for inp, hop in [
            ("chirp44k", 0.1),
            ("synth22k_mono", 0.1),
            ("synth22k_mono", 0.5),
            ("synth48k_stereo", 0.5),
            ("short48k_0.3s", 0.1),
        ]
        for rep in ("mel256", "mel128")
        for fe in ("kapre", "librosa")
    ]
    + [f"emb_chirp44k_{rep}_librosa-reflectpad_hop0.1.npz" for rep in ("mel256", "mel128")]
    + [f"emb6144_chirp44k_{rep}_librosa_hop0.1.npz" for rep in ("mel256", "mel128")]
)
# kapre goldens of band-limited input carry TF's float32 FFT noise (README §6): only loose checks.
NOISY_KAPRE = ("chirp44k", "synth22k")


def golden(name: str) -> Path:
    return shared_path("golden", "openl3", name)


def load_golden(name: str) -> dict[str, object]:
    with np.load(golden(name)) as data:
        return {k: data[k] if data[k].ndim else data[k].item() for k in data.files}


@pytest.fixture(scope="module")
def fake_weights() -> LoadedWeights:
    return convert_h5(golden("fake_openl3_audio_mel256_music.h5"))


@pytest.fixture(scope="module")
def random_weights() -> LoadedWeights:
    return LoadedWeights(
        keras_to_state_dict([(f"l{i}", a) for i, a in enumerate(random_layers(3))]), "0" * 64, "random"
    )


class CachingModel(OpenL3Model):
    """Runs each distinct spectrogram through the network once: hop-0.5 frames repeat hop-0.1 ones
    and the 6144 goldens share the 512 ones' network output. Keeps the golden suite affordable."""

    def __init__(self, cache: dict[str, torch.Tensor], *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.cache = cache

    def unpooled(self, spec: torch.Tensor) -> torch.Tensor:
        keys = [hashlib.sha1(s.cpu().numpy().tobytes()).hexdigest() for s in spec]
        todo = sorted({keys.index(k) for k in keys if k not in self.cache})
        if todo:
            for i, out in zip(todo, super().unpooled(spec[todo]), strict=True):
                self.cache[keys[i]] = out
        return torch.stack([self.cache[k] for k in keys])


@pytest.fixture(scope="module")
def golden_models(fake_weights: LoadedWeights) -> dict[tuple[str, str, str, int], OpenL3Model]:
    caches: dict[tuple[str, str, str], dict[str, torch.Tensor]] = {}
    models = {}
    for rep in ("mel256", "mel128"):
        for fe, pad in (("kapre", "constant"), ("librosa", "constant"), ("librosa", "reflect")):
            cache = caches.setdefault((rep, fe, pad), {})
            for size in (512, 6144):
                model = CachingModel(cache, rep, size, fe, pad_mode=pad).load_weights(fake_weights)
                models[rep, fe, pad, size] = model
    return models


def read_wav(name: str) -> tuple[np.ndarray, int]:
    audio, sr = sf.read(golden(name))
    return audio, sr


# ------------------------------------------------------------------ framing and resampling (no goldens)


def test_frame_counts_match_openl3_table() -> None:
    # README §4: (samples at 48 kHz after resampling, hop) → frames, with centring.
    assert n_frames_for(96000, 4800, center=True) == 16
    assert n_frames_for(240000, 4800, center=True) == 46
    assert n_frames_for(240000, 24000, center=True) == 10
    assert n_frames_for(14400, 4800, center=True) == 1
    assert n_frames_for(48000, 4800, center=False) == 1
    assert n_frames_for(48001, 4800, center=False) == 2
    with pytest.warns(OpenL3Warning, match="shorter than window size"):
        padded = prepare_audio(np.ones(14400), 48000, 0.1, True)
    assert padded.shape == (48000,) and np.all(padded[:24000] == 0) and np.all(padded[24000:38400] == 1)
    frames = frame_audio(prepare_audio(np.arange(1, 60002, dtype=float), 48000, 0.25, False), 12000)
    assert frames.shape == (3, 48000) and frames[1, 0] == 12001 and frames[2, 36000] == 60001
    assert np.all(frames[2, 36001:] == 0)


def test_resampler_is_band_limited_and_accurate() -> None:
    sr = 22050
    t = np.arange(sr) / sr
    y = resample_kaiser_best(np.sin(2 * np.pi * 1000 * t), sr, 48000)
    assert y.shape == (48000,)
    t48 = np.arange(48000) / 48000
    np.testing.assert_allclose(y[2000:-2000], np.sin(2 * np.pi * 1000 * t48[2000:-2000]), atol=1e-4)
    down = resample_kaiser_best(np.sin(2 * np.pi * 1000 * np.arange(96000) / 96000), 96000, 48000)
    np.testing.assert_allclose(down[2000:-2000], np.sin(2 * np.pi * 1000 * t48[2000:-2000]), atol=1e-4)


def _resampy_022_loop(x: np.ndarray, sr: float, sr_new: float) -> np.ndarray:
    """resampy 0.2.2's per-sample loop in plain Python: the reference for up- and down-sampling."""
    from models.embedders.openl3.frontend import _kaiser_best_table

    ratio = sr_new / sr
    win = _kaiser_best_table() * min(ratio, 1.0)
    delta = np.append(np.diff(win), 0.0)
    scale, table = min(1.0, ratio), 512
    step, y, t_reg = int(scale * table), np.zeros(int(len(x) * ratio)), 0.0
    for t in range(len(y)):
        n = int(t_reg)
        frac = scale * (t_reg - n)
        for wing, taps, first, direction in ((frac, n + 1, n, -1), (scale - frac, len(x) - n - 1, n + 1, 1)):
            offset = int(wing * table)
            eta = wing * table - offset
            for i in range(min(taps, (len(win) - offset) // step)):
                y[t] += (win[offset + i * step] + eta * delta[offset + i * step]) * x[first + direction * i]
        t_reg += 1.0 / ratio
    return y


@pytest.mark.parametrize("sr", [8000, 44100, 96000])
def test_resampler_equals_resampy_022_loop(sr: int) -> None:
    x = np.random.default_rng(sr).standard_normal(sr // 400)
    np.testing.assert_allclose(resample_kaiser_best(x, sr, 48000), _resampy_022_loop(x, sr, 48000), atol=1e-13)


def test_librosa_frontend_matches_librosa_both_pad_modes() -> None:
    frame = np.random.default_rng(0).standard_normal(48000) * np.hanning(48000)
    for pad_mode in ("constant", "reflect"):
        ref = librosa.feature.melspectrogram(
            y=frame, sr=48000, n_mels=128, n_fft=2048, hop_length=242, center=True, power=1.0, pad_mode=pad_mode
        )
        ref = librosa.power_to_db(ref, ref=1.0, amin=1e-10, top_db=80.0)
        ref -= ref.max()
        ours = LibrosaFrontend(128, pad_mode=pad_mode).spectrogram(torch.from_numpy(frame[None]))
        np.testing.assert_allclose(ours[0, 0].numpy(), ref, atol=1e-6)


def test_pooling_sizes_and_hwc_flatten_order() -> None:
    model = OpenL3Model("mel256", 6144)
    unpooled = torch.randn(2, 512, 32, 24)
    big = model.pool(unpooled).reshape(2, 4, 3, 512)
    np.testing.assert_array_equal(big[:, 1, 2, 7], unpooled[:, 7, 8:16, 16:24].amax(dim=(1, 2)))
    np.testing.assert_array_equal(model.pool(unpooled, 512), unpooled.amax(dim=(2, 3)))
    assert OpenL3Model("mel128", 6144).pool(torch.randn(1, 512, 16, 24)).shape == (1, 6144)
    odd = max_pool_same(torch.arange(25.0).reshape(1, 1, 5, 5), (2, 2))  # Keras pads bottom/right
    np.testing.assert_array_equal(odd[0, 0].numpy(), [[6, 8, 9], [16, 18, 19], [21, 23, 24]])


# ------------------------------------------------------------------ openl3 API behaviour


def test_openl3_input_validation() -> None:
    model = OpenL3Model("mel128", 512)
    ok = np.zeros(48000)
    bad_calls = [
        ({"audio": np.array([]), "sr": 48000}, "empty audio"),
        ({"audio": np.ones((10, 2, 2)), "sr": 48000}, "1D or 2D"),
        ({"audio": ok + 1, "sr": 0}, "Invalid sample rate"),
        ({"audio": ok + 1, "sr": "48000"}, "sr must be type"),
        ({"audio": ok + 1, "sr": 48000, "hop_size": 0}, "Invalid hop size"),
        ({"audio": ok + 1, "sr": 48000, "center": "yes"}, "Invalid center"),
        ({"audio": "x.wav", "sr": 48000}, "audio must be type"),
        ({"audio": [ok + 1, ok + 1], "sr": [48000]}, "Mismatch between number"),
        ({"audio": ok + 1, "sr": 48000, "content_type": "speech"}, "Invalid content type"),
        ({"audio": ok + 1, "sr": 48000, "embedding_size": 128}, "Invalid embedding size"),
        ({"audio": ok + 1, "sr": 48000, "verbose": 2}, "Invalid verbosity"),
        ({"audio": ok + 1, "sr": 48000, "batch_size": 0}, "Invalid batch size"),
        ({"audio": ok + 1, "sr": 48000, "frontend": "essentia"}, "Invalid frontend"),
        ({"audio": ok + 1, "sr": 48000, "input_repr": "linear", "model": None}, "not supported"),
        ({"audio": ok + 1, "sr": 48000, "frontend": "librosa"}, 'built for the "kapre"'),
        ({"audio": ok + 1, "sr": 48000, "model": object()}, "Invalid model"),
    ]
    for kwargs, message in bad_calls:
        kwargs.setdefault("model", model)
        kwargs.setdefault("verbose", False)
        with pytest.raises(OpenL3Error, match=message):
            get_audio_embedding(**kwargs)
    with pytest.raises(OpenL3Error, match="does not match"):
        get_audio_embedding(ok + 1, 48000, OpenL3Model("mel128", 512, "librosa"), "mel256", frontend="librosa")
    with pytest.warns(OpenL3Warning, match="all zeros"):
        prepare_audio(ok, 48000)


@pytest.mark.filterwarnings("ignore::models.embedders.openl3.frontend.OpenL3Warning")
def test_api_shapes_lists_and_timestamps(random_weights: LoadedWeights) -> None:
    model = OpenL3Model("mel128", 6144).load_weights(random_weights)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(40000) * 0.1, rng.standard_normal((60000, 2)) * 0.1
    embs, stamps = get_audio_embedding([a, b], [48000, 48000], model=model, hop_size=0.5, verbose=False, batch_size=2)
    assert [e.shape for e in embs] == [(2, 6144), (3, 6144)] and embs[0].dtype == np.float32
    np.testing.assert_array_equal(stamps[1], [0.0, 0.5, 1.0])
    single, ts = get_audio_embedding(b, 48000, model=model, hop_size=0.5, verbose=False)
    np.testing.assert_allclose(single, embs[1], atol=1e-4)
    assert isinstance(single, np.ndarray) and ts.shape == (3,)
    spec = preprocess_audio(a, 48000, hop_size=0.5, input_repr="mel128")
    assert spec.shape == (2, 128, 199, 1)
    assert preprocess_audio(a, 48000, hop_size=0.5).shape == (2, 1, 48000)


# ------------------------------------------------------------------ engine embedder


def test_embedder_frames_start_at_slice_start(tmp_path: Path, random_weights: LoadedWeights) -> None:
    emb = OpenL3Embedder(input_repr="mel128", hop_seconds=0.5, weights=random_weights)
    assert (emb.sample_rate, emb.frame_seconds, emb.dim, emb.hop_seconds) == (48000, 1.0, 512, 0.5)
    assert [emb.n_frames(n) for n in (1000, 48000, 71999, 72000, 240000)] == [1, 1, 1, 2, 9]
    slices = (np.random.default_rng(2).standard_normal((2, 80000)) * 0.1).astype(np.float32)
    out = emb.embed(slices)
    assert out.shape == (2, 2, 512) and out.dtype == np.float32
    direct = emb.model.embed_frames(slices[1, 24000:72000][None])  # frame 1 of slice 1: [0.5 s, 1.5 s)
    np.testing.assert_allclose(out[1, 1], direct[0], atol=1e-4)
    np.testing.assert_array_equal(emb.frame_starts(80000), [0.0, 0.5])
    short = emb.embed(slices[:1, :30000])  # < 1 s: zero-padded to one frame, as openl3 does
    np.testing.assert_allclose(
        short[0], emb.model.embed_frames(np.pad(slices[:1, :30000], ((0, 0), (0, 18000)))), atol=1e-4
    )
    assert emb.id == "openl3-mel128-music-512-kapre-hop0.5-w0000000000"
    assert emb.settings["input_repr"] == "mel128"
    assert emb.options == {
        "input_repr": "mel128",
        "content_type": "music",
        "embedding_size": 512,
        "hop_seconds": 0.5,
        "frontend": "kapre",
    }
    assert emb.embed(np.zeros((0, 80000), np.float32)).shape == (0, 2, 512)


def test_registry_builds_from_file_and_reports_missing_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_keras_h5(tmp_path / "openl3_audio_mel128_music.h5", random_layers(4))
    emb = build_embedder("openl3", input_repr="mel128", weights=str(path), hop_seconds=0.25, frontend="librosa")
    assert isinstance(emb, OpenL3Embedder) and emb.id.startswith("openl3-mel128-music-512-librosa-hop0.25-w")
    monkeypatch.setenv("GENRE_LENS_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("GENRE_LENS_OPENL3_URL", "http://127.0.0.1:9/")
    monkeypatch.delenv("GENRE_LENS_OPENL3_WEIGHTS", raising=False)
    with pytest.raises(EmbedderError, match=r"openl3_audio_mel256_music\.h5 not found"):
        build_embedder("openl3")
    with pytest.raises(EmbedderError, match="Invalid input representation"):
        build_embedder("openl3", input_repr="mel512")


# ------------------------------------------------------------------ goldens: front-end and network alone


@pytest.mark.shared
def test_resampling_and_framing_match_golden() -> None:
    ref = np.load(golden("frontend_chirp44k_audio48k_hop0.1.npz"))
    audio, sr = read_wav("in_chirp_44k.wav")
    np.testing.assert_allclose(resample_kaiser_best(audio, sr, 48000), ref["audio_48k"], rtol=0, atol=1e-12)
    frames = preprocess_audio(audio, sr, hop_size=0.1)
    assert frames.shape[0] == ref["n_frames_total"] == 16
    np.testing.assert_array_equal(frames[:3].astype(np.float32), ref["frames_48k_first3"])


@pytest.mark.shared
@pytest.mark.parametrize("rep", ["mel256", "mel128"])
def test_frontends_match_golden(rep: str) -> None:
    ref = np.load(golden(f"frontend_chirp44k_{rep}_hop0.1_first3.npz"))
    frames = torch.from_numpy(np.load(golden("frontend_chirp44k_audio48k_hop0.1.npz"))["frames_48k_first3"])
    kapre = build_frontend("kapre", rep)(frames)[..., None].squeeze(1).numpy()
    np.testing.assert_allclose(kapre, ref["spec_kapre_f64ref"], rtol=0, atol=1e-6)
    loud = ref["spec_kapre"] > -20  # TF's float32 kapre agrees only well above the noise floor
    np.testing.assert_allclose(kapre[loud], ref["spec_kapre"][loud], rtol=0, atol=1e-4)
    audio, sr = read_wav("in_chirp_44k.wav")
    spec = preprocess_audio(audio, sr, hop_size=0.1, input_repr=rep)[:3]
    np.testing.assert_allclose(spec, ref["spec_librosa"], rtol=0, atol=1e-6)


@pytest.mark.shared
@pytest.mark.parametrize("rep", ["mel256", "mel128"])
def test_network_alone_matches_golden(rep: str, fake_weights: LoadedWeights) -> None:
    ref = np.load(golden(f"frontend_chirp44k_{rep}_hop0.1_first3.npz"))
    model = OpenL3Model(rep, 512).load_weights(fake_weights)
    spec = torch.from_numpy(ref["spec_kapre"]).permute(0, 3, 1, 2)  # NHWC → NCHW
    with torch.inference_mode():
        bn0 = model.net.bn0(spec[:1])
        unpooled = model.unpooled(spec)
    np.testing.assert_allclose(bn0.permute(0, 2, 3, 1).numpy(), ref["bn0_out_frame0"], atol=1e-4)
    np.testing.assert_allclose(unpooled[:1].permute(0, 2, 3, 1).numpy(), ref["unpooled_frame0"], atol=1e-3)
    emb = load_golden(f"emb_chirp44k_{rep}_kapre_hop0.1.npz")["embedding"]
    np.testing.assert_allclose(model.pool(unpooled).numpy(), emb[:3], atol=1e-3)


# ------------------------------------------------------------------ goldens: whole pipeline


@pytest.mark.shared
@pytest.mark.parametrize("name", EMB_FILES)
def test_golden_embeddings_float32_network(name: str, golden_models: dict) -> None:
    ref = load_golden(name)
    pad = "reflect" if "reflectpad" in name else "constant"
    model = golden_models[ref["input_repr"], ref["frontend"], pad, ref["embedding_size"]]
    audio, sr = read_wav(ref["input_wav"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OpenL3Warning)
        emb, ts = get_audio_embedding(
            audio,
            sr,
            model=model,
            input_repr=ref["input_repr"],
            embedding_size=ref["embedding_size"],
            hop_size=ref["hop_size"],
            frontend=ref["frontend"],
            verbose=False,
        )
    assert emb.shape == ref["embedding"].shape and emb.dtype == np.float32
    np.testing.assert_array_equal(ts, ref["timestamps"])
    if "embedding_f64ref" in ref:
        np.testing.assert_allclose(emb, ref["embedding_f64ref"], rtol=0, atol=1e-3)
    diff = np.abs(emb - ref["embedding"])
    if ref["frontend"] == "kapre" and name.split("_")[1].startswith(NOISY_KAPRE):
        assert diff.max() <= 2.0 and diff.mean() <= 0.2
    else:
        assert diff.max() <= 1e-3
    if ref["embedding_size"] == 6144:  # the max over the 4 x 3 (H, W) cells is the 512-d embedding
        small = load_golden(name.replace("emb6144", "emb"))["embedding"]
        np.testing.assert_allclose(emb.reshape(-1, 12, 512).max(axis=1), small, atol=1e-3)


F64_CASES = [  # (golden, frames checked or None for the whole file)
    ("emb_short48k_0.3s_mel256_kapre_hop0.1.npz", None),
    ("emb_short48k_0.3s_mel128_kapre_hop0.1.npz", None),
    ("emb_short48k_0.3s_mel256_librosa_hop0.1.npz", None),
    ("emb_short48k_0.3s_mel128_librosa_hop0.1.npz", None),
    ("emb_chirp44k_mel256_kapre_hop0.1.npz", [0, 9]),
    ("emb_chirp44k_mel128_kapre_hop0.1.npz", [3, 15]),
    ("emb_synth22k_mono_mel128_kapre_hop0.1.npz", [45]),
    ("emb_chirp44k_mel128_librosa-reflectpad_hop0.1.npz", [7]),
]


@pytest.mark.shared
@pytest.mark.parametrize(("name", "rows"), F64_CASES)
def test_golden_embeddings_float64(name: str, rows: list[int] | None) -> None:
    ref = load_golden(name)
    pad = "reflect" if "reflectpad" in name else "constant"
    model = load_audio_embedding_model_from_path(
        golden("fake_openl3_audio_mel256_music.h5"),
        ref["input_repr"],
        512,
        ref["frontend"],
        dtype=torch.float64,
        pad_mode=pad,
    )
    audio, sr = read_wav(ref["input_wav"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OpenL3Warning)
        if rows is None:
            emb, ts = get_audio_embedding(
                audio,
                sr,
                model=model,
                input_repr=ref["input_repr"],
                hop_size=ref["hop_size"],
                frontend=ref["frontend"],
                verbose=False,
            )
            np.testing.assert_array_equal(ts, ref["timestamps"])
            rows = list(range(len(ts)))
        else:
            frames = preprocess_audio(audio, sr, hop_size=ref["hop_size"])[rows, 0]
            emb = model.embed_frames(frames)
    assert emb.dtype == np.float64
    np.testing.assert_allclose(
        emb if emb.shape[0] == len(rows) else emb[rows], ref["embedding_f64ref"][rows], rtol=0, atol=1e-5
    )
