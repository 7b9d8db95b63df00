"""PyTorch port of the MSD-trained MusiCNN tagger (Pons & Serra, `musicnn==0.1.0`), weights from its wheel.

The original runs on TensorFlow 1.x graphs, which we never want to install; the network is small, so we
rebuild it in PyTorch, read the wheel's own checkpoint with `models.tf_checkpoint`, and check the port
against reference activations (tests/test_musicnn.py). `extractor` is a drop-in for the package's
function; `MusiCNNEmbedder` is what the engine uses.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.embedder import Embedder, EmbedderError, register
from models.musicnn_pool import POOL_BLOCK_PATCHES, POOL_DIM, patch_pool_vectors, pool_blocks
from models.tf_checkpoint import read_checkpoint

# Front-end and patching: the values the network was trained with (musicnn/configuration.py).
SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3 s) + 1
PATCH_HOP_FRAMES = 61  # librosa.time_to_frames(1 s): the original's `input_overlap=1`
BN_EPS = 1e-3  # tf.layers.batch_normalization default (PyTorch's is 1e-5)
FRAME_SECONDS = PATCH_FRAMES * HOP / SR
HOP_SECONDS = PATCH_HOP_FRAMES * HOP / SR
MIN_SAMPLES = (PATCH_FRAMES - 1) * HOP  # shortest audio whose centred STFT has one full patch
# Patches per forward: ~20 MB of activations each on CPU (conv im2col + output), so cap the peak at
# ~1.3 GB there; throughput stops growing well before the cap. GPUs take far bigger batches.
MAX_PATCHES_CPU = 64
MAX_PATCHES_CUDA = 1024

# fmt: off
MSD_LABELS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist",
    "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy", "funk",
    "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)
# fmt: on
OUTPUT_DIMS = {"taggram": 50, "penultimate": 200, "pool": POOL_DIM}


# ----------------------------------------------------------------------------------------- front-end
class LogMel(nn.Module):
    """librosa's melspectrogram (power 2, Slaney, centred, zero-padded) + log10(10000 x + 1), in torch.

    torch.stft is ~6-40x faster than librosa on CPU for 5-30 s inputs and runs on the engine's device;
    the filterbank is librosa's own, so results agree to ~5e-6 (float32 rounding).
    """

    def __init__(self) -> None:
        super().__init__()
        fb = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS)  # float32, Slaney
        self.register_buffer("fb", torch.from_numpy(fb), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, n) or (n,) float audio at 16 kHz -> (B, frames, 96) or (frames, 96) log-mel, float32."""
        spec = torch.stft(
            audio.float(),
            N_FFT,
            HOP,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.fb, power).transpose(-1, -2)
        return torch.log10(10000.0 * mel + 1.0)


@functools.lru_cache(maxsize=1)
def _cpu_logmel() -> LogMel:
    return LogMel()


def logmel(audio16k: np.ndarray) -> np.ndarray:
    """Log-mel (frames, 96) float32 of mono 16 kHz audio, as the network was trained on it."""
    with torch.inference_mode():
        return _cpu_logmel()(torch.from_numpy(np.ascontiguousarray(audio16k, dtype=np.float32))).numpy()


def n_logmel_frames(n_samples: int) -> int:
    """Frames of a centred STFT: one per hop, plus one."""
    return 1 + n_samples // HOP


def n_patches(n_frames: int, length: int = PATCH_FRAMES, step: int = PATCH_HOP_FRAMES) -> int:
    """Patches [step*k, step*k + length) that fit in `n_frames` log-mel frames."""
    return 0 if n_frames < length else (n_frames - length) // step + 1


# ------------------------------------------------------------------------------------------- network
def _bn_affine(bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Inference batch norm as y = x * scale + shift."""
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class MusiCNN(nn.Module):
    """MSD_musicnn: musically motivated front-end, dense mid-end, max+mean temporal pooling back-end.

    Input (B, T, 96) log-mel patches (T = 187 for the trained 3 s input; any T works). `forward` gives
    the (B, 50) taggram; `features` gives every named activation the reference exposes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bn_input = nn.BatchNorm2d(1, eps=BN_EPS)
        # timbral: 7 frames x 40% / 70% of the mel bins; temporal: 128/64/32 frames x 1 bin
        self.timbral = nn.ModuleList([nn.Conv2d(1, 204, (7, 38)), nn.Conv2d(1, 204, (7, 67))])
        self.bn_timbral = nn.ModuleList([nn.BatchNorm1d(204, eps=BN_EPS) for _ in range(2)])
        self.temporal = nn.ModuleList([nn.Conv2d(1, 51, (k, 1)) for k in (128, 64, 32)])
        self.bn_temporal = nn.ModuleList([nn.BatchNorm1d(51, eps=BN_EPS) for _ in range(3)])
        # mid-end: 7-frame convs over all channels ('same' padding is symmetric for odd kernels)
        self.midend = nn.ModuleList([nn.Conv1d(c, 64, 7, padding=3) for c in (561, 64, 64)])
        self.bn_midend = nn.ModuleList([nn.BatchNorm1d(64, eps=BN_EPS) for _ in range(3)])
        self.bn_pool = nn.BatchNorm1d(1506, eps=BN_EPS)
        self.dense = nn.Linear(1506, 200)
        self.bn_dense = nn.BatchNorm1d(200, eps=BN_EPS)
        self.out = nn.Linear(200, 50)

    @staticmethod
    def _conv_bn_freqmax(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm1d) -> torch.Tensor:
        """max over frequency of BN(relu(conv(x))) -> (B, C, T), without materialising the BN output.

        BN is a per-channel affine map: its max is the max of relu(conv) where scale >= 0 and the
        min where scale < 0 (many dead channels here have negative gammas). Flipping those channels'
        weights turns both cases into one max: ~30% less network CPU time than relu + BN + amax.
        `max(...).values` rather than `amax`: same values, but its backward scatters the gradient to
        one index instead of spreading it over ties, ~1.3x cheaper forward + backward for saliency.
        """
        scale, shift = _bn_affine(bn)
        sign = torch.where(scale < 0, -1.0, 1.0).to(scale.dtype)
        y = F.conv2d(x, conv.weight * sign.view(-1, 1, 1, 1), conv.bias * sign)
        extreme = y.max(dim=-1).values * sign[:, None]
        return torch.relu(extreme) * scale[:, None] + shift[:, None]

    def _timbral(self, padded: torch.Tensor) -> torch.Tensor:
        """(N, 1, T + 6, 96) normalised log-mel, zero-padded 3 frames each side -> (N, 408, T)."""
        pairs = zip(self.timbral, self.bn_timbral, strict=True)
        return torch.cat([self._conv_bn_freqmax(padded, conv, bn) for conv, bn in pairs], dim=1)

    def _features(self, x: torch.Tensor, timbral: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything after the timbral block, from normalised patches x (N, 1, T, 96)."""
        temporal = []
        for conv, bn in zip(self.temporal, self.bn_temporal, strict=True):
            k = conv.kernel_size[0]
            # TF 'same' with an even kernel pads one more frame after than before: (63, 64) for 128
            temporal.append(self._conv_bn_freqmax(F.pad(x, (0, 0, (k - 1) // 2, k // 2)), conv, bn))
        temporal_cat = torch.cat(temporal, dim=1)
        front = torch.cat([timbral, temporal_cat], dim=1)  # (N, 561, T)

        cnn1 = self.bn_midend[0](torch.relu(self.midend[0](front)))
        cnn2 = self.bn_midend[1](torch.relu(self.midend[1](cnn1))) + cnn1
        cnn3 = self.bn_midend[2](torch.relu(self.midend[2](cnn2))) + cnn2
        mid = torch.cat([front, cnn1, cnn2, cnn3], dim=1)  # (N, 753, T)

        max_pool, mean_pool = mid.amax(dim=-1), mid.mean(dim=-1)
        pool = torch.stack([max_pool, mean_pool], dim=-1).flatten(1)
        penultimate = torch.relu(self.dense(self.bn_pool(pool)))
        penultimate_bn = self.bn_dense(penultimate)
        taggram = torch.sigmoid(self.out(penultimate_bn))
        return {
            "taggram": taggram,
            "penultimate": penultimate,
            "penultimate_bn": penultimate_bn,
            "max_mean_pool": pool,
            "max_pool": max_pool,
            "mean_pool": mean_pool,
            "pool": patch_pool_vectors(mean_pool, max_pool),
            "timbral": timbral.transpose(1, 2),
            "temporal": temporal_cat.transpose(1, 2),
            "cnn1": cnn1.transpose(1, 2),
            "cnn2": cnn2.transpose(1, 2),
            "cnn3": cnn3.transpose(1, 2),
        }

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """All activations of (N, T, 96) patches: taggram (N,50), penultimate (N,200, dense output
        before its BN), penultimate_bn (N,200, the original extractor's 'penultimate'), max_mean_pool
        (N,1506, before its BN, interleaved [max_0, mean_0, max_1, ...] like the reference's flatten),
        max_pool and mean_pool (N,753), pool (N,753: `models.musicnn_pool`), timbral (N,T,408), temporal (N,T,153),
        cnn1/2/3 (N,T,64)."""
        x = self.bn_input(x.unsqueeze(1))  # (N, 1, T, 96)
        return self._features(x, self._timbral(F.pad(x, (0, 0, 3, 3))))

    def sliding_features(
        self, mel: torch.Tensor, length: int = PATCH_FRAMES, step: int = PATCH_HOP_FRAMES
    ) -> dict[str, torch.Tensor]:
        """`features` of every patch [step*k, step*k + length) of each log-mel in `mel` (B, T, 96).

        Rows are slice-major (B * P). Overlapping patches share the timbral convolutions (~80% of
        the FLOPs): they run once over the whole log-mel, and only the 3 frames at each patch edge,
        where the patch's own zero padding differs from its neighbours' frames, are redone.
        Same numbers as `features` on the cut-out patches with 2.2x fewer FLOPs at the 61-frame hop.
        """
        x = self.bn_input(mel.unsqueeze(1))  # (B, 1, T, 96)
        patches = x.unfold(2, length, step).permute(0, 2, 1, 4, 3).flatten(0, 1)  # (B*P, 1, L, 96)
        if step >= length or length < 7:  # no overlap to share
            return self._features(patches, self._timbral(F.pad(patches, (0, 0, 3, 3))))
        whole = self._timbral(F.pad(x, (0, 0, 3, 3)))  # (B, 408, T)
        shared = whole.unfold(2, length, step).transpose(1, 2).flatten(0, 1)  # (B*P, 408, L)
        head = self._timbral(F.pad(patches[:, :, :6], (0, 0, 3, 0)))  # patch frames 0..2
        tail = self._timbral(F.pad(patches[:, :, -6:], (0, 0, 0, 3)))  # patch frames L-3..L-1
        return self._features(patches, torch.cat([head, shared[..., 3:-3], tail], dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 96) log-mel patches -> (B, 50) sigmoid tag probabilities."""
        return self.features(x)["taggram"]


# ------------------------------------------------------------------------------- checkpoint -> torch
_CONVS = {  # torch prefix -> (checkpoint conv, checkpoint batch norm); see golden weight_mapping.txt
    "timbral.0": ("conv2d", "batch_normalization_1"),
    "timbral.1": ("conv2d_1", "batch_normalization_2"),
    "temporal.0": ("conv2d_2", "batch_normalization_3"),
    "temporal.1": ("conv2d_3", "batch_normalization_4"),
    "temporal.2": ("conv2d_4", "batch_normalization_5"),
    "midend.0": ("conv2d_5", "batch_normalization_6"),
    "midend.1": ("conv2d_6", "batch_normalization_7"),
    "midend.2": ("conv2d_7", "batch_normalization_8"),
}
_BNS = {
    "bn_input": "batch_normalization",
    "bn_pool": "batch_normalization_9",
    "bn_dense": "batch_normalization_10",
    **{f"bn_{prefix}": bn for prefix, (_, bn) in _CONVS.items()},
}
_DENSES = {"dense": "dense", "out": "dense_1"}


def convert_checkpoint(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map the wheel's TF variables onto `MusiCNN`'s state_dict (layouts transposed, copies made)."""
    state: dict[str, torch.Tensor] = {}

    def get(name: str) -> torch.Tensor:
        if name not in tensors:
            raise EmbedderError(f"MusiCNN checkpoint lacks variable {name!r}; is it the MSD_musicnn one?")
        return torch.from_numpy(np.array(tensors[name], dtype=np.float32))

    for prefix, (conv, _) in _CONVS.items():
        kernel = get(f"{conv}/kernel")  # (kh, kw, in, out)
        if prefix.startswith("midend"):  # (7, C, 1, 64): the 'width' spans all channels -> conv1d
            state[f"{prefix}.weight"] = kernel[:, :, 0, :].permute(2, 1, 0).contiguous()
        else:
            state[f"{prefix}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()
        state[f"{prefix}.bias"] = get(f"{conv}/bias")
    for prefix, bn in _BNS.items():
        state[f"{prefix}.weight"] = get(f"{bn}/gamma")
        state[f"{prefix}.bias"] = get(f"{bn}/beta")
        state[f"{prefix}.running_mean"] = get(f"{bn}/moving_mean")
        state[f"{prefix}.running_var"] = get(f"{bn}/moving_variance")
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(0)
    for prefix, dense in _DENSES.items():
        state[f"{prefix}.weight"] = get(f"{dense}/kernel").T.contiguous()  # (in, out) -> (out, in)
        state[f"{prefix}.bias"] = get(f"{dense}/bias")
    return state


def checkpoint_prefix() -> Path:
    """Path prefix of the MSD_musicnn checkpoint inside the installed `musicnn` wheel (never imported)."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError(
            "The MSD-MusiCNN weights come from the musicnn wheel, which is not installed. "
            "Run: pip install --no-deps musicnn==0.1.0 (its TensorFlow is not needed)."
        )
    directory = Path(next(iter(spec.submodule_search_locations))) / "MSD_musicnn"
    if not (directory / ".index").is_file() or not (directory / ".data-00000-of-00001").is_file():
        raise EmbedderError(
            f"{directory} lacks the checkpoint files .index/.data-00000-of-00001; reinstall with "
            "pip install --force-reinstall --no-deps musicnn==0.1.0"
        )
    return directory


@functools.lru_cache(maxsize=1)
def _msd_state_dict() -> dict[str, torch.Tensor]:
    """Converted weights, read once per process.

    No disk cache on purpose: reading + converting the wheel's checkpoint takes ~3 ms, less than
    hashing it (~6 ms) and `torch.load`-ing a cached copy (~4 ms) would.
    """
    try:
        tensors = read_checkpoint(str(checkpoint_prefix()) + "/")
    except ValueError as exc:
        raise EmbedderError(f"Cannot read the MSD-MusiCNN checkpoint: {exc}") from exc
    return convert_checkpoint(tensors)


def load_msd_musicnn(device: str | torch.device = "cpu") -> MusiCNN:
    """The MSD-trained MusiCNN with the wheel's weights, in eval mode, on `device`."""
    model = MusiCNN()
    model.load_state_dict(_msd_state_dict())
    return model.eval().to(device)


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """fp16 autocast on CUDA (fp16 rather than bf16: 3 more mantissa bits); exact float32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _run_sliding(
    model: MusiCNN,
    mel: torch.Tensor,
    keys: tuple[str, ...],
    length: int = PATCH_FRAMES,
    step: int = PATCH_HOP_FRAMES,
    max_patches: int | None = None,
) -> dict[str, torch.Tensor]:
    """`model.sliding_features` of (B, T, 96) log-mels, float32, rows slice-major (B * P).

    One forward when the B * P patches fit in `max_patches`; otherwise groups of whole slices, or
    runs of patches within one long log-mel (patches only see their own frames, so this is exact).
    """
    if max_patches is None:
        max_patches = MAX_PATCHES_CUDA if mel.device.type == "cuda" else MAX_PATCHES_CPU
    n = n_patches(mel.shape[1], length, step)
    per_forward = max(1, max_patches // max(n, 1))  # slices per forward
    span = max(1, min(n, max_patches))  # patches per forward within a slice
    chunks: dict[str, list[torch.Tensor]] = {key: [] for key in keys}
    with torch.inference_mode(), _autocast(mel.device):
        for b in range(0, mel.shape[0], per_forward):
            for k in range(0, n, span):
                frames = slice(k * step, (min(n, k + span) - 1) * step + length)
                out = model.sliding_features(mel[b : b + per_forward, frames], length, step)
                for key in keys:
                    chunks[key].append(out[key].float())
    return {key: torch.cat(parts) for key, parts in chunks.items()}


# ------------------------------------------------------------------------------------------ embedder
class MusiCNNEmbedder(Embedder):
    """MSD-MusiCNN taggram (50-d), penultimate (200-d) or pool (753-d) per 3 s patch, one every 61 frames.

    Slices shorter than one patch (< 2.98 s) are zero-padded at the end, in the audio, to one patch:
    the network only ever sees the input geometry it was trained on. `pool` tables use the published
    pooled features' own grid instead (`track_frames`: 5.984 s blocks of two back-to-back patches).
    """

    name = "musicnn-msd"
    sample_rate = SR
    frame_seconds = FRAME_SECONDS
    hop_seconds = HOP_SECONDS

    def __init__(self, device: str | torch.device = "cpu", output: str = "taggram") -> None:
        super().__init__(device)
        if output not in OUTPUT_DIMS:
            raise EmbedderError(f"Unknown MusiCNN output {output!r}; choose one of {', '.join(OUTPUT_DIMS)}.")
        self.output = output
        self.dim = OUTPUT_DIMS[output]
        self.model = load_msd_musicnn(self.device)
        self.frontend = LogMel().to(self.device)

    @property
    def id(self) -> str:
        return f"musicnn-msd/{self.output}/v1"

    @property
    def settings(self) -> dict[str, Any]:
        return {**super().settings, "output": self.output}

    def n_frames(self, n_samples: int) -> int:
        return n_patches(n_logmel_frames(max(n_samples, MIN_SAMPLES)))

    @property
    def track_frame_seconds(self) -> float:
        return POOL_BLOCK_PATCHES * FRAME_SECONDS if self.output == "pool" else self.frame_seconds

    @property
    def track_hop_seconds(self) -> float:
        return self.track_frame_seconds if self.output == "pool" else self.hop_seconds

    def _patch_vectors(self, slices: np.ndarray, step: int) -> torch.Tensor:
        """(B * P, dim) vectors of every patch, patches `step` log-mel frames apart, rows slice-major."""
        with torch.inference_mode():
            mel = self.frontend(torch.from_numpy(slices).to(self.device))  # (B, T, 96), float32
            return _run_sliding(self.model, mel, (self.output,), step=step)[self.output]

    def _checked(self, slices: np.ndarray) -> np.ndarray:
        """float32 (B, n) audio, at least one patch long."""
        slices = np.asarray(slices, dtype=np.float32)
        if slices.ndim != 2:
            raise ValueError(f"embed expects (batch, samples) audio, got shape {slices.shape}")
        if slices.shape[1] < MIN_SAMPLES:
            slices = np.pad(slices, ((0, 0), (0, MIN_SAMPLES - slices.shape[1])))
        return slices

    def embed(self, slices: np.ndarray) -> np.ndarray:
        slices = self._checked(slices)
        batch = slices.shape[0]
        if batch == 0:
            return np.zeros((0, self.n_frames(slices.shape[1]), self.dim), dtype=np.float32)
        out = self._patch_vectors(slices, PATCH_HOP_FRAMES)
        return out.reshape(batch, -1, self.dim).cpu().numpy()

    def track_frames(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`pool`: back-to-back patches averaged in pairs, exactly the published pooled tables' rows."""
        if self.output != "pool":
            return super().track_frames(samples)
        patches = self._patch_vectors(self._checked(np.asarray(samples)[None, :]), PATCH_FRAMES).cpu().numpy()
        blocks = pool_blocks(patches)
        return blocks, np.arange(len(blocks), dtype=np.float64) * self.track_hop_seconds


@register("musicnn-msd")
def _factory(device: str | torch.device = "cpu", output: str = "taggram") -> MusiCNNEmbedder:
    return MusiCNNEmbedder(device=device, output=output)


# ----------------------------------------------------------------------------- drop-in extractor
@functools.lru_cache(maxsize=2)
def _shared_model(device: str) -> MusiCNN:
    return load_msd_musicnn(device)


def extractor(
    file_name: str | Path,
    model: str = "MSD_musicnn",
    input_length: float = 3,
    input_overlap: float | bool = False,
    extract_features: bool = True,
    device: str = "cpu",
    batch_size: int | None = None,
) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]] | tuple[np.ndarray, list[str]]:
    """Drop-in for `musicnn.extractor.extractor` (MSD_musicnn only), without TensorFlow.

    Same semantics as the original: patches are `time_to_frames(input_length) + 1` frames long and
    start every `time_to_frames(input_overlap)` frames -- despite its name, `input_overlap` is the
    hop (1 s -> 61 frames); a falsy value means back-to-back patches. Returns (taggram (P, 50),
    tags, features) or (taggram, tags) when `extract_features` is False. Features: 'mean_pool' and
    'max_pool' (P, 753), 'penultimate' (P, 200, after its batch norm, as the original), and
    'timbral', 'temporal', 'cnn1', 'cnn2', 'cnn3' stacked over patches as (P * frames, channels).
    Unlike the original, audio shorter than one patch is zero-padded to one patch, the log-mel is
    float32 (the original's float16 overflows on loud audio), and every batch's features are its own.
    """
    if model != "MSD_musicnn":
        raise ValueError(f"Only model='MSD_musicnn' is ported (got {model!r}).")
    length = int(librosa.time_to_frames(input_length, sr=SR, n_fft=N_FFT, hop_length=HOP)) + 1
    step = (
        length
        if not input_overlap
        else int(librosa.time_to_frames(input_overlap, sr=SR, n_fft=N_FFT, hop_length=HOP))
    )
    if length < 1 or step < 1:
        raise ValueError(
            f"input_length={input_length} / input_overlap={input_overlap} give no usable patches."
        )
    audio, _ = librosa.load(file_name, sr=SR)
    audio = np.pad(audio, (0, max(0, (length - 1) * HOP - audio.size)))
    mel = torch.from_numpy(logmel(audio)).to(device)

    keys = ("taggram",) + (
        ("timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate_bn")
        if extract_features
        else ()
    )
    net = _shared_model(device)
    out = _run_sliding(net, mel[None], keys, length, step, batch_size)
    out = {key: value.cpu().numpy() for key, value in out.items()}
    taggram, tags = out.pop("taggram"), list(MSD_LABELS)
    if not extract_features:
        return taggram, tags
    features = {
        key: value.reshape(-1, value.shape[-1]) if value.ndim == 3 else value for key, value in out.items()
    }
    features["penultimate"] = features.pop("penultimate_bn")
    return taggram, tags, features
